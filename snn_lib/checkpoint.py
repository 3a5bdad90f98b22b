"""Checkpoints: self-describing, written atomically and durably, verified and loaded safely.

A checkpoint is a dict saved with ``torch.save``, holding only tensors, numbers, strings, lists
and dicts::

    model          the state dict (weights and biases; beta and threshold
                   are in the config)
    optimizer      Adam's state dict, or None
    config         the full Config of the run, as a plain dict
    epoch          the last epoch trained
    best_epoch     the epoch whose weights best.pt of the same run holds
    scheduler      the learning-rate schedule's state dict
                   (train.lr_schedule), or None
    history        one row of metrics per epoch (metrics.csv)
    metrics        the last row
    frame_shape    (T, 2, H, W) of one recording: with the config, enough to
                   rebuild the model
    digest         SHA-256 of the model's and the optimizer's tensors
    snn_lib_format the version of this layout

Loading uses ``torch.load(weights_only=True)``: a file that holds anything else (a pickled Python
object, which could run code when loaded) is refused, as is a file whose tensors no longer match
their digest (bytes changed on disk or on the way: torch does not check the zip's checksums).
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
from pathlib import Path

import torch

from .config import Config, config_from_dict, config_to_dict
from .errors import ConfigError, SnnError
from .files import atomic_write
from .model import NEURON_BUFFERS, build_model

log = logging.getLogger("snn_lib")

FORMAT = 2
"""The version of the checkpoint layout. Version 2 added a digest of the tensors and
``best_epoch``, and took snnTorch's neuron constants out of the model's state dict; version 1
(the first release) still loads, unverified."""

def tensors_digest(obj) -> str:
    """SHA-256 of every tensor in a nested dict/list, with its place, dtype and shape."""
    h = hashlib.sha256()

    def walk(x, where: str) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"{where}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(x, dict):
            for key in sorted(x, key=str):
                walk(x[key], f"{where}/{key}")
        elif isinstance(x, (list, tuple)):
            for i, item in enumerate(x):
                walk(item, f"{where}/{i}")

    walk(obj, "")
    return h.hexdigest()


def save_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, cfg: Config,
                    epoch: int, history: list[dict], frame_shape: tuple[int, ...],
                    best_epoch: int | None = None, scheduler=None) -> Path:
    """Write a self-describing checkpoint atomically and durably (a killed run, a crash or a full
    disk never leaves half a file in its place); a one-line SnnError names a file that cannot be
    written."""
    path = Path(path)
    model_state = model.state_dict()
    optimizer_state = optimizer.state_dict() if optimizer else None
    state = {"model": model_state, "optimizer": optimizer_state, "config": config_to_dict(cfg), "epoch": epoch,
             "best_epoch": best_epoch, "scheduler": scheduler.state_dict() if scheduler is not None else None,
             "history": history, "metrics": history[-1] if history else {},
             "frame_shape": list(frame_shape),
             "digest": {"model": tensors_digest(model_state), "optimizer": tensors_digest(optimizer_state)},
             "snn_lib_format": FORMAT}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint's dict, on the CPU, after the safety and integrity checks of the module
    docstring; a one-line SnnError says what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise SnnError(f"checkpoint '{path}' does not exist; give the path of a .pt file written by snn-train "
                       "(exp/<exp_id>/checkpoints/best.pt).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "global" in str(err).lower():                 # a Python object the safe unpickler blocks
            raise SnnError(f"checkpoint '{path}' holds Python objects besides tensors, numbers, strings, lists and "
                           "dicts, which could run code when loaded: refused. Use a checkpoint written by "
                           "snn-train.") from None
        raise SnnError(f"checkpoint '{path}' cannot be read (UnpicklingError); it is damaged or not written by "
                       "snn-train.") from None
    except Exception as err:  # noqa: BLE001 - any other failure: not a readable checkpoint
        raise SnnError(f"checkpoint '{path}' cannot be read ({type(err).__name__}); it is damaged or not "
                       "written by snn-train.") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise SnnError(f"checkpoint '{path}' is not an snn_lib checkpoint (no model/config inside).")
    digest = state.get("digest")
    if digest is None:
        log.warning("checkpoint %s was written by an older snn_lib, without a digest: its weights are not "
                    "verified", path)
    elif (digest.get("model") != tensors_digest(state["model"])
          or digest.get("optimizer") != tensors_digest(state["optimizer"])):
        raise SnnError(f"checkpoint '{path}' is damaged: its tensors do not match the digest stored with them "
                       "(bytes changed on disk or in transfer); use another copy.")
    if isinstance(state["config"], dict):
        state["config"] = upgrade_config(state["config"])
    return state


def upgrade_config(config: dict) -> dict:
    """A checkpoint's (or config.yaml's) config dict with the settings older versions did not
    have set to what those versions did: no validation split (``data.val_from_train=0``), so
    ``best.pt`` was chosen on the test set (``train.select_on=test``)."""
    config = {**config, "data": dict(config.get("data", {})), "train": dict(config.get("train", {}))}
    config["data"].setdefault("val_from_train", 0.0)
    if config["data"]["val_from_train"] == 0.0:
        config["train"].setdefault("select_on", "test")
    return config


def model_weights(state: dict) -> dict:
    """The model's state dict of a loaded checkpoint, in the current format (format 1's neuron
    constants, which the config holds, are left out; a learnable beta or threshold is kept)."""
    model = state["config"].get("model", {})
    learned = {name for name in ("beta", "threshold") if model.get(f"learn_{name}")}
    return {k: v for k, v in state["model"].items()
            if not (k.startswith("lif") and k.rpartition(".")[2] in NEURON_BUFFERS)
            or k.rpartition(".")[2] in learned}


def model_from_checkpoint(checkpoint: str | Path | dict, device: str | torch.device = "cpu",
                          impl: str | None = None) -> tuple[torch.nn.Module, Config]:
    """The trained model (in eval mode on ``device``) and the configuration it was trained with,
    from a checkpoint's path or its already loaded dict: the one way a model is rebuilt from a
    checkpoint (``snn-eval``, a finished or a data-parallel run, the book).

    ``impl`` runs it with another implementation (``fast`` or ``reference``): same weights."""
    state = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    cfg = config_from_dict(state["config"])
    if impl:
        cfg.model.impl = impl
    model = build_model(cfg.model, tuple(state["frame_shape"]))
    model.load_state_dict(model_weights(state))
    return model.to(device).eval(), cfg


SHAPING = ("name", "channels", "kernel_size", "learn_beta", "learn_threshold")
"""The ``model.*`` settings that shape a model's weights: ``train.init_from`` requires the same."""


