"""The book's structure: chapters exist, jupytext pairs agree, committed notebooks carry no outputs,
every chapter's first code cell installs snn_lib on Colab from the repository in _config.yml and
does nothing elsewhere, and the API page lists every module of snn_lib.

The chapters themselves run under ``SNN_FAST=1 pytest --nbmake book/*/*.ipynb``.
"""

from __future__ import annotations

import ast
import pkgutil
import re
from pathlib import Path

import pytest
import yaml

jupytext = pytest.importorskip("jupytext")
nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTER_SOURCES = sorted(BOOK.glob("*/*.md"))          # book/NN_slug/slug.md (jupytext MyST), appendices too
CHAPTERS_ONLY = [p for p in CHAPTER_SOURCES if re.fullmatch(r"\d\d_.+", p.parent.name)]   # not the appendices
NOTEBOOKS = sorted(BOOK.glob("*/*.ipynb"))


def _rel(path: Path) -> str:
    """``path`` relative to the repository, for messages and test ids."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _ids(paths):
    return [_rel(p) for p in paths]


def _toc_files(node) -> list[str]:
    """Every ``file:`` entry of _toc.yml, at any depth."""
    found = []
    if isinstance(node, dict):
        if "file" in node:
            found.append(node["file"])
        if "root" in node:
            found.append(node["root"])
        for value in node.values():
            found += _toc_files(value)
    elif isinstance(node, list):
        for value in node:
            found += _toc_files(value)
    return found


def _repository(root: Path = ROOT) -> tuple[str, str]:
    """``repository.url`` and ``repository.branch`` of ``root``'s _config.yml."""
    repository = yaml.safe_load((root / "_config.yml").read_text())["repository"]
    return repository["url"], repository["branch"]


def _cells(nb) -> list[tuple[str, str, tuple]]:
    """What a pair must agree on: type, source (trailing blanks ignored) and tags of each cell."""
    return [(c.cell_type, c.source.rstrip(), tuple(c.metadata.get("tags", []))) for c in nb.cells]


def test_there_are_chapters():
    assert CHAPTER_SOURCES, "no chapter sources book/NN_slug/slug.md found"


def test_every_toc_entry_exists():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    for entry in _toc_files(toc):
        candidates = [ROOT / (entry + suffix) for suffix in (".md", ".ipynb")] + [ROOT / entry]
        assert any(c.is_file() for c in candidates), f"_toc.yml lists {entry!r}, which does not exist"


def test_every_chapter_is_in_the_toc():
    listed = set(_toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text())))
    for src in CHAPTER_SOURCES:
        entry = _rel(src.with_suffix(""))
        assert entry in listed, f"{entry} is not in _toc.yml"


@pytest.mark.parametrize("src", CHAPTER_SOURCES, ids=_ids(CHAPTER_SOURCES))
def test_chapter_is_paired_with_an_ipynb(src):
    text = jupytext.read(src)
    formats = text.metadata.get("jupytext", {}).get("formats", "")
    assert formats == "ipynb,md:myst", (f"{src.name}: jupytext formats are {formats!r}; run "
                                        f"`jupytext --set-formats ipynb,md:myst {_rel(src)}`")
    assert src.with_suffix(".ipynb").is_file(), (
        f"{src.name} has no paired notebook; run `jupytext --to ipynb {_rel(src)}`")


