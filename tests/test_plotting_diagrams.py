"""The book's diagrams (snn_lib.plotting.diagrams): each returns a Figure that fits the page with no
two labels on top of each other, the CSNN's shapes are computed from its settings, and one event
pixel's events are those of a hand computation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from snn_lib import plotting
from snn_lib.config import ModelConfig
from snn_lib.model import CSNN

DIAGRAMS = {
    "lif_circuit": plotting.plot_lif_circuit,
    "bptt_unrolled": plotting.plot_bptt_unrolled,
    "csnn": plotting.plot_csnn_diagram,
    "csnn_crop28": lambda: plotting.plot_csnn_diagram(input_size=28),
    "log_intensity": plotting.plot_log_intensity_events,
}


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _drawn_texts(fig: Figure) -> list[Text]:
    """Every non-empty visible text of ``fig``, tick labels only where their tick is in view
    (matplotlib keeps labels for ticks beyond the limits, and does not draw them)."""
    tick_labels, in_view = set(), []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                tick_labels.update((tick.label1, tick.label2))
                if lo <= tick.get_loc() <= hi:
                    in_view += [label for label in (tick.label1, tick.label2) if label.get_visible()]
    texts = [t for t in fig.findobj(Text) if t not in tick_labels] + in_view
    return [t for t in dict.fromkeys(texts) if t.get_visible() and t.get_text().strip()]


def _overlapping_labels(fig: Figure) -> list[tuple[str, str]]:
    """Pairs of texts (labels, titles, tick labels, legend entries) whose drawn boxes overlap."""
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _drawn_texts(fig)]
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]


@pytest.mark.parametrize("name", DIAGRAMS)
def test_diagram_is_a_figure_that_fits_the_page_with_no_label_on_another(name):
    fig = DIAGRAMS[name]()
    assert isinstance(fig, Figure)
    width, height = fig.get_size_inches()
    assert width <= 8.5 and height <= 5, f"{name}: {width} x {height} inches"
    assert _overlapping_labels(fig) == []


def test_overlap_check_sees_two_labels_on_one_another():
    fig = plotting.new_figure()
    ax = fig.subplots()
    ax.text(0.5, 0.5, "one label")
    ax.text(0.5, 0.5, "another")
    assert _overlapping_labels(fig) == [("one label", "another")]


@pytest.mark.parametrize("input_size, shapes, flat", [
    (34, ["[T,B,2,34,34]", "[T,B,12,30,30]", "[T,B,12,15,15]", "[T,B,64,11,11]", "[T,B,64,5,5]"], 1600),
    (28, ["[T,B,2,28,28]", "[T,B,12,24,24]", "[T,B,12,12,12]", "[T,B,64,8,8]", "[T,B,64,4,4]"], 1024),
])
def test_csnn_diagram_shows_the_shapes_of_its_input_size(input_size, shapes, flat):
    texts = _texts(plotting.plot_csnn_diagram(input_size=input_size))
    for shape in shapes + [f"[T,B,{flat}]", "[T,B,10]", "[B,10]", "[B]"]:
        assert shape in texts, f"{shape} not in the diagram of {input_size}x{input_size} inputs"
    assert f"fully connected\n{flat}\u219210" in texts
    assert CSNN(ModelConfig(), input_size=input_size).fc.in_features == flat     # what the model builds


def test_csnn_shapes_follow_channels_and_kernel():
    # 34 - 3 + 1 = 32, pooled 16; 16 - 3 + 1 = 14, pooled 7; 32 * 7 * 7 = 1568
    shapes = [shape for _, shape in plotting.csnn_shapes(channels=(8, 32), kernel_size=3)]
    assert shapes[:8] == ["[T,B,2,34,34]", "[T,B,8,32,32]", "[T,B,8,16,16]", "[T,B,8,16,16]",
                          "[T,B,32,14,14]", "[T,B,32,7,7]", "[T,B,32,7,7]", "[T,B,1568]"]
    assert CSNN(ModelConfig(channels=(8, 32), kernel_size=3)).fc.in_features == 1568


def test_csnn_diagram_refuses_inputs_too_small_for_two_stages():
    with pytest.raises(ValueError, match="too small"):
        plotting.plot_csnn_diagram(input_size=12)


def test_log_intensity_events_equal_a_hand_computation():
    # ln I = 0, 0.5, 0.5, -0.3, 0.0 at t = 0..4; ON threshold 0.2, OFF threshold 0.25; the reference starts at 0.
    # 0 -> 0.5 (slope 0.5/unit): ON at level 0.2 (t 0.4) and 0.4 (t 0.8); 0.5 - 0.4 < 0.2 stops.
    # 0.5 -> 0.5: nothing.  0.5 -> -0.3 (slope -0.8): OFF at 0.15 (t 2 + 0.35/0.8 = 2.4375) and
    # -0.1 (t 2 + 0.6/0.8 = 2.75); -0.1 - (-0.3) = 0.2 < 0.25 stops.  -0.3 -> 0.0: 0.0 - (-0.1) < 0.2, nothing.
    t = np.arange(5.0)
    intensity = np.exp([0.0, 0.5, 0.5, -0.3, 0.0])
    times, polarities = plotting.log_intensity_events(t, intensity, threshold_on=0.2, threshold_off=0.25)
    np.testing.assert_allclose(times, [0.4, 0.8, 2.4375, 2.75])
    assert polarities.tolist() == [1, 1, 0, 0]


def test_log_intensity_events_a_constant_pixel_is_silent_and_a_bad_trace_is_refused():
    times, polarities = plotting.log_intensity_events([0, 1, 2], [0.5, 0.5, 0.5])
    assert len(times) == len(polarities) == 0
    with pytest.raises(ValueError, match="positive"):
        plotting.log_intensity_events([0, 1], [1.0, 0.0])
    with pytest.raises(ValueError, match="increase"):
        plotting.log_intensity_events([0, 0], [1.0, 2.0])


def test_staircase_draws_the_events_it_computes():
    t = np.linspace(0, 10, 201)
    intensity = np.exp(np.sin(t))                       # ln I swings by 2 log units, up and down
    times, polarities = plotting.log_intensity_events(t, intensity, 0.4, 0.5)
    fig = plotting.plot_log_intensity_events(t, intensity, threshold_on=0.4, threshold_off=0.5)
    ax_events = fig.axes[1]
    on, off = (c for c in ax_events.collections)
    assert len(on.get_segments()) == (polarities == 1).sum() > 0
    assert len(off.get_segments()) == (polarities == 0).sum() > 0
    np.testing.assert_allclose(sorted(s[0][0] for s in on.get_segments()), times[polarities == 1])
