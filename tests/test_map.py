"""The package's map (README "Layout", book/CONTRIBUTING.md): the rules that keep each idea in one
home, checked on the source itself.

- no import cycle inside snn_lib;
- snn_lib.kernels imports nothing from snn_lib (the model calls the kernels, never the reverse);
- nothing in snn_lib imports snn_lib.cli (the hydra layer of the entry points);
- one training step: no ``.backward(`` outside snn_lib, except where a chapter teaches gradients
  themselves (chapter 2's surrogate gradient, chapter 4's one step by hand);
- every public function and class of every module (its ``__all__``) is used by a test.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import snn_lib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "snn_lib"
TEACHING_GRADIENTS = {"book/02_lif_neuron/lif_neuron.md", "book/04_csnn/csnn.md"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The snn_lib modules that ``path`` imports (relative imports resolved; ``from . import x``
    counted as importing the package ``.``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "snn_lib"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "snn_lib":
                modules = {f"{target}.{a.name}" for a in node.names}
                found |= {m for m in modules if (PACKAGE.parent / (m.replace(".", "/") + ".py")).exists()} or {target}
    return found - {name}


GRAPH = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def test_the_graph_was_read():
    assert {"snn_lib.train", "snn_lib.kernels", "snn_lib.cli", "snn_lib.data.loader"} <= set(GRAPH)
    assert "snn_lib.kernels" in GRAPH["snn_lib.model"] and "snn_lib.config" in GRAPH["snn_lib.train"]


def test_no_import_cycle():
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in GRAPH.get(node, ()):
            if state.get(nxt) == "open":
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for start in GRAPH:
        if start not in state:
            visit(start, [start])


def test_kernels_import_nothing_of_snn_lib():
    assert GRAPH["snn_lib.kernels"] == set()


def test_nothing_in_snn_lib_imports_the_cli():
    assert [m for m, deps in GRAPH.items() if "snn_lib.cli" in deps] == []


def test_one_training_step():
    sources = [*ROOT.glob("scripts/*.py"), *ROOT.glob("benchmarks/*.py"), *ROOT.glob("book/*/*.md")]
    assert sources
    offenders = [str(p.relative_to(ROOT)) for p in sources
                 if ".backward(" in p.read_text() and str(p.relative_to(ROOT)) not in TEACHING_GRADIENTS]
    assert offenders == [], f"training loops outside snn_lib.train: {offenders}"


def public_names() -> list[tuple[str, str]]:
    names = []
    for info in pkgutil.walk_packages(snn_lib.__path__, "snn_lib."):
        module = importlib.import_module(info.name)
        names += [(info.name, n) for n in getattr(module, "__all__", [])
                  if callable(getattr(module, n)) and getattr(module, n).__module__ == info.name]
    return names


def test_every_public_function_is_used_by_a_test():
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != "test_map.py")
    missing = [f"{m}.{n}" for m, n in public_names() if not re.search(rf"\b{re.escape(n)}\b", tests)]
    assert missing == [], f"public functions and classes no test uses: {missing}"
