"""Files that survive a crash: written whole or not at all.

:func:`atomic_write` writes a temporary file, flushes it to the disk (``fsync``), renames it over
the target and flushes the folder, so that after a crash or a power cut the target holds either
its old or its new content, whole. Every file a command writes goes through it: checkpoints,
metrics, figures, results files.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .errors import file_error


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


__all__ = ["atomic_write"]
