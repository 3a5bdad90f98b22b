import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tonic
import torch

import snn_lib.data.frames as frames_module
from snn_lib.config import DataConfig
from snn_lib.data import (FrameLoader, Loaders, cache_dir_of, dataset_root, default_cache_dir, events_to_frames,
                          list_recordings, load_split, make_events, make_loaders, read_events, split_recordings,
                          write_events)
from snn_lib.errors import ConfigError, DataError

from conftest import make_toy_nmnist, toy_events


def test_write_read_round_trip_through_tonic_reader(tmp_path):
    rng = np.random.default_rng(1)
    events = make_events(rng.integers(0, 34, 500), rng.integers(0, 34, 500),
                         np.sort(rng.integers(0, 2**23, 500)), rng.integers(0, 2, 500))
    write_events(tmp_path / "a.bin", events)
    assert (tmp_path / "a.bin").stat().st_size == 5 * 500
    back = tonic.io.read_mnist_file(str(tmp_path / "a.bin"), dtype=tonic.datasets.NMNIST.dtype)
    for field in "xytp":
        np.testing.assert_array_equal(back[field], events[field])


def test_write_refuses_events_the_format_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="2\\*\\*23"):
        write_events(tmp_path / "a.bin", make_events([0], [0], [2**23], [1]))
    assert not (tmp_path / "a.bin").exists()


@pytest.mark.parametrize("content, message", [(b"", "empty"), (b"\x01\x02\x03\x04\x05\x06", "truncated"),
                                             (b"\x50\x01\x00\x00\x10", "outside")])
def test_bad_bin_files_give_one_line_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.bin"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        read_events(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_layout_errors(tmp_path):
    with pytest.raises(DataError, match="no Train/ folder"):
        list_recordings(tmp_path, "train")
    (tmp_path / "Train" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="0 to 9"):
        list_recordings(tmp_path, "train")
    shutil.rmtree(tmp_path / "Train" / "cat")
    write_events(tmp_path / "Train" / "3" / "1.bin", toy_events(3, np.random.default_rng(0)))
    with pytest.raises(DataError, match="no recordings of label 0, 1, 2, 4, 5, 6, 7, 8, 9"):
        list_recordings(tmp_path, "train")
    for label in range(10):
        write_events(tmp_path / "Train" / str(label) / "1.bin", toy_events(label, np.random.default_rng(0)))
    with pytest.raises(DataError, match="test_from_train"):
        split_recordings(DataConfig(root=str(tmp_path)), tmp_path)
    with pytest.raises(DataError, match="download=true"):
        load_split(DataConfig(root=str(tmp_path / "nothing"), download=False), "train")


def test_frames_shape_crop_and_counts():
    events = make_events([0, 0, 17, 33], [0, 0, 17, 33], [0, 10, 150_000, 299_999], [1, 1, 0, 1])
    frames = events_to_frames(events, n_time_bins=3)
    assert frames.shape == (3, 2, 34, 34) and frames.dtype == np.uint8
    # tonic's bins span first to last event in equal windows [start, end): the very last event
    # (t = 299,999 us, past the third window's end at 299,997 us) falls outside
    assert frames[0, 1, 0, 0] == 2 and frames[1, 0, 17, 17] == 1 and frames.sum() == 3
    events = make_events([0, 10, 17, 20, 33], [0, 10, 17, 20, 33], [0, 5, 150_000, 200_000, 299_999], [1] * 5)
    cropped = events_to_frames(events, n_time_bins=3, crop=28)
    assert cropped.shape == (3, 2, 28, 28)
    # the crop drops the corner events; bins then span 5 .. 200,000 us (the last one falls outside)
    assert cropped.sum() == 2
    assert cropped[0, 1, 7, 7] == 1 and cropped[2, 1, 14, 14] == 1   # moved by the (34 - 28) / 2 = 3 offset


