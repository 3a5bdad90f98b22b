"""What a run promises (README, "What a run promises"): every case of the trust review, each with
its outcome: the exit status or exception, one line naming the culprit, and what is on disk after.

Checkpoints: safe loading, digests, the best.pt/last.pt pair, durable writes. Run folders: one run
at a time, no run overwritten, resume that continues exactly. Nothing silent: blank recordings,
non-finite training, changed settings on resume. One line, not a traceback: bad folders, full
disks, bad files, bad settings, Ctrl-C and SIGTERM, killed builds.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import snn_lib.rundir as rundir_module
import snn_lib.train as train_module
from snn_lib.checkpoint import load_checkpoint, repair_best, save_checkpoint, tensors_digest
from snn_lib.config import Config, DataConfig, ModelConfig
from snn_lib.data import list_recordings, load_split, make_events, read_events, write_events
from snn_lib.data.dataset import BLANK_LIMIT, check_blank
from snn_lib.errors import ConfigError, DataError, SnnError
from snn_lib.model import CSNN
from snn_lib.rundir import LOCK_NAME, RunBusyError, RunLock, atomic_write, log_to, run_artefacts
from snn_lib.train import NonFiniteLoss, RunInterrupted, run_training

from conftest import cli, fails_in_one_line, make_toy_nmnist, one_line, tiny_config

MARKER = "snn_lib_payload_ran"


# ---- 1. loading a checkpoint never runs code -----------------------------------------------------

class Payload:
    """Pickled, it would create the marker file when unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant_payload(path: Path, marker: Path) -> Path:
    """A checkpoint-shaped file whose pickle runs a command when loaded without weights_only."""
    torch.save({"model": {}, "config": {}, "optimizer": None, "epoch": 1, "hook": Payload(marker)}, path)
    return path


def test_a_planted_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / MARKER
    path = plant_payload(tmp_path / "evil.pt", marker)
    with pytest.raises(SnnError, match="could run code when loaded: refused") as err:
        load_checkpoint(path)
    one_line(err.value)
    assert not marker.exists()
    torch.load(path, weights_only=False)              # the test's own check: the payload is real
    assert marker.exists()


def test_snn_eval_refuses_a_payload(tmp_path):
    marker = tmp_path / MARKER
    path = plant_payload(tmp_path / "evil.pt", marker)
    result = cli(["snn-eval", f"checkpoint={path}", f"out={tmp_path / 'eval.json'}"], tmp_path)
    fails_in_one_line(result, "snn-eval", "could run code")
    assert not marker.exists() and not (tmp_path / "eval.json").exists() and "accuracy" not in result.stdout


def test_resume_refuses_a_payload_as_last_pt(toy_nmnist, tmp_path):
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=1, num_animations=0)
    run_training(cfg)
    marker = tmp_path / MARKER
    plant_payload(cfg.run_dir / "checkpoints" / "last.pt", marker)
    cfg.train.resume, cfg.train.num_epochs = True, 2
    with pytest.raises(SnnError, match="last.pt' holds Python objects"):
        run_training(cfg)
    assert not marker.exists()


# ---- 2. one run per folder ----------------------------------------------------------------------

def hold_lock(run_dir: Path) -> subprocess.Popen:
    """Another process holding the run folder's lock (as a second snn-train would)."""
    code = (f"import sys, time; from snn_lib.rundir import RunLock\n"
            f"with RunLock({str(run_dir)!r}):\n    print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_start_on_a_busy_folder_is_refused_naming_the_process(toy_nmnist, tmp_path):
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=1, num_animations=0)
    holder = hold_lock(cfg.run_dir)
    try:
        with pytest.raises(RunBusyError, match=f"in use by another run \\(pid {holder.pid} on ") as err:
            run_training(cfg)
        one_line(err.value)
        assert run_artefacts(cfg.run_dir) == []                       # nothing of the second run written
        result = cli(["snn-train", f"exp_root={cfg.exp_root}", "exp_id=tiny", f"data.root={toy_nmnist}",
                      "train.num_epochs=1"], tmp_path)
        fails_in_one_line(result, "snn-train", f"pid {holder.pid}")
    finally:
        holder.kill()                                                 # kill -9: the lock dies with it
        holder.wait()
    assert run_training(cfg).history[-1]["epoch"] == 1


