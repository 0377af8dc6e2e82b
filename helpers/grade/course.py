"""What the grader reads from the course it grades against (``--course``, by default this
checkout): a lab's check calls, which lab a notebook is, the adapters the checks load, the lab's
own cells, and the kernel's environment, so that a course copy's checks are the ones that run.

The rules these serve are in the package docstring, ``helpers.grade``.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

from helpers.grade.submission import lab_from_cells
from helpers.notebooks import FRAMEWORKS, ROOT, notebook_name

__all__ = [
    "NotGradable",
    "adapter",
    "check_calls",
    "kernel_env",
    "lab_cells",
    "lab_of",
    "missing_checks",
]

_CHECK_CALL = re.compile(r"^H\.lab\d\d\.check_\w+\(\w+\)$")
# The half of the helpers a framework's notebooks import as `H` (`from helpers import torch`).
_HALF = {"pytorch": "torch", "jax": "jax"}
_HOW_TO_FIX = (
    "grade the notebook downloaded from the course (File > Download), or add to its "
    'metadata "course": {"kind": "labs", "chapter": "<NN-slug, e.g. 01-introduction>", '
    '"framework": "<pytorch or jax>"}'
)


class NotGradable(ValueError):
    """A submission the grader cannot grade at all (not a lab notebook, unknown lab)."""


def check_calls(chapter: str, framework: str, root: Path = ROOT) -> list[str]:
    """The self-check calls of a lab, in order, read from its solution source.

    Raises ``NotGradable`` if the course at ``root`` has no such lab.
    """
    import jupytext

    source = root / "solutions" / chapter / f"{notebook_name(framework)}.py"
    if not source.is_file():
        raise NotGradable(f"no lab {chapter} for {framework}: {source} does not exist")
    nb = jupytext.read(source, fmt="py:percent")
    code = [c.source.strip() for c in nb.cells if c.cell_type == "code"]
    return [line for line in code if _CHECK_CALL.match(line)]


def adapter(root: Path, lab: str, framework: str) -> Path:
    """The file of a lab's adapter in the course at ``root``, e.g.
    ``<root>/helpers/labs/lab05/torch.py`` (absolute: the kernel runs elsewhere)."""
    return root.resolve() / "helpers" / "labs" / lab / f"{_HALF[framework]}.py"


def _defined(path: Path) -> set[str]:
    """The names a module binds at its top level (functions, assignments, imports)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = getattr(node, "targets", None) or [node.target]
            names |= {
                n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)
            }
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def missing_checks(root: Path = ROOT) -> list[str]:
    """Every check a solution of the course at ``root`` calls that the adapter the grader will
    load does not define, as a sentence each (empty when the course is consistent)."""
    problems = []
    for folder in sorted(p for p in (root / "solutions").iterdir() if p.is_dir()):
        for framework in FRAMEWORKS:
            if not (folder / f"{notebook_name(framework)}.py").is_file():
                continue
            for call in check_calls(folder.name, framework, root):
                lab, name = call.split(".")[1], call.split("(")[0].rsplit(".", 1)[1]
                path = adapter(root, lab, framework)
                if not path.is_file() or name not in _defined(path):
                    where = path.relative_to(root.resolve())
                    problems.append(
                        f"solutions/{folder.name}/{notebook_name(framework)}.py calls "
                        f"{call}, but {where} does not define {name}"
                    )
    return problems


def kernel_env(root: Path = ROOT) -> dict[str, str]:
    """The grading kernel's environment: the course at ``root`` first on ``PYTHONPATH`` (its
    ``helpers``, checks included, are the ones imported), ``BOOK_SCALE=smoke`` unless set."""
    path = [str(root.resolve()), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "BOOK_SCALE": os.environ.get("BOOK_SCALE", "smoke"),
        "PYTHONPATH": os.pathsep.join(p for p in path if p),
    }


def lab_cells(chapter: str, framework: str, root: Path = ROOT) -> set[str]:
    """The code cells of the lab handed out (``labs/NN-slug/in-<framework>.py``), stripped;
    empty if the course has none."""
    import jupytext

    source = root / "labs" / chapter / f"{notebook_name(framework)}.py"
    if not source.is_file():
        return set()
    nb = jupytext.read(source, fmt="py:percent")
    return {c.source.strip() for c in nb.cells if c.cell_type == "code"}


def lab_of(nb, root: Path = ROOT) -> tuple[str, str, str]:
    """(chapter, framework, note) from the notebook metadata, else from its cells (a notebook
    saved by an editor that dropped the metadata; the note says so); ``NotGradable`` with
    advice if neither names a lab."""
    course = nb.metadata.get("course")
    missing = ["course"] if not isinstance(course, dict) else [
        f"course.{k}" for k in ("kind", "chapter", "framework") if not course.get(k)
    ]  # fmt: skip
    if missing:
        what = (
            "no course entry" if missing == ["course"] else f"no {', '.join(missing)}"
        )
        if found := lab_from_cells(nb, root):
            note = f"its metadata has {what}: lab {found[0]} ({found[1]}) read from its cells"
            return (*found, note)
        raise NotGradable(
            f"not a course lab notebook: its metadata has {what} and its cells name no "
            f"single lab; {_HOW_TO_FIX}"
        )
    if course["kind"] not in ("labs", "solutions"):
        raise NotGradable(
            f"not a lab: course.kind is {course['kind']!r} (a chapter notebook?); "
            "grade the lab notebooks, labs/NN-slug/in-<framework>.ipynb"
        )
    if course["framework"] not in FRAMEWORKS:
        raise NotGradable(
            f"course.framework is {course['framework']!r}, expected one of "
            f"{', '.join(FRAMEWORKS)}"
        )
    return course["chapter"], course["framework"], ""
