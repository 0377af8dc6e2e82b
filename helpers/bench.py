"""Measure a task end to end and print JSON lines: the numbers the book may quote.

    python -m helpers.bench mnist --framework torch --scale cpu
    python -m helpers.bench mnist --framework both --repeat 3 \\
        --record chapters/01-introduction/bench.jsonl
    python -m helpers.bench mnist --model cnn --framework both --scale cpu
    python -m helpers.bench cifar10 --framework both --scale cpu --baseline
    python -m helpers.bench imdb --model cnn-lstm --framework both --scale cpu

``--model`` picks one of a task's networks (:data:`MODELS`; the first is the default), e.g.
``mnist``: ``mlp`` (chapter 1's) or ``cnn`` (the shared CNN of chapter 3, sized by the
``mnist_cnn`` entry of :mod:`helpers.scale`); the record names it in ``model_option``.
``--set FIELD=VALUE`` (repeatable) changes one field of the scale's sizes for this run, e.g.
``--set epochs=24 --set widths=32,64,256,256``: for sweeps; the record lists the changes in
``overrides``, so it is never mistaken for the scale's own sizes. ``--baseline`` (the pairs in
``BASELINE_TASKS``) also times the seed-style data pipeline on the same model and data in the
same process, and records the speed-up as one ratio from one run. ``cifar10`` in JAX starts
XLA with YNNPACK off on the CPU (``helpers.vision.skip_ynnpack_on_cpu``), as chapter 5 does.

Each line is one framework's run: the task's metrics plus the model, the protocol, the hardware,
the library versions, the date and the git commit, so a figure in the book can name its run.
``--record FILE`` also appends the lines to FILE (the results page reads them). Progress goes
to stderr, the JSON to stdout.

Protocol (the same for every task; a task's own docstring adds what it trains):

* The task builds its model and data from scratch at the scale named, with seed ``i`` for the
  ``i``-th repeat (``--repeat N``: seeds ``0 .. N-1``), trains, then evaluates once on the full
  test split (or the ``test_examples`` the scale names).
* ``train_seconds`` is the wall time of the training epochs, evaluation excluded, with the
  device synchronised before the clock is read. ``train_examples_per_second`` leaves out the
  first step (compilation in JAX, GPU warm-up), whose time is ``first_step_seconds``.
* ``--repeat N``: every numeric metric is the median of the repeats, ``spread`` its ``[min, max]``.
* ``--versus FIELD=VALUE`` (repeatable) compares two configurations: the sizes as set (A)
  and the same with these changes too (B), alternated seed by seed in the order A0 B0 B1 A1
  A2 B2 ... so that a drift of the machine's speed during the runs hits both alike; one line
  each, and each names the other's ``overrides`` in ``interleaved_with``.
* With ``--framework both`` the two frameworks run one after the other in this process, on the
  same data with the same seeds; each line carries ``throughput_ratio``, its training
  throughput over PyTorch's from the same invocation (with ``--versus``, in the same setting).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from helpers.results import median_record
from helpers.scale import SCALES, current_scale, override_sizes, sizes
from helpers.system import git_commit, hardware
from helpers.vision import skip_ynnpack_on_cpu

__all__ = [
    "MODELS",
    "PROTOCOL",
    "TASKS",
    "main",
    "run",
    "run_repeated",
]

# task -> {--model option: (its sizes in helpers.scale, "module.function" in
# helpers.<framework>, keyword arguments for that function)}; the first option is the default.
MODELS: dict[str, dict[str, tuple[str, str, dict]]] = {
    "mnist": {
        "mlp": ("mnist", "tasks.run_mnist", {}),
        "cnn": ("mnist_cnn", "tasks.run_mnist_cnn", {}),
    },
    "cifar10": {
        "cifarnet": ("cifar10", "vision.run_cifar10", {}),
        # Section 5.2: the outline's CNN (flatten fixed), trained the outline's way.
        "outline": ("cifar10", "tasks.run_cifar10_outline", {}),
    },
    "imdb": {
        "bow": ("imdb", "tasks.run_imdb", {"model": "bow"}),
        "cnn-lstm": ("imdb", "tasks.run_imdb", {"model": "cnn-lstm"}),
        "transformer": ("imdb", "tasks.run_imdb", {"model": "transformer"}),
    },
    # Chapter 7: greedy evaluation over 100 episodes of gymnasium's environment.
    "cartpole": {
        "ppo": ("cartpole", "rl.run_cartpole_ppo", {}),
        "dqn": ("cartpole", "rl.run_cartpole_dqn", {}),
        "double-dqn": ("cartpole", "rl.run_cartpole_dqn", {"double": True}),
        # The ablation of chapter 7's DQN: the same run with one-step targets.
        "double-dqn-1-step": (
            "cartpole",
            "rl.run_cartpole_dqn",
            {"double": True, "n_step": 1},
        ),
    },
    "pendulum": {
        "ddpg": ("pendulum", "rl.run_pendulum_ddpg", {}),
    },
}
TASKS = tuple(MODELS)
# (task, model) pairs that can also time the seed-style data pipeline (``--baseline``).
BASELINE_TASKS = (("cifar10", "cifarnet"),)
FRAMEWORKS = {"torch": ("torch",), "jax": ("jax", "jaxlib", "flax", "optax")}
PROTOCOL = (
    "train from scratch with a fixed seed at the named scale, evaluate once on the test "
    "split; train_seconds: training epochs only, device synchronised; examples/s excludes "
    "the first (compiling / warm-up) step"
)


def _versions(framework: str) -> dict[str, str]:
    out = {}
    for package in ("numpy", *FRAMEWORKS[framework]):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def _model_option(task: str, model: str | None) -> str:
    """``model``, or ``task``'s first; ``ValueError`` for an unknown task or model."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    model = next(iter(MODELS[task])) if model is None else model
    if model not in MODELS[task]:
        raise ValueError(
            f"unknown model {model!r} for {task}; choose from {', '.join(MODELS[task])}"
        )
    return model


