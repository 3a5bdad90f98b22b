"""Training speed of the CSNN: the snnTorch per-step loop against the fast path, in one run.

Both implementations train the same model (same initial parameters, same batches, Adam, the
cross-entropy-on-spike-counts loss of ``train.loss=ce_count``) on synthetic N-MNIST-shaped data
held in memory by :class:`snn_lib.data.loader.FrameLoader`: sparse uint8 event counts
``[N, T, 2, 34, 34]``, so no dataset is needed. For every T and batch size it prints training
samples per second, peak memory, the fraction of step time spent in the loader, and the ratio
fast / reference. Steps of the implementations are interleaved in rounds. Throughput is computed
from the fastest step of each (the cost of the work itself: on a shared machine other processes
stretch single steps, the per-step loop with its many small parallel ops far more than the fast
path, so medians there flatter the fast path); the median step is printed too.

    python benchmarks/train_speed.py --quick              # < 2 min on two CPU cores
    python benchmarks/train_speed.py                      # T in {10, 25, 50}, batch 16..128
    python benchmarks/train_speed.py --options            # fast-path options one by one
    python benchmarks/train_speed.py --peers              # also SpikingJelly, Norse, the snnTorch tutorial
    python benchmarks/train_speed.py --options --variants compiled cudagraphs --batch 32 256
    python benchmarks/train_speed.py --save benchmarks/results/cpu-2core.md

``--peers`` adds the same network built with the other SNN libraries that are installed
(``benchmarks/peers.py``, extra ``.[peers]``) to the same interleaved run, trained by the same
step; the results file then says how each peer's neuron is set to match ours, and under each
setting the ratio of the fast path to the fastest peer.

The last line printed is a JSON object: ``reference_samples_per_s``, ``fast_samples_per_s``,
``ratio`` (for the headline setting, T=25 and batch 32, the defaults of ``snn-train``), the
hardware, and every row of the table. On a GPU the lines before it judge issue 16's target (20x
the loop at T=25, batch 32) and, from the step times at a larger batch, whether the steps are
launch-bound. ``--save NAME.md`` writes the results file: NAME.json (the data: the rows, the checks
against the reference, the peers, the machine and the load) and NAME.md, rendered from it.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` during one step; on CPU the growth of the
process's resident memory during one step (sampled every 2 ms after ``malloc_trim`` has handed
free memory back), an estimate good to a few MB.

CPU allocator: by default the script sets it up as ``snn-train`` does on CPU
(``snn_lib.device.keep_freed_cpu_memory``: glibc keeps freed blocks for reuse instead of unmapping
them), for both implementations; ``--malloc default`` leaves glibc's defaults, under which every
tensor over 32 MB is mapped and zero-filled afresh in every step (the fast path's time-folded
tensors, not the loop's per-step ones). The setting is written into the results.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator

import torch

from common import synthetic_frames

from snn_lib.config import ModelConfig
from snn_lib.data.loader import FrameLoader
from snn_lib.device import (check_amp, configure_backends, grad_scaler, keep_freed_cpu_memory,
                            precision_label, resolve_device)
from snn_lib.errors import SnnError
from snn_lib.model import CSNN, make_loss
from snn_lib.report import results_meta, write_results
from snn_lib.train import forward_backward, train_step

HEADLINE = (25, 32)                      # (T, batch): the defaults of snn-train


# ----------------------------------------------------------------------------- hardware, memory

def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _trim_heap() -> None:
    """glibc: give the free parts of every heap back, so the baseline holds only live memory and the
    step under measurement touches its blocks afresh."""
    with contextlib.suppress(AttributeError):
        _libc().malloc_trim(0)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory_mb(fn: Callable[[], None], device: torch.device) -> float:
    """Extra memory (MB) that one call of ``fn`` needs at its peak."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    _trim_heap()
    base, peak, done = _rss_bytes(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    return (max(peak[0], _rss_bytes()) - base) / 2**20


# ----------------------------------------------------------------------------- data, model, step

@dataclasses.dataclass
class Variant:
    """One way of training: implementation, LIF kernels and the GPU options (applied here)."""
    name: str
    impl: str = "fast"                   # "reference" or "fast"
    lif_impl: str = "fused"              # for the fast path: auto, fused, compiled, scan
    amp: str = "off"                     # "off", "bf16" or "fp16"
    channels_last: bool = False
    compile: str = ""                    # "" or a torch.compile mode of the model: "default", "reduce-overhead" (CUDA graphs)
    peer: object = None                  # --peers: a peers.PeerRun, the network built with another library


class Trainer:
    """A model and its optimizer for one :class:`Variant`, trained by ``snn_lib.train.train_step``
    (the step ``snn-train`` runs)."""

    def __init__(self, variant: Variant, state: dict, device: torch.device, lr: float):
        self.variant = variant
        check_amp(variant.amp, device)
        configure_backends(device)                                 # as prepare_model does
        if variant.peer is not None:                                # another library's build, same weights
            import peers
            model = peers.build(variant.peer, state, device)
        else:
            model = CSNN(ModelConfig(impl=variant.impl, lif_impl=variant.lif_impl)).to(device)
            model.load_state_dict(state)
        if variant.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self.net = torch.compile(model, mode=variant.compile) if variant.compile else model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.loss_fn = make_loss("ce_count")
        self.scaler = grad_scaler(variant.amp, device)

    def gradients(self, frames: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Parameter gradients of the loss on one batch (no optimizer step)."""
        forward_backward(self.net, frames, labels, self.loss_fn, self.variant.amp)
        grads = {k: p.grad.detach().float().cpu().clone() for k, p in self.model.named_parameters()}
        self.optimizer.zero_grad(set_to_none=True)
        return grads

    def step(self, frames: torch.Tensor, labels: torch.Tensor) -> float:
        """One optimizer step on ``frames [T, B, 2, H, W]``; returns the loss (synchronised)."""
        loss, _ = train_step(self.net, frames, labels, self.optimizer, self.loss_fn, self.variant.amp, self.scaler)
        return loss.item()                                         # waits for the device


def timed_batches(loader: FrameLoader, data_seconds: list[float]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of ``loader`` forever (epoch after epoch), the time spent fetching each recorded."""
    epoch = 0
    while True:
        loader.set_epoch(epoch)
        it = iter(loader)
        while True:
            start = time.perf_counter()
            batch = next(it, None)
            if batch is not None and loader.frames.device.type == "cuda":
                torch.cuda.synchronize()
            data_seconds.append(time.perf_counter() - start)
            if batch is None:
                data_seconds.pop()
                break
            yield batch
        epoch += 1


@dataclasses.dataclass
class Measured:
    samples_per_s: float                 # batch / fastest step
    step_ms: float                       # fastest step
    median_ms: float
    data_fraction: float
    peak_mb: float
    losses: list[float]
    grads: dict[str, torch.Tensor]       # on the first batch, before any step


def measure(variants: list[Variant], T: int, batch: int, device: torch.device, steps: int, rounds: int,
            lr: float, seed: int = 0) -> dict[str, Measured]:
    """Train every variant from the same initial parameters on the same batches, interleaved. A
    variant that raises is reported and left out; the others are still measured."""
    frames, labels = synthetic_frames(batch * max(steps, 2), T, seed, device=device)    # made on the device
    torch.manual_seed(seed)
    state = CSNN(ModelConfig()).state_dict()
    trainers, streams, data_s, step_s, losses, grads = {}, {}, {}, {}, {}, {}
    first = (frames[:batch].float().transpose(0, 1).contiguous(), labels[:batch])
    active = []

    def failed(v: Variant, err: Exception) -> None:
        print(f"|     |       | {v.name}: failed ({type(err).__name__}: {str(err).splitlines()[0][:200]})", flush=True)
        if v in active:
            active.remove(v)

    for v in variants:
        try:
            trainers[v.name] = Trainer(v, state, device, lr)
            grads[v.name] = trainers[v.name].gradients(*first)
            loader = FrameLoader(frames, labels, batch, shuffle=True, seed=seed, device=device)
            data_s[v.name], step_s[v.name], losses[v.name] = [], [], []
            streams[v.name] = timed_batches(loader, data_s[v.name])
            trainers[v.name].step(*next(streams[v.name]))               # warm-up (and compilation)
            data_s[v.name].clear()
            active.append(v)
        except Exception as err:  # noqa: BLE001 - e.g. a compile mode this machine cannot run
            failed(v, err)
    for _ in range(rounds):
        for v in list(active):
            try:
                for _ in range(steps):
                    start = time.perf_counter()
                    batch_ = next(streams[v.name])
                    losses[v.name].append(trainers[v.name].step(*batch_))
                    step_s[v.name].append(time.perf_counter() - start)
            except Exception as err:  # noqa: BLE001
                failed(v, err)
    out = {}
    for v in active:
        trainer, stream = trainers[v.name], streams[v.name]
        peak = peak_memory_mb(lambda: trainer.step(*next(stream)), device)
        best, median = min(step_s[v.name]), statistics.median(step_s[v.name])
        out[v.name] = Measured(samples_per_s=batch / best, step_ms=1e3 * best, median_ms=1e3 * median,
                               data_fraction=sum(data_s[v.name][:len(step_s[v.name])]) / sum(step_s[v.name]),
                               peak_mb=peak, losses=losses[v.name],
                               grads=grads[v.name])
    return out


# ----------------------------------------------------------------------------- tables

def row_text(row: dict) -> str:
    """A row of the results table (a row of the data: see ``main``)."""
    ratio = f"{row['ratio']:6.2f}x" if row["ratio"] is not None else "      -"
    return (f"| {row['T']:3d} | {row['batch']:5d} | {row['implementation']:30s} | {row['samples_per_s']:9.1f} | "
            f"{row['step_ms']:8.1f} | {row['median_step_ms']:9.1f} | {row['peak_mb']:7.0f} | "
            f"{100 * row['data_fraction']:6.2f}% | {ratio} |")


def check_text(check: dict) -> str:
    """A note under a grid point: how far a variant's gradients and losses are from the reference's."""
    return (f"|     |       | {check['implementation']}: gradients on the first batch differ from the reference's by "
            f"{check['grad_diff']:.1e} (max over tensors, relative to the tensor's largest); "
            f"losses over {check['loss_steps']} steps by {check['loss_diff']:.1e}"
            + (" (another neuron: see the peers above)" if check["other_neuron"] else ""))


def head_lines(data: dict) -> list[str]:
    """The lines above the table: machine, load, allocator, software, command, the peers' settings."""
    lines = [f"hardware: {data['hardware']}, load average {data['load_average']:.1f}",
             "load average at start (1, 5, 15 min): " + " ".join(f"{x:.2f}" for x in data["load_average_start"]),
             f"CPU allocator, both implementations: {data['allocator']}",
             f"torch {data['software']['torch']}, python {data['software']['python']}, {data['date']}",
             *([f"arithmetic: {data['arithmetic']}"] if "arithmetic" in data else []),
             f"command: {data['command']}"]
    if data.get("peers_intro"):
        lines += ["", data["peers_intro"], *(f"* {line}" for line in data["peers"]), ""]
    return lines + ["", HEADER]


def markdown(data: dict) -> str:
    """The results file for a person, from its data: the head, then per grid point its rows, the
    checks against the reference and the fast path against the fastest peer, then the load at the end."""
    lines = head_lines(data)
    for point in dict.fromkeys((r["T"], r["batch"]) for r in data["rows"]):
        lines += [row_text(r) for r in data["rows"] if (r["T"], r["batch"]) == point]
        lines += [check_text(c) for c in data["checks"] if (c["T"], c["batch"]) == point]
        lines += [f"|     |       | fast / fastest peer ({r['fastest_peer']}): {r['fast_to_fastest_peer']:.2f}x"
                  for r in data.get("peer_rows", []) if (r["T"], r["batch"]) == point]
    lines += data.get("verdict", [])
    lines += ["", "load average at end (1, 5, 15 min): " + " ".join(f"{x:.2f}" for x in data["load_average_end"]),
              *data.get("notes", [])]
    return "\n".join(lines) + "\n"


def variants(fast_lif: str) -> dict[str, Variant]:
    """The ways of training that ``--variants`` names (``fast`` is the headline fast path)."""
    return {"reference": Variant("reference (snnTorch per step)", impl="reference"),
            "fast": Variant(f"fast ({fast_lif} LIF)", lif_impl=fast_lif),
            "fused": Variant("fast, eager fused LIF", lif_impl="fused"),
            "compiled": Variant("fast, compiled LIF kernels", lif_impl="compiled"),
            "bf16": Variant("fast, bf16 autocast", lif_impl=fast_lif, amp="bf16"),
            "fp16": Variant("fast, fp16 autocast + scaler", lif_impl=fast_lif, amp="fp16"),
            "channels_last": Variant("fast, channels_last", lif_impl=fast_lif, channels_last=True),
            "compile": Variant("fast, torch.compile (model)", lif_impl="scan", compile="default"),
            "cudagraphs": Variant("fast, compile + CUDA graphs", lif_impl="scan", compile="reduce-overhead"),
            "all": Variant("fast, all: bf16+cl+compile", lif_impl="scan", amp="bf16", channels_last=True,
                           compile="default")}


TARGET_RATIO, TARGET_T, TARGET_BATCH = 20.0, 25, 32
"""Issue 16's GPU target: at least 20x the snnTorch loop at T=25, batch 32."""


def target_verdict(rows: list[dict], reference: str) -> list[str]:
    """Whether the fastest fast-path variant reaches 20x the loop at T=25, batch 32 (on a GPU), and,
    if not, whether its steps look launch-bound: nearly as long at a larger batch."""
    at = [r for r in rows if (r["T"], r["batch"]) == (TARGET_T, TARGET_BATCH) and r["implementation"] != reference]
    if not at:
        return []
    best = max(at, key=lambda r: r["ratio"])
    lines = [f"target ({TARGET_RATIO:g}x the snnTorch loop at T={TARGET_T}, batch {TARGET_BATCH}): "
             f"{'met' if best['ratio'] >= TARGET_RATIO else 'missed'}; best {best['ratio']}x ({best['implementation']})"]
    larger = [r for r in rows if r["implementation"] == best["implementation"] and r["T"] == TARGET_T
              and r["batch"] > TARGET_BATCH]
    if larger:
        other = max(larger, key=lambda r: r["batch"])
        growth = other["step_ms"] / best["step_ms"]
        regime = ("launch-bound: the step barely grows with the batch, its time is kernel launches and host "
                  "work, not arithmetic" if growth < 0.25 * other["batch"] / TARGET_BATCH else
                  "throughput-bound: the step grows with the batch")
        lines.append(f"{best['implementation']}: a step at batch {other['batch']} takes {growth:.2f}x the one at "
                     f"batch {TARGET_BATCH} ({other['batch'] / TARGET_BATCH:g}x the work): {regime}")
    return lines


HEADER = ("|   T | batch | implementation                 | samples/s | best ms | median ms | peak MB |  data % |   ratio |\n"
          "|----:|------:|:-------------------------------|----------:|--------:|----------:|--------:|--------:|--------:|")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="T in {10, 25}, batch 32: under two minutes on 2 CPU cores")
    p.add_argument("--options", action="store_true",
                   help="fast-path options one by one (compiled LIF, bf16, channels_last, torch.compile, "
                        "CUDA graphs on GPU) at T=25 and the largest batch (or each --batch)")
    p.add_argument("--variants", nargs="+", choices=list(variants("auto")),
                   help="with --options: these variants (the reference is always measured)")
    p.add_argument("--peers", action="store_true",
                   help="also the same network in the other SNN libraries installed (benchmarks/peers.py): "
                        "snnTorch tutorial style, SpikingJelly (on CUDA each of its LIF implementations), Norse")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--T", type=int, nargs="+", help="time steps (default 10 25 50; quick: 10 25)")
    p.add_argument("--batch", type=int, nargs="+", help="batch sizes (default CPU 16 32 64 128, GPU 32 128 512 2048)")
    p.add_argument("--steps", type=int, help="steps per round and variant (default 2, quick 1)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 5)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--fast-lif", default="auto", choices=["auto", "fused", "compiled"],
                   help="LIF kernels of the 'fast' column (auto: compiled on a GPU, fused on CPU; compiled: "
                        "torch.compile-made, compiles first)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own, one per core)")
    p.add_argument("--malloc", default="train", choices=["train", "default"],
                   help="CPU allocator: 'train' keeps freed blocks as snn-train does "
                        "(snn_lib.device.keep_freed_cpu_memory), 'default' leaves glibc as it is")
    p.add_argument("--save", help="also write the results to this file: NAME.json (the data) and NAME.md")
    args = p.parse_args(argv)
    if args.peers and args.options:
        p.error("--peers compares the default fast path with the peers; run --options separately")
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)                           # auto: the GPU if there is one
    gpu = device.type == "cuda"
    Ts = args.T or ([10, 25] if args.quick else [10, 25, 50])
    batches = args.batch or ([32] if args.quick else ([32, 128, 512, 2048] if gpu else [16, 32, 64, 128]))
    steps = args.steps or (1 if args.quick else 2)
    rounds = args.rounds or (5 if args.quick else 3)
    named = variants(args.fast_lif)
    fast, reference = named["fast"], named["reference"]

    allocator = "not applicable (GPU)" if gpu else "glibc defaults"
    if not gpu and args.malloc == "train":
        allocator = ("freed blocks kept for reuse, as in snn-train (keep_freed_cpu_memory)"
                     if keep_freed_cpu_memory() else "glibc defaults (keep_freed_cpu_memory not available)")
    command = f"python {' '.join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))}"
    data = {**results_meta(command, device), "device": str(device),
            "load_average_start": [round(x, 2) for x in os.getloadavg()], "allocator": allocator,
            "arithmetic": f"{precision_label(device)} unless a variant names its autocast"}
    other_neuron = set()
    peer_variants = []
    if args.peers:
        import peers
        peer_runs, skipped = peers.runs(device)
        peer_variants = [Variant(run.name, impl="peer", peer=run) for run in peer_runs]
        other_neuron = {run.name for run in peer_runs if run.peer.key != "snntorch-tutorial"}
        cfg = ModelConfig()                                         # the peers are built with its values
        data["peers_intro"] = ("Peers (benchmarks/peers.py), each neuron set to match ours = snnTorch Leaky, "
                               f"U[t] = beta*U[t-1] + I[t] - theta*S[t-1], beta={cfg.beta}, theta={cfg.threshold}, "
                               f"{cfg.surrogate}(alpha={cfg.surrogate_slope}):")
        data["peers"] = [f"{run.name}: {run.peer.note}" for run in peer_runs] + [f"skipped: {line}" for line in skipped]
    print("\n".join(head_lines(data)), flush=True)
    rows, checks, peer_rows = [], [], []

    def report(T: int, batch: int, results: dict[str, Measured], ref_name: str) -> None:
        ref = results.get(ref_name)
        for name, m in results.items():
            rows.append({"T": T, "batch": batch, "implementation": name, "samples_per_s": round(m.samples_per_s, 2),
                         "step_ms": round(m.step_ms, 2), "median_step_ms": round(m.median_ms, 2), "peak_mb": round(m.peak_mb, 1),
                         "data_fraction": round(m.data_fraction, 5),
                         "ratio": round(m.samples_per_s / ref.samples_per_s, 3) if name != ref_name else None})
            print(row_text(rows[-1]), flush=True)
        if ref is not None:     # same math: every variant trained on the same batches, same steps
            for name, m in results.items():
                if name == ref_name:
                    continue
                checks.append({"T": T, "batch": batch, "implementation": name,
                               "grad_diff": max(((m.grads[k] - ref.grads[k]).abs().max()
                                                 / ref.grads[k].abs().max().clamp(min=1e-30)).item() for k in ref.grads),
                               "loss_steps": len(ref.losses),
                               "loss_diff": max(abs(a - b) for a, b in zip(ref.losses, m.losses)),
                               "other_neuron": name in other_neuron})
                print(check_text(checks[-1]), flush=True)
        if peer_variants:                                           # the target: fast ahead of the fastest peer
            best = max((v.name for v in peer_variants), key=lambda n: results[n].samples_per_s)
            peer_rows.append({"T": T, "batch": batch, "fastest_peer": best,
                              "fast_to_fastest_peer": round(results[fast.name].samples_per_s
                                                            / results[best].samples_per_s, 3)})

    if not args.options:
        for T in Ts:
            for batch in batches:
                report(T, batch, measure([reference, fast] + peer_variants, T, batch, device, steps, rounds, args.lr),
                       reference.name)
    else:
        default = ["fast", "compiled", "bf16", "channels_last", "compile"] + (["cudagraphs", "all"] if gpu else [])
        chosen = [named[name] for name in (args.variants or default) if name != "reference"]
        for batch in (args.batch or [max(batches)]):
            for T in (args.T or [25]):
                report(T, batch, measure([reference] + chosen, T, batch, device, steps, rounds, args.lr),
                       reference.name)

    headline = [r for r in rows if (r["T"], r["batch"]) == HEADLINE] or rows
    ref_row = next(r for r in headline if r["implementation"] == reference.name)
    fast_row = next((r for r in headline if r["implementation"] == fast.name),
                    next(r for r in headline if r["implementation"] != reference.name))
    data.update(rows=rows, checks=checks, **({"peer_rows": peer_rows} if args.peers else {}),
                verdict=target_verdict(rows, reference.name) if gpu else [],
                load_average_end=[round(x, 2) for x in os.getloadavg()],
                notes=[] if gpu else ["GPU figures: unmeasured on this machine (no GPU)."],
                headline={"reference_samples_per_s": ref_row["samples_per_s"],
                          "fast_samples_per_s": fast_row["samples_per_s"],
                          "ratio": round(fast_row["samples_per_s"] / ref_row["samples_per_s"], 3),
                          "T": ref_row["T"], "batch": ref_row["batch"]})
    text = markdown(data)
    print(text[text.index(HEADER) + len(HEADER) + 1:], end="")
    if args.save:
        json_path, md_path = write_results(args.save, data, text)
        print(f"wrote {json_path} and {md_path}")
    print(json.dumps({**data["headline"], "device": str(device), "hardware": data["hardware"],
                      "torch": torch.__version__, "rows": rows, **({"peers": peer_rows} if args.peers else {})}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SnnError as err:                                        # a setting this machine cannot run
        sys.exit(f"train_speed.py: {err}")
