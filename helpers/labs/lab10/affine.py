"""Lab 10, exercise 3: asymmetric (affine) uint8 quantization of activations, shared checks.

The chapter quantizes weights symmetrically (int8, zero at 0). Activations after a ReLU or a
sigmoid are not centred on 0, and the integer-arithmetic scheme of Jacob et al. (2018),
"Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
Inference", CVPR, stores them as uint8 with a *zero point* z:

    x ~ s * (q - z),  s = (hi - lo) / 255,  z = round(-lo / s),  q = clip(round(x / s) + z, 0, 255)

where [lo, hi] is the tensor's range widened to contain 0, so that 0 (padding, ReLU's zeros)
is represented exactly, by q = z. The answers come from a float32 numpy reference with a switch
per known mistake (:func:`affine_reference`); ``tests/labs/test_lab10.py`` asserts it equals
PyTorch's ``torch.quantize_per_tensor(..., torch.quint8)`` on every case.
"""

from __future__ import annotations

import numbers

import numpy as np

from helpers.labs.kit import Checker, Hints
from helpers.labs.lab10.checks import rounded_otherwise, rounding_ties

__all__ = [
    "AFFINE_HINTS",
    "affine_cases",
    "affine_reference",
    "compare_affine_dequantize",
    "compare_affine_quantize",
    "triple",
]

AFFINE_HINTS = Hints(
    {
        "result_triple": "return the three parts as one tuple: return q, scale, zero_point",
        "not_uint8": "q must be stored as uint8 (0..255), not int8: the zero point shifts "
        "the range, so every code is non-negative",
        "scale_python_float": "return the scale as a Python float: float(scale)",
        "zero_point_integer": "the zero point is an integer code, the q that stands for 0.0: "
        "round(-lo / scale) as a Python int (Python's round() of a float returns one; int() "
        "alone cuts the fraction off instead of rounding)",
        "range_with_zero": "widen the range to contain 0 before computing the scale: "
        "lo = min(x.min(), 0), hi = max(x.max(), 0); otherwise 0.0 has no exact code and, "
        "for all-positive inputs, the zero point falls outside 0..255",
        "all_zero_input": "an all-zero x has lo = hi = 0, so (hi - lo) / 255 is 0 and "
        "-lo / scale divides by zero: keep the scale at least the smallest normal float32, "
        "max((hi - lo) / 255, tiny); the zero point and every code are then 0",
        "per_tensor_scale": "one scale and one zero point for the whole tensor (per-tensor, "
        "unlike exercise 1's per-channel scales): take the min and max over every entry, "
        "then return float(scale) and int(zero_point)",
        "levels_255": "uint8 has 255 steps from 0 to 255: scale = (hi - lo) / 255 (with "
        "256 the codes use only 0..254)",
        "zero_point_sign": "the zero point is the code of 0.0: z = round(-lo / scale), which "
        "is >= 0 because lo <= 0 (round(lo / scale) is negative)",
        "uint8_wrap": "q - zero_point computed in uint8 wraps around (3 - 128 = 131): "
        "convert q to int32 or float32 first, then subtract, then multiply by the scale",
        "zero_point_missing": "subtract the zero point before scaling: "
        "x_hat = (q - zero_point) * scale, with q converted out of uint8 first",
        "triple_order": "the second element is an int and the third a float: return the "
        "three parts in the order the exercise asks: return q, scale, zero_point",
        "codes_no_round": "round x / scale to the nearest integer before adding the zero "
        "point and casting: a cast alone (or floor) cuts the fraction off, an error of up "
        "to a whole step instead of half a step",
        "codes_add_zero_point": "add the zero point to the rounded values: q = clip(round(x "
        "/ scale) + zero_point, 0, 255); without it (or subtracting it) every negative x "
        "clips to code 0",
        "codes_round_once": "round x / scale on its own, then add the (already rounded) zero "
        "point: round((x - lo) / scale) rounds the sum of two fractions, one code off "
        "wherever they add up past a half, and the codes no longer match round(x / scale)",
        "affine_divide": "dequantization multiplies: x_hat = (q - zero_point) * scale "
        "(quantization divided by the scale)",
        "zero_point_order": "subtract the zero point from the codes before multiplying by "
        "the scale: (q - zero_point) * scale, not q * scale - zero_point (the zero point is "
        "a code, not a value)",
        "int8_wrap": "int8 holds -128..127, so codes above 127 wrap around (200 becomes -56) "
        "in the cast: convert q to int32 or float32 (signed and wide enough), then subtract",
    }
)


