"""Checks of the project on a GPU, for ``gpu_session.sh``: what the CPU tests cannot show.

    python benchmarks/gpu_checks.py preflight                    # the GPU, the versions, the imports
    python benchmarks/gpu_checks.py correctness                  # the fast path on the GPU, end to end
    python benchmarks/gpu_checks.py correctness --device cpu --tiny    # the same code on a CPU, small

``correctness`` checks, on the device:

* the fast path against the snnTorch reference in float32 with TF32 off (spikes equal, membranes
  and gradients to 1e-4 of their largest value), and how far apart they are with TF32 on (PyTorch's
  default for convolutions on Ampere and newer: reported, not judged);
* the same in float64 for every neuron and pooling option (``model.reset``, ``model.pool``,
  ``model.learn_beta``, ``model.learn_threshold``), to 1e-5 as tests/test_kernels.py does on CPU;
* the eager, compiled and scan LIF against each other, and the kernels ``auto`` picks;
* one training step in bf16 and one in fp16 (with its loss scaler): finite, close to float32's loss;
* a 2-epoch ``run_training`` interrupted after epoch 1 and resumed, against an uninterrupted one,
  with the optimizer state on the GPU after the resume;
* ``train_epoch`` waits for the GPU only at its end (``torch.cuda.set_sync_debug_mode``), and
  ``evaluate`` runs without being told the device;
* ``torch.compile`` of the model: one graph, no break.

Each check prints ``check NAME: ok|FAIL|skip  details``; the last line is a JSON object with every
check. Exit status 1 if a check failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import platform
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

import torch

from common import synthetic_frames

RESULTS: dict[str, dict] = {}


def record(name: str, status: str, **details) -> None:
    RESULTS[name] = {"status": status, **details}
    text = ", ".join(f"{k}={v}" for k, v in details.items())
    print(f"check {name}: {status}  {text}", flush=True)


def check(name: str):
    """Run the decorated function as one check; an exception is a FAIL with its last line."""
    def wrap(fn):
        def run(*args, **kwargs):
            try:
                fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - a check reports, the next one runs
                traceback.print_exc()
                record(name, "FAIL", error=f"{type(err).__name__}: {str(err).splitlines()[0][:200]}")
        return run
    return wrap


# ---------------------------------------------------------------------------------- preflight

def preflight(device_name: str) -> None:
    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpus=torch.cuda.device_count(), name=props.name,
                    capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                    memory_gb=round(props.total_memory / 2**30, 1), cudnn=torch.backends.cudnn.version(),
                    bf16_supported=torch.cuda.is_bf16_supported(),
                    tf32_convolutions=torch.backends.cudnn.allow_tf32,
                    tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
    for module in ("triton", "snntorch", "tonic", "omegaconf", "hydra", "numpy", "matplotlib"):
        try:
            info[module] = getattr(importlib.import_module(module), "__version__", "?")
        except ImportError as err:
            info[module] = f"missing ({err})"
    print(json.dumps(info, indent=1), flush=True)
    missing = [m for m in ("snntorch", "tonic", "omegaconf", "hydra") if str(info[m]).startswith("missing")]
    record("imports", "FAIL" if missing else "ok", missing=missing)
    if not missing:
        try:
            for module in ("snn_lib.train", "snn_lib.cli", "snn_lib.evaluate"):
                importlib.import_module(module)
            record("snn_lib", "ok", path=str(Path(importlib.import_module("snn_lib").__file__).parent))
        except Exception as err:  # noqa: BLE001
            record("snn_lib", "FAIL", error=f"{type(err).__name__}: {err}")
    wanted = device_name != "cpu"
    if wanted and not torch.cuda.is_available():
        record("gpu", "FAIL", error="no CUDA device visible to torch")
    elif torch.cuda.is_available():
        x = torch.randn(1024, 1024, device="cuda")
        finite = bool(torch.isfinite(x @ x).all())                  # a kernel ran (and synchronised)
        record("gpu", "ok" if finite else "FAIL", name=info["name"], capability=info["capability"])
    else:
        record("gpu", "skip", reason="--device cpu")


# ---------------------------------------------------------------------------------- correctness

def make_pair(cfg, size: int, dtype: torch.dtype, device: torch.device, seed: int = 0):
    """Reference and fast CSNNs with the same parameters, scaled up so that every layer spikes."""
    from snn_lib.model import CSNN
    torch.manual_seed(seed)
    ref = CSNN(dataclasses.replace(cfg, impl="reference"), input_size=size).to(dtype)
    fast = CSNN(dataclasses.replace(cfg, impl="fast"), input_size=size).to(dtype)
    fast.load_state_dict(ref.state_dict())
    with torch.no_grad():
        for model in (ref, fast):
            model.conv1.weight.mul_(4.0)
            model.conv2.weight.mul_(6.0)
            model.fc.weight.mul_(8.0)
    if dtype == torch.float64:                  # snnTorch's surrogates return float32 whatever the input
        for lif in (ref.lif1, ref.lif2, ref.lif3):
            lif.spike_grad = (lambda spike: lambda x: spike(x).to(x.dtype))(lif.spike_grad)
    return ref.to(device), fast.to(device)


def outputs_and_grads(model, frames, w_spk, w_mem):
    spk, mem = model(frames)
    names, params = zip(*model.named_parameters())
    grads = torch.autograd.grad((spk * w_spk).sum() + (mem * w_mem).sum(), params)
    return spk.detach(), mem.detach(), dict(zip(names, grads))


def compare(ref, fast, frames, seed: int = 0) -> dict:
    """Spike mismatches, the largest membrane difference and the largest gradient difference
    (relative to each tensor's largest gradient) of ``fast`` against ``ref`` on ``frames``."""
    g = torch.Generator().manual_seed(seed)
    T, B = frames.shape[:2]
    dtype = next(ref.parameters()).dtype
    w_spk, w_mem = (torch.randn(T, B, 10, generator=g, dtype=dtype).to(frames.device) for _ in range(2))
    s_ref, m_ref, g_ref = outputs_and_grads(ref, frames, w_spk, w_mem)
    s_fast, m_fast, g_fast = outputs_and_grads(fast, frames, w_spk, w_mem)
    grad = max(((g_fast[k] - g_ref[k]).abs().max() / g_ref[k].abs().max().clamp(min=1e-30)).item() for k in g_ref)
    return {"spike_mismatches": int((s_ref != s_fast).sum()), "output_spikes": int(s_ref.sum()),
            "membrane_diff": float((m_ref - m_fast).abs().max()), "grad_rel_diff": grad}


def random_frames(T: int, B: int, size: int, dtype: torch.dtype, device: torch.device, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, 3, (T, B, 2, size, size), generator=g) * (torch.rand(T, B, 2, size, size, generator=g) < 0.3)
    return counts.to(dtype).to(device)


def correctness(device: torch.device, tiny: bool) -> None:
    from snn_lib.config import ModelConfig
    from snn_lib.device import full_float32, precision_label

    T, B, size = (4, 2, 20) if tiny else (8, 16, 34)
    cfg = ModelConfig(channels=(4, 8)) if tiny else ModelConfig()

    @check("fast_vs_reference_fp32")
    def fp32():
        ref, fast = make_pair(cfg, size, torch.float32, device, seed=3)
        frames = random_frames(T, B, size, torch.float32, device, seed=4)
        with full_float32():
            off = compare(ref, fast, frames)
        ok = off["spike_mismatches"] == 0 and off["membrane_diff"] < 1e-4 and off["grad_rel_diff"] < 1e-4
        record("fast_vs_reference_fp32", "ok" if ok else "FAIL", precision=precision_label(device) if device.type != "cuda"
               else "fp32 (TF32 off)", **off)
        if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8:
            saved = torch.backends.cudnn.allow_tf32
            torch.backends.cudnn.allow_tf32 = True
            try:
                on = compare(ref, fast, frames)
            finally:
                torch.backends.cudnn.allow_tf32 = saved
            record("fast_vs_reference_tf32", "ok", precision="fp32 (TF32 convolutions)", judged="no (reported)", **on)
        else:
            record("fast_vs_reference_tf32", "skip", reason="no TF32 on this device")
    fp32()

    @check("fast_vs_reference_fp64_options")
    def fp64():
        combos = [("subtract", "max", False, False), ("zero", "avg", True, True), ("subtract", "sum", True, False),
                  ("zero", "max", False, True)]
        worst = {"spike_mismatches": 0, "membrane_diff": 0.0, "grad_rel_diff": 0.0}
        for reset, pool, learn_beta, learn_threshold in combos[:2] if tiny else combos:
            options = dict(reset=reset, pool=pool, learn_beta=learn_beta, learn_threshold=learn_threshold,
                           beta=0.7, threshold=0.8 if pool == "avg" else 1.0,
                           lif_impl="fused")           # the kernels themselves: lif_impls below
            ref, fast = make_pair(dataclasses.replace(cfg, channels=(5, 7), **options), 22, torch.float64, device)
            r = compare(ref, fast, random_frames(5, 3, 22, torch.float64, device))
            worst = {k: max(worst[k], r[k]) for k in worst}
        ok = worst["spike_mismatches"] == 0 and worst["membrane_diff"] < 1e-5 and worst["grad_rel_diff"] < 1e-5
        record("fast_vs_reference_fp64_options", "ok" if ok else "FAIL", combinations=2 if tiny else len(combos), **worst)
    fp64()

    @check("lif_impls")
    def lif_impls():
        from snn_lib.kernels import lif_kernel
        from snn_lib.model import resolve_lif_impl
        names = ["fused", "scan"] + ([] if tiny else ["compiled"])
        worst = {}
        for dtype in (torch.float32, torch.float64):
            torch.manual_seed(0)
            shape = (T, 4, 3, 5, 5) if tiny else (T, 64, 12, 15, 15)     # T as the model's: one compile
            cur = (torch.randn(shape, dtype=dtype, device=device) * 1.5 + 0.4)
            w = torch.randn_like(cur)
            results = {}
            for name in names:
                x = cur.clone().requires_grad_()
                spk, mem = lif_kernel(name)(x, 0.9, 1.0, "atan", 2.0)
                grad, = torch.autograd.grad((spk * w).sum() + mem.sum(), x)
                results[name] = (spk, mem, grad)
            for name in names[1:]:
                diff = max(float((a - b).detach().abs().max()) for a, b in zip(results[name], results["fused"]))
                worst[f"{name}_{str(dtype)[6:]}"] = diff
        ok = all(v < (1e-4 if "float32" in k else 1e-10) for k, v in worst.items())
        record("lif_impls", "ok" if ok else "FAIL", auto=resolve_lif_impl("auto", device), max_diff=worst,
               skipped=["compiled"] if tiny else [])
    lif_impls()

    @check("amp_steps")
    def amp_steps():
        from snn_lib.device import check_amp, grad_scaler
        from snn_lib.model import make_loss
        from snn_lib.train import train_step
        frames, labels = synthetic_frames(B, T, device=device)
        x = frames.float().transpose(0, 1).contiguous()
        losses = {}
        for amp in ("off", "bf16", "fp16"):
            try:
                check_amp(amp, device)
            except Exception as err:  # noqa: BLE001 - a GPU below sm80 refuses bf16: reported
                losses[amp] = f"refused: {err}"
                continue
            _, model = make_pair(cfg, 34, torch.float32, device, seed=0)    # every layer spikes
            opt = torch.optim.Adam(model.parameters(), lr=2e-3)
            loss, spk = train_step(model, x, labels, opt, make_loss("ce_count"), amp, grad_scaler(amp, device))
            finite = all(torch.isfinite(p).all() for p in model.parameters())
            losses[amp] = round(float(loss), 5) if finite and torch.isfinite(loss) else "not finite"
        numbers = [v for v in losses.values() if isinstance(v, float)]
        ok = (len(numbers) >= 2 and isinstance(losses["off"], float) and abs(losses["off"] - 2.302585) > 1e-3
              and all(abs(v - losses["off"]) < 0.1 * max(1.0, abs(losses["off"])) for v in numbers))
        record("amp_steps", "ok" if ok else "FAIL", losses=losses)
    amp_steps()

    @check("run_training_resume")
    def resume():
        from snn_lib.config import Config, TrainConfig
        from snn_lib.data import FrameLoader, Loaders
        from snn_lib.train import run_training
        import snn_lib.train as train_module
        n = 96 if tiny else 1024
        frames, labels = synthetic_frames(n, T, seed=5)                  # on the CPU: run_training moves them
        test_frames, test_labels = synthetic_frames(n // 4, T, seed=6)
        loaders = Loaders(train=FrameLoader(frames, labels, 32, shuffle=True, seed=1),
                          test=FrameLoader(test_frames, test_labels, 64))
        optimizers = []
        real_adam = torch.optim.Adam

        class RecordedAdam(real_adam):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                optimizers.append(self)

        train_module.torch.optim.Adam = RecordedAdam
        deterministic = torch.backends.cudnn.deterministic
        torch.backends.cudnn.deterministic = True          # the two runs may differ only by the resume
        try:
            with tempfile.TemporaryDirectory() as tmp:
                def config(exp_id, epochs, resume):
                    return Config(exp_id=exp_id, exp_root=tmp, seed=1, model=cfg,
                                  train=TrainConfig(num_epochs=epochs, batch_size=32, device=str(device),
                                                    num_animations=1, resume=resume))
                whole = run_training(config("whole", 2, False), loaders=loaders)
                run_training(config("split", 1, False), loaders=loaders)
                resumed = run_training(config("split", 2, True), loaders=loaders)
        finally:
            train_module.torch.optim.Adam = real_adam
            torch.backends.cudnn.deterministic = deterministic
        state = [v for s in optimizers[-1].state.values() for k, v in s.items() if k != "step"]
        on_device = all(v.device.type == device.type for v in state)
        diff = max(abs(a[k] - b[k]) for a, b in zip(whole.history, resumed.history)
                   for k in ("train_loss", "test_loss", "test_acc"))
        ok = on_device and len(resumed.history) == 2 and diff < 1e-3
        record("run_training_resume", "ok" if ok else "FAIL", optimizer_state_on_device=on_device,
               loaders_on=str(resumed.loaders.train.frames.device), history_max_diff=diff,
               epoch_seconds=[round(r["epoch_seconds"], 2) for r in whole.history])
    resume()

    @check("syncs_per_epoch")
    def syncs():
        if device.type != "cuda":
            record("syncs_per_epoch", "skip", reason="torch.cuda.set_sync_debug_mode needs CUDA")
            return
        from snn_lib.config import TrainConfig
        from snn_lib.data import FrameLoader
        from snn_lib.model import CSNN, make_loss
        from snn_lib.train import prepare_model, train_epoch
        counts = {}
        for steps in (4, 12):
            frames, labels = synthetic_frames(32 * steps, T, device=device)
            loader = FrameLoader(frames, labels, 32, shuffle=True, device=device)
            model = CSNN(cfg)
            net = prepare_model(model, TrainConfig(), device)
            opt = torch.optim.Adam(model.parameters())
            train_epoch(net, loader, opt, make_loss("ce_count"), TrainConfig(), device)     # compiles, warms up
            torch.cuda.synchronize()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    train_epoch(net, loader, opt, make_loss("ce_count"), TrainConfig(), device)
                    torch.ones(1, device=device).item()                # one known sync: the probe is seen
                finally:
                    torch.cuda.set_sync_debug_mode("default")
            counts[steps] = sum("synchroniz" in str(w.message) for w in caught)
        ok = counts[4] == counts[12] >= 1
        record("syncs_per_epoch", "ok" if ok else "FAIL", syncs_by_steps=counts,
               note="each count includes one .item() probe")
    syncs()

    @check("evaluate_default_device")
    def evaluate_default():
        from snn_lib.data import FrameLoader
        from snn_lib.evaluate import evaluate
        from snn_lib.model import CSNN
        frames, labels = synthetic_frames(40, T, seed=7)
        result = evaluate(CSNN(cfg).to(device), FrameLoader(frames, labels, 16))
        record("evaluate_default_device", "ok" if result["samples"] == 40 else "FAIL", accuracy=result["accuracy"])
    evaluate_default()

    @check("compile_graph_breaks")
    def graph_breaks():
        import torch._dynamo
        from snn_lib.config import TrainConfig
        from snn_lib.model import CSNN
        from snn_lib.train import prepare_model
        torch._dynamo.reset()
        model = prepare_model(CSNN(cfg), TrainConfig(), device)
        explained = torch._dynamo.explain(model)(torch.rand(T, B, 2, 34, 34, device=device))
        ok = explained.graph_break_count == 0
        record("compile_graph_breaks", "ok" if ok else "FAIL", graphs=explained.graph_count,
               breaks=explained.graph_break_count)
    graph_breaks()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["preflight", "correctness"])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--tiny", action="store_true", help="small sizes and no compiled kernels (a CPU dry run)")
    args = p.parse_args(argv)
    if args.what == "preflight":
        preflight(args.device)
    else:
        from snn_lib.device import resolve_device
        correctness(resolve_device(args.device), args.tiny)
    failed = sorted(name for name, r in RESULTS.items() if r["status"] == "FAIL")
    print(json.dumps({"what": args.what, "failed": failed, "checks": RESULTS}, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
