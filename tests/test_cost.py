"""snn_lib.cost: counts checked by hand on a tiny network whose spikes are worked out below, and
against NeuroBench's own metrics where the package is installed."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from snn_lib.config import ModelConfig
from snn_lib.cost import (CONNECTION_LAYERS, ENERGY_45NM_PJ, energy_estimate, is_spike_input, measure_cost,
                          membrane_updates, parameter_footprint, synaptic_ops)
from snn_lib.model import CSNN


def hand_network() -> CSNN:
    """10x10 input, 3x3 kernels, one channel per stage: 2 -> 1 (8x8, pool 4x4), 1 -> 1 (2x2, pool
    1x1), linear 1 -> 10. beta 0.5, threshold 1, reset by subtraction, every bias 0."""
    net = CSNN(ModelConfig(channels=(1, 1), kernel_size=3, beta=0.5, threshold=1.0, impl="reference"),
               input_size=10)
    with torch.no_grad():
        for layer in (net.conv1, net.conv2, net.fc):
            layer.bias.zero_()
        net.conv1.weight.zero_()
        net.conv1.weight[0, 0] = 2.0          # ON channel: 9 weights of 2; OFF channel: 9 zero weights
        net.conv2.weight.fill_(1.0)
        net.fc.weight[:, 0] = 0.5 * torch.arange(10.0)     # class k: 0.5 k (class 0: a zero weight)
    return net


def hand_frames() -> torch.Tensor:
    """One recording, T = 3: an ON event at (4, 4), nothing, then two ON events at (0, 0)."""
    frames = torch.zeros(3, 1, 2, 10, 10)          # [T, B, 2, H, W]
    frames[0, 0, 0, 4, 4] = 1.0
    frames[2, 0, 0, 0, 0] = 2.0                    # a count of 2: not a spike, so MACs
    return frames


def test_counts_by_hand():
    cost = measure_cost(hand_network(), [(hand_frames(), torch.tensor([0]))])
    conv1, conv2, fc = cost["layers"]
    assert [layer["name"] for layer in cost["layers"]] == ["conv1", "conv2", "fc"]
    assert (cost["recordings"], cost["time_steps"]) == (1, 3)

    # conv1: t=0 the event is in the 3x3 field of 9 outputs, one non-zero weight each: 9 ACs;
    # t=1 nothing (an all-zero frame is spikes); t=2 the count 2 at the corner reaches 1 output: 1 MAC.
    # Dense: 8x8 outputs x (2 x 3 x 3) inputs = 1152 per step.
    assert (conv1["effective_acs"], conv1["effective_macs"], conv1["dense_ops"]) == (9, 1, 3 * 1152)
    assert conv1["spike_input_fraction"] == pytest.approx(2 / 3)
    # conv1 gives 2 at rows/cols 2..4, max-pooled into 4 cells of the 4x4 map: 4 spikes at t=0
    # (U = 2 > 1); t=1 U = 0.5 * 2 - 1 = 0; t=2 the corner cell gets 2 * 2 = 4: 1 spike.
    # Membrane updates: 16 at t=0, the 4 cells 2 -> 0 at t=1, the corner 0 -> 4 at t=2.
    assert conv1["spikes"] == 5 and conv1["spikes_per_step"] == [4, 0, 1]
    assert conv1["spike_rate"] == pytest.approx(5 / (16 * 3))
    assert conv1["activation_sparsity"] == pytest.approx(1 - 5 / 48)
    assert conv1["membrane_updates"] == 16 + 4 + 1

    # conv2 (all weights 1, 4x4 -> 2x2): t=0 each of the 4 windows holds the 4 spikes: 16 ACs;
    # t=2 only window (0, 0) holds the corner spike: 1 AC. Dense 4 x 9 = 36 per step.
    assert (conv2["effective_acs"], conv2["effective_macs"], conv2["dense_ops"]) == (17, 0, 3 * 36)
    # pooled current 4, 0, 1: U = 4 (spike), 0.5 * 4 - 1 = 1 (not > 1), 0.5 * 1 + 1 = 1.5 (spike)
    assert conv2["spikes_per_step"] == [1, 0, 1] and conv2["membrane_updates"] == 3

    # fc: one input spike at t=0 and t=2, 9 non-zero weights (class 0's is 0): 18 ACs; dense 10 per step.
    assert (fc["effective_acs"], fc["effective_macs"], fc["dense_ops"]) == (18, 0, 30)
    # class k gets w = 0.5 k at t=0 and t=2. t=0: k >= 3 fire (w > 1). t=1: U = 0.5 w - 1 for them,
    # only k = 9 (1.25) fires. t=2: U = 0.5 U + w - S: k = 2..9 fire. Class 0 never changes (0).
    assert fc["spikes_per_step"] == [7, 1, 8] and fc["membrane_updates"] == 10 + 9 + 9

    total = cost["total"]
    assert (total["effective_acs"], total["effective_macs"], total["dense_ops"]) == (44, 1, 3594)
    assert total["synaptic_ops"] == 45 and total["spikes"] == 23 and total["neurons"] == 27
    assert total["spike_rate"] == pytest.approx(23 / 81)
    assert cost["ann_twin"]["macs"] == 1198 and cost["ann_twin"]["layers"] == {"conv1": 1152, "conv2": 36,
                                                                               "fc": 10}
    # parameters: conv1 18 + 1, conv2 9 + 1, fc 10 + 10; 4 bytes each, and 20 bytes of neuron
    # constants per LIF layer (beta, threshold, graded spike factor: float32; reset: int64)
    assert (cost["parameters"], cost["footprint_bytes"]) == (49, 49 * 4 + 3 * 20)
    energy = cost["energy_estimate"]
    assert energy["snn_pj"] == pytest.approx(44 * 0.9 + 1 * 4.6)
    assert energy["ann_pj"] == pytest.approx(1198 * 4.6)


def test_counts_do_not_depend_on_the_batch():
    torch.manual_seed(0)
    net = CSNN(ModelConfig(channels=(3, 4), kernel_size=3, beta=0.7, threshold=0.5), input_size=12)
    frames = torch.poisson(torch.full((4, 6, 2, 12, 12), 0.4))         # [T, B, ...] event counts
    frames[:, 2] = (frames[:, 2] > 0).float()                           # one recording of spikes only
    whole = measure_cost(net, [(frames, None)])
    split = measure_cost(net, [(frames[:, :2], None), (frames[:, 2:], None)])
    assert whole["total"] == pytest.approx(split["total"])
    assert whole["total"]["effective_acs"] > 0 and whole["total"]["effective_macs"] > 0


def test_synaptic_ops_of_a_linear_layer_and_refusals():
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, -1.0]]))
    effective, dense = synaptic_ops(layer, torch.tensor([[1.0, 1.0, 0.0], [0.0, 3.0, 1.0]]))
    assert effective.tolist() == [1, 2] and dense == 6
    assert nn.Linear in CONNECTION_LAYERS
    with pytest.raises(TypeError, match="MaxPool2d"):
        synaptic_ops(nn.MaxPool2d(2), torch.zeros(1, 1, 4, 4))


def test_spike_input_and_membrane_updates():
    x = torch.tensor([[0.0, 1.0, -1.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    assert is_spike_input(x).tolist() == [True, False, True]
    mem = torch.tensor([[0.0, 1.0], [0.0, 0.5], [0.0, 0.5]])          # [T, N]
    assert membrane_updates(mem) == 2 + 1 + 0


def test_parameter_footprint_leaves_out_the_neuron_state():
    net = hand_network()
    before = parameter_footprint(net)
    net(hand_frames().repeat(1, 4, 1, 1, 1))                # snnTorch keeps the last membrane in `mem`
    assert parameter_footprint(net) == before == (49, 256)


def test_energy_estimate_uses_horowitz_45nm():
    assert ENERGY_45NM_PJ["fp32_add"] == 0.9 and ENERGY_45NM_PJ["fp32_mult"] == 3.7
    counts = {"effective_acs": 10, "effective_macs": 2, "membrane_updates": 5, "macs": 100}
    out = energy_estimate(counts)
    assert out["snn_pj"] == pytest.approx(10 * 0.9 + 2 * 4.6) and out["ann_pj"] == pytest.approx(460)
    with_neurons = energy_estimate(counts, pj_per_ac=0.1, pj_per_mac=1.0, neuron_updates=True)
    assert with_neurons["snn_pj"] == pytest.approx(1 + 2 + 5)


def test_same_counts_as_neurobench():
    """Every count of snn_lib.cost equals NeuroBench's on one network and data (batch size 1,
    where NeuroBench decides spike or not input per recording and step, as here)."""
    pytest.importorskip("neurobench")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import Footprint, ParameterCount
    from neurobench.metrics.workload import (ActivationSparsity, ActivationSparsityByLayer, MembraneUpdates,
                                             SynapticOperations)
    from neurobench.models import SNNTorchModel

    class BatchFirst(nn.Module):
        """NeuroBench's [B, T, ...] in, output spikes [T, B, 10] out (its wrapper transposes back)."""
        def __init__(self, net: CSNN):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net.forward_reference(x.transpose(0, 1))[0]

    torch.manual_seed(1)
    net = CSNN(ModelConfig(channels=(4, 8), kernel_size=3, beta=0.8, threshold=0.5), input_size=16)
    frames = torch.poisson(torch.full((5, 6, 2, 16, 16), 0.3))        # [B, T, ...] event counts
    frames[2] = (frames[2] > 0).float()                                # a recording of spikes only
    labels = torch.zeros(5, dtype=torch.long)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(frames, labels), batch_size=1)
    bench = Benchmark(SNNTorchModel(BatchFirst(copy.deepcopy(net)), custom_forward=True), loader, [], [],
                      [[Footprint, ParameterCount],
                       [ActivationSparsity, ActivationSparsityByLayer, SynapticOperations, MembraneUpdates]])
    theirs = bench.run(quiet=True)
    ours = measure_cost(net, [(frames.transpose(0, 1), labels)])
    synops = theirs["SynapticOperations"]
    assert ours["total"]["effective_acs"] == pytest.approx(synops["Effective_ACs"])
    assert ours["total"]["effective_macs"] == pytest.approx(synops["Effective_MACs"])
    assert ours["total"]["dense_ops"] == pytest.approx(synops["Dense"])
    assert 0 < synops["Effective_MACs"] and 0 < synops["Effective_ACs"]
    assert ours["total"]["membrane_updates"] == pytest.approx(theirs["MembraneUpdates"])
    assert ours["total"]["activation_sparsity"] == pytest.approx(theirs["ActivationSparsity"])
    by_layer = theirs["ActivationSparsityByLayer"]
    assert [layer["activation_sparsity"] for layer in ours["layers"]] == pytest.approx(
        [by_layer[name] for name in ("lif1", "lif2", "lif3")])
    assert (ours["parameters"], ours["footprint_bytes"]) == (theirs["ParameterCount"], theirs["Footprint"])


