"""Grade one lab submission: find its lab, put the canonical checks in place, run it.

The rules (where each check goes, what counts) are in the package docstring, ``helpers.grade``.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import logging
import re
import secrets
import signal
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from helpers.grade.course import (
    NotGradable,
    adapter,
    check_calls,
    kernel_env,
    lab_cells,
    lab_of,
)
from helpers.grade.submission import (
    ALIAS,
    cell_name,
    first_error,
    rebinds_h,
    tampering,
)
from helpers.notebooks import ROOT

__all__ = ["CheckResult", "Grade", "grade_notebook"]

# Seconds a cell gets after the interrupt before its kernel is stopped.
_GRACE_S = 10.0
# Best first: with several check cells for one exercise, the best result counts.
_RANK = {"pass": 0, "fail": 1, "timed out": 2, "error": 3}
_MARK = {"pass": "✅", "fail": "❌", "timed out": "⏱", "error": "⚠"}
# The start of a CheckFailed message, `❌ adamw: `: the CSV column already says it.
_FAILED = re.compile(r"^❌ [^:]+: ")


@dataclass(frozen=True)
class CheckResult:
    check: str  # the call, e.g. "H.lab01.check_preprocess(preprocess)"
    status: str  # "pass" | "fail" | "timed out" | "error"
    message: str = ""

    @property
    def name(self) -> str:
        """The check's name, e.g. ``"check_preprocess"`` (a CSV column)."""
        return self.check.split("(")[0].rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Grade:
    """One graded submission: its lab, one result per check (the lab's order), notes."""

    chapter: str  # e.g. "01-introduction"
    framework: str  # "pytorch" | "jax"
    results: tuple[CheckResult, ...]
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> int:
        """How many of the lab's checks passed."""
        return sum(r.status == "pass" for r in self.results)

    @property
    def score(self) -> str:
        """Checks passed out of the lab's checks, e.g. ``"3/4"``."""
        return f"{self.passed}/{len(self.results)}"


def _check_cell(source: str, calls: Sequence[str]) -> list[str] | None:
    """The calls of a cell made only of check calls, or None for any other cell."""
    try:
        body = ast.parse(source).body
    except SyntaxError:  # magics, or a cell that does not parse: the student's code
        return None
    found = [ast.unparse(statement) for statement in body]
    return found if found and all(call in calls for call in found) else None


def _place_checks(
    cells: list,
    calls: Sequence[str],
    framework: str,
    token: str = "passed",
    root: Path = ROOT,
):
    """The cells to run, and which of them are graded: {index: call}. See the module doc.

    Each check loads the lab's adapter for ``framework`` from the course at ``root``."""
    import nbformat

    code = [(i, c) for i, c in enumerate(cells) if c.cell_type == "code"]
    check_cells = {i: f for i, c in code if (f := _check_cell(c.source, calls))}
    # check cell index -> calls graded there; cell index -> calls inserted after it (-1: end)
    in_place: dict[int, list[str]] = {}
    after: dict[int, list[str]] = {}
    for call in calls:
        function = call[call.index("(") + 1 : -1]
        pattern = rf"^(?:async[ \t]+)?def[ \t]+{re.escape(function)}[ \t]*\("
        defines = re.compile(pattern, re.M)
        first = next((i for i, c in code if defines.search(c.source)), None)
        spots = [
            i
            for i, found in check_cells.items()
            if call in found and (first is None or i > first)
        ]
        for i in spots:
            in_place.setdefault(i, []).append(call)
        if not spots:
            after.setdefault(-1 if first is None else first, []).append(call)

    out: list = []
    graded: dict[int, str] = {}

    def add(call: str) -> None:
        # A fresh copy of the lab's adapter, loaded from its file by a new loader, outside
        # sys.modules: a student's rebinding of H.labNN.check_x, or of the module's spec,
        # does not reach the check that runs here (the modules it imports are shared:
        # tampering() flags code that changes them).
        lab = call.split(".")[1]  # "lab05"
        path = adapter(root, lab, framework)  # .../helpers/labs/lab05/torch.py
        source = (
            f"import importlib.util as {ALIAS}_util\n"
            f"{ALIAS}_spec = {ALIAS}_util.spec_from_file_location(\n"
            f"    'helpers.labs.{lab}.{path.stem}', {str(path)!r}\n"
            ")\n"
            f"{ALIAS} = {ALIAS}_util.module_from_spec({ALIAS}_spec)\n"
            f"{ALIAS}_spec.loader.exec_module({ALIAS})\n"
            f"{call.replace(f'H.{lab}.', f'{ALIAS}.', 1)}\n"
            # printed only if the check returned: a pass the student's code cannot forge
            f"print({token!r})"
        )
        graded[len(out)] = call
        out.append(nbformat.v4.new_code_cell(source))

    for i, cell in enumerate(cells):
        if i in check_cells:
            for call in in_place.get(i, []):
                add(call)
        else:
            out.append(cell)
        for call in after.get(i, []):
            add(call)
    for call in after.get(-1, []):
        add(call)
    return out, graded


