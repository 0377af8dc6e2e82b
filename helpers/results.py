"""The results page: every recorded ``helpers.bench`` line of every chapter, as a table and plots.

Each chapter keeps the runs it quotes in ``chapters/NN-slug/bench.jsonl`` (one JSON object per
line, written by ``python -m helpers.bench ... --record``). This module reads them all, so the
site shows readers only numbers that come from a real, attributed run.
"""

from __future__ import annotations

import json
import math
import re
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
    "latest_runs",
    "load_records",
    "median_record",
    "plot_task",
    "read_records",
    "recipe",
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
# Parts of a ``model`` description (", "-separated) that say how one framework carries out a
# recipe, not what it trains: memory layout, compilation, seeds run in parallel or one after
# another, and the environment's implementation (gymnasium's or chapter 7's pure-JAX CartPole).
_IMPLEMENTATION = re.compile(
    r"channels_last|NHWC|jit|whole run jitted|\d+ seeds vmapped( per call)?"
    r"|seeds one after another|pure-JAX \w+|gymnasium [\w-]+ SyncVectorEnv"
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


def _family(record: dict) -> str:
    """The bench's ``--model`` choice, else the first word of the model ("mlp"), else ""."""
    words = record.get("model", "").split()
    return record.get("model_option") or (words[0].strip(",:").lower() if words else "")


def _first_step(record: dict) -> float:
    """The first step's seconds (compilation included), else the compile seconds, else NaN."""
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


def recipe(record: dict) -> dict[str, object]:
    """What a run trained, and on what hardware, without how its framework carried it out.

    Two runs with equal recipes differ in framework (and in code version, date and machine
    load), so their speeds compare like for like. Keys: ``task``, ``family`` (the bench's
    ``--model`` choice, else the model's first word), ``scale``, ``model`` (the description
    less the parts that name a framework's way of running it, ``_IMPLEMENTATION``: "NHWC,
    jit" against "channels_last", the pure-JAX CartPole against gymnasium's), ``data``,
    ``stem``, ``train_examples``, ``batch_size``, ``env_steps_per_seed`` (reinforcement
    learning), ``overrides`` (the ``--set`` changes, as JSON), ``cpu``, ``cores``, ``gpu``;
    None where a record lacks one. Not in it: how long a run trained (epochs, seeds; chapter
    5's scale trains JAX for fewer epochs), on which a speed per example or env step does
    not depend, nor the versions and commit.
    """
    parts = [p.strip() for p in record.get("model", "").split(",")]
    steps, seeds = record.get("env_steps"), record.get("seeds")
    hw, overrides = record.get("hardware", {}), record.get("overrides")
    return {
        "task": record.get("task"), "family": _family(record), "scale": record.get("scale"),
        "model": ", ".join(p for p in parts if not _IMPLEMENTATION.fullmatch(p)),
        **{k: record.get(k) for k in ("data", "stem", "train_examples", "batch_size")},
        "env_steps_per_seed": steps / seeds if steps is not None and seeds else None,
        "overrides": json.dumps(overrides, sort_keys=True) if overrides else None,
        **{k: hw.get(k) for k in ("cpu", "cores", "gpu")},
    }  # fmt: skip


def _configuration(r: dict) -> tuple[str, str, str, str]:
    """(chapter number, task, model family, scale): one configuration of the bench."""
    return r["chapter"][:2], r["task"], _family(r), r.get("scale", "?")


def _scale_runs(records: Sequence[dict]) -> list[dict]:
    """``records`` that name a model and keep their scale's sizes (no ``overrides``), by date."""
    runs = [r for r in records if r.get("model") and "overrides" not in r]
    return sorted(runs, key=lambda r: r.get("date", ""))


def latest_runs(records: Sequence[dict]) -> list[dict]:
    """The latest record (by ``date``) of each chapter, task, model family, scale and
    framework, sorted by those, PyTorch before JAX: where each configuration stands now.

    Records that name no model (chapter 1's first runs) and runs with changed sizes
    (``overrides``, sweeps) are left out, as are a configuration's earlier runs.
    """
    latest = {}
    for r in _scale_runs(records):  # oldest first: a key's last record stays
        latest[(*_configuration(r), r.get("framework") != "torch")] = r
    return [latest[key] for key in sorted(latest)]


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
            "chapter": r["chapter"][:2], "task": r["task"], "option": _family(r),
            "framework": r.get("framework", "?"), "scale": r.get("scale", "?"),
            "model": r.get("model", "")[:28],
            "metric": f"{metric[1]} {metric[2]}".strip() if metric else "",
            "value": metric[3] if metric else nan,
            "examples/s": r.get("train_examples_per_second", nan),
            "first step s": _first_step(r),
            "hardware": _hardware(r).replace("(R)", "").replace(" Processor", ""),
        })  # fmt: skip
    return sorted(rows, key=lambda row: row["chapter"])


