"""The trained CSNN as an NIR graph, and the same graph run by other simulators.

NIR, the Neuromorphic Intermediate Representation (Pedersen et al. 2024, the ``nir`` package),
describes a network in continuous time, with no batch dimension; Norse, snnTorch, Sinabs,
Rockpool, Lava-DL, Nengo, Spyx and the toolchains of SpiNNaker2, Loihi, Speck and Xylo read it.
:func:`nir_graph` writes the CSNN from its weights with NIR's node types::

    input [2, H, W] -> conv1 -> pool1 -> lif1 -> conv2 -> pool2 -> lif2
        -> flatten -> fc -> lif3 -> output [10]

(``Conv2d``, ``AvgPool2d`` or ``SumPool2d``, ``LIF``, ``Flatten``, ``Affine``). NIR has no
max-pooling node, and its LIF resets to a value, so a CSNN can be exported when it was trained with
``model.pool=avg`` or ``sum`` and ``model.reset=zero`` (:func:`check_exportable` says which setting
to change otherwise).

**From beta to NIR's LIF.** NIR's LIF is ``tau dv/dt = (v_leak - v) + r I``, a spike when
``v > v_threshold``, then ``v = v_reset``. Run by forward Euler with a step ``dt`` (what a
simulator does)::

    v[t] = (1 - dt / tau) v[t-1] + (dt / tau) (v_leak + r I[t])

The CSNN's neuron with reset to zero is ``U[t] = beta U'[t-1] + I[t]``, where ``U'`` is the
membrane after the reset (0 after a spike; snnTorch applies that reset at the next step, which
gives the same spikes). The two are the same recurrence when, for every neuron of a layer,

    tau = dt / (1 - beta)         r = tau / dt = 1 / (1 - beta)       v_leak = 0
    v_threshold = threshold       v_reset = 0

so ``dt / tau = 1 - beta`` and ``(dt / tau) r = 1``: the input enters unscaled. ``dt`` is the
duration of one time step the graph assumes. Any value gives the same network provided the
simulator steps with the same ``dt``; the default 1e-4 s is the step snnTorch's importer assumes
(it is fixed there), and a simulator running the frames in real time would use the frames' width
(300 ms / T for N-MNIST). ``beta = 1`` (no leak) has no finite ``tau`` and is refused.

**Reading it back.** :func:`simulate` runs a graph in another simulator (:data:`SIMULATORS`),
one recording at a time (NIR has no batch dimension, and the importers map ``Flatten`` literally).
Each importer reads a subset of NIR, with its own conventions; :func:`adapt` rewrites the graph
into an equivalent one that it reads, and says what it changed:

* Norse 1.1 (``norse.torch.from_nir``) reads ``SumPool2d`` but not ``AvgPool2d``, and ignores a
  LIF's ``r`` (it warns and integrates ``(dt / tau) I``): the pooling's ``1/4`` and ``r`` are folded
  into the preceding convolution's or affine layer's weights and bias, and ``r`` set to 1;
* snnTorch 1.0 (``snntorch.import_nir.import_from_nir``) reads ``AvgPool2d`` but not ``SumPool2d``,
  and assumes ``dt = 1e-4`` s: a sum pooling becomes an average pooling with the weights before it
  times 4, and ``tau`` is rescaled to that step.

Both rewrites are exact in real numbers (linear layers commute with the scaling); in float32 the
membrane differs in the last bits, which can flip a spike that sits on the threshold.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError, SnnError

log = logging.getLogger(__name__)

SIMULATORS = ("norse", "snntorch")
"""Simulators :func:`simulate` runs an NIR graph in."""

DEFAULT_DT = 1e-4
"""Seconds per time step the exported graph assumes (snnTorch's NIR importer assumes this step)."""

SNNTORCH_DT = 1e-4
"""The time step snnTorch 1.0's ``import_from_nir`` assumes (fixed in its code)."""

POOL_NODES = {"avg": "AvgPool2d", "sum": "SumPool2d"}


def available_simulators() -> list[str]:
    """The simulators of :data:`SIMULATORS` whose NIR importer is installed here."""
    import importlib.util
    if importlib.util.find_spec("nir") is None or importlib.util.find_spec("nirtorch") is None:
        return []
    modules = {"norse": "norse", "snntorch": "snntorch"}
    return [s for s in SIMULATORS if importlib.util.find_spec(modules[s]) is not None]


def _nir():
    try:
        import nir
    except ImportError:
        raise SnnError("the NIR export needs the nir package: pip install -e '.[neuromorphic]'") from None
    return nir


def check_exportable(model_cfg) -> None:
    """Refuse, in one line naming the setting to train with, a CSNN that NIR cannot express."""
    pool, reset = getattr(model_cfg, "pool", "max"), getattr(model_cfg, "reset", "subtract")
    if pool not in POOL_NODES:
        raise ConfigError(f"model.pool={pool} cannot be exported: NIR has no max-pooling node; train with "
                          "model.pool=avg or model.pool=sum.")
    if reset != "zero":
        raise ConfigError(f"model.reset={reset} cannot be exported: NIR's LIF resets to a value (v_reset); "
                          "train with model.reset=zero.")


def lif_parameters(beta: float, threshold: float, dt: float = DEFAULT_DT) -> dict[str, float]:
    """NIR LIF parameters of the discrete neuron ``U[t] = beta U'[t-1] + I[t]`` stepped every ``dt``
    seconds (module docstring): ``tau``, ``r``, ``v_leak``, ``v_threshold``, ``v_reset``."""
    if not 0.0 <= beta < 1.0:
        raise ConfigError(f"beta={beta} cannot be exported as an NIR LIF: it needs 0 <= beta < 1 "
                          "(beta = 1 is an integrator without leak, tau would be infinite).")
    check_dt(dt)
    tau = dt / (1.0 - beta)
    return {"tau": tau, "r": tau / dt, "v_leak": 0.0, "v_threshold": float(threshold), "v_reset": 0.0}


def check_dt(dt: float) -> None:
    """Refuse a time step that is not a positive, finite number of seconds (NaN and inf included)."""
    if not (isinstance(dt, (int, float)) and 0 < dt < math.inf):
        raise ConfigError(f"dt={dt} is not valid: the time step must be a positive, finite number of seconds, "
                          f"e.g. dt={DEFAULT_DT:g}.")


def _neuron_constants(model) -> list[tuple[float, float]]:
    """``(beta, threshold)`` of each LIF layer as the model uses them: snnTorch's float32 values
    (fixed, or trained with ``model.learn_beta`` / ``learn_threshold``), beta clamped to [0, 1] as
    the neuron clamps it."""
    return [(min(max(float(lif.beta), 0.0), 1.0), float(lif.threshold)) for lif in (model.lif1, model.lif2, model.lif3)]


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy().copy()


def nir_graph(model, dt: float = DEFAULT_DT):
    """The CSNN ``model`` as an ``nir.NIRGraph`` (module docstring); a ConfigError if it was built
    with settings NIR cannot express."""
    nir = _nir()
    cfg = model.cfg
    check_exportable(cfg)
    pool_node = getattr(nir, POOL_NODES[cfg.pool])
    constants = _neuron_constants(model)

    def lif(i: int, shape: tuple[int, ...]):
        beta, threshold = constants[i - 1]
        p = lif_parameters(beta, threshold, dt)
        return nir.LIF(**{k: np.full(shape, v, dtype=np.float32) for k, v in p.items()})

    side = model.input_size
    nodes = {"input": nir.Input(input_type={"input": np.array([2, side, side])})}
    for i, conv in enumerate((model.conv1, model.conv2), start=1):
        nodes[f"conv{i}"] = nir.Conv2d(input_shape=(side, side), weight=_array(conv.weight), stride=1, padding=0,
                                       dilation=1, groups=1, bias=_array(conv.bias))
        side = (side - conv.kernel_size[0] + 1) // 2                  # valid convolution, then 2x2 pooling
        nodes[f"pool{i}"] = pool_node(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                      padding=np.array([0, 0]))
        nodes[f"lif{i}"] = lif(i, (conv.out_channels, side, side))
    nodes["flatten"] = nir.Flatten(input_type={"input": np.array([model.conv2.out_channels, side, side])},
                                   start_dim=0, end_dim=-1)
    nodes["fc"] = nir.Affine(weight=_array(model.fc.weight), bias=_array(model.fc.bias))
    nodes["lif3"] = lif(3, (model.fc.out_features,))
    nodes["output"] = nir.Output(output_type={"output": np.array([model.fc.out_features])})
    names = list(nodes)
    edges = list(zip(names[:-1], names[1:]))                           # a chain, in the order above
    return nir.NIRGraph(nodes=nodes, edges=edges)


def write_nir(graph, path: str | Path) -> Path:
    """Write ``graph`` to ``path`` (NIR's HDF5 file format), atomically and durably: the file is
    made in memory, then written beside ``path`` and renamed over it
    (:func:`snn_lib.files.atomic_write`), so that a full disk or a kill leaves ``path`` as it was.
    A failure is a one-line SnnError naming the file."""
    from .files import atomic_write
    nir = _nir()
    path = Path(path)
    buffer = io.BytesIO()
    try:
        nir.write(buffer, graph)
    except Exception as err:  # noqa: BLE001 - h5py's errors span several lines
        why = " ".join(str(err).split()) or type(err).__name__
        raise SnnError(f"cannot write the NIR graph for {path}: {why}.") from None
    return atomic_write(path, buffer.getvalue())


def read_nir(path: str | Path):
    """The ``nir.NIRGraph`` of an NIR file; an SnnError names a missing or unreadable file."""
    nir = _nir()
    path = Path(path)
    if not path.is_file():
        raise SnnError(f"NIR file '{path}' does not exist; write one with snn-export checkpoint=... out={path}")
    try:
        return nir.read(str(path))
    except Exception as err:  # noqa: BLE001 - any reader error means the file is not an NIR graph
        raise SnnError(f"'{path}' cannot be read as an NIR graph ({type(err).__name__}).") from None


def export_checkpoint(checkpoint: str | Path, out: str | Path, dt: float = DEFAULT_DT) -> Path:
    """Write the network of a checkpoint of snn-train as an NIR file (what ``snn-export`` runs)."""
    from .checkpoint import model_from_checkpoint
    check_dt(dt)
    model, _ = model_from_checkpoint(checkpoint, "cpu", impl="reference")
    return write_nir(nir_graph(model, dt), out)


# ---- reading the graph back in other simulators --------------------------------------------------

def _copy_graph(graph):
    nir = _nir()
    return nir.NIRGraph(nodes={k: type(v).from_dict(v.to_dict()) if not isinstance(v, nir.NIRGraph)
                               else _copy_graph(v) for k, v in graph.nodes.items()},
                        edges=list(graph.edges))


def _source(graph, name: str) -> str:
    """The one node feeding ``name``."""
    sources = [a for a, b in graph.edges if b == name]
    if len(sources) != 1:
        raise ValueError(f"NIR node {name!r} has {len(sources)} inputs; expected one")
    return sources[0]


def _scale_weights(node, factor: np.ndarray | float) -> None:
    """Multiply a Conv2d's or Affine's weights and bias by ``factor`` (per output channel or feature)."""
    factor = np.asarray(factor, dtype=np.float64)
    shape = (-1,) + (1,) * (node.weight.ndim - 1)
    node.weight = (node.weight * factor.reshape(shape)).astype(np.float32)
    node.bias = (node.bias * factor.reshape(-1)).astype(np.float32)


def _per_output(values: np.ndarray) -> np.ndarray:
    """One value per output channel/feature of a LIF parameter of shape [C, ...] (they are equal
    within a channel in a graph written by :func:`nir_graph`)."""
    flat = values.reshape(values.shape[0], -1)
    if not np.allclose(flat, flat[:, :1]):
        raise ValueError("a LIF parameter varies within a channel; it cannot be folded into the weights")
    return flat[:, 0].astype(np.float64)


def adapt(graph, simulator: str, dt: float = DEFAULT_DT):
    """An equivalent copy of ``graph`` written in the nodes and conventions ``simulator`` reads, and
    the list of what was changed (module docstring)."""
    nir = _nir()
    if simulator not in SIMULATORS:
        raise ConfigError(f"simulator={simulator!r} is not known: use {' or '.join(SIMULATORS)}.")
    graph = _copy_graph(graph)
    changes = []
    for name, node in list(graph.nodes.items()):
        if not isinstance(node, nir.LIF):
            continue
        before = _source(graph, name)
        pool = graph.nodes[before] if isinstance(graph.nodes[before], (nir.AvgPool2d, nir.SumPool2d)) else None
        weights = graph.nodes[_source(graph, before)] if pool is not None else graph.nodes[before]
        factor = 1.0
        if simulator == "norse" and isinstance(pool, nir.AvgPool2d):
            factor = 1.0 / float(np.prod(pool.kernel_size))
            graph.nodes[before] = nir.SumPool2d(kernel_size=pool.kernel_size, stride=pool.stride,
                                                padding=pool.padding)
            changes.append(f"{before}: AvgPool2d -> SumPool2d, {factor:g} folded into the weights before it")
        if simulator == "norse" and not np.allclose(node.r, 1.0):
            factor = factor * _per_output(node.r)
            values = ", ".join(f"{v:g}" for v in np.unique(node.r))
            changes.append(f"{name}: r = {values} folded into the weights before it, r = 1")
            node.r = np.ones_like(node.r)
        if not np.all(np.asarray(factor) == 1.0):
            _scale_weights(weights, factor)
        if simulator == "snntorch" and dt != SNNTORCH_DT:
            node.tau = (node.tau * (SNNTORCH_DT / dt)).astype(np.float32)
            changes.append(f"{name}: tau rescaled from dt = {dt:g} s to snnTorch's {SNNTORCH_DT:g} s")
    return graph, changes


class _Runner:
    """A graph imported into a simulator, stepped through time."""

    def __init__(self, graph, simulator: str, dt: float, batched: bool):
        quiet = io.StringIO()
        with contextlib.redirect_stdout(quiet):                 # snnTorch's importer prints
            if simulator == "norse":
                from norse.torch import from_nir
                r = sorted({float(v) for node in graph.nodes.values() if hasattr(node, "r")
                            for v in np.unique(node.r)})
                if r != [1.0]:                  # said once here, in place of Norse's long warnings
                    log.warning("norse ignores r = %s (uses 1); adapt() folds it in",
                                ", ".join(f"{v:g}" for v in r))
                self.module = from_nir(graph, dt=dt, ignore_warnings=True)
            else:
                from snntorch.import_nir import import_from_nir
                self.module = import_from_nir(graph)
        if quiet.getvalue().strip():
            log.debug("%s import: %s", simulator, quiet.getvalue().strip())
        self.module.eval()
        if batched:                          # NIR's Flatten has no batch dimension: give it one
            for module in self.module.modules():
                if isinstance(module, torch.nn.Flatten) and module.start_dim == 0:
                    module.start_dim = 1

    @torch.no_grad()
    def run(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames [T, ...]`` (one recording, or a batch with ``batched``) -> output spikes ``[T, ...]``."""
        for module in self.module.modules():          # snnTorch's neurons keep their membrane inside
            if hasattr(module, "reset_mem"):
                module.reset_mem()
        out, state = [], None
        for x in frames:
            spk, state = self.module(x, state)
            out.append(spk)
        return torch.stack(out)


def simulate(graph, simulator: str, frames: torch.Tensor, dt: float = DEFAULT_DT, adapt_graph: bool = True,
             batch_size: int = 1) -> torch.Tensor:
    """Output spikes ``[T, N, 10]`` of ``graph`` run in ``simulator`` on ``frames [T, N, 2, H, W]``.

    With ``adapt_graph`` (default) the graph is first rewritten by :func:`adapt` into the nodes and
    conventions that simulator reads. ``batch_size=1`` runs one recording at a time, without a
    batch dimension, as NIR describes the graph; a larger batch gives the imported ``Flatten`` a
    batch dimension (``start_dim`` 0 becomes 1) and runs that many recordings at once."""
    if simulator not in SIMULATORS:
        raise ConfigError(f"simulator={simulator!r} is not known: use {' or '.join(SIMULATORS)}.")
    if adapt_graph:
        graph, changes = adapt(graph, simulator, dt)
        for change in changes:
            log.info("%s: %s", simulator, change)
    runner = _Runner(graph, simulator, SNNTORCH_DT if simulator == "snntorch" else dt, batch_size > 1)
    frames = frames.float()
    if batch_size <= 1:
        return torch.stack([runner.run(frames[:, i]) for i in range(frames.shape[1])], dim=1)
    return torch.cat([runner.run(frames[:, i:i + batch_size]) for i in range(0, frames.shape[1], batch_size)],
                     dim=1)


def agreement(ours: torch.Tensor, theirs: torch.Tensor) -> dict:
    """How close two runs' output spikes ``[T, N, C]`` are: the fraction of recordings with the same
    predicted class (most spikes, ties to the lowest), the fraction with identical spike counts, the
    mean absolute difference of the counts per recording and class, and the largest."""
    a, b = ours.sum(0), theirs.sum(0)                      # [N, C] spike counts
    diff = (a - b).abs()
    return {"recordings": len(a), "same_prediction": float((a.argmax(1) == b.argmax(1)).float().mean()),
            "same_counts": float((diff.sum(1) == 0).float().mean()),
            "same_spike_trains": float((ours == theirs).all(2).all(0).float().mean()),
            "mean_abs_count_difference": float(diff.mean()), "max_abs_count_difference": float(diff.max())}


__all__ = ["DEFAULT_DT", "SIMULATORS", "SNNTORCH_DT", "adapt", "agreement", "available_simulators", "check_dt",
           "check_exportable", "export_checkpoint", "lif_parameters", "nir_graph", "read_nir", "simulate", "write_nir"]
