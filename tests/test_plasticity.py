"""Pair-based STDP (snn_lib.plasticity) and the Diehl & Cook-style network (snn_lib.stdp_network)."""

import math

import pytest
import torch

from snn_lib.errors import ConfigError
from snn_lib.plasticity import STDPConfig, learning_window, stdp_traces, stdp_update, trace_decay, window_formula
from snn_lib.stdp_network import (
    DiehlCookConfig, DiehlCookNet, StdpResult, assign_labels, classify, digit_split, exp_filter, fit_and_score, init_network,
    normalise_weights, poisson_events, present, responses, run_digits, simulate, train_network,
)

CFG = STDPConfig(tau_pre_ms=20.0, tau_post_ms=10.0, a_plus=0.01, a_minus=0.012, dt_ms=1.0)


def run_pair(pre_steps, post_steps, cfg=CFG, num_steps=40):
    """Total weight change of one synapse (float64) for spikes at the given steps, step by step."""
    pre_trace, post_trace = torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    total = 0.0
    for t in range(num_steps):
        pre = torch.tensor([[float(t in pre_steps)]], dtype=torch.float64)
        post = torch.tensor([[float(t in post_steps)]], dtype=torch.float64)
        pre_trace, post_trace = stdp_traces(pre, post, pre_trace, post_trace, cfg)
        total += stdp_update(pre, post, pre_trace, post_trace, cfg).item()
    return total


def test_traces_step_by_step():
    pre_trace, post_trace = torch.zeros(1, 1), torch.zeros(1, 1)
    got = []
    for spike in (1.0, 0.0, 0.0, 1.0, 0.0):
        pre_trace, post_trace = stdp_traces(torch.tensor([[spike]]), torch.tensor([[spike]]), pre_trace, post_trace, CFG)
        got.append((pre_trace.item(), post_trace.item()))
    d20, d10 = math.exp(-1 / 20), math.exp(-1 / 10)
    expected = [(1.0, 1.0), (d20, d10), (d20 ** 2, d10 ** 2), (d20 ** 3 + 1, d10 ** 3 + 1),
                (d20 ** 4 + d20, d10 ** 4 + d10)]
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected))


def test_hand_computed_pairs():
    # pre at 0 ms, post at 10 ms: a_plus * exp(-10 / 20) = 0.01 * 0.6065307
    assert run_pair({0}, {10}) == pytest.approx(0.006065307, abs=1e-9)
    # post at 0 ms, pre at 10 ms: -a_minus * exp(-10 / 10) = -0.012 * 0.3678794
    assert run_pair({10}, {0}) == pytest.approx(-0.004414553, abs=1e-9)
    # both in one step: a_plus - a_minus
    assert run_pair({5}, {5}) == pytest.approx(-0.002, abs=1e-12)
    # two pre spikes (0, 5 ms) before one post (10 ms): all-to-all pairs add, 0.01 * (e^-0.5 + e^-0.25)
    assert run_pair({0, 5}, {10}) == pytest.approx(0.013853314, abs=1e-9)
    # pre 0, post 10, pre 15: potentiation of the first pair, depression 0.012 * e^-0.5 of the second
    assert run_pair({0, 15}, {10}) == pytest.approx(0.006065307 - 0.007278368, abs=1e-9)


def test_update_sums_over_the_batch_in_pre_post_layout():
    pre_spk = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])         # [B=2, n_pre=3]
    post_spk = torch.tensor([[0.0, 1.0], [1.0, 1.0]])                  # [B=2, n_post=2]
    pre_trace = torch.tensor([[1.0, 0.5, 2.0], [0.25, 1.0, 0.0]])
    post_trace = torch.tensor([[0.5, 1.0], [1.0, 3.0]])
    dw = stdp_update(pre_spk, post_spk, pre_trace, post_trace, STDPConfig(a_plus=1.0, a_minus=0.1))
    # dw[i, j] = sum_b pre_trace[b, i] * post_spk[b, j] - 0.1 * pre_spk[b, i] * post_trace[b, j]
    expected = torch.tensor([[0.25 - 0.05, 1.25 - 0.1],
                             [1.0 - 0.1, 1.5 - 0.3],
                             [0.0 - 0.05, 2.0 - 0.1]])
    torch.testing.assert_close(dw, expected)


