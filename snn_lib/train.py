"""Training of the CSNN and the run folder.

``run_training(cfg)`` is everything ``snn-train`` does, as a plain function a notebook can call::

    result = run_training(Config(exp_id="demo", data=DataConfig(name="nmnist_sim")))

It leaves in ``exp/{exp_id}/``::

    config.yaml        the full configuration of the run
    train.log          a readable log, one line per epoch
    metrics.csv        epoch, train_loss, train_acc, test_loss, test_acc, epoch_seconds, samples_per_second
    checkpoints/       last.pt (every epoch) and best.pt (best test accuracy), self-describing
    train_loss.png     test_acc.png
    spike_bar_{i}_target{t}.gif    output spike counters of a few test digits

One step of training, :func:`train_step`, is used everywhere: by :func:`train_epoch` (and so by
``snn-train``), by the speed benchmarks and by the book.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, model_weights, save_checkpoint
from .config import Config, TrainConfig, config_from_dict, config_to_dict, config_to_yaml
from .data import FrameLoader, Loaders, make_loaders
from .device import autocast, check_amp, configure_backends, grad_scaler, keep_freed_cpu_memory, resolve_device
from .errors import ConfigError
from .evaluate import evaluate
from .model import CSNN, build_model, make_loss, predict
from .plotting import animate_spike_counts, plot_test_acc, plot_train_loss, save_gif

log = logging.getLogger("snn_lib")

METRICS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "epoch_seconds", "samples_per_second"]


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (weights, batch order)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_model(model: CSNN, cfg: TrainConfig, device: torch.device) -> torch.nn.Module:
    """The model on ``device`` with the GPU options of ``cfg`` applied (the returned module may be
    compiled; it then runs the LIF as a scan, see :meth:`CSNN.forward_fast`)."""
    configure_backends(device)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    return torch.compile(model) if cfg.compile else model


def forward_backward(model: torch.nn.Module, frames: torch.Tensor, labels: torch.Tensor, loss_fn,
                     amp: str = "off", scaler: torch.amp.GradScaler | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss of one batch and its gradients in ``.grad`` (added to what is there): ``(loss, spk)``,
    both detached, ``spk [T, B, 10]``. The forward pass runs under ``amp`` autocast; with a
    ``scaler`` (``train.amp=fp16``) the gradients are those of the scaled loss."""
    with autocast(amp, frames.device):
        spk, _ = model(frames)                                       # [T, B, 10]
    loss = loss_fn(spk.float(), labels)
    (scaler.scale(loss) if scaler is not None else loss).backward()
    return loss.detach(), spk.detach()


def train_step(model: torch.nn.Module, frames: torch.Tensor, labels: torch.Tensor,
               optimizer: torch.optim.Optimizer, loss_fn, amp: str = "off",
               scaler: torch.amp.GradScaler | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on ``frames [T, B, 2, H, W]``: ``(loss, spk [T, B, 10])``, detached and
    left on the device (reading them, e.g. with ``.item()``, waits for the GPU). With a ``scaler``
    (``train.amp=fp16``, :func:`snn_lib.device.grad_scaler`) the step is the scaler's: skipped when
    a gradient overflowed, the scale adjusted."""
    optimizer.zero_grad(set_to_none=True)
    loss, spk = forward_backward(model, frames, labels, loss_fn, amp, scaler)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return loss, spk


def train_epoch(model: torch.nn.Module, loader: FrameLoader, optimizer: torch.optim.Optimizer, loss_fn,
                cfg: TrainConfig, device: torch.device, desc: str = "train",
                scaler: torch.amp.GradScaler | None = None) -> dict:
    """One pass over ``loader``; returns ``{"loss", "acc", "samples", "seconds"}``.

    Loss and accuracy are summed on the device and read once at the end, so the steps run without
    waiting for the GPU; the progress bar shows the running values every ``REFRESH_STEPS`` steps.
    """
    model.train()
    start = time.perf_counter()
    steps = len(loader) if not cfg.max_steps_per_epoch else min(len(loader), cfg.max_steps_per_epoch)
    if cfg.compile:                       # whole batches only: a partial last one would compile the model again
        steps = min(steps, max(1, len(loader.labels) // loader.batch_size))
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    bar = tqdm(total=steps, desc=desc, leave=False, mininterval=1.0)
    for step, (frames, labels) in enumerate(loader):
        if step == steps:
            break
        frames, labels = frames.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        loss, spk = train_step(model, frames, labels, optimizer, loss_fn, cfg.amp, scaler)
        total_loss += loss.double() * len(labels)
        correct += (predict(spk) == labels).sum()
        seen += len(labels)
        bar.update()
        if (step + 1) % REFRESH_STEPS == 0:
            bar.set_postfix(loss=f"{total_loss.item() / seen:.3f}", acc=f"{100 * correct.item() / seen:.1f}%",
                            refresh=False)
    bar.close()
    total = total_loss.item()                                        # waits for the device
    return {"loss": total / max(seen, 1), "acc": correct.item() / max(seen, 1), "samples": seen,
            "seconds": time.perf_counter() - start}


REFRESH_STEPS = 50
"""Steps between two readings of the running loss and accuracy for the progress bar (each reading
waits for the GPU)."""


# ---- the run folder ----------------------------------------------------------------------------

def write_metrics_csv(path: Path, history: list[dict]) -> None:
    """``metrics.csv`` of a run, written atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRICS)
        writer.writeheader()
        for row in history:
            writer.writerow({k: row[k] for k in METRICS})
    tmp.replace(path)


