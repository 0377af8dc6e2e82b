"""Lab 2, exercise 4: the backward pass of masked attention, ``(dq, dk, dv)``, without autodiff.

Exercise 3's attention, ``out = P v`` with ``P = softmax(q k^T / sqrt(d) + M)``; given the
upstream gradient ``d_out`` the student returns the gradients with respect to ``q``, ``k`` and
``v``. :func:`attention_backward` is the float64 numpy reference, independent of both
frameworks (a test asserts it equals ``torch.autograd`` and ``jax.vjp``), with keywords that
switch on the known mistakes (``_mistakes`` pairs each with its hint);
:func:`check_attention_backward` runs the student's function on :func:`attention_backward_cases`
(a random mask with ``T = S``, where a missing transpose still has the right shape; a causal
padded one with ``T != S`` and ``d != dv``, where it does not; no mask at all), names the
gradient that is wrong, and refuses a function that calls autodiff (the adapters' answer keys).
A result right to 1e-2 only (half precision, a fill like -8) gets a hint of its own.
The hints are :data:`helpers.labs.lab02.checks.HINTS` and the adapters' API-specific ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from helpers.labs.kit import Checker, Framework, Watch, checking
from helpers.labs.lab02._common import (
    _dtype,
    _inputs,
    _parts,
    _untouched,
    call_refusing,
)
from helpers.labs.lab02.attention import _mask_with_both

__all__ = [
    "attention_backward",
    "attention_backward_cases",
    "check_attention_backward",
]

NAMES = ("dq", "dk", "dv")


def attention_backward_cases() -> list[dict[str, np.ndarray]]:
    """``q (B, T, d)``, ``k (B, S, d)``, ``v (B, S, dv)``, ``mask (B, T, S)``, ``d_out (B, T, dv)``.

    First a random mask with ``T = S`` (so ``dZ @ q`` and ``P @ d_out`` have the shapes of
    ``dk`` and ``dv`` and their values name the mistake; every mistake gives numbers there);
    then a causal mask with padding and ``T, S, d, dv`` all different (a transpose or a swapped
    result shows in the shapes; keys past a sequence's length are masked for every query, so
    their ``dk`` and ``dv`` are 0); then no masked position at all. Every query may attend to at
    least one key.
    """
    rng = np.random.default_rng(24)
    lengths = np.array([2, 5])  # the second case's real keys per sequence
    causal = np.tri(3, 5, dtype=bool)[None] & (np.arange(5) < lengths[:, None])[:, None]
    cases = []
    for batch, t, s, d, dv, mask in [
        (3, 5, 5, 4, 3, _mask_with_both(rng, (3, 5, 5))),
        (2, 3, 5, 4, 6, causal),
        (1, 4, 2, 3, 5, np.ones((1, 4, 2), bool)),
    ]:
        cases.append(
            dict(
                q=rng.normal(size=(batch, t, d)),
                k=rng.normal(size=(batch, s, d)),
                v=rng.normal(size=(batch, s, dv)),
                mask=mask,
                d_out=rng.normal(size=(batch, t, dv)),
            )
        )
    return [
        {k: v if v.dtype == bool else v.astype(np.float32) for k, v in case.items()}
        for case in cases
    ]


def _swap(a: np.ndarray) -> np.ndarray:
    return a.swapaxes(-1, -2)


def attention_backward(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray,
    d_out: np.ndarray,
    *,
    scale: float | None = None,
    grad_scale: float | None = None,
    keep: np.ndarray | None = None,
    fill: float = -np.inf,
    axis: int = -1,
    after_softmax: bool = False,
    additive: bool = False,
    ds: str = "right",
    dk_form: str = "right",
    dv_form: str = "right",
    dq_form: str = "right",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dq, dk, dv)`` of ``softmax(q k^T / sqrt(d), masked) v`` for ``d_out``, in float64.

    With no keyword it is the right answer: ``P`` the attention weights, ``dv = P^T d_out``,
    ``dP = d_out v^T``, ``dZ = P * (dP - rowsum(dP * P))``, ``dq = dZ k / sqrt(d)``,
    ``dk = dZ^T q / sqrt(d)``. The keywords switch on mistakes: ``scale`` in the forward pass,
    ``grad_scale`` in dq and dk, ``keep`` instead of the mask, ``fill`` for the forbidden
    scores, ``axis`` of the softmax, the mask applied ``after_softmax`` (weights zeroed) or
    ``additive`` (True as 1); ``ds``, ``dq_form``, ``dk_form``, ``dv_form`` name a
    wrong formula (``_mistakes`` lists them). One that needs ``T = S`` gives NaN otherwise.
    """
    q, k, v, d_out = (np.asarray(a, np.float64) for a in (q, k, v, d_out))
    root = 1 / np.sqrt(q.shape[-1])
    scale = root if scale is None else scale
    grad_scale = root if grad_scale is None else grad_scale
    keep = mask if keep is None else keep
    scores = q @ _swap(k) * scale  # (B, T, S)
    if additive:
        scores = scores + keep
    elif not after_softmax:
        scores = np.where(keep, scores, fill)
    with np.errstate(invalid="ignore"):  # an all -inf slice gives NaN
        P = np.exp(scores - scores.max(axis, keepdims=True))
        P = P / P.sum(axis, keepdims=True)
    if after_softmax:
        P = P * keep
    dP = d_out @ _swap(v)  # (B, T, S)
    rowsum = (dP * P).sum(-1, keepdims=True)  # (B, T, 1)
    dZ = {
        "right": lambda: P * (dP - rowsum),
        "bwd_no_rowsum": lambda: P * dP,
        "bwd_rowsum_queries": lambda: P * (dP - (dP * P).sum(-2, keepdims=True)),
        "bwd_rowsum_matrix": lambda: P * (dP - (dP * P).sum((-2, -1), keepdims=True)),
        "bwd_rowsum_all": lambda: P * (dP - (dP * P).sum()),
        "bwd_rowsum_batch": lambda: P * (dP - (dP * P).sum(0, keepdims=True)),
        "bwd_rowsum_unweighted": lambda: P * (dP - dP.sum(-1, keepdims=True)),
        "bwd_rowsum_mean": lambda: P * (dP - (dP * P).mean(-1, keepdims=True)),
        "bwd_rowsum_p": lambda: P * (dP - P.sum(-1, keepdims=True)),
        "bwd_rowsum_no_p": lambda: P * dP - rowsum,
        "bwd_no_p": lambda: dP - rowsum,
        "bwd_softmax_skipped": lambda: dP,
        "bwd_diagonal": lambda: P * (1 - P) * dP,  # the Jacobian's diagonal only
        "bwd_rowsum_unweighted_mean": lambda: P * (dP - dP.mean(-1, keepdims=True)),
        "bwd_sign": lambda: P * (rowsum - dP),
    }[ds]()
    square = P.shape[-1] == P.shape[-2]
    nan = np.full(k.shape, np.nan)
    dk = {
        "right": lambda: _swap(dZ) @ q,
        "bwd_dk_transpose": lambda: dZ @ q if square else nan,
        "bwd_other_factor": lambda: _swap(dZ) @ k if square else nan,
    }[dk_form]() * grad_scale
    dv = {
        "right": lambda: _swap(P) @ d_out,
        "bwd_dv_transpose": lambda: P @ d_out if square else np.full(v.shape, np.nan),
    }[dv_form]()
    dq = {
        "right": lambda: dZ @ k,
        "bwd_dq_transpose": lambda: (
            _swap(dZ) @ k if square else np.full(q.shape, np.nan)
        ),
        "bwd_other_factor": lambda: dZ @ q if square else np.full(q.shape, np.nan),
    }[dq_form]() * grad_scale
    return dq, dk, dv


