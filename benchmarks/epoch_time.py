"""Time whole training epochs of the CSNN over an N-MNIST-sized dataset held on the device.

Issue 5's GPU target is an epoch of 60,000 recordings at T=25 in under 2 s. ``train_speed.py``
measures single steps; this script times ``snn_lib.train.train_epoch``, the epoch loop of
``snn-train`` itself (forward, loss, backward, Adam, and its loss and accuracy read once per
epoch), over a shuffled :class:`snn_lib.data.loader.FrameLoader` whose uint8 frames
``[N, T, 2, 34, 34]`` sit in device memory, with the model prepared by ``prepare_model`` as
training does. The data are synthetic (sparse counts on ~7% of pixels) and made on the device
itself (no transfer of gigabytes from the CPU), so the time is meaningful and the accuracy is
not: whether a setting keeps accuracy is for ``snn-train`` on real N-MNIST to show.

    python benchmarks/epoch_time.py --device cuda                          # 60,000 recordings, batch 256
    python benchmarks/epoch_time.py --device cuda --runs 32 128 256 1024 1024:bf16
    python benchmarks/epoch_time.py --n 2000 --runs 64                     # a CPU check of the script

``--runs`` lists ``BATCH`` or ``BATCH:AMP`` settings, timed one after the other on the same data
(default: ``--batch`` with ``--amp``). The other options are the ``snn-train`` settings of the same
names (``train.amp``, ``train.compile``, ``train.channels_last``, ``model.lif_impl``). Each run
first trains ``--warmup-steps`` steps and one step at the size of the epoch's partial last batch
(allocations, cuDNN's algorithm search, compilation), then times ``--epochs`` whole epochs. Each
run prints a JSON line as it finishes: ``epoch_seconds`` (the fastest timed epoch),
``samples_per_s``, ``peak_mb`` (on CUDA: the most memory the epoch allocated beyond the data), the
arithmetic (``precision``) and the settings.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from common import make_data

from snn_lib.config import ModelConfig, TrainConfig
from snn_lib.data.loader import FrameLoader
from snn_lib.device import AMP_MODES, check_amp, keep_freed_cpu_memory, precision_label, resolve_device
from snn_lib.errors import SnnError
from snn_lib.model import CSNN, make_loss
from snn_lib.report import hardware, load_results, results_meta, write_results
from snn_lib.train import prepare_model, train_epoch

TARGET_SECONDS, TARGET_N, TARGET_T, TARGET_MIN_BATCH = 2.0, 60_000, 25, 128
"""Issue 5's GPU target: a 60,000-recording epoch at T=25 in under 2 s, at a batch of 128 or more."""


def parse_run(text: str, default_amp: str) -> tuple[int, str]:
    """``"256"`` or ``"1024:bf16"`` -> ``(256, default_amp)`` or ``(1024, "bf16")``."""
    batch, _, amp = text.partition(":")
    amp = amp or default_amp
    if not batch.isdigit() or int(batch) < 1 or amp not in AMP_MODES:
        raise argparse.ArgumentTypeError(f"run {text!r}: expected BATCH or BATCH:AMP with AMP one of "
                                         f"{', '.join(AMP_MODES)}")
    return int(batch), amp


