"""Does the CSNN use time? Accuracy against T, with the time bins shuffled or reversed, and anytime.

On the recordings of ``--root`` with a fixed tenth held out as the test set
(``data.test_from_train=0.1``: the same recordings for every seed), no validation split
(``data.val_from_train=0``), every network scored from its last checkpoint (``last.pt``), for
each seed:

* the CSNN trained and tested at T = 1 (all events in one frame), 5, 10 and 25;
* the T=25 networks tested with each recording's bins shuffled (:func:`snn_lib.timing.shuffle_bins`,
  one fixed order per recording, from ``--shuffle-seed``) and reversed;
* networks trained on shuffled bins (T=25; a fixed order per training recording, drawn from the
  run's seed) and tested on the shuffled test recordings (the same orders as above) and in order;
* the anytime accuracy of the T=25 networks, the prediction from the first k bins (k = 1..25),
  and what the network costs when stopped after k bins (:func:`snn_lib.timing.cost_per_step`).

Training goes through :func:`snn_lib.train.run_training` with ``train.resume=auto``, so a second
call skips the runs that finished and continues one that was stopped::

    python scripts/use_of_time.py --root ../shared/data/nmnist-real-1k --seeds 0 1 2 \\
        --exp-root /tmp/use_of_time/exp --out benchmarks/results/use_of_time

``--measure-only`` trains nothing and scores the runs that finished (those that did not are
listed as missing in the results file). ``--train-only`` trains and stops (to start the runs
before the measurement). Several processes may train at once: each takes the next run that no
other holds (its run folder's lock); on a busy machine two processes of ``train.threads=1`` go
faster than one of two threads.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from pathlib import Path

import torch

from snn_lib.checkpoint import load_checkpoint, model_from_checkpoint
from snn_lib.config import Config, DataConfig, TrainConfig, apply_overrides, flat_settings
from snn_lib.data import FrameLoader, load_split, make_loaders
from snn_lib.evaluate import evaluate
from snn_lib.report import results_meta, spread, write_results
from snn_lib.timing import anytime_accuracy, cost_per_step, reverse_bins, shuffle_bins, tied_readouts
from snn_lib.rundir import RunBusyError, read_metrics_csv
from snn_lib.train import run_training

STEPS = (1, 5, 10, 25)
FULL_T = 25
TRAIN_SHUFFLE_SEED = 1_000       # + the run's seed: the orders of the training recordings


def run_config(args, exp_id: str, seed: int, steps: int, overrides: list[str]) -> Config:
    cfg = Config(exp_id=exp_id, seed=seed, exp_root=args.exp_root,
                 data=DataConfig(root=args.root, test_from_train=0.1, val_from_train=0.0, n_time_bins=steps),
                 train=TrainConfig(num_epochs=15, batch_size=32, resume="auto", num_animations=0))
    return apply_overrides(cfg, overrides).validate()


def train(cfg: Config, shuffled: bool, shuffle_seed: int) -> Path:
    """Train one network (or find it trained); with ``shuffled``, on shuffled bins, its test
    recordings shuffled too (the accuracy its metrics.csv logs)."""
    last = cfg.run_dir / "checkpoints" / "last.pt"
    loaders = None
    if shuffled:
        loaders = make_loaders(cfg.data, cfg.train.batch_size, cfg.train.eval_batch_size, cfg.seed)
        loaders.train.frames = shuffle_bins(loaders.train.frames, TRAIN_SHUFFLE_SEED + cfg.seed)
        loaders.test.frames = shuffle_bins(loaders.test.frames, shuffle_seed)
    logging.info("training %s", cfg.run_dir)
    run_training(cfg, loaders)
    return last


def accuracy(model, frames, labels) -> float:
    return evaluate(model, FrameLoader(frames, labels, 256))["accuracy"]


@torch.no_grad()
def membrane_accuracy(model, frames: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy of the class whose output neuron has the highest membrane potential at the last
    step (for T=1: the output layer's input current, the network read as an ANN)."""
    mem = torch.cat([model(batch.float().transpose(0, 1))[1] for batch in frames.split(256)], dim=1)
    return (mem[-1].argmax(-1) == labels).float().mean().item()


@torch.no_grad()
def tied_fraction(model, frames: torch.Tensor) -> float:
    """The share of recordings (``frames [N, T, ...]``) whose output spike counts have no single
    largest (:func:`snn_lib.timing.tied_readouts`)."""
    spk = torch.cat([model(batch.float().transpose(0, 1))[0] for batch in frames.split(256)], dim=1)
    return tied_readouts(spk).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="folder with Train/<label>/<id>.bin")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--exp-root", default="exp/use_of_time")
    parser.add_argument("--out", default="benchmarks/results/use_of_time")
    parser.add_argument("--shuffle-seed", type=int, default=0, help="seed of the test recordings' bin orders")
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--measure-only", action="store_true", help="train nothing: score the runs that finished")
    args, overrides = parser.parse_known_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    # The runs, the most telling first: T=25, T=1 and 5, trained on shuffled bins, then T=10.
    plan = [(f"T{FULL_T}_seed{s}", s, FULL_T, False) for s in args.seeds]
    plan += [(f"T{t}_seed{s}", s, t, False) for t in (1, 5) for s in args.seeds]
    plan += [(f"shuffled_T{FULL_T}_seed{s}", s, FULL_T, True) for s in args.seeds]
    plan += [(f"T10_seed{s}", s, 10, False) for s in args.seeds]
    runs = {}
    for exp_id, seed, steps, shuffled in plan:
        cfg = run_config(args, exp_id, seed, steps, overrides)
        try:
            if not args.measure_only:
                train(cfg, shuffled, args.shuffle_seed)
        except RunBusyError:                  # another process of this script is training it
            logging.info("%s is being trained by another process: next", cfg.run_dir)
        runs[exp_id] = (cfg, steps, shuffled)
    if args.train_only:
        return
    measure(args, runs)


