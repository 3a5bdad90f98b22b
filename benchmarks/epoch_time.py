"""Time whole training epochs of the CSNN over an N-MNIST-sized dataset held on the device.

Issue 5's GPU target is an epoch of 60,000 recordings at T=25 in under 2 s. ``train_speed.py``
measures single steps; this script times ``snn_lib.train.train_epoch``, the epoch loop of
``snn-train`` itself (forward, loss, backward, Adam, and its per-step loss and accuracy), over a
shuffled :class:`snn_lib.data.loader.FrameLoader` whose uint8 frames ``[N, T, 2, 34, 34]`` sit in
device memory, with the model prepared by ``prepare_model`` as training does. The data are
synthetic (``train_speed.synthetic_frames``: sparse counts on ~7% of pixels), so the time is
meaningful and the accuracy is not: whether a setting keeps accuracy is for ``snn-train`` on real
N-MNIST to show.

    python benchmarks/epoch_time.py --device cuda                    # 60,000 recordings, batch 256
    python benchmarks/epoch_time.py --device cuda --batch 1024 --amp bf16
    python benchmarks/epoch_time.py --n 2000 --epochs 2              # a CPU check of the script

The options are the ``snn-train`` settings of the same names (``train.amp``, ``train.compile``,
``train.channels_last``, ``model.lif_impl``). The first epoch is a warm-up (allocations, cuDNN's
algorithm search, compilation with ``--compile``); the following ones are timed. The last line printed is a JSON object with
``epoch_seconds`` (the fastest timed epoch), ``samples_per_s`` and the settings.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_speed import synthetic_frames  # noqa: E402  (the benchmarks folder is not a package)

from snn_lib.config import ModelConfig, TrainConfig  # noqa: E402
from snn_lib.data.loader import FrameLoader  # noqa: E402
from snn_lib.device import keep_freed_cpu_memory, resolve_device  # noqa: E402
from snn_lib.errors import SnnError  # noqa: E402
from snn_lib.model import CSNN, make_loss  # noqa: E402
from snn_lib.report import hardware  # noqa: E402
from snn_lib.train import prepare_model, train_epoch  # noqa: E402


def make_data(n: int, T: int, seed: int, chunk: int = 5000) -> tuple[torch.Tensor, torch.Tensor]:
    """``synthetic_frames`` made ``chunk`` recordings at a time (60,000 at once would need ~14 GB of
    float32 random numbers)."""
    parts = [synthetic_frames(min(chunk, n - start), T, seed=seed + start) for start in range(0, n, chunk)]
    return torch.cat([f for f, _ in parts]), torch.cat([y for _, y in parts])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=60_000, help="recordings per epoch (N-MNIST: 60,000)")
    p.add_argument("--T", type=int, default=25, help="time bins")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--epochs", type=int, default=3, help="epochs in all; the first is a warm-up")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--amp", default="off", choices=["off", "bf16"])
    p.add_argument("--lif", default="fused", choices=["fused", "compiled", "scan"], help="model.lif_impl")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (train.compile)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", help="also append the result line (markdown) to this file")
    args = p.parse_args(argv)
    if args.epochs < 2:
        p.error("--epochs must be at least 2: the first epoch is a warm-up")

    device = resolve_device(args.device)                           # auto: the GPU if there is one
    if device.type == "cpu":
        keep_freed_cpu_memory()                                    # as snn-train does on CPU
    torch.manual_seed(args.seed)
    frames, labels = make_data(args.n, args.T, args.seed)
    loader = FrameLoader(frames, labels, args.batch, shuffle=True, seed=args.seed, device=device)
    del frames
    train_cfg = TrainConfig(batch_size=args.batch, lr=args.lr, amp=args.amp, compile=args.compile,
                            channels_last=args.channels_last)
    model = CSNN(ModelConfig(lif_impl=args.lif))
    net = prepare_model(model, train_cfg, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = make_loss(train_cfg.loss)

    seconds = []
    for epoch in range(args.epochs):
        loader.set_epoch(epoch)
        stats = train_epoch(net, loader, optimizer, loss_fn, train_cfg, device, desc=f"epoch {epoch}")
        seconds.append(stats["seconds"])
        print(f"epoch {epoch}{' (warm-up)' if epoch == 0 else ''}: {stats['seconds']:.2f} s, "
              f"loss {stats['loss']:.3f}", flush=True)
    best = min(seconds[1:])
    settings = (f"N={args.n}, T={args.T}, batch {args.batch}, amp={args.amp}, lif={args.lif}, "
                f"compile={args.compile}, channels_last={args.channels_last}")
    line = (f"| {hardware(device)} | {settings} | {best:.2f} s | {args.n / best:,.0f} | "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__} |")
    print(line)
    if args.save:
        os.makedirs(os.path.dirname(args.save) or ".", exist_ok=True)
        new = not os.path.exists(args.save)
        with open(args.save, "a") as f:
            if new:
                f.write("Epoch time of the CSNN's fast path on synthetic N-MNIST-sized data held on the device "
                        "(`python benchmarks/epoch_time.py ...`: snn_lib.train.train_epoch; fastest timed epoch, "
                        "after one warm-up epoch).\n\n"
                        "| hardware | settings | epoch | recordings / s | when |\n|---|---|---:|---:|---|\n")
            f.write(line + "\n")
    print(json.dumps({"epoch_seconds": round(best, 3), "samples_per_s": round(args.n / best, 1),
                      "epochs_seconds": [round(s, 3) for s in seconds], "n": args.n, "T": args.T,
                      "batch": args.batch, "amp": args.amp, "lif": args.lif, "compile": args.compile,
                      "channels_last": args.channels_last, "device": str(device), "hardware": hardware(device),
                      "torch": torch.__version__, "python": platform.python_version()}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SnnError as err:                                        # a setting this machine cannot run
        sys.exit(f"epoch_time.py: {err}")
