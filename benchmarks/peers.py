"""The CSNN built with other SNN libraries, for ``train_speed.py --peers``.

Each peer is the same 12C5-MP2-64C5-MP2-FC10 network written in that library's own idiom, with
its own neuron set to match ours as closely as the library allows, and loaded with the same
convolution and linear weights as a :class:`snn_lib.model.CSNN`. Like ``CSNN.forward``, every
peer model maps ``frames [T, B, 2, 34, 34]`` to ``(spk [T, B, 10], mem [T, B, 10])``.

Our neuron (snnTorch ``Leaky``, reset by subtraction decided by the previous step)::

    U[t] = beta * U[t-1] + I[t] - theta * S[t-1]          S[t] = H(U[t] - theta)      (H(0) = 0)

SpikingJelly's ``LIFNode`` (``decay_input=False``, ``v_reset=None``) and Norse's ``LIFBoxCell``
(with ``reset_subtract``) both charge, fire and subtract within one step, so the subtracted
threshold decays with the membrane before the next input arrives::

    H[t] = beta * V[t-1] + I[t]     S[t] = H(H[t] - theta)     V[t] = H[t] - theta * S[t]
    i.e. H[t] = beta * H[t-1] + I[t] - beta * theta * S[t-1]

No setting of either library gives our ``- theta * S[t-1]``: the decay ``beta`` is fixed by the
membrane's leak, and the amount subtracted is the firing threshold. The two neurons agree up to
and including each neuron's first spike and differ after it (a neuron that fired is closer to
threshold in the peers, by ``(1 - beta) * theta``). :func:`lif_reset_decayed` writes this
dynamics out; ``tests/test_peers.py`` checks that both peers produce exactly its spikes.

How each peer is set (``NOTES`` says the same in the results file):

* ``snntorch-tutorial``: ``nn.Sequential`` of ``nn.Conv2d``, ``nn.MaxPool2d`` and
  ``snn.Leaky(init_hidden=True)``, called once per time step as in snnTorch's tutorials. Same
  neuron class and parameters as ours: equal dynamics and gradients.
* ``spikingjelly``: multi-step mode, ``SeqToANNContainer(conv, pool)`` over all time steps then
  ``LIFNode(step_mode="m")`` with ``tau = 1 / (1 - beta)`` (``decay_input=False``: the input is not
  scaled), ``v_threshold = theta``, ``v_reset=None`` (soft reset), ``detach_reset=True`` (as
  snnTorch, no gradient through the reset) and ``surrogate.ATan(alpha)``, whose derivative is
  snnTorch's ``atan``. It fires at ``H >= theta`` (ours ``>``). On CUDA one row per
  implementation SpikingJelly 2.0 offers (``torch``, ``triton``, ``cuda``: the native extension,
  present only when built from source); SpikingJelly 2.0 has no CuPy backend any more.
* ``norse``: ``LIFBoxCell`` (LIF without a synaptic current) stepped in a loop, ``dt = 1``,
  ``tau_mem_inv = 1 - beta``, ``v_leak = 0``, ``reset_method = reset_subtract``. Norse integrates
  ``v += dt * tau_mem_inv * (i - v)``, which scales the input by ``1 - beta``; setting
  ``v_th = (1 - beta) * theta`` instead of rescaling the input gives the same spikes as
  :func:`lif_reset_decayed` with the membrane in units of ``1 - beta`` (returned rescaled).
  Norse has no atan surrogate: its default SuperSpike, ``1 / (1 + |v - v_th|)^2``, is used, and
  its reset is not detached, so its gradients differ from ours beyond the dynamics.

The ``mem`` returned is each library's own output membrane: ``U[t]`` for snnTorch (as ours), the
membrane after the reset ``V[t]`` for SpikingJelly and Norse.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import logging
from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from snn_lib.config import ModelConfig
from snn_lib.model import flat_features
from snn_lib.neurons import spike_fn

WEIGHTS = ("conv1.", "conv2.", "fc.")     # the parameters a peer takes over from a CSNN state dict
SJ_IMPLEMENTATIONS = ("torch", "triton", "cuda")   # SpikingJelly 2.0's CUDA implementations of LIF


def lif_reset_decayed(cur: torch.Tensor, beta: float, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The peers' soft-reset LIF: ``cur [T, ...]`` -> ``(spk [T, ...], v [T, ...])``, v after the reset.

    ``H[t] = beta * V[t-1] + I[t]``, ``S[t] = H(H[t] - theta)``, ``V[t] = H[t] - theta * S[t]``.
    """
    v = torch.zeros_like(cur[0])
    spikes, mems = [], []
    for cur_t in cur:
        h = beta * v + cur_t
        spk = (h > threshold).to(cur.dtype)
        v = h - threshold * spk
        spikes.append(spk)
        mems.append(v)
    return torch.stack(spikes), torch.stack(mems)


