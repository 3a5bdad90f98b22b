"""Where a run computes: the device, mixed precision, and the CPU allocator.

::

    device = resolve_device("auto")                 # the GPU if there is one, else the CPU
    with autocast("bf16", device):
        spk, mem = model(frames)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

import torch

from .errors import ConfigError


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


def autocast(amp: str, device: torch.device):
    """bf16 autocast of the forward pass when ``amp == "bf16"`` (``train.amp``), else nothing."""
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def keep_freed_cpu_memory(limit_bytes: int = 1 << 30) -> bool:
    """Let glibc keep freed blocks of up to ``limit_bytes`` for reuse instead of handing them back.

    By default glibc serves large blocks (over 32 MB, and smaller ones as it adapts) with a fresh
    ``mmap`` and unmaps them when they are freed, so the next training step faults in and zero-fills
    every page again. The fast path's time-folded tensors (``[T * B, ...]``) are that large. With
    this setting the process keeps the memory of its largest step for reuse, as PyTorch's CUDA
    caching allocator does on a GPU; the math is unchanged (``benchmarks/README.md`` has what it
    saves). Process-wide; :func:`snn_lib.train.run_training` calls it for CPU runs. Returns False
    where it cannot be set (not Linux with glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3                      # mallopt parameters (malloc.h)
    return bool(libc.mallopt(m_mmap_threshold, limit_bytes)) and bool(libc.mallopt(m_trim_threshold, 2 * limit_bytes))


__all__ = ["autocast", "keep_freed_cpu_memory", "resolve_device"]
