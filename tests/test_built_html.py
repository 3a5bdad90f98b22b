"""The built book as a reader sees it (scripts/check_built_html.py): every page offline-ready, no raw
TeX, no line wider than the column, no missing image, no embedded widget or progress bar; in every
chapter a figure of a real N-MNIST recording, the opening box and a glossary link; no process words
on a lesson page; and, where Chromium is installed, no console error, failed request or table or
code block wider than its column when a page is opened offline at 400 px.

The page checks run on ``_build/html`` and skip when the book has not been built; run them after
the build (``SNN_FAST=1 jupyter-book build . -W -n --keep-going && pytest tests/test_built_html.py``).
A build older than the chapters is checked as it is: rebuild first. The other tests here feed each
check a small page of its own, so that each is seen to fail on what it looks for.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("bs4")                     # BeautifulSoup: installed with the book extra

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "_build" / "html"
sys.path.insert(0, str(REPO / "scripts"))

import check_built_html as check  # noqa: E402

PAGES = check.book_pages(BUILD) if (BUILD / "book").is_dir() else []


@pytest.mark.skipif(not PAGES, reason=f"the book is not built ({BUILD} has no book/): "
                                      "run jupyter-book build . first")
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(BUILD)) for p in PAGES])
def test_built_page(page):
    problems = check.check_page(page, BUILD)
    assert not problems, f"{page.relative_to(BUILD)}:\n  " + "\n  ".join(problems)


def test_every_chapter_of_the_toc_was_built():
    if not PAGES:
        pytest.skip("the book is not built")
    chapters = sorted(p.parent.name for p in PAGES if check.is_chapter(p, BUILD))
    assert chapters == sorted(p.name for p in (REPO / "book").glob("0[0-9]_*") if p.is_dir())


# ---------------------------------------------------------------- each check fails on what it looks for

def _page(tmp_path: Path, body: str, head: str = "", name: str = "book/01_x/x.html") -> tuple[Path, Path]:
    """A built page ``name`` under ``tmp_path`` (the html root) with ``head`` and ``body``."""
    page = tmp_path / name
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(f"<html><head>{head}</head><body><article>{body}</article></body></html>")
    return page, tmp_path


def _problems(tmp_path, body, head="", name="book/01_x/x.html") -> list[str]:
    return check.check_page(*_page(tmp_path, body, head, name))


# What every chapter needs besides its content: a figure of a real recording, the opening box and
# a link to the glossary.
OPENING_BOX = ('<div class="admonition tip"><p class="admonition-title">In this chapter</p>'
               '<p><strong>You will</strong> learn. <strong>Time:</strong> 40 minutes. '
               '<strong>You need:</strong> Python.</p></div>')
GLOSSARY = '<p>A <a class="reference internal" href="../next_steps.html#term-Spike"><span>spike</span></a>.</p>'
GOOD_FIGURE = ('<img alt="Events of a real N-MNIST recording" src="../../_images/a.png">'
               + OPENING_BOX + GLOSSARY)


@pytest.fixture
def html_root(tmp_path) -> Path:
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "a.png").write_bytes(b"png")
    (tmp_path / "_static" / "mathjax").mkdir(parents=True)
    (tmp_path / "_static" / "mathjax" / "tex-chtml.js").write_text("")
    return tmp_path


LOCAL_MATHJAX = '<script defer src="../../_static/mathjax/tex-chtml.js"></script>'


def test_a_good_page_passes(html_root):
    body = (f'<p>The decay <span class="math">\\(\\beta\\)</span> costs $5.</p>{GOOD_FIGURE}'
            '<div class="cell_input"><pre>x = 1</pre></div><div class="cell_output"><pre>1</pre></div>')
    assert _problems(html_root, body, LOCAL_MATHJAX) == []


def test_offline_mathjax_from_a_cdn_a_missing_file_or_none(html_root):
    math = f'<p><span class="math">\\(x\\)</span></p>{GOOD_FIGURE}'
    cdn = '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>'
    assert _problems(html_root, math, cdn) == [
        "offline: a script is loaded from the network: https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"]
    missing = '<script src="../../_static/mathjax/tex-svg.js"></script>'
    assert _problems(html_root, math, missing) == [
        "offline: MathJax script ../../_static/mathjax/tex-svg.js is not in the build"]
    assert _problems(html_root, math) == ["offline: the page has math but loads no MathJax"]


@pytest.mark.parametrize("text", ["the decay \\beta is", "a formula \\(x\\) left", "$$x = 1$$",
                                  "the rate $r_1$ of"])
def test_raw_tex_in_prose_is_found(html_root, text):
    problems = _problems(html_root, f"<p>{text}</p>{GOOD_FIGURE}")
    assert len(problems) == 1 and problems[0].startswith("raw TeX outside math markup")


def test_tex_in_math_markup_and_code_is_not_raw(html_root):
    body = ('<div class="math">\\[ \\tau \\frac{dU}{dt} \\]</div><pre>print("\\beta")</pre>'
            f'<p><code>a_b = "$x_1$"</code></p>{GOOD_FIGURE}')
    assert _problems(html_root, body, LOCAL_MATHJAX) == []


def test_lines_wider_than_the_column(html_root):
    code = "x" * (check.CODE_CHARS + 1)
    output = "y" * (check.OUTPUT_CHARS + 1)
    body = (f'<div class="cell_input"><pre>{"x" * check.CODE_CHARS}\n{code}</pre></div>'
            f'<div class="cell_output"><pre>{"y" * check.OUTPUT_CHARS}\n{output}</pre></div>{GOOD_FIGURE}')
    problems = _problems(html_root, body)
    assert [p.split(":")[1] for p in problems] == [
        f" {check.CODE_CHARS + 1} > {check.CODE_CHARS} characters of code",
        f" {check.OUTPUT_CHARS + 1} > {check.OUTPUT_CHARS} characters of output"]


def test_missing_and_remote_images(html_root):
    body = (f'{GOOD_FIGURE}<img src="../../_images/gone.png"><img src="https://example.org/x.png">'
            '<img src="data:image/png;base64,AAAA"><img id="_anim_img0123">')
    assert _problems(html_root, body) == [
        "missing image: ../../_images/gone.png is not in the build",
        "missing image: https://example.org/x.png is loaded from the network"]


def test_widget_state_views_and_progress_bars(html_root):
    state = {"version_major": 2, "version_minor": 0, "state": {
        "a": {"model_name": "FloatProgressModel", "state": {}},
        "b": {"model_name": "HBoxModel", "state": {}},
        "c": {"model_name": "LayoutModel", "state": {}}}}
    head = f'<script type="application/vnd.jupyter.widget-state+json">{json.dumps(state)}</script>'
    view = '<script type="application/vnd.jupyter.widget-view+json">{"model_id": "b"}</script>'
    bar = '<div class="cell_output"><pre>epoch 1: 100%|##########| 6/6 [00:02&lt;00:00]</pre></div>'
    problems = _problems(html_root, f'<div class="cell_output">{view}</div>{bar}{GOOD_FIGURE}', head)
    assert problems == [
        "widgets: 1 tqdm progress bar(s) embedded (ipywidgets FloatProgress)",
        "widgets: widget state embedded (3 models: HBoxModel x1)",
        "widgets: 1 widget view(s) among the outputs (empty without a kernel)",
        "widgets: a tqdm progress bar printed in an output: '100%|##########| 6/6'"]


def test_a_chapter_needs_a_figure_marked_as_real_but_other_pages_do_not(html_root):
    plain = '<img alt="a digit" src="../../_images/a.png">'
    assert _problems(html_root, plain + OPENING_BOX + GLOSSARY) == [
        "real recording: no figure marked 'real N-MNIST' (in its caption or alt text)"]
    captioned = ('<figure><img alt="_images/a.png" src="../../_images/a.png"><figcaption><p>'
                 'Two recordings of real N-MNIST digits</p></figcaption></figure>')
    assert _problems(html_root, captioned + OPENING_BOX + GLOSSARY) == []
    assert _problems(html_root, plain.replace("../../", "../"), name="book/intro.html") == []


def test_a_chapter_needs_the_opening_box_and_a_glossary_link(html_root):
    figure = '<img alt="Events of a real N-MNIST recording" src="../../_images/a.png">'
    assert _problems(html_root, figure + GLOSSARY) == [
        "opening box: no admonition 'In this chapter' (objectives, time, prerequisites)"]
    no_time = OPENING_BOX.replace("<strong>Time:</strong> 40 minutes. ", "")
    assert _problems(html_root, figure + no_time + GLOSSARY) == ["opening box: 'In this chapter' lacks Time:"]
    assert _problems(html_root, figure + OPENING_BOX) == [
        "glossary: no link to a glossary term ({term} role) on a chapter"]
    assert _problems(html_root, "<p>No box, no term.</p>", name="book/api.html") == []


@pytest.mark.parametrize("text, word", [
    ("The target set for this chapter, 99%, is not reached.", "target"),
    ("The target was not met.", "target"),
    ("the recipe (small_real.yaml now) above", "now"),
    ("with the commands (today: snn-train -m)", "today"),
    ("the recipe as first written", "as first written"),
    ("See issue 21.", "issue"),
    ("CI runs this in fast mode.", "CI or test note"),
    ("tests/test_book.py checks it", "CI or test note"),
    ("saved in /tmp/snn_ch5_x/last.pt", "machine path"),
    ("written to /root/exp/run", "machine path"),
    ("AMD EPYC, load average 4.7", "load average"),
])
def test_process_words_on_a_lesson_page(html_root, text, word):
    problems = _problems(html_root, f"<p>{text}</p>{GOOD_FIGURE}")
    assert [p.split(":")[0] for p in problems] == [f"process words ({word})"]
    appendix = _problems(html_root, f"<p>{text}</p>", name="book/experiments/running_experiments.html")
    assert [p.split(":")[0] for p in appendix] == [f"process words ({word})"]
    assert _problems(html_root, f"<p>{text}</p>", name="book/api.html") == []        # not a lesson page


@pytest.mark.parametrize("text", [
    "Now train the network.", "the grey pixels fire now and then", "the target neuron adds the weight",
    "mse_count (target counts)", "a spike at time t", "the loss targets the right class",
    "an issue with rate codes", "the logarithm of /1000", "CIFAR-10 and MNIST",
])
def test_ordinary_prose_is_not_process_words(html_root, text):
    assert _problems(html_root, f"<p>{text}</p>{GOOD_FIGURE}") == []


def test_process_words_in_outputs_count_but_not_in_code(html_root):
    code = '<div class="cell_input"><pre>path = "/tmp/x"  # now</pre></div>'
    output = '<div class="cell_output"><pre>saved to /tmp/x</pre></div>'
    assert _problems(html_root, code + GOOD_FIGURE) == []
    assert [p.split(":")[0] for p in _problems(html_root, output + GOOD_FIGURE)] == ["process words (machine path)"]


# ---------------------------------------------------------------- in headless Chromium, offline

CHROMIUM = check.find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed "
                                                            "(Debian: apt-get install chromium)")


@needs_chromium
def test_the_browser_finds_console_errors_failed_requests_and_wide_tables(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><head><script>const A = 1;</script><script>const A = 2;</script>'
                   '<link rel="stylesheet" href="https://cdn.example.org/icons.css"></head><body>'
                   '<article style="width: 300px"><table><tr><td>' + "x" * 80 + '</td></tr></table>'
                   '<div class="highlight" style="width: 500px"><pre>y = 1</pre></div>'
                   '<img src="gone.png"><script>console.error("boom")</script></article></body></html>')
    good = tmp_path / "good.html"
    good.write_text('<html><body><article><p>fine</p><table><tr><td>a</td></tr></table>'
                    '<div class="highlight"><pre style="overflow: auto">' + "z" * 200 + '</pre></div></article></body></html>')
    found = check.check_in_browser([bad, good], width=400, binary=CHROMIUM)
    assert found[good] == []                 # a long line scrolls inside its block: not too wide
    problems = "\n".join(found[bad])
    for expected in ["console: uncaught \"SyntaxError: Identifier 'A' has already been declared\"",
                     "failed request: 'https://cdn.example.org/icons.css'", "gone.png' (net::ERR_FILE_NOT_FOUND)",
                     "console: error 'boom'", "too wide at 400 px: page:",
                     "too wide at 400 px: table", "too wide at 400 px: code block 500 px"]:
        assert expected in problems, f"{expected!r} not in:\n{problems}"


@pytest.fixture(scope="module")
def seen_in_browser():
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    if not PAGES:
        pytest.skip("the book is not built")
    return check.check_in_browser(PAGES, binary=CHROMIUM)


@pytest.mark.skipif(not PAGES, reason="the book is not built")
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(BUILD)) for p in PAGES])
def test_built_page_in_a_browser_offline(page, seen_in_browser):
    problems = seen_in_browser[page]
    assert not problems, f"{page.relative_to(BUILD)} at {check.NARROW_PX} px, offline:\n  " + "\n  ".join(problems)