def test_the_lock_is_exclusive_within_a_process_too(tmp_path):
    with RunLock(tmp_path / "run") as lock:
        assert lock.run_dir == tmp_path / "run" and (tmp_path / "run" / LOCK_NAME).is_file()
        with pytest.raises(RunBusyError, match=f"pid {os.getpid()}"):
            with RunLock(tmp_path / "run"):
                pass
    with RunLock(tmp_path / "run"):                                   # released when the block ends
        pass


# ---- 3. any artefact means a run is there ---------------------------------------------------------

@pytest.mark.parametrize("artefact", ["checkpoints/best.pt", "metrics.csv", "config.yaml", "train.log",
                                      "spike_bar_0_target3.gif"])
def test_a_folder_with_any_artefact_is_never_overwritten(toy_nmnist, tmp_path, artefact):
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=1, num_animations=0)
    path = cfg.run_dir / artefact
    path.parent.mkdir(parents=True)
    path.write_text("precious")
    with pytest.raises(ConfigError, match=f"already holds a run \\({Path(artefact).parts[0]}") as err:
        run_training(cfg)
    one_line(err.value)
    assert path.read_text() == "precious" and run_artefacts(cfg.run_dir) == [Path(artefact).parts[0]]


# ---- 4. best.pt and last.pt stay consistent; writes are durable ------------------------------------

def test_a_kill_between_last_and_best_is_repaired_on_resume(toy_nmnist, tmp_path, monkeypatch):
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=2, num_animations=0)
    import snn_lib.rundir as rundir_module
    real_save, real_evaluate = rundir_module.save_checkpoint, train_module.evaluate
    scores = iter([0.3, 0.3, 0.6, 0.6, 0.6, 0.6])       # validation and test: every epoch improves, then a tie

    def rising(*args, **kwargs):
        return {**real_evaluate(*args, **kwargs), "accuracy": next(scores)}

    def killed_before_best(path, *args, **kwargs):
        if Path(path).name == "best.pt" and args[3] == 2:               # epoch 2's best.pt: killed
            raise KeyboardInterrupt
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", rising)
    monkeypatch.setattr(rundir_module, "save_checkpoint", killed_before_best)
    with pytest.raises(RunInterrupted, match="stopped after epoch 2 .*the last checkpoint holds epoch 2"):
        run_training(cfg)
    monkeypatch.setattr(rundir_module, "save_checkpoint", real_save)
    checkpoints = cfg.run_dir / "checkpoints"
    last, best = load_checkpoint(checkpoints / "last.pt"), load_checkpoint(checkpoints / "best.pt")
    assert (last["epoch"], last["best_epoch"], best["epoch"]) == (2, 2, 1)   # the stale pair the kill left
    cfg.train.resume = True
    run_training(cfg)                                                   # nothing left to train: only the repair
    assert load_checkpoint(checkpoints / "best.pt")["epoch"] == 2
    assert (checkpoints / "best.pt").read_bytes() == (checkpoints / "last.pt").read_bytes()
    assert "best.pt repaired: it now holds epoch 2, copied from last.pt" in (cfg.run_dir / "train.log").read_text()


def test_repair_best_copies_last_when_the_best_epoch_is_the_last(tmp_path):
    cfg = Config(model=ModelConfig(channels=(2, 2)))          # a config that describes the model
    net = CSNN(ModelConfig(channels=(2, 2)), input_size=16)
    last_path = save_checkpoint(tmp_path / "last.pt", net, None, cfg, 4, [{"test_acc": 0.5}], (3, 2, 16, 16), 4)
    save_checkpoint(tmp_path / "best.pt", net, None, cfg, 3, [{"test_acc": 0.4}], (3, 2, 16, 16), 3)
    assert repair_best(last_path, tmp_path / "best.pt", load_checkpoint(last_path)) is True
    assert (tmp_path / "best.pt").read_bytes() == last_path.read_bytes()
    assert repair_best(last_path, tmp_path / "best.pt", load_checkpoint(last_path)) is False   # consistent now
    stale = save_checkpoint(tmp_path / "odd.pt", net, None, cfg, 5, [{"test_acc": 0.5}], (3, 2, 16, 16), 2)
    with pytest.raises(SnnError, match="does not hold epoch 2"):
        repair_best(stale, tmp_path / "best.pt", load_checkpoint(stale))