def test_window_sign_and_exponential_decay():
    offsets = torch.arange(-50, 51, 5)
    delta_t, dw = learning_window(offsets, CFG)
    torch.testing.assert_close(dw, window_formula(delta_t, CFG), rtol=0, atol=1e-12)
    assert (dw[delta_t > 0] > 0).all() and (dw[delta_t < 0] < 0).all()
    pos, neg = dw[delta_t > 0], dw[delta_t < 0].flip(0)                # both ordered by growing |delta_t|
    torch.testing.assert_close(pos[1:] / pos[:-1], torch.full((len(pos) - 1,), math.exp(-5 / 20), dtype=torch.float64))
    torch.testing.assert_close(neg[1:] / neg[:-1], torch.full((len(neg) - 1,), math.exp(-5 / 10), dtype=torch.float64))


def test_window_refuses_offsets_off_the_grid():
    with pytest.raises(ConfigError, match="delta_t_ms"):
        learning_window([0.5], STDPConfig(dt_ms=1.0))


def test_labels_are_the_class_of_the_highest_mean_response():
    labels = torch.tensor([0] * 10 + [1] * 2 + [2] * 3)
    counts = torch.zeros(15, 4)
    counts[:10, 0] = 3.0        # neuron 0: 3 spikes per class-0 digit (30 in all) ...
    counts[10:12, 0] = 5.0      # ... 5 per class-1 digit (10 in all): the mean, not the sum, decides
    counts[12:, 1] = 2.0        # neuron 1: class 2 only
    counts[:10, 2] = 1.0        # neuron 2: class 0 only
    counts[12:, 2] = 0.5
    assert assign_labels(counts, labels, n_classes=4).tolist() == [1, 2, 0, 0]   # silent neuron 3: the first class


def test_labels_never_name_a_class_without_digits():
    counts = torch.zeros(4, 2)                           # nobody fires
    assert assign_labels(counts, torch.tensor([2, 2, 3, 3]), n_classes=4).tolist() == [2, 2]


def test_classify_by_mean_rate_of_each_label_group():
    neuron_labels = torch.tensor([0, 0, 1, 3])           # class 2: no neuron
    counts = torch.tensor([[4.0, 0.0, 3.0, 0.0],         # group 0 mean 2, group 1 mean 3 -> 1 (the sum says 0)
                           [4.0, 4.0, 3.0, 0.0],         # group 0 mean 4 -> 0
                           [0.0, 0.0, 0.0, 1.0],         # -> 3
                           [0.0, 0.0, 0.0, 0.0]])        # all silent: never the empty class 2
    assert classify(counts, neuron_labels, n_classes=4).tolist() == [1, 0, 3, 0]


def test_poisson_events_have_the_rate_of_each_pixel():
    images = torch.tensor([[0.0, 0.5, 1.0]]).repeat(400, 1)
    t, b, i = poisson_events(images, rate_hz=100.0, steps=200, dt_ms=1.0, gen=torch.Generator().manual_seed(0))
    per_pixel = torch.bincount(i, minlength=3) / 400      # mean spikes per digit: 0, 10, 20 expected
    assert per_pixel[0] == 0
    torch.testing.assert_close(per_pixel[1:], torch.tensor([10.0, 20.0]), rtol=0.05, atol=0)
    assert t.min() >= 0 and t.max() < 200 and b.max() == 399


