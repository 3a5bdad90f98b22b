"""Checkpoints: written atomically, self-describing, loaded back into a model.

A checkpoint is a dict saved with ``torch.save``::

    model          the state dict (weights and biases; beta and threshold are in the config)
    optimizer      Adam's state dict, or None
    config         the full Config of the run, as a plain dict
    epoch          the last epoch trained
    history        one row of metrics per epoch (metrics.csv)
    metrics        the last row
    frame_shape    (T, 2, H, W) of one recording: with the config, enough to rebuild the model
    snn_lib_format the version of this layout
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from .config import Config, config_from_dict, config_to_dict
from .errors import SnnError
from .model import CSNN, build_model

FORMAT = 2
"""Format 2: snnTorch's neuron constants are no longer in the model's state dict. Format 1 (the
first release) stored them there too; such checkpoints still load."""

_NEURON_KEY = re.compile(r"^lif\d\.(beta|threshold|graded_spikes_factor|reset_mechanism_val)$")


def save_checkpoint(path: str | Path, model: CSNN, optimizer: torch.optim.Optimizer | None, cfg: Config,
                    epoch: int, history: list[dict], frame_shape: tuple[int, ...]) -> Path:
    """Write a self-describing checkpoint atomically (a killed run never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None,
             "config": config_to_dict(cfg), "epoch": epoch, "history": history,
             "metrics": history[-1] if history else {}, "frame_shape": list(frame_shape),
             "snn_lib_format": FORMAT}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint's dict, on the CPU; an SnnError names a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise SnnError(f"checkpoint '{path}' does not exist; give the path of a .pt file written by snn-train "
                       "(exp/<exp_id>/checkpoints/best.pt).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001
        raise SnnError(f"checkpoint '{path}' cannot be read ({type(err).__name__}); it is damaged or not "
                       "written by snn-train.") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise SnnError(f"checkpoint '{path}' is not an snn_lib checkpoint (no model/config inside).")
    return state


def model_weights(state: dict) -> dict:
    """The model's state dict of a loaded checkpoint, in the current format (format 1's neuron
    constants, which the config holds, are left out; a learnable beta or threshold is kept)."""
    model = state["config"].get("model", {})
    learned = {name for name in ("beta", "threshold") if model.get(f"learn_{name}")}
    return {k: v for k, v in state["model"].items()
            if not (match := _NEURON_KEY.match(k)) or match.group(1) in learned}


def model_from_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                          impl: str | None = None) -> tuple[CSNN, Config]:
    """The trained model (in eval mode on ``device``) and the configuration it was trained with.

    ``impl`` runs it with another implementation (``fast`` or ``reference``): same weights."""
    state = load_checkpoint(path)
    cfg = config_from_dict(state["config"])
    if impl:
        cfg.model.impl = impl
    model = build_model(cfg.model, tuple(state["frame_shape"]))
    model.load_state_dict(model_weights(state))
    return model.to(device).eval(), cfg


__all__ = ["FORMAT", "load_checkpoint", "model_from_checkpoint", "model_weights", "save_checkpoint"]