def init_weights(model: torch.nn.Module, path: str | Path, cfg: Config, frame_shape: tuple[int, ...]) -> None:
    """``train.init_from``: load the weights of the checkpoint ``path`` into ``model``; the
    architecture (the :data:`SHAPING` settings and the frame shape) must be the same, else a
    one-line ConfigError."""
    state = load_checkpoint(path)
    old = config_from_dict(state["config"])
    differ = [f"model.{k} {getattr(old.model, k)} -> {getattr(cfg.model, k)}" for k in SHAPING
              if getattr(old.model, k) != getattr(cfg.model, k)]
    if tuple(state["frame_shape"]) != tuple(frame_shape):
        differ.append(f"frame shape {tuple(state['frame_shape'])} -> {tuple(frame_shape)}")
    if differ:
        raise ConfigError(f"train.init_from={path} was trained with another architecture ({'; '.join(differ)}); "
                          "use the same model.* settings, data.n_time_bins and data.crop, or another checkpoint.")
    try:
        model.load_state_dict(model_weights(state), strict=True)
    except RuntimeError as err:
        raise ConfigError(f"train.init_from={path}: its weights do not fit this model "
                          f"({str(err).splitlines()[0]}); use a checkpoint of the same architecture.") from None


def repair_best(last_path: str | Path, best_path: str | Path, last: dict) -> bool:
    """Make ``best.pt`` hold the epoch that ``last.pt`` says it must (``last["best_epoch"]``).

    A run writes last.pt, then best.pt; a kill between the two leaves best.pt an epoch behind,
    and then the best epoch is last.pt's own epoch, so last.pt's bytes are copied. Returns True
    when it repaired something; a one-line SnnError when the set cannot be made consistent."""
    best_epoch = last.get("best_epoch")
    if best_epoch is None:
        return False
    best_path = Path(best_path)
    if best_path.is_file() and load_checkpoint(best_path)["epoch"] == best_epoch:
        return False
    if best_epoch != last["epoch"]:
        raise SnnError(f"{best_path} does not hold epoch {best_epoch}, the best epoch that {last_path} names, "
                       "and cannot be rebuilt from it; evaluate last.pt instead, or start a new exp_id.")
    atomic_write(best_path, Path(last_path).read_bytes())
    log.info("best.pt repaired: it now holds epoch %d, copied from last.pt", best_epoch)
    return True


__all__ = ["FORMAT", "SHAPING", "init_weights", "load_checkpoint", "model_from_checkpoint", "model_weights", "repair_best", "save_checkpoint",
           "tensors_digest", "upgrade_config"]
