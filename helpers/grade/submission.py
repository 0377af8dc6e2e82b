"""What the grader reads from a submission's cells: which lab a notebook without its metadata
is, a cell that tampers with the checks, the first error of the student's own code.

The rules these serve are in the package docstring, ``helpers.grade``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = [
    "ALIAS",
    "cell_name",
    "first_error",
    "first_line",
    "lab_from_cells",
    "rebinds_h",
    "tampering",
]

# The private name of the lab adapter the inserted checks load (never the student's `H`).
ALIAS = "_grader_lab"
# What names a lab in a notebook that lost its metadata: its check calls and its import.
_LAB_CALL = re.compile(r"H\.(lab\d\d)\.check_\w+\(\w+\)")
# Module internals a lab never touches: the ways around a rebinding that tampering() sees.
_INTERNALS = {
    "__spec__",
    "__loader__",
    "__dict__",
    "__code__",
    "__globals__",
    "__builtins__",
}
# sys.modules methods that change it (reading it, `"google.colab" in sys.modules`, is fine)
_WRITES = {
    "pop",
    "popitem",
    "update",
    "setdefault",
    "clear",
    "__setitem__",
    "__delitem__",
}


def first_line(source: str) -> str:
    """A cell's first non-blank line, cut to 40 characters, in backquotes (for notes)."""
    line = next((s.strip() for s in source.splitlines() if s.strip()), "")
    return f"`{line[:40]}{'…' if len(line) > 40 else ''}`"


def cell_name(source: str, number: int, handed_out: set[str] = frozenset()) -> str:
    """How a note names a student's cell: ``code cell 7 (`x = f(y)`)``, its number among the
    submission's code cells; a cell that is the lab's own, unchanged (in ``handed_out``), is
    said to be one, since what it raises comes from the student's code it uses."""
    if source.strip() in handed_out:
        return (
            f"code cell {number} ({first_line(source)}, a cell of the lab, unchanged, "
            "that calls the student's code)"
        )
    return f"code cell {number} ({first_line(source)})"


def _parse(source: str) -> ast.Module | None:
    """A cell's code as a syntax tree, its IPython syntax (``%time``, ``x = !ls``, ``H?``)
    turned into the calls IPython runs; None if it still does not parse."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return ast.parse(TransformerManager().transform_cell(source))
    except (SyntaxError, ValueError):
        return None


def lab_from_cells(nb, root: Path) -> tuple[str, str] | None:
    """(chapter, framework) read from the code cells when their check calls name one lab
    (``H.lab05.check_x(x)``, anywhere in a cell; comments and strings do not count) and
    their imports one half (``from helpers import torch as H``), else None."""
    labs, halves = set(), set()
    for cell in nb.cells:
        tree = _parse(cell.source) if cell.cell_type == "code" else None
        for node in ast.walk(tree) if tree else ():
            if isinstance(node, ast.Call) and (
                m := _LAB_CALL.fullmatch(ast.unparse(node))
            ):
                labs.add(m.group(1))
            if isinstance(node, ast.ImportFrom) and node.module == "helpers":
                halves |= {a.name for a in node.names if a.asname == "H"}
    halves &= {"torch", "jax"}
    if len(labs) != 1 or len(halves) != 1:
        return None
    chapters = [p.name for p in (root / "solutions").glob(f"{labs.pop()[3:]}-*")]
    framework = "pytorch" if halves.pop() == "torch" else "jax"
    return (chapters[0], framework) if len(chapters) == 1 else None


def _chain_root(node: ast.AST) -> str | None:
    """The name a chain of attributes and subscripts starts from (``H`` of ``H.lab01.x[0]``);
    a call's result (a model built by ``H.vision.CifarNet(...)``) is the student's own object:
    None."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def tampering(sources: list[str]) -> int | None:
    """The index of the first of a notebook's code cells (in order) that reaches into the
    course's checks, or None. Such a cell rebinds, deletes or ``setattr``s an attribute of
    ``H``, ``helpers``, ``importlib`` or a name bound to one of them in any earlier or the same
    cell (``m = H.lab01``, ``import helpers.torch as T``); writes to a module's internals
    (``__spec__``, ``__dict__``, ...) or to ``sys.modules``; imports ``helpers.labs`` or
    ``helpers.grade``; installs an IPython exception handler or event hook; or names the
    grader's private names. No lab needs any of this; it is how a pass is faked. A deterrent,
    not a proof: code can hide its intent (``exec``), so a suspicious submission is read by
    hand."""
    roots = {"H", "helpers", "importlib"}  # grown, cell by cell, with their aliases
    for index, source in enumerate(sources):
        tree = _parse(source)
        if tree is None:
            continue
        # aliases first: `m = H.lab01`, `import helpers.x as T`
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and (
                node.value is not None and _chain_root(node.value) in roots
            ):
                targets = getattr(node, "targets", None) or [node.target]
                roots |= {
                    n.id
                    for t in targets
                    for n in ast.walk(t)
                    if isinstance(n, ast.Name)
                }
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = getattr(node, "module", None) or ""
                for alias in node.names:
                    if (module or alias.name).split(".")[0] in ("helpers", "importlib"):
                        roots.add(alias.asname or alias.name.split(".")[0])
        if any(_reaches_in(node, roots) for node in ast.walk(tree)):
            return index
    return None


