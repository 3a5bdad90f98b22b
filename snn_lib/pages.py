"""The book's HTML rendering of results: a table from a results file's rows, a results file under
its name, and Markdown made to fit a book page (tables that fit its width, code lines cut at
``CODE_WIDTH``). What the results say is read by :mod:`snn_lib.report`; this module only shows it.

::

    from snn_lib.report import load_results
    # benchmarks/results/small_real_ablation.json
    data = load_results("small_real_ablation")
    HTML(table_html(data["rows"],
                    {"row": "row", "val_chosen_mean": "test acc"},
                    formats={"val_chosen_mean": "{:.1%}"}))
    # how it was measured: data, hardware, date, command
    HTML(measured_html(data, "ROOT: 1,000 real recordings"))
    # the whole file, folded
    HTML(results_file_html(find_results_dir() / "small_real_ablation.md"))

A table's code spans may break after ``=``, ``_``, ``.`` or ``,`` (a long setting in a cell); a
row whose first two cells are empty is a note on the row above, spanning the rest of it.
"""

from __future__ import annotations

import html as html_lib
import itertools
import json
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from numbers import Number
from pathlib import Path

_STYLE = ("<style>.snn-results table {border-collapse: collapse; font-size: 85%}"
          " .snn-results th, .snn-results td {padding: 1px 7px; border-bottom: 1px solid #ddd}"
          " .snn-results td code {overflow-wrap: break-word}</style>")


def _span_notes(table: re.Match) -> str:
    """A table row whose first two cells are empty is a note on the row above: its text spans the rest."""
    html = table.group(0)
    width = len(re.findall(r"<th[ >]", html[:html.find("</tr>")]))
    note = r"<tr>\s*<td[^>]*></td>\s*<td[^>]*></td>\s*<td[^>]*>(.*?)</td>(\s*<td[^>]*></td>)*\s*</tr>"
    return re.sub(note, rf'<tr><td></td><td></td><td colspan="{width - 2}"><small>\1</small></td></tr>',
                  html, flags=re.S)


def _breakable_code(table: re.Match) -> str:
    """A table whose code spans may break after ``=``, ``_``, ``.`` or ``,`` (a long setting such
    as ``data.sim_mix_epochs=4`` in a cell), so that a wide table fits the page without breaking
    words in the middle."""
    return re.sub(r"<code>(.*?)</code>",
                  lambda code: "<code>" + re.sub(r"([=_.,])", r"\1<wbr>", code.group(1)) + "</code>",
                  table.group(0), flags=re.S)


CODE_WIDTH = 72
"""Characters of a line in a code block of :func:`markdown_html` (a results file's command):
longer lines are cut at spaces and continued, shell-style, with `` \\`` so they fit a book page."""


def _wrap_code(block: re.Match) -> str:
    """A ``<pre><code>`` block with lines longer than ``CODE_WIDTH`` cut at spaces."""
    lines = []
    for line in html_lib.unescape(block.group(2)).split("\n"):
        parts = textwrap.wrap(line, CODE_WIDTH, subsequent_indent="    ", break_long_words=True,
                              break_on_hyphens=False, drop_whitespace=True) if len(line) > CODE_WIDTH else [line]
        lines.append(" \\\n".join(parts or [""]))
    return f"{block.group(1)}{html_lib.escape(chr(10).join(lines))}</code></pre>"


def markdown_html(text: str) -> str:
    """Markdown with tables as HTML (headings become bold lines, to stay inside the page's outline;
    code lines longer than ``CODE_WIDTH`` cut and continued with `` \\``)."""
    from markdown_it import MarkdownIt

    text = re.sub(r"(?m)^#+\s+(.*)", r"**\1**", text)
    html = MarkdownIt("commonmark", {"breaks": True}).enable("table").render(text)
    html = re.sub(r"<table>.*?</table>", _span_notes, html, flags=re.S)
    html = re.sub(r"<table>.*?</table>", _breakable_code, html, flags=re.S)
    html = re.sub(r"(<pre><code[^>]*>)(.*?)</code></pre>", _wrap_code, html, flags=re.S)
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


