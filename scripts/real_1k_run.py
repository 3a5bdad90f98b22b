"""One full-mode run on 1,000 real N-MNIST recordings, with its figures, for chapter 5 and the README.

It runs the project's commands, with the project's defaults, and keeps what a reader needs::

    snn-train exp_id=real_1k_run data.root=ROOT data.test_from_train=0.1 data.val_from_train=0 data.download=false
    snn-eval checkpoint=exp/real_1k_run/checkpoints/last.pt out=OUT/eval.json

``data.test_from_train=0.1`` holds out a fixed tenth of each class (100 of the 1,000 recordings,
the same whatever the seed); the other 900 train the network for the default 15 epochs.
``data.val_from_train=0`` keeps no validation split (the run shows every recording but the test
split to the network; chapter 6 holds one out to choose ``best.pt``), so ``best.pt`` is chosen on
the test split and not reported: the checkpoint evaluated is ``last.pt`` (the 15th epoch, chosen
by nothing).

Into ``OUT`` (default ``benchmarks/results/real_1k_run``) go ``train_loss.png``, ``accuracy.png``
(train and held-out accuracy per epoch), ``metrics.csv``, ``confusion.png``, ``eval.json``, two or
three output spike-count GIFs (``spike_counts_*.gif``: digits of different classes, one
misclassified if any), and ``README.json`` (the data: command, hardware, date, split, settings,
checkpoint, the numbers, ``rows`` the epochs of metrics.csv) with ``README.md`` rendered from it.
Usage::

    python scripts/real_1k_run.py --root /work/shared/data/nmnist-real-1k
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from snn_lib.checkpoint import model_from_checkpoint
from snn_lib.config import DataConfig
from snn_lib.data.dataset import dataset_root, load_split, split_recordings
from snn_lib.device import resolve_device
from snn_lib.plotting import (animate_spike_counts, plot_confusion, plot_frames, plot_test_acc, plot_train_loss, save_figure,
                              save_gif)
from snn_lib.report import load_results, results_meta, write_results
from snn_lib.rundir import read_metrics_csv


def _run(command: list[str]) -> None:
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, check=True)


def _chosen_digits(predicted: torch.Tensor, labels: torch.Tensor, count: int) -> list[int]:
    """Indices of up to ``count`` recordings of different classes, none a 0: the first
    misclassified one (if any), then correct ones."""
    wrong = [i for i in range(len(labels)) if predicted[i] != labels[i] and labels[i] != 0]
    right = [i for i in range(len(labels)) if predicted[i] == labels[i] and labels[i] != 0]
    chosen, classes = [], set()
    for i in wrong[:1] + right:
        if int(labels[i]) not in classes and len(chosen) < count:
            chosen.append(i)
            classes.add(int(labels[i]))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="folder with Train/<label>/<id>.bin (1,000 recordings)")
    parser.add_argument("--out", default="benchmarks/results/real_1k_run")
    parser.add_argument("--exp-root", default="exp")
    parser.add_argument("--gifs", type=int, default=3, help="how many spike-count animations")
    parser.add_argument("--figures-only", action="store_true",
                        help="keep the finished run in EXP_ROOT/real_1k_run; evaluate it and draw again")
    args = parser.parse_args()

    out, exp_id = Path(args.out), "real_1k_run"
    run_dir = Path(args.exp_root) / exp_id
    if run_dir.exists() and not args.figures_only:          # a fresh run, not a resumed one
        shutil.rmtree(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_cmd = ["snn-train", f"exp_id={exp_id}", f"exp_root={args.exp_root}", f"data.root={args.root}",
                 "data.test_from_train=0.1", "data.val_from_train=0", "data.download=false", "train.num_animations=0"]
    checkpoint = run_dir / "checkpoints" / "last.pt"
    eval_cmd = ["snn-eval", f"checkpoint={checkpoint}", f"out={out / 'eval.json'}"]
    if not args.figures_only:
        _run(train_cmd)
    _run(eval_cmd)

    history = read_metrics_csv(run_dir / "metrics.csv")
    shutil.copy(run_dir / "metrics.csv", out / "metrics.csv")
    save_figure(plot_train_loss(history), out / "train_loss.png", dpi=100)
    save_figure(plot_test_acc(history, train=True), out / "accuracy.png", dpi=100)
    result = load_results(out / "eval.json")
    save_figure(plot_confusion(result["confusion_matrix"], normalize=False), out / "confusion.png", dpi=100)

    # The output spike counts of a few held-out recordings, through the evaluated checkpoint.
    model, cfg = model_from_checkpoint(checkpoint)
    frames, labels = load_split(cfg.data, "test")                       # [N, T, 2, H, W], [N]
    recordings = split_recordings(cfg.data, dataset_root(cfg.data))["test"]
    with torch.no_grad():
        spk, _ = model(frames.float().transpose(0, 1))                  # [T, N, 10]
    predicted = spk.sum(0).argmax(1)
    for old in [*out.glob("spike_counts_*.gif"), out / "misclassified_frames.png"]:
        old.unlink(missing_ok=True)
    gifs = []
    for i in _chosen_digits(predicted, labels, args.gifs):
        target, guess = int(labels[i]), int(predicted[i])
        name = f"spike_counts_{'right' if guess == target else 'wrong'}_true{target}_pred{guess}.gif"
        save_gif(animate_spike_counts(spk[:, i], target), out / name, fps=5)
        gifs.append((name, f"Train/{recordings[i].path.parent.name}/{recordings[i].path.name}", target, guess))
        if guess != target:                       # the misclassified recording, at its busiest steps
            busiest = sorted(frames[i].sum((1, 2, 3)).topk(min(5, len(frames[i]))).indices.tolist())
            save_figure(plot_frames(frames[i], steps=busiest, title=f"{gifs[-1][1]}: true {target}, predicted {guess}"),
                        out / "misclassified_frames.png", dpi=100)

    cm = result["confusion_matrix"]
    errors = sorted(((cm[t][p], t, p) for t in range(10) for p in range(10) if t != p and cm[t][p]), reverse=True)
    log_lines = (run_dir / "train.log").read_text().splitlines()
    command = "python scripts/real_1k_run.py " + shlex.join(sys.argv[1:])
    data = {**results_meta(command, resolve_device("auto")),
            "trained": f"{log_lines[0][:16]} to {log_lines[-1][11:16]} UTC" if log_lines else None,
            "figures_only": args.figures_only, "commands": [shlex.join(train_cmd), shlex.join(eval_cmd)],
            "data_root": DataConfig(root=args.root).root, "train_recordings": len(
                split_recordings(cfg.data, dataset_root(cfg.data))["train"]), "test_recordings": result["samples"],
            "settings": {"T": cfg.data.n_time_bins, "channels": list(cfg.model.channels), "beta": cfg.model.beta,
                         "reset": cfg.model.reset, "pool": cfg.model.pool, "loss": cfg.train.loss, "lr": cfg.train.lr,
                         "batch_size": cfg.train.batch_size, "num_epochs": cfg.train.num_epochs, "seed": cfg.seed},
            "checkpoint": "last.pt", "test_acc": result["accuracy"], "test_loss": result["loss"],
            "errors": [{"true": t, "predicted": p, "count": n} for n, t, p in errors],
            "misclassified_frames": (out / "misclassified_frames.png").exists(),
            "gifs": [{"file": name, "recording": rec, "true": target, "predicted": guess}
                     for name, rec, target, guess in gifs],
            "rows": history}
    text = markdown(data)
    write_results(out / "README", data, text)
    print(text)


def markdown(data: dict) -> str:
    """The run's README.md, from its README.json."""
    history, s = data["rows"], data["settings"]
    last, best = history[-1], max(data["rows"], key=lambda r: r["test_acc"])
    seconds = [r["epoch_seconds"] for r in history]
    n = data["test_recordings"]
    lines = [
        "# The CSNN trained on 1,000 real N-MNIST recordings (one full-mode run)",
        "",
        f"Trained {data['trained']} (train.log); this file written {data['date']} by `{data['command']}`"
        + (" (this file and the figures drawn again from the same finished run)"
           if data["figures_only"] else "") + ", which runs:",
        "",
        *("    " + command for command in data["commands"]),
        "",
        *([data["command_note"], ""] if data.get("command_note") else []),
        f"Hardware: {data['hardware']}, load average {data['load_average']:.1f} (when this file was written), "
        f"{'no GPU used' if 'CUDA' not in data['hardware'] else 'on the GPU'}; torch {data['software']['torch']}. "
        f"An epoch took {min(seconds):.0f}-{max(seconds):.0f} s ({sum(seconds) / 60:.1f} min for the "
        f"{len(history)}), on cores shared with other work.",
        "",
        f"Data: {data['data_root']} (1,000 recordings of N-MNIST's training set, `Train/<label>/<id>.bin`). "
        f"`data.test_from_train=0.1` holds out a fixed tenth of each class: {data['train_recordings']} recordings "
        f"train, {n} are the held-out test split.",
        "",
        f"Settings: the project's defaults: T={s['T']} time bins, channels {tuple(s['channels'])}, beta {s['beta']}, "
        f"reset {s['reset']}, pool {s['pool']}, loss {s['loss']}, Adam lr {s['lr']}, batch {s['batch_size']}, "
        f"{s['num_epochs']} epochs, seed {s['seed']}, float32.",
        "",
        "## Result",
        "",
        f"Checkpoint evaluated: `last.pt`, the weights after epoch {last['epoch']}, chosen by nothing. "
        f"(`best.pt` is chosen by accuracy on the same {n} held-out recordings, so it is not reported.)",
        "",
        f"- held-out test accuracy of `last.pt`: **{100 * data['test_acc']:.1f}%** "
        f"({round(data['test_acc'] * n)} of {n} recordings; one recording is one percentage point); "
        f"loss {data['test_loss']:.3f}",
        f"- train accuracy in epoch {last['epoch']}: {100 * last['train_acc']:.1f}% "
        f"(measured during the epoch, as the weights changed)",
        f"- for reference only, the held-out accuracy ranged over "
        f"{100 * min(r['test_acc'] for r in history):.0f}-{100 * max(r['test_acc'] for r in history):.0f}% "
        f"across the {len(history)} epochs (highest {100 * best['test_acc']:.0f}% in epoch {best['epoch']})",
        "- errors (true -> predicted: count): "
        + (", ".join(f"{e['true']} -> {e['predicted']}: {e['count']}" for e in data["errors"]) or "none"),
        "",
        "## Files",
        "",
        "- `README.json`: this file's numbers as data (`rows`: the epochs of metrics.csv)",
        "- `train_loss.png`, `accuracy.png`, `metrics.csv`: the curves of the run, one point per epoch",
        f"- `confusion.png`: the confusion matrix of `last.pt` on the {n} held-out recordings (counts)",
        "- `eval.json`: what `snn-eval` wrote (accuracy, per-class accuracy, confusion matrix, spike cost)",
    ]
    if data["misclassified_frames"]:
        lines.append("- `misclassified_frames.png`: five frames (the busiest time steps) of the misclassified "
                     "recording below")
    for g in data["gifs"]:
        lines.append(f"- `{g['file']}`: output spike counts over the {s['T']} time steps of the held-out "
                     f"recording `{g['recording']}` (true {g['true']}, predicted {g['predicted']})")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
