"""The kernels of the fast path: the LIF recurrence over all time steps, and convolution + pooling.

Functions of tensors only: this module imports nothing from :mod:`snn_lib` (the model in
:mod:`snn_lib.model` calls it, never the other way round).

Forward (snnTorch ``Leaky``, the reset decided by the previous step; :data:`RESETS`)::

    subtract:  U[t] = beta * U[t-1] + I[t] - theta * S[t-1]
    zero:      U[t] = beta * (1 - S[t-1]) * U[t-1] + I[t]
               S[t] = H(U[t] - theta)
               U[-1] = 0, S[-1] = 0

``S[t-1] = H(U[t-1] - theta)`` is exactly snnTorch's detached reset, so the reset carries no
gradient and ``dU[t] / dU[t-1] = beta`` (subtract) or ``beta * (1 - S[t-1])`` (zero). With
``g_S[t]`` and ``g_U[t]`` the gradients arriving at the outputs and ``H'`` the surrogate
derivative, the backward pass is one reverse linear scan::

    d[t]      = g_U[t] + g_S[t] * H'(U[t] - theta)
    g_I[t]    = d[t] + beta * g_I[t+1]                (subtract)   g_I[T] = 0
    g_I[t]    = d[t] + beta * (1 - S[t]) * g_I[t+1]   (zero)

``g_I[t]`` is also the gradient at ``U[t]``. A learnable decay and threshold (one scalar per layer,
as snnTorch's ``Leaky(learn_beta=True, learn_threshold=True)``) get, summed over t and neurons::

    dL/dbeta  = sum g_I[t] * U[t-1]                     (subtract)
              = sum g_I[t] * (1 - S[t-1]) * U[t-1]      (zero)
    dL/dtheta = -sum g_S[t] * H'(U[t] - theta)
                - sum g_I[t] * S[t-1]                   (subtract)
              = -sum g_S[t] * H'(U[t] - theta)          (zero)

Surrogates (as in :mod:`snntorch.surrogate`, ``x = U - theta``)::

    atan (alpha):
        H'(x) = (alpha / 2) / (1 + (pi / 2 * alpha * x)**2)
    fast_sigmoid (slope):
        H'(x) = 1 / (1 + slope * |x|)**2

Three interchangeable implementations of the recurrence (:data:`LIF_IMPLS`, the names of the
``model.lif_impl`` setting):

* ``"fused"``: :func:`lif_fused`, a custom :class:`torch.autograd.Function` that saves only the
  membrane for backward and runs each pass as a few in-place PyTorch ops per time step into
  preallocated ``[T, ...]`` outputs (nothing to compile);
* ``"compiled"``: :func:`lif_fused` with ``compiled=True``, each pass one ``torch.compile``-made
  kernel over ``[T, N]`` (a C++/OpenMP loop on CPU, a Triton kernel on GPU);
* ``"scan"``: :func:`lif_scan`, the same recurrence in plain differentiable ops, for a model that
  is ``torch.compile``-d as a whole.

``beta`` and ``threshold`` are numbers, or 0-dim tensors (learnable: they then get gradients).
All return ``(spk, mem)`` shaped like the input current: a float32 or float64 current gives both
in its dtype; a bf16 or fp16 current (autocast) is integrated in float32, and gives the spikes
(exactly 0 or 1) in its dtype and the membrane in float32 (the tensor the backward pass keeps, so
no copy is made of it).

:func:`conv_pool` is ``pool2d(conv2d(x), pool)`` over all ``T * B`` frames at once (2x2 max, average or
sum pooling, :data:`POOLS`), computing only the convolution outputs the pooling reads; on CPU it
runs in cache-sized chunks (:class:`ConvPool`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

#: The surrogate gradients of the spike (``model.surrogate``).
SURROGATES = ("atan", "fast_sigmoid")
#: The implementations of the LIF recurrence (``model.lif_impl``, besides ``auto``).
LIF_IMPLS = ("fused", "compiled", "scan")
#: What a spike does to the membrane (``model.reset``).
RESETS = ("subtract", "zero")
#: The 2 x 2 poolings after the convolutions (``model.pool``).
POOLS = ("max", "avg", "sum")

Scalar = float | torch.Tensor
"""A neuron constant, a number or a 0-dim tensor (a learnable parameter)."""


def surrogate_grad(x: torch.Tensor, surrogate: str, slope: float) -> torch.Tensor:
    """``H'(x)``, the surrogate derivative of the spike at ``x = U - theta`` (same shape as ``x``)."""
    return _surrogate_grad_(x.clone(), surrogate, slope)


