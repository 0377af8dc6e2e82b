"""Lab 1 self-checks for JAX notebooks: ``H.lab01.check_preprocess(preprocess)`` etc.

Exercises 1-4 are checked by :mod:`helpers.labs.lab01.checks`, ``topk`` and ``directional``,
shared with PyTorch; this module
hands them JAX arrays, words their hints for JAX and turns JAX's error messages into hints;
exercise 5, JAX's own (a training step written as a pure function, so that ``jax.jit``
compiles it once and every call uses its own step and key), is checked in
:mod:`helpers.labs.lab01.jax_step`.
"""

from __future__ import annotations

import dataclasses
from functools import partial

from helpers.jax.labkit import TRACER_ERRORS, autodiff_calls, lab_framework
from helpers.labs.kit import Hints, explainer
from helpers.labs.lab01 import checks as lab01
from helpers.labs.lab01 import directional, jax_step, topk

__all__ = [
    "check_directional_gradient_error",
    "check_framework_specific",
    "check_mse_grad",
    "check_preprocess",
    "check_top_k_accuracy",
]

# Known mistakes that only JAX allows, and JAX's wording of shared ones.
HINTS = Hints(
    lab01.HINTS,
    topk.HINTS,
    directional.HINTS,
    jax_step.HINTS,
    {
        "not_float": "return a Python float: float(...) of the 0-d array",
        "mse_grad_by_hand": "the values are right, but jax.grad never ran: define "
        "loss(w) = jnp.mean((X @ w - y) ** 2) and return jax.grad(loss)(w), instead of a "
        "formula derived by hand",
        "array_tolist": "return the array itself, as jnp computed it: .tolist() turns it "
        "into a Python list, without dtype",
        "mse_grad_loss": "that is one number, the loss: return jax.grad(loss)(w), the "
        "gradient (one partial derivative per entry of w), not loss(w)",
        "mse_grad_w": "that is w itself: return what jax.grad(loss)(w) gives, not w",
        "mse_grad_wrt_y": "that is the gradient with respect to y: jax.grad "
        "differentiates with respect to argument argnums (0, the first, by default), "
        "which must be w",
        "mse_grad_half": "off by a factor 2: the loss is mean(r ** 2), not half of it "
        "(optax.l2_loss is r ** 2 / 2), and the derivative of r**2 is 2 * r * dr/dw; let "
        "jax.grad differentiate that loss instead of a formula",
        "grad_needs_function": "jax.grad takes a function, not a value: define "
        "loss(w) = jnp.mean((X @ w - y) ** 2) and return jax.grad(loss)(w)",
        "mse_grad_wrt_X": "that is the gradient with respect to X: jax.grad differentiates "
        "with respect to argument argnums (0, the first, by default), which must be w",
        "traced_value": "under jax.jit a value is a tracer, with a shape but no value: "
        "branch with jnp.where or jax.lax.cond instead of if, and convert to a Python "
        "number (float, int, bool) only outside the jitted function",
        "immutable": "JAX arrays cannot change in place: x + eps * v is a new array (and "
        "x.at[i].add(...) returns a new array with entry i changed)",
        "topk_broadcast": "compare each row with its own label's score, as a (B, 1) "
        "column: jnp.take_along_axis(logits, labels[:, None], axis=-1) or "
        "logits[jnp.arange(len(labels)), labels][:, None]; a (B,) array lines up with the "
        "class axis instead",
        "topk_gather": "take each row's own label score with jnp.take_along_axis(logits, "
        "labels[:, None], axis=-1): jnp.take without an axis reads the flattened logits "
        "(row 0's classes), and axis=0 indexes the rows with the labels",
        "scalar_loss": "jax.grad needs a function that returns one number: take the mean "
        "over examples",
    },
)

# JAX errors (type name, or a regular expression on the message) -> the hint that fixes them.
_MESSAGES = {
    r"cannot reshape array of shape .* into shape \(\d+, 784\)": "preprocess_batch",
    r"arrays are immutable": "immutable",
    r"only defined for scalar-output functions": "scalar_loss",
    r"Expected a callable value": "grad_needs_function",
}


_explain = explainer(
    _MESSAGES,
    HINTS,
    types=dict.fromkeys(TRACER_ERRORS, "traced_value"),
)


JAX = lab_framework(HINTS, _explain)
# Exercise 2: a (B,) array of the labels' scores against (B, C) logits.
_TOPK = dataclasses.replace(
    JAX,
    explain=explainer(
        {
            r"[Ii]ncompatible shapes for broadcasting|indices and arr must have the same "
            r"number of dimensions": "topk_broadcast",
            r"indices must be of integer type|Indexer must have integer": "topk_labels_int",
            **_MESSAGES,
        },
        HINTS,
        types=dict.fromkeys(TRACER_ERRORS, "traced_value"),
    ),
)


# The checks, bound to this framework. Call them with the student's function.
check_preprocess = partial(lab01.check_preprocess, fw=JAX)
check_top_k_accuracy = partial(topk.check_top_k_accuracy, fw=_TOPK)
check_mse_grad = partial(lab01.check_mse_grad, fw=JAX, autodiff=autodiff_calls)
check_directional_gradient_error = partial(
    directional.check_directional_gradient_error,
    fw=dataclasses.replace(
        JAX,
        explain=explainer(
            {
                r"contracting dimensions to have the same shape|[Ii]ncompatible shapes "
                r"for broadcasting": "dgc_rows",
                r"division by zero": "dgc_tiny",
                **_MESSAGES,
            },
            HINTS,
            types=dict.fromkeys(TRACER_ERRORS, "traced_value"),
        ),
    ),
)
check_framework_specific = partial(jax_step.check_train_step, fw=JAX)
