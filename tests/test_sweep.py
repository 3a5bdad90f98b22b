"""Beyond one run: sweeps with hydra multirun (and its launchers), the report of many runs
(snn-report), and data-parallel training with torchrun (gloo on the CPU)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from snn_lib.checkpoint import load_checkpoint
from snn_lib.config import Config, DataConfig, ModelConfig, TrainConfig, check_overrides, config_to_yaml
from snn_lib.data import FrameLoader
from snn_lib.distributed import (World, all_reduce_sum, barrier, device_of, from_main, process_group, world_from_env,
                                  wrap)
from snn_lib.errors import ConfigError, SnnError
from snn_lib.report import find_run_dirs, load_runs, report_csv, report_markdown, setting_of, spread, summarize, \
    val_chosen
from snn_lib.rundir import read_metrics_csv, write_metrics_csv
from snn_lib.train import run_training, spawn_training

SMALL = ["data.n_time_bins=4", "model.channels=[4,8]", "model.threshold=0.3", "train.num_epochs=1",
         "train.num_animations=0", "train.device=cpu", "train.batch_size=8", "train.max_steps_per_epoch=3",
         "train.lr=0.05"]


def cli(args, cwd, timeout=600):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)


# ---- sweeps -------------------------------------------------------------------------------------

def test_a_sweep_runs_every_job_in_its_own_folder_and_resume_auto_skips_finished_ones(toy_nmnist, tmp_path):
    common = [f"data.root={toy_nmnist}", f"data.cache_dir={tmp_path / 'cache'}", *SMALL]
    result = cli(["snn-train", "-m", "seed=0,1", "exp_id=sw", *common], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    sweep = tmp_path / "exp" / "sw"
    assert sorted(p.name for p in sweep.iterdir()) == ["multirun.yaml", "seed=0", "seed=1"]   # no stray folders
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "exp"]
    first = {s: (sweep / f"seed={s}" / "checkpoints" / "last.pt").read_bytes() for s in (0, 1)}
    again = cli(["snn-train", "-m", "seed=0,1,2", "exp_id=sw", "train.resume=auto", *common], tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("already trained 1 of 1 epochs: nothing to do") == 2
    assert {s: (sweep / f"seed={s}" / "checkpoints" / "last.pt").read_bytes() for s in (0, 1)} == first
    assert read_metrics_csv(sweep / "seed=2" / "metrics.csv")[-1]["epoch"] == 1
    refused = cli(["snn-train", "-m", "seed=1,3", "exp_id=sw", *common], tmp_path)     # no resume: seed=1 exists
    assert refused.returncode == 1
    assert "job seed=1: " in refused.stderr and "already holds a run" in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("snn-train: 1 job(s) of the sweep failed")
    assert (sweep / "seed=3" / "metrics.csv").is_file()                  # the failure did not stop the others


def test_checking_the_overrides_gives_the_keys_with_several_values():
    assert check_overrides(Config, ["seed=0,1,2", "train.lr=1e-3", "data.crop=range(26,30,2)", "hydra/launcher=joblib",
                       "-m", "exp_id=x"]) == ["seed", "data.crop"]


def _installed(module: str) -> bool:
    """Whether a module can be imported; find_spec of a submodule raises when its package is missing."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.skipif(not _installed("hydra_plugins.hydra_joblib_launcher"),
                    reason="the sweep extra (hydra-joblib-launcher) is not installed")
