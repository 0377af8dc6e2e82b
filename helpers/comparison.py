"""PyTorch beside JAX from the recorded runs: which runs compare, and chapter 10's pairs.

Two ``helpers.bench`` records compare like for like when they trained the same ``recipe`` on
the same hardware and differ only in framework (and code version, date and machine load).
``latest_runs`` is where each configuration stands now; ``framework_pairs`` pairs the two
frameworks' runs of one configuration and says how the pair was chosen; ``code_lines``
counts each chapter's code in both halves. Records come from
:func:`helpers.results.load_records`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

from helpers.results import first_step_seconds, model_family

__all__ = ["code_lines", "framework_pairs", "latest_runs", "recipe"]

# Parts of a ``model`` description (", "-separated) that say how one framework carries out a
# recipe, not what it trains: memory layout, compilation, seeds run in parallel or one after
# another, and the environment's implementation (gymnasium's or chapter 7's pure-JAX CartPole).
_IMPLEMENTATION = re.compile(
    r"channels_last|NHWC|jit|whole run jitted|\d+ seeds vmapped( per call)?"
    r"|seeds one after another|pure-JAX \w+|gymnasium [\w-]+ SyncVectorEnv"
)


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
        "task": record.get("task"), "family": model_family(record), "scale": record.get("scale"),
        "model": ", ".join(p for p in parts if not _IMPLEMENTATION.fullmatch(p)),
        **{k: record.get(k) for k in ("data", "stem", "train_examples", "batch_size")},
        "env_steps_per_seed": steps / seeds if steps is not None and seeds else None,
        "overrides": json.dumps(overrides, sort_keys=True) if overrides else None,
        **{k: hw.get(k) for k in ("cpu", "cores", "gpu")},
    }  # fmt: skip


def _configuration(r: dict) -> tuple[str, str, str, str]:
    """(chapter number, task, model family, scale): one configuration of the bench."""
    return r["chapter"][:2], r["task"], model_family(r), r.get("scale", "?")


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
            "PyTorch first step s": first_step_seconds(pt),
            "JAX first step s": first_step_seconds(jx),
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