def read_metrics_csv(path: str | Path) -> list[dict]:
    """The rows of a run's ``metrics.csv`` (epoch as int, the rest as float)."""
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]


@contextlib.contextmanager
def _log_to(path: Path):
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    previous_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(previous_level)
        handler.close()


def save_spike_animations(model: torch.nn.Module, loader: FrameLoader, run_dir: Path, count: int,
                          device: torch.device) -> list[Path]:
    """``spike_bar_{i}_target{t}.gif`` for the first ``count`` test digits of distinct classes where possible."""
    labels = loader.labels.cpu()
    first_of_class = {}                                           # one digit per class first
    for i, label in enumerate(labels.tolist()):
        first_of_class.setdefault(label, i)
    chosen = sorted(first_of_class.values())[:count]
    chosen += [i for i in range(len(labels)) if i not in chosen][:count - len(chosen)]
    if not chosen:
        return []
    model.eval()
    index = torch.tensor(chosen, device=loader.frames.device)
    with torch.no_grad():
        spk, _ = model(loader.frames[index].float().transpose(0, 1).to(device))   # [T, n, 10]
    paths = []
    for i, sample in enumerate(chosen):
        target = int(labels[sample])
        path = run_dir / f"spike_bar_{i}_target{target}.gif"
        save_gif(animate_spike_counts(spk[:, i], target), path)
        paths.append(path)
    return paths


@dataclass
class RunResult:
    run_dir: Path
    history: list[dict] = field(default_factory=list)
    best_test_acc: float = 0.0
    model: CSNN | None = None           # with the weights of the best epoch
    loaders: Loaders | None = None      # the data the run used, still in memory


def loaders_on(loaders: Loaders, device: torch.device) -> Loaders:
    """``loaders`` with their recordings on ``device`` (copies of the loaders; the caller's stay as
    they are): batches are then cut and made float32 on the device, not copied from the CPU."""
    moved = []
    for loader in (loaders.train, loaders.test):
        loader = copy.copy(loader)
        loader.frames, loader.labels = loader.frames.to(device), loader.labels.to(device)
        moved.append(loader)
    return Loaders(train=moved[0], test=moved[1])


def _check_resumable(state: dict, cfg: Config, path: Path) -> None:
    old = config_from_dict(state["config"])
    for part in ("data", "model"):
        if config_to_dict(getattr(old, part)) != config_to_dict(getattr(cfg, part)):
            raise ConfigError(f"train.resume=true but the {part} settings differ from those in {path}; "
                              f"resume with the same {part}.* settings, or start a new exp_id.")