def _result(call: str, cell, token: str) -> CheckResult:
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        e = errors[0]
        if e.get("ename") == "CheckFailed":
            return CheckResult(call, "fail", _failure(e.get("evalue", "")))
        text = f"{e.get('ename')}: {e.get('evalue')}"
        return CheckResult(call, "error", " ".join(text.split()))
    printed = "".join(o.get("text", "") for o in cell.get("outputs", []) if "text" in o)
    if token in printed.splitlines():
        return CheckResult(call, "pass")
    return CheckResult(call, "error", "the check printed no result")


def _failure(text: str) -> str:
    """A ``CheckFailed`` message for a CSV cell: ``not implemented yet. Hint: ...`` (the
    mark and the exercise's name left out: the column says them)."""
    problem, _, hint = _FAILED.sub("", text.strip()).partition("\n")
    problem = " ".join(problem.split())
    hint = " ".join(hint.split())
    if hint and not problem.endswith((".", "!", "?", ":")):
        problem += "."
    return f"{problem} {hint}".strip()


def _client_class():
    from jupyter_core.utils import ensure_async
    from nbclient import NotebookClient

    class Client(NotebookClient):
        """Runs every cell under a watchdog: interrupt after ``limit``, stop the kernel later."""

        def __init__(self, nb, *, limit: float, **kwargs) -> None:
            # nbclient's own timeout stays off: on a cell that ignores interrupts it would
            # interrupt again and again, forever.
            super().__init__(nb, timeout=None, **kwargs)
            self.limit = limit
            self.timed_out: set[int] = set()  # indices of cells interrupted
            self.running: int | None = None  # the cell running when the kernel died
            self.stopped = False  # True if the watchdog stopped the kernel

        async def _watch(self, index: int) -> None:
            await asyncio.sleep(self.limit)
            self.timed_out.add(index)
            await ensure_async(self.km.interrupt_kernel())
            await asyncio.sleep(_GRACE_S)
            self.stopped = True
            await ensure_async(self.km.signal_kernel(signal.SIGKILL))

        async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
            if cell.cell_type != "code":
                return await super().async_execute_cell(
                    cell, cell_index, *args, **kwargs
                )
            self.running = cell_index
            watchdog = asyncio.ensure_future(self._watch(cell_index))
            try:
                out = await super().async_execute_cell(
                    cell, cell_index, *args, **kwargs
                )
            finally:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
            self.running = None
            return out

    return Client


def _quiet_log() -> logging.Logger:
    # nbclient logs each kernel death and IOPub delay; the report says what matters.
    log = logging.getLogger("helpers.grade.nbclient")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


