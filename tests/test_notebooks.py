"""The notebook sources, their generated .ipynb, the labs and the table of contents agree."""

import json
import re

import nbformat
import pytest
import yaml

from helpers.notebooks import (
    FRAMEWORKS,
    ROOT,
    appendix_sources,
    notebook_name,
    orphans,
    sources,
    stale_files,
    toc_entries,
    toc_files,
)

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
NOTEBOOKS = [p.with_suffix(".ipynb") for p in sources()]
APPENDIX_NOTEBOOKS = [p.with_suffix(".ipynb") for p in appendix_sources()]


def test_generated_files_are_up_to_date():
    stale = [str(p.relative_to(ROOT)) for p in stale_files()]
    assert not stale, f"regenerate with `python -m helpers.notebooks`: {stale}"
    assert not orphans(), "labs/ holds files no solution generates"


def test_every_folder_has_both_frameworks():
    folders = {p.parent for p in sources()}
    assert folders, "no notebooks found"
    for folder in folders:
        for fw in FRAMEWORKS:
            name = notebook_name(fw)
            assert (folder / f"{name}.py").is_file()
            assert (folder / f"{name}.ipynb").is_file()
    chapters = {p.name for p in (ROOT / "chapters").iterdir() if p.is_dir()}
    assert {p.name for p in (ROOT / "solutions").iterdir() if p.is_dir()} <= chapters


@pytest.mark.parametrize(
    "path", NOTEBOOKS + APPENDIX_NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT))
)
def test_committed_notebook_is_clean_and_colab_ready(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), (
        "outputs committed"
    )
    setup = code[0].source
    assert "google.colab" in setup, "the first code cell must be the Colab install"
    url = re.search(r'"git\+(https://[^"]+)"', setup).group(1)
    assert url == CONFIG["repository"]["url"], "install URL differs from _config.yml"
    assert not re.search(
        r"\b(torch|jax|flax|optax)\b", setup.split("pip")[-1].split("repo")[0]
    )
    # The install cell is hidden on the website, kept in the notebook.
    assert "remove-cell" in code[0].metadata.get("tags", [])
    assert "colab_setup()" in setup


def test_table_of_contents_lists_every_notebook_and_nothing_missing():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = toc_files()
    assert len(files) == len(set(files)), "a page is listed twice"
    for entry in [*files, toc["root"]]:
        assert any((ROOT / f"{entry}{ext}").is_file() for ext in (".ipynb", ".md")), (
            entry
        )
    notebooks = [*NOTEBOOKS, *(p.with_suffix(".ipynb") for p in appendix_sources())]
    on_disk = {str(p.relative_to(ROOT).with_suffix("")) for p in notebooks}
    assert {f for f in files if (ROOT / f"{f}.ipynb").is_file()} == on_disk
    # Each chapter is one sidebar entry: its index page holds all of its pages.
    for part in toc["parts"]:
        for entry in part["chapters"]:
            if entry["file"].startswith("chapters/"):
                folder = entry["file"].rsplit("/", 1)[0]
                chapter = folder.split("/")[1]
                assert entry["file"] == f"{folder}/index"
                pages = set(toc_entries(entry["sections"]))
                assert {f"{folder}/side-by-side"} | {
                    f"{kind}/{chapter}/{notebook_name(fw)}"
                    for kind in ("chapters", "labs", "solutions")
                    for fw in FRAMEWORKS
                } == pages


def test_chapters_carry_the_colab_gpu_preset():
    for path in NOTEBOOKS:
        meta = json.loads(path.read_text())["metadata"]
        kind = path.relative_to(ROOT).parts[0]
        assert meta["course"]["kind"] == kind
        assert (meta.get("accelerator") == "GPU") == (kind == "chapters")


@pytest.mark.parametrize(
    "folder",
    sorted({p.parent for p in sources()}),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_a_fresh_kernel_in_every_notebook_folder_imports_the_frameworks(folder):
    """A student's scratch notebook beside a lab must find the libraries, not a notebook."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    code = (
        "import torch, jax, jax.numpy, flax.nnx, optax\nprint(jax.numpy.ones(2).sum())"
    )
    nb.cells = [nbformat.v4.new_code_cell(code)]
    NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
    ).execute()
    assert nb.cells[0].outputs[0]["text"].strip() == "2.0"
    assert not [
        p for p in folder.iterdir() if p.suffix == ".py" and p.stem.isidentifier()
    ]


@pytest.mark.parametrize(
    "folder",
    sorted({p.parent for p in sources() if p.parts[-3] == "chapters"}),
    ids=lambda p: p.name,
)
def test_side_by_side_page_has_no_prose_about_outputs(folder):
    """The side-by-side page shows code without outputs: prose that points at an output or at
    the other notebook is tagged ``notebook-only`` in the sources and left out of it."""
    page = (folder / "side-by-side.md").read_text()
    for phrase in (
        "the cell below says",
        "hardware line printed at the top",
        "Next: [the",
    ):
        assert phrase not in page, f"{folder.name}/side-by-side.md: {phrase!r}"
