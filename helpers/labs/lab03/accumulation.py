"""Lab 3, exercise 5: gradient accumulation, checked in both frameworks on numpy answers.

``train_step_accumulated(model, optimizer, x, y, micro_batch_size)`` makes one optimizer
update on the batch ``(x, y)`` from micro-batches of at most ``micro_batch_size`` rows (the
last may be smaller): each micro-batch's mean loss weighted by ``len(micro) / len(batch)``,
so that the summed gradient is the whole batch's. It returns the batch's mean loss before
the update, a 0-d float32 array of the framework.

The check's model is a small MLP (Linear, tanh, Linear: no batch-norm, whose statistics would
differ per micro-batch) with plain SGD (Adam's first step is nearly invariant to the
gradient's scale and would hide the scaling mistakes). The reference is float64 NumPy with a
hand-written backward pass; each known mistake (:data:`UPDATE_MISTAKES`,
:data:`LOSS_MISTAKES`) is the update or the loss it gives, on four batches: uneven micro-
batches (10 rows by 4), even ones (12 by 4), one micro-batch (6 by 8), single rows (5 by 1).
The adapter's :class:`AccumOps` builds the model, whose calls record the rows they saw, and
counts the optimizer's updates. Hints for the framework ones are in the adapters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, Framework, Hints, checking, recording

__all__ = ["HINTS", "LR", "AccumOps", "accumulation_cases", "check_accumulation"]

LR = 0.5  # the check's SGD learning rate

# Known mistakes; the adapters add and word the framework ones. tests/labs/test_lab03.py
# proves that each hint is produced by a mistake in its table.
HINTS = Hints(
    {
        "accum_sum": "the update is too large: the micro-batches' mean losses were added "
        "without weights. Weight each by len(micro) / len(batch), so that they sum to the "
        "whole batch's mean (Goyal et al. 2017 normalise each worker's loss by the total "
        "minibatch size for this reason)",
        "accum_mean_of_means": "the micro-batches were weighted alike (divided by their "
        "number), but the last one is smaller: weight each by its own size, "
        "len(micro) / len(batch), which is what the mean over the whole batch does",
        "accum_fixed_weight": "each micro-batch was weighted by micro_batch_size / "
        "len(batch), but the last one may hold fewer rows (and one micro-batch may hold the "
        "whole, smaller batch): weight by its real size, len(micro) / len(batch)",
        "accum_drop_last": "the last, smaller micro-batch was left out: step through the "
        "batch with range(0, len(x), micro_batch_size) and keep the remainder",
        "accum_missed_rows": "some rows of x never reached the model: the micro-batches "
        "x[i:i + micro_batch_size] for i in range(0, len(x), micro_batch_size) cover the "
        "whole batch, the last one included",
        "accum_micro_norm": "each micro-batch's loss was divided by micro_batch_size (or "
        "the full ones left as means), so the whole is a sum of means, not one mean: divide "
        "each micro-batch's summed loss by len(batch), that is its mean loss times "
        "len(micro) / len(batch)",
        "accum_mean_over_n": "each micro-batch's mean loss was divided by len(batch): it is "
        "a mean over its own rows already, so weight it by len(micro) / len(batch) (or divide "
        "its summed loss by len(batch))",
        "accum_zero_weight": "the parameters did not change and the loss is 0: the weights "
        "were 0. len(micro) // len(batch) is integer division (0 for a part of the batch): "
        "use len(micro) / len(batch)",
        "accum_whole_batch": "the model must never see more than micro_batch_size rows at "
        "once (that is what accumulation is for): slice x[i:i + micro_batch_size] and compute "
        "the loss and its gradients on each slice (micro_batch_size is the rows of each "
        "micro-batch, not how many micro-batches there are)",
        "accum_reduction_sum": "the update is len(x) times too large: the micro-batches' "
        "losses were summed over their examples and never divided. Use each micro-batch's "
        "mean loss times len(micro) / len(batch) (or its summed loss divided by len(batch))",
        "accum_empty": "a micro-batch was empty (the mean of no losses is NaN): slice "
        "x[i:i + micro_batch_size] for i in range(0, len(x), micro_batch_size)",
        "accum_loss_last": "that is the loss of the last micro-batch: return the whole "
        "batch's mean loss, the sum over micro-batches of len(micro) / len(batch) times "
        "their mean loss",
        "accum_loss_unweighted": "that is the plain mean of the micro-batches' losses: the "
        "last one is smaller, so weight each by len(micro) / len(batch)",
        "accum_loss_sum": "that is the sum of the micro-batches' mean losses: weight each "
        "by len(micro) / len(batch)",
        "accum_loss_shape": "return the loss as a 0-d array: a sum of 0-d losses times "
        "Python weights, not a list, a stack or an array of shape (1,)",
        "accum_loss_value": "return the whole batch's mean cross-entropy computed before the "
        "update, from the micro-batches' losses weighted by len(micro) / len(batch)",
        "accum_wrong_update": "the parameters changed, but not by one step of the given "
        "optimizer on the whole batch's mean cross-entropy: weight each micro-batch's mean "
        "loss by len(micro) / len(batch), sum the gradients, and update once",
    }
)


def _no_problem(*args: Any) -> str:
    return ""


@dataclass(frozen=True)
class AccumOps:
    """A framework's half of the check (arrays in and out numpy), built by an adapter.

    ``make(params, stale)``: a (model, optimizer) pair: the check's MLP with ``params``
    ``[W1 (D, H), b1 (H,), W2 (H, C), b2 (C,)]`` float32, plain SGD with rate :data:`LR`;
    PyTorch also leaves ``stale`` (same shapes) in the parameters' ``.grad``.
    ``prepare(x, y)``: the framework's (x float32, y integer labels).
    ``params(model)``: the parameters back, in the order and layout of ``make``.
    ``rows(model)``: the number of rows of each input the model was called (or traced) on.
    ``updates(optimizer)``: how many optimizer updates were made.
    ``covered(model)``: the rows of all the model's calls together, or None where a
    compiled call hides how often it ran (JAX under jit).
    ``joint_rows(model)``: the most rows whose gradients one backward pass (PyTorch) or one
    differentiation (JAX) computed together.
    ``loss_problem(loss)``: the key of a hint for a loss that must not be returned as it is
    (PyTorch: still attached to its graph), or "".
    ``stale_grads``: whether ``make`` leaves stale gradients (PyTorch's ``.grad``).
    ``answer_keys``: library functions that do the exercise (``optax.MultiSteps``).
    """

    make: Callable[[list[np.ndarray], list[np.ndarray]], tuple[Any, Any]]
    prepare: Callable[[np.ndarray, np.ndarray], tuple[Any, Any]]
    params: Callable[[Any], list[np.ndarray]]
    rows: Callable[[Any], list[int]]
    updates: Callable[[Any], int]
    joint_rows: Callable[[Any], int] = lambda model: 0
    covered: Callable[[Any], int | None] = lambda model: None
    loss_problem: Callable[[Any], str] = _no_problem
    stale_grads: bool = False
    answer_keys: tuple[tuple[Any, str], ...] = ()


def accumulation_cases() -> list[dict[str, Any]]:
    """Four batches: (x float32 (N, D), y int (N,), micro_batch_size, params, stale grads).

    Uneven micro-batches first (10 rows by 4: 4, 4, 2), where weighting by size matters;
    then even ones (12 by 4), one micro-batch larger than the batch (6 by 8), single rows.
    """
    rng = np.random.default_rng(35)
    cases = []
    for n, micro, d, h, c in [(10, 4, 5, 7, 3), (12, 4, 4, 6, 4), (6, 8, 5, 7, 3),
                              (5, 1, 3, 5, 3)]:  # fmt: skip
        shapes = [(d, h), (h,), (h, c), (c,)]
        params = [rng.normal(size=s).astype(np.float32) for s in shapes]
        stale = [rng.normal(size=s).astype(np.float32) for s in shapes]
        x = rng.normal(size=(n, d)).astype(np.float32)
        y = rng.integers(0, c, n)
        cases.append(dict(x=x, y=y, micro=micro, params=params, stale=stale))
    return cases


def _loss_grads(params: list[np.ndarray], x: np.ndarray, y: np.ndarray):
    """Mean cross-entropy of the MLP on (x, y) and its gradients, in float64."""
    w1, b1, w2, b2 = (np.asarray(p, np.float64) for p in params)
    x = np.asarray(x, np.float64)
    hidden = np.tanh(x @ w1 + b1)
    logits = hidden @ w2 + b2
    logits = logits - logits.max(-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    n = len(y)
    loss = -logp[np.arange(n), y].mean()
    dz = np.exp(logp)
    dz[np.arange(n), y] -= 1
    dz /= n
    dh = dz @ w2.T * (1 - hidden**2)
    return loss, [x.T @ dh, dh.sum(0), hidden.T @ dz, dz.sum(0)]


def _answers(case: dict[str, Any]) -> tuple[list, dict, float, dict]:
    """(right parameters, {mistake: parameters}, right loss, {mistake: loss})."""
    x, y, m, p0 = case["x"], case["y"], case["micro"], case["params"]
    n = len(y)
    parts = [(x[i : i + m], y[i : i + m]) for i in range(0, n, m)]
    k = len(parts)
    micro = [_loss_grads(p0, xb, yb) for xb, yb in parts]
    sizes = [len(yb) for _, yb in parts]

    def update(weights, start=p0, extra=None):
        grads = [sum(w * g[j] for w, (_, g) in zip(weights, micro, strict=True))
                 for j in range(4)]  # fmt: skip
        if extra is not None:
            grads = [g + e for g, e in zip(grads, extra, strict=True)]
        return [p - LR * g for p, g in zip(start, grads, strict=True)]

    def per_micro(scale):  # one SGD step per micro-batch (k updates)
        params = p0
        for (xb, yb), s in zip(parts, sizes, strict=True):
            g = _loss_grads(params, xb, yb)[1]
            params = [p - LR * scale(s) * gj for p, gj in zip(params, g, strict=True)]
        return params

    full = [s == m for s in sizes]
    kept = sum(s for s, f in zip(sizes, full, strict=True) if f)
    last = [0.0] * (k - 1)
    mistakes = {
        "accum_sum": [update([1.0] * k)],
        "accum_reduction_sum": [update([float(s) for s in sizes])],
        "accum_mean_of_means": [update([1 / k] * k), update([1 / max(n // m, 1)] * k)],
        "accum_fixed_weight": [update([m / n] * k)],
        "accum_micro_norm": [update([s / m for s in sizes])],
        "accum_mean_over_n": [update([1 / n] * k)],
        "accum_last_only": [update([*last, sizes[-1] / n]), update([*last, 1.0])],
        "accum_drop_last": [
            update([s / n * f for s, f in zip(sizes, full, strict=True)]),
            update([s / max(kept, 1) * f for s, f in zip(sizes, full, strict=True)]),
        ],
        "accum_step_each": [per_micro(lambda s: s / n), per_micro(lambda s: 1.0)],
    }
    if case.get("stale_grads"):
        right_w = [s / n for s in sizes]
        mistakes["accum_no_zero_grad"] = [update(right_w, extra=case["stale"])]
        mistakes["accum_step_first"] = [update([0.0] * k, extra=case["stale"])]
    losses = [float(loss) for loss, _ in micro]
    right_loss = sum(s / n * loss for s, loss in zip(sizes, losses, strict=True))
    loss_mistakes = {
        "accum_loss_last": [losses[-1], sizes[-1] / n * losses[-1]],
        "accum_loss_unweighted": [float(np.mean(losses))],
        "accum_loss_sum": [sum(losses)],
    }
    return update([s / n for s in sizes]), mistakes, right_loss, loss_mistakes


def _match(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and np.allclose(x, y, rtol=1e-4, atol=1e-5)
        for x, y in zip(a, b, strict=True)
    )


def _loss_array(c: Checker, ops: AccumOps, value: Any) -> np.ndarray:
    """The returned loss as numpy, after the checks of its type, shape and graph."""
    what = "the returned loss"
    if isinstance(value, (float, int)) and not isinstance(value, bool):
        raise c.fail(
            f"{what} is a Python {type(value).__name__}, expected {c.fw.array_type}",
            c.hint("accum_loss_number"),
        )
    if isinstance(value, (list, tuple)) and value:
        raise c.fail(f"{what} is a {type(value).__name__}", c.hint("accum_loss_shape"))
    arr = c.array(value, f"{what} to be {c.fw.array_type} holding one number")
    c.expect(arr.shape == (), f"{what} has shape {arr.shape}, expected ()",
             c.hint("accum_loss_shape"))  # fmt: skip
    if key := ops.loss_problem(value):
        raise c.fail(f"{what} is still attached to the autograd graph", c.hint(key))
    c.expect(arr.dtype == np.float32, f"{what} has dtype {arr.dtype}, expected float32",
             c.fw.hints.get("accum_loss_dtype", ""))  # fmt: skip
    c.expect(bool(np.isfinite(arr)), f"{what} is {arr}, not a finite number",
             c.hint("accum_empty"))  # fmt: skip
    return arr


def _case(c: Checker, fn: Callable, ops: AccumOps, case: dict[str, Any]) -> None:
    x, y, m = case["x"], case["y"], case["micro"]
    case = dict(case, stale_grads=ops.stale_grads)
    model, optimizer = ops.make(case["params"], case["stale"])
    xs, ys = ops.prepare(x.copy(), y.copy())  # a tensor may share the array's memory
    with recording(ops.answer_keys) as called:
        loss = c.call(fn, model, optimizer, xs, ys, m)
    if called:
        raise c.fail(f"your function called the library's {called[0]}",
                     c.hint("accum_answer_key"))  # fmt: skip
    c.expect(
        np.array_equal(c.fw.to_numpy(xs), x) and np.array_equal(c.fw.to_numpy(ys), y),
        "your function changed x or y",
        "leave the inputs as they are: slice them, without writing into them",
    )
    got_loss = _loss_array(c, ops, loss)
    rows = ops.rows(model)
    c.expect(len(rows) > 0, "your function never called the model")
    batch = f"a batch of {len(y)} rows with micro_batch_size={m}"
    c.expect(max(rows) <= m,
             f"the model was called on {max(rows)} rows at once, for {batch}",
             c.hint("accum_whole_batch"))  # fmt: skip
    right, mistakes, right_loss, loss_mistakes = _answers(case)
    got = ops.params(model)
    updates = ops.updates(optimizer)
    unchanged = _match(got, case["params"]) and not _match(right, got)
    if updates == 0:
        what = (
            "the parameters did not change"
            if unchanged
            else "the optimizer was not used"
        )
        raise c.fail(
            f"{what} (0 optimizer updates, for {batch})", c.hint("accum_no_step")
        )
    if unchanged:
        key = "accum_zero_weight" if float(got_loss) == 0 else "accum_zero_update"
        raise c.fail(f"the parameters did not change, for {batch}", c.hint(key))
    c.expect(updates == 1, f"the optimizer made {updates} updates for {batch}; "
             "expected one", c.hint("accum_step_each"))  # fmt: skip
    c.expect(all(np.all(np.isfinite(p)) for p in got),
             f"the parameters contain NaN or inf after the update, for {batch}",
             c.hint("accum_empty"))  # fmt: skip
    if not _match(got, right):
        seen = ops.covered(model)
        other = "accum_missed_rows" if seen is not None and seen < len(y) else ""
        key = next((k for k, ws in mistakes.items() if any(_match(got, w) for w in ws)),
                   other or "accum_wrong_update")  # fmt: skip
        raise c.fail(f"after the update the parameters are not the right ones, for "
                     f"{batch}", c.hint(key))  # fmt: skip
    joint = ops.joint_rows(model)
    c.expect(joint <= m, f"the gradients of {joint} rows were computed together, "
             f"for {batch}", c.hint("accum_one_backward"))  # fmt: skip
    wrong = [(c.hint(k), v) for k, vs in loss_mistakes.items() for v in vs]
    c.close(float(got_loss), right_loss, what=f"the returned loss, for {batch},",
            rtol=1e-4, atol=1e-6, hint=c.hint("accum_loss_value"), mistakes=wrong)  # fmt: skip


def check_accumulation(fn: Callable, fw: Framework, ops: AccumOps) -> None:
    """Check ``fn(model, optimizer, x, y, micro_batch_size) -> loss`` on four batches.

    ``fw`` holds the hints (this module's :data:`HINTS` and the adapter's); ``ops`` is the
    framework's half. Each batch: a fresh model, whose calls must see at most
    ``micro_batch_size`` rows; exactly one optimizer update; parameters after it as the
    float64 reference's, rtol 1e-4; the loss the whole batch's mean before the update, 0-d
    float32. Raises only :class:`~helpers.labs.kit.CheckFailed`.
    """
    with checking(
        "train_step_accumulated",
        fw,
        passed="one update, equal to the whole batch's, on four batches",
    ) as c:
        for case in accumulation_cases():
            _case(c, fn, ops, case)
