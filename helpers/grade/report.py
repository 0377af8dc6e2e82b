"""The grader's command line and its reports: a CSV row per submission, a Markdown summary."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from helpers.grade.notebook import _MARK, _RANK, Grade, NotGradable, grade_notebook
from helpers.notebooks import FRAMEWORKS, ROOT

__all__ = ["main", "summary"]


def summary(folder: Path, grades: dict[str, Grade], skipped: dict[str, str]) -> str:
    """A Markdown page: per lab, per exercise, how many submissions passed."""
    lines = [
        "# Lab grades",
        "",
        f"Submissions in `{folder}`: {len(grades)} graded, {len(skipped)} not graded.",
    ]
    for chapter in sorted({g.chapter for g in grades.values()}):
        of_lab = [g for g in grades.values() if g.chapter == chapter]
        frameworks = ", ".join(
            f"{sum(g.framework == f for g in of_lab)} {f}"
            for f in FRAMEWORKS
            if any(g.framework == f for g in of_lab)
        )
        lines += [
            "",
            f"## Lab {chapter} ({frameworks})",
            "",
            "| exercise | passed | failed | error | timed out |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        names = dict.fromkeys(r.name for g in of_lab for r in g.results)
        for name in names:
            statuses = [r.status for g in of_lab for r in g.results if r.name == name]
            n = {s: statuses.count(s) for s in _RANK}
            lines.append(
                f"| {name} | {n['pass']}/{len(statuses)} | {n['fail']} | {n['error']} "
                f"| {n['timed out']} |"
            )
        full = sum(g.passed == len(g.results) for g in of_lab)
        lines += ["", f"Full marks: {full} of {len(of_lab)}."]
    if skipped:
        lines += ["", "## Not graded", ""]
        lines += [f"- `{name}`: {why}" for name, why in skipped.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.grade",
        description=sys.modules["helpers.grade"].__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", type=Path, help="folder of submitted .ipynb files")
    parser.add_argument(
        "--out", type=Path, default=Path("grades.csv"), help="CSV to write"
    )
    parser.add_argument(
        "--summary",
        type=Path,
        help="also write a Markdown summary (passes per exercise)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60,
        help="seconds each cell may run before it is interrupted (default: 60)",
    )
    parser.add_argument("--course", type=Path, default=ROOT, help="the course checkout")
    args = parser.parse_args(argv)
    found = args.folder.rglob("*.ipynb")
    submissions = sorted(p for p in found if ".ipynb_checkpoints" not in p.parts)
    if not submissions:
        print(f"error: no .ipynb files under {args.folder}", file=sys.stderr)
        return 2
    rows, grades, skipped = [], {}, {}
    for path in submissions:
        name = str(path.relative_to(args.folder))
        try:
            grade = grade_notebook(path, timeout=args.timeout, root=args.course)
        except Exception as e:  # one bad submission must not stop the others
            why = str(e) if isinstance(e, NotGradable) else f"{type(e).__name__}: {e}"
            rows.append(
                {"submission": name, "score": "0", "notes": f"not graded: {why}"}
            )
            skipped[name] = why
            print(f"{name}: not graded: {why}")
            continue
        grades[name] = grade
        score = f"{grade.passed}/{len(grade.results)}"
        row = {"submission": name, "score": score, "notes": "; ".join(grade.notes)}
        for r in grade.results:
            row[r.name] = r.status if r.status == "pass" else f"{r.status}: {r.message}"
        rows.append(row)
        marks = " ".join(_MARK[r.status] for r in grade.results)
        print(f"{name}: {score} {marks}")
    checks = dict.fromkeys(r.name for g in grades.values() for r in g.results)
    # Written beside the target and renamed into place: an interrupted run leaves the previous
    # grades file whole, never half a table.
    tmp = args.out.with_name(args.out.name + ".partial")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["submission", "score", *checks, "notes"])
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    if args.summary:
        tmp = args.summary.with_name(args.summary.name + ".partial")
        tmp.write_text(summary(args.folder, grades, skipped))
        tmp.replace(args.summary)
        print(f"wrote {args.summary}")
    return 0
