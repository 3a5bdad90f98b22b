"""A recurrent spiking layer over time, with a reference loop and a fast path side by side.

``RecurrentLayer(n_in, n_hidden, neuron)`` maps time-first input ``x [T, B, n_in]`` to
``(spk [T, B, n_hidden], mem [T, B, n_hidden])``. Its current is an input projection plus, with
``recurrent=True``, the previous step's spikes through a learned all-to-all weight::

    I[t] = W_in x[t] + b_in + W_rec S[t-1]

and its neuron is one of :data:`NEURONS`, whose equations :mod:`snn_lib.neurons` writes out: the
LIF neuron (with ``W_rec``: snnTorch's ``RLeaky``), the second-order ``synaptic`` neuron and the
adaptive-threshold ``alif`` neuron (Bellec et al. 2018).

Two implementations of the same layer, chosen by ``impl``:

* ``"reference"`` (:meth:`RecurrentLayer.forward_reference`) steps the neuron functions of
  :mod:`snn_lib.neurons` once per time step, with plain autograd: readable, and it keeps every
  step's intermediate tensors for the backward pass;
* ``"fast"`` (:meth:`RecurrentLayer.forward_fast`) runs the whole layer as one autograd node
  (:class:`RecurrentScan`) with its own backward pass: the input projection one chunk of
  ``CHUNK`` steps at a time, a few in-place operations per step, and only the membrane kept for
  the backward pass (one ``[B, H]`` tensor per step, where the per-step autograd graph keeps
  several), from which it recomputes the spikes and the surrogate.

The backward pass of :class:`RecurrentScan` is one reverse scan. With ``g_S`` and ``g_U`` the
gradients arriving at the outputs, ``h[t] = H'(x[t])`` the surrogate derivative (the functions
of :mod:`snn_lib.kernels`), ``g_I[t]`` the gradient at the current ``I[t]`` (zero after the last
step) and ``d[t]`` the gradient at ``x[t]``::

    s[t]   = g_S[t] + W_rec^T g_I[t+1] + (1 - rho) g_b[t+1]   (ALIF: + g_b)
    d[t]   = s[t] h[t]
    g_U[t] = g_U[t] + d[t] + beta g_U[t+1]        (through the membrane)
    g_b[t] = rho g_b[t+1] - beta_a d[t]           (ALIF)
    g_I[t] = g_U[t]                               (LIF, ALIF)
    g_I[t] = g_U[t] + alpha g_I[t+1]              (synaptic: through J)
    dL/dW_rec = sum_t g_I[t]^T S[t-1]             (one matrix product)

The reset (``- theta S[t-1]``) carries no gradient, as in snnTorch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .kernels import SURROGATES, surrogate_grad
from .neurons import alif_step, decay, rlif_step, spike_fn, synaptic_step

#: The neurons of :class:`RecurrentLayer` (``model.neuron``).
NEURONS = ("lif", "alif", "synaptic")
#: Its implementations (``model.impl``).
IMPLS = ("fast", "reference")


CHUNK = 32
"""Time steps per chunk of :class:`RecurrentScan`: the input currents and the gradients are
computed this many steps at a time."""


def _run_chunk(cur: torch.Tensor, state: list, w_rec_t: torch.Tensor | None, first: bool, neuron: str, beta: float,
               threshold: float, alpha: float, rho: float, beta_a: float,
               spk: torch.Tensor, mem: torch.Tensor, dist: torch.Tensor | None) -> list:
    """The recurrence over one chunk ``cur [K, B, H]`` from ``state = [S, U, J, b]`` (the previous
    step's spike and membrane, the synaptic current, the adaptation; None where the neuron has
    none), written into ``spk``, ``mem`` and (ALIF) ``dist = U - A``, each ``[K, B, H]``; ``first``:
    the chunk starts at t = 0 (no recurrent input). Returns the state after the chunk (the
    synaptic current and adaptation updated in place)."""
    spk_prev, mem_prev, syn, adapt = state
    for k in range(cur.shape[0]):
        if w_rec_t is not None and not (first and k == 0):
            drive = torch.addmm(cur[k], spk_prev, w_rec_t)                     # I[t] + W_rec S[t-1]
        else:
            drive = cur[k]
        if syn is not None:
            drive = syn.mul_(alpha).add_(drive)                                # J[t]
        torch.add(drive, mem_prev, alpha=beta, out=mem[k]).sub_(spk_prev, alpha=threshold)   # U[t]
        if adapt is not None:
            adapt.mul_(rho).add_(spk_prev, alpha=1 - rho)                      # b[t]
            torch.sub(mem[k], torch.mul(adapt, beta_a).add_(threshold), out=dist[k])       # U[t] - A[t]
            torch.gt(dist[k], 0, out=spk[k])
        else:
            torch.gt(mem[k], threshold, out=spk[k])
        spk_prev, mem_prev = spk[k], mem[k]
    return [spk_prev, mem_prev, syn, adapt]


class RecurrentScan(torch.autograd.Function):
    """The layer over all steps as one autograd node (equations in the module docstring): input
    ``x [T, B, n_in]``, ``w_in [H, n_in]``, ``b_in [H]`` and the recurrent weight ``w_rec [H, H]``
    (or None) -> ``(spk [T, B, H], mem [T, B, H])``.

    The input currents are computed ``CHUNK`` steps at a time and never kept whole; for the
    backward pass only the membrane is saved (ALIF: ``U - A``), from which each chunk's spikes and
    surrogate derivatives are recomputed. The backward pass runs the reverse scan chunk by chunk,
    and adds each chunk's share to the weight gradients (one matrix product per chunk), so it too
    holds no ``[T, B, H]`` tensor but the membrane and the incoming gradient.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, w_in: torch.Tensor, b_in: torch.Tensor | None, w_rec: torch.Tensor | None,
                neuron: str, beta: float, threshold: float, alpha: float, rho: float, beta_a: float, surrogate: str,
                slope: float, chunk: int = CHUNK):
        T, B = x.shape[:2]
        H = w_in.shape[0]
        dtype = torch.result_type(x, w_in)
        spk = x.new_empty((T, B, H), dtype=dtype)                               # S [T, B, H]
        mem = torch.empty_like(spk)                                             # U [T, B, H]
        dist = torch.empty_like(spk) if neuron == "alif" else None              # U - A [T, B, H] (ALIF)
        zero = spk.new_zeros((B, H))
        state = [zero, zero, zero.clone() if neuron == "synaptic" else None, zero.clone() if neuron == "alif" else None]
        w_rec_t = w_rec.t() if w_rec is not None else None
        for t0 in range(0, T, chunk):
            t1 = min(t0 + chunk, T)
            cur = _project(x[t0:t1], w_in, b_in)                                # [K, B, H]
            state = _run_chunk(cur, state, w_rec_t, t0 == 0, neuron, beta, threshold, alpha, rho, beta_a,
                               spk[t0:t1], mem[t0:t1], None if dist is None else dist[t0:t1])
        ctx.save_for_backward(x, w_in, b_in, w_rec, dist if dist is not None else mem)
        ctx.set_materialize_grads(False)
        ctx.settings = (neuron, beta, threshold, alpha, rho, beta_a, surrogate, slope, chunk)
        return spk, mem

    @staticmethod
    def backward(ctx, grad_spk: torch.Tensor | None, grad_mem: torch.Tensor | None):
        x, w_in, b_in, w_rec, dist = ctx.saved_tensors                         # dist: U - A, or U (LIF, synaptic)
        neuron, beta, threshold, alpha, rho, beta_a, surrogate, slope, chunk = ctx.settings
        need_x, need_w_in, need_b, need_rec = ctx.needs_input_grad[:4]
        none = (None,) * 9
        if grad_spk is None and grad_mem is None:
            return (None,) * 4 + none
        T, B, H = dist.shape
        offset = 0.0 if neuron == "alif" else threshold                         # x = dist - offset
        grad = torch.empty_like(dist[:min(chunk, T)])                           # one chunk's g_I
        g_x = torch.zeros_like(x) if need_x else None
        g_w_in = torch.zeros_like(w_in) if need_w_in else None
        g_b = torch.zeros_like(b_in) if need_b and b_in is not None else None
        g_rec = torch.zeros_like(w_rec) if w_rec is not None and need_rec else None
        zero = dist.new_zeros((B, H))
        g_next = zero                                                           # g_I[t+1]
        g_mem = zero.clone() if neuron == "synaptic" else None                  # g_U[t+1] (synaptic)
        g_adapt = zero.clone() if neuron == "alif" else None                    # g_b[t+1]
        for c in range((T + chunk - 1) // chunk - 1, -1, -1):
            t0 = c * chunk
            t1 = min(t0 + chunk, T)
            n = t1 - t0
            h = surrogate_grad(dist[t0:t1] - offset if offset else dist[t0:t1], surrogate, slope)   # H'(x) [n, B, H]
            for k in range(n - 1, -1, -1):
                t = t0 + k
                if w_rec is not None and t < T - 1:                             # s[t]
                    s = torch.mm(g_next, w_rec) if grad_spk is None else torch.addmm(grad_spk[t], g_next, w_rec)
                else:
                    s = grad_spk[t].clone() if grad_spk is not None else zero.clone()
                if g_adapt is not None:
                    s.add_(g_adapt, alpha=1 - rho)
                d = s.mul_(h[k])                                                # d[t]
                if g_adapt is not None:
                    g_adapt.mul_(rho).sub_(d, alpha=beta_a)
                if grad_mem is not None:
                    d.add_(grad_mem[t])
                if g_mem is not None:
                    g_mem.mul_(beta).add_(d)                                    # g_U[t]
                    torch.add(g_mem, g_next, alpha=alpha, out=grad[k])          # g_I[t] = g_J[t]
                else:
                    torch.add(d, g_next, alpha=beta, out=grad[k])               # g_I[t] = g_U[t]
                g_next = grad[k]
            del h
            g_chunk = grad[:n].flatten(0, 1)                                    # [n*B, H]
            if g_rec is not None and t1 > 1:                                    # sum_t g_I[t]^T S[t-1], t >= 1
                lo = max(t0, 1)
                fired = torch.gt(dist[lo - 1:t1 - 1], offset).to(dist.dtype).flatten(0, 1)
                g_rec.addmm_(grad[lo - t0:n].flatten(0, 1).t(), fired)
            if g_w_in is not None:
                g_w_in.addmm_(g_chunk.t(), x[t0:t1].flatten(0, 1).to(dist.dtype))
            if g_b is not None:
                g_b.add_(g_chunk.sum(0))
            if g_x is not None:
                g_x[t0:t1] = (g_chunk @ w_in).view(n, B, -1)
            g_next = g_next.clone()                                             # grad is reused by the next chunk
        return (g_x, g_w_in, g_b, g_rec) + none


def _project(x: torch.Tensor, w_in: torch.Tensor, b_in: torch.Tensor | None) -> torch.Tensor:
    """``x [K, B, n_in] @ w_in.T + b_in`` -> ``[K, B, H]`` (the input currents of a chunk)."""
    flat = x.flatten(0, 1).to(w_in.dtype)
    cur = torch.addmm(b_in, flat, w_in.t()) if b_in is not None else flat @ w_in.t()
    return cur.view(x.shape[0], x.shape[1], -1)


class RecurrentLayer(nn.Module):
    """A layer of spiking neurons with memory: ``x [T, B, n_in]`` -> ``(spk, mem)``, each
    ``[T, B, n_hidden]``.

    ``neuron``: one of :data:`NEURONS`; ``recurrent``: add the previous step's spikes through a
    learned ``n_hidden x n_hidden`` weight; time constants in steps (``tau_mem`` of the membrane,
    ``tau_syn`` of the synaptic current, ``tau_adapt`` of the adaptation), ``threshold`` the
    (baseline) threshold, ``beta_a`` the adaptation's strength. The decays are computed once here
    and are not parameters.
    """

    def __init__(self, n_in: int, n_hidden: int, neuron: str = "lif", recurrent: bool = True, tau_mem: float = 20.0,
                 threshold: float = 1.0, tau_syn: float = 5.0, tau_adapt: float = 200.0, beta_a: float = 1.8,
                 surrogate: str = "atan", slope: float = 2.0, impl: str = "fast"):
        super().__init__()
        if neuron not in NEURONS:
            raise ValueError(f"neuron={neuron!r}: use one of {', '.join(NEURONS)}")
        if impl not in IMPLS:
            raise ValueError(f"impl={impl!r}: use one of {', '.join(IMPLS)}")
        if surrogate not in SURROGATES:
            raise ValueError(f"surrogate={surrogate!r}: use one of {', '.join(SURROGATES)}")
        self.neuron, self.impl = neuron, impl
        self.beta, self.threshold = decay(tau_mem), float(threshold)
        self.alpha, self.rho, self.beta_a = decay(tau_syn), decay(tau_adapt), float(beta_a)
        self.surrogate, self.slope = surrogate, float(slope)
        self.input = nn.Linear(n_in, n_hidden)
        self.recurrent = nn.Linear(n_hidden, n_hidden, bias=False) if recurrent else None
        self.chunk = CHUNK

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [T, B, n_in]`` -> ``(spk [T, B, H], mem [T, B, H])``."""
        return self.forward_fast(x) if self.impl == "fast" else self.forward_reference(x)

    def forward_reference(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-step loop of the neuron functions of :mod:`snn_lib.neurons`."""
        spike = spike_fn(self.surrogate, self.slope)
        weight = self.recurrent.weight if self.recurrent is not None else None
        cur = self.input(x[0])
        spk = mem = syn = adapt = torch.zeros_like(cur)                        # [B, H] each
        spikes, mems = [], []
        for t in range(x.shape[0]):
            cur = self.input(x[t]) if t else cur                               # [B, H]
            if self.neuron == "lif":
                spk, mem = rlif_step(cur, spk, mem, weight, self.beta, self.threshold, spike)
            else:
                if weight is not None:
                    cur = cur + spk @ weight.T
                if self.neuron == "synaptic":
                    spk, syn, mem = synaptic_step(cur, syn, mem, self.alpha, self.beta, self.threshold, spike)
                else:
                    spk, mem, adapt = alif_step(cur, spk, mem, adapt, self.beta, self.threshold, self.rho,
                                                self.beta_a, spike)
            spk = spk.to(cur.dtype)                                            # snnTorch's surrogates give float32
            spikes.append(spk)
            mems.append(mem)
        return torch.stack(spikes), torch.stack(mems)

    def forward_fast(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole layer as one autograd node (:class:`RecurrentScan`)."""
        weight = self.recurrent.weight if self.recurrent is not None else None
        return RecurrentScan.apply(x.contiguous(), self.input.weight, self.input.bias, weight, self.neuron, self.beta,
                                   self.threshold, self.alpha, self.rho, self.beta_a, self.surrogate, self.slope,
                                   self.chunk)

    def extra_repr(self) -> str:
        return (f"neuron={self.neuron}, recurrent={self.recurrent is not None}, beta={self.beta:.4f}, "
                f"threshold={self.threshold}, impl={self.impl}")


__all__ = ["IMPLS", "NEURONS", "RecurrentLayer", "RecurrentScan"]
