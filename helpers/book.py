"""Sphinx extension for building the course site; ``_config.yml`` registers it.

The build runs every notebook non-interactively and renders what the cells printed. A text
progress bar redraws itself with carriage returns, which a static page cannot replay: every
redraw would become a line. Before any notebook runs, this tells tqdm (through its ``TQDM_*``
environment defaults, inherited by the kernels) not to draw until the bar is finished, so a page
shows each bar once, in its final state. Interactive sessions are unaffected.
"""

from __future__ import annotations

import os

from sphinx.application import Sphinx

__all__ = ["setup"]


def setup(app: Sphinx) -> dict:
    os.environ.setdefault("TQDM_DELAY", "1e9")  # seconds before the first draw
    os.environ.setdefault("TQDM_MININTERVAL", "1e9")  # seconds between redraws
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