def test_writes_are_flushed_to_disk_file_and_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(rundir_module.os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}"))
                        or real_fsync(fd))
    atomic_write(tmp_path / "a" / "f.txt", "text")
    assert synced == [str(tmp_path / "a" / "f.txt.tmp"), str(tmp_path / "a")]
    assert (tmp_path / "a" / "f.txt").read_text() == "text" and not (tmp_path / "a" / "f.txt.tmp").exists()


# ---- 5. flipped bytes in the weights are found ----------------------------------------------------

def flip_weight_bytes(path: Path) -> None:
    """Flip bytes inside the largest tensor's storage in the checkpoint's zip (its CRC is not read)."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        header = 30 + len(info.filename.encode()) + len(info.extra)
        start = info.header_offset + header + info.file_size // 2
    data = bytearray(path.read_bytes())
    for i in range(start, start + 8):
        data[i] ^= 0x55
    path.write_bytes(bytes(data))


def test_flipped_weight_bytes_are_detected(toy_nmnist, tmp_path):
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=1, num_animations=0)
    run_training(cfg)
    best = cfg.run_dir / "checkpoints" / "best.pt"
    flip_weight_bytes(best)
    state = torch.load(best, weights_only=True)                       # torch itself loads it silently
    assert tensors_digest(state["model"]) != state["digest"]["model"]
    with pytest.raises(SnnError, match="is damaged: its tensors do not match the digest") as err:
        load_checkpoint(best)
    one_line(err.value)
    result = cli(["snn-eval", f"checkpoint={best}", f"data.root={toy_nmnist}"], tmp_path)
    fails_in_one_line(result, "snn-eval", "is damaged")
    assert "accuracy" not in result.stdout


# ---- 6. blank recordings are reported ------------------------------------------------------------

def write_raw(path: Path, x, y, t, p) -> None:
    """N-MNIST records exactly as given (write_events would sort the timestamps)."""
    t, p = np.asarray(t), np.asarray(p)
    record = np.stack([np.asarray(x), np.asarray(y), (p << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF], 1)
    path.write_bytes(record.astype(np.uint8).tobytes())


def write_blank(path: Path, kind: str) -> None:
    if kind == "one_time":                                            # every event at one instant
        write_raw(path, [5, 6, 7], [5, 6, 7], [1000, 1000, 1000], [1, 0, 1])
    else:                                                             # timestamps going backwards
        write_raw(path, [5, 6, 7], [5, 6, 7], [3000, 2000, 1000], [1, 0, 1])


@pytest.mark.parametrize("kind", ["one_time", "backwards"])
def test_a_few_blank_recordings_are_reported_by_file(tmp_path, kind, caplog):
    root = make_toy_nmnist(tmp_path / "d", {"Train": 3, "Test": 2})
    victim = root / "Train" / "4" / "04001.bin"
    write_blank(victim, kind)
    frames, labels = load_split(DataConfig(root=str(root), cache_dir=str(tmp_path / "c"), n_time_bins=4,
                                           val_from_train=0.0), "train")
    assert len(frames) == 30
    assert "1 of 30 train recordings give no event in any frame" in caplog.text and str(victim) in caplog.text


def test_a_split_of_mostly_blank_recordings_stops_before_training(tmp_path):
    root = make_toy_nmnist(tmp_path / "d", {"Train": 2, "Test": 1})
    for path in sorted((root / "Train").glob("*/*.bin"))[:15]:
        write_blank(path, "one_time")
    cfg = tiny_config(root, tmp_path, num_epochs=1)
    cfg.data.val_from_train = 0.0                                     # every Train/ recording in the train split
    with pytest.raises(DataError, match="15 of the 20 train recordings give no event in any frame") as err:
        run_training(cfg)
    one_line(err.value)
    assert not cfg.run_dir.exists()                                   # nothing written, no empty folder


def test_check_blank_counts_and_limits():
    frames = torch.zeros(4, 2, 2, 3, 3, dtype=torch.uint8)           # [N, T, 2, H, W]
    frames[0, 1, 0, 1, 1] = 1
    recs = [type("R", (), {"path": Path(f"r{i}.bin")})() for i in range(4)]
    assert check_blank(frames[:1], recs[:1], "test") == 0
    with pytest.raises(DataError, match="3 of the 4 test recordings give no event .*r1.bin, r2.bin, r3.bin"):
        check_blank(frames, recs, "test")                              # most of them: fatal
    frames[1, 0, 1, 2, 2] = 3
    assert BLANK_LIMIT == 0.5 and check_blank(frames, recs, "test") == 2     # half: reported, not fatal


# ---- 7. non-finite training stops, with the last good checkpoint kept ------------------------------

@pytest.mark.parametrize("change, key", [("train.lr=inf", "train.lr"), ("model.threshold=inf", "model.threshold"),
                                         ("train.lr=nan", "train.lr"), ("model.surrogate_slope=inf",
                                                                        "model.surrogate_slope")])
def test_non_finite_settings_are_refused(change, key):
    from snn_lib.config import apply_overrides
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        apply_overrides(Config(), [change]).validate()


def test_a_diverging_run_stops_naming_epoch_and_step_and_keeps_the_last_good_checkpoint(toy_nmnist, tmp_path,
                                                                                         monkeypatch):
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=3, num_animations=0)
    real_epoch = train_module.train_epoch
    calls = []

    def diverges_in_epoch_2(net, loader, optimizer, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:                                            # as a far too large train.lr does
            real_step = optimizer.step

            def step_to_inf(*a, **k):
                real_step(*a, **k)
                with torch.no_grad():
                    net.fc.weight[0, 0] = float("inf")
            optimizer.step = step_to_inf
        return real_epoch(net, loader, optimizer, *args, **kwargs)

    monkeypatch.setattr(train_module, "train_epoch", diverges_in_epoch_2)
    with pytest.raises(NonFiniteLoss, match=r"non-finite (at|by) step \d+ of epoch 2 \(train.lr=0.01\); the last "
                                            r"good checkpoint, .*last.pt, holds epoch 1") as err:
        run_training(cfg)
    one_line(err.value)
    assert load_checkpoint(cfg.run_dir / "checkpoints" / "last.pt")["epoch"] == 1
    weights = load_checkpoint(cfg.run_dir / "checkpoints" / "best.pt")["model"]
    assert all(torch.isfinite(t).all() for t in weights.values())


def test_a_non_finite_loss_is_found_at_its_step(toy_nmnist, tmp_path):
    from snn_lib.data import make_loaders
    from snn_lib.model import build_model
    from snn_lib.train import train_epoch
    loaders = make_loaders(DataConfig(root=str(toy_nmnist), cache_dir=str(tmp_path), n_time_bins=3), 8)
    net = build_model(ModelConfig(channels=(2, 2)), loaders.frame_shape)
    steps = []

    def loss_fn(spk, labels):
        steps.append(1)
        return spk.sum() * (float("nan") if len(steps) == 3 else 0.0)

    with pytest.raises(NonFiniteLoss, match="the training loss became non-finite at step 3$"):
        train_epoch(net, loaders.train, torch.optim.SGD(net.parameters(), lr=0.1), loss_fn, tiny_config(
            toy_nmnist, tmp_path).train, torch.device("cpu"))


def test_a_stop_mid_epoch_clears_the_progress_bar_first(toy_nmnist, tmp_path, monkeypatch, capsys):
    """The CLI's one-line message follows the bar; a bar left open puts it mid-line (CI saw
    "epoch 3/40:   0%| ... snn-train: Ctrl-C: ...")."""
    from snn_lib.data import make_loaders
    from snn_lib.model import build_model
    from snn_lib.train import train_epoch
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    loaders = make_loaders(DataConfig(root=str(toy_nmnist), cache_dir=str(tmp_path), n_time_bins=3), 8)
    net = build_model(ModelConfig(channels=(2, 2)), loaders.frame_shape)
    steps = []

    def loss_fn(spk, labels):
        steps.append(1)
        if len(steps) == 2:
            raise KeyboardInterrupt
        return spk.sum() * 0.0

    try:                                   # read stderr where the CLI prints: in the handler, frame alive
        train_epoch(net, loaders.train, torch.optim.SGD(net.parameters(), lr=0.1), loss_fn, tiny_config(
            toy_nmnist, tmp_path).train, torch.device("cpu"))
    except KeyboardInterrupt:
        err = capsys.readouterr().err
    else:
        pytest.fail("the KeyboardInterrupt did not come through")
    assert "train:" in err, err                               # the bar was shown
    assert err.endswith("\r"), repr(err[-200:])              # and cleared: the cursor is back at column 0


# ---- 8. a changed train.lr on resume is used, and logged --------------------------------------------

def test_resume_applies_a_changed_lr_and_logs_it(toy_nmnist, tmp_path, monkeypatch):
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=1, num_animations=0)
    run_training(cfg)
    seen = []
    real_epoch = train_module.train_epoch
    monkeypatch.setattr(train_module, "train_epoch", lambda net, loader, optimizer, *a, **k: seen.append(
        [g["lr"] for g in optimizer.param_groups]) or real_epoch(net, loader, optimizer, *a, **k))
    cfg.train.resume, cfg.train.num_epochs, cfg.train.lr = True, 2, 1e-3
    run_training(cfg)
    assert seen == [[1e-3]]
    assert "setting changed on resume, used from now on: train.lr 0.01 -> 0.001" in \
        (cfg.run_dir / "train.log").read_text()
    last = load_checkpoint(cfg.run_dir / "checkpoints" / "last.pt")
    assert last["config"]["train"]["lr"] == 1e-3 and last["optimizer"]["param_groups"][0]["lr"] == 1e-3
    assert "lr: 0.001" in (cfg.run_dir / "config.yaml").read_text()


def test_resume_with_another_seed_is_refused(toy_nmnist, tmp_path):
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=1, num_animations=0)
    run_training(cfg)
    cfg.train.resume, cfg.seed = True, 2
    with pytest.raises(ConfigError, match="seed=2 differs from the run's seed=1"):
        run_training(cfg)


# ---- 9. nothing to resume is said -----------------------------------------------------------------

def test_resume_of_a_mistyped_exp_id_says_there_is_nothing_to_resume(toy_nmnist, tmp_path):
    run_training(tiny_config(toy_nmnist, tmp_path, num_epochs=1, num_animations=0))
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=1, resume=True)
    cfg.exp_id = "tinny"
    with pytest.raises(ConfigError, match="holds no run to resume: check exp_id \\(runs in .*exp: tiny\\)") as err:
        run_training(cfg)
    one_line(err.value)
    assert not cfg.run_dir.exists()


# ---- 10. one line, not a traceback -----------------------------------------------------------------

@pytest.mark.parametrize("args, parts", [
    (["exp_root=/dev/null/x"], ["cannot create the run folder /dev/null/x/t", "a part of that path is a file"]),
    (["exp_root=/sys/snn_lib_test"], ["cannot create the run folder /sys/snn_lib_test/t", "permission denied"]),
    ([f"exp_id={'x' * 300}"], ["exp_id=", "at most 255 bytes"]),
    (["data.crop=14"], ["model.kernel_size=5 leaves nothing of 14x14 frames"]),
    (["model.kernel_size=0"], ["model.kernel_size=0 is not valid"]),
    (["model.kernel_size=40"], ["model.kernel_size=40 leaves nothing of 34x34 frames"]),
    (["seed=-1"], ["seed=-1 is not valid"]),
    (["seed=4294967296"], ["seed=4294967296 is not valid"]),
    (["train.lr=1e400"], ["train.lr=inf is not valid"]),
])
def test_bad_folders_and_settings_end_in_one_line_before_any_data(tmp_path, args, parts):
    # data.root does not exist: a check that ran after the data would report that instead
    result = cli(["snn-train", "exp_id=t", "data.root=/no/such/data", "data.download=false", *args], tmp_path)
    fails_in_one_line(result, "snn-train", *parts)
    assert "no N-MNIST" not in result.stderr and not (tmp_path / "exp").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_exp_root_ends_in_one_line(toy_nmnist, tmp_path):
    (tmp_path / "ro").mkdir(mode=0o555)
    cfg = tiny_config(toy_nmnist, tmp_path)
    cfg.exp_root = str(tmp_path / "ro")
    with pytest.raises(SnnError, match="permission denied"):
        run_training(cfg)


def test_a_full_disk_keeps_the_last_checkpoint_whole_and_leaves_no_tmp(toy_nmnist, tmp_path, monkeypatch):
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=3, num_animations=0)
    real_fsync = os.fsync
    writes = []

    def disk_full_in_epoch_2(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        writes.append(name)
        if name.endswith("last.pt.tmp") and sum(w.endswith("last.pt.tmp") for w in writes) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(rundir_module.os, "fsync", disk_full_in_epoch_2)
    with pytest.raises(SnnError, match="cannot write .*last.pt: the disk is full; free some space") as err:
        run_training(cfg)
    one_line(err.value)
    checkpoints = cfg.run_dir / "checkpoints"
    assert load_checkpoint(checkpoints / "last.pt")["epoch"] == 1
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.pt", "last.pt"]      # no .tmp left


def test_snn_eval_out_that_is_a_folder_is_refused_before_evaluating(toy_nmnist, tmp_path):
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=1, num_animations=0)
    run_training(cfg)
    (tmp_path / "results").mkdir()
    result = cli(["snn-eval", f"checkpoint={cfg.run_dir / 'checkpoints' / 'best.pt'}",
                  f"out={tmp_path / 'results'}"], tmp_path)
    fails_in_one_line(result, "snn-eval", "out=", "is a folder")
    result = cli(["snn-eval", f"checkpoint={cfg.run_dir / 'checkpoints' / 'best.pt'}", "out=/dev/null/x.json"],
                 tmp_path)
    fails_in_one_line(result, "snn-eval", "cannot write /dev/null/x.json")


def test_snn_make_data_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "afile").write_text("keep me")
    result = cli(["snn-make-data", "out=afile", "train_per_class=1", "test_per_class=1"], tmp_path)
    fails_in_one_line(result, "snn-make-data", "afile is a file, not a folder")
    assert (tmp_path / "afile").read_text() == "keep me"


@pytest.mark.parametrize("make, why", [
    (lambda p: p.symlink_to(p.parent / "nowhere.bin"), "leads nowhere"),
    (lambda p: p.symlink_to(p), "leads nowhere"),                           # a loop
    (lambda p: p.mkdir(), "a folder, not a recording"),
])
def test_bad_entries_among_the_recordings_are_named(tmp_path, make, why):
    root = make_toy_nmnist(tmp_path / "d", {"Train": 1})
    bad = root / "Train" / "2" / "x.bin"
    make(bad)
    with pytest.raises(DataError, match=why) as err:
        list_recordings(root, "train")
    assert str(bad) in one_line(err.value)
    with pytest.raises(DataError, match=why):
        read_events(bad)


def test_too_small_a_holdout_is_named(tmp_path):
    root = make_toy_nmnist(tmp_path / "d", {"Train": 3})
    cfg = DataConfig(root=str(root), test_from_train=0.1, cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataError, match="data.test_from_train=0.1 .* test split .* without recordings of label "
                                        "0, 1, 2, 3, 4, 5, 6, 7, 8, 9") as err:
        load_split(cfg, "test")
    one_line(err.value)


def test_an_unwritable_cache_means_no_cache_with_one_warning(toy_nmnist, tmp_path, caplog):
    cfg = DataConfig(root=str(toy_nmnist), cache_dir="/dev/null/cache", n_time_bins=3)
    frames, labels = load_split(cfg, "test")
    assert len(frames) == 30
    warnings = [r for r in caplog.records if "not cached" in r.getMessage()]
    assert len(warnings) == 1 and "/dev/null/cache" in warnings[0].getMessage()
    sim = DataConfig(name="nmnist_sim", cache_dir="/dev/null/cache", sim_train_per_class=1, sim_test_per_class=1)
    with pytest.raises(DataError, match="cannot build the simulated dataset in /dev/null/cache"):
        load_split(sim, "test")


def test_the_log_file_follows_the_run(tmp_path):
    import logging
    with log_to(tmp_path / "x.log"):
        logging.getLogger("snn_lib").info("hello")
    logging.getLogger("snn_lib").info("not written")
    assert (tmp_path / "x.log").read_text().strip().endswith("hello")


# ---- 11. Ctrl-C and SIGTERM stop in one line, resumable ----------------------------------------------

@pytest.mark.parametrize("sig, status, name", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_a_signal_stops_the_run_in_one_line_and_it_resumes(toy_nmnist, tmp_path, sig, status, name):
    args = ["snn-train", "exp_id=sig", f"data.root={toy_nmnist}", f"data.cache_dir={tmp_path / 'c'}",
            "data.n_time_bins=4", "model.channels=[4,8]", "train.num_epochs=40", "train.num_animations=0",
            "train.device=cpu"]
    # As from a terminal: a shell starts background jobs with SIGINT ignored, the child inherits that,
    # and Python then installs no KeyboardInterrupt handler (so the Ctrl-C case failed under `pytest &`).
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = tmp_path / "exp" / "sig" / "train.log"
    deadline = time.time() + 240
    while time.time() < deadline and not (log.exists() and "epoch 2/40" in log.read_text()):
        time.sleep(0.2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert re.match(f"snn-train: {name}: stopped (during|after) epoch ", last) and "train.resume=true" in last, \
        err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    checkpoints = tmp_path / "exp" / "sig" / "checkpoints"
    epoch = load_checkpoint(checkpoints / "last.pt")["epoch"]     # 1 if the signal came while epoch 2 was saved
    assert epoch >= 1 and f"the last checkpoint holds epoch {epoch}" in last, (epoch, last)
    assert not list(checkpoints.glob("*.tmp"))
    resumed = cli(args[:-2] + [f"train.num_epochs={epoch + 1}", "train.num_animations=0", "train.device=cpu",
                                "train.resume=true"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert load_checkpoint(tmp_path / "exp" / "sig" / "checkpoints" / "last.pt")["epoch"] == epoch + 1


# ---- 12. a killed dataset build leaves no workers and no leftovers ------------------------------------

def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers die with their parent on Linux")
def test_a_killed_build_leaves_no_workers_and_is_cleaned_next_time(tmp_path):
    code = ("from snn_lib.config import DataConfig; from snn_lib.data.nmnist_sim import ensure_sim_dataset; "
            f"ensure_sim_dataset(DataConfig(name='nmnist_sim'), {str(tmp_path)!r})")
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline, workers = time.time() + 120, []
    # mid-build: the recordings go into the build's own temporary folder (make_sim_dataset's
    # .building-<pid>, inside ensure_sim_dataset's), moved into place only at the end
    while time.time() < deadline and not (workers and list(tmp_path.glob("nmnist_sim/.building-*/.building-*/Train"))):
        time.sleep(0.2)
        workers = workers or children_of(proc.pid)
    assert workers, "the build started no worker processes"
    proc.kill()
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.2)
    alive = [w for w in workers if Path(f"/proc/{w}").exists()
             and "Z" not in Path(f"/proc/{w}/stat").read_text().rpartition(")")[2].split()[0]]
    assert alive == [], "workers outlived the killed build"
    leftovers = list((tmp_path / "nmnist_sim").glob(".building-*"))
    assert leftovers                                                    # the kill left its half-built folder
    from snn_lib.data.frames import remove_stale
    assert remove_stale(tmp_path / "nmnist_sim", ".building-*") == leftovers
    assert not list((tmp_path / "nmnist_sim").glob(".building-*"))


# ---- 13. a class with no recordings is an error -----------------------------------------------------

def test_a_label_folder_linked_to_the_split_is_an_error(tmp_path):
    root = make_toy_nmnist(tmp_path / "d", {"Train": 1, "Test": 1})
    for f in (root / "Train" / "7").iterdir():
        f.unlink()
    (root / "Train" / "7").rmdir()
    (root / "Train" / "7").symlink_to("../Train")
    with pytest.raises(DataError, match="has no recordings of label 7") as err:
        list_recordings(root, "train")
    one_line(err.value)
