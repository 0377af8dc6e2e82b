"""Three scales, one notebook: every size a chapter uses is defined here, once.

``BOOK_SCALE`` picks the scale:

* ``smoke``: CI. Seconds per notebook on 2 CPU cores; checks that the code runs, not results.
* ``cpu``:   a laptop. A few minutes per notebook; results are meaningful.
* ``gpu``:   Colab or a data-centre GPU. The headline results quoted in the book.

Unset, it is ``gpu`` when an NVIDIA GPU is visible and ``cpu`` otherwise. The check is
framework-free (no torch or jax import), so both notebooks of a pair pick the same scale.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SCALES",
    "MnistSizes",
    "TimingSizes",
    "current_scale",
    "gpu_visible",
    "sizes",
]

SCALES = ("smoke", "cpu", "gpu")


@dataclass(frozen=True)
class MnistSizes:
    """Chapter 1 and ``helpers.bench mnist``: an MLP on MNIST."""

    train_examples: int | None  # None: all 60,000
    test_examples: int | None  # None: all 10,000
    epochs: int
    batch_size: int
    hidden: tuple[int, ...]  # widths of the hidden layers
    learning_rate: float  # Adam


@dataclass(frozen=True)
class TimingSizes:
    """Micro-benchmarks inside notebooks (e.g. eager vs compiled)."""

    repeats: int  # timed calls per measurement; notebooks report the median
    n: int  # length of the vectors being timed


# One table for the whole course; later chapters add their task here.
_SIZES: dict[str, dict[str, object]] = {
    "mnist": {
        "smoke": MnistSizes(2_000, 1_000, 1, 128, (64,), 1e-3),
        "cpu": MnistSizes(None, None, 8, 128, (256,), 1e-3),
        "gpu": MnistSizes(None, None, 15, 256, (512, 512), 1e-3),
    },
    "timing": {
        "smoke": TimingSizes(repeats=3, n=10_000),
        "cpu": TimingSizes(repeats=20, n=1_000_000),
        "gpu": TimingSizes(repeats=50, n=10_000_000),
    },
}


def gpu_visible() -> bool:
    """True when an NVIDIA GPU is visible to this process (Colab GPU runtime, a CUDA box)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return True
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def current_scale() -> str:
    """The scale this process runs at: ``$BOOK_SCALE``, else ``gpu`` or ``cpu`` by hardware."""
    value = os.environ.get("BOOK_SCALE", "").strip().lower()
    if not value:
        return "gpu" if gpu_visible() else "cpu"
    if value not in SCALES:
        raise ValueError(
            f"BOOK_SCALE={os.environ['BOOK_SCALE']!r} is not a scale; "
            f"use one of {', '.join(SCALES)} (or leave it unset to pick by hardware)."
        )
    return value


def sizes(task: str, scale: str | None = None):
    """The sizes of ``task`` at ``scale`` (default: :func:`current_scale`)."""
    if task not in _SIZES:
        raise KeyError(
            f"unknown task {task!r}; known tasks: {', '.join(sorted(_SIZES))}"
        )
    scale = current_scale() if scale is None else scale
    if scale not in SCALES:
        raise ValueError(f"scale {scale!r} is not one of {', '.join(SCALES)}")
    return _SIZES[task][scale]