SETTINGS = (  # name, runs' kind, T, how the test bins are ordered
    ("T=1", "T1", 1, "in order"),
    ("T=1, read by the output membrane potential", "T1", 1, "membrane"),
    ("T=5", "T5", 5, "in order"),
    ("T=10", "T10", 10, "in order"),
    ("T=25", "T25", 25, "in order"),
    ("T=25, tested on shuffled bins", "T25", 25, "shuffled"),
    ("T=25, tested on reversed bins", "T25", 25, "reversed"),
    ("trained on shuffled bins, tested on shuffled bins", "shuffled_T25", 25, "shuffled"),
    ("trained on shuffled bins, tested in order", "shuffled_T25", 25, "in order"),
)


def finished(cfg: Config) -> bool:
    path = cfg.run_dir / "checkpoints" / "last.pt"
    return path.is_file() and load_checkpoint(path)["epoch"] >= cfg.train.num_epochs


def ordered(frames: torch.Tensor, order: str, seed: int) -> torch.Tensor:
    if order == "shuffled":
        return shuffle_bins(frames, seed)
    return reverse_bins(frames) if order == "reversed" else frames


def measure(args, runs: dict) -> None:
    """Score every finished run from its last.pt and write the results file."""
    done = {exp_id: cfg for exp_id, (cfg, _, _) in runs.items() if finished(cfg)}
    missing = sorted(set(runs) - set(done))
    test = {}                                                 # T -> (frames [N, T, 2, H, W], labels)
    rows, per_seed = [], {}
    for name, kind, steps, order in SETTINGS:
        values, ties = {}, {}
        for seed in args.seeds:
            cfg = done.get(f"{kind}_seed{seed}")
            if cfg is None:
                continue
            if steps not in test:
                test[steps] = load_split(cfg.data, "test")
            model, _ = model_from_checkpoint(cfg.run_dir / "checkpoints" / "last.pt")
            frames, labels = test[steps]
            reordered = ordered(frames, order, args.shuffle_seed)
            if order == "membrane":
                values[seed] = membrane_accuracy(model, frames, labels)
            else:
                values[seed] = accuracy(model, reordered, labels)
            if order != "membrane":
                ties[seed] = tied_fraction(model, reordered)
        per_seed[name] = values
        if values:
            rows.append({"setting": name, "T": steps, "trained_on": "shuffled bins" if kind.startswith("shuffled")
                         else "bins in order", "tested_on": "in order" if order == "membrane" else order,
                         "readout": "membrane" if order == "membrane" else "spike count", **spread(list(values.values())),
                         "seeds": sorted(values), **{f"seed_{s}": v for s, v in values.items()},
                         "tied_mean": statistics.fmean(ties.values()) if ties else None})

    curves, shuffled_curves, costs = {}, {}, {}
    frames, labels = test.get(FULL_T) or load_split(run_config(args, "x", 0, FULL_T, []).data, "test")
    for seed in args.seeds:
        for kind, store, order in ((f"T{FULL_T}", curves, "in order"), (f"shuffled_T{FULL_T}", shuffled_curves,
                                                                        "shuffled")):
            cfg = done.get(f"{kind}_seed{seed}")
            if cfg is None:
                continue
            model, _ = model_from_checkpoint(cfg.run_dir / "checkpoints" / "last.pt")
            loader = FrameLoader(ordered(frames, order, args.shuffle_seed), labels, 256)
            store[seed] = anytime_accuracy(model, loader).tolist()
            if store is curves:
                costs[seed] = cost_per_step(model, loader)
    anytime = []
    for k in range(1, FULL_T + 1):
        row = {"k": k, "fraction_of_recording": k / FULL_T}
        if curves:
            row.update({f"acc_{key}": v for key, v in spread([c[k - 1] for c in curves.values()]).items()})
            for key in ("effective_acs", "effective_macs", "spikes"):
                row[f"{key}_mean"] = statistics.fmean(sum(c[key][:k]) for c in costs.values())
            row["synaptic_ops_mean"] = row["effective_acs_mean"] + row["effective_macs_mean"]
        if shuffled_curves:
            row.update({f"shuffled_trained_acc_{key}": v
                        for key, v in spread([c[k - 1] for c in shuffled_curves.values()]).items()})
        anytime.append(row)
    if curves:
        full = anytime[-1]["synaptic_ops_mean"]
        for row in anytime:
            row["synaptic_ops_fraction"] = row["synaptic_ops_mean"] / full

    trained = []
    for exp_id, cfg in done.items():
        history = read_metrics_csv(cfg.run_dir / "metrics.csv")
        trained.append({"run": exp_id, "seed": cfg.seed, "T": cfg.data.n_time_bins,
                        "trained_on": "shuffled bins" if runs[exp_id][2] else "bins in order",
                        "epochs": len(history), "train_seconds": sum(float(h["epoch_seconds"]) for h in history),
                        "logged_last_test_acc": float(history[-1]["test_acc"])})
    command = "python " + " ".join(sys.argv)
    data = {**results_meta(command), "rows": rows, "anytime": anytime, "per_seed": per_seed,
            "anytime_per_seed": curves, "anytime_shuffled_trained_per_seed": shuffled_curves,
            "missing_runs": missing, "runs": trained, "test_recordings": len(labels),
            "settings": {"checkpoint": "last.pt", **settings_of(next(iter(runs.values()))[0]),
                         "test_shuffle_seed": args.shuffle_seed,
                         "train_shuffle_seed": f"{TRAIN_SHUFFLE_SEED} + seed"}}
    write_results(args.out, data, markdown(data))


