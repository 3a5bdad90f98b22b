"""Neurons with memory (snn_lib.neurons), the recurrent layer's fast path (snn_lib.recurrent) and the
RSNN (snn_lib.rsnn): golden values by hand, snnTorch's RLeaky and Synaptic, the reference loop."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch

import snn_lib.recurrent as recurrent
from snn_lib.kernels import _surrogate_primitive
from snn_lib.model import make_loss, predict
from snn_lib.neurons import alif_step, decay, rlif_step, spike_fn, synaptic_step
from snn_lib.recurrent import NEURONS, RecurrentLayer
from snn_lib.rsnn import RSNN, RSNNConfig


def exact_spike(name: str = "atan", slope: float = 2.0):
    """snnTorch's spike in any dtype: Heaviside forward, the surrogate's derivative backward (snnTorch's
    own surrogates compute in float32, which would hide float64 differences)."""
    def spike(x):
        smooth = _surrogate_primitive(x, name, slope)
        return (x > 0).to(x.dtype) + (smooth - smooth.detach())
    return spike


def test_decay_is_exp_minus_one_over_tau():
    assert decay(20.0) == pytest.approx(0.951229424500714)
    with pytest.raises(ValueError, match="> 0"):
        decay(0.0)


def test_recurrent_lif_golden_values():
    # one neuron, self-weight 0.5, beta 0.5, threshold 1: U[t] = 0.5 U + I + 0.5 S[t-1] - S[t-1]
    weight = torch.tensor([[0.5]])
    spk = mem = torch.zeros(1, 1)
    expected = [(1.0, 1.2), (0.0, 0.1), (0.0, 0.05), (0.0, 0.025)]
    for cur, (s_exp, u_exp) in zip([1.2, 0.0, 0.0, 0.0], expected):
        spk, mem = rlif_step(torch.tensor([[cur]]), spk, mem, weight, beta=0.5, threshold=1.0)
        assert (spk.item(), mem.item()) == pytest.approx((s_exp, u_exp))


def test_synaptic_golden_values():
    # alpha = beta = 0.5: J = 0.5 J + I, U = 0.5 U + J - S[t-1]
    syn = mem = torch.zeros(1)
    expected = [(1.0, 1.5, 1.5), (0.0, 0.75, 0.5), (0.0, 0.375, 0.625), (0.0, 0.1875, 0.5)]
    for cur, want in zip([1.5, 0.0, 0.0, 0.0], expected):
        spk, syn, mem = synaptic_step(torch.tensor([cur]), syn, mem, alpha=0.5, beta=0.5, threshold=1.0)
        assert (spk.item(), syn.item(), mem.item()) == pytest.approx(want)


def test_alif_golden_values_threshold_rises_after_each_spike():
    # beta 0.5, baseline 1, rho 0.5, beta_a 2, constant input 1.5:
    # b = 0.5 b + 0.5 S[t-1], A = 1 + 2 b, U = 0.5 U + 1.5 - S[t-1]
    spk = mem = adapt = torch.zeros(1)
    expected = [(1.0, 1.5, 0.0), (0.0, 1.25, 0.5), (1.0, 2.125, 0.25), (0.0, 1.5625, 0.625)]
    for want in expected:
        spk, mem, adapt = alif_step(torch.tensor([1.5]), spk, mem, adapt, beta=0.5, threshold=1.0, rho=0.5,
                                    beta_a=2.0)
        assert (spk.item(), mem.item(), adapt.item()) == pytest.approx(want)
    # the same input without adaptation (beta_a = 0) spikes at t = 2 as well: with it, the threshold
    # at t = 3 is 2.25 instead of 1
    assert 1.0 + 2.0 * adapt.item() == pytest.approx(2.25)


def test_recurrent_lif_equals_snntorch_rleaky_with_gradients():
    torch.manual_seed(0)
    T, B, H = 25, 3, 6
    beta = 0.75                                   # exact in float32, as snnTorch stores it
    rleaky = snn.RLeaky(beta=beta, threshold=1.0, linear_features=H, spike_grad=spike_fn("atan", 2.0))
    with torch.no_grad():
        rleaky.recurrent.weight.mul_(4.0)
        rleaky.recurrent.bias.zero_()
    weight = rleaky.recurrent.weight.detach().clone().requires_grad_()
    cur = (torch.rand(T, B, H) * 0.9).requires_grad_()

    spk = mem = torch.zeros(B, H)
    ours = []
    for c in cur:
        spk, mem = rlif_step(c, spk, mem, weight, beta=beta, threshold=1.0)
        ours.append((spk, mem))
    s_ours, m_ours = (torch.stack(x) for x in zip(*ours))
    (s_ours.sum() + 0.3 * m_ours.sum()).backward()
    g_cur, g_weight = cur.grad.clone(), weight.grad.clone()

    cur.grad = None
    spk, mem = rleaky.reset_mem()
    theirs = []
    for c in cur:
        spk, mem = rleaky(c, spk, mem)
        theirs.append((spk, mem))
    s_ref, m_ref = (torch.stack(x) for x in zip(*theirs))
    (s_ref.sum() + 0.3 * m_ref.sum()).backward()

    assert 0 < s_ref.mean() < 1                                  # the recurrence matters: some spike
    torch.testing.assert_close(s_ours, s_ref)
    torch.testing.assert_close(m_ours, m_ref)
    torch.testing.assert_close(g_cur, cur.grad)
    torch.testing.assert_close(g_weight, rleaky.recurrent.weight.grad)
    assert g_weight.abs().sum() > 0


def test_synaptic_equals_snntorch_synaptic_with_gradients():
    torch.manual_seed(1)
    cur = (torch.rand(30, 4, 5) * 0.6).requires_grad_()
    syn = mem = torch.zeros(4, 5)
    ours = []
    for c in cur:
        spk, syn, mem = synaptic_step(c, syn, mem, alpha=0.75, beta=0.875, threshold=1.0)
        ours.append((spk, syn, mem))
    ours = [torch.stack(x) for x in zip(*ours)]
    sum(o.sum() for o in ours).backward()
    g_ours = cur.grad.clone()

    cur.grad = None
    neuron = snn.Synaptic(alpha=0.75, beta=0.875, threshold=1.0, spike_grad=spike_fn("atan", 2.0))
    syn, mem = neuron.reset_mem()
    theirs = []
    for c in cur:
        spk, syn, mem = neuron(c, syn, mem)
        theirs.append((spk, syn, mem))
    theirs = [torch.stack(x) for x in zip(*theirs)]
    sum(o.sum() for o in theirs).backward()

    assert 0 < theirs[0].mean() < 1
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(g_ours, cur.grad)


def pair(neuron: str, recurrent_: bool, dtype=torch.float64, seed: int = 0):
    """A reference and a fast layer with the same parameters, scaled up so that every neuron type
    spikes often on the small random input."""
    torch.manual_seed(seed)
    kw = dict(tau_mem=5.0, tau_syn=3.0, tau_adapt=10.0, beta_a=1.5)
    ref = RecurrentLayer(5, 7, neuron, recurrent_, impl="reference", **kw).to(dtype)
    fast = RecurrentLayer(5, 7, neuron, recurrent_, impl="fast", **kw).to(dtype)
    fast.load_state_dict(ref.state_dict())
    with torch.no_grad():
        for layer in (ref, fast):
            layer.input.weight.mul_(3.0)
            if recurrent_:
                layer.recurrent.weight.mul_(3.0)
    return ref, fast


def outputs_and_grads(layer, x, w_spk, w_mem):
    layer.zero_grad()
    x = x.clone().requires_grad_()
    spk, mem = layer(x)
    ((spk * w_spk).sum() + (mem * w_mem).sum()).backward()
    return spk.detach(), mem.detach(), x.grad, {n: p.grad.clone() for n, p in layer.named_parameters()}


@pytest.mark.parametrize("neuron", NEURONS)
@pytest.mark.parametrize("recurrent_", [True, False])
@pytest.mark.parametrize("chunk", [7, 32])
def test_fast_path_equals_reference_loop_float64(monkeypatch, neuron, recurrent_, chunk):
    """Chunks of 7 steps (30 = 4 x 7 + 2: recomputed from 5 saved starts) and one chunk of all 30."""
    monkeypatch.setattr(recurrent, "spike_fn", exact_spike)
    ref, fast = pair(neuron, recurrent_)
    fast.chunk = chunk
    g = torch.Generator().manual_seed(2)
    x = torch.rand(30, 4, 5, generator=g, dtype=torch.float64)
    w_spk, w_mem = (torch.randn(30, 4, 7, generator=g, dtype=torch.float64) for _ in range(2))
    s_ref, m_ref, gx_ref, gp_ref = outputs_and_grads(ref, x, w_spk, w_mem)
    s_fast, m_fast, gx_fast, gp_fast = outputs_and_grads(fast, x, w_spk, w_mem)
    assert 0.05 < s_ref.mean() < 0.95
    assert torch.equal(s_ref, s_fast)
    torch.testing.assert_close(m_fast, m_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx_fast, gx_ref, rtol=1e-10, atol=1e-10)
    assert gp_ref.keys() == gp_fast.keys()
    for name in gp_ref:
        torch.testing.assert_close(gp_fast[name], gp_ref[name], rtol=1e-10, atol=1e-10)
    if recurrent_:                               # the gradient flows through the recurrence
        assert gp_fast["recurrent.weight"].abs().sum() > 0


@pytest.mark.parametrize("neuron", NEURONS)
def test_fast_path_equals_reference_float32_spikes_only_loss(neuron):
    """The training case: float32, snnTorch's own surrogate, a loss on the spikes only (no gradient
    arrives at the membrane)."""
    ref, fast = pair(neuron, True, torch.float32, seed=3)
    fast.chunk = 16
    x = torch.rand(40, 3, 5, generator=torch.Generator().manual_seed(4))
    w_spk = torch.randn(40, 3, 7, generator=torch.Generator().manual_seed(5))
    grads = []
    for layer in (ref, fast):
        layer.zero_grad()
        spk, _ = layer(x)
        (spk * w_spk).sum().backward()
        grads.append({n: p.grad.clone() for n, p in layer.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-5)


def test_alif_adaptation_gradient_matters():
    """Through b, a spike's gradient reaches later thresholds: with beta_a = 0 the gradient differs."""
    ref, fast = pair("alif", False)
    x = torch.rand(30, 4, 5, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    g_with = outputs_and_grads(fast, x, 1.0, 0.0)[3]["input.weight"]
    fast.beta_a = 0.0
    g_without = outputs_and_grads(fast, x, 1.0, 0.0)[3]["input.weight"]
    assert not torch.allclose(g_with, g_without)


def test_layer_refuses_unknown_settings():
    with pytest.raises(ValueError, match="neuron="):
        RecurrentLayer(3, 4, neuron="izhikevich")
    with pytest.raises(ValueError, match="impl="):
        RecurrentLayer(3, 4, impl="cuda")


# ---- the RSNN --------------------------------------------------------------------------------------

@pytest.mark.parametrize("neuron", NEURONS)
def test_rsnn_fast_equals_reference_and_works_with_the_csnn_loss(monkeypatch, neuron):
    monkeypatch.setattr(recurrent, "spike_fn", exact_spike)
    cfg = RSNNConfig(neuron=neuron, hidden=9, tau_mem=5.0, tau_out=4.0, readout_steps=3, threshold=0.5)
    torch.manual_seed(0)
    ref = RSNN(RSNNConfig(**{**cfg.__dict__, "impl": "reference"}), (20, 2, 3), num_classes=4).double()
    fast = RSNN(cfg, (20, 2, 3), num_classes=4).double()
    fast.load_state_dict(ref.state_dict())
    x = torch.rand(20, 5, 2, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)   # [T, B, 2, 3]
    labels = torch.tensor([0, 1, 2, 3, 1])
    results = []
    for model in (ref, fast):
        out, mem = model(x)
        assert out.shape == (1, 5, 4) and mem.shape == (3, 5, 4)
        torch.testing.assert_close(out[0], mem.mean(0))
        loss = make_loss("ce_count")(out, labels)
        loss.backward()
        assert predict(out).shape == (5,)
        results.append((out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-12, atol=1e-12)
    for name, grad in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], grad, rtol=1e-10, atol=1e-10)
    assert results[1][1]["layer.recurrent.weight"].abs().sum() > 0