def time_run(frames: torch.Tensor, labels: torch.Tensor, batch: int, amp: str, args,
             device: torch.device) -> dict:
    """Warm-up steps, then ``args.epochs`` timed epochs of one setting; its result as a dict."""
    check_amp(amp, device)
    train_cfg = TrainConfig(batch_size=batch, lr=args.lr, amp=amp, compile=args.compile,
                            channels_last=args.channels_last)
    torch.manual_seed(args.seed)
    model = CSNN(ModelConfig(lif_impl=args.lif))
    net = prepare_model(model, train_cfg, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = make_loss(train_cfg.loss)
    n = len(labels)
    # warm-up: whole batches, then one of the size the epoch ends with (a shape of its own)
    warm = min(n, args.warmup_steps * batch + n % batch)
    warm_loader = FrameLoader(frames[:warm], labels[:warm], batch, device=device)
    train_epoch(net, warm_loader, optimizer, loss_fn, train_cfg, device, desc="warm-up")
    loader = FrameLoader(frames, labels, batch, shuffle=True, seed=args.seed, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    seconds = []
    for epoch in range(args.epochs):
        loader.set_epoch(epoch)
        stats = train_epoch(net, loader, optimizer, loss_fn, train_cfg, device, desc=f"epoch {epoch}")
        seconds.append(stats["seconds"])
    peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20 if device.type == "cuda" else None
    best = min(seconds)
    return {"epoch_seconds": round(best, 3), "samples_per_s": round(stats["samples"] / best, 1),
            "epochs_seconds": [round(s, 3) for s in seconds], "peak_mb": None if peak is None else round(peak, 1),
            "n": n, "T": frames.shape[1], "batch": batch, "amp": amp, "precision": precision_label(device, amp),
            "lif": args.lif, "compile": args.compile, "channels_last": args.channels_last, "device": str(device),
            "hardware": hardware(device), "torch": torch.__version__, "python": platform.python_version()}


def target_verdict(results: list[dict]) -> str | None:
    """Whether the runs meet issue 5's target (only for 60,000 recordings at T=25 on a GPU)."""
    eligible = [r for r in results if r["n"] == TARGET_N and r["T"] == TARGET_T and r["device"].startswith("cuda")
                and r["batch"] >= TARGET_MIN_BATCH]
    if not eligible:
        return None
    best = min(eligible, key=lambda r: r["epoch_seconds"])
    met = best["epoch_seconds"] < TARGET_SECONDS
    return (f"target (a {TARGET_N:,}-recording epoch at T={TARGET_T} in under {TARGET_SECONDS:g} s, batch >= "
            f"{TARGET_MIN_BATCH}): {'met' if met else 'missed'}; fastest {best['epoch_seconds']} s at batch "
            f"{best['batch']}, {best['precision']}")


def row_text(row: dict) -> str:
    """A row of the results table."""
    peak = "-" if row["peak_mb"] is None else f"{row['peak_mb']:,.0f}"
    return (f"| {row['hardware']} | {row['settings']} | {row['epoch_seconds']:.2f} s | {row['samples_per_s']:,.0f} | "
            f"{peak} | {row['date']}, torch {row['torch']} |")


def markdown(data: dict) -> str:
    """The results file for a person, from its data (``rows``: one per timed setting, each with its machine)."""
    return ("Epoch time of the CSNN's fast path on synthetic N-MNIST-sized data held on the device "
            f"(`{data['command']}`, and more rows added by later runs: snn_lib.train.train_epoch; fastest timed "
            "epoch, after warm-up steps). Peak MB: memory the epoch allocated beyond the data (CUDA).\n\n"
            "| hardware | settings | epoch | recordings / s | peak MB | when |\n"
            "|---|---|---:|---:|---:|---|\n" + "".join(row_text(r) + "\n" for r in data["rows"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=60_000, help="recordings per epoch (N-MNIST: 60,000)")
    p.add_argument("--T", type=int, default=25, help="time bins")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--amp", default="off", choices=AMP_MODES)
    p.add_argument("--runs", nargs="+", metavar="BATCH[:AMP]", help="settings timed one after the other")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per run (after the warm-up steps)")
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--lif", default="auto", choices=["auto", "fused", "compiled", "scan"], help="model.lif_impl")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (train.compile)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", help="also add each result (a row) to this results file: NAME.json (the data) and NAME.md")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error("--epochs must be at least 1")
    try:
        runs = [parse_run(r, args.amp) for r in args.runs] if args.runs else [(args.batch, args.amp)]
    except argparse.ArgumentTypeError as err:
        p.error(str(err))

    device = resolve_device(args.device)                           # auto: the GPU if there is one
    if device.type == "cpu":
        keep_freed_cpu_memory()                                    # as snn-train does on CPU
    frames, labels = make_data(args.n, args.T, args.seed, device=device)
    results = []
    for batch, amp in runs:
        result = time_run(frames, labels, batch, amp, args, device)
        results.append(result)
        row = {"hardware": result["hardware"], "settings": f"N={result['n']}, T={result['T']}, batch {batch}, "
               f"{result['precision']}, lif={args.lif}, compile={args.compile}, channels_last={args.channels_last}",
               "epoch_seconds": result["epoch_seconds"], "samples_per_s": result["samples_per_s"],
               "peak_mb": result["peak_mb"], "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "torch": torch.__version__}
        print(row_text(row), flush=True)
        if args.save:                      # the rows already in the file, then this one
            json_path = Path(args.save).with_suffix(".json")
            data = load_results(json_path) if json_path.is_file() else {
                **results_meta(f"python benchmarks/epoch_time.py {shlex.join(argv if argv is not None else sys.argv[1:])}",
                               device), "rows": []}
            data["rows"].append(row)
            write_results(json_path, data, markdown(data))
        print(json.dumps(result), flush=True)
    verdict = target_verdict(results)
    if verdict:
        print(verdict)
        print(json.dumps({"target": verdict}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SnnError as err:                                        # a setting this machine cannot run
        sys.exit(f"epoch_time.py: {err}")
