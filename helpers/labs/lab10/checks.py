"""Lab 10 self-checks shared by both frameworks, written once on numpy answers.

Exercises: per-channel symmetric int8 quantization (``quantize_int8``), its inverse
(``dequantize_int8``) and integrated gradients (``integrated_gradients``); exercise 3 is in
:mod:`~helpers.labs.lab10.affine`, exercise 5 (fake quantization) in
:mod:`~helpers.labs.lab10.ste`. The answers come from float64 numpy references with a switch per
known mistake (:func:`quantize_reference`, :func:`ig_reference`); ``tests/labs/test_lab10.py``
asserts that the quantization reference equals PyTorch's ``torch.quantize_per_channel`` and that
the IG reference is complete.

The adapters (``torch.py``, ``jax.py``) run the student's code on these cases (in their
framework's weight layout) and hand the results over as numpy arrays.
"""

from __future__ import annotations

import numpy as np

from helpers.labs.kit import Checker, Hints

__all__ = [
    "HINTS",
    "IG_CASES",
    "compare_dequantize",
    "compare_ig",
    "compare_quantize",
    "ig_reference",
    "ig_score",
    "pair",
    "quantize_cases",
    "quantize_reference",
    "rounded_otherwise",
    "rounding_ties",
]

HINTS = Hints(
    {
        "result_pair": "return the int8 values and the scales as one tuple: return q, scale",
        # "not_int8" is worded per framework, in the adapters.
        "swapped_pair": "the first element is float and the second int8: return the pair "
        "in the order the exercise asks, q first: return q, scale",
        "scale_float32": "keep the scale in float32, the dtype of the weights: a float64 "
        "scale doubles its storage and promotes q * scale to float64; a float16 or bfloat16 "
        "one rounds every scale to 3 significant digits",
        "zero_channel": "an all-zero channel has max |w| = 0, so its scale is 0 and w / scale "
        "is 0 / 0 = NaN, which no cast turns into a defined int8: keep the scale positive, "
        "e.g. at least the smallest normal float32 (its q is then 0)",
        "per_tensor": "one scale for the whole tensor wastes the precision of channels with "
        "small weights: take the max of |w| over every axis except `axis`, keeping dims, "
        "so there is one scale per output channel",
        "channel_axis": "the scales belong to the channel axis given as `axis`: reduce over "
        "all the *other* axes (max of |w| with keepdims), not over `axis` itself",
        "overflow": "int8 holds -128..127, and symmetric quantization uses -127..127: "
        "scale = max|w| / 127 and clip the rounded values to [-127, 127] before the cast "
        "(divided by 128, the largest |w| rounds to 128, which int8 cannot hold: a cast "
        "wraps it to -128 or saturates it, depending on the framework)",
        "no_round": "round to the nearest integer before the cast: clip(round(w / scale), "
        "-127, 127), then int8; a cast alone (or floor) cuts the fraction off, an error of up "
        "to a whole step instead of half a step",
        "dequant_divide": "dequantization multiplies: w_hat = q * scale (quantization "
        "divided by the scale)",
        "dequant_scale_missing": "the int8 values are in units of the scale: "
        "w_hat = q (as float32) * scale",
        "missing_baseline": "integrated gradients run from the baseline x' to x: the path "
        "points are x' + alpha * (x - x') and the attributions are (x - x') times the mean "
        "gradient, not x times it",
        "times_difference": "multiply the averaged gradient by (x - x'): IG = (x - x') * "
        "mean of the gradients along the path",
        "sum_not_mean": "the attributions are about `steps` times too large: the integral is "
        "the *mean* of the gradients along the path, so weight each point by 1 / steps "
        "(1 / (2 steps) at the two ends), not by 1",
        "too_few_steps": "the sum of the attributions misses F(x) - F(x') by more than 1 % "
        "(but less than half), the size of error a wrong quadrature leaves: use steps + 1 "
        "points, "
        "alphas = linspace(0, 1, steps + 1) (not steps points, not a fixed handful), each "
        "weighted 1 / steps except the two end points, weighted 1 / (2 steps)",
        "reversed_path": "the attributions sum to minus F(x) - F(x'): the path runs from the "
        "baseline to x, so multiply by (x - x'), not (x' - x)",
        "batch_mean": "the attributions are B (the batch size) times too small: "
        "differentiate f(point).sum(), not .mean(); each example's score depends on its own "
        "row only, so the sum's gradient is each example's own gradient",
        "trapezoid": "the attributions are near the integral but are not the trapezoid rule "
        "with `steps` intervals: alphas = linspace(0, 1, steps + 1), every point weighted "
        "1 / steps except the two ends, 1 / (2 steps) (not the midpoint rule, not another "
        "number of points)",
        "path_gradient": "the attributions come out too small by the factor alpha of each "
        "point: take the gradient with respect to the path point itself, not with respect "
        "to x (through the chain rule, d f(x' + alpha (x - x')) / dx is alpha times it)",
    }
)


