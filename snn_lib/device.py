"""Where a run computes: the device, mixed precision, and the CPU allocator.

::

    # the GPU if there is one, else the CPU
    device = resolve_device("auto")
    # refused where the GPU has no bf16 units
    check_amp("bf16", device)
    with autocast("bf16", device):
        spk, mem = model(frames)

Mixed precision (``train.amp``, :data:`AMP_MODES`): ``bf16`` autocasts the forward pass to
bfloat16, which needs no loss scaling but a GPU of compute capability 8.0 or newer (Ampere,
Hopper; CPUs with AVX-512 BF16 or AMX); ``fp16`` autocasts to float16 with a
:func:`grad_scaler` (the choice for a T4 or V100, Colab's free GPU being a T4).

Float32 on Ampere and newer GPUs: PyTorch lets cuDNN run float32 convolutions in TF32 (10 bits
of mantissa) by default. Exact comparisons (the fast path against the reference, to 1e-5) hold
only with TF32 off: :func:`full_float32`. :func:`precision_label` names the precision a result
was measured in.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

import torch

from .errors import ConfigError

AMP_MODES = ("off", "bf16", "fp16")
"""The values of ``train.amp``: float32, bfloat16 autocast, float16 autocast with loss scaling."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present (honouring CUDA_VISIBLE_DEVICES), else the CPU. ``cuda:N``
    also makes GPU N the current device (``torch.cuda.set_device``)."""
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
        if ":" in name:                    # the current GPU: plain .cuda(), syncs and queries go there
            torch.cuda.set_device(index)
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("train.device=mps but MPS is not available; use train.device=cpu or auto.")
    return torch.device(name)


def autocast(amp: str, device: torch.device):
    """Autocast of the forward pass to bfloat16 or float16 (``train.amp``), or nothing for ``off``."""
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if amp == "fp16":
        return torch.autocast(device_type=device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def check_amp(amp: str, device: torch.device) -> None:
    """Refuse ``train.amp=bf16`` on a GPU below compute capability 8.0 (T4, V100, P100).

    ``torch.cuda.is_bf16_supported()`` is true there, by emulation, but cuDNN has no bf16
    convolutions below 8.0 and Inductor does not compile bf16 graphs for them: ``fp16`` is the
    mixed precision of those GPUs."""
    if amp not in AMP_MODES:
        raise ConfigError(f"train.amp={amp!r} is not valid: expected {' or '.join(AMP_MODES)}.")
    if amp == "bf16" and device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if major < 8:
            raise ConfigError(f"train.amp=bf16 needs a GPU of compute capability 8.0 or newer; "
                              f"{torch.cuda.get_device_name(device)} is {major}.{minor}: use train.amp=fp16 "
                              "(float16 with loss scaling) or train.amp=off.")


def grad_scaler(amp: str, device: torch.device) -> torch.amp.GradScaler | None:
    """The loss scaler of ``train.amp=fp16`` (float16 gradients underflow without one); None otherwise."""
    if amp != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


def configure_backends(device: torch.device) -> None:
    """Process-wide settings for training on ``device``: on CUDA, cuDNN picks the fastest
    convolution algorithm for each shape on first use (``cudnn.benchmark``; the shapes of a run
    repeat, so the search pays for itself after the first steps)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


@contextlib.contextmanager
def full_float32():
    """Float32 matrix products and convolutions in full float32 on the GPU (TF32 off), restored
    afterwards: for comparisons to 1e-5 and below. No effect on a CPU."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def precision_label(device: torch.device, amp: str = "off") -> str:
    """The arithmetic a result on ``device`` was computed in, to label it with: e.g. ``fp32``,
    ``fp32 (TF32 convolutions)``, ``bf16 autocast``."""
    if amp != "off":
        return f"{amp} autocast"
    if device.type != "cuda" or torch.cuda.get_device_capability(device)[0] < 8:
        return "fp32"
    tf32 = [name for name, on in (("convolutions", torch.backends.cudnn.allow_tf32),
                                  ("matmuls", torch.backends.cuda.matmul.allow_tf32)) if on]
    return f"fp32 (TF32 {' and '.join(tf32)})" if tf32 else "fp32 (TF32 off)"


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


__all__ = ["AMP_MODES", "autocast", "check_amp", "configure_backends", "full_float32", "grad_scaler",
           "keep_freed_cpu_memory", "precision_label", "resolve_device"]
