"""The command line: ``snn-train``, ``snn-eval``, ``snn-make-data`` and ``snn-export`` (hydra,
``key=value`` overrides).

::

    snn-train exp_id=subset1_epochs100 data.subset=1 train.num_epochs=100
    snn-train data.name=nmnist_sim train.device=cpu  # offline, no download
    snn-eval checkpoint=exp/default/checkpoints/best.pt \\
        out=exp/default/eval.json
    snn-make-data out=data/nmnist_sim
    snn-export checkpoint=exp/default/checkpoints/best.pt out=model.nir

Each command builds a typed config (:mod:`snn_lib.config`) and calls a plain library function
(:func:`snn_lib.train.run_training`, :func:`snn_lib.evaluate.evaluate_checkpoint`,
:func:`snn_lib.data.nmnist_sim.make_sim_dataset`, :func:`snn_lib.export.export_checkpoint`), so a notebook can do the same without hydra.
Nothing in :mod:`snn_lib` imports this module: it is the hydra layer of the entry points alone.
An unknown key or a bad value is refused before any work, with one line on stderr and exit
status 2. Hydra writes no ``outputs/`` folders.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from .config import Config, DataConfig, check_overrides, config_from_dict
from .errors import ConfigError, SnnError, file_error

_SIM = DataConfig()          # the simulated dataset's defaults, as snn-train uses them

# The schemas below are stored in hydra's ConfigStore; snn_lib/conf/<command>.yaml puts each under
# hydra settings that keep hydra quiet (no outputs/ folder, no logging set-up, same directory).

@dataclass
class EvalData:
    """Data settings for snn-eval; each unset (null) one is taken from the checkpoint's config."""
    name: Optional[str] = None
    root: Optional[str] = None
    download: Optional[bool] = None
    cache_dir: Optional[str] = None
    subset: Optional[int] = None
    test_from_train: Optional[float] = None


@dataclass
class EvalCommand:
    checkpoint: str = ""                # path of a .pt file written by snn-train (required)
    out: str = ""                       # JSON file for the results; "" = print only
    split: str = "test"                 # test, val (the validation split) or train
    device: str = "auto"
    batch_size: int = 256
    cost: bool = True                   # also count spikes, sparsity and synaptic operations (snn_lib.cost)
    data: EvalData = field(default_factory=EvalData)


@dataclass
class MakeDataCommand:
    out: str = "data/nmnist_sim"
    train_per_class: int = _SIM.sim_train_per_class
    test_per_class: int = _SIM.sim_test_per_class
    recordings_per_image: int = _SIM.sim_recordings_per_image
    seed: int = 0


@dataclass
class ExportCommand:
    checkpoint: str = ""                # path of a .pt file written by snn-train (required)
    out: str = "model.nir"              # the NIR file (HDF5) to write
    dt: float = 1e-4                    # seconds per time step the graph assumes (snn_lib.export)


_store = ConfigStore.instance()
_store.store(name="snn_train_schema", node=Config)
_store.store(name="snn_eval_schema", node=EvalCommand)
_store.store(name="snn_make_data_schema", node=MakeDataCommand)
_store.store(name="snn_export_schema", node=ExportCommand)


def _to_dict(cfg) -> dict:
    """A hydra config as plain Python containers."""
    return OmegaConf.to_container(cfg, resolve=True)


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("snn_lib")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _fail(command: str, err: Exception, status: int = 2) -> None:
    print(f"{command}: {err}", file=sys.stderr)
    sys.exit(status)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a cluster preempting the job, ``kill``), raised where the process is, like Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated()


def _stopped(command: str, err: KeyboardInterrupt) -> None:
    """One line and the shell's status for a run stopped by Ctrl-C (130) or SIGTERM (143)."""
    terminated = isinstance(err, _Terminated) or isinstance(err.__cause__, _Terminated)
    what = str(err) or "stopped before any work was saved; nothing to resume."
    _fail(command, f"{'SIGTERM' if terminated else 'Ctrl-C'}: {what}", 143 if terminated else 130)


