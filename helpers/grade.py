"""Grade a folder of lab submissions with the labs' own self-checks.

    python -m helpers.grade submissions/              # prints a table, writes grades.csv
    python -m helpers.grade submissions/ --out marks.csv --timeout 300

Each ``*.ipynb`` under the folder is run from top to bottom in a fresh kernel (errors do not
stop it), then every self-check of its lab is run once more in cells appended at the end, so
a check a student deleted or edited still counts. A check is ``pass``, ``fail`` (its
``CheckFailed``) or ``error`` (anything else, e.g. a function the notebook never defined).
The lab is recognised from the notebook's metadata, which the course's notebooks carry.

This runs the students' code with your permissions: run it in a container or a throw-away
account.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from helpers.notebooks import ROOT, notebook_name

__all__ = ["CheckResult", "check_calls", "grade_notebook", "main"]

_CHECK_CALL = re.compile(r"^H\.lab\d\d\.check_\w+\(\w+\)$")


@dataclass(frozen=True)
class CheckResult:
    check: str  # the call, e.g. "H.lab01.check_preprocess(preprocess)"
    status: str  # "pass" | "fail" | "error"
    message: str = ""


def check_calls(chapter: str, framework: str, root: Path = ROOT) -> list[str]:
    """The self-check calls of a lab, in order, read from its solution source."""
    import jupytext

    source = root / "solutions" / chapter / f"{notebook_name(framework)}.py"
    if not source.is_file():
        raise FileNotFoundError(
            f"no lab {chapter} for {framework}: {source} does not exist"
        )
    nb = jupytext.read(source, fmt="py:percent")
    code = [c.source.strip() for c in nb.cells if c.cell_type == "code"]
    return [line for line in code if _CHECK_CALL.match(line)]


def _lab_of(nb) -> tuple[str, str]:
    course = nb.metadata.get("course", {})
    if course.get("kind") not in ("labs", "solutions") or "chapter" not in course:
        raise ValueError("not a course lab: its metadata has no course.kind/chapter")
    return course["chapter"], course["framework"]


def _result(call: str, cell) -> CheckResult:
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        e = errors[0]
        status = "fail" if e.get("ename") == "CheckFailed" else "error"
        text = (
            e.get("evalue", "")
            if status == "fail"
            else f"{e.get('ename')}: {e.get('evalue')}"
        )
        return CheckResult(call, status, " ".join(text.split()))
    printed = "".join(o.get("text", "") for o in cell.get("outputs", []) if "text" in o)
    if "passed" in printed:
        return CheckResult(call, "pass")
    return CheckResult(call, "error", "the check printed no result")


def grade_notebook(
    path: Path, *, timeout: int = 600, root: Path = ROOT
) -> list[CheckResult]:
    """Run one submission and its lab's checks; one result per check."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    calls = check_calls(*_lab_of(nb), root=root)
    first = len(nb.cells)
    nb.cells += [nbformat.v4.new_code_cell(call) for call in calls]
    env = {**os.environ, "BOOK_SCALE": os.environ.get("BOOK_SCALE", "smoke")}
    with (
        tempfile.TemporaryDirectory() as cwd
    ):  # the student's code writes files there, if any
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": cwd}},
        )
        client.execute(env=env)
    return [
        _result(call, cell) for call, cell in zip(calls, nb.cells[first:], strict=True)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.grade",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", type=Path, help="folder of submitted .ipynb files")
    parser.add_argument(
        "--out", type=Path, default=Path("grades.csv"), help="CSV to write"
    )
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--course", type=Path, default=ROOT, help="the course checkout")
    args = parser.parse_args(argv)
    found = args.folder.rglob("*.ipynb")
    submissions = sorted(p for p in found if ".ipynb_checkpoints" not in p.parts)
    if not submissions:
        print(f"error: no .ipynb files under {args.folder}", file=sys.stderr)
        return 2
    rows = []
    for path in submissions:
        name = str(path.relative_to(args.folder))
        try:
            results = grade_notebook(path, timeout=args.timeout, root=args.course)
        except Exception as e:  # one unreadable submission must not stop the others
            rows.append({"submission": name, "score": "0", "notes": f"not graded: {e}"})
            print(f"{name}: not graded ({e})")
            continue
        passed = sum(r.status == "pass" for r in results)
        row = {"submission": name, "score": f"{passed}/{len(results)}"}
        for r in results:
            check = r.check.split("(")[0].rsplit(".", 1)[-1]
            row[check] = r.status if r.status == "pass" else f"{r.status}: {r.message}"
        rows.append(row)
        marks = " ".join("✅" if r.status == "pass" else "❌" for r in results)
        print(f"{name}: {passed}/{len(results)} {marks}")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
