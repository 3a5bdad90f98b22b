"""Figures of event recordings (chapter 3): frames, events in 3-D and animated, time bins, and
real beside simulated recordings; and (chapter 6) a recording beside its augmented versions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.animation import FuncAnimation
from matplotlib.figure import Figure

from .base import _np, new_figure


def plot_frames(frames: torch.Tensor | np.ndarray, steps: Sequence[int] | None = None,
                title: str = "") -> Figure:
    """Frames ``[T, 2, H, W]`` of one recording: ON minus OFF counts for a few time steps (blue ON,
    red OFF, as in every event figure of this module)."""
    f = _np(frames).astype(float)
    steps = list(steps) if steps is not None else list(np.linspace(0, len(f) - 1, min(len(f), 6)).astype(int))
    fig = new_figure(1.6 * len(steps), 1.9)
    axes = fig.subplots(1, len(steps), squeeze=False)
    lim = max(1.0, np.abs(f[:, 1] - f[:, 0]).max())
    for ax, t in zip(axes[0], steps):
        ax.imshow(f[t, 1] - f[t, 0], cmap="RdBu", vmin=-lim, vmax=lim)
        ax.set_title(f"t={t}", fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _event_fields(events: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, t in ms, p)`` of a tonic structured event array (t in microseconds)."""
    return (np.asarray(events["x"]), np.asarray(events["y"]),
            np.asarray(events["t"], dtype=float) / 1000.0, np.asarray(events["p"]))


def _signed_image(ax, image: np.ndarray, lim: float | None = None):
    """ON minus OFF counts ``[H, W]`` in blue (ON) and red (OFF) on white."""
    lim = lim or max(1.0, float(np.abs(image).max()))
    im = ax.imshow(image, cmap="RdBu", vmin=-lim, vmax=lim)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def plot_events_3d(events: np.ndarray, title: str = "", max_events: int = 20000, seed: int = 0) -> Figure:
    """One recording's events as points in (x, time, y): ON events blue, OFF events red.

    ``events``: tonic structured array (x, y, t in microseconds, p). At most ``max_events`` are
    drawn (a random subset, the same for the same ``seed``); y points down as in an image.
    """
    x, y, t, p = _event_fields(events)
    if len(t) > max_events:
        keep = np.sort(np.random.default_rng(seed).choice(len(t), max_events, replace=False))
        x, y, t, p = x[keep], y[keep], t[keep], p[keep]
    fig = new_figure(7.5, 4.6)
    ax = fig.add_subplot(projection="3d")
    ax.set_box_aspect((1, 2.5, 1), zoom=1.15)   # time stretched: the saccades stand apart
    for value, colour, name in ((1, "tab:blue", "ON"), (0, "tab:red", "OFF")):
        mine = p == value
        ax.scatter(x[mine], t[mine], y[mine], s=0.6, color=colour, alpha=0.5, label=f"{name} ({mine.sum()})",
                   depthshade=False)
    ax.set(xlabel="x (pixel)", ylabel="time (ms)", zlabel="y (pixel)", xticks=[0, 15, 30])
    ax.invert_zaxis()
    ax.view_init(elev=20, azim=-35)             # along the time axis, from a little above
    ax.legend(loc="upper left", fontsize=8, markerscale=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def _bin_events(events: np.ndarray, n_bins: int, size: tuple[int, int] = (34, 34)) -> tuple[np.ndarray, np.ndarray]:
    """ON minus OFF counts ``[n_bins, H, W]`` in equal time windows from the first event to the
    last, and the window edges in ms ``[n_bins + 1]``."""
    x, y, t, p = _event_fields(events)
    edges = np.linspace(t.min(), t.max(), n_bins + 1) if len(t) else np.linspace(0, 1, n_bins + 1)
    index = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, n_bins - 1)
    frames = np.zeros((n_bins, size[1], size[0]))
    np.add.at(frames, (index, y, x), np.where(p > 0, 1.0, -1.0))
    return frames, edges


def animate_events(events: np.ndarray, n_bins: int = 30, interval_ms: int = 100, title: str = "") -> FuncAnimation:
    """A recording played back: the events of each of ``n_bins`` equal time windows, ON minus OFF
    (blue ON, red OFF), with the window's time span in the title."""
    frames, edges = _bin_events(events, n_bins)
    fig = new_figure(3.4, 3.6)
    ax = fig.subplots()
    im = _signed_image(ax, frames[0], lim=max(1.0, float(np.abs(frames).max())))
    if title:
        fig.suptitle(title, fontsize=10)

    def draw(k: int):
        im.set_data(frames[k])
        ax.set_title(f"{edges[k]:.0f}-{edges[k + 1]:.0f} ms", fontsize=9)
        return (im,)

    draw(0)
    return FuncAnimation(fig, draw, frames=n_bins, interval=interval_ms, blit=False)


