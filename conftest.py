"""Test-suite defaults for every pytest run (tests/, and nbval over chapters/ and solutions/).

Loaded before collection, so the notebook kernels that nbval starts inherit these variables."""

import os

import pytest

# Notebooks run at smoke scale unless the caller asks for another (`BOOK_SCALE=cpu pytest`).
os.environ.setdefault("BOOK_SCALE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
# PyTorch's OpenMP threads spin while they wait; on busy cores that stalls them (measured: a
# chapter-2 step 30x slower). The kernels nbval starts inherit this; helpers.book sets it too.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The labs' unsolved stubs fail by design (their solutions are tested); relative to this
# file, so tests/labs, the checks' mistake tables, is still collected.
collect_ignore = ["labs"]


@pytest.fixture
def data_dirs(tmp_path, monkeypatch):
    """An empty private offline copy ($BOOK_DATA_DIR) and download cache ($BOOK_CACHE_DIR)."""
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    monkeypatch.setenv("BOOK_DATA_DIR", str(data))
    monkeypatch.setenv("BOOK_CACHE_DIR", str(cache))
    return data, cache


# --- each notebook executes once per run ---------------------------------------------------
def _site_notebooks() -> set[str]:
    """The notebooks the site build executes: every ``.ipynb`` page of ``_toc.yml`` except the
    labs (their stubs fail by design; ``_config.yml`` excludes them from execution)."""
    from helpers.notebooks import ROOT, toc_files

    return {
        f"{f}.ipynb"
        for f in toc_files()
        if not f.startswith("labs/") and (ROOT / f"{f}.ipynb").is_file()
    }


def pytest_collection_modifyitems(config, items):
    """A run that builds the site (``tests/test_site.py``) executes every book notebook there,
    failing on any cell that raises, so nbval does not run those notebooks a second time.

    Run alone (``pytest chapters/05-cifar10``), nbval still executes them. A notebook that is
    not in ``_toc.yml`` is not built, so nbval keeps it."""
    if not any(item.nodeid.startswith("tests/test_site.py::") for item in items):
        return
    site = _site_notebooks()
    keep, drop = [], []
    for item in items:
        (drop if item.nodeid.split("::")[0] in site else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# --- per-notebook timings: nbval reports cells; CI wants to see the slowest notebooks -------
_notebook_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] = _notebook_seconds.get(path, 0.0) + report.duration
    # The site build's own execution times (tests/test_site.py records them).
    for name, value in getattr(report, "user_properties", ()):
        if name.startswith("site build: "):
            page = name.removeprefix("site build: ")
            _notebook_seconds[f"{page} (site build)"] = value


def pytest_terminal_summary(terminalreporter):
    if _notebook_seconds:
        terminalreporter.section("slowest notebooks (all cells, kernel start included)")
        for path, seconds in sorted(_notebook_seconds.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"{seconds:7.1f}s  {path}")
