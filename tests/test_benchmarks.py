"""The benchmark scripts run end to end on a tiny CPU setting and print what their READMEs promise.

Their timings are not checked here (they are measurements, not properties); only that the scripts
work, keep their output format, and that the two implementations they compare agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import epoch_time  # noqa: E402
import profile_steps  # noqa: E402
import train_speed  # noqa: E402


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_train_speed_tiny(capsys, tmp_path):
    save = tmp_path / "speed.md"
    assert train_speed.main(["--device", "cpu", "--T", "3", "--batch", "4", "--steps", "1", "--rounds", "1",
                             "--save", str(save)]) == 0
    result = last_json(capsys.readouterr().out)
    assert {"reference_samples_per_s", "fast_samples_per_s", "ratio", "rows"} <= set(result)
    assert result["ratio"] == pytest.approx(result["fast_samples_per_s"] / result["reference_samples_per_s"], rel=1e-2)
    text = save.read_text()
    assert "command: python" in text and "| reference (snnTorch per step)" in text
    # the same math: gradient differences at rounding level on the first batch
    diffs = [float(line.split("differ from the reference's by ")[1].split(" ")[0])
             for line in text.splitlines() if "differ from the reference's by" in line]
    assert diffs and max(diffs) < 1e-4


def test_epoch_time_tiny(capsys, tmp_path):
    save = tmp_path / "epoch.md"
    args = ["--device", "cpu", "--n", "40", "--T", "3", "--runs", "16", "32:bf16", "--epochs", "2",
            "--warmup-steps", "1", "--save", str(save)]
    assert epoch_time.main(args) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(r["batch"], r["amp"], r["precision"]) for r in results] == [(16, "off", "fp32"), (32, "bf16", "bf16 autocast")]
    assert all(r["n"] == 40 and r["epoch_seconds"] > 0 and len(r["epochs_seconds"]) == 2 for r in results)
    seconds = results[0]["epoch_seconds"]                 # rounded to 1 ms: a tiny epoch is tens of ms
    assert 40 / (seconds + 0.0005) - 0.05 <= results[0]["samples_per_s"] <= 40 / max(seconds - 0.0005, 1e-9) + 0.05
    assert results[0]["peak_mb"] is None                    # measured on CUDA only
    rows = [line for line in save.read_text().splitlines() if line.startswith("| ") and "N=40" in line]
    assert len(rows) == 2


def test_epoch_time_target_verdict_only_for_the_target_setting():
    row = {"n": 60_000, "T": 25, "device": "cuda:0", "batch": 256, "epoch_seconds": 1.5, "precision": "fp32"}
    assert "met; fastest 1.5 s at batch 256" in epoch_time.target_verdict([row, {**row, "batch": 32, "epoch_seconds": 1.0}])
    assert "missed" in epoch_time.target_verdict([{**row, "epoch_seconds": 2.5}])
    assert epoch_time.target_verdict([{**row, "device": "cpu"}]) is None
    assert epoch_time.target_verdict([{**row, "n": 2000}]) is None


def test_epoch_time_data_in_chunks_equals_one_call():
    frames, labels = epoch_time.make_data(7, 2, seed=3, chunk=3)
    assert frames.shape == (7, 2, 2, 34, 34) and frames.dtype == torch.uint8 and labels.shape == (7,)
    first, first_labels = train_speed.synthetic_frames(3, 2, seed=3)
    assert torch.equal(frames[:3], first) and torch.equal(labels[:3], first_labels)


def test_epoch_time_refuses_no_epoch_and_bad_runs():
    with pytest.raises(SystemExit):
        epoch_time.main(["--epochs", "0"])
    with pytest.raises(SystemExit):
        epoch_time.main(["--runs", "32:fp8"])


def test_epoch_time_makes_its_data_on_the_device(monkeypatch):
    devices = []
    real = epoch_time.make_data
    monkeypatch.setattr(epoch_time, "make_data", lambda *a, **k: devices.append(k["device"]) or real(*a, **k))
    assert epoch_time.main(["--device", "cpu", "--n", "8", "--T", "2", "--runs", "8", "--warmup-steps", "0",
                            "--epochs", "1"]) == 0
    assert devices == [torch.device("cpu")]


def test_train_speed_target_verdict_names_the_launch_bound_regime():
    rows = [{"T": 25, "batch": 32, "implementation": "fast", "ratio": 12.0, "step_ms": 10.0},
            {"T": 25, "batch": 256, "implementation": "fast", "ratio": 60.0, "step_ms": 11.0}]
    lines = train_speed.target_verdict(rows, "reference")
    assert lines[0].startswith("target (20x the snnTorch loop at T=25, batch 32): missed; best 12.0x")
    assert "launch-bound" in lines[1] and "1.10x" in lines[1]
    rows[1]["step_ms"] = 70.0
    assert "throughput-bound" in train_speed.target_verdict(rows, "reference")[1]


def test_profile_steps_tiny(capsys):
    assert profile_steps.main(["--device", "cpu", "--batch", "2", "--T", "2", "--steps", "1", "--warmup", "1",
                               "--lif", "fused"]) == 0
    result = last_json(capsys.readouterr().out)["results"][0]
    assert result["lif"] == "fused" and result["per_step"] > 10 and result["busy"] is None and result["top"]
    assert profile_steps.busy_fraction([(0, 4), (2, 6), (8, 9)], 10.0) == pytest.approx(0.7)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_gpu_session_says_why_without_a_gpu():
    env = {**os.environ, "PYTHON": sys.executable}
    run = subprocess.run(["bash", str(BENCHMARKS / "gpu_session.sh")], capture_output=True, text=True, env=env)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "no CUDA device" in run.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
@pytest.mark.parametrize("script", ["train_speed.py", "epoch_time.py"])
def test_benchmarks_refuse_cuda_without_a_gpu_in_one_line(script):
    run = subprocess.run([sys.executable, str(BENCHMARKS / script), "--device", "cuda"],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.strip().count("\n") == 0 and run.stderr.startswith(f"{script}: ")


SESSION = BENCHMARKS / "gpu_session.sh"


def session_lines(out: Path) -> list[str]:
    return (out / "session.txt").read_text().splitlines()


def test_gpu_session_dry_run(tmp_path):
    """The GPU session's every step on the CPU at tiny sizes (DRY_RUN=1), as CI runs it: each step
    passes and leaves its file; the session's own clock stays under its budget."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "DRY_RUN": "1", "OUT": str(out), "SITE": str(tmp_path / "site")}
    run = subprocess.run(["bash", str(SESSION)], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    names = ["01-preflight.txt", "02-correctness.txt", "03-epochs.txt", "04-profile.txt", "05-compiled.txt",
             "06-peers.txt", "07-ddp.txt"]
    assert sorted(p.name for p in out.iterdir()) == names + ["session.txt"]
    lines = session_lines(out)
    assert [line.split(":")[0] for line in lines if line[:2].isdigit()] == [n[:-4].replace("-", " ") for n in names]
    assert all(": ok," in line for line in lines if line[:2].isdigit())
    total = int(lines[-1].split()[1])
    assert lines[-1].startswith("total: ") and total < 540
    checks = last_json((out / "02-correctness.txt").read_text())
    assert checks["failed"] == [] and checks["checks"]["run_training_resume"]["status"] == "ok"
    epochs = [json.loads(line) for line in (out / "03-epochs.txt").read_text().splitlines() if line.startswith("{")]
    assert [r["amp"] for r in epochs] == ["off", "bf16"]
    assert last_json((out / "05-compiled.txt").read_text())["rows"]
    assert last_json((out / "06-peers.txt").read_text())["rows"]
    ddp = [json.loads(line) for line in (out / "07-ddp.txt").read_text().splitlines() if line.startswith("{")]
    assert [r["processes"] for r in ddp] == [1, 2] and ddp[1]["speedup_over_1"] > 0
    print(f"gpu_session.sh DRY_RUN=1: {total} s")


def test_gpu_session_steps_fit_the_budget():
    """The steps' own limits add up to no more than the default budget (540 s)."""
    text = SESSION.read_text()
    limits = [int(line.split()[2]) for line in text.splitlines() if line.startswith("step ")]
    assert len(limits) == 7 and sum(limits) <= int(text.split("BUDGET=${BUDGET:-")[1].split("}")[0]) == 540


def test_gpu_session_stops_a_step_at_the_budget(tmp_path):
    """A step that would run past the budget is stopped by timeout, its file kept; after a failed
    preflight the session ends (a fake python whose benchmark scripts hang)."""
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\ncase \"$1\" in benchmarks/*) echo started; sleep 60;; esac\n"
                    f"exec {sys.executable} \"$@\"\n")
    fake.chmod(0o755)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": str(fake), "DRY_RUN": "1", "OUT": str(out), "BUDGET": "20", "MIN_STEP": "1",
           "WHEELS": str(tmp_path / "none")}
    run = subprocess.run(["bash", str(SESSION)], capture_output=True, text=True, env=env, timeout=50)
    assert run.returncode == 1 and "preflight failed" in run.stderr
    lines = session_lines(out)
    stopped = [line for line in lines if line.startswith("01 preflight: stopped at its")]
    assert stopped and int(stopped[0].split(", ")[1].split()[0]) <= 20, lines     # "..., 14 s of 14 s"
    assert (out / "01-preflight.txt").read_text().strip() == "started"
    assert not (out / "02-correctness.txt").exists()


