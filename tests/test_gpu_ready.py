"""What a GPU run depends on, shown on the CPU (issue 16): where the optimizer state lives after a
resume, the device evaluate uses, the current CUDA device, mixed precision, no device reads per
step, graph breaks and recompiles of torch.compile, the loaders' device.

The GPU itself is exercised by benchmarks/gpu_session.sh (its CPU dry run: tests/test_benchmarks.py).
"""

from __future__ import annotations

import functools
import sys

import pytest
import torch

import snn_lib.train as train_module
from snn_lib.config import Config, ModelConfig, TrainConfig
from snn_lib.data import FrameLoader, Loaders
from snn_lib.device import (check_amp, configure_backends, full_float32, grad_scaler, precision_label,
                            resolve_device)
from snn_lib.errors import ConfigError
from snn_lib.evaluate import evaluate
from snn_lib.model import CSNN, make_loss, resolve_lif_impl
from snn_lib.train import loaders_on, prepare_model, run_training, train_epoch, train_step


def synthetic_loaders(n_train: int = 70, n_test: int = 30, T: int = 4, size: int = 16, batch: int = 16,
                      seed: int = 0) -> Loaders:
    """Learnable made-up recordings: the label is the row of a bar of events."""
    g = torch.Generator().manual_seed(seed)

    def split(n):
        labels = torch.randint(0, 10, (n,), generator=g)
        frames = (torch.rand(n, T, 2, size, size, generator=g) < 0.05).to(torch.uint8)
        for i, label in enumerate(labels.tolist()):
            frames[i, :, :, 2 + label, 3:size - 3] = 2
        return frames, labels

    return Loaders(train=FrameLoader(*split(n_train), batch, shuffle=True, seed=seed),
                   test=FrameLoader(*split(n_test), 32))


def small_config(tmp_path, **train) -> Config:
    return Config(exp_id="gpu_ready", exp_root=str(tmp_path / "exp"), seed=1, model=ModelConfig(channels=(4, 8)),
                  train=TrainConfig(**{"num_epochs": 2, "batch_size": 16, "lr": 1e-2, "device": "cpu",
                                       "num_animations": 0, **train}))


# ---- 1. resume: the optimizer state follows the parameters ------------------------------------

def to_float64(model: torch.nn.Module) -> torch.nn.Module:
    """A stand-in for moving the model to a GPU: its parameters change dtype (as ``.to("cuda")``
    changes their device), and its inputs follow."""
    model.double().register_forward_pre_hook(lambda module, args: (args[0].double(),))
    return model


def test_resume_puts_the_optimizer_state_where_a_fresh_adam_keeps_it(tmp_path, monkeypatch):
    """After a resume, every Adam state tensor is on the parameters' device and dtype, and the step
    counters are where a fresh Adam keeps them. The stand-in for the GPU is float64: prepare_model
    converts the model, as it would move it; state loaded before that (the bug of issue 16) would
    stay float32 (on the CPU)."""
    real_prepare = train_module.prepare_model
    monkeypatch.setattr(train_module, "prepare_model",
                        lambda model, cfg, device, world: to_float64(real_prepare(model, cfg, device, world)))
    optimizers = []
    real_adam = torch.optim.Adam

    class RecordedAdam(real_adam):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            optimizers.append(self)

    monkeypatch.setattr(torch.optim, "Adam", RecordedAdam)
    loaders = synthetic_loaders()
    run_training(small_config(tmp_path, num_epochs=1), loaders=loaders)
    run_training(small_config(tmp_path, num_epochs=2, resume=True), loaders=loaders)
    resumed = optimizers[-1]
    fresh = real_adam(to_float64(CSNN(ModelConfig(channels=(4, 8)), input_size=16)).parameters())
    for p in fresh.param_groups[0]["params"]:
        p.grad = torch.zeros_like(p)
    fresh.step()
    fresh_step = next(iter(fresh.state.values()))["step"]
    checked = 0
    for group in resumed.param_groups:
        for p in group["params"]:
            assert p.dtype == torch.float64
            state = resumed.state[p]
            for key, value in state.items():
                if key == "step":
                    assert (value.device, value.dtype, value.shape) == (fresh_step.device, fresh_step.dtype, ())
                    assert value.item() == 2 * 5                 # 2 epochs of 5 batches (4 of 16, 1 of 6)
                else:
                    assert (value.device, value.dtype) == (p.device, p.dtype), key
                    checked += 1
    assert checked == 2 * len(list(resumed.param_groups[0]["params"]))        # exp_avg, exp_avg_sq


# ---- 2. evaluate takes the device from the model ----------------------------------------------

