"""What the grader reads from a submission's cells: which lab a notebook without its metadata
is, a cell that tampers with the checks, the first error of the student's own code.

The rules these serve are in the package docstring, ``helpers.grade``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

__all__ = ["ALIAS", "first_error", "first_line", "lab_from_cells", "tampering"]

# The private name of the lab adapter the inserted checks load (never the student's `H`).
ALIAS = "_grader_lab"
# What names a lab in a notebook that lost its metadata: its check calls and its import.
_LAB_CALL = re.compile(r"\bH\.(lab\d\d)\.check_\w+\(")
_HALF_IMPORT = re.compile(r"^from helpers import (torch|jax) as H\b", re.M)


def first_line(source: str) -> str:
    """A cell's first non-blank line, cut to 40 characters, in backquotes (for notes)."""
    line = next((s.strip() for s in source.splitlines() if s.strip()), "")
    return f"`{line[:40]}{'…' if len(line) > 40 else ''}`"


def lab_from_cells(nb, root: Path) -> tuple[str, str] | None:
    """(chapter, framework) read from the cells when they name one lab (``H.lab05.check_``)
    and one half (``from helpers import torch as H``), else None."""
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    labs, halves = set(_LAB_CALL.findall(code)), set(_HALF_IMPORT.findall(code))
    if len(labs) != 1 or len(halves) != 1:
        return None
    chapters = [p.name for p in (root / "solutions").glob(f"{labs.pop()[3:]}-*")]
    framework = "pytorch" if halves.pop() == "torch" else "jax"
    return (chapters[0], framework) if len(chapters) == 1 else None


def tampering(source: str) -> bool:
    """Whether a student's cell rebinds or deletes an attribute of the course's helpers (``H.``,
    ``helpers.``, a ``labNN`` module), ``setattr``s one, imports the checks or the grader, or
    names the grader's private names: code a lab never needs, and the way to fake a pass."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # magics: look at the Python lines only
        lines = [
            ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))
        ]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            return False

    def course(node: ast.AST) -> bool:
        text = ast.unparse(node)
        return text.startswith(("H.", "helpers.")) or bool(
            re.search(r"\blab\d\d\b", text)
        )

    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = (
                node.targets
                if isinstance(node, (ast.Assign, ast.Delete))
                else [node.target]
            )
            if any(isinstance(t, ast.Attribute) and course(t) for t in targets):
                return True
        if isinstance(node, ast.Call) and ast.unparse(node.func) in (
            "setattr",
            "delattr",
        ):
            if node.args and ast.unparse(node.args[0]).split(".")[0] in (
                "H",
                "helpers",
            ):
                return True
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names]
            if any(n.startswith(("helpers.labs", "helpers.grade")) for n in names):
                return True
        if isinstance(node, ast.Name) and node.id.startswith(ALIAS):
            return True
    return False


def first_error(cells: list, graded: dict[int, str], skip: set[int]) -> str | None:
    """The first student cell (not a check, not interrupted) that raised, and its error."""
    for i, cell in enumerate(cells):
        if cell.cell_type != "code" or i in graded or i in skip:
            continue
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                error = " ".join(f"{o.get('ename')}: {o.get('evalue')}".split())[:160]
                return f"the cell {first_line(cell.source)} raised {error}"
    return None
