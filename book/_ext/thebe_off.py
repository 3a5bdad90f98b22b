"""A Sphinx extension of this book: no thebe scripts on its pages.

Jupyter Book always loads sphinx-thebe, which adds an inline script declaring
``const THEBE_JS_URL`` when the build starts reading. That hook runs again when Sphinx builds the
page's scripts, so every page declared the constant twice and the browser's console showed
``Identifier 'THEBE_JS_URL' has already been declared``. The book has no thebe (live code on the
page: ``launch_buttons: thebe: false`` in ``_config.yml``; readers run chapters on Colab or in
Jupyter), so this extension unhooks sphinx-thebe's script set-up: no thebe script at all, nothing
declared, nothing requested. Listed under ``sphinx: local_extensions`` in ``_config.yml``.
"""

from __future__ import annotations

from sphinx.application import Sphinx


def _unhook_thebe_scripts(app: Sphinx) -> None:
    for listener in list(app.events.listeners.get("env-before-read-docs", [])):
        handler = listener.handler
        if (getattr(handler, "__module__", ""), getattr(handler, "__name__", "")) == (
                "sphinx_thebe", "init_thebe_core"):
            app.disconnect(listener.id)


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", _unhook_thebe_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
