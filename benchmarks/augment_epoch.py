"""What event augmentation (``data.augment``) adds to an epoch: the time to frame the training
split on the fly, plain and augmented, against the time to train one epoch on it.

With ``data.augment`` the training split is framed anew every epoch from its events
(:class:`snn_lib.data.loader.TrainingEpochs`), in the same worker pool that fills the frame cache;
without it the frames come from the cache. Real recordings (``--root``, ``Train/`` only is enough,
the run's training split is used)::

    python benchmarks/augment_epoch.py --root ../shared/data/nmnist-real-1k \\
        --save benchmarks/results/augment_epoch.md

Each timing is the best of ``--rounds``; the training epoch is one ``train_epoch`` over the split
(batch 32, default CSNN), the loop ``snn-train`` runs.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from snn_lib.config import AUGMENTATIONS, Config, DataConfig
from snn_lib.data import dataset_root, load_split, split_recordings
from snn_lib.data.frames import frames_of_recordings
from snn_lib.data.loader import FrameLoader
from snn_lib.model import build_model, make_loss
from snn_lib.report import hardware
from snn_lib.train import make_optimizer, train_epoch


def best_of(rounds: int, fn) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0, help="framing processes (0: as snn-train chooses)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the training epoch")
    parser.add_argument("--sets", nargs="+", default=[], help="only these rows, by label (default: all)")
    parser.add_argument("--save", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = DataConfig(root=args.root, test_from_train=0.1)
    recordings = split_recordings(data, dataset_root(data))["train"]
    sets = {"none (framing only)": ()} | {name: (name,) for name in AUGMENTATIONS} | {
        "shift + drop_event": ("shift", "drop_event"), "all six": AUGMENTATIONS}
    rows = []
    for label, names in sets.items():
        if args.sets and label not in args.sets:
            continue
        seconds = best_of(args.rounds, lambda: frames_of_recordings(
            recordings, data.n_time_bins, workers=args.workers, augment=(names, 0, 1) if names else ()))
        rows.append((label, seconds))
    frames, labels = load_split(data, "train")
    cfg = Config().train
    model = build_model(Config().model, tuple(frames.shape[1:]))
    optimizer = make_optimizer(model, cfg)
    loader = FrameLoader(frames, labels, cfg.batch_size, shuffle=True)
    epoch = best_of(1, lambda: train_epoch(model, loader, optimizer, make_loss(cfg.loss), cfg, torch.device("cpu")))
    lines = ["# Event augmentation: framing the training split on the fly, against an epoch of training", "",
             f"Made by `python benchmarks/augment_epoch.py {shlex.join(sys.argv[1:])}` on "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {hardware('cpu')}, torch {torch.__version__}.", "",
             f"{len(recordings)} real training recordings (the 1,000-recording set less its test and validation "
             f"splits), T={data.n_time_bins}; best of {args.rounds} rounds.", "",
             "| augmentation | seconds to frame the split | per recording (ms) | share of a training epoch |",
             "|---|---:|---:|---:|"]
    for label, seconds in rows:
        lines.append(f"| {label} | {seconds:.2f} | {1000 * seconds / len(recordings):.2f} | "
                     f"{100 * seconds / epoch:.0f}% |")
    lines += ["", f"One training epoch over the same split (batch 32, {args.threads} torch thread(s)): {epoch:.1f} s. "
              "Without data.augment the frames come from the cache (no framing in the epoch); with it, an epoch "
              "takes the training time plus the framing time of its row."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.save:
        Path(args.save).write_text(text)


if __name__ == "__main__":
    main()
