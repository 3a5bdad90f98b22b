"""Which recordings a run uses: the dataset's folder, its train and test splits, and their frames.

::

    # uint8 [N, T, 2, H, W], int64 [N]
    frames, labels = load_split(cfg.data, "train")

``load_split`` is the one way in for training (:func:`snn_lib.data.loader.make_loaders`), evaluation
(``snn-eval``) and the book; :func:`split_frames` the one way a list of recordings becomes frames.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from ..config import DataConfig
from ..errors import ConfigError, DataError
from .frames import cached_frames
from .nmnist import Recording, list_recordings, locate_nmnist

log = logging.getLogger("snn_lib")

SPLIT_NAMES = ("train", "val", "test")
HOLDOUT_SEED = 12345        # the held-out recordings are the same whatever seed a run uses
VAL_SEED = 54321            # and so is the validation split


def default_cache_dir() -> Path:
    """``$SNN_LIB_CACHE``, else ``~/.cache/snn_lib``."""
    return Path(os.environ.get("SNN_LIB_CACHE") or Path.home() / ".cache" / "snn_lib")


def cache_dir_of(cfg: DataConfig) -> Path:
    """The cache folder of ``cfg``: ``data.cache_dir``, else :func:`default_cache_dir`."""
    return Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()


def dataset_root(cfg: DataConfig) -> Path:
    """The folder with Train/ and Test/ for ``cfg``: real N-MNIST (downloaded if allowed and
    absent) or the simulated recordings (built on first use into the cache)."""
    if cfg.name == "nmnist_sim":
        from .nmnist_sim import ensure_sim_dataset
        return ensure_sim_dataset(cfg, cache_dir_of(cfg))
    return locate_nmnist(cfg.root, cfg.download)


def _hold_out(recordings: list[Recording], fraction: float, seed: int,
              at_least_one: bool = False) -> tuple[list[Recording], list[Recording]]:
    """``(kept, held out)``: ``fraction`` of the recordings of each label, drawn with ``seed``;
    ``at_least_one`` holds out one of every label that has two or more."""
    rng = np.random.default_rng(seed)
    held: set[int] = set()
    for label in range(10):
        ids = [i for i, rec in enumerate(recordings) if rec.label == label]
        n = int(round(len(ids) * fraction))
        if at_least_one and len(ids) >= 2:
            n = min(max(n, 1), len(ids) - 1)
        held.update(rng.permutation(ids)[:n].tolist())
    return ([rec for i, rec in enumerate(recordings) if i not in held],
            [rec for i, rec in enumerate(recordings) if i in held])


def split_recordings(cfg: DataConfig, root: Path) -> dict[str, list[Recording]]:
    """Train, validation and test recordings after ``test_from_train``, ``val_from_train`` and
    ``subset``.

    With ``test_from_train`` > 0 the test set is that fraction of Train/, drawn per label with a
    fixed seed (the same held-out files whatever ``seed`` the run uses), and Test/ is not read.
    The validation split is then ``val_from_train`` of Train/ (of the whole folder, so that the
    two fractions add up), drawn per label from what the test set left, with another fixed seed;
    it is empty when ``val_from_train`` is 0.
    """
    train = list_recordings(root, "train")
    whole = len(train)
    if cfg.test_from_train > 0:
        train, test = _hold_out(train, cfg.test_from_train, HOLDOUT_SEED)
    else:
        if not (root / "Test").is_dir():
            raise DataError(f"data.root '{root}' has Train/ but no Test/ folder: add Test/<label>/<id>.bin "
                            "or set data.test_from_train=0.1 to hold out part of Train/ for testing.")
        test = list_recordings(root, "test")
    val: list[Recording] = []
    if cfg.val_from_train > 0:
        train, val = _hold_out(train, cfg.val_from_train * whole / max(len(train), 1), VAL_SEED, at_least_one=True)
    splits = {"train": train[::cfg.subset], "val": val[::cfg.subset], "test": test[::cfg.subset]}
    for name, recordings in splits.items():
        if name == "val":                   # checked where it is used (load_split): it may lack a class
            continue
        missing = sorted(set(range(10)) - {rec.label for rec in recordings})
        if missing:
            why = (f"data.test_from_train={cfg.test_from_train} and data.subset={cfg.subset} leave"
                   if cfg.test_from_train > 0 else f"data.subset={cfg.subset} leaves")
            raise DataError(f"{why} the {name} split of {root} without recordings of label "
                            f"{', '.join(map(str, missing))}; every class needs some: change those settings or "
                            "add recordings.")
    return splits


def load_split(cfg: DataConfig, split: str,
               splits: dict[str, list[Recording]] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(frames uint8 [N, T, 2, H, W], labels int64 [N])`` of one split (``"train"``, ``"val"``
    or ``"test"``), from the frame cache or computed and cached. ``splits``: the recordings of
    :func:`split_recordings`, where the caller has them already (made once per run)."""
    if split not in SPLIT_NAMES:
        raise ConfigError(f"split={split!r} is not valid: expected {', '.join(SPLIT_NAMES)}.")
    if split == "val" and not cfg.val_from_train:
        raise ConfigError("split=val but data.val_from_train=0: there is no validation split; set "
                          "data.val_from_train to the fraction the run held out (0.1 by default).")
    recordings = (splits or split_recordings(cfg, dataset_root(cfg)))[split]
    if split == "val" and not recordings:
        raise DataError(f"data.val_from_train={cfg.val_from_train} leaves no validation recording in {cfg.root}: a "
                        "class needs 2 or more training recordings to give one; add recordings or set "
                        "data.val_from_train=0 (best.pt is then chosen on the test set).")
    return split_frames(cfg, recordings, split)


def split_frames(cfg: DataConfig, recordings: list[Recording], split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The frames of ``recordings`` with ``cfg``'s frame settings (time bins, denoise, crop), from
    the cache or computed and cached, checked for blank recordings (:func:`check_blank`): the one
    way a split is built, for the real, the simulated and the mixed-in recordings alike."""
    frames, labels = cached_frames(recordings, cfg.n_time_bins, cfg.denoise_us, cfg.crop, cache_dir_of(cfg),
                                   desc=f"{split} frames")
    check_blank(frames, recordings, split)
    return frames, labels


BLANK_LIMIT = 0.5
"""A split where more than this fraction of the recordings has no event in any frame stops the run."""


def check_blank(frames: torch.Tensor, recordings: list[Recording], split: str) -> int:
    """Report recordings whose frames hold no event at all (by file, with a warning); raise a
    DataError when they are most of the split. Returns how many are blank.

    Such a recording is usually a damaged file: timestamps out of order, all events at one time,
    or events the crop cut away."""
    blank = (frames.reshape(len(frames), -1).amax(1) == 0).nonzero().flatten().tolist()   # indices of [N]
    if not blank:
        return 0
    names = ", ".join(str(recordings[i].path) for i in blank[:5]) + (", ..." if len(blank) > 5 else "")
    if len(blank) > BLANK_LIMIT * len(frames):
        raise DataError(f"{len(blank)} of the {len(frames)} {split} recordings give no event in any frame "
                        f"({names}): the files are damaged or data.crop/data.denoise_us remove every event; "
                        "check them.")
    log.warning("%d of %d %s recordings give no event in any frame and teach nothing: %s", len(blank),
                len(frames), split, names)
    return len(blank)


__all__ = ["BLANK_LIMIT", "HOLDOUT_SEED", "SPLIT_NAMES", "VAL_SEED", "cache_dir_of", "check_blank", "dataset_root",
           "default_cache_dir", "load_split", "split_frames", "split_recordings"]
