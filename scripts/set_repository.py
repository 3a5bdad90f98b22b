"""Point the book at a repository: the Colab buttons, every chapter's install cell, the clone command.

    python scripts/set_repository.py https://github.com/OWNER/REPO                 # keeps the branch
    python scripts/set_repository.py https://github.com/OWNER/REPO --branch main

rewrites, consistently:

- ``_config.yml``: ``repository.url`` and ``repository.branch`` (Jupyter Book builds the Colab
  buttons from them: Colab opens ``OWNER/REPO/blob/BRANCH/<chapter>.ipynb``);
- the first code cell of every chapter, in the jupytext ``.md`` and in its paired ``.ipynb``:
  ``%pip install -q git+URL@BRANCH``, so that the library Colab installs comes from the branch
  whose notebook Colab opened;
- ``book/intro.md``'s ``git clone URL && cd REPO`` and the first cell shown in ``book/CONTRIBUTING.md``.

Each file is edited line by line (comments, formatting and the notebooks' JSON layout are kept),
all files are checked before any is written, and a second run changes nothing. The book workflow
(``.github/workflows/book.yml``) runs it with the repository it runs in, so a fork publishes a book
that installs from the fork. Standard library only: it runs before anything is installed.

Exit status: 0 done (or nothing to change), 2 a bad URL or branch (nothing changed), 1 a file that
does not hold the line this script rewrites (nothing changed).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROG = "set_repository.py"

# GitHub's rules: an owner is letters, digits and hyphens (at most 39, not first); a repository name
# is letters, digits, '.', '-' and '_'. Colab opens notebooks from github.com only.
URL_RE = re.compile(r"https://github\.com/(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))"
                    r"/(?P<repo>[A-Za-z0-9._-]+?)(?:\.git)?/?")
# A branch name that is safe unquoted in YAML, after `@` in a pip requirement and in a URL.
BRANCH_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(?:/[A-Za-z0-9_][A-Za-z0-9._-]*)*")

INSTALL_RE = re.compile(r"^(?P<indent>[ \t]*)%pip install -q git\+\S+$", re.MULTILINE)
CLONE_RE = re.compile(r"^git clone \S+ && cd \S+$", re.MULTILINE)
CODE_CELL_RE = re.compile(r"^```\{code-cell\}[^\n]*\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
CONFIG_KEY_RE = r"^(?P<head>[ \t]+{key}:[ \t]*)(?P<value>[^\s#]+)(?P<tail>[ \t]*(?:#.*)?)$"


class ProjectError(Exception):
    """A file does not hold the line this script rewrites."""


def parse_url(url: str) -> tuple[str, str]:
    """``https://github.com/OWNER/REPO`` (a trailing ``/`` or ``.git`` dropped) -> (that URL, REPO)."""
    m = URL_RE.fullmatch(url.strip())
    if not m or m["repo"] in {".", ".."}:
        raise ValueError(f"{url!r} is not a GitHub repository address; expected "
                         "https://github.com/OWNER/REPO (Colab installs and opens notebooks from github.com)")
    return f"https://github.com/{m['owner']}/{m['repo']}", m["repo"]


def check_branch(branch: str) -> str:
    if not BRANCH_RE.fullmatch(branch) or ".." in branch or branch.endswith((".", ".lock")):
        raise ValueError(f"--branch {branch!r} is not a branch name this script accepts; use letters, "
                         "digits, '.', '-', '_' and '/' (e.g. main)")
    return branch


def install_line(url: str, branch: str) -> str:
    return f"%pip install -q git+{url}@{branch}"


def _replace_one(text: str, pattern: re.Pattern, new: str, where: str, what: str,
                 start: int = 0, end: int | None = None) -> str:
    """``text`` with the one match of ``pattern`` in ``text[start:end]`` replaced by ``new``
    (which may name the match's groups, e.g. ``\\g<indent>``)."""
    end = len(text) if end is None else end
    matches = list(pattern.finditer(text, start, end))
    if len(matches) != 1:
        raise ProjectError(f"{where}: expected one {what}, found {len(matches)}")
    m = matches[0]
    return text[:m.start()] + m.expand(new) + text[m.end():]


def _repository_block(text: str, where: str) -> tuple[int, int]:
    """Where the lines under ``_config.yml``'s top-level ``repository:`` start and end."""
    block = re.search(r"^repository:[ \t]*(?:#.*)?\n(?P<body>(?:[ \t]+.*\n|[ \t]*\n)*)", text, re.MULTILINE)
    if not block:
        raise ProjectError(f"{where}: no top-level `repository:` block")
    return block.start("body"), block.end("body")


