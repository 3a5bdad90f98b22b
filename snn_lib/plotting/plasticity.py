"""Figures of STDP (:mod:`snn_lib.plasticity`) and of the network that learns with it
(:mod:`snn_lib.stdp_network`): the learning window, the learned receptive fields, and the accuracy
against the number of neurons (from ``benchmarks/results/stdp_digits.json``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from .base import _np, new_figure
from .training import _montage


def plot_learning_window(delta_t_ms: torch.Tensor | np.ndarray | Sequence[float],
                         windows: dict[str, torch.Tensor | np.ndarray | Sequence[float]],
                         title: str = "STDP learning window") -> Figure:
    """Weight change against ``delta_t = t_post - t_pre`` (ms), one curve per entry of ``windows``
    (name: changes); potentiation above zero (pre before post), depression below."""
    fig = new_figure(5.5, 3.4)
    ax = fig.subplots()
    dt = _np(delta_t_ms)
    for name, dw in windows.items():
        ax.plot(dt, _np(dw), marker=".", label=name)
    ax.axhline(0, color="black", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8, ls=":")
    ax.set(xlabel=r"$\Delta t = t_\mathrm{post} - t_\mathrm{pre}$ (ms)", ylabel=r"weight change $\Delta w$", title=title)
    ax.grid(alpha=0.3)
    if len(windows) > 1:
        ax.legend(fontsize=8)
    return fig


def plot_receptive_fields(W: torch.Tensor | np.ndarray, labels: Sequence[int] | torch.Tensor | None = None,
                          columns: int = 10, max_fields: int = 100, size: tuple[int, int] = (28, 28),
                          title: str = "") -> Figure:
    """Each neuron's input weights (a column of ``W [n_inputs, n_neurons]``) as a ``size`` image,
    in a grid of ``columns``; the first ``max_fields`` neurons; with ``labels``, each neuron's label
    (the class it was assigned) is written in its corner."""
    weights = _np(W).astype(np.float32)
    n = min(weights.shape[1], max_fields)
    fields = weights[:, :n].T.reshape(n, *size)                                    # [n, H, W]
    columns = min(columns, n)
    grid = _montage(fields, columns)
    rows = -(-n // columns)
    fig = new_figure(0.62 * columns + 0.6, 0.62 * rows + 0.5)
    ax = fig.subplots()
    image = ax.imshow(grid, cmap="hot_r", interpolation="nearest")
    ax.set_axis_off()
    if labels is not None:
        for i, label in enumerate(_np(labels)[:n]):
            r, k = divmod(i, columns)
            ax.text(k * (size[1] + 1) + 1, r * (size[0] + 1) + 1, str(int(label)), color="tab:blue",
                    fontsize=6, va="top", ha="left")
    fig.colorbar(image, ax=ax, shrink=0.6, label="weight")
    ax.set_title(title or f"learned input weights of {n} neurons" + (" (label in the corner)" if labels is not None else ""),
                 fontsize=9)
    return fig


def plot_accuracy_vs_neurons(rows: Sequence[dict], anchor: dict[int, float] | None = None,
                             title: str = "STDP network: held-out accuracy") -> Figure:
    """Accuracy (%) against the number of excitatory neurons from a results file's ``rows``
    (``neurons``, ``accuracy_mean``, ``accuracy_std``, ``accuracy_min``, ``accuracy_max``, ``n``,
    accuracies as fractions): the mean with the sample standard deviation as error bar and the
    range as dots; ``anchor`` (neurons: accuracy %) adds published points for comparison."""
    fig = new_figure(5.0, 3.4)
    ax = fig.subplots()
    neurons = np.array([r["neurons"] for r in rows])
    mean = 100 * np.array([r["accuracy_mean"] for r in rows])
    std = 100 * np.nan_to_num(np.array([r["accuracy_std"] for r in rows], dtype=float))
    ax.errorbar(neurons, mean, yerr=std, marker="o", capsize=3,
                label="this network (mean +- std over seeds; n = " + ", ".join(str(r["n"]) for r in rows) + ")")
    for r in rows:
        ax.plot([r["neurons"]] * 2, [100 * r["accuracy_min"], 100 * r["accuracy_max"]], ".", color="tab:blue", alpha=0.5)
    if anchor:
        ax.plot(list(anchor), list(anchor.values()), "s", color="tab:orange", label="Diehl & Cook 2015 (full MNIST)")
    ax.set_xscale("log")
    ax.set(xlabel="excitatory neurons", ylabel="accuracy (%)", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    return fig


__all__ = ["plot_accuracy_vs_neurons", "plot_learning_window", "plot_receptive_fields"]