def _mistakes(case: dict[str, np.ndarray]) -> list[tuple[str, tuple[np.ndarray, ...]]]:
    """(hint key, the ``(dq, dk, dv)`` that mistake gives) for every mistake ``case`` shows."""
    batch, t, d = case["q"].shape
    s, dv = case["v"].shape[-2:]
    square = case["mask"].shape[-1] == case["mask"].shape[-2]
    rows = [
        ("bwd_scale", dict(grad_scale=1.0)),
        ("bwd_scale", dict(grad_scale=1 / d)),
        ("bwd_scale", dict(grad_scale=np.sqrt(d))),
        ("bwd_scale", dict(grad_scale=1 / np.sqrt(dv))),
        ("bwd_sign", dict(ds="bwd_sign")),
        ("bwd_no_rowsum", dict(ds="bwd_no_rowsum")),
        ("bwd_rowsum_axis", dict(ds="bwd_rowsum_queries")),
        ("bwd_rowsum_axis", dict(ds="bwd_rowsum_matrix")),
        ("bwd_rowsum_axis", dict(ds="bwd_rowsum_all")),
        ("bwd_rowsum_axis", dict(ds="bwd_rowsum_batch")),
        ("bwd_rowsum_weights", dict(ds="bwd_rowsum_unweighted")),
        ("bwd_rowsum_weights", dict(ds="bwd_rowsum_mean")),
        ("bwd_rowsum_weights", dict(ds="bwd_rowsum_p")),
        ("bwd_rowsum_no_p", dict(ds="bwd_rowsum_no_p")),
        ("bwd_rowsum_no_p", dict(ds="bwd_no_p")),
        ("bwd_softmax_skipped", dict(ds="bwd_softmax_skipped")),
        ("bwd_no_rowsum", dict(ds="bwd_diagonal")),
        ("bwd_rowsum_weights", dict(ds="bwd_rowsum_unweighted_mean")),
        ("scale_multiplied", dict(scale=np.sqrt(d), grad_scale=np.sqrt(d))),
        ("scale_missing", dict(scale=1.0, grad_scale=1.0)),
        ("scale_missing", dict(scale=1.0)),
        ("scale_d", dict(scale=1 / d, grad_scale=1 / d)),
        ("scale_dv", dict(scale=1 / np.sqrt(dv), grad_scale=1 / np.sqrt(dv))),
        ("scale_length", dict(scale=1 / np.sqrt(t), grad_scale=1 / np.sqrt(t))),
        ("softmax_axis", dict(axis=-2)),
        ("softmax_axis", dict(axis=0)),
    ]
    if square:
        rows += [
            ("bwd_dq_transpose", dict(dq_form="bwd_dq_transpose")),
            ("bwd_dk_transpose", dict(dk_form="bwd_dk_transpose")),
            ("bwd_dv_transpose", dict(dv_form="bwd_dv_transpose")),
            ("bwd_other_factor", dict(dk_form="bwd_other_factor")),
            ("bwd_other_factor", dict(dq_form="bwd_other_factor")),
        ]
    if not case["mask"].all():
        rows += [
            ("bwd_mask_ignored", dict(keep=np.ones_like(case["mask"]))),
            ("bwd_mask_ignored", dict(fill=0.0)),
            ("mask_polarity", dict(keep=~case["mask"])),
            ("mask_after_softmax", dict(after_softmax=True)),
            ("mask_additive", dict(additive=True)),
        ]
        rows += [("bwd_mask_fill", dict(fill=f)) for f in (-1.0, -5.0, -10.0)]
    causal = np.broadcast_to(np.tri(t, s, dtype=bool), case["mask"].shape)
    if not np.array_equal(causal, case["mask"]) and causal.any(-1).all():
        rows.append(("mask_own_causal", dict(keep=causal)))
    right = attention_backward(**case)
    wrong = [(key, attention_backward(**case, **kw)) for key, kw in rows]
    wrong.append(("bwd_sign", tuple(-g for g in right)))
    wrong.append(("bwd_scale", (*right[:2], right[2] / np.sqrt(d))))
    if batch > 1:
        wrong.append(("bwd_batch_mean", tuple(g / batch for g in right)))
    return wrong


