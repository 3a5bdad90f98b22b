"""Profile a few training steps of the CSNN's fast path: kernels per step and how busy the device is.

For each LIF implementation named, the model (``snn_lib.train.prepare_model``) trains a few warm-up
steps of ``snn_lib.train.train_step`` on synthetic data made on the device, then ``--steps`` steps
under ``torch.profiler``. Printed per implementation:

* **kernels per step**: GPU kernels launched (on CUDA), or ATen operators that called no other
  (on CPU, the forward pass and the autograd engine's backward alike);
* **busy**: the share of the profiled wall time during which at least one GPU kernel ran (CUDA
  only): well under 1 means the GPU waits for the host (kernel launches, Python), i.e. the steps
  are launch-bound;
* the operators or kernels that took most time.

    python benchmarks/profile_steps.py --device cuda --batch 32 256 --lif fused compiled
    python benchmarks/profile_steps.py --device cpu --batch 4 --T 3 --steps 2     # a check of the script

The last line printed is a JSON object with one entry per (implementation, batch).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

from common import synthetic_frames

from snn_lib.config import ModelConfig, TrainConfig
from snn_lib.device import precision_label, resolve_device
from snn_lib.errors import SnnError
from snn_lib.model import CSNN, make_loss, resolve_lif_impl
from snn_lib.report import hardware
from snn_lib.train import prepare_model, train_step


def busy_fraction(intervals: list[tuple[float, float]], wall_us: float) -> float:
    """Share of ``wall_us`` covered by the union of the ``(start, end)`` intervals (microseconds)."""
    covered, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        covered += stop - max(start, end)
        end = stop
    return covered / wall_us if wall_us > 0 else 0.0


def profile_steps(lif: str, batch: int, T: int, steps: int, warmup: int, device: torch.device) -> dict:
    """Profile ``steps`` training steps after ``warmup`` ones; the summary as a dict."""
    torch.manual_seed(0)
    model = CSNN(ModelConfig(lif_impl=lif))
    net = prepare_model(model, TrainConfig(), device)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = make_loss("ce_count")
    frames, labels = synthetic_frames(batch, T, device=device)
    x = frames.float().transpose(0, 1).contiguous()                 # [T, B, 2, 34, 34]
    for _ in range(warmup):
        train_step(net, x, labels, optimizer, loss_fn)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    if cuda:
        torch.cuda.synchronize(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            train_step(net, x, labels, optimizer, loss_fn)
        if cuda:
            torch.cuda.synchronize(device)
        wall_us = (time.perf_counter() - start) * 1e6
    events = prof.events()
    if cuda:
        kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
        busy = busy_fraction([(e.time_range.start, e.time_range.end) for e in kernels], wall_us)
        totals: dict[str, float] = {}
        for e in kernels:
            totals[e.name] = totals.get(e.name, 0.0) + e.time_range.elapsed_us()
        count = len(kernels)
    else:
        ops = [e for e in events if e.name.startswith("aten::")                     # the operators that ran a
               and not any(c.name.startswith("aten::") for c in e.cpu_children)]   # kernel: none of theirs
        busy = None
        totals = {}
        for e in ops:
            totals[e.name] = totals.get(e.name, 0.0) + e.cpu_time_total
        count = len(ops)
    top = sorted(totals.items(), key=lambda kv: -kv[1])[:8]
    return {"lif": resolve_lif_impl(lif, device), "batch": batch, "T": T, "steps": steps,
            "what": "GPU kernels" if cuda else "ATen operators (innermost calls)",
            "per_step": round(count / steps, 1), "step_ms": round(wall_us / steps / 1e3, 2),
            "busy": None if busy is None else round(busy, 3), "precision": precision_label(device),
            "top": [{"name": name[:80], "ms_per_step": round(us / steps / 1e3, 3)} for name, us in top]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch", type=int, nargs="+", default=[256])
    p.add_argument("--T", type=int, default=25)
    p.add_argument("--steps", type=int, default=5, help="profiled steps")
    p.add_argument("--warmup", type=int, default=3, help="steps before profiling (compiles, cuDNN search)")
    p.add_argument("--lif", nargs="+", default=["fused", "compiled"], choices=["auto", "fused", "compiled", "scan"])
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    print(f"hardware: {hardware(device)}; torch {torch.__version__}; {precision_label(device)}", flush=True)
    results = []
    for batch in args.batch:
        for lif in args.lif:
            r = profile_steps(lif, batch, args.T, args.steps, args.warmup, device)
            results.append(r)
            busy = "" if r["busy"] is None else f", GPU busy {100 * r['busy']:.0f}% of the time"
            print(f"lif={r['lif']}, batch {batch}, T={args.T}: {r['per_step']:.0f} {r['what']} per step, "
                  f"{r['step_ms']:.2f} ms per step (profiled){busy}", flush=True)
            for t in r["top"]:
                print(f"    {t['ms_per_step']:8.3f} ms/step  {t['name']}")
            if r["busy"] is not None and r["busy"] < 0.5:
                print(f"    launch-bound: the GPU computes during {100 * r['busy']:.0f}% of the step and waits for "
                      "the host the rest of the time", flush=True)
    print(json.dumps({"device": str(device), "hardware": hardware(device), "torch": torch.__version__,
                      "results": results}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SnnError as err:
        sys.exit(f"profile_steps.py: {err}")
