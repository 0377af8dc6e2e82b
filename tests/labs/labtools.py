"""What the lab tests share: a lab's checks, and the functions its solution or stub defines."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType

import jupytext

from helpers.notebooks import ROOT, notebook_name

FRAMEWORKS = {"pytorch": "torch", "jax": "jax"}  # notebook name -> adapter module
CHECK_CALL = re.compile(r"^H\.(lab\d\d)\.(check_\w+)\((\w+)\)$")


def adapter(lab: str, framework: str) -> ModuleType:
    """``helpers.labs.<lab>.torch`` or ``.jax``: the module a notebook reaches as ``H.<lab>``."""
    return importlib.import_module(f"helpers.labs.{lab}.{FRAMEWORKS[framework]}")


def source(lab: str, framework: str, kind: str = "solutions") -> Path:
    """The ``.py`` source of a lab's solution (or, with ``kind="labs"``, of its stub)."""
    chapter = next(p for p in (ROOT / kind).iterdir() if p.name[:2] == lab[3:])
    return chapter / f"{notebook_name(framework)}.py"


def check_calls(path: Path) -> dict[str, str]:
    """``{check name: name of the function it is called with}``, read from a lab source."""
    calls = {}
    for cell in jupytext.read(path, fmt="py:percent").cells:
        match = CHECK_CALL.match(cell.source.strip())
        if cell.cell_type == "code" and match:
            calls[match.group(2)] = match.group(3)
    return calls


def exercise_functions(path: Path) -> dict:
    """Run a lab source's code cells, minus the Colab setup and the checks; its namespace."""
    namespace: dict = {}
    for cell in jupytext.read(path, fmt="py:percent").cells:
        code = cell.source.strip()
        if cell.cell_type != "code" or "google.colab" in code or CHECK_CALL.match(code):
            continue
        exec(compile(code, str(path), "exec"), namespace)
    return namespace


def checks(lab: str, framework: str) -> dict:
    """``{exercise (the function's name): its check}``, from the solution's check calls."""
    module = adapter(lab, framework)
    calls = check_calls(source(lab, framework))
    return {function: getattr(module, check) for check, function in calls.items()}


def mistake_table_tests(lab: str, mistakes: dict[str, list]) -> tuple:
    """The three tests every lab's mistakes table gets, for ``lab`` and its ``mistakes``.

    ``mistakes`` maps a framework to ``(exercise, wrong solution, hint key)`` rows. Each row
    must fail its check with exactly that hint; every exercise needs at least two rows; every
    hint the lab declares must be produced by some row. Assign the returned functions to
    ``test_*`` names in the lab's test module so pytest collects them.
    """
    import pytest

    from helpers.labs import CheckFailed

    rows = [(fw, *m) for fw, table in mistakes.items() for m in table]

    @pytest.mark.parametrize(
        ("framework", "exercise", "wrong", "hint"),
        rows,
        ids=[f"{fw}-{ex}-{hint}" for fw, ex, _, hint in rows],
    )
    def catches_mistake_with_its_hint(framework, exercise, wrong, hint):
        with pytest.raises(CheckFailed) as info:
            checks(lab, framework)[exercise](wrong)
        assert info.value.exercise == exercise
        assert info.value.hint == adapter(lab, framework).HINTS[hint], (
            info.value.message
        )

    @pytest.mark.parametrize("framework", mistakes)
    def at_least_two_mistakes_per_exercise(framework):
        table = mistakes[framework]
        counts = {ex: sum(m[0] == ex for m in table) for ex in checks(lab, framework)}
        assert min(counts.values()) >= 2, counts

    @pytest.mark.parametrize("framework", mistakes)
    def every_declared_hint_is_produced_by_a_mistake(framework):
        declared = set(adapter(lab, framework).HINTS)
        fed = {hint for _, _, hint in mistakes[framework]}
        assert declared - fed == set(), "hints that no mistake in the table produces"
        assert fed <= declared

    return (
        catches_mistake_with_its_hint,
        at_least_two_mistakes_per_exercise,
        every_declared_hint_is_produced_by_a_mistake,
    )
