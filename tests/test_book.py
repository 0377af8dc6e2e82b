"""The site builds with warnings as errors, and every notebook page can be opened in Colab.

Execution is switched off here: nbval already runs every executed notebook. The README's build
command executes them.
"""

import subprocess
import sys
from pathlib import Path

import yaml

from helpers.notebooks import ROOT, appendix_sources, sources


def test_book_builds_without_warnings_and_links_to_colab(tmp_path):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    config_file = tmp_path / "_config.yml"
    config_file.write_text(yaml.safe_dump(config))
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [
        str(jb),
        "build",
        str(ROOT),
        "--config",
        str(config_file),
        "--path-output",
        str(tmp_path),
        "-W",
        "-n",
        "--keep-going",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    html = tmp_path / "_build" / "html"
    assert (html / "index.html").is_file() and (html / "bibliography.html").is_file()
    repo = config["repository"]["url"].removeprefix("https://github.com/")
    for src in [*sources(), *appendix_sources()]:
        rel = src.relative_to(ROOT).with_suffix("")
        page = (html / rel).with_suffix(".html").read_text()
        colab = f"https://colab.research.google.com/github/{repo}/blob/main/{rel}.ipynb"
        assert colab in page, f"{rel}: no Colab button pointing at its .ipynb"

    # Maths is typeset by the local MathJax copy, never a CDN (offline readers see TeX otherwise).
    page = (html / "chapters/01-introduction/in-pytorch.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in page and "cdn.jsdelivr" not in page
    assert (html / "_static/mathjax/tex-chtml.js").is_file()
    # Every chapter has its side-by-side page, generated from its two notebooks.
    for folder in {p.parent for p in sources() if p.parts[-3] == "chapters"}:
        rel = folder.relative_to(ROOT)
        side = (html / rel / "side-by-side.html").read_text()
        assert "PyTorch" in side and "JAX" in side and "sd-col" in side
