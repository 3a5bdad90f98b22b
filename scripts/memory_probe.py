"""Exploratory probe of the RSNN on the temporal tasks (issue 22): train, print one JSON line per epoch.

A small loop of its own (Adam, cross-entropy of the readout at the decision time, the test split
scored at every epoch, the validation split too), for finding a store_recall delay and checking
seq_mnist before the tasks are wired into snn-train. Not a results file: its numbers are exploratory.

    python scripts/memory_probe.py --task store_recall --delay 100 --neuron alif --epochs 20
    python scripts/memory_probe.py --task seq_mnist --neuron alif --epochs 30 --hidden 256
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch
import torch.nn.functional as F

from snn_lib.data.temporal import seq_mnist, store_recall
from snn_lib.rsnn import RSNN, RSNNConfig


def accuracy(model: RSNN, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            out, _ = model(x[i:i + batch].transpose(0, 1))                 # [1, b, C]
            correct += (out.sum(0).argmax(-1) == y[i:i + batch]).sum().item()
    return correct / len(y)


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
    p.add_argument("--shift", type=int, default=0, help="seq_mnist: shift each training digit by up to this many "
                   "pixels (random per sample and epoch)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--minutes", type=float, default=0, help="stop after this many minutes (0: no limit)")
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
    x_train, y_train = data["train"]
    model = RSNN(cfg, tuple(x_train.shape[1:]), num_classes=int(y_train.max()) + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs) if args.cosine else None
    print(json.dumps({"args": vars(args), "config": dataclasses.asdict(cfg), "shape": list(x_train.shape)}), flush=True)
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(y_train))
        total, rate = 0.0, 0.0
        model.train()
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            xb = x_train[idx]
            if args.shift:                                                  # [b, 28, 28] digits
                dy, dx = torch.randint(-args.shift, args.shift + 1, (2,)).tolist()
                xb = torch.roll(xb, (dy, dx), dims=(1, 2))
            out, _, spk = model.run(xb.transpose(0, 1))                     # [1, b, C], [T, b, H]
            loss = F.cross_entropy(out.sum(0), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            rate += spk.mean().item() * len(idx)
        if schedule:
            schedule.step()
        model.eval()
        row = {"epoch": epoch, "train_loss": round(total / len(order), 4), "spike_rate": round(rate / len(order), 4),
               "val_acc": accuracy(model, *data["val"]), "test_acc": accuracy(model, *data["test"]),
               "minutes": round((time.perf_counter() - start) / 60, 2)}
        print(json.dumps(row), flush=True)
        if args.minutes and row["minutes"] > args.minutes:
            break


if __name__ == "__main__":
    main()
