"""``course_root()``: found from a clone, from an editable install, or cloned once on Colab.

No network: the clone is faked.
"""

import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from helpers import versions
from helpers.notebooks import ROOT, appendix_sources, sources


@pytest.fixture
def outside(tmp_path, monkeypatch):
    """The working folder outside any clone, and the helpers package outside one too."""
    work = tmp_path / "content"
    work.mkdir()
    monkeypatch.chdir(work)
    package = tmp_path / "site-packages" / "helpers"
    package.mkdir(parents=True)
    monkeypatch.setattr(versions, "__file__", str(package / "versions.py"))
    monkeypatch.setattr(versions, "CACHE_DIR", tmp_path / "cache" / "repo")
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    return tmp_path


def on_colab(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))


def test_found_from_a_chapter_folder(outside, monkeypatch):
    monkeypatch.chdir(ROOT / "chapters" / "10-compression-deployment")
    assert versions.course_root() == ROOT


def test_found_beside_the_package_when_the_cwd_is_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert versions.course_root() == ROOT  # the helpers imported here are the clone's


def test_off_colab_without_a_clone_it_says_how_to_get_one(outside):
    with pytest.raises(FileNotFoundError, match=r"git clone https://github\.com/"):
        versions.course_root()
    assert not versions.CACHE_DIR.parent.exists()  # no clone attempted


def test_on_colab_it_clones_once_and_reuses_the_clone(outside, monkeypatch):
    on_colab(monkeypatch)
    calls = []

    def fake_clone(url, dest):
        calls.append((url, dest))
        (dest / "chapters").mkdir()
        (dest / "_toc.yml").write_text("root: intro\n")

    monkeypatch.setattr(versions, "_clone", fake_clone)
    root = versions.course_root()
    assert root == versions.CACHE_DIR and (root / "_toc.yml").is_file()
    assert versions.course_root() == root
    assert len(calls) == 1 and calls[0][0] == versions.REPOSITORY
    assert calls[0][1] != root  # cloned beside it, then renamed
    assert sorted(p.name for p in root.parent.iterdir()) == ["repo"]


def test_on_colab_a_failed_clone_leaves_nothing_and_says_so(outside, monkeypatch):
    on_colab(monkeypatch)

    def failing_run(command, check):
        Path(command[-1], "half-written").write_text("")
        raise subprocess.CalledProcessError(128, command)

    monkeypatch.setattr(versions.subprocess, "run", failing_run)
    with pytest.raises(
        FileNotFoundError, match=r"could not clone .*git clone https://"
    ):
        versions.course_root()
    assert list(versions.CACHE_DIR.parent.iterdir()) == []


def test_the_colab_install_line_names_the_helpers_repository():
    notebooks = [*sources(), *appendix_sources()]
    assert notebooks
    for path in notebooks:
        urls = re.findall(r'repo = "git\+([^"]+)"', path.read_text())
        assert urls == [versions.REPOSITORY], path.relative_to(ROOT)
