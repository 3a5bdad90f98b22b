"""Batches from a dataset held in memory as one tensor: no per-sample Python work in an epoch.

The uint8 frames ``[N, T, 2, H, W]`` stay on the device the loader was given (the GPU when
training there); each batch is one gather, one cast to float and one transpose to time first.

::

    loaders = make_loaders(cfg.data, batch_size=32, device="cuda")
    for frames, labels in loaders.train:
        # frames [T, B, 2, H, W], labels [B]
        ...
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..config import DataConfig
from .dataset import HOLDOUT_SEED, dataset_root, load_split, split_frames, split_recordings
from .frames import frames_of_recordings
from .nmnist import Recording

log = logging.getLogger("snn_lib")


class FrameLoader:
    """Yields ``(frames [T, B, 2, H, W] float32, labels [B] int64)`` batches.

    With ``shuffle`` the order is a permutation drawn from ``seed`` and the epoch number
    (:meth:`set_epoch`), so a resumed run sees the same batches it would have seen.

    Data-parallel training (:meth:`shard`): every process draws the same permutation and takes
    its equal part of each batch of ``batch_size`` (the global batch), so the processes together
    see what one process would; a last batch that does not split evenly is cut to a multiple of
    the number of processes. An ordered (evaluation) loader gives each process a contiguous block
    of the recordings instead, each recording to exactly one process.

    ``epoch_data``, if given, makes the recordings change from epoch to epoch: :meth:`set_epoch`
    replaces ``frames`` and ``labels`` by ``epoch_data(epoch)`` (augmented frames, simulated
    recordings mixed in: :class:`TrainingEpochs`).
    """

    def __init__(self, frames: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 shuffle: bool = False, seed: int = 0, device: str | torch.device = "cpu",
                 epoch_data: Callable[[int], tuple[torch.Tensor, torch.Tensor]] | None = None):
        if len(frames) != len(labels):
            raise ValueError(f"{len(frames)} recordings but {len(labels)} labels")
        self.frames = frames.to(device)         # [N, T, 2, H, W] uint8
        self.labels = labels.to(device)         # [N]
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.rank, self.world = 0, 1
        self.epoch_data = epoch_data

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.epoch_data is not None:
            device = self.frames.device
            frames, labels = self.epoch_data(epoch)
            self.frames, self.labels = frames.to(device), labels.to(device)

    def shard(self, rank: int, world: int) -> "FrameLoader":
        """Make this loader process ``rank``'s part of ``world`` data-parallel processes; returns self."""
        self.rank, self.world = rank, world
        return self

    def _batches(self) -> list[torch.Tensor]:
        """The recordings (indices into the whole set) of each batch this process takes."""
        n = len(self.labels)
        if not self.shuffle:
            lo, hi = self.rank * n // self.world, (self.rank + 1) * n // self.world
            return [torch.arange(start, min(start + self.batch_size, hi)) for start in range(lo, hi, self.batch_size)]
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(n, generator=g)
        batches = []
        for start in range(0, n, self.batch_size):
            index = order[start:start + self.batch_size]
            share = len(index) // self.world
            if share:
                batches.append(index[self.rank * share:(self.rank + 1) * share])
        return batches

    def __len__(self) -> int:
        if self.world == 1:
            return -(-len(self.labels) // self.batch_size)
        return len(self._batches())

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for index in self._batches():
            index = index.to(self.labels.device)
            frames = self.frames[index].float()              # [B, T, 2, H, W]
            yield frames.transpose(0, 1).contiguous(), self.labels[index]   # [T, B, 2, H, W]

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """``(T, 2, H, W)`` of one recording."""
        return tuple(self.frames.shape[1:])


@dataclass
class Loaders:
    train: FrameLoader
    test: FrameLoader
    val: FrameLoader | None = None      # None: no validation split (data.val_from_train=0)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """``(T, 2, H, W)`` of one recording."""
        return self.train.frame_shape

    def all(self) -> list[FrameLoader]:
        """The loaders there are: train, val (if any), test."""
        return [x for x in (self.train, self.val, self.test) if x is not None]


class TrainingEpochs:
    """The training recordings of each epoch (a :class:`FrameLoader`'s ``epoch_data``): the real
    ones, their events augmented anew each epoch when ``data.augment`` asks (framed on the fly,
    in worker processes), and the ``data.sim_mix`` simulated ones in the first
    ``data.sim_mix_epochs`` epochs (all epochs if 0)."""

    def __init__(self, cfg: DataConfig, seed: int, frames: torch.Tensor, labels: torch.Tensor,
                 recordings: list[Recording], sim: tuple[torch.Tensor, torch.Tensor] | None = None):
        self.cfg, self.seed, self.frames, self.labels, self.sim = cfg, seed, frames, labels, sim
        self.recordings = recordings                    # of frames: their events are augmented

    def __call__(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, frames, labels = self.cfg, self.frames, self.labels     # [N, T, 2, H, W], [N]
        if cfg.augment:
            frames = frames_of_recordings(self.recordings, cfg.n_time_bins, cfg.denoise_us, cfg.crop,
                                          desc=f"augment epoch {epoch}",
                                          augment=(tuple(cfg.augment), self.seed, epoch))
        if self.sim is not None and (cfg.sim_mix_epochs == 0 or epoch <= cfg.sim_mix_epochs):
            frames, labels = torch.cat([frames, self.sim[0]]), torch.cat([labels, self.sim[1]])
        return frames, labels


def load_sim_mix(cfg: DataConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``data.sim_mix`` simulated recordings mixed into a real training split: drawn with a
    fixed seed from ``nmnist_sim``'s Train/ (built with the ``data.sim_*`` settings), less those
    of the first ``data.sim_mix_skip`` source digits of each class, framed as the real ones."""
    sim_cfg = dataclasses.replace(cfg, name="nmnist_sim", test_from_train=0.0, val_from_train=0.0, subset=1,
                                  augment=(), sim_mix=0, sim_mix_skip=0)
    recordings = split_recordings(sim_cfg, dataset_root(sim_cfg))["train"]      # files <row>_<k>.bin
    if cfg.sim_mix_skip:
        rows = {label: sorted({int(r.path.stem.split("_")[0]) for r in recordings if r.label == label})
                for label in range(10)}
        skipped = {row for label in rows for row in rows[label][:cfg.sim_mix_skip]}
        recordings = [r for r in recordings if int(r.path.stem.split("_")[0]) not in skipped]
    chosen = sorted(np.random.default_rng(HOLDOUT_SEED).permutation(len(recordings))[:cfg.sim_mix].tolist())
    recordings = [recordings[i] for i in chosen]
    return split_frames(cfg, recordings, "simulated")


def make_loaders(cfg: DataConfig, batch_size: int = 32, eval_batch_size: int = 256, seed: int = 0,
                 device: str | torch.device = "cpu") -> Loaders:
    """A shuffled train loader and ordered validation (if ``data.val_from_train`` > 0) and test
    loaders over the whole dataset held on ``device``. With ``data.augment`` or ``data.sim_mix``
    the training recordings change by epoch (:class:`TrainingEpochs`); the validation and test
    splits are never augmented."""
    splits = split_recordings(cfg, dataset_root(cfg))                 # once: every split from it
    frames, labels = load_split(cfg, "train", splits)
    epochs = None
    if cfg.augment or cfg.sim_mix:
        epochs = TrainingEpochs(cfg, seed, frames, labels, splits["train"], load_sim_mix(cfg) if cfg.sim_mix else None)
    val = FrameLoader(*load_split(cfg, "val", splits), eval_batch_size, device=device) if cfg.val_from_train else None
    return Loaders(train=FrameLoader(frames, labels, batch_size, shuffle=True, seed=seed, device=device,
                                     epoch_data=epochs),
                   test=FrameLoader(*load_split(cfg, "test", splits), eval_batch_size, shuffle=False, device=device),
                   val=val)


__all__ = ["FrameLoader", "Loaders", "TrainingEpochs", "load_sim_mix", "make_loaders"]
