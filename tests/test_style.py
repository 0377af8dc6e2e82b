"""Style: ruff lint and format over the whole project, the helpers' module sizes, and plain
tqdm progress bars."""

import subprocess
import sys

import pytest

from helpers.notebooks import ROOT


@pytest.mark.parametrize(
    "command", [["check"], ["format", "--check"]], ids=["lint", "format"]
)
def test_ruff(command):
    run = subprocess.run(
        [sys.executable, "-m", "ruff", *command, str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


# ARCHITECTURE.md: "Split a file when a chapter makes it grow past ~400 lines".
MAX_MODULE_LINES = 400


def test_helper_modules_stay_small():
    long = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / "helpers").rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"split these modules (lines > {MAX_MODULE_LINES}): {long}"


def test_progress_bars_are_plain_tqdm():
    """``tqdm.auto`` picks a Jupyter widget, and without ipywidgets (the book's build) it prints a
    TqdmWarning into the rendered page; plain ``tqdm`` prints a text bar everywhere."""
    sources = [
        path
        for folder in ("helpers", "chapters", "appendices", "solutions", "labs")
        for path in sorted((ROOT / folder).rglob("*.py"))
    ]
    offenders = [
        str(p.relative_to(ROOT)) for p in sources if "tqdm.auto" in p.read_text()
    ]
    assert sources and not offenders, offenders
