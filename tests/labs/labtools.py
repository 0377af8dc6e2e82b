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
