"""Lab 10, exercise 5: fake quantization with a straight-through estimator (both frameworks).

``fake_quantize(w, scale)`` returns ``clip(round(w / scale), -127, 127) * scale`` (float32,
``w``'s shape; round half to even, as ``torch.round`` and ``jnp.round`` do), and its gradient
with respect to ``w`` is the upstream gradient where ``w / scale`` lies in the clipping range
[-127, 127] and 0 outside. ``scale`` is a positive float32 array that broadcasts to ``w``: 0-d
(one scale for the tensor) or exercise 1's per-channel shape; the cases hold both.

At exactly ``|w / scale| = 127`` conventions differ (``torch.clamp`` with Python bounds passes
0 there, with tensor bounds 0.5, ``jnp.clip`` 0.5), so the gradient is not compared there.
PyTorch's own ``torch.fake_quantize_per_*_affine`` masks on the *rounded* value instead, i.e.
on ``w / scale`` in (-127.5, 127.5): named as a mistake here with a hint saying so.

The answers are float64 NumPy references with a switch per known mistake
(:func:`fq_reference`); the adapters run the student's code (PyTorch: autograd; JAX: grad,
and jit) and hand the results over as NumPy arrays.
"""

from __future__ import annotations

import numpy as np

from helpers.labs.kit import Checker, Hints

__all__ = [
    "BROADCAST_ERRORS",
    "STE_HINTS",
    "compare_forward",
    "compare_gradient",
    "fq_cases",
    "fq_reference",
    "refuse_library",
]

# Errors of code that takes scale for one number, or reshapes it to one axis (both frameworks).
BROADCAST_ERRORS = {
    "only one element tensors can be converted": "fq_broadcast",
    r"a Tensor with \d+ elements cannot be converted to Scalar": "fq_broadcast",
    "must match the size of tensor b": "fq_broadcast",
    "Only scalar arrays can be converted": "fq_broadcast",
    "can only convert an array of size 1": "fq_broadcast",
    "(?i)incompatible shapes for broadcasting": "fq_broadcast",
    # code written for one layout: a reshape or an index that the other case cannot take
    r"shape '\[[-\d, ]*\]' is invalid for input of size": "fq_shape",
    "invalid index of a 0-dim tensor": "fq_shape",
    "cannot reshape array of shape": "fq_shape",
    "(?i)too many indices": "fq_shape",
}

