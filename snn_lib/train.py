"""Training and evaluation of the CSNN, checkpoints, and the run folder.

``run_training(cfg)`` is everything ``snn-train`` does, as a plain function a notebook can call::

    result = run_training(Config(exp_id="demo", data=DataConfig(name="nmnist_sim")))

It leaves in ``exp/{exp_id}/``::

    config.yaml        the full configuration of the run
    train.log          a readable log, one line per epoch
    metrics.csv        epoch, train_loss, train_acc, test_loss, test_acc, epoch_seconds, samples_per_second
    checkpoints/       last.pt (every epoch) and best.pt (best test accuracy), self-describing
    train_loss.png     test_acc.png
    spike_bar_{i}_target{t}.gif    output spike counters of a few test digits

The loss is computed on the output spike counts ``spk.sum(0)`` ([B, 10]): cross-entropy
(``ce_count``) or snnTorch's ``mse_count_loss`` (the snnTorch tutorial's choice: the target class
should fire on 80 % of the steps, the others on 20 %). The prediction is the class with most spikes.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import logging
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from snntorch import functional as SF
from tqdm.auto import tqdm

from .config import Config, TrainConfig, config_from_dict, config_to_dict
from .data import FrameLoader, Loaders, make_loaders
from .errors import ConfigError, SnnError
from .model import CSNN, build_model, predict
from .plotting import animate_spike_counts, plot_test_acc, plot_train_loss, save_gif

log = logging.getLogger("snn_lib")

METRICS = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "epoch_seconds", "samples_per_second"]


def keep_freed_cpu_memory(limit_bytes: int = 1 << 30) -> bool:
    """Let glibc keep freed blocks of up to ``limit_bytes`` for reuse instead of handing them back.

    By default glibc serves large blocks (over 32 MB, and smaller ones as it adapts) with a fresh
    ``mmap`` and unmaps them when they are freed, so the next training step faults in and zero-fills
    every page again. The fast path's time-folded tensors are that large (``[T * B, ...]``: 69 MB
    for a layer's membrane at T=50, batch 128), and on the 2-core machine of
    ``benchmarks/README.md`` the page faults took about a quarter of such a step. With this setting
    the process keeps the memory of its largest step, as PyTorch's CUDA caching allocator does on a
    GPU. The math is unchanged. Process-wide; :func:`run_training` calls it for CPU runs. Returns
    False where it cannot be set (not Linux with glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3                      # mallopt parameters (malloc.h)
    return bool(libc.mallopt(m_mmap_threshold, limit_bytes)) and bool(libc.mallopt(m_trim_threshold, 2 * limit_bytes))


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present (honouring CUDA_VISIBLE_DEVICES), else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device={name} but PyTorch sees no CUDA GPU "
                              f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
                              "use train.device=cpu or auto.")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"train.device={name} but only {torch.cuda.device_count()} GPU(s) are visible; "
                              "use cuda:0 and pick the GPU with CUDA_VISIBLE_DEVICES.")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("train.device=mps but MPS is not available; use train.device=cpu or auto.")
    return torch.device(name)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_loss(name: str):
    """``loss(spk [T, B, C], labels [B]) -> scalar``."""
    if name == "ce_count":
        return lambda spk, labels: F.cross_entropy(spk.sum(0), labels)
    if name == "mse_count":
        return SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)
    raise ConfigError(f"train.loss={name!r} is not valid: expected ce_count or mse_count.")


def _autocast(amp: str, device: torch.device):
    """bf16 autocast of the forward pass when ``amp == "bf16"`` (``train.amp``), else nothing."""
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: CSNN, cfg: TrainConfig, device: torch.device) -> torch.nn.Module:
    """The model on ``device`` with the GPU options of ``cfg`` applied (the returned module may be compiled)."""
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    return torch.compile(model) if cfg.compile else model