def _mistaken(
    parts: list[np.ndarray], mistakes: list[tuple[str, tuple[np.ndarray, ...]]]
) -> str | None:
    """The key of the first mistake whose three gradients all equal the student's."""
    return next((key for key, wrong in mistakes if _same(parts, wrong)), None)


def _same(parts: list[np.ndarray], wrong: tuple[np.ndarray, ...]) -> bool:
    return all(
        got.shape == w.shape and np.allclose(got, w, rtol=1e-4, atol=1e-5)
        for got, w in zip(parts, wrong, strict=True)
    )


def _case(
    c: Checker, fn: Callable, case: dict[str, np.ndarray], watch_answer_keys: Watch
) -> None:
    expected = attention_backward(**case)
    inputs = _inputs(c.fw, case)
    out = call_refusing(
        c, watch_answer_keys, "attention_backward_answer_key", fn, *inputs.values()
    )
    _untouched(c, inputs, case)
    parts = _parts(c, out, NAMES, c.hint("result_tuple_qkv"))
    shapes = [a.shape for a in expected]
    got_shapes = [p.shape for p in parts]
    if got_shapes != shapes and sorted(got_shapes) == sorted(shapes):
        raise c.fail(
            "the shapes are "
            + ", ".join(f"{n} {s}" for n, s in zip(NAMES, got_shapes, strict=True)),
            c.hint("bwd_order"),
        )
    for name, part, want, of in zip(NAMES, parts, shapes, "qkv", strict=True):
        if part.shape == want:
            continue
        hint = f"{name} has the shape of {of}, {want}: one gradient per entry of {of}"
        if part.shape == want[:-2] + want[-1:] + want[-2:-1] and name != "dq":
            hint = c.hint(f"bwd_{name}_transpose")
        raise c.fail(f"{name} has shape {part.shape}, expected {want}", hint)
    for name, part in zip(NAMES, parts, strict=True):
        _dtype(c, part, name, c.hint("bwd_dtype"))
    if len(set(shapes)) < 3:  # a swap the shapes cannot show: compare the values
        for order in itertools.permutations(range(3)):
            if order != (0, 1, 2) and _same(parts, tuple(expected[i] for i in order)):
                raise c.fail(
                    f"your {', '.join(NAMES)} are the right gradients in another order",
                    c.hint("bwd_order"),
                )
    mistakes = _mistakes(case)
    whole = _mistaken(parts, mistakes)
    if whole is None and all(  # right to 1e-2 only: half precision, or a fill like -8
        np.allclose(p, e, rtol=2e-2, atol=2e-2)
        for p, e in zip(parts, expected, strict=True)
    ):
        whole = "bwd_precision"
    for i, (name, part) in enumerate(zip(NAMES, parts, strict=True)):
        c.close(
            part,
            expected[i],
            what=f"an entry of {name}",
            rtol=1e-4,
            atol=1e-5,
            hint=c.hint(whole)
            if whole
            else "P = softmax(q k^T / sqrt(d)) over the keys, with the scores where mask is "
            "False at -inf, each sequence with its own mask; dv = P^T @ d_out; "
            "dq = dZ @ k / sqrt(d), dk = dZ^T @ q / sqrt(d), with "
            "dZ = P * (dP - rowsum(dP * P)), dP = d_out @ v^T",
            mistakes=[]
            if whole
            else [(c.hint(key), wrong[i]) for key, wrong in mistakes],
        )


def check_attention_backward(
    fn: Callable, fw: Framework, *, watch_answer_keys: Watch
) -> None:
    """``fn(q, k, v, mask, d_out) -> (dq, dk, dv)``, compared with the numpy reference.

    Three cases: a random mask with ``T = S``, a causal padded one with ``T != S``, no mask.
    ``watch_answer_keys()``: watches the framework's autodiff, which ``fn`` must not call.
    """
    with checking(
        "attention_backward",
        fw,
        passed="dq, dk, dv equal the float64 reference on three masks",
    ) as c:
        for case in attention_backward_cases():
            _case(c, fn, case, watch_answer_keys)
