"""Lab 6 self-checks for PyTorch notebooks: ``H.lab06.check_length_mask(length_mask)`` etc.

The checks are :mod:`helpers.labs.lab06.checks` and, for exercises 2, 3 and 5,
:mod:`~.attention_pool`, :mod:`~.rope` and :mod:`~.reverse`, shared with JAX; this module only
says how tensors go in and come out, how to differentiate the student's pooling
(``torch.autograd.grad``), how PyTorch words an out-of-range index, and how to see PyTorch's
own attention (``F.scaled_dot_product_attention``, ``nn.MultiheadAttention``) and RoPE (the
ONNX ``RotaryEmbedding`` op) called under any name.
``tests/labs/test_lab06.py`` asserts that the numpy answers equal ``F.scaled_dot_product_attention``
(scale 1), :mod:`helpers.data.text`'s vocabulary and the ONNX RoPE op on the same cases.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import torch

from helpers.labs.kit import Hints, explainer
from helpers.labs.lab06 import attention_pool, reverse, rope
from helpers.labs.lab06 import checks as lab06
from helpers.torch.labkit import function_calls, lab_framework

__all__ = [
    "check_apply_rope",
    "check_attention_pool",
    "check_encode_splits",
    "check_length_mask",
    "check_reverse_padded",
]

# PyTorch words several shared hints its own way (pad_sequence's) and adds mistakes JAX cannot
# make: a write into an input tensor, and a call of its own attention or RoPE op.
HINTS = Hints(
    lab06.HINTS,
    {
        "in_place": "your function changed a tensor it was given (x.masked_fill_(...), "
        "x[~mask] = 0, x *= m, x[..., 0::2] = ..., lengths -= 1, or another method ending "
        "in _ such as mul_ or clamp_): the caller's batch would change under it; compute "
        "new tensors (x.masked_fill without the _, scores.masked_fill_ on the new scores, "
        "torch.stack of the rotated pairs, lengths - 1)",
        "pool_bool_mask": "masked_fill and torch.where take a boolean mask: fill the "
        "padded scores with scores.masked_fill(~mask, -torch.inf), or torch.where(mask, "
        "scores, -torch.inf), without converting the mask to float first",
        "pool_bool_sub": "1 - mask is not defined for a bool tensor: the padding is ~mask "
        "(True at padding), and scores.masked_fill(~mask, -torch.inf) sets it to -inf "
        "(a float mask, mask.float(), is needed only for arithmetic such as a log)",
        "pool_broadcast": "a (B, T) tensor (the weights, the mask) and the (B, T, D) x do "
        "not broadcast: give it a trailing axis, p[..., None] * x or mask[..., None]; and "
        "a max over the time axis of the (B, T) scores needs keepdim=True, "
        "s.max(1, keepdim=True).values (or s.amax(1, keepdim=True)), to subtract it "
        "from each row",
        "pool_answer_key": "write the masked softmax yourself (scores, -inf at padding, "
        "softmax, weighted sum): with a length-1 query, F.scaled_dot_product_attention "
        "computes this pooling (scaled by 1/sqrt(D) unless scale=1), nn.MultiheadAttention "
        "one with learned projections, and calling them, under any name, fails the check",
        "list_result": "a Python list is not a tensor: compute the whole batch with tensor "
        "operations, or turn the rows you built into one tensor, torch.tensor(rows) for "
        "numbers, torch.stack(rows) for tensors",
        "ids_numpy": "convert the numpy ids to a tensor before returning them: "
        "torch.from_numpy(ids)",
        "reverse_numpy": "return a tensor, not a numpy array: build the index with "
        "torch.arange and gather with it (x.gather(1, index), the index expanded over the "
        "features), or torch.from_numpy(result)",
        "reverse_index_axes": "x.gather(1, index) needs an index with as many axes as x: "
        "give the (B, T) index x.ndim - 2 trailing axes and expand it, "
        "index.view(*index.shape, *[1] * (x.ndim - 2)).expand(x.shape), which also works "
        "for (B, T) token ids (index[..., None] would not)",
        "reverse_no_feature_axis": "the check also runs a (B, T) batch of token ids, with "
        "no feature axis: x.shape[2] does not exist there, and index[..., None] has one "
        "axis too many; index.view(*index.shape, *[1] * (x.ndim - 2)).expand(x.shape) fits "
        "any x, and so does x[torch.arange(B)[:, None], index]",
        "ids_transposed": "your ids are (max_len, N), one column per review: "
        "pad_sequence(rows) puts the steps first unless batch_first=True; return one row per "
        "review, (N, max_len)",
        "pad_longest": "your rows stop at the longest review of the split, not at max_len "
        "(pad_sequence pads only that far): pad every row with 0 up to max_len, e.g. fill "
        "torch.zeros(N, max_len, dtype=torch.long) row by row",
        "reverse_negative_step": "a tensor takes no negative step (x[b, L - 1::-1] raises): "
        "reverse a row's first L steps with x[b, :L].flip(0)",
        "reverse_dtype": "keep the dtype of x (float32 here, int64 for ids): gather or "
        "index without .double(), .float() or a torch.tensor(...) of float64 numpy",
        "rope_dtype": "return torch.float32, x's dtype (not an integer tensor, nor "
        "float16 or float64): torch.arange(..., dtype="
        "torch.float64) or a float64 NumPy table makes the whole result float64; build the "
        "angles in float32, or end with .to(x.dtype)",
        "rope_complex": "turn the complex result back into real pairs of x's shape: "
        "torch.view_as_real(z) is (..., D/2, 2), then .flatten(-2) puts the real parts at "
        "the even features and the imaginary parts at the odd ones",
        "rope_answer_key": "write the rotation yourself (cos and sin tables, then each pair "
        "turned): torch.onnx.ops.rotary_embedding, PyTorch's ONNX RotaryEmbedding op, is "
        "this exercise's answer, and calling it fails the check",
    },
)

TORCH = lab_framework(HINTS, explainer({}, HINTS))
# Exercise 5's errors: an index without the feature axis, lengths (B,) against arange(T),
# a negative slice step.
REVERSE = replace(
    TORCH,
    explain=explainer(
        {
            r"Index tensor must have the same number of dimensions": "reverse_index_axes",
            r"The size of tensor a \(\d+\) must match the size of tensor b": (
                "reverse_broadcast"
            ),
            r"step must be greater than zero": "reverse_negative_step",
            # (B, T) ids: x.shape[2], or index[..., None].expand(x.shape)
            r"tuple index out of range|must be greater or equal to the number of "
            r"dimensions": "reverse_no_feature_axis",
        },
        HINTS,
    ),
)

check_length_mask = partial(lab06.check_length_mask, fw=TORCH)
check_encode_splits = partial(lab06.check_encode_splits, fw=TORCH)
check_reverse_padded = partial(reverse.check_reverse_padded, fw=REVERSE)


# Exercise 3: cos/sin tables without a heads axis, or pairs sliced on another axis, do not
# broadcast with x (B, T, heads, D/2).
ROPE = replace(
    TORCH,
    explain=explainer(
        {
            r"too many indices for tensor of dimension 1|must match the size of tensor "
            r"b \(\d+\) at non-singleton dimension 0$": "rope_outer",
            r"must match the size of tensor b|shape '\[.*\]' is invalid": "rope_axes",
        },
        HINTS,
    ),
)


def _rope_function(name: str) -> str | None:
    """PyTorch's ONNX RotaryEmbedding op under any name: torch.onnx.ops.rotary_embedding,
    torch.ops.onnx.RotaryEmbedding(.opset23) and the custom op object itself all reach
    ``__torch_function__`` as ``RotaryEmbedding.opset23``. (torch.nn and torch.nn.functional
    have no RoPE in this PyTorch.)"""
    if name.startswith("RotaryEmbedding") or "rotary_embedding" in name:
        return "torch.onnx.ops.rotary_embedding (PyTorch's RoPE)"
    return None


check_apply_rope = partial(
    rope.check_apply_rope, fw=ROPE, watch=partial(function_calls, _rope_function)
)


# Exercise 2: the library's attention under any name (nn.MultiheadAttention runs
# F.multi_head_attention_forward, or torch._native_multi_head_attention on its fast path).
_ATTENTION = ("scaled_dot_product_attention", "multi_head_attention_forward")
_ATTENTION += ("_native_multi_head_attention",)


def _attention_function(name: str) -> str | None:
    if name.split(".")[0] in _ATTENTION:
        return f"PyTorch's attention ({name.split('.')[0]})"
    return None


def _pool_grads(fn, x, mask, query, w):
    """``torch.autograd.grad`` of ``sum(w * fn(x, mask, query))`` for x and query (None:
    no gradient reaches it)."""
    x, query = x.clone().requires_grad_(True), query.clone().requires_grad_(True)
    out = fn(x, mask, query)
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        return None, None
    grads = torch.autograd.grad((out * w).sum(), [x, query], allow_unused=True)
    return [None if g is None else g.numpy() for g in grads]


# Exercise 2: masked_fill or where with a float mask, 1 - a bool mask, a (B, T) array against
# (B, T, D), query @ x.
POOL = replace(
    TORCH,
    explain=explainer(
        {
            r"masked_fill_? only supports boolean masks|where expected condition to be a "
            r"boolean": "pool_bool_mask",
            r"with a bool tensor is not supported": "pool_bool_sub",
            r"must match the size of tensor b": "pool_broadcast",
            r"first two dimensions of batch2|mat1 and mat2 shapes cannot be multiplied|"
            r"size mismatch|batch2 must be a 3D": "pool_matmul",
        },
        HINTS,
    ),
)
check_attention_pool = partial(
    attention_pool.check_attention_pool,
    fw=POOL,
    grad=_pool_grads,
    watch=partial(function_calls, _attention_function),
)