def test_snn_eval_reports_the_cost(toy_nmnist, tmp_path):
    """The JSON of snn-eval holds the cost of the same recordings it scored."""
    import json
    import subprocess

    from snn_lib.checkpoint import save_checkpoint
    from snn_lib.config import Config, DataConfig
    from snn_lib.evaluate import evaluate_checkpoint

    cfg = Config(data=DataConfig(root=str(toy_nmnist), cache_dir=str(tmp_path / "cache"), n_time_bins=4),
                 model=ModelConfig(channels=(4, 8)))
    torch.manual_seed(0)
    net = CSNN(cfg.model)
    checkpoint = save_checkpoint(tmp_path / "net.pt", net, None, cfg, 0, [], (4, 2, 34, 34))
    out = tmp_path / "eval.json"
    result = subprocess.run(["snn-eval", f"checkpoint={checkpoint}", f"out={out}", "device=cpu"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    cost = report["cost"]
    assert cost["recordings"] == report["samples"] == 30 and cost["time_steps"] == 4
    assert [layer["name"] for layer in cost["layers"]] == ["conv1", "conv2", "fc"]
    assert cost["parameters"] == sum(p.numel() for p in net.parameters())
    assert cost["ann_twin"]["macs"] == pytest.approx(cost["total"]["dense_ops"] / 4)
    assert "ANN twin" in result.stdout and "ACs" in result.stdout
    assert "cost" not in evaluate_checkpoint(checkpoint, device="cpu", cost=False)


def test_cost_figures():
    from snn_lib.plotting import plot_operations, plot_spike_rates

    cost = measure_cost(hand_network(), [(hand_frames(), torch.tensor([0]))])
    fig = plot_spike_rates(cost)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 3 and list(lines[0].get_ydata()) == pytest.approx([4 / 16, 0, 1 / 16])
    fig = plot_operations(cost)
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    assert len(heights) == 4 * 3 and heights[:3] == [9, 17, 18]            # effective ACs per layer
    assert heights[9:] == [1152, 36, 10]                                    # the ANN twin's MACs
    zeros = [c for c in cost["layers"] if c["effective_macs"] == 0]         # spike inputs: no MACs
    assert zeros and all(np.isnan(h) for h in heights[3:6][-len(zeros):])   # no bar on the log axis ...
    assert [t.get_text() for t in fig.axes[0].texts].count("0") >= len(zeros)   # ... a "0" instead
