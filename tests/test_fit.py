"""The loop over epochs, ``fit``, apart from any file; the ANN twin trained through it; the run
folder that records it; the course's budget; and the shape of the training module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from snn_lib.ann import ANN
from snn_lib.checkpoint import load_checkpoint, model_from_checkpoint
from snn_lib.config import Config, DataConfig, ModelConfig, TrainConfig
from snn_lib.course import course_budget, course_config
from snn_lib.data import make_loaders
from snn_lib.model import CSNN, build_model, make_loss, predict
from snn_lib.rundir import RunFolder, chosen_epoch, read_metrics_csv
from snn_lib.train import EpochEnd, FitState, fit, run_training, set_seed

from conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def tiny_loaders(root, tmp_path, **data):
    cfg = DataConfig(root=str(root), cache_dir=str(tmp_path / "cache"), n_time_bins=6, **data)
    return make_loaders(cfg, batch_size=16, eval_batch_size=64)


def test_fit_trains_any_model_and_hands_each_epoch_to_on_epoch(toy_nmnist, tmp_path):
    loaders = tiny_loaders(toy_nmnist, tmp_path)
    seen: list[EpochEnd] = []
    for name in ("csnn", "ann"):
        set_seed(1)
        model = build_model(ModelConfig(name=name, channels=(4, 8)), loaders.frame_shape)
        result = fit(model, loaders, TrainConfig(num_epochs=3, lr=1e-2), on_epoch=seen.append)
        assert [r["epoch"] for r in result.history] == [1, 2, 3]
        assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]      # it learns
        assert result.best_epoch == chosen_epoch(result.history, "val")["epoch"]
    assert [e.epoch for e in seen] == [1, 2, 3, 1, 2, 3]
    assert all(e.improved == (e.best_epoch == e.epoch) for e in seen)
    assert isinstance(seen[-1].model, ANN) and seen[-1].history is not seen[0].history


def test_fit_continues_from_a_state_exactly(toy_nmnist, tmp_path):
    """Three epochs at once equal two epochs, stopped, then the third from the state they left."""
    import copy
    loaders = tiny_loaders(toy_nmnist, tmp_path)
    cfg = TrainConfig(num_epochs=3, lr=1e-2, lr_schedule="cosine")
    set_seed(0)
    whole = fit(build_model(ModelConfig(channels=(4, 8)), loaders.frame_shape), loaders, cfg)
    saved = {}

    def stop_after_two(end: EpochEnd) -> None:
        if end.epoch == 2:
            saved.update(model=copy.deepcopy(end.model.state_dict()), history=list(end.history),
                         best=end.best_epoch, optimizer=copy.deepcopy(end.optimizer.state_dict()),
                         scheduler=copy.deepcopy(end.scheduler.state_dict()))
            raise KeyboardInterrupt

    set_seed(0)
    with pytest.raises(KeyboardInterrupt):
        fit(build_model(ModelConfig(channels=(4, 8)), loaders.frame_shape), loaders, cfg, on_epoch=stop_after_two)
    model = build_model(ModelConfig(channels=(4, 8)), loaders.frame_shape)
    model.load_state_dict(saved["model"])
    rest = fit(model, loaders, cfg, start=FitState(saved["history"], saved["best"], saved["optimizer"],
                                                    saved["scheduler"]))
    assert [r["epoch"] for r in rest.history] == [1, 2, 3]
    for a, b in zip(whole.history, rest.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6) and a["lr"] == b["lr"]
        assert a["test_acc"] == b["test_acc"]


def test_ann_twin_sees_the_summed_frame_and_keeps_the_csnn_contract():
    cfg = ModelConfig(name="ann", channels=(4, 8), pool="avg")
    net = build_model(cfg, (5, 2, 34, 34))
    frames = torch.rand(5, 3, 2, 34, 34)
    out, mem = net(frames)
    assert out.shape == (1, 3, 10) and mem.shape == (1, 3, 10)
    torch.testing.assert_close(out, net(frames.sum(0, keepdim=True))[0])           # only the sum counts
    torch.testing.assert_close(out, net(frames.flip(0))[0])
    loss = make_loss("ce_count")(out, torch.tensor([1, 2, 3]))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    assert predict(out).shape == (3,)
    # the same layer names and shapes as the CSNN: weights move between the two
    csnn = CSNN(ModelConfig(channels=(4, 8)))
    assert {k: v.shape for k, v in net.state_dict().items()} == {k: v.shape for k, v in csnn.state_dict().items()}


def test_an_ann_run_is_a_run_like_any_other(toy_nmnist, tmp_path):
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=2)
    cfg.model = ModelConfig(name="ann", channels=(4, 8))
    result = run_training(cfg)
    assert isinstance(result.model, ANN) and not list(cfg.run_dir.glob("spike_bar_*.gif"))   # no spikes to show
    model, back = model_from_checkpoint(cfg.run_dir / "checkpoints" / "best.pt")
    assert isinstance(model, ANN) and back.model.name == "ann"
    assert [r["epoch"] for r in read_metrics_csv(cfg.run_dir / "metrics.csv")] == [1, 2]


def test_the_run_folder_records_last_then_best_metrics_and_curves(toy_nmnist, tmp_path):
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=2)
    loaders = tiny_loaders(toy_nmnist, tmp_path)
    folder = RunFolder(cfg.run_dir, cfg, loaders.frame_shape)
    folder.start()
    model = build_model(cfg.model, loaders.frame_shape)
    result = fit(model, loaders, cfg.train, on_epoch=folder.record)
    assert folder.last_epoch == 2 and not folder.recording
    assert load_checkpoint(folder.last_path)["epoch"] == 2
    assert load_checkpoint(folder.best_path)["epoch"] == result.best_epoch
    assert (cfg.run_dir / "train_loss.png").read_bytes()[:4] == b"\x89PNG"
    assert [r["epoch"] for r in read_metrics_csv(cfg.run_dir / "metrics.csv")] == [1, 2]


def test_chosen_epoch_is_the_first_of_the_best():
    rows = [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.7}, {"epoch": 3, "val_acc": 0.7}]
    assert chosen_epoch(rows, "val")["epoch"] == 2
    assert chosen_epoch([{"epoch": 1, "val_acc": float("nan")}], "val") is None


def test_the_course_budget_is_small_in_fast_mode_and_real_else(tmp_path):
    fast, full = course_budget(fast_epochs=3, full_epochs=15, fast_steps=8, fast=True), course_budget(fast=False)
    assert (fast.n_time_bins, fast.num_epochs, fast.max_steps_per_epoch, fast.device) == (10, 3, 8, "cpu")
    assert (full.n_time_bins, full.num_epochs, full.max_steps_per_epoch, full.exp_root) == (25, 15, 0, "exp")
    cfg = course_config("ch9", fast, lr=1e-3)
    assert isinstance(cfg, Config) and cfg.exp_id.startswith("ch9_") and cfg.data.name == "nmnist_sim"
    assert (cfg.data.n_time_bins, cfg.train.num_epochs, cfg.train.lr, cfg.train.num_animations) == (10, 3, 1e-3, 0)


def test_training_is_a_loop_that_knows_no_figures_and_short_functions():
    tree = ast.parse((ROOT / "snn_lib" / "train.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {m for m in imported if m and "plotting" in m}
    long = {node.name: node.end_lineno - node.lineno + 1 for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > 60}
    assert not long


def test_one_epoch_of_fit_is_run_epoch(toy_nmnist, tmp_path):
    from snn_lib.train import make_optimizer, run_epoch
    loaders = tiny_loaders(toy_nmnist, tmp_path)
    set_seed(1)
    model = build_model(ModelConfig(channels=(4, 8)), loaders.frame_shape)
    cfg = TrainConfig(lr=1e-2)
    row = run_epoch(model, model, loaders, make_optimizer(model, cfg), make_loss("ce_count"), cfg,
                    torch.device("cpu"), epoch=1)
    assert row["epoch"] == 1 and row["lr"] == 1e-2 and 0 <= row["test_acc"] <= 1 and row["val_acc"] == row["val_acc"]
    assert set(row) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr",
                        "epoch_seconds", "samples_per_second"}


def test_fit_result_says_when_early_stopping_ended_it(toy_nmnist, tmp_path, monkeypatch):
    import snn_lib.train as train_module
    from snn_lib.train import FitResult
    loaders = tiny_loaders(toy_nmnist, tmp_path)
    real = train_module.evaluate
    monkeypatch.setattr(train_module, "evaluate", lambda *a, **k: {**real(*a, **k), "accuracy": 0.5})   # no gain
    model = build_model(ModelConfig(channels=(4, 8)), loaders.frame_shape)
    result = fit(model, loaders, TrainConfig(num_epochs=5, early_stop=2, max_steps_per_epoch=1))
    assert isinstance(result, FitResult) and result.stopped_early
    assert [r["epoch"] for r in result.history] == [1, 2, 3] and result.best_epoch == 1


def test_resume_rules_on_configs_alone(tmp_path):
    from snn_lib.config import ConfigError, flat_settings
    from snn_lib.rundir import check_resume, check_same_run, resume_state, train_changes
    old = Config(exp_id="r", exp_root=str(tmp_path))
    check_same_run(old, Config(exp_id="r", exp_root=str(tmp_path), train=TrainConfig(lr=1e-3)), tmp_path)
    with pytest.raises(ConfigError, match=r"data settings differ .*data.n_time_bins 25 -> 10"):
        check_same_run(old, Config(data=DataConfig(n_time_bins=10)), tmp_path)
    with pytest.raises(ConfigError, match="seed=1 differs"):
        check_same_run(old, Config(seed=1), tmp_path)
    with pytest.raises(ConfigError, match="train.lr_schedule='cosine' differs"):
        check_resume(old, Config(train=TrainConfig(lr_schedule="cosine")), tmp_path)
    assert train_changes(old, Config(train=TrainConfig(lr=1e-3, resume=True))) == ["train.lr 0.002 -> 0.001"]
    assert resume_state(old, tmp_path / "r") is None                      # an empty folder: a new run
    with pytest.raises(ConfigError, match="holds no run to resume"):
        resume_state(Config(train=TrainConfig(resume=True)), tmp_path / "r")
    flat = flat_settings(Config(model=ModelConfig(channels=(4, 8))))
    assert flat["model.channels"] == (4, 8) and flat["train.lr"] == 0.002 and "data" not in flat


def test_a_course_run_trains_in_the_budget(tmp_path, monkeypatch):
    from snn_lib.course import Budget, course_run
    budget = Budget(fast=True, n_time_bins=4, num_epochs=1, batch_size=16, max_steps_per_epoch=1, device="cpu",
                    exp_root=str(tmp_path / "exp"))
    data = DataConfig(name="nmnist_sim", sim_train_per_class=3, sim_test_per_class=1, val_from_train=0,
                      cache_dir=str(tmp_path / "cache"))
    result = course_run("tiny", budget, data=data, model=ModelConfig(channels=(2, 4)))
    assert result.run_dir.parent == tmp_path / "exp" and result.run_dir.name.startswith("tiny_")
    assert [r["epoch"] for r in result.history] == [1] and result.loaders.frame_shape[0] == 4


def test_a_split_is_framed_one_way(toy_nmnist, tmp_path):
    from snn_lib.data import load_split, split_frames, split_recordings
    cfg = DataConfig(root=str(toy_nmnist), cache_dir=str(tmp_path / "cache"), n_time_bins=6)
    splits = split_recordings(cfg, toy_nmnist)
    frames, labels = split_frames(cfg, splits["test"], "test")
    same = load_split(cfg, "test", splits)
    assert torch.equal(frames, same[0]) and torch.equal(labels, same[1]) and frames.shape[1:] == (6, 2, 34, 34)
