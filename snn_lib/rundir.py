"""The run folder ``exp/{exp_id}``: one run at a time, what counts as a run, what it records, and
whether it may be resumed.

* **One run per folder.** :class:`RunLock` holds an exclusive operating-system lock
  (``fcntl.flock``) on ``{run_dir}/.lock`` for the whole run. The lock dies with its process
  (``kill -9`` included), so there is no stale marker to clean; a second start on the same
  folder is refused and told which process holds it.
* **What counts as a run.** Any of :data:`ARTEFACTS` (or a spike animation) in the folder:
  :func:`run_artefacts` lists them.
* **What a run records.** :class:`RunFolder` is the ``on_epoch`` of :func:`snn_lib.train.fit`:
  after each epoch it writes ``last.pt``, then ``best.pt`` when the epoch is the new best, then
  ``metrics.csv`` and the curves; at the end, the spike animations. The training loop knows
  nothing of files, and this module is the one that draws (through :mod:`snn_lib.plotting`).
* **Resuming.** :func:`resume_state` says what a folder holds for a configuration: nothing to
  resume, or the last checkpoint, after checking that it is the same run (:func:`check_resume`).
* **Atomic and durable files.** Every file is written with :func:`snn_lib.files.atomic_write`
  (re-exported here): whole or not at all.
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

import torch

from .checkpoint import load_checkpoint, repair_best, save_checkpoint, upgrade_config
from .config import Config, config_from_dict, config_to_dict, config_to_yaml
from .errors import ConfigError, SnnError, file_error
from .files import atomic_write
from .plotting import animate_spike_counts, plot_test_acc, plot_train_loss, save_figure, save_gif

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


# ---- which split chooses best.pt --------------------------------------------------------------

def selected_on(cfg: Config) -> str:
    """The split that chooses ``best.pt`` and early stopping: ``train.select_on``, or ``test``
    when the run has no validation split."""
    return cfg.train.select_on if cfg.data.val_from_train > 0 else "test"


# ---- what a run records ----------------------------------------------------------------------

class RunFolder:
    """The files of one run, recorded epoch by epoch: pass :meth:`record` as ``on_epoch`` to
    :func:`snn_lib.train.fit`. Only process 0 of a data-parallel run writes (``writes=False`` for
    the others, which only follow the epochs). ``last_epoch`` is the epoch ``last.pt`` holds."""

    def __init__(self, run_dir: str | Path, cfg: Config, frame_shape: tuple[int, ...], writes: bool = True,
                 last_epoch: int = 0):
        self.run_dir, self.cfg, self.frame_shape, self.writes = Path(run_dir), cfg, tuple(frame_shape), writes
        self.last_epoch = last_epoch
        self.recording = 0                  # the epoch whose files are being written, 0 between them

    @property
    def last_path(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "checkpoints" / "best.pt"

    def start(self) -> None:
        """The folder's ``checkpoints/`` and ``config.yaml`` (the config as this process runs it)."""
        if self.writes:
            (self.run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            atomic_write(self.run_dir / "config.yaml", config_to_yaml(self.cfg))

    def record(self, end) -> None:
        """After an epoch (a :class:`snn_lib.train.EpochEnd`): ``last.pt`` first, naming the epoch
        ``best.pt`` must hold, then ``best.pt`` (see :func:`snn_lib.checkpoint.repair_best`), then
        ``metrics.csv`` and the two curves."""
        if not self.writes:
            self.last_epoch = end.epoch
            return
        self.recording = end.epoch
        save = (end.model, end.optimizer, self.cfg, end.epoch, end.history, self.frame_shape, end.best_epoch,
                end.scheduler)
        save_checkpoint(self.last_path, *save)
        self.last_epoch = end.epoch
        if end.improved:
            save_checkpoint(self.best_path, *save)
        write_metrics_csv(self.run_dir / "metrics.csv", end.history)
        save_figure(plot_train_loss(end.history), self.run_dir / "train_loss.png")
        save_figure(plot_test_acc(end.history), self.run_dir / "test_acc.png")
        self.recording = 0

    def animate(self, model: torch.nn.Module, loader, count: int, device: torch.device) -> list[Path]:
        """``spike_bar_{i}_target{t}.gif`` of ``count`` test digits (none for a network without
        spikes, the ANN twin)."""
        if not self.writes or self.cfg.model.name == "ann":
            return []
        return save_spike_animations(model, loader, self.run_dir, count, device)


def save_spike_animations(model: torch.nn.Module, loader, run_dir: Path, count: int,
                          device: torch.device) -> list[Path]:
    """``spike_bar_{i}_target{t}.gif`` for the first ``count`` test digits of distinct classes where possible."""
    labels = loader.labels.cpu()
    first_of_class: dict[int, int] = {}                           # one digit per class first
    for i, label in enumerate(labels.tolist()):
        first_of_class.setdefault(label, i)
    chosen = sorted(first_of_class.values())[:count]
    chosen += [i for i in range(len(labels)) if i not in chosen][:count - len(chosen)]
    if not chosen:
        return []
    model.eval()
    index = torch.tensor(chosen, device=loader.frames.device)
    with torch.no_grad():
        spk, _ = model(loader.frames[index].float().transpose(0, 1).to(device))   # [T, n, 10]
    paths = []
    for i, sample in enumerate(chosen):
        target = int(labels[sample])
        path = run_dir / f"spike_bar_{i}_target{target}.gif"
        save_gif(animate_spike_counts(spk[:, i], target), path)
        paths.append(path)
    return paths


# ---- resuming ----------------------------------------------------------------------------------

def resume_state(cfg: Config, run_dir: Path) -> dict | None:
    """What the run folder holds for ``cfg``: None to start afresh, or the last checkpoint to
    continue from. Refuses (one-line ConfigError) to overwrite a run, and (``train.resume=true``)
    to resume nothing; ``train.resume=auto`` continues a run where there is one."""
    artefacts = run_artefacts(run_dir)
    last_path = run_dir / "checkpoints" / "last.pt"
    if cfg.train.resume is False or (cfg.train.resume == "auto" and not artefacts):
        if artefacts:
            raise ConfigError(f"{run_dir} already holds a run ({', '.join(artefacts)}); set train.resume=true to "
                              "continue it, or choose another exp_id.")
        return None
    if not artefacts:
        others = sorted(p.name for p in run_dir.parent.iterdir() if p.is_dir() and run_artefacts(p)) \
            if run_dir.parent.is_dir() else []
        known = f" (runs in {run_dir.parent}: {', '.join(others[:8])}{', ...' if len(others) > 8 else ''})" \
            if others else ""
        raise ConfigError(f"train.resume=true but {run_dir} holds no run to resume: check exp_id{known}, or leave "
                          "train.resume out to start a new run.")
    if not last_path.is_file():                      # stopped before its first epoch ended
        if (run_dir / "config.yaml").is_file():
            import yaml
            old = config_from_dict(upgrade_config(yaml.safe_load((run_dir / "config.yaml").read_text()) or {}))
            check_same_run(old, cfg, run_dir / "config.yaml")
        return None
    state = load_checkpoint(last_path)
    check_resume(config_from_dict(state["config"]), cfg, last_path)
    return state


def check_same_run(old: Config, cfg: Config, path: Path) -> None:
    """Resuming continues the same run: the data, model and seed must be those of ``path``."""
    for part in ("data", "model"):
        before, after = config_to_dict(getattr(old, part)), config_to_dict(getattr(cfg, part))
        if before != after:
            differ = ", ".join(f"{part}.{k} {before.get(k)} -> {after[k]}" for k in after if before.get(k) != after[k])
            hint = (" (the run was made before the validation split: resume it with data.val_from_train=0)"
                    if part == "data" and "val_from_train" in differ and before.get("val_from_train") == 0 else "")
            raise ConfigError(f"train.resume=true but the {part} settings differ from those in {path} ({differ})"
                              f"{hint}; resume with the same {part}.* settings, or start a new exp_id.")
    if old.seed != cfg.seed:
        raise ConfigError(f"train.resume=true but seed={cfg.seed} differs from the run's seed={old.seed} ({path}); "
                          f"resume with seed={old.seed}, or start a new exp_id.")


REFUSED_ON_RESUME = ("lr_schedule", "init_from")
"""The train.* settings that a resumed run cannot change, since the schedule's state and the
starting weights belong to the run (and so does the split that chooses best.pt,
:func:`selected_on`)."""


def check_resume(old: Config, cfg: Config, path: Path) -> None:
    """Refuse, in one line, to resume the run of ``path`` (made with ``old``) with ``cfg``: other
    data, model or seed (:func:`check_same_run`), a train.* setting of :data:`REFUSED_ON_RESUME`,
    another split choosing best.pt, or more epochs under a learning-rate schedule."""
    check_same_run(old, cfg, path)
    for key in REFUSED_ON_RESUME:
        if getattr(old.train, key) != getattr(cfg.train, key):
            raise ConfigError(f"train.resume=true but train.{key}={getattr(cfg.train, key)!r} differs from the "
                              f"run's {getattr(old.train, key)!r} ({path}); resume with the run's value, or start a "
                              "new exp_id.")
    if selected_on(old) != selected_on(cfg):
        raise ConfigError(f"train.resume=true but best.pt would be chosen on the {selected_on(cfg)} split, and the "
                          f"run chose it on the {selected_on(old)} split ({path}); resume with "
                          f"train.select_on={selected_on(old)}, or start a new exp_id.")
    if cfg.train.lr_schedule != "none" and old.train.num_epochs != cfg.train.num_epochs:
        raise ConfigError(f"train.resume=true but train.num_epochs={cfg.train.num_epochs} differs from the run's "
                          f"{old.train.num_epochs}, over which its train.lr_schedule={cfg.train.lr_schedule} was "
                          "planned; resume with the run's num_epochs, or start a new exp_id with init_from.")


def train_changes(old: Config, cfg: Config) -> list[str]:
    """The train.* settings that differ on resume, as 'train.lr 0.002 -> 0.001'."""
    before, after = config_to_dict(old.train), config_to_dict(cfg.train)
    return [f"train.{k} {before[k]} -> {after[k]}" for k in after if k != "resume" and before.get(k) != after[k]]


__all__ = ["ARTEFACTS", "LOCK_NAME", "METRICS", "REFUSED_ON_RESUME", "RunBusyError", "RunFolder", "RunLock",
           "atomic_write", "check_resume", "check_same_run", "chosen_epoch", "log_to", "read_metrics_csv",
           "resume_state", "run_artefacts", "save_spike_animations", "selected_on", "train_changes",
           "write_metrics_csv"]
