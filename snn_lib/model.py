"""The convolutional SNN of the original project: 12C5-MP2-64C5-MP2-FC10 with LIF neurons.

Layer by layer, for one time step of a ``[B, 2, 34, 34]`` N-MNIST frame::

    conv 5x5, 2 -> 12   [B, 12, 30, 30]  max-pool 2  [B, 12, 15, 15]  LIF
    conv 5x5, 12 -> 64  [B, 64, 11, 11]  max-pool 2  [B, 64, 5, 5]    LIF
    flatten             [B, 1600]        linear 1600 -> 10            LIF
    -> output spikes    [B, 10]

On frames centre-cropped to 28x28 (``data.crop=28``) the flattened size is 64 * 4 * 4 = 1024,
the "1024FC10" of the original's name; on the full 34x34 sensor it is 64 * 5 * 5 = 1600.

``CSNN.forward`` takes time-first frames ``[T, B, 2, H, W]`` and returns ``(spk, mem)`` of the
output layer, each ``[T, B, 10]``. The prediction is the class with most output spikes.

Two implementations of the same network, side by side in :class:`CSNN` and chosen by
``model.impl``:

* ``"reference"`` (:meth:`CSNN.forward_reference`) steps through time, calling each layer and
  snnTorch's ``Leaky`` once per step: the readable one the book teaches;
* ``"fast"`` (:meth:`CSNN.forward_fast`) runs each convolution, pooling and the linear layer once
  over all ``T * B`` frames, and each LIF layer as one fused operation over time
  (:mod:`snn_lib.kernels`).

The pooling is 2x2 max pooling by default (``model.pool``: ``avg`` and ``sum`` too), the neuron
snnTorch's ``Leaky`` with reset by subtraction (``model.reset=zero``: reset to zero).

They share every parameter, and the neuron's ``beta`` and ``threshold`` have one source each: the
model's :class:`~snn_lib.config.ModelConfig`, where they are not in the state dict; or, with
``model.learn_beta`` / ``model.learn_threshold``, one trained scalar per LIF layer, snnTorch's own
parameter (``lif1.beta``, ...: in the state dict, the config giving only its initial value). Either
way a checkpoint loads strictly into either implementation.
"""

from __future__ import annotations

import dataclasses
import struct

import snntorch as snn
import torch
import torch.nn.functional as F
from torch import nn

from .ann import ANN
from .config import LOSSES, ModelConfig
from .errors import ConfigError
from .kernels import compiling, conv_pool, flat_features, lif_kernel, pool2d  # noqa: F401 (flat_features: here too)
from .neurons import spike_fn

NEURON_BUFFERS = ("beta", "threshold", "graded_spikes_factor", "reset_mechanism_val")
"""snnTorch ``Leaky``'s constant buffers: kept out of the state dict (the config holds the values).
A learnable ``beta`` or ``threshold`` is a parameter instead, and saved."""


def check_input_size(cfg: ModelConfig, input_size: int) -> None:
    """Refuse, with a one-line ConfigError, frames too small for the network's two conv + pool stages
    (before any data is loaded: the frame size is ``data.crop`` or the sensor's 34)."""
    try:
        flat_features(input_size, cfg.channels[1], cfg.kernel_size)
    except ValueError:
        raise ConfigError(f"model.kernel_size={cfg.kernel_size} leaves nothing of {input_size}x{input_size} frames "
                          "after two conv + 2x2 pool stages; use a smaller kernel or larger frames (data.crop=0 "
                          "keeps the 34x34 sensor).") from None


def _float32(x: float) -> float:
    """``x`` rounded to float32, as snnTorch stores ``beta`` and ``threshold`` (float32 buffers).

    With ``struct``, not a tensor: no device sync, and ``torch.compile`` traces it without a break."""
    return struct.unpack("f", struct.pack("f", x))[0]


