"""Train the CSNN on real N-MNIST recordings over several seeds and write a results table.

The team's check of issue 2: 1,000 real recordings (``../shared/data/nmnist-real-1k``, only
``Train/``), a fixed per-class tenth held out as the test set (``data.test_from_train=0.1``), the
default settings otherwise. Each seed is a full ``run_training`` into ``exp/real1k_seed{N}``; the
table reports, per seed, the test accuracy at the last epoch, the best epoch, the range over the
last epochs, and the time per epoch, with the command and the hardware::

    python scripts/real_1k_sweep.py --root ../shared/data/nmnist-real-1k --seeds 0 1 2 \\
        --out benchmarks/results/real_1k_accuracy.md train.num_epochs=15 model.impl=fast

Extra ``key=value`` arguments are settings, as on the ``snn-train`` command line.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from snn_lib.config import Config, apply_overrides
from snn_lib.device import resolve_device
from snn_lib.report import hardware
from snn_lib.train import run_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="folder with Train/<label>/<id>.bin")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--last", type=int, default=7, help="report the accuracy range over this many last epochs")
    parser.add_argument("--out", default="benchmarks/results/real_1k_accuracy.md")
    parser.add_argument("--exp-root", default="exp")
    args, overrides = parser.parse_known_args()

    rows = []
    for seed in args.seeds:
        cfg = apply_overrides(Config(exp_id=f"real1k_seed{seed}", seed=seed, exp_root=args.exp_root), overrides)
        cfg.data.root, cfg.data.test_from_train, cfg.train.num_animations = args.root, 0.1, 0
        result = run_training(cfg.validate())
        hist = result.history
        last = [100 * r["test_acc"] for r in hist[-args.last:]]
        best = max(hist, key=lambda r: r["test_acc"])
        rows.append({"seed": seed, "final": 100 * hist[-1]["test_acc"], "best": 100 * best["test_acc"],
                     "best_epoch": best["epoch"], "lo": min(last), "hi": max(last),
                     "sec": statistics.median(r["epoch_seconds"] for r in hist),
                     "sps": statistics.median(r["samples_per_second"] for r in hist), "cfg": cfg})

    cfg = rows[0]["cfg"]
    finals = [r["final"] for r in rows]
    command = "python " + " ".join(sys.argv)
    lines = [
        "# CSNN on 1,000 real N-MNIST recordings (900 train / 100 held-out test)",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {hardware(resolve_device(cfg.train.device))}, "
        f"torch {torch.__version__}, by:",
        "",
        f"    {command}",
        "",
        f"Settings: T={cfg.data.n_time_bins}, batch {cfg.train.batch_size}, Adam lr {cfg.train.lr}, "
        f"loss {cfg.train.loss}, {cfg.train.num_epochs} epochs, model.impl={cfg.model.impl}, beta {cfg.model.beta}, "
        f"train.amp={cfg.train.amp} ({'bfloat16 autocast' if cfg.train.amp == 'bf16' else 'float32'}).",
        "Test set: `data.test_from_train=0.1`, the same 100 recordings (10 per class) for every seed.",
        "",
        f"| seed | test acc, last epoch | best (epoch) | range over the last {args.last} epochs | s / epoch | samples / s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['final']:.1f}% | {r['best']:.1f}% ({r['best_epoch']}) | "
                     f"{r['lo']:.1f}-{r['hi']:.1f}% | {r['sec']:.1f} | {r['sps']:.0f} |")
    spread = f"{statistics.mean(finals):.1f}% +- {statistics.stdev(finals):.1f}" if len(finals) > 1 else f"{finals[0]:.1f}%"
    lines += ["", f"Last-epoch test accuracy over {len(rows)} seeds: {spread} (mean +- standard deviation); "
              "each figure is out of 100 test recordings, so one recording is one percentage point."]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
