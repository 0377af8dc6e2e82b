"""Lab 5, exercise 2: the label-smoothed cross-entropy, checked in both frameworks.

With ``C`` classes and smoothing ``s`` the target is ``(1 - s) * one_hot + s / C``; the loss
is the batch mean of ``-sum(target * log_softmax(logits))``. The check compares with the
framework's library loss; each known mistake (``smoothed_ce``'s ``mistake``) is computed here
in float64 NumPy, on batches where each one changes the answer (smoothing large enough that
applying it twice shows, a batch without its last class, so that ``labels.max() + 1`` is not
the number of classes). Its hints are :data:`LOSS_HINTS`, part of
:data:`helpers.labs.lab05.checks.HINTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from helpers.labs.kit import Framework, checking, recording

__all__ = [
    "LOSS_HINTS",
    "check_smoothed_cross_entropy",
    "dtype_hint_key",
    "smooth_cases",
    "smoothed_ce",
]

LOSS_HINTS = {
    "smoothing_twice": "smooth the one-hot targets once: target = (1 - s) * one_hot + "
    "s / C, and do not smooth the result again",
    "smoothing_c_minus_1": "label smoothing spreads s over all C classes, the true one "
    "included: (1 - s) * one_hot + s / C, not s / (C - 1) (whether added to every "
    "class or to the others only)",
    "smoothing_missing": "mix the one-hot target with the uniform one: "
    "(1 - s) * one_hot + s / C",
    "loss_sum": "average the per-example losses over the batch (mean), do not sum them",
    "loss_keepdim": "return a 0-d loss, shape (): take .mean() over the batch without "
    "keepdim (and do not reshape or index it into shape (1,))",
    "loss_dtype": "compute the loss in float32, from the float32 logits: a loss in "
    "bfloat16 or float16 (logits cast down, or mixed precision) loses digits; cast "
    "the logits back to float32 before the loss",
    "loss_sign": "the cross-entropy is -sum(target * log_softmax(logits)): log "
    "probabilities are negative, so the loss is positive; keep the minus sign",
    "loss_not_reduced": "reduce to one number: sum target * log_softmax over the "
    "classes (last axis), then take the mean over the batch",
    "loss_mean_all": "sum over the classes, then average over the batch: a mean over "
    "both axes also divides the loss by the number of classes",
    "softmax_axis": "take log_softmax over the classes, the last axis: each row of the "
    "logits is one example's distribution, and the batch axis is not one",
    "classes_hardcoded": "take the number of classes from the logits, "
    "C = logits.shape[-1], and give it to one_hot, one_hot(labels, C): the check's two "
    "batches have 10 and 4 classes, and a batch need not hold the last class, so "
    "labels.max() + 1 is no substitute",
    "smoothing_sum": "each row of targets sums to 1: (1 - s) * one_hot + s / C keeps "
    "the factor 1 - s on the one-hot part and spreads s over the C classes, s / C each "
    "(not s each)",
    "smoothing_swapped": "the true class keeps most of the weight: (1 - s) * one_hot + "
    "s / C, with s small (0.2), not s * one_hot + (1 - s) / C",
    "loss_log_missing": "the cross-entropy takes log probabilities: log_softmax(logits) "
    "over the classes, not softmax(logits) (no log) nor the raw logits",
    "loss_float": "return the loss as a 0-d array of the framework, not a Python float",
}


def dtype_hint_key(fw: Framework, dtype: np.dtype) -> str:
    """The hint for a loss of ``dtype`` (not float32): float64 has its own where declared."""
    return (
        "loss_float64"
        if dtype == np.float64 and "loss_float64" in fw.hints
        else ("loss_dtype")
    )


def _inputs(fw: Framework, *arrays: np.ndarray) -> list[Any]:
    return [fw.from_numpy(np.ascontiguousarray(a).copy()) for a in arrays]


def smooth_cases() -> list[dict[str, Any]]:
    """Two batches: float32 ``logits (B, C)``, int ``labels (B,)`` and the smoothing."""
    rng = np.random.default_rng(11)  # every mistake at least 1% off
    return [
        dict(
            logits=(rng.normal(size=(b, c)) * 3).astype(np.float32),
            labels=rng.integers(0, top, size=b),
            smoothing=s,
        )
        # the first batch lacks the last class: labels.max() + 1 < C
        for b, c, top, s in [(6, 10, 9, 0.2), (5, 4, 4, 0.3)]
    ]


def smoothed_ce(logits, labels, smoothing: float, mistake: str = "right") -> float:
    """The mean smoothed cross-entropy in float64; ``mistake`` names a known wrong variant."""
    logits = np.asarray(logits, np.float64)
    c = logits.shape[1]
    one_hot = np.eye(c)[labels]
    s = smoothing
    right = (1 - s) * one_hot + s / c
    targets = {
        "smoothing_twice": (1 - s) * right + s / c,
        "smoothing_c_minus_1": (1 - s) * one_hot + (1 - one_hot) * s / (c - 1),
        "smoothing_c_minus_1_all": (1 - s) * one_hot + s / (c - 1),
        "smoothing_missing": one_hot,
        "smoothing_not_divided": (1 - s) * one_hot + s,
        "smoothing_no_1_minus_s": one_hot + s / c,
        "smoothing_swapped": s * one_hot + (1 - s) / c,
        "loss_sign": -right,
    }.get(mistake, right)
    axis = 0 if mistake == "softmax_axis" else 1  # 0: normalised over the batch
    z = logits - logits.max(axis, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis, keepdims=True))
    if mistake == "log_missing_softmax":  # probabilities where log probabilities go
        log_p = np.exp(log_p)
    if mistake == "log_missing_logits":
        log_p = logits
    per_example = -(targets * log_p).sum(1)  # (B,)
    if mistake == "loss_sum":
        return float(per_example.sum())
    if mistake == "loss_mean_all":  # the mean over (B, C)
        return float(per_example.mean() / c)
    if mistake not in ("right", *_SMOOTH_MISTAKES):
        raise ValueError(f"unknown mistake {mistake!r}")
    return float(per_example.mean())


# Each known mistake (what ``smoothed_ce`` computes) -> the hint it gets.
_SMOOTH_MISTAKES = {
    "smoothing_twice": "smoothing_twice",
    "smoothing_c_minus_1": "smoothing_c_minus_1",  # s / (C - 1) on the other classes
    "smoothing_c_minus_1_all": "smoothing_c_minus_1",  # s / (C - 1) added to every class
    "smoothing_missing": "smoothing_missing",
    "smoothing_not_divided": "smoothing_sum",  # s added to every class
    "smoothing_no_1_minus_s": "smoothing_sum",  # one_hot + s / C
    "smoothing_swapped": "smoothing_swapped",  # s * one_hot + (1 - s) / C
    "log_missing_softmax": "loss_log_missing",
    "log_missing_logits": "loss_log_missing",
    "loss_sum": "loss_sum",
    "loss_sign": "loss_sign",
    "loss_mean_all": "loss_mean_all",
    "softmax_axis": "softmax_axis",
}


def check_smoothed_cross_entropy(
    fn: Callable,
    fw: Framework,
    *,
    library: Callable,
    int_dtype: Any,
    answer_keys: tuple[tuple[Any, str], ...] = (),
) -> None:
    """``fn(logits, labels, smoothing) -> scalar``, against ``library`` (the framework's loss).

    ``library(logits, labels, smoothing)`` takes numpy and returns a float; ``int_dtype`` is
    the labels' dtype in this framework (int64 in PyTorch, int32 in JAX). ``answer_keys``,
    as in :func:`check_crop_flip`: the library's cross-entropy and smoothing, whose call from
    ``fn`` fails the check (hint ``loss_answer_key``).
    """
    with checking(
        "smoothed_cross_entropy", fw, passed="equals the library's loss on two batches"
    ) as c:
        for case in smooth_cases():
            logits, labels = _inputs(
                fw, case["logits"], case["labels"].astype(int_dtype)
            )
            with recording(answer_keys) as called:
                result = c.call(fn, logits, labels, case["smoothing"])
            if called:
                raise c.fail(
                    f"your function called the library's {called[0]}",
                    c.hint("loss_answer_key"),
                )
            c.expect(  # only PyTorch's tensors can be changed in place
                np.array_equal(fw.to_numpy(logits), case["logits"]),
                "your function changed the logits it was given",
                c.hint("inputs_changed") if "inputs_changed" in fw.hints else "",
            )
            if isinstance(result, float):
                raise c.fail(
                    f"expected {fw.array_type} of shape (), got a float",
                    c.hint("loss_float"),
                )
            out = c.array(result)
            if out.size != 1:
                raise c.fail(
                    f"expected one number (the mean loss), got shape {out.shape}",
                    c.hint("loss_not_reduced"),
                )
            if out.shape != ():
                raise c.fail(
                    f"expected the mean loss, shape (), got shape {out.shape}",
                    c.hint("loss_keepdim"),
                )
            c.expect(
                out.dtype == np.float32,
                f"the loss has dtype {out.dtype}, expected float32",
                c.hint(dtype_hint_key(fw, out.dtype)),
            )
            # The library's loss; tests/labs/test_lab05.py shows it equals smoothed_ce.
            expected = library(case["logits"], case["labels"], case["smoothing"])
            c.close(
                out,
                expected,
                what="the loss",
                rtol=1e-4,
                atol=1e-5,
                hint="the mean over the batch of -sum(target * log_softmax(logits)) over "
                "the classes, with target = (1 - s) * one_hot + s / C",
                mistakes=[
                    (
                        c.hint(key),
                        smoothed_ce(
                            case["logits"], case["labels"], case["smoothing"], m
                        ),
                    )
                    for m, key in _SMOOTH_MISTAKES.items()
                ],
            )
