"""The drawing helpers of chapters 1 (spike encoding) and 2 (the LIF neuron): each returns a Figure
or an Animation, shows nothing, and draws exactly the data it is given."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.animation import FuncAnimation
from matplotlib.figure import Figure

from snn_lib import plotting
from snn_lib.encoding import encode_digit
from snn_lib.neurons import lif_sequence, step_current


@pytest.fixture
def image() -> torch.Tensor:
    """A 28 x 28 test image: a bright square (1.0), a dim bar (0.3), black elsewhere."""
    img = torch.zeros(28, 28)
    img[5:10, 5:10] = 1.0
    img[20, 3:23] = 0.3
    return img


def _dots(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections)


def test_plot_images_one_panel_per_image_with_its_label():
    fig = plotting.plot_images(np.random.default_rng(0).random((5, 28, 28)), labels=[3, 1, 4, 1, 5], columns=3)
    assert isinstance(fig, Figure)
    shown = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in shown] == ["3", "1", "4", "1", "5"]
    assert len(fig.axes) == 6                                  # 2 rows x 3, the last one empty


def test_plot_raster_draws_one_dot_per_spike_and_off_spikes_apart():
    spikes = torch.zeros(10, 4, 5)                             # [T, H, W] -> 20 neurons
    spikes[2, 1, 1] = spikes[7, 3, 4] = spikes[9, 0, 0] = 1
    spikes[4, 2, 2] = -1
    fig = plotting.plot_raster(spikes, title="toy")
    ax = fig.axes[0]
    on, off = ax.collections
    assert sorted(map(tuple, on.get_offsets().tolist())) == [(2, 6), (7, 19), (9, 0)]
    assert off.get_offsets().tolist() == [[4, 12]]
    assert ax.get_xlim() == (-0.5, 9.5) and ax.get_ylim() == (-0.5, 19.5)


def test_plot_raster_markers_grow_when_there_are_few_neurons():
    many = plotting.plot_raster(torch.ones(5, 28, 28)).axes[0].collections[0]
    few = plotting.plot_raster(torch.ones(5, 28)).axes[0].collections[0]
    assert few.get_sizes()[0] > 10 * many.get_sizes()[0]
    fixed = plotting.plot_raster(torch.ones(5, 28), markersize=3.0).axes[0].collections[0]
    assert fixed.get_sizes()[0] == 3.0


def test_plot_spike_encodings_counts_the_spikes_it_draws(image):
    fig = plotting.plot_spike_encodings(image, num_steps=30, gain=1.0, threshold=0.1)
    rate, latency = encode_digit(image, num_steps=30, gain=1.0, threshold=0.1)
    raster_rate, _, raster_lat, _ = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert _dots(raster_rate) == int(rate.sum())
    assert _dots(raster_lat) == int(latency.sum()) == 25 + 20
    assert f"{int(latency.sum())} spikes" in raster_lat.get_title()


def test_animate_spike_frames_shows_running_counts():
    spikes = torch.zeros(6, 3, 3)
    spikes[:, 1, 1] = 1
    spikes[2, 0, 0] = 1
    anim = plotting.animate_spike_frames(spikes, title="toy")
    assert isinstance(anim, FuncAnimation)
    now, total = (ax.images[0] for ax in anim._fig.axes)
    anim._func(4)
    assert total.get_array()[1, 1] == 5 and total.get_array()[0, 0] == 1
    assert now.get_array()[0, 0] == 0
    assert "step 5/6" in anim._fig.axes[0].get_title()
    assert "<script" in plotting.animation_html(anim)          # plays in HTML without ffmpeg
    wide = plotting.animate_spike_frames(torch.zeros(3, 4, 8))      # two codes side by side
    assert (anim._fig.get_figwidth(), wide._fig.get_figwidth()) == (5.0, 7.5)


def test_plot_lif_trace_draws_each_neuron_and_its_spikes():
    cur = torch.full((20,), 0.4)
    traces = {rule: lif_sequence(cur, beta=0.9, reset=rule) for rule in ("subtract", "zero")}
    fig = plotting.plot_lif_trace(cur, traces, threshold=1.0)
    ax_cur, ax_mem, ax_spk = fig.axes
    assert [line.get_label() for line in ax_mem.get_lines()] == ["subtract", "zero", "threshold"]
    np.testing.assert_allclose(ax_mem.get_lines()[0].get_ydata(), traces["subtract"][1].numpy())
    drawn = [len(c.get_segments()) for c in ax_spk.collections]
    assert drawn == [int(traces[r][0].sum()) for r in ("subtract", "zero")]


def test_plot_lif_response_title_counts_the_spikes():
    fig = plotting.plot_lif_response(beta=0.8, threshold=1.0, current=0.5, num_steps=40, reset="zero")
    spk, _ = lif_sequence(step_current(40, 0.5), beta=0.8, threshold=1.0, reset="zero")
    assert f"{int(spk.sum())} spikes" in fig.axes[0].get_title()
    assert int(spk.sum()) > 0


def test_plot_surrogates_draws_the_autograd_derivatives():
    fig = plotting.plot_surrogates(slopes=(2.0,), names=("atan", "fast_sigmoid"), span=1.0)
    _, ax_grad = fig.axes
    curves = {line.get_label(): line.get_ydata() for line in ax_grad.get_lines()}
    atan, fast = curves["atan, slope 2"], curves["fast_sigmoid, slope 2"]
    assert atan.max() == pytest.approx(1.0, abs=1e-6)          # alpha / 2 at U = threshold
    assert fast.max() == pytest.approx(1.0, abs=1e-6)          # 1 / (1 + k|0|)^2
    u = np.asarray(ax_grad.get_lines()[1].get_xdata())
    np.testing.assert_allclose(atan, 1.0 / (1 + (np.pi * u) ** 2), rtol=1e-5)


def test_plot_spike_images_panels_and_counts():
    spikes = torch.zeros(10, 4, 4)
    spikes[3, 0, :] = 1
    spikes[3, 1, 0] = -1
    fig = plotting.plot_spike_images(spikes, steps=[0, 3])
    assert [ax.get_title() for ax in fig.axes] == ["t=0: 0", "t=3: 5"]
    assert len(plotting.plot_spike_images(spikes).axes) == 6
    grid = plotting.plot_spike_images(spikes, steps=range(5))     # rows of 3: 3 + 2 panels
    assert [ax.get_subplotspec().get_geometry()[:2] for ax in grid.axes] == [(2, 3)] * 5


def test_plot_lif_trace_gives_a_long_trace_the_full_width():
    short, long = torch.full((100,), 0.4), torch.full((300,), 0.4)
    widths = [plotting.plot_lif_trace(c, {"a": lif_sequence(c, beta=0.9)}).get_figwidth() for c in (short, long)]
    assert widths == [6.5, 8.5]


def test_plot_fi_curve_draws_measured_dots_formula_lines_and_the_rheobase():
    currents = torch.linspace(0, 1, 11)
    measured = {"measured": currents / 2}
    formula = {"formula": np.where(currents.numpy() > 0.2, 0.5, np.nan)}
    fig = plotting.plot_fi_curve(currents, measured, formula, rheobase=0.1, title="toy")
    ax = fig.axes[0]
    by_label = {line.get_label(): line for line in ax.get_lines()}
    assert by_label["measured"].get_linestyle() == "None"            # dots only
    np.testing.assert_allclose(by_label["measured"].get_ydata(), currents / 2)
    assert by_label["formula"].get_linestyle() == "-"
    assert list(by_label["rheobase 0.1"].get_xdata()) == [0.1, 0.1]
    assert ax.get_title() == "toy"
