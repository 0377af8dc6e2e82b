"""Lab 2 self-checks for PyTorch notebooks: ``H.lab02.check_gru_step(gru_step)`` etc.

The checks are :mod:`helpers.labs.lab02.checks`, shared with JAX; this module hands them
tensors and PyTorch's own answers (autograd, ``nn.GRUCell``, ``F.scaled_dot_product_attention``,
all in float64), words the layout-dependent hints for ``W (out, in)``, names the answer keys a
student's function may not call (autograd, the GRU cells, ``F.scaled_dot_product_attention``),
and turns PyTorch's error messages into hints. Exercise 4 (attention's backward pass) is
compared with its float64 numpy reference. Exercises 1 and 4 may not call autograd, under
any name (:func:`helpers.torch.labkit.autodiff_calls` watches it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from helpers.labs.kit import Hints, WatchedCalls, explainer, recording
from helpers.labs.lab02 import checks as lab02
from helpers.torch.labkit import autodiff_calls, function_calls, lab_framework

__all__ = [
    "check_attention",
    "check_attention_backward",
    "check_gru_step",
    "check_linear_relu_backward",
]

# Known mistakes that only PyTorch allows, and PyTorch's wording of layout-dependent ones.
HINTS = Hints(
    lab02.HINTS,
    {
        "weight_transposed": "dW must have W's layout, (out, in): dW = dz.T @ x, with "
        "dz = dy * (z > 0); x.T @ dz is its transpose",
        "dx_transposed_weight": "with W (out, in) the forward is z = x @ W.T + b, so "
        "dx = dz @ W, (B, out) @ (out, in), not dz @ W.T",
        "relu_mask_layout": "W is (out, in) in PyTorch's layout, so the pre-activation is "
        "z = x @ W.T + b; x @ W + b only has the right shape because this layer is square",
        "autodiff_answer_key": "write the backward pass from the formulas, without autograd "
        "(torch.autograd.grad, .backward(), torch.func), which the check compares with: "
        "dz = dy * (z > 0), then dx = dz @ W, dW = dz.T @ x, db = dz.sum(0)",
        "gru_answer_key": "write the step from the equations, without nn.GRUCell, "
        "nn.GRU or torch.gru_cell (under any name), which the check compares with: "
        "gi = x @ W_ih.T + b_ih, gh = h @ W_hh.T + b_hh, then gi.chunk(3, dim=-1) and "
        "gh.chunk(3, dim=-1)",
        "attention_answer_key": "write the attention out, without "
        "F.scaled_dot_product_attention, which the check compares with: "
        "q @ k.transpose(-2, -1) / math.sqrt(d), masked_fill(~mask, float('-inf')), "
        "torch.softmax(scores, dim=-1) @ v",
        "attention_backward_answer_key": "write the gradients from the formulas, without "
        "autograd (torch.autograd.grad, .backward(), torch.func): P = the softmax of the "
        "masked scores, dv = P.mT @ d_out, dP = d_out @ v.mT, "
        "dZ = P * (dP - (dP * P).sum(-1, keepdim=True)), dq = dZ @ k / math.sqrt(d), "
        "dk = dZ.mT @ q / math.sqrt(d)",
        "gru_reshape_not_transpose": "W_ih.reshape(D, 3H) (or .view) has W_ih.T's shape but "
        "not its entries: reshape keeps the memory order and mixes the rows; transpose "
        "with W_ih.T (gi = x @ W_ih.T + b_ih, gh = h @ W_hh.T + b_hh)",
        "gru_split": "cut gi and gh into their 3 gates along the last axis (3H): "
        "gi.chunk(3, dim=-1), or gi.split(H, dim=-1); torch.split's number is each "
        "piece's size, not how many",
        "changed_input": "do not write into the caller's tensors (t[...] = 0, *=, /=, "
        "mul_, masked_fill_): build new ones, e.g. dz = dy * (z > 0), "
        "h_new = (1 - z) * n + z * h, q / math.sqrt(d)",
        "shapes": "the shapes do not fit; print the shapes of both operands. In PyTorch's "
        "layout a weight is (out, in), so a batch x (B, in) is multiplied by W.T (the GRU's "
        "x @ W_ih.T, with W_ih (3H, D), and h @ W_hh.T); a batch "
        "of matrices k (B, S, d) is transposed with k.transpose(-2, -1) or k.mT, not k.T "
        "(which reverses every axis); a sum kept for broadcasting needs keepdim=True",
        "dtype_mismatch": "keep every tensor in the inputs' dtype (float32): no .double() "
        "and no dtype=torch.float64 (in torch.softmax or elsewhere); turn a bool mask into "
        "numbers with .to(x.dtype) (or .float())",
        "sqrt_of_int": "torch.sqrt takes a tensor, not a Python number such as "
        "q.shape[-1]: divide by math.sqrt(d) (or multiply by d ** -0.5)",
        "dim_not_axis": "PyTorch names the axis dim: gi.chunk(3, dim=-1), "
        "gi.split(H, dim=-1), torch.softmax(scores, dim=-1) (torch.split takes no axis=)",
        "bool_invert": "a bool mask is inverted with ~mask (or mask.logical_not()), "
        "not 1 - mask",
    },
)

# PyTorch error messages (a regular expression on the message) -> the hint that fixes them.
_ERRORS = {
    r"shapes cannot be multiplied|must match the size of tensor": "shapes",
    r"Expected size for first two dimensions of batch2 tensor": "shapes",
    r"same dtype|expected scalar type|dtype.* but got|found dtype": "dtype_mismatch",
    r"with a bool tensor is not supported": "bool_invert",
    r"values to unpack \(expected 3": "gru_split",  # r, z, n = (not 3 pieces)
    r"sqrt\(\): argument 'input' .*must be Tensor": "sqrt_of_int",
    r"unexpected keyword argument 'axis'": "dim_not_axis",
}

# What exercises 2 and 3 may not call: the library's own version (1 and 4: autodiff, watched
# by autodiff_calls under any name). The GRU modules by name; the functions they run
# (torch.gru_cell, torch.gru), by function_calls under any name.
_GRU = [(torch.nn.GRUCell, "forward"), (torch.nn.GRU, "forward")]
_GRU_FUNCTIONS = ("gru_cell", "gru")
_ATTENTION = [(F, "scaled_dot_product_attention")]


def _gru_function(name: str) -> str | None:
    name = name.split(".")[0]  # gru_cell.default
    return f"torch.{name}" if name in _GRU_FUNCTIONS else None


@contextmanager
def _gru_calls() -> Iterator[WatchedCalls]:
    """The GRU modules' and functions' calls while the block runs."""
    with recording(_GRU) as calls, function_calls(_gru_function, calls):
        calls.complete = True
        yield calls


_explain = explainer(_ERRORS, HINTS)


TORCH = lab_framework(HINTS, _explain)


def _float64(**arrays: np.ndarray) -> dict[str, torch.Tensor]:
    return {
        k: torch.from_numpy(a) if a.dtype == bool else torch.from_numpy(a).double()
        for k, a in arrays.items()
    }


def _autodiff_linear_relu(**arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Exercise 1's answer by autograd: the vector-Jacobian product of dy."""
    t = _float64(**arrays)
    x, W, b = (t[k].requires_grad_(True) for k in ("x", "W", "b"))
    y = torch.relu(x @ W.T + b)  # (B, out)
    dx, dW, db = torch.autograd.grad(y, (x, W, b), grad_outputs=t["dy"])
    return dx.numpy(), dW.numpy(), db.numpy()


