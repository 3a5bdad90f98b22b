"""snn_lib.export: the CSNN as an NIR graph, the file's round trip, the refusal of what NIR cannot
express, and the graph run again in Norse and snnTorch (each test skips where its package is not
installed: pip install -e '.[neuromorphic]')."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

from snn_lib.config import ModelConfig
from snn_lib.errors import ConfigError, SnnError
from snn_lib.export import (DEFAULT_DT, SIMULATORS, SNNTORCH_DT, adapt, agreement, available_simulators,
                            check_exportable,
                            export_checkpoint, lif_parameters, nir_graph, read_nir, simulate, write_nir)
from snn_lib.model import CSNN


def tiny_network(pool: str = "sum", seed: int = 0, beta: float = 0.7) -> CSNN:
    """A CSNN on 16x16 frames whose every layer spikes on Poisson frames (weights scaled up)."""
    torch.manual_seed(seed)
    net = CSNN(ModelConfig(channels=(4, 6), kernel_size=3, beta=beta, threshold=0.8, pool=pool, reset="zero",
                           impl="reference"), input_size=16)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(2.5)
    return net.eval()


def poisson_frames(n: int = 12, steps: int = 8, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((steps, n, 2, 16, 16), 0.3), generator=g)     # [T, N, 2, H, W]


def test_lif_parameters_from_beta():
    p = lif_parameters(0.75, 1.5, dt=1e-3)
    assert p["tau"] == pytest.approx(4e-3) and p["r"] == pytest.approx(4.0)
    assert (p["v_leak"], p["v_threshold"], p["v_reset"]) == (0.0, 1.5, 0.0)
    # forward Euler of tau dv/dt = -v + r I over dt: v <- (1 - dt/tau) v + (dt/tau) r I = beta v + I
    assert 1 - 1e-3 / p["tau"] == pytest.approx(0.75) and 1e-3 / p["tau"] * p["r"] == pytest.approx(1.0)
    assert lif_parameters(0.0, 1.0)["tau"] == pytest.approx(DEFAULT_DT)
    with pytest.raises(ConfigError, match="beta=1.0"):
        lif_parameters(1.0, 1.0)


@pytest.mark.parametrize("settings, message", [
    (dict(pool="max", reset="zero"), "NIR has no max-pooling node; train with model.pool=avg or model.pool=sum"),
    (dict(pool="avg", reset="subtract"), "train with model.reset=zero"),
])
def test_what_nir_cannot_express_is_refused_in_one_line(settings, message):
    cfg = ModelConfig(**settings)
    with pytest.raises(ConfigError, match=message) as err:
        check_exportable(cfg)
    assert "\n" not in str(err.value)
    check_exportable(ModelConfig(pool="sum", reset="zero"))


@pytest.mark.parametrize("pool", ["avg", "sum"])
def test_graph_and_file_round_trip(pool, tmp_path):
    nir = pytest.importorskip("nir")
    net = tiny_network(pool)
    graph = nir_graph(net, dt=2e-3)
    assert list(graph.nodes) == ["input", "conv1", "pool1", "lif1", "conv2", "pool2", "lif2", "flatten", "fc",
                                 "lif3", "output"]
    assert type(graph.nodes["pool1"]).__name__ == {"avg": "AvgPool2d", "sum": "SumPool2d"}[pool]
    lif = graph.nodes["lif2"]
    assert lif.tau.shape == (6, 2, 2)                          # 16 -> 14 -> 7 -> 5 -> 2
    np.testing.assert_allclose(lif.tau, 2e-3 / (1 - 0.7), rtol=1e-6)
    np.testing.assert_allclose(lif.r, 1 / (1 - 0.7), rtol=1e-6)
    assert np.all(lif.v_threshold == np.float32(0.8)) and np.all(lif.v_reset == 0) and np.all(lif.v_leak == 0)
    np.testing.assert_array_equal(graph.nodes["conv1"].weight, net.conv1.weight.detach().numpy())
    np.testing.assert_array_equal(graph.nodes["fc"].bias, net.fc.bias.detach().numpy())

    path = write_nir(graph, tmp_path / "sub" / "net.nir")
    back = read_nir(path)
    assert set(back.nodes) == set(graph.nodes) and sorted(back.edges) == sorted(graph.edges)
    for name, node in graph.nodes.items():
        for key, value in node.to_dict().items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(back.nodes[name].to_dict()[key], value, err_msg=f"{name}.{key}")
    assert isinstance(back, nir.NIRGraph)


def test_read_nir_names_a_bad_file(tmp_path):
    pytest.importorskip("nir")
    with pytest.raises(SnnError, match="does not exist"):
        read_nir(tmp_path / "missing.nir")
    (tmp_path / "bad.nir").write_text("not hdf5")
    with pytest.raises(SnnError, match="cannot be read as an NIR graph"):
        read_nir(tmp_path / "bad.nir")


def test_adapt_rewrites_into_an_equivalent_graph():
    pytest.importorskip("nir")
    net = tiny_network("avg")
    graph = nir_graph(net)
    norse, changes = adapt(graph, "norse")
    assert type(norse.nodes["pool1"]).__name__ == "SumPool2d" and np.all(norse.nodes["lif1"].r == 1)
    # avg = sum / 4, and r = 1 / (1 - beta) moves into the convolution before it
    factor = 0.25 / (1 - 0.7)
    np.testing.assert_allclose(norse.nodes["conv1"].weight, graph.nodes["conv1"].weight * factor, rtol=1e-5)
    np.testing.assert_allclose(norse.nodes["fc"].bias, graph.nodes["fc"].bias / (1 - 0.7), rtol=1e-5)
    assert any("AvgPool2d -> SumPool2d" in c for c in changes) and any("r = " in c for c in changes)
    assert type(graph.nodes["pool1"]).__name__ == "AvgPool2d"             # the original is left alone
    same, changes = adapt(graph, "snntorch")
    assert changes == [] and np.array_equal(same.nodes["conv1"].weight, graph.nodes["conv1"].weight)
    slower, changes = adapt(graph, "snntorch", dt=1e-3)
    np.testing.assert_allclose(slower.nodes["lif1"].tau, graph.nodes["lif1"].tau * SNNTORCH_DT / 1e-3, rtol=1e-6)
    with pytest.raises(ConfigError, match="simulator='brian'"):
        adapt(graph, "brian")


def _installed(simulator: str) -> None:
    pytest.importorskip("nir")
    pytest.importorskip("nirtorch")
    pytest.importorskip({"norse": "norse.torch", "snntorch": "snntorch.import_nir"}[simulator])
    assert simulator in available_simulators()


@pytest.mark.parametrize("pool", ["avg", "sum"])
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_other_simulators_give_the_same_spikes(simulator, pool, tmp_path):
    """The file, read back and run by another simulator, gives our output spikes step for step."""
    _installed(simulator)
    net = tiny_network(pool)
    frames = poisson_frames()
    with torch.no_grad():
        ours, _ = net(frames)                                               # [T, N, 10]
    assert 0 < ours.mean() < 1                                              # the output layer spikes
    graph = read_nir(write_nir(nir_graph(net), tmp_path / "net.nir"))
    theirs = simulate(graph, simulator, frames)
    assert theirs.shape == ours.shape
    assert agreement(ours, theirs)["same_spike_trains"] == 1.0
    batched = simulate(graph, simulator, frames, batch_size=5)
    torch.testing.assert_close(batched, theirs)


def test_norse_without_the_rewrite_ignores_r(tmp_path):
    """What adapt() is for: Norse 1.1 reads r = 1 whatever the file says, so the input is scaled by
    1 - beta and the network fires far less."""
    _installed("norse")
    net = tiny_network("sum")
    frames = poisson_frames()
    with torch.no_grad():
        ours, _ = net(frames)
    raw = simulate(nir_graph(net), "norse", frames, adapt_graph=False)
    assert raw.sum() < 0.5 * ours.sum()


def test_agreement_counts():
    ours = torch.zeros(3, 2, 4)
    theirs = torch.zeros(3, 2, 4)
    ours[:, 0, 1] = 1                       # recording 0: 3 spikes for class 1
    theirs[:2, 0, 1] = 1                    # 2 of them elsewhere: same prediction, counts differ by 1
    ours[0, 1, 2] = theirs[1, 1, 2] = 1     # recording 1: same count, another step
    result = agreement(ours, theirs)
    assert result["recordings"] == 2 and result["same_prediction"] == 1.0
    assert result["same_counts"] == 0.5 and result["same_spike_trains"] == 0.0
    assert result["mean_abs_count_difference"] == pytest.approx(1 / 8) and result["max_abs_count_difference"] == 1


def test_snn_export_command(tmp_path):
    pytest.importorskip("nir")
    from snn_lib.checkpoint import save_checkpoint
    from snn_lib.config import Config

    net = tiny_network("avg")
    checkpoint = save_checkpoint(tmp_path / "net.pt", net, None, Config(model=net.cfg), 0, [], (8, 2, 16, 16))
    out = tmp_path / "net.nir"
    result = subprocess.run(["snn-export", f"checkpoint={checkpoint}", f"out={out}", "dt=0.001"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"written to {out}" in result.stdout
    graph = read_nir(out)
    np.testing.assert_allclose(graph.nodes["lif3"].tau, 1e-3 / (1 - 0.7), rtol=1e-6)
    assert read_nir(export_checkpoint(checkpoint, tmp_path / "again.nir", 1e-3)).nodes.keys() == graph.nodes.keys()

    maxpool = CSNN(ModelConfig(channels=(4, 6), kernel_size=3, pool="max", reset="zero"), input_size=16)
    refused = save_checkpoint(tmp_path / "max.pt", maxpool, None, Config(model=maxpool.cfg), 0, [], (8, 2, 16, 16))
    result = subprocess.run(["snn-export", f"checkpoint={refused}", f"out={tmp_path / 'max.nir'}"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and not (tmp_path / "max.nir").exists()
    assert result.stderr.strip() == ("snn-export: model.pool=max cannot be exported: NIR has no max-pooling node; "
                                     "train with model.pool=avg or model.pool=sum.")


def test_cost_sweep_and_nir_agreement_scripts(toy_nmnist, tmp_path):
    """The two results scripts of chapter 7 end to end on tiny settings: a sweep that trains an
    NIR-compatible network, then that network exported and run in the installed simulators."""
    import sys
    from pathlib import Path

    scripts = Path(__file__).resolve().parents[1] / "scripts"
    common = [f"data.cache_dir={tmp_path / 'cache'}", "data.n_time_bins=4", "model.channels=[4,8]",
              "model.pool=sum", "model.reset=zero", "train.num_epochs=1", "train.device=cpu"]
    sweep = tmp_path / "sweep.md"
    result = subprocess.run([sys.executable, str(scripts / "cost_sweep.py"), "--root", str(toy_nmnist),
                             "--vary", "model.threshold=0.5", "--exp-root", str(tmp_path / "exp"), "--out", str(sweep),
                             *common], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in sweep.read_text().splitlines() if line.startswith(("| defaults", "| model.threshold"))]
    assert len(rows) == 2 and "python " in sweep.read_text()

    out = tmp_path / "agreement.md"
    checkpoint = tmp_path / "exp" / "run0" / "checkpoints" / "last.pt"
    result = subprocess.run([sys.executable, str(scripts / "nir_agreement.py"), "--checkpoint", str(checkpoint),
                             "--root", str(toy_nmnist), "--cache-dir", str(tmp_path / "cache"), "--out", str(out)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    text = out.read_text()
    assert (tmp_path / "exp" / "run0" / "model.nir").is_file() and "80 real N-MNIST" in text
    for simulator in available_simulators():
        adapted = next(line for line in text.splitlines() if line.startswith(f"| {simulator} | adapted"))
        assert adapted.split("|")[3].strip() == "100.0%"           # the same prediction on every recording
