"""The simulated event camera and the offline dataset built with it (data.name=nmnist_sim)."""

from __future__ import annotations

import csv
import dataclasses
import json
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import tonic

from snn_lib.config import DataConfig
from snn_lib.data import list_recordings, read_events, write_events
from snn_lib.data.nmnist import EVENT_DTYPE
from snn_lib.data.nmnist_sim import (ensure_sim_dataset, images_from_folder, make_sim_dataset, mnist_digits,
                                    sim_dataset_key, split_by_image)
from snn_lib.data.simulator import (SIM_VERSION, SimConfig, prepare_images, record, record_batch, saccade_offset,
                                   sim_settings, travelled)
from snn_lib.errors import ConfigError, DataError

QUIET = SimConfig(noise_hz=0.0, threshold_sigma=0.0, saccade_jitter_ms=0.0)    # nothing random


def square(size: int = 28, lo: int = 9, hi: int = 19) -> np.ndarray:
    """A white square on black, uint8 [size, size]."""
    image = np.zeros((size, size), np.uint8)
    image[lo:hi, lo:hi] = 255
    return image


def toy_images(per_class: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """[10 * per_class, 28, 28] squares of label-dependent size, and their labels."""
    images = [square(lo=9 - label // 2 - k, hi=19 + label // 2) for label in range(10) for k in range(per_class)]
    return np.stack(images), np.repeat(np.arange(10), per_class)


def test_events_are_tonic_events_on_the_sensor():
    cfg = SimConfig()
    ev = record(square(), cfg, np.random.default_rng(0))
    assert ev.dtype == EVENT_DTYPE and len(ev) > 100
    assert ev["x"].max() < 34 and ev["y"].max() < 34 and ev["x"].min() >= 0 and ev["y"].min() >= 0
    assert np.all(np.diff(ev["t"].astype(np.int64)) >= 0)
    assert ev["t"].min() >= 0 and ev["t"].max() < cfg.duration_ms * 1000
    assert set(np.unique(ev["p"])) == {0, 1}


def test_round_trip_through_tonic_reader(tmp_path):
    ev = record(square(), SimConfig(), np.random.default_rng(1))
    write_events(tmp_path / "a.bin", ev)
    back = tonic.io.read_mnist_file(str(tmp_path / "a.bin"), dtype=EVENT_DTYPE)
    assert len(back) == len(ev)
    for key in ("x", "y", "t", "p"):
        np.testing.assert_array_equal(back[key], ev[key])


def test_same_seed_same_events_and_batch_does_not_matter():
    images, _ = toy_images(1)
    a = record(images[4], SimConfig(), np.random.default_rng(7))
    b = record(images[4], SimConfig(), np.random.default_rng(7))
    c = record(images[4], SimConfig(), np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert len(a) != len(c) or not np.array_equal(a, c)
    batch = record_batch(images[[2, 4]], SimConfig(), [np.random.default_rng(3), np.random.default_rng(7)])
    np.testing.assert_array_equal(batch[1], a)


def test_saccade_path_golden_values():
    cfg = SimConfig(path_px=((0.0, 0.0), (4.0, 2.0), (2.0, 6.0)), saccade_start_ms=(0.0, 100.0, 200.0),
                    saccade_ms=(80.0, 80.0, 80.0), saccade_peak=(0.5, 0.5, 0.5))
    pos = saccade_offset(np.array([0.0, 40.0, 80.0, 90.0, 140.0, 180.0, 240.0, 300.0]), cfg)
    expected = [[0, 0], [2, 1], [4, 2], [4, 2], [3, 4], [2, 6], [1, 3], [0, 0]]
    np.testing.assert_allclose(pos, expected, atol=1e-9)


@pytest.mark.parametrize("peak", [0.25, 0.5, 0.65])
def test_saccade_speed_peaks_where_asked(peak):
    tau = np.linspace(0, 1, 2001)
    done = travelled(tau, peak)
    assert done[0] == 0 and abs(done[-1] - 1) < 1e-12 and np.all(np.diff(done) >= 0)
    speed = np.gradient(done, tau)
    assert abs(tau[speed.argmax()] - peak) < 0.01 and abs(speed.max() - 2.0) < 0.01   # sin^2: peak = 2x mean


def test_saccade_jitter_moves_each_saccade_of_a_recording():
    cfg = dataclasses.replace(QUIET, saccade_jitter_ms=5.0)
    medians = []
    for seed in range(8):
        t = record(square(), cfg, np.random.default_rng(seed))["t"] / 1000
        medians.append([np.median(t[(t >= a) & (t < b)]) for a, b in ((0, 100), (100, 210), (210, 320))])
    spread = np.std(medians, axis=0)
    assert np.all(spread > 1.5) and np.all(spread < 10)


def test_events_only_while_the_image_moves():
    cfg = dataclasses.replace(QUIET, lowpass_ms=1.0)
    ev = record(square(), cfg, np.random.default_rng(0))
    t_ms = ev["t"] / 1000
    settle = 10 * cfg.lowpass_ms + 2           # the photoreceptor low pass settles within a few tau
    moving = np.zeros(len(ev), bool)
    for start, length in zip(cfg.saccade_start_ms, cfg.saccade_ms):
        inside = (t_ms >= start) & (t_ms <= start + length + settle)
        assert inside.sum() > 50, f"saccade at {start} ms gave {inside.sum()} events"
        moving |= inside
    assert moving.all()


RIGHTWARD = dict(path_px=((0.0, 3.0), (6.0, 3.0)), saccade_start_ms=(0.0, 500.0), saccade_ms=(100.0, 100.0),
                 saccade_peak=(0.5, 0.5), duration_ms=150.0)     # one saccade, 6 pixels to the right


@pytest.mark.parametrize("inverted", [False, True])
def test_polarity_leading_edge_on_trailing_edge_off(inverted):
    # a white square moving right brightens pixels at its right edge (ON) and darkens them at its
    # left edge (OFF); shown inverted (a dark square on a bright screen) it is the other way round
    cfg = dataclasses.replace(QUIET, inverted=inverted, **RIGHTWARD)
    ev = record(square(), cfg, np.random.default_rng(0))
    on, off = ev[ev["p"] == 1], ev[ev["p"] == 0]
    assert len(on) > 20 and len(off) > 20
    right, left = (off, on) if inverted else (on, off)
    assert right["x"].min() > left["x"].max() - 1
    assert abs(len(on) - len(off)) <= 0.1 * len(ev)      # the same edge contrast either way


def test_large_change_gives_several_events_refractory_apart():
    cfg = dataclasses.replace(QUIET, inverted=False, **RIGHTWARD)
    ev = record(square(), cfg, np.random.default_rng(0))
    contrast = np.log(1 / cfg.background)              # black to white, log units
    x, y = 9 + 10 + 3, 14 + 3                           # a pixel the square's right edge sweeps over
    mine = ev[(ev["x"] == x) & (ev["y"] == y) & (ev["p"] == 1)]
    assert len(mine) == int(contrast / cfg.threshold_on)
    assert np.diff(mine["t"].astype(np.int64)).min() >= cfg.refractory_us


def test_uniform_image_gives_only_noise():
    blank = dataclasses.replace(QUIET, inverted=False)
    assert len(record(np.zeros((28, 28)), blank, np.random.default_rng(0))) == 0    # black on black
    cfg = SimConfig(noise_hz=10.0, threshold_sigma=0.0)
    n = len(record(np.zeros((28, 28)), cfg, np.random.default_rng(0)))
    expected = 10.0 * 34 * 34 * cfg.duration_ms / 1000
    assert abs(n - expected) < 5 * np.sqrt(expected)


def test_other_image_sizes_are_scaled():
    big = np.kron(square(), np.ones((4, 4), np.uint8))            # 112 x 112
    ev = record(big, QUIET, np.random.default_rng(0))
    ref = record(square(), QUIET, np.random.default_rng(0))
    assert 0.7 < len(ev) / len(ref) < 1.3


@pytest.mark.parametrize("image, match", [
    (np.zeros((0, 0)), "empty"),
    (np.zeros((3, 28, 28)), "2-D"),
    (np.zeros(28), "2-D"),
    (np.full((28, 28), np.nan), "non-finite"),
    (np.full((28, 28), -5.0), "0-255"),
])
def test_bad_images_are_refused(image, match):
    with pytest.raises(ValueError, match=match):
        record(image, SimConfig(), np.random.default_rng(0))


@pytest.mark.parametrize("change, key", [
    ({"threshold_on": -0.1}, "threshold_on"),
    ({"threshold_off": 0.0}, "threshold_off"),
    ({"refractory_us": -1}, "refractory_us"),
    ({"background": 0.0}, "background"),
    ({"saccade_ms": (80.0, 80.0)}, "saccade_start_ms"),
    ({"duration_ms": 10_000.0}, "duration_ms"),
])
def test_bad_settings_name_the_setting(change, key):
    with pytest.raises(ConfigError, match=key):
        record(square(), SimConfig(**change), np.random.default_rng(0))


def test_dataset_layout_split_by_image_and_recordings(tmp_path):
    images, labels = toy_images(3)
    root = make_sim_dataset(tmp_path / "sim", train_per_class=2, test_per_class=1, recordings_per_image=2,
                            images=images, labels=labels, workers=1)
    train, test = list_recordings(root, "train"), list_recordings(root, "test")
    assert len(train) == 10 * 2 * 2 and len(test) == 10 * 1 * 2
    assert [r.label for r in train] == sorted(r.label for r in train)
    with open(root / "sources.csv") as f:
        sources = list(csv.DictReader(f))
    rows = {split: {int(s["source_row"]) for s in sources if s["split"] == split} for split in ("train", "test")}
    assert len(rows["train"]) == 20 and len(rows["test"]) == 10 and not rows["train"] & rows["test"]
    assert all(int(labels[int(s["source_row"])]) == int(s["label"]) for s in sources)
    # the two recordings of one image differ (own noise), and every file reads back
    a, b = (read_events(root / "Train" / "0" / f"00000_{k}.bin") for k in (0, 1))
    assert not (len(a) == len(b) and np.array_equal(a, b))
    assert all(len(read_events(r.path)) > 0 for r in train + test)


def test_images_from_a_folder(tmp_path):
    from PIL import Image
    for label in (3, 7):
        (tmp_path / str(label)).mkdir()
        Image.fromarray(square(56, 18, 38)).save(tmp_path / str(label) / "a.png")   # 56 x 56: scaled to 28
    np.save(tmp_path / "7" / "b.npy", square() / 255.0)
    images, labels = images_from_folder(tmp_path)
    assert images.shape == (3, 28, 28) and labels.tolist() == [3, 7, 7]
    np.testing.assert_allclose(images[2], square() / 255.0)
    assert abs(images[0].mean() - images[2].mean()) < 0.05
    with pytest.raises(DataError, match="holds no images"):
        images_from_folder(tmp_path / "3")


def test_split_by_image_takes_disjoint_rows():
    labels = np.repeat(np.arange(10), 5)
    rows = split_by_image(labels, 3, 2)
    assert len(rows["train"]) == 30 and len(rows["test"]) == 20
    assert not set(rows["train"]) & set(rows["test"])
    with pytest.raises(ConfigError, match="fewer per class"):
        split_by_image(labels, 4, 2)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"train_per_class": 0}, ConfigError, "train_per_class"),
    ({"recordings_per_image": 0}, ConfigError, "recordings_per_image"),
    ({"seed": -1}, ConfigError, "seed"),
    ({"images": np.zeros((10, 28)), "labels": np.arange(10)}, ConfigError, "images"),
    ({"images": np.zeros((10, 28, 28)), "labels": np.arange(10) + 5}, ConfigError, "labels"),
    ({"sim": SimConfig(threshold_on=-1.0)}, ConfigError, "threshold_on"),
])
def test_make_sim_dataset_refuses_bad_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        make_sim_dataset(tmp_path / "x", **kwargs)