def _surrogate_grad_(x: torch.Tensor, surrogate: str, slope: float) -> torch.Tensor:
    """:func:`surrogate_grad` in place on ``x`` (no temporaries: one pass per op over ``[T, ...]``)."""
    if surrogate == "atan":
        return x.mul_(math.pi / 2 * slope).square_().add_(1.0).reciprocal_().mul_(slope / 2)
    if surrogate == "fast_sigmoid":
        return x.abs_().mul_(slope).add_(1.0).square_().reciprocal_()
    raise ValueError(f"unknown surrogate {surrogate!r}: use 'atan' or 'fast_sigmoid'")


def _surrogate_primitive(x: torch.Tensor, surrogate: str, slope: float) -> torch.Tensor:
    """A smooth function whose derivative is :func:`surrogate_grad` (for the straight-through spike)."""
    if surrogate == "atan":
        return torch.atan(math.pi / 2 * slope * x) / math.pi
    if surrogate == "fast_sigmoid":
        return x / (1 + slope * x.abs())
    raise ValueError(f"unknown surrogate {surrogate!r}: use 'atan' or 'fast_sigmoid'")


def _forward_eager(cur: torch.Tensor, beta: Scalar, threshold: Scalar,
                   reset: str = "subtract") -> tuple[torch.Tensor, torch.Tensor]:
    """Forward recurrence, in place into preallocated ``[T, ...]`` outputs (a few ops per step).
    A half-precision current is read as it is; the membrane is float32, the spikes in its dtype."""
    mem = torch.empty_like(cur, dtype=_work_dtype(cur))      # [T, ...]
    spk = torch.empty_like(cur)                              # [T, ...]
    mem[0].copy_(cur[0])                                     # U[0] = beta * 0 + I[0] - theta * 0
    torch.gt(mem[0], threshold, out=spk[0])                 # the comparison written as 0. / 1. directly
    keep = torch.empty_like(mem[0]) if reset == "zero" else None                 # 1 - S[t-1]
    for t in range(1, cur.shape[0]):
        if reset == "zero":                                  # as snnTorch: beta * ((1 - S[t-1]) * U[t-1]) + I[t]
            torch.le(mem[t - 1], threshold, out=keep)
            torch.mul(mem[t - 1], keep, out=mem[t]).mul_(beta).add_(cur[t])
        else:
            # as snnTorch: (beta * U[t-1] + I[t]) - S[t-1] * theta (the first sum in one op); a
            # 0-dim tensor constant (learnable) enters as a tensor operand: no host sync
            if isinstance(beta, torch.Tensor):
                torch.addcmul(cur[t], mem[t - 1], beta, out=mem[t])
            else:
                torch.add(cur[t], mem[t - 1], alpha=beta, out=mem[t])
            if isinstance(threshold, torch.Tensor):
                mem[t].addcmul_(spk[t - 1], threshold, value=-1)
            else:
                mem[t].sub_(spk[t - 1], alpha=threshold)
        torch.gt(mem[t], threshold, out=spk[t])
    return spk, mem