@pytest.mark.parametrize("src", CHAPTER_SOURCES, ids=_ids(CHAPTER_SOURCES))
def test_pair_in_sync(src):
    md = jupytext.read(src)
    ipynb = nbformat.read(src.with_suffix(".ipynb"), as_version=4)
    assert _cells(md) == _cells(ipynb), (
        f"{_rel(src)} and its .ipynb differ; edit the .md and run "
        f"`jupytext --to ipynb {_rel(src)}` (or, after editing the .ipynb in Jupyter, "
        f"`jupytext --sync {_rel(src.with_suffix('.ipynb'))}` then the same command)")


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_has_a_source_and_no_outputs(nb_path):
    assert nb_path.with_suffix(".md").is_file(), f"{nb_path.name} has no paired jupytext .md"
    nb = nbformat.read(nb_path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{nb_path.name} cell {i} has outputs; run `jupytext --to ipynb "
                f"{_rel(nb_path.with_suffix('.md'))}` to rewrite it from its source")


def _first_code_cell(path: Path) -> str:
    nb = jupytext.read(path)
    return next(c.source for c in nb.cells if c.cell_type == "code")


def _as_python(source: str) -> ast.Module:
    """The cell as IPython runs it (``%pip`` becomes ``get_ipython().run_line_magic(...)``)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return ast.parse(TransformerManager().transform_cell(source))


@pytest.mark.parametrize("src", CHAPTER_SOURCES, ids=_ids(CHAPTER_SOURCES))
def test_first_cell_installs_from_the_repository_only_on_colab(src, root: Path = ROOT):
    """Colab opens the chapter from repository.url at repository.branch (_config.yml), so its
    first cell installs snn_lib from that same branch. Also used on a copy of the book (``root``)."""
    cell = _first_code_cell(src)
    url, branch = _repository(root)
    installs = [line.strip() for line in cell.splitlines() if "pip" in line and "install" in line]
    assert installs == [f"%pip install -q git+{url}@{branch}"], (
        f"{src.name}: the first code cell must install exactly `git+{url}@{branch}` (repository.url "
        f"and .branch of _config.yml) with `%pip install -q`; found {installs}; "
        f"`python scripts/set_repository.py {url} --branch {branch}` writes it")
    body = _as_python(cell).body
    guards = [node for node in body if isinstance(node, ast.If)]
    others = [node for node in body if not isinstance(node, (ast.If, ast.Import, ast.ImportFrom))]
    assert len(guards) == 1 and not others, (
        f"{src.name}: the first code cell may only import and run one `if \"google.colab\" in sys.modules:` block")
    assert ast.unparse(guards[0].test) == "'google.colab' in sys.modules", (
        f"{src.name}: the install must be guarded by `if \"google.colab\" in sys.modules:`")
    assert not guards[0].orelse, f"{src.name}: the Colab cell must do nothing off Colab (no else branch)"


@pytest.mark.parametrize("change", [
    ('if "google.colab" in sys.modules:\n    %pip', "%pip"),            # installs everywhere
    ("git+https://", "git+https://example.org/fork/"),                 # another address
    ("@main\n", "\n"),                                                 # no branch
])
def test_first_cell_rule_catches_a_bad_cell(tmp_path, change):
    """The rule above fails on a chapter whose first cell breaks it (a test that cannot fail is a defect)."""
    bad = tmp_path / "bad.md"
    bad.write_text(CHAPTER_SOURCES[0].read_text().replace(*change, 1))
    assert bad.read_text() != CHAPTER_SOURCES[0].read_text()
    with pytest.raises(AssertionError):
        test_first_cell_installs_from_the_repository_only_on_colab(bad)


def _is_solution(cell) -> bool:
    """A hidden code cell that checks its answer: an assert, or a call of the exercise's check_*."""
    return (cell.cell_type == "code" and "hide-cell" in cell.metadata.get("tags", [])
            and ("assert" in cell.source or re.search(r"^check_\w+\(", cell.source, re.MULTILINE) is not None))


@pytest.mark.parametrize("src", CHAPTERS_ONLY, ids=_ids(CHAPTERS_ONLY))
def test_chapter_ends_with_checked_exercises(src):
    nb = jupytext.read(src)
    solutions = [c for c in nb.cells if _is_solution(c)]
    assert 2 <= len(solutions) <= 4, (f"{src.name}: {len(solutions)} exercise solutions; a chapter ends "
                                      "with 2 to 4, each a `hide-cell` code cell with an assert or a check_ call")


STUB = re.compile(r"^def (\w+)\(.*?raise NotImplementedError", re.MULTILINE | re.DOTALL)


def fill_in_problems(nb) -> list[str]:
    """What breaks book/CONTRIBUTING.md's fill-in convention in a notebook: each stub (a function
    raising NotImplementedError) is followed by a check cell, ``check_NAME(NAME)`` in a
    ``try``/``except NotImplementedError``, then by a ``hide-cell`` solution labelled "Show
    solution" that redefines NAME and calls the same check."""
    problems = []
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        stub = STUB.search(cell.source)
        if not stub:
            continue
        name = stub.group(1)
        check, solution = (code[i + 1:i + 3] + [None, None])[:2]
        call = f"check_{name}({name})"
        if check is None or call not in check.source or "except NotImplementedError" not in check.source:
            problems.append(f"{name}: the next code cell must call {call} in a try/except NotImplementedError")
        if solution is None:
            problems.append(f"{name}: no solution cell after the check")
            continue
        prompt = solution.metadata.get("mystnb", {}).get("code_prompt_show")
        if "hide-cell" not in solution.metadata.get("tags", []) or prompt != "Show solution":
            problems.append(f"{name}: the solution cell must be tagged hide-cell with mystnb "
                            f"code_prompt_show 'Show solution' (found {prompt!r})")
        if f"def {name}(" not in solution.source or call not in solution.source:
            problems.append(f"{name}: the solution cell must define {name} and call {call}")
    return problems


@pytest.mark.parametrize("src", CHAPTER_SOURCES, ids=_ids(CHAPTER_SOURCES))
def test_fill_in_exercises_have_a_check_and_a_hidden_solution(src):
    problems = fill_in_problems(jupytext.read(src))
    assert not problems, f"{src.name}: " + "; ".join(problems)


def test_fill_in_rule_catches_a_broken_exercise():
    """The rule above fails on a stub whose solution is visible, or missing (a test that cannot fail is a defect)."""
    good = [nbformat.v4.new_code_cell("def f(x):\n    raise NotImplementedError('write f')"),
            nbformat.v4.new_code_cell("try:\n    check_f(f)\nexcept NotImplementedError:\n    print('not yet')"),
            nbformat.v4.new_code_cell("def f(x):\n    return x\n\ncheck_f(f)",
                                      metadata={"tags": ["hide-cell"],
                                                "mystnb": {"code_prompt_show": "Show solution"}})]
    assert fill_in_problems(nbformat.v4.new_notebook(cells=good)) == []
    visible = [*good[:2], nbformat.v4.new_code_cell(good[2].source)]
    assert fill_in_problems(nbformat.v4.new_notebook(cells=visible))
    assert fill_in_problems(nbformat.v4.new_notebook(cells=good[:2]))


def _has_python(info: pkgutil.ModuleInfo) -> bool:
    """False for a package whose __init__.py is empty (snn_lib.conf holds only hydra's YAML files)."""
    spec = info.module_finder.find_spec(info.name.rpartition(".")[2])
    return bool(spec and spec.origin and Path(spec.origin).read_text().strip())


def test_api_page_lists_every_module():
    import snn_lib

    page = (BOOK / "api.md").read_text()
    modules = ["snn_lib"] + [m.name for m in pkgutil.walk_packages(snn_lib.__path__, "snn_lib.")
                             if _has_python(m)]
    missing = [m for m in modules if f".. automodule:: {m}\n" not in page]
    assert not missing, f"book/api.md has no `.. automodule::` for {missing}"


def parsed_by_hand(source: str) -> list[str]:
    """What in a code cell parses a results file by hand instead of reading its data through
    snn_lib.report: importing ``re`` or ``csv``, or splitting text at ``|`` (a Markdown table row)."""
    found = []
    for node in ast.walk(_as_python(source)):
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        found += [f"import {name}" for name in names if name.split(".")[0] in ("re", "csv")]
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "split"
                and any(isinstance(a, ast.Constant) and a.value == "|" for a in node.args)):
            found.append(ast.unparse(node))
    return found


@pytest.mark.parametrize("src", CHAPTER_SOURCES, ids=_ids(CHAPTER_SOURCES))
def test_no_chapter_parses_a_results_file_by_hand(src):
    """Pages read results as data (snn_lib.report.load_results, load_curves) and show them with
    snn_lib.pages: no regular expressions, CSV readers or Markdown table rows in a code cell."""
    cells = [c.source for c in jupytext.read(src).cells if c.cell_type == "code"]
    found = [f"cell {i}: {what}" for i, source in enumerate(cells) for what in parsed_by_hand(source)]
    assert not found, f"{_rel(src)} parses by hand: {found}; read the results file with snn_lib.report instead"


@pytest.mark.parametrize("cell", ["import re\nre.sub('a', 'b', 'c')", "import csv as c",
                                  "from csv import DictReader", "cells = line.strip().split('|')"])
def test_parsing_by_hand_is_caught(cell):
    assert parsed_by_hand(cell)
    assert not parsed_by_hand("rows = load_results('x')['rows']\nname.split(' (')")