def run_training(cfg: Config, loaders: Loaders | None = None) -> RunResult:
    """Train ``cfg`` end to end into ``cfg.run_dir`` (see the module docstring); resumable.

    ``loaders`` may be passed to reuse data already in memory (e.g. in a notebook).
    """
    cfg.validate()
    device = resolve_device(cfg.train.device)
    check_amp(cfg.train.amp, device)
    if device.type == "cpu":
        keep_freed_cpu_memory()
    run_dir = cfg.run_dir
    last_path, best_path = run_dir / "checkpoints" / "last.pt", run_dir / "checkpoints" / "best.pt"
    if last_path.exists() and not cfg.train.resume:
        raise ConfigError(f"{run_dir} already holds a run ({last_path}); set train.resume=true to continue it, "
                          "or choose another exp_id.")
    resume_state = load_checkpoint(last_path) if cfg.train.resume and last_path.exists() else None
    if resume_state is not None:
        _check_resumable(resume_state, cfg, last_path)

    set_seed(cfg.seed)
    if loaders is None:
        loaders = make_loaders(cfg.data, cfg.train.batch_size, cfg.train.eval_batch_size, cfg.seed, device)
    else:
        loaders = loaders_on(loaders, device)
    model = build_model(cfg.model, loaders.frame_shape)
    history: list[dict] = []
    start_epoch = 1
    if resume_state is not None:
        model.load_state_dict(model_weights(resume_state))
        history = list(resume_state["history"])
        start_epoch = resume_state["epoch"] + 1
    net = prepare_model(model, cfg.train, device)       # on the device before the optimizer exists:
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)   # its state follows the parameters
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
    loss_fn = make_loss(cfg.train.loss)
    scaler = grad_scaler(cfg.train.amp, device)

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config_to_yaml(cfg))
    with _log_to(run_dir / "train.log"):
        if resume_state is not None:
            log.info("resuming %s from epoch %d (%s)", cfg.exp_id, start_epoch - 1, last_path)
        else:
            log.info("run %s: %d train / %d test recordings, frames %s, device %s, model %s, %d parameters",
                     cfg.exp_id, len(loaders.train.labels), len(loaders.test.labels), loaders.frame_shape,
                     device, cfg.model.impl, sum(p.numel() for p in model.parameters()))
        best = max((row["test_acc"] for row in history), default=-1.0)
        for epoch in range(start_epoch, cfg.train.num_epochs + 1):
            loaders.train.set_epoch(epoch)
            stats = train_epoch(net, loaders.train, optimizer, loss_fn, cfg.train, device,
                                desc=f"epoch {epoch}/{cfg.train.num_epochs}", scaler=scaler)
            test = evaluate(model, loaders.test, loss_fn, device, amp=cfg.train.amp)   # uncompiled: no more compiles
            row = {"epoch": epoch, "train_loss": stats["loss"], "train_acc": stats["acc"],
                   "test_loss": test["loss"], "test_acc": test["accuracy"],
                   "epoch_seconds": stats["seconds"], "samples_per_second": stats["samples"] / stats["seconds"]}
            history.append(row)
            log.info("epoch %d/%d | train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | %.1f s, %.0f samples/s",
                     epoch, cfg.train.num_epochs, row["train_loss"], 100 * row["train_acc"], row["test_loss"],
                     100 * row["test_acc"], row["epoch_seconds"], row["samples_per_second"])
            save_checkpoint(last_path, model, optimizer, cfg, epoch, history, loaders.frame_shape)
            if row["test_acc"] > best:
                best = row["test_acc"]
                save_checkpoint(best_path, model, optimizer, cfg, epoch, history, loaders.frame_shape)
            write_metrics_csv(run_dir / "metrics.csv", history)
            for name, plot in (("train_loss.png", plot_train_loss), ("test_acc.png", plot_test_acc)):
                plot(history).savefig(run_dir / name, dpi=120)
        if best_path.exists():
            model.load_state_dict(model_weights(load_checkpoint(best_path)))
        gifs = save_spike_animations(model, loaders.test, run_dir, cfg.train.num_animations, device)
        log.info("best test accuracy %.2f%%; %d spike animations; run folder %s", 100 * best, len(gifs), run_dir)
    return RunResult(run_dir=run_dir, history=history, best_test_acc=best, model=model, loaders=loaders)


__all__ = ["METRICS", "REFRESH_STEPS", "RunResult", "forward_backward", "loaders_on", "prepare_model", "read_metrics_csv",
           "run_training", "save_spike_animations", "set_seed", "train_epoch", "train_step", "write_metrics_csv"]
