"""Training of the CSNN and the run folder.

``run_training(cfg)`` is everything ``snn-train`` does, as a plain function a notebook can call::

    result = run_training(Config(exp_id="demo",
                                 data=DataConfig(name="nmnist_sim")))

It leaves in ``exp/{exp_id}/``::

    config.yaml        the full configuration of the run
    train.log          a readable log, one line per epoch
    metrics.csv        epoch, train_loss, train_acc, val_loss, val_acc,
                       test_loss, test_acc, lr, epoch_seconds,
                       samples_per_second
    checkpoints/       last.pt (every epoch) and best.pt (best validation
                       accuracy), self-describing
    train_loss.png     test_acc.png
    spike_bar_{i}_target{t}.gif    output spike counters of a few test digits

Choices are made on the validation split (``data.val_from_train``): ``best.pt`` is the epoch of
the best validation accuracy (the first, on a tie), and ``train.early_stop`` counts the epochs
since it. The test set is evaluated every epoch for the record only. ``train.select_on=test``
chooses on the test set instead (logged as such); so does a run without a validation split.

One step of training, :func:`train_step`, is used everywhere: by :func:`train_epoch` (and so by
``snn-train``), by the speed benchmarks and by the book.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint, model_weights, repair_best, save_checkpoint, upgrade_config
from .config import Config, TrainConfig, config_from_dict, config_to_dict, config_to_yaml
from .data import FrameLoader, Loaders, make_loaders
from .device import autocast, check_amp, configure_backends, grad_scaler, keep_freed_cpu_memory, resolve_device
from .distributed import (World, all_reduce_sum, barrier, device_of, from_main, launch_processes, process_group,
                          world_from_env, wrap)
from .errors import ConfigError, SnnError, file_error
from .evaluate import evaluate, training_alarm
from .model import CSNN, build_model, check_input_size, make_loss, predict
from .progress import progress
from .plotting import animate_spike_counts, plot_test_acc, plot_train_loss, save_gif
from .rundir import LOCK_NAME, RunLock, atomic_write, log_to, run_artefacts, write_metrics_csv

log = logging.getLogger("snn_lib")


class NonFiniteLoss(SnnError):
    """The training loss became NaN or infinite (a learning rate too large, or bad data)."""


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or a termination signal; the message says how to resume it.

    A :class:`KeyboardInterrupt`, so code that stops on Ctrl-C still does."""


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (weights, batch order)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_model(model: CSNN, cfg: TrainConfig, device: torch.device, world: World = World()) -> torch.nn.Module:
    """The model on ``device`` with the GPU options of ``cfg`` applied, in DistributedDataParallel
    for a data-parallel run (the returned module may be a wrapper; ``model`` keeps the weights)."""
    configure_backends(device)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    net = wrap(model, world, device)
    return torch.compile(net) if cfg.compile else net


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
    A loss or a weight that becomes NaN or infinite stops the epoch (at the next reading) with
    :class:`NonFiniteLoss`, naming the step.
    """
    model.train()
    start = time.perf_counter()
    steps = len(loader) if not cfg.max_steps_per_epoch else min(len(loader), cfg.max_steps_per_epoch)
    if cfg.compile:                       # whole batches only: a partial last one would compile the model again
        steps = min(steps, max(1, len(loader.labels) // loader.batch_size))
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    first_bad = torch.full((), steps, dtype=torch.int64, device=device)     # steps: none yet
    seen = 0
    # `with`: a stop mid-epoch (Ctrl-C, a non-finite loss) clears the bar before its one-line message
    with progress(total=steps, desc=desc, leave=False, mininterval=1.0) as bar:
        for step, (frames, labels) in enumerate(loader):
            if step == steps:
                break
            frames, labels = frames.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            loss, spk = train_step(model, frames, labels, optimizer, loss_fn, cfg.amp, scaler)
            total_loss += loss.double() * len(labels)
            correct += (predict(spk) == labels).sum()
            first_bad = torch.where(torch.isfinite(loss), first_bad, torch.clamp(first_bad, max=step))
            seen += len(labels)
            bar.update()
            if (step + 1) % REFRESH_STEPS == 0:                              # one read of the device
                loss_sum, right, bad, weights_bad = _readings(model, total_loss, correct, first_bad)
                _stop_if_non_finite(int(bad), bool(weights_bad), steps, step)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * right / seen:.1f}%", refresh=False)
        _, _, bad, weights_bad = _readings(model, total_loss, correct, first_bad)   # waits for the device
        _stop_if_non_finite(int(bad), bool(weights_bad), steps, steps - 1)
    sums = all_reduce_sum(torch.stack([total_loss, correct.double(), torch.tensor(float(seen), device=device,
                                                                                  dtype=torch.float64)]))
    total, right, seen = sums.tolist()                                  # over every process of a parallel run
    return {"loss": total / max(seen, 1), "acc": right / max(seen, 1), "samples": int(seen),
            "seconds": time.perf_counter() - start}


def _readings(model: torch.nn.Module, total_loss: torch.Tensor, correct: torch.Tensor,
              first_bad: torch.Tensor) -> list[float]:
    """``[loss sum, correct, first non-finite step, 1 if a weight is non-finite]``, in one read."""
    weights_bad = ~torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all()
    return torch.stack([total_loss, correct.double(), first_bad.double(), weights_bad.double()]).tolist()


def _stop_if_non_finite(first_bad: int, weights_bad: bool, steps: int, step: int) -> None:
    """Raise NonFiniteLoss if a loss so far, or a parameter now, is NaN or infinite."""
    if first_bad < steps:
        raise NonFiniteLoss(f"the training loss became non-finite at step {first_bad + 1}")
    if weights_bad:
        raise NonFiniteLoss(f"the weights became non-finite by step {step + 1}")


REFRESH_STEPS = 50
"""Steps between two readings of the running loss and accuracy for the progress bar (each reading
waits for the GPU)."""


# ---- the run ----------------------------------------------------------------------------------

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
    best_test_acc: float = 0.0          # the test accuracy of best.pt's epoch (chosen on select_on)
    model: CSNN | None = None           # with the weights of the best epoch
    loaders: Loaders | None = None      # the data the run used, still in memory
    best_epoch: int = 0                 # the epoch best.pt holds
    selected_on: str = "val"            # the split that chose it: "val" or "test"


def selected_on(cfg: Config) -> str:
    """The split that chooses ``best.pt`` and early stopping: ``train.select_on``, or ``test``
    when the run has no validation split."""
    return cfg.train.select_on if cfg.data.val_from_train > 0 else "test"


def stops_early(history: list[dict], best_epoch: int | None, patience: int) -> bool:
    """``train.early_stop``: True when ``patience`` epochs (> 0) have passed since ``best_epoch``."""
    return bool(patience and history and best_epoch is not None and history[-1]["epoch"] - best_epoch >= patience)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam at ``train.lr``; AdamW (decoupled weight decay) when ``train.weight_decay`` > 0."""
    if cfg.weight_decay:
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    """The ``train.lr_schedule`` of ``optimizer``, stepped once per epoch; None for ``none``."""
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.num_epochs)
    if cfg.lr_schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.num_epochs + 1)
    return None


