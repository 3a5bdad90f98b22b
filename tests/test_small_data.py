"""Issue 12: the validation split, the small-data levers (event augmentation, simulated recordings,
learning-rate schedule, weight decay, initial weights, early stopping) and the recipe's config."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_toy_nmnist, tiny_config
from snn_lib.checkpoint import load_checkpoint, save_checkpoint, upgrade_config
from snn_lib.config import AUGMENTATIONS, Config, ConfigError, DataConfig, ModelConfig, apply_overrides
from snn_lib.errors import DataError
from snn_lib.data import (TrainingEpochs, list_recordings, load_sim_mix, load_split, make_loaders, read_events,
                          sample_root, split_recordings)
from snn_lib.data.augment import RandomShift, augment_events, augmentation
from snn_lib.data.frames import frames_of_recordings
from snn_lib.model import build_model
from snn_lib.checkpoint import init_weights
from snn_lib.rundir import read_metrics_csv, selected_on, write_metrics_csv
import snn_lib.train as snn_train
from snn_lib.train import RunInterrupted, make_optimizer, make_scheduler, run_training, stops_early


def paths(recordings) -> set[Path]:
    return {rec.path for rec in recordings}


# ---- the validation split ----------------------------------------------------------------------

def test_validation_split_is_per_class_fixed_and_disjoint(tmp_path):
    root = make_toy_nmnist(tmp_path / "data", {"Train": 20})
    cfg = DataConfig(root=str(root), test_from_train=0.1, val_from_train=0.2)
    splits = split_recordings(cfg, root)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [140, 40, 20]
    assert [sum(r.label == k for r in splits["val"]) for k in range(10)] == [4] * 10    # per class
    train, val, test = (paths(splits[s]) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert splits == split_recordings(cfg, root)                                        # fixed
    no_val = split_recordings(DataConfig(root=str(root), test_from_train=0.1, val_from_train=0.0), root)
    assert paths(no_val["test"]) == test and no_val["val"] == []       # the test set does not move


def test_a_validation_split_too_small_for_any_recording_is_refused_when_used(tmp_path):
    root = make_toy_nmnist(tmp_path / "d", {"Train": 1, "Test": 1})
    cfg = DataConfig(root=str(root), cache_dir=str(tmp_path / "c"), n_time_bins=4)
    assert len(load_split(cfg, "test")[1]) == 10                    # the other splits still load
    with pytest.raises(DataError, match="leaves no validation recording .* set data.val_from_train=0"):
        load_split(cfg, "val")


def test_split_val_needs_a_validation_split(toy_nmnist, tmp_path):
    cfg = DataConfig(root=str(toy_nmnist), cache_dir=str(tmp_path), n_time_bins=4, val_from_train=0.0)
    with pytest.raises(ConfigError, match="no validation split"):
        load_split(cfg, "val")
    cfg.val_from_train = 0.1
    frames, labels = load_split(cfg, "val")
    assert frames.shape[1:] == (4, 2, 34, 34) and sorted(labels.tolist()) == list(range(10))


def test_best_checkpoint_is_chosen_on_validation_and_test_is_for_the_record(toy_nmnist, tmp_path):
    result = run_training(tiny_config(toy_nmnist, tmp_path, num_epochs=3, num_animations=0))
    rows = read_metrics_csv(result.run_dir / "metrics.csv")
    assert {"val_loss", "val_acc", "lr"} <= set(rows[0]) and rows[0]["lr"] == pytest.approx(1e-2)
    chosen = max(rows, key=lambda r: r["val_acc"])
    assert result.selected_on == "val" and result.best_epoch == chosen["epoch"]
    assert result.best_test_acc == pytest.approx(chosen["test_acc"])
    assert load_checkpoint(result.run_dir / "checkpoints" / "best.pt")["epoch"] == chosen["epoch"]
    assert "chosen on the val accuracy" in (result.run_dir / "train.log").read_text()


def test_snn_eval_evaluates_the_validation_split(toy_nmnist, tmp_path):
    from snn_lib.evaluate import evaluate_checkpoint
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=1, num_animations=0)
    cfg.data.augment = ("shift",)
    result = run_training(cfg)
    report = evaluate_checkpoint(result.run_dir / "checkpoints" / "best.pt", split="val", device="cpu", cost=False)
    assert report["samples"] == 10 and report["accuracy"] == pytest.approx(result.history[0]["val_acc"])


def test_selection_on_test_is_explicit_and_logged(toy_nmnist, tmp_path):
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=2, num_animations=0, select_on="test")
    result = run_training(cfg)
    assert result.selected_on == "test"
    assert result.best_epoch == max(result.history, key=lambda r: r["test_acc"])["epoch"]
    assert "chosen on the TEST accuracy (train.select_on=test)" in (result.run_dir / "train.log").read_text()
    cfg.data.val_from_train = 0.0
    assert selected_on(cfg) == "test"                               # no validation split: test, logged


def test_early_stop_ends_the_run_and_a_resume_keeps_it_ended(toy_nmnist, tmp_path):
    assert stops_early([{"epoch": 5}], 3, 2) and not stops_early([{"epoch": 4}], 3, 2)
    assert not stops_early([{"epoch": 9}], 1, 0)                    # 0: off
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=30, num_animations=0, lr=1e-9, early_stop=2)
    result = run_training(cfg)                                      # lr ~0: nothing improves after epoch 1
    assert [r["epoch"] for r in result.history] == [1, 2, 3] and result.best_epoch == 1
    assert "early stop after epoch 3" in (result.run_dir / "train.log").read_text()
    cfg.train.resume = True
    assert len(run_training(cfg).history) == 3                      # finished: nothing more to do


# ---- format compatibility ----------------------------------------------------------------------

def test_metrics_and_checkpoints_of_older_runs_still_load(toy_nmnist, tmp_path):
    old_rows = [{"epoch": 1, "train_loss": 2.0, "train_acc": 0.1, "test_loss": 2.0, "test_acc": 0.2,
                 "epoch_seconds": 1.0, "samples_per_second": 9.0}]
    write_metrics_csv(tmp_path / "metrics.csv", old_rows)           # a history without val_* and lr
    assert read_metrics_csv(tmp_path / "metrics.csv") == old_rows
    old = {"data": {"name": "nmnist"}, "train": {"lr": 0.002}}
    assert upgrade_config(old) == {"data": {"name": "nmnist", "val_from_train": 0.0},
                                   "train": {"lr": 0.002, "select_on": "test"}}
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=1, num_animations=0)
    net = build_model(cfg.model, (6, 2, 34, 34))
    save_checkpoint(tmp_path / "old.pt", net, None, cfg, 1, old_rows, (6, 2, 34, 34), 1)
    state = torch.load(tmp_path / "old.pt", weights_only=True)
    del state["config"]["data"]["val_from_train"], state["config"]["train"]["select_on"]
    torch.save(state, tmp_path / "old.pt")                          # as written before the validation split
    config = load_checkpoint(tmp_path / "old.pt")["config"]
    assert config["data"]["val_from_train"] == 0.0 and config["train"]["select_on"] == "test"


def test_resuming_a_run_from_before_the_validation_split_says_how(toy_nmnist, tmp_path):
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=1, num_animations=0)
    cfg.data.val_from_train = 0.0                                   # what older runs were
    run_training(cfg)
    last = cfg.run_dir / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)                    # as written before the validation split
    del state["config"]["data"]["val_from_train"], state["config"]["train"]["select_on"]
    torch.save(state, last)
    cfg.data.val_from_train, cfg.train.resume, cfg.train.num_epochs = 0.1, True, 2
    with pytest.raises(ConfigError, match=r"data.val_from_train 0.0 -> 0.1\) \(the run was made before the "
                                          r"validation split: resume it with data.val_from_train=0\)"):
        run_training(cfg)
    cfg.data.val_from_train = 0.0                                   # as the refusal says: it resumes
    result = run_training(cfg)
    assert [r["epoch"] for r in result.history] == [1, 2] and result.selected_on == "test"


# ---- the settings ------------------------------------------------------------------------------

@pytest.mark.parametrize("item, message", [
    ("data.val_from_train=1.0", "data.val_from_train=1.0 is not valid"),
    ("data.augment=[flip]", "data.augment=['flip'] is not valid"),
    ("data.augment=[shift,shift]", "without repeats"),
    ("data.sim_mix=-1", "data.sim_mix=-1 is not valid"),
    ("data.sim_mix=4001", "at most 10 x (data.sim_train_per_class"),
    ("data.sim_mix_skip=400", "data.sim_mix_skip=400 is not valid"),
    ("data.sim_mix_epochs=-2", "data.sim_mix_epochs=-2 is not valid"),
    ("train.lr_schedule=step", "train.lr_schedule='step' is not valid"),
    ("train.weight_decay=-0.1", "train.weight_decay=-0.1 is not valid"),
    ("train.select_on=train", "train.select_on='train' is not valid"),
    ("train.early_stop=-1", "train.early_stop=-1 is not valid"),
    ("train.init_from=/no/such.pt", "train.init_from='/no/such.pt' is not valid"),
])
def test_new_settings_are_checked_in_one_line(item, message):
    with pytest.raises(ConfigError, match=None) as err:
        apply_overrides(Config(), [item]).validate()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_sim_mix_needs_a_real_dataset():
    with pytest.raises(ConfigError, match="data.sim_mix"):
        apply_overrides(Config(), ["data.name=nmnist_sim", "data.sim_mix=10"]).validate()


def test_optimizer_and_schedules(toy_nmnist, tmp_path):
    cfg = tiny_config(toy_nmnist, tmp_path).train
    net = build_model(ModelConfig(channels=(4, 8)), (6, 2, 34, 34))
    assert type(make_optimizer(net, cfg)) is torch.optim.Adam and make_scheduler(make_optimizer(net, cfg), cfg) is None
    cfg.weight_decay, cfg.lr_schedule, cfg.num_epochs = 1e-3, "cosine", 4
    opt = make_optimizer(net, cfg)
    assert type(opt) is torch.optim.AdamW and opt.param_groups[0]["weight_decay"] == 1e-3
    sched, lrs = make_scheduler(opt, cfg), []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    assert lrs == pytest.approx([1e-2 * (1 + np.cos(np.pi * e / 4)) / 2 for e in range(4)])
    cfg.lr_schedule = "onecycle"
    opt = make_optimizer(net, cfg)
    sched, lrs = make_scheduler(opt, cfg), []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    assert lrs[0] < max(lrs) <= 1e-2 + 1e-12 and lrs[-1] < max(lrs)    # up, then down


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_a_resumed_scheduled_run_equals_an_uninterrupted_one(toy_nmnist, tmp_path, monkeypatch, schedule):
    settings = dict(num_epochs=3, num_animations=0, lr_schedule=schedule, weight_decay=1e-3)
    straight = run_training(tiny_config(toy_nmnist, tmp_path / "a", **settings))
    cfg = tiny_config(toy_nmnist, tmp_path / "b", **settings)
    real_epoch = snn_train.train_epoch

    def killed_in_epoch_3(*args, **kwargs):
        if kwargs["desc"].startswith("epoch 3/"):
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(snn_train, "train_epoch", killed_in_epoch_3)
    with pytest.raises(RunInterrupted):
        run_training(cfg)
    monkeypatch.setattr(snn_train, "train_epoch", real_epoch)
    assert load_checkpoint(cfg.run_dir / "checkpoints" / "last.pt")["scheduler"]["last_epoch"] == 2
    cfg.train.resume = True
    resumed = run_training(cfg)
    assert [r["lr"] for r in resumed.history] == pytest.approx([r["lr"] for r in straight.history])
    for a, b in zip(straight.history, resumed.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_acc"] == pytest.approx(b["val_acc"])
    cfg.train.num_epochs = 4
    with pytest.raises(ConfigError, match="train.num_epochs=4 differs from the run's 3"):
        run_training(cfg)


def test_init_from_loads_the_weights_and_refuses_another_architecture(toy_nmnist, tmp_path):
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=1, num_animations=0)
    trained = run_training(cfg)
    best = cfg.run_dir / "checkpoints" / "best.pt"
    net = build_model(cfg.model, (6, 2, 34, 34))
    init_weights(net, str(best), cfg, (6, 2, 34, 34))
    for name, tensor in trained.model.state_dict().items():
        assert torch.equal(net.state_dict()[name], tensor)
    other = tiny_config(toy_nmnist, tmp_path, num_epochs=1)
    other.model.channels = (4, 16)
    with pytest.raises(ConfigError, match=r"another architecture \(model.channels \(4, 8\) -> \(4, 16\)\)"):
        init_weights(build_model(other.model, (6, 2, 34, 34)), str(best), other, (6, 2, 34, 34))
    with pytest.raises(ConfigError, match="frame shape"):
        init_weights(build_model(cfg.model, (4, 2, 34, 34)), str(best), cfg, (4, 2, 34, 34))
    fine = tiny_config(toy_nmnist, tmp_path / "fine", num_epochs=1, num_animations=0, init_from=str(best), lr=1e-9)
    tuned = run_training(fine)                                      # lr ~0: the first epoch keeps the weights
    assert tuned.history[0]["test_acc"] == pytest.approx(trained.history[0]["test_acc"])


# ---- event augmentation ------------------------------------------------------------------------

def test_each_augmentation_is_deterministic_per_seed_epoch_and_recording():
    events = read_events(list_recordings(sample_root(), "train")[0].path)
    state = np.random.get_state()
    for name in AUGMENTATIONS:
        a = augment_events(events, [name], 0, 1, 7)
        assert np.array_equal(a, augment_events(events, [name], 0, 1, 7)), name
        assert not np.array_equal(a, augment_events(events, [name], 0, 2, 7)), name      # another epoch
        assert a.dtype == events.dtype and np.all(np.diff(a["t"]) >= 0), name
        assert a["x"].min() >= 0 and a["x"].max() < 34 and a["y"].min() >= 0 and a["y"].max() < 34, name
    assert np.array_equal(state[1], np.random.get_state()[1])       # the caller's generator is untouched
    assert augment_events(events, [], 0, 1, 7) is events
    assert len(augmentation(["noise", "shift"]).transforms) == 2


def test_plot_event_images_shows_each_recording_with_its_events():
    from snn_lib import plotting
    events = read_events(list_recordings(sample_root(), "train")[0].path)
    shifted = augment_events(events, ["drop_event"], 0, 1, 0)
    fig = plotting.plot_event_images({"original": events, "drop_event": shifted}, columns=3)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 2 and len(fig.axes) == 3
    assert panels[1].get_title() == f"drop_event\n{len(shifted)} events"
    assert panels[0].images[0].get_array().sum() == len(events)      # every event, ON and OFF
    assert panels[1].images[0].get_array().sum() == len(shifted)


def test_shift_moves_every_event_by_the_same_offset():
    events = np.zeros(3, dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    events["x"], events["y"], events["t"] = [0, 10, 33], [5, 5, 5], [1, 2, 3]
    np.random.seed(3)
    dx, dy = np.random.randint(-3, 4, size=2)
    np.random.seed(3)
    out = RandomShift()(events)
    kept = [(x + dx, 5 + dy) for x in (0, 10, 33) if 0 <= x + dx < 34]
    assert list(zip(out["x"], out["y"])) == kept


def test_augmented_training_frames_change_by_epoch_and_the_other_splits_do_not(toy_nmnist, tmp_path):
    cfg = DataConfig(root=str(toy_nmnist), cache_dir=str(tmp_path), n_time_bins=4, augment=("shift", "drop_event"))
    loaders = make_loaders(cfg, batch_size=8, seed=5)
    plain = load_split(DataConfig(root=str(toy_nmnist), cache_dir=str(tmp_path), n_time_bins=4), "train")[0]
    loaders.train.set_epoch(1)
    one = loaders.train.frames.clone()
    loaders.train.set_epoch(2)
    assert not torch.equal(one, loaders.train.frames) and not torch.equal(one, plain)
    loaders.train.set_epoch(1)
    assert torch.equal(one, loaders.train.frames)                   # the same epoch, the same frames
    recordings = split_recordings(cfg, toy_nmnist)["train"]
    assert torch.equal(one, frames_of_recordings(recordings, 4, augment=(cfg.augment, 5, 1), workers=2,
                                                 min_parallel=1))  # in worker processes: the same
    assert torch.equal(loaders.test.frames, load_split(cfg, "test")[0])
    assert torch.equal(loaders.val.frames, load_split(cfg, "val")[0])


# ---- simulated recordings mixed in -------------------------------------------------------------

def test_sim_mix_adds_simulated_recordings_for_the_first_epochs(toy_nmnist, tmp_path):
    cfg = DataConfig(root=str(toy_nmnist), cache_dir=str(tmp_path), n_time_bins=4, sim_train_per_class=3,
                     sim_test_per_class=1, sim_mix=15, sim_mix_epochs=1, sim_mix_skip=1)
    sim_frames, sim_labels = load_sim_mix(cfg)
    assert sim_frames.shape == (15, 4, 2, 34, 34) and len(sim_labels) == 15
    loaders = make_loaders(cfg, batch_size=8)
    real = len(load_split(cfg, "train")[1])
    assert isinstance(loaders.train.epoch_data, TrainingEpochs)
    loaders.train.set_epoch(1)
    assert len(loaders.train.labels) == real + 15 and len(loaders.train) == -(-(real + 15) // 8)
    loaders.train.set_epoch(2)
    assert len(loaders.train.labels) == real                        # fine-tuning on the real ones alone


def test_sim_mix_skip_leaves_out_the_first_source_digits(toy_nmnist, tmp_path):
    cfg = DataConfig(root=str(toy_nmnist), cache_dir=str(tmp_path), n_time_bins=4, sim_train_per_class=3,
                     sim_test_per_class=1, sim_mix=20, sim_mix_skip=1)
    from snn_lib.data import dataset_root
    import dataclasses
    sim_root = dataset_root(dataclasses.replace(cfg, name="nmnist_sim", sim_mix=0, sim_mix_skip=0))
    rows = sorted(int(p.stem.split("_")[0]) for p in (sim_root / "Train").rglob("*.bin"))
    first = {min(int(p.stem.split("_")[0]) for p in (sim_root / "Train" / str(k)).glob("*.bin")) for k in range(10)}
    assert len(rows) == 30 and len(first) == 10
    frames, labels = load_sim_mix(cfg)                              # all 20 that are left
    left = load_sim_mix(DataConfig(**{**vars(cfg), "sim_mix": 30, "sim_mix_skip": 0}))
    assert len(labels) == 20 and len(left[1]) == 30
    # the skipped recordings are exactly those of the first digit of each class: 10 frames fewer
    assert sorted(labels.tolist()) == sorted([k for k in range(10) for _ in range(2)])


# ---- the recipe --------------------------------------------------------------------------------

def test_the_small_real_recipe_composes(tmp_path):
    result = subprocess.run(["snn-train", "exp_id=mine", "+experiment=small_real", "data.root=ROOT", "--cfg", "job"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for line in ("sim_mix: 3790", "sim_mix_epochs: 8", "num_epochs: 14", "val_from_train: 0.1", "lr_schedule: cosine",
                 "root: ROOT"):
        assert line in result.stdout
    assert list(tmp_path.iterdir()) == []                           # composed, nothing run


def test_ablation_rows_compose_and_the_two_run_row_fine_tunes_its_first_run(tmp_path):
    import argparse
    import importlib.util
    path = Path(__file__).resolve().parents[1] / "scripts" / "small_real_ablation.py"
    spec = importlib.util.spec_from_file_location("small_real_ablation", path)
    ablation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablation)
    args = argparse.Namespace(root="ROOT", exp_root=str(tmp_path), epochs=10)
    for row in ablation.ROWS:                                       # every row is valid settings
        ablation.row_config(row, 0, args, ["train.threads=1"])
    row = "pre-train, then fine-tune"
    first = ablation.row_config(row, 3, args, [], pretrain=True)
    second = ablation.row_config(row, 3, args, [])
    assert first.run_dir != second.run_dir and first.run_dir.parent.name.endswith("_pretrain")
    assert second.train.init_from == str(first.run_dir / "checkpoints" / "last.pt") and first.seed == second.seed == 3
    assert (first.data.sim_mix, first.train.num_epochs, first.train.lr) == (3790, 10, 0.002)
    assert (second.data.sim_mix, second.train.num_epochs, second.train.lr) == (0, 6, 0.0005)
    assert first.data.test_from_train == second.data.test_from_train == 0.1      # the same test split
