"""Figures of spike encoding (chapter 1) and of the LIF neuron (chapter 2): digits, raster plots,
spike codes, membrane traces and surrogate gradients."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.animation import FuncAnimation
from matplotlib.figure import Figure

from ..encoding import encode_digit
from ..neurons import step_current
from .base import _freeze_layout, _np, new_figure


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


def plot_raster(spikes: torch.Tensor | np.ndarray, title: str = "", markersize: float | None = None) -> Figure:
    """A raster plot of ``spikes [T, ...]``: all but the time axis are flattened into neurons.

    A dot at (t, n) marks a spike of neuron n at step t; negative values (OFF spikes of delta
    coding) are drawn in red. ``markersize`` (points squared) defaults to small dots for hundreds
    of neurons and larger ones for a few dozen, so that both stay readable.
    """
    s = _np(spikes)
    s = s.reshape(s.shape[0], -1)                              # [T, N]
    if markersize is None:
        markersize = float(np.clip(2000 / s.shape[1], 2.0, 60.0))
    fig = new_figure(6, 3.2)
    _raster_on(fig.subplots(), s, title, markersize)
    return fig


def plot_spike_encodings(image: torch.Tensor | np.ndarray, num_steps: int = 50, gain: float = 1.0,
                         threshold: float = 0.01, seed: int = 0) -> Figure:
    """Rate and latency codes of one image (:func:`snn_lib.encoding.encode_digit`): a raster of each, the spike
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
    aspect = s.shape[2] / s.shape[1]              # a wide image (two codes side by side) gets a wider figure
    fig = new_figure(min(8.5, 2.5 + 2.5 * aspect), 2.8)
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
    long = len(c) > 150              # a long trace gets the page's full width and thinner lines
    fig = new_figure(8.5 if long else 6.5, 5.4 if long else 4.6)
    ax_cur, ax_mem, ax_spk = fig.subplots(3, 1, sharex=True, height_ratios=[1, 2.2, 1])
    ax_cur.step(range(len(c)), c, where="mid", color="tab:gray", linewidth=0.8 if long else 1.5)
    ax_cur.set_ylabel("input I[t]")
    for row, (label, (spk, mem)) in enumerate(traces.items()):
        line, = ax_mem.plot(_np(mem).ravel(), label=label, linewidth=0.9 if long else 1.5)
        times = np.nonzero(_np(spk).ravel() > 0)[0]
        ax_spk.vlines(times, row + 0.1, row + 0.9, color=line.get_color(), linewidth=1 if long else 1.5)
    ax_mem.axhline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
    ax_mem.set_ylabel("membrane U[t]")
    if long:                         # the legend above the plot, so that the time axis keeps the width
        ax_mem.legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(traces) + 1,
                      frameon=False, borderaxespad=0.1)
        ax_cur.set_xlim(0, len(c) - 1)
    else:
        ax_mem.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax_spk.set(yticks=[r + 0.5 for r in range(len(traces))], yticklabels=list(traces),
               ylim=(0, len(traces)), xlabel="time step", ylabel="spikes")
    for ax in (ax_cur, ax_mem):
        ax.grid(alpha=0.3)
    if title:
        ax_cur.set_title(title, fontsize=10)
    return fig


def plot_lif_response(beta: float = 0.9, threshold: float = 1.0, current: float = 0.3,
                      num_steps: int = 80, reset: str = "subtract") -> Figure:
    """Response of one LIF neuron (:func:`snn_lib.neurons.lif_sequence`) to a step current
    switched on at step 10: the drawing function of the LIF chapter's sliders."""
    from ..neurons import lif_sequence

    cur = step_current(num_steps, current)
    spk, mem = lif_sequence(cur, beta=beta, threshold=threshold, reset=reset)
    n = int(spk.sum())
    return plot_lif_trace(cur, {f"reset: {reset}": (spk, mem)}, threshold,
                          title=f"beta={beta:g}, threshold={threshold:g}, I={current:g}: {n} spikes")


def plot_fi_curve(currents: torch.Tensor | np.ndarray, rates: dict, lines: dict | None = None,
                  rheobase: float | None = None, title: str = "") -> Figure:
    """Firing rate against a constant input current (an F-I curve).

    ``rates`` maps a label to the rates ``[N]`` measured at ``currents [N]`` (drawn as dots);
    ``lines`` maps a label to rates computed from a formula (drawn as lines, ``nan`` where
    undefined); ``rheobase``, the smallest current that makes the neuron fire, is drawn as a
    dashed vertical line.
    """
    i = _np(currents).ravel()
    fig = new_figure(6.5, 3.6)
    ax = fig.subplots()
    for label, curve in (lines or {}).items():
        ax.plot(i, _np(curve).ravel(), linewidth=1.6, label=label)
    for label, rate in rates.items():
        ax.plot(i, _np(rate).ravel(), "o", markersize=3, label=label)
    if rheobase is not None:
        ax.axvline(rheobase, color="black", linestyle="--", linewidth=1,
                   label=f"rheobase {rheobase:.3g}")
    ax.set(xlabel="constant input current I", ylabel="firing rate (spikes per step)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", framealpha=1)   # below the rising curve, clear of the rheobase
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_surrogates(slopes: Sequence[float] = (2.0, 5.0), names: Sequence[str] = ("atan", "fast_sigmoid"),
                    span: float = 2.0) -> Figure:
    """The spike as a function of ``U - threshold`` (left) and the gradients used to train
    through it (right): the Heaviside step's derivative is zero except at 0, where it is
    infinite (drawn as an arrow); each surrogate's derivative (snnTorch's, through
    :func:`snn_lib.neurons.spike_fn`) is computed here by autograd."""
    from ..neurons import spike_fn

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
                      title: str = "", columns: int = 3) -> Figure:
    """Spikes ``[T, H, W]`` of an image at a few time steps (default: up to 6, evenly spread), in
    rows of ``columns`` panels (three: each panel about a third of the page's column wide).

    0/1 spikes are black on white; signed spikes (delta coding) are blue for ON (+1) and red for
    OFF (-1). Each panel is titled with its step and its number of spikes.
    """
    s = _np(spikes).astype(float)
    steps = list(steps) if steps is not None else sorted(set(np.linspace(0, len(s) - 1, min(len(s), 6)).astype(int)))
    signed = bool((s < 0).any())
    columns = min(columns, len(steps))
    rows = -(-len(steps) // columns)
    fig = new_figure(2.2 * columns, 2.1 * rows + (0.3 if title else 0))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(steps):]:
        ax.remove()
    for ax, t in zip(axes, steps):
        ax.imshow(s[t], cmap="bwr_r" if signed else "gray_r", vmin=-1 if signed else 0, vmax=1)
        ax.set_title(f"t={t}: {int(np.abs(s[t]).sum())}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