def init_weights(model: CSNN, path: str, cfg: Config, frame_shape: tuple[int, ...]) -> None:
    """``train.init_from``: load the weights of the checkpoint ``path`` into ``model``; the
    architecture (model settings that shape the weights, and the frame shape) must be the same,
    else a one-line ConfigError."""
    state = load_checkpoint(path)
    old = config_from_dict(upgrade_config(state["config"]))
    shaping = ("channels", "kernel_size", "learn_beta", "learn_threshold")
    differ = [f"model.{k} {getattr(old.model, k)} -> {getattr(cfg.model, k)}" for k in shaping
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


def loaders_on(loaders: Loaders, device: torch.device) -> Loaders:
    """``loaders`` with their recordings on ``device`` (copies of the loaders; the caller's stay as
    they are): batches are then cut and made float32 on the device, not copied from the CPU."""
    moved = []
    for loader in (loaders.train, loaders.test, loaders.val):
        if loader is not None:
            loader = copy.copy(loader)
            loader.frames, loader.labels = loader.frames.to(device), loader.labels.to(device)
        moved.append(loader)
    return Loaders(train=moved[0], test=moved[1], val=moved[2])


def _resume_state(cfg: Config, run_dir: Path) -> dict | None:
    """What the run folder holds for ``cfg``: None to start afresh, or the last checkpoint to
    continue from. Refuses (one-line ConfigError) to overwrite a run, and (``train.resume=true``)
    to resume nothing; ``train.resume=auto`` continues a run where there is one."""
    artefacts = run_artefacts(run_dir)
    last_path = run_dir / "checkpoints" / "last.pt"
    if cfg.train.resume is False or (cfg.train.resume == "auto" and not artefacts):
        if artefacts:
            raise ConfigError(f"{run_dir} already holds a run ({', '.join(artefacts)}); set train.resume=true to "
                              "continue it, or choose another exp_id.")
        return None
    if not artefacts:
        others = sorted(p.name for p in run_dir.parent.iterdir() if p.is_dir() and run_artefacts(p))
        known = f" (runs in {run_dir.parent}: {', '.join(others[:8])}{', ...' if len(others) > 8 else ''})" \
            if others else ""
        raise ConfigError(f"train.resume=true but {run_dir} holds no run to resume: check exp_id{known}, or leave "
                          "train.resume out to start a new run.")
    if not last_path.is_file():                      # stopped before its first epoch ended
        if (run_dir / "config.yaml").is_file():
            import yaml
            old = config_from_dict(upgrade_config(yaml.safe_load((run_dir / "config.yaml").read_text()) or {}))
            _check_same_run(old, cfg, run_dir / "config.yaml")
        return None
    state = load_checkpoint(last_path)
    _check_same_run(config_from_dict(state["config"]), cfg, last_path)
    return state


def _check_same_run(old: Config, cfg: Config, path: Path) -> None:
    """Resuming continues the same run: the data, model and seed must be those of ``path``."""
    for part in ("data", "model"):
        before, after = config_to_dict(getattr(old, part)), config_to_dict(getattr(cfg, part))
        if before != after:
            differ = ", ".join(f"{part}.{k} {before.get(k)} -> {after[k]}" for k in after if before.get(k) != after[k])
            hint = (" (the run was made before the validation split: resume it with data.val_from_train=0)"
                    if part == "data" and "val_from_train" in differ and before.get("val_from_train") == 0 else "")
            raise ConfigError(f"train.resume=true but the {part} settings differ from those in {path} ({differ})"
                              f"{hint}; resume with the same {part}.* settings, or start a new exp_id.")
    if old.seed != cfg.seed:
        raise ConfigError(f"train.resume=true but seed={cfg.seed} differs from the run's seed={old.seed} ({path}); "
                          f"resume with seed={old.seed}, or start a new exp_id.")


def _train_changes(old: Config, cfg: Config) -> list[str]:
    """The train.* settings that differ on resume, as 'train.lr 0.002 -> 0.001'."""
    before, after = config_to_dict(old.train), config_to_dict(cfg.train)
    return [f"train.{k} {before[k]} -> {after[k]}" for k in after if k != "resume" and before.get(k) != after[k]]


_REFUSED_ON_RESUME = ("lr_schedule", "init_from")
"""train.* settings a resumed run cannot change: the schedule's state and the starting weights
belong to the run (and so does the split that chooses best.pt, :func:`selected_on`)."""


def run_training(cfg: Config, loaders: Loaders | None = None) -> RunResult:
    """Train ``cfg`` end to end into ``cfg.run_dir`` (see the module docstring); resumable.

    ``loaders`` may be passed to reuse data already in memory (e.g. in a notebook). What a run
    promises (README, "What a run promises"): one run per folder, held by an operating-system
    lock for the whole run; a folder that holds a run is never overwritten; checkpoints written
    atomically and durably, verified when loaded; ``train.resume=true`` continues exactly where
    the last finished epoch left off. Settings and folders are checked before any data is loaded;
    a loss that becomes non-finite stops the run with the last good checkpoint kept; Ctrl-C or
    SIGTERM stop it with :class:`RunInterrupted`, resumable.
    """
    cfg.validate()
    check_input_size(cfg.model, cfg.data.crop or 34)
    world = world_from_env()
    if cfg.train.distributed and not world.parallel:
        return spawn_training(cfg)
    device = device_of(world, resolve_device(cfg.train.device))
    check_amp(cfg.train.amp, device)
    if device.type == "cpu":
        keep_freed_cpu_memory()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    run_dir = cfg.run_dir
    created = next((p for p in reversed([run_dir, *run_dir.parents]) if not p.exists()), None)
    try:
        with process_group(world, device, cfg.train.rendezvous_timeout_s), \
                (RunLock(run_dir) if world.main else contextlib.nullcontext()), _logging_on(world.main):
            resume_state = from_main(world, lambda: _resume_state(cfg, run_dir))
            return _run(cfg, run_dir, device, resume_state, loaders, world)
    finally:
        if world.main and created is not None and not run_artefacts(run_dir):   # nothing written:
            with contextlib.suppress(OSError):                    # leave no empty folders behind
                (run_dir / LOCK_NAME).unlink()
                for folder in [run_dir, *run_dir.parents]:
                    folder.rmdir()
                    if folder == created:
                        break


def _run(cfg: Config, run_dir: Path, device: torch.device, resume_state: dict | None,
         loaders: Loaders | None, world: World = World()) -> RunResult:
    last_path, best_path = run_dir / "checkpoints" / "last.pt", run_dir / "checkpoints" / "best.pt"
    if resume_state is not None:
        old = config_from_dict(resume_state["config"])
        for key in _REFUSED_ON_RESUME:
            if getattr(old.train, key) != getattr(cfg.train, key):
                raise ConfigError(f"train.resume=true but train.{key}={getattr(cfg.train, key)!r} differs from the "
                                  f"run's {getattr(old.train, key)!r} ({last_path}); resume with the run's value, or "
                                  "start a new exp_id.")
        if selected_on(old) != selected_on(cfg):
            raise ConfigError(f"train.resume=true but best.pt would be chosen on the {selected_on(cfg)} split, and the "
                              f"run chose it on the {selected_on(old)} split ({last_path}); resume with "
                              f"train.select_on={selected_on(old)}, or start a new exp_id.")
        if cfg.train.lr_schedule != "none" and old.train.num_epochs != cfg.train.num_epochs:
            raise ConfigError(f"train.resume=true but train.num_epochs={cfg.train.num_epochs} differs from the run's "
                              f"{old.train.num_epochs}, over which its train.lr_schedule={cfg.train.lr_schedule} was "
                              "planned; resume with the run's num_epochs, or start a new exp_id with init_from.")
        done = resume_state["epoch"] >= cfg.train.num_epochs or stops_early(
            resume_state["history"], resume_state.get("best_epoch"), cfg.train.early_stop)
        if done and best_path.is_file():
            return _finished(cfg, run_dir, resume_state, best_path)
    epoch, last_epoch = 0, resume_state["epoch"] if resume_state else 0
    try:
        set_seed(cfg.seed)
        if loaders is None:              # process 0 first: it fills the caches that the others read
            made = from_main(world, lambda: make_loaders(cfg.data, cfg.train.batch_size, cfg.train.eval_batch_size,
                                                         cfg.seed, device) if not world.parallel else None)
            loaders = made or make_loaders(cfg.data, cfg.train.batch_size, cfg.train.eval_batch_size, cfg.seed, device)
        else:
            loaders = loaders_on(loaders, device)
        for loader in loaders.all():
            loader.shard(world.rank, world.world)
        model = build_model(cfg.model, loaders.frame_shape)
        history: list[dict] = []
        if resume_state is not None:
            model.load_state_dict(model_weights(resume_state))
            history = list(resume_state["history"])
        elif cfg.train.init_from:
            init_weights(model, cfg.train.init_from, cfg, loaders.frame_shape)
        net = prepare_model(model, cfg.train, device, world)   # on the device before the optimizer:
        optimizer = make_optimizer(model, cfg.train)            # its state follows the parameters
        scheduler = make_scheduler(optimizer, cfg.train)
        if resume_state is not None:
            optimizer.load_state_dict(resume_state["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(resume_state["scheduler"])
            lrs = scheduler.get_last_lr() if scheduler is not None else [cfg.train.lr] * len(optimizer.param_groups)
            for group, lr in zip(optimizer.param_groups, lrs):   # the schedule's lr, or this config's
                group["lr"] = lr
        loss_fn = make_loss(cfg.train.loss)
        scaler = grad_scaler(cfg.train.amp, device)

        select = selected_on(cfg)
        writes = world.main                              # process 0 alone writes the run folder
        if writes:
            (run_dir / "checkpoints").mkdir(exist_ok=True)
            atomic_write(run_dir / "config.yaml", config_to_yaml(cfg))
        with log_to(run_dir / "train.log") if writes else contextlib.nullcontext():
            if resume_state is not None:
                log.info("resuming %s from epoch %d (%s)", cfg.exp_id, last_epoch, last_path)
                if writes:
                    repair_best(last_path, best_path, resume_state)
                    write_metrics_csv(run_dir / "metrics.csv", history)
                for change in _train_changes(config_from_dict(resume_state["config"]), cfg):
                    log.info("setting changed on resume, used from now on: %s", change)
            else:
                log.info("run %s: %d train / %d validation / %d test recordings, frames %s, device %s%s, model %s, "
                         "%d parameters", cfg.exp_id, len(loaders.train.labels),
                         len(loaders.val.labels) if loaders.val is not None else 0, len(loaders.test.labels),
                         loaders.frame_shape, device, f" x {world.world} processes" if world.parallel else "",
                         cfg.model.impl, sum(p.numel() for p in model.parameters()))
                if select == "test":
                    log.warning("best.pt%s is chosen on the TEST accuracy (%s): the test accuracy it reports is "
                                "no longer an unbiased estimate", " and early stopping" if cfg.train.early_stop else "",
                                "train.select_on=test" if cfg.data.val_from_train else "no validation split, "
                                "data.val_from_train=0")
            best_epoch = resume_state.get("best_epoch") if resume_state else None
            best = max((row[f"{select}_acc"] for row in history), default=-1.0)
            for epoch in range(last_epoch + 1, cfg.train.num_epochs + 1):
                if stops_early(history, best_epoch, cfg.train.early_stop):
                    log.info("early stop after epoch %d: no better %s accuracy for %d epochs (train.early_stop)",
                             epoch - 1, select, cfg.train.early_stop)
                    break
                lr = optimizer.param_groups[0]["lr"]
                loaders.train.set_epoch(epoch)
                try:
                    stats = train_epoch(net, loaders.train, optimizer, loss_fn, cfg.train, device,
                                        desc=f"epoch {epoch}/{cfg.train.num_epochs}", scaler=scaler)
                except NonFiniteLoss as err:
                    kept = f"the last good checkpoint, {last_path}, holds epoch {last_epoch}" if last_epoch \
                        else "no checkpoint was written"
                    raise NonFiniteLoss(f"{err} of epoch {epoch} (train.lr={cfg.train.lr}); {kept}. Lower train.lr "
                                        "or check the data, then start a new exp_id.") from None
                if scheduler is not None:
                    scheduler.step()
                val = evaluate(model, loaders.val, loss_fn, device, amp=cfg.train.amp) if loaders.val is not None \
                    else {"loss": float("nan"), "accuracy": float("nan")}
                test = evaluate(model, loaders.test, loss_fn, device, amp=cfg.train.amp)   # uncompiled: one compile
                row = {"epoch": epoch, "train_loss": stats["loss"], "train_acc": stats["acc"],
                       "val_loss": val["loss"], "val_acc": val["accuracy"],
                       "test_loss": test["loss"], "test_acc": test["accuracy"], "lr": lr,
                       "epoch_seconds": stats["seconds"], "samples_per_second": stats["samples"] / stats["seconds"]}
                history.append(row)
                alarm = training_alarm(history, len(loaders.train.labels))
                if alarm:
                    log.warning("%s", alarm)
                log.info("epoch %d/%d | train loss %.4f acc %.2f%% | val loss %.4f acc %.2f%% | test loss %.4f acc "
                         "%.2f%% | lr %.2g | %.1f s, %.0f samples/s", epoch, cfg.train.num_epochs, row["train_loss"],
                         100 * row["train_acc"], row["val_loss"], 100 * row["val_acc"], row["test_loss"],
                         100 * row["test_acc"], lr, row["epoch_seconds"], row["samples_per_second"])
                improved = row[f"{select}_acc"] > best
                if improved:
                    best, best_epoch = row[f"{select}_acc"], epoch
                # last.pt first, naming the epoch best.pt must hold; then best.pt (see checkpoint.repair_best)
                if writes:
                    save_checkpoint(last_path, model, optimizer, cfg, epoch, history, loaders.frame_shape,
                                    best_epoch, scheduler)
                    last_epoch = epoch
                    if improved:
                        save_checkpoint(best_path, model, optimizer, cfg, epoch, history, loaders.frame_shape,
                                        best_epoch, scheduler)
                    write_metrics_csv(run_dir / "metrics.csv", history)
                    for name, plot in (("train_loss.png", plot_train_loss), ("test_acc.png", plot_test_acc)):
                        _save_figure(plot(history), run_dir / name)
                last_epoch = epoch
            barrier()                                    # best.pt is whole before anyone reads it
            if best_path.exists():
                model.load_state_dict(model_weights(load_checkpoint(best_path)))
            gifs = save_spike_animations(model, loaders.test, run_dir, cfg.train.num_animations if writes else 0,
                                         device)
            chosen = next((r for r in history if r["epoch"] == best_epoch), None) if best_epoch else None
            if chosen is not None:
                log.info("best.pt: epoch %d, chosen on the %s accuracy (%.2f%%); its test accuracy %.2f%% (%d test "
                         "recordings); %d spike animations; run folder %s", best_epoch, select,
                         100 * chosen[f"{select}_acc"], 100 * chosen["test_acc"], len(loaders.test.labels), len(gifs),
                         run_dir)
    except KeyboardInterrupt as err:
        where = (f"after epoch {epoch}" if epoch and epoch == last_epoch      # in its plots or the GIFs
                 else f"during epoch {epoch}" if epoch else "before the first epoch")
        kept = f"the last checkpoint holds epoch {last_epoch}" if last_epoch else "no epoch was finished"
        raise RunInterrupted(f"stopped {where} of {run_dir} ({kept}); continue with train.resume=true and the "
                             "same exp_id.") from err
    except OSError as err:
        raise file_error("access", err.filename or run_dir, err) from None
    return RunResult(run_dir=run_dir, history=history, best_test_acc=chosen["test_acc"] if chosen else 0.0,
                     model=model, loaders=loaders, best_epoch=best_epoch or 0, selected_on=select)


def _finished(cfg: Config, run_dir: Path, last: dict, best_path: Path) -> RunResult:
    """A run that already trained ``train.num_epochs``: nothing to do (no data is loaded, no file
    changes but the log), so that a sweep re-run with ``train.resume=auto`` skips it."""
    with log_to(run_dir / "train.log"):
        repair_best(run_dir / "checkpoints" / "last.pt", best_path, last)
        log.info("%s already trained %d of %d epochs: nothing to do", cfg.exp_id, last["epoch"], cfg.train.num_epochs)
    best = load_checkpoint(best_path)
    model = build_model(cfg.model, tuple(best["frame_shape"]))
    model.load_state_dict(model_weights(best))
    history = list(last["history"])
    chosen = next(r for r in history if r["epoch"] == best["epoch"])
    return RunResult(run_dir=run_dir, history=history, best_test_acc=chosen["test_acc"], model=model.eval(),
                     loaders=None, best_epoch=best["epoch"], selected_on=selected_on(cfg))


def spawn_training(cfg: Config) -> RunResult:
    """``train.distributed=true`` (one process per visible GPU) or ``=N`` without torchrun: start
    the processes with torch's elastic launcher (the engine of torchrun) on this machine, each
    running :func:`run_training`; returns process 0's result."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    nproc = torch.cuda.device_count() if cfg.train.distributed is True else int(cfg.train.distributed)
    if nproc < 2:
        raise ConfigError(f"train.distributed=true needs two GPUs or more, but {torch.cuda.device_count()} are visible; "
                          "use train.distributed=N for N processes (on CPUs: gloo), or torchrun.")
    launch = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"snn_lib_{os.getpid()}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, start_method="spawn",
                          rdzv_configs={"join_timeout": cfg.train.rendezvous_timeout_s})
    returned = launch_processes(launch, _training_process, config_to_dict(cfg), cfg.run_dir)
    run_dir, history, best, best_epoch = returned[0]
    best_path = Path(run_dir) / "checkpoints" / "best.pt"
    model = build_model(cfg.model, tuple(load_checkpoint(best_path)["frame_shape"]))
    model.load_state_dict(model_weights(load_checkpoint(best_path)))
    return RunResult(run_dir=Path(run_dir), history=history, best_test_acc=best, model=model.eval(),
                     best_epoch=best_epoch, selected_on=selected_on(cfg))


def _training_process(cfg: dict):
    """One process of :func:`spawn_training` (module level, so that it can be started by spawn):
    its result, or the SnnError that stopped it, returned for the starting process to raise
    (:func:`snn_lib.distributed.launch_processes`)."""
    try:
        result = run_training(config_from_dict(cfg))
    except SnnError as err:
        return err
    return str(result.run_dir), result.history, result.best_test_acc, result.best_epoch


@contextlib.contextmanager
def _logging_on(main: bool):
    """Only process 0 of a data-parallel run logs; the others say only what goes wrong."""
    if main:
        yield
        return
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


def _save_figure(fig, path: Path) -> None:
    """A figure as PNG, atomically (rendered in memory, then written)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    atomic_write(path, buffer.getvalue())


__all__ = ["NonFiniteLoss", "REFRESH_STEPS", "RunInterrupted", "RunResult", "forward_backward",
           "init_weights", "loaders_on", "make_optimizer", "make_scheduler", "prepare_model", "run_training",
           "save_spike_animations", "selected_on", "set_seed", "spawn_training", "stops_early", "train_epoch",
           "train_step"]