STE_HINTS = Hints(
    {
        "fq_times_scale": "the result is the integer codes q, not the value they stand for: "
        "return q * scale (float32), what int8 inference computes with",
        "fq_float32": "return float32, the dtype of w: the fake-quantized weights replace w "
        "in the float model, and a float64 (or float16) result changes every later dtype",
        "fq_clip": "values beyond the int8 range were not clipped: q = clamp(round(w / "
        "scale), -127, 127), so |q * scale| is at most 127 * scale",
        "clamp_symmetric": "symmetric int8 uses -127..127, not -128..127 (exercise 1's "
        "convention, so that q = 0 stands for 0.0 and -q is always representable): clamp "
        "to [-127, 127], and let the gradient through only for w / scale in [-127, 127]",
        "fq_round": "round to the nearest integer: floor or trunc (or a cast to int) cuts "
        "the fraction off, an error of up to a whole step instead of half a step",
        "round_ties": "ties (w / scale = k + 1/2) must round half to even, as torch.round "
        "and jnp.round do (0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0): not floor(x + 0.5), "
        "not away from zero",
        "ste_no_mask": "the gradient passes everywhere, also where w / scale lies beyond "
        "[-127, 127]: there the output is clipped and does not move with w, so the "
        "straight-through estimator passes 0 there (multiply by the mask "
        "|w / scale| <= 127)",
        "mask_units": "the mask compares w itself with 127: compare w / scale, the value in "
        "units of the int8 step (|w / scale| <= 127, i.e. |w| <= 127 * scale)",
        "mask_rounding_range": "the gradient passes for 127 < |w / scale| < 127.5, where "
        "round() lands back inside [-127, 127]: that is the rounding range, which "
        "torch.fake_quantize_per_tensor_affine uses, but this exercise asks for the "
        "clipping range: pass the gradient only where |w / scale| <= 127",
        "ste_upstream": "the gradient ignores the upstream gradient: the straight-through "
        "estimator multiplies it by the mask, grad_w = grad_out * mask, not the mask alone",
        "ste_scale": "the gradient is scaled by scale or 1 / scale: fake_quantize(w) is "
        "about w itself (q * scale ~ w), so its straight-through derivative is 1 inside "
        "the range, grad_w = grad_out * mask",
        "fq_own_scale": "use the scale you are given: quantization-aware training keeps "
        "the scales int8 inference will use (exercise 1's, per channel), it does not "
        "recompute one from w at each call",
        "fq_divide": "the scale is the size of one int8 step: q = round(w / scale) "
        "(divide), and the value is q * scale (multiply back)",
        "mask_codes": "the mask is taken on the rounded codes and leaves out q = ±127 "
        "(also what a clamp after the straight-through round does: its edge is then at the "
        "rounded value): a weight with w / scale = 126.8 rounds to 127 and is not clipped, "
        "so it keeps its gradient; mask on w / scale itself, |w / scale| <= 127 (clip w / "
        "scale first, then round)",
        "detach_sign": "the straight-through sum has a sign flipped: x + (y - x).detach() "
        "has the value y; x - (y - x).detach() or x + (x - y).detach() has the value "
        "2x - y: add (q * scale - w_c).detach(), the quantized value minus the clipped w",
        "ste_mixed_terms": "the two x of the straight-through sum x + (y - x).detach() "
        "are different tensors, w in one and the clipped w_c in the other: the value is "
        "then off by w - w_c wherever w is clipped; use w_c in both",
        "fq_clip_units": "the clip is in units of the int8 step: clamp the codes "
        "round(w / scale) to [-127, 127], then multiply by scale; clamping q * scale to "
        "[-127, 127] clips the values at ±127, not at ±127 * scale",
        "fq_shape": "do not assume one shape: the check passes a 2-D weight with one "
        "scale per output channel, a 3-D tensor with a 0-d scale and a second 2-D weight; "
        "write the arithmetic so that scale broadcasts to w as it comes (no reshape to "
        "w's dimensions, no indexing into scale)",
        "mask_abs": "the mask lets gradients through on one side beyond the range: both "
        "ends clip, so the mask is -127 <= w / scale <= 127 (|w / scale| <= 127)",
        "fq_identity": "the result is w itself: quantize it, clamp(round(w / scale), "
        "-127, 127), and return that times scale",
        "fq_broadcast": "scale may hold one number per output channel (exercise 1's shape, "
        "which broadcasts to w): use it as an array in arithmetic with w, as it comes, not "
        "float(scale), .item(), its max or mean, or a reshape to one axis (in the mask "
        "too)",
        "mask_inverted": "the mask is inverted: the gradient passes where w / scale is "
        "inside [-127, 127], and is 0 where the value was clipped",
    }
)

# The rows of w / scale in the two exact cases: ties, both clip edges, beyond both sides.
_PER_TENSOR_RATIOS = [
    -200.0, -128.5, -128.0, -127.75, -127.5, -127.25, -127.0, -126.5,
    -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 126.5,
    127.0, 127.25, 127.5, 127.75, 128.0, 128.5, 300.0, 0.0,
    126.8, -0.7, 5.2, -9.9, 64.4, -64.6, 100.1, -126.9,
]  # fmt: skip
_PER_CHANNEL_RATIOS = [
    [100.5, -90.5, 127.25, -127.75, 150.0, -130.5, 64.25, -70.5],
    [-0.5, 0.5, 127.0, -127.0, 126.5, -200.25, 126.75, -3.75],
    [10.5, -11.5, 127.5, -127.5, 128.5, -300.0, -126.625, 99.875],
]
_PER_CHANNEL_SCALES = [2.0, 0.5, 2.0**-6]  # powers of 2: w / scale is exact in float32


