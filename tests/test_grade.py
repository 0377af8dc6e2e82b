"""Labs end to end in real kernels: where a student opens them, and through the grader.

The submissions are built from the repo's own lab and solution notebooks, and what a test
expects (how many checks, their names) comes from ``check_calls``, so these tests follow the
labs when their exercises change.
"""

import csv
import re
import subprocess
import sys
import time

import nbformat
import pytest
from nbclient import NotebookClient

from helpers.grade import check_calls
from helpers.notebooks import FRAMEWORKS, ROOT

LAB = "01-introduction"
CALLS = {framework: check_calls(LAB, framework) for framework in FRAMEWORKS}


def _read(kind: str, framework: str):
    return nbformat.read(ROOT / kind / LAB / f"in-{framework}.ipynb", as_version=4)


def _function(call: str) -> str:
    return call[call.index("(") + 1 : -1]


def _column(call: str) -> str:
    return call.split("(")[0].rsplit(".", 1)[-1]


def _index(nb, test) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and test(c))


def _definition(nb, call: str) -> int:
    """Index of the cell that defines the exercise's function."""
    pattern = re.compile(rf"^def {_function(call)}\(", re.M)
    return _index(nb, lambda c: pattern.search(c.source))


def _check(nb, call: str) -> int:
    return _index(nb, lambda c: c.source.strip() == call)


def _code(source: str):
    return nbformat.v4.new_code_cell(source)


def _redefine_all(framework: str):
    """A "Going further" cell that reuses every exercise's name for something else."""
    lines = [
        f"def {_function(c)}(*args, **kwargs):\n    raise RuntimeError('a later experiment')"
        for c in CALLS[framework]
    ]
    return _code("\n\n\n".join(lines))


def _grade(folder, *options, timeout=900):
    """Run the CLI on ``folder``: (rows by submission, the finished process, seconds)."""
    out = folder.parent / f"{folder.name}.csv"
    start = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "helpers.grade",
            str(folder),
            "--out",
            str(out),
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    seconds = time.monotonic() - start
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {row["submission"]: row for row in csv.DictReader(out.open())}
    return rows, run, seconds


def _write(folder, name: str, nb) -> None:
    folder.mkdir(exist_ok=True)
    nbformat.write(nb, folder / name)


def _score(row: dict) -> str:
    """A CSV row's score, passed/checks (two numeric columns: "3/4" is a date to Excel)."""
    return f"{row['passed']}/{row['checks']}"


