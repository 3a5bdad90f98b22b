"""The leaky integrate-and-fire (LIF) neuron, one time step and a whole sequence.

Discrete update of snnTorch's ``Leaky`` (reset by subtraction, reset decided by the previous
step's membrane)::

    reset[t] = H(U[t-1] - theta)    (no gradient through the reset)
    U[t]     = beta * U[t-1] + I[t] - reset[t] * theta
    S[t]     = H(U[t] - theta)      (surrogate gradient in the backward pass)

``beta = exp(-dt / tau_mem)`` is the fraction of membrane potential kept per time step, ``theta``
the threshold, ``H`` the Heaviside step. With ``reset="zero"`` the membrane is set to 0 instead
of lowered by ``theta``. The book's LIF chapter derives this from the RC circuit.
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


def step_current(num_steps: int = 80, current: float = 0.3, start: int = 10,
                 stop: int | None = None) -> torch.Tensor:
    """An input current ``[T]`` that is ``current`` from step ``start`` until ``stop`` (default: the
    end) and 0 elsewhere: the step input of the book's neuron experiments."""
    cur = torch.zeros(num_steps)
    cur[start:stop] = current
    return cur