def fq_cases(channels_last: bool) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(w, scale, g)`` float32 triples: the weight, its scale, an upstream gradient.

    1. per-channel power-of-2 scales (2, 0.5, 1/64) on a (3, 8) weight, w / scale on ties
       (k + 1/2), both clip edges, between 127 and 127.5, beyond both sides, and |w| > 127
       inside the range (scale 2), so a mask on |w| fails here first;
    2. one 0-d scale (0.25) for a (2, 4, 4) tensor, with the same kinds of points;
    3. per-channel scales between 0.01 and 0.05 (not powers of 2) on a (5, 6) weight, w /
       scale at least 0.1 from every integer and half-integer.

    In Flax's layout (``channels_last``) the per-channel weights are transposed, the scales
    shaped (1, C).
    """
    rng = np.random.default_rng(105)
    cases = [
        (
            np.array(_PER_CHANNEL_RATIOS) * np.array(_PER_CHANNEL_SCALES)[:, None],
            np.array(_PER_CHANNEL_SCALES)[:, None],
        ),
        (np.reshape(_PER_TENSOR_RATIOS, (2, 4, 4)) * 0.25, np.array(0.25)),
    ]
    scale = rng.uniform(0.01, 0.05, size=(5, 1)).astype(np.float32)
    frac = rng.uniform(0.1, 0.4, size=(5, 6)) * rng.choice([-1, 1], size=(5, 6))
    ratio = rng.integers(-140, 141, size=(5, 6)) + frac
    cases.append(((ratio * scale).astype(np.float32), scale))
    out = []
    for w, s in cases:
        w, s = np.asarray(w, np.float32), np.asarray(s, np.float32)
        if channels_last and s.ndim:
            w, s = w.T, s.T
        g = rng.normal(size=w.shape).astype(np.float32)
        # (np.ascontiguousarray would make the 0-d scale 1-d)
        out.append((np.ascontiguousarray(w), s.copy(order="C"), g))
    return out


def _wrapped(r: np.ndarray) -> np.ndarray:
    """round(r) cast to int8 before any clamp: wraps around beyond -128..127 (PyTorch)."""
    return (np.round(r) + 128) % 256 - 128


def _round_half_away(r: np.ndarray) -> np.ndarray:
    return np.sign(r) * np.floor(np.abs(r) + 0.5)


def fq_reference(
    w: np.ndarray,
    scale: np.ndarray,
    g: np.ndarray,
    *,
    rounding=np.round,
    lo: float = -127,
    clip: bool = True,
    times_scale: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(forward, the mask on [lo, 127], w / scale), float64; switches compute mistakes."""
    r = np.asarray(w, np.float64) / np.asarray(scale, np.float64)
    q = rounding(r)
    if clip:
        q = np.clip(q, lo, 127)
    forward = q * scale if times_scale else q
    mask = ((r >= lo) & (r <= 127)).astype(np.float64)
    return np.asarray(forward, np.float64), mask, r


def refuse_library(c: Checker, calls: list[str]) -> None:
    """Fail with the ``fq_library`` hint once the student's code has called the library's own
    fake quantization (``calls``: the names an adapter's watcher recorded, in call order)."""
    if calls:
        raise c.fail(f"your code called {calls[0]}", c.hint("fq_library"))