def test_denoise_removes_isolated_events():
    # B, D and E each follow an event at a neighbouring pixel within 5 ms; A, C and F do not
    # (tonic's filter passes everything in its first filter_time, hence the 100 ms start)
    events = make_events(x=[5, 5, 20, 6, 5, 30], y=[5, 6, 20, 6, 6, 30],
                         t=[100_000 + t for t in (0, 500, 1000, 2000, 4000, 10_000)], p=[1] * 6)
    assert events_to_frames(events, 1).sum() == 5                  # all but the last (see above)
    assert events_to_frames(events, 1, denoise_us=5000).sum() == 2  # B and D; E is the last kept


def test_cache_is_reused_and_keyed_by_settings(toy_nmnist, tmp_path, monkeypatch):
    calls = []
    original = frames_module.frames_of_recordings
    monkeypatch.setattr(frames_module, "frames_of_recordings",
                        lambda recs, *a, **k: calls.append(len(recs)) or original(recs, *a, **k))
    cfg = DataConfig(root=str(toy_nmnist), cache_dir=str(tmp_path), n_time_bins=5)
    first = load_split(cfg, "train")
    load_split(cfg, "test")
    assert calls == [70, 30]                 # Train/ less the validation split, Test/
    second = load_split(cfg, "train")
    load_split(cfg, "test")
    assert calls == [70, 30]                                              # cache hit: nothing recomputed
    torch.testing.assert_close(first[0], second[0])
    load_split(DataConfig(root=str(toy_nmnist), cache_dir=str(tmp_path), n_time_bins=6), "train")
    assert calls == [70, 30, 70]                                          # new T: recomputed
    assert load_split(DataConfig(root=str(toy_nmnist), cache_dir=str(tmp_path), n_time_bins=6,
                                 subset=2), "train")[0].shape[0] == 35


def test_cache_notices_a_changed_file(tmp_path):
    root = make_toy_nmnist(tmp_path / "d", {"Train": 1, "Test": 1})
    cfg = DataConfig(root=str(root), cache_dir=str(tmp_path / "cache"), n_time_bins=4)
    before = load_split(cfg, "test")[0].clone()
    victim = sorted((root / "Test" / "0").glob("*.bin"))[0]
    write_events(victim, make_events([1, 1, 1], [1, 1, 1], [5, 6, 100], [1, 1, 1]))
    os.utime(victim, ns=(1, 1))                   # a different mtime even on coarse clocks
    after = load_split(cfg, "test")[0]
    assert not torch.equal(before, after) and after[0].sum() == 2


def test_holdout_is_disjoint_stratified_and_seed_independent(toy_nmnist):
    cfg = DataConfig(root=str(toy_nmnist), test_from_train=0.25)
    splits = split_recordings(cfg, toy_nmnist)
    train, val, test = ({r.path for r in splits[name]} for name in ("train", "val", "test"))
    assert not (train & test or train & val or val & test) and len(train) + len(val) + len(test) == 80
    assert sorted(r.label for r in splits["test"]) == sorted(list(range(10)) * 2)
    assert split_recordings(cfg, toy_nmnist) == splits


def test_loader_is_time_first_and_reproducible(toy_nmnist, tmp_path):
    loaders = make_loaders(DataConfig(root=str(toy_nmnist), cache_dir=str(tmp_path), n_time_bins=5), batch_size=16)
    frames, labels = next(iter(loaders.train))
    assert frames.shape == (5, 16, 2, 34, 34) and frames.dtype == torch.float32 and labels.shape == (16,)
    assert loaders.frame_shape == (5, 2, 34, 34) and len(loaders.train) == 5
    loaders.train.set_epoch(3)
    a = torch.cat([y for _, y in loaders.train])
    b = torch.cat([y for _, y in loaders.train])
    loaders.train.set_epoch(4)
    c = torch.cat([y for _, y in loaders.train])
    assert torch.equal(a, b) and not torch.equal(a, c) and sorted(a.tolist()) == sorted(c.tolist())
    test_labels = torch.cat([y for _, y in loaders.test])
    assert test_labels.tolist() == sorted(test_labels.tolist())            # test order is fixed