def test_simulated_learning_is_the_rule_summed_over_steps_and_batch():
    """The network's event-driven STDP equals stdp_update applied step by step and summed."""
    cfg = DiehlCookConfig(n_neurons=3, present_ms=60, inhibition_mv=2.0, max_rate_hz=200.0,
                          stdp=STDPConfig(a_plus=0.01, a_minus=0.005)).validate()
    net = init_network(cfg, n_inputs=6, seed=1)
    net.W.fill_(0.5).add_(torch.rand(6, 3, generator=torch.Generator().manual_seed(2)) * 0.2)
    images = torch.tensor([[1.0, 1.0, 1.0, 0.2, 0.0, 0.0], [0.0, 0.5, 1.0, 1.0, 1.0, 0.3]])
    events = poisson_events(images, 400.0, 60, 1.0, torch.Generator().manual_seed(3))
    before = DiehlCookNet(W=net.W.clone(), theta=net.theta.clone(), cfg=cfg)
    spikes = simulate(net, events, batch=2, steps=60, learn=True)                       # [T, B, n]
    assert spikes.sum() > 5
    s_in = torch.zeros(60, 2, 6)
    s_in.index_put_(events, torch.ones(len(events[0])), accumulate=True)
    pre_trace, post_trace, dw = torch.zeros(2, 6), torch.zeros(2, 3), torch.zeros(6, 3)
    for t in range(60):
        pre_trace, post_trace = stdp_traces(s_in[t], spikes[t], pre_trace, post_trace, cfg.stdp)
        dw += stdp_update(s_in[t], spikes[t], pre_trace, post_trace, cfg.stdp)
    torch.testing.assert_close(net.W, (before.W + dw).clamp(0, cfg.w_max))
    torch.testing.assert_close(net.theta, cfg.theta_plus_mv * spikes.sum((0, 1)), rtol=1e-4, atol=0)
    # learning off changes nothing
    frozen = DiehlCookNet(W=before.W.clone(), theta=before.theta.clone(), cfg=cfg)
    assert simulate(frozen, events, batch=2, steps=60, learn=False).sum() > 5
    assert torch.equal(frozen.W, before.W) and torch.equal(frozen.theta, before.theta)


def test_a_tiny_network_learns_a_repeated_pattern():
    pattern = torch.zeros(16)
    pattern[:6] = 1.0                                                     # 6 of 16 inputs on
    cfg = DiehlCookConfig(n_neurons=2, present_ms=100, max_rate_hz=200.0, norm_total=16 * 0.15, epochs=1,
                          batch_size=4, stdp=STDPConfig(a_plus=0.02, a_minus=0.0005))
    net = init_network(cfg, n_inputs=16, seed=0)
    w0 = normalise_weights(net.W.clone(), cfg.norm_total)
    train_network(net, pattern.repeat(40, 1), seed=0)
    on_share = lambda W: W[:6].sum(0) / W.sum(0)                          # [n]: share of each neuron's weight on the pattern
    assert (on_share(w0) < 0.5).all()                                     # about 6/16 at the start
    assert on_share(net.W).max() > 0.9                                    # the neuron that fired has learned it
    torch.testing.assert_close(net.W.sum(0), torch.full((2,), cfg.norm_total))
    assert net.theta.max() > 0


def test_config_refuses_bad_settings():
    with pytest.raises(ConfigError, match="n_neurons"):
        DiehlCookConfig(n_neurons=0).validate()
    with pytest.raises(ConfigError, match="max_rate_hz"):
        DiehlCookConfig(max_rate_hz=2000.0).validate()
    with pytest.raises(ConfigError, match="tau_pre_ms"):
        STDPConfig(tau_pre_ms=0).validate()


def test_trace_decay_is_the_fraction_kept_per_step():
    assert trace_decay(20.0, 1.0) == pytest.approx(math.exp(-1 / 20))
    assert trace_decay(10.0, 0.5) == pytest.approx(math.exp(-0.05))


