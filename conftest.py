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


@pytest.fixture
def data_dirs(tmp_path, monkeypatch):
    """An empty private offline copy ($BOOK_DATA_DIR) and download cache ($BOOK_CACHE_DIR)."""
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    monkeypatch.setenv("BOOK_DATA_DIR", str(data))
    monkeypatch.setenv("BOOK_CACHE_DIR", str(cache))
    return data, cache


# --- per-notebook timings: nbval reports cells; CI wants to see the slowest notebooks -------
_notebook_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] = _notebook_seconds.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if _notebook_seconds:
        terminalreporter.section("slowest notebooks (all cells, kernel start included)")
        for path, seconds in sorted(_notebook_seconds.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"{seconds:7.1f}s  {path}")
