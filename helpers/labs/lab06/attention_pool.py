"""Lab 6, exercise 2: masked attention pooling (a learned query, a softmax over real tokens).

``attention_pool(x (B, T, D), mask (B, T) bool, query (D,))`` scores each token,
``s[b, t] = x[b, t] . query`` (unscaled, as in Yang et al.'s hierarchical attention networks),
takes the softmax over the real tokens of each row only and returns the weighted sum of
the real tokens, ``(B, D)``. The cases, the float64 numpy answer (:func:`pool_reference`, with
a switch per known mistake), its gradients (:func:`pool_grads`) and the check are here; the
hints are :data:`helpers.labs.lab06.mistakes.HINTS`, worded per framework by the adapters
(``torch.py``, ``jax.py``), which also say how to differentiate the student's function, how
to see a library's attention called (refused: with a length-1 query it computes this), and,
for JAX, run the function under ``jax.jit`` too. ``tests/labs/test_lab06.py`` asserts that
the reference equals ``F.scaled_dot_product_attention`` with a scale of 1, that a zero
query gives the chapter's ``H.text.masked_mean``, and that every mistake moves some case.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, CheckFailed, Framework, Watch, checking

__all__ = ["POOL_MISTAKES", "check_attention_pool", "pool_cases", "pool_grads"]
__all__ += ["pool_reference"]

# Each known mistake whose whole answer is known: (the key of its hint, its name below).
POOL_MISTAKES = [
    ("pool_polarity", "inverted"),
    ("pool_mask_ignored", "ignored"),
    ("pool_zero_fill", "zero_fill"),
    ("pool_after_softmax", "after_softmax"),
    ("pool_mask_added", "added_01"),
    ("pool_mask_added", "added_pm1"),
    ("pool_axis", "axis_batch"),
    ("pool_dot", "per_feature"),
    ("pool_query_ignored", "mean"),
    ("pool_scale", "sqrt_d"),
    ("pool_scale", "by_t"),
    ("pool_scale", "by_d"),
    ("pool_polarity", "mean_of_padding"),
    # from the student pass (each got only the formula's hint before)
    ("pool_sum", "mean_not_sum"),
    ("pool_zero_fill", "zeroed_x"),
    # from the second student pass
    ("pool_sum", "by_length"),
]
# What a result with NaN or inf means in each case (cases 1 and 2 overflow float32's exp).
_NAN_HINTS = ("pool_nan", "pool_exp_masked", "pool_no_max", "pool_nan")


def pool_cases() -> list[dict[str, Any]]:
    """float32 ``x (B, T, D)`` with non-zero padding, bool ``mask (B, T)``, float32 ``query``.

    0. moderate scores and padding (lengths 3, 1 and 5 of T = 5);
    1. padded tokens whose scores are about +150: exp of them overflows float32, and a
       softmax over all positions leaves the real tokens 0 (lengths 2, 6, 4, 1);
    2. real scores in the hundreds (two tokens per row at about +250 and +249), where exp
       without the max subtracted overflows, and scores clipped to a range weigh both alike;
    3. a query of zeros: every real token weighs the same, the masked mean, and the padding
       holds values of 1000.
    B, T and D differ within each case, so returning the (B, T) weights shows as a shape.
    """
    rng = np.random.default_rng(62)

    def make(lengths, t, d, query, pad):
        b = len(lengths)
        mask = np.arange(t)[None, :] < np.array(lengths)[:, None]
        x = rng.normal(size=(b, t, d))
        x = np.where(mask[..., None], x, pad(b, t, d, query))
        return dict(x=x.astype(np.float32), mask=mask, query=query.astype(np.float32))

    def aligned(score):  # padding whose score with the query is about `score`
        return lambda b, t, d, q: score * q / (q @ q) + rng.normal(size=(b, t, d))

    q0, q1 = rng.normal(size=4), rng.normal(size=3)
    cases = [
        make([3, 1, 5], 5, 4, q0, lambda b, t, d, q: rng.normal(size=(b, t, d)) + 1.5),
        make([2, 6, 4, 1], 6, 3, q1, aligned(150.0)),
        make([5, 3], 7, 5, 4.0 * rng.normal(size=5), aligned(-40.0)),
        make([4, 2], 4, 2, np.zeros(2), lambda b, t, d, q: np.full((b, t, d), 1e3)),
    ]
    x, q = cases[2]["x"], cases[2]["query"].astype(np.float64)
    for t, score in ((0, 250.0), (1, 249.0)):  # scores about +250 and +249
        x[:, t] = (score * q / (q @ q) + x[:, t]).astype(np.float32)
    return cases


def _softmax(s: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis``; NaN where every entry is -inf (nothing to normalise)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        top = np.max(s, axis=axis, keepdims=True)
        e = np.exp(s - top)
        return e / e.sum(axis=axis, keepdims=True)


def pool_reference(
    x: np.ndarray, mask: np.ndarray, query: np.ndarray, mistake: str = ""
) -> np.ndarray:
    """float64 ``(B, D)``: the softmax over each row's real tokens of ``x . query``, the
    weighted sum of the real tokens; ``mistake`` computes a known wrong answer (NaN where it
    has nothing to normalise)."""
    x, q = np.asarray(x, np.float64), np.asarray(query, np.float64)
    m = np.asarray(mask, bool)
    if mistake == "inverted":
        m = ~m
    if mistake in ("mean", "mean_of_padding"):  # the query ignored: the masked mean
        w = (~m if mistake == "mean_of_padding" else m)[..., None].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (x * w).sum(1) / w.sum(1)
    if mistake == "per_feature":  # x * query, no sum over D: one softmax per feature
        e = np.where(m[..., None], x * q, -np.inf)  # (B, T, D)
        return (_softmax(e, axis=1) * x).sum(1)
    if mistake == "zeroed_x":  # x * mask, then a softmax over all T: padded scores 0
        x = x * m[..., None]
        m = np.ones_like(m)
    s = x @ q  # (B, T)
    s = {
        "sqrt_d": s / np.sqrt(x.shape[-1]),
        "by_t": s / x.shape[1],
        "by_d": s / x.shape[-1],
    }.get(mistake, s)
    if mistake in ("ignored", "after_softmax"):
        p = _softmax(s)
        if mistake == "after_softmax":  # masked after the softmax, not renormalised
            p = p * m
    elif mistake == "zero_fill":
        p = _softmax(np.where(m, s, 0.0))
    elif mistake == "added_01":  # s + mask: real +1, padding +0
        p = _softmax(s + m)
    elif mistake == "added_pm1":  # s + (2 * mask - 1): real +1, padding -1
        p = _softmax(s + 2.0 * m - 1.0)
    elif mistake == "axis_batch":
        p = _softmax(np.where(m, s, -np.inf), axis=0)
    else:
        p = _softmax(np.where(m, s, -np.inf))  # (B, T), 0 on padding
    if mistake == "mean_not_sum":  # the weighted tokens averaged over T: / T once more
        return np.einsum("bt,btd->bd", p, x) / x.shape[1]
    if mistake == "by_length":  # divided by each row's length, as the masked mean is
        return np.einsum("bt,btd->bd", p, x) / m.sum(1, keepdims=True)
    return np.einsum("bt,btd->bd", p, x)


def pool_grads(
    x: np.ndarray, mask: np.ndarray, query: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """float64 gradients of ``sum(w * pool(x, mask, query))`` with respect to x and query.

    With ``p`` the weights and ``out`` the pooled row, d/ds_t = p_t (w . x_t - w . out), so
    dx_t = p_t w + d/ds_t * query and dquery = sum_t d/ds_t x_t: 0 at every padded t.
    """
    x, q, w = (np.asarray(a, np.float64) for a in (x, query, w))
    p = _softmax(np.where(mask, x @ q, -np.inf))  # (B, T)
    out = np.einsum("bt,btd->bd", p, x)  # (B, D)
    ds = p * (x @ w[:, :, None])[..., 0] - p * (out * w).sum(-1, keepdims=True)
    dx = p[..., None] * w[:, None, :] + ds[..., None] * q
    return dx, np.einsum("bt,btd->d", ds, x)


# --- the check -----------------------------------------------------------------------------------
def _sizes(case: dict[str, Any]) -> str:
    b, t, d = case["x"].shape
    return f"B = {b}, T = {t}, D = {d}, lengths {case['mask'].sum(1).tolist()}"


def _result(c: Checker, value: Any, case: dict[str, Any], what: str) -> np.ndarray:
    """The student's result as numpy, or a failure naming a tuple, list, weights or shape."""
    b, t, d = case["x"].shape
    if isinstance(value, tuple):
        raise c.fail(
            f"expected {c.fw.array_type}, the pooled (B, D) alone, got a tuple of "
            f"{len(value)}",
            c.hint("pool_tuple"),
        )
    if isinstance(value, list):
        raise c.fail(
            f"expected {c.fw.array_type}, got a Python list", c.hint("list_result")
        )
    arr = c.array(value)
    if arr.shape in ((b, t), (b, t, 1)):
        raise c.fail(
            f"{what} has shape {arr.shape}, the shape of the weights; expected (B, D) = "
            f"{(b, d)}",
            c.hint("pool_weights"),
        )
    if arr.shape != (b, d):
        raise c.fail(
            f"{what} has shape {arr.shape}, expected (B, D) = {(b, d)}",
            c.hint("pool_shape"),
        )
    if arr.dtype != np.float32 and (arr.dtype.kind != "f" or arr.dtype.itemsize < 4):
        # an integer, bool, half (float16, bfloat16) or other result
        raise c.fail(
            f"{what} has dtype {arr.dtype}, expected float32", c.hint("pool_dtype")
        )
    return arr


