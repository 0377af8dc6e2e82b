"""Lab 6 self-checks for JAX notebooks: ``H.lab06.check_length_mask(length_mask)`` etc.

The checks are :mod:`helpers.labs.lab06.checks` and, for exercises 3 and 5, :mod:`~.rope` and
:mod:`~.reverse`, shared with PyTorch; this module only says how arrays go in and come out, and
runs exercise 3 under ``jax.jit`` too (a Python ``int()`` of a traced position fails there).
Neither JAX nor Flax has a RoPE function of its own (none in ``jax.nn``, ``flax.nnx`` or
``flax.linen`` in the installed versions), so exercise 3 has no answer key to refuse.
``tests/labs/test_lab06.py`` asserts that the numpy answers equal ``H.text``'s ``masked_mean``
and :mod:`helpers.data.text`'s vocabulary on the same cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

import jax

from helpers.jax.labkit import TRACER_ERRORS, lab_framework
from helpers.labs.kit import Hints, explainer
from helpers.labs.lab06 import checks as lab06
from helpers.labs.lab06 import reverse, rope

__all__ = [
    "check_apply_rope",
    "check_encode_splits",
    "check_length_mask",
    "check_masked_mean",
    "check_reverse_padded",
]

# JAX words several hints its own way and adds two of its own: take_along_axis's index axes,
# and a traced position turned into a Python number under jax.jit.
HINTS = Hints(
    lab06.HINTS,
    {
        "fill_polarity": "jnp.where(mask, 0, x) zeroes the real tokens (where takes its "
        "second argument where the mask is True): keep them and zero the padding, "
        "jnp.where(mask[..., None], x, 0), then sum",
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
check_masked_mean = partial(lab06.check_masked_mean, fw=JAX)
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
