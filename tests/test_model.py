import pytest
import torch

from snn_lib.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from snn_lib.config import Config, ModelConfig
from snn_lib.model import CSNN, build_model, flat_features, make_loss, predict, spike_counts
from snn_lib.train import train_step


@pytest.mark.parametrize("impl", ["reference", "fast"])
@pytest.mark.parametrize("size, features", [(34, 1600), (28, 1024)])
def test_fc_input_follows_the_frame_size(size, features, impl):
    assert flat_features(size, 64, 5) == features
    model = build_model(ModelConfig(impl=impl), (4, 2, size, size))
    assert model.fc.in_features == features
    spk, mem = model(torch.rand(4, 3, 2, size, size) * 3)
    assert spk.shape == mem.shape == (4, 3, 10)
    assert set(spk.unique().tolist()) <= {0.0, 1.0}


def test_layer_sizes_are_the_original_architecture():
    model = build_model(ModelConfig(), (25, 2, 34, 34))
    assert (model.conv1.in_channels, model.conv1.out_channels, model.conv1.kernel_size) == (2, 12, (5, 5))
    assert (model.conv2.in_channels, model.conv2.out_channels) == (12, 64)
    assert model.fc.out_features == 10


def test_prediction_is_the_class_with_most_spikes():
    spk = torch.zeros(5, 2, 10)
    spk[:, 0, 7] = 1
    spk[:2, 1, 3] = 1
    spk[:3, 1, 4] = 1
    assert spike_counts(spk)[1, 4] == 3
    assert predict(spk).tolist() == [7, 4]


def test_bad_frame_shapes_are_refused():
    with pytest.raises(ValueError, match="too small"):
        flat_features(10, 64, 5)
    with pytest.raises(ValueError, match="expected frames"):
        build_model(ModelConfig(), (4, 1, 34, 34))


@pytest.mark.parametrize("learn_beta,learn_threshold", [(True, False), (False, True), (True, True)])
def test_learned_beta_and_threshold_are_trained_saved_and_load_into_both_impls(tmp_path, learn_beta,
                                                                                learn_threshold):
    """One scalar per LIF layer, snnTorch's parameter: Adam moves it, the checkpoint holds it (the
    config only its initial value), and the checkpoint loads strictly into either implementation."""
    cfg = Config(exp_id="learn", model=ModelConfig(channels=(3, 5), beta=0.6, threshold=0.9,
                                                 learn_beta=learn_beta, learn_threshold=learn_threshold))
    torch.manual_seed(0)
    net = CSNN(cfg.model, input_size=16)
    with torch.no_grad():
        net.conv1.weight.mul_(4.0)
        net.fc.weight.mul_(20.0)
    names = {f"lif{i}.{n}" for i in (1, 2, 3) for n, on in (("beta", learn_beta), ("threshold", learn_threshold))
             if on}
    params = dict(net.named_parameters())
    assert names <= set(params) and all(params[n].shape == () for n in names)
    assert names <= set(net.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    frames = (torch.rand(5, 6, 2, 16, 16, generator=torch.Generator().manual_seed(1)) < 0.3).float() * 2
    labels = torch.arange(6) % 10
    train_step(net, frames, labels, opt, make_loss("ce_count"))
    initial = {"beta": 0.6, "threshold": 0.9}
    moved = {n for n in names if params[n].item() != pytest.approx(initial[n.split(".")[1]], abs=1e-6)}
    assert moved == names, "every learnable neuron constant should have been trained"
    path = save_checkpoint(tmp_path / "c.pt", net, opt, cfg, 1, [{"epoch": 1}], (5, 2, 16, 16))
    assert names <= set(load_checkpoint(path)["model"])
    outputs = []
    for impl in ("reference", "fast"):
        model, back = model_from_checkpoint(path, impl=impl)       # strict load
        assert back.model.beta == 0.6                                # the config keeps the initial value
        for n in names:
            assert torch.equal(dict(model.named_parameters())[n], params[n])
        with torch.no_grad():
            outputs.append(model(frames))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("pool", ["max", "avg", "sum"])
def test_reset_and_pool_reach_both_implementations(reset, pool):
    """model.reset and model.pool change what the network computes, in both implementations alike."""
    torch.manual_seed(0)
    frames = (torch.rand(6, 3, 2, 16, 16) < 0.3).float() * 3
    out = {}
    for impl in ("reference", "fast"):
        torch.manual_seed(1)
        net = CSNN(ModelConfig(impl=impl, channels=(3, 5), reset=reset, pool=pool), input_size=16)
        assert net.lif1.reset_mechanism == reset
        with torch.no_grad():
            out[impl] = net(frames)
    torch.testing.assert_close(out["fast"], out["reference"], rtol=1e-5, atol=1e-5)
    torch.manual_seed(1)
    default = CSNN(ModelConfig(channels=(3, 5)), input_size=16)
    with torch.no_grad():
        changed = not torch.equal(default(frames)[1], out["fast"][1])
    assert changed == ((reset, pool) != ("subtract", "max"))
