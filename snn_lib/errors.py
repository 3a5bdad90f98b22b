"""Errors that a user can fix.

Every exception here carries a one-line message that names the file or setting at fault and says
what to do. The command-line tools print that line (``snn-train: ...``) and exit with status 2
instead of showing a traceback; library callers catch :class:`SnnError`.
"""


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
