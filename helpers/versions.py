"""The oldest library versions the helpers work with, checked where they are imported.

``helpers.torch`` calls ``require("torch")`` and ``helpers.jax`` calls
``require("jax", "flax", "optax")`` on import, so a too-old library fails at once with a message
that names the version needed, not later with an ``AttributeError`` deep inside a lab check.
Each minimum is the first release with an API the helpers use (the reason is kept beside it),
and ``tests/test_versions.py`` imports the helpers against the declared flax minimum.

In Colab, whose preinstalled flax/optax may lag behind, the notebooks' first cell calls
:func:`colab_setup`: it upgrades those two (never torch or jax, which Colab builds for its
CUDA) and says whether the runtime must be restarted.

That install brings only the ``helpers`` package, not the course's other files (recorded runs,
launch scripts): :func:`course_root` finds the course folder, and on Colab clones it once.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = [
    "CACHE_DIR",
    "MINIMUM",
    "REPOSITORY",
    "colab_setup",
    "course_root",
    "parse",
    "require",
    "too_old",
]

# The course repository; the notebooks' Colab install line names the same URL (a test checks).
REPOSITORY = "https://github.com/pytorch-jax-course/pytorch-jax-course"
# Where course_root() keeps its clone on Colab.
CACHE_DIR = Path.home() / ".cache" / "pytorch-jax-course" / "repo"

# package -> (oldest version, why)
MINIMUM: dict[str, tuple[str, str]] = {
    "torch": ("2.4", "torch.cond, shown in chapter 1, is public from 2.4"),
    "jax": ("0.7.1", "the oldest jax that flax 0.12.0 accepts"),
    "flax": ("0.12.0", "nnx.List and Optimizer(model, tx, wrt=...)"),
    "optax": ("0.2.4", "the oldest optax tested with flax 0.12.0 here"),
}
# Colab may upgrade these two; torch and jax come with its CUDA setup and are never touched.
UPGRADABLE = ("flax", "optax")


def parse(text: str) -> tuple[int, ...]:
    """``"0.12.0rc1+cu12"`` -> ``(0, 12, 0)``: the leading numeric release parts."""
    match = re.match(r"\d+(?:\.\d+)*", text.strip())
    if match is None:
        raise ValueError(f"not a version number: {text!r}")
    return tuple(int(p) for p in match.group().split("."))


def too_old(package: str) -> str | None:
    """A message if ``package`` is missing or older than its minimum, else None."""
    needed, why = MINIMUM[package]
    try:
        found = version(package)
    except PackageNotFoundError:
        return f"{package} is not installed; the course needs {package} >= {needed}"
    if parse(found) < parse(needed):
        return f"{package} {found} is too old: the course needs {package} >= {needed} ({why})"
    return None


def require(*packages: str) -> None:
    """Raise ``ImportError`` naming every package in ``packages`` older than its minimum."""
    problems = [m for p in packages if (m := too_old(p)) is not None]
    if problems:
        fix = "pip install -U " + " ".join(f"'{p}>={MINIMUM[p][0]}'" for p in packages)
        raise ImportError("; ".join(problems) + f". Upgrade with: {fix}")


def colab_setup() -> None:
    """In Colab: upgrade flax/optax if too old; stop with advice if torch or jax is.

    Prints what it did. Raises ``RuntimeError`` when jax or torch is older than the course
    needs (Colab's own builds must not be replaced by pip), saying what to do instead.
    """
    for package in ("torch", "jax"):
        if (problem := too_old(package)) is not None:
            raise RuntimeError(
                f"{problem}. This runtime's {package} cannot be upgraded safely with pip: "
                "use a current Colab runtime (Runtime > Change runtime type), or run the "
                "course locally (see the README)."
            )
    stale = [p for p in UPGRADABLE if too_old(p) is not None]
    if not stale:
        return
    specs = [f"{p}>={MINIMUM[p][0]}" for p in stale]
    print(f"Upgrading {', '.join(specs)} (Colab's are older than the course needs) ...")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *specs], check=True)
    if any(p in sys.modules for p in stale):
        print("Done. Restart the runtime (Runtime > Restart session), then run on.")
    else:
        print("Done; no restart needed.")


def _is_root(folder: Path) -> bool:
    return (folder / "_toc.yml").is_file()


def _clone(url: str, dest: Path) -> None:
    """``git clone --depth 1 url dest``; raises ``CalledProcessError`` or ``OSError``."""
    subprocess.run(["git", "clone", "-q", "--depth", "1", url, str(dest)], check=True)


def _cached_clone(cache: Path) -> Path:
    """``cache`` holding a shallow clone of :data:`REPOSITORY`, cloned there if not yet.

    The clone goes to a temporary sibling first and is renamed into place, so an interrupted
    or failed clone leaves no half folder. Raises ``FileNotFoundError`` if the clone fails.
    """
    if _is_root(cache):
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{cache.name}-", dir=cache.parent))
    print(f"Cloning {REPOSITORY} into {cache} (once) ...")
    try:
        _clone(REPOSITORY, partial)
        if not _is_root(partial):
            raise FileNotFoundError(f"the clone of {REPOSITORY} has no _toc.yml")
        shutil.rmtree(cache, ignore_errors=True)  # a broken earlier cache, if any
        partial.rename(cache)
    except (OSError, subprocess.CalledProcessError) as error:
        raise FileNotFoundError(
            f"could not clone the course repository ({error}); check the network, "
            f"or clone it yourself: git clone {REPOSITORY}"
        ) from error
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return cache


def course_root() -> Path:
    """The course repository's root folder: the one holding ``_toc.yml``.

    Looks, in order, in (1) the current folder and its parents (a notebook run from a clone);
    (2) the folder above the imported ``helpers`` package (an editable install); (3) on Colab
    only, a shallow clone of :data:`REPOSITORY` in :data:`CACHE_DIR`, made on first use
    (needs ``git`` and the network) and reused after. Raises ``FileNotFoundError`` when none
    holds the course, or when the clone on Colab fails; the message says how to get a clone.
    """
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if _is_root(folder):
            return folder
    package = Path(__file__).resolve().parent.parent
    if _is_root(package):
        return package
    if "google.colab" in sys.modules:
        return _cached_clone(CACHE_DIR)
    raise FileNotFoundError(
        f"no course repository (a folder holding _toc.yml) in {here}, its parents or beside "
        f"the installed helpers. Run the notebook from a clone: git clone {REPOSITORY}, "
        "then open it in the clone's chapters/ folder."
    )