def pair(c: Checker, out: object) -> tuple[np.ndarray, np.ndarray]:
    """The student's ``(q, scale)`` as two numpy arrays; fail on anything else."""
    if not isinstance(out, tuple | list) or len(out) != 2:
        got = type(out).__name__
        raise c.fail(f"expected a tuple (q, scale), got {got}", c.hint("result_pair"))
    q = c.array(out[0], f"{c.fw.array_type} for q")
    scale = c.array(out[1], f"{c.fw.array_type} for scale")
    if q.dtype.kind == "f" and scale.dtype == np.int8:
        raise c.fail("q is float and scale is int8", c.hint("swapped_pair"))
    return q, scale


# --- quantization ------------------------------------------------------------------------------
def rounding_ties(ratio: np.ndarray) -> np.ndarray:
    """Where ``round(ratio)`` may go either way: within float error (1e-3) of k + 1/2.

    ``ratio`` is what the student's ``round()`` sees (``x / scale``, float32 as they compute
    it); the result is a bool array of its shape. A tie may round up or down (banker's rounding,
    or a division through a reciprocal that lands an ulp off), so the checks accept both there.
    """
    return np.abs(np.abs(ratio - np.floor(ratio)) - 0.5) < 1e-3


def rounded_otherwise(q: np.ndarray, ref_q: np.ndarray, tie: np.ndarray) -> bool:
    """True if integer codes ``q`` differ from ``ref_q`` off a tie, or by more than one step."""
    step = q.astype(int) - ref_q.astype(int)
    return bool(np.any((step != 0) & ~tie) or np.any(np.abs(step) > 1))


def quantize_cases(channels_last: bool) -> list[tuple[np.ndarray, int]]:
    """(weight float32, channel axis) pairs in PyTorch's layout or, ``channels_last``, Flax's.

    Channels differ in range by orders of magnitude, so per-tensor scales round the small ones
    to zero; some weights sit exactly at a channel's maximum (where /128 overflows). The third
    weight has its channels on the other end (axis 1 in PyTorch's layout, 0 in Flax's), so
    code that ignores ``axis`` fails, and one all-zero channel (a pruned filter).
    """
    rng = np.random.default_rng(10)
    conv = (
        rng.normal(size=(6, 3, 3, 3))
        * np.array([1e-3, 0.01, 0.1, 1, 3, 10])[:, None, None, None]
    )
    linear = rng.normal(size=(5, 7)) * np.array([0.02, 0.5, 1, 4, 0.05])[:, None]
    pruned = rng.normal(size=(7, 4)) * np.array(
        [0.3, 0.0, 2.0, 0.05]
    )  # channels: axis 1
    cases = [(conv, 0), (linear, 0), (pruned, 1)]
    if channels_last:
        # Flax: (kh, kw, in, out) and (in, out), channels last; the third one's first.
        flip = [(np.moveaxis(w, a, -1 if a == 0 else 0), a) for w, a in cases]
        cases = [(w, w.ndim - 1 if a == 0 else 0) for w, a in flip]
    return [(np.ascontiguousarray(w, np.float32), a) for w, a in cases]


