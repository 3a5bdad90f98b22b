"""A trained CSNN exported to NIR and run again in other simulators, on real N-MNIST recordings.

The checkpoint (trained with ``model.pool=avg`` or ``sum`` and ``model.reset=zero``) is written as
an NIR file, read back, and run by every installed simulator of :data:`snn_lib.export.SIMULATORS`
on the recordings of ``--root`` (both splits of ``data.test_from_train=0.1``: all of them). The
table compares each simulator's output spikes with ours: same predicted class, same spike counts,
same spike trains, count differences; and the test accuracy on the held-out recordings. Each
simulator runs twice: on the graph as written, and on the graph :func:`snn_lib.export.adapt`
rewrote into the nodes and conventions it reads::

    python scripts/nir_agreement.py --checkpoint exp/real1k_sum_zero/real1k_seed0/checkpoints/last.pt \\
        --root ../shared/data/nmnist-real-1k --out benchmarks/results/nir_agreement.md

The results go to ``--out`` as NAME.json (the data: one row per simulator and graph) and NAME.md.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import time
from pathlib import Path

import torch

from snn_lib.checkpoint import model_from_checkpoint
from snn_lib.data import load_split
from snn_lib.export import DEFAULT_DT, SIMULATORS, adapt, agreement, nir_graph, read_nir, simulate, write_nir
from snn_lib.model import predict
from snn_lib.report import results_meta, write_results


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--root", required=True, help="folder with Train/<label>/<id>.bin")
    parser.add_argument("--cache-dir", default="", help="frame cache (default: snn_lib's)")
    parser.add_argument("--dt", type=float, default=DEFAULT_DT)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--nir", default="", help="the NIR file to write (default: model.nir in the run folder)")
    parser.add_argument("--out", default="benchmarks/results/nir_agreement.md")
    args = parser.parse_args()

    model, cfg = model_from_checkpoint(args.checkpoint, "cpu", impl="fast")
    cfg.data.root, cfg.data.test_from_train, cfg.data.cache_dir = args.root, 0.1, args.cache_dir
    cfg.data.val_from_train = 0.0          # no validation split: train + test are all the recordings
    parts = [load_split(cfg.data, split) for split in ("train", "test")]
    frames = torch.cat([f for f, _ in parts]).float().transpose(0, 1)       # [T, N, 2, H, W]
    labels = torch.cat([y for _, y in parts])
    held_out = torch.arange(len(labels)) >= len(parts[0][1])
    with torch.no_grad():
        ours = torch.cat([model(frames[:, i:i + 256])[0] for i in range(0, frames.shape[1], 256)], dim=1)

    nir_path = Path(args.nir or Path(args.checkpoint).resolve().parents[1] / "model.nir")
    graph = read_nir(write_nir(nir_graph(model, args.dt), nir_path))

    def accuracy(spk: torch.Tensor) -> float:
        return 100 * float((predict(spk[:, held_out]) == labels[held_out]).float().mean())

    rows = []
    for simulator in SIMULATORS:
        if version({"norse": "norse", "snntorch": "snntorch"}[simulator]) == "not installed":
            rows.append({"simulator": simulator, "graph": "-", "changes": "not installed"})
            continue
        for adapted in (False, True):
            row = {"simulator": simulator, "graph": "adapted" if adapted else "as written"}
            changes = "; ".join(adapt(graph, simulator, args.dt)[1]) if adapted else "the file as written"
            start = time.perf_counter()
            try:
                theirs = simulate(graph, simulator, frames, args.dt, adapt_graph=adapted, batch_size=args.batch_size)
            except Exception as err:  # noqa: BLE001 - a simulator that cannot read the graph is a result
                rows.append({**row, "changes": f"cannot read it: {type(err).__name__}: {str(err).splitlines()[0][:120]}"})
                continue
            a = agreement(ours, theirs)
            rows.append({**row, "same_prediction": a["same_prediction"], "same_counts": a["same_counts"],
                         "same_trains": a["same_spike_trains"], "mean_abs_count_diff": a["mean_abs_count_difference"],
                         "max_abs_count_diff": a["max_abs_count_difference"], "test_acc": accuracy(theirs) / 100,
                         "seconds": time.perf_counter() - start, "changes": changes or "nothing to change"})

    m = cfg.model
    data = {**results_meta("python " + " ".join(sys.argv)),
            "versions": {package: version(package) for package in ("nir", "nirtorch", "norse", "snntorch")},
            "recordings": len(labels), "held_out": int(held_out.sum()), "root": args.root,
            "checkpoint": args.checkpoint, "nir_file": str(nir_path), "dt": args.dt,
            "model": {"pool": m.pool, "reset": m.reset, "beta": m.beta, "threshold": m.threshold,
                      "channels": list(m.channels), "T": cfg.data.n_time_bins},
            "test_acc": accuracy(ours) / 100, "rows": rows}
    text = markdown(data)
    write_results(args.out, data, text)
    print(text)


def markdown(data: dict) -> str:
    """The results file for a person, from its data (``notes``: paragraphs added after the run, if any)."""
    m, v = data["model"], data["versions"]
    lines = [
        f"# The CSNN exported to NIR and run in other simulators, on {data['recordings']:,} real N-MNIST recordings",
        "",
        f"Measured {data['date']} on {data['hardware']}, load average {data['load_average']:.1f}, torch "
        f"{data['software']['torch']}, nir {v['nir']}, nirtorch {v['nirtorch']}, norse {v['norse']}, "
        f"snntorch {v['snntorch']}, by:",
        "",
        f"    {data['command']}",
        "",
        f"Network: `{data['checkpoint']}` (model.pool={m['pool']}, model.reset={m['reset']}, beta {m['beta']}, "
        f"threshold {m['threshold']}, channels {m['channels']}, T={m['T']}), exported with "
        f"dt = {data['dt']:g} s to `{data['nir_file']}`. Ours: snn_lib's fast forward. Recordings: all of "
        f"`{data['root']}` ({data['held_out']} of them held out in training, `data.test_from_train=0.1`).",
        "",
        f"Our test accuracy on the held-out recordings: {100 * data['test_acc']:.1f}%.",
        "",
        *(line for note in data.get("notes", []) for line in (note, "")),
        "| simulator | graph | same prediction | same spike counts | same spike trains | mean abs count diff "
        "| max abs count diff | test accuracy | s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["rows"]:
        if "same_prediction" not in r:
            lines.append(f"| {r['simulator']} | {r['graph']} | - | - | - | - | - | - | - |")
        else:
            lines.append(f"| {r['simulator']} | {r['graph']} | {100 * r['same_prediction']:.1f}% | "
                         f"{100 * r['same_counts']:.1f}% | {100 * r['same_trains']:.1f}% | "
                         f"{r['mean_abs_count_diff']:.4f} | {r['max_abs_count_diff']:.0f} | {100 * r['test_acc']:.1f}% | "
                         f"{r['seconds']:.0f} |")
        lines.append(f"| | | {r['changes']} | | | | | | |")
    lines += ["", "Counts are output spikes per recording and class, summed over the time steps. 'As written': "
              "the simulator's own NIR importer on the file; 'adapted': on the equivalent graph "
              "`snn_lib.export.adapt` writes for it (what it changed is listed)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
