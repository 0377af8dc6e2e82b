"""Facts about the machine and the checkout, for benchmark records and notebook headers."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

__all__ = ["cpu_name", "git_commit", "gpu_name", "hardware", "short_cpu_name"]


def cpu_name() -> str:
    """The CPU model as the OS reports it (e.g. 'AMD EPYC 9B14'), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def short_cpu_name(name: str) -> str:
    """A recorded CPU name without its trademark marks, for tables: ``Intel(R) Xeon(R)
    Processor`` -> ``Intel Xeon``; other names unchanged (``AMD EPYC``)."""
    return name.replace("(R)", "").replace(" Processor", "").strip()


def gpu_name() -> str | None:
    """The first NVIDIA GPU's name, or None when there is none (no framework import needed)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = out.stdout.strip().splitlines()
    return names[0].strip() if out.returncode == 0 and names else None


def _memory_gib() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * size / 2**30, 1)


def hardware() -> dict[str, object]:
    """CPU, logical cores (those this process may use), memory and GPU."""
    cores = (
        len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count()
    )
    return {
        "cpu": cpu_name(),
        "cores": cores,
        "memory_gib": _memory_gib(),
        "gpu": gpu_name(),
        "python": platform.python_version(),
    }


# A git pathspec: every file but the benchmark records.
_NOT_RECORDS = ":(exclude,glob)**/bench.jsonl"


def git_commit(root: Path | None = None) -> str | None:
    """The checkout's commit (with '+dirty' if it has uncommitted changes), or None.

    ``$BOOK_COMMIT``, if set, wins: the sender of a copy of the checkout (to a remote GPU
    machine, say, whose git history may be another commit's) names the commit it copied.

    The benchmark records (``bench.jsonl``) do not count as changes: a record appended by one
    run does not change what the next run executes.
    """
    if named := os.environ.get("BOOK_COMMIT"):
        return named
    root = Path(__file__).resolve().parent.parent if root is None else root
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            [*"git status --porcelain --untracked-files=no -- .".split(), _NOT_RECORDS],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