def rewrite_config(text: str, url: str, branch: str | None, where: str) -> tuple[str, str]:
    """``_config.yml``'s text with ``repository.url`` (and ``.branch``) set -> (text, branch)."""
    url_re, branch_re = (re.compile(CONFIG_KEY_RE.format(key=key), re.MULTILINE) for key in ("url", "branch"))
    if branch is None:                # keep the configured branch
        found = branch_re.search(text, *_repository_block(text, where))
        if not found:
            raise ProjectError(f"{where}: no `branch:` under `repository:`; pass --branch")
        try:
            branch = check_branch(found["value"].strip("'\""))
        except ValueError as e:
            raise ProjectError(f"{where}: repository.branch: {e}") from None
    text = _replace_one(text, url_re, rf"\g<head>{url}\g<tail>", where, "`url:` under `repository:`",
                        *_repository_block(text, where))
    text = _replace_one(text, branch_re, rf"\g<head>{branch}\g<tail>", where,
                        "`branch:` under `repository:`", *_repository_block(text, where))
    return text, branch


def rewrite_chapter_md(text: str, new_line: str, where: str) -> str:
    """The install line of the first ``{code-cell}`` of a jupytext MyST chapter."""
    cell = CODE_CELL_RE.search(text)
    if not cell:
        raise ProjectError(f"{where}: no code cell")
    return _replace_one(text, INSTALL_RE, rf"\g<indent>{new_line}", where,
                        "`%pip install -q git+...` line in the first code cell",
                        cell.start("body"), cell.end("body"))


def rewrite_chapter_ipynb(text: str, new_line: str, where: str) -> str:
    """The install line of the first code cell of a notebook, edited in the JSON text itself so
    that the file keeps its layout (the jupytext pair is rewritten the same way)."""
    try:
        cells = json.loads(text)["cells"]
    except (ValueError, KeyError, TypeError) as e:
        raise ProjectError(f"{where}: not a notebook ({e})") from None
    first = next((c for c in cells if c.get("cell_type") == "code"), None)
    if first is None:
        raise ProjectError(f"{where}: no code cell")
    source = "".join(first["source"]) if isinstance(first["source"], list) else first["source"]
    old = [m.group(0) for m in INSTALL_RE.finditer(source)]
    if len(old) != 1:
        raise ProjectError(f"{where}: expected one `%pip install -q git+...` line in the first code "
                           f"cell, found {len(old)}")
    new = INSTALL_RE.sub(lambda m: m["indent"] + new_line, old[0])
    escaped_old, escaped_new = json.dumps(old[0])[1:-1], json.dumps(new)[1:-1]
    if text.count(escaped_old) != 1:
        raise ProjectError(f"{where}: the install line {old[0].strip()!r} appears "
                           f"{text.count(escaped_old)} times; expected once")
    return text.replace(escaped_old, escaped_new)


def planned_changes(root: Path, url: str, repo: str, branch: str | None) -> tuple[str, dict[Path, str]]:
    """Every file's new text (unchanged files included) -> (branch, {path: text}); writes nothing."""
    config = root / "_config.yml"
    if not config.is_file():
        raise ProjectError(f"{config}: not found; run from the repository or pass --root")
    new: dict[Path, str] = {}
    new[config], branch = rewrite_config(config.read_text(), url, branch, str(config))
    line = install_line(url, branch)
    chapters = sorted((root / "book").glob("*/*.md"))
    if not chapters:
        raise ProjectError(f"{root / 'book'}: no chapters book/NN_slug/slug.md")
    for md in chapters:
        ipynb = md.with_suffix(".ipynb")
        if not ipynb.is_file():
            raise ProjectError(f"{md}: no paired {ipynb.name}; run `jupytext --to ipynb {md}`")
        new[md] = rewrite_chapter_md(md.read_text(), line, str(md))
        new[ipynb] = rewrite_chapter_ipynb(ipynb.read_text(), line, str(ipynb))
    intro = root / "book" / "intro.md"
    new[intro] = _replace_one(intro.read_text(), CLONE_RE, f"git clone {url} && cd {repo}",
                              str(intro), "`git clone URL && cd REPO` line")
    contributing = root / "book" / "CONTRIBUTING.md"
    new[contributing] = _replace_one(contributing.read_text(), INSTALL_RE, rf"\g<indent>{line}",
                                     str(contributing), "`%pip install -q git+...` line")
    return branch, new


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)                 # atomic: an interrupted run leaves each file whole


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="https://github.com/OWNER/REPO")
    parser.add_argument("--branch", help="the branch the book is built from (default: the one in _config.yml)")
    parser.add_argument("--root", type=Path, default=REPO, help="the repository to rewrite (default: this one)")
    args = parser.parse_args(argv)
    try:
        url, repo = parse_url(args.url)
        branch = None if args.branch is None else check_branch(args.branch)
    except ValueError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    root = args.root.resolve()
    try:
        branch, new = planned_changes(root, url, repo, branch)
    except (ProjectError, OSError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    changed = [path for path, text in new.items() if path.read_text() != text]
    for path in changed:
        _write(path, new[path])
    where = f"{url}@{branch}"
    if changed:
        print(f"{PROG}: {len(changed)} files now point at {where}:")
        for path in changed:
            print(f"  {path.relative_to(root)}")
    else:
        print(f"{PROG}: all {len(new)} files already point at {where}; nothing changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
