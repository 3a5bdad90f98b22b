"""The real N-MNIST sample that ships with snn_lib (snn_lib.data.sample_root): 20 recordings, two per
digit, readable, with their licence beside them, and listed as package data so that every
installation has them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from snn_lib.data import SENSOR_SIZE, list_recordings, read_events, sample_root

REPO = Path(__file__).resolve().parents[1]


def test_sample_root_holds_two_real_recordings_of_each_digit():
    recordings = list_recordings(sample_root(), "train")
    assert len(recordings) == 20
    assert Counter(rec.label for rec in recordings) == {label: 2 for label in range(10)}
    for rec in recordings:
        events = read_events(rec.path)
        assert 1000 < len(events) < 20000, rec.path                 # real recordings: thousands of events
        assert events["x"].max() < SENSOR_SIZE[0] and events["y"].max() < SENSOR_SIZE[1]
        assert set(np.unique(events["p"])) == {0, 1}
        assert 250_000 < events["t"].max() < 400_000, rec.path      # three saccades, about 300 ms
        assert np.all(np.diff(events["t"].astype(np.int64)) >= 0)


def test_sample_is_the_first_two_ids_of_each_label_and_says_where_it_comes_from():
    names = sorted(f"{rec.label}/{rec.path.name}" for rec in list_recordings(sample_root(), "train"))
    assert names[:4] == ["0/00002.bin", "0/00022.bin", "1/00004.bin", "1/00007.bin"]
    readme = (sample_root() / "README.md").read_text()
    for fact in ("CC BY-SA 4.0", "Orchard", "Jayawant", "Cohen", "Thakor", "slayerPytorch", "GPL-3.0"):
        assert fact in readme
    for name in names:
        assert f"`Train/{name}`" in readme
    assert "GNU GENERAL PUBLIC LICENSE" in (sample_root() / "LICENSE.slayerPytorch.GPL-3.0").read_text()


def test_sample_files_are_package_data():
    """Every file of the sample matches a package-data pattern of pyproject.toml (else a wheel, and
    so an install from git on Colab, would lack it)."""
    tomllib = pytest.importorskip("tomllib")                       # Python 3.11+
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["snn_lib"]
    package = REPO / "snn_lib"
    for path in sample_root().rglob("*"):
        if path.is_file():
            relative = path.relative_to(package)
            assert any(relative.match(p) for p in patterns), f"{relative} is not in package-data"
