"""Measured results as data: the hardware line of every results file, the results files of
``benchmarks/results/`` (written as ``NAME.json`` and ``NAME.md``, read back as data), and the
report of many runs (``snn-report``). Showing them on a book page is :mod:`snn_lib.pages`' job.

::

    # 'Intel(R) Xeon(R) (AVX2, AVX-512), 2 cores, 2 torch threads,
    #  load average 1.2'
    hardware(torch.device("cpu"))
    # a results file: command, hardware, date, software, rows
    # (see results_meta)
    data = load_results("real_1k_accuracy")
    data["rows"][0]["test_acc"]
    # one row per setting, over its seeds
    rows = summarize(load_runs(["exp/lr_sweep"]))
    print(report_markdown(rows))

A report groups run folders by their setting (the config less the seed and the settings that only
say where or how fast a run goes), and gives for each: the number of runs and their seeds, the
test accuracy at the last epoch and at the epoch the validation split chose (where the runs have
one), each as mean +- standard deviation and range over the runs, the epochs and the time per
epoch, with the settings that differ between the rows.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import Config, config_from_yaml, flat_settings
from .errors import SnnError
from .rundir import chosen_epoch, read_metrics_csv

_UNITS = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("amx_bf16", "AMX-BF16"))


def hardware(device: torch.device | str = "cpu", load: bool = True) -> str:
    """The machine a measurement ran on, in words: the GPU's name, or the CPU's model, vector
    units, cores and torch threads; with the load average (``load``), since a shared machine is
    slower."""
    device = torch.device(device)
    load = f", load average {os.getloadavg()[0]:.1f}" if load and hasattr(os, "getloadavg") else ""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}){load}"
    name, flags = platform.processor() or platform.machine() or "CPU", []
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
        name = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), name)
        flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    except OSError:
        pass
    units = [unit for flag, unit in _UNITS if flag in flags]
    return (f"{name}{' (' + ', '.join(units) + ')' if units else ''}, {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} torch threads{load}")


def find_results_dir(start: str | Path | None = None) -> Path | None:
    """``benchmarks/results`` of the repository that holds ``start`` (default: the working
    directory), or None where there is none (a notebook opened alone, e.g. on Colab)."""
    here = Path(start or Path.cwd()).resolve()
    return next((p / "benchmarks" / "results" for p in (here, *here.parents)
                 if (p / "benchmarks" / "results").is_dir()), None)


# ---- results files: data first, Markdown second -----------------------------------------------------
#
# Every benchmark and script writes NAME.json (what pages, the README and reports read) and NAME.md
# (the same, rendered for a person) into benchmarks/results/. The JSON holds:
#
#     command    the command that made the file, run from the repository root
#     hardware   the machine, in words (hardware(device, load=False))
#     load_average   the 1-minute load average when the measurement started
#     date       "YYYY-MM-DD HH:MM UTC"
#     software   {"torch": ..., "snn_lib": ..., "python": ...}
#     rows       the measurements: a list of flat dicts, one per row of the main table
#
# and whatever else the measurement needs (settings, summaries over seeds, notes, more tables).

def results_meta(command: str, device: torch.device | str = "cpu") -> dict:
    """The header of a results file (see above) for a measurement made now on ``device``."""
    import sys
    import time

    from . import __version__
    return {"command": command, "hardware": hardware(device, load=False),
            "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "software": {"torch": torch.__version__, "snn_lib": __version__,
                         "python": ".".join(map(str, sys.version_info[:3]))}}


def write_results(path: str | Path, data: dict, markdown: str) -> tuple[Path, Path]:
    """Write a results file's data, ``NAME.json``, and its rendering, ``NAME.md``, atomically
    (``path``: either name, or the stem); returns both paths."""
    from .files import atomic_write
    stem = Path(path).with_suffix("") if Path(path).suffix in (".json", ".md") else Path(path)
    json_path, md_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".md")
    atomic_write(json_path, json.dumps(data, indent=1, allow_nan=True) + "\n")
    atomic_write(md_path, markdown if markdown.endswith("\n") else markdown + "\n")
    return json_path, md_path


def load_results(name: str | Path, results_dir: str | Path | None = None) -> dict:
    """The data of a results file: ``name`` is a path, or a name in ``results_dir`` (default
    :func:`find_results_dir`), as ``load_results("real_1k_accuracy")`` or
    ``load_results("real_1k_run/README")`` (``.json`` added where missing). A one-line SnnError
    when it is missing or not JSON."""
    path = _results_path(name, results_dir, ".json")
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SnnError(f"results file {path} does not exist; run the command that makes it (benchmarks/README.md), "
                       "or open the repository that holds benchmarks/results.") from None
    except (OSError, ValueError) as err:
        raise SnnError(f"results file {path} cannot be read ({type(err).__name__}); restore it with git.") from None


def load_curves(name: str | Path, results_dir: str | Path | None = None) -> dict[str, dict[int, list[dict]]]:
    """A curves file (CSV: ``row``, ``seed``, then the columns of a run's ``metrics.csv``, one
    line per epoch of each run, as ``small_real_ablation_curves.csv``) as ``{row: {seed: history}}``,
    each history a list of epochs as :func:`snn_lib.rundir.read_metrics_csv` gives them. ``name``
    as for :func:`load_results` (``.csv``); a one-line SnnError when it is missing."""
    path = _results_path(name, results_dir, ".csv")
    curves: dict[str, dict[int, list[dict]]] = {}
    try:
        with open(path, newline="") as f:
            for line in csv.DictReader(f):
                row, seed = line.pop("row"), int(line.pop("seed"))
                epoch = {k: (int(v) if k == "epoch" else float(v)) for k, v in line.items() if v not in ("", None)}
                curves.setdefault(row, {}).setdefault(seed, []).append(epoch)
    except FileNotFoundError:
        raise SnnError(f"curves file {path} does not exist; run the command that makes it (benchmarks/README.md), "
                       "or open the repository that holds benchmarks/results.") from None
    except (OSError, ValueError, KeyError) as err:
        raise SnnError(f"curves file {path} cannot be read ({type(err).__name__}); restore it with git.") from None
    return curves


def _results_path(name: str | Path, results_dir: str | Path | None, suffix: str) -> Path:
    """``name`` with ``suffix``: as it is when absolute or an existing file, else in ``results_dir``
    (default :func:`find_results_dir`)."""
    path = Path(name)
    if path.suffix != suffix:
        path = path.with_name(path.name + suffix)
    if path.is_absolute() or (results_dir is None and path.parent.parts and path.is_file()):
        return path
    folder = Path(results_dir) if results_dir is not None else find_results_dir()
    return folder / path if folder is not None else path


# ---- the report of many runs (snn-report) -----------------------------------------------------------

NOT_A_SETTING = ("seed", "exp_id", "exp_root", "train.resume", "train.device", "train.threads",
                 "train.num_animations", "data.cache_dir", "data.download")
"""Keys that do not change what a run computes, left out when runs are grouped by setting."""


@dataclass
class Run:
    path: Path
    config: Config
    history: list[dict]


def find_run_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """Run folders (holding ``config.yaml`` and ``metrics.csv``) at or under each path; a path
    may be a glob. A path with none is a one-line SnnError."""
    found: list[Path] = []
    for pattern in paths:
        matches = [Path(p) for p in sorted(glob.glob(str(pattern)))] or [Path(pattern)]
        runs = sorted({f.parent for m in matches for f in ([m / "metrics.csv"] if (m / "metrics.csv").is_file()
                                                            else m.rglob("metrics.csv"))
                       if (f.parent / "config.yaml").is_file()})
        if not runs:
            raise SnnError(f"{pattern}: no run folder (config.yaml and metrics.csv) at or under it; give the folder "
                           "of a run or of a sweep, e.g. exp/lr_sweep.")
        found += [r for r in runs if r not in found]
    return found


def load_runs(paths: Sequence[str | Path]) -> list[Run]:
    """Every run at or under ``paths`` (:func:`find_run_dirs`), with its config and metrics."""
    import logging

    import yaml
    runs, empty = [], []
    for path in find_run_dirs(paths):
        history = read_metrics_csv(path / "metrics.csv")            # a damaged file: a one-line SnnError
        if not history:                 # a run in its first epoch, or a damaged file: no epoch to report
            empty.append(path)
            continue
        try:
            config = config_from_yaml((path / "config.yaml").read_text(encoding="utf-8"))
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise SnnError(f"{path / 'config.yaml'} cannot be read as a run's config ({type(err).__name__}: "
                           f"{' '.join(str(err).split())[:200]}); restore it, or leave its run folder out.") from None
        runs.append(Run(path, config, history))
    if empty:
        names = ", ".join(str(p) for p in empty[:5]) + (", ..." if len(empty) > 5 else "")
        if not runs:
            raise SnnError(f"no finished epoch to report: metrics.csv of {names} holds no row; wait for the first "
                           "epoch to end, or give other run folders.")
        logging.getLogger("snn_lib").warning("left out (metrics.csv holds no epoch yet): %s", names)
    return runs


def setting_of(cfg: Config) -> dict:
    """What a run computes: its flat config less :data:`NOT_A_SETTING`."""
    return {k: v for k, v in flat_settings(cfg).items() if k not in NOT_A_SETTING}


def spread(values: Sequence[float]) -> dict:
    """``{"mean", "std", "min", "max", "n"}`` of ``values`` (std: the sample standard deviation, 0 for one)."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def val_chosen(history: list[dict]) -> dict | None:
    """The epoch the validation split chose (:func:`snn_lib.rundir.chosen_epoch`), or None
    where the run has no validation split."""
    return chosen_epoch(history, "val")