def triple(c: Checker, out: object) -> tuple[np.ndarray, object, object]:
    """The student's ``(q, scale, zero_point)``: q as numpy, the other two unchanged."""
    if not isinstance(out, tuple | list) or len(out) != 3:
        got = type(out).__name__ + (f" of {len(out)}" if isinstance(out, tuple) else "")
        raise c.fail(
            f"expected a tuple (q, scale, zero_point), got {got}",
            c.hint("result_triple"),
        )
    q, scale, zero_point = c.array(out[0], f"{c.fw.array_type} for q"), out[1], out[2]
    if isinstance(scale, numbers.Integral) and isinstance(zero_point, float):
        raise c.fail(
            "the scale is an int and the zero point a float", c.hint("triple_order")
        )
    return q, scale, zero_point


def affine_cases() -> list[np.ndarray]:
    """Activations, float32: mixed, all positive (a sigmoid's), all negative, leaky-ReLU, zero.

    Chosen so that each mistake changes the scale or the zero point: the all-positive tensor
    has no 0 in its range, the zero point of the first rounds up (int() cuts it down) and the
    leaky ReLU's rounds down (ceil() lifts it).
    """
    rng = np.random.default_rng(4)
    mixed = np.clip(rng.normal(size=(4, 16)) * 2 + 0.7, -3, 4.8)
    mixed[0, :2] = (
        -3.1,
        4.9,
    )  # lo and hi: -lo / scale = 98.81, so z = 99 (int() gives 98)
    positive = 1 / (1 + np.exp(-rng.normal(size=(3, 5, 5))))  # in (0, 1), no 0
    negative = -positive[:2] * 3
    leaky = np.maximum(np.random.default_rng(5).normal(size=(3, 8)) * 1.5 + 0.5, 0)
    leaky = np.where(leaky > 0, leaky, -0.05 * rng.random(size=leaky.shape))
    leaky[0, :2] = (-0.13, 5.2)  # -lo / scale = 6.22, so z = 6 (ceil() gives 7)
    dead = np.zeros((2, 3))  # a dead ReLU's output, or padding
    return [np.asarray(x, np.float32) for x in (mixed, positive, negative, leaky, dead)]


def affine_reference(
    x: np.ndarray,
    *,
    with_zero: bool = True,
    levels: float = 255.0,
    zero_point_sign: int = 1,
) -> tuple[np.ndarray, float, int]:
    """(q uint8, scale, zero_point) computed in float32; switches compute known mistakes."""
    x = np.asarray(x, np.float32)
    lo, hi = (min(x.min(), 0), max(x.max(), 0)) if with_zero else (x.min(), x.max())
    scale = np.maximum(
        np.float32(hi - lo) / np.float32(levels), np.finfo(np.float32).tiny
    )
    # Not clipped: with 0 in [lo, hi], -lo / scale lies in [0, 255] (mistakes may leave it).
    zero_point = int(np.round(zero_point_sign * -lo / scale))
    q = np.clip(np.round(x / scale) + zero_point, 0, 255).astype(np.uint8)
    return q, float(scale), zero_point