class Moved(torch.Tensor):
    """A batch that records the device it is asked to move to (and stays a CPU tensor)."""
    asked: list = []

    def to(self, *args, **kwargs):
        Moved.asked.append(torch.device(args[0]) if args else kwargs.get("device"))
        return torch.Tensor(self)


class OnMeta(torch.nn.Module):
    """A model whose parameters live on another device (meta) and whose output stays on the CPU."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1, device="meta"))

    def forward(self, frames):
        return torch.zeros(frames.shape[0], frames.shape[1], 10), None


def test_evaluate_without_a_device_uses_the_models():
    Moved.asked = []
    batches = [(torch.zeros(3, 2, 2, 4, 4).as_subclass(Moved), torch.tensor([0, 1]).as_subclass(Moved))]
    result = evaluate(OnMeta(), batches)
    assert result["samples"] == 2
    assert Moved.asked == [torch.device("meta")] * 2


# ---- 3. cuda:N is the current device ----------------------------------------------------------

def test_cuda_n_becomes_the_current_cuda_device(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert resolve_device("cuda:1") == torch.device("cuda:1") and chosen == [1]
    assert resolve_device("cuda") == torch.device("cuda") and chosen == [1]      # plain cuda: left as it is
    with pytest.raises(ConfigError, match="only 2 GPU"):
        resolve_device("cuda:2")


# ---- 4. TF32, cudnn.benchmark -----------------------------------------------------------------

def test_full_float32_turns_tf32_off_and_restores_it():
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with full_float32():
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before


def test_precision_label_names_tf32_on_ampere_and_newer(monkeypatch):
    assert precision_label(torch.device("cpu")) == "fp32"
    assert precision_label(torch.device("cpu"), "bf16") == "bf16 autocast"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:                                                   # PyTorch's defaults: TF32 convolutions only
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False
        assert precision_label(torch.device("cuda")) == "fp32 (TF32 convolutions)"
        with full_float32():
            assert precision_label(torch.device("cuda")) == "fp32 (TF32 off)"
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
        assert precision_label(torch.device("cuda")) == "fp32"             # a T4 has no TF32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_configure_backends_turns_on_the_cudnn_algorithm_search(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    configure_backends(torch.device("cpu"))
    assert torch.backends.cudnn.benchmark is False
    configure_backends(torch.device("cuda"))
    assert torch.backends.cudnn.benchmark is True


# ---- 5. bf16 below sm80 is refused; fp16 has a loss scaler -------------------------------------

def test_bf16_is_refused_below_compute_capability_8(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    with pytest.raises(ConfigError, match=r"train.amp=bf16 .* Tesla T4 is 7.5: use train.amp=fp16"):
        check_amp("bf16", torch.device("cuda"))
    check_amp("fp16", torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    check_amp("bf16", torch.device("cuda"))
    check_amp("bf16", torch.device("cpu"))
    with pytest.raises(ConfigError, match="train.amp='fp8'"):
        check_amp("fp8", torch.device("cpu"))


def test_fp16_step_scales_the_loss_and_steps_through_the_scaler():
    torch.manual_seed(0)
    model = CSNN(ModelConfig(channels=(4, 8)), input_size=16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    scaler = grad_scaler("fp16", torch.device("cpu"))
    assert grad_scaler("bf16", torch.device("cpu")) is None and grad_scaler("off", torch.device("cpu")) is None
    frames, labels = next(iter(synthetic_loaders().train))
    loss, spk = train_step(model, frames, labels, opt, make_loss("ce_count"), "fp16", scaler)
    assert torch.isfinite(loss) and spk.dtype == torch.float16
    assert scaler.get_scale() > 0 and scaler._scale is not None            # the scaler ran
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())


# ---- 6. no device read per step ---------------------------------------------------------------

def count_reads_from_snn_lib(monkeypatch) -> list[str]:
    """Counts the calls of Tensor.item / tolist / bool / float / int made by snn_lib's own code
    (each one waits for the GPU)."""
    calls = []
    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if "snn_lib" in caller and "site-packages" not in caller:
                calls.append(f"{_name} in {caller}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    return calls


@pytest.mark.parametrize("n_train", [48, 144])
def test_train_epoch_reads_the_device_only_at_the_end(monkeypatch, n_train):
    """3 or 9 steps: the same two reads (the non-finite check, then loss and accuracy together), and
    one more every REFRESH_STEPS for the progress bar and the check."""
    torch.manual_seed(0)
    model = CSNN(ModelConfig(channels=(4, 8)), input_size=16)
    opt = torch.optim.Adam(model.parameters())
    loader = synthetic_loaders(n_train=n_train).train
    calls = count_reads_from_snn_lib(monkeypatch)
    stats = train_epoch(model, loader, opt, make_loss("ce_count"), TrainConfig(), torch.device("cpu"))
    assert stats["samples"] == n_train
    assert len(calls) == 2, calls
    monkeypatch.setattr(train_module, "REFRESH_STEPS", 2)       # the bar's readings: 2 per refresh
    del calls[:]
    train_epoch(model, loader, opt, make_loss("ce_count"), TrainConfig(), torch.device("cpu"))
    assert len(calls) == 2 + (n_train // 16 // 2)


# ---- 7. torch.compile: no graph break, one compile per run --------------------------------------

@pytest.mark.parametrize("lif_impl", ["auto", "fused", "compiled", "scan"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_compiled_model_has_no_graph_break(lif_impl, channels_last):
    """Whatever model.lif_impl says, the compiled model traces the scan: one graph, no break
    (torch._dynamo.explain; the fused and compiled kernels used to break it 7 and 12 times)."""
    import torch._dynamo
    torch._dynamo.reset()
    model = CSNN(ModelConfig(lif_impl=lif_impl, channels=(4, 8)), input_size=34)
    model = prepare_model(model, TrainConfig(channels_last=channels_last), torch.device("cpu"))
    explained = torch._dynamo.explain(model)(torch.rand(3, 2, 2, 34, 34))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


def test_compiled_model_with_every_neuron_option_has_no_graph_break():
    import torch._dynamo
    torch._dynamo.reset()
    model = CSNN(ModelConfig(channels=(4, 8), reset="zero", pool="sum", learn_beta=True, learn_threshold=True),
                 input_size=20)
    explained = torch._dynamo.explain(model)(torch.rand(3, 2, 2, 20, 20))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


def test_a_compiled_run_compiles_the_model_once(tmp_path, monkeypatch):
    """Training with a partial last batch, 2 epochs, evaluation with other batch sizes under no_grad:
    one compile (dynamo's backend "eager" stands in for inductor: the compiles are dynamo's)."""
    import torch._dynamo
    from torch._dynamo.utils import counters
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    torch._dynamo.reset()
    counters.clear()
    loaders = synthetic_loaders(n_train=70, n_test=45)             # 4 whole batches of 16 and 6 left over
    result = run_training(small_config(tmp_path, compile=True), loaders=loaders)
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert result.history[0]["samples_per_second"] > 0


def test_whole_batches_only_when_compiled():
    torch.manual_seed(0)
    model = CSNN(ModelConfig(channels=(4, 8)), input_size=16)
    opt = torch.optim.Adam(model.parameters())
    loader = synthetic_loaders(n_train=70).train
    loss = make_loss("ce_count")
    assert train_epoch(model, loader, opt, loss, TrainConfig(), torch.device("cpu"))["samples"] == 70
    assert train_epoch(model, loader, opt, loss, TrainConfig(compile=True), torch.device("cpu"))["samples"] == 64


# ---- 8. the LIF that auto picks, the loaders' device -------------------------------------------

def test_auto_lif_is_compiled_on_a_gpu_fused_on_cpu_and_scan_under_compile(monkeypatch):
    assert resolve_lif_impl("auto", torch.device("cuda")) == "compiled"
    assert resolve_lif_impl("auto", torch.device("cpu")) == "fused"
    assert resolve_lif_impl("fused", torch.device("cuda")) == "fused"
    monkeypatch.setattr("snn_lib.model.compiling", lambda: True)
    assert resolve_lif_impl("compiled", torch.device("cuda")) == "scan"


def test_loaders_passed_to_a_run_go_to_its_device():
    loaders = synthetic_loaders()
    moved = loaders_on(loaders, torch.device("meta"))
    for before, after in ((loaders.train, moved.train), (loaders.test, moved.test)):
        assert after.frames.device.type == after.labels.device.type == "meta"
        assert before.frames.device.type == "cpu"                  # the caller's loaders are left as they are
        assert (after.batch_size, after.shuffle, after.frames.dtype) == (before.batch_size, before.shuffle, torch.uint8)


def test_run_training_hands_the_loaders_to_its_device(tmp_path, monkeypatch):
    seen = []
    real = train_module.loaders_on
    monkeypatch.setattr(train_module, "loaders_on", lambda loaders, device: seen.append(device) or real(loaders, device))
    result = run_training(small_config(tmp_path, num_epochs=1), loaders=synthetic_loaders())
    assert seen == [torch.device("cpu")] and result.loaders.train.frames.device.type == "cpu"

