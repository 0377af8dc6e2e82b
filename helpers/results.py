"""The results page: every recorded ``helpers.bench`` line of every chapter, as a table and plots.

Each chapter keeps the runs it quotes in ``chapters/NN-slug/bench.jsonl`` (one JSON object per
line, written by ``python -m helpers.bench ... --record``). This module reads them all, so the
site shows readers only numbers that come from a real, attributed run; which runs compare
across frameworks (chapter 10) is :mod:`helpers.comparison`.
"""

from __future__ import annotations

import json
import math
import statistics
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from helpers.system import short_cpu_name

if TYPE_CHECKING:  # pyplot is imported where a plot is drawn: helpers.bench needs none
    from matplotlib.figure import Figure

__all__ = [
    "PER_ENTRY_METRICS",
    "first_step_seconds",
    "latest_by",
    "load_records",
    "median_record",
    "model_family",
    "plot_task",
    "read_records",
    "records_table",
    "summary_rows",
    "task_metric",
]

# The appendix table's columns, one per cell of ``_row``.
_COLUMNS = ("chapter", "task", "framework", "model", "scale", "metric", "train s",
            "throughput", "hardware", "date", "commit")  # fmt: skip
# What a run learned, by task: the first of these keys a record carries, as (key, name, short
# name, unit, factor to that unit). Reinforcement learning has no test split: its records
# carry the mean return of greedy evaluation episodes (each seed's mean, averaged over seeds).
_METRICS = (
    ("test_accuracy", "test accuracy", "accuracy", "%", 100.0),
    ("eval_return_mean", "mean evaluation return", "eval return", "", 1.0),
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


# Metrics that are dicts of numbers ({class name: accuracy}): median_record takes each entry's.
PER_ENTRY_METRICS = ("test_accuracy_tta_by_class",)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def median_record(runs: Sequence[dict]) -> dict:
    """One record for ``runs`` of one configuration (``helpers.bench --repeat``).

    A single run is returned as it is. Otherwise a copy of the first run's record with every
    numeric metric replaced by its median over the runs (so the record may mix runs),
    ``spread`` ``{metric: [min, max]}``, ``per_seed`` ``{metric: [value of each run]}``,
    ``seed`` the runs' seeds in that order and ``repeats``. The metrics of
    :data:`PER_ENTRY_METRICS`, dicts of numbers, become the median of each entry, without
    spread; other dicts (``overrides``, ``hardware``) stay the first run's.
    Raises ``ValueError`` for no runs, or a per-entry metric whose runs hold different keys.
    """
    if not runs:
        raise ValueError("median_record needs at least one run")
    if len(runs) == 1:
        return runs[0]
    record = dict(runs[0])
    record["spread"], record["per_seed"] = {}, {}
    for key, value in runs[0].items():
        if _is_number(value) and key != "seed":
            values = [r[key] for r in runs]
            record[key] = statistics.median(values)
            record["spread"][key] = [min(values), max(values)]
            record["per_seed"][key] = values  # in seed order, for paired comparisons
        elif key in PER_ENTRY_METRICS:
            if any(r[key].keys() != value.keys() for r in runs):
                raise ValueError(f"the runs' {key} hold different keys")
            record[key] = {k: statistics.median(r[key][k] for r in runs) for k in value}
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
    cores = hw.get("cores", "?")
    cpu = f"{hw.get('cpu', '?')}, {cores} core{'' if cores == 1 else 's'}"
    return hw.get("gpu") or cpu


def _metric(record: dict) -> tuple[str, str, str, float] | None:
    """(name, short name, unit, value in that unit) of what ``record`` learned, or None."""
    for key, name, short, unit, factor in _METRICS:
        if record.get(key) is not None:
            return name, short, unit, factor * record[key]
    return None


def task_metric(record: dict) -> tuple[str, float] | None:
    """What a run learned, by its task's own measure: ``("test accuracy (%)", percent)``, or
    for reinforcement learning ``("mean evaluation return", return)`` (``eval_return_mean``:
    greedy episodes' mean return per seed, averaged over seeds); None for neither."""
    if (metric := _metric(record)) is None:
        return None
    name, _, unit, value = metric
    return (f"{name} ({unit})" if unit else name), value


def model_family(record: dict) -> str:
    """The bench's ``--model`` choice (``model_option``), else the first word of the
    record's ``model`` in lower case ("mlp"), else ""."""
    words = record.get("model", "").split()
    return record.get("model_option") or (words[0].strip(",:").lower() if words else "")


def first_step_seconds(record: dict) -> float:
    """A run's first step in seconds (``first_step_seconds``, compilation or warm-up
    included), else its ``compile_seconds``, else NaN."""
    return record.get("first_step_seconds", record.get("compile_seconds", math.nan))


def _row(record: dict) -> list[str]:
    metric, text = _metric(record), "?"
    if metric is not None:
        text = f"{metric[0]} {metric[3]:.2f}{metric[2]}"
        if "eval_episodes" in record:
            seeds = record["seeds"]
            text += f" ({seeds} seed{'' if seeds == 1 else 's'} x"
            text += f" {record['eval_episodes']} episodes)"
    if record.get("repeats"):
        text += f", median of {record['repeats']} seeds"
    scale = record.get("scale", "?")
    if "overrides" in record:  # the run's --set changes to its scale's sizes
        changes = [f"{field}={','.join(map(str, v)) if isinstance(v, list) else v}"
                   for field, v in record["overrides"].items()]  # fmt: skip
        scale += f", sizes changed: {', '.join(changes)}"
    speed = record.get("train_examples_per_second")
    unit = "env steps/s" if "env_steps_per_second" in record else "examples/s"
    return [
        record["chapter"], record["task"], record.get("framework", "?"),
        record.get("model", "?"), scale, text,
        f"{record.get('train_seconds', float('nan')):.1f}",
        f"{speed:,.0f} {unit}" if speed is not None else "?",
        _hardware(record), record.get("date", "?")[:10], str(record.get("commit", "?")),
    ]  # fmt: skip


def records_table(records: Sequence[dict]) -> str:
    """A Markdown table of ``records``, one row per record, in the given order: the metric is
    the task's own (``task_metric``; "median of N seeds" for a ``--repeat`` record), the
    throughput counts examples (env steps for reinforcement learning) per second, and a run
    with changed sizes (``overrides``) lists them after its scale."""
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    lines += ["| " + " | ".join(_row(r)) + " |" for r in records]
    return "\n".join(lines)


def plot_task(records: Sequence[dict], task: str) -> Figure:
    """The metric (``task_metric``) and training throughput of every run of ``task`` at its
    scale's own sizes (runs with ``overrides`` are left out), in ``records``' order.

    Raises ``ValueError`` if no such run of ``task`` is in ``records``.
    """
    import matplotlib.pyplot as plt

    runs = [r for r in records if r["task"] == task and "overrides" not in r]
    if not runs:
        raise ValueError(f"no recorded run of task {task!r} at its scale's sizes")
    keys = ("framework", "model_option", "scale")
    labels = [
        " ".join(str(r[k]) for k in keys if r.get(k))
        + f"\n{textwrap.fill(_hardware(r), 22)}\n{r.get('date', '')[:10]}"
        for r in runs
    ]
    fig, (ax_metric, ax_speed) = plt.subplots(1, 2, figsize=(11, 4.6))
    x = list(range(len(runs)))
    # PyTorch in C0, JAX in C1: the same colours on every results plot.
    colours = [f"C{int(r.get('framework') == 'jax')}" for r in runs]
    metrics = [task_metric(r) for r in runs]
    name = next((m[0] for m in metrics if m is not None), "metric")
    values = [m[1] if m is not None else math.nan for m in metrics]
    # Points, not bars: the values sit close together, and a bar's length would suggest zero.
    ax_metric.scatter(x, values, c=colours, s=60, zorder=3)
    for xi, value in zip(x, values, strict=True):
        if math.isfinite(value):
            ax_metric.annotate(f"{value:.2f}", (xi, value), textcoords="offset points",
                               xytext=(0, 8), ha="center", fontsize=8)  # fmt: skip
    ax_metric.margins(y=0.3)
    ax_metric.set(ylabel=name, title=f"{task}: {name.removesuffix(' (%)')}")
    speed = [r.get("train_examples_per_second", 0) for r in runs]
    unit = "env steps" if all("env_steps_per_second" in r for r in runs) else "examples"
    ax_speed.bar(x, speed, color=colours)
    ax_speed.set(ylabel=f"training {unit} / s", title=f"{task}: training throughput")
    for ax in (ax_metric, ax_speed):
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_xlim(-0.6, len(runs) - 0.4)
        ax.grid(axis="y", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=f"C{i}") for i in range(2)]
    ax_metric.legend(handles, ["PyTorch", "JAX"], loc="upper left")
    fig.tight_layout()
    return fig


