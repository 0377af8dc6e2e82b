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
    "short_hardware",
    "summary_rows",
    "task_metric",
]

# The appendix tables' columns, one per cell of ``_row`` (each table is one chapter's task).
_COLUMNS = ("framework", "model", "scale", "metric", "train s", "throughput", "hardware",
            "date", "commit")  # fmt: skip
# A task with more records than this shows its latest runs, and folds the full list.
_FOLD_OVER = 12
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


def short_hardware(record: dict) -> str:
    """A record's hardware in a few words, for tables and plots: the GPU's model ("H200"),
    else the CPU's family and its cores ("Xeon, 2 cores", "EPYC, 1 core"); "?" for what a
    record does not say."""
    hw = record.get("hardware", {})
    if hw.get("gpu"):
        return hw["gpu"].removeprefix("NVIDIA ").removeprefix("GeForce ")
    words = short_cpu_name(hw.get("cpu", "?")).split()
    family = words[-1] if words and words[0] in ("Intel", "AMD") else " ".join(words)
    cores = hw.get("cores", "?")
    return f"{family}, {cores} core{'' if cores == 1 else 's'}"


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
    included), else its ``compile_seconds`` if above 0, else NaN: a ``compile_seconds`` of 0
    is an eager run that compiled nothing and did not time its first step (chapter 7's
    PyTorch runs), not a first step of 0 s."""
    if "first_step_seconds" in record:
        return record["first_step_seconds"]
    compile_seconds = record.get("compile_seconds", math.nan)
    return compile_seconds if compile_seconds > 0 else math.nan


def _size_text(field: str, value: object) -> str:
    """A ``--set`` value as the tables print it: a list joined by commas, and None as "all"
    for a count of examples (``train_examples=None``: the whole split)."""
    if value is None and field.endswith("examples"):
        return "all"
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _row(record: dict) -> list[str]:
    metric, text = _metric(record), "?"
    if metric is not None:
        text = f"{metric[3]:.2f}{metric[2]}"
        if "eval_episodes" in record:
            seeds = record["seeds"]
            text += f" ({seeds} seed{'' if seeds == 1 else 's'} x"
            text += f" {record['eval_episodes']} episodes)"
    if record.get("repeats"):
        text += f", median of {record['repeats']} seeds"
    scale = record.get("scale", "?")
    if "overrides" in record:  # the run's --set changes to its scale's sizes
        changes = [f"{k}={_size_text(k, v)}" for k, v in record["overrides"].items()]
        scale += f", sizes changed: {', '.join(changes)}"
    speed = record.get("train_examples_per_second")
    commit = str(record.get("commit", "?"))
    commit, _, dirty = commit.partition("+")
    return [
        record.get("framework", "?"), record.get("model", "(not recorded)"), scale, text,
        f"{record.get('train_seconds', float('nan')):.1f}",
        f"{speed:,.0f}" if speed is not None else "?",
        short_hardware(record), record.get("date", "?")[:10],
        commit[:7] + (f"+{dirty}" if dirty else ""),
    ]  # fmt: skip


def _table(records: Sequence[dict]) -> list[str]:
    """The Markdown lines of one task's table: its metric and throughput unit in the header."""
    metric = next((m for r in records if (m := _metric(r)) is not None), None)
    unit = (
        "env steps/s"
        if any("env_steps_per_second" in r for r in records)
        else "examples/s"
    )
    columns = [{"metric": metric[0] if metric else "metric", "throughput": unit}.get(c, c)
               for c in _COLUMNS]  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(_row(r)) + " |" for r in records]


def records_table(records: Sequence[dict]) -> str:
    """Markdown: one table per chapter and task (a bold title each; chapters in order, tasks
    as they first appear), one row per record in the given order. The metric is the task's
    own (``task_metric``, named in the header; "median of N seeds" for a ``--repeat``
    record), the throughput counts examples (env steps for reinforcement learning) per
    second, hardware is ``short_hardware``'s, commits are cut to 7 characters (``+dirty``
    kept), and a run with changed sizes (``overrides``) lists them after its scale. A record
    without ``model`` shows "(not recorded)". A task with more than 12 records shows the
    latest run of each setup (framework, model, scale, hardware) at its scale's own sizes, and
    all its records in an HTML ``<details>`` block. Empty for no records."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["chapter"], r["task"]), []).append(r)
    parts = []
    for (chapter, task), runs in sorted(groups.items(), key=lambda item: item[0][0]):
        number = chapter.partition("-")[0]
        title = f"Chapter {int(number)}" if number.isdigit() else chapter
        count = f"{len(runs)} record{'' if len(runs) == 1 else 's'}"
        if len(runs) <= _FOLD_OVER:
            parts.append(
                f"**{title}, task `{task}`** ({count})\n\n" + "\n".join(_table(runs))
            )
            continue
        latest: dict[tuple, dict] = {}  # the scale's own sizes only, in date order
        for r in runs:
            if "overrides" not in r:
                key = (
                    r.get("framework"),
                    r.get("model"),
                    r.get("scale"),
                    short_hardware(r),
                )
                latest.pop(key, None)
                latest[key] = r
        parts.append(
            f"**{title}, task `{task}`**: the latest run of each setup at its scale's sizes"
            f" ({len(latest)} of {count})\n\n" + "\n".join(_table(list(latest.values())))
            + f"\n\n<details>\n<summary>All {count}, superseded runs and sweeps included"
            + "</summary>\n\n" + "\n".join(_table(runs)) + "\n\n</details>"
        )  # fmt: skip
    return "\n\n".join(parts)


def _plot_model(record: dict) -> str:
    """The model part of a plot's tick: ``model_family``, else "chN" from the chapter."""
    number = record.get("chapter", "").partition("-")[0]
    return model_family(record) or (f"ch{int(number)}" if number.isdigit() else "")