def test_make_sim_dataset_refuses_a_used_folder(tmp_path):
    (tmp_path / "Train").mkdir()
    with pytest.raises(DataError, match="empty folder"):
        make_sim_dataset(tmp_path)


def test_ensure_sim_dataset_builds_once_and_ignores_half_built(tmp_path):
    cfg = DataConfig(name="nmnist_sim", sim_train_per_class=1, sim_test_per_class=1)
    half = tmp_path / "nmnist_sim" / ".building-0123-99"
    (half / "Train" / "0").mkdir(parents=True)                   # a killed build's leftovers
    root = ensure_sim_dataset(cfg, tmp_path)
    assert root.parent == tmp_path / "nmnist_sim" and not root.name.startswith(".")
    assert len(list_recordings(root, "train")) == 10 and len(list_recordings(root, "test")) == 10
    stamp = (root / "settings.json").stat().st_mtime_ns
    assert ensure_sim_dataset(cfg, tmp_path) == root
    assert (root / "settings.json").stat().st_mtime_ns == stamp    # reused, not rebuilt
    other = ensure_sim_dataset(DataConfig(name="nmnist_sim", sim_train_per_class=2, sim_test_per_class=1), tmp_path)
    assert other != root
    assert not list((tmp_path / "nmnist_sim").glob(f".building-{root.name}*"))


