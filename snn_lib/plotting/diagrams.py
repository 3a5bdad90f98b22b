"""Diagrams of the book: the LIF neuron as an RC circuit (chapter 2), the network unrolled in time
with the path of backpropagation through time (chapter 2), the CSNN with its tensor shapes
(chapter 4) and one event-camera pixel's log-intensity staircase (chapter 3).

Each function returns a Figure no wider than 8.5 inches (the book's page width) and draws from its
arguments: the CSNN's shapes are computed from its channels, kernel and input size, the pixel's
events by :func:`log_intensity_events` from an intensity trace and the contrast thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Polygon

from .base import _np, new_figure

FORWARD = "black"
BACKWARD = "tab:red"
ON_COLOUR, OFF_COLOUR = "tab:blue", "tab:red"      # as in snn_lib.plotting.events


# --------------------------------------------------------------------------- drawing primitives

def _canvas(width: float, height: float, xlim: tuple[float, float], ylim: tuple[float, float]):
    """A figure with one frameless axes in data units of equal aspect (1 unit = 1 unit)."""
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    ax.set(xlim=xlim, ylim=ylim, aspect="equal")
    ax.axis("off")
    return fig, ax


def _wire(ax, *points, **kw):
    xs, ys = zip(*points)
    ax.plot(xs, ys, color=kw.pop("color", "black"), lw=kw.pop("lw", 1.6), solid_capstyle="round", **kw)


def _arrow(ax, start, end, color=FORWARD, style="-|>", lw=1.4, ls="-", rad=0.0, shrink=0.0, z=3):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color=color, lw=lw,
                                 linestyle=ls, connectionstyle=f"arc3,rad={rad}", shrinkA=shrink,
                                 shrinkB=shrink, zorder=z))


def _box(ax, xy, width, height, text="", color="black", face="white", fontsize=10, lw=1.2, **text_kw):
    """A rounded box centred at ``xy`` with ``text`` in its middle."""
    x, y = xy
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                boxstyle="round,pad=0.02,rounding_size=0.08", ec=color, fc=face, lw=lw, zorder=2))
    if text:
        ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, zorder=4, **text_kw)


def _resistor(ax, x, y_top, y_bottom, width=0.22, zigs=6):
    """A vertical zig-zag resistor between ``y_top`` and ``y_bottom`` (leads included)."""
    lead = 0.2 * (y_top - y_bottom)
    ys = np.linspace(y_top - lead, y_bottom + lead, 2 * zigs + 1)
    xs = x + width * np.array([0] + [(-1) ** i for i in range(2 * zigs - 1)] + [0])
    _wire(ax, (x, y_top), (x, y_top - lead))
    ax.plot(xs, ys, color="black", lw=1.6)
    _wire(ax, (x, y_bottom + lead), (x, y_bottom))


def _capacitor(ax, x, y_top, y_bottom, width=0.7, gap=0.24):
    """A vertical capacitor: two plates in the middle of a lead from ``y_top`` to ``y_bottom``."""
    mid = (y_top + y_bottom) / 2
    _wire(ax, (x, y_top), (x, mid + gap / 2))
    _wire(ax, (x, mid - gap / 2), (x, y_bottom))
    for y in (mid + gap / 2, mid - gap / 2):
        ax.plot([x - width / 2, x + width / 2], [y, y], color="black", lw=3, solid_capstyle="butt")


def _current_source(ax, x, y_top, y_bottom, radius=0.42):
    """A current source (a circle with an upward arrow) between two leads."""
    mid = (y_top + y_bottom) / 2
    _wire(ax, (x, y_top), (x, mid + radius))
    _wire(ax, (x, mid - radius), (x, y_bottom))
    ax.add_patch(Circle((x, mid), radius, ec="black", fc="white", lw=1.6, zorder=2))
    _arrow(ax, (x, mid - 0.6 * radius), (x, mid + 0.65 * radius), lw=1.6)


def _ground(ax, x, y):
    for i, half in enumerate((0.32, 0.2, 0.08)):
        ax.plot([x - half, x + half], [y - 0.12 * i, y - 0.12 * i], color="black", lw=1.6)


def _spike_train(ax, x0, y0, width, height, times: Sequence[float], color=FORWARD):
    """A little spike train: a baseline ``width`` long with spikes at fractions ``times`` of it."""
    ax.plot([x0, x0 + width], [y0, y0], color=color, lw=1.2)
    for f in times:
        ax.plot([x0 + f * width] * 2, [y0, y0 + height], color=color, lw=1.8)


# --------------------------------------------------------------------------- chapter 2: RC circuit

def plot_lif_circuit() -> Figure:
    """The leaky integrate-and-fire neuron as an RC circuit.

    A current source drives ``I(t)`` into the membrane: a capacitor ``C`` (charged by
    ``I_C = C dU/dt``) in parallel with a leak resistor ``R`` (``I_R = U/R``); ``U(t)`` is the
    potential across both. Kirchhoff's current law at the top node, ``I = C dU/dt + U/R``, is
    ``tau dU/dt = -U + R I`` with ``tau = RC``. On the right, the threshold: when ``U`` reaches
    ``theta`` the neuron emits a spike and its potential is lowered by ``theta``.
    """
    fig, ax = _canvas(8.5, 3.4, (-0.9, 12.4), (-1.0, 4.3))
    top, bottom = 3.2, 0.0
    xs, xc, xr, xu = 0.6, 3.0, 5.3, 7.1                 # source, capacitor, resistor, U terminal

    _current_source(ax, xs, top, bottom)
    ax.text(xs - 0.6, 1.6, "$I(t)$", ha="right", va="center", fontsize=13)
    ax.text(xs - 0.6, 1.05, "input\ncurrent", ha="right", va="top", fontsize=9.5, color="0.3")
    _wire(ax, (xs, top), (xu, top))
    _wire(ax, (xs, bottom), (xu, bottom))
    ax.plot([xc, xr], [top, top], "o", color="black", ms=4)
    ax.plot([xc, xr], [bottom, bottom], "o", color="black", ms=4)
    _wire(ax, (4.15, bottom), (4.15, bottom - 0.3))
    _ground(ax, 4.15, bottom - 0.3)
    ax.plot(4.15, bottom, "o", color="black", ms=4)
    _arrow(ax, (1.5, top), (2.3, top), lw=1.4)          # I flows in along the top wire
    ax.text(1.9, top + 0.15, "$I$", ha="center", va="bottom", fontsize=11)

    _capacitor(ax, xc, top, bottom)
    ax.text(xc - 0.55, 1.6, "$C$", ha="right", va="center", fontsize=13)
    _arrow(ax, (xc + 0.5, 2.55), (xc + 0.5, 1.95), lw=1.2)
    ax.text(xc + 0.65, 2.25, r"$I_C = C\,\dfrac{dU}{dt}$", ha="left", va="center", fontsize=10.5)
    ax.text(xc, -0.55, "membrane\n(lipid bilayer)", ha="center", va="top", fontsize=9.5, color="0.3")

    _resistor(ax, xr, top, bottom)
    ax.text(xr - 0.4, 1.6, "$R$", ha="right", va="center", fontsize=13)
    _arrow(ax, (xr + 0.5, 2.55), (xr + 0.5, 1.95), lw=1.2)
    ax.text(xr + 0.65, 2.25, r"$I_R = \dfrac{U}{R}$", ha="left", va="center", fontsize=10.5)
    ax.text(xr, -0.55, "leak\n(ion channels)", ha="center", va="top", fontsize=9.5, color="0.3")

    for y, sign in ((top, "+"), (bottom, "\u2212")):
        ax.add_patch(Circle((xu, y), 0.1, ec="black", fc="white", lw=1.4, zorder=3))
        ax.text(xu + 0.2, y + (0.2 if y == top else -0.2), sign, ha="left", va="center", fontsize=11)
    _arrow(ax, (xu, bottom + 0.25), (xu, top - 0.25), style="<|-|>", lw=1.2)
    ax.text(xu + 0.2, 1.6, "$U(t)$", ha="left", va="center", fontsize=13)

    # threshold and spike
    _wire(ax, (xu, top), (8.6, top), ls=(0, (3, 2)), lw=1.2, color="0.35")
    _box(ax, (9.65, top), 2.1, 0.95, r"$U \geq \theta\ ?$", fontsize=12)
    _arrow(ax, (10.7, top), (11.2, top), lw=1.4)
    _spike_train(ax, 11.25, top - 0.25, 1.05, 0.7, (0.25, 0.6, 0.85))
    ax.text(11.78, top - 0.4, "spikes $S$", ha="center", va="top", fontsize=10)
    _arrow(ax, (9.65, top - 0.5), (8.2, 1.6), lw=1.2, color="0.35", rad=-0.35)
    ax.text(9.35, 1.45, "after a spike:\n$U \\leftarrow U - \\theta$\n(reset by subtraction)", ha="left",
            va="top", fontsize=9.5, color="0.2")
    return fig


# --------------------------------------------------------------------------- chapter 2: BPTT

def plot_bptt_unrolled(surrogate: str = "atan", slope: float = 2.0) -> Figure:
    """One LIF layer unrolled over steps ``t-1, t, t+1``: the forward pass in black, the backward
    pass of backpropagation through time in red, and (right) the spike's derivative that the
    backward pass needs, zero for the step and replaced by a surrogate.

    Forward: ``I[t] = W X[t]``, ``U[t] = beta U[t-1] + I[t] - S[t-1] theta``,
    ``S[t] = H(U[t] - theta)``, and the loss ``L`` of the spike counts ``sum_t S[t]``. Backward:
    ``dL/dS[t]`` reaches ``U[t]`` only through ``dS/dU`` (the surrogate), flows back in time
    through ``beta`` and adds up in the shared weights ``W``. The reset is drawn dotted: snnTorch
    (and :func:`snn_lib.neurons.lif_step`) detach it, so no gradient flows through it. The
    surrogate panel is :func:`snn_lib.neurons.spike_fn` ``(surrogate, slope)``'s gradient,
    computed by autograd.
    """
    import torch

    from ..neurons import spike_fn

    fig = new_figure(8.5, 4.3)
    grid = fig.add_gridspec(2, 2, width_ratios=[3.6, 1], height_ratios=[1, 1])
    ax = fig.add_subplot(grid[:, 0])
    ax.set(xlim=(-1.3, 10.3), ylim=(-0.75, 7.0), aspect="equal")
    ax.axis("off")

    cols = {"t-1": 1.4, "t": 4.9, "t+1": 8.4}
    y_x, y_w, y_u, y_s, y_l = 0.0, 1.55, 3.1, 4.75, 6.35
    r = 0.8                                             # radius of a membrane's circle
    for name, x in cols.items():
        step = f"[{name}]"
        ax.text(x, y_x, f"$X{step}$", ha="center", va="center", fontsize=11,
                bbox=dict(boxstyle="round,pad=0.25", fc="0.93", ec="0.5"))
        ax.add_patch(Circle((x, y_u), r, ec="black", fc="white", lw=1.4, zorder=2))
        ax.text(x, y_u, f"$U{step}$", ha="center", va="center", fontsize=10.5, zorder=4)
        _box(ax, (x, y_s), 1.3, 0.7, f"$S{step}$", fontsize=11)
        _arrow(ax, (x - 0.25, y_x + 0.35), (x - 0.25, y_u - r + 0.04))               # X -> U through W
        ax.text(x - 0.35, y_w, "$W$", ha="right", va="center", fontsize=11)
        _arrow(ax, (x - 0.25, y_u + r - 0.04), (x - 0.25, y_s - 0.35))               # U -> S: the step H
        ax.text(x - 0.4, (y_u + y_s) / 2 + 0.05, "$H$", ha="right", va="center", fontsize=10.5)
        _arrow(ax, (x - 0.25, y_s + 0.35), (x - 0.25, y_l - 0.42))               # S -> loss
        # backward: loss -> S -> (surrogate) -> U -> W, to the right of the forward arrows
        _arrow(ax, (x + 0.25, y_l - 0.42), (x + 0.25, y_s + 0.35), color=BACKWARD, ls="--")
        _arrow(ax, (x + 0.25, y_s - 0.35), (x + 0.25, y_u + r - 0.04), color=BACKWARD, ls="--")
        ax.text(x + 0.38, (y_u + y_s) / 2 + 0.05, r"$\tilde{\sigma}'$", ha="left", va="center",
                fontsize=11, color=BACKWARD)
        _arrow(ax, (x + 0.25, y_u - r + 0.04), (x + 0.25, y_w - 0.2), color=BACKWARD, ls="--")
        ax.text(x + 0.38, y_w - 0.1, r"$\partial L/\partial W$", ha="left", va="center", fontsize=10.5,
                color=BACKWARD)

    _box(ax, ((cols["t-1"] + cols["t+1"]) / 2, y_l + 0.05), 8.7, 0.8,
         r"loss $L$ of the spike counts $\Sigma_t\, S[t]$", fontsize=10.5)
    for a, b in (("t-1", "t"), ("t", "t+1")):
        xa, xb = cols[a], cols[b]
        _arrow(ax, (xa + r, y_u + 0.18), (xb - r, y_u + 0.18))              # U[t-1] -> U[t]
        ax.text((xa + xb) / 2, y_u + 0.3, r"$\beta$", ha="center", va="bottom", fontsize=11)
        _arrow(ax, (xb - r, y_u - 0.2), (xa + r, y_u - 0.2), color=BACKWARD, ls="--")
        ax.text((xa + xb) / 2, y_u - 0.32, r"$\beta$", ha="center", va="top", fontsize=11, color=BACKWARD)
        _arrow(ax, (xa + 0.66, y_s - 0.15), (xb - 0.62, y_u + 0.55), color="0.45", ls=":", lw=1.3)
        ax.text((xa + xb) / 2 + 0.1, (y_u + y_s) / 2 + 0.38, r"$-\theta$", ha="center", va="bottom",
                fontsize=10, color="0.35")
    _arrow(ax, (cols["t-1"] - 1.5, y_u + 0.18), (cols["t-1"] - r, y_u + 0.18), color="0.6")
    _arrow(ax, (cols["t+1"] + r, y_u + 0.18), (cols["t+1"] + 1.5, y_u + 0.18), color="0.6")
    ax.text(-0.75, y_u - 0.45, "from\n$U[t-2]$", ha="center", va="top", fontsize=9.5, color="0.4")
    ax.text(9.55, y_u - 0.45, "to\n$U[t+2]$", ha="center", va="top", fontsize=9.5, color="0.4")
    handles = [ax.plot([], [], color=FORWARD, lw=1.4, label="forward")[0],
               ax.plot([], [], color=BACKWARD, lw=1.4, ls="--", label="backward (BPTT)")[0],
               ax.plot([], [], color="0.45", lw=1.3, ls=":", label="reset (no gradient)")[0]]
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, -0.09), ncol=3, fontsize=10,
              frameon=False)

    # the spike's derivative: zero for the step, a surrogate bump in the backward pass
    u = torch.linspace(-2, 2, 401, requires_grad=True)
    spike_fn(surrogate, slope)(u).sum().backward()
    grad = u.grad.numpy()
    ax_f = fig.add_subplot(grid[0, 1])
    ax_f.plot([-2, 0, 0, 2], [0, 0, 1, 1], color=FORWARD, lw=1.6)
    ax_f.set_title(r"forward: $S = H(U-\theta)$", fontsize=10)
    ax_g = fig.add_subplot(grid[1, 1], sharex=ax_f)
    ax_g.plot([-2, 2], [0, 0], color=FORWARD, lw=1.6, label=r"step: 0 for $U \neq \theta$")
    ax_g.plot(u.detach().numpy(), grad, color=BACKWARD, lw=1.6, label=rf"surrogate $\tilde{{\sigma}}'$ ({surrogate})")
    ax_g.set_title(r"backward: $\partial S/\partial U$", fontsize=10)
    ax_g.set_xlabel(r"$U - \theta$", fontsize=10)
    ax_g.legend(fontsize=8.5, loc="upper left", frameon=False, handlelength=1.0, borderaxespad=0.2)
    ax_g.set_ylim(-0.05 * grad.max(), 1.45 * grad.max())
    for a in (ax_f, ax_g):
        a.tick_params(labelsize=8.5)
        a.grid(alpha=0.3)
    return fig


# --------------------------------------------------------------------------- chapter 4: the CSNN

def csnn_shapes(channels: tuple[int, int] = (12, 64), kernel_size: int = 5, input_size: int = 34,
                num_classes: int = 10) -> list[tuple[str, str]]:
    """The CSNN's stages and the shape of what each one outputs, as ``(stage, shape)`` strings.

    ``T`` time steps and ``B`` recordings of a batch lead every shape; ``(12, 64), 5, 34`` is the
    CSNN of the book (1,600 features into the fully connected layer), ``input_size=28`` its
    cropped variant (1,024).
    """
    from ..model import flat_features

    c1, c2 = channels
    k = kernel_size
    flat = flat_features(input_size, c2, k)            # refuses inputs too small for two stages
    conv1 = input_size - k + 1
    pool1 = conv1 // 2
    conv2 = pool1 - k + 1
    pool2 = conv2 // 2

    def shape(*dims) -> str:
        return "[" + ",".join(["T", "B", *map(str, dims)]) + "]"

    return [
        (f"input\n{input_size}\u00d7{input_size}, ON/OFF", shape(2, input_size, input_size)),
        (f"conv {k}\u00d7{k}\n2\u2192{c1}", shape(c1, conv1, conv1)),
        ("max pool\n2\u00d72", shape(c1, pool1, pool1)),
        ("LIF\nspikes", shape(c1, pool1, pool1)),
        (f"conv {k}\u00d7{k}\n{c1}\u2192{c2}", shape(c2, conv2, conv2)),
        ("max pool\n2\u00d72", shape(c2, pool2, pool2)),
        ("LIF\nspikes", shape(c2, pool2, pool2)),
        (f"flatten\n{c2}\u00b7{pool2}\u00b7{pool2} = {flat}", shape(flat)),
        (f"fully connected\n{flat}\u2192{num_classes}", shape(num_classes)),
        ("LIF\noutput spikes", shape(num_classes)),
        ("spike counts\nsum over T", f"[B,{num_classes}]"),
        ("argmax\npredicted class", "[B]"),
    ]


def plot_csnn_diagram(channels: tuple[int, int] = (12, 64), kernel_size: int = 5, input_size: int = 34,
                      num_classes: int = 10) -> Figure:
    """The CSNN as a pipeline of boxes, each naming a stage and the shape of its output
    (:func:`csnn_shapes`), in two rows: the convolutional part, then the classifier."""
    stages = csnn_shapes(channels, kernel_size, input_size, num_classes)
    per_row = 6
    width, height, step = 1.26, 1.05, 1.42
    fig, ax = _canvas(8.5, 3.5, (-0.2, per_row * step - 0.02), (-0.25, 3.45))
    faces = {"conv": "#dbe9f6", "max ": "#e8e8e8", "LIF\n": "#fde3c8", "fully": "#dbe9f6"}
    centres = []
    for i, (name, shape) in enumerate(stages):
        row, col = divmod(i, per_row)
        x, y = col * step + width / 2 + 0.05, 2.55 - row * 1.85
        centres.append((x, y))
        face = next((c for key, c in faces.items() if name.startswith(key)), "white")
        _box(ax, (x, y), width, height, face=face)
        ax.text(x, y + 0.17, name, ha="center", va="center", fontsize=9.5, linespacing=1.15, zorder=4)
        ax.text(x, y - 0.33, shape, ha="center", va="center", fontsize=8.5, family="monospace", zorder=4,
                color="0.15")
    for i in range(len(centres) - 1):
        (xa, ya), (xb, yb) = centres[i], centres[i + 1]
        if ya == yb:
            _arrow(ax, (xa + width / 2, ya), (xb - width / 2, yb), lw=1.3)
        else:                                            # end of a row: down, back to the left, down
            middle = (ya - height / 2 + yb + height / 2) / 2
            _wire(ax, (xa, ya - height / 2), (xa, middle), (xb, middle), lw=1.3)
            _arrow(ax, (xb, middle), (xb, yb + height / 2), lw=1.3)
    ax.text(0.05, -0.2, "shapes: time steps T, batch B, then channels \u00d7 height \u00d7 width",
            ha="left", va="center", fontsize=9.5, color="0.35")
    return fig


# --------------------------------------------------------------------------- chapter 3: one pixel

def log_intensity_events(t: Sequence[float] | np.ndarray, intensity: Sequence[float] | np.ndarray,
                         threshold_on: float = 0.3, threshold_off: float = 0.3
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The events of one ideal event-camera pixel watching ``intensity`` (> 0) at times ``t``.

    The pixel keeps a reference level, the log intensity at its last event (at first ``ln
    intensity[0]``). Whenever ``ln I - ref >= threshold_on`` it emits an ON event and raises the
    reference by ``threshold_on``; whenever ``ref - ln I >= threshold_off``, an OFF event, and
    lowers it by ``threshold_off``. Between samples ``ln I`` is taken as linear, so an event's time
    is where that line crosses the new level. No noise, refractory period or low-pass filter (the
    simulator of :mod:`snn_lib.data.simulator` adds them).

    Returns ``(times, polarities)``: event times (the unit of ``t``) in order, and polarities as in
    N-MNIST files, 1 for ON and 0 for OFF.
    """
    t = np.asarray(_np(t), dtype=float)
    intensity = np.asarray(_np(intensity), dtype=float)
    if t.ndim != 1 or t.shape != intensity.shape or len(t) < 2:
        raise ValueError(f"t {t.shape} and intensity {intensity.shape}: expected two 1-D traces of equal length >= 2")
    if not (intensity > 0).all():
        raise ValueError("intensity must be positive everywhere (its logarithm is what the pixel compares)")
    if np.any(np.diff(t) <= 0):
        raise ValueError("t must increase strictly")
    if threshold_on <= 0 or threshold_off <= 0:
        raise ValueError(f"thresholds {threshold_on}, {threshold_off}: expected positive log contrasts, e.g. 0.3")
    log_i = np.log(intensity)
    ref = log_i[0]
    times: list[float] = []
    polarities: list[int] = []
    for k in range(1, len(t)):
        a, b = log_i[k - 1], log_i[k]
        while b - ref >= threshold_on or ref - b >= threshold_off:
            level = ref + threshold_on if b > ref else ref - threshold_off
            times.append(t[k - 1] + (level - a) / (b - a) * (t[k] - t[k - 1]))
            polarities.append(1 if b > ref else 0)
            ref = level
    return np.asarray(times, dtype=float), np.asarray(polarities, dtype=np.int64)