@pytest.mark.skipif(not (BENCHMARKS.parent / ".whl").is_dir(), reason="no wheels: run benchmarks/gpu_wheels.sh")
def test_gpu_wheels_check(tmp_path):
    """The wheels in .whl/ (made by gpu_wheels.sh) alone give snn_lib every package the GPU
    machine's image lacks."""
    run = subprocess.run(["bash", str(BENCHMARKS / "gpu_wheels.sh"), "--check"], capture_output=True, text=True,
                         env={**os.environ, "PYTHON": sys.executable}, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "import from the wheels alone" in run.stdout


def test_train_speed_reports_a_failing_variant_and_measures_the_others(capsys, monkeypatch):
    real = train_speed.variants
    monkeypatch.setattr(train_speed, "variants",
                        lambda lif: {**real(lif), "fp16": train_speed.Variant("broken", amp="fp8")})
    assert train_speed.main(["--device", "cpu", "--options", "--variants", "fast", "fp16", "--T", "2", "--batch", "2",
                             "--steps", "1", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "| broken: failed (ConfigError: train.amp='fp8'" in out
    rows = last_json(out)["rows"]
    assert [r["implementation"] for r in rows] == ["reference (snnTorch per step)", "fast (auto LIF)"]


def _module(path: Path):
    """A script of benchmarks/ or scripts/, imported by its path."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


RESULTS = BENCHMARKS / "results"
SCRIPTS = BENCHMARKS.parent / "scripts"
RENDERED = [(BENCHMARKS / "train_speed.py", name) for name in
            ("cpu-1thread-xeon-amx", "cpu-2core-epyc-peers", "cpu-2core-xeon-amx-T50-b32",
             "cpu-2core-xeon-amx-default-malloc", "cpu-2core-xeon-amx-options", "cpu-2core-xeon-amx")] + [
    (BENCHMARKS / "augment_epoch.py", "augment_epoch"), (BENCHMARKS / "sim_build.py", "sim_build"),
    (SCRIPTS / "cost_sweep.py", "cost_sweep"), (SCRIPTS / "nir_agreement.py", "nir_agreement"),
    (SCRIPTS / "small_real_ablation.py", "small_real_ablation"), (SCRIPTS / "sim_to_real.py", "sim_to_real"),
    (SCRIPTS / "sim_fidelity.py", "sim_vs_real"), (SCRIPTS / "real_1k_run.py", "real_1k_run/README")]


@pytest.mark.parametrize("script, name", RENDERED, ids=[name for _, name in RENDERED])
def test_a_committed_results_file_is_its_data_rendered(script, name):
    """The script's Markdown, rendered from the committed NAME.json, is the committed NAME.md: the
    data holds every number the file shows (it was converted from it), and the script writes both."""
    from snn_lib.report import load_results
    assert _module(script).markdown(load_results(name, RESULTS)) == (RESULTS / f"{name}.md").read_text()


def test_the_ablation_results_are_its_committed_curves_summarized(tmp_path):
    """small_real_ablation's data (val-chosen and last-epoch accuracy over seeds, chosen epochs,
    minutes) is computed from the committed curves alone, so that --tables-only rewrites it the same."""
    import argparse

    from snn_lib.report import load_results
    ablation = _module(SCRIPTS / "small_real_ablation.py")
    runs = ablation.read_curves(RESULTS / "small_real_ablation_curves.csv")
    args = argparse.Namespace(epochs=10, out=str(tmp_path / "ablation.md"), curves=str(tmp_path / "curves.csv"))
    assert ablation.results_data(runs, args, "cmd")["rows"] == load_results("small_real_ablation", RESULTS)["rows"]
    ablation.write_all(runs, args, "cmd")                       # the results file and the curves, written again
    assert load_results(tmp_path / "ablation.json")["rows"] == load_results("small_real_ablation", RESULTS)["rows"]
    assert ablation.read_curves(tmp_path / "curves.csv") == runs


def test_recurrent_speed_tiny(capsys, tmp_path):
    import recurrent_speed
    assert recurrent_speed.main(["--T", "40", "--batch", "2", "--hidden", "8", "--n-in", "6", "--rounds", "1",
                                 "--save", str(tmp_path / "rec")]) == 0
    ratios = last_json(capsys.readouterr().out)
    data = json.loads((tmp_path / "rec.json").read_text())
    assert {"command", "hardware", "load_average", "date", "software"} <= set(data)
    assert [(r["T"], r["impl"]) for r in data["rows"]] == [(40, "snntorch"), (40, "fast")]
    fast = data["rows"][-1]
    assert ratios["40"]["speed_ratio"] == fast["speed_ratio"] and all(r["peak_mb"] >= 0 for r in data["rows"])
    assert fast["loss_diff"] < 1e-5 and fast["float64_max_diff"] < 1e-9     # the same network, same weights
    assert "| fast" in (tmp_path / "rec.md").read_text()
