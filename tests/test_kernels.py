"""The kernels (snn_lib.kernels) and the CSNN's fast forward equal the per-step snnTorch reference:
spikes, membrane, gradients."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from snn_lib.config import ModelConfig
import snn_lib.kernels
from snn_lib.kernels import POOLS, RESETS, conv_pool, lif_fused, lif_scan, pool2d, surrogate_grad
from snn_lib.model import CSNN
from snn_lib.neurons import lif_sequence, spike_fn

SURROGATES = [("atan", 2.0), ("fast_sigmoid", 25.0)]


def keep_dtype(spike):
    """snnTorch's surrogates return float32 spikes whatever the input; keep float64 for the tests."""
    return lambda x: spike(x).to(x.dtype)


def make_pair(cfg: ModelConfig, size: int, dtype: torch.dtype, seed: int = 0) -> tuple[CSNN, CSNN]:
    """Reference and fast models with the same parameters (loaded from one state dict)."""
    torch.manual_seed(seed)
    ref = CSNN(dataclasses.replace(cfg, impl="reference"), input_size=size).to(dtype)
    fast = CSNN(dataclasses.replace(cfg, impl="fast"), input_size=size).to(dtype)
    fast.load_state_dict(ref.state_dict())
    # larger weights than the default init so that every layer spikes on the tiny random input
    with torch.no_grad():
        for model in (ref, fast):
            model.conv1.weight.mul_(4.0)
            model.conv2.weight.mul_(6.0)
            model.fc.weight.mul_(8.0)
    if dtype == torch.float64:
        for lif in (ref.lif1, ref.lif2, ref.lif3):
            lif.spike_grad = keep_dtype(lif.spike_grad)
    return ref, fast


NEURON_PARAMETERS = {f"lif{i}.{name}" for i in (1, 2, 3) for name in ("beta", "threshold")}


def run(model: CSNN, frames: torch.Tensor, w_spk: torch.Tensor, w_mem: torch.Tensor):
    """Forward, a loss that uses both outputs, backward: outputs and every parameter gradient."""
    model.zero_grad()
    spk, mem = model(frames)                                  # [T, B, 10] each
    loss = (spk * w_spk).sum() + (mem * w_mem).sum()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    return spk.detach(), mem.detach(), grads


def random_frames(T: int, B: int, size: int, dtype: torch.dtype, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, 3, (T, B, 2, size, size), generator=g) * (torch.rand(T, B, 2, size, size, generator=g) < 0.3)
    return counts.to(dtype)                                   # [T, B, 2, H, W] sparse event counts


