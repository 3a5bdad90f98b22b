"""What every figure of :mod:`snn_lib.plotting` shares: a Figure outside pyplot, tensors as
arrays, and animations saved as GIF or shown as HTML (no ffmpeg either way)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import torch
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..files import atomic_write


def new_figure(width: float = 5, height: float = 3.2) -> Figure:
    """A Figure outside pyplot's registry (nothing to close, nothing shown twice)."""
    return Figure(figsize=(width, height), layout="constrained")


def _freeze_layout(fig: Figure) -> None:
    """Lay the figure out once and keep that layout: an animation's frames then skip the layout
    engine, which otherwise reruns for every saved frame (most of a GIF's cost)."""
    engine = fig.get_layout_engine()
    if engine is not None:
        FigureCanvasAgg(fig)
        engine.execute(fig)
        fig.set_layout_engine("none")


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """A figure as PNG, written atomically (rendered in memory, then :func:`snn_lib.files.atomic_write`):
    the one way the library writes a figure file, so a stopped run never leaves half an image."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return atomic_write(path, buffer.getvalue())


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def save_gif(anim: FuncAnimation, path: str | Path, fps: int = 10) -> Path:
    """Save an animation as a GIF with Pillow (no ffmpeg needed)."""
    path = Path(path)
    anim.save(path, writer=PillowWriter(fps=fps))
    return path


# The buttons of matplotlib's JavaScript player are Font Awesome icons (<i class="fa fa-play">),
# whose stylesheet it links from a CDN: offline, or on a page that blocks it, that is a failed
# request and the buttons are blank. animation_html drops the link and draws each icon as a small
# inline SVG instead (paths in a 16 x 16 box, filled with the button's text colour): the HTML then
# requests nothing, and the buttons draw the same in a built page, Jupyter and Colab.
_FONT_AWESOME_LINK = re.compile(r'<link rel="stylesheet"\s+href="[^"]*font-awesome[^"]*">\s*')
_FA_ICON = re.compile(r'<i class="fa fa-([a-z-]+)(?: fa-flip-horizontal)?"></i>')
_ICON_PATHS = {
    "minus": "M2 7h12v2H2z",
    "plus": "M7 2h2v5h5v2H9v5H7V9H2V7h5z",
    "play": "M4 2l10 6-10 6z",
    "pause": "M3 2h4v12H3zM9 2h4v12H9z",
    "step-forward": "M3 2l8 6-8 6zM11 2h2v12h-2z",
    "step-backward": "M13 2L5 8l8 6zM3 2h2v12H3z",
    "fast-forward": "M1 2l6 6-6 6zM7 2l6 6-6 6zM13 2h2v12h-2z",
    "fast-backward": "M15 2L9 8l6 6zM9 2L3 8l6 6zM1 2h2v12H1z",
    "play-backwards": "M12 2L2 8l10 6z",
}


def _svg_icon(match: re.Match) -> str:
    name = "play-backwards" if "flip-horizontal" in match.group(0) else match.group(1)
    return (f'<svg viewBox="0 0 16 16" width="1em" height="1em" fill="currentColor" aria-hidden="true">'
            f'<path d="{_ICON_PATHS[name]}"/></svg>')


def animation_html(anim: FuncAnimation, start_frame: int | None = None) -> str:
    """The animation as self-contained HTML/JavaScript: plays in a built book without ffmpeg and
    makes no network request (its buttons are inline SVG, see above).

    The player shows ``start_frame`` until play is pressed (negative counts from the end); by
    default the animation's ``poster_frame`` attribute where its function set one (the last frame
    of :func:`~snn_lib.plotting.training.animate_spike_counts`, whose first frame is still empty),
    else the first frame.
    """
    html = anim.to_jshtml(default_mode="loop")
    html = _FA_ICON.sub(_svg_icon, _FONT_AWESOME_LINK.sub("", html))
    start = getattr(anim, "poster_frame", 0) if start_frame is None else start_frame
    if start:
        frames = int(re.search(r"var frames = new Array\((\d+)\)", html).group(1))
        html = re.sub(r"(anim(\w+) = new Animation\([^;]*\);)",
                      lambda m: f"{m.group(1)}\n        anim{m.group(2)}.set_frame({start % frames});", html, count=1)
    return html
