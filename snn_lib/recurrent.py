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
* ``"fast"`` (:meth:`RecurrentLayer.forward_fast`) projects the input of all ``T`` steps in one
  matrix product, then runs the recurrence as one autograd node (:class:`RecurrentScan`) that
  keeps only ``x[t] = U[t] - A[t]`` (the membrane's distance to its threshold) for the backward
  pass, from which it recomputes the spikes and the surrogate.

The backward pass of :class:`RecurrentScan` is one reverse scan. With ``g_S`` and ``g_U`` the
gradients arriving at the outputs, ``h[t] = H'(x[t])`` the surrogate derivative (the functions
of :mod:`snn_lib.kernels`), ``g_I[t]`` the gradient at the current ``I[t]`` (zero after the last
step) and ``d[t]`` the gradient at ``x[t]``::

    s[t]   = g_S[t] + W_rec^T g_I[t+1] + (1 - rho) g_b[t+1]      (ALIF only: the last term)
    d[t]   = s[t] h[t]
    g_U[t] = g_U[t] + d[t] + beta g_U[t+1]                        (total, through the membrane)
    g_b[t] = rho g_b[t+1] - beta_a d[t]                          (ALIF)
    g_I[t] = g_U[t]                                              (LIF, ALIF)
    g_I[t] = g_U[t] + alpha g_I[t+1]                             (synaptic: through J)
    dL/dW_rec = sum_t g_I[t]^T S[t-1]                            (one matrix product at the end)

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


class RecurrentScan(torch.autograd.Function):
    """The recurrence of :class:`RecurrentLayer` over all steps as one autograd node (equations in
    the module docstring): ``cur [T, B, H]`` (the projected input, bias included) and the recurrent
    weight ``[H, H]`` (or None) -> ``(spk [T, B, H], mem [T, B, H])``."""

    @staticmethod
    def forward(ctx, cur: torch.Tensor, weight: torch.Tensor | None, neuron: str, beta: float, threshold: float,
                alpha: float, rho: float, beta_a: float, surrogate: str, slope: float):
        mem = torch.empty_like(cur)                                  # U [T, B, H]
        spk = torch.empty_like(cur)                                  # S [T, B, H]
        # x = U - A [T, B, H]: its own tensor for ALIF; U itself otherwise (x = U - theta, in backward)
        dist = torch.empty_like(cur) if neuron == "alif" else mem
        zero = cur.new_zeros(cur.shape[1:])                          # [B, H]
        syn = zero.clone() if neuron == "synaptic" else None
        adapt = zero.clone() if neuron == "alif" else None
        w_t = weight.t() if weight is not None else None
        curs, mems, spks, dists = cur.unbind(0), mem.unbind(0), spk.unbind(0), dist.unbind(0)   # views, once
        spk_prev = mem_prev = zero
        for t in range(cur.shape[0]):
            drive = torch.addmm(curs[t], spk_prev, w_t) if w_t is not None and t else curs[t]   # I[t] + W S[t-1]
            if neuron == "synaptic":
                drive = syn.mul_(alpha).add_(drive)                  # J[t]
            torch.add(drive, mem_prev, alpha=beta, out=mems[t]).sub_(spk_prev, alpha=threshold)   # U[t]
            if neuron == "alif":
                adapt.mul_(rho).add_(spk_prev, alpha=1 - rho)        # b[t]
                torch.sub(mems[t], torch.mul(adapt, beta_a).add_(threshold), out=dists[t])   # U[t] - A[t]
                torch.gt(dists[t], 0, out=spks[t])
            else:
                torch.gt(mems[t], threshold, out=spks[t])
            spk_prev, mem_prev = spks[t], mems[t]
        ctx.save_for_backward(dist, weight)
        ctx.set_materialize_grads(False)
        ctx.settings = (neuron, beta, threshold, alpha, rho, beta_a, surrogate, slope)
        return spk, mem

    @staticmethod
    def backward(ctx, grad_spk: torch.Tensor | None, grad_mem: torch.Tensor | None):
        dist, weight = ctx.saved_tensors
        neuron, beta, threshold, alpha, rho, beta_a, surrogate, slope = ctx.settings
        none = (None,) * 8
        if grad_spk is None and grad_mem is None:
            return (None, None) + none
        T = dist.shape[0]
        offset = 0.0 if neuron == "alif" else threshold              # x = dist - offset
        h = surrogate_grad(dist - offset if offset else dist, surrogate, slope)   # H'(x) [T, B, H]
        grad = torch.empty_like(dist)                                # g_I [T, B, H]
        zero = dist.new_zeros(dist.shape[1:])
        g_mem = zero.clone() if neuron == "synaptic" else None       # g_U[t+1] (LIF, ALIF: in grad)
        g_adapt = zero.clone() if neuron == "alif" else None         # g_b[t+1]
        hs, grads = h.unbind(0), grad.unbind(0)
        g_spks = grad_spk.unbind(0) if grad_spk is not None else None
        g_mems = grad_mem.unbind(0) if grad_mem is not None else None
        g_next = zero                                                # g_I[t+1]
        for t in range(T - 1, -1, -1):
            if weight is not None and t < T - 1:                     # s[t]
                s = torch.mm(g_next, weight) if g_spks is None else torch.addmm(g_spks[t], g_next, weight)
            else:
                s = g_spks[t].clone() if g_spks is not None else zero.clone()
            if neuron == "alif":
                s.add_(g_adapt, alpha=1 - rho)
            d = s.mul_(hs[t])                                        # d[t]
            if neuron == "alif":
                g_adapt.mul_(rho).sub_(d, alpha=beta_a)
            if g_mems is not None:
                d.add_(g_mems[t])
            if neuron == "synaptic":
                g_mem.mul_(beta).add_(d)                             # g_U[t]
                torch.add(g_mem, g_next, alpha=alpha, out=grads[t])  # g_I[t] = g_J[t]
            else:
                torch.add(d, g_next, alpha=beta, out=grads[t])       # g_I[t] = g_U[t]
            g_next = grads[t]
        del h
        g_weight = None
        if weight is not None and ctx.needs_input_grad[1]:
            fired = torch.gt(dist[:-1], offset).to(dist.dtype).flatten(0, 1)     # S[t-1] [(T-1)*B, H]
            g_weight = grad[1:].flatten(0, 1).t().mm(fired)                       # [H, H]
        return (grad, g_weight) + none


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
        """The input projection for all steps at once, then the recurrence as one autograd node."""
        cur = self.input(x)                                                    # [T, B, H]
        weight = self.recurrent.weight if self.recurrent is not None else None
        return RecurrentScan.apply(cur.contiguous(), weight, self.neuron, self.beta, self.threshold, self.alpha,
                                   self.rho, self.beta_a, self.surrogate, self.slope)

    def extra_repr(self) -> str:
        return (f"neuron={self.neuron}, recurrent={self.recurrent is not None}, beta={self.beta:.4f}, "
                f"threshold={self.threshold}, impl={self.impl}")


__all__ = ["IMPLS", "NEURONS", "RecurrentLayer", "RecurrentScan"]
