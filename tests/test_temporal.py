"""The temporal tasks (snn_lib.data.temporal): store_recall, seq_mnist, SHD on a tiny file in its format."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from snn_lib.data.temporal import bin_spikes, seq_mnist, shd, store_recall
from snn_lib.errors import ConfigError, DataError


def test_store_recall_layout_and_determinism():
    x, y = store_recall("train", n=40, delay=30, n_values=2, group_size=4, cue_steps=5, recall_steps=6,
                        cue_rate=1.0, noise_rate=0.0, seed=3)
    assert x.shape == (40, 5 + 30 + 6, 3 * 4) and x.dtype == torch.uint8
    assert y.dtype == torch.int64 and sorted(y.tolist()) == [0] * 20 + [1] * 20       # balanced
    for xi, yi in zip(x, y):
        value = xi[:5, yi * 4:(yi + 1) * 4]                  # the cued group fires at cue_rate 1
        assert value.all()
        assert xi[:5].sum() == value.sum()                   # and no other channel
        assert xi[5:35].sum() == 0                           # the delay: no noise at noise_rate 0
        assert xi[35:, 8:].all() and xi[35:, :8].sum() == 0  # the recall cue, the same for every value
    again = store_recall("train", n=40, delay=30, n_values=2, group_size=4, cue_steps=5, recall_steps=6,
                         cue_rate=1.0, noise_rate=0.0, seed=3)
    assert torch.equal(x, again[0]) and torch.equal(y, again[1])
    other = store_recall("test", n=40, delay=30, group_size=4, cue_steps=5, recall_steps=6, seed=3)
    assert not torch.equal(y, other[1])                      # each split is drawn apart


def test_store_recall_noise_rate_and_delay_setting():
    x, _ = store_recall("val", n=200, delay=500, noise_rate=0.05, seed=0)
    assert x.shape[1] == 10 + 500 + 10
    assert x[:, 10:510].float().mean().item() == pytest.approx(0.05, abs=0.002)
    with pytest.raises(ConfigError, match="delay"):
        store_recall(delay=-1)
    with pytest.raises(ConfigError, match="split"):
        store_recall("dev")


def tiny_digits():
    """500 per class of 10 classes, each image filled with its row number (mod 251): recognisable."""
    labels = np.repeat(np.arange(10), 500)
    images = (np.arange(5000)[:, None, None] % 251 * np.ones((1, 28, 28))).astype(np.uint8)
    images[:, 0, 0] = np.arange(5000) % 7                    # not constant per image, for the permutation
    images[:, 0, 1], images[:, 0, 2] = np.arange(5000) % 256, np.arange(5000) // 256     # the row, encoded
    return images, labels


def rows_of(x: torch.Tensor) -> set[int]:
    """The source rows of the digits of :func:`tiny_digits` in ``x [N, 28, 28]``."""
    codes = (x[:, 0, 1:3] * 255).round().long()
    return set((codes[:, 0] + 256 * codes[:, 1]).tolist())


def test_seq_mnist_splits_rows_and_permutation():
    images, labels = tiny_digits()
    train, val, test = (seq_mnist(s, images=images, labels=labels) for s in ("train", "val", "test"))
    assert [len(s[1]) for s in (train, val, test)] == [3600, 400, 1000]
    assert train[0].shape == (3600, 28, 28) and train[0].dtype == torch.float32
    assert torch.equal(torch.bincount(test[1]), torch.full((10,), 100))
    # the test split is the 100 digits after the first 400 of each class; val the last 40 of those 400
    assert test[0][0, 5, 5].item() == pytest.approx((400 % 251) / 255)
    assert val[0][0, 5, 5].item() == pytest.approx((360 % 251) / 255)
    train_rows, val_rows, test_rows = rows_of(train[0]), rows_of(val[0]), rows_of(test[0])
    assert len(train_rows) == 3600 and not train_rows & val_rows and not (train_rows | val_rows) & test_rows
    permuted = seq_mnist("test", permute=True, images=images, labels=labels)[0]
    assert not torch.equal(permuted, test[0])
    assert torch.equal(permuted.flatten(1).sort(1).values, test[0].flatten(1).sort(1).values)    # same pixels
    assert torch.equal(permuted, seq_mnist("test", permute=True, images=images, labels=labels)[0])  # fixed


def test_seq_mnist_test_split_is_nmnist_sims_test_digits():
    from snn_lib.data.nmnist_sim import split_by_image
    images, labels = tiny_digits()
    rows = split_by_image(labels, 400, 100)["test"]
    x, y = seq_mnist("test", images=images, labels=labels)
    assert torch.equal(x, torch.from_numpy(images[rows].astype(np.float32) / 255))
    assert torch.equal(y, torch.from_numpy(labels[rows]))


def test_bin_spikes_fixed_bins():
    counts = bin_spikes(np.array([0.0, 0.0099, 0.015, 0.0999, 0.2]), np.array([3, 3, 699, 1, 1]), n_bins=10,
                        max_ms=100.0)
    assert counts.shape == (10, 700) and counts.dtype == np.uint8
    assert counts[0, 3] == 2 and counts[1, 699] == 1 and counts[9, 1] == 1
    assert counts.sum() == 4                                 # the spike at 200 ms is past max_ms


def write_tiny_shd(folder, name: str, per_class: int = 3, classes: int = 20, seed: int = 0):
    """An HDF5 file laid out as SHD's (Cramer et al. 2020): spikes/times (seconds) and spikes/units as
    variable-length arrays, labels, extra/keys and extra/speaker; with the .zip tonic leaves beside it."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class).astype(np.uint16)
    n = len(labels)
    with h5py.File(folder / name, "w") as f:
        times = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float16))
        units = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
        for i, label in enumerate(labels):
            k = 5 + i % 4
            times[i] = np.sort(rng.uniform(0, 0.9, k)).astype(np.float16)
            units[i] = np.full(k, 30 * int(label), dtype=np.uint16)          # channel 30 * label: learnable
        f["labels"] = labels
        f["extra/keys"] = np.array([f"word{i}".encode() for i in range(classes)])
        f["extra/speaker"] = np.zeros(n, dtype=np.uint16)
    (folder / f"{name}.zip").write_bytes(b"")
    return labels


def test_shd_reads_a_tiny_file_in_shds_format(tmp_path):
    folder = tmp_path / "SHD"
    folder.mkdir()
    labels = write_tiny_shd(folder, "shd_train.h5", per_class=10)
    write_tiny_shd(folder, "shd_test.h5", per_class=2, seed=1)
    x, y = shd(tmp_path, "train", n_time_bins=20, max_ms=1000.0, val_fraction=0.1, download=False)
    xv, yv = shd(tmp_path, "val", n_time_bins=20, max_ms=1000.0, val_fraction=0.1, download=False)
    xt, yt = shd(tmp_path, "test", n_time_bins=20, download=False)
    assert x.shape == (180, 20, 700) and x.dtype == torch.uint8
    assert len(yv) == 20 and len(yt) == 40 and torch.equal(torch.bincount(yv), torch.ones(20, dtype=torch.int64))
    assert set(y.tolist()) | set(yv.tolist()) == set(labels.tolist())
    # every spike of a recording is on channel 30 * label, and none is lost (all before 0.9 s)
    for xi, yi in zip(x, y):
        assert xi.sum(0).nonzero().flatten().tolist() == [30 * int(yi)]
    assert x.sum().item() + xv.sum().item() == sum(5 + i % 4 for i in range(200))


def test_shd_without_files_and_download_off_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="download"):
        shd(tmp_path, "train", download=False)
