"""Style: ruff lint and format over the whole project, the helpers' module sizes, plain tqdm
progress bars, no formatter markers in the pages' code, and page code that fits a desktop column."""

import subprocess
import sys

import jupytext
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


def _page_code_lines(*, notebooks_only: bool = False) -> list[tuple[str, str]]:
    """(source path, line) for every code-cell line of the pages' jupytext sources; with
    ``notebooks_only``, only sources paired with an ``.ipynb`` (not the scripts they run)."""
    sources = [
        path
        for folder in ("chapters", "appendices", "solutions", "labs")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if not notebooks_only or path.with_suffix(".ipynb").exists()
    ]
    assert sources
    return [
        (str(p.relative_to(ROOT)), line)
        for p in sources
        for cell in jupytext.reads(p.read_text(), fmt="py:percent").cells
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
    ]


def test_pages_show_no_formatter_markers():
    """A ``# fmt: skip`` or ``# fmt: off`` in a notebook's code cell is printed in the reader's
    code, in the book and in Colab: page code is formatted by ruff as it is (prose may name
    the markers)."""
    offenders = [
        f"{path}: {line.strip()}"
        for path, line in _page_code_lines()
        if "# fmt:" in line
    ]
    assert not offenders, offenders


# A notebook page's code cell is 844 px wide in a 1400 px window, about 103 characters of its
# monospace font (measured in Chromium on the built site); a longer line scrolls sideways.
MAX_PAGE_CODE_LINE = 100


def test_page_code_fits_a_desktop_column():
    """No line of a page's code is wider than a code cell on a 1400 px desktop (chapter 1's
    timing header, a 118-character line, scrolled there)."""
    offenders = [
        f"{path}: {len(line)} characters: {line.strip()[:60]}"
        for path, line in _page_code_lines(notebooks_only=True)
        if len(line) > MAX_PAGE_CODE_LINE
    ]
    assert not offenders, offenders