def results_table_html(path: str | Path, columns: Sequence[int] | None = None, table: int = 0) -> str:
    """Markdown table number ``table`` (0, the first) of a results file as HTML, with only the
    ``columns`` given (their indices, 0 the first; all when None): the measurements without the
    file's notes on how they were made, which :func:`results_file_html` shows."""
    tables = [list(rows) for is_row, rows in itertools.groupby(Path(path).read_text().splitlines(),
                                                                key=lambda line: line.startswith("|")) if is_row]
    rows = [line.strip().strip("|").split("|") for line in tables[table]]
    if columns is not None:
        rows = [[row[i] for i in columns] for row in rows]
    return markdown_html("\n".join("|" + "|".join(row) + "|" for row in rows))




_MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:tmp|root|home|Users|work|var/folders)/[^\s'\"]*")
"""An absolute path on the machine that made a result (``/tmp/run/exp``): nothing a reader has."""


def command_line(data: Mapping, root_name: str = "ROOT", other_name: str = "DIR", key: str = "command") -> str:
    """A results file's command (``data[key]``) with the machine's paths replaced: the data folder
    (the file's ``data_root``, or the path after ``--root`` or ``data.root=``) by ``root_name``,
    any other absolute path of the machine (``/tmp/run/sweep``) by ``other_name`` and its last
    parts (``DIR/sweep``)."""
    command = data[key]
    if not isinstance(command, str):
        command = " && ".join(command)
    roots = set(re.findall(r"(?:--root[= ]|data\.root=)(\S+)", command))
    if data.get("data_root"):
        roots.add(str(data["data_root"]))
    for root in sorted(roots, key=len, reverse=True):
        if root != root_name:
            command = command.replace(root.rstrip("/"), root_name)

    def other(path: re.Match) -> str:
        parts = [p for p in path.group(0).split("/") if p][2:]
        return "/".join([other_name, *parts])
    return _MACHINE_PATH.sub(other, command)


def measured_html(data: Mapping, about: str = "", root_name: str = "ROOT", key: str = "command") -> str:
    """One short line under a table saying how a results file's numbers were measured: ``about``
    (the data), the file's hardware and date, and its command (:func:`command_line`), in small
    type that wraps to the page's width."""
    facts = ", ".join(str(data[k]) for k in ("hardware", "date") if data.get(k))
    text = f"{html_lib.escape(about.rstrip('.'))}. " if about else ""
    command = html_lib.escape(command_line(data, root_name, key=key))
    return (f'<p class="snn-measured"><small>{text}Measured on {html_lib.escape(facts)} with '
            f'<code style="white-space: normal; overflow-wrap: anywhere">{command}</code></small></p>')


def _cell(value: object, fmt: str | Callable[[object], str] | None, missing: str = "") -> str:
    """One cell of :func:`table_html` as Markdown text (None: ``missing``; ``|`` escaped)."""
    if value is None:
        text = missing
    elif callable(fmt):
        text = fmt(value)
    elif fmt is not None:
        text = fmt.format(value)
    elif isinstance(value, (list, tuple)):
        text = ", ".join(map(str, value))
    else:
        text = str(value)
    return text.replace("\n", " ").replace("|", "\\|")


def table_html(rows: Sequence[Mapping], columns: Mapping[str, str] | Sequence[str] | None = None,
               formats: Mapping[str, str | Callable[[object], str]] | None = None, missing: str = "") -> str:
    """A results file's ``rows`` (flat dicts) as an HTML table that fits a book page.

    ``columns``: the keys to show, in order, each with its header (``{"val_chosen_mean": "test
    acc"}``), or a list of keys (the key is the header); default, every key of the first row.
    ``formats``: per key, a format string (``"{:.1%}"``) or a function of the value; otherwise
    the value as text (a list joined with commas); a missing value or None is ``missing``. A cell's text is Markdown (code
    spans, ``**bold**``); columns whose values are all numbers are right-aligned."""
    if columns is None:
        columns = list(rows[0]) if rows else []
    if not isinstance(columns, Mapping):
        columns = {key: key for key in columns}
    formats = formats or {}
    numeric = {key for key in columns
               if rows and all(isinstance(r.get(key), Number) or r.get(key) is None for r in rows)
               and any(isinstance(r.get(key), Number) for r in rows)}
    lines = ["| " + " | ".join(_cell(h, None) for h in columns.values()) + " |",
             "|" + "|".join("---:" if key in numeric else "---" for key in columns) + "|"]
    lines += ["| " + " | ".join(_cell(row.get(key), formats.get(key), missing) for key in columns) + " |" for row in rows]
    return markdown_html("\n".join(lines) + "\n")
