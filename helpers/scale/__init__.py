"""Three scales, one notebook: every size a chapter uses is defined in this package, once.

``BOOK_SCALE`` picks the scale:

* ``smoke``: CI. Seconds per notebook on 2 CPU cores; checks that the code runs, not results.
* ``cpu``:   a laptop. A few minutes per notebook; results are meaningful.
* ``gpu``:   Colab or a data-centre GPU. The headline results quoted in the book.

Unset, it is ``gpu`` when an NVIDIA GPU is visible and ``cpu`` otherwise. The check is
framework-free (no torch or jax import), so both notebooks of a pair pick the same scale.

The sizes form one table, ``sizes(task, scale)``; each topic module holds its tasks' frozen
dataclasses and entries: :mod:`~helpers.scale.foundations` (chapters 1-4),
:mod:`~helpers.scale.vision` (5), :mod:`~helpers.scale.text` (6), :mod:`~helpers.scale.rl`
(7), :mod:`~helpers.scale.training` (8, 9), :mod:`~helpers.scale.compression` (10).

Their comments keep each size's tuning history. Test-set figures there come from the
chapters' ``bench.jsonl`` records, which name hardware, date and commit; validation-split
figures and the timings of tuning runs were not recorded, and the book does not quote them.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

from helpers.scale import compression, foundations, rl, text, training, vision
from helpers.scale.compression import CompressionSizes
from helpers.scale.foundations import (
    BackpropSizes,
    CnnSizes,
    DepthSizes,
    EarlyStoppingSizes,
    MnistSizes,
    SequenceSizes,
    TimingSizes,
    TransformSizes,
    cnn_feature_side,
)
from helpers.scale.rl import CartpoleSizes, DdpgSizes, DqnSizes, PpoSizes
from helpers.scale.text import ImdbSizes, TextModelSizes
from helpers.scale.training import (
    DataParallelSizes,
    OptimizerSizes,
    PerformanceSizes,
    RingTimingSizes,
)
from helpers.scale.vision import Cifar10Sizes

__all__ = [
    "SCALES",
    "BackpropSizes",
    "CartpoleSizes",
    "Cifar10Sizes",
    "CnnSizes",
    "CompressionSizes",
    "DataParallelSizes",
    "DdpgSizes",
    "DepthSizes",
    "DqnSizes",
    "EarlyStoppingSizes",
    "ImdbSizes",
    "MnistSizes",
    "OptimizerSizes",
    "PerformanceSizes",
    "PpoSizes",
    "RingTimingSizes",
    "ScaleWarning",
    "SequenceSizes",
    "TextModelSizes",
    "TimingSizes",
    "TransformSizes",
    "cnn_feature_side",
    "current_scale",
    "gpu_visible",
    "override_sizes",
    "scale_mismatch",
    "sizes",
]

SCALES = ("smoke", "cpu", "gpu")


def _merge(*modules) -> dict[str, dict[str, object]]:
    """The one table: every topic's entries (a task named twice is a bug: ``ValueError``)."""
    table: dict[str, dict[str, object]] = {}
    for module in modules:
        twice = table.keys() & module.SIZES.keys()
        if twice:
            raise ValueError(f"tasks defined twice in helpers.scale: {sorted(twice)}")
        table.update(module.SIZES)
    return table


_SIZES = _merge(foundations, vision, text, rl, training, compression)


class ScaleWarning(UserWarning):
    """The scale does not fit the hardware (``gpu`` scale, but the framework has no GPU)."""


def scale_mismatch(scale: str, device_type: str, framework: str) -> str | None:
    """A loud message when ``scale`` is ``gpu`` but the framework runs on ``device_type``
    ``"cpu"`` (a CPU-only wheel on a GPU machine, a misconfigured runtime); else None."""
    if scale != "gpu" or device_type != "cpu":
        return None
    how = (
        "BOOK_SCALE=gpu"
        if os.environ.get("BOOK_SCALE")
        else "the GPU this machine shows"
    )
    return (
        f"\n{'!' * 78}\n"
        f"Scale 'gpu' (from {how}), but {framework} sees no GPU and runs on the CPU:\n"
        "the full-scale runs on this page would take many times longer than intended.\n"
        "To run at laptop scale instead, execute\n"
        '    import os; os.environ["BOOK_SCALE"] = "cpu"\n'
        "and run this cell again (or install a GPU build of the framework).\n"
        f"{'!' * 78}"
    )


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


def _parse_value(text: str, current: object, name: str) -> object:
    """``text`` as a value of the type of ``current`` (the field's value at this scale)."""
    if text.lower() == "none":
        return None
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if isinstance(current, tuple):
            kind = type(current[0]) if current else int
            return tuple(kind(part) for part in text.split(","))
        if isinstance(current, (int, float)):
            return type(current)(text)
        if current is None:  # an optional number, None at this scale
            return float(text) if "." in text else int(text)
        return text
    except ValueError:
        raise ValueError(
            f"{name}={text} (--set/--versus): expected a value like {current!r}"
        ) from None


def override_sizes(
    sizes_obj, assignments: list[str]
) -> tuple[object, dict[str, object]]:
    """A copy of the frozen sizes dataclass ``sizes_obj`` with ``FIELD=VALUE`` assignments
    (``helpers.bench --set`` and ``--versus``: sweeps).

    Values are parsed by the type of the field's current value: ``int``, ``float``, ``bool``
    (``true``/``false``), a tuple (comma-separated), ``none``, a number where the field is None
    at this scale; anything else stays a string.
    Returns ``(sizes, {field: value})``. Raises ``ValueError`` for a malformed assignment or
    an unknown field (the message lists the known ones).
    """
    fields = [f.name for f in dataclasses.fields(sizes_obj)]
    changes = {}
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        if not sep or not name:
            raise ValueError(f"--set/--versus expect FIELD=VALUE, got {assignment!r}")
        if name not in fields:
            raise ValueError(
                f"--set/--versus {name}: no such size; known: {', '.join(fields)}"
            )
        changes[name] = _parse_value(text, getattr(sizes_obj, name), name)
    return dataclasses.replace(sizes_obj, **changes), changes