def summary_rows(records: Sequence[dict]) -> list[dict]:
    """One short row per record, grouped by chapter (in ``records``' order within one).

    Keys: ``chapter`` (its number), ``task``, ``option`` (the bench's ``--model`` choice,
    else the model's first word: "mlp"), ``framework``, ``scale``, ``model`` (cut to 28
    characters), ``metric`` (the task's own, ``task_metric``: "accuracy %" or "eval
    return"), ``value`` (NaN where a record has no metric), ``examples/s`` (env steps per
    second for reinforcement learning), ``first step s`` (the first step's seconds,
    compilation included; the compile seconds where a run records no first step; NaN where
    neither) and ``hardware``. Runs with changed sizes (``helpers.bench --set``, an
    ``overrides`` key) are sweeps, not the scale's runs: left out.
    """
    nan, rows = math.nan, []
    for r in records:
        if "overrides" in r:
            continue
        metric = _metric(r)
        rows.append({
            "chapter": r["chapter"][:2], "task": r["task"], "option": model_family(r),
            "framework": r.get("framework", "?"), "scale": r.get("scale", "?"),
            "model": r.get("model", "")[:28],
            "metric": f"{metric[1]} {metric[2]}".strip() if metric else "",
            "value": metric[3] if metric else nan,
            "examples/s": r.get("train_examples_per_second", nan),
            "first step s": first_step_seconds(r),
            "hardware": short_cpu_name(_hardware(r)),
        })  # fmt: skip
    return sorted(rows, key=lambda row: row["chapter"])
