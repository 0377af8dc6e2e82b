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
_LAB_CALL = re.compile(r"H\.(lab\d\d)\.check_\w+\(\w+\)")
_MAGIC = re.compile(r"\s*[%!]")
# Module internals a lab never touches: the ways around a rebinding that tampering() sees.
_INTERNALS = {
    "__spec__",
    "__loader__",
    "__dict__",
    "__code__",
    "__globals__",
    "__builtins__",
}
_HALF_IMPORT = re.compile(r"^from helpers import (torch|jax) as H\b", re.M)


def first_line(source: str) -> str:
    """A cell's first non-blank line, cut to 40 characters, in backquotes (for notes)."""
    line = next((s.strip() for s in source.splitlines() if s.strip()), "")
    return f"`{line[:40]}{'…' if len(line) > 40 else ''}`"


def _parse(source: str) -> ast.Module | None:
    """A cell's code as a syntax tree; magics (``%``, ``!`` lines) left out; None if invalid."""
    for text in (
        source,
        "\n".join(ln for ln in source.splitlines() if not _MAGIC.match(ln)),
    ):
        try:
            return ast.parse(text)
        except SyntaxError:
            continue
    return None


def lab_from_cells(nb, root: Path) -> tuple[str, str] | None:
    """(chapter, framework) read from the cells when their check-call statements name one lab
    (``H.lab05.check_x(x)``; comments and strings do not count) and one half (``from helpers
    import torch as H``), else None."""
    labs, halves = set(), set()
    for cell in nb.cells:
        tree = _parse(cell.source) if cell.cell_type == "code" else None
        for statement in tree.body if tree else []:
            if m := _LAB_CALL.fullmatch(ast.unparse(statement)):
                labs.add(m.group(1))
        halves |= set(_HALF_IMPORT.findall(cell.source))
    if len(labs) != 1 or len(halves) != 1:
        return None
    chapters = [p.name for p in (root / "solutions").glob(f"{labs.pop()[3:]}-*")]
    framework = "pytorch" if halves.pop() == "torch" else "jax"
    return (chapters[0], framework) if len(chapters) == 1 else None


def tampering(source: str) -> bool:
    """Whether a student's cell reaches into the course's checks: it rebinds, deletes or
    ``setattr``s an attribute of ``H``, ``helpers`` or a name bound to either (``m = H.lab01``),
    imports ``helpers.labs`` or ``helpers.grade``, touches module internals (``__spec__``,
    ``__dict__``, ``__code__``, ``sys.modules``, ...), or names the grader's private names.
    No lab needs any of this; it is how a pass is faked. A deterrent, not a proof: code can
    hide its intent (``exec``), so a flagged or suspicious submission is read by hand."""
    tree = _parse(source)
    if tree is None:
        return False
    roots = {"H", "helpers"}  # names bound to the course's modules, grown as found

    def root(node: ast.AST) -> str | None:
        # The name a chain of attributes and subscripts starts from; a call's result (a
        # model built by H.vision.CifarNet(...)) is the student's own object: no root.
        while isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        return node.id if isinstance(node, ast.Name) else None

    for node in ast.walk(
        tree
    ):  # aliases first: `m = H.lab01`, `from helpers import labs`
        if isinstance(node, ast.Assign) and root(node.value) in roots:
            roots |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "helpers"
        ):
            roots |= {a.asname or a.name for a in node.names}
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.Delete)):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.withitem)):
            targets = [getattr(node, "target", None) or node.optional_vars]
        flat = [n for t in targets if t is not None for n in ast.walk(t)]
        if any(
            isinstance(t, (ast.Attribute, ast.Subscript)) and root(t) in roots
            for t in flat
        ):
            return True
        call = isinstance(node, ast.Call) and ast.unparse(node.func)
        if (
            call in ("setattr", "delattr", "vars")
            and node.args
            and root(node.args[0]) in roots
        ):
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names]
            if any(n.startswith(("helpers.labs", "helpers.grade")) for n in names):
                return True
        if isinstance(node, ast.Attribute) and node.attr in _INTERNALS:
            return True
        # sys.modules may be read (`"google.colab" in sys.modules`), not changed
        written = [ast.unparse(t) for t in flat] + [call or ""]
        if any(w.startswith("sys.modules") and w != "sys.modules.get" for w in written):
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
