"""The recurrent layer's fast path against snnTorch's per-step ``RLeaky`` loop: training throughput
and peak memory of backpropagation through time, for T up to 1,000 steps.

Both train the same network on the same batch, a recurrent LIF layer and a linear readout whose
outputs are summed over time (cross-entropy of the sum, Adam, lr 2e-3)::

    x [T, B, n_in]  ->  Linear(n_in, H)  ->  recurrent LIF, H neurons  ->  Linear(H, C), summed over T

* **snntorch**: the tutorial loop, ``fc_in``, ``snn.RLeaky(all_to_all=True, linear_features=H)``
  and the readout called once per step (autograd keeps each step's tensors);
* **fast**: ``snn_lib.recurrent.RecurrentLayer(impl="fast")``, the whole layer as one autograd
  node (``RecurrentScan``) that keeps only the states at the start of every 32 steps and
  recomputes the rest in its backward pass; the readout is applied to the spikes summed over
  time (equal, the readout being linear), as :class:`snn_lib.rsnn.RSNN` does.

The input is random spikes (5% per channel and step). **samples/s** is the batch over the fastest
of ``--rounds`` training steps (forward, backward, Adam), the two implementations interleaved so
that a neighbour's load falls on both; the ratio is fast over snnTorch in the same run. **peak MB**
is the growth of the resident memory during one training step (sampled every 2 ms after the heap
is trimmed, ``train_speed.peak_memory_mb``), each measured in its own fresh process after one
warm-up step, so that no allocator cache of another configuration is counted. **loss diff** is the
difference of the two first losses from the same weights (the snnTorch recurrent bias set to 0):
the same network.

    python benchmarks/recurrent_speed.py                         # T 100, 300, 1000; batch 32; H 256
    python benchmarks/recurrent_speed.py --T 100 --rounds 2      # a quick look
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

import common  # noqa: F401  (the repository on the import path)
from snn_lib.model import make_loss  # noqa: E402
from snn_lib.neurons import spike_fn  # noqa: E402
from snn_lib.recurrent import RecurrentLayer  # noqa: E402
from snn_lib.report import results_meta, write_results  # noqa: E402
from snn_lib.train import train_step  # noqa: E402

IMPLS = ("snntorch", "fast")


class SnnTorchLoop(torch.nn.Module):
    """The per-step loop with snnTorch's RLeaky: ``x [T, B, n_in]`` -> summed readout ``[B, C]``."""

    def __init__(self, n_in: int, hidden: int, classes: int, beta: float):
        super().__init__()
        import snntorch as snn
        self.fc_in = torch.nn.Linear(n_in, hidden)
        self.lif = snn.RLeaky(beta=beta, threshold=1.0, linear_features=hidden, spike_grad=spike_fn("atan", 2.0))
        self.readout = torch.nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spk, mem = self.lif.reset_mem()
        total = 0
        for x_t in x:                                             # [B, n_in]
            spk, mem = self.lif(self.fc_in(x_t), spk, mem)        # [B, H] each
            total = total + self.readout(spk)                     # [B, C]
        return total


class FastPath(torch.nn.Module):
    """The same network with the fast recurrent layer: ``x [T, B, n_in]`` -> ``[B, C]``."""

    def __init__(self, n_in: int, hidden: int, classes: int, tau_mem: float):
        super().__init__()
        self.layer = RecurrentLayer(n_in, hidden, "lif", recurrent=True, tau_mem=tau_mem, impl="fast")
        self.readout = torch.nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spk, _ = self.layer(x)                                    # [T, B, H]
        # sum_t (W spk[t] + b) = W sum_t spk[t] + T b: nothing [T, B, H] kept for the readout
        return self.readout(spk.sum(0)) + (x.shape[0] - 1) * self.readout.bias       # [B, C]