def test_rsnn_readout_is_the_leaky_membrane_at_the_last_steps():
    """With hidden spikes fixed by hand, the readout equals R[t] = beta_out R[t-1] + W S[t] + b."""
    cfg = RSNNConfig(neuron="lif", hidden=2, recurrent=False, tau_out=2.0, readout_steps=2)
    model = RSNN(cfg, (4, 1), num_classes=1).double()
    with torch.no_grad():
        model.layer.input.weight.fill_(2.0)        # input 1 -> spike every step (U = 2 > 1, then 2 * beta + 2 - 1)
        model.layer.input.bias.zero_()
        model.readout.weight.fill_(1.0)
        model.readout.bias.zero_()
    x = torch.ones(4, 1, 1, dtype=torch.float64)
    out, mem = model(x)
    b = model.beta_out                             # 2 spikes per step into the readout
    r = [2.0]
    for _ in range(3):
        r.append(b * r[-1] + 2.0)
    torch.testing.assert_close(mem.flatten(), torch.tensor(r[2:], dtype=torch.float64))
    assert out.item() == pytest.approx((r[2] + r[3]) / 2)


def test_rsnn_refuses_a_decision_window_longer_than_the_input():
    with pytest.raises(ValueError, match="readout_steps"):
        RSNN(RSNNConfig(readout_steps=30), (20, 4))


def test_recurrent_scan_is_the_fast_layer_and_keeps_no_input_currents():
    """RecurrentScan called directly gives the layer's fast output, and its saved tensors are the
    input, the weights and one [T, B, H] membrane: no input currents or spikes kept for backward."""
    from snn_lib.recurrent import RecurrentLayer, RecurrentScan
    torch.manual_seed(0)
    layer = RecurrentLayer(5, 7, neuron="lif", recurrent=True, impl="fast")
    x = (torch.rand(12, 3, 5) < 0.4).float()
    weight = layer.recurrent.weight
    spk, mem = RecurrentScan.apply(x, layer.input.weight, layer.input.bias, weight, layer.neuron, layer.beta,
                                   layer.threshold, layer.alpha, layer.rho, layer.beta_a, layer.surrogate,
                                   layer.slope, layer.chunk)
    ref_spk, ref_mem = layer(x)
    torch.testing.assert_close(spk, ref_spk)
    torch.testing.assert_close(mem, ref_mem)
    big = [t for t in spk.grad_fn.saved_tensors if t is not None and t.dim() == 3 and t.shape[-1] == 7]
    assert len(big) == 1                                             # the membrane alone
