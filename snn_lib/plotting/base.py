"""What every figure of :mod:`snn_lib.plotting` shares: a Figure outside pyplot, tensors as
arrays, and animations saved as GIF or shown as HTML (no ffmpeg either way)."""

from __future__ import annotations

import io
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


def animation_html(anim: FuncAnimation) -> str:
    """The animation as self-contained HTML/JavaScript (plays in a built book without ffmpeg)."""
    return anim.to_jshtml(default_mode="loop")
