"""The results page: every recorded ``helpers.bench`` line of every chapter, as a table and plots.

Each chapter keeps the runs it quotes in ``chapters/NN-slug/bench.jsonl`` (one JSON object per
line, written by ``python -m helpers.bench ... --record``). This module reads them all, so the
site shows readers only numbers that come from a real, attributed run.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["load_records", "plot_task", "records_table"]

# (column, record key or None for a computed column)
_COLUMNS = (
    "chapter",
    "task",
    "framework",
    "model",
    "scale",
    "metric",
    "train s",
    "examples/s",
    "hardware",
    "date",
    "commit",
)


def load_records(root: Path) -> list[dict]:
    """Every record in ``root/chapters/*/bench.jsonl``, oldest first, each with its chapter.

    Raises ``ValueError`` naming the file and line of a line that is not a JSON object.
    """
    records = []
    for path in sorted(root.glob("chapters/*/bench.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number}: not JSON ({e})") from None
            if not isinstance(record, dict) or "task" not in record:
                raise ValueError(f"{path}:{number}: not a helpers.bench record")
            records.append({"chapter": path.parent.name, **record})
    return sorted(records, key=lambda r: r.get("date", ""))


def _hardware(record: dict) -> str:
    hw = record.get("hardware", {})
    gpu = hw.get("gpu")
    return gpu if gpu else f"{hw.get('cpu', '?')}, {hw.get('cores', '?')} cores"


def _row(record: dict) -> list[str]:
    accuracy = record.get("test_accuracy")
    metric = f"test accuracy {accuracy:.2%}" if accuracy is not None else "?"
    speed = record.get("train_examples_per_second")
    return [
        record["chapter"],
        record["task"],
        record.get("framework", "?"),
        record.get("model", "?"),
        record.get("scale", "?"),
        metric,
        f"{record.get('train_seconds', float('nan')):.1f}",
        f"{speed:,.0f}" if speed is not None else "?",
        _hardware(record),
        record.get("date", "?")[:10],
        str(record.get("commit", "?")),
    ]


def records_table(records: Sequence[dict]) -> str:
    """A Markdown table of ``records``, one row per run, in the given order."""
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    lines += ["| " + " | ".join(_row(r)) + " |" for r in records]
    return "\n".join(lines)


def plot_task(records: Sequence[dict], task: str) -> Figure:
    """Test accuracy and training throughput of every recorded run of ``task``.

    Raises ``ValueError`` if no record is of ``task``.
    """
    runs = [r for r in records if r["task"] == task]
    if not runs:
        raise ValueError(f"no recorded run of task {task!r}")
    labels = [
        "\n".join(
            (
                f"{r.get('framework')} {r.get('scale')}",
                textwrap.fill(_hardware(r), 22),
                r.get("date", "")[:10],
            )
        )
        for r in runs
    ]
    fig, (ax_acc, ax_speed) = plt.subplots(1, 2, figsize=(11, 4.6))
    x = list(range(len(runs)))
    # PyTorch in C0, JAX in C1: the same colours on every results plot.
    colours = [f"C{int(r.get('framework') == 'jax')}" for r in runs]
    accuracy = [100 * r.get("test_accuracy", float("nan")) for r in runs]
    # Points, not bars: accuracies sit close together, and a bar's length would suggest zero.
    ax_acc.scatter(x, accuracy, c=colours, s=60, zorder=3)
    for xi, value in zip(x, accuracy, strict=True):
        ax_acc.annotate(
            f"{value:.2f}",
            (xi, value),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
        )
    ax_acc.margins(y=0.3)
    ax_acc.set(ylabel="test accuracy (%)", title=f"{task}: test accuracy")
    speed = [r.get("train_examples_per_second", 0) for r in runs]
    ax_speed.bar(x, speed, color=colours)
    ax_speed.set(ylabel="training examples / s", title=f"{task}: training throughput")
    for ax in (ax_acc, ax_speed):
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_xlim(-0.6, len(runs) - 0.4)
        ax.grid(axis="y", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=f"C{i}") for i in range(2)]
    ax_acc.legend(handles, ["PyTorch", "JAX"], loc="upper left")
    fig.tight_layout()
    return fig