def compare_forward(
    c: Checker, out: np.ndarray, w: np.ndarray, scale: np.ndarray
) -> None:
    """Fail unless ``out`` is float32 ``clip(round(w / scale), -127, 127) * scale``."""
    ref, _, r = fq_reference(w, scale, np.zeros_like(w))
    if out.dtype.kind in "iub":
        raise c.fail(
            f"the result has dtype {out.dtype}, expected float32",
            c.hint("fq_times_scale"),
        )
    c.shape(out, w.shape, "return an array of w's shape: q * scale broadcasts to it")
    if out.dtype != np.float32:
        raise c.fail(
            f"the result has dtype {out.dtype}, expected float32", c.hint("fq_float32")
        )
    wrong = [
        ("fq_times_scale", fq_reference(w, scale, w, times_scale=False)[0]),
        ("fq_clip", fq_reference(w, scale, w, clip=False)[0]),
        ("clamp_symmetric", fq_reference(w, scale, w, lo=-128)[0]),
        ("fq_round", fq_reference(w, scale, w, rounding=np.floor)[0]),
        ("fq_round", fq_reference(w, scale, w, rounding=np.trunc)[0]),
        ("fq_round", fq_reference(w, scale, w, rounding=np.ceil)[0]),
        ("round_ties", fq_reference(w, scale, w, rounding=_round_half_away)[0]),
        (
            "round_ties",
            fq_reference(w, scale, w, rounding=lambda x: np.floor(x + 0.5))[0],
        ),
        ("fq_round", fq_reference(w, scale, w, rounding=lambda x: x)[0]),
        ("fq_identity", w),
        ("fq_clip", fq_reference(w, scale, w, rounding=_wrapped, clip=False)[0]),
        ("fq_divide", np.clip(np.round(w * scale), -127, 127) / scale),
        ("fq_clip", np.clip(_wrapped(r), -127, 127) * scale),  # int8 cast, then clamp
        ("fq_clip_units", np.clip(np.round(r) * scale, -127, 127)),
    ]
    s64 = np.asarray(scale, np.float64)
    w_c = np.clip(w, -127 * s64, 127 * s64)  # the straight-through sum's x, mixed up
    for key, value in (("detach_sign", 2 * w_c - ref), ("detach_sign", 2 * w - ref),
                       ("ste_mixed_terms", ref + w_c - w),
                       ("ste_mixed_terms", ref + w - w_c)):  # fmt: skip
        wrong.append((key, value))
    if scale.size > 1:  # one of the channel scales used for all
        for one in (scale.max(), scale.min(), scale.flat[0], scale.mean()):
            wrong.append(("fq_broadcast", fq_reference(w, one, w)[0]))
    for own in (np.abs(w).max(), np.abs(w).max(axis=tuple(range(1, w.ndim)), keepdims=True),
                np.abs(w).max(axis=0, keepdims=True)):  # fmt: skip
        own = np.maximum(np.float32(own) / np.float32(127), np.finfo(np.float32).tiny)
        wrong.append(("fq_own_scale", fq_reference(w, own, w)[0]))
    mistakes = [(c.hint(key), value) for key, value in wrong]
    hint = "fake_quantize(w, scale) = clamp(round(w / scale), -127, 127) * scale"
    ties = np.abs(np.abs(r - np.floor(r)) - 0.5) < 1e-9
    if np.any(ties) and out.shape == w.shape:  # ties off: a rounding rule of its own
        ok = np.isclose(out, ref, rtol=1e-6, atol=1e-9)
        if np.all(ok | ties) and not np.all(ok):
            hint = c.hint("round_ties")
    c.close(out, ref, what="the forward value", rtol=1e-6, atol=1e-9, hint=hint,
            mistakes=mistakes)  # fmt: skip


def compare_gradient(
    c: Checker, grad: np.ndarray, w: np.ndarray, scale: np.ndarray, g: np.ndarray
) -> None:
    """Fail unless ``grad`` is ``g`` where ``|w / scale| <= 127`` and 0 elsewhere.

    Entries at exactly ``|w / scale| = 127`` are not compared (conventions differ there).
    """
    _, mask, r = fq_reference(w, scale, g)
    g = np.asarray(g, np.float64)
    ref = mask * g
    grad = np.array(grad, np.float64)
    edge = np.abs(r) == 127
    s = np.broadcast_to(np.asarray(scale, np.float64), w.shape)
    rounded = np.round(r)
    wrong = [
        ("ste_no_mask", g),
        ("mask_units", (np.abs(w) <= 127) * g),
        ("mask_rounding_range", ((rounded >= -127) & (rounded <= 127)) * g),
        ("clamp_symmetric", ((r >= -128) & (r <= 127)) * g),
        ("ste_upstream", mask),
        ("ste_scale", ref * s),
        ("ste_scale", ref / s),
        ("mask_inverted", (1 - mask) * g),
        ("mask_codes", (np.abs(rounded) < 127) * g),
        ("mask_abs", (r <= 127) * g),
        ("mask_abs", (r >= -127) * g),
        # the clip after the straight-through round: jnp.clip passes half at the edge
        ("mask_codes", ((np.abs(rounded) < 127) + 0.5 * (np.abs(rounded) == 127)) * g),
    ]
    if scale.size > 1:  # the mask computed with one of the channel scales
        for one in (scale.max(), scale.min(), scale.flat[0], scale.mean()):
            wrong.append(("fq_broadcast", (np.abs(w / np.float64(one)) <= 127) * g))
    mistakes = [("ste_missing", np.zeros_like(g)), ("detach_term", -g),
                ("detach_term", -ref), *wrong]  # fmt: skip
    if grad.shape == w.shape:
        grad[edge] = ref[edge]
    named = []
    for key, value in mistakes:
        value = np.array(value, np.float64)
        value[edge] = ref[edge]
        named.append((c.hint(key), value))
    c.close(grad, ref, what="the gradient with respect to w", rtol=1e-6, atol=1e-7,
            hint="the straight-through estimator: grad_w = grad_out where "
            "|w / scale| <= 127, else 0", mistakes=named)  # fmt: skip
