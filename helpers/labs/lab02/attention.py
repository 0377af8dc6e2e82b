"""Lab 2, exercise 3: masked scaled dot-product attention, ``softmax(q k^T / sqrt(d)) v``.

:func:`attention` is the float64 numpy reference, with keywords that switch on the known
mistakes (softmax axis, mask polarity and fill, scale; ``_attention_mistakes`` lists them
with their hints); :func:`check_attention` compares the student's attention with the
framework's own on :func:`attention_cases`: a random mask and a causal one with padding, and
refuses a function that calls it (the adapters' answer keys). The hints are
:data:`helpers.labs.lab02.checks.HINTS`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.labs.kit import Checker, Framework, Watch, checking
from helpers.labs.lab02._common import (
    _inputs,
    _or_precision,
    _untouched,
    call_refusing,
)

__all__ = ["attention", "attention_cases", "check_attention"]


def _mask_with_both(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A random bool mask; every query row and every column, along each axis, mixes both.

    Every row allows a key and forbids one (so the wrong polarity leaves allowed keys, and
    no NaN); no slice along the query or batch axis is all forbidden (so a softmax over the
    wrong axis gives numbers, not NaN, and its hint can be given).
    """
    while True:
        mask = rng.random(shape) < 0.6
        rows = mask.any(-1).all() and (~mask).any(-1).all()
        if rows and mask.any(-2).all() and mask.any(0).all():
            return mask


def attention_cases() -> list[dict[str, np.ndarray]]:
    """``q (B, T, d)``, ``k (B, S, d)``, ``v (B, S, dv)``, ``mask (B, T, S)`` with d != dv.

    The first mask is random (see ``_mask_with_both``); the second is causal with padding:
    sequence b has ``lengths[b] < S`` real keys, so every query has a forbidden key.
    """
    rng = np.random.default_rng(22)
    batch, t, s, d, dv = 3, 4, 6, 6, 3
    first = dict(
        q=rng.normal(size=(batch, t, d)),
        k=rng.normal(size=(batch, s, d)),
        v=rng.normal(size=(batch, s, dv)),
        mask=_mask_with_both(rng, (batch, t, s)),
    )
    batch, t, d, dv = 2, 5, 4, 2
    lengths = np.array([3, 4])
    causal = np.tril(np.ones((t, t), bool))  # query i sees keys 0..i
    padding = np.arange(t)[None, :] < lengths[:, None]  # (B, S): real keys
    second = dict(
        q=rng.normal(size=(batch, t, d)),
        k=rng.normal(size=(batch, t, d)),
        v=rng.normal(size=(batch, t, dv)),
        mask=causal[None] & padding[:, None, :],
    )
    return [
        {k: v if v.dtype == bool else v.astype(np.float32) for k, v in case.items()}
        for case in (first, second)
    ]


def attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray,
    *,
    axis: int = -1,
    scale: float | None = None,
    allowed: bool = True,
    fill: float = -np.inf,
    after_softmax: bool = False,
    additive: bool = False,
) -> np.ndarray:
    """``softmax(q k^T / sqrt(d), masked) v`` in float64; the keywords switch on mistakes.

    ``additive`` adds the bool mask to the scores (True as 1, False as 0) instead of filling.
    """
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    keep = mask if allowed else ~mask
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.swapaxes(-1, -2) * scale  # (B, T, S)
    if additive:
        scores = scores + keep
    elif not after_softmax:
        scores = np.where(keep, scores, fill)
    with np.errstate(
        invalid="ignore"
    ):  # an all -inf slice gives NaN, as in the frameworks
        weights = np.exp(scores - scores.max(axis, keepdims=True))
        weights = weights / weights.sum(axis, keepdims=True)
    if after_softmax:
        weights = weights * keep
    return weights @ v  # (B, T, dv)


def _attention_mistakes(case: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    d, dv = case["q"].shape[-1], case["v"].shape[-1]
    t, s = case["mask"].shape[-2:]
    causal = np.broadcast_to(np.tri(t, s, dtype=bool), case["mask"].shape)
    return [
        ("softmax_axis", attention(**case, axis=-2)),
        ("softmax_axis", attention(**case, axis=0)),
        ("mask_polarity", attention(**case, allowed=False)),
        ("mask_zero_fill", attention(**case, fill=0.0)),
        ("mask_after_softmax", attention(**case, after_softmax=True)),
        ("scale_missing", attention(**case, scale=1.0)),
        ("scale_d", attention(**case, scale=1 / d)),
        ("scale_dv", attention(**case, scale=1 / np.sqrt(dv))),
        ("scale_length", attention(**case, scale=1 / np.sqrt(t))),
        ("scale_multiplied", attention(**case, scale=np.sqrt(d))),
        ("scale_after_softmax", attention(**case, scale=1.0) / np.sqrt(d)),
        ("mask_ignored", attention(**dict(case, mask=np.ones_like(case["mask"])))),
        ("mask_own_causal", attention(**dict(case, mask=causal))),
        ("mask_additive", attention(**case, additive=True)),
    ] + [("mask_fill_finite", attention(**case, fill=f)) for f in (-1.0, -5.0, -10.0)]


def _attention_case(
    c: Checker,
    fn: Callable,
    case: dict[str, np.ndarray],
    library: Callable,
    watch_answer_keys: Watch,
) -> None:
    expected = library(**case)
    inputs = _inputs(c.fw, case)
    out = call_refusing(
        c, watch_answer_keys, "attention_answer_key", fn, *inputs.values()
    )
    _untouched(c, inputs, case)
    arr = c.array(out)
    batch, t, _ = case["q"].shape
    c.shape(
        arr,
        (batch, t, case["v"].shape[-1]),
        "the result is (B, T, d_v): one weighted average of the values per query",
    )
    c.dtype(arr, "float32", "compute in the inputs' dtype, float32")
    c.close(
        arr,
        expected,
        what="an entry of the result",
        rtol=1e-4,
        atol=1e-5,
        hint=_or_precision(
            c,
            arr,
            expected,
            "softmax(q k^T / sqrt(d), forbidden scores at -inf, over the keys) @ v",
        ),
        mistakes=[(c.hint(key), wrong) for key, wrong in _attention_mistakes(case)],
    )


def check_attention(
    fn: Callable, fw: Framework, *, library: Callable, watch_answer_keys: Watch
) -> None:
    """``fn(q, k, v, mask) -> (B, T, dv)`` on a random mask and a causal padded one.

    ``library(q=, k=, v=, mask=)`` gives the expected result as float64 numpy from the
    framework's own attention; ``watch_answer_keys()`` watches that attention, which ``fn``
    must not call.
    """
    with checking(
        "attention", fw, passed="equal to the library's attention on two masks"
    ) as c:
        for case in attention_cases():
            _attention_case(c, fn, case, library, watch_answer_keys)
