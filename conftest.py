"""Test-suite defaults for every pytest run (tests/, and nbval over chapters/ and solutions/).

Loaded before collection, so the notebook kernels that nbval starts inherit these variables."""

import os

# Notebooks run at smoke scale unless the caller asks for another (`BOOK_SCALE=cpu pytest`).
os.environ.setdefault("BOOK_SCALE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")


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