def _match(values: np.ndarray, wrong: np.ndarray, right: np.ndarray) -> bool:
    """``values`` equal a mistake's answer where that answer is defined, and the mistake
    differs from the right answer there (NaN rows of a mistake match anything)."""
    ok = np.isfinite(wrong)
    if not ok.any() or np.allclose(wrong[ok], right[ok], rtol=1e-3, atol=1e-3):
        return False
    return bool(np.allclose(values[ok], wrong[ok], rtol=1e-3, atol=1e-3))


def _values(
    c: Checker, arr: np.ndarray, case: dict[str, Any], k: int, what: str
) -> None:
    x, mask, query = case["x"], case["mask"], case["query"]
    right = pool_reference(x, mask, query)
    values = np.asarray(arr, np.float64)
    if np.allclose(values, right, rtol=1e-4, atol=1e-5):
        c.dtype(arr, "float32", c.hint("pool_dtype"))
        return
    if arr.dtype != np.float32 and np.allclose(values, right, rtol=1e-2, atol=1e-2):
        raise c.fail(
            f"{what} has dtype {arr.dtype}, expected float32", c.hint("pool_dtype")
        )
    if k == 1 and np.any(np.all(values == 0, axis=1) & np.any(right != 0, axis=1)):
        # a row of exact zeros where the padding scores +150: the real tokens' exp (or
        # weights) underflowed before a mask and a renormalisation
        raise c.fail(_worst(values, right, what), c.hint("pool_exp_masked"))
    for key, name in POOL_MISTAKES:
        if _match(values, pool_reference(x, mask, query, name), right):
            raise c.fail(_worst(values, right, what), c.hint(key))
    if not np.all(np.isfinite(values)):
        raise c.fail(f"{what} contains NaN or inf", c.hint(_NAN_HINTS[k]))
    if np.allclose(values, right, rtol=1e-2, atol=1e-2):  # right to 2-3 digits only
        raise c.fail(_worst(values, right, what), c.hint("pool_precision"))
    raise c.fail(_worst(values, right, what), c.hint("pool_formula"))


