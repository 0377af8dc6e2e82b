"""Lab 10 self-checks for JAX notebooks: ``H.lab10.check_quantize_int8(quantize_int8)``.

The checks are :mod:`helpers.labs.lab10.checks`, shared with PyTorch; this module hands the
student's functions arrays in Flax's weight layout (output channels last) and float32 inputs
for integrated gradients, and reads the results back as numpy.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from helpers.jax.labkit import lab_framework
from helpers.labs.kit import Hints, checking, explainer
from helpers.labs.lab10 import affine
from helpers.labs.lab10 import checks as lab10

__all__ = [
    "check_dequantize_int8",
    "check_dequantize_uint8",
    "check_integrated_gradients",
    "check_quantize_int8",
    "check_quantize_uint8",
]

HINTS = Hints(
    lab10.HINTS,
    affine.AFFINE_HINTS,
    {
        "not_int8": "q must be stored as int8 (1 byte per weight): convert the rounded, "
        "clipped values with .astype(jnp.int8)",
        "scalar_grad": "jax.grad needs a function with one scalar output, and f returns one "
        "score per example: differentiate the sum, jax.grad(lambda p: f(p).sum())",
    },
)

_ERRORS = {
    "Gradient only defined for scalar-output functions": "scalar_grad",
    # quantize_uint8 of an all-zero array without a floor on the scale
    "float division by zero": "all_zero_input",
    "cannot convert float NaN to integer": "all_zero_input",
}

JAX = lab_framework(HINTS, explainer(_ERRORS, HINTS))


def check_quantize_int8(student: Any) -> None:
    """Per-channel symmetric int8: ``quantize_int8(w, axis) -> (q, scale)``."""
    with checking(
        "quantize_int8", JAX, passed="a conv, a linear kernel and a pruned one"
    ) as c:
        for w, axis in lab10.quantize_cases(channels_last=True):
            out = c.call(student, jnp.asarray(w), axis)
            q, scale = lab10.pair(c, out)
            lab10.compare_quantize(c, q, scale, w, axis)


def check_dequantize_int8(student: Any) -> None:
    """``dequantize_int8(q, scale) -> q * scale`` in float32."""
    with checking(
        "dequantize_int8", JAX, passed="a conv, a linear kernel and a pruned one"
    ) as c:
        for w, axis in lab10.quantize_cases(channels_last=True):
            q, scale = lab10.quantize_reference(w, axis)
            out = c.call(student, jnp.asarray(q), jnp.asarray(scale))
            lab10.compare_dequantize(c, c.array(out), q, scale)


def _score(x: jnp.ndarray) -> jnp.ndarray:
    """F(x) = tanh(x W) v per example: (B, 5) float32 -> (B,)."""
    return jnp.tanh(x @ jnp.asarray(lab10.IG_W, x.dtype)) @ jnp.asarray(
        lab10.IG_V, x.dtype
    )


def check_integrated_gradients(student: Any) -> None:
    """``integrated_gradients(f, x, baseline, steps)``: complete to 1 %, equal to the integral."""
    with checking(
        "integrated_gradients",
        JAX,
        passed="two inputs, non-zero baselines, complete to 1 %",
    ) as c:
        for case in lab10.IG_CASES:
            x = jnp.asarray(case["x"], jnp.float32)  # (B, 5)
            baseline = jnp.asarray(case["baseline"], jnp.float32)
            out = c.call(student, _score, x, baseline, case["steps"])
            lab10.compare_ig(c, np.asarray(c.array(out), np.float64), case)


def check_quantize_uint8(student: Any) -> None:
    """Affine uint8: ``quantize_uint8(x) -> (q, scale, zero_point)``."""
    with checking(
        "quantize_uint8",
        JAX,
        passed="mixed, positive, negative, leaky-ReLU and all-zero inputs",
    ) as c:
        for x in affine.affine_cases():
            out = c.call(student, jnp.asarray(x))
            q, scale, zero_point = affine.triple(c, out)
            affine.compare_affine_quantize(c, q, scale, zero_point, x)


def check_dequantize_uint8(student: Any) -> None:
    """``dequantize_uint8(q, scale, zero_point) -> (q - zero_point) * scale`` in float32."""
    with checking(
        "dequantize_uint8",
        JAX,
        passed="mixed, positive, negative, leaky-ReLU and all-zero inputs",
    ) as c:
        for x in affine.affine_cases():
            q, scale, zero_point = affine.affine_reference(x)
            out = c.call(student, jnp.asarray(q), scale, zero_point)
            affine.compare_affine_dequantize(c, c.array(out), q, scale, zero_point)
