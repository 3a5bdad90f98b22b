"""The second trust review (issue 25): one case or more for each group of failures it found, named
by the group's number. Each ends as the first review's do: one line that names the setting or
file and says what to do, exit status 2 (143 for SIGTERM), and nothing lost or half-written.

Group 11 (the advice after an early stop) belongs to the training loop's rewrite, not here.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import snn_lib.rundir as rundir_module
from snn_lib.checkpoint import model_from_checkpoint, save_checkpoint, tensors_digest
from snn_lib.config import Config, DataConfig, ModelConfig, TrainConfig, config_to_yaml, setting_docs
from snn_lib.data import load_split, make_events, read_events, write_events
from snn_lib.data.frames import events_to_frames, frames_of_recordings
from snn_lib.data.nmnist import Recording
from snn_lib.errors import ConfigError, DataError, SnnError
from snn_lib.model import CSNN
from snn_lib.rundir import write_metrics_csv

from conftest import cli, fails_in_one_line, make_toy_nmnist, one_line

SIM = ["data.name=nmnist_sim", "data.sim_train_per_class=8", "data.sim_test_per_class=4", "data.n_time_bins=5",
       "train.device=cpu", "train.num_animations=0", "train.batch_size=16", "model.channels=[4,8]"]


def small_checkpoint(path: Path, root: Path | str = "data/nmnist", **model) -> Path:
    """A checkpoint as snn-train writes it (untrained weights): T = 5, 34 x 34 frames, channels 4 and 8."""
    cfg = Config(data=DataConfig(root=str(root), n_time_bins=5, download=False),
                 model=ModelConfig(channels=(4, 8), **model))
    torch.manual_seed(0)
    row = {"epoch": 1, "train_loss": 2.3, "train_acc": 0.1, "val_acc": 0.1, "test_acc": 0.1}
    return save_checkpoint(path, CSNN(cfg.model), None, cfg, 1, [row], (5, 2, 34, 34), best_epoch=1)


def tamper(path: Path, change) -> Path:
    """``change(state)`` applied to a checkpoint, its digest then made to match again."""
    state = torch.load(path, weights_only=True)
    change(state)
    if not isinstance(state.get("digest"), str):
        state["digest"] = {"model": tensors_digest(state["model"]), "optimizer": tensors_digest(state["optimizer"])}
    torch.save(state, path)
    return path


def exportable(path: Path) -> Path:
    return small_checkpoint(path, pool="avg", reset="zero")


# ---- 1. snn-export never destroys an existing file -----------------------------------------------

def test_group1_a_full_disk_leaves_the_old_nir_file_whole(tmp_path, monkeypatch):
    from snn_lib.export import export_checkpoint
    out = tmp_path / "model.nir"
    export_checkpoint(exportable(tmp_path / "a.pt"), out)
    before, other = out.read_bytes(), exportable(tmp_path / "b.pt")
    real_fsync = os.fsync

    def disk_full(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(rundir_module.os, "fsync", disk_full)
    with pytest.raises(SnnError, match="cannot write .*model.nir: the disk is full") as err:
        export_checkpoint(other, out, dt=2e-4)
    one_line(err.value)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt", "model.nir"]


# ---- 2. recordings that become empty give blank frames, never a crash --------------------------------

@pytest.mark.parametrize("setting", [{"crop": 28}, {"denoise_us": 1000}])
def test_group2_a_recording_emptied_by_crop_or_denoise_gives_blank_frames(setting):
    corner = make_events([0], [0], [100], [1])                   # one event, at the sensor's corner
    frames = events_to_frames(corner, 5, **setting)
    side = setting.get("crop", 34)
    assert frames.shape == (5, 2, side, side) and frames.dtype == np.uint8 and frames.max() == 0


def test_group2_a_shift_that_moves_every_event_off_the_sensor_never_crashes(tmp_path):
    write_events(tmp_path / "corner.bin", make_events([0, 0], [0, 0], [100, 9000], [1, 1]))    # at the corner
    recordings = [Recording(tmp_path / "corner.bin", 0)]
    blank = [int(frames_of_recordings(recordings, 5, augment=(("shift",), 0, epoch)).max() == 0)
             for epoch in range(1, 9)]
    assert 0 < sum(blank) < 8            # some draws move the event off the sensor, some keep it


def test_group2_a_split_with_a_few_recordings_cropped_away_warns_and_goes_on(tmp_path, caplog):
    root = make_toy_nmnist(tmp_path / "data", {"Train": 3, "Test": 1})
    edge = root / "Train" / "4" / "04000.bin"
    write_events(edge, make_events([0, 1, 33], [0, 33, 2], [10, 20, 30], [1, 0, 1]))   # all outside the centre
    cfg = DataConfig(root=str(root), cache_dir=str(tmp_path / "cache"), crop=28, n_time_bins=4, val_from_train=0)
    with caplog.at_level(logging.WARNING, logger="snn_lib"):
        frames, labels = load_split(cfg, "train")
    assert frames.shape == (30, 4, 2, 28, 28) and "1 of 30 train recordings give no event" in caplog.text
    assert str(edge) in caplog.text


# ---- 3. data-parallel runs end like single ones ----------------------------------------------------------

@pytest.mark.parametrize("env, part", [
    ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' is not valid"),
    ({"WORLD_SIZE": "2"}, "RANK is not set"),
    ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR is not set"),
    ({"WORLD_SIZE": "2", "RANK": "5", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29555"}, "RANK=5 is not valid"),
    ({"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "x"}, "MASTER_PORT='x' is not"),
])
def test_group3_bad_torchrun_settings_are_refused_before_starting(monkeypatch, env, part):
    from snn_lib.distributed import world_from_env
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=part) as err:
        world_from_env()
    assert "torchrun" in one_line(err.value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_env(rank: int, port: int) -> dict:
    return {**os.environ, "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port)}


def test_group3_a_missing_process_ends_the_rendezvous_in_one_line(tmp_path):
    result = cli(["snn-train", "exp_id=r", *SIM, f"data.cache_dir={tmp_path / 'c'}", "train.rendezvous_timeout_s=2"],
                 tmp_path, env=torchrun_env(1, free_port()), timeout=120)
    fails_in_one_line(result, "snn-train", "did not all start within train.rendezvous_timeout_s=2 s", "process 1 of 2")
    assert not (tmp_path / "exp").exists()


def test_group3_sigterm_stops_a_process_waiting_for_the_others(tmp_path):
    port = free_port()
    proc = subprocess.Popen(["snn-train", "exp_id=w", *SIM, f"data.cache_dir={tmp_path / 'c'}"], cwd=tmp_path,
                            env=torchrun_env(0, port), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:            # process 0 listens while it waits
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-2000:]
    assert err.strip() == "snn-train: SIGTERM: stopped before any work was saved; nothing to resume."
    assert not (tmp_path / "exp").exists()


def test_group3_an_error_in_a_spawned_run_is_said_once_in_one_line(tmp_path):
    (tmp_path / "exp" / "d").mkdir(parents=True)
    (tmp_path / "exp" / "d" / "train.log").write_text("a run was here\n")
    result = cli(["snn-train", "exp_id=d", *SIM, "train.distributed=2"], tmp_path)
    fails_in_one_line(result, "snn-train", "exp/d already holds a run (train.log)", "train.resume=true")


def test_group3_a_killed_process_stops_the_others_in_one_line(tmp_path):
    from torch.distributed.launcher.api import LaunchConfig

    from snn_lib.distributed import launch_processes
    launch = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=2, run_id="kill9", rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", max_restarts=0, start_method="spawn")
    with pytest.raises(SnnError, match=r"process \d of the data-parallel run in exp/x died \(killed by SIGKILL\)") \
            as err:
        launch_processes(launch, signal.raise_signal, signal.SIGKILL, Path("exp/x"))
    assert "train.resume=true" in one_line(err.value)


# ---- 4. two builds into one folder never mix -------------------------------------------------------

def tiny_images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.random((20, 28, 28)) > 0.7).astype(np.float32), np.arange(20) % 10


def test_group4_a_build_into_a_folder_another_build_holds_is_refused(tmp_path):
    from snn_lib.data.nmnist_sim import _folder_lock, make_sim_dataset
    images, labels = tiny_images()
    out = tmp_path / "sim"
    out.mkdir()
    with _folder_lock(out):                     # as a concurrent snn-make-data holds it
        with pytest.raises(DataError, match="being written by another snn-make-data") as err:
            make_sim_dataset(out, 1, 1, 1, images=images, labels=labels, workers=1)
    one_line(err.value)
    assert list(out.iterdir()) == []
    make_sim_dataset(out, 1, 1, 1, images=images, labels=labels, workers=1)
    assert sorted(p.name for p in out.iterdir()) == ["Test", "Train", "settings.json", "sources.csv"]


def test_group4_a_build_that_fails_midway_leaves_no_half_dataset(tmp_path, monkeypatch):
    import snn_lib.data.nmnist_sim as sim_module
    images, labels = tiny_images()
    written = []

    def fails_on_the_fifth(path, events):
        if len(written) == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(path)
        write_events(path, events)

    monkeypatch.setattr(sim_module, "write_events", fails_on_the_fifth)
    (tmp_path / "sim").mkdir()
    with pytest.raises(OSError):
        sim_module.make_sim_dataset(tmp_path / "sim", 1, 1, 1, images=images, labels=labels, workers=1)
    assert list((tmp_path / "sim").iterdir()) == []               # no Train/, no temporary folder


# ---- 5. a checkpoint with a valid digest but a bad structure ----------------------------------------

def _set_model(state, **values):
    state["config"]["model"].update(values)


@pytest.mark.parametrize("change, part", [
    (lambda s: s.update(config="x"), "its config is a str, not a dict"),
    (lambda s: s.pop("frame_shape"), "frame_shape None is not [T, 2, H, H]"),
    (lambda s: s.update(frame_shape="abc"), "frame_shape 'abc' is not"),
    (lambda s: s.update(frame_shape=[5, 2, 10**6, 10**6]), "but the model its config describes has"),
    (lambda s: s.update(model={}), "it holds 0 weights"),
    (lambda s: s.update(digest="abc"), "its digest is not two SHA-256 strings"),
    (lambda s: _set_model(s, pool="bogus"), "model.pool='bogus' is not valid"),
    (lambda s: _set_model(s, channels=[100000, 100000]), "model.channels=[100000, 100000] is not valid"),
    (lambda s: _set_model(s, channels=[4, 9]), "it holds"),
    (lambda s: s["model"].update({"fc.weight": torch.zeros(10, 3)}), "it holds"),
])
def test_group5_a_malformed_checkpoint_is_refused_in_one_line(tmp_path, change, part):
    path = tamper(small_checkpoint(tmp_path / "bad.pt"), change)
    with pytest.raises(SnnError, match="malformed") as err:
        model_from_checkpoint(path)
    assert part in one_line(err.value) and str(path) in str(err.value)


def test_group5_snn_eval_and_init_from_refuse_a_malformed_checkpoint(toy_nmnist, tmp_path):
    path = tamper(small_checkpoint(tmp_path / "bad.pt", toy_nmnist), lambda s: _set_model(s, pool="bogus"))
    fails_in_one_line(cli(["snn-eval", f"checkpoint={path}"], tmp_path), "snn-eval", "malformed", "model.pool")
    from snn_lib.train import init_weights
    cfg = Config(model=ModelConfig(channels=(4, 8)))
    with pytest.raises(SnnError, match="malformed"):
        init_weights(CSNN(cfg.model), str(path), cfg, (5, 2, 34, 34))


# ---- 6. a job that fails in a way nobody foresaw fails alone -------------------------------------------

def test_group6_a_crashing_job_of_a_sweep_is_counted_not_a_traceback(tmp_path):
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(
        "import snn_lib.train\n"
        "def boom(cfg, loaders=None):\n"
        "    raise RuntimeError('an unforeseen failure\\nover two lines')\n"
        "snn_lib.train.run_training = boom\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "hook"), os.environ.get("PYTHONPATH", "")])}
    result = cli(["snn-train", "-m", "seed=0,1", *SIM, f"exp_root={tmp_path / 'exp'}"], tmp_path, env=env)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("snn-train: 2 job(s) of the sweep failed"), lines
    assert "job seed=0: RuntimeError: an unforeseen failure over two lines" in result.stderr


# ---- 7. limits, with their reasons in --help ----------------------------------------------------------

@pytest.mark.parametrize("key, value, part", [
    ("data", {"n_time_bins": 100000}, "data.n_time_bins=100000 is not valid: expected an integer from 1 to 1000"),
    ("train", {"threads": 100000}, "train.threads=100000 is not valid"),
    ("model", {"channels": (100000, 100000)}, "giving at most 100,000,000 weights"),
])
def test_group7_sizes_beyond_the_limits_are_refused(key, value, part):
    parts = {"data": DataConfig(), "model": ModelConfig(), "train": TrainConfig()}
    parts[key] = type(parts[key])(**value)
    with pytest.raises(ConfigError, match="is not valid") as err:
        Config(**parts).validate()
    assert part in one_line(err.value)


def test_group7_the_limits_and_their_reasons_are_in_the_help():
    docs = {key: meaning for key, (_, meaning) in setting_docs().items()}
    assert "At most 1000" in docs["data.n_time_bins"] and "300 ms" in docs["data.n_time_bins"]
    assert "At most 1024" in docs["train.threads"]
    assert "100,000,000 weights" in docs["model.channels"]
    assert "16 MiB" in docs["data.root"] and "refused before it is read" in docs["data.root"]


def test_group7_a_huge_recording_is_refused_before_it_is_read(tmp_path, monkeypatch):
    import tonic
    path = tmp_path / "huge.bin"
    with open(path, "wb") as f:                                 # sparse: no disk used
        f.truncate(17 * 2**20)
    monkeypatch.setattr(tonic.io, "read_mnist_file", lambda *a, **k: pytest.fail("the file was read"))
    with pytest.raises(DataError, match="is more than a recording can hold") as err:
        read_events(path)
    assert str(path) in one_line(err.value)


# ---- 8. no silent nonsense ------------------------------------------------------------------------------

@pytest.mark.parametrize("dt", [float("nan"), float("inf"), -1e-4])
def test_group8_export_refuses_a_time_step_that_is_not_finite(tmp_path, dt):
    from snn_lib.export import export_checkpoint
    with pytest.raises(ConfigError, match="positive, finite number of seconds"):
        export_checkpoint(exportable(tmp_path / "a.pt"), tmp_path / "model.nir", dt=dt)
    assert not (tmp_path / "model.nir").exists()


def test_group8_snn_export_dt_nan_fails_in_one_line(tmp_path):
    path = exportable(tmp_path / "a.pt")
    result = cli(["snn-export", f"checkpoint={path}", f"out={tmp_path / 'm.nir'}", "dt=nan"], tmp_path)
    fails_in_one_line(result, "snn-export", "dt=nan is not valid")
    assert not (tmp_path / "m.nir").exists()


def test_group8_eval_warns_about_non_finite_weights_and_chance(toy_nmnist, tmp_path, caplog):
    from snn_lib.evaluate import evaluate_checkpoint
    path = tamper(small_checkpoint(tmp_path / "nan.pt", toy_nmnist),
                  lambda s: s["model"]["fc.weight"].fill_(float("nan")))
    data = {"cache_dir": str(tmp_path / "cache")}
    with caplog.at_level(logging.WARNING, logger="snn_lib"):
        result = evaluate_checkpoint(path, data, cost=False)
    assert result["samples"] == 30
    assert "NaN or infinite" in caplog.text and "at chance" in caplog.text


def test_group8_at_chance_means_not_above_a_guess_by_two_standard_errors():
    from snn_lib.evaluate import at_chance
    assert at_chance(0.10, 30) and at_chance(0.2, 30) and not at_chance(0.3, 30)
    assert at_chance(0.105, 10000) and not at_chance(0.11, 10000) and not at_chance(0.0, 0)


# ---- 9. snn-eval's settings are checked --------------------------------------------------------------

@pytest.mark.parametrize("setting, part", [({"batch_size": -5}, "batch_size=-5 is not valid"),
                                           ({"batch_size": 0}, "batch_size=0 is not valid"),
                                           ({"device": "tpu"}, "device='tpu' is not valid")])
def test_group9_bad_eval_settings_are_refused(toy_nmnist, tmp_path, setting, part):
    from snn_lib.evaluate import evaluate_checkpoint
    path = small_checkpoint(tmp_path / "a.pt", toy_nmnist)
    with pytest.raises(ConfigError, match="is not valid") as err:
        evaluate_checkpoint(path, {"cache_dir": str(tmp_path / "cache")}, **setting)
    assert part in one_line(err.value)


def test_group9_snn_eval_batch_size_0_fails_in_one_line(toy_nmnist, tmp_path):
    path = small_checkpoint(tmp_path / "a.pt", toy_nmnist)
    result = cli(["snn-eval", f"checkpoint={path}", "batch_size=0", f"data.cache_dir={tmp_path / 'c'}"], tmp_path)
    fails_in_one_line(result, "snn-eval", "batch_size=0 is not valid")
    assert "accuracy" not in result.stdout


# ---- 10. snn-report on damaged run files ------------------------------------------------------------

def run_folder(path: Path, metrics: str | bytes | None = None, config: str | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(config if config is not None else config_to_yaml(Config()))
    if metrics is None:
        write_metrics_csv(path / "metrics.csv", [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "test_acc": 0.5,
                                                  "epoch_seconds": 1.0}])
    elif isinstance(metrics, bytes):
        (path / "metrics.csv").write_bytes(metrics)
    else:
        (path / "metrics.csv").write_text(metrics)
    return path


HEADER = "epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,lr,epoch_seconds,samples_per_second\n"


@pytest.mark.parametrize("metrics, config, part", [
    (HEADER + "abc,1,0.5,,,1,0.5,,1,1\n", None, "line 2: epoch='abc' is not a whole number"),
    (HEADER + "1.5,1,0.5,,,1,0.5,,1,1\n", None, "line 2: epoch='1.5' is not a whole number"),
    (HEADER + "1,x,0.5,,,1,0.5,,1,1\n", None, "line 2: train_loss='x' is not a number"),
    (b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01" * 20, None, "it is not text"),
    (None, "data: [unclosed\n", "config.yaml cannot be read as a run's config"),
    (None, "- a list\n", "config.yaml cannot be read as a run's config"),
    (HEADER, None, "no finished epoch to report"),
    ("", None, "no finished epoch to report"),
])
def test_group10_damaged_run_files_are_named_in_one_line(tmp_path, metrics, config, part):
    from snn_lib.report import load_runs
    run_folder(tmp_path / "run", metrics, config)
    with pytest.raises(SnnError) as err:
        load_runs([tmp_path / "run"])
    assert part in one_line(err.value)


def test_group10_snn_report_on_a_header_only_metrics_file_exits_2(tmp_path):
    run_folder(tmp_path / "run", HEADER)
    fails_in_one_line(cli(["snn-report", str(tmp_path / "run")], tmp_path), "snn-report", "no finished epoch")
    assert not (tmp_path / "run" / "report.md").exists()


def test_group10_a_run_without_epochs_beside_others_is_left_out_with_a_warning(tmp_path, caplog):
    from snn_lib.report import load_runs
    run_folder(tmp_path / "a")
    run_folder(tmp_path / "b", HEADER)
    with caplog.at_level(logging.WARNING, logger="snn_lib"):
        runs = load_runs([tmp_path])
    assert [r.path.name for r in runs] == ["a"] and "left out" in caplog.text and str(tmp_path / "b") in caplog.text


# ---- 11. a stop says the command that really continues the run ---------------------------------------

def test_group11_a_stop_before_anything_was_saved_says_to_start_again(toy_nmnist, tmp_path, monkeypatch):
    """SIGTERM (or Ctrl-C) while the data loads: nothing was written, so the message must not say
    train.resume=true (which is then refused), but to run the same command again; that command works."""
    import snn_lib.train as train_module
    from conftest import tiny_config
    from snn_lib.train import RunInterrupted, run_training

    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=1, num_animations=0)
    real = train_module.make_loaders

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "make_loaders", stopped)
    with pytest.raises(RunInterrupted) as err:
        run_training(cfg)
    message = str(err.value)
    assert "nothing was saved; start it again with the same command" in message and "train.resume=true" not in message
    assert not cfg.run_dir.exists()                               # no folder left that would refuse the rerun
    monkeypatch.setattr(train_module, "make_loaders", real)
    assert [r["epoch"] for r in run_training(cfg).history] == [1]   # the same command, again: it runs
    cfg.train.num_epochs = 2

    def killed_in_epoch_2(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train_epoch", killed_in_epoch_2)
    cfg.train.resume = True
    with pytest.raises(RunInterrupted, match="during epoch 2 .*holds epoch 1\\); continue with train.resume=true"):
        run_training(cfg)


# ---- 12. the error names the setting at fault ----------------------------------------------------------

@pytest.mark.parametrize("data, train, named, not_named", [
    ({"sim_train_per_class": 0}, {}, "data.sim_train_per_class=0 is not valid", "sum"),
    ({"sim_test_per_class": 0}, {}, "data.sim_test_per_class=0 is not valid", "sum"),
    ({"sim_recordings_per_image": -1}, {}, "data.sim_recordings_per_image=-1 is not valid", "sim_mix"),
    ({}, {"weight_decay": 1e30}, "train.weight_decay=1e+30 is not valid", "train.lr="),
    ({}, {"lr": 0.1, "weight_decay": 20.0}, "below 1 / train.lr = 10", "Lower train.lr"),
])
def test_group12_the_error_names_the_setting_at_fault(data, train, named, not_named):
    with pytest.raises(ConfigError) as err:
        Config(data=DataConfig(**data), train=TrainConfig(**train)).validate()
    assert named in one_line(err.value) and not_named not in str(err.value)


# ---- 13. sweep folder names never collide ----------------------------------------------------------------

def test_group13_two_paths_that_differ_by_a_slash_get_two_folders(monkeypatch):
    import hydra.core.hydra_config as hydra_config

    from snn_lib import cli as cli_module
    monkeypatch.setenv(cli_module._SWEPT_ENV, "train.init_from")
    names = []
    for value in ("/w/a/b.pt", "/w/a_b.pt", "/w/a%2Fb.pt"):
        task = [f"train.init_from={value}", "exp_id=s"]
        monkeypatch.setattr(hydra_config.HydraConfig, "get",
                            staticmethod(lambda task=task: SimpleNamespace(overrides=SimpleNamespace(task=task))))
        names.append(cli_module._job_name())
    assert len(set(names)) == 3 and all("/" not in name for name in names), names
    assert names[1] == "train.init_from=%2Fw%2Fa_b.pt"


# ---- 14. snn-make-data refuses odd values -------------------------------------------------------------

@pytest.mark.parametrize("args, part", [(["out="], "out= is empty"),
                                        (["out=sim", "test_per_class=0"], "test_per_class=0 is not valid")])
def test_group14_odd_make_data_values_are_refused_and_nothing_is_written(tmp_path, args, part):
    result = cli(["snn-make-data", "train_per_class=1", *args], tmp_path)
    fails_in_one_line(result, "snn-make-data", part)
    assert list(tmp_path.iterdir()) == []


# ---- 15. one line, even from h5py ----------------------------------------------------------------------

def test_group15_snn_export_to_a_device_fails_in_one_line_and_leaves_it(tmp_path):
    if not Path("/dev/full").is_char_device():
        pytest.skip("no /dev/full here")
    path = exportable(tmp_path / "a.pt")
    result = cli(["snn-export", f"checkpoint={path}", "out=/dev/full"], tmp_path)
    fails_in_one_line(result, "snn-export", "/dev/full")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode) and not Path("/dev/full.tmp").exists()


def test_group15_an_h5py_error_over_several_lines_becomes_one(tmp_path, monkeypatch):
    import nir

    from snn_lib.export import nir_graph, write_nir

    def fails(*args, **kwargs):
        raise OSError("Unable to synchronously create file\n(file write failed: errno = 28)")

    monkeypatch.setattr(nir, "write", fails)
    graph = nir_graph(CSNN(ModelConfig(channels=(4, 8), pool="avg", reset="zero")))
    with pytest.raises(SnnError, match="cannot write the NIR graph") as err:
        write_nir(graph, tmp_path / "m.nir")
    assert "errno = 28" in one_line(err.value) and not (tmp_path / "m.nir").exists()


# ---- 16. a signal after the work is done changes nothing ------------------------------------------------

def test_group16_sigterm_after_the_work_is_done_keeps_exit_status_0(tmp_path):
    code = ("import os, signal, time\n"
            "from snn_lib.cli import _guarded\n"
            f"_guarded('snn-eval', lambda: open({str(tmp_path / 'done')!r}, 'w').close())\n"
            "os.kill(os.getpid(), signal.SIGTERM)\n"
            "time.sleep(0.5)\n")
    result = cli([sys.executable, "-c", code], tmp_path, timeout=120)
    assert result.returncode == 0 and result.stderr == "", (result.returncode, result.stderr[-2000:])
    assert (tmp_path / "done").exists()


def test_group8_a_run_that_stays_at_chance_is_warned_about(toy_nmnist, tmp_path, caplog):
    from conftest import tiny_config

    from snn_lib.train import run_training
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=3, num_animations=0, lr=1e10, max_steps_per_epoch=2)
    with caplog.at_level(logging.WARNING, logger="snn_lib"):
        run_training(cfg)
    assert "the training accuracy has been at chance for 3 epochs" in caplog.text and "lower train.lr" in caplog.text


def test_group8_the_alarm_is_raised_once_at_chance_and_when_the_loss_explodes():
    from snn_lib.evaluate import training_alarm
    rows = [{"epoch": e, "train_loss": 2.3, "train_acc": 0.1} for e in range(1, 6)]
    assert [training_alarm(rows[:e], 1000) is not None for e in range(1, 6)] == [False, False, True, False, False]
    good = [{"epoch": e, "train_loss": loss, "train_acc": 0.9} for e, loss in enumerate((2.3, 1.0, 30.0, 40.0), 1)]
    assert [training_alarm(good[:e], 1000) is not None for e in range(1, 5)] == [False, False, True, False]
    assert "exploded to 30" in training_alarm(good[:3], 1000)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_group8_every_float_setting_refuses_nan_and_inf(value):
    floats = [key for key, (default, _) in setting_docs().items() if isinstance(default, float)]
    assert {"train.lr", "model.beta", "train.rendezvous_timeout_s"} <= set(floats), floats    # the new one too
    for key in floats:
        part, name = key.split(".")
        cfg = Config()
        setattr(getattr(cfg, part), name, value)
        with pytest.raises(ConfigError, match=f"{key}=") as err:
            cfg.validate()
        one_line(err.value)


def test_group15_snn_eval_to_a_device_is_refused_before_evaluating(tmp_path):
    if not Path("/dev/full").is_char_device():
        pytest.skip("no /dev/full here")
    result = cli(["snn-eval", f"checkpoint={tmp_path / 'none.pt'}", "out=/dev/full"], tmp_path)
    fails_in_one_line(result, "snn-eval", "out=/dev/full is not a regular file")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode) and not Path("/dev/full.tmp").exists()


def test_the_checks_are_functions_a_caller_can_use(tmp_path):
    """validate_checkpoint, check_dt and relayed called directly, as the commands call them."""
    from snn_lib.checkpoint import load_checkpoint, validate_checkpoint
    from snn_lib.distributed import relayed
    from snn_lib.export import check_dt
    cfg = Config(data=DataConfig(n_time_bins=5), model=ModelConfig(channels=(2, 4)))
    model = CSNN(cfg.model)
    path = save_checkpoint(tmp_path / "ok.pt", model, None, cfg, 1, [], (5, 2, 34, 34))
    state = load_checkpoint(path)
    validate_checkpoint(state, path)                                          # a good one passes
    with pytest.raises(SnnError, match="is malformed .*frame_shape"):
        validate_checkpoint({**state, "frame_shape": [5, 2, 34, 30]}, path)
    with pytest.raises(SnnError, match="is malformed .*weights"):
        validate_checkpoint({**state, "config": {**state["config"], "model": {**state["config"]["model"],
                                                                               "channels": [3, 4]}}}, path)
    check_dt(1e-4)
    for bad in (float("nan"), float("inf"), 0.0, -1e-3):
        with pytest.raises(ConfigError, match="dt="):
            check_dt(bad)
    err = SnnError("process 0 said so")
    assert not relayed(err)
    err.relayed = True
    assert relayed(err)
