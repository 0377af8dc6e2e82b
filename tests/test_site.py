"""The website: built once with every notebook executed (smoke scale), then checked statically
and in a real headless browser (Debian's chromium driven by Playwright).

Static checks: warnings are errors, every notebook page has a Colab button pointing at its own
``.ipynb``, maths uses the bundled MathJax, every chapter has its side-by-side page, no internal
link or image is broken. Browser checks (served on 127.0.0.1, every other request blocked): the
landing page loads, chapter pages show executed outputs (a figure where a model is trained),
search finds "jit", dark mode toggles, maths is typeset offline, and the site's own scripts log
no errors. Screenshots go to ``_build/screenshots/``.
"""

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml

from helpers.notebooks import ROOT, appendix_sources, sources

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
CHROMIUM = next(
    filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))),
    None,
)
SCREENSHOTS = ROOT / "_build" / "screenshots"


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    """The site built with the README's build command's options, notebooks executed."""
    tmp = tmp_path_factory.mktemp("site")
    config = dict(CONFIG)
    config["execute"] = {**CONFIG["execute"], "cache": str(tmp / "cache")}
    config_file = tmp / "_config.yml"
    config_file.write_text(yaml.safe_dump(config))
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(ROOT), "--config", str(config_file)]
    cmd += ["--path-output", str(tmp), "-W", "-n", "--keep-going"]
    # As the README's build runs it: figures inline (the test suite's Agg backend shows none).
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    # Two notebooks at a time (helpers.book executes them ahead of reading, in parallel).
    env["BOOK_EXECUTE_WORKERS"] = "2"
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
    return tmp / "_build" / "html"


def test_every_book_notebook_executed_once(html, record_property):
    """The build executed every notebook page (conftest.py leaves them to it, not nbval):
    each has a record in the execution cache. Their times join the slowest-notebooks table."""
    from jupyter_cache import get_cache

    from helpers.book import cache_key

    cache = get_cache(str(html.parents[1] / "cache" / cache_key()))
    seconds = {
        Path(r.uri).resolve().relative_to(ROOT).as_posix(): r.data["execution_seconds"]
        for r in cache.list_cache_records()
    }
    for path, value in seconds.items():
        record_property(f"site build: {path}", value)
    pages = {p.as_posix() + ".ipynb" for p in notebook_pages()}
    executed = {p for p in pages if not p.startswith("labs/")}
    assert executed and executed <= set(seconds), sorted(executed - set(seconds))


def notebook_pages() -> list[Path]:
    return [
        p.relative_to(ROOT).with_suffix("") for p in [*sources(), *appendix_sources()]
    ]


def test_every_notebook_page_opens_in_colab(html):
    repo = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    for rel in notebook_pages():
        page = (html / rel).with_suffix(".html").read_text()
        colab = f"https://colab.research.google.com/github/{repo}/blob/main/{rel}.ipynb"
        assert colab in page, f"{rel}: no Colab button pointing at its .ipynb"
        assert "google.colab" not in page, f"{rel}: the Colab install cell is shown"