def _worst(values: np.ndarray, right: np.ndarray, what: str) -> str:
    i = np.unravel_index(np.argmax(np.abs(values - right)), right.shape)
    return f"{what} is {values[i]:.6g} at index {tuple(map(int, i))}, expected {right[i]:.6g}"


def _run(c: Checker, fn: Callable, case: dict[str, Any], watch: Watch | None) -> Any:
    """Call ``fn`` on fresh arrays of ``case``; a library attention or a write into an input
    fails."""
    arrays = (case["x"], case["mask"], case["query"])
    given = [c.fw.from_numpy(a.copy()) for a in arrays]
    with watch() if watch is not None else nullcontext([]) as called:
        out = c.call(fn, *given)
    if called:
        raise c.fail(f"your function called {called[0]}", c.hint("pool_answer_key"))
    for value, original in zip(given, arrays, strict=True):
        if not np.array_equal(c.fw.to_numpy(value), original):
            raise c.fail("an input changed during the call", c.hint("in_place"))
    return out


def _padded_further(case: dict[str, Any]) -> dict[str, Any]:
    """``case`` with 3 more padded positions whose scores are about 10^4."""
    x, mask, q = case["x"], case["mask"], case["query"].astype(np.float64)
    b, _, d = x.shape
    junk = np.broadcast_to(1e4 * q / (q @ q), (b, 3, d)) + np.arange(3.0)[:, None]
    return dict(
        x=np.concatenate([x, junk.astype(np.float32)], axis=1),
        mask=np.concatenate([mask, np.zeros((b, 3), bool)], axis=1),
        query=case["query"],
    )


