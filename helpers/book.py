"""Sphinx extension for building the course site; ``_config.yml`` registers it.

Four things the build needs that configuration alone cannot say:

* **Progress bars print once.** The build runs every notebook non-interactively and renders
  what the cells printed. A text progress bar redraws itself with carriage returns, and the
  kernel sends the drawings in separate stream messages, which myst-nb's ``nb_merge_streams``
  (``_config.yml``) joins with newlines: every drawing would become a line. Before any
  notebook runs, this tells tqdm (through its ``TQDM_MININTERVAL`` environment default,
  inherited by the kernels) to draw a bar only when it starts, when it closes and when a cell
  asks (``set_postfix``), which keeps the stored notebooks small; then, on every page read,
  :func:`last_bar_drawings` keeps each bar's last drawing in the rendered stderr. (Not
  ``TQDM_DELAY``: a bar that has not drawn before it closes draws nothing at all.)
* **Threads wait passively.** ``OMP_WAIT_POLICY=PASSIVE`` for the kernels: PyTorch's OpenMP
  threads otherwise spin while waiting, which stalls them on cores shared with other work.
* **Notebooks execute in parallel.** Sphinx reads pages one at a time, and Jupyter Book's
  ``cache`` mode executes a notebook when its page is read, so a book of many notebooks runs
  them one after another. Before the pages are read, this executes every notebook the build
  will need and has not cached yet, ``BOOK_EXECUTE_WORKERS`` at a time (default 1), and stores
  each result in the same jupyter-cache the build then reads (same hash, same working folder,
  same timeout), so the reading step finds every notebook cached. A notebook that fails is left
  uncached: the build then executes it itself and reports the error as usual.
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
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config

from helpers.scale import current_scale

__all__ = [
    "KERNEL_ENVIRONMENT",
    "cache_key",
    "execute_workers",
    "last_bar_drawings",
    "setup",
]

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


def execute_workers() -> int:
    """How many notebooks the build executes at once: ``BOOK_EXECUTE_WORKERS`` (default 1).

    Raises:
        ValueError: when the variable is set to anything but a positive integer.
    """
    raw = os.environ.get("BOOK_EXECUTE_WORKERS", "1")
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError(
            f"BOOK_EXECUTE_WORKERS must be a positive integer, got {raw!r}"
        )
    return int(raw)


def _execute_ahead(app: Sphinx, env, docnames: list[str]) -> None:
    """Execute the uncached notebooks among ``docnames`` in parallel, into the build's cache."""
    config = app.config
    workers = execute_workers()
    if config.nb_execution_mode != "cache" or workers == 1:
        return
    # Imported here: only a book build needs them, and they come with Jupyter Book.
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from jupyter_cache.executors.utils import single_nb_execution

    cache = get_cache(config.nb_execution_cache_path)
    todo = []
    for docname in docnames:
        path = Path(env.doc2path(docname))
        excluded = any(
            PurePosixPath(path.as_posix()).match(pattern)
            for pattern in config.nb_execution_excludepatterns
        )
        if path.suffix != ".ipynb" or excluded:
            continue
        notebook = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
        try:
            cache.match_cache_notebook(notebook)
        except KeyError:
            todo.append((path, notebook))

    def execute(item):
        path, notebook = item
        result = single_nb_execution(
            notebook,
            cwd=str(path.parent),
            timeout=config.nb_execution_timeout,
            allow_errors=config.nb_execution_allow_errors,
            meta_override=True,
        )
        return path, notebook, result

    # Threads suffice: each notebook runs in its own kernel process.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for path, notebook, result in pool.map(execute, todo):
            if result.err is not None:
                continue  # the build executes it again and reports the error
            stage = cache.add_nb_to_project(str(path))
            bundle = CacheBundleIn(
                notebook, stage.uri, data={"execution_seconds": result.time}
            )
            cache.cache_notebook_bundle(bundle, check_validity=False, overwrite=True)


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


# A tqdm drawing: its description (may be empty), then a percentage and the bar.
_BAR = re.compile(r"^(?P<desc>[^|\n]*?)\s*(?P<percent>\d{1,3})%\|")


def last_bar_drawings(text: str) -> str:
    """Of consecutive lines that draw the same tqdm bar, keep the last: ``str`` -> ``str``.

    Two lines draw the same bar when they have the same description and the second's
    percentage is not below the first's (a new bar starts again from a lower one). Any other
    line is kept as it is.
    """
    kept: list[str] = []
    for line in text.split("\n"):
        new = _BAR.match(line)
        old = _BAR.match(kept[-1]) if kept else None
        same = new and old and new["desc"] == old["desc"]
        if same and int(new["percent"]) >= int(old["percent"]):
            kept[-1] = line
        else:
            kept.append(line)
    return "\n".join(kept)


def _collapse_progress_bars(app: Sphinx, doctree: nodes.document) -> None:
    """The rendered stderr of every notebook cell, with each bar drawn once."""
    for block in doctree.findall(nodes.literal_block):
        if "stderr" not in block.get("classes", []):
            continue
        text = block.astext()
        shown = last_bar_drawings(text)
        if shown != text:
            block.children = [nodes.Text(shown)]
            block.rawsource = shown


# The notebook kernels' environment defaults (a variable already set is kept).
KERNEL_ENVIRONMENT = {
    # seconds between redraws: a bar draws when it starts and when it closes
    "TQDM_MININTERVAL": "1e9",
    # PyTorch's OpenMP threads spin while they wait for each other; on a machine whose cores
    # are busy with other work that made chapter 2's PyTorch page 10x slower. Sleep instead.
    "OMP_WAIT_POLICY": "PASSIVE",
}


def setup(app: Sphinx) -> dict:
    for name, value in KERNEL_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    app.connect("config-inited", _per_scale_cache)
    app.connect("doctree-read", _collapse_progress_bars)
    app.connect("env-before-read-docs", _execute_ahead)
    # Priority 1: before the theme's own handlers.
    app.connect("html-page-context", _page_context, priority=1)
    return {"version": "2", "parallel_read_safe": True, "parallel_write_safe": True}
