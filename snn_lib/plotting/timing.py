"""Figures of whether a network uses time (:mod:`snn_lib.timing`): accuracy against the number of
time bins and with the bins reordered, and the anytime accuracy with what it costs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .base import new_figure


def _seed_values(row: dict) -> list[float]:
    return [row[f"seed_{s}"] for s in row.get("seeds", [])]


def plot_time_probes(rows: Sequence[dict], full_steps: int = 25) -> Figure:
    """Left: test accuracy of networks trained and tested at each ``T`` (rows with
    ``tested_on="in order"`` and ``trained_on="bins in order"``). Right: the networks of
    ``T = full_steps`` tested in order, on shuffled and on reversed bins, and networks trained on
    shuffled bins. ``rows`` as ``scripts/use_of_time.py`` writes them: ``setting``, ``T``,
    ``trained_on``, ``tested_on``, ``mean``, ``std``, ``seeds`` and ``seed_<s>``; rows with a
    ``readout`` of ``"membrane"`` are drawn as open squares on the left. A dot per seed, a point
    for the mean, a whisker of one standard deviation."""
    fig = new_figure(8.0, 3.4)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
    membrane = [r for r in rows if r.get("readout") == "membrane"]
    rows = [r for r in rows if r.get("readout", "spike count") == "spike count"]
    by_steps = sorted((r for r in rows if r["trained_on"] == "bins in order" and r["tested_on"] == "in order"),
                      key=lambda r: r["T"])
    if by_steps:
        steps = [r["T"] for r in by_steps]
        means = np.array([r["mean"] for r in by_steps]) * 100
        stds = np.array([r["std"] for r in by_steps]) * 100
        left.errorbar(steps, means, yerr=stds, marker="o", capsize=3, label="mean +- std")
        for r in by_steps:
            values = np.array(_seed_values(r)) * 100
            left.scatter([r["T"]] * len(values), values, s=12, color="0.4", zorder=3)
        for r in membrane:
            left.errorbar([r["T"]], [r["mean"] * 100], yerr=[r["std"] * 100], marker="s", mfc="none",
                          capsize=3, color="C2", ls="none", label="read by membrane potential")
        left.legend(fontsize=7, loc="lower right")
        left.set_xscale("log")
        left.set_xticks(steps, [str(s) for s in steps])
        left.minorticks_off()
    left.set(xlabel="time bins T (trained and tested)", ylabel="test accuracy (%)", title="accuracy against T")
    left.grid(alpha=0.3)

    probes = [r for r in rows if r["T"] == full_steps and not (r["trained_on"] == "bins in order"
                                                              and r["tested_on"] == "in order")]
    reference = [r for r in by_steps if r["T"] == full_steps]
    bars = reference + probes
    short = {"in order": "order", "bins in order": "order", "shuffled bins": "shuffled"}
    labels = [f"train {short[r['trained_on']]}\ntest {short.get(r['tested_on'], r['tested_on'])}" for r in bars]
    x = np.arange(len(bars))
    for i, r in enumerate(bars):            # points, not bars: the axis does not start at 0
        color = "C0" if r["trained_on"] == "bins in order" else "C1"
        right.errorbar([i], [r["mean"] * 100], yerr=[r["std"] * 100], marker="o", capsize=3, color=color)
        values = np.array(_seed_values(r)) * 100
        right.scatter([i] * len(values), values, s=12, color="0.4", zorder=3)
    low = min([r["min"] for r in bars] + [r["min"] for r in by_steps + membrane], default=0.5) * 100
    for ax in (left, right):
        ax.set_ylim(max(0.0, low - 5), 100)
    right.set_xticks(x, labels, fontsize=7)
    right.set_xlim(-0.5, len(bars) - 0.5)
    right.set(ylabel="test accuracy (%)", title=f"T = {full_steps}, bins reordered")
    right.grid(alpha=0.3, axis="y")
    return fig


def plot_anytime(accuracy: Sequence[float], std: Sequence[float] | None = None,
                 operations: Sequence[float] | None = None, others: dict[str, Sequence[float]] | None = None,
                 title: str = "") -> Figure:
    """Anytime accuracy: the accuracy of the prediction from the first ``k`` time bins (fractions,
    one per ``k = 1 .. T``), with a band of one standard deviation (``std``) where given. With
    ``operations`` (the synaptic operations of the first ``k`` steps, one per ``k``), a second
    axis shows them as a share of the whole run's. ``others``: more accuracy curves by label."""
    fig = new_figure(6.5, 3.6)
    ax = fig.subplots()
    k = np.arange(1, len(accuracy) + 1)
    acc = np.asarray(accuracy, dtype=float) * 100
    ax.plot(k, acc, marker=".", color="C0", label="accuracy from the first k bins")
    if std is not None:
        s = np.asarray(std, dtype=float) * 100
        ax.fill_between(k, acc - s, np.minimum(acc + s, 100), color="C0", alpha=0.2, lw=0)
    for i, (label, values) in enumerate((others or {}).items()):
        ax.plot(k, np.asarray(values, dtype=float) * 100, marker=".", color=f"C{i + 2}", label=label)
    ax.set(xlabel="time bins seen, k", ylabel="test accuracy (%)", ylim=(0, 100),
           title=title or "anytime accuracy")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if operations is not None:
        ops = np.asarray(operations, dtype=float)
        twin = ax.twinx()
        twin.plot(k, 100 * ops / ops[-1], color="C3", ls="--", label="synaptic operations so far")
        twin.set(ylabel=f"operations so far, % of k = {len(ops)}", ylim=(0, 105))
        more_h, more_l = twin.get_legend_handles_labels()
        handles, labels = handles + more_h, labels + more_l
    ax.legend(handles, labels, fontsize=8, loc="lower right")
    return fig


__all__ = ["plot_anytime", "plot_time_probes"]