def test_fidelity_script_runs_on_a_few_real_files(real_nmnist, tmp_path):
    path = Path(__file__).resolve().parents[1] / "scripts" / "sim_fidelity.py"
    spec = importlib.util.spec_from_file_location("sim_fidelity", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "table.md"
    assert module.main(["--real", str(real_nmnist), "--limit", "20", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| events per recording" in text and "--limit 20" in text
    table, extras = module.compare(real_nmnist, 20, SimConfig())
    assert extras["map_corr"] > 0.7                # the same digit, seen by two cameras


def test_prepare_images_scales_values_and_size():
    cfg = SimConfig()
    out = prepare_images(np.full((2, 28, 28), 255, np.uint8), cfg)
    assert out.dtype == np.float32 and out.shape == (2, 28, 28) and out.max() == 1.0
    wide = prepare_images(np.ones((1, 14, 56), np.float32), cfg)            # scaled to fit, centred
    assert wide.shape == (1, 28, 28) and wide[0, 0].max() == 0 and wide[0, 14].min() > 0.9


def test_sim_settings_name_every_setting_and_the_version():
    settings = sim_settings(SimConfig(noise_hz=2.0))
    assert settings["sim_version"] == SIM_VERSION and settings["noise_hz"] == 2.0
    assert settings["path_px"] == [list(v) for v in SimConfig().path_px]       # JSON-ready: lists
    assert json.loads(json.dumps(settings)) == settings


def test_sim_dataset_key_follows_the_settings_not_the_run_seed():
    base = DataConfig(name="nmnist_sim")
    assert sim_dataset_key(base) == sim_dataset_key(DataConfig(name="nmnist_sim", root="elsewhere"))
    assert sim_dataset_key(base) != sim_dataset_key(DataConfig(name="nmnist_sim", sim_train_per_class=300))
    assert sim_dataset_key(base) != sim_dataset_key(base, SimConfig(noise_hz=2.0))


def test_mnist_digits_are_mlxtends_500_per_class_read_only():
    images, labels = mnist_digits()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    assert not images.flags.writeable and mnist_digits()[0] is images       # read once, shared
