import json

import pytest
import torch

from snn_lib.errors import SnnError
from snn_lib.report import find_results_dir, hardware, load_curves, load_results, results_meta, write_results

RESULTS = find_results_dir(__file__)


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


def test_a_results_file_is_written_as_data_and_markdown_and_read_back(tmp_path):
    data = {**results_meta("python benchmarks/x.py --save x"), "rows": [{"T": 25, "ratio": 2.5, "note": None}]}
    json_path, md_path = write_results(tmp_path / "x.md", data, "# X")
    assert (json_path.name, md_path.name) == ("x.json", "x.md") and md_path.read_text() == "# X\n"
    assert load_results("x", tmp_path) == data == load_results(json_path)
    assert {"command", "hardware", "load_average", "date", "software", "rows"} <= set(data)
    assert "load average" not in data["hardware"]                  # the load is a number of its own
    (tmp_path / "run").mkdir()
    write_results(tmp_path / "run" / "README", {"rows": []}, "r")
    assert load_results("run/README", tmp_path) == {"rows": []}   # a file in a folder of the results


def test_load_results_says_in_one_line_what_is_missing_or_broken(tmp_path):
    with pytest.raises(SnnError, match=r"nothing\.json does not exist") as err:
        load_results("nothing", tmp_path)
    assert "\n" not in str(err.value)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SnnError, match="cannot be read"):
        load_results("bad", tmp_path)


def test_load_curves_groups_a_curves_file_by_row_and_seed(tmp_path):
    (tmp_path / "c.csv").write_text('row,seed,epoch,test_acc,val_acc\n"base",0,1,0.5,\n"base",0,2,0.75,0.8\n'
                                    '"base",1,1,0.25,0.3\n"a, b",0,1,1,1\n')
    curves = load_curves("c", tmp_path)
    assert list(curves) == ["base", "a, b"] and list(curves["base"]) == [0, 1]
    assert curves["base"][0] == [{"epoch": 1, "test_acc": 0.5}, {"epoch": 2, "test_acc": 0.75, "val_acc": 0.8}]
    with pytest.raises(SnnError, match="does not exist"):
        load_curves("none", tmp_path)


@pytest.mark.skipif(RESULTS is None, reason="no benchmarks/results around the tests")
def test_every_results_file_has_its_data_beside_it():
    """Every benchmarks/results/*.md (and .txt) has a .json (or .csv) of the same stem, and each
    JSON names the command, the hardware and the date it was made on, and holds numbers."""
    missing = [p.name for p in sorted([*RESULTS.glob("*.md"), *RESULTS.glob("*.txt")])
               if not p.with_suffix(".json").is_file() and not p.with_suffix(".csv").is_file()]
    assert not missing, f"results files without their data (NAME.json): {missing}"
    for path in [*sorted(RESULTS.glob("*.md")), RESULTS / "real_1k_run" / "README.md"]:
        if path.with_suffix(".json").is_file():
            data = load_results(path.with_suffix(".json"))
            assert {"command", "hardware", "date"} <= set(data), path.name
            assert isinstance(data.get("rows"), list) and data["rows"], path.name


@pytest.mark.skipif(RESULTS is None, reason="no benchmarks/results around the tests")
def test_committed_results_data_carries_the_numbers_of_their_markdown():
    """Spot checks, by eye once and pinned here: a number of each kind of file, as its .md prints it."""
    speed = load_results("cpu-2core-xeon-amx", RESULTS)["rows"]
    assert speed[1] == {"T": 10, "batch": 16, "implementation": "fast (fused LIF)", "samples_per_s": 565.0,
                        "step_ms": 28.3, "median_step_ms": 31.3, "peak_mb": 26.0, "data_fraction": 0.0234,
                        "ratio": 2.38}
    assert "|  10 |    16 | fast (fused LIF)               |     565.0 |" in (RESULTS / "cpu-2core-xeon-amx.md").read_text()
    sweep = load_results("real_1k_accuracy", RESULTS)
    assert [r["test_acc"] for r in sweep["rows"]] == [0.95, 0.95, 0.95, 0.95, 0.94]
    assert round(100 * sweep["last_epoch_test_acc"]["std"], 1) == 0.4          # "94.8% +- 0.4"
    ablation = {r["row"]: r for r in load_results("small_real_ablation", RESULTS)["rows"]}
    assert round(100 * ablation["baseline"]["val_chosen_mean"], 1) == 94.4
    assert ablation["baseline"]["chosen_epochs"] == [7, 9, 9, 8, 10]
    run = load_results("real_1k_run/README", RESULTS)
    assert run["test_acc"] == 0.94 and len(run["rows"]) == 15