def _one_process_pair(torch_runs: list, jax_runs: list) -> tuple[dict, dict] | None:
    """The latest PyTorch and JAX records (runs oldest first) one ``--framework both`` run wrote
    (both with a ``throughput_ratio``, one commit and ``recipe``, PyTorch first), or None."""
    for jx in reversed(jax_runs):
        for pt in reversed(torch_runs):
            if all(("throughput_ratio" in pt, "throughput_ratio" in jx, pt["date"] <= jx["date"],
                    pt.get("commit") == jx.get("commit"), recipe(pt) == recipe(jx))):  # fmt: skip
                return pt, jx
    return None


def framework_pairs(records: Sequence[dict]) -> list[dict]:
    """PyTorch beside JAX, one row per chapter, task, model family and scale both ran (sorted
    by those), from two runs of the same ``recipe`` (network, recipe, data, CPU/cores or GPU).
    The pair, by preference: each framework's latest run (``latest_runs``), if recipes and
    commits (``+dirty`` aside) agree ("latest runs"); the latest pair of one ``--framework
    both`` run ("older, one process"); the latest runs at two commits ("latest runs, two
    commits"); none ("none:" the recipe keys that differ; NaN numbers). Keys: ``chapter``,
    ``task`` (and family), ``scale``, both examples/s and first-step seconds, ``faster``
    ("PyTorch", "JAX", "" without a pair or speeds), ``by x`` (>= 1) and ``pair``.
    """
    runs = {}  # configuration -> framework -> its runs, oldest first
    for r in _scale_runs(records):
        by_framework = runs.setdefault(_configuration(r), {})
        by_framework.setdefault(r.get("framework"), []).append(r)
    pairs = []
    for (chapter, task, family, scale), by_framework in sorted(runs.items()):
        if "torch" not in by_framework or "jax" not in by_framework:
            continue
        last = by_framework["torch"][-1], by_framework["jax"][-1]
        latest = [recipe(last[0]), recipe(last[1])]
        commits = {str(r.get("commit", "")).removesuffix("+dirty") for r in last}
        pair = None
        if latest[0] == latest[1] and len(commits) == 1:
            pair, how = last, "latest runs"
        elif pair := _one_process_pair(by_framework["torch"], by_framework["jax"]):
            how = "older, one process"
        elif latest[0] == latest[1]:
            pair, how = last, "latest runs, two commits"
        else:
            differ = [k for k in latest[0] if latest[0][k] != latest[1][k]]
            how = f"none: {', '.join(differ)} differ"
        pt, jx = pair or ({}, {})  # no pair: NaN numbers
        speed = [r.get("train_examples_per_second", math.nan) for r in (pt, jx)]
        ratio = speed[0] / speed[1] if speed[1] else math.nan  # > 1: PyTorch is faster
        ok = pair is not None and math.isfinite(ratio) and ratio > 0
        pairs.append({
            "chapter": chapter, "task": f"{task} {family}", "scale": scale,
            "PyTorch ex/s": speed[0], "JAX ex/s": speed[1],
            "faster": ("PyTorch" if ratio > 1 else "JAX") if ok else "",
            "by x": max(ratio, 1 / ratio) if ok else math.nan,
            "PyTorch first step s": _first_step(pt), "JAX first step s": _first_step(jx),
            "pair": how,
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
