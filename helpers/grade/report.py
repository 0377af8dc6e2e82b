"""The grader's command line and its reports: a CSV row per submission, a Markdown summary."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from helpers.grade.course import NotGradable, missing_checks
from helpers.grade.notebook import _MARK, _RANK, Grade, grade_notebook
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


def _submissions(target: Path) -> tuple[list[Path], list[str]]:
    """The notebooks to grade (``target`` itself if it is one; ``.ipynb_checkpoints`` and
    hidden files left out), and the other files under ``target``, by relative name."""
    if target.is_file():
        return ([target], []) if target.suffix == ".ipynb" else ([], [target.name])
    notebooks, others = [], []
    for path in sorted(target.rglob("*")):
        parts = path.relative_to(target).parts
        if not path.is_file() or any(p.startswith(".") for p in parts):
            continue
        if path.suffix == ".ipynb":
            notebooks.append(path)
        else:
            others.append(str(path.relative_to(target)))
    return notebooks, others


def _seconds(text: str) -> float:
    """``--timeout``'s value: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seconds, a number > 0: {text!r}"
        ) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected seconds, a number > 0, not {text}")
    return value


def _unwritable(target: Path) -> str | None:
    """Why ``target`` cannot be written, or None: it is tried for real, by creating and
    removing its ``.partial`` file (permission bits say nothing when the grader is root)."""
    if target.is_dir():
        return "it is a folder"
    if target.suffix == ".ipynb":
        return "it is a notebook (a submission, perhaps: never overwritten)"
    partial = target.with_name(target.name + ".partial")
    try:
        partial.open("w").close()
        partial.unlink()
    except OSError as e:
        return e.strerror or type(e).__name__
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.grade",
        description=sys.modules["helpers.grade"].__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "folder", type=Path, help="folder of submitted .ipynb files (or one notebook)"
    )
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
        type=_seconds,
        default=60,
        help="seconds each cell may run before it is interrupted (default: 60)",
    )
    parser.add_argument(
        "--course",
        type=Path,
        default=ROOT,
        help="the checkout to grade against (default: this one): its solutions list "
        "each lab's checks, its helpers (checks included) run in the kernel",
    )
    args = parser.parse_args(argv)
    if not args.folder.exists():
        print(f"error: {args.folder} does not exist", file=sys.stderr)
        return 2
    if not (args.course / "solutions").is_dir():
        print(
            f"error: {args.course} is not the course (no solutions/)", file=sys.stderr
        )
        return 2
    outputs = [t for t in (args.out, args.summary) if t is not None]
    if args.summary is not None and args.summary.absolute() == args.out.absolute():
        print("error: --out and --summary name the same file", file=sys.stderr)
        return 2
    for target in outputs:
        if why := _unwritable(target):
            print(f"error: cannot write {target}: {why}", file=sys.stderr)
            return 2
    if missing := missing_checks(args.course):
        print(
            f"error: the course at {args.course} calls checks its helpers do not have "
            "(add each to the lab's adapters, helpers/labs/labNN/torch.py and jax.py):\n  "
            + "\n  ".join(missing),
            file=sys.stderr,
        )
        return 2
    submissions, others = _submissions(args.folder)
    # this run's own outputs (grades.csv inside the folder) are not submissions
    ours = {p.resolve() for t in outputs for p in (t, t.with_name(t.name + ".partial"))}
    submissions = [p for p in submissions if p.resolve() not in ours]
    others = [n for n in others if (args.folder / n).resolve() not in ours]
    if not submissions:
        why = (
            f"{args.folder} is a file, not a notebook (.ipynb) or a folder"
            if args.folder.is_file()
            else f"no .ipynb files under {args.folder}"
        )
        print(f"error: {why}", file=sys.stderr)
        return 2
    rows, grades, skipped = [], {}, {}
    for path in submissions:
        name = path.name if path == args.folder else str(path.relative_to(args.folder))
        try:
            grade = grade_notebook(path, timeout=args.timeout, root=args.course)
        except Exception as e:  # one bad submission must not stop the others
            why = str(e) if isinstance(e, NotGradable) else f"{type(e).__name__}: {e}"
            skipped[name] = why
            print(f"{name}: not graded: {why}")
            continue
        grades[name] = grade
        marks = " ".join(_MARK[r.status] for r in grade.results)
        missed = [f"{r.name} ({r.status})" for r in grade.results if r.status != "pass"]
        print(
            f"{name}: {grade.score} {marks}"
            + (f"  not passed: {', '.join(missed)}" * bool(missed))
        )
    for name in others:
        skipped[name] = (
            f"not a notebook ({Path(name).suffix or 'no'} file): submit the .ipynb"
        )
        print(f"{name}: not graded: {skipped[name]}")
    # One column per check; prefixed with the lab when the folder holds several labs, whose
    # checks may share a name (check_train_step is in four labs).
    several = len({g.chapter for g in grades.values()}) > 1

    def column(grade: Grade, check: str) -> str:
        return f"{grade.chapter[:2]} {check}" if several else check

    for name, grade in grades.items():
        row = {"submission": name, "lab": grade.chapter, "framework": grade.framework}
        row |= {"passed": grade.passed, "checks": len(grade.results)}
        row["notes"] = "; ".join(grade.notes)
        for r in grade.results:
            row[column(grade, r.name)] = (
                r.status if r.status == "pass" else f"{r.status}: {r.message}"
            )
        rows.append(row)
    rows += [
        {"submission": n, "notes": f"not graded: {why}"} for n, why in skipped.items()
    ]
    rows.sort(key=lambda row: row["submission"])  # a student's files side by side
    by_lab = sorted(grades.values(), key=lambda g: g.chapter)  # columns in lab order
    checks = dict.fromkeys(column(g, r.name) for g in by_lab for r in g.results)
    # Written beside the target and renamed into place: an interrupted run leaves the previous
    # grades file whole, never half a table.
    tmp = args.out.with_name(args.out.name + ".partial")
    with open(tmp, "w", newline="") as f:
        fields = [
            "submission",
            "lab",
            "framework",
            "passed",
            "checks",
            *checks,
            "notes",
        ]
        writer = csv.DictWriter(f, fieldnames=fields)
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
