"""Batches from a dataset held in memory as one tensor: no per-sample Python work in an epoch.

The uint8 frames ``[N, T, 2, H, W]`` stay on the device the loader was given (the GPU when
training there); each batch is one gather, one cast to float and one transpose to time first.

::

    loaders = make_loaders(cfg.data, batch_size=32, device="cuda")
    for frames, labels in loaders.train:       # frames [T, B, 2, H, W], labels [B]
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..config import DataConfig
from .dataset import load_split


class FrameLoader:
    """Yields ``(frames [T, B, 2, H, W] float32, labels [B] int64)`` batches.

    With ``shuffle`` the order is a permutation drawn from ``seed`` and the epoch number
    (:meth:`set_epoch`), so a resumed run sees the same batches it would have seen.

    Data-parallel training (:meth:`shard`): every process draws the same permutation and takes
    its equal part of each batch of ``batch_size`` (the global batch), so the processes together
    see what one process would; a last batch that does not split evenly is cut to a multiple of
    the number of processes. An ordered (evaluation) loader gives each process a contiguous block
    of the recordings instead, each recording to exactly one process.
    """

    def __init__(self, frames: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 shuffle: bool = False, seed: int = 0, device: str | torch.device = "cpu"):
        if len(frames) != len(labels):
            raise ValueError(f"{len(frames)} recordings but {len(labels)} labels")
        self.frames = frames.to(device)         # [N, T, 2, H, W] uint8
        self.labels = labels.to(device)         # [N]
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.rank, self.world = 0, 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

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

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """``(T, 2, H, W)`` of one recording."""
        return self.train.frame_shape


def make_loaders(cfg: DataConfig, batch_size: int = 32, eval_batch_size: int = 256, seed: int = 0,
                 device: str | torch.device = "cpu") -> Loaders:
    """Shuffled train and ordered test loaders over the whole dataset held on ``device``."""
    return Loaders(train=FrameLoader(*load_split(cfg, "train"), batch_size, shuffle=True, seed=seed, device=device),
                   test=FrameLoader(*load_split(cfg, "test"), eval_batch_size, shuffle=False, device=device))


__all__ = ["FrameLoader", "Loaders", "make_loaders"]