def _reaches_in(node: ast.AST, roots: set[str]) -> bool:
    """One node of :func:`tampering`'s rules."""
    targets = []
    if isinstance(node, (ast.Assign, ast.Delete)):
        targets = node.targets
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.withitem)):
        targets = [getattr(node, "target", None) or node.optional_vars]
    # each target and the parts of a tuple target, not the expressions inside an index
    flat = [
        e for t in targets if t is not None for e in getattr(t, "elts", None) or [t]
    ]
    for target in flat:
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            text = ast.unparse(target)
            if _chain_root(target) in roots or text.startswith("sys.modules"):
                return True
            if any(f".{name}" in text for name in _INTERNALS):
                return True
    if isinstance(node, ast.Call):
        func = ast.unparse(node.func)
        if func in ("setattr", "delattr", "vars") and node.args:
            return _chain_root(node.args[0]) in roots or ".__" in ast.unparse(
                node.args[0]
            )
        if func.startswith("sys.modules.") and func.rsplit(".", 1)[1] in _WRITES:
            return True
        if func.endswith((".set_custom_exc", ".events.register")):
            return True
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        names += [a.name for a in node.names]
        if any(n.startswith(("helpers.labs", "helpers.grade")) for n in names):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "helpers"
            and any(a.name in ("labs", "grade") for a in node.names)
        ):
            return True
    return isinstance(node, ast.Name) and node.id.startswith(ALIAS)


def first_error(
    cells: list,
    graded: dict[int, str],
    skip: set[int],
    name: Callable[[int], str] | None = None,
) -> str | None:
    """The first student cell (not a check, not interrupted) that raised, and its error;
    ``name(index)`` says which cell (default: ``the cell `<its first line>```)."""
    for i, cell in enumerate(cells):
        if cell.cell_type != "code" or i in graded or i in skip:
            continue
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                error = " ".join(f"{o.get('ename')}: {o.get('evalue')}".split())[:160]
                which = name(i) if name else f"the cell {first_line(cell.source)}"
                return f"{which} raised {error}"
    return None


def _binds_h(statement: ast.stmt) -> bool | None:
    """True if a top-level statement binds ``H`` at the notebook's level (``B, H, W, C =
    x.shape``, ``for H in ...``), False if it imports the helpers as ``H`` again, else None.
    Names bound inside a function, class, lambda or comprehension are their own."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True if statement.name == "H" else None  # its body is its own
    stack: list[ast.AST] = [statement]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
            (a.asname or a.name) == "H" for a in node.names
        ):
            return getattr(node, "module", None) != "helpers"
        if (
            isinstance(node, ast.Name)
            and node.id == "H"
            and isinstance(node.ctx, ast.Store)
        ):
            return True
        scopes = (
            ast.FunctionDef,
            ast.AsyncFunctionDef,
            ast.ClassDef,
            ast.Lambda,
            ast.ListComp,
            ast.SetComp,
            ast.DictComp,
            ast.GeneratorExp,
        )
        stack += [c for c in ast.iter_child_nodes(node) if not isinstance(c, scopes)]
    return None


def rebinds_h(sources: Mapping[int, str]) -> int | None:
    """The first code cell (``{index: source}``, in order) that rebinds ``H``, the course's
    helpers, at the notebook's top level when a later statement uses ``H.<name>``: that
    use then fails with ``AttributeError: 'int' object has no attribute ...``; else None."""
    rebound = None
    for index, source in sources.items():
        tree = _parse(source)
        for statement in tree.body if tree else ():
            uses = any(
                isinstance(n, ast.Attribute)
                and isinstance(n.value, ast.Name)
                and n.value.id == "H"
                for n in ast.walk(statement)
            )
            if uses and rebound is not None:
                return rebound
            binds = _binds_h(statement)
            if binds is False:
                rebound = None
            elif binds and rebound is None:
                rebound = index
    return None
