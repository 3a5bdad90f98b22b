"""The commands as a user runs them: subprocesses in a scratch directory."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def run(args, cwd):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("args, message", [
    (["foo=1"], "unknown setting 'foo'"),
    (["train.epochs=3"], "unknown setting 'train.epochs'; known settings: train.num_epochs"),
    (["train.num_epochs=-1"], "train.num_epochs=-1 is not valid"),
    (["train.num_epochs=abc"], "train.num_epochs=abc is not valid"),
    (["train.device=cuda:7"], "train.device=cuda:7"),
    (["data.name=mnist"], "data.name='mnist' is not valid"),
    (["data.root=/no/such/folder", "data.download=false"], "data.root '/no/such/folder' holds no N-MNIST"),
])
def test_bad_settings_are_refused_in_one_line_before_any_work(tmp_path, args, message):
    result = run(["snn-train", *args], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("snn-train: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []                 # no exp/, no hydra outputs/


def test_train_then_eval_through_the_command_line(toy_nmnist, tmp_path):
    common = [f"data.root={toy_nmnist}", f"data.cache_dir={tmp_path / 'cache'}", "data.n_time_bins=4"]
    result = run([sys.executable, str(SCRIPTS / "train.py"), "exp_id=cli", *common, "model.channels=[4,8]",
                  "train.num_epochs=1", "train.num_animations=1", "train.device=cpu"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(best.pt, chosen on the val split)" in result.stdout
    run_dir = tmp_path / "exp" / "cli"
    assert (run_dir / "checkpoints" / "best.pt").is_file() and (run_dir / "train.log").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "exp"]     # no outputs/ folder

    out = tmp_path / "eval.json"
    result = run(["snn-eval", f"checkpoint={run_dir / 'checkpoints' / 'best.pt'}", f"data.root={toy_nmnist}",
                  f"out={out}"], tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert {"accuracy", "per_class_accuracy", "confusion_matrix"} <= set(report)
    assert len(report["per_class_accuracy"]) == 10 and report["samples"] == 30
    assert f"{100 * report['accuracy']:.2f}%" in result.stdout

    result = run(["snn-eval", f"checkpoint={tmp_path / 'missing.pt'}"], tmp_path)
    assert result.returncode == 2 and "snn-eval: checkpoint" in result.stderr and "does not exist" in result.stderr


def test_make_data_writes_the_nmnist_layout_and_never_overwrites(tmp_path):
    args = ["snn-make-data", "out=sim", "train_per_class=2", "test_per_class=1"]
    result = run(args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "sim" / "Train").glob("*/*.bin"))) == 20
    assert len(list((tmp_path / "sim" / "Test").glob("*/*.bin"))) == 10
    again = run(args, tmp_path)
    assert again.returncode == 2 and again.stderr.startswith("snn-make-data: sim already holds")
    assert len(list((tmp_path / "sim" / "Train").glob("*/*.bin"))) == 20       # nothing lost


def test_train_help_lists_every_setting_with_its_meaning(tmp_path):
    from snn_lib.config import setting_docs
    result = run(["snn-train", "--help"], tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("usage: snn-train [-m] [KEY=VALUE ...]")
    docs = setting_docs()
    assert len(docs) > 30 and all(meaning for _, meaning in docs.values())
    for key, (value, _) in docs.items():
        assert f"\n  {key}=" in result.stdout, key
    assert "the global batch, split over the\n      processes" in result.stdout      # issue 14: said in --help
    assert "``" not in result.stdout and list(tmp_path.iterdir()) == []