def _task_sizes(task: str, model: str | None, scale: str | None, changes: list[str]):
    """``(sizes, {field: value})`` that :func:`run` trains ``task``'s ``model`` with."""
    sizes_task = MODELS[task][_model_option(task, model)][0]
    return override_sizes(sizes(sizes_task, scale or current_scale()), changes)


def run(
    task: str,
    framework: str,
    scale: str | None = None,
    *,
    model: str | None = None,
    seed: int = 0,
    progress: bool = True,
    baseline: bool = False,
    overrides: list[str] | None = None,
) -> dict:
    """Run ``task`` once with ``framework`` and ``model`` at ``scale``; return the full record.

    ``model`` is one of ``MODELS[task]`` (default: the first). ``baseline=True`` (the task and
    model pairs in ``BASELINE_TASKS``) also times the seed-style data pipeline on the same
    model and data in this process and records the speed-up. ``overrides`` (``FIELD=VALUE``
    strings, see :func:`helpers.scale.override_sizes`) change the scale's sizes for this
    run; the record lists them.

    Raises ``ValueError`` for an unknown task, model or framework, and for ``gpu`` scale on a
    machine where the framework has no GPU (such a run must not be recorded as a gpu-scale
    result).
    """
    if framework not in FRAMEWORKS:
        raise ValueError(
            f"unknown framework {framework!r}; choose from {', '.join(FRAMEWORKS)}"
        )
    model = _model_option(task, model)
    if baseline and (task, model) not in BASELINE_TASKS:
        raise ValueError(
            "--baseline is available for "
            + ", ".join(f"{t} --model {m}" for t, m in BASELINE_TASKS)
            + " only"
        )
    _, function, options = MODELS[task][model]
    options = {**options, "baseline": True} if baseline else options
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
    module, name = function.split(".")
    task_fn = getattr(getattr(fw, module), name)
    task_sizes, changes = _task_sizes(task, model, scale, overrides or [])
    metrics = task_fn(task_sizes, seed=seed, progress=progress, **options)
    return {
        "task": task,
        "framework": framework,
        "scale": scale,
        "model_option": model,
        **({"overrides": changes} if changes else {}),
        **metrics,
        "seed": seed,
        "protocol": PROTOCOL,
        "device": fw.runtime_info()["device"],
        "hardware": hardware(),
        "versions": _versions(framework),
        "date": started.isoformat(timespec="seconds"),
        "commit": git_commit(),
    }


