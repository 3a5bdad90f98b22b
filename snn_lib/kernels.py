"""The kernels of the fast path: the LIF recurrence over all time steps, and convolution + pooling.

Functions of tensors only: this module imports nothing from :mod:`snn_lib` (the model in
:mod:`snn_lib.model` calls it, never the other way round).

Forward (snnTorch ``Leaky`` with reset by subtraction, the reset decided by the previous step)::

    U[t] = beta * U[t-1] + I[t] - theta * S[t-1]          U[-1] = 0, S[-1] = 0
    S[t] = H(U[t] - theta)

``S[t-1] = H(U[t-1] - theta)`` is exactly snnTorch's detached reset, so the reset carries no
gradient and ``dU[t] / dU[t-1] = beta``. With ``g_S[t]`` and ``g_U[t]`` the gradients arriving at
the outputs and ``H'`` the surrogate derivative, the backward pass is one reverse linear scan::

    d[t]      = g_U[t] + g_S[t] * H'(U[t] - theta)
    g_I[t]    = d[t] + beta * g_I[t+1]                     g_I[T] = 0

Surrogates (as in :mod:`snntorch.surrogate`, ``x = U - theta``)::

    atan (alpha):          H'(x) = (alpha / 2) / (1 + (pi / 2 * alpha * x)**2)
    fast_sigmoid (slope):  H'(x) = 1 / (1 + slope * |x|)**2

Three interchangeable implementations of the recurrence (:data:`LIF_IMPLS`, the names of the
``model.lif_impl`` setting):

* ``"fused"``: :func:`lif_fused`, a custom :class:`torch.autograd.Function` that saves only the
  membrane for backward and runs each pass as a few in-place PyTorch ops per time step into
  preallocated ``[T, ...]`` outputs (nothing to compile);
* ``"compiled"``: :func:`lif_fused` with ``compiled=True``, each pass one ``torch.compile``-made
  kernel over ``[T, N]`` (a C++/OpenMP loop on CPU, a Triton kernel on GPU);
* ``"scan"``: :func:`lif_scan`, the same recurrence in plain differentiable ops, for a model that
  is ``torch.compile``-d as a whole.

All return ``(spk, mem)`` shaped like the input current, in its dtype; a bf16 or fp16 current
(autocast) is integrated in float32 and the spikes (exactly 0 or 1) and membrane come back in the
input dtype.

:func:`conv_pool` is ``max_pool2d(conv2d(x), 2)`` over all ``T * B`` frames at once, computing only
the convolution outputs the pooling reads; on CPU it runs in cache-sized chunks (:class:`ConvPool`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

SURROGATES = ("atan", "fast_sigmoid")
LIF_IMPLS = ("fused", "compiled", "scan")


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


def _forward_eager(cur: torch.Tensor, beta: float, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward recurrence, in place into preallocated ``[T, ...]`` outputs (a few ops per step)."""
    mem = torch.empty_like(cur)                              # [T, ...]
    spk = torch.empty_like(cur)                              # [T, ...]
    mem[0].copy_(cur[0])                                     # U[0] = beta * 0 + I[0] - theta * 0
    torch.gt(mem[0], threshold, out=spk[0])                 # the comparison written as 0. / 1. directly
    for t in range(1, cur.shape[0]):
        # as snnTorch: (beta * U[t-1] + I[t]) - S[t-1] * theta (the first sum in one op)
        torch.add(cur[t], mem[t - 1], alpha=beta, out=mem[t]).sub_(spk[t - 1], alpha=threshold)
        torch.gt(mem[t], threshold, out=spk[t])
    return spk, mem


def _backward_eager(mem: torch.Tensor, grad_spk: torch.Tensor | None, grad_mem: torch.Tensor | None,
                    beta: float, threshold: float, surrogate: str, slope: float) -> torch.Tensor:
    """Reverse scan of the gradient, in place: ``g_I [T, ...]``. A ``None`` gradient is zero (the
    output was not used: the hidden layers' membranes)."""
    # computed from ``mem`` first so the gradient keeps the layout of the current (NHWC stays NHWC:
    # a layout change here would make the pooling's backward convert the whole conv output)
    grad = _surrogate_grad_(mem - threshold, surrogate, slope)                  # H'(U[t] - theta), all t
    grad = grad.mul_(grad_spk) if grad_spk is not None else grad.zero_()
    if grad_mem is not None:
        grad.add_(grad_mem)                                                      # d[t], all t
    for t in range(mem.shape[0] - 2, -1, -1):                # g_I[t] = d[t] + beta * g_I[t+1]
        grad[t].add_(grad[t + 1], alpha=beta)
    return grad