def build(impl: str, args: argparse.Namespace, seed: int = 0) -> torch.nn.Module:
    """One of :data:`IMPLS`, with the same weights for the same seed."""
    torch.manual_seed(seed)
    fast = FastPath(args.n_in, args.hidden, args.classes, args.tau_mem)
    # snnTorch keeps beta as a float32 tensor: the same rounded value for both (otherwise the
    # 3e-8 difference moves a membrane across the threshold after a few hundred steps)
    fast.layer.beta = torch.tensor(fast.layer.beta, dtype=torch.float32).item()
    with torch.no_grad():
        fast.layer.input.weight.mul_(args.input_gain)
    if impl == "fast":
        return fast
    loop = SnnTorchLoop(args.n_in, args.hidden, args.classes, fast.layer.beta)
    loop.fc_in.load_state_dict(fast.layer.input.state_dict())
    loop.readout.load_state_dict(fast.readout.state_dict())
    with torch.no_grad():
        loop.lif.recurrent.weight.copy_(fast.layer.recurrent.weight)
        loop.lif.recurrent.bias.zero_()
    return loop


def batch(args: argparse.Namespace, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(T)
    x = (torch.rand(T, args.batch, args.n_in, generator=g) < 0.05).float()         # [T, B, n_in]
    return x, torch.randint(0, args.classes, (args.batch,), generator=g)


class _Scores(torch.nn.Module):
    """A network of scores ``[B, C]`` as every network of snn_lib: ``(out [1, B, C], out)``, so that
    the library's one training step (:func:`snn_lib.train.train_step`, the count loss) trains it."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(x).unsqueeze(0)                                  # [1, B, C]
        return out, out


def trainer(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    """One Adam step of ``model`` on ``(x, y)`` with the cross-entropy of its scores, as a function."""
    net = _Scores(model)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    loss_fn = make_loss("ce_count")                         # cross-entropy of the scores summed over [1]

    def step() -> float:
        loss, _ = train_step(net, x, y, opt, loss_fn)
        return loss.item()
    return step


def child(args: argparse.Namespace) -> None:
    """In a fresh process: one warm-up step, then the peak memory of one step, as a JSON line."""
    from train_speed import peak_memory_mb
    torch.set_num_threads(args.threads)
    x, y = batch(args, args.child_T)
    step = trainer(build(args.child, args), x, y)
    step()
    print(json.dumps({"peak_mb": peak_memory_mb(step, torch.device("cpu"))}))


def peak_in_subprocess(impl: str, T: int, args: argparse.Namespace) -> float:
    command = [sys.executable, __file__, "--child", impl, "--child-T", str(T)] + [
        f"--{k.replace('_', '-')}={getattr(args, k)}" for k in ("batch", "hidden", "n_in", "classes", "tau_mem",
                                                                  "input_gain", "threads")]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mb"]


def float64_difference(args: argparse.Namespace, x: torch.Tensor) -> float:
    """Largest difference of the two networks' outputs (the summed readout) in float64, forward only:
    0 up to rounding when they compute the same function."""
    models = {impl: build(impl, args).double() for impl in IMPLS}
    lif = models["snntorch"].lif
    lif.spike_grad = lambda v, spike=lif.spike_grad: spike(v).to(v.dtype)      # snnTorch's spikes are float32
    with torch.no_grad():
        out = [models[impl](x.double()) for impl in IMPLS]
    return (out[0] - out[1]).abs().max().item()


def measure(args: argparse.Namespace, T: int) -> list[dict]:
    x, y = batch(args, T)
    models = {impl: build(impl, args) for impl in IMPLS}
    steps = {impl: trainer(model, x, y) for impl, model in models.items()}
    first = {impl: step() for impl, step in steps.items()}                   # warm-up, from equal weights
    times: dict[str, list[float]] = {impl: [] for impl in IMPLS}
    spikes = models["fast"].layer(x)[0].mean().item()
    for _ in range(args.rounds):
        for impl in IMPLS:
            start = time.perf_counter()
            steps[impl]()
            times[impl].append(time.perf_counter() - start)
    rows = []
    for impl in IMPLS:
        best = min(times[impl])
        rows.append({"T": T, "batch": args.batch, "hidden": args.hidden, "impl": impl,
                     "samples_per_s": round(args.batch / best, 2), "best_ms": round(1000 * best, 1),
                     "median_ms": round(1000 * statistics.median(times[impl]), 1),
                     "peak_mb": round(peak_in_subprocess(impl, T, args), 1), "first_loss": first[impl],
                     "spike_rate": round(spikes, 4)})
    ref, fast = rows
    fast["float64_max_diff"] = float64_difference(args, x)
    fast["speed_ratio"] = round(fast["samples_per_s"] / ref["samples_per_s"], 2)
    fast["memory_ratio"] = round(fast["peak_mb"] / ref["peak_mb"], 3) if ref["peak_mb"] > 0 else None
    fast["loss_diff"] = abs(fast["first_loss"] - ref["first_loss"])
    return rows


def markdown(data: dict) -> str:
    lines = ["# The recurrent fast path against snnTorch's per-step RLeaky loop", "",
             f"`{data['command']}`", "",
             f"{data['hardware']}, load average {data['load_average']} at the start, {data['load_average_end']} at "
             f"the end; torch {data['software']['torch']}, {data['date']}. A training step (forward, backward, "
             f"Adam) of a recurrent LIF layer of {data['hidden']} neurons on {data['n_in']} input channels, "
             "summed linear readout; samples/s from the fastest of the interleaved steps, peak MB from a fresh "
             "process per row.", "",
             "|    T | batch | implementation | samples/s | best ms | median ms | peak MB | speed x | memory x |",
             "|-----:|------:|:---------------|----------:|--------:|----------:|--------:|--------:|---------:|"]
    for r in data["rows"]:
        speed = f"{r['speed_ratio']:.2f}" if "speed_ratio" in r else "1"
        memory = f"{r['memory_ratio']:.2f}" if r.get("memory_ratio") is not None else ("1" if r["impl"] == "snntorch"
                                                                                      else "-")
        lines.append(f"| {r['T']:4d} | {r['batch']:5d} | {r['impl']:<14} | {r['samples_per_s']:9.1f} | "
                     f"{r['best_ms']:7.0f} | {r['median_ms']:9.0f} | {r['peak_mb']:7.1f} | {speed:>7} | {memory:>8} |")
    fast_rows = [r for r in data["rows"] if r["impl"] == "fast"]
    lines += ["", "The same network: from the same weights, the summed readouts of the two differ by at most "
              f"{max(r['float64_max_diff'] for r in fast_rows):.1e} in float64. In float32 their first losses "
              "differ by " + ", ".join(f"{r['loss_diff']:.1e} (T={r['T']})" for r in fast_rows) + ": the two add "
              "the same terms in another order, and over hundreds of steps a rounding difference can move a "
              "membrane across the threshold, after which the spike trains part."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--T", type=int, nargs="+", default=[100, 300, 1000])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--n-in", type=int, default=100)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--tau-mem", type=float, default=20.0)
    p.add_argument("--input-gain", type=float, default=3.0, help="scales the input weights so the layer spikes")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--save", default="", help="results stem, e.g. benchmarks/results/recurrent_speed")
    p.add_argument("--child", choices=IMPLS, help=argparse.SUPPRESS)
    p.add_argument("--child-T", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    torch.set_num_threads(args.threads)
    command = "python benchmarks/recurrent_speed.py " + " ".join(sys.argv[1:] if argv is None else argv)
    data = results_meta(command.strip())
    data.update(hidden=args.hidden, n_in=args.n_in, batch=args.batch, threads=args.threads, rounds=args.rounds,
                rows=[row for T in args.T for row in measure(args, T)])
    data["load_average_end"] = results_meta("")["load_average"]
    text = markdown(data)
    if args.save:
        write_results(args.save, data, text)
    print(text)
    print(json.dumps({r["T"]: {k: r[k] for k in ("speed_ratio", "memory_ratio")} for r in data["rows"]
                      if r["impl"] == "fast"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
