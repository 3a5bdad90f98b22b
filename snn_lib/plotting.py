"""Figures and animations. Every function returns a matplotlib Figure or Animation; none shows one.

The caller decides: ``fig.savefig(run_dir / "test_acc.png")`` in a run, ``display(fig)`` in a notebook.
Animations are saved as GIF with Pillow (:func:`save_gif`), so no ffmpeg is needed, and shown in
the book with :func:`animation_html`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.figure import Figure


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def plot_metric(history: Sequence[dict], key: str, ylabel: str, title: str) -> Figure:
    """One metric of a training history (a list of per-epoch dicts) against the epoch."""
    fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
    epochs = [row["epoch"] for row in history]
    ax.plot(epochs, [row[key] for row in history], marker="o")
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    return fig


def plot_train_loss(history: Sequence[dict]) -> Figure:
    """Training loss per epoch (``train_loss.png`` of a run)."""
    return plot_metric(history, "train_loss", "loss", "training loss")


def plot_test_acc(history: Sequence[dict]) -> Figure:
    """Test accuracy per epoch in percent (``test_acc.png`` of a run)."""
    fig = plot_metric([{**r, "test_acc": 100 * r["test_acc"]} for r in history], "test_acc",
                      "accuracy (%)", "test accuracy")
    return fig


def plot_confusion(confusion: np.ndarray | torch.Tensor, normalize: bool = True) -> Figure:
    """A confusion matrix ``[true, predicted]``, rows normalised to fractions when ``normalize``."""
    cm = _np(confusion).astype(float)
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    fig, ax = plt.subplots(figsize=(4.6, 4), layout="constrained")
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

    The bar of ``target`` is drawn in another colour; the title gives the time step and the
    current prediction.
    """
    spikes = _np(spk)
    counts = np.cumsum(spikes, axis=0)                      # [T, C]
    steps, classes = counts.shape
    fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
    colours = ["tab:orange" if c == target else "tab:blue" for c in range(classes)]
    bars = ax.bar(range(classes), counts[0], color=colours)
    ax.set(xlabel="class", ylabel="output spikes so far", xticks=range(classes),
           ylim=(0, max(1.0, counts[-1].max()) * 1.1))

    def draw(t: int):
        for bar, height in zip(bars, counts[t]):
            bar.set_height(height)
        label = f" (target {target})" if target is not None else ""
        ax.set_title(f"step {t + 1}/{steps}: prediction {int(counts[t].argmax())}{label}")
        return bars

    draw(0)
    anim = FuncAnimation(fig, draw, frames=steps, interval=interval_ms, blit=False)
    plt.close(fig)
    return anim


def save_gif(anim: FuncAnimation, path: str | Path, fps: int = 10) -> Path:
    """Save an animation as a GIF with Pillow (no ffmpeg needed)."""
    path = Path(path)
    anim.save(path, writer=PillowWriter(fps=fps))
    return path


def animation_html(anim: FuncAnimation) -> str:
    """The animation as self-contained HTML/JavaScript (plays in a built book without ffmpeg)."""
    return anim.to_jshtml(default_mode="loop")


def plot_frames(frames: torch.Tensor | np.ndarray, steps: Sequence[int] | None = None,
                title: str = "") -> Figure:
    """Frames ``[T, 2, H, W]`` of one recording: ON minus OFF counts for a few time steps."""
    f = _np(frames).astype(float)
    steps = list(steps) if steps is not None else list(np.linspace(0, len(f) - 1, min(len(f), 6)).astype(int))
    fig, axes = plt.subplots(1, len(steps), figsize=(1.6 * len(steps), 1.9), layout="constrained",
                             squeeze=False)
    lim = max(1.0, np.abs(f[:, 1] - f[:, 0]).max())
    for ax, t in zip(axes[0], steps):
        ax.imshow(f[t, 1] - f[t, 0], cmap="bwr", vmin=-lim, vmax=lim)
        ax.set_title(f"t={t}", fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
