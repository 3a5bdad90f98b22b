"""Checkpoints (snn_lib.checkpoint): self-describing, atomic, loaded strictly into either implementation."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from snn_lib.checkpoint import FORMAT, load_checkpoint, model_from_checkpoint, model_weights, save_checkpoint
from snn_lib.config import Config, ModelConfig
from snn_lib.model import CSNN

FRAMES = (4, 2, 20, 20)


def saved(tmp_path, **model):
    cfg = Config(exp_id="ck", model=ModelConfig(channels=(3, 5), **model))
    torch.manual_seed(0)
    net = CSNN(cfg.model, input_size=20)
    opt = torch.optim.Adam(net.parameters())
    history = [{"epoch": 1, "test_acc": 0.5}]
    path = save_checkpoint(tmp_path / "c" / "last.pt", net, opt, cfg, 1, history, FRAMES)
    return path, net, cfg


def test_round_trip_describes_itself(tmp_path):
    path, net, cfg = saved(tmp_path)
    assert path.is_file() and not path.with_name("last.pt.tmp").exists()
    state = load_checkpoint(path)
    assert state["snn_lib_format"] == FORMAT and state["epoch"] == 1 and state["frame_shape"] == list(FRAMES)
    assert state["config"]["model"]["channels"] == [3, 5] and state["metrics"] == {"epoch": 1, "test_acc": 0.5}
    assert all(t.device.type == "cpu" for t in state["model"].values())
    model, back = model_from_checkpoint(path)
    assert back == cfg and not model.training
    for name, tensor in net.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor)


def test_beta_and_threshold_live_in_the_config_not_the_weights(tmp_path):
    path, net, _ = saved(tmp_path, beta=0.7, threshold=0.8)
    keys = set(load_checkpoint(path)["model"])
    assert keys == {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc.weight", "fc.bias"}
    for impl in ("reference", "fast"):                 # loads strictly into either implementation
        model, cfg = model_from_checkpoint(path, impl=impl)
        assert cfg.model.impl == impl and model.cfg.beta == 0.7 and float(model.lif1.beta) == pytest.approx(0.7)
    other = CSNN(ModelConfig(channels=(3, 5), beta=0.2), input_size=20)
    other.load_state_dict(net.state_dict())           # other neuron constants, same weights, strict
    assert other.cfg.beta == 0.2


def test_format_1_checkpoints_still_load(tmp_path):
    path, net, _ = saved(tmp_path)
    state = load_checkpoint(path)
    old = dict(state["model"])
    for i in (1, 2, 3):                                # format 1 kept snnTorch's buffers in the weights
        old.update({f"lif{i}.beta": torch.tensor(0.5), f"lif{i}.threshold": torch.tensor(1.0),
                    f"lif{i}.graded_spikes_factor": torch.tensor(1.0), f"lif{i}.reset_mechanism_val": torch.tensor(0)})
    assert set(model_weights({**state, "model": old})) == set(state["model"])
    format_1 = {k: v for k, v in state.items() if k not in ("digest", "best_epoch")}
    torch.save({**format_1, "model": old, "snn_lib_format": 1}, tmp_path / "old.pt")
    model, _ = model_from_checkpoint(tmp_path / "old.pt")
    assert torch.equal(model.fc.weight, net.fc.weight)


def test_model_weights_of_a_current_checkpoint_are_its_state_dict(tmp_path):
    path, net, _ = saved(tmp_path)
    state = load_checkpoint(path)
    assert model_weights(state).keys() == net.state_dict().keys()


def test_fast_and_reference_from_one_checkpoint_agree(tmp_path):
    path, _, _ = saved(tmp_path)
    fast, _ = model_from_checkpoint(path, impl="fast")
    ref, _ = model_from_checkpoint(path, impl="reference")
    frames = (torch.rand(4, 2, 2, 20, 20) < 0.3).float() * 3
    with torch.no_grad():
        torch.testing.assert_close(fast(frames), ref(frames), rtol=1e-5, atol=1e-5)
    assert dataclasses.replace(fast.cfg, impl="reference") == ref.cfg