def _guarded(command: str, work) -> None:
    """Run ``work()``: a user's mistake, an OS error on a file, Ctrl-C or SIGTERM end it in one line."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        work()
    except SnnError as err:
        if getattr(err, "relayed", False):      # process 0 of a data-parallel run says it, once
            sys.exit(2)                         # (snn_lib.distributed.from_main)
        _fail(command, err)
    except OSError as err:
        _fail(command, file_error("access", err.filename or "a file", err))
    except KeyboardInterrupt as err:
        _stopped(command, err)
    # The work is done and its files are written: a SIGTERM from now on (while the interpreter
    # shuts down, when Python no longer runs handlers) must not turn a success into status 143.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


_FAILED_JOBS: list[str] = []        # jobs of this process's sweep that ended in an error
_SWEPT_ENV = "SNN_LIB_SWEPT_KEYS"   # the keys a sweep varies, from the command line to its jobs
                                    # (an environment variable, so that joblib's and submitit's
                                    # processes see it too)


def _job_name() -> str:
    """A sweep job's name: the values it sweeps, as ``seed=0,train.lr=0.001``. Two jobs never
    share a name: a ``/`` of a value (a path) is written ``%2F`` and a ``%`` ``%25``, so that
    ``a/b.pt`` and ``a_b.pt`` stay apart."""
    from hydra.core.hydra_config import HydraConfig
    swept = os.environ.get(_SWEPT_ENV, "").split(",")
    mine = [item for item in HydraConfig.get().overrides.task if item.split("=", 1)[0] in swept]
    return ",".join(sorted(mine)).replace("%", "%25").replace("/", "%2F") or "default"


def _sweep_job(cfg: Config) -> Config:
    """In a sweep (``snn-train -m``), each job runs in {exp_root}/{exp_id}/{the values it sweeps},
    e.g. ``exp/lr_sweep/seed=0,train.lr=0.001``, and a parallel launcher's jobs share the CPU cores
    (``train.threads=0``: cores / parallel jobs)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return cfg
    cfg.exp_root = str(Path(cfg.exp_root) / cfg.exp_id)
    cfg.exp_id = _job_name()
    n_jobs = OmegaConf.select(hydra_cfg, "launcher.n_jobs", default=1) or 1     # joblib; 1: one after another
    if cfg.train.threads == 0 and n_jobs != 1:
        cores = os.cpu_count() or 1
        cfg.train.threads = max(1, cores // (cores if n_jobs < 0 else n_jobs))
    return cfg


def _train(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    multirun = HydraConfig.get().mode == RunMode.MULTIRUN

    def work() -> None:
        from .train import run_training
        _setup_logging()
        run_cfg = _sweep_job(config_from_dict(_to_dict(cfg)).validate())
        result = run_training(run_cfg)
        if os.environ.get("RANK", "0") == "0":          # under torchrun, process 0 speaks for all
            print(f"test accuracy {100 * result.best_test_acc:.2f}% at epoch {result.best_epoch} (best.pt, chosen on the "
                  f"{result.selected_on} split); results in {result.run_dir}/", flush=True)

    if not multirun:
        _guarded("snn-train", work)
        return
    try:                                # a sweep: a failed job is reported and the others run on
        work()
    except KeyboardInterrupt:
        raise
    except Exception as err:  # noqa: BLE001 - any failure of one job, a bug's included, is that job's alone
        if isinstance(err, OSError):
            err = file_error("access", err.filename or "a file", err)
        elif not isinstance(err, SnnError):
            logging.getLogger("snn_lib").debug("job %s failed", _job_name(), exc_info=True)
            err = f"{type(err).__name__}: {' '.join(str(err).split())} (not a setting's fault: please report it)"
        message = f"job {_job_name()}: {err}"
        print(f"snn-train: {message}", file=sys.stderr, flush=True)
        _FAILED_JOBS.append(message)


def _writable_file(path: Path, setting: str) -> None:
    """Refuse, before any work, an output file that cannot be written (so no result is lost)."""
    if path.is_dir():
        raise ConfigError(f"{setting}={path} is a folder: give a file name, e.g. {setting}={path / 'eval.json'}")
    if path.exists() and not path.is_file():        # a device such as /dev/full: it would not be replaced
        raise ConfigError(f"{setting}={path} is not a regular file: give the name of a file, e.g. {setting}=eval.json")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".tmp"), "w"):
            pass
        path.with_name(path.name + ".tmp").unlink()
    except OSError as err:
        raise file_error("write", path, err) from None


