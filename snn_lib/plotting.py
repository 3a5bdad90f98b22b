"""Figures and animations. Every function returns a matplotlib Figure or Animation; none shows one.

The caller decides: ``fig.savefig(run_dir / "test_acc.png")`` in a run, ``display(fig)`` in a notebook.
Figures are made with ``matplotlib.figure.Figure`` (through :func:`new_figure`), not pyplot, so
the library keeps no global figure state and a notebook shows a returned figure exactly once.
Animations are saved as GIF with Pillow (:func:`save_gif`), so no ffmpeg is needed, and shown in
the book with :func:`animation_html`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def new_figure(width: float = 5, height: float = 3.2) -> Figure:
    """A Figure outside pyplot's registry (nothing to close, nothing shown twice)."""
    return Figure(figsize=(width, height), layout="constrained")


def _freeze_layout(fig: Figure) -> None:
    """Lay the figure out once and keep that layout: an animation's frames then skip the layout
    engine, which otherwise reruns for every saved frame (most of a GIF's cost)."""
    engine = fig.get_layout_engine()
    if engine is not None:
        FigureCanvasAgg(fig)
        engine.execute(fig)
        fig.set_layout_engine("none")


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def plot_metric(history: Sequence[dict], key: str, ylabel: str, title: str) -> Figure:
    """One metric of a training history (a list of per-epoch dicts) against the epoch."""
    fig = new_figure()
    ax = fig.subplots()
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

    The bar of ``target`` is drawn in another colour; the title gives the time step and the
    current prediction.
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

    def draw(t: int):
        for bar, height in zip(bars, counts[t]):
            bar.set_height(height)
        label = f" (target {target})" if target is not None else ""
        ax.set_title(f"step {t + 1}/{steps}: prediction {int(counts[t].argmax())}{label}")
        return bars

    draw(0)
    _freeze_layout(fig)
    return FuncAnimation(fig, draw, frames=steps, interval=interval_ms, blit=False)


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
    fig = new_figure(1.6 * len(steps), 1.9)
    axes = fig.subplots(1, len(steps), squeeze=False)
    lim = max(1.0, np.abs(f[:, 1] - f[:, 0]).max())
    for ax, t in zip(axes[0], steps):
        ax.imshow(f[t, 1] - f[t, 0], cmap="bwr", vmin=-lim, vmax=lim)
        ax.set_title(f"t={t}", fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


# --- Book helpers: spike encoding (chapter 1) and the LIF neuron (chapter 2) -------------------

def plot_images(images: torch.Tensor | np.ndarray, labels: Sequence[int] | None = None,
                columns: int = 8) -> Figure:
    """A grid of grey images ``[N, H, W]`` (values 0-1), each titled with its label if given."""
    imgs = _np(images)
    rows = -(-len(imgs) // columns)
    fig = new_figure(1.1 * min(columns, len(imgs)), 1.25 * rows)
    axes = fig.subplots(rows, min(columns, len(imgs)), squeeze=False).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < len(imgs):
            ax.imshow(imgs[i], cmap="gray_r", vmin=0, vmax=1)
            if labels is not None:
                ax.set_title(str(int(labels[i])), fontsize=9)
    return fig


def _raster_on(ax, spikes: np.ndarray, title: str = "", markersize: float = 2.0) -> int:
    """Draw ``spikes [T, N]`` as a raster (time across, neuron up); ON (+1) and OFF (-1) spikes in
    two colours. Returns the number of dots drawn."""
    on_t, on_n = np.nonzero(spikes > 0)
    off_t, off_n = np.nonzero(spikes < 0)
    ax.scatter(on_t, on_n, s=markersize, marker="|", color="black", linewidths=0.8,
               label="ON" if len(off_t) else None)
    if len(off_t):
        ax.scatter(off_t, off_n, s=markersize, marker="|", color="tab:red", linewidths=0.8, label="OFF")
        ax.legend(loc="upper right", fontsize=7, markerscale=4)
    ax.set(xlim=(-0.5, spikes.shape[0] - 0.5), ylim=(-0.5, spikes.shape[1] - 0.5),
           xlabel="time step", ylabel="neuron")
    if title:
        ax.set_title(title, fontsize=10)
    return len(on_t) + len(off_t)


def plot_raster(spikes: torch.Tensor | np.ndarray, title: str = "") -> Figure:
    """A raster plot of ``spikes [T, ...]``: all but the time axis are flattened into neurons.

    A dot at (t, n) marks a spike of neuron n at step t; negative values (OFF spikes of delta
    coding) are drawn in red.
    """
    s = _np(spikes)
    s = s.reshape(s.shape[0], -1)                              # [T, N]
    fig = new_figure(6, 3.2)
    _raster_on(fig.subplots(), s, title)
    return fig


def encode_digit(image: torch.Tensor | np.ndarray, num_steps: int = 50, gain: float = 1.0,
                 threshold: float = 0.01, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rate and latency codes of one image ``[H, W]`` (values 0-1) with snnTorch's ``spikegen``.

    Rate: each pixel spikes at each step with probability ``gain * intensity`` (clipped to 1).
    Latency: each pixel spikes once, brighter pixels earlier: ``spikegen.latency`` with
    ``linear=True, normalize=True`` puts a pixel of intensity x at step ``round((T - 1) * (1 - x))``,
    and ``clip=True`` silences pixels below ``threshold``. Returns ``(rate [T, H, W], latency [T, H, W])``.
    """
    from snntorch import spikegen

    x = torch.as_tensor(_np(image), dtype=torch.float32)
    torch.manual_seed(seed)
    rate = spikegen.rate(torch.clamp(x * gain, 0, 1), num_steps=num_steps)
    latency = spikegen.latency(x, num_steps=num_steps, threshold=threshold, normalize=True,
                               linear=True, clip=True)
    return rate, latency


def plot_spike_encodings(image: torch.Tensor | np.ndarray, num_steps: int = 50, gain: float = 1.0,
                         threshold: float = 0.01, seed: int = 0) -> Figure:
    """Rate and latency codes of one image (:func:`encode_digit`): a raster of each, the spike
    count per pixel of the rate code, and the spike time per pixel of the latency code."""
    rate, latency = encode_digit(image, num_steps, gain, threshold, seed)
    fig = new_figure(8, 5)
    axes = fig.subplots(2, 2, width_ratios=[3, 1])
    n = _raster_on(axes[0, 0], _np(rate).reshape(num_steps, -1), markersize=1.5)
    axes[0, 0].set_title(f"rate code, gain {gain:g}: {n} spikes", fontsize=10)
    im = axes[0, 1].imshow(_np(rate).sum(0), cmap="gray_r", vmin=0, vmax=num_steps)
    axes[0, 1].set_title("spikes per pixel", fontsize=9)
    fig.colorbar(im, ax=axes[0, 1], shrink=0.8)
    n = _raster_on(axes[1, 0], _np(latency).reshape(num_steps, -1), markersize=3)
    axes[1, 0].set_title(f"latency code, threshold {threshold:g}: {n} spikes", fontsize=10)
    lat = _np(latency)
    first = np.where(lat.any(0), lat.argmax(0), np.nan)        # step of each pixel's spike
    im = axes[1, 1].imshow(first, cmap="viridis_r", vmin=0, vmax=num_steps - 1)
    axes[1, 1].set_title("spike time (blank: none)", fontsize=9)
    fig.colorbar(im, ax=axes[1, 1], shrink=0.8)
    for ax in axes[:, 1]:
        ax.axis("off")
    return fig


def animate_spike_frames(spikes: torch.Tensor | np.ndarray, interval_ms: int = 100,
                         title: str = "") -> FuncAnimation:
    """Spikes ``[T, H, W]`` of an image played step by step: the spikes of the current step
    (left) and the spike count so far (right)."""
    s = _np(spikes).astype(float)
    counts = np.cumsum(s, axis=0)
    steps = len(s)
    fig = new_figure(5, 2.8)
    ax_now, ax_sum = fig.subplots(1, 2)
    im_now = ax_now.imshow(s[0], cmap="gray_r", vmin=-1 if s.min() < 0 else 0, vmax=1)
    im_sum = ax_sum.imshow(counts[0], cmap="gray_r", vmin=min(0.0, counts.min()), vmax=max(1.0, counts.max()))
    ax_sum.set_title("spike count so far", fontsize=9)
    for ax in (ax_now, ax_sum):
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)

    def draw(t: int):
        im_now.set_data(s[t])
        im_sum.set_data(counts[t])
        ax_now.set_title(f"spikes at step {t + 1}/{steps}", fontsize=9)
        return im_now, im_sum

    draw(0)
    _freeze_layout(fig)
    return FuncAnimation(fig, draw, frames=steps, interval=interval_ms, blit=False)


def plot_lif_trace(cur: torch.Tensor | np.ndarray, traces: dict, threshold: float = 1.0,
                   title: str = "") -> Figure:
    """Input current, membrane potential and spikes of one neuron over time.

    ``cur [T]`` is the input; ``traces`` maps a label to ``(spk [T], mem [T])`` so several
    neurons (e.g. two reset rules) can be compared on the same input. The threshold is drawn
    as a dashed line.
    """
    c = _np(cur).ravel()
    fig = new_figure(6.5, 4.6)
    ax_cur, ax_mem, ax_spk = fig.subplots(3, 1, sharex=True, height_ratios=[1, 2.2, 1])
    ax_cur.step(range(len(c)), c, where="mid", color="tab:gray")
    ax_cur.set_ylabel("input I[t]")
    for row, (label, (spk, mem)) in enumerate(traces.items()):
        line, = ax_mem.plot(_np(mem).ravel(), label=label)
        times = np.nonzero(_np(spk).ravel() > 0)[0]
        ax_spk.vlines(times, row + 0.1, row + 0.9, color=line.get_color(), linewidth=1.5)
    ax_mem.axhline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
    ax_mem.set_ylabel("membrane U[t]")
    ax_mem.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax_spk.set(yticks=[r + 0.5 for r in range(len(traces))], yticklabels=list(traces),
               ylim=(0, len(traces)), xlabel="time step", ylabel="spikes")
    for ax in (ax_cur, ax_mem):
        ax.grid(alpha=0.3)
    if title:
        ax_cur.set_title(title, fontsize=10)
    return fig


def step_current(num_steps: int = 80, current: float = 0.3, start: int = 10,
                 stop: int | None = None) -> torch.Tensor:
    """A current ``[T]`` that is ``current`` from step ``start`` until ``stop`` (default: the
    end) and 0 elsewhere."""
    cur = torch.zeros(num_steps)
    cur[start:stop] = current
    return cur


def plot_lif_response(beta: float = 0.9, threshold: float = 1.0, current: float = 0.3,
                      num_steps: int = 80, reset: str = "subtract") -> Figure:
    """Response of one LIF neuron (:func:`snn_lib.neurons.lif_sequence`) to a step current
    switched on at step 10: the drawing function of the LIF chapter's sliders."""
    from .neurons import lif_sequence

    cur = step_current(num_steps, current)
    spk, mem = lif_sequence(cur, beta=beta, threshold=threshold, reset=reset)
    n = int(spk.sum())
    return plot_lif_trace(cur, {f"reset: {reset}": (spk, mem)}, threshold,
                          title=f"beta={beta:g}, threshold={threshold:g}, I={current:g}: {n} spikes")


def plot_surrogates(slopes: Sequence[float] = (2.0, 5.0), names: Sequence[str] = ("atan", "fast_sigmoid"),
                    span: float = 2.0) -> Figure:
    """The spike as a function of ``U - threshold`` (left) and the gradients used to train
    through it (right): the Heaviside step's derivative is zero except at 0, where it is
    infinite (drawn as an arrow); each surrogate's derivative (snnTorch's, through
    :func:`snn_lib.neurons.spike_fn`) is computed here by autograd."""
    from .neurons import spike_fn

    u = torch.linspace(-span, span, 801, requires_grad=True)
    fig = new_figure(8, 3.2)
    ax_fwd, ax_grad = fig.subplots(1, 2)
    ax_fwd.plot(u.detach(), (u.detach() > 0).float(), color="black", label="Heaviside step")
    ax_fwd.set(xlabel="U - threshold", ylabel="spike S", title="forward: the spike")
    ax_grad.plot([-span, 0, 0, 0, span], [0, 0, np.nan, 0, 0], color="black", label="step: 0 (and Dirac at 0)")
    peak = 0.0
    for name in names:
        for slope in slopes:
            u.grad = None
            spike_fn(name, slope)(u).sum().backward()
            grad = u.grad.detach().numpy()
            peak = max(peak, float(grad.max()))
            ax_grad.plot(u.detach(), grad, label=f"{name}, slope {slope:g}")
    ax_grad.annotate("", xy=(0, 1.08 * peak), xytext=(0, 0), arrowprops=dict(arrowstyle="->", color="black"))
    ax_grad.set(xlabel="U - threshold", ylabel="dS/dU used in backprop", title="backward: surrogate gradients",
                ylim=(-0.05 * peak, 1.15 * peak))
    for ax in (ax_fwd, ax_grad):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def plot_spike_images(spikes: torch.Tensor | np.ndarray, steps: Sequence[int] | None = None,
                      title: str = "") -> Figure:
    """Spikes ``[T, H, W]`` of an image at a few time steps (default: up to 6, evenly spread).

    0/1 spikes are black on white; signed spikes (delta coding) are blue for ON (+1) and red for
    OFF (-1). Each panel is titled with its step and its number of spikes.
    """
    s = _np(spikes).astype(float)
    steps = list(steps) if steps is not None else sorted(set(np.linspace(0, len(s) - 1, min(len(s), 6)).astype(int)))
    signed = bool((s < 0).any())
    fig = new_figure(1.3 * len(steps), 1.8)
    axes = fig.subplots(1, len(steps), squeeze=False)[0]
    for ax, t in zip(axes, steps):
        ax.imshow(s[t], cmap="bwr_r" if signed else "gray_r", vmin=-1 if signed else 0, vmax=1)
        ax.set_title(f"t={t}: {int(np.abs(s[t]).sum())}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


# --- Book helpers: event cameras (chapter 3) and the convolutional SNN (chapter 4) -------------

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
    fig = new_figure(6.4, 4.8)
    ax = fig.add_subplot(projection="3d")
    for value, colour, name in ((1, "tab:blue", "ON"), (0, "tab:red", "OFF")):
        mine = p == value
        ax.scatter(x[mine], t[mine], y[mine], s=0.6, color=colour, alpha=0.5, label=f"{name} ({mine.sum()})",
                   depthshade=False)
    ax.set(xlabel="x (pixel)", ylabel="time (ms)", zlabel="y (pixel)")
    ax.invert_zaxis()
    ax.view_init(elev=18, azim=-62)
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
                   duration_ms: float | None = None) -> Figure:
    """The same recording as frames ``[T, 2, H, W]`` for several T: one row per T, ``columns``
    frames spread over the recording (ON minus OFF counts, blue ON, red OFF, one colour scale per
    row), and the events per frame at the right."""
    rows = len(frames_by_bins)
    fig = new_figure(1.45 * columns + 2.6, 1.6 * rows + 0.3)
    axes = fig.subplots(rows, columns + 1, squeeze=False, width_ratios=[1] * columns + [1.9])
    for row, (bins, frames) in enumerate(frames_by_bins.items()):
        f = _np(frames).astype(float)
        signed = f[:, 1] - f[:, 0]                               # [T, H, W]
        lim = max(1.0, float(np.abs(signed).max()))
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
            ax.set(xticks=range(len(counts)), xlabel="neuron")
            ax.tick_params(labelsize=7)
        ax.set_title(f"{name}: {int(counts.sum())} spikes", fontsize=9)
        active = s.reshape(len(s), -1).mean(1)
        ax_rate.plot(np.arange(1, len(s) + 1), active, marker=".", label=name)
    ax_rate.set(xlabel="time step", ylabel="fraction spiking")
    ax_rate.grid(alpha=0.3)
    ax_rate.legend(fontsize=8)
    return fig


# --- Book helpers: training on N-MNIST (chapter 5) ---------------------------------------------

def plot_per_class_accuracy(per_class: Sequence[float] | np.ndarray | torch.Tensor,
                            accuracy: float | None = None, title: str = "") -> Figure:
    """Accuracy of each class (fractions 0-1, drawn in percent) as bars with their values, and the
    overall ``accuracy`` as a dashed line when given (e.g. the result of
    :func:`snn_lib.train.evaluate`)."""
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
