"""Measured results, described and shown: the hardware line of every results file, and the
committed files of ``benchmarks/results/`` rendered for a notebook or the book.

::

    hardware(torch.device("cpu"))   # 'Intel(R) Xeon(R) ... (AVX2, AVX-512), 2 cores, 2 torch threads, load 1.2'
    results = find_results_dir()    # benchmarks/results of the repository around the working directory
    HTML(results_file_html(results / "sim_vs_real.md", open_=True))
"""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

import torch

_UNITS = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("amx_bf16", "AMX-BF16"))
_STYLE = ("<style>.snn-results table {border-collapse: collapse; font-size: 85%}"
          " .snn-results th, .snn-results td {padding: 1px 7px; border-bottom: 1px solid #ddd}</style>")


def hardware(device: torch.device | str = "cpu") -> str:
    """The machine a measurement ran on, in words: the GPU's name, or the CPU's model, vector
    units, cores and torch threads; with the load average, since a shared machine is slower."""
    device = torch.device(device)
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}){load}"
    name, flags = platform.processor() or platform.machine() or "CPU", []
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
        name = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), name)
        flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    except OSError:
        pass
    units = [unit for flag, unit in _UNITS if flag in flags]
    return (f"{name}{' (' + ', '.join(units) + ')' if units else ''}, {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} torch threads{load}")


def find_results_dir(start: str | Path | None = None) -> Path | None:
    """``benchmarks/results`` of the repository that holds ``start`` (default: the working
    directory), or None where there is none (a notebook opened alone, e.g. on Colab)."""
    here = Path(start or Path.cwd()).resolve()
    return next((p / "benchmarks" / "results" for p in (here, *here.parents)
                 if (p / "benchmarks" / "results").is_dir()), None)


def _span_notes(table: re.Match) -> str:
    """A table row whose first two cells are empty is a note on the row above: its text spans the rest."""
    html = table.group(0)
    width = len(re.findall(r"<th[ >]", html[:html.find("</tr>")]))
    note = r"<tr>\s*<td[^>]*></td>\s*<td[^>]*></td>\s*<td[^>]*>(.*?)</td>(\s*<td[^>]*></td>)*\s*</tr>"
    return re.sub(note, rf'<tr><td></td><td></td><td colspan="{width - 2}"><small>\1</small></td></tr>',
                  html, flags=re.S)


def markdown_html(text: str) -> str:
    """Markdown with tables as HTML (headings become bold lines, to stay inside the page's outline)."""
    from markdown_it import MarkdownIt

    text = re.sub(r"(?m)^#+\s+(.*)", r"**\1**", text)
    html = MarkdownIt("commonmark", {"breaks": True}).enable("table").render(text)
    html = re.sub(r"<table>.*?</table>", _span_notes, html, flags=re.S)
    return f'{_STYLE}<div class="snn-results" style="overflow-x: auto">{html}</div>'


def results_file_html(path: str | Path, open_: bool = False) -> str:
    """A results file under its name, in a collapsible block: Markdown rendered, JSON and text as they are."""
    path = Path(path)
    text = path.read_text()
    if path.suffix == ".json":
        text = json.dumps(json.loads(text), indent=1)
    if path.suffix in (".json", ".txt"):
        text = f"```\n{text.rstrip()}\n```"
    label = "/".join(path.parts[-3:])                   # benchmarks/results/<name>
    return (f"<details{' open' if open_ else ''}><summary><b><code>{label}</code>"
            f"</b></summary>{markdown_html(text)}</details>")
