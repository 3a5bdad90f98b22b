"""Spike encodings (snn_lib.encoding): the codes chapter 1 derives, checked against their definitions."""

from __future__ import annotations

import pytest
import torch

from snn_lib.encoding import delta_code, encode_digit, latency_code, rate_code


@pytest.fixture
def image() -> torch.Tensor:
    """A 28 x 28 test image: a bright square (1.0), a dim bar (0.3), black elsewhere."""
    img = torch.zeros(28, 28)
    img[5:10, 5:10] = 1.0
    img[20, 3:23] = 0.3
    return img


def test_rate_code_fires_with_probability_gain_times_intensity(image):
    rate = rate_code(image, num_steps=400, gain=0.5, seed=1)
    assert rate.shape == (400, 28, 28) and set(rate.unique().tolist()) <= {0.0, 1.0}
    assert rate[:, image == 0].sum() == 0
    assert abs(rate[:, 5:10, 5:10].mean().item() - 0.5) < 0.03            # gain 0.5 x intensity 1
    assert abs(rate[:, 20, 3:23].mean().item() - 0.15) < 0.03             # gain 0.5 x intensity 0.3
    assert rate_code(image, 50, gain=4.0, seed=0)[:, 5:10, 5:10].eq(1).all()   # clipped at probability 1


def test_rate_code_is_reproducible_with_a_seed(image):
    assert torch.equal(rate_code(image, 20, seed=3), rate_code(image, 20, seed=3))
    assert not torch.equal(rate_code(image, 20, seed=3), rate_code(image, 20, seed=4))


def test_latency_code_spikes_once_at_the_linear_time(image):
    latency = latency_code(image, num_steps=400, threshold=0.1)
    assert latency.sum(0)[image >= 0.1].eq(1).all()                       # one spike per lit pixel
    assert latency[0, 5:10, 5:10].eq(1).all()                             # white spikes first
    assert latency[:, 20, 3:23].argmax(0).eq(round(399 * 0.7)).all()     # (T - 1)(1 - x)
    assert latency_code(image, 10, threshold=0.5)[:, 20, 3:23].sum() == 0   # below threshold: silent


def test_delta_code_marks_rises_and_falls():
    signal = torch.tensor([0.0, 0.5, 0.5, 0.2, 0.25, 1.0])
    assert delta_code(signal, threshold=0.1).tolist() == [0, 1, 0, -1, 0, 1]
    assert delta_code(torch.tensor([0.3, 0.3]), threshold=0.1).tolist() == [1, 0]   # first step vs 0


def test_encode_digit_is_both_codes(image):
    rate, latency = encode_digit(image, num_steps=30, gain=0.5, threshold=0.1, seed=2)
    assert torch.equal(rate, rate_code(image, 30, 0.5, seed=2))
    assert torch.equal(latency, latency_code(image, 30, 0.1))
