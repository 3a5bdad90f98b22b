"""N-MNIST on disk: the file format, the folder layout, and the download.

Layout (Orchard et al. 2015): ``ROOT/Train/<label>/<id>.bin`` and ``ROOT/Test/<label>/<id>.bin``,
labels ``0``-``9``. tonic's download puts the same layout under ``ROOT/NMNIST/``; both are found.

Format: 5 bytes (40 bits) per event, big-endian fields::

    byte 0: x (8 bits)      byte 1: y (8 bits)
    bytes 2-4: polarity (1 bit, 1 = ON) | timestamp (23 bits, microseconds)

Events are returned as tonic's structured array with fields x, y, t, p.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tonic

from ..errors import DataError

SENSOR_SIZE = (34, 34, 2)               # (width, height, polarities), as tonic.datasets.NMNIST
EVENT_DTYPE = tonic.datasets.NMNIST.dtype
SPLITS = {"train": "Train", "test": "Test"}
LAYOUT_HINT = "Expected ROOT/Train/<label>/<id>.bin and ROOT/Test/<label>/<id>.bin (the N-MNIST layout)"
SAMPLE_ROOT = Path(__file__).resolve().parent / "nmnist_sample"    # package data, see sample_root()
MAX_RECORDING_BYTES = 16 * 2**20
"""The largest ``.bin`` file read (3.4 M events): 400,000 events per second over the 8.4 s that
23-bit microsecond timestamps span, 470 times the largest of 1,000 real N-MNIST recordings (35.8 KB,
about 7,000 events in 300 ms). A larger file is refused before it is read (framing it would take
gigabytes)."""


def read_events(path: str | Path) -> np.ndarray:
    """Events of one ``.bin`` recording, read with tonic; a DataError names a bad file."""
    path = Path(path)
    _require_file(path)
    try:
        size = path.stat().st_size
        if size == 0:
            raise DataError(f"{path}: the file is empty; delete it or download N-MNIST again.")
        if size > MAX_RECORDING_BYTES:
            raise DataError(f"{path}: {size:,} bytes is more than a recording can hold ({MAX_RECORDING_BYTES:,} bytes, "
                            f"{MAX_RECORDING_BYTES // 5:,} events: see MAX_RECORDING_BYTES); it is not an N-MNIST "
                            "recording: remove it from the data folder.")
        if size % 5:
            raise DataError(f"{path}: {size} bytes is not a whole number of 5-byte N-MNIST events "
                            "(truncated or not an N-MNIST file); delete it or download N-MNIST again.")
        events = tonic.io.read_mnist_file(str(path), dtype=EVENT_DTYPE)
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or err}); check its permissions or copy it "
                        "again.") from None
    width, height, _ = SENSOR_SIZE
    if len(events) and (events["x"].max() >= width or events["y"].max() >= height):
        raise DataError(f"{path}: events outside the {width}x{height} N-MNIST sensor "
                        "(corrupt or not an N-MNIST file); delete it or download N-MNIST again.")
    return events


def write_events(path: str | Path, events: np.ndarray) -> None:
    """Write events (fields x, y, t in microseconds, p in {0, 1}) as an N-MNIST ``.bin`` file.

    N-MNIST recordings last about 0.3 s, far below the 23-bit timestamp limit (8.4 s), so no
    overflow markers are written; later timestamps are refused. The file is written to a
    temporary name and renamed, so a killed writer never leaves half a file.
    """
    events = events[np.argsort(events["t"], kind="stable")]     # (a structured sort is 10x slower)
    x, y, t, p = (np.asarray(events[k], dtype=np.int64) for k in ("x", "y", "t", "p"))
    if len(t) and not (0 <= t.min() and t.max() < 2**23 and 0 <= x.min() and x.max() <= 255
                       and 0 <= y.min() and y.max() < 240 and set(np.unique(p)) <= {0, 1}):
        raise ValueError("N-MNIST events need 0 <= x <= 255, 0 <= y < 240, p in {0, 1} "
                         "and 0 <= t < 2**23 microseconds")
    record = np.empty((len(t), 5), dtype=np.uint8)
    record[:, 0] = x
    record[:, 1] = y
    record[:, 2] = (p << 7) | (t >> 16)
    record[:, 3] = (t >> 8) & 0xFF
    record[:, 4] = t & 0xFF
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    record.tofile(tmp)
    tmp.replace(path)


def make_events(x, y, t, p) -> np.ndarray:
    """A tonic structured event array from four equally long sequences."""
    events = np.zeros(len(t), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x, y, t, p
    return events


@dataclass(frozen=True)
class Recording:
    path: Path
    label: int


def find_root(root: str | Path) -> Path | None:
    """The folder that holds Train/ (ROOT itself, or ROOT/NMNIST as tonic lays it out), or None."""
    root = Path(root)
    for candidate in (root, root / "NMNIST"):
        if (candidate / "Train").is_dir() or (candidate / "Test").is_dir():
            return candidate
    return None


def sample_root() -> Path:
    """The folder of the 20 real N-MNIST recordings that ship with snn_lib: ``Train/<label>/<id>.bin``,
    the first two recordings of each digit in the training split (``<id>``: the 1-based index of the
    MNIST training image). They are package data, so they are there wherever snn_lib is installed
    (editable, from git on Colab, from a wheel). Licence and provenance: the README.md beside them.

    ::

        # 20, sorted by label
        recordings = list_recordings(sample_root(), "train")
        # x, y, t (us), p
        events = read_events(recordings[0].path)
    """
    if not (SAMPLE_ROOT / "Train").is_dir():
        raise DataError(f"snn_lib's N-MNIST sample is missing from {SAMPLE_ROOT}: this installation of snn_lib "
                        "lacks its package data; reinstall it (pip install --force-reinstall snn_lib, or "
                        "pip install -e . from a clone).")
    return SAMPLE_ROOT


def list_recordings(root: str | Path, split: str) -> list[Recording]:
    """Every ``.bin`` file of a split, sorted by label then file name (a stable order).

    Raises a DataError naming the folder when the split is missing or laid out wrongly.
    """
    folder = Path(root) / SPLITS[split]
    if not folder.is_dir():
        raise DataError(f"data.root '{root}' has no {SPLITS[split]}/ folder. {LAYOUT_HINT}.")
    recordings = []
    for entry in sorted(folder.iterdir()):
        if not entry.is_dir():
            continue
        if entry.name not in {str(d) for d in range(10)}:
            raise DataError(f"{entry}: label folders must be named 0 to 9; move or remove this "
                            f"folder. {LAYOUT_HINT}.")
        files = sorted(entry.glob("*.bin"))
        for f in files:
            _require_file(f)
        recordings += [Recording(f, int(entry.name)) for f in files]
    if not recordings:
        raise DataError(f"{folder} holds no <label>/<id>.bin recordings. {LAYOUT_HINT}.")
    missing = sorted(set(range(10)) - {rec.label for rec in recordings})
    if missing:
        raise DataError(f"{folder} has no recordings of label {', '.join(map(str, missing))} (expected "
                        f"{folder}/<label>/<id>.bin for every label 0 to 9); add them, or check the folder "
                        "is not a link to another one.")
    return recordings


def _require_file(path: Path) -> None:
    """A DataError naming ``path`` unless it is a regular file that can be read."""
    if path.is_file():
        return
    if path.is_dir():
        why = "a folder, not a recording"
    elif path.is_symlink():
        why = "a symbolic link that leads nowhere (broken, or a loop)"
    else:
        why = "missing or not a regular file"
    raise DataError(f"{path}: {why}; remove or replace it.")


def download_nmnist(root: str | Path) -> Path:
    """Download and unpack N-MNIST with tonic into ``ROOT/NMNIST``; returns that folder.

    Needs internet (about 1 GB). A failure is turned into a DataError that says how to place
    the files by hand or work offline.
    """
    root = Path(root)
    try:
        os.makedirs(root, exist_ok=True)
        for train in (True, False):
            tonic.datasets.NMNIST(save_to=str(root), train=train)
    except Exception as err:  # noqa: BLE001 - any download failure gets the same advice
        raise DataError(
            f"downloading N-MNIST into data.root '{root}' failed ({type(err).__name__}: {err}). "
            "Download Train.zip and Test.zip from https://www.garrickorchard.com/datasets/n-mnist "
            f"and unzip them into {root} (giving {root}/Train/<label>/<id>.bin), "
            "or use data.name=nmnist_sim to work offline.") from None
    return root / "NMNIST"


def locate_nmnist(root: str | Path, download: bool) -> Path:
    """The N-MNIST folder under ``root``, downloading it with tonic if allowed and absent."""
    found = find_root(root)
    if found is not None:
        return found
    if not download:
        raise DataError(f"data.root '{root}' holds no N-MNIST recordings. {LAYOUT_HINT}; "
                        "set data.download=true to fetch it, or use data.name=nmnist_sim.")
    return download_nmnist(root)
