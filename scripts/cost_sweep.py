"""How sparsity and synaptic operations move with the threshold, beta and T, on real N-MNIST.

One network is trained per setting, changing one setting at a time from the defaults (and the
common ``key=value`` settings given), on the recordings of ``--root`` with a fixed tenth held out
(``data.test_from_train=0.1``, no validation split); each is then scored and its cost counted
(:func:`snn_lib.cost.measure_cost`) on the held-out recordings::

    python scripts/cost_sweep.py --root ../shared/data/nmnist-real-1k \\
        --vary model.threshold=0.5,2.0 model.beta=0.25,0.8 data.n_time_bins=10,50 \\
        --out benchmarks/results/cost_sweep.md train.num_epochs=15
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

import torch

from snn_lib.config import Config, apply_overrides
from snn_lib.device import resolve_device
from snn_lib.evaluate import evaluate_checkpoint
from snn_lib.report import hardware
from snn_lib.rundir import atomic_write
from snn_lib.train import run_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="folder with Train/<label>/<id>.bin")
    parser.add_argument("--vary", nargs="+", default=[], help="KEY=V1,V2: values tried one at a time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/cost_sweep.md")
    parser.add_argument("--exp-root", default="exp/cost_sweep")
    args, overrides = parser.parse_known_args()

    runs = [("defaults", [])]
    for item in args.vary:
        key, _, values = item.partition("=")
        runs += [(f"{key}={value}", [f"{key}={value}"]) for value in values.split(",")]
    rows = []
    for i, (name, setting) in enumerate(runs):
        cfg = apply_overrides(Config(exp_id=f"run{i}", seed=args.seed, exp_root=args.exp_root), [*overrides, *setting])
        cfg.data.root, cfg.data.test_from_train, cfg.train.num_animations = args.root, 0.1, 0
        cfg.data.val_from_train = 0.0      # last.pt is scored, nothing chosen: every other recording trains
        result = run_training(cfg.validate())
        report = evaluate_checkpoint(result.run_dir / "checkpoints" / "last.pt", device=cfg.train.device)
        rows.append((name, cfg, report))

    cfg = rows[0][1]
    lines = [
        "# Sparsity and synaptic operations against threshold, beta and T (CSNN, real N-MNIST)",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {hardware(resolve_device(cfg.train.device))}, "
        f"torch {torch.__version__}, by:",
        "",
        f"    python {' '.join(sys.argv)}",
        "",
        f"One network trained per row (seed {args.seed}, {cfg.train.num_epochs} epochs, model.pool={cfg.model.pool}, "
        f"model.reset={cfg.model.reset}; defaults: threshold {Config().model.threshold}, beta {Config().model.beta}, "
        f"T {Config().data.n_time_bins}), scored and counted on the {rows[0][2]['samples']} held-out recordings "
        "(`data.test_from_train=0.1`) after its last epoch. Spike rate: spikes per neuron per time step. "
        "Operations per recording, over all T steps; the ANN twin sees one frame.",
        "",
        "| setting | test acc | spike rate lif1 / lif2 / lif3 | effective ACs | effective MACs | dense | "
        "ANN twin MACs | ACs / ANN MACs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, _, report in rows:
        cost = report["cost"]
        total, ann = cost["total"], cost["ann_twin"]["macs"]
        rates = " / ".join(f"{layer['spike_rate']:.3f}" for layer in cost["layers"])
        lines.append(f"| {name} | {100 * report['accuracy']:.1f}% | {rates} | {total['effective_acs']:,.0f} | "
                     f"{total['effective_macs']:,.0f} | {total['dense_ops']:,.0f} | {ann:,.0f} | "
                     f"{total['effective_acs'] / ann:.3f} |")
    lines += ["", f"Each accuracy is out of {rows[0][2]['samples']} recordings and one seed: differences of a few "
              "points are within the spread between seeds (benchmarks/results/real_1k_accuracy.md)."]
    atomic_write(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