def _full(framework: str) -> str:
    n = len(CALLS[framework])
    return f"{n}/{n}"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_unsolved_lab_in_place_fails_only_its_checks(framework):
    """Run where a student runs it (its own folder): only CheckFailed errors."""
    path = ROOT / "labs" / LAB / f"in-{framework}.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    errors = [
        (c.source, o)
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    checks = [
        c.source.strip()
        for c in nb.cells
        if c.cell_type == "code" and ".check_" in c.source
    ]
    assert checks == CALLS[framework] and len(errors) == len(checks) > 0
    assert {o.ename for _, o in errors} == {"CheckFailed"}
    assert all("not implemented yet" in o.evalue for _, o in errors)
    assert all(".check_" in source for source, _ in errors)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One grader run over a folder of submissions, each built to show one case."""
    calls = CALLS["pytorch"]
    assert len(calls) >= 3, "the rearranged submission needs three exercises"
    subs = tmp_path_factory.mktemp("grade") / "subs"

    nb = _read("solutions", "pytorch")
    nb.cells.append(_code("H = 256  # a hidden size, in a last experiment"))
    _write(subs, "trailing-h.ipynb", nb)

    nb = _read("solutions", "pytorch")
    nb.cells.append(_redefine_all("pytorch"))
    _write(subs, "redefined.ipynb", nb)

    # Exercise 0: check cell deleted, then `H` rebound. Exercise 1: check cell edited into a
    # failing call. Last exercise: the student copied the stub and its check above the
    # solved pair. At the end, every exercise's function is redefined.
    nb, stubs = _read("solutions", "pytorch"), _read("labs", "pytorch")
    last = _definition(nb, calls[-1])
    copies = [_definition(stubs, calls[-1]), _check(stubs, calls[-1])]
    nb.cells[last:last] = [_code(stubs.cells[i].source) for i in copies]
    edited = _check(nb, calls[1])
    nb.cells[edited].source = calls[1].replace(f"({_function(calls[1])})", "(print)")
    del nb.cells[_check(nb, calls[0])]
    # A student's own `H`: the grader's checks must not depend on the name.
    nb.cells.insert(_definition(nb, calls[0]) + 1, _code("H = 256"))
    # A later redefinition: the checks must still run right after each exercise.
    nb.cells.append(_redefine_all("pytorch"))
    _write(subs, "rearranged.ipynb", nb)

    _write(subs, "unsolved.ipynb", _read("labs", "pytorch"))

    nb = _read("solutions", "jax")
    nb.cells += [_redefine_all("jax"), _code("H = 256")]
    _write(subs, "jax.ipynb", nb)

    # Metadata dropped by an editor: the lab is read from the cells.
    nb = _read("solutions", "pytorch")
    del nb.metadata["course"]["framework"]
    _write(subs, "no-framework.ipynb", nb)
    nb = _read("solutions", "pytorch")
    del nb.metadata["course"]
    _write(subs / "carol", "no-course.ipynb", nb)
    # No metadata and no lab in the cells: not graded.
    _write(subs, "not-a-lab.ipynb", nbformat.v4.new_notebook(cells=[_code("x = 1")]))
    (subs / "dave.py").write_text("def f(x):\n    return x\n")
    (subs / "erin.ipynb").write_text('{\n "cells": [\n  {')  # cut short

    # Every check rebound to print a pass: the real checks still run, and a note says so.
    nb = _read("labs", "pytorch")
    fakes = [
        f"H.{c.split('.')[1]}.{_column(c)} = lambda f: print('✅ {_column(c)}: passed')"
        for c in calls
    ]
    nb.cells.insert(_definition(nb, calls[0]), _code("\n".join(fakes)))
    _write(subs, "tampered.ipynb", nb)

    # A student's import fails: the note names the cell, not only the checks' NameErrors.
    nb = _read("labs", "pytorch")
    nb.cells.insert(_definition(nb, calls[0]), _code("import torchvisionx"))
    _write(subs, "bad-import.ipynb", nb)

    # `H` rebound at the top level, then used by a later cell: a note says why it raised.
    nb = _read("solutions", "pytorch")
    nb.cells.insert(_definition(nb, calls[0]), _code("B, H, W, C = 4, 32, 32, 3"))
    nb.cells.append(_code("model = H.MLP(784, (256,), 10)"))
    _write(subs, "h-rebound.ipynb", nb)

    summary = subs.parent / "summary.md"
    rows, run, _ = _grade(subs, "--summary", str(summary))
    return rows, run, summary.read_text()


def test_a_later_cell_cannot_undo_an_exercise(graded):
    rows, run, _ = graded
    assert _score(rows["trailing-h.ipynb"]) == _full("pytorch")
    assert _score(rows["redefined.ipynb"]) == _full("pytorch")
    assert f"trailing-h.ipynb: {_full('pytorch')}" in run.stdout


def test_edited_deleted_and_duplicated_check_cells(graded):
    rows, _, _ = graded
    row = rows["rearranged.ipynb"]
    assert _score(row) == _full("pytorch"), row


def test_unsolved_lab_scores_zero(graded):
    rows, _, _ = graded
    row = rows["unsolved.ipynb"]
    assert _score(row) == f"0/{len(CALLS['pytorch'])}"
    for call in CALLS["pytorch"]:
        # the column names the check: the message starts after its mark and name
        assert row[_column(call)].startswith("fail: not implemented yet"), row
        assert "❌" not in row[_column(call)]


def test_jax_lab_is_graded_where_it_stands(graded):
    rows, _, _ = graded
    assert _score(rows["jax.ipynb"]) == _full("jax")


def test_missing_metadata_is_read_from_the_cells_or_explained(graded):
    rows, run, _ = graded
    for name, missing in [
        ("no-framework.ipynb", "no course.framework"),
        ("carol/no-course.ipynb", "no course entry"),
    ]:
        row = rows[name]
        assert _score(row) == _full("pytorch") and row["framework"] == "pytorch", row
        assert (
            f"its metadata has {missing}: lab {LAB} (pytorch) read from" in row["notes"]
        )
    row = rows["not-a-lab.ipynb"]
    assert row["passed"] == row["checks"] == row["lab"] == "", row
    assert row["notes"].startswith("not graded: not a course lab notebook"), row
    assert (
        "cells name no single lab" in row["notes"] and "File > Download" in row["notes"]
    )
    assert "not-a-lab.ipynb: not graded: not a course lab notebook" in run.stdout
    assert (
        rows["dave.py"]["notes"]
        == "not graded: not a notebook (.py file): submit the .ipynb"
    )
    assert rows["erin.ipynb"]["notes"] == (
        "not graded: not a readable notebook (the file is not JSON: empty, cut short, or "
        "not a notebook)"
    )


def test_a_rebound_check_cannot_fake_a_pass(graded):
    rows, _, _ = graded
    row = rows["tampered.ipynb"]
    assert _score(row) == f"0/{len(CALLS['pytorch'])}", row
    assert "changes the course's checks or helpers" in row["notes"], row
    assert "changes the course's checks" not in rows["trailing-h.ipynb"]["notes"]


def test_the_first_error_of_the_students_code_is_noted(graded):
    rows, _, _ = graded
    notes = rows["bad-import.ipynb"]["notes"]
    nb = _read("labs", "pytorch")
    # the inserted cell's number among the code cells, as the student sees them
    number = 1 + sum(
        c.cell_type == "code" for c in nb.cells[: _definition(nb, CALLS["pytorch"][0])]
    )
    assert (
        f"code cell {number} (`import torchvisionx`) raised ModuleNotFoundError"
        in notes
    ), notes
    assert rows["trailing-h.ipynb"]["notes"] == ""  # a solved lab raises nowhere


def test_csv_has_one_column_per_check_and_one_row_per_submission(graded):
    rows, _, _ = graded
    assert len(rows) == 13
    columns = list(next(iter(rows.values())))
    checks = [_column(c) for c in CALLS["pytorch"]]
    assert columns == [
        "submission",
        "lab",
        "framework",
        "passed",
        "checks",
        *checks,
        "notes",
    ]
    n = len(CALLS["pytorch"])
    assert (
        rows["trailing-h.ipynb"]["passed"]
        == rows["trailing-h.ipynb"]["checks"]
        == str(n)
    )
    assert rows["jax.ipynb"]["lab"] == LAB and rows["jax.ipynb"]["framework"] == "jax"


def test_summary_counts_passes_per_exercise(graded):
    _, _, summary = graded
    assert "10 graded, 3 not graded" in summary
    # Graded lab-1 submissions: seven pytorch ones solved, three not (unsolved, tampered, bad
    # import), one jax solved.
    for call in CALLS["pytorch"]:
        assert f"| {_column(call)} | 7/10 |" in summary, summary
    assert "`not-a-lab.ipynb`: not a course lab notebook" in summary


def test_a_top_level_h_that_a_later_cell_uses_is_noted(graded):
    rows, _, _ = graded
    row = rows["h-rebound.ipynb"]
    assert _score(row) == _full("pytorch"), row  # the checks do not use the student's H
    assert (
        "(`B, H, W, C = 4, 32, 32, 3`) assigns to `H`, the course's helpers"
        in row["notes"]
    )
    assert "has no attribute 'MLP'" in row["notes"], row
    assert "assigns to `H`" not in rows["trailing-h.ipynb"]["notes"]  # no later use


@pytest.fixture(scope="module")
def endless(tmp_path_factory):
    """Two solved labs with an exercise that never returns, graded with a short cell limit.

    In ``endless.ipynb`` the second exercise loops; in ``stubborn.ipynb`` the first one loops
    and ignores the interrupt, as code that traps SIGINT would.
    """
    calls = CALLS["pytorch"]
    subs = tmp_path_factory.mktemp("endless") / "subs"
    nb = _read("solutions", "pytorch")
    loop = nb.cells[_definition(nb, calls[1])]
    loop.source = f"def {_function(calls[1])}(*args):\n    while True:\n        pass\n"
    _write(subs, "endless.ipynb", nb)
    nb = _read("solutions", "pytorch")
    stubborn = nb.cells[_definition(nb, calls[0])]
    stubborn.source = (
        f"def {_function(calls[0])}(*args):\n"
        "    import signal\n\n"
        "    signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "    while True:\n"
        "        pass\n"
    )
    _write(subs, "stubborn.ipynb", nb)
    # 15 s: under load the imports cell alone (torch, the helpers) can take several seconds.
    return _grade(subs, "--timeout", "15", timeout=300)


def test_an_endless_loop_fails_only_its_exercise(endless):
    rows, run, _ = endless
    row, calls = rows["endless.ipynb"], CALLS["pytorch"]
    assert _score(row) == f"{len(calls) - 1}/{len(calls)}", row
    for call in calls:
        expected = "timed out" if call == calls[1] else "pass"
        assert row[_column(call)].split(":")[0] == expected, row
    assert "⏱" in run.stdout


def test_a_kernel_that_ignores_the_interrupt_is_stopped(endless):
    rows, _, _ = endless
    row, calls = rows["stubborn.ipynb"], CALLS["pytorch"]
    assert _score(row) == f"0/{len(calls)}", row
    assert row[_column(calls[0])].startswith("timed out"), row
    for call in calls[1:]:
        assert row[_column(call)].startswith("error: not run: the kernel was stopped")
    assert "the kernel was stopped" in row["notes"]


def test_timeouts_are_quick_and_quiet(endless):
    _, run, seconds = endless
    # Two 15 s limits, a 10 s wait before the stubborn kernel is stopped, two short labs.
    assert seconds < 150
    for text in (run.stdout, run.stderr):
        assert "Traceback" not in text and "ZMQError" not in text, text
