"""N-MNIST (real, through tonic, or simulated offline) as in-memory, time-first batches.

::

    loaders = make_loaders(cfg.data, batch_size=32, device="cuda")
    for frames, labels in loaders.train:       # frames [T, B, 2, H, W], labels [B]
        ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import DataConfig
from ..errors import DataError
from .frames import cached_frames, events_to_frames, frame_transform
from .loader import FrameLoader
from .nmnist import (SENSOR_SIZE, Recording, download_nmnist, list_recordings, locate_nmnist,
                     make_events, read_events, sample_root, write_events)


def default_cache_dir() -> Path:
    """``$SNN_LIB_CACHE``, else ``~/.cache/snn_lib``."""
    return Path(os.environ.get("SNN_LIB_CACHE") or Path.home() / ".cache" / "snn_lib")


def cache_dir_of(cfg: DataConfig) -> Path:
    return Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()


def dataset_root(cfg: DataConfig) -> Path:
    """The folder with Train/ and Test/ for ``cfg``: real N-MNIST (downloaded if allowed and
    absent) or the simulated recordings (built on first use into the cache)."""
    if cfg.name == "nmnist_sim":
        from .nmnist_sim import ensure_sim_dataset
        return ensure_sim_dataset(cfg, cache_dir_of(cfg))
    return locate_nmnist(cfg.root, cfg.download)


def split_recordings(cfg: DataConfig, root: Path) -> dict[str, list[Recording]]:
    """Train and test recordings after ``test_from_train`` and ``subset``.

    With ``test_from_train`` > 0 the test set is that fraction of Train/, drawn per label with a
    fixed seed (the same held-out files whatever ``seed`` the run uses).
    """
    train = list_recordings(root, "train")
    if cfg.test_from_train > 0:
        rng = np.random.default_rng(12345)
        test_ids: set[int] = set()
        for label in range(10):
            ids = [i for i, rec in enumerate(train) if rec.label == label]
            n_test = int(round(len(ids) * cfg.test_from_train))
            test_ids.update(rng.permutation(ids)[:n_test].tolist())
        test = [rec for i, rec in enumerate(train) if i in test_ids]
        train = [rec for i, rec in enumerate(train) if i not in test_ids]
    else:
        if not (root / "Test").is_dir():
            raise DataError(f"data.root '{root}' has Train/ but no Test/ folder: add Test/<label>/<id>.bin "
                            "or set data.test_from_train=0.1 to hold out part of Train/ for testing.")
        test = list_recordings(root, "test")
    return {"train": train[::cfg.subset], "test": test[::cfg.subset]}


def load_splits(cfg: DataConfig) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{"train": (frames, labels), "test": (frames, labels)}``, frames uint8 ``[N, T, 2, H, W]``."""
    root = dataset_root(cfg)
    splits = split_recordings(cfg, root)
    return {name: cached_frames(recs, cfg.n_time_bins, cfg.denoise_us, cfg.crop, cache_dir_of(cfg),
                                desc=f"{name} frames")
            for name, recs in splits.items()}


@dataclass
class Loaders:
    train: FrameLoader
    test: FrameLoader

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """``(T, 2, H, W)`` of one recording."""
        return self.train.frame_shape


def make_loaders(cfg: DataConfig, batch_size: int = 32, eval_batch_size: int = 256, seed: int = 0,
                 device: str | torch.device = "cpu") -> Loaders:
    """Shuffled train and ordered test loaders over the whole dataset held on ``device``."""
    splits = load_splits(cfg)
    return Loaders(train=FrameLoader(*splits["train"], batch_size, shuffle=True, seed=seed, device=device),
                   test=FrameLoader(*splits["test"], eval_batch_size, shuffle=False, device=device))


__all__ = ["SENSOR_SIZE", "FrameLoader", "Loaders", "Recording", "cache_dir_of", "cached_frames",
           "dataset_root", "default_cache_dir", "download_nmnist", "events_to_frames", "frame_transform",
           "list_recordings", "load_splits", "locate_nmnist", "make_events", "make_loaders", "read_events",
           "sample_root", "split_recordings", "write_events"]
