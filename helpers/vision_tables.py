"""Chapter 5's ``helpers.bench cifar10`` records as text, for the pages' tables.

:func:`bench_table` prints the fast recipe's runs, :func:`outline_table` section 5.2's runs of
the outline CNN; both read the JSON lines of ``chapters/05-cifar10/bench.jsonl``. Re-exported
by :mod:`helpers.vision` (and so by both halves' ``H.vision``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from helpers.system import short_cpu_name

__all__ = ["bench_table", "outline_table"]

# The longest line of a table, in characters: a page's output column holds about 100.
WIDTH = 96


def _chip(record: dict) -> str:
    """The GPU a record ran on, else its CPU."""
    return record["hardware"].get("gpu") or record["hardware"]["cpu"]


def bench_table(records: Sequence[dict]) -> str:
    """Chapter 5's ``helpers.bench cifar10`` records as text: one row per run, then the sweeps.

    Only the fast recipe's runs (``model_option`` ``"cifarnet"``; section 5.2's outline CNN has
    its own records). Runs at a scale's own sizes come first, under a title line, in
    ``records``' order, with the data (``JPEG copy`` or ``canonical``), the hardware (the GPU,
    else the CPU, its cores and, above one, the XLA devices the batch was split over), date and
    commit; runs with changed sizes (``--set``, an ``overrides`` key) follow in a second titled
    table, best flip-TTA accuracy first within each scale, with their stem, seed, devices,
    accuracy, img/s, chip, date, commit and what was changed. Each run is a line of numbers
    under the column headers, then, indented as the second header line, its data, hardware,
    date and commit (first table) or chip, date, commit and changes (second): no line is
    longer than ``WIDTH`` characters. A record's ``load_average`` note (what else the machine
    ran) stays in the JSON; it is not printed.
    ``stem`` (both tables) is the network's first layer (``conv`` for runs recorded before the
    whitening stem); ``EMA+f`` is the weight average's accuracy with flips, blank for runs
    recorded before it. A record of ``--repeat N`` runs (seeds ``0 .. N-1``) holds each
    metric's median over the runs (so a row may mix runs): its seed reads ``0-2`` and a line
    under it gives the runs' range of accuracy, time, img/s and speed-up; a row of a
    ``--versus`` pair (either table) has a line naming its partner's changes. Raises
    ``KeyError`` for a record that lacks a field of the table.
    """
    # skip_ynnpack_on_cpu's flag. Imported here, not at the top: helpers.vision imports this
    # module before it defines the constant.
    from helpers.vision import YNNPACK_OFF

    records = [r for r in records if r.get("model_option", "cifarnet") == "cifarnet"]
    lines = [
        "Runs at each scale's own sizes, in the order they were run",
        "(sizes of the day: the scales' defaults changed over time, see the epochs column)",
        f"{'framework':9} {'scale':5} {'stem':9} {'epochs':>6} {'test acc':>8} {'+TTA':>7} "
        f"{'EMA+f':>7} {'train s':>7} {'compile s':>9} {'img/s':>8} {'vs seed':>7}",
        *_under("data, hardware, date, commit"),
    ]
    for r in [r for r in records if "overrides" not in r]:
        hw = r["hardware"]
        where = hw.get("gpu") or f"{short_cpu_name(hw['cpu'])}, {hw['cores']} cores"
        if r.get("devices", 1) > 1:
            where += f", {r['devices']} XLA devices"
        if YNNPACK_OFF in r.get("xla_flags", "").split():
            where += ", YNNPACK off"
        speedup = r.get("speedup_vs_seed_style")
        ratio = "" if speedup is None else f"{speedup:.2f}x"
        lines.append(
            f"{r['framework']:9} {r['scale']:5} {r.get('stem', 'conv'):9} {r['epochs']:6g} "
            f"{r['test_accuracy']:8.2%} "
            f"{r['test_accuracy_tta']:7.2%} {_ema(r):>7} {r['train_seconds']:7.1f} "
            f"{r['compile_seconds']:9.1f} {r['train_examples_per_second']:8,.0f} "
            f"{ratio:>7}".rstrip()
        )
        lines += _under(
            f"{_data_name(r['data'])}, {where}, {r['date'][:10]}, {r['commit'][:7]}"
        )
        lines += _spread(r) + _interleaved(r)
    sweeps = [r for r in records if "overrides" in r]
    if sweeps:
        lines += [
            "",
            "Runs with changed sizes (--set, against that day's defaults),",
            "by scale, best accuracy with flips first",
            f"{'framework':9} {'scale':5} {'stem':9} {'seed':>4} {'devices':>7} "
            f"{'test acc':>8} {'+TTA':>7} {'EMA+f':>7} {'train s':>7} {'img/s':>8}",
            *_under("chip, date, commit: sizes changed"),
        ]
        for r in sorted(sweeps, key=lambda r: (r["scale"], -r["test_accuracy_tta"])):
            changes = _changes(r["overrides"], r["framework"])
            lines.append(
                f"{r['framework']:9} {r['scale']:5} {r.get('stem', 'conv'):9} {_seed(r):>4} "
                f"{r.get('devices', 1):7g} {r['test_accuracy']:8.2%} "
                f"{r['test_accuracy_tta']:7.2%} {_ema(r):>7} "
                f"{r['train_seconds']:7.1f} {r['train_examples_per_second']:8,.0f}"
            )
            chip = short_cpu_name(_chip(r))
            lines += _under(
                f"{chip}, {r['date'][:10]}, {str(r['commit'])[:7]}: {changes}"
            )
            lines += _spread(r) + _interleaved(r)
    return "\n".join(lines)


def _under(text: str) -> list[str]:
    """``text`` as the lines under a row: indented past the framework column, wrapped at
    ``WIDTH`` at spaces only (never inside a range such as ``83.44%-83.80%`` or a date), each
    continuation indented two more."""
    return textwrap.wrap(text, WIDTH, initial_indent=" " * 10, subsequent_indent=" " * 12,
                         break_on_hyphens=False, break_long_words=False)  # fmt: skip


def _data_name(data: str) -> str:
    """A record's ``data`` in two words: ``JPEG copy`` or ``canonical``."""
    return "JPEG copy" if "JPEG" in data else "canonical"


