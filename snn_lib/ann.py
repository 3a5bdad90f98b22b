"""The CSNN's twin as an ordinary network: the same layers with ReLU instead of LIF neurons.

Layer by layer, for the ``[B, 2, 34, 34]`` summed event frame of a recording::

    conv 5x5, 2 -> 12   [B, 12, 30, 30]  pool 2  [B, 12, 15, 15]  ReLU
    conv 5x5, 12 -> 64  [B, 64, 11, 11]  pool 2  [B, 64, 5, 5]    ReLU
    flatten             [B, 1600]        linear 1600 -> 10  -> scores [B, 10]

It sees the whole recording at once, as the number of events at each pixel and polarity: the
sum of the ``T`` frames the CSNN steps through. That sum does not depend on ``T`` (every event
falls in one bin), so one trained twin stands beside CSNNs of any ``T``, and one pass of it costs
what :func:`snn_lib.cost.measure_cost` calls the ANN twin's multiply-accumulates. Its layers have
the CSNN's names and shapes (``conv1``, ``conv2``, ``fc``), so weights move between the two.

``forward`` keeps the CSNN's contract, time-first frames in and ``(out, mem)`` out, with a time
axis of one step: ``out [1, B, 10]`` holds the scores, so that the CSNN's loss and prediction
(:func:`snn_lib.model.make_loss`, :func:`snn_lib.model.predict`, which sum over time) apply
unchanged, and the same training loop (:func:`snn_lib.train.fit`) trains both.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .config import ModelConfig
from .kernels import flat_features, pool2d


class ANN(nn.Module):
    """12C5-P2-64C5-P2-FC10 with ReLU (channel counts, kernel and pooling from ``ModelConfig``)."""

    def __init__(self, cfg: ModelConfig, input_size: int = 34, num_classes: int = 10):
        super().__init__()
        self.cfg = dataclasses.replace(cfg)
        c1, c2 = cfg.channels
        self.input_size = input_size
        self.conv1 = nn.Conv2d(2, c1, cfg.kernel_size)
        self.conv2 = nn.Conv2d(c1, c2, cfg.kernel_size)
        self.fc = nn.Linear(flat_features(input_size, c2, cfg.kernel_size), num_classes)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``frames [T, B, 2, H, W]`` -> ``(scores [1, B, 10], scores [1, B, 10])``."""
        x = frames.sum(0)                                            # [B, 2, H, W] events per pixel
        x = torch.relu(pool2d(self.conv1(x), self.cfg.pool))         # [B, 12, 15, 15]
        x = torch.relu(pool2d(self.conv2(x), self.cfg.pool))         # [B, 64, 5, 5]
        scores = self.fc(x.flatten(1)).unsqueeze(0)                  # [1, B, 10]
        return scores, scores


__all__ = ["ANN"]