def summarize(runs: Sequence[Run]) -> list[dict]:
    """One row per distinct setting: the settings that differ between rows, the runs and seeds,
    and the test accuracy (last epoch, validation-chosen epoch), epochs and seconds per epoch."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(sorted(setting_of(run.config).items(), key=str)), []).append(run)
    keys = sorted({k for g in groups for k, _ in g})
    varying = [k for k in keys if len({dict(g).get(k) for g in groups}) > 1]
    rows = []
    for group, members in groups.items():
        setting = dict(group)
        chosen = [val_chosen(r.history) for r in members]
        rows.append({
            "setting": {k: setting.get(k) for k in varying},
            "runs": len(members),
            "seeds": sorted(r.config.seed for r in members),
            "epochs": sorted({r.history[-1]["epoch"] for r in members}),
            "final_test_acc": spread([r.history[-1]["test_acc"] for r in members]),
            "val_chosen_test_acc": spread([c["test_acc"] for c in chosen]) if all(chosen) else None,
            "epoch_seconds": statistics.fmean(statistics.median(x["epoch_seconds"] for x in r.history)
                                              for r in members),
            "folders": [str(r.path) for r in members],
        })
    return rows


def _pct(s: dict | None) -> str:
    if s is None:
        return "n/a (no validation split)"
    if s["n"] == 1:
        return f"{100 * s['mean']:.1f}% (1 run)"
    return f"{100 * s['mean']:.1f}% +- {100 * s['std']:.1f} ({100 * s['min']:.1f}-{100 * s['max']:.1f}%, {s['n']} runs)"


def _setting_text(setting: dict) -> str:
    return " ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in setting.items()) or "(one setting)"


def report_markdown(rows: Sequence[dict], title: str = "Runs", command: str | None = None) -> str:
    """The report as a Markdown table (accuracies in percent: mean +- std (range, runs))."""
    lines = [f"# {title}", ""]
    if command:
        lines += [f"Made by `{command}`.", ""]
    lines += ["| setting | runs (seeds) | test acc, last epoch | test acc, val-chosen epoch | epochs | s / epoch |",
              "|---|---|---|---|---|---:|"]
    for r in rows:
        seeds = ", ".join(map(str, r["seeds"]))
        epochs = ", ".join(map(str, r["epochs"]))
        lines.append(f"| {_setting_text(r['setting'])} | {r['runs']} ({seeds}) | {_pct(r['final_test_acc'])} | "
                     f"{_pct(r['val_chosen_test_acc'])} | {epochs} | {r['epoch_seconds']:.1f} |")
    lines += ["", "Accuracy on each run's test split: mean +- sample standard deviation over the runs, with the "
              "range and the number of runs."]
    return "\n".join(lines) + "\n"


def report_csv(rows: Sequence[dict]) -> str:
    """The report as CSV, one line per row, accuracies as fractions."""
    keys = sorted({k for r in rows for k in r["setting"]})
    fields = keys + ["runs", "seeds", "epochs", "final_test_acc_mean", "final_test_acc_std", "final_test_acc_min",
                     "final_test_acc_max", "val_chosen_test_acc_mean", "val_chosen_test_acc_std",
                     "val_chosen_test_acc_min", "val_chosen_test_acc_max", "epoch_seconds"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        line = {k: r["setting"].get(k) for k in keys}
        line.update(runs=r["runs"], seeds=" ".join(map(str, r["seeds"])), epochs=" ".join(map(str, r["epochs"])),
                    epoch_seconds=round(r["epoch_seconds"], 3))
        for name in ("final_test_acc", "val_chosen_test_acc"):
            for stat in ("mean", "std", "min", "max"):
                line[f"{name}_{stat}"] = "" if r[name] is None else round(r[name][stat], 6)
        writer.writerow(line)
    return out.getvalue()
