"""Labs end to end in real kernels: where a student opens them, and through the grader."""

import csv
import shutil
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from helpers.notebooks import FRAMEWORKS, ROOT


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_unsolved_lab_in_place_fails_only_its_checks(framework):
    """Run where a student runs it (its own folder): only CheckFailed errors."""
    path = ROOT / "labs" / "01-introduction" / f"in-{framework}.ipynb"
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
    checks = [c for c in nb.cells if c.cell_type == "code" and ".check_" in c.source]
    assert len(errors) == len(checks) == 5
    assert {o.ename for _, o in errors} == {"CheckFailed"}
    assert all("not implemented yet" in o.evalue for _, o in errors)
    assert all(".check_" in source for source, _ in errors)


def test_grader_scores_a_folder(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(ROOT / "labs/01-introduction/in-jax.ipynb", subs / "unsolved.ipynb")
    shutil.copy(
        ROOT / "solutions/01-introduction/in-pytorch.ipynb", subs / "solved.ipynb"
    )
    (subs / "junk.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    out = tmp_path / "grades.csv"
    run = subprocess.run(
        [sys.executable, "-m", "helpers.grade", str(subs), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    rows = {row["submission"]: row for row in csv.DictReader(out.open())}
    assert rows["solved.ipynb"]["score"] == "5/5"
    assert rows["unsolved.ipynb"]["score"] == "0/5"
    assert rows["unsolved.ipynb"]["check_preprocess"].startswith("fail:")
    assert "not a course lab" in rows["junk.ipynb"]["notes"]
    assert "solved.ipynb: 5/5" in run.stdout


def test_grader_needs_submissions(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "helpers.grade", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "no .ipynb files" in run.stderr
