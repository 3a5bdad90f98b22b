"""The drawing helpers of chapter 5 (training on N-MNIST): each returns a Figure, shows nothing,
and draws exactly the data it is given."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from snn_lib import plotting


def test_plot_per_class_accuracy_one_bar_per_class_in_percent():
    per_class = torch.tensor([1.0, 0.5, 0.0, 0.25])
    fig = plotting.plot_per_class_accuracy(per_class, accuracy=0.6, title="toy")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([100, 50, 0, 25])
    assert [t.get_text() for t in ax.texts] == ["100", "50", "0", "25"]
    (line,) = ax.get_lines()                                   # the overall accuracy
    assert line.get_ydata()[0] == pytest.approx(60)
    assert ax.get_title() == "toy"


def test_plot_per_class_accuracy_without_overall_line():
    fig = plotting.plot_per_class_accuracy(np.full(10, 0.1))
    ax = fig.axes[0]
    assert len(ax.patches) == 10 and not ax.get_lines()
    assert ax.get_legend() is None


def test_plot_step_times_a_row_per_implementation_with_its_median():
    times = {"reference": [30.0, 10.0, 20.0], "fast": [4.0, 6.0]}
    fig = plotting.plot_step_times(times, title="measured here")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["reference", "fast"]
    assert [p.get_width() for p in ax.patches] == pytest.approx([20.0, 5.0])   # medians
    dots = [line.get_xdata().tolist() for line in ax.get_lines()]
    assert dots == [[30.0, 10.0, 20.0], [4.0, 6.0]]                          # every measurement
    assert "median 20 ms" in ax.texts[0].get_text()
    assert ax.get_title() == "measured here"


def test_plot_step_times_leaves_room_for_the_median_labels():
    fig = plotting.plot_step_times({"slow": [100.0, 300.0], "fast": [10.0]})
    left, right = fig.axes[0].get_xlim()
    assert left == 0 and right > 300.0


def test_plot_train_loss_and_test_acc_draw_the_history():
    history = [{"epoch": 1, "train_loss": 2.0, "test_acc": 0.5}, {"epoch": 2, "train_loss": 1.0, "test_acc": 0.75}]
    loss = plotting.plot_train_loss(history)
    acc = plotting.plot_test_acc(history)
    assert isinstance(loss, Figure) and isinstance(acc, Figure)
    (line,) = loss.axes[0].get_lines()
    assert line.get_xdata().tolist() == [1, 2] and line.get_ydata().tolist() == [2.0, 1.0]
    (line,) = acc.axes[0].get_lines()
    assert line.get_ydata().tolist() == [50.0, 75.0]                          # in percent


def test_plot_test_acc_draws_the_training_accuracy_beside_the_test_one():
    history = [{"epoch": 1, "train_acc": 0.25, "test_acc": 0.5}, {"epoch": 2, "train_acc": 0.9, "test_acc": 0.75}]
    ax = plotting.plot_test_acc(history, train=True).axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["test", "train"]
    assert ax.get_lines()[1].get_ydata().tolist() == [25.0, 90.0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["test", "train"]


def test_plot_confusion_normalises_each_true_class():
    confusion = torch.tensor([[3, 1], [0, 4]])
    fig = plotting.plot_confusion(confusion)
    assert isinstance(fig, Figure)
    image = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(np.asarray(image), [[0.75, 0.25], [0.0, 1.0]])
    raw = plotting.plot_confusion(confusion, normalize=False).axes[0].images[0].get_array()
    np.testing.assert_allclose(np.asarray(raw), [[3, 1], [0, 4]])


def test_animate_spike_counts_shows_the_true_class_even_while_its_bar_is_empty():
    spk = torch.zeros(4, 10)                          # [T, C]
    spk[:, 2] = 1                                     # class 2 spikes at every step, class 7 never
    anim = plotting.animate_spike_counts(spk, target=7)
    ax = anim._fig.axes[0]
    bars = ax.patches
    anim._func(3)                                     # the last step
    assert [b.get_height() for b in bars][2] == 4 and bars[7].get_height() == 0
    assert bars[7].get_linewidth() > bars[2].get_linewidth()          # outlined: visible at 0
    tick = ax.get_xticklabels()[7]
    assert tick.get_fontweight() == "bold" and tick.get_color() == "tab:orange"
    assert ax.get_title() == "step 4/4: prediction 2 (true class 7)"


def test_the_spike_count_animation_opens_on_its_last_frame_not_its_empty_first():
    spk = torch.zeros(5, 10)
    spk[3:, 2] = 1                                    # nothing spikes before step 4
    anim = plotting.animate_spike_counts(spk, target=2)
    assert anim.poster_frame == 4
    html = plotting.animation_html(anim)
    assert re.search(r"anim\w+ = new Animation\([^;]*\);\s*anim\w+\.set_frame\(4\);", html)
    plain = plotting.animation_html(plotting.animate_spike_frames(torch.ones(3, 4, 4)))
    assert not re.search(r"new Animation\([^;]*\);\s*anim\w+\.set_frame", plain)   # the first frame
    assert "set_frame(1);" in plotting.animation_html(anim, start_frame=1)


def test_an_animation_requests_nothing_from_the_network_and_draws_its_buttons():
    html = plotting.animation_html(plotting.animate_spike_frames(torch.ones(3, 4, 4)))
    assert not re.search(r"https?://|(src|href)=[\"']//", html)
    assert "font-awesome" not in html and 'class="fa ' not in html
    assert html.count("<svg") == 9 and html.count("<button") == 9    # one icon per button
