"""Figures of what a network costs (:func:`snn_lib.cost.measure_cost`): spikes per layer over
time, and synaptic operations per layer against the ANN twin's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .base import new_figure


def plot_spike_rates(cost: dict, title: str = "") -> Figure:
    """Each layer's spike rate (spikes per neuron) at each time step, averaged over the recordings
    of ``cost``; the legend gives the layer's neurons and its rate over all steps."""
    fig = new_figure(6.5, 4.0)
    ax = fig.subplots()
    for layer in cost["layers"]:
        rate = np.asarray(layer["spikes_per_step"]) / max(layer["neurons"], 1)
        ax.plot(np.arange(1, len(rate) + 1), rate, marker=".",
                label=f"{layer['name']} ({layer['neurons']:,} neurons): {layer['spike_rate']:.3f}")
    many = f"mean of {cost['recordings']} recordings" if cost["recordings"] != 1 else "one recording"
    ax.set(xlabel="time step", ylabel="spikes per neuron", title=title or f"spike rate per layer, {many}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="layer: rate over all steps", title_fontsize=8, loc="upper center",
              bbox_to_anchor=(0.5, -0.2), ncol=2)          # below the axes: never over a curve
    return fig


def plot_operations(cost: dict, names: Sequence[str] | None = None) -> Figure:
    """Operations per recording for each layer (log scale): the SNN's effective accumulates (ACs)
    and multiply-accumulates (MACs), its dense count, and the MACs of the ANN twin."""
    layers = cost["layers"]
    names = list(names or [layer["name"] for layer in layers])
    series = {"SNN effective ACs": [layer["effective_acs"] for layer in layers],
              "SNN effective MACs": [layer["effective_macs"] for layer in layers],
              "SNN dense (T steps)": [layer["dense_ops"] for layer in layers],
              "ANN twin MACs": [cost["ann_twin"]["layers"][layer["name"]] for layer in layers]}
    fig = new_figure(6.5, 3.6)
    ax = fig.subplots()
    width = 0.8 / len(series)
    x = np.arange(len(layers))
    for i, (label, values) in enumerate(series.items()):
        values = np.asarray(values, dtype=float)
        at = x + (i - (len(series) - 1) / 2) * width
        bars = ax.bar(at, np.where(values > 0, values, np.nan), width, label=label)  # no bar for none on a log axis
        for where, value in zip(at, values):
            if value == 0:                      # written "0" at the foot, where the bar would stand
                ax.text(where, 1.0, "0", ha="center", va="bottom", fontsize=7, color=bars.patches[0].get_facecolor())
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.8)
    ax.set(xticks=x, xticklabels=names, ylabel="operations per recording",
           title=f"synaptic operations, T = {cost['time_steps']} steps")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return fig


__all__ = ["plot_operations", "plot_spike_rates"]
