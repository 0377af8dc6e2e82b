"""Sphinx extension for building the course site; ``_config.yml`` registers it.

Two things the build needs that configuration alone cannot say:

* **Progress bars print once.** The build runs every notebook non-interactively and renders
  what the cells printed. A text progress bar redraws itself with carriage returns, which a
  static page cannot replay: every redraw would become a line. Before any notebook runs, this
  tells tqdm (through its ``TQDM_*`` environment defaults, inherited by the kernels) not to draw
  until the bar is finished, so a page shows each bar once, in its final state.
* **Threads wait passively.** ``OMP_WAIT_POLICY=PASSIVE`` for the kernels: PyTorch's OpenMP
  threads otherwise spin while waiting, which stalls them on cores shared with other work.
* **Executed notebooks are cached per scale and per helpers version.** Jupyter Book's cache
  keys on a notebook's code only, so a page executed at ``smoke`` scale would be reused by a
  ``cpu``-scale build, and outputs computed with old helpers by a build with new ones. The
  cache folder is therefore ``<cache>/<scale>-<hash of helpers/>``: a rebuild after editing one
  notebook re-executes only that notebook, and a change of scale or helpers re-executes all.

It also sets the theme's colour mode to ``auto`` where the theme leaves it empty, and drops
inline scripts that end up twice on every page (extensions such as sphinx-thebe
add them while the builder exists, and Sphinx keeps one copy in its registry and one in the
builder): thebe's second ``const THEBE_JS_URL`` is a script error in every browser
(``tests/test_site.py`` checks that the site's scripts log no errors).
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


def _page_context(app: Sphinx, pagename, templatename, context, doctree) -> None:
    # In place: the list is the builder's, and extensions that run later on this page (MathJax
    # on pages with maths) append to it.
    scripts, seen = [], set()
    for script in context.get("script_files", []):
        # The same inline script once with filename None, once with "" (Sphinx's registry
        # and its builder each keep a copy of a script added after the builder started).
        name = getattr(script, "filename", script) or ""
        key = (str(name), repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            scripts.append(script)
    context["script_files"][:] = scripts
    # The theme reads its colour mode from here; left empty, its script logs an error on
    # every page ("Got invalid theme mode") before falling back to "auto".
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


def setup(app: Sphinx) -> dict:
    os.environ.setdefault("TQDM_DELAY", "1e9")  # seconds before the first draw
    os.environ.setdefault("TQDM_MININTERVAL", "1e9")  # seconds between redraws
    # PyTorch's OpenMP threads spin while they wait for each other; on a machine whose cores
    # are busy with other work that made chapter 2's PyTorch page 10x slower. Sleep instead.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    app.connect("config-inited", _per_scale_cache)
    # Priority 1: before the theme's own handlers.
    app.connect("html-page-context", _page_context, priority=1)
    return {"version": "2", "parallel_read_safe": True, "parallel_write_safe": True}
