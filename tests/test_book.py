"""The book extension's settings: the execution cache key, the parallel executor's size and the
kernels' environment."""

import os
import subprocess
import sys

import nbformat
import pytest
from myst_nb.core.utils import coalesce_streams

from helpers.book import (
    KERNEL_ENVIRONMENT,
    _collapse_progress_bars,
    cache_key,
    execute_workers,
    last_bar_drawings,
    setup,
)


def test_cache_key_names_the_scale_and_changes_with_it():
    assert cache_key("smoke").startswith("smoke-")
    assert cache_key("smoke")[6:] == cache_key("cpu")[4:]  # same helpers, same hash
    assert len(cache_key("cpu")) == len("cpu-") + 12


@pytest.mark.parametrize(("raw", "expected"), [(None, 1), ("1", 1), ("3", 3)])
def test_execute_workers_reads_the_environment(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("BOOK_EXECUTE_WORKERS", raising=False)
    else:
        monkeypatch.setenv("BOOK_EXECUTE_WORKERS", raw)
    assert execute_workers() == expected


@pytest.mark.parametrize("raw", ["0", "-2", "two", ""])
def test_execute_workers_rejects_anything_but_a_positive_integer(monkeypatch, raw):
    monkeypatch.setenv("BOOK_EXECUTE_WORKERS", raw)
    with pytest.raises(ValueError, match="positive integer"):
        execute_workers()


def test_bibliography_parses_and_holds_every_cited_key():
    import re

    from pybtex.database import parse_file

    from helpers.notebooks import ROOT

    keys = set(parse_file(ROOT / "references.bib", bib_format="bibtex").entries)
    cited = set()
    pages = [*ROOT.glob("chapters/*/*.py"), *ROOT.glob("solutions/*/*.py")]
    pages += [
        *ROOT.glob("appendices/*"),
        *ROOT.glob("chapters/*/*.md"),
        ROOT / "intro.md",
    ]
    for page in pages:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", page.read_text()):
            cited.update(k.strip() for k in group.split(","))
    assert cited, "no citations found: the pattern no longer matches the pages"
    assert not cited - keys, f"cited but not in references.bib: {sorted(cited - keys)}"


def test_setup_gives_the_kernels_their_environment_and_keeps_what_is_set(monkeypatch):
    for name in [*KERNEL_ENVIRONMENT, "TQDM_DELAY"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's own choice: kept

    class App:  # the one Sphinx method setup() calls
        def connect(self, *args, **kwargs) -> None:
            pass

    setup(App())
    assert os.environ["TQDM_MININTERVAL"] == KERNEL_ENVIRONMENT["TQDM_MININTERVAL"]
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    assert "TQDM_DELAY" not in os.environ  # a bar that never drew would print nothing


def test_a_progress_bar_renders_once_finished():
    """A tqdm bar in a process with the kernels' environment, as the site renders it: one line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    code = "from tqdm import tqdm\nfor _ in tqdm(range(500), desc='train'): pass\n"
    run = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, **KERNEL_ENVIRONMENT},
        capture_output=True,  # bytes: text mode would turn the carriage returns into newlines
        check=True,
    )
    stderr = run.stderr.decode()
    # drawn when it starts and when it closes, not on every step
    assert stderr.count("train:") == 2
    # a kernel sends the drawings as separate stream messages; nb_merge_streams joins them
    # with newlines (myst-nb's own function), then the build keeps the last drawing
    messages = [
        nbformat.v4.new_output("stream", name="stderr", text="\r" + part)
        for part in stderr.split("\r")
        if part
    ]
    merged = coalesce_streams(messages)[0]["text"]
    assert merged.count("train:") == 2  # what the page showed without the build's help
    shown = last_bar_drawings(merged)
    assert shown.count("train:") == 1 and "100%" in shown and "500/500" in shown


def test_last_bar_drawings_keeps_each_bars_last_line_and_everything_else():
    text = "\n".join([
        "train:   0%|          | 0/4 [00:00<?, ?step/s]",
        "train: 100%|##########| 4/4 [00:01<00:00, epoch=1]",
        "train: 100%|##########| 4/4 [00:01<00:00, epoch=2]",  # a set_postfix redraw
        "a warning",
        "train:   0%|          | 0/4 [00:00<?, ?step/s]",  # a new bar, not the one above
        "  0%|          | 0/9",
        " 44%|####      | 4/9",
        "eval:  50%|#####     | 1/2",  # another bar
    ])  # fmt: skip
    assert last_bar_drawings(text).split("\n") == [
        "train: 100%|##########| 4/4 [00:01<00:00, epoch=2]",
        "a warning",
        "train:   0%|          | 0/4 [00:00<?, ?step/s]",
        " 44%|####      | 4/9",
        "eval:  50%|#####     | 1/2",
    ]
    assert last_bar_drawings("no bar\n") == "no bar\n"


def test_the_build_collapses_bars_in_rendered_stderr_only():
    from docutils import nodes
    from docutils.utils import new_document

    bars = "x:   0%|  | 0/1\nx: 100%|##| 1/1"
    doctree = new_document("page")
    stderr = nodes.literal_block(bars, bars, classes=["output", "stderr"])
    stdout = nodes.literal_block(bars, bars, classes=["output", "stream"])
    doctree += [stderr, stdout]
    _collapse_progress_bars(None, doctree)
    assert stderr.astext() == "x: 100%|##| 1/1" and stdout.astext() == bars


def test_bibliography_labels_read_as_the_text_cites():
    """The bibliography page labels each entry as the author-year citation reads, one label
    per entry (pybtex's default would be "ZCDLP18" for what the text calls Zhang et al.)."""
    from pybtex.database import parse_file

    from helpers.bibstyle import AuthorYearLabelStyle, author_year
    from helpers.notebooks import ROOT

    entries = parse_file(ROOT / "references.bib", bib_format="bibtex").entries
    assert author_year(entries["zhang2018mixup"]) == "Zhang et al., 2018"
    assert author_year(entries["kingma2015adam"]) == "Kingma and Ba, 2015"
    assert author_year(entries["prechelt1998early"]) == "Prechelt, 1998"
    labels = list(AuthorYearLabelStyle().format_labels(entries.values()))
    assert len(set(labels)) == len(labels) == len(entries)
    twins = [entries["loshchilov2019decoupled"], entries["loshchilov2019decoupled"]]
    assert list(AuthorYearLabelStyle().format_labels(twins)) == [
        "Loshchilov and Hutter, 2019a",
        "Loshchilov and Hutter, 2019b",
    ]
