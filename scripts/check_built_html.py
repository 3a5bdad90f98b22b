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
(``book/CONTRIBUTING.md`` says how a chapter sets either), open with the common box (an admonition
titled "In this chapter" with **You will**, **Time:** and **You need:**) and link the glossary at
least once (a ``{term}`` role). On a chapter, the appendix and the introduction, the text a
reader sees (prose and cell outputs, not the code of cells) must hold no **process words**: talk
of the project rather than the subject (an issue, a target set or reached, "now" or "today", "as
first written", CI or test notes, machine paths such as ``/tmp/...``, a load average); see
``PROCESS_WORDS`` for the exact rules.

Where Chromium is installed (Debian: ``apt-get install chromium``; the check skips without it,
and ``--no-browser`` skips it on purpose), every page is also opened offline in headless
Chromium, driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``, no other
package needed), in a window ``NARROW_PX`` wide: it fails on a **console** error or an uncaught
exception, a **failed request** (every request to the network fails, as on a machine offline,
and so does a local file missing from the build), and a table or code block **wider than its
column** (or a page wider than the window, where the reader must scroll sideways).

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
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
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

# Process words: (name, pattern). Case matters where the pattern says so: "now" is caught in
# lower case only, so a sentence that starts "Now train..." (the lesson's own time) passes while
# "`small_real.yaml` now holds it" (the project's history) fails. A "target" fails only as a goal
# set, reached or missed, not as a neuron's or a loss's target.
PROCESS_WORDS = [
    ("issue", re.compile(r"\bissues?\s*#?\d+\b|\b(?:this|our) issue\b|\bthe issue's\b|\bin the issue\b", re.I)),
    ("target", re.compile(r"\btargets? (?:set\b|(?:is |was |were |are )?(?:not )?(?:reached|met|missed)\b)"
                          r"|\b(?:chapter|course|project|issue)'s target\b|\btarget (?:set )?for this (?:chapter|course)\b",
                          re.I)),
    ("now", re.compile(r"(?<![\w-])now\b")),
    ("today", re.compile(r"\btoday\b", re.I)),
    ("as first written", re.compile(r"\bas (?:first|originally) written\b", re.I)),
    ("CI or test note", re.compile(r"\bCI\b|\bcontinuous integration\b|\btests?/test_\w+|\bpytest\b|\bnbmake\b")),
    ("machine path", re.compile(r"(?<![\w.~])/(?:tmp|root|home|Users|work|var/folders)/|\b[A-Z]:\\Users\\")),
    ("load average", re.compile(r"\bload averages?\b", re.I)),
]
# Exact phrases that contain a process word but are ordinary prose.
PROCESS_ALLOWED = ("now and then",)
OPENING_BOX = "In this chapter"
OPENING_PARTS = ("You will", "Time:", "You need:")
GLOSSARY_LINK = re.compile(r"(^|/)next_steps\.html#term-")
NARROW_PX = 400          # a phone held upright


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


def reader_text(soup: BeautifulSoup) -> str:
    """The text a reader sees in the page's article: prose and cell outputs, without the code of
    cells (code is checked for width, not for words) and without scripts."""
    main = BeautifulSoup(str(_main(soup)), "html.parser")
    for tag in main.find_all(["script", "style"]) + main.find_all(class_="cell_input"):
        tag.decompose()
    return " ".join(main.get_text(" ").split())


def check_process_words(soup: BeautifulSoup) -> list[str]:
    text = reader_text(soup)
    for phrase in PROCESS_ALLOWED:
        text = text.replace(phrase, " " * len(phrase))
    problems = []
    for name, pattern in PROCESS_WORDS:
        for match in pattern.finditer(text):
            start = max(0, match.start() - 35)
            problems.append(f"process words ({name}): {_short(text[start:match.end() + 35], 80)}")
    return problems


