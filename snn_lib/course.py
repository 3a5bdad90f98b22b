"""The book's helpers, in one place (as d2l's ``load_data_*`` and ``train_ch*``): which data a
chapter uses (:mod:`snn_lib.data.course`, re-exported here), how much it trains, and a run.

Every chapter that trains asks this module for its budget and its runs, so that none of them
decides for itself how much to train in the book's fast build (``SNN_FAST=1``) or where runs go::

    budget = course_budget(fast_epochs=3, full_epochs=15)
    cfg = course_config("ch5", budget)  # a Config, timestamped exp_id
    result = run_training(cfg)                   # snn_lib.train
    # or in one call, with changes to the defaults:
    result = course_run("ch7_avg", budget, model=ModelConfig(pool="avg"))

Fast mode: the simulated dataset, 10 time bins, a few batches per epoch, the CPU, a fresh
temporary folder for the runs. Full mode: the real N-MNIST the data helper finds, 25 time bins,
whole epochs, a GPU if there is one, and runs in ``exp/`` beside the notebook.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass

from .config import Config, DataConfig, ModelConfig, TrainConfig
from .data.course import (digits, fast_mode, nmnist_root, real_recordings, source_digit,  # noqa: F401
                          training_data)
from .train import RunResult, run_training


@dataclass(frozen=True)
class Budget:
    """How much a chapter trains, in the book's fast build or for real."""

    fast: bool                  # SNN_FAST=1: the book's build
    n_time_bins: int            # T, frames per recording
    num_epochs: int
    batch_size: int
    max_steps_per_epoch: int    # batches per epoch (0: all)
    device: str                 # "cpu" in fast mode, else "auto" (a GPU if there is one)
    exp_root: str               # where the runs go


def course_budget(fast_epochs: int = 2, full_epochs: int = 15, fast_steps: int = 8,
                  fast: bool | None = None) -> Budget:
    """The budget of a chapter: ``fast_epochs`` of ``fast_steps`` batches on the CPU in fast mode
    (default :func:`snn_lib.data.course.fast_mode`), ``full_epochs`` whole epochs else."""
    fast = fast_mode() if fast is None else fast
    return Budget(fast=fast, n_time_bins=10 if fast else 25, num_epochs=fast_epochs if fast else full_epochs,
                  batch_size=16 if fast else 32, max_steps_per_epoch=fast_steps if fast else 0,
                  device="cpu" if fast else "auto",
                  exp_root=tempfile.mkdtemp(prefix="snn_course_") if fast else "exp")


def course_config(name: str, budget: Budget, data: DataConfig | None = None, model: ModelConfig | None = None,
                  seed: int = 0, **train_settings) -> Config:
    """A validated run configuration for ``budget``: ``exp_id`` is ``name`` and the time it was
    made (a new folder for every run of the notebook); ``data`` defaults to
    :func:`snn_lib.data.course.training_data` with the budget's time bins; ``train_settings`` change the training
    (``lr=1e-3``, ``num_animations=1``, ...)."""
    data = dataclasses.replace(data or training_data(budget.fast), n_time_bins=budget.n_time_bins)
    train = TrainConfig(**{"num_epochs": budget.num_epochs, "batch_size": budget.batch_size, "device": budget.device,
                           "num_animations": 0, "max_steps_per_epoch": budget.max_steps_per_epoch, **train_settings})
    return Config(exp_id=f"{name}_{time.strftime('%Y%m%d-%H%M%S')}", exp_root=budget.exp_root, seed=seed, data=data,
                  model=model or ModelConfig(), train=train).validate()


def course_run(name: str, budget: Budget, data: DataConfig | None = None, model: ModelConfig | None = None,
               seed: int = 0, **train_settings) -> RunResult:
    """Train :func:`course_config`'s run with :func:`snn_lib.train.run_training`."""
    return run_training(course_config(name, budget, data, model, seed, **train_settings))


__all__ = ["Budget", "course_budget", "course_config", "course_run", "digits", "fast_mode", "nmnist_root",
           "real_recordings", "source_digit", "training_data"]