def quantize_reference(
    w: np.ndarray,
    axis: int,
    *,
    per_tensor: bool = False,
    wrong_axis: bool = False,
    levels: float = 127.0,
    clip: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(q int8, scale float32 with 1 on every non-channel axis); switches compute mistakes."""
    w = np.asarray(w, np.float32)
    axis = axis % w.ndim
    if per_tensor:
        scale = np.abs(w).max(keepdims=True).reshape((1,) * w.ndim)
    elif wrong_axis:
        scale = np.abs(w).max(axis=axis, keepdims=True)
    else:
        others = tuple(d for d in range(w.ndim) if d != axis)
        scale = np.abs(w).max(axis=others, keepdims=True)
    scale = np.maximum(scale / np.float32(levels), np.finfo(np.float32).tiny)
    r = np.round(w / scale)
    if clip:
        r = np.clip(r, -127, 127)
    q = r.astype(np.int64).astype(np.int8)  # wraps around beyond 127, like a cast does
    return q, scale.astype(np.float32)


def compare_quantize(
    c: Checker, q: np.ndarray, scale: np.ndarray, w: np.ndarray, axis: int
) -> None:
    """Fail unless ``(q, scale)`` is the per-channel symmetric int8 quantization of ``w``."""
    if q.dtype != np.int8:
        raise c.fail(f"q has dtype {q.dtype}, expected int8", c.hint("not_int8"))
    c.shape(q, w.shape)
    ref_q, ref_scale = quantize_reference(w, axis)
    wrong = [
        ("per_tensor", quantize_reference(w, axis, per_tensor=True)),
        ("channel_axis", quantize_reference(w, axis, wrong_axis=True)),
        ("overflow", quantize_reference(w, axis, levels=128.0, clip=False)),
        ("overflow", quantize_reference(w, axis, levels=128.0)),
    ]
    scale_dtype = scale.dtype
    scale = np.asarray(scale, np.float64)
    try:
        got = np.broadcast_to(scale, w.shape)
    except ValueError:
        got = None
    for key, (wq, ws) in wrong:
        if got is not None and np.allclose(
            got, np.broadcast_to(ws, w.shape), rtol=1e-5
        ):
            if np.abs(q.astype(int) - wq.astype(int)).max() <= 1:
                raise c.fail(
                    "the scales or values are not per-channel int8", c.hint(key)
                )
    if np.any(q == -128):
        raise c.fail("q holds -128: a value overflowed int8", c.hint("overflow"))
    if scale_dtype != np.float32:
        raise c.fail(
            f"scale has dtype {scale_dtype}, expected float32", c.hint("scale_float32")
        )
    if scale.shape != ref_scale.shape:
        raise c.fail(
            f"scale has shape {scale.shape}, expected {ref_scale.shape}",
            "scale = max |w| over the non-channel axes with keepdims, / 127: the channel "
            "count on `axis`, 1 on every other axis, so that q * scale broadcasts",
        )
    dead = np.all(w == 0, axis=tuple(d for d in range(w.ndim) if d != axis % w.ndim))
    dead = dead.reshape(
        ref_scale.shape
    )  # all-zero channels: any positive scale will do
    if not np.all(np.isfinite(scale[dead]) & (scale[dead] > 0)):
        raise c.fail(
            "the scale of an all-zero channel is not positive", c.hint("zero_channel")
        )
    c.close(
        np.where(dead, ref_scale, scale),
        ref_scale,
        what="scale",
        rtol=1e-5,
        atol=0,
        hint="scale = max |w| over the non-channel axes (keepdims) / 127, so scale has "
        "the channel axis's length there and 1 on every other axis",
    )
    ratio = w.astype(np.float32) / ref_scale  # what round() sees
    tie = rounding_ties(ratio)
    if rounded_otherwise(q, ref_q, tie):
        cut = [np.clip(np.trunc(ratio), -127, 127), np.clip(np.floor(ratio), -127, 127)]
        # (JAX may divide through a reciprocal: a value an ulp below an integer cuts lower.)
        if any(np.mean(q.astype(int) == r.astype(int)) > 0.9 for r in cut):
            raise c.fail("q is w / scale with its fraction cut off", c.hint("no_round"))
        c.close(
            np.where(tie, ref_q, q),
            ref_q,
            what="q",
            rtol=0,
            atol=0,
            hint="q = clip(round(w / scale), -127, 127)",
        )


def compare_dequantize(
    c: Checker, got: np.ndarray, q: np.ndarray, scale: np.ndarray
) -> None:
    """Fail unless ``got`` equals ``q * scale`` in float32."""
    expected = q.astype(np.float64) * scale
    with np.errstate(divide="ignore", invalid="ignore"):
        divided = q.astype(np.float64) / scale
    if got.dtype != np.float32:
        raise c.fail(
            f"the result has dtype {got.dtype}, expected float32",
            "convert q to float32 before multiplying: q.astype(float32) * scale",
        )
    c.close(
        got,
        expected,
        what="w_hat",
        rtol=1e-6,
        atol=0,
        hint="w_hat = q * scale, broadcasting scale over the non-channel axes",
        mistakes=[
            (c.hint("dequant_divide"), divided),
            (c.hint("dequant_scale_missing"), q.astype(np.float64)),
        ],
    )


# --- integrated gradients ----------------------------------------------------------------------
# F(x) = sum_j v_j tanh(x @ W)_j per example: smooth, curved enough that a few steps miss 1 %.
_rng = np.random.default_rng(1)
IG_W = _rng.normal(size=(5, 4)) * 1.5
IG_V = _rng.normal(size=4)
IG_CASES = [
    dict(x=_rng.normal(size=(3, 5)), baseline=np.full((3, 5), 0.4), steps=64),
    dict(x=_rng.normal(size=(2, 5)) * 1.5, baseline=np.zeros((2, 5)) - 0.3, steps=128),
]


# The largest completeness error blamed on the quadrature (the too_few_steps hint).
QUADRATURE_ERROR = 0.5


def ig_score(x: np.ndarray) -> np.ndarray:
    """F(x) per example, (B, 5) -> (B,)."""
    return np.tanh(np.asarray(x, np.float64) @ IG_W) @ IG_V


def _ig_grad(x: np.ndarray) -> np.ndarray:
    return ((1 - np.tanh(x @ IG_W) ** 2) * IG_V) @ IG_W.T  # (B, 5)


def ig_reference(
    x: np.ndarray,
    baseline: np.ndarray,
    steps: int,
    *,
    from_zero: bool = False,
    no_difference: bool = False,
    alpha_factor: bool = False,
) -> np.ndarray:
    """IG of :func:`ig_score` (trapezoid rule); switches compute known mistakes."""
    x = np.asarray(x, np.float64)
    start = np.zeros_like(x) if from_zero else np.asarray(baseline, np.float64)
    alphas = np.linspace(0, 1, steps + 1)
    weights = np.full(steps + 1, 1.0 / steps)
    weights[[0, -1]] /= 2
    if alpha_factor:  # the gradient taken with respect to x, through the path point
        weights = weights * alphas
    total = sum(
        w * _ig_grad(start + a * (x - start))
        for a, w in zip(alphas, weights, strict=True)
    )
    return total if no_difference else (x - start) * total


def compare_ig(c: Checker, got: np.ndarray, case: dict) -> None:
    """Fail unless ``got`` are the attributions of the case, complete to 1 %."""
    x, baseline, steps = case["x"], case["baseline"], case["steps"]
    c.shape(got, x.shape, "return one attribution per input entry: the shape of x")
    if not np.all(np.isfinite(got)):
        raise c.fail("the attributions contain NaN or inf")
    gap = ig_score(x) - ig_score(baseline)  # (B,)
    error = np.abs(got.sum(axis=1) - gap) / np.abs(gap)  # (B,)
    mistakes = [
        (c.hint("missing_baseline"), ig_reference(x, baseline, steps, from_zero=True)),
        (
            c.hint("missing_baseline"),
            x * ig_reference(x, baseline, steps, no_difference=True),
        ),
        (
            c.hint("times_difference"),
            ig_reference(x, baseline, steps, no_difference=True),
        ),
        (c.hint("path_gradient"), ig_reference(x, baseline, steps, alpha_factor=True)),
        (c.hint("reversed_path"), -ig_reference(x, baseline, steps)),
        (c.hint("batch_mean"), ig_reference(x, baseline, steps) / len(x)),
    ]
    for hint, wrong in mistakes:
        if np.allclose(got, wrong, rtol=1e-3, atol=1e-5):
            raise c.fail("the attributions follow a known mistake", hint)
    ratio = got.sum(axis=1) / gap  # (B,): 1 when complete
    if np.all((ratio > 0.9 * steps) & (ratio < 1.1 * (steps + 1))):
        raise c.fail(
            f"the attributions sum to about {np.median(ratio):.0f} times F(x) - F(x')",
            c.hint("sum_not_mean"),
        )
    if np.all(np.abs(ratio + 1) < 0.05):
        raise c.fail("the attributions sum to -(F(x) - F(x'))", c.hint("reversed_path"))
    formula = "IG_i = (x_i - x'_i) * mean over alpha of dF/dx_i at x' + alpha (x - x')"
    if error.max() > 0.01:
        # A quadrature mistake (too few points, unhalved ends) misses by a few per cent (two
        # steps: 16-44 % on these cases); a larger miss is some other error in the formula.
        hint = c.hint("too_few_steps") if error.max() < QUADRATURE_ERROR else formula
        raise c.fail(
            f"sum of attributions misses F(x) - F(x') by {error.max():.1%} (more than 1 %)",
            hint,
        )
    # Compared with the integral itself (2,048 steps), to 1 %: a larger miss is no quadrature.
    c.close(
        got,
        ig_reference(x, baseline, 2048),
        what="IG",
        rtol=1e-2,
        atol=1e-3,
        hint=formula,
    )
    # and with the trapezoid rule of `steps` intervals, to within float32 precision
    trapezoid = ig_reference(x, baseline, steps)
    c.close(got, trapezoid, what="IG", rtol=1e-5, atol=2e-6, hint=c.hint("trapezoid"))
