"""Check the built book (``_build/html``) for what a reader would see go wrong, page by page.

    python scripts/check_built_html.py              # after `jupyter-book build .`; exit 1 on a problem
    python scripts/check_built_html.py PATH/html    # another build

Every page under ``book/`` is checked for:

- **offline**: a script loaded from the network (a CDN), a MathJax script whose local file is not in
  the build, or math on a page that loads no MathJax;
- **raw TeX**: TeX (``\\beta``, ``\\(``, ``$$``, ``$x_1$``) in the page's text outside math markup,
  code and outputs: a formula that MyST did not turn into math and MathJax will not render;
- **long lines**: a line of code longer than ``CODE_CHARS`` or of output longer than
  ``OUTPUT_CHARS`` characters (it gets a scroll bar; the limits are explained below), the API
  page's code blocks (the library's docstrings) included;
- **missing images**: an ``<img>`` whose file is not in the build (or that is loaded from the network);
- **widgets**: embedded ipywidgets state or views (dead on a static page, and they pull the widget
  scripts from a CDN), tqdm progress bars among them or printed as text;

and every chapter page (``book/0N_*/``) must show at least one figure drawn from a real N-MNIST
recording: an image whose alt text, or whose figure caption, contains ``REAL_MARKER``
(``book/CONTRIBUTING.md`` says how a chapter sets either).

The line limits were measured with ``python scripts/measure_code_width.py`` (headless Chromium 156,
sphinx-book-theme 1.3.0 / pydata-sphinx-theme 0.17.1, chapter 2's page): code and outputs are set in
14 px monospace (DejaVu Sans Mono here, 8.43 px a character; Menlo, drawn from the same font, is
as wide, Consolas narrower). From a 1200-px-wide window up, the theme shows both sidebars and the column grows
with the window: a code cell's text area holds 66 characters at 1200 px, 73 at 1280, 81 at 1366 and
87 from 1440 px on, where the column stops growing (outputs: 68, 76, 84, 89). Below 1200 px the
right sidebar folds away and the column is wider again (81 characters at 1024 px). The limits are
those of a 1280-px window, a common laptop screen: 73 characters of code (``book/CONTRIBUTING.md``
asks for about 72) and 76 of output.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import unquote, urlparse

from bs4 import BeautifulSoup, Tag

CODE_CHARS = 73          # a line of a code cell (or any code block) fits in 622 px at 8.43 px a character
OUTPUT_CHARS = 76        # a line of a cell's output fits in 644 px
REAL_MARKER = "real N-MNIST"

# TeX left in prose: a command (\beta), a delimiter \( \) \[ \], $$, or $...$ holding ^ _ { } or a backslash.
RAW_TEX = re.compile(r"\\[A-Za-z]{2,}|\\[()\[\]]|\$\$|\$[^$\n]*[\\^_{}][^$\n]*\$")
TQDM_TEXT = re.compile(r"\d+%\|[^|\n]*\|\s*\d+/\d+")
NOT_PROSE = {"script", "style", "pre", "code", "textarea", "kbd", "samp"}
MATH_CLASSES = {"math", "MathJax", "mjx-container"}
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _remote(url: str) -> bool:
    return url.startswith("//") or urlparse(url).scheme in {"http", "https"}


def _local_file(src: str, page: Path, html_root: Path) -> Path | None:
    """The file a relative ``src`` of ``page`` names, if it exists inside ``html_root``."""
    path = (page.parent / unquote(src.split("#")[0].split("?")[0])).resolve()
    return path if path.is_file() and path.is_relative_to(html_root.resolve()) else None


def _main(soup: BeautifulSoup) -> Tag:
    return soup.find("article") or soup.body or soup


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= width else text[:width - 3] + "...")


def check_offline(soup: BeautifulSoup, page: Path, html_root: Path) -> list[str]:
    problems = []
    mathjax = []
    for script in soup.find_all("script", src=True):
        src = script["src"]
        if "mathjax" in src.lower():
            mathjax.append(src)
        if _remote(src):
            problems.append(f"offline: a script is loaded from the network: {src}")
        elif "mathjax" in src.lower() and _local_file(src, page, html_root) is None:
            problems.append(f"offline: MathJax script {src} is not in the build")
    if soup.select(".math") and not mathjax:
        problems.append("offline: the page has math but loads no MathJax")
    return problems


def check_raw_tex(soup: BeautifulSoup) -> list[str]:
    problems = []
    for text in _main(soup).find_all(string=True):
        parents = list(text.parents)
        if any(p.name in NOT_PROSE or MATH_CLASSES & set(p.get("class") or []) for p in parents):
            continue
        match = RAW_TEX.search(text)                     # one problem per piece of text
        if match:
            start = max(0, match.start() - 25)
            problems.append(f"raw TeX outside math markup: {_short(text[start:match.end() + 25])}")
    return problems


def check_long_lines(soup: BeautifulSoup) -> list[str]:
    problems = []
    for pre in _main(soup).find_all("pre"):
        output = pre.find_parent(class_="cell_output") is not None
        limit, kind = (OUTPUT_CHARS, "output") if output else (CODE_CHARS, "code")
        for line in pre.get_text().split("\n"):
            width = len(line.expandtabs(8).rstrip())
            if width > limit:
                problems.append(f"long line: {width} > {limit} characters of {kind}: {_short(line, 60)}")
    return problems


def check_images(soup: BeautifulSoup, page: Path, html_root: Path) -> list[str]:
    problems = []
    for img in soup.find_all("img"):
        src = img.get("src", "")
        if src.startswith("data:") or (not src and img.get("id", "").startswith("_anim_img")):
            continue                      # inline, or a matplotlib animation's frame (set by its script)
        if not src:
            problems.append("missing image: an <img> without src")
        elif _remote(src):
            problems.append(f"missing image: {src} is loaded from the network")
        elif _local_file(src, page, html_root) is None:
            problems.append(f"missing image: {src} is not in the build")
    return problems


def check_widgets(soup: BeautifulSoup) -> list[str]:
    problems = []
    for script in soup.find_all("script", type=WIDGET_STATE):
        try:
            models = json.loads(script.string or "{}").get("state", {})
        except json.JSONDecodeError:
            models = {}
        names = Counter(m.get("model_name", "?") for m in models.values())
        if "FloatProgressModel" in names:
            problems.append(f"widgets: {names['FloatProgressModel']} tqdm progress bar(s) embedded "
                            "(ipywidgets FloatProgress)")
        shown = ", ".join(f"{n} x{c}" for n, c in sorted(names.items())
                          if n not in {"LayoutModel", "FloatProgressModel"} and not n.endswith("StyleModel"))
        problems.append(f"widgets: widget state embedded ({len(models)} models: {shown})")
    views = soup.find_all("script", type=WIDGET_VIEW)
    if views:
        problems.append(f"widgets: {len(views)} widget view(s) among the outputs (empty without a kernel)")
    for pre in _main(soup).find_all("pre"):
        if pre.find_parent(class_="cell_output") is not None and TQDM_TEXT.search(pre.get_text()):
            problems.append(f"widgets: a tqdm progress bar printed in an output: "
                            f"{_short(TQDM_TEXT.search(pre.get_text()).group(0))}")
    return problems


def check_real_recording(soup: BeautifulSoup) -> list[str]:
    for img in _main(soup).find_all("img"):
        figure = img.find_parent("figure")
        caption = figure.find("figcaption").get_text() if figure and figure.find("figcaption") else ""
        if REAL_MARKER in img.get("alt", "") or REAL_MARKER in caption:
            return []
    return [f"real recording: no figure marked {REAL_MARKER!r} (in its caption or alt text)"]


def is_chapter(page: Path, html_root: Path) -> bool:
    parts = page.relative_to(html_root).parts
    return len(parts) == 3 and parts[0] == "book" and re.fullmatch(r"0\d_.+", parts[1]) is not None


def check_page(page: Path, html_root: Path) -> list[str]:
    """Every problem of one built page, one line each (empty: the page is fine)."""
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    problems = check_offline(soup, page, html_root) + check_raw_tex(soup)
    problems += check_long_lines(soup)
    problems += check_images(soup, page, html_root) + check_widgets(soup)
    if is_chapter(page, html_root):
        problems += check_real_recording(soup)
    return problems


def book_pages(html_root: Path) -> list[Path]:
    """The built pages of the book's own files (``book/**.html``), chapters first."""
    return sorted((html_root / "book").rglob("*.html"), key=lambda p: (not is_chapter(p, html_root), str(p)))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    html_root = Path(args[0] if args else "_build/html")
    if not (html_root / "book").is_dir():
        print(f"{html_root}/book not found: build the book first (jupyter-book build .)", file=sys.stderr)
        return 2
    failed = 0
    for page in book_pages(html_root):
        problems = check_page(page, html_root)
        failed += bool(problems)
        for problem in problems:
            print(f"{page.relative_to(html_root)}: {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
