"""What event augmentation (``data.augment``) adds to an epoch: the time to frame the training
split on the fly, plain and augmented, against the time to train one epoch on it.

With ``data.augment`` the training split is framed anew every epoch from its events
(:class:`snn_lib.data.loader.TrainingEpochs`), in the same worker pool that fills the frame cache;
without it the frames come from the cache. Real recordings (``--root``, ``Train/`` only is enough,
the run's training split is used)::

    python benchmarks/augment_epoch.py --root ../shared/data/nmnist-real-1k \\
        --save benchmarks/results/augment_epoch.md

Each timing is the best of ``--rounds``; the training epoch is one ``train_epoch`` over the split
(batch 32, default CSNN), the loop ``snn-train`` runs. ``--save`` writes NAME.json (the data) and NAME.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import torch

from snn_lib.config import AUGMENTATIONS, Config, DataConfig
from snn_lib.data import dataset_root, load_split, split_recordings
from snn_lib.data.frames import frames_of_recordings
from snn_lib.data.loader import FrameLoader
from snn_lib.model import build_model, make_loss
from snn_lib.report import results_meta, write_results
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
    parser.add_argument("--save", default="", help="the results file: NAME.json (the data) and NAME.md")
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
    results = {**results_meta(f"python benchmarks/augment_epoch.py {shlex.join(sys.argv[1:])}"),
               "recordings": len(recordings), "T": data.n_time_bins, "rounds": args.rounds, "batch": cfg.batch_size,
               "threads": args.threads, "epoch_seconds": round(epoch, 2),
               "rows": [{"augmentation": label, "seconds": round(seconds, 3),
                         "ms_per_recording": round(1000 * seconds / len(recordings), 3),
                         "epoch_share": round(seconds / epoch, 4)} for label, seconds in rows]}
    text = markdown(results)
    print(text)
    if args.save:
        write_results(args.save, results, text)


def markdown(data: dict) -> str:
    """The results file for a person, from its data."""
    lines = ["# Event augmentation: framing the training split on the fly, against an epoch of training", "",
             f"Made by `{data['command']}` on {data['date']}, {data['hardware']}, load average "
             f"{data['load_average']:.1f}, torch {data['software']['torch']}.", "",
             f"{data['recordings']} real training recordings (the 1,000-recording set less its test and validation "
             f"splits), T={data['T']}; best of {data['rounds']} rounds.", "",
             "| augmentation | seconds to frame the split | per recording (ms) | share of a training epoch |",
             "|---|---:|---:|---:|"]
    lines += [f"| {r['augmentation']} | {r['seconds']:.2f} | {r['ms_per_recording']:.2f} | {100 * r['epoch_share']:.0f}% |"
              for r in data["rows"]]
    lines += ["", f"One training epoch over the same split (batch {data['batch']}, {data['threads']} torch thread(s)): "
              f"{data['epoch_seconds']:.1f} s. Without data.augment the frames come from the cache (no framing in the "
              "epoch); with it, an epoch takes the training time plus the framing time of its row."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
