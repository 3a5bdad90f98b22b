"""How sparsity and synaptic operations move with the threshold, beta and T, on real N-MNIST.

One network is trained per setting, changing one setting at a time from the defaults (and the
common ``key=value`` settings given), on the recordings of ``--root`` with a fixed tenth held out
(``data.test_from_train=0.1``, no validation split); each is then scored and its cost counted
(:func:`snn_lib.cost.measure_cost`) on the held-out recordings::

    python scripts/cost_sweep.py --root ../shared/data/nmnist-real-1k \\
        --vary model.threshold=0.5,2.0 model.beta=0.25,0.8 data.n_time_bins=10,50 \\
        --out benchmarks/results/cost_sweep.md train.num_epochs=15

The results go to ``--out`` as NAME.json (the data: one row per setting) and NAME.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from snn_lib.config import Config, apply_overrides
from snn_lib.device import resolve_device
from snn_lib.evaluate import evaluate_checkpoint
from snn_lib.report import results_meta, write_results
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

    cfg, default = rows[0][1], Config()
    data = {**results_meta("python " + shlex.join(sys.argv), resolve_device(cfg.train.device)),
            "seed": args.seed, "epochs": cfg.train.num_epochs, "pool": cfg.model.pool, "reset": cfg.model.reset,
            "defaults": {"threshold": default.model.threshold, "beta": default.model.beta,
                         "T": default.data.n_time_bins},
            "samples": rows[0][2]["samples"], "rows": []}
    for name, _, report in rows:
        cost = report["cost"]
        total, ann = cost["total"], cost["ann_twin"]["macs"]
        data["rows"].append({"setting": name, "test_acc": report["accuracy"],
                             "spike_rates": [layer["spike_rate"] for layer in cost["layers"]],
                             "effective_acs": round(total["effective_acs"]), "effective_macs": round(total["effective_macs"]),
                             "dense_macs": round(total["dense_ops"]), "ann_macs": round(ann),
                             "acs_per_ann_mac": total["effective_acs"] / ann})
    text = markdown(data)
    write_results(args.out, data, text)
    print(text)


def markdown(data: dict) -> str:
    """The results file for a person, from its data."""
    d = data["defaults"]
    lines = [
        "# Sparsity and synaptic operations against threshold, beta and T (CSNN, real N-MNIST)",
        "",
        f"Measured {data['date']} on {data['hardware']}, load average {data['load_average']:.1f}, "
        f"torch {data['software']['torch']}, by:",
        "",
        f"    {data['command']}",
        "",
        f"One network trained per row (seed {data['seed']}, {data['epochs']} epochs, model.pool={data['pool']}, "
        f"model.reset={data['reset']}; defaults: threshold {d['threshold']}, beta {d['beta']}, T {d['T']}), scored "
        f"and counted on the {data['samples']} held-out recordings (`data.test_from_train=0.1`) after its last epoch. "
        "Spike rate: spikes per neuron per time step. Operations per recording, over all T steps; the ANN twin sees "
        "one frame.",
        "",
        "| setting | test acc | spike rate lif1 / lif2 / lif3 | effective ACs | effective MACs | dense | "
        "ANN twin MACs | ACs / ANN MACs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["rows"]:
        rates = " / ".join(f"{rate:.3f}" for rate in r["spike_rates"])
        lines.append(f"| {r['setting']} | {100 * r['test_acc']:.1f}% | {rates} | {r['effective_acs']:,.0f} | "
                     f"{r['effective_macs']:,.0f} | {r['dense_macs']:,.0f} | {r['ann_macs']:,.0f} | "
                     f"{r['acs_per_ann_mac']:.3f} |")
    lines += ["", f"Each accuracy is out of {data['samples']} recordings and one seed: differences of a few "
              "points are within the spread between seeds (benchmarks/results/real_1k_accuracy.md)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