def _gradients(c: Checker, grad: Callable, fn: Callable, case: dict[str, Any]) -> None:
    x, mask, query = case["x"], case["mask"], case["query"]
    w = np.random.default_rng(0).normal(size=(x.shape[0], x.shape[2]))
    dx, dq = pool_grads(x, mask, query, w)
    what = f"the case {_sizes(case)}: the gradient"
    try:
        got = grad(fn, *(c.fw.from_numpy(a) for a in (x, mask, query, w)))
    except CheckFailed:
        raise
    except Exception as e:
        raise c.fail(
            f"differentiating your function raised {type(e).__name__}: "
            f"{(str(e).strip().splitlines() or [''])[0]}",
            c.hint("pool_grad"),
        ) from None
    for name, value, right in (("x", got[0], dx), ("query", got[1], dq)):
        if value is None:
            raise c.fail(f"{what} does not reach {name}", c.hint("pool_grad"))
        value = np.asarray(value, np.float64)
        if not np.all(np.isfinite(value)):
            raise c.fail(f"{what} of {name} has NaN or inf", c.hint("pool_grad_nan"))
        if name == "x" and np.abs(value[~mask]).max(initial=0) > 1e-6:
            b, t = np.argwhere(~mask)[np.argmax(np.abs(value[~mask]).max(-1))]
            raise c.fail(
                f"{what} reaches x at padded position (b, t) = ({b}, {t})",
                c.hint("pool_grad"),
            )
        if not np.allclose(value, right, rtol=1e-3, atol=1e-4):
            raise c.fail(_worst(value, right, f"{what} of {name}"), c.hint("pool_grad"))


def check_attention_pool(
    fn: Callable,
    *,
    fw: Framework,
    grad: Callable,
    watch: Watch | None = None,
    jit: Callable[[Callable], Callable] | None = None,
) -> None:
    """``fn(x (B, T, D) float32, mask (B, T) bool, query (D,) float32)`` -> float32 ``(B, D)``.

    The four cases (:func:`pool_cases`) against the float64 reference, then (if ``jit`` is
    given, JAX) each again through ``jit(fn)``; case 0 padded with 3 more junk positions must
    give the same answer; the gradients ``grad(fn, x, mask, query, w)`` of ``sum(w * out)``
    on cases 0 and 1 must equal :func:`pool_grads` (none at padded positions, none NaN).
    ``watch`` sees a library's attention, which fails. Raises only
    :class:`~helpers.labs.kit.CheckFailed`, whatever ``fn`` returns.
    """
    with checking(
        "attention_pool",
        fw,
        # the pass line fits the site's 96-character output box in both frameworks
        passed="softmax over real tokens, 4 cases, padding, gradients"
        + (", jitted" if jit is not None else ""),
    ) as c:
        if not callable(fn):
            c.call(fn)  # fails: "expected a function"
        runs = [("", fn)] + ([("under jax.jit, ", jit(fn))] if jit is not None else [])
        cases = pool_cases()
        for label, run in runs:
            for k, case in enumerate(cases):
                what = f"{label}the case {_sizes(case)}: the result"
                try:
                    out = _run(c, run, case, watch)
                except CheckFailed as e:
                    if label and e.problem.startswith("your code raised"):
                        raise c.fail(f"under jax.jit: {e.problem}", e.hint) from None
                    raise
                _values(c, _result(c, out, case, what), case, k, what)
        longer = _padded_further(cases[0])
        what = "case 0 padded with 3 more positions (scores about 10^4): the result"
        arr = _result(c, _run(c, fn, longer, watch), longer, what)
        right = pool_reference(longer["x"], longer["mask"], longer["query"])
        values = np.asarray(arr, np.float64)
        if not np.allclose(values, right, rtol=1e-4, atol=1e-5):
            hint = "pool_small_fill" if np.all(np.isfinite(values)) else "pool_nan"
            raise c.fail(_worst(values, right, what), c.hint(hint))
        for case in cases[:2]:
            _gradients(c, grad, fn, case)
