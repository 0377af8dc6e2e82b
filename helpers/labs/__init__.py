"""Lab self-checks: the check kit, then one package per lab.

``helpers/labs/labNN/`` holds ``checks.py`` (the checks, written once on numpy answers; a long
lab keeps each exercise in a module of its own that ``checks.py`` re-exports) and two
adapters, ``torch.py`` and ``jax.py``, that bind them to a framework. Notebooks reach a
lab's adapter as ``H.labNN`` (imported on first use by ``helpers.torch`` / ``helpers.jax``).
"""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

from helpers.labs.kit import Checker, CheckFailed, Framework, Hints, checking

__all__ = ["CheckFailed", "Checker", "Framework", "Hints", "checking", "lab_names"]

_LAB = re.compile(r"lab\d\d")


def lab_names() -> list[str]:
    """Every lab package, in order: ``["lab01", ...]``."""
    found = pkgutil.iter_modules([str(Path(__file__).parent)])
    return sorted(m.name for m in found if m.ispkg and _LAB.fullmatch(m.name))
