"""Evaluation: accuracy, loss, per-class accuracy and confusion matrix of a model or a checkpoint,
and what it costs (spikes, sparsity, synaptic operations: :mod:`snn_lib.cost`).

::

    # the model's own device
    result = evaluate(model, loaders.test)
    # what snn-eval prints
    result = evaluate_checkpoint("exp/demo/checkpoints/best.pt")
    # per recording
    result["cost"]["total"]["effective_acs"]
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import model_from_checkpoint
from .config import Config, DataConfig
from .cost import measure_cost
from .data import FrameLoader, load_split
from .device import autocast, resolve_device
from .distributed import all_reduce_sum
from .model import make_loss, predict


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: FrameLoader, loss_fn=None, device: torch.device | str | None = None,
             num_classes: int = 10, amp: str = "off") -> dict:
    """Accuracy, mean loss (default: cross-entropy on spike counts), per-class accuracy and
    confusion matrix ``[true, predicted]`` on ``loader``. ``device``: default the model's. In a
    data-parallel run each process evaluates its part of the loader and the counts are summed."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    loss_fn = loss_fn or make_loss("ce_count")
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    total_loss = 0.0
    for frames, labels in loader:
        frames, labels = frames.to(device), labels.to(device)
        with autocast(amp, device):
            spk, _ = model(frames)                                  # [T, B, 10]
        total_loss += loss_fn(spk.float(), labels).item() * len(labels)
        pairs = labels.cpu() * num_classes + predict(spk).cpu()
        confusion += torch.bincount(pairs, minlength=num_classes ** 2).view(num_classes, num_classes)
    if torch.distributed.is_initialized():             # sums over every process of a parallel run
        totals = torch.cat([confusion.flatten().double(), torch.tensor([total_loss], dtype=torch.float64)])
        totals = all_reduce_sum(totals.to(device)).cpu()
        confusion, total_loss = totals[:-1].round().long().view(num_classes, num_classes), totals[-1].item()
    n = int(confusion.sum())
    per_class = confusion.diag() / confusion.sum(1).clamp(min=1)
    return {"accuracy": confusion.diag().sum().item() / max(n, 1), "loss": total_loss / max(n, 1),
            "per_class_accuracy": per_class.tolist(), "confusion_matrix": confusion.tolist(), "samples": n}


def evaluate_checkpoint(checkpoint: str | Path, data_overrides: dict | None = None, split: str = "test",
                        device: str = "auto", batch_size: int = 256, cost: bool = True) -> dict:
    """Accuracy, per-class accuracy and confusion matrix of a checkpoint on a dataset split.

    The frame settings (time bins, crop, denoise) always come from the checkpoint, since the model
    was trained on them; ``data_overrides`` (name, root, ...) choose the recordings. ``split`` is
    ``"test"``, ``"val"`` (the validation split) or ``"train"`` as the run drew them (``"train"``
    leaves the held-out recordings out, and is never augmented nor mixed with simulated
    recordings). With ``cost``, ``result["cost"]`` of a CSNN holds
    :func:`snn_lib.cost.measure_cost` over the same recordings.
    """
    dev = resolve_device(device)
    model, cfg = model_from_checkpoint(checkpoint, dev)
    data = DataConfig(**{**vars(cfg.data), **{k: v for k, v in (data_overrides or {}).items() if v is not None},
                         "augment": (), "sim_mix": 0})      # the training split's extras: not evaluated
    Config(data=data).validate()
    frames, labels = load_split(data, split)
    loader = FrameLoader(frames, labels, batch_size, device=dev)
    result = evaluate(model, loader, device=dev)
    if cost and cfg.model.name == "csnn":                    # spikes and synaptic operations
        result["cost"] = measure_cost(model, loader, device=dev)
    return {"checkpoint": str(checkpoint), "data": vars(data), "split": split, **result}


__all__ = ["evaluate", "evaluate_checkpoint"]