def test_parallel_jobs_share_the_cores(toy_nmnist, tmp_path):
    result = cli(["snn-train", "-m", "seed=0,1", "exp_id=par", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                  f"data.root={toy_nmnist}", f"data.cache_dir={tmp_path / 'cache'}", *SMALL], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    import os
    threads = max(1, (os.cpu_count() or 1) // 2)
    for seed in (0, 1):
        assert f"threads: {threads}\n" in (tmp_path / "exp" / "par" / f"seed={seed}" / "config.yaml").read_text()


@pytest.mark.skipif(not _installed("hydra_plugins.hydra_submitit_launcher"),
                    reason="the sweep extra (hydra-submitit-launcher) is not installed")
def test_the_slurm_command_of_the_readme_composes(tmp_path):
    result = cli(["snn-train", "hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu",
                  "hydra.launcher.gpus_per_node=1", "hydra.launcher.timeout_min=240", "exp_id=cluster",
                  "--cfg", "hydra"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "SlurmLauncher" in result.stdout and "partition: gpu" in result.stdout
    assert list(tmp_path.iterdir()) == []                                 # composed, nothing run


# ---- the report of many runs ----------------------------------------------------------------------

def fake_run(folder: Path, seed: int, lr: float, test_accs: list[float], val_accs: list[float] | None = None,
             seconds: float = 2.0) -> Path:
    """A run folder with known metrics (no training)."""
    cfg = Config(exp_id=folder.name, seed=seed, train=TrainConfig(lr=lr, num_epochs=len(test_accs)))
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(config_to_yaml(cfg))
    rows = [{"epoch": e + 1, "train_loss": 1.0, "train_acc": 0.5, "test_loss": 1.0, "test_acc": acc,
             "epoch_seconds": seconds, "samples_per_second": 100.0} for e, acc in enumerate(test_accs)]
    write_metrics_csv(folder / "metrics.csv", rows)
    if val_accs is not None:                    # the columns the validation split adds
        text = (folder / "metrics.csv").read_text().splitlines()
        text = [text[0] + ",val_loss,val_acc"] + [f"{line},1.0,{v}" for line, v in zip(text[1:], val_accs)]
        (folder / "metrics.csv").write_text("\n".join(text) + "\n")
    return folder


def test_the_report_gives_known_means_per_setting(tmp_path):
    sweep = tmp_path / "exp" / "lr"
    fake_run(sweep / "a", 0, 1e-3, [0.5, 0.8], [0.6, 0.7], seconds=2.0)
    fake_run(sweep / "b", 1, 1e-3, [0.6, 0.9], [0.9, 0.8], seconds=4.0)
    fake_run(sweep / "c", 0, 2e-3, [0.7, 0.7], [0.5, 0.5])
    runs = load_runs([sweep])
    assert [r.path.name for r in runs] == ["a", "b", "c"]
    rows = {r["setting"]["train.lr"]: r for r in summarize(runs)}
    assert set(rows[1e-3]["setting"]) == {"train.lr"}                      # only what differs between rows
    slow = rows[1e-3]
    assert slow["runs"] == 2 and slow["seeds"] == [0, 1] and slow["epochs"] == [2]
    assert slow["final_test_acc"]["mean"] == pytest.approx(0.85) and slow["final_test_acc"]["min"] == 0.8
    assert slow["final_test_acc"]["std"] == pytest.approx(0.0707107, rel=1e-5)
    assert slow["val_chosen_test_acc"]["mean"] == pytest.approx((0.8 + 0.6) / 2)   # epochs 2 and 1 chosen
    assert slow["epoch_seconds"] == pytest.approx(3.0)
    assert rows[2e-3]["val_chosen_test_acc"]["mean"] == pytest.approx(0.7)         # ties: the first epoch
    text = report_markdown(summarize(runs), "lr sweep", "snn-report exp/lr")
    assert "| train.lr=0.001 | 2 (0, 1) | 85.0% +- 7.1 (80.0-90.0%, 2 runs) | 70.0% +- 14.1 (60.0-80.0%, 2 runs) |" \
        in text and "Made by `snn-report exp/lr`." in text
    csv_lines = report_csv(summarize(runs)).splitlines()
    assert csv_lines[0].startswith("train.lr,runs,seeds,epochs,final_test_acc_mean") and len(csv_lines) == 3


def test_snn_report_writes_markdown_csv_and_curves(tmp_path):
    fake_run(tmp_path / "exp" / "s" / "x", 0, 1e-3, [0.5, 0.6])
    fake_run(tmp_path / "exp" / "s" / "y", 1, 1e-3, [0.7, 0.8])
    result = cli(["snn-report", "exp/s"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "70.0% +- 14.1 (60.0-80.0%, 2 runs)" in result.stdout
    assert "n/a (no validation split)" in result.stdout
    assert sorted(p.name for p in (tmp_path / "exp" / "s").glob("report.*")) == ["report.csv", "report.md",
                                                                                 "report.png"]
    missing = cli(["snn-report", "exp/none"], tmp_path)
    assert missing.returncode == 2 and missing.stderr.strip() == (
        "snn-report: exp/none: no run folder (config.yaml and metrics.csv) at or under it; give the folder of a run "
        "or of a sweep, e.g. exp/lr_sweep.")


def test_report_helpers(tmp_path):
    a = fake_run(tmp_path / "r" / "a", 0, 1e-3, [0.5])
    assert find_run_dirs([str(tmp_path / "r" / "*")]) == [a]
    with pytest.raises(SnnError, match="no run folder"):
        find_run_dirs([tmp_path / "nothing"])
    assert spread([1.0]) == {"mean": 1.0, "std": 0.0, "min": 1.0, "max": 1.0, "n": 1}
    assert val_chosen([{"test_acc": 0.5}]) is None
    assert "seed" not in setting_of(Config(seed=3)) and setting_of(Config())["train.lr"] == 2e-3


# ---- data-parallel training -------------------------------------------------------------------------

def test_one_process_is_rank_0_of_1():
    world = world_from_env()
    assert world == World() and world.main and not world.parallel
    net = torch.nn.Linear(2, 2)
    assert wrap(net, world, torch.device("cpu")) is net and device_of(world, torch.device("cpu")).type == "cpu"
    assert from_main(world, lambda: 7) == 7 and torch.equal(all_reduce_sum(torch.ones(2)), torch.ones(2))
    with process_group(world, torch.device("cpu")):                        # one process: no group
        assert not torch.distributed.is_initialized()
        barrier()


def test_a_sharded_loader_splits_each_global_batch():
    frames, labels = torch.zeros(10, 2, 2, 3, 3, dtype=torch.uint8), torch.arange(10)
    whole = [y for _, y in FrameLoader(frames, labels, 4, shuffle=True, seed=1)]
    parts = [[y for _, y in FrameLoader(frames, labels, 4, shuffle=True, seed=1).shard(r, 2)] for r in (0, 1)]
    assert [torch.cat([a, b]).tolist() for a, b in zip(*parts)] == [w.tolist() for w in whole]   # 4, 4, 2 each split
    evals = [torch.cat([y for _, y in FrameLoader(frames, labels, 3).shard(r, 3)]).tolist() for r in range(3)]
    assert sorted(sum(evals, [])) == list(range(10))                          # every recording once


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not on the PATH")
def test_torchrun_two_processes_write_once_and_train_as_one(toy_nmnist, tmp_path):
    common = [f"data.root={toy_nmnist}", f"data.cache_dir={tmp_path / 'cache'}", *SMALL]
    single = cli(["snn-train", "exp_id=single", *common], tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = cli(["torchrun", "--standalone", "--nproc_per_node=2", shutil.which("snn-train"), "exp_id=ddp", *common],
              tmp_path)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stdout.count("(best.pt, chosen on") == 1                   # process 0 speaks for both
    one, two = (read_metrics_csv(tmp_path / "exp" / name / "metrics.csv") for name in ("single", "ddp"))
    assert one[0]["train_loss"] != pytest.approx(2.302585, abs=1e-4)     # the network spikes and learns
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert two[0][key] == pytest.approx(one[0][key], rel=1e-5, abs=1e-6), key
    a, b = (load_checkpoint(tmp_path / "exp" / name / "checkpoints" / "last.pt")["model"] for name in ("single", "ddp"))
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-6)
    assert (tmp_path / "exp" / "ddp" / "train.log").read_text().count("epoch 1/1") == 1   # written once
    assert "x 2 processes" in (tmp_path / "exp" / "ddp" / "train.log").read_text()


def test_train_distributed_n_starts_the_processes_itself(toy_nmnist, tmp_path):
    cfg = Config(exp_id="spawned", exp_root=str(tmp_path / "exp"), seed=1,
                 data=DataConfig(root=str(toy_nmnist), cache_dir=str(tmp_path / "cache"), n_time_bins=4),
                 model=ModelConfig(channels=(4, 8), threshold=0.3),
                 train=TrainConfig(num_epochs=1, num_animations=0, device="cpu", batch_size=8, max_steps_per_epoch=2,
                                   distributed=2))
    result = run_training(cfg)
    assert result.run_dir == tmp_path / "exp" / "spawned" and result.history[-1]["epoch"] == 1
    assert "x 2 processes" in (result.run_dir / "train.log").read_text()


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="this machine has the GPUs")
def test_train_distributed_true_needs_two_gpus(tmp_path):
    cfg = Config(exp_root=str(tmp_path), train=TrainConfig(distributed=True))
    with pytest.raises(ConfigError, match="train.distributed=true needs two GPUs or more"):
        spawn_training(cfg)
    assert list(tmp_path.iterdir()) == []
