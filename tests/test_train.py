import ctypes.util
import json
import sys

import pytest
import torch

import snn_lib.train as train_module
from snn_lib.config import Config, DataConfig, ModelConfig, TrainConfig
from snn_lib.errors import ConfigError, SnnError
from snn_lib.train import load_checkpoint, model_from_checkpoint, read_metrics_csv, run_training


def tiny_config(root, tmp_path, **train) -> Config:
    return Config(exp_id="tiny", exp_root=str(tmp_path / "exp"), seed=1,
                  data=DataConfig(root=str(root), cache_dir=str(tmp_path / "cache"), n_time_bins=6),
                  model=ModelConfig(channels=(4, 8)),
                  train=TrainConfig(**{"num_epochs": 3, "batch_size": 16, "lr": 1e-2, "device": "cpu",
                                       "num_animations": 2, **train}))


def test_end_to_end_run_learns_and_leaves_every_artifact(toy_nmnist, tmp_path):
    result = run_training(tiny_config(toy_nmnist, tmp_path, num_epochs=4))
    run = result.run_dir
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "train.log", "metrics.csv", "train_loss.png", "test_acc.png", "checkpoints"} <= names
    gifs = sorted(p.name for p in run.glob("spike_bar_*_target*.gif"))
    assert gifs == ["spike_bar_0_target0.gif", "spike_bar_1_target1.gif"]
    rows = read_metrics_csv(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "epoch_seconds",
                             "samples_per_second"]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert result.best_test_acc > 0.3                                 # well above the 10 % of guessing
    log = (run / "train.log").read_text()
    assert "epoch 4/4" in log and "best test accuracy" in log
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert set(best) >= {"model", "optimizer", "config", "epoch", "metrics", "history"}
    assert best["config"]["model"]["channels"] == [4, 8]
    model, cfg = model_from_checkpoint(run / "checkpoints" / "last.pt")
    assert cfg.exp_id == "tiny" and not model.training


def test_resume_after_a_kill_repeats_and_loses_no_epoch(toy_nmnist, tmp_path, monkeypatch):
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=4, num_animations=0)
    real_epoch = train_module.train_epoch
    calls = []

    def dies_in_epoch_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_epoch", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        run_training(cfg)
    monkeypatch.setattr(train_module, "train_epoch", real_epoch)
    run = cfg.run_dir
    assert [r["epoch"] for r in read_metrics_csv(run / "metrics.csv")] == [1, 2]
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 2

    with pytest.raises(ConfigError, match="train.resume=true"):           # never overwrites a run silently
        run_training(cfg)
    cfg.train.resume = True
    result = run_training(cfg)
    assert [r["epoch"] for r in read_metrics_csv(run / "metrics.csv")] == [1, 2, 3, 4]
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert "resuming tiny from epoch 2" in (run / "train.log").read_text()


def test_resumed_run_equals_an_uninterrupted_one(toy_nmnist, tmp_path):
    straight = run_training(tiny_config(toy_nmnist, tmp_path / "a", num_epochs=3, num_animations=0))
    cfg = tiny_config(toy_nmnist, tmp_path / "b", num_epochs=2, num_animations=0)
    run_training(cfg)
    cfg.train.num_epochs, cfg.train.resume = 3, True
    resumed = run_training(cfg)
    for a, b in zip(straight.history, resumed.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["test_acc"] == pytest.approx(b["test_acc"])


def test_resume_with_other_model_settings_is_refused(toy_nmnist, tmp_path):
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=1, num_animations=0)
    run_training(cfg)
    cfg.train.resume, cfg.model.channels = True, (4, 16)
    with pytest.raises(ConfigError, match="model settings differ"):
        run_training(cfg)


def test_missing_or_damaged_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(SnnError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SnnError, match="cannot be read"):
        load_checkpoint(tmp_path / "bad.pt")


def test_evaluate_confusion_matrix_counts_every_sample(toy_nmnist, tmp_path):
    from snn_lib.data import make_loaders
    from snn_lib.model import build_model
    from snn_lib.train import evaluate

    loaders = make_loaders(DataConfig(root=str(toy_nmnist), cache_dir=str(tmp_path), n_time_bins=4))
    torch.manual_seed(0)
    result = evaluate(build_model(ModelConfig(channels=(2, 2)), loaders.frame_shape), loaders.test)
    cm = torch.tensor(result["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 30 and cm.sum(1).tolist() == [3] * 10
    assert result["accuracy"] == pytest.approx(cm.diag().sum().item() / 30)
    json.dumps(result)                                                  # JSON-ready


def test_keep_freed_cpu_memory(monkeypatch):
    """Set on Linux with glibc (this project's CI); refused, not raised, elsewhere."""
    if sys.platform.startswith("linux") and ctypes.util.find_library("c"):
        assert train_module.keep_freed_cpu_memory() is True
    monkeypatch.setattr(train_module.sys, "platform", "darwin")
    assert train_module.keep_freed_cpu_memory() is False
