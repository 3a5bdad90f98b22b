"""Spike encodings: turning values (pixel intensities, signals) into spike trains.

Chapter 1 of the book derives each code; these are snnTorch's ``spikegen`` functions with the
settings the course uses, every result time-first ``[T, *x.shape]``:

* rate: each step, a spike with probability ``gain * x`` (clipped to 1);
* latency: one spike per value, at step ``round((T - 1) * (1 - x))`` (brighter is earlier),
  none below ``threshold``;
* delta: +1 where a signal rises by at least ``threshold`` from one step to the next, -1 where
  it falls by as much (the first step compared with 0).
"""

from __future__ import annotations

import torch
from snntorch import spikegen


def rate_code(x: torch.Tensor, num_steps: int, gain: float = 1.0, seed: int | None = None) -> torch.Tensor:
    """``x`` in [0, 1] -> spikes ``[T, *x.shape]``, each 1 with probability ``min(gain * x, 1)``.

    ``seed`` seeds torch's global generator first (snnTorch draws from it), for a repeatable code."""
    if seed is not None:
        torch.manual_seed(seed)
    return spikegen.rate(torch.clamp(torch.as_tensor(x, dtype=torch.float32) * gain, 0, 1), num_steps=num_steps)


def latency_code(x: torch.Tensor, num_steps: int, threshold: float = 0.01) -> torch.Tensor:
    """``x`` in [0, 1] -> spikes ``[T, *x.shape]``: one spike at step ``round((T - 1) * (1 - x))``
    for each value at or above ``threshold``, none below (snnTorch's linear, normalised latency)."""
    return spikegen.latency(torch.as_tensor(x, dtype=torch.float32), num_steps=num_steps, threshold=threshold,
                            normalize=True, linear=True, clip=True)


def delta_code(signal: torch.Tensor, threshold: float) -> torch.Tensor:
    """``signal [T, ...]`` -> ``[T, ...]`` of +1 (rise of at least ``threshold`` since the previous
    step), -1 (fall of at least as much) or 0; the step before the first is taken as 0."""
    return spikegen.delta(signal, threshold=threshold, off_spike=True)


def encode_digit(image: torch.Tensor, num_steps: int = 50, gain: float = 1.0, threshold: float = 0.01,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rate and latency codes of one image ``[H, W]`` (values 0-1): ``(rate [T, H, W], latency [T, H, W])``."""
    return rate_code(image, num_steps, gain, seed), latency_code(image, num_steps, threshold)


__all__ = ["delta_code", "encode_digit", "latency_code", "rate_code"]