def _dark_stroke(num: int = 401) -> tuple[np.ndarray, np.ndarray]:
    """A pixel that sees a dark stroke pass on a bright screen (as in N-MNIST): ms and intensity."""
    t = np.linspace(0.0, 100.0, num)
    return t, 1.0 - 0.85 * np.exp(-(((t - 45.0) / 14.0) ** 2))


def plot_log_intensity_events(t: Sequence[float] | np.ndarray | None = None,
                              intensity: Sequence[float] | np.ndarray | None = None,
                              threshold_on: float = 0.3, threshold_off: float = 0.3,
                              time_unit: str = "ms") -> Figure:
    """One pixel of an event camera: its log intensity, the reference level that steps by a
    contrast threshold at each event, and the ON and OFF events below.

    The events are :func:`log_intensity_events` of ``t`` and ``intensity``; without them the pixel
    sees a dark stroke pass over a bright screen (100 ms), as a pixel of N-MNIST does.
    """
    if t is None or intensity is None:
        t, intensity = _dark_stroke()
    t = np.asarray(_np(t), dtype=float)
    intensity = np.asarray(_np(intensity), dtype=float)
    times, pols = log_intensity_events(t, intensity, threshold_on, threshold_off)
    log_i = np.log(intensity)
    steps = np.where(pols == 1, threshold_on, -threshold_off)
    levels = log_i[0] + np.concatenate([[0.0], np.cumsum(steps)])            # reference after each event

    fig = new_figure(8.0, 4.0)
    ax, ax_ev = fig.subplots(2, 1, sharex=True, gridspec_kw=dict(height_ratios=[3, 1]))
    ax.plot(t, log_i, color="black", lw=1.8, label=r"log intensity $\ln I(t)$")
    edges = np.concatenate([[t[0]], times, [t[-1]]])
    ax.step(edges, np.concatenate([levels, levels[-1:]]), where="post", color="0.45", lw=1.3, ls="--",
            label=rf"reference level: up $\theta_{{ON}}$ = {threshold_on:g}, down $\theta_{{OFF}}$ = {threshold_off:g}")
    for when, p, before, after in zip(times, pols, levels[:-1], levels[1:]):
        colour = ON_COLOUR if p == 1 else OFF_COLOUR
        ax.plot([when, when], [before, after], color=colour, lw=2.2)
        ax.plot(when, after, "o", color=colour, ms=4)
    if len(times):                  # name the last step, on its right, where the staircase has ended
        p = pols[-1]
        name, size = (r"$\theta_{ON}$", threshold_on) if p == 1 else (r"$\theta_{OFF}$", threshold_off)
        ax.annotate(f"{name} = {size:g}", xy=(times[-1], (levels[-2] + levels[-1]) / 2), xytext=(6, 0),
                    textcoords="offset points", ha="left", va="center", fontsize=9.5, color="0.2")
    ax.set_ylabel(r"$\ln I$ (log units)")
    ax.legend(fontsize=8.5, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    ax.grid(alpha=0.3)

    on, off = times[pols == 1], times[pols == 0]
    ax_ev.vlines(on, 0, 1, color=ON_COLOUR, lw=2, label=f"ON ({len(on)})")
    ax_ev.vlines(off, -1, 0, color=OFF_COLOUR, lw=2, label=f"OFF ({len(off)})")
    ax_ev.axhline(0, color="0.6", lw=0.8)
    ax_ev.set(ylim=(-1.3, 1.3), yticks=[], xlabel=f"time ({time_unit})", ylabel="events")
    ax_ev.legend(fontsize=8.5, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax_ev.set_xlim(t[0], t[-1])
    return fig
