"""Sphinx extension for building the course site; ``_config.yml`` registers it.

Two things the build needs that configuration alone cannot say:

* **Progress bars print once.** The build runs every notebook non-interactively and renders
  what the cells printed. A text progress bar redraws itself with carriage returns, which a
  static page cannot replay: every redraw would become a line. Before any notebook runs, this
  tells tqdm (through its ``TQDM_*`` environment defaults, inherited by the kernels) not to draw
  until the bar is finished, so a page shows each bar once, in its final state.
* **Executed notebooks are cached per scale and per helpers version.** Jupyter Book's cache
  keys on a notebook's code only, so a page executed at ``smoke`` scale would be reused by a
  ``cpu``-scale build, and outputs computed with old helpers by a build with new ones. The
  cache folder is therefore ``<cache>/<scale>-<hash of helpers/>``: a rebuild after editing one
  notebook re-executes only that notebook, and a change of scale or helpers re-executes all.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config

from helpers.scale import current_scale

__all__ = ["cache_key", "setup"]

HELPERS = Path(__file__).resolve().parent


def cache_key(scale: str | None = None) -> str:
    """``"<scale>-<12 hex digits>"``: the scale and a hash of every helpers source file."""
    digest = hashlib.sha256()
    for path in sorted(HELPERS.rglob("*.py")):
        digest.update(path.relative_to(HELPERS).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{current_scale() if scale is None else scale}-{digest.hexdigest()[:12]}"


def _per_scale_cache(app: Sphinx, config: Config) -> None:
    base = config.nb_execution_cache_path or str(
        Path(app.outdir).parent / ".jupyter_cache"
    )
    config.nb_execution_cache_path = str(Path(base) / cache_key())


def setup(app: Sphinx) -> dict:
    os.environ.setdefault("TQDM_DELAY", "1e9")  # seconds before the first draw
    os.environ.setdefault("TQDM_MININTERVAL", "1e9")  # seconds between redraws
    app.connect("config-inited", _per_scale_cache)
    return {"version": "2", "parallel_read_safe": True, "parallel_write_safe": True}