def _check_cfg(cfg: ModelConfig) -> None:
    if cfg.surrogate != "atan":
        raise ValueError(f"peers.py: model.surrogate={cfg.surrogate!r}; the peer builds match only 'atan'")


def _load_weights(model: nn.Module, state: dict) -> nn.Module:
    """Copy the conv and fc parameters of a CSNN state dict into ``model`` (which names them alike)."""
    weights = {k: v for k, v in state.items() if k.startswith(WEIGHTS)}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or any(k.startswith(WEIGHTS) for k in missing):
        raise ValueError(f"peer model {type(model).__name__} does not name its layers as CSNN: "
                         f"missing {missing}, unexpected {unexpected}")
    return model


def _layers(cfg: ModelConfig, input_size: int = 34) -> tuple[nn.Conv2d, nn.Conv2d, nn.Linear]:
    c1, c2 = cfg.channels
    return (nn.Conv2d(2, c1, cfg.kernel_size), nn.Conv2d(c1, c2, cfg.kernel_size),
            nn.Linear(flat_features(input_size, c2, cfg.kernel_size), 10))


# ----------------------------------------------------------------------------- snnTorch, tutorial style

def _snntorch_leaky(cfg: ModelConfig, output: bool = False) -> nn.Module:
    import snntorch as snn
    return snn.Leaky(beta=cfg.beta, threshold=cfg.threshold, spike_grad=spike_fn(cfg.surrogate, cfg.surrogate_slope),
                     init_hidden=True, output=output)


class SnnTorchTutorial(nn.Module):
    """snnTorch's tutorial CSNN: one ``nn.Sequential`` with ``init_hidden=True`` neurons, called per step."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        conv1, conv2, fc = _layers(cfg)
        self.conv1, self.conv2, self.fc = conv1, conv2, fc   # first, so that parameters carry CSNN's names
        self.net = nn.Sequential(OrderedDict(
            conv1=conv1, pool1=nn.MaxPool2d(2), lif1=_snntorch_leaky(cfg),
            conv2=conv2, pool2=nn.MaxPool2d(2), lif2=_snntorch_leaky(cfg),
            flatten=nn.Flatten(), fc=fc, lif3=_snntorch_leaky(cfg, output=True)))

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from snntorch import utils
        utils.reset(self.net)                                        # hidden states back to zero
        spikes, mems = [], []
        for x in frames:                                             # x: [B, 2, 34, 34]
            spk, mem = self.net(x)                                   # [B, 10] each
            spikes.append(spk)
            mems.append(mem)
        return torch.stack(spikes), torch.stack(mems)                # [T, B, 10] each


def _snntorch_neuron(cfg: ModelConfig) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    from snntorch import utils
    leaky = _snntorch_leaky(cfg, output=True)

    def run(cur: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        utils.reset(leaky)
        out = [leaky(cur_t) for cur_t in cur]
        return torch.stack([s for s, _ in out]), torch.stack([m for _, m in out])
    return run


# ----------------------------------------------------------------------------- SpikingJelly

def _sj():
    # SpikingJelly registers its neurons as torch.library.triton_op; on a torch without Triton (the
    # CPU builds) torch warns at their first call that Triton is missing, which is expected there
    if importlib.util.find_spec("triton") is None:
        logging.getLogger("torch._library.triton").setLevel(logging.ERROR)
    from spikingjelly.activation_based import functional, layer, neuron, surrogate
    return functional, layer, neuron, surrogate


def _sj_lif(cfg: ModelConfig, store_v_seq: bool = False) -> nn.Module:
    _, _, neuron, surrogate = _sj()
    return neuron.LIFNode(tau=1.0 / (1.0 - cfg.beta), decay_input=False, v_threshold=cfg.threshold, v_reset=None,
                          surrogate_function=surrogate.ATan(alpha=cfg.surrogate_slope), detach_reset=True,
                          step_mode="m", store_v_seq=store_v_seq)


def use_sj_implementation(name: str) -> None:
    """Make SpikingJelly 2.0 run its LIF on CUDA with ``name`` (torch, triton or cuda).

    SpikingJelly reads ``SJ_LIF_CUDA_IMPLEMENTATION`` once, at import, into a private selection
    object; to interleave its implementations in one process this sets that object directly (as
    SpikingJelly 2.0.0 names it) and forgets the cached choice.
    """
    from spikingjelly._ops import lif
    if lif._selection._requested != name:
        lif._selection._requested = name
        lif._selection._selections.clear()
        lif._selection._compiled_selections.clear()


def sj_implementation(name: str, device: torch.device) -> str:
    """The LIF implementation SpikingJelly reports for ``device`` once ``name`` is requested; raises
    RuntimeError where it has none of that name (e.g. no Triton, or the native extension not built)."""
    functional, *_ = _sj()
    if device.type == "cuda":
        use_sj_implementation(name)
    return functional.neuron_implementation("lif", device)["implementation"]


class SpikingJellyCSNN(nn.Module):
    """SpikingJelly's multi-step CSNN: ``SeqToANNContainer`` runs conv and pool over all T at once."""

    def __init__(self, cfg: ModelConfig, implementation: str = ""):
        super().__init__()
        functional, layer, _, _ = _sj()
        conv1, conv2, fc = _layers(cfg)
        self.conv1, self.conv2, self.fc = conv1, conv2, fc   # first, so that parameters carry CSNN's names
        self.net = nn.Sequential(
            layer.SeqToANNContainer(conv1, nn.MaxPool2d(2)), _sj_lif(cfg),
            layer.SeqToANNContainer(conv2, nn.MaxPool2d(2)), _sj_lif(cfg),
            layer.SeqToANNContainer(nn.Flatten(), fc))
        self.out = _sj_lif(cfg, store_v_seq=True)
        self.implementation = implementation                         # CUDA only: torch, triton or cuda
        self._reset = functional.reset_net

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.implementation:
            use_sj_implementation(self.implementation)
        self._reset(self)                                            # membranes back to zero
        spk = self.out(self.net(frames))                             # [T, B, 10]
        return spk, self.out.v_seq                                   # v_seq: [T, B, 10], after the reset