def grade_notebook(path: Path, *, timeout: float = 60, root: Path = ROOT) -> Grade:
    """Run one submission with its lab's checks in place; one result per check.

    ``timeout``: seconds each cell may run before it is interrupted. Raises ``NotGradable`` if
    the notebook is unreadable or not a lab of the course at ``root``.
    """
    import nbformat
    from nbclient.exceptions import DeadKernelError

    try:
        # nbformat warns about cell ids and versions: not the student's problem.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.read(path, as_version=4, capture_validation_error={})
    except Exception as e:
        # nbformat's JSON error quotes the file's start: name the problem instead
        why = (
            "the file is not JSON: empty, cut short, or not a notebook"
            if type(e).__name__ == "NotJSONError"
            else f"{type(e).__name__}: {' '.join(str(e).split())[:120]}"
        )
        raise NotGradable(f"not a readable notebook ({why})") from None
    chapter, framework, lab_note = lab_of(nb, root)
    calls = check_calls(chapter, framework, root=root)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tampered = tampering([c.source for c in code])
    # A fresh random line per run, printed by each check cell after its check returns.
    token = f"grader pass {secrets.token_hex(8)}"
    numbers = {id(c): n for n, c in enumerate(code, 1)}  # as the student sees them
    nb.cells, graded = _place_checks(nb.cells, calls, framework, token, root)
    number = {i: numbers[id(c)] for i, c in enumerate(nb.cells) if id(c) in numbers}
    handed_out = lab_cells(chapter, framework, root)
    env = kernel_env(root)  # the course's own helpers first: its checks run
    died = None
    # The student's code writes its files, if any, in a throw-away folder.
    with tempfile.TemporaryDirectory() as cwd:
        client = _client_class()(
            nb,
            limit=timeout,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": cwd}},
            log=_quiet_log(),
            # The kernel's own start-up warnings would repeat once per submission.
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
        try:
            client.execute(env=env)
        except DeadKernelError:
            died = client.running or 0

    def where(i: int) -> str:
        # An inserted check reads as its name; a student's cell as its number and first line.
        if i in graded:
            return CheckResult(graded[i], "").name
        return cell_name(nb.cells[i].source, number[i], handed_out)

    notes = [lab_note] if lab_note else []
    if tampered is not None:
        notes.append(
            f"{cell_name(code[tampered].source, tampered + 1, handed_out)} changes the "
            "course's checks or helpers: the checks ran from a fresh copy of the lab, but "
            "review this submission by hand"
        )
    if died is not None:
        how = "was stopped after ignoring the interrupt" if client.stopped else "died"
        death = f"the kernel {how} in {where(died)}"
        notes.append(death)
    notes += [
        f"{where(i)} ran past {timeout:g} s: interrupted"
        for i in sorted(client.timed_out - set(graded))
    ]
    if error := first_error(nb.cells, graded, client.timed_out, where):
        notes.append(error)
    # the student's code cells (the inserted checks do not use `H`)
    students = {i: c.source for i, c in enumerate(nb.cells) if i in number}
    if (rebound := rebinds_h(students)) is not None:
        notes.append(
            f"{where(rebound)} assigns to `H`, the course's helpers: later cells that use "
            "`H.` fail with AttributeError (students.md: give the size another name)"
        )
    best: dict[str, CheckResult] = {}
    for i, call in graded.items():
        if i in client.timed_out:
            why = "interrupted" if i != died else "its kernel stopped"
            result = CheckResult(call, "timed out", f"ran past {timeout:g} s: {why}")
        elif i == died:
            result = CheckResult(call, "error", "the kernel died during this check")
        elif died is not None and i > died:
            result = CheckResult(call, "error", f"not run: {death}")
        else:
            result = _result(call, nb.cells[i], token)
        if call not in best or _RANK[result.status] < _RANK[best[call].status]:
            best[call] = result
    return Grade(chapter, framework, tuple(best[c] for c in calls), tuple(notes))