def _seed(record: dict) -> str:
    """A record's seed, or ``first-last`` of a ``--repeat`` record's seeds ``0 .. N-1``."""
    seed = record.get("seed", 0)
    return f"{seed[0]}-{seed[-1]}" if isinstance(seed, list) else str(seed)


def _spread(record: dict) -> list[str]:
    """For a record of repeated runs (its numbers are medians), one line with their ranges."""
    spread = record.get("spread")
    if not spread:
        return []
    acc, tta = spread["test_accuracy"], spread["test_accuracy_tta"]
    secs, rate = spread["train_seconds"], spread["train_examples_per_second"]
    # the --baseline ratio too: its median alone can round up past a target
    ratio = spread.get("speedup_vs_seed_style")
    vs_seed = (
        "" if ratio is None else f", vs seed-style {ratio[0]:.2f}x-{ratio[1]:.2f}x"
    )
    return _under(
        f"median of {len(record['seed'])} runs (seeds {_seed(record)}); ranges: "
        f"test acc {acc[0]:.2%}-{acc[1]:.2%}, +TTA {tta[0]:.2%}-{tta[1]:.2%}, "
        f"train s {secs[0]:.1f}-{secs[1]:.1f}, img/s {rate[0]:,.0f}-{rate[1]:,.0f}{vs_seed}"
    )


def _interleaved(record: dict) -> list[str]:
    """For one of a ``helpers.bench --versus`` pair, a line naming its partner's changes."""
    if "interleaved_with" not in record:
        return []
    other = _changes(record["interleaved_with"]) or "none (the scale's own sizes)"
    return _under(
        f"alternated seed by seed with the runs of the other {record['framework']} "
        f"row so marked, whose sizes changed: {other}"
    )


def _changes(overrides: dict, framework: str | None = None) -> str:
    """``k=v, ...``; for a PyTorch run, without ``jax_epochs`` (which only JAX runs use)."""
    unused = {"jax_epochs"} if framework == "torch" else set()
    used = ", ".join(f"{k}={v}" for k, v in overrides.items() if k not in unused)
    return used or ("none that PyTorch uses" if overrides else "")


def _ema(record: dict) -> str:
    """A record's weight-average accuracy with flips, or "" (recorded before it existed)."""
    accuracy = record.get("test_accuracy_ema_tta")
    return "" if accuracy is None else f"{accuracy:.2%}"


def outline_table(records: Sequence[dict]) -> str:
    """Section 5.2's recorded runs of the outline CNN (``model_option`` ``"outline"``) as text.

    Two lines per run: framework, training images x epochs and test accuracy; then the final
    training loss, test loss, chip, date and commit. Raises ``KeyError`` for a record that lacks
    one.
    """
    lines = []
    for r in records:
        if r.get("model_option") != "outline":
            continue
        lines.append(
            f"recorded, {r['framework']:5}: {r['train_examples']:,} images x {r['epochs']} "
            f"epochs: test accuracy {r['test_accuracy']:.2%}\n"
            f"  final training loss {r['final_train_loss']:.2f}, test loss "
            f"{r['test_loss']:.2f} ({_chip(r)}, {r['date'][:10]}, {r['commit'][:7]})"
        )
    return "\n".join(lines) if lines else "no recorded run of the outline CNN"