def plot_task(records: Sequence[dict], task: str) -> Figure:
    """The metric (``task_metric``, top) and training throughput (bottom, log axis: CPU and
    GPU runs differ a hundredfold) of every run of ``task`` at its scale's own sizes (runs
    with ``overrides`` are left out), in ``records``' order. Colour is the framework, marker
    the hardware (circle CPU, square GPU); a tick names framework, model, scale and date
    (MM-DD). The model is ``model_family``'s ("mlp", "cnn": one task may hold several
    chapters' models), else the record's chapter ("ch1") for a record that names no model.

    Raises ``ValueError`` if no such run of ``task`` is in ``records``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    runs = [r for r in records if r["task"] == task and "overrides" not in r]
    if not runs:
        raise ValueError(f"no recorded run of task {task!r} at its scale's sizes")
    ticks = [(r.get("framework"), _plot_model(r), r.get("scale"), r.get("date", "")[5:10])
             for r in runs]  # fmt: skip
    labels = [" ".join(str(part) for part in tick if part) for tick in ticks]
    width = max(7.0, 1.5 + 0.3 * len(runs))
    fig, (ax_metric, ax_speed) = plt.subplots(2, 1, figsize=(width, 7), sharex=True)
    x = list(range(len(runs)))
    # PyTorch in C0, JAX in C1: the same colours on every results plot.
    colours = [f"C{int(r.get('framework') == 'jax')}" for r in runs]
    markers = ["s" if r.get("hardware", {}).get("gpu") else "o" for r in runs]
    metrics = [task_metric(r) for r in runs]
    name = next((m[0] for m in metrics if m is not None), "metric")
    values = [m[1] if m is not None else math.nan for m in metrics]
    speed = [r.get("train_examples_per_second", math.nan) for r in runs]
    # Points, not bars: the values sit close together, and a bar's length would suggest zero.
    for marker in ("o", "s"):  # one scatter per marker: CPU runs, then GPU runs
        if idx := [i for i in x if markers[i] == marker]:
            c = [colours[i] for i in idx]
            ax_metric.scatter(
                idx, [values[i] for i in idx], c=c, marker=marker, s=50, zorder=3
            )
            ax_speed.scatter(
                idx, [speed[i] for i in idx], c=c, marker=marker, s=50, zorder=3
            )
    for xi, value in zip(x, values, strict=True):
        # Upright text, one tick wide: neighbours' labels never meet.
        if math.isfinite(value):
            ax_metric.annotate(f"{value:.2f}", (xi, value), textcoords="offset points",
                               xytext=(0, 7), ha="center", va="bottom", rotation=90,
                               fontsize=7)  # fmt: skip
    ax_metric.margins(y=0.35)
    ax_metric.set(ylabel=name, title=f"{task}: {name.removesuffix(' (%)')}")
    unit = "env steps" if all("env_steps_per_second" in r for r in runs) else "examples"
    ax_speed.set_yscale("log")
    ax_speed.set(
        ylabel=f"training {unit} / s", title=f"{task}: training throughput (log)"
    )
    ax_speed.set_xticks(x, labels, fontsize=8, rotation=60, ha="right")
    ax_speed.set_xlim(-0.6, len(runs) - 0.4)
    for ax in (ax_metric, ax_speed):
        ax.grid(axis="y", alpha=0.3)
    handles = [Line2D([], [], ls="", marker=m, color=c) for m, c in
               (("o", "C0"), ("o", "C1"), ("o", "grey"), ("s", "grey"))]  # fmt: skip
    # Beside the plot, where it hides no point.
    labels = ["PyTorch", "JAX", "CPU", "GPU"]
    ax_metric.legend(
        handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8
    )
    fig.tight_layout()
    return fig


def summary_rows(records: Sequence[dict]) -> list[dict]:
    """One short row per record, sorted by chapter (in ``records``' order within one).

    Keys: ``task``, ``option`` (the bench's ``--model`` choice, else the model's first word:
    "mlp"), ``framework``, ``scale``, ``metric`` (the task's own, ``task_metric``: "accuracy
    %" or "eval return"), ``value`` (NaN where a record has no metric), ``ex/s`` (examples
    per second; env steps per second for reinforcement learning), ``first step s``
    (``first_step_seconds``: NaN where a run records neither a first step nor a compilation)
    and ``hardware``. No chapter number (task and option name the chapter) and no model
    description (the results appendix prints it), so that the table nearly fits a page's
    width (about 100 characters; chapter 10 prints it without ``metric``, which its text
    names, to fit). Runs with changed sizes (``helpers.bench --set``, an ``overrides`` key)
    are sweeps, not the scale's runs: left out.
    """
    nan, rows = math.nan, []
    for r in sorted(records, key=lambda r: r["chapter"][:2]):  # a stable sort
        if "overrides" in r:
            continue
        metric = _metric(r)
        rows.append({
            "task": r["task"], "option": model_family(r),
            "framework": r.get("framework", "?"), "scale": r.get("scale", "?"),
            "metric": f"{metric[1]} {metric[2]}".strip() if metric else "",
            "value": metric[3] if metric else nan,
            "ex/s": r.get("train_examples_per_second", nan),
            "first step s": first_step_seconds(r),
            "hardware": short_cpu_name(_hardware(r)),
        })  # fmt: skip
    return rows
