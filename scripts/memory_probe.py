"""Exploratory probe of the RSNN on the temporal tasks: train with snn_lib.train.fit, print one JSON
line per epoch.

The training is the library's loop (:func:`snn_lib.train.fit`: Adam or AdamW, an optional cosine
schedule, the count loss on the readout at the decision time, the validation and test splits
scored after every epoch), on the tasks of :mod:`snn_lib.data.temporal` held in
:class:`~snn_lib.data.FrameLoader`\ s, for finding a store_recall delay and checking seq_mnist
before the tasks are wired into snn-train. Not a results file: its numbers are exploratory.

    python scripts/memory_probe.py --task store_recall --delay 100 --neuron alif --epochs 20
    python scripts/memory_probe.py --task seq_mnist --neuron alif --epochs 30 --hidden 256
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from snn_lib.config import TrainConfig
from snn_lib.data import FrameLoader, Loaders
from snn_lib.data.temporal import seq_mnist, store_recall
from snn_lib.rsnn import RSNN, RSNNConfig
from snn_lib.train import EpochEnd, fit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=["store_recall", "seq_mnist"], default="store_recall")
    p.add_argument("--delay", type=int, default=100)
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--permute", action="store_true")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW's decoupled weight decay")
    p.add_argument("--cosine", action="store_true", help="cosine learning-rate schedule over the epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    for field in dataclasses.fields(RSNNConfig):
        p.add_argument("--" + field.name.replace("_", "-"), type=type(field.default) if field.type != "bool" else
                       (lambda s: s.lower() in ("1", "true", "yes")), default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(RSNNConfig)
                 if getattr(args, f.name) is not None}
    if args.task == "store_recall":
        data = {s: store_recall(s, delay=args.delay, seed=args.seed, n=args.n_train if s == "train" else None)
                for s in ("train", "val", "test")}
    else:
        data = {s: seq_mnist(s, permute=args.permute) for s in ("train", "val", "test")}
    cfg = dataclasses.replace(RSNNConfig(), **overrides)
    x_train, y_train = data["train"]                                        # [N, T, F], [N]
    model = RSNN(cfg, tuple(x_train.shape[1:]), num_classes=int(y_train.max()) + 1)
    loaders = Loaders(train=FrameLoader(x_train, y_train, args.batch, shuffle=True, seed=args.seed),
                      val=FrameLoader(*data["val"], 500), test=FrameLoader(*data["test"], 500))
    train = TrainConfig(num_epochs=args.epochs, batch_size=args.batch, lr=args.lr, weight_decay=args.weight_decay,
                        lr_schedule="cosine" if args.cosine else "none", device="cpu")
    print(json.dumps({"args": vars(args), "config": dataclasses.asdict(cfg), "shape": list(x_train.shape)}), flush=True)
    start = time.perf_counter()

    def report(end: EpochEnd) -> None:
        row = end.history[-1]
        print(json.dumps({"epoch": end.epoch, "train_loss": round(row["train_loss"], 4),
                          "val_acc": row["val_acc"], "test_acc": row["test_acc"],
                          "minutes": round((time.perf_counter() - start) / 60, 2)}), flush=True)

    fit(model, loaders, train, on_epoch=report)


if __name__ == "__main__":
    main()