def _backward_eager(mem: torch.Tensor, grad_spk: torch.Tensor | None, grad_mem: torch.Tensor | None,
                    beta: Scalar, threshold: Scalar, surrogate: str, slope: float, reset: str = "subtract",
                    spike_term: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Reverse scan of the gradient, in place: ``(g_I [T, ...], sum g_S * H')``, the sum only with
    ``spike_term`` (for dL/dtheta). A ``None`` gradient is zero (the output was not used: the hidden
    layers' membranes)."""
    spikes = None
    if grad_spk is None:                                     # d[t] = g_U[t]
        grad = torch.empty_like(mem).copy_(grad_mem)
        spikes = mem.new_zeros(()) if spike_term else None
    elif spike_term:
        grad = _spike_term(mem, grad_spk, None, threshold, surrogate, slope)   # g_S[t] H'(U[t] - theta)
        spikes = grad.sum()
        if grad_mem is not None:
            grad.add_(grad_mem)
    else:
        grad = _spike_term(mem, grad_spk, grad_mem, threshold, surrogate, slope)   # d[t], all t
    if reset == "zero":
        decay = torch.le(mem[:-1], threshold).to(mem.dtype).mul_(beta)          # beta * (1 - S[t]), t < T-1
        for t in range(mem.shape[0] - 2, -1, -1):            # g_I[t] = d[t] + beta (1 - S[t]) g_I[t+1]
            grad[t].addcmul_(grad[t + 1], decay[t])
    elif isinstance(beta, torch.Tensor):
        for t in range(mem.shape[0] - 2, -1, -1):            # g_I[t] = d[t] + beta * g_I[t+1]
            grad[t].addcmul_(grad[t + 1], beta)
    else:
        for t in range(mem.shape[0] - 2, -1, -1):            # g_I[t] = d[t] + beta * g_I[t+1]
            grad[t].add_(grad[t + 1], alpha=beta)
    return grad, spikes


def _spike_term(mem: torch.Tensor, grad_spk: torch.Tensor, grad_mem: torch.Tensor | None, threshold: Scalar,
                surrogate: str, slope: float) -> torch.Tensor:
    """``grad_mem + grad_spk * H'(mem - threshold)`` (``grad_mem`` None: zero) in a new tensor laid out
    like ``mem``, in few passes over ``[T, ...]`` (3 for atan, 5 for fast_sigmoid): the surrogate's
    denominator in place, then one division into it."""
    # computed from ``mem`` first so the gradient keeps the layout of the current (NHWC stays NHWC:
    # a layout change here would make the pooling's backward convert the whole conv output)
    x = torch.sub(mem, threshold)                                                # U[t] - theta
    one = x.new_ones(())
    base = grad_mem if grad_mem is not None else x.new_zeros(())
    if surrogate == "atan":                    # H' = (alpha / 2) / (1 + (pi / 2 * alpha * x)**2)
        torch.addcmul(one, x, x, value=(math.pi / 2 * slope) ** 2, out=x)
        return torch.addcdiv(base, grad_spk, x, value=slope / 2, out=x)
    if surrogate == "fast_sigmoid":            # H' = 1 / (1 + slope * |x|)**2
        torch.add(one, x.abs_(), alpha=slope, out=x).square_()
        return torch.addcdiv(base, grad_spk, x, out=x)
    raise ValueError(f"unknown surrogate {surrogate!r}: use 'atan' or 'fast_sigmoid'")


def _param_grads(mem: torch.Tensor, grad: torch.Tensor, spikes: torch.Tensor | None, threshold: Scalar,
                 reset: str, need_beta: bool, need_threshold: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(dL/dbeta, dL/dtheta)`` (module docstring) from the membrane ``[T, ...]``, ``g_I [T, ...]``
    and ``spikes = sum g_S * H'``; None where not needed."""
    g_beta = g_threshold = None
    if need_beta or (need_threshold and reset == "subtract"):
        fired = torch.gt(mem[:-1], threshold).to(mem.dtype)                      # S[t-1], t >= 1
    if need_beta:
        previous = mem[:-1] if reset == "subtract" else mem[:-1] * (1 - fired)   # dU[t] / dbeta
        g_beta = (grad[1:] * previous).sum()
    if need_threshold:
        g_threshold = -spikes
        if reset == "subtract":
            g_threshold = g_threshold - (grad[1:] * fired).sum()
    return g_beta, g_threshold


def _forward_pure(cur: torch.Tensor, beta: Scalar, threshold: Scalar,
                  reset: str = "subtract") -> tuple[torch.Tensor, torch.Tensor]:
    """The forward recurrence without in-place ops, for ``torch.compile`` (one fused kernel)."""
    mem = torch.zeros_like(cur[0], dtype=_work_dtype(cur))
    spk = torch.zeros_like(cur[0])
    spikes, mems = [], []
    for t in range(cur.shape[0]):
        if reset == "zero":
            mem = beta * ((1 - spk) * mem) + cur[t]
        else:
            mem = beta * mem + cur[t] - spk * threshold
        spk = (mem > threshold).to(cur.dtype)
        spikes.append(spk)
        mems.append(mem)
    return torch.stack(spikes), torch.stack(mems)


def _backward_pure(mem: torch.Tensor, grad_spk: torch.Tensor | None, grad_mem: torch.Tensor | None, beta: Scalar,
                   threshold: Scalar, surrogate: str, slope: float, reset: str = "subtract") -> torch.Tensor:
    """The reverse scan without in-place ops, for ``torch.compile`` (a ``None`` gradient is zero:
    one kernel per combination, nothing zero-filled)."""
    if grad_spk is None:
        d = grad_mem.to(mem.dtype)
    else:
        d = grad_spk * surrogate_grad(mem - threshold, surrogate, slope)
        d = d if grad_mem is None else grad_mem + d
    g = torch.zeros_like(d[0])
    grads = []
    for t in range(d.shape[0] - 1, -1, -1):
        if reset == "zero":                                  # g_I[t+1] reaches U[t] unless S[t] reset it
            g = d[t] + beta * (mem[t] <= threshold).to(d.dtype) * g
        else:
            g = d[t] + beta * g
        grads.append(g)
    return torch.stack(grads[::-1])


_COMPILED: dict[str, Callable] = {}


def _compiled(name: str) -> Callable:
    """``torch.compile`` of a pure kernel, made on first use. Inputs are ``[T, N]``: N is dynamic,
    so every layer and batch size share one compiled kernel per T (a C++/OpenMP loop on CPU, a
    Triton kernel on GPU)."""
    if name not in _COMPILED:
        fn = {"forward": _forward_pure, "backward": _backward_pure}[name]
        _COMPILED[name] = torch.compile(fn, dynamic=True)
    return _COMPILED[name]


def _storage_2d(x: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """``x [T, ...]`` as ``[T, N]`` in its memory order (a view for NCHW and NHWC alike), and that order."""
    order = [0] + sorted(range(1, x.dim()), key=lambda d: -x.stride(d))
    return x.permute(order).reshape(x.shape[0], -1), order


def _unflatten_like(flat: torch.Tensor, like: torch.Tensor, order: list[int]) -> torch.Tensor:
    """Inverse of :func:`_storage_2d`: ``[T, N]`` back to the shape and memory layout of ``like``."""
    inverse = [order.index(d) for d in range(like.dim())]
    return flat.view([like.shape[d] for d in order]).permute(inverse)


class LIFFused(torch.autograd.Function):
    """The whole LIF recurrence as one autograd node (equations in the module docstring).

    ``compiled=False`` runs each pass as a few PyTorch ops per time step; ``compiled=True`` as one
    ``torch.compile``-generated kernel over ``[T, N]``. ``beta`` and ``threshold`` are numbers or
    0-dim tensors; a tensor that requires grad gets its gradient.
    """

    @staticmethod
    def forward(ctx, cur: torch.Tensor, beta: Scalar, threshold: Scalar, surrogate: str, slope: float,
                compiled: bool, reset: str) -> tuple[torch.Tensor, torch.Tensor]:
        if compiled:
            flat, order = _storage_2d(cur)                                           # [T, N]
            spk, mem = (_unflatten_like(x, cur, order)
                        for x in _compiled("forward")(flat, beta, threshold, reset))
        else:
            spk, mem = _forward_eager(cur, beta, threshold, reset)
        tensors = [x for x in (beta, threshold) if isinstance(x, torch.Tensor)]
        ctx.save_for_backward(mem, *tensors)                 # the membrane: H'(U - theta); the constants
        ctx.set_materialize_grads(False)                     # an unused output's gradient stays None
        ctx.constants = [None if isinstance(x, torch.Tensor) else x for x in (beta, threshold)]
        ctx.surrogate, ctx.slope, ctx.compiled, ctx.reset = surrogate, slope, compiled, reset
        return spk, mem

    @staticmethod
    def backward(ctx, grad_spk: torch.Tensor, grad_mem: torch.Tensor):
        mem, *tensors = ctx.saved_tensors                    # [T, ...]
        beta, threshold = (tensors.pop(0) if c is None else c for c in ctx.constants)
        need_beta, need_threshold = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        if grad_spk is None and grad_mem is None:
            return None, None, None, None, None, None, None
        args = (beta, threshold, ctx.surrogate, ctx.slope, ctx.reset)
        if ctx.compiled:
            flat, order = _storage_2d(mem)
            same = [None if x is None else x.permute(order).reshape(flat.shape)   # [T, N], copies if laid out otherwise
                    for x in (grad_spk, grad_mem)]
            grad = _unflatten_like(_compiled("backward")(flat, *same, *args), mem, order)
            spikes = None
            if need_threshold:
                spikes = (mem.new_zeros(()) if grad_spk is None
                          else (surrogate_grad(mem - threshold, ctx.surrogate, ctx.slope) * grad_spk).sum())
        else:
            grad, spikes = _backward_eager(mem, grad_spk, grad_mem, *args, spike_term=need_threshold)
        g_beta, g_threshold = _param_grads(mem, grad, spikes, threshold, ctx.reset, need_beta, need_threshold)
        return grad, g_beta, g_threshold, None, None, None, None


def _check_current(cur: torch.Tensor, surrogate: str, reset: str = "subtract") -> None:
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}: use 'atan' or 'fast_sigmoid'")
    if reset not in RESETS:
        raise ValueError(f"unknown reset {reset!r}: use {' or '.join(repr(r) for r in RESETS)}")
    if cur.dim() < 1 or cur.shape[0] < 1:
        raise ValueError(f"expected a time-first current [T, ...] with T >= 1, got shape {tuple(cur.shape)}")


def _work_dtype(cur: torch.Tensor) -> torch.dtype:
    """The dtype the membrane is integrated in: float32 for a half-precision current (the membrane is
    a running sum), the current's own otherwise."""
    return torch.float32 if cur.dtype in (torch.float16, torch.bfloat16) else cur.dtype


def _scalar(x: Scalar, dtype: torch.dtype, unit_interval: bool = False) -> Scalar:
    """A neuron constant as the kernels take it: a float, or a 0-dim tensor in ``dtype``
    (differentiably); ``unit_interval`` clamps it to [0, 1] as snnTorch clamps beta."""
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise ValueError(f"expected one value per layer, got a tensor of shape {tuple(x.shape)}")
        x = x.reshape(()).to(dtype)
        return x.clamp(0.0, 1.0) if unit_interval else x
    return min(max(float(x), 0.0), 1.0) if unit_interval else float(x)


def lif_fused(cur: torch.Tensor, beta: Scalar = 0.9, threshold: Scalar = 1.0, surrogate: str = "atan",
              slope: float = 2.0, compiled: bool = False, reset: str = "subtract") -> tuple[torch.Tensor, torch.Tensor]:
    """LIF over time as one autograd node: ``cur [T, ...]`` -> ``(spk [T, ...], mem [T, ...])``.

    Equal to :func:`snn_lib.neurons.lif_sequence` (and to snnTorch's ``Leaky`` stepped ``T`` times
    from zero) in forward values and in gradients, with ``beta`` clamped to [0, 1] like snnTorch.
    ``beta`` and ``threshold`` may be 0-dim tensors (learnable, as ``Leaky(learn_beta=True,
    learn_threshold=True)``); ``reset`` is ``"subtract"`` or ``"zero"``. ``compiled``: run each
    pass as one ``torch.compile``-made kernel (the first call compiles, tens of seconds on a small
    CPU) instead of PyTorch ops per step.
    """
    _check_current(cur, surrogate, reset)
    dtype = _work_dtype(cur)
    return LIFFused.apply(cur, _scalar(beta, dtype, unit_interval=True), _scalar(threshold, dtype), surrogate,
                          float(slope), bool(compiled), reset)


def lif_scan(cur: torch.Tensor, beta: Scalar = 0.9, threshold: Scalar = 1.0, surrogate: str = "atan",
             slope: float = 2.0, reset: str = "subtract") -> tuple[torch.Tensor, torch.Tensor]:
    """The same recurrence as :func:`lif_fused` in plain differentiable ops, for ``torch.compile``.

    The spike is ``H(x) + (p(x) - p(x).detach())`` with ``p' = H'``: exactly 0 or 1 forward, the
    surrogate derivative backward. The reset uses the previous spike, detached.
    """
    _check_current(cur, surrogate, reset)
    work = cur.to(_work_dtype(cur))
    beta, threshold = _scalar(beta, work.dtype, unit_interval=True), _scalar(threshold, work.dtype)
    mem = torch.zeros_like(work[0])
    fired = torch.zeros_like(work[0])
    spikes, mems = [], []
    for cur_t in work:
        if reset == "zero":
            mem = beta * ((1 - fired) * mem) + cur_t
        else:
            mem = beta * mem + cur_t - fired * threshold
        x = mem - threshold
        smooth = _surrogate_primitive(x, surrogate, slope)
        spk = (x > 0).to(work.dtype) + (smooth - smooth.detach())
        fired = spk.detach()
        spikes.append(spk)
        mems.append(mem)
    return torch.stack(spikes).to(cur.dtype), torch.stack(mems)


LifFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def lif_kernel(impl: str) -> LifFn:
    """The LIF function of one of :data:`LIF_IMPLS`: ``fn(cur, beta, threshold, surrogate, slope,
    reset=...)``."""
    if impl == "fused":
        return lif_fused
    if impl == "compiled":
        return functools.partial(lif_fused, compiled=True)
    if impl == "scan":
        return lif_scan
    raise ValueError(f"lif_impl={impl!r}: use one of {', '.join(LIF_IMPLS)}")


def compiling() -> bool:
    """True while ``torch.compile`` traces the caller (plain ops are then used instead of the
    custom autograd functions, which it would have to break the graph for)."""
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling())


def pool2d(x: torch.Tensor, pool: str = "max") -> torch.Tensor:
    """2x2 pooling with stride 2 of ``x [N, C, H, W]`` (one of :data:`POOLS`): the maximum, the
    average, or the sum of each window (the average times 4: SLAYER's sum pooling)."""
    if pool == "max":
        return F.max_pool2d(x, 2)
    if pool == "avg":
        return F.avg_pool2d(x, 2)
    if pool == "sum":
        return F.avg_pool2d(x, 2, divisor_override=1)
    raise ValueError(f"unknown pool {pool!r}: use one of {', '.join(POOLS)}")


def flat_features(input_size: int, channels: int, kernel_size: int) -> int:
    """Inputs of the fully connected layer: ``channels * side**2`` after two conv+pool stages."""
    side = input_size
    for _ in range(2):
        side = (side - kernel_size + 1) // 2
    if side < 1:
        raise ValueError(f"{input_size}x{input_size} frames are too small for two {kernel_size}x{kernel_size} "
                         "conv + 2x2 pool stages")
    return channels * side * side


def conv_pool(conv: torch.nn.Conv2d, x: torch.Tensor, channels_last: bool = False, pool: str = "max") -> torch.Tensor:
    """``pool2d(conv(x), pool)`` computing only the convolution outputs the pooling reads.

    A 2x2 pool of an odd-sized map drops its last row and column (11 -> 5 in the CSNN's second
    stage), so the input is first cut to the rows and columns that feed the kept outputs: the same
    values and gradients, 17% fewer multiply-adds in that layer. ``channels_last`` lays the
    activations out as NHWC, which oneDNN (CPU) convolves and pools faster. On CPU the ``T * B``
    frames go through in chunks (:class:`ConvPool`); on a GPU, under autocast or while being
    compiled, as one call of each op.
    """
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}: use one of {', '.join(POOLS)}")
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    (kh, kw), (sh, sw) = conv.kernel_size, conv.stride
    if (sh, sw) == (1, 1) and conv.padding in ((0, 0), "valid") and conv.dilation == (1, 1):
        out_h, out_w = x.shape[-2] - kh + 1, x.shape[-1] - kw + 1
        crop = (2 * (out_h // 2) + kh - 1, 2 * (out_w // 2) + kw - 1)
        if (conv.groups == 1 and x.device.type == "cpu" and not compiling()
                and not torch.is_autocast_enabled("cpu")):
            return ConvPool.apply(x, conv.weight, conv.bias, crop, pool)
        x = x[..., :crop[0], :crop[1]]
    return pool2d(conv(x), pool)


CHUNK_BYTES = 4 * 2**20
"""Size of one chunk's convolution output in :class:`ConvPool`: small enough to stay in a CPU's
cache between the convolution that writes it and the pooling that reads it."""


def _layout(x: torch.Tensor) -> torch.memory_format:
    nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if nhwc else torch.contiguous_format


class ConvPool(torch.autograd.Function):
    """``pool2d(conv2d(x[..., :h, :w], weight, bias), pool)`` for a stride-1, unpadded convolution,
    in chunks of frames, with its own backward pass.

    Autograd over the plain ops keeps the whole convolution output ``[N, C, H', W']`` (four times
    the pooled output) until the backward pass, and every pass over a tensor that large runs from
    main memory. Here each chunk of frames is convolved and pooled while it is in cache; only the
    max pooling's argmax indices are kept (average and sum pooling need nothing), and the backward
    pass goes chunk by chunk through the
    pooling and the convolution again, with ATen's own backward kernels (so the gradients are those
    of the plain ops, up to the order in which the weight gradient is summed).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                crop: tuple[int, int], pool: str = "max") -> torch.Tensor:
        h, w = crop
        fmt = _layout(x)
        out_c, (kh, kw) = weight.shape[0], weight.shape[2:]
        conv_shape = (out_c, h - kh + 1, w - kw + 1)                                # per frame
        per_frame = math.prod(conv_shape) * x.element_size()
        chunk = max(1, CHUNK_BYTES // per_frame)
        pooled_shape = (x.shape[0], out_c, conv_shape[1] // 2, conv_shape[2] // 2)     # [N, C, H'/2, W'/2]
        out = torch.empty(pooled_shape, dtype=x.dtype, device=x.device, memory_format=fmt)
        indices = (torch.empty(pooled_shape, dtype=torch.int64, device=x.device, memory_format=fmt)
                   if pool == "max" else None)
        divisor = 1 if pool == "sum" else None
        for start in range(0, x.shape[0], chunk):
            rows = slice(start, start + chunk)
            xc = x[rows, :, :h, :w].contiguous(memory_format=fmt)                   # [n, Cin, h, w]
            if pool == "max":
                torch.ops.aten.max_pool2d_with_indices.out(F.conv2d(xc, weight, bias), [2, 2], [2, 2], [0, 0],
                                                           [1, 1], False, out=out[rows], indices=indices[rows])
            else:
                torch.ops.aten.avg_pool2d.out(F.conv2d(xc, weight, bias), [2, 2], [2, 2], [0, 0], False, True,
                                              divisor, out=out[rows])
        ctx.save_for_backward(x, weight, indices)
        ctx.crop, ctx.chunk, ctx.fmt, ctx.conv_shape, ctx.pool = crop, chunk, fmt, conv_shape, pool
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, weight, indices = ctx.saved_tensors
        (h, w), chunk, fmt = ctx.crop, ctx.chunk, ctx.fmt
        need_x, need_w, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        need_b = need_b and ctx.has_bias
        grad_x = torch.zeros_like(x, memory_format=fmt) if need_x else None
        grad_w = torch.zeros_like(weight) if need_w else None
        grad_b = weight.new_zeros(weight.shape[0]) if need_b else None
        g_conv_buffer = torch.empty((min(chunk, x.shape[0]),) + ctx.conv_shape, dtype=grad_out.dtype,
                                    device=grad_out.device, memory_format=fmt)     # reused by every chunk
        for start in range(0, x.shape[0], chunk):
            rows = slice(start, start + chunk)
            xc = x[rows, :, :h, :w].contiguous(memory_format=fmt)
            g = grad_out[rows].contiguous(memory_format=fmt)
            g_conv = g_conv_buffer[:xc.shape[0]]                                    # [n, C, H', W']
            if ctx.pool == "max":
                torch.ops.aten.max_pool2d_with_indices_backward.grad_input(
                    g, g_conv, [2, 2], [2, 2], [0, 0], [1, 1], False, indices[rows], grad_input=g_conv)
            else:                                            # reads only the shape of its input argument
                torch.ops.aten.avg_pool2d_backward.grad_input(
                    g, g_conv, [2, 2], [2, 2], [0, 0], False, True, 1 if ctx.pool == "sum" else None,
                    grad_input=g_conv)
            gx, gw, gb = torch.ops.aten.convolution_backward(
                g_conv, xc, weight, [weight.shape[0]] if ctx.has_bias else None, [1, 1], [0, 0], [1, 1],
                False, [0, 0], 1, [need_x, need_w, need_b])
            if need_x:
                grad_x[rows, :, :h, :w] = gx
            if need_w:
                grad_w += gw
            if need_b:
                grad_b += gb
        return grad_x, grad_w, grad_b, None, None


__all__ = ["LIF_IMPLS", "POOLS", "RESETS", "SURROGATES", "ConvPool", "LIFFused", "compiling", "conv_pool", "flat_features",
           "lif_fused",
           "lif_kernel", "lif_scan", "pool2d", "surrogate_grad"]