def two_patterns(copies: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0: the first 8 of 16 inputs on; class 1: the last 8 (``copies`` of each, interleaved)."""
    left = torch.cat([torch.ones(8), torch.zeros(8)])
    images = torch.stack([left, left.flip(0)]).repeat(copies, 1)
    return images, torch.tensor([0, 1]).repeat(copies)


def test_fit_and_score_separates_two_patterns_end_to_end():
    cfg = DiehlCookConfig(n_neurons=4, present_ms=60, max_rate_hz=200.0, norm_total=16 * 0.15, batch_size=4,
                          theta_plus_mv=0.5, stdp=STDPConfig(a_plus=0.02, a_minus=0.0005))
    result = fit_and_score(cfg, two_patterns(20), two_patterns(5), seed=0)
    assert isinstance(result, StdpResult)
    assert result.accuracy == 1.0
    assert set(result.neuron_labels.tolist()) == {0, 1}
    assert min(result.train_s, result.label_s, result.test_s) >= 0
    # learning off: responses leave the network as it is
    W, theta = result.net.W.clone(), result.net.theta.clone()
    counts = responses(result.net, two_patterns(3)[0], batch_size=4)                       # [6, 4]
    assert counts.shape == (6, 4) and counts.sum() > 0
    assert torch.equal(W, result.net.W) and torch.equal(theta, result.net.theta)


def test_quiet_digits_are_shown_again_at_a_higher_rate():
    cfg = DiehlCookConfig(n_neurons=2, present_ms=50, max_rate_hz=1.0, rate_boost_hz=400.0, max_boosts=2)
    net = init_network(cfg, n_inputs=16, seed=0)
    net.W.fill_(0.3)
    images = torch.ones(3, 16)
    assert present(net, images, cfg.max_rate_hz, learn=False, gen=torch.Generator().manual_seed(0)).sum() == 0
    counts = run_digits(net, images, learn=False, gen=torch.Generator().manual_seed(0))     # [3, 2]
    assert (counts.sum(1) >= cfg.min_spikes).all()


def test_digit_split_is_mlxtends_digits_by_class():
    split = digit_split(train_per_class=3, test_per_class=2)
    (x_train, y_train), (x_test, y_test) = split["train"], split["test"]
    assert x_train.shape == (30, 784) and x_test.shape == (20, 784)
    assert 0 <= x_train.min() and x_train.max() <= 1 and x_train.max() > 0.9
    assert torch.bincount(y_train).tolist() == [3] * 10 and torch.bincount(y_test).tolist() == [2] * 10


def test_plasticity_figures():
    from matplotlib.figure import Figure

    from snn_lib.plotting import plot_accuracy_vs_neurons, plot_learning_window, plot_receptive_fields
    delta_t, dw = learning_window(torch.arange(-40, 41, 10), CFG)
    fig = plot_learning_window(delta_t, {"rule": dw, "formula": window_formula(delta_t, CFG)})
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 4                      # 2 curves + 2 axis lines
    fig = plot_receptive_fields(torch.rand(784, 12), labels=torch.arange(12) % 10, columns=5)
    assert isinstance(fig, Figure) and fig.axes[0].images[0].get_array().shape == (3 * 29 - 1, 5 * 29 - 1)
    rows = [{"neurons": 100, "accuracy_mean": 0.8, "accuracy_std": 0.01, "accuracy_min": 0.79, "accuracy_max": 0.81, "n": 3},
            {"neurons": 400, "accuracy_mean": 0.86, "accuracy_std": float("nan"), "accuracy_min": 0.86,
             "accuracy_max": 0.86, "n": 1}]
    fig = plot_accuracy_vs_neurons(rows, anchor={100: 82.9, 6400: 95.0})
    assert isinstance(fig, Figure) and fig.axes[0].get_xscale() == "log"


def test_exp_filter_is_the_trace_step_by_step():
    s = (torch.rand(100, 3, 5, generator=torch.Generator().manual_seed(0)) < 0.2).float()
    x, expected = torch.zeros(3, 5), []
    for t in range(100):
        x = x * 0.9 + s[t]
        expected.append(x)
    torch.testing.assert_close(exp_filter(s, 0.9, block=7), torch.stack(expected))


def test_stdp_digits_script_fast_mode_writes_its_results(tmp_path, monkeypatch):
    import importlib.util
    import json
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "stdp_digits.py"
    spec = importlib.util.spec_from_file_location("stdp_digits", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(sys, "argv", ["stdp_digits.py", "--fast", "--fields", "--out", str(tmp_path / "stdp_fast"),
                                      "--set", "stdp.a_plus=0.004"])
    script.main()
    data = json.loads((tmp_path / "stdp_fast.json").read_text())
    assert data["command"].startswith("python scripts/stdp_digits.py --fast") and data["fast"] is True
    row, = data["rows"]
    assert row["neurons"] == 20 and row["n"] == 1 and 0 <= row["accuracy_mean"] <= 1
    assert data["settings"]["stdp"]["a_plus"] == 0.004 and data["train_digits"] == 200
    window = {r["delta_t_ms"]: r["dw"] for r in data["window"]}
    assert window[10.0] > 0 > window[-10.0] and window[10.0] > window[20.0]
    assert "| 20 |" in (tmp_path / "stdp_fast.md").read_text()
    assert np_load_shape(tmp_path / "stdp_fast_fields_20.npz") == (784, 20)


def np_load_shape(path):
    import numpy as np
    return np.load(path)["W"].shape
