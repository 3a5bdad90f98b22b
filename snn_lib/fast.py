"""The fast path of the CSNN: time folded into the batch, one fused LIF operation per layer.

The per-step reference (:meth:`snn_lib.model.CSNN.forward_reference`) calls every layer ``T``
times. Convolutions, pooling and the linear layer have no state, so here they run over all
``T * B`` frames at once (on CPU in cache-sized chunks, :class:`ConvPool`); only the LIF recurrence
is sequential, and it runs as one autograd node per layer with its own backward pass through time.

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

Interchangeable implementations of the recurrence:

* :func:`lif_fused` - a custom :class:`torch.autograd.Function`, only the membrane saved for
  backward. ``kernels="eager"``: in-place PyTorch ops per time step into preallocated ``[T, ...]``
  outputs (the default, nothing to compile). ``kernels="compiled"``: each pass is one
  ``torch.compile``-generated kernel over ``[T, N]`` (a C++/OpenMP loop on CPU, Triton on GPU).
* :func:`lif_scan` - the same recurrence written with plain differentiable ops (a straight-through
  spike), for a model that is ``torch.compile``-d as a whole; :func:`csnn_forward_fast` switches
  to it by itself while being compiled.

All return ``(spk, mem)`` shaped like the input current, in its dtype; a bf16 or fp16 current
(autocast) is integrated in float32 and the spikes (exactly 0 or 1) and membrane come back in the
input dtype. No hand-written Triton kernel: on a GPU the compiled kernels are inductor's Triton
(untested on GPU here; ``benchmarks/README.md`` says what was measured where).
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .model import CSNN

SURROGATES = ("atan", "fast_sigmoid")
LIF_IMPLS = ("fused", "compiled", "scan")


def _f32(x: float) -> float:
    """``x`` rounded to float32, as snnTorch stores ``beta`` and ``threshold`` (float32 buffers).

    With ``struct``, not a tensor: no device sync, and ``torch.compile`` traces it without a break."""
    return struct.unpack("f", struct.pack("f", x))[0]


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

    ``kernels="eager"`` runs the loops as a few PyTorch ops per time step; ``"compiled"`` runs
    each pass as one ``torch.compile``-generated kernel over ``[T, N]``.
    """

    @staticmethod
    def forward(ctx, cur: torch.Tensor, beta: float, threshold: float, surrogate: str, slope: float,
                kernels: str) -> tuple[torch.Tensor, torch.Tensor]:
        if kernels == "compiled":
            flat, order = _storage_2d(cur)                                           # [T, N]
            spk, mem = (_unflatten_like(x, cur, order) for x in _compiled("forward")(flat, beta, threshold))
        else:
            spk, mem = _forward_eager(cur, beta, threshold)
        ctx.save_for_backward(mem)                           # only the membrane: H'(U - theta)
        ctx.set_materialize_grads(False)                     # an unused output's gradient stays None
        ctx.beta, ctx.threshold, ctx.surrogate, ctx.slope, ctx.kernels = beta, threshold, surrogate, slope, kernels
        return spk, mem

    @staticmethod
    def backward(ctx, grad_spk: torch.Tensor, grad_mem: torch.Tensor):
        (mem,) = ctx.saved_tensors                           # [T, ...]
        args = (ctx.beta, ctx.threshold, ctx.surrogate, ctx.slope)
        if grad_spk is None and grad_mem is None:
            return None, None, None, None, None, None
        if ctx.kernels == "compiled":
            grad_spk, grad_mem = (torch.zeros_like(mem) if g is None else g for g in (grad_spk, grad_mem))
            flat, order = _storage_2d(mem)
            same = [x.permute(order).reshape(flat.shape) for x in (grad_spk, grad_mem)]   # [T, N], copies if laid out otherwise
            grad = _unflatten_like(_compiled("backward")(flat, *same, *args), mem, order)
        else:
            grad = _backward_eager(mem, grad_spk, grad_mem, *args)
        return grad, None, None, None, None, None


def _check(cur: torch.Tensor, surrogate: str) -> None:
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}: use 'atan' or 'fast_sigmoid'")
    if cur.dim() < 1 or cur.shape[0] < 1:
        raise ValueError(f"expected a time-first current [T, ...] with T >= 1, got shape {tuple(cur.shape)}")


def _work_dtype(cur: torch.Tensor) -> torch.Tensor:
    """Half-precision currents are integrated in float32 (the membrane is a running sum)."""
    return cur.float() if cur.dtype in (torch.float16, torch.bfloat16) else cur


def lif_fused(cur: torch.Tensor, beta: float = 0.9, threshold: float = 1.0, surrogate: str = "atan",
              slope: float = 2.0, kernels: str = "eager") -> tuple[torch.Tensor, torch.Tensor]:
    """LIF over time as one autograd node: ``cur [T, ...]`` -> ``(spk [T, ...], mem [T, ...])``.

    Equal to :func:`snn_lib.neurons.lif_sequence` (and to snnTorch's ``Leaky`` stepped ``T`` times
    from zero) in forward values and in gradients, with ``beta`` clamped to [0, 1] like snnTorch.
    ``kernels``: ``"eager"`` (PyTorch ops per step) or ``"compiled"`` (one ``torch.compile``-made
    kernel per pass; the first call compiles, tens of seconds on a small CPU).
    """
    _check(cur, surrogate)
    if kernels not in ("eager", "compiled"):
        raise ValueError(f"kernels={kernels!r}: use 'eager' or 'compiled'")
    work = _work_dtype(cur)
    spk, mem = LIFFused.apply(work, min(max(float(beta), 0.0), 1.0), float(threshold), surrogate, float(slope),
                              kernels)
    return spk.to(cur.dtype), mem.to(cur.dtype)


