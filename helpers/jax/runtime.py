"""Where JAX runs and how: device, PRNG keys, matmul precision, moving batches to the device."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from helpers.scale import current_scale
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
    """Framework, version, device and scale: printed by every notebook, recorded by benchmarks."""
    device = default_device() if device is None else device
    name = cpu_name() if device.platform == "cpu" else device.device_kind
    return {
        "framework": "jax",
        "version": jax.__version__,
        "device": f"{device.platform} ({name})",
        "threads": "XLA-managed",
        "scale": current_scale(),
    }


def synchronize(result: Any = None) -> None:
    """Wait until ``result`` (any pytree of arrays) is computed: JAX dispatches asynchronously."""
    if result is not None:
        jax.block_until_ready(result)


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
