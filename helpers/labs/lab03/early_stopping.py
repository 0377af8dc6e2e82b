"""Lab 3, exercise 4: early stopping that restores the best weights, checked in both frameworks.

``EarlyStopping(patience, min_delta=0.0)``: ``step(val_loss, model) -> bool`` once per epoch
(an improvement is ``val_loss < best_loss - min_delta``; NaN never is; on one it records the
loss, the epoch and a snapshot of the model's whole state), True once ``patience`` epochs in a
row brought none; ``restore(model)`` loads the snapshot back into the caller's model, in place;
``best_loss`` (inf before any step) and ``best_epoch``.

The check drives the student's class through scripted losses (:data:`CASES`) on a small model
with a batch-norm (so buffers / batch statistics count). Before each ``step`` it sets every
parameter and buffer to that epoch's values in place, as an optimizer does (PyTorch:
``copy_``; NNX: a Variable's value), and once more after the last step, as further training
would; then ``restore`` must put back exactly the best epoch's state, twice. Each known
mistake is a variant of the counting rule (:func:`simulate`) or a state the restored model
ends in; the framework's :class:`StopOps` names snapshots that follow the live model (by
value, or holding its own tensors / Variables). The four instances live side by side, so
state shared between them (a class attribute, a file) restores another script's weights.
The hints are in :mod:`helpers.labs.lab03.stopping_hints`. No
installed library does the exercise with weights: ``flax.training.early_stopping`` only counts
(and sets ``should_stop`` one epoch later than this contract), and Lightning, Keras, Ignite
and skorch are not installed, so nothing is refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, CheckFailed, Framework, checking
from helpers.labs.lab03.stopping_hints import HINTS

__all__ = ["CASES", "HINTS", "Case", "StopOps", "check_early_stopping", "simulate"]

NAN, INF = float("nan"), float("inf")


@dataclass(frozen=True)
class Case:
    patience: int
    min_delta: float
    losses: tuple[float, ...]


CASES = (
    Case(2, 0.0, (1.0, 0.9, 0.95, 0.93)),  # the text's example: best at epoch 1
    Case(3, 0.0, (1.0, 0.8, 0.8, 0.9, 0.7, 0.7, NAN, 0.75)),  # ties, a reset, a NaN
    # min_delta > 0 (an absolute margin: best * (1 - min_delta) differs); a step after the stop
    # its best, 1.8037, has four decimals, so a rounded best_loss shows
    Case(3, 0.1, (2.0, 2.04, 1.94, 1.8037, 1.76, 1.72, 1.74, 1.78)),
    Case(1, 0.0, (0.5, 0.6)),  # patience 1, best at the first epoch
)


@dataclass(frozen=True)
class StopOps:
    """A framework's half of the check, built by an adapter (states as {name: numpy}).

    ``make()``: the check's model (a Linear and a batch-norm) with float32 parameters.
    ``set_state(model, state)``: write ``state`` into the model in place (PyTorch ``copy_``
    under ``no_grad``; NNX: each Variable's value), as an optimizer step does.
    ``read(model)``: the model's whole state, parameters and buffers.
    ``buffers``: the names in ``read``'s dict that are buffers (batch statistics).
    ``values(obj)``: the arrays held by a snapshot-like object (a module, a state dict, an
    ``nnx.State``, a pure dict), as ``{name: numpy}`` with ``read``'s names, or None.
    ``shares(obj, model)``: whether ``obj`` (a tensor, Variable, list or dict of them) holds
    the model's own tensors / Variables, whatever their values.
    """

    make: Callable[[], Any]
    set_state: Callable[[Any, dict[str, np.ndarray]], None]
    read: Callable[[Any], dict[str, np.ndarray]]
    buffers: frozenset[str]
    values: Callable[[Any], dict[str, np.ndarray] | None]
    shares: Callable[[Any, Any], bool]


def simulate(
    case: Case,
    *,
    strict: bool = True,
    delta: float = 1.0,
    nan_improves: bool = False,
    reset: bool = True,
    offset: int = 0,
    start: float = INF,
    first: str = "",
    exact: bool = False,
    previous: bool = False,
    relative: bool = False,
) -> tuple[list[bool], float, int]:
    """(step's returns, best_loss, best_epoch) for ``case``; the options are mistakes.

    ``delta`` multiplies min_delta (0: ignored, -1: the wrong sign); ``offset`` moves the stop
    (-1 early, +1 late); ``start`` is best_loss before the first step; ``first`` "skip" or
    "count" records the first loss without an improvement (and counts it, for "count");
    ``exact`` stops only when the count equals patience; ``previous`` compares each loss with
    the previous epoch's, not the best; ``relative`` uses best * (1 - min_delta).
    """
    best, best_epoch, wait, returns, last = start, -1, 0, [], start
    for epoch, loss in enumerate(case.losses):
        if first and epoch == 0:
            best, wait = loss, int(first == "count")
        else:
            bound = (last if previous else best) - delta * case.min_delta
            bound = best * (1 - case.min_delta) if relative else bound
            if nan_improves:  # not (loss >= bound): True for a NaN loss, and after one
                improved = not loss >= bound
            else:
                improved = loss < bound if strict else loss <= bound
            if improved:
                best, best_epoch, wait = loss, epoch, 0 if reset else wait
            else:
                wait += 1
        last = loss
        returns.append(
            wait == case.patience if exact else wait >= case.patience + offset
        )
    return returns, best, best_epoch


# (hint, simulate's options) of each counting mistake, tried in this order.
VARIANTS = [
    ("es_tie", dict(strict=False)),
    ("es_min_delta_ignored", dict(delta=0.0)),
    ("es_min_delta_sign", dict(delta=-1.0)),
    ("es_min_delta_relative", dict(relative=True)),
    ("es_nan", dict(nan_improves=True)),
    ("es_no_reset", dict(reset=False)),
    ("es_previous", dict(previous=True)),
    ("es_stop_exact", dict(exact=True)),
    ("es_stops_early", dict(offset=-1)),
    ("es_stops_late", dict(offset=1)),
    ("es_best_zero", dict(start=0.0)),
    ("es_first_epoch", dict(first="skip")),
    ("es_first_epoch", dict(first="count")),
]


def _epoch_states(ops: StopOps, case_index: int, n: int) -> list[dict[str, np.ndarray]]:
    """n + 2 distinct states: one per epoch, then two as training would go on."""
    base = ops.read(ops.make())
    rng = np.random.default_rng(40 + case_index)
    states = []
    for k in range(n + 2):
        state = {}
        for name, value in base.items():
            if np.issubdtype(value.dtype, np.integer):  # PyTorch's num_batches_tracked
                state[name] = np.full(value.shape, 10 * case_index + k + 1, value.dtype)
            else:
                new = rng.normal(size=value.shape)
                new = np.abs(new) + 0.5 if name.endswith("var") else new
                state[name] = new.astype(value.dtype)
        states.append(state)
    return states


def _same(a: dict[str, np.ndarray] | None, b: dict[str, np.ndarray], keys=None) -> bool:
    if a is None:
        return False
    keys = set(b) if keys is None else set(keys)
    return bool(keys) and all(
        k in a and a[k].shape == b[k].shape and np.array_equal(a[k], b[k]) for k in keys
    )


def _held(ops: StopOps, stopper: Any) -> list[Any]:
    """The snapshot-like objects the student's instance holds (one level deep)."""
    try:
        found = list(vars(stopper).values())
    except TypeError:
        return []
    for value in list(found):
        if isinstance(value, (list, tuple)):
            found.extend(value)
    return found


def _read_attr(c: Checker, stopper: Any, name: str) -> Any:
    try:
        return getattr(stopper, name)
    except Exception:
        raise c.fail(
            f"your EarlyStopping has no {name}", c.hint("es_attributes")
        ) from None


def _a(value: Any) -> str:
    """'a Tensor', 'an ArrayImpl': the type of ``value`` with its article."""
    name = type(value).__name__
    return ("an " if name[0] in "AEIOUaeiou" else "a ") + name


def _number(c: Checker, value: Any, what: str, want: float, hint: str) -> None:
    if not isinstance(value, (float, int, np.floating)) or isinstance(value, bool):
        raise c.fail(f"{what} is {_a(value)}, expected a float", hint)
    same = (math.isnan(value) and math.isnan(want)) or value == want
    c.expect(same, f"{what} is {value}, expected {want}", hint)


def _as_float(value: Any) -> float | None:
    if isinstance(value, (float, int, np.floating)) and not isinstance(value, bool):
        return float(value)
    return None


def _array_float(value: Any) -> float | None:
    """The number a one-element tensor or array holds (not a Python or NumPy number)."""
    if isinstance(value, (int, float, np.generic)):
        return None
    try:
        return float(value)
    except Exception:
        return None


def _agrees(want: tuple[list[bool], float, int], got: tuple, full: bool) -> bool:
    """Whether the student's (returns, best_loss, best_epoch) are a simulation's."""
    if got[0] != want[0]:
        return False
    loss = _as_float(got[1])
    same_loss = loss == want[1] or (
        loss is not None and math.isnan(loss) and math.isnan(want[1])
    )
    return not full or (same_loss and got[2] == want[2])


def _diagnose(runs: list[tuple[Case, tuple]], full: bool) -> str:
    """The mistake whose simulation gives the student's results in every case, or "".

    ``full``: returns, best_loss and best_epoch; else the returns alone.
    """
    for key, options in VARIANTS:
        if all(_agrees(simulate(case, **options), got, full) for case, got in runs):
            return key
    return ""


def _restored(c: Checker, ops: StopOps, run: tuple, best: int, others: list) -> None:
    """Fail unless restore(model) put back exactly ``states[best]``, twice; ``others``: the
    other scripts' states (a snapshot shared between instances restores one of them)."""
    stopper, model, states, _ = run
    last = len(states) - 3
    params = set(states[best]) - ops.buffers
    for attempt, moved in enumerate((states[-2], states[-1])):
        ops.set_state(model, moved)
        live = [_same(ops.values(v), moved, params) for v in _held(ops, stopper)]
        try:
            c.call(stopper.restore, model)
        except CheckFailed as failure:
            if attempt == 0:
                raise
            problem = failure.problem.replace("your code", "the second restore", 1)
            raise c.fail(problem, c.hint("es_restore_once")) from None
        got = ops.read(model)
        if _same(got, states[best]):
            continue
        if any(_same(got, s, params) for other in others for s in other):
            key = "es_shared"
        elif attempt == 1:
            changed = any(
                _same(ops.values(v), moved, params) for v in _held(ops, stopper)
            )
            key = "es_restore_once" if _same(got, moved) and not changed else ""
            key = key or "es_restore_twice"
        elif _same(got, states[best], params):
            key = "es_buffers_lost"
        elif _same(got, moved):
            held = _held(ops, stopper)
            if any(value is model for value in held):
                key = "es_model_kept"
            elif any(
                _same(ops.values(v), moved, params) and not was
                for v, was in zip(held, live + [False] * len(held), strict=False)
            ):
                key = "es_restore_reversed"
            elif any(_same(ops.values(v), moved, params) for v in held):
                key = "es_alias"
            elif any(ops.shares(v, model) for v in held):
                key = "es_alias"
            elif any(_same(ops.values(v), states[best], params) for v in held):
                key = "es_rebind"
            else:
                key = "es_not_restored"
        elif _same(got, states[last], params):
            key = "es_every_epoch"
        elif any(_same(got, s, params) for s in states[: last + 1]):
            key = "es_wrong_epoch"
        else:
            key = "es_restore_wrong"
        which = "the second restore" if attempt else "restore"
        raise c.fail(
            f"after {which} the model does not hold epoch {best}'s parameters and "
            "buffers",
            c.hint(key),
        )


def _run(c: Checker, cls: Any, ops: StopOps, index: int, case: Case) -> tuple:
    """The student's class through ``case``: (stopper, model, states, results)."""
    args = (case.patience, case.min_delta) if case.min_delta else (case.patience,)
    stopper = c.call(cls, *args)
    start = _read_attr(c, stopper, "best_loss")
    if isinstance(start, (int, float)) and start == 0:
        raise c.fail("best_loss is 0 before the first step", c.hint("es_best_zero"))
    if not (isinstance(start, (float, np.floating)) and start == INF):
        raise c.fail(
            f"best_loss is {start!r} before the first step, expected inf",
            c.hint("es_best_type" if _array_float(start) == INF else "es_best_init"),
        )
    model = ops.make()
    states = _epoch_states(ops, index, len(case.losses))
    returns = []
    for epoch, loss in enumerate(case.losses):
        ops.set_state(model, states[epoch])
        value = c.call(stopper.step, loss, model)
        if not isinstance(value, (bool, np.bool_)):
            raise c.fail(
                f"step returned {type(value).__name__} at epoch {epoch}, expected a bool",
                c.hint("es_not_bool"),
            )
        returns.append(bool(value))
    got = (
        returns,
        _read_attr(c, stopper, "best_loss"),
        _read_attr(c, stopper, "best_epoch"),
    )
    return stopper, model, states, got


def _case(c: Checker, ops: StopOps, index: int, runs: list, results: list) -> None:
    case, got = results[index]
    want_returns, want_loss, want_epoch = simulate(case)
    delta = f", min_delta={case.min_delta}" if case.min_delta else ""
    setting = f"patience={case.patience}{delta}, losses {list(case.losses)}"
    first_case = want_epoch == 0
    if got[0] != want_returns:
        # every script, then this one alone (two mistakes at once match no variant), unless
        # step never returned True (then no single mistake is the cause)
        key = _diagnose(results, True) or _diagnose(results, False)
        if not key and any(any(other[0]) for _, other in results):
            key = _diagnose([(case, got)], True) or _diagnose([(case, got)], False)
        key = key or ("es_first_epoch" if first_case else "es_wrong_stop")
        raise c.fail(
            f"step returned {got[0]}, expected {want_returns}, for {setting}",
            c.hint(key),
        )
    for what, value, want, generic in (
        ("best_loss", got[1], want_loss, "es_best_loss"),
        ("best_epoch", got[2], want_epoch, "es_best_epoch"),
    ):
        key = _diagnose(results, True) or generic
        key = "es_first_epoch" if first_case else key
        # a counter shared by the instances goes on from the scripts run before this one
        # (and from every earlier run of the check)
        before = sum(len(earlier.losses) for earlier in CASES[:index])
        total = sum(len(each.losses) for each in CASES)
        moved = isinstance(value, (int, np.integer)) and value - want > 0
        if what == "best_epoch" and moved and (value - want - before) % total == 0:
            key = "es_shared"
        if what == "best_loss" and _array_float(value) is not None:
            key = "es_best_type"
        if what == "best_epoch" and not isinstance(value, (int, np.integer)):
            raise c.fail(
                f"best_epoch is {_a(value)}, expected an int, for {setting}",
                c.hint(key),
            )
        _number(c, value, f"{what}, for {setting},", want, c.hint(key))
    others = [run[2] for other, run in enumerate(runs) if other != index]
    try:
        _restored(c, ops, runs[index], want_epoch, others)
    except CheckFailed as failure:
        own = ("es_restore_twice", "es_restore_once", "es_shared")
        twice = failure.hint in (c.hint(k) for k in own)
        hint = c.hint("es_first_epoch") if first_case and not twice else failure.hint
        raise c.fail(f"{failure.problem}, for {setting}", hint) from None


def check_early_stopping(cls: Any, fw: Framework, ops: StopOps) -> None:
    """Check ``EarlyStopping`` on :data:`CASES`; raises only :class:`CheckFailed`."""
    with checking(
        "EarlyStopping",
        fw,
        passed="stop, best loss and epoch on four scripts; best state restored twice",
    ) as c:
        # Every script's steps first, so a mistake is named from all of them.
        runs = [_run(c, cls, ops, index, case) for index, case in enumerate(CASES)]
        results = [(case, run[3]) for case, run in zip(CASES, runs, strict=True)]
        for index in range(len(CASES)):
            _case(c, ops, index, runs, results)
