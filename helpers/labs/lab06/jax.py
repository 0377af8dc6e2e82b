"""Lab 6 self-checks for JAX notebooks: ``H.lab06.check_length_mask(length_mask)`` etc.

The checks are :mod:`helpers.labs.lab06.checks` and, for exercises 2, 3 and 5,
:mod:`~.attention_pool`, :mod:`~.rope` and :mod:`~.reverse`, shared with PyTorch; this module
only says how arrays go in and come out, how to differentiate the student's pooling
(``jax.grad``), runs exercises 2 and 3 under ``jax.jit`` too (boolean indexing, or a Python
``int()`` of a traced value, fails there), and refuses JAX's and Flax's attention in
exercise 2 (``jax.nn.dot_product_attention``, ``nnx.dot_product_attention``,
``nnx.MultiHeadAttention``, and under any name through the functions they call by their
module's globals: ``jax.nn``'s XLA path, Flax's ``dot_product_attention_weights``).
Neither JAX nor Flax has a RoPE function of its own (none in ``jax.nn``, ``flax.nnx`` or
``flax.linen`` in the installed versions), so exercise 3 has no answer key to refuse.
``tests/labs/test_lab06.py`` asserts that the numpy answers equal :mod:`helpers.data.text`'s
vocabulary on the same cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

import flax.linen.attention as _linen_attention
import flax.nnx.nn.attention as _nnx_attention
import jax
import jax._src.nn.functions as _jax_nn  # jax.nn.dot_product_attention's XLA path
from flax import nnx

from helpers.jax.labkit import TRACER_ERRORS, lab_framework
from helpers.labs.kit import Hints, explainer, recording
from helpers.labs.lab06 import attention_pool, reverse, rope
from helpers.labs.lab06 import checks as lab06

__all__ = [
    "check_apply_rope",
    "check_attention_pool",
    "check_encode_splits",
    "check_length_mask",
    "check_reverse_padded",
]

# JAX words several hints its own way and adds two of its own: take_along_axis's index axes,
# and a traced position turned into a Python number under jax.jit.
HINTS = Hints(
    lab06.HINTS,
    {
        "pool_answer_key": "write the masked softmax yourself (scores, -inf at padding, "
        "softmax, weighted sum): with a length-1 query, jax.nn.dot_product_attention and "
        "Flax's dot_product_attention (nnx or linen) compute this pooling (scaled by "
        "1/sqrt(D)), nnx.MultiHeadAttention one with learned projections, and calling "
        "them, under any name, fails the check",
        "pool_traced": "under jax.jit the mask is traced: x[mask] (its shape depends on the "
        "mask's values), a Python if or loop over its values, int() or np.asarray of it "
        "fails there; keep the (B, T) shape and mask with jnp.where(mask, s, -jnp.inf)",
        "list_result": "a Python list is not a jax.Array: compute the whole batch with "
        "jax.numpy, or turn the rows you built into one array, jnp.asarray(rows) for "
        "numbers, jnp.stack(rows) for arrays",
        "ids_numpy": "convert the numpy ids to a jax.Array before returning them: "
        "jnp.asarray(ids)",
        "reverse_numpy": "return a jax.Array, not a numpy array: build the index with "
        "jnp.arange and gather with jnp.take_along_axis (or jnp.asarray(result))",
        "reverse_index_axes": "jnp.take_along_axis(x, index, axis=1) needs an index with "
        "as many axes as x: give the (B, T) index size-1 trailing axes, "
        "index.reshape(index.shape + (1,) * (x.ndim - 2)), and it broadcasts over them",
        "reverse_dtype": "keep the dtype of x (float32 here, int32 for ids): gather without "
        "astype(jnp.float16) or another conversion",
        "rope_dtype": "return float32, x's dtype (not an integer array): an "
        "astype(jnp.float16) or a bfloat16 table changes the result's dtype; build the "
        "angles in float32, or end with astype(x.dtype)",
        "rope_complex": "turn the complex result back into real pairs of x's shape: "
        "jnp.stack([z.real, z.imag], axis=-1).reshape(x.shape) puts the real parts at the "
        "even features and the imaginary parts at the odd ones",
        "rope_traced": "under jax.jit the positions are traced, not numbers: int(...), "
        ".item(), .tolist(), np.asarray or a Python loop over their values fails there; "
        "compute with them as an array, positions[:, None] * freqs",
        "reverse_no_feature_axis": "the check also runs a (B, T) batch of token ids, with "
        "no feature axis: x.shape[2] does not exist there; give the index x.ndim - 2 "
        "trailing axes, index.reshape(index.shape + (1,) * (x.ndim - 2)), or index with "
        "x[jnp.arange(B)[:, None], index], which fits any x",
    },
)

JAX = lab_framework(HINTS, explainer({}, HINTS))
# Exercise 5's errors: an index without the feature axis, lengths (B,) against arange(T).
REVERSE = replace(
    JAX,
    explain=explainer(
        {
            r"indices and arr must have the same number of dimensions": (
                "reverse_index_axes"
            ),
            r"got incompatible shapes for broadcasting": "reverse_broadcast",
            r"tuple index out of range": "reverse_no_feature_axis",  # x.shape[2] of ids
        },
        HINTS,
    ),
)

check_length_mask = partial(lab06.check_length_mask, fw=JAX)
check_encode_splits = partial(lab06.check_encode_splits, fw=JAX)
check_reverse_padded = partial(reverse.check_reverse_padded, fw=REVERSE)

# Exercise 3: cos/sin tables without a heads axis, or pairs sliced on another axis, do not
# broadcast; a traced position turned into a Python number fails under jax.jit.
ROPE = replace(
    JAX,
    explain=explainer(
        {
            r"[Tt]oo many indices: array is 1-dimensional|"
            r"shapes=\[\(\d+,\), \(\d+,\)\]": "rope_outer",
            r"[Ii]ncompatible shapes for broadcasting|cannot reshape array": "rope_axes",
            r"[Tt]racer|concrete value": "rope_traced",
        },
        HINTS,
        types=dict.fromkeys(TRACER_ERRORS, "rope_traced"),
    ),
)


def _jit(fn: Callable) -> Callable:
    """``fn`` under ``jax.jit``, base (if given) closed over as a Python number."""

    def run(x, positions, *base):
        return jax.jit(lambda x, positions: fn(x, positions, *base))(x, positions)

    return run


check_apply_rope = partial(rope.check_apply_rope, fw=ROPE, jit=_jit)


# Exercise 2: x[mask] or a Python value of the mask fails under jax.jit; a (B, T) array against
# (B, T, D), query @ x.
POOL = replace(
    JAX,
    explain=explainer(
        {
            r"[Tt]racer|concrete|NonConcreteBooleanIndex": "pool_traced",
            r"[Ii]ncompatible shapes for broadcasting": "pool_broadcast",
            r"dot_general requires contracting dimensions": "pool_matmul",
        },
        HINTS,
        types=dict.fromkeys(
            (*TRACER_ERRORS, "NonConcreteBooleanIndexError"), "pool_traced"
        ),
    ),
)
# The functions that the public ones call through their module's globals are watched too, so
# that a name imported before the check (from jax.nn import dot_product_attention) or Flax
# Linen's dot_product_attention is seen as well.
_ATTENTION = [
    (jax.nn, "dot_product_attention", "jax.nn.dot_product_attention"),
    (nnx, "dot_product_attention", "nnx.dot_product_attention"),
    (nnx.MultiHeadAttention, "__call__", "nnx.MultiHeadAttention"),
    (_jax_nn, "_dot_product_attention_xla", "jax.nn.dot_product_attention"),
    (_nnx_attention, "dot_product_attention_weights", "Flax's dot_product_attention"),
    (_linen_attention, "dot_product_attention_weights", "Flax's dot_product_attention"),
]


def _pool_grads(fn, x, mask, query, w):
    """``jax.grad`` of ``sum(w * fn(x, mask, query))`` for x and query."""
    return jax.grad(lambda x, q: (fn(x, mask, q) * w).sum(), argnums=(0, 1))(x, query)


check_attention_pool = partial(
    attention_pool.check_attention_pool,
    fw=POOL,
    grad=_pool_grads,
    watch=partial(recording, _ATTENTION),
    jit=jax.jit,
)
