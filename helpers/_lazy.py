"""Modules that ``helpers.torch`` and ``helpers.jax`` import on first use (PEP 562).

``H.lab01`` is ``helpers.labs.lab01.<framework>``; ``H.vision``, ``H.rl`` and every other
module of a half are imported the first time a notebook names them, so chapter 1 never pays
for (or needs the packages of) what chapters 6-10 use.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path
from types import ModuleType

__all__ = ["lazy_names", "load"]

_LAB = re.compile(r"lab\d\d")


def load(package: str, name: str) -> ModuleType:
    """The module ``package.name`` (or the lab adapter); ``AttributeError`` if there is none."""
    framework = package.rsplit(".", 1)[-1]  # "torch" or "jax"
    if _LAB.fullmatch(name):
        target = f"helpers.labs.{name}.{framework}"
    else:
        target = f"{package}.{name}"
    if name.startswith("_") or importlib.util.find_spec(target) is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return importlib.import_module(target)


def lazy_names(package: str) -> list[str]:
    """The names :func:`load` serves for ``package``: its modules and every lab."""
    from helpers.labs import lab_names

    folder = Path(importlib.util.find_spec(package).origin).parent
    modules = [m.name for m in pkgutil.iter_modules([str(folder)])]
    return sorted([*modules, *lab_names()])
