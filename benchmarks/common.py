"""What the benchmark scripts share: synthetic N-MNIST-shaped data made on the device that uses it.

The benchmarks folder is not a package: each script runs as ``python benchmarks/NAME.py`` from any
folder, with snn_lib installed (``pip install -e .``, as the README says) or the repository on
``PYTHONPATH``, as ``gpu_session.sh`` runs them.
"""

from __future__ import annotations

import torch


def synthetic_frames(n: int, T: int, seed: int = 0, rate: float = 0.07,
                     device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``frames [N, T, 2, 34, 34]`` uint8 (sparse counts 1-3 on ~``rate`` of pixels, N-MNIST-like),
    ``labels [N]``, drawn on ``device`` (the same seed gives other numbers on another device)."""
    g = torch.Generator(device=device).manual_seed(seed)
    shape = (n, T, 2, 34, 34)
    counts = torch.randint(1, 4, shape, generator=g, dtype=torch.uint8, device=device)
    counts *= (torch.rand(shape, generator=g, device=device) < rate).to(torch.uint8)
    return counts, torch.randint(0, 10, (n,), generator=g, device=device)


def make_data(n: int, T: int, seed: int, chunk: int = 5000,
              device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`synthetic_frames` made ``chunk`` recordings at a time on ``device`` (60,000 at once
    would need ~14 GB of float32 random numbers)."""
    parts = [synthetic_frames(min(chunk, n - start), T, seed=seed + start, device=device)
             for start in range(0, n, chunk)]
    return torch.cat([f for f, _ in parts]), torch.cat([y for _, y in parts])
