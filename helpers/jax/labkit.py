"""What every lab's JAX adapter shares: how a check hands arrays over and reads them back.

``helpers/labs/labNN/jax.py`` builds its :class:`~helpers.labs.kit.Framework` here, giving
only what is particular to its lab (its hints and how to explain JAX's errors).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from helpers.labs.kit import Framework, Hints

__all__ = ["lab_framework", "to_numpy"]


def to_numpy(value: object) -> np.ndarray:
    """A JAX array as numpy; ``TypeError`` (naming the type) for anything that is not one."""
    if not isinstance(value, jax.Array):
        raise TypeError(type(value).__name__)
    return np.asarray(value)


def lab_framework(
    hints: Hints,
    explain: Callable[[BaseException], str | None],
    side_effects: Callable[[Any], str | None] | None = None,
) -> Framework:
    """The JAX ``Framework`` of one lab: its ``hints``, ``explain`` and ``side_effects``."""
    extra = {} if side_effects is None else {"side_effects": side_effects}
    return Framework(
        name="jax",
        array_type="a jax.Array",
        from_numpy=jnp.asarray,
        to_numpy=to_numpy,
        hints=hints,
        explain=explain,
        **extra,
    )
