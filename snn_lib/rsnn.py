"""A recurrent spiking network for temporal tasks: one recurrent layer and a leaky readout.

For input ``x [T, B, F]`` (any ``[T, B, ...]``, flattened per step)::

    spk = RecurrentLayer(F, H, neuron, recurrent)(x)    # [T, B, H]
    y[t] = W_out spk[t] + b_out                          # [T, B, C]
    R[t] = beta_out * R[t-1] + y[t],  R[-1] = 0          # leaky, no spikes
    out  = mean(R[T-k], ..., R[T-1])                     # [1, B, C]

``out`` is the readout at the decision time: the mean of its membrane over the last
``readout_steps`` (``k``) steps, 1 being the last step alone. It is returned with a time axis of
length 1 so that the CSNN's loss and readout work unchanged: ``ce_count`` is the cross-entropy of
``out.sum(0)``, ``predict`` its argmax. ``forward`` returns ``(out, mem)`` with ``mem`` the readout's
membrane at those ``k`` steps, ``[k, B, C]``, whatever ``impl``.

With ``impl="fast"`` the readout is not stepped: ``R[t] = W_out sum_s beta_out**(t - s) spk[s] +
b_out sum_s beta_out**(t - s)``, so the ``k`` values needed are one weighted sum of the spikes over
time, then the linear layer (no ``[T, B, C]`` output, and no ``[T, B, H]`` tensor kept for it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .neurons import decay
from .recurrent import IMPLS, NEURONS, RecurrentLayer


@dataclass
class RSNNConfig:
    """The settings of :class:`RSNN` (proposed as ``model.*`` settings; time constants in steps)."""

    #: Which hidden neuron, ``lif``, ``alif`` (adaptive threshold) or ``synaptic`` (second order).
    neuron: str = "alif"
    #: Neurons in the recurrent layer.
    hidden: int = 128
    #: Whether the layer's spikes feed back to it through learned weights; false makes it feed-forward.
    recurrent: bool = True
    #: Membrane time constant of the hidden neurons, in steps (``beta = exp(-1 / tau_mem)``).
    tau_mem: float = 20.0
    #: Synaptic current time constant of the ``synaptic`` neuron, in steps.
    tau_syn: float = 5.0
    #: Time constant of the ALIF threshold's adaptation, in steps.
    tau_adapt: float = 200.0
    #: How much one unit of adaptation raises the ALIF threshold (Bellec et al.'s beta); a spike
    #: raises it by ``adapt_scale * (1 - exp(-1 / tau_adapt))``, 0.5 with the defaults.
    adapt_scale: float = 100.0
    #: Firing threshold, for ALIF its baseline.
    threshold: float = 1.0
    #: Time constant of the non-spiking readout, in steps.
    tau_out: float = 20.0
    #: The decision is the readout's mean over this many last steps.
    readout_steps: int = 1
    #: Surrogate gradient of the spike, ``atan`` or ``fast_sigmoid``, and its steepness.
    surrogate: str = "atan"
    surrogate_slope: float = 2.0
    #: ``fast`` (the recurrence as one autograd node) or ``reference`` (the per-step loop).
    impl: str = "fast"


class RSNN(nn.Module):
    """Recurrent layer + leaky readout (module docstring); ``cfg`` is an :class:`RSNNConfig` or any
    object with its fields, ``frame_shape`` the shape of one input sequence ``(T, F, ...)``."""

    def __init__(self, cfg, frame_shape: tuple[int, ...], num_classes: int = 10):
        super().__init__()
        if cfg.neuron not in NEURONS:
            raise ValueError(f"model.neuron={cfg.neuron!r}: use one of {', '.join(NEURONS)}")
        if cfg.impl not in IMPLS:
            raise ValueError(f"model.impl={cfg.impl!r}: use one of {', '.join(IMPLS)}")
        if not 1 <= cfg.readout_steps <= frame_shape[0]:
            raise ValueError(f"model.readout_steps={cfg.readout_steps}: expected 1 to T={frame_shape[0]}")
        self.cfg = cfg
        features = math.prod(frame_shape[1:])
        self.layer = RecurrentLayer(features, cfg.hidden, cfg.neuron, cfg.recurrent, tau_mem=cfg.tau_mem,
                                    threshold=cfg.threshold, tau_syn=cfg.tau_syn, tau_adapt=cfg.tau_adapt,
                                    beta_a=cfg.adapt_scale, surrogate=cfg.surrogate, slope=cfg.surrogate_slope,
                                    impl=cfg.impl)
        self.readout = nn.Linear(cfg.hidden, num_classes)
        self.beta_out = decay(cfg.tau_out)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [T, B, ...]`` -> ``(out [1, B, C], mem [k, B, C])`` (module docstring)."""
        out, mem, _ = self.run(x)
        return out, mem

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """As :meth:`forward`, and the hidden spikes ``[T, B, H]`` (for spike counts and figures)."""
        T, k = x.shape[0], self.cfg.readout_steps
        spk, _ = self.layer(x.flatten(2).to(self.readout.weight.dtype))      # [T, B, H]; uint8 spikes too
        if self.cfg.impl == "fast":                   # the readout is linear: weigh the spikes over time first
            steps = torch.arange(T, device=spk.device, dtype=spk.dtype)
            lag = steps[T - k:, None] - steps[None, :]                        # [k, T]
            weights = torch.where(lag >= 0, self.beta_out ** lag.clamp(min=0), torch.zeros_like(lag))
            trace = torch.einsum("ks,sbh->kbh", weights, spk)                 # [k, B, H]
            mem = F.linear(trace, self.readout.weight) + weights.sum(1)[:, None, None] * self.readout.bias
        else:
            y = self.readout(spk)                                             # [T, B, C]
            r, mems = torch.zeros_like(y[0]), []
            for t in range(T):
                r = self.beta_out * r + y[t]                                  # [B, C]
                if t >= T - k:
                    mems.append(r)
            mem = torch.stack(mems)                                           # [k, B, C]
        return mem.mean(0, keepdim=True), mem, spk


__all__ = ["RSNN", "RSNNConfig"]
