"""Framework-free parts of chapter 10's measurements: latency percentiles, size on disk,
a fresh Python process to reload an exported model in, the comparison table and its plot.

Both halves (``helpers.torch.deploy``, ``helpers.jax.deploy``) build on these; what chapter 10
teaches (quantization, pruning, distillation, attributions, the export calls) is written out in
its notebooks.
"""

from __future__ import annotations

import io
import math
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "archive_size",
    "compressed_size",
    "format_table",
    "latency_verdicts",
    "percentiles_ms",
    "plot_size_accuracy",
    "run_in_fresh_process",
    "time_calls",
]


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    """``{"p50": ..., "p95": ...}`` in milliseconds of a list of call durations in seconds.

    Raises ``ValueError`` for an empty list or a negative or non-finite duration.
    """
    times = np.asarray(list(seconds), dtype=np.float64)
    if times.size == 0:
        raise ValueError("expected at least one duration in seconds, got none")
    if not np.all(np.isfinite(times)) or np.any(times < 0):
        raise ValueError("expected finite, non-negative durations in seconds")
    p50, p95 = np.percentile(times * 1e3, [50, 95])
    return {"p50": float(p50), "p95": float(p95)}


def time_calls(
    call: Callable[[], object], *, repeats: int = 50, warmup: int = 5
) -> dict[str, float]:
    """Latency percentiles (ms) of ``call()``, which must return only once its work is done.

    ``warmup`` calls first absorb compilation and allocation; then ``repeats`` timed calls.
    Raises ``ValueError`` when ``repeats < 1`` or ``warmup < 0``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(
            f"expected repeats >= 1 and warmup >= 0, got {repeats}, {warmup}"
        )
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return percentiles_ms(times)


def archive_size(arrays: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Bytes of ``arrays`` saved as one ``.npz`` file, plain and deflate-compressed.

    The compressed size shows what zeros (pruning) or repeated values save once a file is
    zipped; the plain size is what a dense loader reads. Raises ``TypeError`` for a value that
    is not array-like with a numeric dtype.
    """
    plain, packed = io.BytesIO(), io.BytesIO()
    named = {}
    for name, value in arrays.items():
        a = np.asarray(value)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"expected numeric arrays, got {a.dtype} for {name!r}")
        named[name] = a
    np.savez(plain, **named)
    np.savez_compressed(packed, **named)
    return {"bytes": plain.tell(), "zipped_bytes": packed.tell()}


def compressed_size(data: bytes) -> int:
    """Bytes of ``data`` after deflate (zlib level 6): the size of the file inside a zip."""
    return len(zlib.compress(data, 6))


