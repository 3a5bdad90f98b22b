"""Progress bars (tqdm's), the same in a terminal and a notebook, and off where they would only
clutter: where ``$TQDM_DISABLE`` is set (tqdm's own variable, which its notebook bars do not read
by themselves; the book's build sets it) and on the processes of a data-parallel run other than 0.
"""

from __future__ import annotations

import os

from tqdm.auto import tqdm


def progress(iterable=None, **kwargs) -> tqdm:
    """``tqdm.auto.tqdm(iterable, **kwargs)``, disabled as the module docstring says."""
    off = os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false") or os.environ.get("RANK", "0") != "0"
    return tqdm(iterable, **{**kwargs, "disable": off or kwargs.get("disable", False)})


__all__ = ["progress"]