def test_loader_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="labels"):
        FrameLoader(torch.zeros(3, 2, 2, 4, 4, dtype=torch.uint8), torch.zeros(2), 2)


def test_real_recordings_load(real_nmnist, tmp_path):
    recs = list_recordings(real_nmnist, "train")
    assert len(recs) == 1000 and {r.label for r in recs} == set(range(10))
    events = read_events(recs[0].path)
    assert 1000 < len(events) < 20000 and 250_000 < events["t"].max() < 400_000
    # the 1,000 split 799/101/100 (train/val/test, a tenth of the folder each for val and test,
    # drawn per label); subset=5 then keeps every fifth recording of each split
    cfg = DataConfig(root=str(real_nmnist), test_from_train=0.1, val_from_train=0.1, subset=5,
                     cache_dir=str(tmp_path))
    sizes = {}
    for split in ("train", "val", "test"):
        frames, labels = load_split(cfg, split)
        assert frames.shape[1:] == (25, 2, 34, 34) and labels.unique().tolist() == list(range(10)), split
        sizes[split] = len(frames)
    assert sizes == {"train": 160, "val": 21, "test": 20}
    no_val = DataConfig(root=str(real_nmnist), test_from_train=0.1, val_from_train=0, subset=5, cache_dir=str(tmp_path))
    assert len(load_split(no_val, "train")[0]) == 180


def test_load_split_refuses_an_unknown_split(toy_nmnist, tmp_path):
    with pytest.raises(ConfigError, match="split='validation'"):
        load_split(DataConfig(root=str(toy_nmnist), cache_dir=str(tmp_path)), "validation")


def test_cache_folder_from_setting_environment_or_home(monkeypatch, tmp_path):
    monkeypatch.setenv("SNN_LIB_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    assert cache_dir_of(DataConfig()) == tmp_path / "env"
    assert cache_dir_of(DataConfig(cache_dir=str(tmp_path / "mine"))) == tmp_path / "mine"
    monkeypatch.delenv("SNN_LIB_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "snn_lib"


def test_dataset_root_finds_real_layouts_and_builds_the_simulated_set(toy_nmnist, tmp_path):
    assert dataset_root(DataConfig(root=str(toy_nmnist))) == toy_nmnist
    tonic_layout = tmp_path / "tonic"
    (tonic_layout / "NMNIST").mkdir(parents=True)
    (tonic_layout / "NMNIST" / "Train").symlink_to(toy_nmnist / "Train")
    assert dataset_root(DataConfig(root=str(tonic_layout))) == tonic_layout / "NMNIST"
    sim = dataset_root(DataConfig(name="nmnist_sim", cache_dir=str(tmp_path / "c"), sim_train_per_class=1,
                                  sim_test_per_class=1))
    assert sim.parent == tmp_path / "c" / "nmnist_sim" and len(list(sim.glob("Train/*/*.bin"))) == 10


def test_loaders_pair_the_splits(toy_nmnist, tmp_path):
    loaders = make_loaders(DataConfig(root=str(toy_nmnist), cache_dir=str(tmp_path), n_time_bins=3), 8, 5, seed=2)
    assert isinstance(loaders, Loaders) and loaders.frame_shape == (3, 2, 34, 34)
    assert (len(loaders.train), len(loaders.val), len(loaders.test)) == (9, 2, 6)    # 70, 10 and 30 recordings
    assert loaders.train.shuffle and not loaders.test.shuffle and loaders.train.seed == 2


def test_progress_bars_follow_tqdm_disable_in_notebooks_too(monkeypatch):
    from snn_lib.progress import progress
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert not progress(total=2).disable
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress(total=2).disable
    from tqdm.notebook import tqdm as notebook_bar                # what tqdm.auto gives in Jupyter
    monkeypatch.setattr("snn_lib.progress.tqdm", notebook_bar)
    assert progress(total=2).disable                               # (tqdm's notebook bar ignores the variable)
    monkeypatch.delenv("TQDM_DISABLE")
    monkeypatch.setenv("RANK", "1")                                # not process 0 of a parallel run
    assert progress(total=2).disable