def run_in_fresh_process(
    script: str, inputs: Mapping[str, np.ndarray], *, timeout: float = 600
) -> dict[str, np.ndarray]:
    """Run ``script`` in a new Python interpreter and return the arrays it saved.

    The script finds ``sys.argv[1]``, an ``.npz`` file of ``inputs``, and must write its
    results to ``sys.argv[2]`` with ``np.savez``. Nothing of this process (imports, compiled
    functions, model objects) is shared: only files. The working directory is this process's.
    Raises ``RuntimeError`` with the child's error output when it fails.
    """
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        np.savez(src, **{k: np.asarray(v) for k, v in inputs.items()})
        done = subprocess.run(
            [sys.executable, "-c", script, str(src), str(dst)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0 or not dst.exists():
            raise RuntimeError(
                f"the fresh process failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
            )
        with np.load(dst) as out:
            return {k: out[k] for k in out.files}


def format_table(
    rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None
) -> str:
    """Rows of equal keys as an aligned text table (floats with 3 significant digits).

    ``columns``: the keys to show, in that order (default: all of the first row's), so that a
    wide table can be printed as two narrower ones; a key no row has raises ``ValueError``.
    """
    if not rows:
        raise ValueError("expected at least one row")
    keys = list(rows[0]) if columns is None else list(columns)
    unknown = [k for k in keys if all(k not in r for r in rows)]
    if unknown or not keys:
        raise ValueError(f"expected columns among {list(rows[0])}, got {keys}")

    def cell(v: object) -> str:
        if isinstance(v, float):
            if math.isnan(v):
                return "-"
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    table = [keys] + [[cell(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(keys))]
    lines = [
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def latency_verdicts(
    rows: Sequence[Mapping[str, Any]],
    reference_params: int,
    columns: Sequence[str] = ("b1 p50", "b64 p50"),
) -> list[str]:
    """One line per latency column: do the models that compute less run faster, beyond noise?

    Rows whose ``params`` is a number below ``reference_params`` are the narrow ones; the rest
    (``params`` ``"-"`` included) compute the reference model's work. Each row's ``column`` is
    a median in ms. The noise is the wider of the two groups' ranges of medians (rows that
    compute alike differ by chance alone); the gap between the groups counts only beyond it,
    either way. Raises ``ValueError`` if either group is empty.
    """
    narrow_rows = [
        r for r in rows if r["params"] != "-" and r["params"] < reference_params
    ]
    wide_rows = [r for r in rows if r not in narrow_rows]
    if not narrow_rows or not wide_rows:
        raise ValueError(
            f"expected rows both below and at {reference_params:,} params, "
            f"got {[r['params'] for r in rows]}"
        )
    lines = []
    for column in columns:
        narrow = [r[column] for r in narrow_rows]  # ms, one median per row
        wide = [r[column] for r in wide_rows]
        spread = max(max(narrow) - min(narrow), max(wide) - min(wide))
        if min(wide) - max(narrow) > spread:
            verdict = "narrow faster, beyond the spread"
        elif min(narrow) - max(wide) > spread:
            verdict = "narrow slower, beyond the spread"
        else:
            verdict = "within the spread: noise"
        lines.append(
            f"{column}: narrow {min(narrow):.3g}-{max(narrow):.3g} ms, wide "
            f"{min(wide):.3g}-{max(wide):.3g} ms, spread {spread:.3g} ms -> {verdict}"
        )
    return lines


def plot_size_accuracy(rows: Sequence[Mapping[str, object]], *, title: str) -> Any:
    """Test accuracy against size on disk, one point per row of chapter 10's table.

    ``rows``: mappings with ``variant`` (name), ``size`` (kB) and ``acc`` (0..1). Each variant
    gets its own hollow marker and colour, named in a legend under the axes (names written
    beside the points collide when variants lie close together). Variants can land on one
    point (same size, same accuracy): a marker is drawn smaller for every earlier variant at
    about the same place, so coincident markers nest. Returns the matplotlib figure; raises
    ``ValueError`` for no rows and ``KeyError`` for a row without one of those keys.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from helpers.plot import legend_below_axes

    if not rows:
        raise ValueError("plot_size_accuracy: no rows to plot")

    fig, ax = plt.subplots(figsize=(7, 4))
    xs = np.array([row["size"] for row in rows], dtype=float)
    ys = np.array([row["acc"] for row in rows], dtype=float)
    span_x, span_y = np.ptp(xs) or 1.0, np.ptp(ys) or 1.0
    markers = "osD^vPX*h"
    handles = []
    for i in range(len(rows)):
        near = int(np.sum((np.abs(xs[:i] - xs[i]) < 0.15 * span_x)
                          & (np.abs(ys[:i] - ys[i]) < 0.06 * span_y)))  # fmt: skip
        marker = markers[i % len(markers)]
        ax.scatter(xs[i], ys[i], s=150 / (1 + 1.5 * near), marker=marker,
                   facecolors="none", edgecolors=f"C{i}", linewidths=1.5)  # fmt: skip
        handles.append(Line2D([], [], marker=marker, linestyle="", markersize=8,
                              markerfacecolor="none", markeredgecolor=f"C{i}"))  # fmt: skip
    ax.margins(x=0.15, y=0.2)
    ax.set(xlabel="size on disk (kB)", ylabel="test accuracy", title=title)
    fig.tight_layout()
    legend_below_axes(ax, handles, [str(row["variant"]) for row in rows], ncol=2)
    return fig