def _sj_neuron(cfg: ModelConfig) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    functional, *_ = _sj()
    lif = _sj_lif(cfg, store_v_seq=True)

    def run(cur: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        functional.reset_net(lif)
        return lif(cur), lif.v_seq
    return run


# ----------------------------------------------------------------------------- Norse

def _norse_cell(cfg: ModelConfig, device: torch.device | str = "cpu") -> nn.Module:
    from norse.torch import LIFBoxCell, LIFBoxParameters
    from norse.torch.functional.reset import reset_subtract
    t = lambda x: torch.as_tensor(x, dtype=torch.float32, device=device)   # noqa: E731
    p = LIFBoxParameters(tau_mem_inv=t(1.0 - cfg.beta), v_leak=t(0.0), v_th=t((1.0 - cfg.beta) * cfg.threshold),
                         v_reset=t(0.0), method="super", reset_method=reset_subtract)
    return LIFBoxCell(p, dt=1.0)


class NorseCSNN(nn.Module):
    """Norse's CSNN: ``LIFBoxCell`` neurons, state in and state out, stepped through time."""

    def __init__(self, cfg: ModelConfig, device: torch.device | str = "cpu"):
        super().__init__()
        self.conv1, self.conv2, self.fc = _layers(cfg)
        self.lif1, self.lif2, self.lif3 = (_norse_cell(cfg, device) for _ in range(3))
        self.scale = 1.0 - cfg.beta                                  # Norse's membrane is (1 - beta) times ours

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s1 = s2 = s3 = None
        spikes, mems = [], []
        for x in frames:                                             # x: [B, 2, 34, 34]
            z, s1 = self.lif1(F.max_pool2d(self.conv1(x), 2), s1)    # [B, 12, 15, 15]
            z, s2 = self.lif2(F.max_pool2d(self.conv2(z), 2), s2)    # [B, 64, 5, 5]
            z, s3 = self.lif3(self.fc(z.flatten(1)), s3)             # [B, 10]
            spikes.append(z)
            mems.append(s3.v)
        return torch.stack(spikes), torch.stack(mems) / self.scale  # [T, B, 10] each


def _norse_neuron(cfg: ModelConfig) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    def run(cur: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cell, state, out = _norse_cell(cfg, cur.device), None, []
        for cur_t in cur:
            z, state = cell(cur_t, state)
            out.append((z, state.v / (1.0 - cfg.beta)))
        return torch.stack([z for z, _ in out]), torch.stack([v for _, v in out])
    return run


# ----------------------------------------------------------------------------- registry

@dataclasses.dataclass(frozen=True)
class Peer:
    key: str                             # "snntorch-tutorial", "spikingjelly", "norse"
    package: str                         # the distribution that must be installed
    note: str                            # how its neuron is set to match ours, where it cannot


PEERS = {p.key: p for p in (
    Peer("snntorch-tutorial", "snntorch",
         "snn.Leaky(beta, threshold, atan(alpha), init_hidden=True) in one nn.Sequential called per time step "
         "(snnTorch's tutorials): the same neuron class and parameters as ours, so the same spikes and gradients."),
    Peer("spikingjelly", "spikingjelly",
         "multi-step SeqToANNContainer(conv, pool) + LIFNode(step_mode='m', tau=1/(1-beta), decay_input=False, "
         "v_threshold=theta, v_reset=None, detach_reset=True, surrogate ATan(alpha)): same leak, threshold and "
         "surrogate, but the reset is subtracted within the step that fires and then decays "
         "(H[t] = beta*H[t-1] + I[t] - beta*theta*S[t-1]; ours subtracts theta); no setting reproduces ours. "
         "Same spikes as ours up to each neuron's first spike, then the neuron that fired is (1-beta)*theta "
         "closer to threshold. Fires at H >= theta (ours >)."),
    Peer("norse", "norse",
         "LIFBoxCell stepped in a loop, dt=1, tau_mem_inv=1-beta, v_leak=0, v_th=(1-beta)*theta (Norse scales "
         "the input by dt*tau_mem_inv), reset_method=reset_subtract: the same dynamics as SpikingJelly's "
         "(reset decays, see there), membrane in units of (1-beta). No atan surrogate in Norse: its SuperSpike "
         "1/(1+|v-v_th|)^2; the reset is not detached."),
)}


def version(package: str) -> str | None:
    """The installed version of ``package``, or None if it is not importable."""
    if importlib.util.find_spec(package) is None:                    # each imports under its own name
        return None
    return importlib.metadata.version(package)


@dataclasses.dataclass(frozen=True)
class PeerRun:
    """One row of the benchmark: a peer, and on CUDA for SpikingJelly one of its implementations."""
    peer: Peer
    implementation: str = ""             # SpikingJelly on CUDA: torch, triton or cuda

    @property
    def name(self) -> str:
        v = version(self.peer.package)
        label = {"snntorch-tutorial": f"snnTorch {v} tutorial", "spikingjelly": f"SpikingJelly {v}",
                 "norse": f"Norse {v} LIFBoxCell"}[self.peer.key]
        return f"{label} ({self.implementation})" if self.implementation else label


def runs(device: torch.device) -> tuple[list[PeerRun], list[str]]:
    """The peer rows that can run on ``device``, and one line for each that cannot, saying why."""
    out, skipped = [], []
    for peer in PEERS.values():
        if version(peer.package) is None:
            skipped.append(f"{peer.key}: not installed (pip install -e '.[peers]', see benchmarks/README.md)")
            continue
        if peer.key != "spikingjelly":
            out.append(PeerRun(peer))
            continue
        if device.type != "cuda":
            out.append(PeerRun(peer, ""))                            # CPU: its Torch reference only
            continue
        for name in SJ_IMPLEMENTATIONS:
            try:
                got = sj_implementation(name, device)
            except (RuntimeError, ValueError) as err:
                skipped.append(f"spikingjelly ({name}): unavailable on this machine: {str(err).splitlines()[0]}")
                continue
            if got != name:
                skipped.append(f"spikingjelly ({name}): SpikingJelly chose {got!r} instead")
                continue
            out.append(PeerRun(peer, name))
    return out, skipped


def build(run: PeerRun, state: dict, device: torch.device, cfg: ModelConfig | None = None) -> nn.Module:
    """The peer's CSNN on ``device`` with the conv and fc weights of the CSNN state dict ``state``."""
    cfg = cfg or ModelConfig()
    _check_cfg(cfg)
    key = run.peer.key
    if key == "snntorch-tutorial":
        model = SnnTorchTutorial(cfg)
    elif key == "spikingjelly":
        model = SpikingJellyCSNN(cfg, run.implementation)
    elif key == "norse":
        model = NorseCSNN(cfg, device)
    else:
        raise ValueError(f"unknown peer {key!r}: use one of {sorted(PEERS)}")
    return _load_weights(model, state).to(device)


def neuron(key: str, cfg: ModelConfig | None = None) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """One layer of the peer's neuron, set as in its CSNN: ``cur [T, N]`` -> ``(spk [T, N], mem [T, N])``.

    ``mem`` in our units: ``U[t]`` for snnTorch, the membrane after the reset for the others.
    """
    cfg = cfg or ModelConfig()
    _check_cfg(cfg)
    makers = {"snntorch-tutorial": _snntorch_neuron, "spikingjelly": _sj_neuron, "norse": _norse_neuron}
    if key not in makers:
        raise ValueError(f"unknown peer {key!r}: use one of {sorted(makers)}")
    return makers[key](cfg)
