"""What a trained network costs: spikes, sparsity, synaptic operations, neuron updates, parameters.

The definitions are NeuroBench's (Yik et al. 2025; the ``neurobench`` package's workload and
static metrics), computed here without it so that ``snn-eval`` needs no extra dependency;
``tests/test_cost.py`` checks them against NeuroBench where it is installed. Counted over the
evaluated recordings and divided by their number (per recording, as NeuroBench reports them):

* **spike rate** of a neuron layer: spikes / (neurons * time steps); its **activation sparsity**
  is the fraction of zero outputs, ``1 - spike rate`` for binary spikes;
* **synaptic operations** of a connection layer (convolution or linear) at one time step: the
  products ``w * x`` with a non-zero weight and a non-zero input, i.e. the sum over the layer's
  outputs of ``conv(x != 0, w != 0)`` (the bias is no synaptic operation). An input frame whose
  values are all 0 or +-1 is made of spikes and its operations are **accumulates** (ACs: the
  weight is added); any other input (the event counts entering the first layer) costs
  **multiply-accumulates** (MACs). NeuroBench decides spike or not once per layer call, which for
  a network stepped in time is one time step of one batch; here it is decided per recording and
  time step, which is NeuroBench's answer at batch size 1 and does not depend on the batch;
* **dense** synaptic operations: the same count with every input and weight non-zero, what a
  processor that skips nothing performs (per time step: outputs x fan-in);
* **membrane updates** of a neuron layer: every neuron at the first time step, then the neurons
  whose membrane changed from one step to the next;
* **parameters** and **footprint**: the number of learned parameters, and the bytes of the
  parameters and buffers (snnTorch's neuron constants; the neuron state ``mem`` is left out, as
  NeuroBench measures a model before running it).

The **ANN twin** is the same layers without spikes: a CNN of the same shape that sees one frame
and multiplies every input by every weight, ``dense / T`` MACs per recording.

An **energy estimate** multiplies the counts by published energies per operation, by default
Horowitz (2014) for 45 nm CMOS, 32-bit floating point: an add (AC) 0.9 pJ, a multiply 3.7 pJ, so a
MAC 4.6 pJ. It leaves out memory access (an 8 kB cache read of 64 bits costs 10 pJ on the same
process), data movement, the neurons' own arithmetic unless asked, and everything a particular
chip does differently: it compares operation counts in one unit, not chips.

::

    # one pass over the recordings (reference forward)
    cost = measure_cost(model, loader)
    cost["total"]["effective_acs"], cost["ann_twin"]["macs"]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

ENERGY_45NM_PJ = {"fp32_add": 0.9, "fp32_mult": 3.7, "int32_add": 0.1, "int32_mult": 3.1,
                  "int8_add": 0.03, "int8_mult": 0.2, "sram_8kb_read_64bit": 10.0}
"""Energy per operation in picojoules, 45 nm CMOS at 0.9 V (Horowitz 2014, ISSCC, "Computing's
energy problem (and what we can do about it)"). An AC is an add, a MAC a multiply and an add."""

CONNECTION_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
"""The layers whose multiply-adds count as synaptic operations (NeuroBench's stateless layers)."""


def is_spike_input(x: torch.Tensor) -> torch.Tensor:
    """Per input frame ``x [N, ...]``: True where every value is 0, 1 or -1 (spikes), ``[N]``."""
    binary = (x == 0) | (x == 1) | (x == -1)
    return binary.flatten(1).all(1)


def _binary(t: torch.Tensor) -> torch.Tensor:
    return (t != 0).to(torch.float32)


def synaptic_ops(layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Synaptic operations of ``layer`` on the input frames ``x [N, ...]`` (one time step each):
    ``(effective [N], dense)``, the operations with a non-zero input and a non-zero weight for
    each frame, and the operations of one frame with every input and weight non-zero."""
    if not isinstance(layer, CONNECTION_LAYERS):
        raise TypeError(f"synaptic operations of {type(layer).__name__} are not defined: use one of "
                        + ", ".join(c.__name__ for c in CONNECTION_LAYERS))
    weight = _binary(layer.weight.detach())
    xb = _binary(x.detach())
    ones = torch.ones_like(xb[:1])
    if isinstance(layer, nn.Linear):
        effective = (xb @ weight.T).flatten(1).sum(1)
        dense = (ones @ torch.ones_like(weight).T).sum()
    else:
        conv = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}[type(layer)]
        args = (None, layer.stride, layer.padding, layer.dilation, layer.groups)
        effective = conv(xb, weight, *args).flatten(1).sum(1)
        dense = conv(ones, torch.ones_like(weight), *args).sum()
    return effective.round().to(torch.int64), int(dense.round())


def membrane_updates(mem: torch.Tensor) -> int:
    """Updates of the membranes ``mem [T, ...]`` of one recording or batch: every neuron at the first
    step, then those whose membrane changed from one step to the next."""
    changed = (mem[1:] != mem[:-1]).sum() if len(mem) > 1 else 0
    return int(mem[0].numel() + changed)


def parameter_footprint(model: nn.Module) -> tuple[int, int]:
    """``(parameters, bytes)``: the learned parameters, and the bytes of parameters and buffers
    (neuron constants included, the neuron state ``mem`` left out)."""
    count = sum(p.numel() for p in model.parameters())
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    size += sum(b.numel() * b.element_size() for name, b in model.named_buffers()
                if name.rpartition(".")[2] != "mem")
    return count, size


@dataclass
class _LayerCounts:
    """Counts of one layer (a connection layer and the neurons it feeds), summed over recordings."""
    name: str
    neurons: int = 0                   # neurons of the layer (one recording, one time step)
    spikes: int = 0                    # output spikes
    spikes_per_step: list = field(default_factory=list)   # output spikes at each time step
    neuron_steps: int = 0              # neurons x time steps x recordings
    effective_acs: int = 0             # synaptic operations on spike inputs
    effective_macs: int = 0            # synaptic operations on other inputs
    dense_ops: int = 0                 # every input and weight non-zero
    spike_input_frames: int = 0        # (recording, time step) frames whose input was spikes
    input_frames: int = 0
    membrane_updates: int = 0


class _Recorder:
    """Forward hooks on a model's connection layers and spiking neurons (paired in the order the
    model registers them) that add one time step's counts to a row of counts per layer."""

    def __init__(self, model: nn.Module):
        import snntorch as snn
        self.synapses = [(n, m) for n, m in model.named_modules() if isinstance(m, CONNECTION_LAYERS)]
        self.neurons = [m for _, m in model.named_modules() if isinstance(m, snn.SpikingNeuron)]
        if len(self.synapses) != len(self.neurons):
            raise ValueError(f"{len(self.synapses)} connection layers but {len(self.neurons)} spiking neuron "
                             "layers: the cost is counted for networks where each layer feeds one population")
        self.rows = [_LayerCounts(name) for name, _ in self.synapses]
        self.mems: list[list[torch.Tensor]] = [[] for _ in self.rows]
        self.step = [0 for _ in self.rows]                # time step within the current sequence
        self.handles = []
        for i, (_, layer) in enumerate(self.synapses):
            self.handles.append(layer.register_forward_pre_hook(self._synapse_hook(i)))
        for i, neuron in enumerate(self.neurons):
            self.handles.append(neuron.register_forward_hook(self._neuron_hook(i)))

    def _synapse_hook(self, i: int):
        def hook(layer, inputs):
            x = inputs[0]                                           # [B, ...] one time step
            effective, dense = synaptic_ops(layer, x)
            spiking = is_spike_input(x)
            row = self.rows[i]
            row.effective_acs += int(effective[spiking].sum())
            row.effective_macs += int(effective[~spiking].sum())
            row.dense_ops += dense * len(x)
            row.spike_input_frames += int(spiking.sum())
            row.input_frames += len(x)
        return hook

    def _neuron_hook(self, i: int):
        def hook(neuron, inputs, output):
            spk, mem = output                                       # [B, ...] each, one time step
            row = self.rows[i]
            row.neurons = spk[0].numel()
            fired = int((spk != 0).sum())
            row.spikes += fired
            if self.step[i] == len(row.spikes_per_step):
                row.spikes_per_step.append(0)
            row.spikes_per_step[self.step[i]] += fired
            self.step[i] += 1
            row.neuron_steps += spk.numel()
            self.mems[i].append(mem.detach())
        return hook

    def end_sequence(self) -> None:
        """Count the membrane updates of the recordings just run (their steps are in ``mems``)."""
        for row, mems in zip(self.rows, self.mems):
            if mems:
                row.membrane_updates += membrane_updates(torch.stack(mems))
            mems.clear()
        self.step = [0 for _ in self.rows]

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def _energy(acs: float, macs: float, pj_per_ac: float, pj_per_mac: float) -> float:
    return acs * pj_per_ac + macs * pj_per_mac


def energy_estimate(counts: dict, pj_per_ac: float = ENERGY_45NM_PJ["fp32_add"],
                    pj_per_mac: float = ENERGY_45NM_PJ["fp32_add"] + ENERGY_45NM_PJ["fp32_mult"],
                    neuron_updates: bool = False) -> dict:
    """Energy in picojoules per recording of the synaptic operations in ``counts`` (a ``"total"``
    row of :func:`measure_cost`, or any dict with ``effective_acs`` and ``effective_macs``), and of
    the ANN twin's ``macs`` when given: ``ACs * pj_per_ac + MACs * pj_per_mac``. With
    ``neuron_updates`` each membrane update is counted as one MAC (``beta * U + I``). An estimate of
    arithmetic alone (module docstring)."""
    snn_pj = _energy(counts["effective_acs"], counts["effective_macs"], pj_per_ac, pj_per_mac)
    if neuron_updates:
        snn_pj += counts["membrane_updates"] * pj_per_mac
    out = {"pj_per_ac": pj_per_ac, "pj_per_mac": pj_per_mac, "neuron_updates_counted": neuron_updates,
           "snn_pj": snn_pj}
    if "macs" in counts:
        out["ann_pj"] = counts["macs"] * pj_per_mac
    return out


def _summary(row: _LayerCounts, recordings: int) -> dict:
    per = max(recordings, 1)
    rate = row.spikes / max(row.neuron_steps, 1)
    return {"name": row.name, "neurons": row.neurons,
            "spike_rate": rate, "activation_sparsity": 1.0 - rate,
            "spikes": row.spikes / per, "spikes_per_step": [n / per for n in row.spikes_per_step],
            "effective_acs": row.effective_acs / per, "effective_macs": row.effective_macs / per,
            "dense_ops": row.dense_ops / per, "membrane_updates": row.membrane_updates / per,
            "spike_input_fraction": row.spike_input_frames / max(row.input_frames, 1)}


@torch.no_grad()
def measure_cost(model: nn.Module, batches: Iterable, device: torch.device | str | None = None) -> dict:
    """Spikes, sparsity, synaptic and neuron operations of ``model`` on ``batches`` of
    ``(frames [T, B, ...], labels)`` (a :class:`~snn_lib.data.loader.FrameLoader`), per layer and in
    total, per recording; parameters, footprint, the ANN twin's MACs and the 45 nm energy estimate.

    The model runs its per-step forward (``forward_reference`` where it has one), which calls each
    layer once per time step: the hooks see every step. A JSON-ready dict."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    recorder = _Recorder(model)
    forward = getattr(model, "forward_reference", model)
    recordings = steps = 0
    try:
        for frames, *_ in batches:
            frames = frames.to(device)                             # [T, B, ...]
            forward(frames)
            recorder.end_sequence()
            steps = frames.shape[0]
            recordings += frames.shape[1]
    finally:
        recorder.close()
    layers = [_summary(row, recordings) for row in recorder.rows]
    keys = ("spikes", "effective_acs", "effective_macs", "dense_ops", "membrane_updates")
    total = {k: sum(layer[k] for layer in layers) for k in keys}
    neuron_steps = sum(row.neuron_steps for row in recorder.rows)
    total["neurons"] = sum(layer["neurons"] for layer in layers)
    total["spike_rate"] = sum(row.spikes for row in recorder.rows) / max(neuron_steps, 1)
    total["activation_sparsity"] = 1.0 - total["spike_rate"]
    total["synaptic_ops"] = total["effective_acs"] + total["effective_macs"]
    parameters, footprint = parameter_footprint(model)
    ann = {"macs": total["dense_ops"] / max(steps, 1),
           "layers": {layer["name"]: layer["dense_ops"] / max(steps, 1) for layer in layers}}
    energy = energy_estimate({**total, "macs": ann["macs"]})
    energy["source"] = "Horowitz 2014, 45 nm, 32-bit float: AC = add, MAC = multiply + add; arithmetic only"
    return {"recordings": recordings, "time_steps": steps, "layers": layers, "total": total,
            "parameters": parameters, "footprint_bytes": footprint, "ann_twin": ann,
            "energy_estimate": energy}


__all__ = ["CONNECTION_LAYERS", "ENERGY_45NM_PJ", "energy_estimate", "is_spike_input",
           "measure_cost", "membrane_updates", "parameter_footprint", "synaptic_ops"]