def test_maths_uses_the_bundled_mathjax(html):
    page = (html / "chapters/01-introduction/in-pytorch.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in page and "cdn.jsdelivr" not in page
    assert (html / "_static/mathjax/tex-chtml.js").is_file()


def test_bibliography_labels_match_the_citations(html):
    """Lab 5 cites "Zhang et al., 2018"; the bibliography labels that entry the same way, not
    with pybtex's default "ZCDLP18". Labels are plain text here (sphinxcontrib-bibtex links a
    label back to its citation only when both are on one page); a link is accepted too."""
    import re

    labels = re.findall(
        r'class="label"><span class="fn-bracket">\[</span>(?:<a [^>]*>)?([^<]+)<',
        (html / "bibliography.html").read_text(),
    )
    assert "Zhang et al., 2018" in labels, labels[:5]
    assert len(labels) == len(set(labels)) >= 80


def test_every_chapter_has_its_side_by_side_page(html):
    for folder in {p.parent for p in sources() if p.parts[-3] == "chapters"}:
        side = (html / folder.relative_to(ROOT) / "side-by-side.html").read_text()
        assert "sd-col" in side and "in-pytorch.html" in side and "in-jax.html" in side


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.targets.append(attrs["href"])
        if tag in ("img", "script") and attrs.get("src"):
            self.targets.append(attrs["src"])


def test_no_broken_internal_links_or_images(html):
    broken = []
    for page in html.rglob("*.html"):
        parser = _Links()
        parser.feed(page.read_text())
        if page.relative_to(html).parts[0] in ("_static", "_sources"):
            continue  # the theme's own template snippets, not pages
        for target in parser.targets:
            url = urlparse(target)
            if url.scheme or url.netloc or not url.path or target.startswith("#"):
                continue
            if not (page.parent / unquote(url.path)).exists():
                broken.append(f"{page.relative_to(html)} -> {target}")
    assert not broken, broken[:20]


# --- in a real browser -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def site_url(html):
    handler = functools.partial(_QuietHandler, directory=str(html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.fail(
            "chromium is not installed: .ci/run installs it (apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
        args += ["--disable-background-networking", "--disable-component-update"]
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, site_url):
    """A page that may load only the local site: any other request is blocked (offline)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.route(
        re.compile(r"^(?!" + re.escape(site_url) + ").*"), lambda route: route.abort()
    )
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(f"pageerror: {e}"))
    page.on(
        "console",
        lambda m: (
            page.errors.append(f"console: {m.text} @ {m.location.get('url')}")
            if m.type == "error" and m.location.get("url", "").startswith(site_url)
            else None
        ),
    )
    yield page
    context.close()


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def test_landing_page_loads(page, site_url):
    page.goto(site_url)  # index.html redirects to the landing page, intro.html
    page.wait_for_url("**/intro.html")
    assert CONFIG["title"].split(":")[0] in page.title()
    assert page.locator("nav.bd-links a", has_text="1. Introduction").count() >= 1
    shot(page, "landing")
    assert page.errors == []


@pytest.mark.parametrize(
    "rel",
    [p for p in notebook_pages() if p.parts[0] == "chapters"],
    ids=lambda p: str(p),
)
def test_chapter_page_shows_executed_outputs_and_typeset_maths(page, site_url, rel):
    page.goto(site_url + f"{rel}.html")
    page.wait_for_load_state("load")
    assert page.locator(".cell_output").count() >= 5, "no executed outputs on the page"
    assert page.locator(".cell_output img").count() >= 1, (
        "no figure on a training chapter"
    )
    # MathJax ran, offline (generous: CI's two cores are busy with other tests).
    page.wait_for_selector("mjx-container", timeout=60_000)
    shot(page, str(rel).replace("/", "_"))
    assert page.errors == []


def test_search_finds_jit(page, site_url):
    page.goto(site_url + "search.html?q=jit")
    page.wait_for_selector("#search-results li", timeout=60_000)
    assert page.locator("#search-results li").count() >= 1
    shot(page, "search")
    assert page.errors == []


def test_dark_mode_toggles(page, site_url):
    page.goto(site_url + "intro.html")
    theme = page.evaluate("document.documentElement.dataset.theme")
    page.locator(".theme-switch-button").first.click()
    page.wait_for_function(
        f"document.documentElement.dataset.theme !== {theme!r}", timeout=5_000
    )
    shot(page, "toggled-theme")
    assert page.errors == []


_CODE_COLUMNS = """() => {
  const pre = document.querySelector("article div.cell pre, article .side-by-side pre");
  const probe = document.createElement("span");
  probe.textContent = "x".repeat(100);
  pre.appendChild(probe);
  const columns = pre.clientWidth / (probe.getBoundingClientRect().width / 100);
  probe.remove();
  return columns;
}"""


def test_code_gets_the_width(page, site_url):
    """_static/custom.css: a side-by-side page has no right-hand sidebar and each column
    takes over a third of a 1920 px window (the theme gave it a fifth: 44 characters of
    code), and at 1300 px its long lines wrap instead of scrolling sideways; a notebook page's
    code cells show 90 columns at 1300 px (the theme: 83)."""
    page.set_viewport_size({"width": 1920, "height": 1000})
    page.goto(site_url + "chapters/09-performance-distributed/side-by-side.html")
    page.wait_for_load_state("load")
    assert page.locator("#pst-secondary-sidebar").count() == 0
    widths = page.evaluate(
        "[...document.querySelectorAll('.side-by-side .sd-col')]"
        ".map(e => e.getBoundingClientRect().width)"
    )
    assert len(widths) >= 2 and min(widths) > 1920 / 3, widths
    assert page.evaluate(_CODE_COLUMNS) > 90
    shot(page, "side-by-side-1920")
    # At 1300 px a column shows fewer columns than the code's 88: lines wrap, none scrolls.
    page.set_viewport_size({"width": 1300, "height": 1000})
    page.goto(site_url + "chapters/09-performance-distributed/side-by-side.html")
    page.wait_for_load_state("load")
    scrolled = page.evaluate(
        "[...document.querySelectorAll('.side-by-side pre')]"
        ".filter(p => p.scrollWidth > p.clientWidth + 1).length"
    )
    assert page.locator(".side-by-side pre").count() > 20 and scrolled == 0, scrolled
    shot(page, "side-by-side-1300")
    page.goto(site_url + "chapters/05-cifar10/in-pytorch.html")
    page.wait_for_load_state("load")
    assert page.evaluate(_CODE_COLUMNS) > 90
    assert page.errors == []


@pytest.mark.parametrize(
    "rel",
    [
        "chapters/05-cifar10/in-jax.html",  # a long XLA flag as inline code
        "labs/09-performance-distributed/in-pytorch.html",  # the link to its solution
        "solutions/08-optimizers/in-jax.html",
    ],
)
def test_a_phone_never_scrolls_the_whole_page_sideways(page, site_url, rel):
    """_static/custom.css: at 400 px a long inline path or flag breaks inside the prose
    (it widened these pages to 473-726 px); code cells and maths scroll in their own box."""
    page.set_viewport_size({"width": 400, "height": 800})
    page.goto(site_url + rel)
    page.wait_for_load_state("load")
    assert page.evaluate("document.documentElement.scrollWidth") <= 401
    assert page.errors == []