def _eval(cfg) -> None:
    def work() -> None:
        from .evaluate import evaluate_checkpoint
        from .rundir import atomic_write
        _setup_logging()
        if not cfg.checkpoint:
            raise ConfigError("checkpoint=PATH is required, e.g. checkpoint=exp/default/checkpoints/best.pt")
        out = Path(cfg.out) if cfg.out else None
        if out is not None:
            _writable_file(out, "out")
        result = evaluate_checkpoint(cfg.checkpoint, _to_dict(cfg.data), cfg.split, cfg.device, cfg.batch_size,
                                     cfg.cost)
        print(f"accuracy {100 * result['accuracy']:.2f}% on {result['samples']} recordings ({cfg.split} split)"
              + (f"; written to {cfg.out}" if out else ""), flush=True)
        if "cost" in result:
            total, ann = result["cost"]["total"], result["cost"]["ann_twin"]
            print(f"per recording: {total['effective_acs']:,.0f} ACs + {total['effective_macs']:,.0f} MACs "
                  f"(dense {total['dense_ops']:,.0f}; ANN twin {ann['macs']:,.0f} MACs), "
                  f"spike rate {total['spike_rate']:.4f}")
        if out is not None:
            atomic_write(out, json.dumps(result, indent=2))
    _guarded("snn-eval", work)


def _make_data(cfg) -> None:
    def work() -> None:
        from .data.nmnist_sim import make_sim_dataset
        _setup_logging()
        if not str(cfg.out).strip():
            raise ConfigError("out= is empty: give the folder to write Train/ and Test/ into, e.g. out=data/nmnist_sim")
        if cfg.test_per_class < 1:
            raise ConfigError(f"test_per_class={cfg.test_per_class} is not valid: expected an integer >= 1 (snn-train "
                              "needs recordings in Test/).")
        try:
            root = make_sim_dataset(cfg.out, train_per_class=cfg.train_per_class,
                                    test_per_class=cfg.test_per_class, recordings_per_image=cfg.recordings_per_image,
                                    seed=cfg.seed)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        print(f"simulated N-MNIST written to {root}/Train and {root}/Test")
    _guarded("snn-make-data", work)


def train_help() -> str:
    """``snn-train --help``: how to call it, and every setting with its default and meaning."""
    import textwrap

    from .config import _setting_text, setting_docs
    lines = ["usage: snn-train [-m] [KEY=VALUE ...]", "",
             "Train the CSNN into exp/{exp_id}/ (README: 'What a training run leaves'). Settings are KEY=VALUE;",
             "-m runs a sweep over comma-separated values (seed=0,1,2); 'snn-train --hydra-help' shows hydra's own",
             "options; torchrun --nproc_per_node=N $(which snn-train) ... trains data-parallel.", "",
             "settings (default):"]
    for key, (value, meaning) in setting_docs().items():
        plain = re.sub(r":\w+:`~?([^`]*)`", r"\1", meaning).replace("``", "")      # reST markup, as text
        lines.append(f"  {key}={_setting_text(value)}")
        lines += textwrap.wrap(plain, 96, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)


