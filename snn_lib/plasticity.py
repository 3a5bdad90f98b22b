"""Spike-timing-dependent plasticity (STDP): pair-based, with exponential traces.

Each synapse ``i -> j`` keeps no history of spikes; each neuron keeps a trace instead (Morrison,
Diesmann & Gerstner 2008, "all-to-all" pair interaction; Gerstner et al., *Neuronal Dynamics*
2014, chapter 19). With time step ``dt_ms`` and spikes ``s`` in {0, 1}, every step::

    x_pre[t]  = x_pre[t-1]  * exp(-dt / tau_pre)  + s_pre[t]
    x_post[t] = x_post[t-1] * exp(-dt / tau_post) + s_post[t]
    dw_ij[t]  = a_plus  * x_pre_i[t] * s_post_j[t]
              - a_minus * s_pre_i[t] * x_post_j[t]

(the traces ``x`` dimensionless, ``tau_pre`` and ``tau_post`` in ms)

(:func:`stdp_traces`, then :func:`stdp_update` with the new traces). A post spike potentiates by
``a_plus`` times the pre trace, the sum of ``exp(-(t - t_f) / tau_pre)`` over pre spikes ``t_f <= t``;
a pre spike depresses by ``a_minus`` times the post trace. So one pre spike at ``t_pre`` and one
post spike at ``t_post`` change the weight by the learning window of ``delta_t = t_post - t_pre``::

    W(delta_t) =  a_plus  * exp(-delta_t / tau_pre)    delta_t > 0
    W(delta_t) = -a_minus * exp( delta_t / tau_post)   delta_t < 0
    W(0)       =  a_plus - a_minus                     (the same step)

(pre before post, ``delta_t > 0``: potentiation; post before pre: depression)

the shape Bi & Poo (1998) measured in cultured hippocampal neurons: potentiation when the
pre spike leads, depression when it lags, both fading within a few tens of ms.
:func:`learning_window` measures ``W`` by simulating such pairs; :func:`window_formula` is the
expression above.

Tensors are batch-first within a step: spikes and traces ``[B, n]``; a weight change
``[n_pre, n_post]`` is summed over the batch (a batch of independent presentations sharing one weight matrix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import require


@dataclass
class STDPConfig:
    """The pair-based rule: trace time constants (ms), amplitudes (weight units per pair) and step."""
    tau_pre_ms: float = 20.0
    tau_post_ms: float = 20.0
    a_plus: float = 0.01           # potentiation per pre-before-post pair at delta_t -> 0
    a_minus: float = 0.0001        # depression per post-before-pre pair at delta_t -> 0
    dt_ms: float = 1.0

    def validate(self) -> "STDPConfig":
        for name in ("tau_pre_ms", "tau_post_ms", "dt_ms"):
            value = getattr(self, name)
            require(value > 0, name, value, "a time in ms > 0")
        for name in ("a_plus", "a_minus"):
            value = getattr(self, name)
            require(value >= 0, name, value, "an amplitude >= 0")
        return self


def trace_decay(tau_ms: float, dt_ms: float) -> float:
    """Fraction of a trace kept over one step: ``exp(-dt / tau)``."""
    return math.exp(-dt_ms / tau_ms)


def stdp_traces(pre_spk: torch.Tensor, post_spk: torch.Tensor, pre_trace: torch.Tensor, post_trace: torch.Tensor,
                cfg: STDPConfig = STDPConfig()) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of both traces: decay, then add this step's spikes. ``pre_* [B, n_pre]``, ``post_* [B, n_post]``."""
    pre_trace = pre_trace * trace_decay(cfg.tau_pre_ms, cfg.dt_ms) + pre_spk
    post_trace = post_trace * trace_decay(cfg.tau_post_ms, cfg.dt_ms) + post_spk
    return pre_trace, post_trace


def stdp_update(pre_spk: torch.Tensor, post_spk: torch.Tensor, pre_trace: torch.Tensor, post_trace: torch.Tensor,
                cfg: STDPConfig = STDPConfig()) -> torch.Tensor:
    """The weight change ``[n_pre, n_post]`` of one step, summed over the batch, from this step's
    spikes and the traces :func:`stdp_traces` returned for it (so they already hold this step's spikes)."""
    potentiation = pre_trace.transpose(0, 1) @ post_spk        # [n_pre, B] @ [B, n_post]
    depression = pre_spk.transpose(0, 1) @ post_trace          # [n_pre, B] @ [B, n_post]
    return cfg.a_plus * potentiation - cfg.a_minus * depression


def window_formula(delta_t_ms: torch.Tensor, cfg: STDPConfig = STDPConfig()) -> torch.Tensor:
    """``W(delta_t)`` of the module docstring, for ``delta_t = t_post - t_pre`` in ms."""
    dt = torch.as_tensor(delta_t_ms, dtype=torch.float64)
    return torch.where(dt > 0, cfg.a_plus * torch.exp(-dt / cfg.tau_pre_ms),
                       torch.where(dt < 0, -cfg.a_minus * torch.exp(dt / cfg.tau_post_ms),
                                   torch.full_like(dt, cfg.a_plus - cfg.a_minus)))


def learning_window(delta_t_ms: torch.Tensor | list[float],
                    cfg: STDPConfig = STDPConfig()) -> tuple[torch.Tensor, torch.Tensor]:
    """The learning window measured by simulation: for each offset ``delta_t = t_post - t_pre`` (ms,
    whole multiples of ``cfg.dt_ms``), one synapse sees one pre and one post spike that far apart,
    the traces and the rule run step by step, and the weight changes are summed.
    Returns ``(delta_t [K], dw [K])`` in float64.
    """
    cfg.validate()
    offsets = torch.as_tensor(delta_t_ms, dtype=torch.float64).flatten()
    steps = torch.round(offsets / cfg.dt_ms).long()
    require(bool(torch.allclose(steps.double() * cfg.dt_ms, offsets)), "delta_t_ms", offsets.tolist(),
            f"offsets that are whole multiples of dt_ms={cfg.dt_ms}")
    k = len(offsets)
    margin = 2
    first = margin + int((-steps).clamp(min=0).max()) if k else margin
    pre_t = torch.full((k,), first)                         # pre spike of pair k at this step
    post_t = pre_t + steps                                  # post spike delta_t later (or earlier)
    num_steps = int(torch.maximum(pre_t, post_t).max()) + 1 + margin if k else 0
    pre_trace, post_trace = torch.zeros(1, k, dtype=torch.float64), torch.zeros(1, k, dtype=torch.float64)
    dw = torch.zeros(k, dtype=torch.float64)
    for t in range(num_steps):
        pre_spk = (pre_t == t).double().unsqueeze(0)        # [1, K]: K synapses, one per offset
        post_spk = (post_t == t).double().unsqueeze(0)
        pre_trace, post_trace = stdp_traces(pre_spk, post_spk, pre_trace, post_trace, cfg)
        dw += torch.diagonal(stdp_update(pre_spk, post_spk, pre_trace, post_trace, cfg))   # synapse k -> k
    return offsets, dw


__all__ = ["STDPConfig", "learning_window", "stdp_traces", "stdp_update", "trace_decay", "window_formula"]