def plot_time_bins(frames_by_bins: dict[int, torch.Tensor | np.ndarray], columns: int = 5,
                   duration_ms: float | None = None, at_ms: Sequence[float] | None = None) -> Figure:
    """The same recording as frames ``[T, 2, H, W]`` for several T: one row per T, a few frames
    (ON minus OFF counts, blue ON, red OFF, one colour scale per row), and the events per frame at
    the right.

    The frames shown are ``columns`` frames spread evenly over the recording or, with ``at_ms``
    and ``duration_ms``, in every row the frame that holds each of those times (ms from the first
    event), so that the rows show the same moments.
    """
    if at_ms is not None and not duration_ms:
        raise ValueError("at_ms needs duration_ms, the recording's length, to find each time's frame")
    columns = len(at_ms) if at_ms is not None else columns
    rows = len(frames_by_bins)
    fig = new_figure(1.45 * columns + 2.6, 1.6 * rows + 0.3)
    axes = fig.subplots(rows, columns + 1, squeeze=False, width_ratios=[1] * columns + [1.9])
    for row, (bins, frames) in enumerate(frames_by_bins.items()):
        f = _np(frames).astype(float)
        signed = f[:, 1] - f[:, 0]                               # [T, H, W]
        lim = max(1.0, float(np.abs(signed).max()))
        if at_ms is not None:
            steps = [min(int(t / (duration_ms / bins)), bins - 1) for t in at_ms]
        else:
            steps = np.linspace(0, len(f) - 1, columns).round().astype(int)
        for ax, k in zip(axes[row, :columns], steps):
            _signed_image(ax, signed[k], lim)
            ax.set_title(f"frame {k + 1}/{bins}", fontsize=8)
        axes[row, 0].set_ylabel(f"T = {bins}", fontsize=10)
        counts = f.sum(axis=(1, 2, 3))
        ax = axes[row, columns]
        ax.plot(np.arange(1, len(f) + 1), counts, marker="." if bins <= 30 else None, color="black", linewidth=1)
        ax.set_title("events per frame" if row == 0 else "", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_ylim(0, None)
        ax.grid(alpha=0.3)
        if duration_ms:
            ax.text(0.98, 0.95, f"{duration_ms / bins:.1f} ms each", transform=ax.transAxes, ha="right",
                    va="top", fontsize=7)
    axes[-1, columns].set_xlabel("frame", fontsize=8)
    return fig


def plot_recordings(recordings: dict[str, np.ndarray], bin_ms: float = 2.0) -> Figure:
    """Several recordings side by side, one row each: the events per pixel over the whole
    recording (ON and OFF together), and the event rate over time (ON and OFF events per
    ``bin_ms``, in events per ms)."""
    rows = len(recordings)
    fig = new_figure(7.5, 1.9 * rows + 0.3)
    axes = fig.subplots(rows, 2, squeeze=False, width_ratios=[1, 3.2])
    t_end = max(float(_event_fields(ev)[2].max()) for ev in recordings.values() if len(ev))
    edges = np.arange(0, t_end + bin_ms, bin_ms)
    for row, (name, events) in enumerate(recordings.items()):
        x, y, t, p = _event_fields(events)
        image = np.zeros((34, 34))
        np.add.at(image, (y, x), 1.0)
        axes[row, 0].imshow(image, cmap="gray_r", vmin=0)
        axes[row, 0].set_xticks([])
        axes[row, 0].set_yticks([])
        axes[row, 0].set_title(f"{name}", fontsize=8)
        ax = axes[row, 1]
        for value, colour, label in ((1, "tab:blue", "ON"), (0, "tab:red", "OFF")):
            rate, _ = np.histogram(t[p == value], edges)
            ax.plot(edges[:-1], rate / bin_ms, color=colour, linewidth=1, label=label)
        ax.set_ylabel("events / ms", fontsize=8)
        ax.text(0.99, 0.93, f"{len(t)} events", transform=ax.transAxes, ha="right", va="top", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.set_xlim(0, edges[-1])
        if row == 0:
            ax.legend(fontsize=7, loc="upper center", ncols=2)
    axes[-1, 1].set_xlabel("time (ms)", fontsize=9)
    return fig


def plot_event_images(recordings: dict[str, np.ndarray], columns: int = 4,
                      size: tuple[int, int] = (34, 34)) -> Figure:
    """Recordings as images, one panel each, titled by name and event count: the events per pixel
    over the whole recording, ON and OFF together (as :func:`plot_recordings`), on one grey scale
    for all panels (an augmented recording beside its original, chapter 6)."""
    images = {}
    for name, events in recordings.items():
        x, y, _, _ = _event_fields(events)
        image = np.zeros(size[::-1])
        np.add.at(image, (y, x), 1.0)
        images[name] = (image, len(x))
    top = max([1.0] + [float(im.max()) for im, _ in images.values()])
    rows = -(-len(images) // columns)
    fig = new_figure(1.75 * columns, 1.95 * rows)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, (image, count)) in zip(axes.flat, images.items()):
        ax.imshow(image, cmap="gray_r", vmin=0, vmax=top)
        ax.set_title(f"{name}\n{count} events", fontsize=8)
    return fig
