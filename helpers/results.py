"""The results page: every recorded ``helpers.bench`` line of every chapter, as a table and plots.

Each chapter keeps the runs it quotes in ``chapters/NN-slug/bench.jsonl`` (one JSON object per
line, written by ``python -m helpers.bench ... --record``). This module reads them all, so the
site shows readers only numbers that come from a real, attributed run.
"""

from __future__ import annotations

import json
import statistics
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pyplot is imported where a plot is drawn: helpers.bench needs none
    from matplotlib.figure import Figure

__all__ = [
    "code_lines",
    "framework_pairs",
    "latest_by",
    "load_records",
    "median_record",
    "plot_task",
    "read_records",
    "records_table",
    "summary_rows",
]

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


def read_records(path: Path) -> list[dict]:
    """The records of one ``bench.jsonl``, in the file's order (blank lines skipped).

    Raises ``ValueError`` naming the file and line of a line that is not a JSON object with a
    ``task``; ``FileNotFoundError`` if ``path`` does not exist.
    """
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{number}: not JSON ({e})") from None
        if not isinstance(record, dict) or "task" not in record:
            raise ValueError(f"{path}:{number}: not a helpers.bench record")
        records.append(record)
    return records


def median_record(runs: Sequence[dict]) -> dict:
    """One record for ``runs`` of one configuration (``helpers.bench --repeat``).

    A single run is returned as it is. Otherwise a copy of the first run's record with every
    numeric metric replaced by its median over the runs (so the record may mix runs),
    ``spread`` ``{metric: [min, max]}``, ``per_seed`` ``{metric: [value of each run]}``,
    ``seed`` the runs' seeds in that order and ``repeats``.
    Raises ``ValueError`` for no runs.
    """
    if not runs:
        raise ValueError("median_record needs at least one run")
    if len(runs) == 1:
        return runs[0]
    record = dict(runs[0])
    record["spread"], record["per_seed"] = {}, {}
    for key, value in runs[0].items():
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if numeric and key != "seed":
            values = [r[key] for r in runs]
            record[key] = statistics.median(values)
            record["spread"][key] = [min(values), max(values)]
            record["per_seed"][key] = values  # in seed order, for paired comparisons
    record["seed"] = [r["seed"] for r in runs]
    record["repeats"] = len(runs)
    return record


def load_records(root: Path) -> list[dict]:
    """Every record in ``root/chapters/*/bench.jsonl``, oldest first, each with its chapter.

    Raises ``ValueError`` naming the file and line of a line that is not a JSON object.
    """
    records = [
        {"chapter": path.parent.name, **record}
        for path in sorted(root.glob("chapters/*/bench.jsonl"))
        for record in read_records(path)
    ]
    return sorted(records, key=lambda r: r.get("date", ""))


def latest_by(records: Sequence[dict], *keys: str) -> dict[tuple, dict]:
    """The most recent record (by ``date``) for each value of ``keys``, sorted by that value.

    E.g. ``latest_by(records, "model_option", "framework")[("bow", "jax")]``.
    Raises ``KeyError`` if a record lacks one of ``keys`` or its ``date``.
    """
    latest = {}
    for r in sorted(records, key=lambda r: r["date"]):
        latest[tuple(r[k] for k in keys)] = r
    return dict(sorted(latest.items()))


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
    import matplotlib.pyplot as plt

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


def summary_rows(records: Sequence[dict]) -> list[dict]:
    """One short row per record, grouped by chapter (in ``records``' order within one).

    Keys: ``chapter`` (its number), ``task``, ``option`` (the bench's ``--model`` choice),
    ``framework``, ``scale``, ``model`` (cut to 28 characters), ``accuracy``, ``examples/s``,
    ``first step s`` (the first step's seconds, compilation included; the compile seconds
    where a run records no first step; NaN where neither) and ``load`` ("busy" where the run
    recorded a load average, i.e. ran on a shared machine). Runs with changed sizes
    (``helpers.bench --set``, an ``overrides`` key) are sweeps, not the scale's runs: left out.
    """
    nan = float("nan")
    rows = [
        {
            "chapter": r["chapter"][:2],
            "task": r["task"],
            "option": r.get("model_option", ""),
            "framework": r.get("framework", "?"),
            "scale": r.get("scale", "?"),
            "model": r.get("model", "")[:28],
            "accuracy": r.get("test_accuracy", nan),
            "examples/s": r.get("train_examples_per_second", nan),
            "first step s": r.get("first_step_seconds", r.get("compile_seconds", nan)),
            "load": "busy" if "load_average" in r else "",
        }
        for r in records
        if "overrides" not in r
    ]
    return sorted(rows, key=lambda row: row["chapter"])


def framework_pairs(rows: Sequence[dict]) -> list[dict]:
    """The last of ``rows`` (from ``summary_rows``) per chapter, task, model family and scale in
    each framework, PyTorch beside JAX, for every such group that both frameworks ran.

    The family is the row's ``option``, else the first word of its model ("cnn", "ppo", ...);
    rows that name no model are left out. Each pair holds both examples/s and first-step
    seconds, ``faster`` ("PyTorch" or "JAX"), ``by x`` (the faster over the slower, >= 1) and
    ``load`` ("busy" if either run shared the machine).
    """
    latest = {}
    for r in rows:
        if r["model"]:
            family = r["option"] or r["model"].split()[0].strip(",:").lower()
            latest[r["chapter"], r["task"], family, r["scale"], r["framework"]] = r
    pairs = []
    for (chapter, task, family, scale, framework), pt in latest.items():
        jx = latest.get((chapter, task, family, scale, "jax"))
        if framework != "torch" or jx is None:
            continue
        ratio = pt["examples/s"] / jx["examples/s"]  # > 1: PyTorch trained faster
        pairs.append({
            "chapter": chapter, "task": f"{task} {family}", "scale": scale,
            "PyTorch ex/s": pt["examples/s"], "JAX ex/s": jx["examples/s"],
            "faster": "PyTorch" if ratio > 1 else "JAX", "by x": max(ratio, 1 / ratio),
            "PyTorch first step s": pt["first step s"],
            "JAX first step s": jx["first step s"],
            "load": pt["load"] or jx["load"],
        })  # fmt: skip
    return pairs


def code_lines(root: Path) -> list[dict]:
    """Lines of code (not blank, not comments or markdown) of each chapter's two notebooks:
    ``chapter``, ``PyTorch code lines``, ``JAX code lines``, for chapters that have both."""
    rows = []
    for folder in sorted(root.glob("chapters/*")):
        counts = {}
        for half in ("pytorch", "jax"):
            src = folder / f"in-{half}.py"
            if src.exists():
                lines = [ln for ln in src.read_text().splitlines()
                         if ln.strip() and not ln.lstrip().startswith("#")]  # fmt: skip
                counts[half] = len(lines)
        if len(counts) == 2:
            rows.append({"chapter": folder.name, "PyTorch code lines": counts["pytorch"],
                         "JAX code lines": counts["jax"]})  # fmt: skip
    return rows
