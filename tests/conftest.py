"""Shared fixtures: tiny N-MNIST-format datasets the tests make themselves."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from snn_lib.config import Config, DataConfig, ModelConfig, TrainConfig
from snn_lib.data import make_events, write_events

REAL_NMNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nmnist-real-1k"


def toy_events(label: int, rng: np.random.Generator, n: int = 300) -> np.ndarray:
    """Events of a made-up recording whose class is easy to learn: a bar at a label-dependent row."""
    row = 3 + 3 * label
    x = rng.integers(5, 29, n)
    y = np.clip(row + rng.integers(-1, 2, n), 0, 33)
    t = np.sort(rng.integers(0, 300_000, n))
    p = rng.integers(0, 2, n)
    return make_events(x, y, t, p)


def make_toy_nmnist(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """``root/{Train,Test}/<label>/<id>.bin`` with ``per_class[split]`` recordings of each label."""
    rng = np.random.default_rng(seed)
    for split, count in per_class.items():
        for label in range(10):
            for i in range(count):
                write_events(root / split / str(label) / f"{label * 1000 + i:05d}.bin", toy_events(label, rng))
    return root


@pytest.fixture(scope="session")
def toy_nmnist(tmp_path_factory) -> Path:
    """A tiny dataset in the N-MNIST layout: 8 train and 3 test recordings per class."""
    return make_toy_nmnist(tmp_path_factory.mktemp("toy_nmnist"), {"Train": 8, "Test": 3})


@pytest.fixture
def real_nmnist() -> Path:
    """The 1,000 real N-MNIST recordings of the team's shared folder; skips where absent."""
    if not (REAL_NMNIST / "Train").is_dir():
        pytest.skip(f"real N-MNIST recordings not found at {REAL_NMNIST}")
    return REAL_NMNIST


def tiny_config(root, tmp_path, **train) -> Config:
    """A run small enough for a test: the toy dataset at ``root``, T=6, a narrow CSNN, CPU."""
    return Config(exp_id="tiny", exp_root=str(tmp_path / "exp"), seed=1,
                  data=DataConfig(root=str(root), cache_dir=str(tmp_path / "cache"), n_time_bins=6),
                  model=ModelConfig(channels=(4, 8)),
                  train=TrainConfig(**{"num_epochs": 3, "batch_size": 16, "lr": 1e-2, "device": "cpu",
                                       "num_animations": 2, **train}))


def one_line(err: BaseException | str) -> str:
    """The text of an error, asserted to be one line."""
    text = str(err)
    assert "\n" not in text.strip(), text
    return text


def cli(args, cwd, timeout=300, **kwargs):
    """A command run as a user would, its output captured."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs)


def fails_in_one_line(result, command: str, *parts: str, status: int = 2) -> str:
    """The one stderr line of a command that failed with ``status``, naming each of ``parts``."""
    assert result.returncode == status, (result.returncode, result.stderr[-2000:])
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith(f"{command}: "), result.stderr[-2000:]
    for part in parts:
        assert part in line, line
    return line