def run_repeated(
    task: str,
    framework: str,
    scale: str | None = None,
    *,
    model: str | None = None,
    repeats: int = 1,
    progress: bool = True,
    baseline: bool = False,
    overrides: list[str] | None = None,
    versus: list[str] | None = None,
) -> list[dict]:
    """``repeats`` runs with seeds ``0 .. repeats-1``: one record of medians and ``spread``.

    Returns ``[record]``, as :func:`helpers.results.median_record` makes it. With ``versus``
    (``FIELD=VALUE`` changes), a second configuration B, ``overrides`` then ``versus``,
    alternates with the first, A, in the order A0 B0 B1 A1 A2 B2 ... (ABBA: a drift of the
    machine's speed that is steady over the runs favours neither; a 2-core machine of this
    course drifted by 20 % within minutes, which runs of one configuration after the other
    cannot tell from a real difference); then it returns ``[A, B]``, each with
    ``interleaved_with``: the other's ``overrides`` (``{}``: the scale's own sizes).
    Raises ``ValueError`` for ``repeats < 1`` or a bad change, before any training (and
    whatever :func:`run` raises).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    configs = [list(overrides or [])]
    if versus:
        configs.append([*configs[0], *versus])
        for changes in configs:  # a typo fails now, not after A0 has trained
            _task_sizes(task, model, scale, changes)
    runs: list[list[dict]] = [[] for _ in configs]
    for i in range(repeats):
        order = list(zip(configs, runs, strict=True))
        for changes, done in order[:: -1 if i % 2 else 1]:
            done.append(
                run(
                    task,
                    framework,
                    scale,
                    model=model,
                    seed=i,
                    progress=progress,
                    baseline=baseline,
                    overrides=changes,
                )
            )
    records = [median_record(done) for done in runs]
    if versus:
        a, b = records
        a["interleaved_with"] = b.get("overrides", {})
        b["interleaved_with"] = a.get("overrides", {})
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument(
        "--framework", required=True, choices=[*sorted(FRAMEWORKS), "both"]
    )
    parser.add_argument(
        "--model",
        "--algo",  # the RL tasks' word for the same choice
        dest="model",
        choices=sorted({option for models in MODELS.values() for option in models}),
        help="the task's network (default: its first in MODELS)",
    )
    parser.add_argument(
        "--scale", choices=SCALES, help="default: $BOOK_SCALE, else by hardware"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="runs per framework (medians)",
    )
    parser.add_argument(
        "--record", type=Path, metavar="FILE", help="also append the lines here"
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also time the seed-style data pipeline (cifar10, model cifarnet)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        dest="overrides",
        help="change one of the scale's sizes for this run (repeatable; recorded)",
    )
    parser.add_argument(
        "--versus",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="also run with this change too, alternating seed by seed (repeatable)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar on stderr"
    )
    args = parser.parse_args(argv)
    frameworks = ["torch", "jax"] if args.framework == "both" else [args.framework]
    if "jax" in frameworks and args.task == "cifar10":
        skip_ynnpack_on_cpu()  # before JAX starts
    records = []
    try:
        for framework in frameworks:
            records += run_repeated(
                args.task,
                framework,
                args.scale,
                model=args.model,
                repeats=args.repeat,
                progress=not args.no_progress,
                baseline=args.baseline,
                overrides=args.overrides,
                versus=args.versus,
            )
    # A bad BOOK_SCALE, gpu scale without a GPU, data not found: say it plainly.
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if len(frameworks) > 1:  # each configuration's JAX rate over its PyTorch rate
        per_framework = len(records) // len(frameworks)
        for k, record in enumerate(records):
            reference = records[k % per_framework]["train_examples_per_second"]
            ratio = record["train_examples_per_second"] / reference
            record["throughput_ratio"] = round(ratio, 3)
    lines = [json.dumps(record) for record in records]
    print("\n".join(lines))
    if args.record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        with open(args.record, "a") as f:
            f.write("".join(line + "\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
