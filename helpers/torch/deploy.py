"""Deployment measurements in PyTorch (chapter 10): ``H.deploy``.

Latency percentiles of a model at a batch size, the size of what ``torch.save`` writes, and
the framework-free tools of :mod:`helpers.deploy` (a fresh process, the table). The JAX twin
is :mod:`helpers.jax.deploy`; the quantization, pruning, export and attribution code is
written out in chapter 10's notebook.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import torch

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
from helpers.torch.runtime import synchronize

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
    fn: Callable[[torch.Tensor], Any],
    x: torch.Tensor,
    *,
    repeats: int = 50,
    warmup: int = 5,
) -> dict[str, float]:
    """``{"p50", "p95"}`` milliseconds of ``fn(x)`` under ``torch.inference_mode``.

    Each call waits for the device before its clock stops. ``x`` is one batch (its first
    dimension is the batch size). Raises ``TypeError`` when ``x`` is not a tensor.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected x as a torch.Tensor batch, got {type(x).__name__}")

    def call() -> None:
        with torch.inference_mode():
            synchronize(fn(x))

    return time_calls(call, repeats=repeats, warmup=warmup)


def saved_size(obj: Any) -> dict[str, int]:
    """Bytes ``torch.save(obj)`` writes (a ``state_dict``, a tensor dict), plain and zipped.

    ``zipped_bytes`` is the deflate-compressed size, which shows what pruned zeros save.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    return {"bytes": len(data), "zipped_bytes": compressed_size(data)}
