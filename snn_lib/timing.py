"""Does a network use the order of its time bins? Bins shuffled or reversed, and anytime readout.

Three probes of what a network takes from time (chapter 8 of the book runs them):

* **shuffled bins**: each recording's ``T`` frames in a random order of its own (a fixed
  permutation per recording, drawn from ``seed``). The frames, and so every event, are all
  still there; only their order is gone. A network that reads order loses accuracy.
* **reversed bins**: the frames last to first, one order for every recording.
* **anytime readout**: the prediction from the first ``k`` bins, for ``k = 1 .. T``. The
  network is causal (its output at step ``t`` depends on the frames up to ``t`` only), so the
  spike counts of a run on ``frames[:k]`` are the counts of the full run summed up to step
  ``k``: one forward pass gives every ``k``.

Frames here are laid out as :func:`snn_lib.data.dataset.load_split` holds them, ``[N, T, 2, H, W]``
(recording first), unless a function says ``[T, B, ...]``.

::

    frames, labels = load_split(cfg.data, "test")
    shuffled = shuffle_bins(frames, seed=0)                 # [N, T, 2, H, W]
    curve = anytime_accuracy(model, FrameLoader(frames, labels, 256))   # [T]
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .cost import CONNECTION_LAYERS, is_spike_input, measure_cost, synaptic_ops
from .data import FrameLoader


def bin_permutations(n: int, steps: int, seed: int) -> torch.Tensor:
    """One random order of ``steps`` time bins for each of ``n`` recordings, ``[n, steps]``
    int64; the same ``seed`` gives the same orders."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, steps, generator=g).argsort(dim=1)


def permute_bins(frames: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """``frames [N, T, ...]`` with recording ``i``'s bins in the order ``order[i]`` (``[N, T]``):
    ``out[i, t] = frames[i, order[i, t]]``."""
    if order.shape != frames.shape[:2]:
        raise ValueError(f"order has shape {tuple(order.shape)}, expected (N, T) = {tuple(frames.shape[:2])}")
    index = order.to(frames.device).view(*order.shape, *[1] * (frames.dim() - 2)).expand_as(frames)
    return frames.gather(1, index)


def shuffle_bins(frames: torch.Tensor, seed: int) -> torch.Tensor:
    """``frames [N, T, ...]`` with each recording's time bins in a random order of its own
    (:func:`bin_permutations` from ``seed``)."""
    return permute_bins(frames, bin_permutations(frames.shape[0], frames.shape[1], seed))


def reverse_bins(frames: torch.Tensor) -> torch.Tensor:
    """``frames [N, T, ...]`` with every recording's time bins last to first."""
    return frames.flip(1)


def cumulative_predictions(spk: torch.Tensor) -> torch.Tensor:
    """The class with most output spikes from the first ``k`` steps, for every ``k``:
    ``spk [T, B, C]`` -> ``[T, B]`` (row ``k - 1`` is the prediction after ``k`` steps; ties go
    to the lowest class, as :func:`snn_lib.model.predict`)."""
    return spk.float().cumsum(0).argmax(-1)


def tied_readouts(spk: torch.Tensor) -> torch.Tensor:
    """Where the spike-count readout has no single winner: ``spk [T, B, C]`` -> ``[B]`` bool,
    True where two or more classes share the largest count (no output spike at all included).
    With few steps each output neuron can spike only a few times, and ties become common: the
    prediction then goes to the lowest tied class."""
    counts = spk.sum(0)                                          # [B, C]
    return (counts == counts.max(-1, keepdim=True).values).sum(-1) > 1


@torch.no_grad()
def anytime_predictions(model: torch.nn.Module, loader: Iterable) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions after each number of steps on every recording of ``loader`` (batches of
    ``(frames [T, B, ...], labels [B])``): ``(predictions [T, N], labels [N])``. One forward
    pass per batch: the model is causal, so the counts up to step ``k`` are those of a run on
    ``frames[:k]``."""
    device = next(model.parameters()).device
    model.eval()
    preds, labels = [], []
    for frames, batch_labels in loader:
        spk, _ = model(frames.to(device))                         # [T, B, C]
        preds.append(cumulative_predictions(spk).cpu())           # [T, B]
        labels.append(batch_labels.cpu())
    return torch.cat(preds, dim=1), torch.cat(labels)


def anytime_accuracy(model: torch.nn.Module, loader: Iterable) -> torch.Tensor:
    """Accuracy of the prediction from the first ``k`` steps, ``k = 1 .. T``: ``[T]`` float."""
    preds, labels = anytime_predictions(model, loader)             # [T, N], [N]
    return (preds == labels).float().mean(dim=1)


def prefix_cost(model: torch.nn.Module, frames: torch.Tensor, labels: torch.Tensor, steps: int,
                batch_size: int = 256) -> dict:
    """:func:`snn_lib.cost.measure_cost` of the network stopped after ``steps`` time bins:
    run on ``frames[:, :steps]`` (``frames [N, T, ...]``). Per recording."""
    return measure_cost(model, FrameLoader(frames[:, :steps], labels, batch_size))


@torch.no_grad()
def cost_per_step(model: torch.nn.Module, loader: Iterable) -> dict:
    """What each time step costs, per recording, counted as :func:`snn_lib.cost.measure_cost`
    counts it: ``{"effective_acs", "effective_macs", "spikes"}``, each a list of ``T`` numbers
    (the whole network's synaptic operations on spike inputs, on other inputs, and its spikes at
    step ``t``). The network is causal, so stopping after ``k`` steps costs the sum of the first
    ``k`` (:func:`prefix_cost` counts it by running ``frames[:k]``). One pass of the per-step
    forward (``forward_reference``)."""
    import snntorch as snn
    model.eval()
    device = next(model.parameters()).device
    synapses = [m for m in model.modules() if isinstance(m, CONNECTION_LAYERS)]
    neurons = [m for m in model.modules() if isinstance(m, snn.SpikingNeuron)]
    totals = {"effective_acs": {}, "effective_macs": {}, "spikes": {}}
    calls: dict[int, int] = {}                       # layer -> calls in this batch: its time step

    def add(key: str, layer: torch.nn.Module, value: float) -> None:
        step = calls[id(layer)] = calls.get(id(layer), -1) + 1
        totals[key][step] = totals[key].get(step, 0.0) + value

    def on_synapse(layer, inputs):
        x = inputs[0]                                               # [B, ...] one time step
        effective, _ = synaptic_ops(layer, x)
        spiking = is_spike_input(x)
        add("effective_acs", layer, float(effective[spiking].sum()))
        calls[id(layer)] -= 1                                       # one step, two counts
        add("effective_macs", layer, float(effective[~spiking].sum()))

    def on_neuron(neuron, inputs, output):
        add("spikes", neuron, float((output[0] != 0).sum()))

    handles = [m.register_forward_pre_hook(on_synapse) for m in synapses]
    handles += [m.register_forward_hook(on_neuron) for m in neurons]
    forward = getattr(model, "forward_reference", model)
    recordings = 0
    try:
        for frames, *_ in loader:
            calls.clear()
            forward(frames.to(device))                              # [T, B, ...]
            recordings += frames.shape[1]
    finally:
        for handle in handles:
            handle.remove()
    return {key: [by_step[t] / max(recordings, 1) for t in sorted(by_step)] for key, by_step in totals.items()}


__all__ = ["cost_per_step", "tied_readouts", "anytime_accuracy", "anytime_predictions", "bin_permutations", "cumulative_predictions",
           "permute_bins", "prefix_cost", "reverse_bins", "shuffle_bins"]
