"""The drawing helpers of chapters 3 (event cameras) and 4 (the convolutional SNN): each returns a
Figure or an Animation, shows nothing, and draws the data it is given."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.animation import FuncAnimation
from matplotlib.figure import Figure

from snn_lib import plotting
from snn_lib.data import events_to_frames, make_events


@pytest.fixture
def events() -> np.ndarray:
    """A made-up recording: 600 events over 300 ms, ON on the left half, OFF on the right."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 34, 600)
    y = rng.integers(0, 34, 600)
    t = np.sort(rng.integers(0, 300_000, 600))
    return make_events(x, y, t, (x < 17).astype(int))


def test_plot_events_3d_draws_every_event_in_its_colour(events):
    fig = plotting.plot_events_3d(events, title="toy")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    on, off = ax.collections
    assert len(on.get_offsets()) == int((events["p"] == 1).sum())
    assert len(off.get_offsets()) == int((events["p"] == 0).sum())
    assert ax.get_title() == "toy"


def test_plot_events_3d_subsamples_large_recordings(events):
    fig = plotting.plot_events_3d(events, max_events=100)
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 100


def test_bin_events_keeps_every_event_with_its_sign(events):
    frames, edges = plotting.events._bin_events(events, 7)
    assert frames.shape == (7, 34, 34) and len(edges) == 8
    on, off = int((events["p"] == 1).sum()), int((events["p"] == 0).sum())
    assert frames[frames > 0].sum() == on and -frames[frames < 0].sum() == off
    assert edges[0] == events["t"].min() / 1000 and edges[-1] == events["t"].max() / 1000


def test_animate_events_has_one_frame_per_bin(events):
    anim = plotting.animate_events(events, n_bins=6, title="toy")
    assert isinstance(anim, FuncAnimation)
    html = plotting.animation_html(anim)
    assert html.count("frames[") >= 6 and "<script" in html


def test_plot_time_bins_one_row_per_setting(events):
    frames = {bins: events_to_frames(events, bins) for bins in (5, 25)}
    fig = plotting.plot_time_bins(frames, columns=4, duration_ms=300.0)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 * (4 + 1)
    curve = fig.axes[4].lines[0].get_ydata()             # events per frame, T = 5
    np.testing.assert_array_equal(curve, frames[5].astype(float).sum(axis=(1, 2, 3)))


def test_plot_time_bins_at_given_times_shows_the_frames_that_hold_them(events):
    frames = {bins: events_to_frames(events, bins) for bins in (5, 100)}
    fig = plotting.plot_time_bins(frames, duration_ms=300.0, at_ms=(10.0, 150.0, 299.0))
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == ["frame 1/5", "frame 3/5", "frame 5/5", "frame 4/100", "frame 51/100", "frame 100/100"]
    with pytest.raises(ValueError, match="duration_ms"):
        plotting.plot_time_bins(frames, at_ms=(10.0,))


def test_plot_recordings_counts_every_event(events):
    fig = plotting.plot_recordings({"a": events, "b": events[:300]}, bin_ms=10.0)
    assert isinstance(fig, Figure)
    image = fig.axes[0].images[0].get_array()
    assert image.sum() == len(events)
    rate_on, rate_off = (line.get_ydata() for line in fig.axes[1].lines)
    assert (rate_on.sum() + rate_off.sum()) * 10.0 == pytest.approx(len(events), abs=2)


def test_montage_tiles_channels_in_order():
    maps = np.arange(3 * 2 * 2, dtype=float).reshape(3, 2, 2)
    out = plotting.training._montage(maps, columns=2)
    assert out.shape == (5, 5)
    np.testing.assert_array_equal(out[:2, :2], maps[0])
    np.testing.assert_array_equal(out[:2, 3:], maps[1])
    np.testing.assert_array_equal(out[3:, :2], maps[2])
    assert np.isnan(out[3:, 3:]).all() and np.isnan(out[2]).all()


def test_plot_layer_activity_counts_and_rates():
    torch.manual_seed(0)
    layers = {"conv": (torch.rand(8, 3, 4, 4) < 0.3).float(), "out": (torch.rand(8, 10) < 0.5).float()}
    fig = plotting.plot_layer_activity(layers)
    assert isinstance(fig, Figure)
    rate_ax = fig.axes[0]
    for line, spikes in zip(rate_ax.lines, layers.values()):
        np.testing.assert_allclose(line.get_ydata(), spikes.flatten(1).mean(1).numpy())
    bars = [ax for ax in fig.axes if ax.patches][0]
    np.testing.assert_array_equal([p.get_height() for p in bars.patches], layers["out"].sum(0).numpy())
    titles = [ax.get_title() for ax in fig.axes]
    assert f"conv: {int(layers['conv'].sum())} spikes" in titles


def test_plot_frames_shows_on_minus_off_at_the_chosen_steps(events):
    frames = events_to_frames(events, n_time_bins=5)                 # [5, 2, 34, 34]
    fig = plotting.plot_frames(frames, steps=[0, 3], title="toy")
    assert isinstance(fig, Figure)
    first, second = fig.axes
    np.testing.assert_array_equal(np.asarray(second.images[0].get_array()),
                                  frames[3, 1].astype(float) - frames[3, 0])
    assert [ax.get_title() for ax in fig.axes] == ["t=0", "t=3"] and fig._suptitle.get_text() == "toy"
    image = second.images[0]
    on_colour = image.cmap(image.norm(1.0))                           # an ON count is drawn blue
    assert on_colour[2] > on_colour[0]
