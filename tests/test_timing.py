"""snn_lib.timing: bin shuffles and reversal by hand, and the anytime readout against runs on
the first k frames of a tiny random network."""

from __future__ import annotations

import pytest
import torch

from snn_lib.config import ModelConfig
from snn_lib.data import FrameLoader
from snn_lib.model import CSNN, predict
from snn_lib.timing import (anytime_accuracy, anytime_predictions, bin_permutations, cumulative_predictions,
                            permute_bins, prefix_cost, reverse_bins, shuffle_bins)


def numbered_frames(n: int = 3, steps: int = 4) -> torch.Tensor:
    """``[n, steps, 2, 2, 2]`` where every pixel of recording i's bin t holds 10 i + t."""
    value = 10 * torch.arange(n).view(n, 1) + torch.arange(steps).view(1, steps)
    return value.view(n, steps, 1, 1, 1).expand(n, steps, 2, 2, 2).clone()


def tiny_network(seed: int = 0) -> CSNN:
    torch.manual_seed(seed)
    net = CSNN(ModelConfig(channels=(2, 3), kernel_size=3, beta=0.5, threshold=0.5), input_size=10)
    with torch.no_grad():
        net.fc.weight.mul_(4.0)            # enough output spikes for the predictions to differ by k
    return net.eval()


def test_permute_bins_by_hand():
    frames = numbered_frames(2, 3)
    order = torch.tensor([[2, 0, 1], [1, 1, 0]])
    out = permute_bins(frames, order)
    assert out[:, :, 0, 0, 0].tolist() == [[2, 0, 1], [11, 11, 10]]
    assert out.shape == frames.shape and out.dtype == frames.dtype
    with pytest.raises(ValueError, match="expected"):
        permute_bins(frames, order[:, :2])


def test_shuffle_bins_keeps_each_recordings_bins():
    frames = numbered_frames(5, 6)
    out = shuffle_bins(frames, seed=3)
    values = out[:, :, 0, 0, 0]                                     # [N, T]
    for i in range(5):                                              # the same bins, another order
        assert sorted(values[i].tolist()) == list(range(10 * i, 10 * i + 6))
    assert not torch.equal(out, frames)
    assert torch.equal(out, shuffle_bins(frames, seed=3))           # seeded
    assert not torch.equal(out, shuffle_bins(frames, seed=4))
    orders = bin_permutations(5, 6, seed=3)
    assert len({tuple(o) for o in orders.tolist()}) > 1             # an order per recording
    assert torch.equal(values - 10 * torch.arange(5).view(5, 1), orders)


def test_reverse_bins():
    assert reverse_bins(numbered_frames(2, 3))[:, :, 1, 1, 1].tolist() == [[2, 1, 0], [12, 11, 10]]


def test_cumulative_predictions_by_hand():
    spk = torch.zeros(3, 1, 3)                 # [T, B, C]
    spk[0, 0, 2] = 1                           # after 1 step: class 2
    spk[1, 0, 0] = 1                           # after 2: a tie of 0 and 2, the lowest wins
    spk[2, 0, 0] = 1                           # after 3: class 0
    assert cumulative_predictions(spk)[:, 0].tolist() == [2, 0, 0]


def test_anytime_equals_runs_on_the_first_k_frames():
    net = tiny_network()
    g = torch.Generator().manual_seed(1)
    frames = (torch.rand(6, 5, 2, 10, 10, generator=g) < 0.3).to(torch.uint8)   # [N, T, 2, H, W]
    labels = torch.arange(6) % 3
    preds, seen = anytime_predictions(net, FrameLoader(frames, labels, batch_size=4))
    assert preds.shape == (5, 6) and torch.equal(seen, labels)
    for k in range(1, 6):
        spk, _ = net(frames[:, :k].float().transpose(0, 1))            # [k, N, 10]
        assert torch.equal(preds[k - 1], predict(spk))
    assert len({tuple(p) for p in preds.tolist()}) > 1                  # k changes something
    accuracy = anytime_accuracy(net, FrameLoader(frames, labels, batch_size=4))
    assert torch.allclose(accuracy, (preds == labels).float().mean(1))


