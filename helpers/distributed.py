"""Framework-free pieces of chapter 9: timing done right, the toy data set, ports and bytes.

Both halves use these: :func:`measure` times any call (warm-up, a wait for the result,
median and spread), :func:`measure_interleaved` several calls in turn, :func:`toy_data`
builds the seeded classification set that every distributed run trains on, and
:func:`free_port` finds a port on 127.0.0.1 for a rendezvous.
The launch helpers themselves are framework-specific: ``helpers.torch.parallel`` (torchrun,
``torch.multiprocessing``) and ``helpers.jax.sharding`` (meshes, ``jax.distributed``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helpers.scale import DataParallelSizes

__all__ = [
    "Timing",
    "child_env",
    "free_port",
    "markdown_table",
    "measure",
    "measure_interleaved",
    "run_processes",
    "sizes_from_json",
    "sizes_to_json",
    "toy_data",
]

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one measured function: every sample, with its median and spread."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def spread(self) -> float:
        """Half the interquartile range (robust to one slow outlier), in seconds."""
        if len(self.samples) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.samples, n=4, method="inclusive")
        return (q3 - q1) / 2

    def rate(self, items: int) -> float:
        """Items per second at the median (``items`` processed per call)."""
        return items / self.median

    def __str__(self) -> str:
        return f"{self.median * 1e3:.1f} ms ± {self.spread * 1e3:.1f}"


def measure(
    fn: Callable[[], Any],
    *,
    wait: Callable[[Any], Any] | None = None,
    repeats: int = 5,
    warmup: int = 1,
) -> Timing:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls.

    ``wait(result)`` must block until the result exists (``torch.cuda.synchronize`` or
    ``jax.block_until_ready``): asynchronous frameworks return before the work is done, and a
    clock read then times the dispatch, not the work. Raises ``ValueError`` for
    ``repeats < 1`` or ``warmup < 0``.
    """
    # One function timed alone is the one-entry case of measure_interleaved.
    timings = measure_interleaved({"fn": fn}, wait=wait, repeats=repeats, warmup=warmup)
    return timings["fn"]


def measure_interleaved(
    fns: dict[str, Callable[[], Any]],
    *,
    wait: Callable[[Any], Any] | None = None,
    repeats: int = 5,
    warmup: int = 1,
) -> dict[str, Timing]:
    """Time several calls in turn: each round takes one sample of every function, in order.

    Like :func:`measure` for each of ``fns`` (same ``wait``, ``repeats``, ``warmup``), but
    interleaved, so that a slow spell of a shared machine falls on all of them alike instead
    of on whichever was being timed then. Returns a ``Timing`` per name, in ``fns``' order.
    Raises ``ValueError`` for no functions, ``repeats < 1`` or ``warmup < 0``.
    """
    if not fns:
        raise ValueError("need at least one function to time, got none")
    if repeats < 1 or warmup < 0:
        raise ValueError(
            f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}"
        )
    wait = (lambda value: value) if wait is None else wait
    for _ in range(warmup):
        for fn in fns.values():
            wait(fn())
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            wait(fn())
            samples[name].append(time.perf_counter() - start)
    return {name: Timing(tuple(s)) for name, s in samples.items()}


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (for ``IPython.display.Markdown``); floats printed with 3 significant
    digits, a :class:`Timing` with non-breaking spaces (a narrow column then wraps between
    cells, not inside ``33.9 ms ± 0.9``). Raises ``ValueError`` when a row's length differs
    from the headers'."""
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(
                f"row {row!r} has {len(row)} cells, headers {len(headers)}"
            )

    def cell(v: Any) -> str:
        if isinstance(v, Timing):
            return str(v).replace(" ", "\u00a0")
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def toy_data(sizes: DataParallelSizes) -> tuple[np.ndarray, np.ndarray]:
    """The seeded classification set of the distributed runs.

    Returns ``x`` ``float32 (examples, features)`` and ``y`` ``int64 (examples,)``: Gaussian
    inputs labelled by a fixed random linear teacher, so a small MLP learns it in a few steps.
    The same ``sizes`` give the same arrays in every process. Raises ``ValueError`` when the
    batch does not divide the examples into at least one step.
    """
    if not 0 < sizes.batch_size <= sizes.examples:
        raise ValueError(
            f"batch_size must be in 1..examples={sizes.examples}, got {sizes.batch_size}"
        )
    rng = np.random.default_rng(sizes.seed)
    x = rng.standard_normal((sizes.examples, sizes.features), dtype=np.float32)
    teacher = rng.standard_normal((sizes.features, sizes.classes), dtype=np.float32)
    y = (x @ teacher).argmax(axis=1).astype(np.int64)
    return x, y


def sizes_to_json(sizes: DataParallelSizes) -> str:
    """``sizes`` as one JSON object, to hand to a worker process on its command line."""
    return json.dumps(dataclasses.asdict(sizes))


def sizes_from_json(text: str) -> DataParallelSizes:
    """The inverse of :func:`sizes_to_json`; ``ValueError`` names missing or unknown keys."""
    data = json.loads(text)
    fields = {f.name for f in dataclasses.fields(DataParallelSizes)}
    if not isinstance(data, dict) or set(data) != fields:
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"expected a JSON object with keys {sorted(fields)}, got {got}"
        )
    return DataParallelSizes(**data)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a rendezvous or a coordinator)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(threads: int = 1, **extra: str) -> dict[str, str]:
    """The environment for a worker process: this one's, the course on ``PYTHONPATH``, and
    ``threads`` OpenMP/MKL threads (two workers on two cores should not each start two)."""
    env = dict(os.environ)
    paths = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    env.update(extra)
    return env


def run_processes(
    commands: Sequence[Sequence[str]],
    env: dict[str, str],
    *,
    timeout: float,
    what: str,
) -> float:
    """Start one process per command at once, wait for all, return the wall-clock seconds.

    The launchers' common part (torchrun "nodes", ``jax.distributed`` processes): the
    processes share one deadline of ``timeout`` seconds. ``RuntimeError`` naming ``what``
    (e.g. "torchrun") when they run past it (all are killed) or one exits non-zero (with the
    end of its combined stdout and stderr).
    """
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            list(cmd),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for cmd in commands
    ]
    outputs = []
    try:
        for p in procs:
            remaining = max(1.0, timeout - (time.perf_counter() - start))
            outputs.append(p.communicate(timeout=remaining)[0])
    except subprocess.TimeoutExpired as error:
        for p in procs:
            p.kill()
        raise RuntimeError(f"{what} ran past {timeout} s") from error
    seconds = time.perf_counter() - start
    for i, (p, text) in enumerate(zip(procs, outputs, strict=True)):
        if p.returncode != 0:
            raise RuntimeError(
                f"{what} (process {i}) exited with {p.returncode}:\n{text[-3000:]}"
            )
    return seconds
