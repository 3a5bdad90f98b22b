"""Training: one step, one epoch, the loop over epochs (:func:`fit`) and a whole run.

:func:`fit` is the loop, for any network that takes time-first frames and returns ``(out, mem)``
(the CSNN, its ANN twin): it trains, evaluates after each epoch, and hands each epoch's metrics
to ``on_epoch``; it knows nothing of files. Chapters, scripts and :func:`run_training` all call it::

    model = build_model(cfg.model, loaders.frame_shape)
    result = fit(model, loaders, cfg.train, on_epoch=folder.record)

``run_training(cfg)`` is everything ``snn-train`` does, as a plain function a notebook can call:
the lock, resume, data, model and :func:`fit`, recorded by a :class:`~snn_lib.rundir.RunFolder`::

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
:func:`fit` and ``snn-train``), by the speed benchmarks and by the book.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checkpoint import init_weights, load_checkpoint, model_from_checkpoint, model_weights, repair_best
from .config import Config, TrainConfig, config_from_dict, config_to_dict
from .data import FrameLoader, Loaders, make_loaders
from .device import autocast, check_amp, configure_backends, grad_scaler, keep_freed_cpu_memory, resolve_device
from .distributed import (World, all_reduce_sum, barrier, device_of, from_main, launch_processes, process_group,
                          world_from_env, wrap)
from .errors import ConfigError, SnnError, file_error
from .evaluate import evaluate, training_alarm
from .model import build_model, check_input_size, make_loss, predict
from .progress import progress
from .rundir import (LOCK_NAME, RunFolder, RunLock, chosen_epoch, log_to, resume_state, run_artefacts, selected_on,
                     train_changes, write_metrics_csv)

log = logging.getLogger("snn_lib")


class NonFiniteLoss(SnnError):
    """The training loss became NaN or infinite (a learning rate too large, or bad data);
    ``epoch``: the epoch it happened in, where known."""

    def __init__(self, message: str, epoch: int | None = None):
        super().__init__(message)
        self.epoch = epoch


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or a termination signal; the message says how to resume it.

    A :class:`KeyboardInterrupt`, so code that stops on Ctrl-C still does."""


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (weights, batch order)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_model(model: torch.nn.Module, cfg: TrainConfig, device: torch.device, world: World = World()) -> torch.nn.Module:
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


# ---- the loop over epochs ----------------------------------------------------------------------

def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam at ``train.lr``; AdamW (decoupled weight decay) when ``train.weight_decay`` > 0."""
    if cfg.weight_decay:
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The ``train.lr_schedule`` of ``optimizer``, stepped once per epoch; None for ``none``."""
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.num_epochs)
    if cfg.lr_schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.num_epochs + 1)
    return None


def stops_early(history: list[dict], best_epoch: int | None, patience: int) -> bool:
    """``train.early_stop``: True when ``patience`` epochs (> 0) have passed since ``best_epoch``."""
    return bool(patience and history and best_epoch is not None and history[-1]["epoch"] - best_epoch >= patience)


@dataclass
class FitState:
    """Where :func:`fit` starts: empty for a new run; for a resumed one, the epochs already
    trained (their metrics rows), the epoch ``best.pt`` holds, and the optimizer's and the
    learning-rate schedule's state dicts (from the last checkpoint)."""
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    optimizer: dict | None = None
    scheduler: dict | None = None


@dataclass
class EpochEnd:
    """What :func:`fit` hands ``on_epoch`` after each epoch (all a run folder records)."""
    epoch: int
    history: list[dict]                   # the metrics of every epoch so far, this one last
    best_epoch: int | None                # the epoch the selecting split chose so far
    improved: bool                        # this epoch is that best one
    model: torch.nn.Module                # the weights after this epoch (not a wrapper)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None


@dataclass
class FitResult:
    history: list[dict]                   # one metrics row per epoch (metrics.csv)
    best_epoch: int | None                # the epoch the selecting split chose
    stopped_early: bool = False           # train.early_stop ended it


