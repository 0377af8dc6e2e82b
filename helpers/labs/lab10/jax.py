"""Lab 10 self-checks for JAX notebooks: ``H.lab10.check_quantize_int8(quantize_int8)``.

The checks are :mod:`helpers.labs.lab10.checks`, shared with PyTorch; this module hands the
student's functions arrays in Flax's weight layout (output channels last) and float32 inputs
for integrated gradients, and reads the results back as numpy.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax.linen import fp8_ops

from helpers.jax.labkit import TRACER_ERRORS, lab_framework
from helpers.labs.kit import CheckFailed, Hints, checking, explainer, recording
from helpers.labs.lab10 import affine, ste
from helpers.labs.lab10 import checks as lab10

__all__ = [
    "check_dequantize_int8",
    "check_dequantize_uint8",
    "check_fake_quantize",
    "check_integrated_gradients",
    "check_quantize_int8",
    "check_quantize_uint8",
]

HINTS = Hints(
    lab10.HINTS,
    affine.AFFINE_HINTS,
    ste.STE_HINTS,
    {
        "not_int8": "q must be stored as int8 (1 byte per weight): convert the rounded, "
        "clipped values with .astype(jnp.int8)",
        "scalar_grad": "jax.grad needs a function with one scalar output, and f returns one "
        "score per example: differentiate the sum, jax.grad(lambda p: f(p).sum())",
        "ste_missing": "the gradient is 0 everywhere: jnp.round has derivative 0 almost "
        "everywhere (and jax.lax.stop_gradient around the whole result stops it all); the "
        "straight-through estimator routes the gradient around round: w_c + "
        "jax.lax.stop_gradient(q * scale - w_c) with w_c = jnp.clip(w, -127 * scale, "
        "127 * scale), or a jax.custom_vjp whose bwd returns g * mask",
        "detach_term": "the gradient has the wrong sign: jax.lax.stop_gradient is on the "
        "wrong term; in x + stop_gradient(y - x) the value is y and the gradient flows "
        "through x: keep the clipped w outside stop_gradient and the quantized value inside",
        "detach_sign": "the straight-through sum has a sign flipped: x + "
        "stop_gradient(y - x) has the value y; x - stop_gradient(y - x) or x + "
        "stop_gradient(x - y) has the value 2x - y: add stop_gradient(q * scale - w_c), "
        "the quantized value minus the clipped w",
        "ste_mixed_terms": "the two x of the straight-through sum x + stop_gradient(y - x) "
        "are different arrays, w in one and the clipped w_c in the other: the value is "
        "then off by w - w_c wherever w is clipped; use w_c in both",
        "jit_trace": "jax.grad and jax.jit call your function with tracers, abstract arrays "
        "without values: no NumPy functions (np.round, np.asarray), no float(...) or "
        "int(...) of an array, no Python if on array values; use jnp functions and jnp.where",
        "fq_vjp_structure": "a jax.custom_vjp's bwd returns a tuple with one cotangent per "
        "argument of the function, each of that argument's shape and dtype: (g * mask, "
        "jnp.zeros_like(scale)) for (w, scale)",
        "fq_vjp_nondiff": "scale is an array, traced under jax.jit: keep it out of "
        "nondiff_argnums (meant for functions and static values); make it an ordinary "
        "argument and return jnp.zeros_like(scale) as its cotangent",
        "fq_library": "flax.linen.fp8_ops (qdq, in_qdq, quantize) is ready-made fake "
        "quantization (to float8): write int8 fake quantization and its straight-through "
        "gradient yourself",
    },
)

_ERRORS = {
    "Gradient only defined for scalar-output functions": "scalar_grad",
    # quantize_uint8 of an all-zero array without a floor on the scale
    "float division by zero": "all_zero_input",
    "cannot convert float NaN to integer": "all_zero_input",
}

# What tracing raises for a Python-side use of a traced value (NumPy, float(), if).
_TRACING = dict.fromkeys(TRACER_ERRORS, "jit_trace")  # exercise 5 traces the function

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


# --- exercise 5: fake quantization with a straight-through estimator -------------------------
# Ready-made fake quantization in the installed libraries: Flax's float8 ops (optax has none;
# aqt is not installed). Watched through the module, where Flax's own layers call them too.
_LIBRARY = [
    (fp8_ops, name, f"flax.linen.fp8_ops.{name}")
    for name in ("quantize", "dequantize", "qdq", "in_qdq", "out_qdq")
    if callable(getattr(fp8_ops, name, None))
]


_STE_ERRORS = {
    **_ERRORS,
    **ste.BROADCAST_ERRORS,
    "Custom VJP bwd rule must produce an output with the same container": (
        "fq_vjp_structure"
    ),
    # a cotangent for scale of w's shape (or dtype)
    "Custom VJP bwd rule must produce an output with the same type": "fq_vjp_structure",
    "Custom VJP bwd rule must produce an output with the same shape": "fq_vjp_structure",
    "passed as an argument to a custom_vjp function in a position indicated by "
    "nondiff_argnums": "fq_vjp_nondiff",
}
_JAX_STE = lab_framework(HINTS, explainer(_STE_ERRORS, HINTS, types=_TRACING))


def check_fake_quantize(student: Any) -> None:
    """``fake_quantize(w, scale)``: int8 fake quantization, straight-through gradient,
    eagerly and under ``jax.jit``."""
    with (
        checking(
            "fake_quantize",
            _JAX_STE,
            passed="per-channel and per-tensor scales, ties, clip edges, gradients, jitted",
        ) as c,
        recording(_LIBRARY) as calls,
    ):
        if not callable(student):  # before jax.jit wraps it
            c.call(student)

        def loss(w, scale, g):
            return jnp.sum(student(w, scale) * g)

        for w, s, g in ste.fq_cases(channels_last=True):
            args = jnp.asarray(w), jnp.asarray(s)
            for how, run, grad in (
                ("", student, jax.grad(loss)),
                (" under jax.jit", jax.jit(student), jax.jit(jax.grad(loss))),
            ):
                try:
                    out = c.array(c.call(run, *args))
                    ste.refuse_library(c, calls)
                    ste.compare_forward(c, out, w, s)
                    dw = c.array(c.call(grad, *args, jnp.asarray(g)))
                    ste.refuse_library(c, calls)
                    ste.compare_gradient(c, dw, w, s, g)
                except CheckFailed as failure:  # say which run it was
                    problem = failure.problem + how
                    raise CheckFailed(failure.exercise, problem, failure.hint) from None