def compare_affine_quantize(
    c: Checker, q: np.ndarray, scale: object, zero_point: object, x: np.ndarray
) -> None:
    """Fail unless ``(q, scale, zero_point)`` is the affine uint8 quantization of ``x``."""
    if q.dtype != np.uint8:
        raise c.fail(f"q has dtype {q.dtype}, expected uint8", c.hint("not_uint8"))
    c.shape(q, x.shape)
    if np.size(getattr(scale, "shape", ())) and np.prod(scale.shape) > 1:
        problem = f"the scale has shape {tuple(scale.shape)}, expected one Python float"
        raise c.fail(problem, c.hint("per_tensor_scale"))
    scale = c.python_float(scale, "the scale", c.hint("scale_python_float"))
    if isinstance(zero_point, bool) or not isinstance(zero_point, numbers.Integral):
        problem = (
            f"the zero point should be a Python int, got {type(zero_point).__name__}"
        )
        raise c.fail(problem, c.hint("zero_point_integer"))
    if not np.any(x):  # all zero: any positive scale will do, every code is 0
        if not (np.isfinite(scale) and scale > 0 and zero_point == 0 and not np.any(q)):
            problem = (
                f"an all-zero input gave scale {scale:.3g}, zero point {zero_point}"
            )
            raise c.fail(problem, c.hint("all_zero_input"))
        return
    ref_q, ref_scale, ref_zero = affine_reference(x)
    mistakes = [
        ("range_with_zero", affine_reference(x, with_zero=False)),
        ("levels_255", affine_reference(x, levels=256.0)),
        ("zero_point_sign", affine_reference(x, zero_point_sign=-1)),
    ]
    for key, (_, wrong_scale, wrong_zero) in mistakes:
        # Matched on the part the mistake changes (the student may clip z, or not).
        if wrong_scale != ref_scale and np.isclose(scale, wrong_scale, rtol=1e-5):
            raise c.fail("the scale follows a known mistake", c.hint(key))
        clipped = min(max(wrong_zero, 0), 255)
        if zero_point != ref_zero and zero_point in (wrong_zero, clipped):
            raise c.fail("the zero point follows a known mistake", c.hint(key))
    c.close(
        scale,
        ref_scale,
        what="the scale",
        rtol=1e-5,
        atol=0,
        hint="scale = (hi - lo) / 255",
    )
    if zero_point != ref_zero:
        raise c.fail(
            f"the zero point is {zero_point}, expected {ref_zero}",
            c.hint("zero_point_integer"),
        )
    ratio = x / np.float32(ref_scale)  # what round() sees
    tie = rounding_ties(ratio)
    if rounded_otherwise(q, ref_q, tie):
        lo = min(float(x.min()), 0.0)
        known = [
            ("codes_no_round", np.trunc(ratio) + ref_zero),
            ("codes_no_round", np.floor(ratio) + ref_zero),
            ("codes_add_zero_point", np.round(ratio)),
            ("codes_add_zero_point", np.round(ratio) - ref_zero),
            (
                "codes_round_once",
                np.round((x - np.float32(lo)) / np.float32(ref_scale)),
            ),
        ]
        for key, wrong in known:  # most codes equal to those of a known mistake
            wrong = np.clip(wrong, 0, 255).astype(int)
            if np.mean(q.astype(int) == wrong) > 0.9:
                raise c.fail("q follows a known mistake", c.hint(key))
        c.close(
            np.where(tie, ref_q, q),
            ref_q,
            what="q",
            rtol=0,
            atol=0,
            hint="q = clip(round(x / scale) + zero_point, 0, 255), then uint8",
        )


def compare_affine_dequantize(
    c: Checker, got: np.ndarray, q: np.ndarray, scale: float, zero_point: int
) -> None:
    """Fail unless ``got`` equals ``(q - zero_point) * scale`` in float32."""
    if got.dtype != np.float32:
        raise c.fail(
            f"the result has dtype {got.dtype}, expected float32",
            "convert q to float32 (or int32, then the product to float32)",
        )
    expected = (q.astype(np.float64) - zero_point) * scale
    wrapped = (q - np.uint8(zero_point)).astype(np.float64) * scale  # uint8 arithmetic
    signed = q.astype(np.int8).astype(np.float64)  # codes above 127 wrap to negatives
    c.close(
        got,
        expected,
        what="x_hat",
        rtol=1e-6,
        atol=1e-7,
        hint="x_hat = (q - zero_point) * scale",
        mistakes=[
            (c.hint("uint8_wrap"), wrapped),
            (c.hint("zero_point_missing"), q.astype(np.float64) * scale),
            (c.hint("zero_point_missing"), (q.astype(np.float64) + zero_point) * scale),
            (c.hint("affine_divide"), (q.astype(np.float64) - zero_point) / scale),
            (c.hint("zero_point_order"), q.astype(np.float64) * scale - zero_point),
            (c.hint("int8_wrap"), (signed - zero_point) * scale),  # the cast wraps
            (c.hint("int8_wrap"), ((signed - zero_point + 128) % 256 - 128) * scale),
        ],
    )