def _gru_cell(**arrays: np.ndarray) -> np.ndarray:
    """Exercise 2's answer by ``nn.GRUCell`` loaded with the case's weights, in float64."""
    t = _float64(**arrays)
    cell = torch.nn.GRUCell(t["x"].shape[1], t["h"].shape[1], dtype=torch.float64)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(
                t[name.replace("weight", "W").replace("bias", "b")]
            )
        return cell(t["x"], t["h"]).numpy()


def _sdpa(**arrays: np.ndarray) -> np.ndarray:
    """Exercise 3's answer by ``F.scaled_dot_product_attention`` (bool mask: True = attend)."""
    t = _float64(**arrays)
    return F.scaled_dot_product_attention(
        t["q"], t["k"], t["v"], attn_mask=t["mask"]
    ).numpy()


# The checks, bound to this framework. Call them with the student's function.
check_linear_relu_backward = partial(
    lab02.check_linear_relu_backward,
    fw=TORCH,
    weights_out_in=True,
    autodiff=_autodiff_linear_relu,
    watch_answer_keys=autodiff_calls,
)
check_gru_step = partial(
    lab02.check_gru_step,
    fw=TORCH,
    weights_out_in=True,
    library=_gru_cell,
    watch_answer_keys=_gru_calls,
)
check_attention = partial(
    lab02.check_attention,
    fw=TORCH,
    library=_sdpa,
    watch_answer_keys=partial(recording, _ATTENTION),
)
check_attention_backward = partial(
    lab02.check_attention_backward, fw=TORCH, watch_answer_keys=autodiff_calls
)