class CSNN(nn.Module):
    """12C5-MP2-64C5-MP2-FC10 spiking network (channel counts and kernel from ``ModelConfig``)."""

    def __init__(self, cfg: ModelConfig, input_size: int = 34, num_classes: int = 10):
        super().__init__()
        self.cfg = dataclasses.replace(cfg)          # the model's own copy: its neuron constants
        c1, c2 = cfg.channels
        self.input_size = input_size
        self.conv1 = nn.Conv2d(2, c1, cfg.kernel_size)
        self.conv2 = nn.Conv2d(c1, c2, cfg.kernel_size)
        self.fc = nn.Linear(flat_features(input_size, c2, cfg.kernel_size), num_classes)
        grad = spike_fn(cfg.surrogate, cfg.surrogate_slope)
        self.lif1, self.lif2, self.lif3 = (snn.Leaky(beta=cfg.beta, threshold=cfg.threshold, spike_grad=grad,
                                                     learn_beta=cfg.learn_beta, learn_threshold=cfg.learn_threshold,
                                                     reset_mechanism=cfg.reset)
                                           for _ in range(3))
        for lif in (self.lif1, self.lif2, self.lif3):
            for name in NEURON_BUFFERS:                    # same tensors, no longer saved
                if name in lif._buffers:                   # (a learnable one is a parameter)
                    lif.register_buffer(name, getattr(lif, name), persistent=False)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``frames [T, B, 2, H, W]`` -> ``(spk [T, B, 10], mem [T, B, 10])`` of the output layer."""
        if self.cfg.impl == "fast":
            return self.forward_fast(frames)
        return self.forward_reference(frames)

    def forward_reference(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-step snnTorch loop: every layer called once per time step."""
        mem1 = mem2 = mem3 = None
        spikes, mems = [], []
        for x in frames:                                             # x: [B, 2, H, W]
            cur1 = pool2d(self.conv1(x), self.cfg.pool)              # [B, 12, 15, 15]
            spk1, mem1 = self.lif1(cur1, mem1 if mem1 is not None else torch.zeros_like(cur1))
            cur2 = pool2d(self.conv2(spk1), self.cfg.pool)           # [B, 64, 5, 5]
            spk2, mem2 = self.lif2(cur2, mem2 if mem2 is not None else torch.zeros_like(cur2))
            cur3 = self.fc(spk2.flatten(1))                          # [B, 10]
            spk3, mem3 = self.lif3(cur3, mem3 if mem3 is not None else torch.zeros_like(cur3))
            spikes.append(spk3)
            mems.append(mem3)
        return torch.stack(spikes), torch.stack(mems)                # [T, B, 10] each

    def forward_fast(self, frames: torch.Tensor, lif_impl: str | None = None,
                     channels_last: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Time folded into the batch: the same values as :meth:`forward_reference`.

        Each convolution, pooling and the linear layer run once over ``T * B`` frames
        (:func:`~snn_lib.kernels.conv_pool`); each LIF layer is one call of the recurrence that
        ``lif_impl`` names (default ``cfg.lif_impl``; ``"auto"`` is ``"compiled"`` on a GPU, where
        the eager loop's per-step kernel launches dominate, and ``"fused"`` elsewhere). While the
        model is being ``torch.compile``-d it is always ``"scan"``, whatever the setting: the
        custom autograd function and its in-place loop would break the graph. ``channels_last``
        (default: on CPU, or when the model is ``channels_last``) lays the activations out as NHWC.
        """
        lif = lif_kernel(resolve_lif_impl(lif_impl or self.cfg.lif_impl, frames.device))
        pool = self.cfg.pool
        T, B = frames.shape[:2]
        if channels_last is None:
            channels_last = frames.device.type == "cpu" or self.conv1.weight.is_contiguous(
                memory_format=torch.channels_last)
        x = frames.flatten(0, 1)                                                 # [T*B, 2, H, W]
        cur1 = conv_pool(self.conv1, x, channels_last, pool)                     # [T*B, 12, 15, 15]
        spk1, _ = lif(cur1.unflatten(0, (T, B)), **self.neuron(self.lif1))       # [T, B, 12, 15, 15]
        cur2 = conv_pool(self.conv2, spk1.flatten(0, 1), channels_last, pool)    # [T*B, 64, 5, 5]
        spk2, _ = lif(cur2.unflatten(0, (T, B)), **self.neuron(self.lif2))       # [T, B, 64, 5, 5]
        cur3 = self.fc(spk2.flatten(2))                                          # [T, B, 10]
        return lif(cur3, **self.neuron(self.lif3))                               # [T, B, 10] each

    def neuron(self, lif: snn.Leaky) -> dict:
        """The LIF settings of one layer for :mod:`snn_lib.kernels`: a learnable beta or threshold
        is that layer's parameter (a 0-dim tensor, which gets the gradient); a fixed one comes from
        the config, rounded to float32 as snnTorch stores it (a number: no device sync)."""
        cfg = self.cfg
        return dict(beta=lif.beta if cfg.learn_beta else _float32(cfg.beta),
                    threshold=lif.threshold if cfg.learn_threshold else _float32(cfg.threshold),
                    surrogate=cfg.surrogate, slope=float(cfg.surrogate_slope), reset=cfg.reset)


def resolve_lif_impl(lif_impl: str, device: torch.device) -> str:
    """The LIF kernels that run for the setting ``model.lif_impl`` on ``device`` (see
    :meth:`CSNN.forward_fast`): ``scan`` while being compiled, ``auto`` resolved by the device."""
    if compiling():
        return "scan"
    if lif_impl == "auto":
        return "compiled" if device.type == "cuda" else "fused"
    return lif_impl


def build_model(cfg: ModelConfig, frame_shape: tuple[int, ...]) -> nn.Module:
    """The network ``model.name`` names, for frames of shape ``(T, 2, H, W)`` (square, as
    N-MNIST's 34x34 or a crop): the CSNN, or its ANN twin (:mod:`snn_lib.ann`). Every model takes
    time-first frames and returns ``(out [T', B, C], mem)``, so one loop trains them all."""
    _, polarities, height, width = frame_shape
    if polarities != 2 or height != width:
        raise ValueError(f"expected frames (T, 2, S, S), got {tuple(frame_shape)}")
    if cfg.name == "ann":
        return ANN(cfg, input_size=height)
    return CSNN(cfg, input_size=height)


def spike_counts(spk: torch.Tensor) -> torch.Tensor:
    """Output spikes per class: ``[T, B, C]`` -> ``[B, C]`` (an ANN's scores: ``[1, B, C]``)."""
    return spk.sum(0)


def predict(spk: torch.Tensor) -> torch.Tensor:
    """The class with most output spikes, ``[T, B, C]`` -> ``[B]`` (ties go to the lowest class)."""
    return spike_counts(spk).argmax(-1)


def make_loss(name: str):
    """The loss ``train.loss`` names: ``loss(spk [T, B, C], labels [B]) -> scalar``."""
    if name == "ce_count":
        return lambda spk, labels: F.cross_entropy(spike_counts(spk), labels)
    if name == "mse_count":
        from snntorch import functional as SF
        return SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)
    raise ConfigError(f"train.loss={name!r} is not valid: expected {' or '.join(LOSSES)}.")
