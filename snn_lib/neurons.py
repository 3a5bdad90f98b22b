"""The leaky integrate-and-fire (LIF) neuron, one time step and a whole sequence.

Discrete update of snnTorch's ``Leaky`` (reset by subtraction, reset decided by the previous
step's membrane)::

    reset[t] = H(U[t-1] - theta)    (no gradient through the reset)
    U[t]     = beta * U[t-1] + I[t] - reset[t] * theta
    S[t]     = H(U[t] - theta)      (surrogate gradient in the backward pass)

``beta = exp(-dt / tau_mem)`` is the fraction of membrane potential kept per time step, ``theta``
the threshold, ``H`` the Heaviside step. With ``reset="zero"`` the membrane is set to 0 instead
of lowered by ``theta``. The book's LIF chapter derives this from the RC circuit.

Neurons with memory (the recurrent layer of :mod:`snn_lib.recurrent` steps them). Every decay is
``exp(-1 / tau)`` with ``tau`` in time steps (:func:`decay`; ``tau_ms / dt_ms`` steps for a step of
``dt_ms``). The reset is by subtraction and decided by the previous step's spike (detached), the
spike is ``S[t] = H(U[t] - threshold[t])`` with the surrogate gradient, and every state starts at 0::

    recurrent LIF (snnTorch RLeaky, all_to_all=True),
    W [H, H] the recurrent weights:
        U[t] = beta * U[t-1] + I[t] + W S[t-1] - theta * S[t-1]

    synaptic, second order (snnTorch Synaptic), alpha = exp(-1 / tau_syn):
        J[t] = alpha * J[t-1] + I[t]                  (the synaptic current)
        U[t] = beta * U[t-1] + J[t] - theta * S[t-1]

    adaptive threshold (ALIF, the LSNN of Bellec et al. 2018),
    rho = exp(-1 / tau_adapt):
        b[t] = rho * b[t-1] + (1 - rho) * S[t-1]      (the adaptation)
        A[t] = theta + beta_a * b[t]                  (the threshold)
        U[t] = beta * U[t-1] + I[t] - theta * S[t-1]  (reset: the baseline)
        S[t] = H(U[t] - A[t])

``b`` is a trace of the spikes, ``theta`` the threshold's baseline, which the reset subtracts (as
in Bellec et al.'s code).

The adaptation ``b`` is dimensionless (a spike adds ``1 - rho``); ``beta_a`` converts it into
units of the membrane. ``b`` and the recurrent input carry the spike's surrogate gradient; the
reset does not (as in snnTorch).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from snntorch import surrogate

from .kernels import RESETS, SURROGATES

SpikeFn = Callable[[torch.Tensor], torch.Tensor]


def spike_fn(name: str = "atan", slope: float = 2.0) -> SpikeFn:
    """Heaviside forward, surrogate backward: snnTorch's ``atan(alpha=slope)`` or ``fast_sigmoid(slope)``."""
    if name == "atan":
        return surrogate.atan(alpha=slope)
    if name == "fast_sigmoid":
        return surrogate.fast_sigmoid(slope=slope)
    raise ValueError(f"unknown surrogate {name!r}: use one of {', '.join(SURROGATES)}")


def beta_from_tau(tau_mem_ms: float, dt_ms: float) -> float:
    """Decay per step of a membrane with time constant ``tau_mem_ms`` sampled every ``dt_ms``."""
    return math.exp(-dt_ms / tau_mem_ms)


def decay(tau_steps: float) -> float:
    """Fraction of a state kept per step, ``exp(-1 / tau_steps)``, for a time constant in steps."""
    if tau_steps <= 0:
        raise ValueError(f"a time constant must be > 0 steps, got {tau_steps}")
    return math.exp(-1.0 / tau_steps)


def lif_step(cur: torch.Tensor, mem: torch.Tensor, beta: float = 0.9, threshold: float = 1.0,
             reset: str = "subtract", spike: SpikeFn | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One LIF step: state in, state out. Returns ``(spk, mem)``, both shaped like ``cur``."""
    spike = spike or spike_fn()
    fired = (mem > threshold).to(cur.dtype).detach()          # reset[t] from U[t-1]
    if reset == "subtract":
        mem = beta * mem + cur - fired * threshold
    elif reset == "zero":
        mem = beta * (1 - fired) * mem + cur
    else:
        raise ValueError(f"reset={reset!r}: use {' or '.join(repr(r) for r in RESETS)}")
    return spike(mem - threshold), mem


def lif_sequence(cur: torch.Tensor, beta: float = 0.9, threshold: float = 1.0, mem: torch.Tensor | None = None,
                 reset: str = "subtract", spike: SpikeFn | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """LIF over time: ``cur [T, ...]`` -> ``(spk [T, ...], mem [T, ...])``, starting from ``mem`` (default 0)."""
    mem = torch.zeros_like(cur[0]) if mem is None else mem
    spikes, mems = [], []
    for cur_t in cur:
        spk, mem = lif_step(cur_t, mem, beta, threshold, reset, spike)
        spikes.append(spk)
        mems.append(mem)
    return torch.stack(spikes), torch.stack(mems)


def rlif_step(cur: torch.Tensor, spk: torch.Tensor, mem: torch.Tensor, weight: torch.Tensor | None,
              beta: float = 0.9, threshold: float = 1.0,
              spike: SpikeFn | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the recurrent LIF neuron (snnTorch ``RLeaky``): ``cur [B, H]`` plus the recurrent
    input ``spk [B, H] @ weight.T`` (``weight [H, H]``; None: no recurrence). Returns ``(spk, mem)``."""
    if weight is not None:
        cur = cur + spk @ weight.T
    return lif_step(cur, mem, beta, threshold, "subtract", spike)


def synaptic_step(cur: torch.Tensor, syn: torch.Tensor, mem: torch.Tensor, alpha: float = 0.8, beta: float = 0.9,
                  threshold: float = 1.0, spike: SpikeFn | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the second-order neuron (snnTorch ``Synaptic``). Returns ``(spk, syn, mem)``."""
    spike = spike or spike_fn()
    fired = (mem > threshold).to(cur.dtype).detach()          # S[t-1], from U[t-1]
    syn = alpha * syn + cur
    mem = beta * mem + syn - fired * threshold
    return spike(mem - threshold), syn, mem


def alif_step(cur: torch.Tensor, spk: torch.Tensor, mem: torch.Tensor, adapt: torch.Tensor, beta: float = 0.9,
              threshold: float = 1.0, rho: float = 0.99, beta_a: float = 1.8,
              spike: SpikeFn | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the adaptive-threshold neuron (ALIF), from the previous spike ``spk``.
    Returns ``(spk, mem, adapt)``; the threshold of this step is ``threshold + beta_a * adapt``."""
    spike = spike or spike_fn()
    adapt = rho * adapt + (1 - rho) * spk                     # b[t], with the spike's gradient
    mem = beta * mem + cur - spk.detach() * threshold
    return spike(mem - (threshold + beta_a * adapt)), mem, adapt


def step_current(num_steps: int = 80, current: float = 0.3, start: int = 10,
                 stop: int | None = None) -> torch.Tensor:
    """An input current ``[T]`` that is ``current`` from step ``start`` until ``stop`` (default: the
    end) and 0 elsewhere: the step input of the book's neuron experiments."""
    cur = torch.zeros(num_steps)
    cur[start:stop] = current
    return cur
