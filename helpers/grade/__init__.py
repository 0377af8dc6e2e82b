"""Grade a folder of lab submissions with the labs' own self-checks, each exercise where it stands.

    python -m helpers.grade submissions/                    # prints a table, writes grades.csv
    python -m helpers.grade submissions/ --out marks.csv --summary summary.md --timeout 120

Each ``*.ipynb`` under the folder is one submission. Its metadata (``course``: kind, chapter,
framework, which the course's notebooks carry) says which lab it is; the lab's self-checks are
read from the solution source (``solutions/NN-slug/in-<framework>.py``). The notebook then runs
from top to bottom in a fresh kernel, errors allowed, with the canonical checks in place of the
student's check cells, so each exercise is judged where it stands and later cells (a ``H = 256``,
a "Going further" cell that redefines ``accuracy``) cannot change its result.

A check cell is a code cell made only of the lab's check calls (``H.lab01.check_name(name)``;
comments and layout ignored). The grader takes them all out and puts each exercise's canonical
check back where the exercise stands:

- at each of its check cells that comes after the first cell defining its function
  (``def name(``), or at every one if no cell defines it that way. With several (a student who
  duplicated an exercise to retry it), the best result counts: trying again never costs a
  point. A check cell above the first definition is dropped (there it could only report that
  the function does not exist yet);
- with no such check cell (deleted, or edited into something else, which then runs as the
  student's own code), right after the first cell defining the function, or at the end of the
  notebook if no cell does.

The inserted checks reach the helpers under a private name, so a student's ``H = ...`` does not
break them.

A check is ``pass``, ``fail`` (its ``CheckFailed``), ``timed out``, or ``error`` (anything else,
e.g. a function the notebook never defined). Each cell may run ``--timeout`` seconds; then the
kernel is interrupted and the run goes on with the next cell, so an endless loop fails one
exercise, not the submission. A cell that ignores the interrupt for 10 more seconds gets its
kernel stopped; the checks after it are then reported as not run.

Writes one CSV row per submission (submission, score, one column per check, notes: cells of the
student's that timed out, a kernel that died) and, with ``--summary``, a Markdown table of how
many submissions passed each exercise.

This runs the students' code with your permissions: run it in a container or a throw-away
account.
"""

from helpers.grade.notebook import (
    CheckResult,
    Grade,
    NotGradable,
    check_calls,
    grade_notebook,
)
from helpers.grade.report import main, summary

__all__ = [
    "CheckResult",
    "Grade",
    "NotGradable",
    "check_calls",
    "grade_notebook",
    "main",
    "summary",
]