def check_opening_box(soup: BeautifulSoup) -> list[str]:
    for box in _main(soup).find_all(class_="admonition"):
        title = box.find(class_="admonition-title")
        if title and title.get_text(strip=True) == OPENING_BOX:
            text = box.get_text(" ")
            missing = [part for part in OPENING_PARTS if part not in text]
            return [f"opening box: {OPENING_BOX!r} lacks {', '.join(missing)}"] if missing else []
    return [f"opening box: no admonition {OPENING_BOX!r} (objectives, time, prerequisites)"]


def check_glossary_link(soup: BeautifulSoup) -> list[str]:
    if any(GLOSSARY_LINK.search(a.get("href", "")) for a in _main(soup).find_all("a")):
        return []
    return ["glossary: no link to a glossary term ({term} role) on a chapter"]


def is_chapter(page: Path, html_root: Path) -> bool:
    parts = page.relative_to(html_root).parts
    return len(parts) == 3 and parts[0] == "book" and re.fullmatch(r"0\d_.+", parts[1]) is not None


def is_lesson(page: Path, html_root: Path) -> bool:
    """A page a learner reads as text: a chapter, the appendix (``book/experiments/``) or the
    introduction."""
    parts = page.relative_to(html_root).parts
    return is_chapter(page, html_root) or parts[:2] == ("book", "experiments") or parts == ("book", "intro.html")


def check_page(page: Path, html_root: Path) -> list[str]:
    """Every problem of one built page that its HTML shows, one line each (empty: the page is
    fine). What only a browser sees is :func:`check_in_browser`'s."""
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    problems = check_offline(soup, page, html_root) + check_raw_tex(soup)
    problems += check_long_lines(soup)
    problems += check_images(soup, page, html_root) + check_widgets(soup)
    if is_chapter(page, html_root):
        problems += check_real_recording(soup) + check_opening_box(soup) + check_glossary_link(soup)
    if is_lesson(page, html_root):
        problems += check_process_words(soup)
    return problems


# ---------------------------------------------------------------- in headless Chromium, offline

