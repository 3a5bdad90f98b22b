import ctypes.util
import json
import sys

import pytest
import torch

import snn_lib.device as device_module
import snn_lib.train as train_module
from snn_lib.checkpoint import load_checkpoint, model_from_checkpoint
from snn_lib.config import DataConfig, ModelConfig, TrainConfig
from snn_lib.errors import ConfigError, SnnError
from snn_lib.device import resolve_device
from snn_lib.evaluate import evaluate_checkpoint
from snn_lib.model import CSNN, make_loss
from snn_lib.rundir import read_metrics_csv, save_spike_animations, write_metrics_csv
from snn_lib.train import RunResult, forward_backward, prepare_model, run_training, set_seed, train_step

from conftest import tiny_config


def test_end_to_end_run_learns_and_leaves_every_artifact(toy_nmnist, tmp_path):
    result = run_training(tiny_config(toy_nmnist, tmp_path, num_epochs=4))
    run = result.run_dir
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "train.log", "metrics.csv", "train_loss.png", "test_acc.png", "checkpoints"} <= names
    gifs = sorted(p.name for p in run.glob("spike_bar_*_target*.gif"))
    assert gifs == ["spike_bar_0_target0.gif", "spike_bar_1_target1.gif"]
    rows = read_metrics_csv(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
                             "lr", "epoch_seconds", "samples_per_second"]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert result.best_test_acc > 0.3                                 # well above the 10 % of guessing
    log = (run / "train.log").read_text()
    assert "epoch 4/4" in log and "chosen on the val accuracy" in log
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
    from snn_lib.evaluate import evaluate

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
        assert device_module.keep_freed_cpu_memory() is True
    monkeypatch.setattr(device_module.sys, "platform", "darwin")
    assert device_module.keep_freed_cpu_memory() is False


def small_model(seed=0):
    torch.manual_seed(seed)
    net = CSNN(ModelConfig(channels=(3, 4)), input_size=16)
    with torch.no_grad():
        net.fc.weight.mul_(20.0)                      # output spikes on random input
    return net


def batch(seed=1, T=4, B=6):
    g = torch.Generator().manual_seed(seed)
    frames = (torch.rand(T, B, 2, 16, 16, generator=g) < 0.3).float() * 2
    return frames, torch.arange(B) % 10


def test_forward_backward_leaves_the_gradients_of_the_loss():
    net, (frames, labels) = small_model(), batch()
    loss, spk = forward_backward(net, frames, labels, make_loss("ce_count"))
    assert not loss.requires_grad and not spk.requires_grad and spk.shape == (4, 6, 10)
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    expected = torch.autograd.grad(make_loss("ce_count")(net(frames)[0], labels), list(net.parameters()))
    for (name, g), e in zip(grads.items(), expected):
        torch.testing.assert_close(g, e, msg=name)
    assert loss == make_loss("ce_count")(spk, labels)


def test_train_step_is_zero_grad_forward_backward_and_an_optimizer_step():
    a, b = small_model(), small_model()
    frames, labels = batch()
    loss_fn = make_loss("ce_count")
    opt_a, opt_b = torch.optim.Adam(a.parameters(), lr=1e-2), torch.optim.Adam(b.parameters(), lr=1e-2)
    for p in a.parameters():
        p.grad = torch.full_like(p, 99.0)             # stale gradients must not leak into the step
    loss, spk = train_step(a, frames, labels, opt_a, loss_fn)
    spk_b, _ = b(frames)                              # the same step by hand
    by_hand = loss_fn(spk_b, labels)
    by_hand.backward()
    opt_b.step()
    assert loss == by_hand.detach() and torch.equal(spk, spk_b.detach())
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert not torch.equal(a.fc.weight, small_model().fc.weight)


def test_set_seed_makes_weights_and_draws_repeatable():
    set_seed(7)
    first = (CSNN(ModelConfig()).fc.weight.clone(), torch.rand(3))
    set_seed(7)
    assert torch.equal(CSNN(ModelConfig()).fc.weight, first[0]) and torch.equal(torch.rand(3), first[1])


def test_prepare_model_moves_and_lays_out_the_model():
    net = small_model()
    prepared = prepare_model(net, TrainConfig(channels_last=True), torch.device("cpu"))
    assert prepared is net and net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    compiled = prepare_model(small_model(), TrainConfig(compile=True), torch.device("cpu"))
    assert compiled is not net and hasattr(compiled, "_orig_mod")            # torch.compile's wrapper


def test_metrics_csv_round_trip(tmp_path):
    rows = [{"epoch": 1, "train_loss": 2.5, "train_acc": 0.1, "test_loss": 2.0, "test_acc": 0.25,
             "epoch_seconds": 3.0, "samples_per_second": 100.0}]
    write_metrics_csv(tmp_path / "metrics.csv", rows)
    assert read_metrics_csv(tmp_path / "metrics.csv") == rows
    assert not (tmp_path / "metrics.csv.tmp").exists()


def test_save_spike_animations_one_per_class_first(tmp_path):
    from snn_lib.data import FrameLoader
    frames = (torch.rand(5, 4, 2, 16, 16) < 0.2).to(torch.uint8)
    loader = FrameLoader(frames, torch.tensor([3, 3, 1, 7, 1]), 2)
    paths = save_spike_animations(small_model(), loader, tmp_path, 3, torch.device("cpu"))
    assert [p.name for p in paths] == ["spike_bar_0_target3.gif", "spike_bar_1_target1.gif",
                                       "spike_bar_2_target7.gif"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert save_spike_animations(small_model(), loader, tmp_path, 0, torch.device("cpu")) == []


def test_run_result_holds_the_best_model_and_the_data(toy_nmnist, tmp_path):
    result = run_training(tiny_config(toy_nmnist, tmp_path, num_epochs=2, num_animations=0))
    assert isinstance(result, RunResult) and result.run_dir == tmp_path / "exp" / "tiny"
    best = max(result.history, key=lambda r: r["val_acc"])              # chosen on validation, first best
    assert result.best_test_acc == best["test_acc"] and result.best_epoch == best["epoch"]
    state = load_checkpoint(result.run_dir / "checkpoints" / "best.pt")
    assert state["epoch"] == best["epoch"]
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(tensor, state["model"][name])
    assert len(result.loaders.test.labels) == 30


def test_evaluate_checkpoint_rebuilds_model_and_data(toy_nmnist, tmp_path):
    cfg = tiny_config(toy_nmnist, tmp_path, num_epochs=1, num_animations=0)
    cfg.data.test_from_train = 0.25                     # 50 train / 10 validation / 20 held out of Train/
    result = run_training(cfg)
    report = evaluate_checkpoint(result.run_dir / "checkpoints" / "best.pt", device="cpu")
    assert report["split"] == "test" and report["samples"] == 20
    assert report["accuracy"] == pytest.approx(result.history[-1]["test_acc"])
    train = evaluate_checkpoint(result.run_dir / "checkpoints" / "best.pt", split="train", device="cpu")
    assert train["samples"] == 50                       # the held-out recordings stay out
    val = evaluate_checkpoint(result.run_dir / "checkpoints" / "best.pt", split="val", device="cpu")
    assert val["samples"] == 10 and val["accuracy"] == pytest.approx(result.history[-1]["val_acc"])
    other = evaluate_checkpoint(result.run_dir / "checkpoints" / "best.pt", {"test_from_train": 0.0},
                                device="cpu")
    assert other["samples"] == 30                        # Test/ of the same folder


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="train.device=cuda but PyTorch sees no CUDA GPU"):
            resolve_device("cuda")
