"""The run folder ``exp/{exp_id}``: one run at a time, what counts as a run, files that survive a crash.

* **One run per folder.** :class:`RunLock` holds an exclusive operating-system lock
  (``fcntl.flock``) on ``{run_dir}/.lock`` for the whole run. The lock dies with its process
  (``kill -9`` included), so there is no stale marker to clean; a second start on the same
  folder is refused and told which process holds it.
* **What counts as a run.** Any of :data:`ARTEFACTS` (or a spike animation) in the folder:
  :func:`run_artefacts` lists them.
* **Atomic and durable files.** :func:`atomic_write` writes a temporary file, flushes it to the
  disk (``fsync``), renames it over the target and flushes the folder, so that after a crash or
  a power cut the target holds either its old or its new content, whole.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import socket
import time
from pathlib import Path

from .errors import SnnError, file_error

try:
    import fcntl
except ImportError:                      # not POSIX: no lock (documented in the README)
    fcntl = None

log = logging.getLogger("snn_lib")

ARTEFACTS = ("config.yaml", "train.log", "metrics.csv", "checkpoints", "train_loss.png", "test_acc.png")
"""Files and folders a run leaves; any one of them in a folder means a run is there."""

LOCK_NAME = ".lock"


class RunBusyError(SnnError):
    """Another process is running in this run folder."""


def run_artefacts(run_dir: str | Path) -> list[str]:
    """The artefacts of a run found in ``run_dir`` (names relative to it), sorted; [] if none."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [name for name in ARTEFACTS if (run_dir / name).exists()]
    found += [p.name for p in run_dir.glob("spike_bar_*.gif")]
    return sorted(found)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):                   # not every file system can sync a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically and durably (see the module docstring), creating its
    folder if needed.

    A failure (disk full, read-only folder, ...) removes the temporary file, leaves ``path`` as it
    was, and raises a one-line SnnError naming the file and the cause."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    payload = data.encode() if isinstance(data, str) else data
    if path.exists() and not path.is_file():       # a folder, or a device such as /dev/full: never replaced
        raise SnnError(f"cannot write {path}: it is {'a folder' if path.is_dir() else 'not a regular file'}; "
                       "give the name of a file.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:                         # Ctrl-C included: no .tmp is left behind
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError):
            raise file_error("write", path, err) from None
        raise
    _fsync_dir(path.parent)
    return path


class RunLock:
    """An exclusive lock on a run folder for as long as the ``with`` block runs.

    ``RunLock(run_dir)`` creates the folder if needed; entering it raises :class:`RunBusyError`
    (naming the process that holds it) when another run holds the folder, and a one-line SnnError
    when the folder cannot be created or written.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self._file = None

    def __enter__(self) -> "RunLock":
        path = self.run_dir / LOCK_NAME
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a+")
        except OSError as err:
            raise file_error("create the run folder", self.run_dir, err) from None
        if fcntl is not None:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._file.seek(0)
                holder = self._file.read().strip() or "another process"
                self._file.close()
                raise RunBusyError(f"{self.run_dir} is in use by another run ({holder}); wait for it to end, "
                                   "or choose another exp_id.") from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()} on {socket.gethostname()}, started "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        self._file.flush()
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()                               # releases the lock; the file stays (no race)


# ---- files of a run ----------------------------------------------------------------------------

#: The columns of ``metrics.csv``, one row per epoch (``val_loss``, ``val_acc`` and ``lr`` are
#: empty in the rows of runs made before the validation split, NaN for a run without one).
METRICS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr", "epoch_seconds",
           "samples_per_second"]


def write_metrics_csv(path: str | Path, history: list[dict]) -> None:
    """``metrics.csv`` of a run (columns :data:`METRICS`), written atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRICS)
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, "") for k in METRICS})
    atomic_write(path, text.getvalue())


def read_metrics_csv(path: str | Path) -> list[dict]:
    """The rows of a run's ``metrics.csv`` (epoch as int, the rest as float); a column an older
    run did not write, or left empty, is left out of its rows. A damaged file (not text, a row
    without a whole epoch number, a value that is not a number) is a one-line SnnError naming
    the file and the row."""
    def damaged(why: str) -> SnnError:
        return SnnError(f"{path} is damaged ({why}); restore it, or leave its run folder out.")

    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for line, row in enumerate(csv.DictReader(f), start=2):
                values = {k: v for k, v in row.items() if v not in ("", None)}
                if None in values or "epoch" not in values:
                    raise damaged(f"line {line} is not a row of {', '.join(METRICS[:2])}, ...")
                try:
                    rows.append({k: (int(v) if k == "epoch" else float(v)) for k, v in values.items()})
                except (TypeError, ValueError):
                    bad = next(k for k, v in values.items() if not _is_number(v, whole=k == "epoch"))
                    raise damaged(f"line {line}: {bad}={values[bad]!r} is not a "
                                  f"{'whole number' if bad == 'epoch' else 'number'}") from None
    except UnicodeDecodeError:
        raise damaged("it is not text") from None
    except csv.Error as err:
        raise damaged(f"not CSV: {err}") from None
    return rows


def _is_number(text, whole: bool) -> bool:
    try:
        int(text) if whole else float(text)
    except (TypeError, ValueError):
        return False
    return True


def chosen_epoch(history: list[dict], split: str) -> dict | None:
    """The row of the epoch that ``split`` (``"val"`` or ``"test"``) chooses: the first with the
    best ``{split}_acc``, the epoch ``best.pt`` holds; None where no row has that accuracy (a run
    without a validation split has NaN ``val_acc``). The one home of this rule: training, resume
    and reports all use it."""
    key = f"{split}_acc"
    rows = [r for r in history if r.get(key) is not None and r[key] == r[key]]
    return max(rows, key=lambda r: r[key]) if rows else None      # max keeps the first of equals


@contextlib.contextmanager
def log_to(path: Path):
    """Add ``path`` (appended to) as a handler of the ``snn_lib`` logger for the ``with`` block."""
    try:
        handler = logging.FileHandler(path)
    except OSError as err:
        raise file_error("write", path, err) from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    previous_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(previous_level)
        handler.close()


__all__ = ["ARTEFACTS", "LOCK_NAME", "METRICS", "RunBusyError", "RunLock", "atomic_write", "chosen_epoch", "log_to",
           "read_metrics_csv", "run_artefacts", "write_metrics_csv"]