# Run in the page once it has loaded: what is wider than it should be at this window's width.
MEASURE_WIDTHS = """(() => {
  const out = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > doc.clientWidth + 1)
    out.push(`page: ${doc.scrollWidth} px wide in a ${doc.clientWidth} px window`);
  const article = document.querySelector('article') || document.body;
  const column = article.getBoundingClientRect();
  const name = el => JSON.stringify((el.innerText || '').trim().split('\\n')[0].slice(0, 50));
  for (const table of article.querySelectorAll('table')) {
    const width = Math.max(table.scrollWidth, table.getBoundingClientRect().width);
    if (width > column.width + 1)
      out.push(`table ${Math.round(width)} px wide in a ${Math.round(column.width)} px column: ${name(table)}`);
  }
  for (const block of article.querySelectorAll('div.highlight, pre')) {
    const box = block.getBoundingClientRect();
    if (box.width > column.width + 1 || box.right > column.right + 1)
      out.push(`code block ${Math.round(box.width)} px wide in a ${Math.round(column.width)} px column: ${name(block)}`);
  }
  return out;
})()"""


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe: commands go in on the
    browser's file descriptor 3 and replies and events come out on 4, each a JSON message ended
    by a NUL byte. Every request to the network goes to a proxy that does not exist, so a page
    sees what it would offline."""

    def __init__(self, binary: str, timeout_s: float = 60.0):
        self.timeout_s = timeout_s
        self._profile = tempfile.TemporaryDirectory(prefix="check_html_")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def on_fds_3_and_4():                    # in the child, before exec
            a, b = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-extensions", "--disable-sync",
             "--hide-scrollbars", "--mute-audio", f"--user-data-dir={self._profile.name}",
             "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
             "--remote-debugging-pipe", "about:blank"],
            preexec_fn=on_fds_3_and_4, close_fds=False,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def close(self) -> None:
        try:
            self.send("Browser.close", wait=False)
        except OSError:
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        self._profile.cleanup()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def _read(self, deadline: float) -> dict | None:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                return None
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise OSError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: str | None = None, wait: bool = True, **params) -> dict:
        """Send one command; with ``wait``, return its result (events that arrive meanwhile are
        kept in ``events``)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while wait:
            reply = self._read(deadline)
            if reply is None:
                raise TimeoutError(f"Chromium did not answer {method} in {self.timeout_s:.0f} s")
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self.events.append(reply)
        return {}

    def wait_for(self, method: str | None, session: str, seconds: float) -> bool:
        """Collect events for up to ``seconds``; True once ``method`` has arrived for ``session``
        (``None``: collect for the whole time)."""
        deadline = time.monotonic() + seconds
        while True:
            if method and any(e.get("method") == method and e.get("sessionId") == session for e in self.events):
                return True
            event = self._read(deadline)
            if event is None:
                return False
            self.events.append(event)

    def open(self, url: str, width: int, height: int = 900, settle_s: float = 1.0) -> tuple[str, str]:
        """A new tab of ``width`` x ``height`` px showing ``url`` once loaded (and ``settle_s``
        more for the page's own scripts): (target id, session id)."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.send(f"{domain}.enable", session)
        self.send("Emulation.setDeviceMetricsOverride", session, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.events.clear()
        self.send("Page.navigate", session, url=url)
        self.wait_for("Page.loadEventFired", session, self.timeout_s)
        self.wait_for(None, session, settle_s)
        return target, session

    def evaluate(self, session: str, expression: str):
        result = self.send("Runtime.evaluate", session, expression=expression, returnByValue=True,
                           awaitPromise=True)
        return result.get("result", {}).get("value")


def _console_and_requests(events: list[dict], session: str) -> list[str]:
    """Console errors, uncaught exceptions and failed requests among a tab's events."""
    problems, urls = [], {}
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            url = urls.get(params.get("requestId"), "?")
            problems.append(f"failed request: {_short(url, 90)} ({params.get('errorText')})")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            problems.append(f"console: uncaught {_short(text.splitlines()[0] if text else '?', 100)}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in {"error", "assert"}:
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            problems.append(f"console: error {_short(text, 100)}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            if entry.get("source") != "network":                # the same as Network.loadingFailed
                problems.append(f"console: {_short(entry.get('text', ''), 100)}")
    return list(dict.fromkeys(problems))


def check_in_browser(pages: list[Path], width: int = NARROW_PX, binary: str | None = None) -> dict[Path, list[str]]:
    """Open each page offline in headless Chromium, ``width`` px wide: its console errors,
    failed requests and what is wider than its column (see the module's docstring). Empty when
    Chromium is not installed."""
    binary = binary or find_chromium()
    if binary is None or not pages:
        return {}
    found = {}
    with Chromium(binary) as browser:
        for page in pages:
            target, session = browser.open(page.resolve().as_uri(), width)
            problems = _console_and_requests(browser.events, session)
            problems += [f"too wide at {width} px: {line}"
                         for line in browser.evaluate(session, MEASURE_WIDTHS) or []]
            browser.send("Target.closeTarget", targetId=target)
            found[page] = problems
    return found


def book_pages(html_root: Path) -> list[Path]:
    """The built pages of the book's own files (``book/**.html``), chapters first."""
    return sorted((html_root / "book").rglob("*.html"), key=lambda p: (not is_chapter(p, html_root), str(p)))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    browser = "--no-browser" not in args
    args = [a for a in args if a != "--no-browser"]
    html_root = Path(args[0] if args else "_build/html")
    if not (html_root / "book").is_dir():
        print(f"{html_root}/book not found: build the book first (jupyter-book build .)", file=sys.stderr)
        return 2
    pages = book_pages(html_root)
    seen = {}
    if browser:
        if find_chromium() is None:
            print("no Chromium found: the checks in a browser are skipped "
                  "(Debian: apt-get install chromium)", file=sys.stderr)
        else:
            seen = check_in_browser(pages)
    failed = 0
    for page in pages:
        problems = check_page(page, html_root) + seen.get(page, [])
        failed += bool(problems)
        for problem in problems:
            print(f"{page.relative_to(html_root)}: {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
