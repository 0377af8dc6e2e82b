"""Lab 2 self-checks for JAX notebooks: ``H.lab02.check_gru_step(gru_step)`` etc.

The checks are :mod:`helpers.labs.lab02.checks`, shared with PyTorch; this module hands them
JAX arrays and JAX's own answers (``jax.vjp``, ``jax.nn.dot_product_attention``, in float64;
Flax's ``nnx.GRUCell`` has no bias on its hidden side, ``b_hh``, so the numpy reference
answers the GRU step), words the layout-dependent hints for ``W (in, out)``, names the answer
keys a student's function may not call (``jax.vjp`` and kin, Flax's GRU cells, the libraries'
attention), and turns JAX's
error messages into hints. Exercise 4 (attention's backward pass) is compared with its
float64 numpy reference. Exercises 1 and 4 may not call autodiff, under any name
(:func:`helpers.jax.labkit.autodiff_calls` watches it, with jit off so that a cached trace
hides nothing).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen, nnx

from helpers.jax.labkit import autodiff_calls, lab_framework
from helpers.labs.kit import Hints, explainer, recording
from helpers.labs.lab02 import checks as lab02

__all__ = [
    "check_attention",
    "check_attention_backward",
    "check_gru_step",
    "check_linear_relu_backward",
]

# Known mistakes that only JAX allows, and JAX's wording of layout-dependent ones.
HINTS = Hints(
    lab02.HINTS,
    {
        "weight_transposed": "dW must have W's layout, (in, out): dW = x.T @ dz, with "
        "dz = dy * (z > 0); dz.T @ x is its transpose",
        "dx_transposed_weight": "with W (in, out) the forward is z = x @ W + b, so "
        "dx = dz @ W.T, (B, out) @ (out, in), not dz @ W",
        "relu_mask_layout": "W is (in, out) here, so the pre-activation is z = x @ W + b; "
        "x @ W.T + b only has the right shape because this layer is square",
        "autodiff_answer_key": "write the backward pass from the formulas, without jax.grad "
        "or jax.vjp, which the check compares with: dz = dy * (z > 0), then "
        "dx = dz @ W.T, dW = x.T @ dz, db = dz.sum(0)",
        "gru_answer_key": "write the step from the equations, without Flax's GRU cells, "
        "nnx.GRUCell (which has no b_hh) or linen.GRUCell: gi = x @ W_ih + b_ih, "
        "gh = h @ W_hh + b_hh, then "
        "jnp.split(gi, 3, axis=-1) and jnp.split(gh, 3, axis=-1)",
        "attention_answer_key": "write the attention out, without "
        "jax.nn.dot_product_attention or Flax's, which the check compares with: "
        "q @ jnp.swapaxes(k, -2, -1) / jnp.sqrt(d), jnp.where(mask, scores, -jnp.inf), "
        "jax.nn.softmax(scores, axis=-1) @ v",
        "attention_backward_answer_key": "write the gradients from the formulas, without "
        "jax.grad, jax.vjp or their kin (jax.jvp, jax.jacrev, nnx.grad...): P = the softmax "
        "of the masked scores, dv = P.mT @ d_out, dP = d_out @ v.mT, "
        "dZ = P * (dP - (dP * P).sum(-1, keepdims=True)), dq = dZ @ k / jnp.sqrt(d), "
        "dk = dZ.mT @ q / jnp.sqrt(d)",
        "gru_split": "cut gi and gh into their 3 gates along the last axis (3H): "
        "jnp.split(gi, 3, axis=-1); jnp.split's number is how many pieces, and it cuts "
        "axis 0 unless given an axis",
        "shapes": "the shapes do not fit; print the shapes of both operands. Here W is "
        "(in, out), so the layer is x @ W + b, and the GRU's gates are x @ W_ih, with "
        "W_ih (D, 3H), and h @ W_hh (no .T); a batch of matrices k (B, S, d) is transposed with "
        "jnp.swapaxes(k, -2, -1) or k.mT (k.T reverses every axis, and k.transpose wants "
        "the whole permutation, k.transpose(0, 2, 1)); a sum kept for broadcasting needs "
        "keepdims=True",
        "immutable": "JAX arrays cannot change in place: pick values into a new array "
        "with jnp.where, e.g. jnp.where(z > 0, dy, 0) or jnp.where(mask, scores, -jnp.inf)",
        "axis_not_dim": "JAX follows NumPy: the axis is named axis, "
        "jax.nn.softmax(scores, axis=-1), not dim",
        "keepdims": "JAX follows NumPy: a sum kept for broadcasting is "
        "x.sum(axis=-1, keepdims=True), keepdims with an s (PyTorch's keepdim is unknown "
        "here)",
    },
)

_MESSAGES = {
    "dot_general requires contracting dimensions": "shapes",
    "[Ii]ncompatible shapes for broadcasting": "shapes",
    "Incompatible types for matmul": "shapes",
    "transpose permutation isn't a permutation": "shapes",
    "arrays are immutable": "immutable",
    "unexpected keyword argument 'dim'": "axis_not_dim",
    "unexpected keyword argument 'keepdim'": "keepdims",
    "split does not result in an equal division": "gru_split",
    r"values to unpack \(expected 3": "gru_split",  # r, z, n = (not 3 pieces)
}

# What exercises 2 and 3 may not call: the library's own version (1 and 4: autodiff, watched
# by autodiff_calls under any name and with jit off).
_GRU = [(nnx.GRUCell, "__call__"), (linen.GRUCell, "__call__")]
_ATTENTION = [(jax.nn, "dot_product_attention"), (nnx, "dot_product_attention")]


_explain = explainer(_MESSAGES, HINTS)


JAX = lab_framework(HINTS, _explain)


def _autodiff_linear_relu(**arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Exercise 1's answer by ``jax.vjp``: the vector-Jacobian product of dy, in float64."""
    with jax.enable_x64():
        x, W, b, dy = (
            jnp.asarray(arrays[k], jnp.float64) for k in ("x", "W", "b", "dy")
        )
        _, vjp = jax.vjp(lambda x, W, b: jax.nn.relu(x @ W + b), x, W, b)
        return tuple(np.asarray(g) for g in vjp(dy))