def test_prefix_cost_grows_with_the_steps_and_equals_measure_cost():
    from snn_lib.cost import measure_cost
    net = tiny_network()
    frames = (torch.rand(4, 5, 2, 10, 10, generator=torch.Generator().manual_seed(2)) < 0.3).to(torch.uint8)
    labels = torch.zeros(4, dtype=torch.int64)
    costs = [prefix_cost(net, frames, labels, k)["total"] for k in range(1, 6)]
    macs = [c["effective_macs"] + c["effective_acs"] for c in costs]
    assert all(a < b for a, b in zip(macs, macs[1:]))
    full = measure_cost(net, FrameLoader(frames, labels, 4))["total"]
    assert costs[-1] == full
    # causal: stopping after k steps costs what the first k steps of the full run cost
    first = prefix_cost(net, frames, labels, 2)["layers"][0]["spikes_per_step"]
    assert first == measure_cost(net, FrameLoader(frames, labels, 4))["layers"][0]["spikes_per_step"][:2]


def test_cost_per_step_sums_to_the_prefix_costs():
    from snn_lib.timing import cost_per_step
    net = tiny_network()
    frames = (torch.rand(4, 5, 2, 10, 10, generator=torch.Generator().manual_seed(2)) < 0.3).to(torch.uint8)
    frames[:, 3] *= 2                                  # counts of 2 at step 3: MACs, not ACs
    labels = torch.zeros(4, dtype=torch.int64)
    steps = cost_per_step(net, FrameLoader(frames, labels, 3))
    assert all(len(v) == 5 for v in steps.values())
    for k in range(1, 6):
        total = prefix_cost(net, frames, labels, k)["total"]
        for key in ("effective_acs", "effective_macs", "spikes"):
            assert sum(steps[key][:k]) == pytest.approx(total[key])
    assert steps["effective_macs"][3] > 0 and steps["effective_macs"][0] == 0


def test_plots_draw_what_they_are_given():
    from snn_lib.plotting import plot_anytime, plot_time_probes
    rows = [{"setting": f"T={t}", "T": t, "trained_on": "bins in order", "tested_on": "in order",
             "mean": 0.9, "std": 0.01, "min": 0.89, "max": 0.91, "seeds": [0, 1], "seed_0": 0.89, "seed_1": 0.91}
            for t in (1, 5, 25)]
    rows.append({**rows[-1], "setting": "shuffled", "tested_on": "shuffled", "mean": 0.5})
    fig = plot_time_probes(rows)
    left, right = fig.axes
    assert list(left.lines[0].get_xdata()) == [1, 5, 25]
    means = [round(float(c.lines[0].get_ydata()[0])) for c in right.containers]
    assert means == [90, 50]                                            # in order, then shuffled
    fig = plot_anytime([0.2, 0.5, 0.9], std=[0.1, 0.1, 0.0], operations=[1.0, 2.0, 4.0])
    ax, twin = fig.axes
    assert list(ax.lines[0].get_ydata()) == [20.0, 50.0, 90.0]
    assert list(twin.lines[0].get_ydata()) == [25.0, 50.0, 100.0]


def test_tied_readouts_by_hand():
    from snn_lib.timing import tied_readouts
    spk = torch.zeros(2, 3, 4)                 # [T, B, C]
    spk[0, 0, 1] = spk[1, 0, 1] = 1            # recording 0: class 1 twice, a winner
    spk[0, 1, 0] = spk[0, 1, 3] = 1            # recording 1: classes 0 and 3 once each, a tie
    assert tied_readouts(spk).tolist() == [False, True, True]     # recording 2: no spike, a tie
