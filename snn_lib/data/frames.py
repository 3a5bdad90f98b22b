"""Events to frames with tonic's transforms, and a disk cache of the result.

A recording of N events becomes ``T = n_time_bins`` frames of event counts per pixel and polarity,
after an optional ``Denoise`` and an optional ``CenterCrop``. ``tonic.transforms.ToFrame`` cuts T
windows ``[start, start + w)`` of ``w = (t_last - t_first) // T`` microseconds from the first
event, so the last event, and up to T - 1 us before it, fall outside.
A whole split is stored as one uint8 tensor ``[N, T, 2, H, W]``: N-MNIST at T = 25 is 3.5 GB for
the 60,000 training recordings, small enough for memory or a GPU.

The cache file is named by a hash of everything that changes the frames (the files with their
sizes and modification times, T, denoise, crop, this module's format version), so a changed
setting never returns stale frames and a second run skips the preprocessing.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import os
import shutil
import signal
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import tonic.transforms as tt

from ..progress import progress
from .nmnist import SENSOR_SIZE, Recording, read_events

log = logging.getLogger("snn_lib")

FORMAT_VERSION = 1


def _event_filters(denoise_us: int = 0, crop: int = 0) -> list:
    """tonic's event-to-event steps before framing: ``Denoise``, then ``CenterCrop``."""
    steps = []
    if denoise_us:
        steps.append(tt.Denoise(filter_time=denoise_us))
    if crop:
        steps.append(tt.CenterCrop(sensor_size=SENSOR_SIZE, size=crop))
    return steps


def frame_transform(n_time_bins: int, denoise_us: int = 0, crop: int = 0) -> tt.Compose:
    """The tonic transform from events to frames ``[T, 2, H, W]`` (int16 counts)."""
    sensor_size = (crop, crop, 2) if crop else SENSOR_SIZE
    return tt.Compose([*_event_filters(denoise_us, crop), tt.ToFrame(sensor_size=sensor_size, n_time_bins=n_time_bins)])


def events_to_frames(events: np.ndarray, n_time_bins: int, denoise_us: int = 0, crop: int = 0) -> np.ndarray:
    """Frames ``[T, 2, H, W]`` (uint8 counts, saturating at 255) of one recording's events.

    A recording with no event left (an empty file's worth, or all removed by the denoise filter,
    the crop or an augmentation) gives blank frames; :func:`snn_lib.data.dataset.check_blank`
    counts them."""
    side = crop or SENSOR_SIZE[0]
    for step in _event_filters(denoise_us, crop):
        if len(events) == 0:
            break
        events = step(events)
    if len(events) == 0:                     # tonic's ToFrame gives an empty event array here
        return np.zeros((n_time_bins, 2, side, side), dtype=np.uint8)
    frames = tt.ToFrame(sensor_size=(side, side, 2), n_time_bins=n_time_bins)(events)
    return np.clip(frames, 0, 255).astype(np.uint8)


def cache_key(recordings: list[Recording], n_time_bins: int, denoise_us: int, crop: int) -> str:
    """A hash of everything that changes the frames of these recordings."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": FORMAT_VERSION, "T": n_time_bins, "denoise_us": denoise_us,
                         "crop": crop}).encode())
    for rec in recordings:
        st = rec.path.stat()
        h.update(f"{rec.path.resolve()}|{rec.label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _frames_of(args: tuple) -> np.ndarray:
    path, n_time_bins, denoise_us, crop, *augment = args
    events = read_events(path)
    if augment:                                   # (names, seed, epoch, index): snn_lib.data.augment
        from .augment import augment_events
        events = augment_events(events, *augment)
    return events_to_frames(events, n_time_bins, denoise_us, crop)


def frames_of_recordings(recordings: list[Recording], n_time_bins: int, denoise_us: int = 0,
                         crop: int = 0, workers: int = 0, desc: str = "frames",
                         augment: tuple = (), min_parallel: int = 2000) -> torch.Tensor:
    """uint8 frames ``[N, T, 2, H, W]`` of the recordings; ``workers`` > 1 uses processes when
    there are ``min_parallel`` recordings or more. ``augment = (names, seed, epoch)`` augments
    recording ``i``'s events with the draws of ``(seed, epoch, i)`` before framing
    (:func:`snn_lib.data.augment.augment_events`)."""
    jobs = [(rec.path, n_time_bins, denoise_us, crop, *((*augment, i) if augment else ()))
            for i, rec in enumerate(recordings)]
    workers = workers or min(os.cpu_count() or 1, 8)
    # `with`: a bar is closed on Ctrl-C too, before the command's one-line message
    if workers > 1 and len(jobs) >= min_parallel:
        with worker_pool(workers) as pool, progress(pool.map(_frames_of, jobs, chunksize=64), total=len(jobs),
                                                    desc=desc) as bar:
            frames = list(bar)
    else:
        with progress(jobs, desc=desc) as bar:
            frames = [_frames_of(job) for job in bar]
    return torch.from_numpy(np.stack(frames))


def cached_frames(recordings: list[Recording], n_time_bins: int, denoise_us: int, crop: int,
                  cache_dir: str | Path, desc: str = "frames") -> tuple[torch.Tensor, torch.Tensor]:
    """(frames uint8 ``[N, T, 2, H, W]``, labels int64 ``[N]``), from the cache or computed and cached."""
    cache_dir = Path(cache_dir)
    path = cache_dir / f"frames-{cache_key(recordings, n_time_bins, denoise_us, crop)}.pt"
    if path.exists():
        try:
            stored = torch.load(path, weights_only=True)
            return stored["frames"], stored["labels"]
        except Exception:  # noqa: BLE001 - a damaged cache file is recomputed, never trusted
            pass
    frames = frames_of_recordings(recordings, n_time_bins, denoise_us, crop, desc=desc)
    labels = torch.tensor([rec.label for rec in recordings], dtype=torch.int64)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        remove_stale(cache_dir, "frames-*.tmp")
        torch.save({"frames": frames, "labels": labels,
                    "files": [str(rec.path) for rec in recordings],
                    "settings": {"n_time_bins": n_time_bins, "denoise_us": denoise_us, "crop": crop}}, tmp)
        tmp.replace(path)
    except (OSError, RuntimeError) as err:      # torch.save reports a full disk as a RuntimeError
        with contextlib.suppress(OSError):
            tmp.unlink()
        log.warning("frames not cached: cannot write %s (%s); set data.cache_dir to a writable folder to skip "
                    "this work next time", cache_dir, getattr(err, "strerror", None) or str(err).splitlines()[0])
    return frames, labels


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:                      # alive, another user's
        return True
    return True


def remove_stale(folder: Path, pattern: str) -> list[Path]:
    """Remove the leftovers of killed processes in ``folder``: entries matching ``pattern`` whose
    name carries the id of a process that no longer runs (``<name>.<pid>.tmp``,
    ``.building-<key>-<pid>``). Returns what was removed."""
    removed = []
    for path in folder.glob(pattern):
        digits = path.name.removesuffix(".tmp").replace("-", ".").rpartition(".")[2]
        if digits.isdigit() and int(digits) != os.getpid() and not _pid_alive(int(digits)):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
            removed.append(path)
    return removed


def _die_with_parent() -> None:
    """Worker initializer: on Linux, the worker is killed when the process that started it dies
    (``kill -9`` of a build included), instead of running on with nobody to collect its work."""
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1                                     # prctl option (linux/prctl.h)
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """Processes for data preparation that die with their parent."""
    return ProcessPoolExecutor(workers, initializer=_die_with_parent)