def _dot_product_attention(**arrays: np.ndarray) -> np.ndarray:
    """Exercise 3's answer by ``jax.nn.dot_product_attention``, in float64.

    It wants (B, T, heads, size) and one size for queries, keys and values: one head, and
    q, k, v padded with zeros to a common size (zeros change no dot product; the scale is
    given, 1/sqrt(d) of the real d; the padded value columns are dropped). Its softmax runs
    in float32 whatever the inputs: the answer is good to about 1e-6, well inside the check's
    tolerance.
    """
    q, k, v, mask = (arrays[n] for n in ("q", "k", "v", "mask"))
    d, dv = q.shape[-1], v.shape[-1]
    size = max(d, dv)

    def padded(a: np.ndarray) -> jax.Array:
        a = np.pad(a, [(0, 0), (0, 0), (0, size - a.shape[-1])])
        return jnp.asarray(a[:, :, None, :], jnp.float64)  # (B, L, 1 head, size)

    with jax.enable_x64():
        out = jax.nn.dot_product_attention(
            padded(q),
            padded(k),
            padded(v),
            mask=jnp.asarray(mask)[:, None],  # (B, 1 head, T, S)
            scale=1 / np.sqrt(d),
        )
        return np.asarray(out)[:, :, 0, :dv]


# The checks, bound to this framework. Call them with the student's function.
check_linear_relu_backward = partial(
    lab02.check_linear_relu_backward,
    fw=JAX,
    weights_out_in=False,
    autodiff=_autodiff_linear_relu,
    watch_answer_keys=autodiff_calls,
)
check_gru_step = partial(
    lab02.check_gru_step,
    fw=JAX,
    weights_out_in=False,
    watch_answer_keys=partial(recording, _GRU),
)
check_attention = partial(
    lab02.check_attention,
    fw=JAX,
    library=_dot_product_attention,
    watch_answer_keys=partial(recording, _ATTENTION),
)


check_attention_backward = partial(
    lab02.check_attention_backward, fw=JAX, watch_answer_keys=autodiff_calls
)
