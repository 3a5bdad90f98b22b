"""Measure, in headless Chromium, how many characters of code and of output fit on a line of a built
chapter page: the source of CODE_CHARS and OUTPUT_CHARS in scripts/check_built_html.py.

    python scripts/measure_code_width.py                         # chapter 2, windows from 1024 to 1920 px
    python scripts/measure_code_width.py _build/html/book/04_csnn/csnn.html --widths 1280

Needs a built book and Chromium (Debian: apt-get install chromium). The page is copied beside
itself with a script that measures the text width of the first code cell and the first output
(the element's width less its padding) and the width of a character of their font; all requests
to the network are refused (a proxy that does not exist), as on a machine offline.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

MEASURE = """<script>
window.addEventListener('load', () => {
  const out = [];
  for (const [name, sel] of [['code', 'div.cell_input pre'], ['output', 'div.cell_output pre']]) {
    const el = document.querySelector(sel);
    if (!el) { out.push(name + ': none'); continue; }
    const cs = getComputedStyle(el);
    const inner = el.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    const probe = document.createElement('span');
    probe.textContent = '0'.repeat(100);
    el.appendChild(probe);
    const char = probe.getBoundingClientRect().width / 100;
    probe.remove();
    out.push(`${name}: ${inner.toFixed(0)} px of ${cs.fontSize} ${cs.fontFamily.split(',')[0]}, `
             + `${char.toFixed(2)} px a character: ${Math.floor(inner / char)} characters`);
  }
  const result = document.createElement('div');
  result.id = 'measured';
  result.textContent = out.join(' | ');
  document.body.prepend(result);
});
</script>"""


def measure(page: Path, width: int, chromium: str) -> str:
    probe = page.with_name(f"_measure_{page.name}")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    try:
        with tempfile.TemporaryDirectory() as profile:
            dom = subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", f"--user-data-dir={profile}",
                 "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                 "--virtual-time-budget=5000", f"--window-size={width},1000", "--dump-dom",
                 probe.resolve().as_uri()],
                capture_output=True, text=True, timeout=120).stdout
    finally:
        probe.unlink()
    found = re.search(r'<div id="measured">([^<]*)', dom)
    return found.group(1) if found else "no measurement (did the page load?)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", nargs="?", default="_build/html/book/02_lif_neuron/lif_neuron.html")
    parser.add_argument("--widths", type=int, nargs="+", default=[1024, 1200, 1280, 1366, 1440, 1920])
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        raise SystemExit("measure_code_width: no Chromium found; install it (Debian: apt-get install chromium)")
    version = subprocess.run([chromium, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"{version}; page {args.page}")
    for width in args.widths:
        print(f"window {width} px: {measure(Path(args.page), width, chromium)}")


if __name__ == "__main__":
    main()
