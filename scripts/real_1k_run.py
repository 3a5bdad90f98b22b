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
misclassified if any) and ``README.md`` with the command, hardware, torch version, split, checkpoint
and the numbers. Usage::

    python scripts/real_1k_run.py --root /work/shared/data/nmnist-real-1k
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch

from snn_lib.checkpoint import model_from_checkpoint
from snn_lib.config import DataConfig
from snn_lib.data.dataset import dataset_root, load_split, split_recordings
from snn_lib.plotting import animate_spike_counts, new_figure, plot_confusion, plot_frames, plot_train_loss, save_gif
from snn_lib.report import hardware
from snn_lib.device import resolve_device


def _cpu_model() -> str:
    """``lscpu``'s model name, or "" where there is no lscpu."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name")), "")


def _run(command: list[str]) -> None:
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, check=True)


def _accuracy_figure(history: list[dict]):
    """Train and held-out accuracy per epoch, in percent."""
    fig = new_figure(5, 3.2)
    ax = fig.subplots()
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [100 * r["train_acc"] for r in history], marker="o", label="train (900)")
    ax.plot(epochs, [100 * r["test_acc"] for r in history], marker="o", label="held-out (100)")
    ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy on real N-MNIST")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


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

    with open(run_dir / "metrics.csv") as f:
        history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    for row in history:
        row["epoch"] = int(row["epoch"])
    shutil.copy(run_dir / "metrics.csv", out / "metrics.csv")
    plot_train_loss(history).savefig(out / "train_loss.png", dpi=100)
    _accuracy_figure(history).savefig(out / "accuracy.png", dpi=100)
    result = json.loads((out / "eval.json").read_text())
    plot_confusion(result["confusion_matrix"], normalize=False).savefig(out / "confusion.png", dpi=100)

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
            busiest = sorted(frames[i].sum((1, 2, 3)).topk(5).indices.tolist())
            plot_frames(frames[i], steps=busiest,
                        title=f"{gifs[-1][1]}: true {target}, predicted {guess}").savefig(
                out / "misclassified_frames.png", dpi=100)

    last = history[-1]
    best = max(history, key=lambda r: r["test_acc"])
    cm = result["confusion_matrix"]
    errors = sorted(((cm[t][p], t, p) for t in range(10) for p in range(10) if t != p and cm[t][p]), reverse=True)
    data = DataConfig(root=args.root)
    log_lines = (run_dir / "train.log").read_text().splitlines()
    trained = f"{log_lines[0][:16]} to {log_lines[-1][11:16]}" if log_lines else "?"
    lines = [
        "# The CSNN trained on 1,000 real N-MNIST recordings (one full-mode run)",
        "",
        f"Trained {trained} UTC (train.log); this file written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `python scripts/real_1k_run.py --root {args.root}`"
        + (" (this file and the figures drawn again from the same finished run with `--figures-only`)"
           if args.figures_only else "") + ", which runs:",
        "",
        "    " + " ".join(train_cmd),
        "    " + " ".join(eval_cmd),
        "",
        f"Hardware: {hardware(resolve_device('auto'))} (when this file was written; lscpu: "
        f"{_cpu_model() or 'not available'}), no GPU used; "
        f"torch {torch.__version__}. An epoch took "
        f"{min(r['epoch_seconds'] for r in history):.0f}-{max(r['epoch_seconds'] for r in history):.0f} s "
        f"({sum(r['epoch_seconds'] for r in history) / 60:.1f} min for the 15), on cores shared with other work.",
        "",
        f"Data: {data.root} (1,000 recordings of N-MNIST's training set, `Train/<label>/<id>.bin`). "
        f"`data.test_from_train=0.1` holds out a fixed tenth of each class: "
        f"{len(split_recordings(cfg.data, dataset_root(cfg.data))['train'])} recordings train, "
        f"{result['samples']} are the held-out test split.",
        "",
        f"Settings: the project's defaults: T={cfg.data.n_time_bins} time bins, channels {tuple(cfg.model.channels)}, "
        f"beta {cfg.model.beta}, reset {cfg.model.reset}, pool {cfg.model.pool}, loss {cfg.train.loss}, "
        f"Adam lr {cfg.train.lr}, batch {cfg.train.batch_size}, {cfg.train.num_epochs} epochs, seed {cfg.seed}, "
        f"float32.",
        "",
        "## Result",
        "",
        f"Checkpoint evaluated: `last.pt`, the weights after epoch {last['epoch']}, chosen by nothing. "
        f"(`best.pt` is chosen by accuracy on the same 100 held-out recordings, so it is not reported.)",
        "",
        f"- held-out test accuracy of `last.pt`: **{100 * result['accuracy']:.1f}%** "
        f"({round(result['accuracy'] * result['samples'])} of {result['samples']} recordings; "
        f"one recording is one percentage point); loss {result['loss']:.3f}",
        f"- train accuracy in epoch {last['epoch']}: {100 * last['train_acc']:.1f}% "
        f"(measured during the epoch, as the weights changed)",
        f"- for reference only, the held-out accuracy ranged over "
        f"{100 * min(r['test_acc'] for r in history):.0f}-{100 * max(r['test_acc'] for r in history):.0f}% "
        f"across the 15 epochs (highest {100 * best['test_acc']:.0f}% in epoch {best['epoch']})",
        "- errors (true -> predicted: count): "
        + (", ".join(f"{t} -> {p}: {n}" for n, t, p in errors) if errors else "none"),
        "",
        "## Files",
        "",
        "- `train_loss.png`, `accuracy.png`, `metrics.csv`: the curves of the run, one point per epoch",
        "- `confusion.png`: the confusion matrix of `last.pt` on the 100 held-out recordings (counts)",
        "- `eval.json`: what `snn-eval` wrote (accuracy, per-class accuracy, confusion matrix, spike cost)",
    ]
    if (out / "misclassified_frames.png").exists():
        lines.append("- `misclassified_frames.png`: five frames (the busiest time steps) of the misclassified "
                     "recording below")
    for name, rec, target, guess in gifs:
        lines.append(f"- `{name}`: output spike counts over the {cfg.data.n_time_bins} time steps of the held-out "
                     f"recording `{rec}` (true {target}, predicted {guess})")
    (out / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
