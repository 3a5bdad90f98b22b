import pytest
import snntorch as snn
import torch

from snn_lib.neurons import beta_from_tau, lif_sequence, lif_step, spike_fn, step_current


def test_lif_step_golden_values_below_threshold():
    mem = torch.zeros(1)
    expected = [0.1, 0.19, 0.271, 0.3439, 0.40951]        # U[t] = 0.9 U[t-1] + 0.1
    for value in expected:
        spk, mem = lif_step(torch.tensor([0.1]), mem, beta=0.9, threshold=1.0)
        assert spk.item() == 0
        assert mem.item() == pytest.approx(value, abs=1e-6)


def test_reset_by_subtraction_and_to_zero_after_a_spike():
    cur = torch.tensor([1.5, 0.0, 0.0])
    spk, mem = lif_sequence(cur, beta=0.5, threshold=1.0)
    # U = 1.5 (spike), then 0.5*1.5 - 1 = -0.25, then -0.125
    assert spk.tolist() == [1.0, 0.0, 0.0]
    assert mem.tolist() == pytest.approx([1.5, -0.25, -0.125])
    spk, mem = lif_sequence(cur, beta=0.5, threshold=1.0, reset="zero")
    assert mem.tolist() == pytest.approx([1.5, 0.0, 0.0])


def test_lif_sequence_equals_snntorch_leaky_with_gradients():
    torch.manual_seed(0)
    cur = (torch.rand(20, 4, 7) * 0.8).requires_grad_()
    spk, mem = lif_sequence(cur, beta=0.8, threshold=1.0, spike=spike_fn("atan", 2.0))
    (spk.sum() + mem.sum()).backward()
    grad_ours = cur.grad.clone()

    cur.grad = None
    leaky = snn.Leaky(beta=0.8, threshold=1.0)
    m = torch.zeros(4, 7)
    spikes, mems = [], []
    for c in cur:
        s, m = leaky(c, m)
        spikes.append(s)
        mems.append(m)
    ref_spk, ref_mem = torch.stack(spikes), torch.stack(mems)
    (ref_spk.sum() + ref_mem.sum()).backward()
    assert ref_spk.sum() > 0, "the input should make some neurons fire"
    torch.testing.assert_close(spk, ref_spk)
    torch.testing.assert_close(mem, ref_mem)
    torch.testing.assert_close(grad_ours, cur.grad)


def test_beta_from_tau():
    assert beta_from_tau(tau_mem_ms=10.0, dt_ms=1.0) == pytest.approx(0.904837, abs=1e-6)


def test_bad_reset_and_surrogate_are_refused():
    with pytest.raises(ValueError, match="reset"):
        lif_step(torch.zeros(1), torch.zeros(1), reset="sideways")
    with pytest.raises(ValueError, match="surrogate"):
        spike_fn("relu")


def test_step_current():
    cur = step_current(num_steps=8, current=0.5, start=2, stop=5)
    assert cur.tolist() == [0, 0, 0.5, 0.5, 0.5, 0, 0, 0]
    assert step_current(num_steps=4, current=1.0, start=1).tolist() == [0, 1, 1, 1]
