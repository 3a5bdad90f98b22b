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
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from snn_lib.checkpoint import model_from_checkpoint
from snn_lib.data import load_split
from snn_lib.export import DEFAULT_DT, SIMULATORS, adapt, agreement, nir_graph, read_nir, simulate, write_nir
from snn_lib.model import predict
from snn_lib.report import hardware
from snn_lib.rundir import atomic_write


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
            rows.append((simulator, "-", None, "not installed", 0.0))
            continue
        for adapted in (False, True):
            changes = "; ".join(adapt(graph, simulator, args.dt)[1]) if adapted else "the file as written"
            start = time.perf_counter()
            try:
                theirs = simulate(graph, simulator, frames, args.dt, adapt_graph=adapted, batch_size=args.batch_size)
            except Exception as err:  # noqa: BLE001 - a simulator that cannot read the graph is a result
                rows.append((simulator, "adapted" if adapted else "as written", None,
                             f"cannot read it: {type(err).__name__}: {str(err).splitlines()[0][:120]}", 0.0))
                continue
            rows.append((simulator, "adapted" if adapted else "as written", (agreement(ours, theirs), accuracy(theirs)),
                         changes or "nothing to change", time.perf_counter() - start))

    command = "python " + " ".join(sys.argv)
    m = cfg.model
    lines = [
        f"# The CSNN exported to NIR and run in other simulators, on {len(labels):,} real N-MNIST recordings",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {hardware('cpu')}, torch {torch.__version__}, "
        f"nir {version('nir')}, nirtorch {version('nirtorch')}, norse {version('norse')}, "
        f"snntorch {version('snntorch')}, by:",
        "",
        f"    {command}",
        "",
        f"Network: `{args.checkpoint}` (model.pool={m.pool}, model.reset={m.reset}, beta {m.beta}, "
        f"threshold {m.threshold}, channels {list(m.channels)}, T={cfg.data.n_time_bins}), exported with "
        f"dt = {args.dt:g} s to `{nir_path}`. Ours: snn_lib's fast forward. Recordings: all of `{args.root}` "
        f"({int(held_out.sum())} of them held out in training, `data.test_from_train=0.1`).",
        "",
        f"Our test accuracy on the held-out recordings: {accuracy(ours):.1f}%.",
        "",
        "| simulator | graph | same prediction | same spike counts | same spike trains | mean abs count diff "
        "| max abs count diff | test accuracy | s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for simulator, how, result, note, seconds in rows:
        if result is None:
            lines.append(f"| {simulator} | {how} | - | - | - | - | - | - | - |")
        else:
            a, acc = result
            lines.append(f"| {simulator} | {how} | {100 * a['same_prediction']:.1f}% | {100 * a['same_counts']:.1f}% | "
                         f"{100 * a['same_spike_trains']:.1f}% | {a['mean_abs_count_difference']:.4f} | "
                         f"{a['max_abs_count_difference']:.0f} | {acc:.1f}% | {seconds:.0f} |")
        lines.append(f"| | | {note} | | | | | | |")
    lines += ["", "Counts are output spikes per recording and class, summed over the time steps. 'As written': "
              "the simulator's own NIR importer on the file; 'adapted': on the equivalent graph "
              "`snn_lib.export.adapt` writes for it (what it changed is listed)."]
    atomic_write(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