def settings_of(cfg: Config) -> dict:
    """The settings every run shares (the T and the bin order aside)."""
    keys = ("train.num_epochs", "train.batch_size", "train.lr", "train.loss", "model.beta", "model.impl",
            "data.test_from_train", "data.val_from_train")
    flat = flat_settings(cfg)
    return {key: flat[key] for key in keys}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def markdown(data: dict) -> str:
    st = data["settings"]
    lines = ["# Does the CSNN use time? (real N-MNIST, 900 train / 100 held-out test recordings)", "",
             f"Measured {data['date']} on {data['hardware']} (load average {data['load_average']}), "
             f"torch {data['software']['torch']}, by:", "", f"    {data['command']}", "",
             f"Every network trained {st['train.num_epochs']} epochs (batch {st['train.batch_size']}, Adam lr "
             f"{st['train.lr']}, {st['train.loss']}, beta {st['model.beta']}, model.impl={st['model.impl']}) on the "
             "recordings of its T, with no validation split (`data.val_from_train=0`), and scored from its last "
             f"checkpoint (`last.pt`) on the same {data['test_recordings']} held-out recordings "
             "(`data.test_from_train=0.1`) for every seed; one recording is one percentage point. Shuffled: each "
             "recording's bins in an order of its own (`snn_lib.timing.shuffle_bins`, test seed "
             f"{data['settings']['test_shuffle_seed']}; training recordings: seed 1000 + the run's seed, fixed "
             "over the epochs). Mean +- sample standard deviation (min-max) over n seeds.", "",
             "Tied: the share of test recordings whose output spike counts have no single largest (the lowest tied "
             "class is then the prediction), mean over the seeds.", "",
             "| setting | test accuracy | n | per seed | tied |", "|---|---:|---:|---|---:|"]
    for row in data["rows"]:
        seeds = ", ".join(f"{s}: {_pct(row[f'seed_{s}'])}" for s in row["seeds"])
        lines.append(f"| {row['setting']} | {_pct(row['mean'])} +- {100 * row['std']:.1f} "
                     f"({_pct(row['min'])}-{_pct(row['max'])}) | {row['n']} | {seeds} | {_pct(row['tied_mean']) if row['tied_mean'] is not None else '-'} |")
    if data["anytime"] and "acc_mean" in data["anytime"][0]:
        lines += ["", "## Anytime: the T=25 networks' prediction from the first k of 25 bins", "",
                  "The network is causal: its spike counts after k steps are those of a run on the first k frames. "
                  "Operations and spikes per recording up to step k, mean over the seeds "
                  "(`snn_lib.timing.cost_per_step`, counted as `snn_lib.cost.measure_cost` counts them).", "",
                  "| k | share of the recording | accuracy | ACs | MACs | spikes | operations, share of k=25 |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for row in data["anytime"]:
            lines.append(f"| {row['k']} | {row['fraction_of_recording']:.2f} | {_pct(row['acc_mean'])} +- "
                         f"{100 * row['acc_std']:.1f} | {row['effective_acs_mean']:,.0f} | "
                         f"{row['effective_macs_mean']:,.0f} | {row['spikes_mean']:,.0f} | "
                         f"{row['synaptic_ops_fraction']:.2f} |")
    hours = sum(r["train_seconds"] for r in data["runs"]) / 3600
    lines += ["", f"Training time of the {len(data['runs'])} runs, summed over their epochs: {hours:.1f} hours, "
              "on the machine above with other work running beside it (the load average is the one when this "
              "file was written); the runs were trained by two processes at a time of "
              f"`{data['command'].replace('--measure-only', '--train-only')}` (the first epoch of T25_seed0 with "
              "two threads), and scored here by the command above."]
    if data["missing_runs"]:
        lines += ["", "Runs not finished when this file was written (left out): " + ", ".join(data["missing_runs"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
