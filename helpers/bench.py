"""Measure a task end to end and print one JSON line: the numbers the book may quote.

    python -m helpers.bench mnist --framework torch --scale cpu
    python -m helpers.bench mnist --framework jax --record chapters/01-introduction/bench.jsonl

The line holds the task's metrics (accuracy, seconds, throughput) plus the hardware, the
library versions, the date and the git commit, so a figure in the book can name its run.
``--record FILE`` also appends the line to FILE. Progress goes to stderr, the JSON to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from helpers.scale import SCALES, current_scale, sizes
from helpers.system import git_commit, hardware

__all__ = ["TASKS", "main", "run"]

TASKS = {"mnist": "run_mnist"}  # task -> function in helpers.<framework>.tasks
FRAMEWORKS = {"torch": ("torch",), "jax": ("jax", "jaxlib", "flax", "optax")}


def _versions(framework: str) -> dict[str, str]:
    out = {}
    for package in ("numpy", *FRAMEWORKS[framework]):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def run(
    task: str, framework: str, scale: str | None = None, *, progress: bool = True
) -> dict:
    """Run ``task`` with ``framework`` at ``scale``; return the full record."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    if framework not in FRAMEWORKS:
        raise ValueError(
            f"unknown framework {framework!r}; choose from {', '.join(FRAMEWORKS)}"
        )
    scale = current_scale() if scale is None else scale
    fw = importlib.import_module(f"helpers.{framework}")
    device = fw.default_device()
    device_type = getattr(device, "type", None) or getattr(device, "platform", "")
    if scale == "gpu" and device_type == "cpu":
        raise ValueError(
            f"scale 'gpu' needs a GPU, but {framework} runs on the CPU here; "
            "a gpu-scale record must come from a GPU (use --scale cpu on this machine)"
        )
    started = dt.datetime.now(dt.timezone.utc)
    metrics = getattr(fw.tasks, TASKS[task])(sizes(task, scale), progress=progress)
    return {
        "task": task,
        "framework": framework,
        "scale": scale,
        **metrics,
        "device": fw.runtime_info()["device"],
        "hardware": hardware(),
        "versions": _versions(framework),
        "date": started.isoformat(timespec="seconds"),
        "commit": git_commit(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--framework", required=True, choices=sorted(FRAMEWORKS))
    parser.add_argument(
        "--scale", choices=SCALES, help="default: $BOOK_SCALE, else by hardware"
    )
    parser.add_argument(
        "--record", type=Path, metavar="FILE", help="also append the line here"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar on stderr"
    )
    args = parser.parse_args(argv)
    try:
        record = run(
            args.task, args.framework, args.scale, progress=not args.no_progress
        )
    except (
        ValueError,
        FileNotFoundError,
    ) as e:  # bad BOOK_SCALE, data not found: say it plainly
        print(f"error: {e}", file=sys.stderr)
        return 2
    line = json.dumps(record)
    print(line)
    if args.record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        with open(args.record, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