def lif_scan(cur: torch.Tensor, beta: float = 0.9, threshold: float = 1.0, surrogate: str = "atan",
             slope: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The same recurrence as :func:`lif_fused` in plain differentiable ops, for ``torch.compile``.

    The spike is ``H(x) + (p(x) - p(x).detach())`` with ``p' = H'``: exactly 0 or 1 forward, the
    surrogate derivative backward. The reset uses the previous spike, detached.
    """
    _check(cur, surrogate)
    work = _work_dtype(cur)
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


def _compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling())


def csnn_forward_fast(model: "CSNN", frames: torch.Tensor, lif_impl: str | None = None,
                      channels_last: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``frames [T, B, 2, H, W]`` -> ``(spk [T, B, 10], mem [T, B, 10])``, equal to the reference.

    Each convolution, pooling and the linear layer run once over ``T * B`` frames (NHWC on CPU or
    when the model is ``channels_last``; see :func:`conv_pool`); each LIF layer is one call of the
    recurrence chosen by ``lif_impl``:

    * ``"fused"``: :func:`lif_fused` with eager kernels (no compilation; the default);
    * ``"compiled"``: :func:`lif_fused` with ``torch.compile``-made kernels (fastest on CPU once
      compiled; the first call compiles);
    * ``"scan"``: :func:`lif_scan`, plain ops, for a model that is ``torch.compile``-d as a whole;
    * ``"auto"``: ``"scan"`` while being compiled, else ``"fused"``.

    ``None`` takes ``model.cfg.lif_impl`` when the config has that field, else ``"auto"``.
    ``channels_last=None``: NHWC activations on CPU or for a ``channels_last`` model, else NCHW.
    """
    if lif_impl is None:
        lif_impl = getattr(model.cfg, "lif_impl", "auto")
    if lif_impl == "auto":
        lif_impl = "scan" if _compiling() else "fused"
    if lif_impl not in LIF_IMPLS:
        raise ValueError(f"lif_impl={lif_impl!r}: use 'auto', 'fused', 'compiled' or 'scan'")
    if lif_impl == "scan":
        lif = lif_scan
    else:
        kernels = "compiled" if lif_impl == "compiled" else "eager"
        lif = functools.partial(lif_fused, kernels=kernels)
    cfg = model.cfg
    # snnTorch keeps beta and threshold as float32 buffers; round the same way (no device sync)
    opts = dict(beta=_f32(cfg.beta), threshold=_f32(cfg.threshold), surrogate=cfg.surrogate,
                slope=float(cfg.surrogate_slope))
    T, B = frames.shape[:2]
    if channels_last is None:
        channels_last = frames.device.type == "cpu" or model.conv1.weight.is_contiguous(
            memory_format=torch.channels_last)
    x = frames.flatten(0, 1)                                           # [T*B, 2, H, W]
    cur1 = conv_pool(model.conv1, x, channels_last)                    # [T*B, 12, 15, 15]
    spk1, _ = lif(cur1.unflatten(0, (T, B)), **opts)                   # [T, B, 12, 15, 15]
    cur2 = conv_pool(model.conv2, spk1.flatten(0, 1), channels_last)   # [T*B, 64, 5, 5]
    spk2, _ = lif(cur2.unflatten(0, (T, B)), **opts)                   # [T, B, 64, 5, 5]
    cur3 = model.fc(spk2.flatten(2))                                   # [T, B, 10]
    return lif(cur3, **opts)                                           # [T, B, 10] each


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
        if (conv.groups == 1 and x.device.type == "cpu" and not _compiling()
                and not torch.is_autocast_enabled("cpu")):
            return ConvPool.apply(x, conv.weight, conv.bias, crop)
        x = x[..., :crop[0], :crop[1]]
    return F.max_pool2d(conv(x), 2)


CHUNK_BYTES = 4 * 2**20
"""Size of one chunk's convolution output in :class:`ConvPool` (4 MiB: 97 frames in the CSNN's
first layer, 163 in its second)."""


def _layout(x: torch.Tensor) -> torch.memory_format:
    nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if nhwc else torch.contiguous_format


class ConvPool(torch.autograd.Function):
    """``max_pool2d(conv2d(x[..., :h, :w], weight, bias), 2)`` for a stride-1, unpadded convolution,
    in chunks of frames, with its own backward pass.

    Autograd over the plain ops keeps the whole convolution output ``[N, C, H', W']`` (four times
    the pooled output) until the backward pass, and on CPU every pass over it runs from main
    memory: at ``N = T * B = 800`` frames it is 35 MB, above glibc's default ``mmap`` threshold,
    so each step also maps and zero-fills it afresh (unless
    :func:`snn_lib.train.keep_freed_cpu_memory` has been called). Here each chunk of frames is
    convolved and pooled while it is in cache; only the pooling's argmax indices are kept, and
    the backward pass goes chunk by chunk through the pooling and the convolution again (ATen's
    own backward kernels, so gradients are those of the plain ops up to the order in which the
    weight gradient is summed).
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


__all__ = ["LIFFused", "ConvPool", "lif_fused", "lif_scan", "surrogate_grad", "conv_pool", "csnn_forward_fast"]
