"""Deployment measurements in JAX (chapter 10): ``H.deploy``.

Latency percentiles of a function at a batch size, the size of a pytree's arrays saved as one
``.npz`` file, and the framework-free tools of :mod:`helpers.deploy` (a fresh process, the
table). The PyTorch twin is :mod:`helpers.torch.deploy`; the quantization, pruning, export and
attribution code is written out in chapter 10's notebook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from helpers.deploy import (
    archive_size,
    compressed_size,
    format_table,
    latency_verdicts,
    percentiles_ms,
    plot_size_accuracy,
    run_in_fresh_process,
    time_calls,
)

__all__ = [
    "archive_size",
    "compressed_size",
    "format_table",
    "latency_ms",
    "latency_verdicts",
    "percentiles_ms",
    "plot_size_accuracy",
    "run_in_fresh_process",
    "saved_size",
    "time_calls",
]


def latency_ms(
    fn: Callable[[jax.Array], Any],
    x: jax.Array,
    *,
    repeats: int = 50,
    warmup: int = 5,
) -> dict[str, float]:
    """``{"p50", "p95"}`` milliseconds of ``fn(x)``, waiting for each result to be ready.

    The warm-up calls absorb compilation when ``fn`` is jitted. ``x`` is one batch (its first
    dimension is the batch size). Raises ``TypeError`` when ``x`` has no shape.
    """
    if not hasattr(x, "shape"):
        raise TypeError(f"expected x as an array batch, got {type(x).__name__}")

    def call() -> None:
        jax.block_until_ready(fn(x))

    return time_calls(call, repeats=repeats, warmup=warmup)


def saved_size(obj: Any) -> dict[str, int]:
    """Bytes of the arrays of the pytree ``obj`` (an ``nnx.state``, a dict) in one ``.npz``.

    Each leaf is saved under its path; ``zipped_bytes`` is the compressed ``.npz``.
    """
    leaves = jax.tree_util.tree_leaves_with_path(obj)
    if not leaves:
        raise ValueError("expected a pytree with at least one array, got none")
    arrays = {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}
    return archive_size(arrays)
