"""Generate what is generated: labs from solutions, and every ``.ipynb`` from its ``.py`` source.

The sources are jupytext ``py:percent`` files; the ``.ipynb`` beside each is generated, committed
without outputs (Colab and nbval need it), and must never be edited by hand: generation runs one
way, ``.py`` to ``.ipynb``, and the two hold the same cells.

    python -m helpers.notebooks           # regenerate labs/ and every .ipynb
    python -m helpers.notebooks --check   # exit 1 and list what is stale (CI)

Labs: ``solutions/NN-slug/<framework>.py`` is the single source. In the lab, each region
between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes a stub that raises
``NotImplementedError``. Cell ids are derived from the cell's position, so regenerating an
unchanged source gives a byte-identical notebook.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from helpers.labs.kit import STUB_MESSAGE

__all__ = [
    "FRAMEWORKS",
    "ROOT",
    "appendix_sources",
    "lab_text",
    "notebook_json",
    "notebook_name",
    "orphans",
    "sources",
    "stale_files",
    "sync",
    "toc_entries",
    "toc_files",
]

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("chapters", "labs", "solutions")
FRAMEWORKS = ("pytorch", "jax")
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = f'raise NotImplementedError("Exercise: {STUB_MESSAGE}")'  # Checker.call knows it
# Notebook names hold a hyphen, so Python can never import one (a `jax.py` beside a notebook
# would shadow the jax package for every kernel started in that folder).
_SOURCE = re.compile(
    r"(chapters|labs|solutions)/(\d\d-[a-z0-9-]+)/in-(pytorch|jax)\.py"
)


_APPENDIX = re.compile(r"appendices/[a-z0-9-]+\.py")


def notebook_name(framework: str) -> str:
    """The file stem of a framework's notebook: ``"in-pytorch"`` or ``"in-jax"``."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")
    return f"in-{framework}"


def sources(root: Path = ROOT) -> list[Path]:
    """Every notebook source: ``<kind>/NN-slug/in-<framework>.py``."""
    found = [p for kind in KINDS for p in sorted((root / kind).glob("*/*.py"))]
    return [p for p in found if _SOURCE.fullmatch(p.relative_to(root).as_posix())]


# A solution page is titled "Lab N solutions: ..." and links to its lab; the lab generated from
# it is titled "Lab N: ..." and links to the solution (not to itself, as one shared text would).
_SOLUTION_TITLE = re.compile(r"^# # Lab (\d+) solutions: ", re.M)
_LAB_LINK = re.compile(
    r"^# The exercises alone, without the answers: \[Lab (\d+) in (PyTorch|JAX)\]"
    r"\(\.\./\.\./labs/((\d\d)-[\w-]+/in-(pytorch|jax)\.ipynb)\)\.$",
    re.M,
)


def _lab_headers(lab: str, name: str) -> str:
    """The solution's title and its link to the lab, turned into the lab's."""
    for pattern, what in ((_SOLUTION_TITLE, "a title"), (_LAB_LINK, "a line")):
        if len(pattern.findall(lab)) != 1:
            expected = pattern.pattern.replace("\\", "")
            raise ValueError(
                f"{name}: expected {what} matching {expected!r} exactly once"
            )
    number, framework, _, folder, file = _LAB_LINK.search(lab).groups()
    if int(number) != int(folder) or framework.lower() != file:
        raise ValueError(
            f"{name}: the lab link's text and target differ: {number}, {framework}"
        )
    lab = _SOLUTION_TITLE.sub(r"# # Lab \1: ", lab)
    return _LAB_LINK.sub(
        r"# The solved lab: [Lab \1 solutions in \2](../../solutions/\3).", lab
    )


