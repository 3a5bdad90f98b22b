"""Errors that a user can fix.

Every exception here carries a one-line message that names the file or setting at fault and says
what to do. The command-line tools print that line (``snn-train: ...``) and exit with status 2
instead of showing a traceback; library callers catch :class:`SnnError`.
"""

import errno


class SnnError(Exception):
    """A problem with the user's input (a setting, a file, a folder), not a bug in snn_lib."""


class ConfigError(SnnError, ValueError):
    """A setting has a value that cannot work, e.g. ``train.num_epochs=-1``."""


class DataError(SnnError):
    """A data folder or event file is missing, laid out wrongly, or corrupt."""


def require(ok: bool, setting: str, value: object, expected: str) -> None:
    """Raise a ConfigError naming ``setting``, its ``value`` and what it expects, unless ``ok``."""
    if not ok:
        raise ConfigError(f"{setting}={value!r} is not valid: expected {expected}.")


_ADVICE = {
    errno.ENOSPC: "the disk is full; free some space",
    errno.EDQUOT: "the disk quota is used up; free some space",
    errno.EROFS: "the file system is read-only; choose a writable folder",
    errno.EACCES: "permission denied; choose a folder you may write to",
    errno.EPERM: "permission denied; choose a folder you may write to",
    errno.ENOTDIR: "a part of that path is a file, not a folder",
    errno.EISDIR: "it is a folder; give a file name",
    errno.ENAMETOOLONG: "the name is too long; use a shorter one",
    errno.ENOENT: "a folder on that path does not exist",
}


def file_error(action: str, path: object, err: OSError) -> SnnError:
    """A one-line SnnError for an operating-system error on ``path``: what failed, why, what to do."""
    why = _ADVICE.get(err.errno, err.strerror or type(err).__name__)
    return SnnError(f"cannot {action} {path}: {why} ({err.strerror or err}).")
