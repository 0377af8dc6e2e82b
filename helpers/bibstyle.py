"""The bibliography's labels in the text's own form: "[Zhang et al., 2018]", not "[ZCDLP18]".

The book cites author-year (``bibtex_reference_style: author_year`` in ``_config.yml``), so a
citation reads "Zhang et al., 2018" while pybtex's default ``alpha`` labels name the same entry
"ZCDLP18" on the bibliography page, and a reader has to match the two by hand. This Sphinx
extension registers a pybtex formatting style, ``course_author_year``, whose label is the
citation's text: the authors as sphinxcontrib-bibtex writes them in the text (one name, "A and
B", or "A et al." from three on) and the year; two entries that would share a label get
"2017a", "2017b". ``_config.yml`` selects it with ``bibtex_default_style``.

Sources: pybtex's plugin registry and label styles (https://docs.pybtex.org/api/plugins.html),
sphinxcontrib-bibtex's ``PersonStyle`` (https://sphinxcontrib-bibtex.readthedocs.io/).
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterable, Iterator
from types import SimpleNamespace

import pybtex.plugin
from pybtex.database import Entry
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx.application import Sphinx
from sphinxcontrib.bibtex.style.referencing import PersonStyle

__all__ = ["STYLE", "AuthorYearLabelStyle", "AuthorYearStyle", "author_year", "setup"]

STYLE = "course_author_year"

# The in-text citation's author list, with a plain-text "et al." (the text's is in italics).
_PERSONS = PersonStyle(other=" et al.")
_NAMES = _PERSONS.names("author", full=False)


def author_year(entry: Entry) -> str:
    """ "Zhang et al., 2018": the authors as the author-year citation writes them, and the
    year. Raises ``KeyError`` for an entry without authors or without a year (every entry of
    ``references.bib`` has both; ``tests/test_book.py`` checks it)."""
    names = _NAMES.format_data(
        {"entry": entry, "style": SimpleNamespace(person=_PERSONS)}
    )
    return f"{names.render_as('text')}, {entry.fields['year']}"


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels ``author_year(entry)``; equal ones get a letter after the year."""

    def format_labels(self, sorted_entries: Iterable[Entry]) -> Iterator[str]:
        labels = [author_year(entry) for entry in sorted_entries]
        count, seen = Counter(labels), Counter[str]()
        for label in labels:
            if count[label] == 1:
                yield label
            else:
                yield label + string.ascii_lowercase[seen[label]]
                seen[label] += 1


class AuthorYearStyle(UnsrtStyle):
    """pybtex's ``unsrt`` entries, sorted by author, year and title, with author-year labels."""

    default_sorting_style = "author_year_title"
    default_label_style = STYLE


def setup(app: Sphinx) -> dict:
    # Both registries are pybtex's own; the style is looked up by name when the bibliography
    # is formatted, after every extension's setup has run.
    for group, plugin in [
        ("pybtex.style.labels", AuthorYearLabelStyle),
        ("pybtex.style.formatting", AuthorYearStyle),
    ]:
        if STYLE not in pybtex.plugin.enumerate_plugin_names(group):
            pybtex.plugin.register_plugin(group, STYLE, plugin)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
