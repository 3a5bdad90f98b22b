"""Figures of what a network costs (:func:`snn_lib.cost.measure_cost`): spikes per layer over
time, and synaptic operations per layer against the ANN twin's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from .base import new_figure


def plot_spike_rates(cost: dict, title: str = "") -> Figure:
    """Each layer's spike rate (spikes per neuron) at each time step, averaged over the recordings
    of ``cost``; the legend gives the layer's neurons and its rate over all steps."""
    fig = new_figure(6.5, 3.4)
    ax = fig.subplots()
    for layer in cost["layers"]:
        rate = np.asarray(layer["spikes_per_step"]) / max(layer["neurons"], 1)
        ax.plot(np.arange(1, len(rate) + 1), rate, marker=".",
                label=f"{layer['name']} ({layer['neurons']:,} neurons): {layer['spike_rate']:.3f}")
    ax.set(xlabel="time step", ylabel="spikes per neuron",
           title=title or f"spike rate per layer, mean of {cost['recordings']} recordings")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="layer: rate over all steps", title_fontsize=8)
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
        shown = np.maximum(np.asarray(values, dtype=float), 0.5)        # a zero still shows, at the bottom
        ax.bar(x + (i - (len(series) - 1) / 2) * width, shown, width, label=label)
    ax.set_yscale("log")
    ax.set(xticks=x, xticklabels=names, ylabel="operations per recording",
           title=f"synaptic operations, T = {cost['time_steps']} steps")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return fig


__all__ = ["plot_operations", "plot_spike_rates"]
