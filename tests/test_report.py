import html as html_lib
import json
import re

import torch

from snn_lib.report import (CODE_WIDTH, find_results_dir, hardware, markdown_html, results_file_html,
                            results_table_html)


def test_hardware_names_the_cpu_and_threads():
    text = hardware(torch.device("cpu"))
    assert f"{torch.get_num_threads()} torch threads" in text and "cores" in text


def test_find_results_dir_walks_up_and_gives_none_outside_a_repository(tmp_path):
    repo, alone = tmp_path / "repo", tmp_path / "alone"
    (repo / "benchmarks" / "results").mkdir(parents=True)
    (repo / "book" / "05").mkdir(parents=True)
    alone.mkdir()
    assert find_results_dir(repo / "book" / "05") == repo / "benchmarks" / "results"
    assert find_results_dir(alone) is None


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
