"""scripts/set_repository.py, run as the book workflow runs it, on a copy of the book.

After pointing the copy at a fork, the copy passes the rules of tests/test_book.py (every chapter's
first cell installs from _config.yml's repository and branch, jupytext pairs agree) for the fork's
address, and no file of the copy still names the original one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_book import (ROOT, _repository, test_first_cell_installs_from_the_repository_only_on_colab,
                       test_pair_in_sync)

SCRIPT = ROOT / "scripts" / "set_repository.py"
FORK = "https://github.com/alice-lab/snn-course-fork"


@pytest.fixture
def book(tmp_path) -> Path:
    """A copy of what the script edits: _config.yml and book/."""
    shutil.copy2(ROOT / "_config.yml", tmp_path / "_config.yml")
    shutil.copytree(ROOT / "book", tmp_path / "book", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return tmp_path


def run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args, "--root", str(root)],
                          capture_output=True, text=True, timeout=60)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def chapters(root: Path) -> list[Path]:
    return sorted((root / "book").glob("*/*.md"))


def test_rewrites_config_and_every_chapter_pair(book):
    before = snapshot(book)
    old_url, _ = _repository(book)
    done = run(book, FORK, "--branch", "course/2026")
    assert done.returncode == 0, done.stderr

    config = yaml.safe_load((book / "_config.yml").read_text())["repository"]
    assert (config["url"], config["branch"]) == (FORK, "course/2026")
    assert config["path_to_book"] == ""                    # the rest of the block is kept
    assert chapters(book)
    for src in chapters(book):
        test_first_cell_installs_from_the_repository_only_on_colab(src, root=book)   # .md
        test_first_cell_installs_from_the_repository_only_on_colab(src.with_suffix(".ipynb"), root=book)
        test_pair_in_sync(src)
    assert f"git clone {FORK} && cd snn-course-fork\n" in (book / "book" / "intro.md").read_text()
    assert f"%pip install -q git+{FORK}@course/2026\n" in (book / "book" / "CONTRIBUTING.md").read_text()

    after = snapshot(book)
    assert not [name for name, data in after.items() if old_url.encode() in data], "the old address is left"
    for name in [name for name in after if after[name] != before[name]]:
        # one line per file changes: the rest (comments, the notebooks' JSON layout) is kept
        old_lines, new_lines = before[name].decode().splitlines(), after[name].decode().splitlines()
        assert len(old_lines) == len(new_lines), name
        changed = [i for i, (a, b) in enumerate(zip(old_lines, new_lines)) if a != b]
        assert len(changed) <= (2 if name == "_config.yml" else 1), (name, changed)
    for name in ("_config.yml", "book/intro.md", "book/CONTRIBUTING.md", *(
            str(p.relative_to(book)) for src in chapters(book) for p in (src, src.with_suffix(".ipynb")))):
        assert name in done.stdout, f"the report does not name {name}"


def test_keeps_the_configured_branch_and_accepts_a_clone_address(book):
    _, branch = _repository(book)
    done = run(book, FORK + ".git")
    assert done.returncode == 0, done.stderr
    assert _repository(book) == (FORK, branch)
    for src in chapters(book):
        test_first_cell_installs_from_the_repository_only_on_colab(src, root=book)


def test_second_run_changes_nothing(book):
    assert run(book, FORK, "--branch", "main").returncode == 0
    once = snapshot(book)
    again = run(book, FORK, "--branch", "main")
    assert again.returncode == 0, again.stderr
    assert snapshot(book) == once
    assert "nothing changed" in again.stdout


def test_back_to_the_original_restores_every_file(book):
    original = snapshot(book)
    url, branch = _repository(book)
    assert run(book, FORK, "--branch", "dev").returncode == 0
    assert snapshot(book) != original
    assert run(book, url, "--branch", branch).returncode == 0
    assert snapshot(book) == original


@pytest.mark.parametrize("args", [
    ["https://gitlab.com/alice/snn"],                     # not GitHub: no Colab button there
    ["http://github.com/alice/snn"],                      # not https
    ["https://github.com/alice"],                         # no repository
    ["https://github.com/alice/snn/tree/main"],           # a page, not the repository
    ["github.com/alice/snn"],
    ["https://github.com/alice/snn course"],
    [FORK, "--branch", "a b"],
    [FORK, "--branch", "main:evil"],
    [FORK, "--branch", "../main"],
])
def test_bad_input_changes_nothing_and_says_why_in_one_line(book, args):
    before = snapshot(book)
    done = run(book, *args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("set_repository.py: ")
    assert snapshot(book) == before


def test_a_chapter_without_the_install_line_changes_nothing(book):
    """All files are checked before any is written: one bad chapter leaves every file as it was."""
    last = chapters(book)[-1]
    last.write_text(last.read_text().replace("%pip install -q git+", "%pip install -q "))
    before = snapshot(book)
    done = run(book, FORK)
    assert done.returncode == 1
    assert last.name in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert snapshot(book) == before