def lab_text(solution: str, name: str = "solution", *, headers: bool = True) -> str:
    """The lab version of a solution source: every solution region replaced by a stub.

    With ``headers`` (as for every real solution), the solution's title ``# Lab N solutions:``
    becomes ``# Lab N:`` and its line linking to the lab ("[Lab N in PyTorch](../../labs/...)")
    becomes one linking to the solution; a solution without exactly one of each, or whose link
    names another lab or framework than its target, raises ``ValueError``.
    """
    out: list[str] = []
    begin_line = 0
    for number, line in enumerate(solution.splitlines(keepends=True), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if begin_line:
                opened = f"the region opened at line {begin_line}"
                raise ValueError(f"{name}:{number}: {BEGIN} inside {opened}")
            begin_line = number
            indent = line[: len(line) - len(line.lstrip())]
            out += [f"{indent}# YOUR CODE HERE\n", f"{indent}{STUB}\n"]
        elif marker == END:
            if not begin_line:
                raise ValueError(f"{name}:{number}: {END} without a {BEGIN}")
            begin_line = 0
        elif not begin_line:
            out.append(line)
    if begin_line:
        raise ValueError(f"{name}:{begin_line}: {BEGIN} is never closed by {END}")
    return _lab_headers("".join(out), name) if headers else "".join(out)


def _metadata(kind: str, chapter: str | None, framework: str | None) -> dict:
    meta = {
        "kernelspec": {
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "name": "python3",
        },
        "language_info": {"name": "python"},
        "jupytext": {"formats": "ipynb,py:percent"},
        # Read by `python -m helpers.grade` to know which lab a submission is.
        "course": {"kind": kind, "chapter": chapter, "framework": framework}
        if chapter
        else {"kind": kind},
        "colab": {"provenance": [], "toc_visible": True},
    }
    if kind == "chapters":  # chapters run at gpu scale on Colab; labs are small
        meta["accelerator"] = "GPU"
        meta["colab"]["gpuType"] = "T4"
    return meta


def notebook_json(source_text: str, relpath: str) -> str:
    """The ``.ipynb`` text of the ``py:percent`` source at ``relpath``."""
    import jupytext
    import nbformat

    match = _SOURCE.fullmatch(relpath)
    if match is not None:
        metadata = _metadata(*match.groups())
    elif _APPENDIX.fullmatch(relpath):
        metadata = _metadata("appendices", None, None)
    else:
        raise ValueError(
            f"{relpath} is not <chapters|labs|solutions>/NN-slug/in-<pytorch|jax>.py "
            "or appendices/<name>.py"
        )
    nb = jupytext.reads(source_text, fmt="py:percent")
    nb.metadata = metadata
    for i, cell in enumerate(nb.cells):
        cell.id = f"c{i:03d}"
        cell.metadata = {k: v for k, v in cell.metadata.items() if k == "tags"}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.nbformat, nb.nbformat_minor = 4, 5
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def toc_entries(entries: list[dict]) -> list[str]:
    """Every ``file`` in a list of ``_toc.yml`` entries, their ``sections`` included, in order."""
    files = []
    for entry in entries:
        files.append(entry["file"])
        files += toc_entries(entry.get("sections", []))
    return files


def toc_files(root: Path = ROOT) -> list[str]:
    """Every page ``_toc.yml`` lists under its parts, in order, without suffix
    (``"chapters/01-introduction/in-jax"``); the root page is not included."""
    import yaml  # only the tests and the book build need it

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    return [f for part in toc["parts"] for f in toc_entries(part["chapters"])]


def appendix_sources(root: Path = ROOT) -> list[Path]:
    """The appendix notebooks (one per topic, both frameworks in one): ``appendices/*.py``."""
    return sorted((root / "appendices").glob("*.py"))


def _targets(root: Path) -> dict[Path, str]:
    """Every generated file and its text: labs from solutions, .ipynb from .py, and each
    chapter's side-by-side page from its two notebooks."""
    from helpers.sidebyside import side_by_side_markdown

    texts: dict[Path, str] = {}
    for src in appendix_sources(root):
        texts[src.with_suffix(".ipynb")] = notebook_json(
            src.read_text(), src.relative_to(root).as_posix()
        )
    for folder in sorted((root / "chapters").glob("*/")):
        pair = [folder / f"{notebook_name(fw)}.py" for fw in FRAMEWORKS]
        if all(p.is_file() for p in pair):
            texts[folder / "side-by-side.md"] = side_by_side_markdown(
                *(p.read_text() for p in pair), folder.name
            )
    for src in sources(root):
        rel = src.relative_to(root)
        if rel.parts[0] == "labs":
            continue  # generated from its solution below
        text = src.read_text()
        texts[src.with_suffix(".ipynb")] = notebook_json(text, rel.as_posix())
        if rel.parts[0] == "solutions":
            lab = root / "labs" / rel.relative_to("solutions")
            texts[lab] = lab_text(text, rel.as_posix())
            texts[lab.with_suffix(".ipynb")] = notebook_json(
                texts[lab], lab.relative_to(root).as_posix()
            )
    return texts


def orphans(root: Path = ROOT) -> list[Path]:
    """Files in labs/ that no solution generates (a renamed or deleted solution)."""
    targets = _targets(root)
    return sorted(
        p for p in (root / "labs").glob("*/*") if p.is_file() and p not in targets
    )


def stale_files(root: Path = ROOT) -> list[Path]:
    """Generated files that are missing or differ from what their sources give."""
    return _stale(_targets(root))


def _stale(targets: dict[Path, str]) -> list[Path]:
    return sorted(
        p for p, t in targets.items() if not p.is_file() or p.read_text() != t
    )


def sync(root: Path = ROOT) -> list[Path]:
    """Write every stale generated file; return those written."""
    targets = _targets(root)
    written = _stale(targets)
    for path in written:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(targets[path])
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.notebooks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    orphaned = orphans()
    for path in orphaned:
        print(f"orphan: {path.relative_to(ROOT)} (no solution generates it: delete it)")
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)}")
        if stale:
            print("regenerate with: python -m helpers.notebooks", file=sys.stderr)
        return 1 if stale or orphaned else 0
    for path in sync():
        print(f"wrote {path.relative_to(ROOT)}")
    return 1 if orphaned else 0


if __name__ == "__main__":
    sys.exit(main())