@pytest.mark.parametrize("surrogate,slope", SURROGATES)
@pytest.mark.parametrize("T,B,size,beta", [(6, 3, 34, 0.5), (5, 2, 28, 0.9), (1, 1, 17, 0.3), (4, 5, 20, 1.0)])
def test_csnn_fast_equals_reference_float64(surrogate, slope, T, B, size, beta):
    cfg = ModelConfig(beta=beta, surrogate=surrogate, surrogate_slope=slope, channels=(5, 7))
    ref, fast = make_pair(cfg, size, torch.float64)
    frames = random_frames(T, B, size, torch.float64)
    w_spk, w_mem = torch.randn(T, B, 10, dtype=torch.float64), torch.randn(T, B, 10, dtype=torch.float64)
    s_ref, m_ref, g_ref = run(ref, frames, w_spk, w_mem)
    s_fast, m_fast, g_fast = run(fast, frames, w_spk, w_mem)
    assert s_fast.shape == m_fast.shape == (T, B, 10)
    if T > 1:
        assert s_ref.sum() > 0, "the test input should make the output layer spike"
    torch.testing.assert_close(s_fast, s_ref, rtol=0, atol=0)
    torch.testing.assert_close(m_fast, m_ref, rtol=1e-5, atol=1e-5)
    assert g_fast.keys() == g_ref.keys() == {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                             "fc.weight", "fc.bias"}
    for name in g_ref:
        assert g_ref[name].abs().max() > 0, f"{name} got no gradient: the test would not see a wrong one"
        torch.testing.assert_close(g_fast[name], g_ref[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("surrogate,slope", SURROGATES)
def test_csnn_fast_equals_reference_float32(surrogate, slope):
    # float32 as trained: folding time into the batch may change the convolution's summation order,
    # so currents differ in the last bits; spikes agree unless a membrane sits within ~1e-6 of the
    # threshold, which this seed does not have. Tolerance: a few float32 ulps through three layers.
    cfg = ModelConfig(surrogate=surrogate, surrogate_slope=slope)
    ref, fast = make_pair(cfg, 34, torch.float32, seed=3)
    frames = random_frames(8, 4, 34, torch.float32, seed=4)
    w_spk, w_mem = torch.randn(8, 4, 10), torch.randn(8, 4, 10)
    s_ref, m_ref, g_ref = run(ref, frames, w_spk, w_mem)
    s_fast, m_fast, g_fast = run(fast, frames, w_spk, w_mem)
    assert s_ref.sum() > 0
    torch.testing.assert_close(s_fast, s_ref, rtol=0, atol=0)
    torch.testing.assert_close(m_fast, m_ref, rtol=1e-4, atol=1e-4)
    for name in g_ref:
        torch.testing.assert_close(g_fast[name], g_ref[name], rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize("lif_impl,channels_last", [("fused", False), ("fused", True), ("scan", False),
                                                    ("compiled", True)])
def test_csnn_lif_impls_agree(lif_impl, channels_last):
    """Every LIF implementation and both layouts (NCHW is what a GPU gets by default)."""
    cfg = ModelConfig(beta=0.7, channels=(5, 7))
    ref, fast = make_pair(cfg, 22, torch.float64)
    frames = random_frames(5, 3, 22, torch.float64)
    w_spk, w_mem = torch.randn(5, 3, 10, dtype=torch.float64), torch.randn(5, 3, 10, dtype=torch.float64)
    s_ref, m_ref, g_ref = run(ref, frames, w_spk, w_mem)
    fast.zero_grad()
    spk, mem = fast.forward_fast(frames, lif_impl=lif_impl, channels_last=channels_last)
    ((spk * w_spk).sum() + (mem * w_mem).sum()).backward()
    torch.testing.assert_close(spk, s_ref, rtol=0, atol=0)
    torch.testing.assert_close(mem, m_ref, rtol=1e-5, atol=1e-5)
    for name, p in fast.named_parameters():
        torch.testing.assert_close(p.grad, g_ref[name], rtol=1e-5, atol=1e-5, msg=name)


LEARN = [(False, False), (True, False), (False, True), (True, True)]        # (learn_beta, learn_threshold)


def check_options_against_reference(cfg: ModelConfig, lif_impl: str, channels_last: bool = True):
    """Spikes, membranes and every gradient (the learnable beta and threshold included) of the fast
    path with ``lif_impl`` equal the snnTorch reference's, float64."""
    ref, fast = make_pair(cfg, 22, torch.float64)
    frames = random_frames(5, 3, 22, torch.float64)
    w_spk, w_mem = torch.randn(5, 3, 10, dtype=torch.float64), torch.randn(5, 3, 10, dtype=torch.float64)
    s_ref, m_ref, g_ref = run(ref, frames, w_spk, w_mem)
    fast.zero_grad()
    spk, mem = fast.forward_fast(frames, lif_impl=lif_impl, channels_last=channels_last)
    ((spk * w_spk).sum() + (mem * w_mem).sum()).backward()
    assert s_ref[:, :, :].sum() > 0, "the test input should make the output layer spike"
    learned = {f"lif{i}.{name}" for i in (1, 2, 3) for name, on in (("beta", cfg.learn_beta),
                                                                 ("threshold", cfg.learn_threshold)) if on}
    assert set(g_ref) & NEURON_PARAMETERS == learned
    torch.testing.assert_close(spk, s_ref, rtol=0, atol=0)
    torch.testing.assert_close(mem, m_ref, rtol=1e-5, atol=1e-5)
    for name, p in fast.named_parameters():
        assert g_ref[name].abs().max() > 0, f"{name} got no gradient: the test would not see a wrong one"
        torch.testing.assert_close(p.grad, g_ref[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("learn_beta,learn_threshold", LEARN)
@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("reset", RESETS)
def test_csnn_neuron_and_pool_options_equal_reference(reset, pool, learn_beta, learn_threshold):
    """model.reset, model.pool, model.learn_beta and model.learn_threshold: snnTorch's Leaky (with
    reset_mechanism, learn_beta, learn_threshold) and the fused LIF + ConvPool agree."""
    cfg = ModelConfig(beta=0.7, channels=(5, 7), reset=reset, pool=pool, learn_beta=learn_beta,
                      learn_threshold=learn_threshold, threshold=0.8 if pool == "avg" else 1.0)
    check_options_against_reference(cfg, "fused")


@pytest.mark.parametrize("reset,pool,channels_last", [("subtract", "sum", False), ("zero", "avg", False),
                                                      ("zero", "max", True)])
def test_lif_scan_neuron_options_equal_reference(reset, pool, channels_last):
    """The scan (what torch.compile of the model traces), NCHW as a GPU gets it: learnable beta and
    threshold, both resets, the pooling of the plain ops."""
    cfg = ModelConfig(beta=0.7, channels=(5, 7), reset=reset, pool=pool, learn_beta=True, learn_threshold=True,
                      threshold=0.8 if pool == "avg" else 1.0)
    check_options_against_reference(cfg, "scan", channels_last)


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("size", [15, 16, 17, 22])
@pytest.mark.parametrize("channels_last", [False, True])
def test_conv_pool_equals_pool_of_conv(size, channels_last, pool):
    """Cutting the rows the pooling drops changes neither values nor gradients (odd and even sizes)."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 5).double()
    x = torch.randn(2, 3, size, size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 4, (size - 4) // 2, (size - 4) // 2, dtype=torch.float64)
    check_against_plain_ops(conv, x, w, channels_last, pool=pool)


def test_pool2d_is_the_max_mean_or_sum_of_each_window():
    x = torch.arange(2 * 3 * 5 * 4, dtype=torch.float64).reshape(2, 3, 5, 4).sin()
    windows = x[..., :4, :].unfold(2, 2, 2).unfold(3, 2, 2).flatten(-2)       # [2, 3, 2, 2, 4]
    torch.testing.assert_close(pool2d(x, "max"), windows.amax(-1), rtol=0, atol=0)
    torch.testing.assert_close(pool2d(x, "avg"), windows.mean(-1), rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(pool2d(x, "sum"), windows.sum(-1), rtol=1e-15, atol=1e-15)
    with pytest.raises(ValueError, match="pool 'min'"):
        pool2d(x, "min")


def check_against_plain_ops(conv, x, w, channels_last=False, tol=1e-12, pool="max"):
    """``conv_pool(conv, x)`` and its gradients (weighted by ``w``) equal ``pool2d(conv(x), pool)``'s.
    Returns ``(out, ref, grads)``; ``tol=None`` takes assert_close's defaults for the dtype."""
    params = [x, conv.weight, conv.bias]
    out = conv_pool(conv, x, channels_last, pool)
    grads = torch.autograd.grad((out * w).sum(), params)
    ref = pool2d(conv(x), pool)
    grads_ref = torch.autograd.grad((ref * w).sum(), params)
    close = {} if tol is None else {"rtol": tol, "atol": tol}
    torch.testing.assert_close(out, ref, **close)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, **close)
    return out, ref, grads


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("chunk_bytes", [1, 10_000, 2**30])   # 1 frame, 1-3 frames, all
@pytest.mark.parametrize("size,channels_last", [(15, True), (16, False), (22, True)])
def test_conv_pool_in_chunks(monkeypatch, chunk_bytes, size, channels_last, pool):
    """ConvPool's chunks (one frame each, a few frames, all at once) and its backward equal the plain
    ops; the input's gradient is zero in the cut rows and columns and keeps the input's layout."""
    monkeypatch.setattr(snn_lib.kernels, "CHUNK_BYTES", chunk_bytes)
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(3, 4, 5).double()
    x = torch.randn(7, 3, size, size, dtype=torch.float64)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    x.requires_grad_(True)
    w = torch.randn(7, 4, (size - 4) // 2, (size - 4) // 2, dtype=torch.float64)
    out, ref, grads = check_against_plain_ops(conv, x, w, channels_last, pool=pool)
    assert out.grad_fn is not None and "ConvPool" in type(out.grad_fn).__name__
    assert grads[0].is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    with torch.no_grad():                                 # inference: no graph, same values
        torch.testing.assert_close(conv_pool(conv, x, channels_last, pool), ref, rtol=1e-12, atol=1e-12)


def test_conv_pool_ties_go_where_max_pool_sends_them():
    """Equal values in a window (an empty region of a frame) route the gradient like max_pool2d."""
    conv = torch.nn.Conv2d(1, 2, 3)
    x = torch.zeros(4, 1, 12, 12)
    x[:, :, 5:7, 5:7] = 1.0
    x.requires_grad_(True)
    check_against_plain_ops(conv, x, torch.randn(4, 2, 5, 5), tol=None)


def test_conv_pool_under_autocast_uses_the_plain_ops():
    conv = torch.nn.Conv2d(2, 4, 5)
    x = torch.randn(3, 2, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv_pool(conv, x, channels_last=True)
        ref = torch.nn.functional.max_pool2d(conv(x), 2)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref)


def test_csnn_refuses_unknown_lif_impl():
    _, fast = make_pair(ModelConfig(channels=(2, 2)), 16, torch.float32)
    with pytest.raises(ValueError, match="lif_impl"):
        fast.forward_fast(torch.zeros(2, 1, 2, 16, 16), lif_impl="triton")


def test_checkpoint_serves_both_paths():
    cfg = ModelConfig(channels=(4, 6))
    ref, _ = make_pair(cfg, 20, torch.float32)
    fast = CSNN(dataclasses.replace(cfg, impl="fast"), input_size=20)
    fast.load_state_dict(ref.state_dict())
    frames = random_frames(3, 2, 20, torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(fast(frames), ref(frames), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ref.forward_fast(frames), ref(frames), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lif", [lif_fused, lif_scan])
@pytest.mark.parametrize("surrogate,slope", SURROGATES)
@pytest.mark.parametrize("shape,beta,threshold", [((9, 4, 3), 0.9, 1.0), ((1, 7), 0.5, 0.5),
                                                  ((13, 2, 3, 5, 1), 0.0, 1.5), ((3,), 1.0, 1.0)])
def test_lif_matches_lif_sequence(lif, surrogate, slope, shape, beta, threshold):
    """Forward values and the gradient wrt the input equal autograd through neurons.lif_sequence."""
    torch.manual_seed(0)
    cur = (torch.randn(shape, dtype=torch.float64) * 1.5 + 0.4).requires_grad_()
    g_spk, g_mem = torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)
    spk, mem = lif(cur, beta, threshold, surrogate, slope)
    grad, = torch.autograd.grad((spk * g_spk).sum() + (mem * g_mem).sum(), cur)
    spk_ref, mem_ref = lif_sequence(cur, beta, threshold, spike=keep_dtype(spike_fn(surrogate, slope)))
    grad_ref, = torch.autograd.grad((spk_ref * g_spk).sum() + (mem_ref * g_mem).sum(), cur)
    assert spk.dtype == mem.dtype == cur.dtype and spk.shape == mem.shape == cur.shape
    torch.testing.assert_close(spk, spk_ref, rtol=0, atol=0)
    torch.testing.assert_close(mem, mem_ref, rtol=1e-12, atol=1e-12)
    # the reference's float32 spike function rounds the incoming gradient to float32
    torch.testing.assert_close(grad, grad_ref, rtol=1e-6, atol=1e-6)


def lif_grads_against_lif_sequence(lif, reset: str, learn_beta: bool, learn_threshold: bool, shape=(9, 4, 3),
                                   surrogate="atan", slope=2.0, seed=0):
    """Outputs and the gradients wrt the current, beta and threshold of ``lif`` and of autograd
    through :func:`snn_lib.neurons.lif_sequence` (float64)."""
    torch.manual_seed(seed)
    cur = (torch.randn(shape, dtype=torch.float64) * 1.5 + 0.4).requires_grad_()
    beta = torch.tensor(0.8, dtype=torch.float64, requires_grad=True) if learn_beta else 0.8
    threshold = torch.tensor(1.1, dtype=torch.float64, requires_grad=True) if learn_threshold else 1.1
    inputs = [cur] + [x for x in (beta, threshold) if isinstance(x, torch.Tensor)]
    g_spk, g_mem = torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)
    spk, mem = lif(cur, beta, threshold, surrogate, slope, reset=reset)
    grads = torch.autograd.grad((spk * g_spk).sum() + (mem * g_mem).sum(), inputs)
    spk_ref, mem_ref = lif_sequence(cur, beta, threshold, reset=reset, spike=keep_dtype(spike_fn(surrogate, slope)))
    grads_ref = torch.autograd.grad((spk_ref * g_spk).sum() + (mem_ref * g_mem).sum(), inputs)
    assert spk_ref.sum() > 0 and (spk_ref[:-1] * (mem_ref[1:] < mem_ref[:-1])).sum() > 0, "no reset to test"
    torch.testing.assert_close(spk, spk_ref, rtol=0, atol=0)
    torch.testing.assert_close(mem, mem_ref, rtol=1e-12, atol=1e-12)
    for name, g, g_ref in zip(["cur", "beta", "threshold"][:len(inputs)], grads, grads_ref):
        assert g_ref.abs().max() > 0
        # the reference's float32 spike function rounds the incoming gradient to float32
        torch.testing.assert_close(g, g_ref, rtol=1e-6, atol=1e-6, msg=name)


@pytest.mark.parametrize("lif", [lif_fused, lif_scan])
@pytest.mark.parametrize("learn_beta,learn_threshold", LEARN)
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("surrogate,slope", SURROGATES)
def test_lif_reset_and_learnable_constants_match_lif_sequence(lif, reset, learn_beta, learn_threshold, surrogate,
                                                               slope):
    """dL/dbeta and dL/dtheta of the hand-written backward (module docstring of snn_lib.kernels),
    both resets, against autograd through neurons.lif_sequence."""
    lif_grads_against_lif_sequence(lif, reset, learn_beta, learn_threshold, surrogate=surrogate, slope=slope)


@pytest.mark.parametrize("reset", RESETS)
def test_compiled_kernels_with_learnable_constants(reset):
    """The torch.compile-made kernels with 0-dim tensor constants and either reset (compiles)."""
    pytest.importorskip("torch._inductor")
    compiled = functools.partial(lif_fused, compiled=True)
    lif_grads_against_lif_sequence(compiled, reset, True, True, shape=(6, 3, 7))


@pytest.mark.parametrize("reset", RESETS)
def test_lif_fused_gradcheck_beta_and_threshold(reset):
    """The new backward terms against finite differences: the membrane through beta and threshold
    (subtract: the reset term -S[t-1]; zero: no dependence on theta), and the spikes' surrogate
    path through theta against lif_scan's autograd."""
    torch.manual_seed(3)
    cur = torch.rand(7, 5, dtype=torch.float64) * 0.3
    cur[2] += 1.2                                             # some steps cross the threshold
    cur[4, :2] += 1.5
    beta = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    threshold = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    assert lif_fused(cur, beta, threshold, reset=reset)[0].sum() > 0
    for surrogate in ("atan", "fast_sigmoid"):
        assert torch.autograd.gradcheck(lambda c, b, th: lif_fused(c, b, th, surrogate, reset=reset)[1],
                                        (cur.clone().requires_grad_(), beta, threshold))
        w = torch.randn(7, 5, dtype=torch.float64)
        g = torch.autograd.grad((lif_fused(cur, beta, threshold, surrogate, reset=reset)[0] * w).sum(),
                                (beta, threshold))
        g_scan = torch.autograd.grad((lif_scan(cur, beta, threshold, surrogate, reset=reset)[0] * w).sum(),
                                     (beta, threshold))
        torch.testing.assert_close(g, g_scan, rtol=1e-12, atol=1e-12)


def test_learnable_beta_is_clamped_like_snntorch():
    """beta outside [0, 1] acts as its clamp and gets no gradient (snnTorch: beta.clamp(0, 1))."""
    cur = torch.rand(5, 3, dtype=torch.float64) + 0.5
    for lif in (lif_fused, lif_scan):
        beta = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
        spk, mem = lif(cur, beta, 1.0)
        torch.testing.assert_close((spk, mem), lif(cur, 1.0, 1.0), rtol=0, atol=0)
        grad, = torch.autograd.grad(mem.sum(), beta)
        assert grad == 0


def test_lif_zero_reset_golden_values():
    """beta 0.5, theta 1, constant current 0.6, reset to zero: U = 0.6, 0.9, 1.05 (spike), 0.6, 0.9."""
    cur = torch.full((5, 1), 0.6, dtype=torch.float64)
    for lif in (lif_fused, lif_scan):
        spk, mem = lif(cur, beta=0.5, threshold=1.0, reset="zero")
        torch.testing.assert_close(mem[:, 0], torch.tensor([0.6, 0.9, 1.05, 0.6, 0.9], dtype=torch.float64))
        torch.testing.assert_close(spk[:, 0], torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0], dtype=torch.float64))


def test_lif_refuses_unknown_reset_and_vector_constants():
    with pytest.raises(ValueError, match="reset 'none'"):
        lif_fused(torch.zeros(2, 2), reset="none")
    with pytest.raises(ValueError, match="one value per layer"):
        lif_fused(torch.zeros(2, 3), beta=torch.full((3,), 0.5))


@pytest.mark.parametrize("surrogate,slope", SURROGATES)
def test_compiled_kernels_match_lif_sequence(surrogate, slope):
    """The torch.compile-made kernels (what runs on GPU as Triton) on CPU: same values, gradient.

    One shape with an odd size; the first call compiles (tens of seconds on two cores)."""
    pytest.importorskip("torch._inductor")
    torch.manual_seed(2)
    cur = (torch.randn(6, 3, 7, dtype=torch.float64) * 1.5 + 0.4).requires_grad_()
    g_spk, g_mem = torch.randn(6, 3, 7, dtype=torch.float64), torch.randn(6, 3, 7, dtype=torch.float64)
    spk, mem = lif_fused(cur, 0.8, 1.0, surrogate, slope, compiled=True)
    grad, = torch.autograd.grad((spk * g_spk).sum() + (mem * g_mem).sum(), cur)
    spk_ref, mem_ref = lif_sequence(cur, 0.8, 1.0, spike=keep_dtype(spike_fn(surrogate, slope)))
    grad_ref, = torch.autograd.grad((spk_ref * g_spk).sum() + (mem_ref * g_mem).sum(), cur)
    torch.testing.assert_close(spk, spk_ref, rtol=0, atol=0)
    torch.testing.assert_close(mem, mem_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-6, atol=1e-6)

    # an NHWC current [T, B, C, H, W] (as the CPU fast path makes): values equal, layout kept
    nhwc = (torch.randn(6 * 2, 3, 4, 5, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
            .unflatten(0, (6, 2)).requires_grad_())
    spk, mem = lif_fused(nhwc, 0.8, 1.0, surrogate, slope, compiled=True)
    grad, = torch.autograd.grad((spk * mem).sum(), nhwc)
    spk_ref, mem_ref = lif_fused(nhwc, 0.8, 1.0, surrogate, slope)
    grad_ref, = torch.autograd.grad((spk_ref * mem_ref).sum(), nhwc)
    assert spk.stride() == mem.stride() == grad.stride() == nhwc.stride()
    torch.testing.assert_close((spk, mem, grad), (spk_ref, mem_ref, grad_ref), rtol=1e-12, atol=1e-12)


def test_lif_fused_keeps_layout():
    """The eager backward returns the gradient in the current's layout (else pooling converts it)."""
    cur = torch.randn(4 * 2, 3, 5, 5).contiguous(memory_format=torch.channels_last).unflatten(0, (4, 2))
    cur.requires_grad_()
    spk, mem = lif_fused(cur, 0.5, 1.0)
    w_spk = torch.randn(4, 2, 3, 5, 5)                        # NCHW-contiguous incoming gradients
    grad, = torch.autograd.grad((spk * w_spk).sum() + mem.sum(), cur)
    assert spk.stride() == mem.stride() == grad.stride() == cur.stride()


def test_lif_fused_golden_values():
    """beta 0.5, theta 1, constant current 0.6: U = 0.6, 0.9, 1.05 (spike), 0.125, 0.6625, ..."""
    cur = torch.full((5, 1), 0.6, dtype=torch.float64)
    spk, mem = lif_fused(cur, beta=0.5, threshold=1.0)
    torch.testing.assert_close(mem[:, 0], torch.tensor([0.6, 0.9, 1.05, 0.125, 0.6625], dtype=torch.float64))
    torch.testing.assert_close(spk[:, 0], torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0], dtype=torch.float64))


def test_lif_fused_gradcheck():
    """The hand-written backward against finite differences (input kept away from the threshold)."""
    torch.manual_seed(1)
    cur = torch.rand(6, 4, dtype=torch.float64) * 0.3
    cur[2] += 1.2                                             # some steps cross the threshold
    cur.requires_grad_()
    for surrogate in ("atan", "fast_sigmoid"):
        # d spk / d cur is the surrogate, not the true derivative: check the membrane path exactly
        assert torch.autograd.gradcheck(lambda c: lif_fused(c, 0.7, 1.0, surrogate)[1], (cur,))


def test_surrogate_grad_matches_snntorch():
    x = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    for name, slope in SURROGATES:
        y = keep_dtype(spike_fn(name, slope))(x)
        grad, = torch.autograd.grad(y.sum(), x)
        torch.testing.assert_close(surrogate_grad(x.detach(), name, slope), grad, rtol=1e-6, atol=1e-7)


def test_half_precision_current_is_integrated_in_float32():
    """bf16 spikes, a float32 membrane, a bf16 gradient; the values those of the float32 current."""
    cur = torch.full((40, 3), 0.01, dtype=torch.bfloat16)
    cur[5:9] += 0.5                                           # a few spikes
    for lif in (lif_fused, lif_scan):
        x = cur.clone().requires_grad_()
        spk, mem = lif(x, beta=1.0, threshold=1.0)
        assert spk.dtype == torch.bfloat16 and mem.dtype == torch.float32 and spk.sum() > 0
        # 40 * bf16(0.01) summed in float32; a bf16 running sum would stall near 0.25
        x32 = cur.float().requires_grad_()
        spk32, mem32 = lif(x32, beta=1.0, threshold=1.0)
        torch.testing.assert_close((spk.float(), mem), (spk32, mem32), rtol=0, atol=0)
        w = torch.randn(40, 3).bfloat16().float()            # the spikes' gradient arrives in bf16
        grad, = torch.autograd.grad((spk * w).sum() + mem.sum(), x)
        grad32, = torch.autograd.grad((spk32 * w).sum() + mem32.sum(), x32)
        assert grad.dtype == torch.bfloat16
        torch.testing.assert_close(grad, grad32.bfloat16(), rtol=0, atol=0)


class FullSizeOps(TorchDispatchMode):
    """Records the ATen ops (allocations and views left out) whose result has ``numel`` elements:
    the passes over a whole ``[T, ...]`` tensor."""

    def __init__(self, numel: int):
        super().__init__()
        self.numel, self.ops = numel, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if (isinstance(out, torch.Tensor) and out.numel() == self.numel and not name.startswith("empty")
                and not func.is_view):
            self.ops.append(name)
        return out


@pytest.mark.parametrize("surrogate,passes", [("atan", 3), ("fast_sigmoid", 5)])
@pytest.mark.parametrize("outputs", ["both", "spikes", "membrane"])
def test_lif_fused_backward_passes_over_the_whole_tensor(surrogate, passes, outputs):
    """The eager backward's surrogate term: a subtraction, the denominator in place and one
    division into it (atan); only a copy when the spikes' gradient is absent. The scan itself
    works on one time step at a time."""
    cur = (torch.randn(6, 4, 5) + 0.5).requires_grad_()
    spk, mem = lif_fused(cur, 0.8, 1.0, surrogate)
    loss = {"both": (spk * mem.detach()).sum() + mem.sum(), "spikes": spk.sum() * 1.0, "membrane": mem.sum()}[outputs]
    with FullSizeOps(cur.numel()) as seen:
        torch.autograd.grad(loss, cur)
    ours = [op for op in seen.ops if op not in ("mul", "sum", "ones_like", "expand")]   # the loss's own backward
    expected = {"both": passes, "spikes": passes, "membrane": 1}[outputs]
    assert len(ours) == expected, ours


def test_lif_fused_under_bf16_casts_only_the_gradient():
    """A bf16 current is read as it is: the only full-size cast is autograd's of the input gradient."""
    cur = (torch.randn(6, 4, 5) + 0.5).bfloat16().requires_grad_()
    with FullSizeOps(cur.numel()) as forward:
        spk, mem = lif_fused(cur, 0.8, 1.0)
    assert spk.dtype == torch.bfloat16 and mem.dtype == torch.float32
    with FullSizeOps(cur.numel()) as backward:
        grad, = torch.autograd.grad((spk, mem), cur, (torch.ones_like(spk), torch.ones_like(mem)))
    assert grad.dtype == torch.bfloat16
    assert "_to_copy" not in forward.ops and backward.ops.count("_to_copy") == 1, (forward.ops, backward.ops)


def test_lif_fused_refuses_unknown_surrogate():
    with pytest.raises(ValueError, match="surrogate"):
        lif_fused(torch.zeros(2, 2), surrogate="sigmoid")


def test_lif_kernel_names_each_implementation():
    from snn_lib.kernels import LIF_IMPLS, LIFFused, lif_kernel
    cur = (torch.randn(5, 3, dtype=torch.float64) + 0.5).requires_grad_()
    outputs = {name: lif_kernel(name)(cur, 0.5, 1.0, "atan", 2.0) for name in ("fused", "scan")}
    assert type(outputs["fused"][0].grad_fn).__name__ == "LIFFusedBackward" and LIFFused.__name__ in str(
        type(outputs["fused"][0].grad_fn))
    torch.testing.assert_close(outputs["fused"], outputs["scan"])
    assert set(LIF_IMPLS) == {"fused", "compiled", "scan"}
    assert lif_kernel("compiled").keywords == {"compiled": True}
    with pytest.raises(ValueError, match="lif_impl='triton'"):
        lif_kernel("triton")


def test_compiling_is_false_in_eager_code():
    from snn_lib.kernels import compiling
    assert compiling() is False
