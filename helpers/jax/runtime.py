"""Where JAX runs and how: device, PRNG keys, matmul precision, moving batches to the device."""

from __future__ import annotations

import random
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from helpers.scale import ScaleWarning, current_scale, scale_mismatch
from helpers.system import cpu_name

__all__ = [
    "default_device",
    "runtime_info",
    "seed_everything",
    "set_matmul_precision",
    "synchronize",
    "time_fn",
    "to_device",
]


def default_device() -> jax.Device:
    """The device JAX puts new arrays on: the first GPU or TPU if present, else the CPU."""
    return jax.devices()[0]


def seed_everything(seed: int) -> jax.Array:
    """Seed Python's and numpy's global generators and return a JAX PRNG key.

    JAX has no global random state: every random function takes a key, and the same key
    always gives the same numbers. Split the returned key (``jax.random.split``) per use.
    """
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (legacy global state some libraries still read)
    return jax.random.key(seed)


_PRECISION = {"highest": "highest", "high": "high", "medium": "default"}


def set_matmul_precision(level: str) -> None:
    """``"highest"`` (true float32), ``"high"`` (TF32-class) or ``"medium"`` (fastest).

    Sets ``jax_default_matmul_precision``; only float32 products on GPUs/TPUs are affected.
    """
    if level not in _PRECISION:
        raise ValueError(f"level must be 'highest', 'high' or 'medium', got {level!r}")
    jax.config.update("jax_default_matmul_precision", _PRECISION[level])


def to_device(batch: Any, device: jax.Device | None = None) -> Any:
    """Put a batch (array or any pytree of arrays: tuple, list, dict) on ``device``."""
    device = default_device() if device is None else device
    leaves = jax.tree.leaves(batch)
    if not leaves or not all(isinstance(v, (np.ndarray, jax.Array)) for v in leaves):
        raise TypeError(
            f"cannot move a {type(batch).__name__} to a device; expected arrays"
        )
    return jax.device_put(batch, device)


def runtime_info(device: jax.Device | None = None) -> dict[str, str]:
    """Framework, version, device and scale: printed by every notebook, recorded by benchmarks.

    Warns (:class:`~helpers.scale.ScaleWarning`) when the scale is ``gpu`` but ``device`` is
    not a GPU: a full-scale run on a CPU takes many times longer than a notebook should.
    """
    device = default_device() if device is None else device
    name = cpu_name() if device.platform == "cpu" else device.device_kind
    scale = current_scale()
    if (problem := scale_mismatch(scale, device.platform, "JAX")) is not None:
        warnings.warn(problem, ScaleWarning, stacklevel=2)
    return {
        "framework": "jax",
        "version": jax.__version__,
        "device": f"{device.platform} ({name})",
        "threads": "XLA-managed",
        "scale": scale,
    }


def synchronize(value: Any) -> Any:
    """Wait until ``value`` (an array, or any pytree of arrays) is computed; return it.

    JAX dispatches asynchronously: a call returns before its result exists, so a timer must
    wait for the result before it reads the clock (``jax.block_until_ready``). Raises
    ``TypeError`` if ``value`` holds no array.
    """
    if not any(isinstance(v, jax.Array) for v in jax.tree.leaves(value)):
        raise TypeError(
            "synchronize(value) waits for the arrays in value; "
            f"got a {type(value).__name__} holding none"
        )
    return jax.block_until_ready(value)


def time_fn(
    fn: Callable[..., Any], *args: Any, repeats: int = 10, warmup: int = 1
) -> float:
    """Median seconds per call of ``fn(*args)``, waiting for each result to be ready.

    The warm-up calls absorb compilation when ``fn`` is jitted.
    """
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)
