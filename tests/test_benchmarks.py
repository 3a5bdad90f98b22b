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
    args = ["--device", "cpu", "--n", "40", "--T", "3", "--batch", "16", "--epochs", "2", "--save", str(save)]
    assert epoch_time.main(args) == 0
    result = last_json(capsys.readouterr().out)
    assert result["n"] == 40 and result["epoch_seconds"] > 0 and len(result["epochs_seconds"]) == 2
    assert epoch_time.main(args) == 0                       # a second run appends a row
    rows = [line for line in save.read_text().splitlines() if line.startswith("| ") and "N=40" in line]
    assert len(rows) == 2


def test_epoch_time_data_in_chunks_equals_one_call():
    frames, labels = epoch_time.make_data(7, 2, seed=3, chunk=3)
    assert frames.shape == (7, 2, 2, 34, 34) and frames.dtype == torch.uint8 and labels.shape == (7,)
    first, first_labels = train_speed.synthetic_frames(3, 2, seed=3)
    assert torch.equal(frames[:3], first) and torch.equal(labels[:3], first_labels)


def test_epoch_time_refuses_a_single_epoch():
    with pytest.raises(SystemExit):
        epoch_time.main(["--epochs", "1"])


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