def _forward_pure(cur: torch.Tensor, beta: float, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward recurrence without in-place ops, for ``torch.compile`` (one fused kernel)."""
    mem = torch.zeros_like(cur[0])
    spk = torch.zeros_like(cur[0])
    spikes, mems = [], []
    for t in range(cur.shape[0]):
        mem = beta * mem + cur[t] - spk * threshold
        spk = (mem > threshold).to(cur.dtype)
        spikes.append(spk)
        mems.append(mem)
    return torch.stack(spikes), torch.stack(mems)


def _backward_pure(mem: torch.Tensor, grad_spk: torch.Tensor, grad_mem: torch.Tensor, beta: float,
                   threshold: float, surrogate: str, slope: float) -> torch.Tensor:
    """The reverse scan without in-place ops, for ``torch.compile``."""
    d = grad_mem + grad_spk * surrogate_grad(mem - threshold, surrogate, slope)
    g = torch.zeros_like(d[0])
    grads = []
    for t in range(d.shape[0] - 1, -1, -1):
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
    ``torch.compile``-generated kernel over ``[T, N]``.
    """

    @staticmethod
    def forward(ctx, cur: torch.Tensor, beta: float, threshold: float, surrogate: str, slope: float,
                compiled: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if compiled:
            flat, order = _storage_2d(cur)                                           # [T, N]
            spk, mem = (_unflatten_like(x, cur, order) for x in _compiled("forward")(flat, beta, threshold))
        else:
            spk, mem = _forward_eager(cur, beta, threshold)
        ctx.save_for_backward(mem)                           # only the membrane: H'(U - theta)
        ctx.set_materialize_grads(False)                     # an unused output's gradient stays None
        ctx.beta, ctx.threshold, ctx.surrogate, ctx.slope, ctx.compiled = beta, threshold, surrogate, slope, compiled
        return spk, mem

    @staticmethod
    def backward(ctx, grad_spk: torch.Tensor, grad_mem: torch.Tensor):
        (mem,) = ctx.saved_tensors                           # [T, ...]
        args = (ctx.beta, ctx.threshold, ctx.surrogate, ctx.slope)
        if grad_spk is None and grad_mem is None:
            return None, None, None, None, None, None
        if ctx.compiled:
            grad_spk, grad_mem = (torch.zeros_like(mem) if g is None else g for g in (grad_spk, grad_mem))
            flat, order = _storage_2d(mem)
            same = [x.permute(order).reshape(flat.shape) for x in (grad_spk, grad_mem)]   # [T, N], copies if laid out otherwise
            grad = _unflatten_like(_compiled("backward")(flat, *same, *args), mem, order)
        else:
            grad = _backward_eager(mem, grad_spk, grad_mem, *args)
        return grad, None, None, None, None, None


def _check_current(cur: torch.Tensor, surrogate: str) -> None:
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}: use 'atan' or 'fast_sigmoid'")
    if cur.dim() < 1 or cur.shape[0] < 1:
        raise ValueError(f"expected a time-first current [T, ...] with T >= 1, got shape {tuple(cur.shape)}")


def _in_float32(cur: torch.Tensor) -> torch.Tensor:
    """A half-precision current as float32 (the membrane is a running sum); others as they are."""
    return cur.float() if cur.dtype in (torch.float16, torch.bfloat16) else cur


def lif_fused(cur: torch.Tensor, beta: float = 0.9, threshold: float = 1.0, surrogate: str = "atan",
              slope: float = 2.0, compiled: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """LIF over time as one autograd node: ``cur [T, ...]`` -> ``(spk [T, ...], mem [T, ...])``.

    Equal to :func:`snn_lib.neurons.lif_sequence` (and to snnTorch's ``Leaky`` stepped ``T`` times
    from zero) in forward values and in gradients, with ``beta`` clamped to [0, 1] like snnTorch.
    ``compiled``: run each pass as one ``torch.compile``-made kernel (the first call compiles, tens
    of seconds on a small CPU) instead of PyTorch ops per step.
    """
    _check_current(cur, surrogate)
    work = _in_float32(cur)
    spk, mem = LIFFused.apply(work, min(max(float(beta), 0.0), 1.0), float(threshold), surrogate, float(slope),
                              bool(compiled))
    return spk.to(cur.dtype), mem.to(cur.dtype)


def lif_scan(cur: torch.Tensor, beta: float = 0.9, threshold: float = 1.0, surrogate: str = "atan",
             slope: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The same recurrence as :func:`lif_fused` in plain differentiable ops, for ``torch.compile``.

    The spike is ``H(x) + (p(x) - p(x).detach())`` with ``p' = H'``: exactly 0 or 1 forward, the
    surrogate derivative backward. The reset uses the previous spike, detached.
    """
    _check_current(cur, surrogate)
    work = _in_float32(cur)
    beta = min(max(float(beta), 0.0), 1.0)
    mem = torch.zeros_like(work[0])
    fired = torch.zeros_like(work[0])
    spikes, mems = [], []
    for cur_t in work:
        mem = beta * mem + cur_t - fired * threshold
        x = mem - threshold
        smooth = _surrogate_primitive(x, surrogate, slope)
        spk = (x > 0).to(work.dtype) + (smooth - smooth.detach())
        fired = spk.detach()
        spikes.append(spk)
        mems.append(mem)
    return torch.stack(spikes).to(cur.dtype), torch.stack(mems).to(cur.dtype)


LifFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def lif_kernel(impl: str) -> LifFn:
    """The LIF function of one of :data:`LIF_IMPLS`: ``fn(cur, beta, threshold, surrogate, slope)``."""
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


def conv_pool(conv: torch.nn.Conv2d, x: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """``max_pool2d(conv(x), 2)`` computing only the convolution outputs the pooling reads.

    A 2x2 pool of an odd-sized map drops its last row and column (11 -> 5 in the CSNN's second
    stage), so the input is first cut to the rows and columns that feed the kept outputs: the same
    values and gradients, 17% fewer multiply-adds in that layer. ``channels_last`` lays the
    activations out as NHWC, which oneDNN (CPU) convolves and pools faster. On CPU the ``T * B``
    frames go through in chunks (:class:`ConvPool`); on a GPU, under autocast or while being
    compiled, as one call of each op.
    """
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    (kh, kw), (sh, sw) = conv.kernel_size, conv.stride
    if (sh, sw) == (1, 1) and conv.padding in ((0, 0), "valid") and conv.dilation == (1, 1):
        out_h, out_w = x.shape[-2] - kh + 1, x.shape[-1] - kw + 1
        crop = (2 * (out_h // 2) + kh - 1, 2 * (out_w // 2) + kw - 1)
        if (conv.groups == 1 and x.device.type == "cpu" and not compiling()
                and not torch.is_autocast_enabled("cpu")):
            return ConvPool.apply(x, conv.weight, conv.bias, crop)
        x = x[..., :crop[0], :crop[1]]
    return F.max_pool2d(conv(x), 2)


CHUNK_BYTES = 4 * 2**20
"""Size of one chunk's convolution output in :class:`ConvPool`: small enough to stay in a CPU's
cache between the convolution that writes it and the pooling that reads it."""


def _layout(x: torch.Tensor) -> torch.memory_format:
    nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if nhwc else torch.contiguous_format


class ConvPool(torch.autograd.Function):
    """``max_pool2d(conv2d(x[..., :h, :w], weight, bias), 2)`` for a stride-1, unpadded convolution,
    in chunks of frames, with its own backward pass.

    Autograd over the plain ops keeps the whole convolution output ``[N, C, H', W']`` (four times
    the pooled output) until the backward pass, and every pass over a tensor that large runs from
    main memory. Here each chunk of frames is convolved and pooled while it is in cache; only the
    pooling's argmax indices are kept, and the backward pass goes chunk by chunk through the
    pooling and the convolution again, with ATen's own backward kernels (so the gradients are those
    of the plain ops, up to the order in which the weight gradient is summed).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                crop: tuple[int, int]) -> torch.Tensor:
        h, w = crop
        fmt = _layout(x)
        out_c, (kh, kw) = weight.shape[0], weight.shape[2:]
        conv_shape = (out_c, h - kh + 1, w - kw + 1)                                # per frame
        per_frame = math.prod(conv_shape) * x.element_size()
        chunk = max(1, CHUNK_BYTES // per_frame)
        pooled_shape = (x.shape[0], out_c, conv_shape[1] // 2, conv_shape[2] // 2)     # [N, C, H'/2, W'/2]
        out = torch.empty(pooled_shape, dtype=x.dtype, device=x.device, memory_format=fmt)
        indices = torch.empty(pooled_shape, dtype=torch.int64, device=x.device, memory_format=fmt)
        for start in range(0, x.shape[0], chunk):
            rows = slice(start, start + chunk)
            xc = x[rows, :, :h, :w].contiguous(memory_format=fmt)                   # [n, Cin, h, w]
            torch.ops.aten.max_pool2d_with_indices.out(F.conv2d(xc, weight, bias), [2, 2], [2, 2], [0, 0], [1, 1],
                                                       False, out=out[rows], indices=indices[rows])
        ctx.save_for_backward(x, weight, indices)
        ctx.crop, ctx.chunk, ctx.fmt, ctx.conv_shape = crop, chunk, fmt, conv_shape
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
            torch.ops.aten.max_pool2d_with_indices_backward.grad_input(
                g, g_conv, [2, 2], [2, 2], [0, 0], [1, 1], False, indices[rows], grad_input=g_conv)
            gx, gw, gb = torch.ops.aten.convolution_backward(
                g_conv, xc, weight, [weight.shape[0]] if ctx.has_bias else None, [1, 1], [0, 0], [1, 1],
                False, [0, 0], 1, [need_x, need_w, need_b])
            if need_x:
                grad_x[rows, :, :h, :w] = gx
            if need_w:
                grad_w += gw
            if need_b:
                grad_b += gb
        return grad_x, grad_w, grad_b, None


__all__ = ["LIF_IMPLS", "SURROGATES", "ConvPool", "LIFFused", "compiling", "conv_pool", "lif_fused", "lif_kernel", "lif_scan",
           "surrogate_grad"]
