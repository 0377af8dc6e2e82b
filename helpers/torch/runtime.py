"""Where PyTorch runs and how: device, seeding, matmul precision, moving batches to the device."""

from __future__ import annotations

import random
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

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


def default_device() -> torch.device:
    """The fastest device present: CUDA GPU, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and PyTorch's global generators (CPU and every GPU).

    PyTorch draws initial weights and dropout masks from a global generator, so this is how a
    PyTorch run is made repeatable. Returns a CPU generator seeded the same way, for code that
    takes an explicit ``generator=``.
    """
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002  (legacy global state some libraries still read)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def set_matmul_precision(level: str) -> None:
    """``"highest"`` (true float32), ``"high"`` (TF32 on recent NVIDIA GPUs) or ``"medium"``.

    Only float32 matrix products on GPUs are affected; CPU results stay float32.
    """
    if level not in ("highest", "high", "medium"):
        raise ValueError(f"level must be 'highest', 'high' or 'medium', got {level!r}")
    torch.set_float32_matmul_precision(level)


def to_device(batch: Any, device: torch.device | str | None = None) -> Any:
    """Move a batch (array, tensor, or tuple/list/dict of them) to ``device`` as tensors.

    numpy arrays become tensors without a copy on the CPU; on a GPU the copy is asynchronous
    when the source is in pinned memory.
    """
    device = default_device() if device is None else torch.device(device)
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, np.ndarray):
        return torch.from_numpy(batch).to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    raise TypeError(
        f"cannot move a {type(batch).__name__} to a device; expected arrays/tensors"
    )


def runtime_info(device: torch.device | None = None) -> dict[str, str]:
    """Framework, version, device and scale: printed by every notebook, recorded by benchmarks.

    Warns (:class:`~helpers.scale.ScaleWarning`) when the scale is ``gpu`` but ``device`` is
    not a GPU: a full-scale run on a CPU takes many times longer than a notebook should.
    """
    device = default_device() if device is None else device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        name = "Apple MPS"
    else:
        name = cpu_name()
    scale = current_scale()
    if (problem := scale_mismatch(scale, device.type, "PyTorch")) is not None:
        warnings.warn(problem, ScaleWarning, stacklevel=2)
    return {
        "framework": "torch",
        "version": torch.__version__,
        "device": f"{device.type} ({name})",
        "threads": str(torch.get_num_threads()),
        "scale": scale,
    }


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _tensors(v)


def _wait_for(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def synchronize(value: Any) -> Any:
    """Wait until ``value`` (a tensor, or a tuple/list/dict of them) is computed; return it.

    GPU work runs asynchronously: a call returns before its result exists, so a timer must
    wait for the result before it reads the clock. Waits for every device ``value`` lives on
    (on a CPU there is nothing to wait for). Raises ``TypeError`` if ``value`` holds no tensor.
    """
    devices = {t.device for t in _tensors(value)}
    if not devices:
        raise TypeError(
            "synchronize(value) waits for the tensors in value; "
            f"got a {type(value).__name__} holding none"
        )
    for device in devices:
        _wait_for(device)
    return value


def time_fn(
    fn: Callable[..., Any], *args: Any, repeats: int = 10, warmup: int = 1
) -> float:
    """Median seconds per call of ``fn(*args)``, waiting for the device after every call.

    The warm-up calls absorb one-time costs (allocation, ``torch.compile``, CUDA start-up).
    """
    device = default_device()
    for _ in range(warmup):
        fn(*args)
    _wait_for(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        _wait_for(device)  # fn may return nothing (an in-place op): wait for the device
        times.append(time.perf_counter() - start)
    return statistics.median(times)
