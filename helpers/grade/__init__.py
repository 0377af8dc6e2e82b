"""Grade a folder of lab submissions with the labs' own self-checks, each exercise where it stands.

    python -m helpers.grade submissions/                    # prints a line each, writes grades.csv
    python -m helpers.grade submissions/ --out marks.csv --summary summary.md --timeout 120

Each ``*.ipynb`` under the folder (subfolders included: one per student works well) is one
submission, one CSV row per file: a student's two files are two rows. Other files are listed as
not graded; hidden files and ``.ipynb_checkpoints`` are left out. A notebook's metadata
(``course``: kind, chapter, framework, which the course's notebooks carry) says which lab it
is; if an editor dropped it, the lab its check calls and ``from helpers import ... as H`` name
is graded, with a note. The lab's self-checks are read from the solution source
(``solutions/NN-slug/in-<framework>.py``) of the course graded against (``--course``, by
default this checkout), and run from that course's helpers: its adapters
(``helpers/labs/labNN/torch.py``, ``jax.py``), its root first on the kernel's ``PYTHONPATH``.
Before grading, every check its solutions call must be in its adapters. The notebook then runs
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

Each inserted check runs from a fresh copy of the lab's adapter, loaded from its file under a
private name: a student's ``H = ...`` does not break it, and a rebound ``H.lab01.check_x``
does not replace it, and a check passes only if it returns (its cell then prints a line made at
random for this run). A student cell that reaches into the course's checks or helpers (rebinds,
deletes or ``setattr``s their attributes, through aliases too; writes to ``sys.modules`` or a
module's internals; imports ``helpers.labs``; installs an IPython exception handler) gets a
note to review the submission by hand. This is a deterrent, not a guarantee: the checks run in
the student's kernel, beside the student's code.

A check is ``pass``, ``fail`` (its ``CheckFailed``), ``timed out``, or ``error`` (anything else,
e.g. a function the notebook never defined). Each cell may run ``--timeout`` seconds; then the
kernel is interrupted and the run goes on with the next cell, so an endless loop fails one
exercise, not the submission. A cell that ignores the interrupt for 10 more seconds gets its
kernel stopped; the checks after it are then reported as not run (the kernel is not
restarted). ``--timeout`` must be above 0.

Prints a line per submission (its score, a mark per check: ✅ pass, ❌ fail, ⚠ error, ⏱ timed
out, and the checks not passed), then writes one CSV row per submission: submission, lab,
framework, passed and checks (numbers: the score is passed/checks), one column per check
(``pass``, or the status and the check's message and hint, ``fail: not implemented yet. Hint:
...``; prefixed with the lab number when the folder holds several labs), notes (the first
student cell that raised, cells that timed out, a kernel that died, missing metadata, a cell
that changes the checks, a top-level ``H = ...`` that later cells trip on). A note names a
cell by its number among the notebook's code cells and its first line, and says when the cell
is the lab's own, unchanged. A submission that could not be graded has empty passed and
checks and says why. With ``--summary``, a Markdown table of how many submissions passed each
exercise. A lab notebook takes about 10-15 s on two cores at the default ``BOOK_SCALE=smoke``
(set when unset).

Exit status: 0 when the files are written (not-graded rows included), 2 when there is nothing
to grade or a path is wrong: no such folder, a file that is not a notebook, an output that
cannot be written (tried before grading), a ``--course`` without ``solutions/`` or whose
solutions call a check its adapters lack, a ``--timeout`` not above 0 (nothing written).
The run's own outputs inside the folder are not submissions.

This runs the students' code with your permissions: run it in a container or a throw-away
account.
"""

from helpers.grade.course import NotGradable, check_calls
from helpers.grade.notebook import CheckResult, Grade, grade_notebook
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