def train_epoch(model: torch.nn.Module, loader: FrameLoader, optimizer: torch.optim.Optimizer, loss_fn,
                cfg: TrainConfig, device: torch.device, desc: str = "train") -> dict:
    """One pass over ``loader``; returns ``{"loss", "acc", "samples", "seconds"}``."""
    model.train()
    total_loss = correct = seen = 0
    start = time.perf_counter()
    steps = len(loader) if not cfg.max_steps_per_epoch else min(len(loader), cfg.max_steps_per_epoch)
    bar = tqdm(total=steps, desc=desc, leave=False)
    for step, (frames, labels) in enumerate(loader):
        if step == steps:
            break
        frames, labels = frames.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with _autocast(cfg.amp, device):
            spk, _ = model(frames)                                   # [T, B, 10]
        loss = loss_fn(spk.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = len(labels)
        total_loss += loss.item() * n
        correct += (predict(spk) == labels).sum().item()
        seen += n
        bar.update()
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{100 * correct / seen:.1f}%")
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {"loss": total_loss / max(seen, 1), "acc": correct / max(seen, 1), "samples": seen,
            "seconds": time.perf_counter() - start}


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: FrameLoader, loss_fn=None, device: torch.device | str = "cpu",
             num_classes: int = 10, amp: str = "off") -> dict:
    """Accuracy, mean loss, per-class accuracy and confusion matrix ``[true, predicted]`` on ``loader``."""
    device = torch.device(device)
    model.eval()
    loss_fn = loss_fn or make_loss("ce_count")
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    total_loss = 0.0
    for frames, labels in loader:
        frames, labels = frames.to(device), labels.to(device)
        with _autocast(amp, device):
            spk, _ = model(frames)
        total_loss += loss_fn(spk.float(), labels).item() * len(labels)
        pairs = labels.cpu() * num_classes + predict(spk).cpu()
        confusion += torch.bincount(pairs, minlength=num_classes ** 2).view(num_classes, num_classes)
    n = int(confusion.sum())
    per_class = confusion.diag() / confusion.sum(1).clamp(min=1)
    return {"accuracy": confusion.diag().sum().item() / max(n, 1), "loss": total_loss / max(n, 1),
            "per_class_accuracy": per_class.tolist(), "confusion_matrix": confusion.tolist(), "samples": n}


# ---- checkpoints -------------------------------------------------------------------------------

def save_checkpoint(path: str | Path, model: CSNN, optimizer: torch.optim.Optimizer | None, cfg: Config,
                    epoch: int, history: list[dict], frame_shape: tuple[int, ...]) -> Path:
    """Write a self-describing checkpoint atomically (a killed run never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None,
             "config": config_to_dict(cfg), "epoch": epoch, "history": history,
             "metrics": history[-1] if history else {}, "frame_shape": list(frame_shape),
             "snn_lib_format": 1}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict:
    """A checkpoint's dict; a DataError-like SnnError names a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise SnnError(f"checkpoint '{path}' does not exist; give the path of a .pt file written by snn-train "
                       "(exp/<exp_id>/checkpoints/best.pt).")
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception as err:  # noqa: BLE001
        raise SnnError(f"checkpoint '{path}' cannot be read ({type(err).__name__}); it is damaged or not "
                       "written by snn-train.") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise SnnError(f"checkpoint '{path}' is not an snn_lib checkpoint (no model/config inside).")
    return state


def model_from_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                          impl: str | None = None) -> tuple[CSNN, Config]:
    """The trained model (in eval mode on ``device``) and the configuration it was trained with."""
    state = load_checkpoint(path, device)
    cfg = config_from_dict(state["config"])
    if impl:
        cfg.model.impl = impl
    model = build_model(cfg.model, tuple(state["frame_shape"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg


# ---- the run folder ----------------------------------------------------------------------------

def write_metrics_csv(path: Path, history: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRICS)
        writer.writeheader()
        for row in history:
            writer.writerow({k: row[k] for k in METRICS})
    tmp.replace(path)


def read_metrics_csv(path: str | Path) -> list[dict]:
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
    if device.type == "cpu":
        keep_freed_cpu_memory()
    run_dir = cfg.run_dir
    last_path, best_path = run_dir / "checkpoints" / "last.pt", run_dir / "checkpoints" / "best.pt"
    if last_path.exists() and not cfg.train.resume:
        raise ConfigError(f"{run_dir} already holds a run ({last_path}); set train.resume=true to continue it, "
                          "or choose another exp_id.")
    resume_state = load_checkpoint(last_path, device) if cfg.train.resume and last_path.exists() else None
    if resume_state is not None:
        _check_resumable(resume_state, cfg, last_path)

    set_seed(cfg.seed)
    if loaders is None:
        loaders = make_loaders(cfg.data, cfg.train.batch_size, cfg.train.eval_batch_size, cfg.seed, device)
    model = build_model(cfg.model, loaders.frame_shape)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    history: list[dict] = []
    start_epoch = 1
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        history = list(resume_state["history"])
        start_epoch = resume_state["epoch"] + 1
    net = prepare_model(model, cfg.train, device)
    loss_fn = make_loss(cfg.train.loss)

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(config_to_dict(cfg)))
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
                                desc=f"epoch {epoch}/{cfg.train.num_epochs}")
            test = evaluate(net, loaders.test, loss_fn, device, amp=cfg.train.amp)
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
            model.load_state_dict(load_checkpoint(best_path, device)["model"])
        gifs = save_spike_animations(model, loaders.test, run_dir, cfg.train.num_animations, device)
        log.info("best test accuracy %.2f%%; %d spike animations; run folder %s", 100 * best, len(gifs), run_dir)
    return RunResult(run_dir=run_dir, history=history, best_test_acc=best, model=model, loaders=loaders)


if __name__ == "__main__":
    from .cli import train_main

    train_main()