def _export(cfg) -> None:
    def work() -> None:
        from .export import export_checkpoint
        _setup_logging()
        if not cfg.checkpoint:
            raise ConfigError("checkpoint=PATH is required, e.g. checkpoint=exp/default/checkpoints/best.pt")
        path = export_checkpoint(cfg.checkpoint, cfg.out, cfg.dt)
        print(f"NIR graph written to {path} (dt = {cfg.dt:g} s per time step)")
    _guarded("snn-export", work)


def _hydra_entry(command: str, config_name: str, schema: type, task):
    """A console entry point running ``task`` under hydra with the stored ``config_name``."""
    def main() -> None:
        if command == "snn-train" and {"--help", "-h"} & set(sys.argv[1:]):
            with contextlib.suppress(BrokenPipeError):          # snn-train --help | head
                print(train_help())
            return
        try:
            swept = check_overrides(schema, sys.argv[1:])
        except SnnError as err:
            _fail(command, err)
        signal.signal(signal.SIGTERM, _on_sigterm)
        os.environ[_SWEPT_ENV] = ",".join(swept)
        try:
            hydra.main(version_base="1.3", config_path="conf", config_name=config_name)(task)()
        except KeyboardInterrupt as err:                     # a sweep stopped by Ctrl-C or SIGTERM
            _stopped(command, err)
        if _FAILED_JOBS:
            _fail(command, f"{len(_FAILED_JOBS)} job(s) of the sweep failed (each said why above); re-run the same "
                           "command with train.resume=auto to retry them and skip the finished ones.", 1)
    return main


def report_main(argv: list[str] | None = None) -> None:
    """``snn-report PATH... [--out DIR] [--name NAME] [--title TEXT]``: the report of many runs
    (snn_lib.report), printed, and written as NAME.json (the data: command, hardware, date and
    one row per setting), NAME.md, NAME.csv and NAME.png (curves) into DIR (default: the one PATH
    given, else the working directory; NAME default ``report``). Plain arguments, not hydra
    settings."""
    import argparse

    parser = argparse.ArgumentParser(prog="snn-report", description=report_main.__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="run folders, sweep folders or globs, e.g. exp/lr_sweep")
    parser.add_argument("--out", help="folder for the report's files")
    parser.add_argument("--name", default="report", help="their name: NAME.json, NAME.md, NAME.csv, NAME.png")
    parser.add_argument("--title", default="Runs", help="the report's heading")
    args = parser.parse_args(argv)

    def work() -> None:
        from .plotting import plot_runs, save_figure
        from .report import load_runs, report_csv, report_markdown, results_meta, summarize, write_results
        from .rundir import atomic_write

        if not args.name or "/" in args.name:
            raise ConfigError(f"--name {args.name!r} is not valid: give a file name without '/', e.g. --name lr_sweep")
        runs = load_runs(args.paths)
        rows = summarize(runs)
        out = Path(args.out) if args.out else Path(args.paths[0]) if len(args.paths) == 1 else Path(".")
        if not out.is_dir():
            out = out.parent if out.name == "metrics.csv" else out
        command = "snn-report " + shlex.join(argv if argv is not None else sys.argv[1:])
        text = report_markdown(rows, args.title, command)
        curves = {(" ".join(f"{k}={v}" for k, v in r["setting"].items()) or "all runs"):
                  [run.history for run in runs if str(run.path) in r["folders"]] for r in rows}
        write_results(out / args.name, {**results_meta(command), "title": args.title, "rows": rows}, text)
        atomic_write(out / f"{args.name}.csv", report_csv(rows))
        save_figure(plot_runs(curves, title=args.title), out / f"{args.name}.png")
        print(text + f"\nwritten to {out}/{args.name}.json, .md, .csv, .png")
    _guarded("snn-report", work)


train_main = _hydra_entry("snn-train", "snn_train", Config, _train)
eval_main = _hydra_entry("snn-eval", "snn_eval", EvalCommand, _eval)
make_data_main = _hydra_entry("snn-make-data", "snn_make_data", MakeDataCommand, _make_data)
export_main = _hydra_entry("snn-export", "snn_export", ExportCommand, _export)
