"""The side-by-side page of a chapter: its PyTorch and JAX notebooks aligned section by section.

Generated from the two notebook sources by ``python -m helpers.notebooks`` (never edited by
hand) and checked for staleness by the tests, like the labs. Both notebooks of a pair keep the
same ``N.k`` section numbers (twin rule 6), so sections align by number. Inside a section the
markdown cells tagged ``shared`` (identical in both notebooks) are shown once, across the
page; everything between two shared cells is shown in two columns, PyTorch on the left and JAX
on the right, so a reader sees exactly where the frameworks differ. The page shows code without
outputs, so cells tagged ``notebook-only`` (prose about the outputs, such as "the cell below says
at which scale", or the closing "Next: the JAX half") are left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["side_by_side_markdown"]

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$", re.M)
_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\.?\s")
# Outer fences longer than any a chapter's own markdown uses, so its admonitions nest safely.
_GRID, _ITEM = ":" * 8, ":" * 7
# The page drops the theme's right-hand sidebar (its "on this page" contents) so the two
# columns get the window's width; _static/custom.css widens pages holding a ``side-by-side``
# grid and sets their code a little smaller.
_FRONT_MATTER = ["---", "html_theme.sidebar_secondary.remove: true", "---", ""]


@dataclass
class _Section:
    number: str
    title: str
    cells: list = field(default_factory=list)


def _sections(notebook) -> list[_Section]:
    """Cells grouped by their ``N`` / ``N.k`` heading; cells before the first go to ``""``."""
    sections = [_Section("", "")]
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "remove-cell" in tags or "notebook-only" in tags:
            continue  # the Colab install cell, and prose about the outputs
        match = _HEADING.match(cell.source) if cell.cell_type == "markdown" else None
        number = _NUMBER.match(match.group(2)) if match else None
        if number:
            sections.append(_Section(number.group(1), match.group(2).strip()))
            rest = cell.source[match.end() :].strip()
            if rest:
                cell = type(cell)(cell)
                cell.source = rest
            else:
                continue
        sections[-1].cells.append(cell)
    return [s for s in sections if s.number or s.cells]


def _is_shared(cell) -> bool:
    return cell.cell_type == "markdown" and "shared" in cell.metadata.get("tags", [])


def _segments(cells: list) -> tuple[list[list], list]:
    """Split ``cells`` at shared markdown cells: (segments between them, the shared cells)."""
    segments, shared = [[]], []
    for cell in cells:
        if _is_shared(cell):
            shared.append(cell)
            segments.append([])
        else:
            segments[-1].append(cell)
    return segments, shared


def _column_markdown(cells: list) -> str:
    parts = []
    for cell in cells:
        text = cell.source.strip()
        if not text:
            continue
        if cell.cell_type == "code":
            parts.append(f"```python\n{text}\n```")
        else:
            # A heading cannot stand inside a grid item: show it as bold text.
            parts.append(_HEADING.sub(lambda m: f"**{m.group(2).strip()}**", text))
    return "\n\n".join(parts) if parts else "*(nothing here)*"


def _grid(left: list, right: list) -> str:
    return "\n".join(
        [
            f"{_GRID}{{grid}} 1 1 2 2",
            ":gutter: 2",
            ":class-container: side-by-side",
            "",
            f"{_ITEM}{{grid-item}}",
            "**PyTorch**",
            "",
            _column_markdown(left),
            _ITEM,
            "",
            f"{_ITEM}{{grid-item}}",
            "**JAX**",
            "",
            _column_markdown(right),
            _ITEM,
            _GRID,
        ]
    )


def _section_markdown(torch_s: _Section, jax_s: _Section, *, heading: bool) -> str:
    out = []
    if heading:
        title = torch_s.title
        if jax_s.title != torch_s.title:
            title += " / " + _NUMBER.sub("", jax_s.title)
        out.append(f"## {title}")
    t_segments, t_shared = _segments(torch_s.cells)
    j_segments, j_shared = _segments(jax_s.cells)
    same = [c.source for c in t_shared] == [c.source for c in j_shared]
    if not same:  # shared cells out of step: show the section as two plain columns
        t_segments, j_segments, t_shared = [torch_s.cells], [jax_s.cells], []
    for i, (left, right) in enumerate(zip(t_segments, j_segments, strict=True)):
        if left or right:
            out.append(_grid(left, right))
        if i < len(t_shared):
            out.append(t_shared[i].source.strip())
    return "\n\n".join(out)


def side_by_side_markdown(torch_source: str, jax_source: str, chapter: str) -> str:
    """The side-by-side page (MyST markdown) of one chapter's two ``py:percent`` sources.

    ``chapter`` is the folder name, e.g. ``"01-introduction"``. Raises ``ValueError`` when
    the two notebooks do not have the same section numbers (they cannot be aligned).
    """
    import jupytext

    torch_sections = _sections(jupytext.reads(torch_source, fmt="py:percent"))
    jax_sections = _sections(jupytext.reads(jax_source, fmt="py:percent"))
    numbers = [[s.number for s in ss] for ss in (torch_sections, jax_sections)]
    if numbers[0] != numbers[1]:
        raise ValueError(
            f"{chapter}: the PyTorch and JAX notebooks have different sections "
            f"({numbers[0]} vs {numbers[1]}); keep the same N.k numbers in both"
        )
    top = torch_sections[0].title if torch_sections[0].number else chapter
    title = re.sub(r":.*$", "", top).strip()
    header = [
        *_FRONT_MATTER,
        f"# {title}: side by side",
        "",
        "<!-- Generated by `python -m helpers.notebooks` from in-pytorch.py and in-jax.py:",
        "     do not edit by hand. -->",
        "",
        "The [PyTorch](in-pytorch.ipynb) and [JAX](in-jax.ipynb) notebooks of this chapter,",
        "section by section: prose the two share is shown once, across the page; code and",
        "prose that differ stand side by side, PyTorch on the left, JAX on the right. The",
        "outputs are on the notebook pages.",
    ]
    # The chapter's own title section ("1. Introduction: PyTorch") is headed by the page title.
    chapter_number = title.split(".")[0]
    body = [
        _section_markdown(t, j, heading=t.number not in ("", chapter_number))
        for t, j in zip(torch_sections, jax_sections, strict=True)
    ]
    return "\n".join(header) + "\n\n" + "\n\n".join(b for b in body if b) + "\n"