def fit(model: torch.nn.Module, loaders: Loaders, cfg: TrainConfig, *, device: torch.device | str | None = None,
        select: str = "val", start: FitState | None = None, on_epoch: Callable[[EpochEnd], None] | None = None,
        world: World = World(), loss_fn=None) -> FitResult:
    """Train ``model`` on ``loaders.train`` up to epoch ``cfg.num_epochs``, evaluating it on the
    validation (if any) and test splits after each epoch, and calling ``on_epoch`` then.

    ``select`` is the split whose accuracy chooses the best epoch and early stopping
    (:func:`snn_lib.rundir.chosen_epoch`); ``start`` continues a resumed run exactly (its history,
    best epoch, optimizer and schedule). ``device``: default the model's. ``loss_fn``: default the
    loss ``cfg.loss`` names. A loss or weight that becomes non-finite raises
    :class:`NonFiniteLoss`, naming the step and the epoch."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    start = start or FitState()
    net = prepare_model(model, cfg, device, world)            # on the device before the optimizer:
    optimizer, scheduler = _optimizer_and_schedule(model, cfg, start)   # its state follows the parameters
    loss_fn = loss_fn or make_loss(cfg.loss)
    scaler = grad_scaler(cfg.amp, device)
    history, best_epoch = list(start.history), start.best_epoch
    for epoch in range(history[-1]["epoch"] + 1 if history else 1, cfg.num_epochs + 1):
        if stops_early(history, best_epoch, cfg.early_stop):
            log.info("early stop after epoch %d: no better %s accuracy for %d epochs (train.early_stop)",
                     epoch - 1, select, cfg.early_stop)
            return FitResult(history, best_epoch, stopped_early=True)
        history.append(run_epoch(net, model, loaders, optimizer, loss_fn, cfg, device, epoch, scaler))
        alarm = training_alarm(history, len(loaders.train.labels))     # at chance, or exploding
        if alarm:
            log.warning("%s", alarm)
        if scheduler is not None:
            scheduler.step()
        alarm = training_alarm(history, len(loaders.train.labels))     # at chance, or an exploding loss
        if alarm and world.main:
            log.warning("%s", alarm)
        chosen = chosen_epoch(history, select)
        improved = chosen is not None and chosen["epoch"] == epoch
        best_epoch = epoch if improved else best_epoch
        if on_epoch is not None:
            on_epoch(EpochEnd(epoch, history, best_epoch, improved, model, optimizer, scheduler))
    return FitResult(history, best_epoch)


def _optimizer_and_schedule(model: torch.nn.Module, cfg: TrainConfig, start: FitState):
    """The optimizer and schedule of ``cfg``, with ``start``'s state restored where it has one
    (the learning rate: the schedule's, or ``cfg.lr``, which a resumed run may change)."""
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    if start.optimizer is not None:
        optimizer.load_state_dict(start.optimizer)
        if scheduler is not None and start.scheduler is not None:
            scheduler.load_state_dict(start.scheduler)
        lrs = scheduler.get_last_lr() if scheduler is not None else [cfg.lr] * len(optimizer.param_groups)
        for group, lr in zip(optimizer.param_groups, lrs):
            group["lr"] = lr
    return optimizer, scheduler


def run_epoch(net: torch.nn.Module, model: torch.nn.Module, loaders: Loaders, optimizer: torch.optim.Optimizer,
              loss_fn, cfg: TrainConfig, device: torch.device, epoch: int,
              scaler: torch.amp.GradScaler | None = None) -> dict:
    """One epoch of :func:`fit`: train ``net`` (``model``, or its compiled or data-parallel
    wrapper), then evaluate ``model`` on the validation and test splits. Returns its metrics
    row (the columns of ``metrics.csv``), logged as one line."""
    lr = optimizer.param_groups[0]["lr"]
    loaders.train.set_epoch(epoch)
    try:
        stats = train_epoch(net, loaders.train, optimizer, loss_fn, cfg, device,
                            desc=f"epoch {epoch}/{cfg.num_epochs}", scaler=scaler)
    except NonFiniteLoss as err:
        raise NonFiniteLoss(f"{err} of epoch {epoch} (train.lr={cfg.lr})", epoch=epoch) from None
    none = {"loss": float("nan"), "accuracy": float("nan")}
    val = evaluate(model, loaders.val, loss_fn, device, amp=cfg.amp) if loaders.val is not None else none
    test = evaluate(model, loaders.test, loss_fn, device, amp=cfg.amp)   # uncompiled: one compile
    row = {"epoch": epoch, "train_loss": stats["loss"], "train_acc": stats["acc"], "val_loss": val["loss"],
           "val_acc": val["accuracy"], "test_loss": test["loss"], "test_acc": test["accuracy"], "lr": lr,
           "epoch_seconds": stats["seconds"], "samples_per_second": stats["samples"] / stats["seconds"]}
    log.info("epoch %d/%d | train loss %.4f acc %.2f%% | val loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | "
             "lr %.2g | %.1f s, %.0f samples/s", epoch, cfg.num_epochs, row["train_loss"], 100 * row["train_acc"],
             row["val_loss"], 100 * row["val_acc"], row["test_loss"], 100 * row["test_acc"], lr,
             row["epoch_seconds"], row["samples_per_second"])
    return row


# ---- a whole run --------------------------------------------------------------------------------

@dataclass
class RunResult:
    run_dir: Path
    history: list[dict] = field(default_factory=list)
    best_test_acc: float = 0.0          # the test accuracy of best.pt's epoch (chosen on select_on)
    model: torch.nn.Module | None = None   # with the weights of the best epoch
    loaders: Loaders | None = None      # the data the run used, still in memory
    best_epoch: int = 0                 # the epoch best.pt holds
    selected_on: str = "val"            # the split that chose it: "val" or "test"


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
            state = from_main(world, lambda: resume_state(cfg, run_dir))
            if state is not None and _done(cfg, state) and (run_dir / "checkpoints" / "best.pt").is_file():
                return _finished(cfg, run_dir, state)
            return _run(cfg, run_dir, device, state, loaders, world)
    finally:
        if world.main and created is not None and not run_artefacts(run_dir):   # nothing written:
            with contextlib.suppress(OSError):                    # leave no empty folders behind
                (run_dir / LOCK_NAME).unlink()
                for folder in [run_dir, *run_dir.parents]:
                    folder.rmdir()
                    if folder == created:
                        break


def _done(cfg: Config, state: dict) -> bool:
    """The run of ``state`` (its last checkpoint) has nothing left to train under ``cfg``."""
    return state["epoch"] >= cfg.train.num_epochs or stops_early(state["history"], state.get("best_epoch"),
                                                                  cfg.train.early_stop)


def _run(cfg: Config, run_dir: Path, device: torch.device, state: dict | None, loaders: Loaders | None,
         world: World = World()) -> RunResult:
    """The run itself (the folder locked, the resume checked): data, model, restore, :func:`fit`
    recorded by a :class:`RunFolder`, then ``best.pt``'s weights and the spike animations."""
    folder = RunFolder(run_dir, cfg, (), writes=world.main, last_epoch=state["epoch"] if state else 0)
    phase = "loading"
    try:
        set_seed(cfg.seed)
        loaders = _loaders(cfg, loaders, device, world)
        model = build_model(cfg.model, loaders.frame_shape)
        folder.frame_shape = loaders.frame_shape
        start = FitState()
        if state is not None:
            model.load_state_dict(model_weights(state))
            start = FitState(list(state["history"]), state.get("best_epoch"), state["optimizer"], state["scheduler"])
        elif cfg.train.init_from:
            init_weights(model, cfg.train.init_from, cfg, loaders.frame_shape)
        folder.start()
        with log_to(run_dir / "train.log") if folder.writes else contextlib.nullcontext():
            _log_start(cfg, state, folder, loaders, device, world, model)
            phase = "fitting"
            fitted = fit(model, loaders, cfg.train, device=device, select=selected_on(cfg), start=start,
                         on_epoch=folder.record, world=world)
            phase = "finishing"
            barrier()                                    # best.pt is whole before anyone reads it
            if folder.best_path.exists():
                model.load_state_dict(model_weights(load_checkpoint(folder.best_path)))
            gifs = folder.animate(model, loaders.test, cfg.train.num_animations, device)
            chosen = next((r for r in fitted.history if r["epoch"] == fitted.best_epoch), None)
            if chosen is not None:
                log.info("best.pt: epoch %d, chosen on the %s accuracy (%.2f%%); its test accuracy %.2f%% (%d test "
                         "recordings); %d spike animations; run folder %s", fitted.best_epoch, selected_on(cfg),
                         100 * chosen[f"{selected_on(cfg)}_acc"], 100 * chosen["test_acc"],
                         len(loaders.test.labels), len(gifs), run_dir)
    except NonFiniteLoss as err:
        kept = f"the last good checkpoint, {folder.last_path}, holds epoch {folder.last_epoch}" if folder.last_epoch \
            else "no checkpoint was written"
        raise NonFiniteLoss(f"{err}; {kept}. Lower train.lr or check the data, then start a new exp_id.") from None
    except KeyboardInterrupt as err:
        raise RunInterrupted(_stop_message(folder, phase)) from err
    except OSError as err:
        raise file_error("access", err.filename or run_dir, err) from None
    return RunResult(run_dir=run_dir, history=fitted.history, best_test_acc=chosen["test_acc"] if chosen else 0.0,
                     model=model, loaders=loaders, best_epoch=fitted.best_epoch or 0, selected_on=selected_on(cfg))


def _loaders(cfg: Config, loaders: Loaders | None, device: torch.device, world: World) -> Loaders:
    """The run's data on ``device``, each loader this process's shard: ``loaders`` moved there,
    or made (by process 0 first: it fills the caches that the others read)."""
    if loaders is None:
        make = lambda: make_loaders(cfg.data, cfg.train.batch_size, cfg.train.eval_batch_size, cfg.seed, device)  # noqa: E731
        loaders = from_main(world, lambda: make() if not world.parallel else None) or make()
    else:
        loaders = loaders_on(loaders, device)
    for loader in loaders.all():
        loader.shard(world.rank, world.world)
    return loaders


def _log_start(cfg: Config, state: dict | None, folder: RunFolder, loaders: Loaders, device: torch.device,
               world: World, model: torch.nn.Module) -> None:
    """The log's first lines: what the run trains on and with, or what it resumes (repairing
    ``best.pt`` and ``metrics.csv`` where a kill left them behind ``last.pt``)."""
    if state is not None:
        log.info("resuming %s from epoch %d (%s)", cfg.exp_id, state["epoch"], folder.last_path)
        if folder.writes:
            repair_best(folder.last_path, folder.best_path, state)
            write_metrics_csv(folder.run_dir / "metrics.csv", state["history"])
        for change in train_changes(config_from_dict(state["config"]), cfg):
            log.info("setting changed on resume, used from now on: %s", change)
        return
    log.info("run %s: %d train / %d validation / %d test recordings, frames %s, device %s%s, model %s %s, "
             "%d parameters", cfg.exp_id, len(loaders.train.labels),
             len(loaders.val.labels) if loaders.val is not None else 0, len(loaders.test.labels), loaders.frame_shape,
             device, f" x {world.world} processes" if world.parallel else "", cfg.model.name, cfg.model.impl,
             sum(p.numel() for p in model.parameters()))
    if selected_on(cfg) == "test":
        log.warning("best.pt%s is chosen on the TEST accuracy (%s): the test accuracy it reports is no longer an "
                    "unbiased estimate", " and early stopping" if cfg.train.early_stop else "",
                    "train.select_on=test" if cfg.data.val_from_train else "no validation split, data.val_from_train=0")


def _stop_message(folder: RunFolder, phase: str) -> str:
    """Where a run stopped by Ctrl-C or SIGTERM stopped, what it kept, and the command that
    really continues it: ``train.resume=true`` where the folder holds the run, the same command
    again where nothing was written."""
    last = folder.last_epoch
    where = {"loading": "before its first epoch" if not last else f"before epoch {last + 1}",
             "fitting": f"after epoch {last}" if last and folder.recording == last   # writing its files
             else f"during epoch {last + 1}",
             "finishing": f"after epoch {last}"}[phase]
    kept = f"the last checkpoint holds epoch {last}" if last else "no epoch was finished"
    if run_artefacts(folder.run_dir):
        return f"stopped {where} of {folder.run_dir} ({kept}); continue with train.resume=true and the same exp_id."
    return (f"stopped {where} of {folder.run_dir}: nothing was saved; start it again with the same command "
            "(without train.resume).")


def _finished(cfg: Config, run_dir: Path, last: dict) -> RunResult:
    """A run that already trained ``train.num_epochs``: nothing to do (no data is loaded, no file
    changes but the log), so that a sweep re-run with ``train.resume=auto`` skips it."""
    best_path = run_dir / "checkpoints" / "best.pt"
    with log_to(run_dir / "train.log"):
        repair_best(run_dir / "checkpoints" / "last.pt", best_path, last)
        log.info("%s already trained %d of %d epochs: nothing to do", cfg.exp_id, last["epoch"], cfg.train.num_epochs)
    best = load_checkpoint(best_path)
    model, _ = model_from_checkpoint(best)
    history = list(last["history"])
    chosen = next(r for r in history if r["epoch"] == best["epoch"])
    return RunResult(run_dir=run_dir, history=history, best_test_acc=chosen["test_acc"], model=model,
                     loaders=None, best_epoch=best["epoch"], selected_on=selected_on(cfg))


def spawn_training(cfg: Config) -> RunResult:
    """``train.distributed=true`` (one process per visible GPU) or ``=N`` without torchrun: start
    the processes with torch's elastic launcher (the engine of torchrun) on this machine, each
    running :func:`run_training`; returns process 0's result."""
    from torch.distributed.launcher.api import LaunchConfig

    nproc = torch.cuda.device_count() if cfg.train.distributed is True else int(cfg.train.distributed)
    if nproc < 2:
        raise ConfigError(f"train.distributed=true needs two GPUs or more, but {torch.cuda.device_count()} are visible; "
                          "use train.distributed=N for N processes (on CPUs: gloo), or torchrun.")
    launch = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"snn_lib_{os.getpid()}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, start_method="spawn",
                          rdzv_configs={"join_timeout": cfg.train.rendezvous_timeout_s})
    returned = launch_processes(launch, _training_process, config_to_dict(cfg), cfg.run_dir)
    run_dir, history, best, best_epoch = returned[0]
    model, _ = model_from_checkpoint(Path(run_dir) / "checkpoints" / "best.pt")
    return RunResult(run_dir=Path(run_dir), history=history, best_test_acc=best, model=model,
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


__all__ = ["EpochEnd", "FitResult", "FitState", "NonFiniteLoss", "REFRESH_STEPS", "RunInterrupted", "RunResult",
           "fit", "forward_backward", "loaders_on", "make_optimizer", "make_scheduler", "prepare_model", "run_epoch",
           "run_training", "set_seed", "spawn_training", "stops_early", "train_epoch", "train_step"]
