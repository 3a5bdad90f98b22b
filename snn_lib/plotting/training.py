"""Figures of a training run and of the network's activity: curves, confusion matrix, per-class
accuracy, step times, hidden-layer spikes, and the output spike counter animation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.animation import FuncAnimation
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .base import _freeze_layout, _np, new_figure


def plot_metric(history: Sequence[dict], key: str, ylabel: str, title: str) -> Figure:
    """One metric of a training history (a list of per-epoch dicts) against the epoch."""
    fig = new_figure()
    ax = fig.subplots()
    epochs = [row["epoch"] for row in history]
    ax.plot(epochs, [row[key] for row in history], marker="o")
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))          # epochs are whole numbers
    ax.grid(alpha=0.3)
    return fig


def plot_train_loss(history: Sequence[dict]) -> Figure:
    """Training loss per epoch (``train_loss.png`` of a run)."""
    return plot_metric(history, "train_loss", "loss", "training loss")


def plot_test_acc(history: Sequence[dict], train: bool = False) -> Figure:
    """Test accuracy per epoch in percent (``test_acc.png`` of a run), with the validation
    accuracy and the epoch it chose (the first best) where the run has a validation split, and
    with ``train`` the training accuracy of each epoch too (measured while the weights changed)."""
    fig = plot_metric([{**r, "test_acc": 100 * r["test_acc"]} for r in history], "test_acc",
                      "accuracy (%)", "test accuracy")
    ax = fig.axes[0]
    val = [r for r in history if r.get("val_acc", float("nan")) == r.get("val_acc")]   # not NaN, present
    if train:
        ax.plot([r["epoch"] for r in history], [100 * r["train_acc"] for r in history], marker="^", label="train")
        ax.set_title("training and test accuracy")
    if val:
        ax.plot([r["epoch"] for r in val], [100 * r["val_acc"] for r in val], marker="s", label="validation")
        chosen = max(val, key=lambda r: r["val_acc"])
        ax.axvline(chosen["epoch"], color="gray", linestyle=":", label=f"chosen on validation (epoch {chosen['epoch']})")
        ax.set_title("validation and test accuracy")
    if train or val:
        ax.lines[0].set_label("test")
        ax.legend(fontsize=7)
    return fig


def plot_runs(curves: dict[str, Sequence[Sequence[dict]]], key: str = "test_acc", ylabel: str = "test accuracy (%)",
              title: str = "") -> Figure:
    """One metric of many runs against the epoch: per setting (a key of ``curves``, its value the
    histories of its runs), the mean over the runs as a line and their range as a band. Accuracies
    (``*_acc``) are drawn in percent."""
    fig = new_figure(6, 3.4)
    ax = fig.subplots()
    scale = 100 if key.endswith("_acc") else 1
    markers = "osD^v<>p*h"                  # lines that coincide stay visible by their markers
    for i, (label, histories) in enumerate(curves.items()):
        epochs = sorted({row["epoch"] for h in histories for row in h})
        values = [[scale * row[key] for h in histories for row in h if row["epoch"] == e] for e in epochs]
        mean = [float(np.mean(v)) for v in values]
        runs = f"{len(histories)} run{'s' if len(histories) != 1 else ''}"
        line, = ax.plot(epochs, mean, marker=markers[i % len(markers)], markersize=4, markerfacecolor="none",
                        label=f"{label} ({runs})")
        if len(histories) > 1:
            ax.fill_between(epochs, [min(v) for v in values], [max(v) for v in values], color=line.get_color(),
                            alpha=0.2, linewidth=0)
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def plot_confusion(confusion: np.ndarray | torch.Tensor, normalize: bool = True) -> Figure:
    """A confusion matrix ``[true, predicted]``, rows normalised to fractions when ``normalize``."""
    cm = _np(confusion).astype(float)
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    fig = new_figure(4.6, 4)
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues", vmin=0)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, f"{shown[i, j]:.2f}" if normalize else int(cm[i, j]), ha="center",
                        va="center", fontsize=6, color="white" if shown[i, j] > shown.max() / 2 else "black")
    ax.set(xlabel="predicted", ylabel="true", xticks=range(cm.shape[1]), yticks=range(cm.shape[0]),
           title="confusion matrix" + (" (row fractions)" if normalize else ""))
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def animate_spike_counts(spk: torch.Tensor | np.ndarray, target: int | None = None,
                         interval_ms: int = 80) -> FuncAnimation:
    """A bar per class that grows as output spikes arrive: ``spk [T, C]`` of one recording.

    The bar of ``target`` is drawn in another colour, with an outline and its class number in bold
    beneath, so that it shows even while it is empty; the title gives the time step and the
    current prediction. Its ``poster_frame`` is the last step: a page shows the final counts until
    play is pressed (:func:`~snn_lib.plotting.base.animation_html`), not the empty bars of step 1.
    """
    spikes = _np(spk)
    counts = np.cumsum(spikes, axis=0)                      # [T, C]
    steps, classes = counts.shape
    fig = new_figure()
    ax = fig.subplots()
    colours = ["tab:orange" if c == target else "tab:blue" for c in range(classes)]
    bars = ax.bar(range(classes), counts[0], color=colours)
    ax.set(xlabel="class", ylabel="output spikes so far", xticks=range(classes),
           ylim=(0, max(1.0, counts[-1].max()) * 1.1))
    if target is not None:                                  # visible at height 0 too
        bars[target].set(edgecolor="tab:orange", linewidth=2.5)
        tick = ax.get_xticklabels()[target]
        tick.set(color="tab:orange", fontweight="bold")

    def draw(t: int):
        for bar, height in zip(bars, counts[t]):
            bar.set_height(height)
        label = f" (true class {target})" if target is not None else ""
        ax.set_title(f"step {t + 1}/{steps}: prediction {int(counts[t].argmax())}{label}")
        return bars

    draw(0)
    _freeze_layout(fig)
    anim = FuncAnimation(fig, draw, frames=steps, interval=interval_ms, blit=False)
    anim.poster_frame = steps - 1
    return anim


def _montage(maps: np.ndarray, columns: int) -> np.ndarray:
    """Channels ``[C, H, W]`` tiled into one image, one blank (NaN) pixel between tiles."""
    c, h, w = maps.shape
    rows = -(-c // columns)
    out = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1), np.nan)
    for i in range(c):
        r, k = divmod(i, columns)
        out[r * (h + 1):r * (h + 1) + h, k * (w + 1):k * (w + 1) + w] = maps[i]
    return out


def plot_layer_activity(layers: dict[str, torch.Tensor | np.ndarray]) -> Figure:
    """Spikes of a network's layers for one input: ``layers`` maps a name to spikes ``[T, ...]``.

    Top row: each layer's spike count per neuron over all T steps (a convolutional layer
    ``[T, C, H, W]`` as its C channel maps side by side, a flat layer ``[T, N]`` as bars).
    Bottom: the fraction of each layer's neurons that spike at each step.
    """
    fig = new_figure(3.0 * len(layers) + 0.5, 5.4)
    grid = fig.add_gridspec(2, len(layers), height_ratios=[1.5, 1])
    ax_rate = fig.add_subplot(grid[1, :])
    for i, (name, spikes) in enumerate(layers.items()):
        s = _np(spikes).astype(float)
        counts = s.sum(0)
        ax = fig.add_subplot(grid[0, i])
        if counts.ndim == 3:
            columns = int(np.ceil(np.sqrt(counts.shape[0] * counts.shape[1] / counts.shape[2])))
            im = ax.imshow(_montage(counts, columns), cmap="magma", vmin=0, vmax=max(1.0, counts.max()))
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(im, ax=ax, shrink=0.7)
        else:
            counts = counts.reshape(-1)
            ax.bar(range(len(counts)), counts, color="tab:blue")
            ax.set(xticks=range(len(counts)), xlabel="neuron", ylim=(0, max(1.0, 1.1 * counts.max())))
            ax.tick_params(labelsize=7)
        ax.set_title(f"{name}: {int(counts.sum())} spikes", fontsize=9)
        active = s.reshape(len(s), -1).mean(1)
        ax_rate.plot(np.arange(1, len(s) + 1), active, marker=".", label=name)
    ax_rate.set(xlabel="time step", ylabel="fraction spiking")
    ax_rate.grid(alpha=0.3)
    ax_rate.legend(fontsize=8)
    return fig


def plot_per_class_accuracy(per_class: Sequence[float] | np.ndarray | torch.Tensor,
                            accuracy: float | None = None, title: str = "") -> Figure:
    """Accuracy of each class (fractions 0-1, drawn in percent) as bars with their values, and the
    overall ``accuracy`` as a dashed line when given (e.g. the result of
    :func:`snn_lib.evaluate.evaluate`)."""
    values = 100 * _np(per_class).astype(float)
    fig = new_figure(5.5, 3)
    ax = fig.subplots()
    bars = ax.bar(range(len(values)), values, color="tab:blue")
    ax.bar_label(bars, [f"{v:.0f}" for v in values], fontsize=7, padding=1)
    if accuracy is not None:
        ax.axhline(100 * accuracy, color="black", linestyle="--", linewidth=1,
                   label=f"all classes: {100 * accuracy:.1f}%")
        ax.legend(fontsize=8, loc="upper right", framealpha=1)
    ax.set(xlabel="class (true label)", ylabel="accuracy (%)", xticks=range(len(values)), ylim=(0, 128),
           yticks=range(0, 101, 20), title=title or "test accuracy per class")
    ax.grid(alpha=0.3, axis="y")
    return fig


def plot_step_times(times_ms: dict[str, Sequence[float]], title: str = "") -> Figure:
    """Measured times of one training step for several implementations: one row each, every
    measurement a dot and the median a bar with its value in ms."""
    fig = new_figure(6, 0.6 * len(times_ms) + 1.3)
    ax = fig.subplots()
    names = list(times_ms)
    longest = max((max(t) for t in times_ms.values() if len(t)), default=1.0)
    for row, name in enumerate(names):
        t = np.asarray(times_ms[name], dtype=float)
        median = float(np.median(t))
        ax.barh(row, median, color="tab:blue", alpha=0.35, height=0.6)
        ax.plot(t, np.full(len(t), row), "o", color="tab:blue", markersize=4)
        ax.text(median, row + 0.36, f" median {median:.0f} ms", va="bottom", fontsize=8)
    ax.set(yticks=range(len(names)), yticklabels=names, xlabel="time per training step (ms)",
           ylim=(-0.6, len(names) - 0.1), xlim=(0, 1.35 * longest))     # room for the labels
    ax.grid(alpha=0.3, axis="x")
    if title:
        ax.set_title(title, fontsize=10)
    return fig
