"""The book's HTML rendering of results (snn_lib.pages): tables from a results file's rows,
Markdown made to fit a page (tables, note rows, settings that break, code lines cut)."""

import html as html_lib
import json
import re

from snn_lib.pages import (CODE_WIDTH, command_line, markdown_html, measured_html, results_file_html,
                           results_table_html, table_html)


def test_markdown_tables_headings_and_note_rows():
    html = markdown_html("# Title\n\n| T | batch | impl | x |\n|---|---|---|---|\n| 10 | 16 | ref | 1 |\n"
                         "| | | note on the row above | |\n")
    assert "<strong>Title</strong>" in html and "<h1>" not in html
    assert "<table>" in html and '<td colspan="2"><small>note on the row above</small></td>' in html


def test_a_setting_in_a_table_cell_breaks_between_its_parts_not_inside_words():
    html = markdown_html("| row | settings |\n|---|---|\n| a | `data.sim_mix_epochs=4` |\n\n`x.y=1` outside\n")
    assert "<code>data.<wbr>sim_<wbr>mix_<wbr>epochs=<wbr>4</code>" in html
    assert "<code>x.y=1</code>" in html                            # code outside a table stays as it is
    assert "anywhere" not in html                                  # no break inside a word


def test_results_table_html_keeps_the_first_table_and_the_columns_asked_for(tmp_path):
    path = tmp_path / "r.md"
    path.write_text("# R\n\nMeasured by `cmd /tmp/x`.\n\n| row | settings | acc |\n|---|---|---:|\n"
                    "| a | `x=1` | **90%** |\n| b | `y=2` | 95% |\n\nA note.\n\n| other | table |\n|---|---|\n")
    html = results_table_html(path, columns=[0, 2])
    assert html.count("<tr>") == 3 and "<strong>90%</strong>" in html and "95%" in html
    assert "settings" not in html and "x=1" not in html and "/tmp/x" not in html and "other" not in html
    assert results_table_html(path).count("<th>") + results_table_html(path).count("<th style") == 3
    assert "other" in results_table_html(path, table=1) and "row" not in results_table_html(path, table=1)


def test_results_file_html_shows_json_as_text(tmp_path):
    path = tmp_path / "benchmarks" / "results" / "r.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"ratio": 2.5}))
    html = results_file_html(path, open_=True)
    assert html.startswith("<details open>") and "benchmarks/results/r.json" in html and "&quot;ratio&quot;: 2.5" in html


def test_markdown_code_lines_are_cut_to_the_page_and_continued():
    command = ("python scripts/real_1k_sweep.py --root ../shared/data/nmnist-real-1k --seeds 0 1 2 "
               "--out benchmarks/results/x.md data.cache_dir=/tmp/cache 'a<b'")
    html = markdown_html(f"Command:\n\n    {command}\n\n    short\n")
    code = html_lib.unescape(re.search(r"<pre><code>(.*?)</code></pre>", html, re.S).group(1))
    wrapped, rest = code.split("\n\n")
    lines = wrapped.split("\n")
    assert len(lines) > 1 and all(len(line) <= CODE_WIDTH + 2 for line in lines)
    assert all(line.endswith(" \\") for line in lines[:-1]) and rest.strip() == "short"
    assert "&lt;b" in html and "'a<b'" not in html              # still escaped
    assert " ".join(line.rstrip("\\").strip() for line in lines) == command   # cut at spaces only


def _cells(html: str) -> list[list[str]]:
    """The text of each row's cells (header included) of the one table in ``html``."""
    return [[html_lib.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
             for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", html, re.S)]


def test_table_html_shows_the_columns_asked_for_with_their_headers_and_formats():
    rows = [{"seed": 0, "acc": 0.95, "epochs": [7, 9], "ratio": None, "cmd": "a|b"},
            {"seed": 1, "acc": 0.9375, "epochs": [8], "ratio": 2.256, "cmd": "`x=1`"}]
    html = table_html(rows, {"seed": "seed", "acc": "test acc", "epochs": "chosen", "ratio": "ratio", "cmd": "how"},
                      formats={"acc": "{:.1%}", "ratio": lambda r: f"{r:.2f}x"}, missing="-")
    assert _cells(html) == [["seed", "test acc", "chosen", "ratio", "how"],
                            ["0", "95.0%", "7, 9", "-", "a|b"],          # a | in a value stays in its cell
                            ["1", "93.8%", "8", "2.26x", "x=1"]]
    assert "<code>x=<wbr>1</code>" in html                            # cells are Markdown, settings break
    assert html.count('style="text-align:right"') == 3 * 3          # seed, acc and ratio: numbers, to the right


def test_table_html_defaults_to_every_key_of_the_first_row_and_leaves_out_the_others():
    html = table_html([{"a": 1, "b": "x"}, {"a": 2, "b": "y", "c": 3}])
    assert _cells(html) == [["a", "b"], ["1", "x"], ["2", "y"]]
    assert _cells(table_html([{"a": 1}], ["a"])) == [["a"], ["1"]]


def test_command_line_names_the_data_folder_root_and_hides_other_machine_paths():
    data = {"command": "python scripts/x.py --root /work/shared/data/nmnist --exp-root /tmp/run/sweep "
                       "--checkpoint /tmp/run/a/checkpoints/last.pt --out benchmarks/results/x.md data.cache_dir=/tmp/c"}
    assert command_line(data) == ("python scripts/x.py --root ROOT --exp-root DIR/sweep --checkpoint "
                                  "DIR/a/checkpoints/last.pt --out benchmarks/results/x.md data.cache_dir=DIR")
    hydra = {"command": ["snn-train data.root=/home/me/nmnist/ exp_id=a", "snn-eval checkpoint=exp/a/last.pt"],
             "data_root": "/home/me/nmnist"}
    assert command_line(hydra, root_name="DATA") == "snn-train data.root=DATA/ exp_id=a && snn-eval checkpoint=exp/a/last.pt"


def test_measured_html_says_data_hardware_date_and_command_without_load_or_paths():
    data = {"command": "snn-train data.root=/tmp/d", "hardware": "2 cores", "date": "2026-01-02 03:04 UTC",
            "load_average": 4.7}
    html = measured_html(data, "ROOT: 1,000 real recordings")
    assert html.startswith('<p class="snn-measured"><small>ROOT: 1,000 real recordings. Measured on 2 cores, '
                           "2026-01-02 03:04 UTC with <code")
    assert "snn-train data.root=ROOT</code>" in html and "4.7" not in html and "/tmp" not in html
