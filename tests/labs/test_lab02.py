"""Lab 2's typical mistakes: each one fails its check with the hint written for it.

``MISTAKES`` lists, per framework, (exercise, a wrong solution, the key of the hint it must get).
Every hint the lab declares (``HINTS`` in ``helpers/labs/lab02/torch.py`` and ``jax.py``,
which include the shared ones of ``checks.py``) must be produced by at least one entry, so a
hint whose mistake is never fed, or an entry deleted from this table, fails a test.

Also here: the numpy references (which compute each mistake's result) equal the frameworks'
own implementations on the checks' inputs; every mistake changes those results well beyond
the checks' tolerance; correct variants (a mask written as y > 0, -1e9 instead of -inf, jitted
functions) pass; the answer keys a check watches are restored after it;
and the tuple results of exercises 1 and 4 are rejected when 3 % off or made of the wrong
types (the generic near-miss test of test_labs.py cannot scale a tuple).
"""

from __future__ import annotations

import itertools
import math
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from flax import linen, nnx
from jax import vjp as jax_vjp_imported
from jax.experimental.jet import jet as jet_imported
from labtools import checks as lab_checks
from labtools import (
    exercise_functions,
    mistake_table_tests,
    source,
)
from torch import gru_cell as gru_cell_imported
from torch.autograd import grad as autograd_imported
from torch.autograd.forward_ad import dual_level, make_dual, unpack_dual

from helpers.labs import CheckFailed
from helpers.labs.lab02 import attention as lab02_attention
from helpers.labs.lab02 import attention_backward as lab02_attention_backward
from helpers.labs.lab02 import backprop as lab02_backprop
from helpers.labs.lab02 import checks as lab02
from helpers.labs.lab02 import gru as lab02_gru
from helpers.labs.lab02 import jax as lab02_jax
from helpers.labs.lab02 import torch as lab02_torch

LAB = "lab02"


# --- PyTorch -------------------------------------------------------------------------------------
def _t_backward(mask=lambda z, y, x, dy, W: z > 0, grads=None):
    """linear_relu_backward with dz = dy * mask(...) and grads(dz, x, W) -> (dx, dW, db)."""
    grads = grads or (lambda dz, x, W: (dz @ W, dz.T @ x, dz.sum(0)))

    def linear_relu_backward(x, W, b, dy):
        z = x @ W.T + b
        y = torch.relu(z)
        return grads(dy * mask(z, y, x, dy, W), x, W)

    return linear_relu_backward


def _t_in_place_mask(x, W, b, dy):
    z = x @ W.T + b
    dy[z <= 0] = 0  # writes into the caller's dy
    return dy @ W, dy.T @ x, dy.sum(0)


def _t_double_mask(x, W, b, dy):
    dz = dy * (x @ W.T + b > 0).double()
    return dz @ W, dz.T @ x, dz.sum(0)


def _t_attention(
    *,
    scale=lambda d, dv: 1 / math.sqrt(d),
    masked=lambda s, mask: s.masked_fill(~mask, float("-inf")),
    dim=-1,
    after=None,
    output=lambda out, q: out,
):
    def attention(q, k, v, mask):
        scores = q @ k.transpose(-2, -1) * scale(q.shape[-1], v.shape[-1])
        weights = torch.softmax(masked(scores, mask), dim=dim)
        if after is not None:
            weights = after(weights, mask)
        return output(weights @ v, q)

    return attention


# --- mistakes a student pass found (PyTorch) ---
def _t_autograd(x, W, b, dy):
    x, W, b = (t.clone().requires_grad_(True) for t in (x, W, b))
    return torch.autograd.grad(torch.relu(x @ W.T + b), (x, W, b), dy)


def _t_backward_call(x, W, b, dy):
    x, W, b = (t.clone().requires_grad_(True) for t in (x, W, b))
    torch.relu(x @ W.T + b).backward(dy)
    return x.grad, W.grad, b.grad


_jvp = torch.func.jvp  # as after `from torch.func import jvp`: forward mode


def _t_forward_mode(x, W, b, dy):
    """dx column by column, each a Jacobian-vector product (forward mode)."""
    layer = lambda x: torch.relu(x @ W.T + b)  # noqa: E731
    cols = [
        _jvp(layer, (x,), (torch.eye(x.shape[1])[i].expand_as(x),))[1]
        for i in range(x.shape[1])
    ]
    dx = torch.stack([(c * dy).sum(1) for c in cols], 1)
    dz = dy * (x @ W.T + b > 0)
    return dx, dz.T @ x, dz.sum(0)


def _t_mask_jax_layout(x, W, b, dy):
    dz = dy * (x @ W + b > 0)  # JAX's forward; the layer is square in the first case
    return dz @ W, dz.T @ x, dz.sum(0)


def _t_own_causal(s, m):
    return s.masked_fill(~torch.ones_like(m).tril(), float("-inf"))


def _t_scale_by_length(q, k, v, mask):
    scores = q @ k.mT / math.sqrt(q.shape[1])  # T, not d
    return torch.softmax(scores.masked_fill(~mask, -math.inf), dim=-1) @ v


def _t_attention_backward(
    *,
    scale=lambda d: 1 / math.sqrt(d),
    grad_scale=None,
    masked=lambda s, mask: s.masked_fill(~mask, float("-inf")),
    dim=-1,
    ds=lambda P, dP: P * (dP - (dP * P).sum(-1, keepdim=True)),
    dk=lambda dZ, q: dZ.mT @ q,
    dv=lambda P, d_out: P.mT @ d_out,
    result=lambda dq, dk, dv: (dq, dk, dv),
):
    """attention_backward with each step replaceable: the scales, mask, dZ, dk, dv, result."""

    def attention_backward(q, k, v, mask, d_out):
        d = q.shape[-1]
        g = scale(d) if grad_scale is None else grad_scale(d)
        P = torch.softmax(masked(q @ k.mT * scale(d), mask), dim=dim)
        dZ = ds(P, d_out @ v.mT)
        return result(dZ @ k * g, dk(dZ, q) * g, dv(P, d_out))

    return attention_backward


def _t_attention_autograd(q, k, v, mask, d_out):
    qkv = [t.clone().requires_grad_(True) for t in (q, k, v)]
    out = F.scaled_dot_product_attention(*qkv, attn_mask=mask)
    return torch.autograd.grad(out, qkv, grad_outputs=d_out)


def _t_attention_backward_call(q, k, v, mask, d_out):
    qkv = [t.clone().requires_grad_(True) for t in (q, k, v)]
    F.scaled_dot_product_attention(*qkv, attn_mask=mask).backward(d_out)
    return tuple(t.grad for t in qkv)


def _t_attention_func_vjp(q, k, v, mask, d_out):
    def forward(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    _, vjp = torch.func.vjp(forward, q, k, v)
    return vjp(d_out)


def _t_attention_in_place(q, k, v, mask, d_out):
    q /= math.sqrt(q.shape[-1])  # writes into the caller's q
    P = torch.softmax((q @ k.mT).masked_fill(~mask, float("-inf")), dim=-1)
    dZ = P * ((d_out @ v.mT) - ((d_out @ v.mT) * P).sum(-1, keepdim=True))
    return dZ @ k / math.sqrt(k.shape[-1]), dZ.mT @ q, P.mT @ d_out


def _t_attention_dq_transposed(q, k, v, mask, d_out):
    scale = 1 / math.sqrt(q.shape[-1])
    P = torch.softmax((q @ k.mT * scale).masked_fill(~mask, float("-inf")), dim=-1)
    dP = d_out @ v.mT
    dZ = P * (dP - (dP * P).sum(-1, keepdim=True))
    return dZ.mT @ k * scale, dZ.mT @ q * scale, P.mT @ d_out  # dq: dZ, not dZ^T


def _t_attention_after_softmax(q, k, v, mask, d_out):
    scale = 1 / math.sqrt(q.shape[-1])
    P = torch.softmax(q @ k.mT * scale, dim=-1) * mask  # masked after: rows sum to < 1
    dP = d_out @ v.mT
    dZ = P * (dP - (dP * P).sum(-1, keepdim=True))
    return dZ @ k * scale, dZ.mT @ q * scale, P.mT @ d_out


def _t_attention_scale_dv(q, k, v, mask, d_out):
    scale = lambda d: 1 / math.sqrt(v.shape[-1])  # noqa: E731  dv, not d
    return _t_attention_backward(scale=scale)(q, k, v, mask, d_out)


def _t_attention_dp_untransposed(q, k, v, mask, d_out):
    scale = 1 / math.sqrt(q.shape[-1])
    P = torch.softmax((q @ k.mT * scale).masked_fill(~mask, float("-inf")), dim=-1)
    dP = d_out @ v  # (B, T, dv) @ (B, S, dv): v not transposed
    dZ = P * (dP - (dP * P).sum(-1, keepdim=True))
    return dZ @ k * scale, dZ.mT @ q * scale, P.mT @ d_out


def _t_attention_grad_imported(q, k, v, mask, d_out):
    """autograd under a name imported before the check (from torch.autograd import grad)."""
    qkv = [t.clone().requires_grad_(True) for t in (q, k, v)]
    out = F.scaled_dot_product_attention(*qkv, attn_mask=mask)
    return autograd_imported(out, qkv, grad_outputs=d_out)


def _t_attention_half(q, k, v, mask, d_out):
    """The right formulas in float16, the results turned back into float32."""
    grads = _t_attention_backward()(q.half(), k.half(), v.half(), mask, d_out.half())
    return tuple(g.float() for g in grads)


# --- found by a third student pass (the autodiff watcher); each passed ---
def _t_forward_ad_imported(x, W, b, dy):
    """dx column by column in forward mode, make_dual imported by name before the check."""
    cols = []
    with dual_level():
        for e in torch.eye(x.shape[1]):
            dual = make_dual(x, e.expand_as(x).contiguous())
            cols.append(unpack_dual(torch.relu(dual @ W.T + b)).tangent)
    dz = dy * (x @ W.T + b > 0)
    return torch.stack([(c * dy).sum(1) for c in cols], 1), dz.T @ x, dz.sum(0)


def _t_backward_in_thread(x, W, b, dy):
    """Tensor.backward in another thread, where the check's TorchFunctionMode is not."""
    x, W, b = (t.clone().requires_grad_(True) for t in (x, W, b))
    worker = threading.Thread(target=torch.relu(x @ W.T + b).backward, args=(dy,))
    worker.start()
    worker.join()
    return x.grad, W.grad, b.grad


_t_compiled_grad = torch.compile(
    torch.func.grad(
        lambda x, W, b, dy: (torch.relu(x @ W.T + b) * dy).sum(), argnums=(0, 1, 2)
    ),
    backend="aot_eager",
)


def _t_compiled_func_grad(x, W, b, dy):
    """torch.func.grad compiled: the compiled graph runs no autograd.grad."""
    return _t_compiled_grad(x, W, b, dy)


# --- found by a fourth student pass: a generic, misleading or empty hint before ---
def _t_half_backward(x, W, b, dy):
    x, W, b, dy = x.half(), W.half(), b.half(), dy.half()
    dz = dy * (x @ W.T + b > 0)
    return (dz @ W).float(), (dz.T @ x).float(), dz.sum(0).float()


def _t_attention_sqrt_int(q, k, v, mask):
    scores = q @ k.mT / torch.sqrt(q.shape[-1])  # an int, not a tensor
    return torch.softmax(scores.masked_fill(~mask, -math.inf), dim=-1) @ v


def _t_attention_softmax_float64(q, k, v, mask):
    scores = (q @ k.mT / math.sqrt(q.shape[-1])).masked_fill(~mask, -math.inf)
    return torch.softmax(scores, dim=-1, dtype=torch.float64) @ v  # float64 @ float32


def _t_attention_dk_from_keys(q, k, v, mask, d_out):
    scale = 1 / math.sqrt(q.shape[-1])
    P = torch.softmax((q @ k.mT * scale).masked_fill(~mask, -math.inf), dim=-1)
    dP = d_out @ v.mT
    dZ = P * (dP - (dP * P).sum(-1, keepdim=True))
    return dZ @ k * scale, dZ.mT @ k * scale, P.mT @ d_out  # dk from k, not q


TORCH_MISTAKES = [
    (
        "linear_relu_backward",
        _t_backward(grads=lambda dz, x, W: (dz @ W, dz.T @ x)),
        "result_tuple3",
    ),
    (
        "linear_relu_backward",
        _t_backward(grads=lambda dz, x, W: (dz @ W, x.T @ dz, dz.sum(0))),
        "weight_transposed",
    ),
    (
        "linear_relu_backward",
        _t_backward(grads=lambda dz, x, W: (dz @ W.T, dz.T @ x, dz.sum(0))),
        "dx_transposed_weight",
    ),
    (
        "linear_relu_backward",
        _t_backward(grads=lambda dz, x, W: (dz @ W, dz.T @ x, dz)),
        "db_not_summed",
    ),
    (
        "linear_relu_backward",
        _t_backward(grads=lambda dz, x, W: (dz @ W, dz.T @ x / len(x), dz.mean(0))),
        "grad_batch_mean",
    ),
    (
        "linear_relu_backward",
        _t_backward(mask=lambda z, y, x, dy, W: 1.0),
        "relu_mask_missing",
    ),
    (
        "linear_relu_backward",
        _t_backward(mask=lambda z, y, x, dy, W: y >= 0),
        "relu_mask_missing",
    ),
    (
        "linear_relu_backward",
        _t_backward(mask=lambda z, y, x, dy, W: y),
        "relu_times_output",
    ),
    (
        "linear_relu_backward",
        _t_backward(mask=lambda z, y, x, dy, W: y * (1 - y)),
        "relu_sigmoid_form",
    ),
    (
        "linear_relu_backward",
        _t_backward(mask=lambda z, y, x, dy, W: 1 - y),
        "relu_sigmoid_form",
    ),
    (
        "linear_relu_backward",
        _t_backward(mask=lambda z, y, x, dy, W: dy > 0),
        "relu_mask_from_dy",
    ),
    (
        "linear_relu_backward",
        _t_backward(mask=lambda z, y, x, dy, W: x > 0),
        "relu_mask_from_x",
    ),
    (
        "linear_relu_backward",
        _t_backward(mask=lambda z, y, x, dy, W: x @ W.T > 0),
        "relu_mask_no_bias",
    ),
    ("linear_relu_backward", _t_in_place_mask, "changed_input"),
    ("linear_relu_backward", _t_double_mask, "dtype_mismatch"),
    ("attention", _t_attention(dim=-2), "softmax_axis"),
    ("attention", _t_attention(dim=0), "softmax_axis"),
    (
        "attention",
        _t_attention(masked=lambda s, m: s.masked_fill(m, float("-inf"))),
        "mask_polarity",
    ),
    (
        "attention",
        _t_attention(masked=lambda s, m: s.masked_fill(~m, 0.0)),
        "mask_zero_fill",
    ),
    (
        "attention",
        _t_attention(masked=lambda s, m: s, after=lambda w, m: w * m),
        "mask_after_softmax",
    ),
    ("attention", _t_attention(scale=lambda d, dv: 1.0), "scale_missing"),
    ("attention", _t_attention(scale=lambda d, dv: 1 / d), "scale_d"),
    ("attention", _t_attention(scale=lambda d, dv: 1 / math.sqrt(dv)), "scale_dv"),
    (
        "attention",
        _t_attention(masked=lambda s, m: s.masked_fill((1 - m).bool(), -math.inf)),
        "bool_invert",
    ),
    # found by a student pass: each failed, or passed, with a generic hint before
    ("linear_relu_backward", _t_autograd, "autodiff_answer_key"),
    ("linear_relu_backward", _t_backward_call, "autodiff_answer_key"),
    # one detector for labs 1 and 2: forward mode under an imported name is autodiff too
    ("linear_relu_backward", _t_forward_mode, "autodiff_answer_key"),
    ("linear_relu_backward", _t_mask_jax_layout, "relu_mask_layout"),
    (
        "linear_relu_backward",
        _t_backward(mask=lambda z, y, x, dy, W: torch.sign(z)),
        "relu_sign",
    ),
    (
        "linear_relu_backward",
        _t_backward(mask=lambda z, y, x, dy, W: z < 0),
        "relu_mask_flipped",
    ),
    (
        "linear_relu_backward",
        _t_backward(grads=lambda dz, x, W: (dz @ W / len(x), dz.T @ x, dz.sum(0))),
        "grad_batch_mean",
    ),
    (
        "linear_relu_backward",
        _t_backward(grads=lambda dz, x, W: (dz @ W, dz.sum(0), dz.T @ x)),
        "result_tuple3",
    ),
    # torch.split's number is a piece's size: right when H = 4, 6 pieces when H = 6
    (
        "attention",
        lambda q, k, v, mask: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        "attention_answer_key",
    ),
    ("attention", _t_scale_by_length, "scale_length"),
    ("attention", _t_attention(scale=lambda d, dv: math.sqrt(d)), "scale_multiplied"),
    (
        "attention",
        _t_attention(
            scale=lambda d, dv: 1.0, output=lambda o, q: o / math.sqrt(q.shape[-1])
        ),
        "scale_after_softmax",
    ),
    ("attention", _t_attention(masked=lambda s, m: s), "mask_ignored"),
    ("attention", _t_attention(masked=_t_own_causal), "mask_own_causal"),
    ("attention", _t_attention(masked=lambda s, m: s + m), "mask_additive"),
    # exercise 4: the backward pass of attention
    (
        "attention_backward",
        _t_attention_backward(grad_scale=lambda d: 1.0),
        "bwd_scale",
    ),
    (
        "attention_backward",
        _t_attention_backward(grad_scale=lambda d: 1 / d),
        "bwd_scale",
    ),
    (
        "attention_backward",
        _t_attention_backward(ds=lambda P, dP: P * dP),
        "bwd_no_rowsum",
    ),
    (
        "attention_backward",
        _t_attention_backward(
            ds=lambda P, dP: P * (dP - (dP * P).sum(-2, keepdim=True))
        ),
        "bwd_rowsum_axis",
    ),
    (
        "attention_backward",
        _t_attention_backward(ds=lambda P, dP: P * (dP - (dP * P).sum())),
        "bwd_rowsum_axis",
    ),
    (
        "attention_backward",
        _t_attention_backward(ds=lambda P, dP: P * (dP - (dP * P).sum(-1))),
        "shapes",  # no keepdim: (B, T) does not broadcast against (B, T, S)
    ),
    (
        "attention_backward",
        _t_attention_backward(ds=lambda P, dP: P * dP - (dP * P).sum(-1, keepdim=True)),
        "bwd_rowsum_no_p",
    ),
    (
        "attention_backward",
        _t_attention_backward(dk=lambda dZ, q: dZ @ q),
        "bwd_dk_transpose",
    ),
    (
        "attention_backward",
        _t_attention_backward(dv=lambda P, d_out: P @ d_out),
        "bwd_dv_transpose",
    ),
    (
        "attention_backward",
        _t_attention_backward(masked=lambda s, m: s),
        "bwd_mask_ignored",
    ),
    (
        "attention_backward",
        _t_attention_backward(masked=lambda s, m: s.masked_fill(~m, 0.0)),
        "bwd_mask_ignored",
    ),
    (
        "attention_backward",
        _t_attention_backward(masked=lambda s, m: s.masked_fill(m, float("-inf"))),
        "mask_polarity",
    ),
    ("attention_backward", _t_attention_backward(scale=lambda d: 1.0), "scale_missing"),
    ("attention_backward", _t_attention_backward(dim=-2), "softmax_axis"),
    (
        "attention_backward",
        _t_attention_backward(result=lambda dq, dk, dv: (dk, dq, dv)),
        "bwd_order",
    ),
    (
        "attention_backward",
        _t_attention_backward(result=lambda dq, dk, dv: (dq, dv, dk)),
        "bwd_order",
    ),
    (
        "attention_backward",
        _t_attention_backward(result=lambda dq, dk, dv: (dq, dk)),
        "result_tuple_qkv",
    ),
    (
        "attention_backward",
        _t_attention_backward(result=lambda dq, dk, dv: (dq.double(), dk, dv)),
        "bwd_dtype",
    ),
    ("attention_backward", _t_attention_in_place, "changed_input"),
    ("attention_backward", _t_attention_autograd, "attention_backward_answer_key"),
    ("attention_backward", _t_attention_backward_call, "attention_backward_answer_key"),
    ("attention_backward", _t_attention_func_vjp, "attention_backward_answer_key"),
    # found by a student pass on exercise 4: each got the generic hint before
    (
        "attention_backward",
        _t_attention_backward(
            ds=lambda P, dP: P * ((dP * P).sum(-1, keepdim=True) - dP)
        ),
        "bwd_sign",
    ),
    (
        "attention_backward",
        _t_attention_backward(result=lambda dq, dk, dv: (dq / 3, dk / 3, dv / 3)),
        "bwd_batch_mean",  # the first case has B = 3
    ),
    (
        "attention_backward",
        _t_attention_backward(ds=lambda P, dP: P * (dP - dP.sum(-1, keepdim=True))),
        "bwd_rowsum_weights",
    ),
    (
        "attention_backward",
        _t_attention_backward(
            ds=lambda P, dP: P * (dP - (dP * P).mean(-1, keepdim=True))
        ),
        "bwd_rowsum_weights",
    ),
    ("attention_backward", _t_attention_dq_transposed, "bwd_dq_transpose"),
    (
        "attention_backward",
        _t_attention_backward(ds=lambda P, dP: dP - (dP * P).sum(-1, keepdim=True)),
        "bwd_rowsum_no_p",
    ),
    ("attention_backward", _t_attention_backward(scale=lambda d: 1 / d), "scale_d"),
    ("attention_backward", _t_attention_scale_dv, "scale_dv"),
    ("attention_backward", _t_attention_dp_untransposed, "shapes"),
    (
        "attention_backward",
        _t_attention_backward(masked=lambda s, m: s.masked_fill(~m, -10.0)),
        "bwd_mask_fill",
    ),
    (
        "attention_backward",
        _t_attention_after_softmax,
        "mask_after_softmax",
    ),
    (
        "attention_backward",
        _t_attention_backward(result=lambda dq, dk, dv: (dq, dk, dv / 2)),
        "bwd_scale",  # dv / sqrt(d), d = 4 in the first case
    ),
    # found by a second student pass: the first passed, the others got the generic hint
    ("attention_backward", _t_attention_grad_imported, "attention_backward_answer_key"),
    ("attention_backward", _t_attention_half, "bwd_precision"),
    (
        "attention_backward",
        _t_attention_backward(masked=lambda s, m: s.masked_fill(~m, -8.0)),
        "bwd_precision",
    ),
    # found by a third student pass: each passed
    ("linear_relu_backward", _t_forward_ad_imported, "autodiff_answer_key"),
    ("linear_relu_backward", _t_backward_in_thread, "autodiff_answer_key"),
    ("linear_relu_backward", _t_compiled_func_grad, "autodiff_answer_key"),
    # found by a fourth student pass: each failed with a generic, misleading or empty hint
    ("linear_relu_backward", _t_half_backward, "precision"),
    (
        "attention",
        _t_attention(masked=lambda s, m: s.masked_fill(~m, -math.inf).half().float()),
        "precision",
    ),
    (
        "attention",
        _t_attention(masked=lambda s, m: s.masked_fill(~m, -5.0)),
        "mask_fill_finite",
    ),
    ("attention", _t_attention_sqrt_int, "sqrt_of_int"),
    ("attention", _t_attention_softmax_float64, "dtype_mismatch"),
    (
        "attention_backward",
        _t_attention_backward(ds=lambda P, dP: dP),
        "bwd_softmax_skipped",
    ),
    (
        "attention_backward",
        _t_attention_backward(ds=lambda P, dP: P * (1 - P) * dP),
        "bwd_no_rowsum",
    ),
    (
        "attention_backward",
        _t_attention_backward(ds=lambda P, dP: P * (dP - dP.mean(-1, keepdim=True))),
        "bwd_rowsum_weights",
    ),
    ("attention_backward", _t_attention_dk_from_keys, "bwd_other_factor"),
    (
        "attention_backward",
        _t_attention_backward(scale=lambda d: math.sqrt(d)),
        "scale_multiplied",
    ),
]


# --- JAX -----------------------------------------------------------------------------------------
def _j_backward(mask=lambda z, y, x, dy, W: z > 0, grads=None):
    """linear_relu_backward with dz = dy * mask(...) and grads(dz, x, W) -> (dx, dW, db)."""
    grads = grads or (lambda dz, x, W: (dz @ W.T, x.T @ dz, dz.sum(0)))

    def linear_relu_backward(x, W, b, dy):
        z = x @ W + b
        y = jax.nn.relu(z)
        return grads(dy * mask(z, y, x, dy, W), x, W)

    return linear_relu_backward


def _j_in_place_mask(x, W, b, dy):
    z = x @ W + b
    dy[z <= 0] = 0  # what PyTorch allows; JAX arrays refuse
    return dy @ W.T, x.T @ dy, dy.sum(0)


def _j_attention(
    *,
    scale=lambda d, dv: 1 / math.sqrt(d),
    masked=lambda s, mask: jnp.where(mask, s, -jnp.inf),
    axis=-1,
    after=None,
    output=lambda out, q: out,
):
    def attention(q, k, v, mask):
        scores = q @ k.swapaxes(-2, -1) * scale(q.shape[-1], v.shape[-1])
        weights = jax.nn.softmax(masked(scores, mask), axis=axis)
        if after is not None:
            weights = after(weights, mask)
        return output(weights @ v, q)

    return attention


def _j_in_place_attention(q, k, v, mask):
    scores = q @ k.swapaxes(-2, -1) / math.sqrt(q.shape[-1])
    scores[~mask] = -jnp.inf
    return jax.nn.softmax(scores, axis=-1) @ v


def _j_softmax_dim(q, k, v, mask):
    scores = jnp.where(mask, q @ k.swapaxes(-2, -1) / math.sqrt(q.shape[-1]), -jnp.inf)
    return jax.nn.softmax(scores, dim=-1) @ v


# --- mistakes a student pass found (JAX) ---
def _j_vjp(x, W, b, dy):
    _, vjp = jax.vjp(lambda x, W, b: jax.nn.relu(x @ W + b), x, W, b)
    return vjp(dy)


def _j_grad(x, W, b, dy):
    loss = lambda x, W, b: jnp.sum(jax.nn.relu(x @ W + b) * dy)  # noqa: E731
    return jax.grad(loss, argnums=(0, 1, 2))(x, W, b)


def _j_mask_torch_layout(x, W, b, dy):
    dz = dy * (
        x @ W.T + b > 0
    )  # PyTorch's forward; the layer is square in the first case
    return dz @ W.T, x.T @ dz, dz.sum(0)


def _j_library_attention(q, k, v, mask):
    dv = v.shape[-1]
    v = jnp.pad(v, [(0, 0), (0, 0), (0, q.shape[-1] - dv)])  # one size for q, k, v
    out = jax.nn.dot_product_attention(
        q[:, :, None], k[:, :, None], v[:, :, None], mask=mask[:, None]
    )
    return out[:, :, 0, :dv]


def _j_flax_attention(q, k, v, mask):
    # Flax's wants v as wide as q: this crashes, after calling the answer key
    return nnx.dot_product_attention(
        q[:, :, None], k[:, :, None], v[:, :, None], mask=mask[:, None]
    )[:, :, 0]


def _j_own_causal(s, m):
    return jnp.where(jnp.tril(jnp.ones(m.shape, bool)), s, -jnp.inf)


def _j_scale_by_length(q, k, v, mask):
    scores = q @ k.swapaxes(-2, -1) / math.sqrt(q.shape[1])  # T, not d
    return jax.nn.softmax(jnp.where(mask, scores, -jnp.inf), axis=-1) @ v


def _j_attention_backward(
    *,
    scale=lambda d: 1 / math.sqrt(d),
    grad_scale=None,
    masked=lambda s, mask: jnp.where(mask, s, -jnp.inf),
    axis=-1,
    ds=lambda P, dP: P * (dP - (dP * P).sum(-1, keepdims=True)),
    dk=lambda dZ, q: dZ.mT @ q,
    dv=lambda P, d_out: P.mT @ d_out,
    result=lambda dq, dk, dv: (dq, dk, dv),
):
    """attention_backward with each step replaceable: the scales, mask, dZ, dk, dv, result."""

    def attention_backward(q, k, v, mask, d_out):
        d = q.shape[-1]
        g = scale(d) if grad_scale is None else grad_scale(d)
        P = jax.nn.softmax(masked(q @ k.mT * scale(d), mask), axis=axis)
        dZ = ds(P, d_out @ v.mT)
        return result(dZ @ k * g, dk(dZ, q) * g, dv(P, d_out))

    return attention_backward


def _j_forward(mask):
    def forward(q, k, v):
        scores = jnp.where(mask, q @ k.mT / jnp.sqrt(q.shape[-1]), -jnp.inf)
        return jax.nn.softmax(scores, axis=-1) @ v

    return forward


def _j_attention_vjp(q, k, v, mask, d_out):
    _, vjp = jax.vjp(_j_forward(mask), q, k, v)
    return vjp(d_out)


def _j_attention_grad(q, k, v, mask, d_out):
    loss = lambda q, k, v: jnp.sum(_j_forward(mask)(q, k, v) * d_out)  # noqa: E731
    return jax.grad(loss, argnums=(0, 1, 2))(q, k, v)


def _j_attention_nnx_grad(q, k, v, mask, d_out):
    loss = lambda q, k, v: jnp.sum(_j_forward(mask)(q, k, v) * d_out)  # noqa: E731
    return nnx.grad(loss, argnums=(0, 1, 2))(q, k, v)


def _j_attention_vjp_imported(q, k, v, mask, d_out):
    """jax.vjp under a name imported before the check (from jax import vjp)."""
    _, vjp = jax_vjp_imported(_j_forward(mask), q, k, v)
    return vjp(d_out)


@jax.jit
def _j_attention_vjp_jitted(q, k, v, mask, d_out):
    return _j_attention_vjp(q, k, v, mask, d_out)


for (
    _case
) in lab02_attention_backward.attention_backward_cases():  # as the check calls it
    _j_attention_vjp_jitted(*(lab02_jax.JAX.from_numpy(a) for a in _case.values()))


def _j_attention_vjp_traced_before(q, k, v, mask, d_out):
    """jax.vjp inside a jitted function already traced on the check's cases (the check run
    before): the cached trace calls no Python, so the check sees no jax.vjp unless jit is off."""
    return _j_attention_vjp_jitted(q, k, v, mask, d_out)


def _j_attention_bfloat16(q, k, v, mask, d_out):
    """The right formulas in bfloat16, the results turned back into float32."""
    bf = (a.astype(jnp.bfloat16) for a in (q, k, v))
    grads = _j_attention_backward()(*bf, mask, d_out.astype(jnp.bfloat16))
    return tuple(g.astype(jnp.float32) for g in grads)


def _j_attention_in_place(q, k, v, mask, d_out):
    d_out[~mask.any(-1)] = 0  # what PyTorch allows; JAX arrays refuse
    return _j_attention_backward()(q, k, v, mask, d_out)


def _j_attention_float64(q, k, v, mask, d_out):
    with jax.enable_x64():  # float64 only exists with x64 on
        grads = _j_attention_backward()(q, k, v, mask, d_out)
        return tuple(g.astype(jnp.float64) for g in grads)


def _j_attention_dq_transposed(q, k, v, mask, d_out):
    scale = 1 / jnp.sqrt(q.shape[-1])
    P = jax.nn.softmax(jnp.where(mask, q @ k.mT * scale, -jnp.inf), axis=-1)
    dP = d_out @ v.mT
    dZ = P * (dP - (dP * P).sum(-1, keepdims=True))
    return dZ.mT @ k * scale, dZ.mT @ q * scale, P.mT @ d_out  # dq: dZ, not dZ^T


def _j_attention_scale_length(q, k, v, mask, d_out):
    scale = lambda d: 1 / math.sqrt(q.shape[1])  # noqa: E731  T, not d
    return _j_attention_backward(scale=scale)(q, k, v, mask, d_out)


# --- found by a third student pass (the autodiff watcher); each passed ---
def _j_jet_imported(x, W, b, dy):
    """dx column by column in Taylor mode, jax.experimental.jet imported by name."""
    layer = lambda x: jnp.maximum(x @ W + b, 0)  # noqa: E731
    tangents = [
        jnp.broadcast_to(e, x.shape) for e in jnp.eye(x.shape[1], dtype=x.dtype)
    ]
    cols = [jet_imported(layer, (x,), ((t,),))[1][0] for t in tangents]
    dz = dy * (x @ W + b > 0)
    return jnp.stack([(c * dy).sum(1) for c in cols], 1), x.T @ dz, dz.sum(0)


_j_vjp_jitted = jax.jit(lambda x, W, b, dy: _j_vjp(x, W, b, dy))
for _case in lab02_backprop.linear_relu_cases():  # traced before, in JAX's layout
    _j_vjp_jitted(
        *(jnp.asarray(a, jnp.float32) for a in (_case["x"], _case["W"].T)),
        *(jnp.asarray(_case[k], jnp.float32) for k in ("b", "dy")),
    )


def _j_vjp_jitted_in_thread(x, W, b, dy):
    """A jitted jax.vjp traced before the check, called from another thread: disable_jit
    holds in the check's thread only, so the cached trace ran."""
    out = []
    worker = threading.Thread(target=lambda: out.append(_j_vjp_jitted(x, W, b, dy)))
    worker.start()
    worker.join()
    return out[0]


# --- found by a fourth student pass: a generic, misleading or empty hint before ---
def _j_bfloat16_backward(x, W, b, dy):
    x, W, b, dy = (a.astype(jnp.bfloat16) for a in (x, W, b, dy))
    dz = dy * (x @ W + b > 0)
    return tuple(g.astype(jnp.float32) for g in (dz @ W.T, x.T @ dz, dz.sum(0)))


def _j_attention_dq_from_queries(q, k, v, mask, d_out):
    scale = 1 / jnp.sqrt(q.shape[-1])
    P = jax.nn.softmax(jnp.where(mask, q @ k.mT * scale, -jnp.inf), axis=-1)
    dP = d_out @ v.mT
    dZ = P * (dP - (dP * P).sum(-1, keepdims=True))
    return dZ @ q * scale, dZ.mT @ q * scale, P.mT @ d_out  # dq from q, not k


JAX_MISTAKES = [
    (
        "linear_relu_backward",
        _j_backward(grads=lambda dz, x, W: (dz @ W.T, x.T @ dz)),
        "result_tuple3",
    ),
    (
        "linear_relu_backward",
        _j_backward(grads=lambda dz, x, W: (dz @ W.T, dz.T @ x, dz.sum(0))),
        "weight_transposed",
    ),
    (
        "linear_relu_backward",
        _j_backward(grads=lambda dz, x, W: (dz @ W, x.T @ dz, dz.sum(0))),
        "dx_transposed_weight",
    ),
    (
        "linear_relu_backward",
        _j_backward(grads=lambda dz, x, W: (dz @ W.T, x.T @ dz, dz)),
        "db_not_summed",
    ),
    (
        "linear_relu_backward",
        _j_backward(grads=lambda dz, x, W: (dz @ W.T, x.T @ dz / len(x), dz.mean(0))),
        "grad_batch_mean",
    ),
    (
        "linear_relu_backward",
        _j_backward(mask=lambda z, y, x, dy, W: 1.0),
        "relu_mask_missing",
    ),
    (
        "linear_relu_backward",
        _j_backward(mask=lambda z, y, x, dy, W: y >= 0),
        "relu_mask_missing",
    ),
    (
        "linear_relu_backward",
        _j_backward(mask=lambda z, y, x, dy, W: y),
        "relu_times_output",
    ),
    (
        "linear_relu_backward",
        _j_backward(mask=lambda z, y, x, dy, W: y * (1 - y)),
        "relu_sigmoid_form",
    ),
    (
        "linear_relu_backward",
        _j_backward(mask=lambda z, y, x, dy, W: 1 - y),
        "relu_sigmoid_form",
    ),
    (
        "linear_relu_backward",
        _j_backward(mask=lambda z, y, x, dy, W: dy > 0),
        "relu_mask_from_dy",
    ),
    (
        "linear_relu_backward",
        _j_backward(mask=lambda z, y, x, dy, W: x > 0),
        "relu_mask_from_x",
    ),
    (
        "linear_relu_backward",
        _j_backward(mask=lambda z, y, x, dy, W: x @ W > 0),
        "relu_mask_no_bias",
    ),
    ("linear_relu_backward", _j_in_place_mask, "immutable"),
    ("attention", _j_attention(axis=-2), "softmax_axis"),
    ("attention", _j_attention(axis=0), "softmax_axis"),
    (
        "attention",
        _j_attention(masked=lambda s, m: jnp.where(m, -jnp.inf, s)),
        "mask_polarity",
    ),
    (
        "attention",
        _j_attention(masked=lambda s, m: jnp.where(m, s, 0.0)),
        "mask_zero_fill",
    ),
    (
        "attention",
        _j_attention(masked=lambda s, m: s, after=lambda w, m: w * m),
        "mask_after_softmax",
    ),
    ("attention", _j_attention(scale=lambda d, dv: 1.0), "scale_missing"),
    ("attention", _j_attention(scale=lambda d, dv: 1 / d), "scale_d"),
    ("attention", _j_attention(scale=lambda d, dv: 1 / math.sqrt(dv)), "scale_dv"),
    ("attention", _j_in_place_attention, "immutable"),
    ("attention", _j_softmax_dim, "axis_not_dim"),
    # found by a student pass: each failed, or passed, with a generic hint before
    ("linear_relu_backward", _j_vjp, "autodiff_answer_key"),
    ("linear_relu_backward", _j_grad, "autodiff_answer_key"),
    ("linear_relu_backward", _j_mask_torch_layout, "relu_mask_layout"),
    (
        "linear_relu_backward",
        _j_backward(mask=lambda z, y, x, dy, W: jnp.sign(z)),
        "relu_sign",
    ),
    (
        "linear_relu_backward",
        _j_backward(mask=lambda z, y, x, dy, W: z < 0),
        "relu_mask_flipped",
    ),
    (
        "linear_relu_backward",
        _j_backward(grads=lambda dz, x, W: (dz @ W.T / len(x), x.T @ dz, dz.sum(0))),
        "grad_batch_mean",
    ),
    (
        "linear_relu_backward",
        _j_backward(grads=lambda dz, x, W: (dz @ W.T, dz.sum(0), x.T @ dz)),
        "result_tuple3",
    ),
    ("attention", _j_library_attention, "attention_answer_key"),
    ("attention", _j_flax_attention, "attention_answer_key"),
    ("attention", _j_scale_by_length, "scale_length"),
    ("attention", _j_attention(scale=lambda d, dv: math.sqrt(d)), "scale_multiplied"),
    (
        "attention",
        _j_attention(
            scale=lambda d, dv: 1.0, output=lambda o, q: o / math.sqrt(q.shape[-1])
        ),
        "scale_after_softmax",
    ),
    ("attention", _j_attention(masked=lambda s, m: s), "mask_ignored"),
    ("attention", _j_attention(masked=_j_own_causal), "mask_own_causal"),
    ("attention", _j_attention(masked=lambda s, m: s + m), "mask_additive"),
    # exercise 4: the backward pass of attention
    (
        "attention_backward",
        _j_attention_backward(grad_scale=lambda d: 1.0),
        "bwd_scale",
    ),
    (
        "attention_backward",
        _j_attention_backward(grad_scale=lambda d: math.sqrt(d)),
        "bwd_scale",
    ),
    (
        "attention_backward",
        _j_attention_backward(ds=lambda P, dP: P * dP),
        "bwd_no_rowsum",
    ),
    (
        "attention_backward",
        _j_attention_backward(
            ds=lambda P, dP: P * (dP - (dP * P).sum(-2, keepdims=True))
        ),
        "bwd_rowsum_axis",
    ),
    (
        "attention_backward",
        _j_attention_backward(
            ds=lambda P, dP: P * (dP - (dP * P).sum((-2, -1), keepdims=True))
        ),
        "bwd_rowsum_axis",
    ),
    (
        "attention_backward",
        _j_attention_backward(ds=lambda P, dP: P * (dP - (dP * P).sum(-1))),
        "shapes",  # no keepdims: (B, T) does not broadcast against (B, T, S)
    ),
    (
        "attention_backward",
        _j_attention_backward(
            ds=lambda P, dP: P * dP - (dP * P).sum(-1, keepdims=True)
        ),
        "bwd_rowsum_no_p",
    ),
    (
        "attention_backward",
        _j_attention_backward(dk=lambda dZ, q: dZ @ q),
        "bwd_dk_transpose",
    ),
    (
        "attention_backward",
        _j_attention_backward(dk=lambda dZ, q: q.mT @ dZ),  # (B, d, S): dk^T
        "bwd_dk_transpose",
    ),
    (
        "attention_backward",
        _j_attention_backward(dv=lambda P, d_out: P @ d_out),
        "bwd_dv_transpose",
    ),
    (
        "attention_backward",
        _j_attention_backward(masked=lambda s, m: s),
        "bwd_mask_ignored",
    ),
    (
        "attention_backward",
        _j_attention_backward(masked=lambda s, m: jnp.where(m, s, 0.0)),
        "bwd_mask_ignored",
    ),
    (
        "attention_backward",
        _j_attention_backward(masked=lambda s, m: jnp.where(m, -jnp.inf, s)),
        "mask_polarity",
    ),
    ("attention_backward", _j_attention_backward(scale=lambda d: 1.0), "scale_missing"),
    ("attention_backward", _j_attention_backward(axis=-2), "softmax_axis"),
    (
        "attention_backward",
        _j_attention_backward(result=lambda dq, dk, dv: (dk, dq, dv)),
        "bwd_order",
    ),
    (
        "attention_backward",
        _j_attention_backward(result=lambda dq, dk, dv: (dv, dk, dq)),
        "bwd_order",
    ),
    (
        "attention_backward",
        _j_attention_backward(result=lambda dq, dk, dv: dq),
        "result_tuple_qkv",
    ),
    ("attention_backward", _j_attention_float64, "bwd_dtype"),
    ("attention_backward", _j_attention_in_place, "immutable"),
    ("attention_backward", _j_attention_vjp, "attention_backward_answer_key"),
    ("attention_backward", _j_attention_grad, "attention_backward_answer_key"),
    ("attention_backward", _j_attention_nnx_grad, "attention_backward_answer_key"),
    # found by a student pass on exercise 4: each got the generic hint before
    (
        "attention_backward",
        _j_attention_backward(result=lambda dq, dk, dv: (-dq, -dk, -dv)),
        "bwd_sign",
    ),
    (
        "attention_backward",
        _j_attention_backward(
            result=lambda dq, dk, dv: tuple(g / len(dq) for g in (dq, dk, dv))
        ),
        "bwd_batch_mean",
    ),
    (
        "attention_backward",
        _j_attention_backward(ds=lambda P, dP: P * (dP - dP.sum(-1, keepdims=True))),
        "bwd_rowsum_weights",
    ),
    (
        "attention_backward",
        _j_attention_backward(
            ds=lambda P, dP: P * (dP - (dP * P).sum(0, keepdims=True))
        ),
        "bwd_rowsum_axis",
    ),
    ("attention_backward", _j_attention_dq_transposed, "bwd_dq_transpose"),
    (
        "attention_backward",
        _j_attention_backward(masked=_j_own_causal),
        "mask_own_causal",
    ),
    ("attention_backward", _j_attention_scale_length, "scale_length"),
    (
        "attention_backward",
        _j_attention_backward(masked=lambda s, m: jnp.where(m, s, -5.0)),
        "bwd_mask_fill",
    ),
    ("attention_backward", _j_attention_backward(axis=0), "softmax_axis"),
    (
        "attention_backward",
        _j_attention_backward(masked=lambda s, m: s + m),
        "mask_additive",
    ),
    (
        "attention_backward",
        _j_attention_backward(ds=lambda P, dP: P * (dP - P.sum(-1, keepdims=True))),
        "bwd_rowsum_weights",
    ),
    # found by a second student pass: the first two passed, the last got the generic hint
    ("attention_backward", _j_attention_vjp_imported, "attention_backward_answer_key"),
    (
        "attention_backward",
        _j_attention_vjp_traced_before,
        "attention_backward_answer_key",
    ),
    ("attention_backward", _j_attention_bfloat16, "bwd_precision"),
    # found by a third student pass: each passed
    ("linear_relu_backward", _j_jet_imported, "autodiff_answer_key"),
    ("linear_relu_backward", _j_vjp_jitted_in_thread, "autodiff_answer_key"),
    # found by a fourth student pass: each failed with a generic, misleading or empty hint
    ("linear_relu_backward", _j_bfloat16_backward, "precision"),
    (
        "attention",
        _j_attention(
            masked=lambda s, m: jnp.where(m, s, -jnp.inf).astype(jnp.bfloat16)
        ),
        "precision",
    ),
    (
        "attention",
        _j_attention(masked=lambda s, m: jnp.where(m, s, -10.0)),
        "mask_fill_finite",
    ),
    (
        "attention_backward",
        _j_attention_backward(
            ds=lambda P, dP: P * (dP - (dP * P).sum(-1, keepdim=True))
        ),
        "keepdims",
    ),
    (
        "attention_backward",
        _j_attention_backward(ds=lambda P, dP: dP),
        "bwd_softmax_skipped",
    ),
    ("attention_backward", _j_attention_dq_from_queries, "bwd_other_factor"),
    (
        "attention_backward",
        _j_attention_backward(scale=lambda d: math.sqrt(d)),
        "scale_multiplied",
    ),
]


# --- exercise 2, the GRU step, in both frameworks ------------------------------------------------
def _gru(fw="pytorch", *, order=(0, 1, 2), split=None, acts=None, n_act=None, **kw):
    """gru_step in ``fw``'s layout, with the known mistakes as keywords.

    ``reset``: "after" (right), "before" (Cho et al.'s W_hn (r * h)), "before_no_bias" (and
    b_hn dropped), "h_alone" (r * h, no W_hn), "z_gate" (z * gh_n), "none", "bias_outside",
    "whole" (r on the input part too), "after_tanh", "inverted" ((1 - r) * gh_n);
    ``update``: "old" (right), "flipped", "no_old", "none", "plus" (n + z * h), "plus_h"
    ((1 - z) * n + h), "r_gate" ((1 - r) * n + r * h);
    ``biases`` (b_ih, b_hh) -> (b_i, b_h); ``gates_input_only``: r and z from gi alone;
    ``recurrent=False`` drops W_hh h; ``layout="other"`` uses the other framework's layout;
    ``result(h_new, h)`` replaces the return value.
    """
    reset, update = kw.get("reset", "after"), kw.get("update", "old")
    biases = kw.get("biases", lambda b_ih, b_hh: (b_ih, b_hh))
    result = kw.get("result", lambda h_new, h: h_new)
    torch_fw = fw == "pytorch"
    sig = torch.sigmoid if torch_fw else jax.nn.sigmoid
    tanh = torch.tanh if torch_fw else jnp.tanh
    acts = acts or (sig, sig)
    n_act = n_act or tanh
    if split is None:
        split = (
            (lambda a: a.chunk(3, dim=-1))
            if torch_fw
            else (lambda a: jnp.split(a, 3, -1))
        )
    out_in = torch_fw != (kw.get("layout") == "other")

    def mm(a, W):
        return a @ W.T if out_in else a @ W

    def gru_step(x, h, W_ih, W_hh, b_ih, b_hh):
        b_i, b_h = biases(b_ih, b_hh)
        gi0, gi1, gi2 = split(mm(x, W_ih) + b_i)  # a student unpacks the three gates
        gh0, gh1, gh2 = split((mm(h, W_hh) if kw.get("recurrent", True) else 0) + b_h)
        gi, gh = (gi0, gi1, gi2), (gh0, gh1, gh2)
        i_r, i_z, i_n = (gi[k] for k in order)
        h_r, h_z, h_n = (gh[k] for k in order)
        if kw.get("gates_input_only"):
            h_r = h_z = 0
        r, z = acts[0](i_r + h_r), acts[1](i_z + h_z)
        hidden = h_n.shape[-1]
        W_hn = W_hh[2 * hidden :] if out_in else W_hh[:, 2 * hidden :]
        b_hn = b_h[2 * hidden :]
        n = {
            "after": lambda: n_act(i_n + r * h_n),
            "before": lambda: n_act(i_n + mm(r * h, W_hn) + b_hn),
            "before_no_bias": lambda: n_act(i_n + mm(r * h, W_hn)),
            "h_alone": lambda: n_act(i_n + r * h),
            "z_gate": lambda: n_act(i_n + z * h_n),
            "none": lambda: n_act(i_n + h_n),
            "bias_outside": lambda: n_act(i_n + r * mm(h, W_hn) + b_hn),
            "whole": lambda: n_act(r * (i_n + h_n)),
            "after_tanh": lambda: r * n_act(i_n + h_n),
            "inverted": lambda: n_act(i_n + (1 - r) * h_n),
        }[reset]()
        h_new = {
            "old": lambda: (1 - z) * n + z * h,
            "flipped": lambda: z * n + (1 - z) * h,
            "no_old": lambda: (1 - z) * n,
            "none": lambda: n,
            "plus": lambda: n + z * h,
            "plus_h": lambda: (1 - z) * n + h,
            "r_gate": lambda: (1 - r) * n + r * h,
        }[update]()
        return result(h_new, h)

    return gru_step


def _t_gru_cell_module(x, h, W_ih, W_hh, b_ih, b_hh):
    cell = torch.nn.GRUCell(x.shape[1], h.shape[1])
    with torch.no_grad():
        for name, w in zip(
            ("weight_ih", "weight_hh", "bias_ih", "bias_hh"),
            (W_ih, W_hh, b_ih, b_hh),
            strict=True,
        ):
            getattr(cell, name).copy_(w)
        return cell(x, h)


def _t_gru_in_place(x, h, W_ih, W_hh, b_ih, b_hh):
    gi_r, gi_z, gi_n = (x @ W_ih.T + b_ih).chunk(3, dim=-1)
    gh_r, gh_z, gh_n = (h @ W_hh.T + b_hh).chunk(3, dim=-1)
    z = torch.sigmoid(gi_z + gh_z)
    n = torch.tanh(gi_n + torch.sigmoid(gi_r + gh_r) * gh_n)
    return h.mul_(z).add_((1 - z) * n)  # writes into the caller's h


def _t_gru_split_axis(x, h, W_ih, W_hh, b_ih, b_hh):
    H = h.shape[1]
    gi_r, gi_z, gi_n = torch.split(x @ W_ih.T + b_ih, H, axis=-1)  # PyTorch's is dim
    gh_r, gh_z, gh_n = torch.split(h @ W_hh.T + b_hh, H, dim=-1)
    z = torch.sigmoid(gi_z + gh_z)
    n = torch.tanh(gi_n + torch.sigmoid(gi_r + gh_r) * gh_n)
    return (1 - z) * n + z * h


def _j_flax_gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    cell = nnx.GRUCell(x.shape[1], h.shape[1], rngs=nnx.Rngs(0))
    cell.dense_i.kernel[...] = W_ih
    cell.dense_i.bias[...] = b_ih
    cell.dense_h.kernel[...] = W_hh
    return cell(h, x)[0]


def _no_b_hn(b_ih, b_hh):
    """b_hh without its last block, b_hn (the student dropped it from the reset product)."""
    keep = np.arange(b_hh.shape[0]) < 2 * b_hh.shape[0] // 3
    return b_ih, b_hh * (
        torch.from_numpy(keep) if isinstance(b_hh, torch.Tensor) else keep
    )


def _gru_rows(fw: str) -> list:
    """The mistakes both frameworks allow, each in ``fw``'s layout, with their hint keys."""
    torch_fw = fw == "pytorch"
    sig = torch.sigmoid if torch_fw else jax.nn.sigmoid
    tanh = torch.tanh if torch_fw else jnp.tanh

    relu = torch.relu if torch_fw else jax.nn.relu

    def interleaved(a):
        three = a.reshape(len(a), -1, 3)
        return three.unbind(-1) if torch_fw else jnp.moveaxis(three, -1, 0)

    def g(**kw):
        return _gru(fw, **kw)

    return [
        ("gru_step", g(result=lambda h_new, h: (h_new, h_new)), "gru_result_one"),
        ("gru_step", g(order=(1, 0, 2)), "gru_gate_order"),  # z, r, n
        ("gru_step", g(order=(0, 2, 1)), "gru_gate_order"),  # r, n, z
        ("gru_step", g(n_act=sig), "gru_n_sigmoid"),
        ("gru_step", g(n_act=lambda a: a), "gru_n_sigmoid"),
        ("gru_step", g(acts=(tanh, sig)), "gru_gate_tanh"),  # tanh on r
        ("gru_step", g(update="flipped"), "gru_update_flipped"),
        ("gru_step", g(update="no_old"), "gru_old_state"),
        ("gru_step", g(update="none"), "gru_old_state"),
        ("gru_step", g(update="plus"), "gru_old_state"),  # n + z * h
        ("gru_step", g(reset="whole"), "gru_reset_input"),  # tanh(r * (gi_n + gh_n))
        ("gru_step", g(reset="after_tanh"), "gru_reset_input"),  # r * tanh(gi_n + gh_n)
        ("gru_step", g(reset="inverted"), "gru_reset_inverted"),
        ("gru_step", g(biases=_no_b_hn), "gru_one_bias"),
        ("gru_step", g(split=interleaved), "gru_gate_order"),  # every third entry
        ("gru_step", g(acts=(sig, relu)), "gru_gate_tanh"),
        ("gru_step", g(reset="before"), "gru_reset_before"),
        ("gru_step", g(reset="none"), "gru_reset_missing"),
        ("gru_step", g(reset="bias_outside"), "gru_bias_outside"),
        ("gru_step", g(biases=lambda b_ih, b_hh: (b_ih, b_hh * 0)), "gru_one_bias"),
        ("gru_step", g(biases=lambda b_ih, b_hh: (b_ih * 0, b_hh)), "gru_one_bias"),
        ("gru_step", g(recurrent=False), "gru_no_recurrence"),
        # the other framework's layout: (3H, D) and (D, 3H) never multiply the same way
        ("gru_step", g(layout="other"), "shapes"),
        (
            "gru_step",
            g(
                result=lambda h_new, h: (
                    h_new.astype(jnp.float16) if not torch_fw else h_new.double()
                )
            ),
            "gru_float32",
        ),
        # from a second student pass of the GRU step
        ("gru_step", g(reset="before_no_bias"), "gru_reset_before"),  # W_hn (r * h)
        ("gru_step", g(reset="h_alone"), "gru_candidate_hidden"),  # r * h, no W_hn
        ("gru_step", g(reset="z_gate"), "gru_gate_roles"),  # z resets
        ("gru_step", g(update="r_gate"), "gru_gate_roles"),  # r updates
        ("gru_step", g(update="plus_h"), "gru_old_state"),  # (1 - z) * n + h
        ("gru_step", g(n_act=relu), "gru_n_sigmoid"),
        ("gru_step", g(gates_input_only=True), "gru_no_recurrence"),
        ("gru_step", g(biases=lambda b_ih, b_hh: (b_hh, b_ih)), "gru_biases_swapped"),
        ("gru_step", g(split=lambda a: a.reshape(3, len(a), -1)), "gru_split"),
        ("gru_step", g(result=lambda h_new, h: h_new.T), "gru_result_transposed"),
        ("gru_step", g(result=lambda h_new, h: h_new.tolist()), "gru_result_list"),
        ("gru_step", g(result=lambda h_new, h: list(h_new)), "gru_result_list"),
        (
            "gru_step",
            g(split=lambda a: (a[:, :4], a[:, 4:8], a[:, 8:])),
            "gru_hard_coded",
        ),
        ("gru_step", g(result=lambda h_new, h: h_new.reshape(2, -1)), "gru_hard_coded"),
    ]


def _t_gru_reshaped_weights(x, h, W_ih, W_hh, b_ih, b_hh):
    """W.reshape(in, out) for W.T: the right shape, the entries mixed."""
    return _gru("pytorch", layout="other")(
        x,
        h,
        W_ih.reshape(W_ih.shape[1], -1),
        W_hh.reshape(W_hh.shape[1], -1),
        b_ih,
        b_hh,
    )


def _t_gru_vf_sequence(x, h, W_ih, W_hh, b_ih, b_hh):
    """nn.GRU's own function, one step long: (output, h_n), h_n (layers, B, H)."""
    weights = (W_ih, W_hh, b_ih, b_hh)
    _, h_n = torch._VF.gru(x[None], h[None], weights, True, 1, 0.0, False, False, False)
    return h_n[0]


def _j_linen_gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    """Flax linen's GRUCell, loaded with the weights (its gates' biases sit on the input side)."""
    H = h.shape[1]

    def block(a, k):
        return a[..., k * H : (k + 1) * H]

    params = {
        "ir": {"kernel": block(W_ih, 0), "bias": block(b_ih, 0) + block(b_hh, 0)},
        "iz": {"kernel": block(W_ih, 1), "bias": block(b_ih, 1) + block(b_hh, 1)},
        "in": {"kernel": block(W_ih, 2), "bias": block(b_ih, 2)},
        "hr": {"kernel": block(W_hh, 0)},
        "hz": {"kernel": block(W_hh, 1)},
        "hn": {"kernel": block(W_hh, 2), "bias": block(b_hh, 2)},
    }
    return linen.GRUCell(features=H).apply({"params": params}, h, x)[0]


TORCH_MISTAKES += [
    *_gru_rows("pytorch"),
    ("gru_step", _t_gru_cell_module, "gru_answer_key"),
    (
        "gru_step",
        lambda x, h, W_ih, W_hh, b_ih, b_hh: torch.gru_cell(
            x, h, W_ih, W_hh, b_ih, b_hh
        ),
        "gru_answer_key",
    ),
    ("gru_step", _gru(split=lambda a: torch.split(a, 3, dim=-1)), "gru_split"),
    ("gru_step", _gru(split=lambda a: a.chunk(3, dim=0)), "gru_split"),
    ("gru_step", _t_gru_split_axis, "dim_not_axis"),
    ("gru_step", lambda x, h, *w: torch._VF.gru_cell(x, h, *w), "gru_answer_key"),
    ("gru_step", lambda x, h, *w: torch.ops.aten.gru_cell(x, h, *w), "gru_answer_key"),
    ("gru_step", _t_gru_in_place, "changed_input"),
    # from a second student pass: the GRU under other names, and a layout mistake
    ("gru_step", lambda x, h, *w: gru_cell_imported(x, h, *w), "gru_answer_key"),
    (
        "gru_step",
        lambda x, h, *w: torch._C._VariableFunctions.gru_cell(x, h, *w),
        "gru_answer_key",
    ),
    (
        "gru_step",
        lambda x, h, *w: torch.ops.aten.gru_cell.default(x, h, *w),
        "gru_answer_key",
    ),
    ("gru_step", _t_gru_vf_sequence, "gru_answer_key"),
    ("gru_step", _t_gru_reshaped_weights, "gru_reshape_not_transpose"),
]
JAX_MISTAKES += [
    *_gru_rows("jax"),
    ("gru_step", _j_flax_gru_cell, "gru_answer_key"),
    ("gru_step", _gru("jax", split=lambda a: jnp.split(a, 3)), "gru_split"),  # axis 0
    ("gru_step", _j_linen_gru_cell, "gru_answer_key"),  # from a second student pass
]


MISTAKES = {"pytorch": TORCH_MISTAKES, "jax": JAX_MISTAKES}


(
    test_check_catches_mistake_with_its_hint,
    test_at_least_two_mistakes_per_exercise,
    test_every_declared_hint_is_produced_by_a_mistake,
) = mistake_table_tests(LAB, MISTAKES)


def checks(framework: str) -> dict:
    """``{exercise (the function's name): its check}``, from the solution's check calls."""
    return lab_checks(LAB, framework)


# --- right answers that look different pass ------------------------------------------------------
def _t_clone_and_zero(x, W, b, dy):
    dz = dy.clone()
    dz[x @ W.T + b <= 0] = 0  # writes into a copy, not into dy
    return dz @ W, dz.T @ x, dz.sum(0)


def _j_set_to_zero(x, W, b, dy):
    dz = dy.at[x @ W + b <= 0].set(0)
    return dz @ W.T, x.T @ dz, dz.sum(0)


def _t_attention_backward_einsum(q, k, v, mask, d_out):
    """Exercise 4 in einsum, the mask as a large negative number and a softmax by hand."""
    scores = torch.einsum("btd,bsd->bts", q, k) / math.sqrt(q.shape[-1])
    scores = torch.where(mask, scores, torch.tensor(-1e9))
    e = torch.exp(scores - scores.amax(-1, keepdim=True))
    P = e / e.sum(-1, keepdim=True)
    dP = torch.einsum("btv,bsv->bts", d_out, v)
    dZ = P * dP - P * torch.einsum("bts,bts->bt", dP, P)[..., None]
    dq = torch.einsum("bts,bsd->btd", dZ, k) / math.sqrt(q.shape[-1])
    dk = torch.einsum("bts,btd->bsd", dZ, q) / math.sqrt(q.shape[-1])
    return dq, dk, torch.einsum("bts,btv->bsv", P, d_out)


def _t_attention_backward_float64_inside(q, k, v, mask, d_out):
    """Exercise 4 in float64, the results turned back into float32."""
    grads = _t_attention_backward()(
        q.double(), k.double(), v.double(), mask, d_out.double()
    )
    return tuple(g.float() for g in grads)


def _t_attention_backward_jacobian(q, k, v, mask, d_out):
    """Exercise 4 through the softmax's explicit Jacobian, diag(p) - p p^T, per row."""
    scale = 1 / math.sqrt(q.shape[-1])
    P = torch.softmax((q @ k.mT * scale) + torch.log(mask.float()), dim=-1)
    J = torch.diag_embed(P) - P[..., :, None] * P[..., None, :]  # (B, T, S, S)
    dZ = (J @ (d_out @ v.mT)[..., None])[..., 0]  # J is symmetric
    return dZ @ k * scale, dZ.transpose(-2, -1) @ q * scale, P.transpose(-2, -1) @ d_out


def _j_attention_backward_where(q, k, v, mask, d_out):
    """Exercise 4 with jax.nn.softmax(..., where=mask), zeroed where the mask is False."""
    scale = 1 / jnp.sqrt(q.shape[-1])
    P = jnp.where(mask, jax.nn.softmax(q @ k.mT * scale, axis=-1, where=mask), 0.0)
    dP = d_out @ v.mT
    dZ = P * (dP - (dP * P).sum(-1, keepdims=True))
    return dZ @ k * scale, jnp.swapaxes(dZ, 1, 2) @ q * scale, P.mT @ d_out


def _j_attention_backward_loop(q, k, v, mask, d_out):
    """Exercise 4 one sequence at a time, with jax.vmap; finfo.min for the mask."""

    def one(q, k, v, mask, d_out):
        scores = q @ k.T / jnp.sqrt(q.shape[-1])
        P = jax.nn.softmax(jnp.where(mask, scores, jnp.finfo(q.dtype).min), axis=-1)
        dP = d_out @ v.T
        dZ = P * (dP - jnp.einsum("ts,ts->t", dP, P)[:, None])
        return (
            dZ @ k / jnp.sqrt(q.shape[-1]),
            dZ.T @ q / jnp.sqrt(q.shape[-1]),
            P.T @ d_out,
        )

    return jax.vmap(one)(q, k, v, mask, d_out)


def _t_attention_renormalised(q, k, v, mask):
    """Softmax over every key, then the forbidden weights zeroed and each row renormalised."""
    P = torch.softmax(q @ k.mT / math.sqrt(q.shape[-1]), dim=-1) * mask
    return P / P.sum(-1, keepdim=True) @ v


def _j_attention_softmax_where(q, k, v, mask):
    """jax.nn.softmax(..., where=mask) with no fill, the forbidden weights set to 0."""
    scores = jnp.einsum("btd,bsd->bts", q, k) / math.sqrt(q.shape[-1])
    return jnp.where(mask, jax.nn.softmax(scores, where=mask), 0.0) @ v


ACCEPTED = {
    "pytorch": [
        # relu(z) > 0 exactly where z > 0: the output's mask is the right one.
        ("linear_relu_backward", _t_backward(mask=lambda z, y, x, dy, W: y > 0)),
        ("linear_relu_backward", _t_backward(mask=lambda z, y, x, dy, W: z >= 0)),
        (
            "attention",
            _t_attention(masked=lambda s, m: torch.where(m, s, torch.tensor(-1e9))),
        ),
        # from a student pass: other right ways to write each exercise
        ("linear_relu_backward", _t_clone_and_zero),
        ("attention", _t_attention(masked=lambda s, m: s + torch.log(m.float()))),
        ("attention_backward", _t_attention_backward_einsum),
        ("attention_backward", _t_attention_backward_jacobian),
        ("attention_backward", _t_attention_backward_float64_inside),
        (
            "attention_backward",
            _t_attention_backward(result=lambda dq, dk, dv: [dq, dk, dv]),
        ),
        # from a fourth student pass
        ("attention", _t_attention_renormalised),
        ("attention", _t_attention(masked=lambda s, m: s.masked_fill(m == 0, -1e4))),
        (
            "attention",
            _t_attention(
                scale=lambda d, dv: torch.tensor(d, dtype=torch.float64) ** -0.5
            ),
        ),
    ],
    "jax": [
        ("linear_relu_backward", _j_backward(mask=lambda z, y, x, dy, W: y > 0)),
        (
            "attention",
            _j_attention(masked=lambda s, m: jnp.where(m, s, jnp.finfo(s.dtype).min)),
        ),
        # from a student pass; jitted functions run while the answer keys are watched
        ("linear_relu_backward", jax.jit(_j_backward())),
        ("linear_relu_backward", _j_set_to_zero),
        ("attention", jax.jit(_j_attention())),
        ("attention_backward", jax.jit(_j_attention_backward())),
        ("attention_backward", _j_attention_backward_loop),
        ("attention_backward", _j_attention_backward_where),
        (
            "attention_backward",
            _j_attention_backward(
                masked=lambda s, m: jnp.where(m, s, -1e9),
                ds=lambda P, dP: P * dP - P * (P * dP).sum(-1, keepdims=True),
            ),
        ),
        # from a fourth student pass: 1 - mask is ~mask for a bool array in JAX
        ("attention", _j_attention(masked=lambda s, m: jnp.where(1 - m, -jnp.inf, s))),
        ("attention", _j_attention_softmax_where),
    ],
}


# Exercise 2, from the student pass of the GRU step: other right ways to write it.
def _t_gru_slices(x, h, W_ih, W_hh, b_ih, b_hh):
    """One product per gate, W[k * H:(k + 1) * H], and h_new = n + z * (h - n)."""
    H = h.shape[1]

    def part(W, b, v, k):
        return v @ W[k * H : (k + 1) * H].T + b[k * H : (k + 1) * H]

    r = torch.sigmoid(part(W_ih, b_ih, x, 0) + part(W_hh, b_hh, h, 0))
    z = torch.sigmoid(part(W_ih, b_ih, x, 1) + part(W_hh, b_hh, h, 1))
    n = torch.tanh(part(W_ih, b_ih, x, 2) + r * part(W_hh, b_hh, h, 2))
    return n + z * (h - n)


def _t_gru_linear_lerp(x, h, W_ih, W_hh, b_ih, b_hh):
    """F.linear, split(H), torch.lerp: (1 - z) * n + z * h is lerp(n, h, z)."""
    H = h.shape[1]
    i_r, i_z, i_n = F.linear(x, W_ih, b_ih).split(H, dim=-1)
    h_r, h_z, h_n = F.linear(h, W_hh, b_hh).split(H, dim=-1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    return torch.lerp(torch.tanh(i_n + r * h_n), h, z)


def _j_gru_slices(x, h, W_ih, W_hh, b_ih, b_hh):
    """One product per gate, W[:, k * H:(k + 1) * H], and 1 - z as sigmoid(-a)."""
    H = h.shape[1]

    def part(W, b, v, k):
        return v @ W[:, k * H : (k + 1) * H] + b[k * H : (k + 1) * H]

    a_z = part(W_ih, b_ih, x, 1) + part(W_hh, b_hh, h, 1)
    r = jax.nn.sigmoid(part(W_ih, b_ih, x, 0) + part(W_hh, b_hh, h, 0))
    n = jnp.tanh(part(W_ih, b_ih, x, 2) + r * part(W_hh, b_hh, h, 2))
    return jax.nn.sigmoid(-a_z) * n + jax.nn.sigmoid(a_z) * h


# From a second student pass of the GRU step.
def _t_gru_block_matrix(x, h, W_ih, W_hh, b_ih, b_hh):
    """r and z from one product of [x, h] with [W_ih, W_hh] side by side, then torch.lerp."""
    H = h.shape[1]
    W_rz = torch.cat([W_ih[: 2 * H], W_hh[: 2 * H]], dim=1)  # (2H, D + H)
    r, z = torch.sigmoid(
        torch.cat([x, h], dim=1) @ W_rz.T + b_ih[: 2 * H] + b_hh[: 2 * H]
    ).chunk(2, dim=-1)
    n = torch.tanh(
        x @ W_ih[2 * H :].T + b_ih[2 * H :] + r * (h @ W_hh[2 * H :].T + b_hh[2 * H :])
    )
    return torch.lerp(n, h, z)


def _t_gru_rows(x, h, *weights):
    """One example at a time, a Python loop over the batch and torch.stack."""
    step = _gru()
    return torch.stack(
        [step(x[i : i + 1], h[i : i + 1], *weights)[0] for i in range(len(x))]
    )


def _j_gru_scan(x, h, *weights):
    """The step inside jax.lax.scan over a sequence of one input."""
    step = _gru("jax")
    h_new, _ = jax.lax.scan(lambda c, x_t: (step(x_t, c, *weights), None), h, x[None])
    return h_new


def _j_gru_float64_inside(x, h, *weights):
    """In float64 (x64 on), the result cast back to float32."""
    with jax.enable_x64(True):
        wide = (a.astype(jnp.float64) for a in (x, h, *weights))
        return _gru("jax")(*wide).astype(jnp.float32)


def _j_gru_dynamic_slice(x, h, W_ih, W_hh, b_ih, b_hh):
    """Blocks cut with jax.lax.dynamic_slice_in_dim, h + (1 - z) * (n - h)."""
    H = h.shape[-1]
    gi, gh = x @ W_ih + b_ih, h @ W_hh + b_hh

    def cut(a, k):
        return jax.lax.dynamic_slice_in_dim(a, k * H, H, axis=-1)

    r = jax.nn.sigmoid(cut(gi, 0) + cut(gh, 0))
    z = jax.nn.sigmoid(cut(gi, 1) + cut(gh, 1))
    return h + (1 - z) * (jnp.tanh(cut(gi, 2) + r * cut(gh, 2)) - h)


ACCEPTED["pytorch"] += [
    ("gru_step", _t_gru_block_matrix),
    ("gru_step", _t_gru_rows),
    ("gru_step", torch.func.vmap(_gru(), in_dims=(0, 0, None, None, None, None))),
    ("gru_step", _gru(split=lambda a: torch.tensor_split(a, 3, dim=1))),
    ("gru_step", _gru(acts=(torch.special.expit,) * 2)),
    (
        "gru_step",
        lambda x, h, *w: _gru()(
            x.double(), h.double(), *(a.double() for a in w)
        ).float(),
    ),
    ("gru_step", _gru(acts=(lambda a: 0.5 * (1 + torch.tanh(a / 2)),) * 2)),
    ("gru_step", _t_gru_slices),
    ("gru_step", _t_gru_linear_lerp),
    ("gru_step", _gru(split=lambda a: a.view(len(a), 3, -1).unbind(1))),
    ("gru_step", _gru(acts=(lambda a: 1 / (1 + torch.exp(-a)),) * 2)),
]
ACCEPTED["jax"] += [
    ("gru_step", jax.jit(_gru("jax"))),
    ("gru_step", _j_gru_slices),
    ("gru_step", _gru("jax", split=lambda a: jnp.hsplit(a, 3))),
    ("gru_step", jax.vmap(_gru("jax"), in_axes=(0, 0, None, None, None, None))),
    # from a second student pass
    ("gru_step", _j_gru_scan),
    ("gru_step", _j_gru_float64_inside),
    ("gru_step", _j_gru_dynamic_slice),
    ("gru_step", _gru("jax", split=lambda a: jnp.array_split(a, 3, axis=1))),
    ("gru_step", _gru("jax", acts=(jax.scipy.special.expit,) * 2)),
    ("gru_step", _gru("jax", acts=(lambda a: 0.5 * (1 + jnp.tanh(a / 2)),) * 2)),
]


@pytest.mark.parametrize(
    ("framework", "exercise", "right"),
    [(fw, *a) for fw, accepted in ACCEPTED.items() for a in accepted],
)
def test_right_variants_pass(framework, exercise, right, capsys):
    checks(framework)[exercise](right)
    assert f"✅ {exercise}: passed" in capsys.readouterr().out


# --- tuple results: near misses and wrong types ---------------------------------------------------
TUPLE_EXERCISES = [
    (fw, ex) for fw in MISTAKES for ex in ("linear_relu_backward", "attention_backward")
]
PARTS = {"linear_relu_backward": 3, "attention_backward": 3}


def _solution(framework: str, exercise: str):
    return exercise_functions(source(LAB, framework))[exercise]


@pytest.mark.parametrize(
    ("framework", "exercise", "part"),
    [(fw, ex, i) for fw, ex in TUPLE_EXERCISES for i in range(PARTS[ex])],
)
def test_tuple_with_one_part_three_percent_off_fails(framework, exercise, part):
    solution = _solution(framework, exercise)

    def near_miss(*args):
        out = list(solution(*args))
        out[part] = out[part] * 1.03
        return tuple(out)

    with pytest.raises(CheckFailed) as info:
        checks(framework)[exercise](near_miss)
    assert info.value.exercise == exercise


@pytest.mark.parametrize(("framework", "exercise"), TUPLE_EXERCISES)
@pytest.mark.parametrize("garbage", ["numpy parts", "None part", "float64 parts"])
def test_tuple_of_wrong_parts_fails(framework, exercise, garbage):
    solution = _solution(framework, exercise)
    change = {
        "numpy parts": lambda p: np.asarray(p),
        "None part": lambda p: None,
        "float64 parts": lambda p: np.asarray(p, np.float64),
    }[garbage]
    if garbage == "float64 parts" and framework == "pytorch":
        change = lambda p: p.double()  # noqa: E731
    x64 = garbage == "float64 parts" and framework == "jax"
    if x64:
        # JAX arrays are float64 only with x64 on, as a student who enabled it would get
        change = lambda p: jnp.asarray(p, jnp.float64)  # noqa: E731

    def wrong(*args):
        parts = tuple(change(p) for p in solution(*args))
        if x64:
            assert all(p.dtype == jnp.float64 for p in parts)
        return parts

    with jax.enable_x64(x64), pytest.raises(CheckFailed) as info:
        checks(framework)[exercise](wrong)
    assert info.value.exercise == exercise
    if x64:
        assert "float64" in str(info.value)


# --- the references the mistakes are computed with equal the frameworks' own ----------------------
def test_relu_backward_reference_equals_autodiff():
    for case in lab02.linear_relu_cases():
        want = lab02.relu_backward(**case)
        for got in (
            lab02_torch._autodiff_linear_relu(**case),
            _transposed(lab02_jax._autodiff_linear_relu(**dict(case, W=case["W"].T))),
        ):
            for a, b in zip(want, got, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def _transposed(grads):
    dx, dW, db = grads
    return dx, dW.T, db


def test_gru_reference_equals_both_gru_cells():
    """The numpy reference is nn.GRUCell, and Flax's nnx.GRUCell when b_hh is 0 (it has none)."""
    for case in lab02.gru_cases():
        want = lab02.gru_step(**case)
        np.testing.assert_allclose(
            want, lab02_torch._gru_cell(**case), rtol=1e-12, atol=1e-12
        )
        no_hidden_bias = dict(case, b_hh=np.zeros_like(case["b_hh"]))
        W_ih, W_hh = case["W_ih"].T, case["W_hh"].T  # Flax's layout, (in, out)
        flax = _j_flax_gru_cell(
            *(jnp.asarray(case[k]) for k in ("x", "h")), W_ih, W_hh, case["b_ih"], None
        )
        np.testing.assert_allclose(
            lab02.gru_step(**no_hidden_bias), np.asarray(flax), rtol=1e-5, atol=1e-6
        )


def test_gru_cases_cover_the_shapes():
    """Two cells, D != H in both, batches > 1 and of different sizes."""
    (first, second) = lab02.gru_cases()
    for case in (first, second):
        batch, d_in = case["x"].shape
        assert batch > 1 and d_in != case["h"].shape[1]
    assert first["x"].shape[0] != second["x"].shape[0]


def test_attention_reference_equals_both_libraries():
    for case in lab02.attention_cases():
        want = lab02.attention(**case)
        np.testing.assert_allclose(
            want, lab02_torch._sdpa(**case), rtol=1e-10, atol=1e-12
        )
        # JAX's attention takes its softmax in float32 even for float64 inputs.
        np.testing.assert_allclose(
            want, lab02_jax._dot_product_attention(**case), rtol=1e-5, atol=1e-7
        )


def test_attention_backward_reference_equals_both_autodiffs():
    """The float64 numpy answer of exercise 4 is autograd's and jax.vjp's, on every case."""
    for case in lab02.attention_backward_cases():
        want = lab02.attention_backward(**case)
        t = {
            n: torch.from_numpy(a) if a.dtype == bool else torch.from_numpy(a).double()
            for n, a in case.items()
        }
        qkv = [t[n].requires_grad_(True) for n in "qkv"]
        out = F.scaled_dot_product_attention(*qkv, attn_mask=t["mask"])
        got = torch.autograd.grad(out, qkv, grad_outputs=t["d_out"])
        for a, b in zip(want, got, strict=True):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-10, atol=1e-12)
        with jax.enable_x64():
            q, k, v, d_out = (
                jnp.asarray(case[n], jnp.float64) for n in ("q", "k", "v", "d_out")
            )
            _, vjp = jax.vjp(_j_forward(case["mask"]), q, k, v)
            for a, b in zip(want, vjp(d_out), strict=True):
                np.testing.assert_allclose(a, np.asarray(b), rtol=1e-10, atol=1e-12)


def test_attention_backward_cases_cover_the_shapes_and_masks():
    """T = S first (a missing transpose keeps its shape), then T != S, d != dv; no mask last."""
    first, second, third = lab02.attention_backward_cases()
    assert first["q"].shape == first["k"].shape and not first["mask"].all()
    t, d = second["q"].shape[1:]
    s, dv = second["v"].shape[1:]
    assert len({t, s, d, dv}) == 4 and not second["mask"].all()
    assert (
        (~second["mask"]).all(1).any()
    )  # a key no query may attend to: its dk, dv are 0
    assert third["mask"].all()
    for case in (first, second, third):
        assert case["mask"].any(-1).all()  # every query may attend to a key


def test_attention_backward_mistakes_differ_on_the_first_case():
    """Two mistakes with different hints never give the same (dq, dk, dv) where checks stop."""
    case = lab02.attention_backward_cases()[0]
    mistakes = lab02_attention_backward._mistakes(case)
    for (key, wrong), (other, wrong_other) in itertools.combinations(mistakes, 2):
        if key != other:
            assert not lab02_attention_backward._same(list(wrong), wrong_other), (
                key,
                other,
            )


def _far(wrong, right) -> bool:
    """``wrong`` differs from ``right`` by far more than the checks' tolerance."""
    wrong, right = np.asarray(wrong), np.asarray(right)
    return wrong.shape != right.shape or np.abs(wrong - right).max() > 1e-2


def test_every_mistake_changes_the_answer():
    for case in lab02.linear_relu_cases():
        right = lab02.relu_backward(**case)
        for key in lab02_backprop._DZ_MISTAKES:
            wrong = lab02.relu_backward(**case, dz=key)
            if np.isnan(wrong[0]).all():  # a mask at x needs a square layer
                continue
            assert all(_far(w, r) for w, r in zip(wrong, right, strict=True)), key
    for case in lab02.gru_cases():
        right = lab02.gru_step(**case)
        for key, wrong in lab02_gru._gru_mistakes(case):
            assert _far(wrong, right), key
    for case in lab02.attention_cases():
        right = lab02.attention(**case)
        for key, wrong in lab02_attention._attention_mistakes(case):
            # a fill of -10 is only a little off, as in exercise 4; a test row proves it fails
            far = _far(wrong, right) or np.isnan(wrong).any()
            assert far or key == "mask_fill_finite", key
    for case in lab02.attention_backward_cases():
        right = lab02.attention_backward(**case)
        for key, wrong in lab02_attention_backward._mistakes(case):
            if np.isnan(wrong[0]).any():  # a formula that needs T = S
                continue
            assert not lab02_attention_backward._same(list(right), wrong), key
            # a fill of -10 is only a little off, but beyond the tolerance: it fails
            far = [_far(w, r) for w, r in zip(wrong, right, strict=True)]
            assert any(far) or key == "bwd_mask_fill", key


def test_first_cases_give_every_mistake_a_number():
    """Checks stop at the first case: there, no mistake's result may be NaN (no hint)."""
    case = lab02.attention_cases()[0]
    for key, wrong in lab02_attention._attention_mistakes(case):
        assert np.isfinite(wrong).all(), key
    case = lab02.attention_backward_cases()[0]
    for key, wrong in lab02_attention_backward._mistakes(case):
        assert all(np.isfinite(w).all() for w in wrong), key
    square = lab02.linear_relu_cases()[0]
    assert square["W"].shape[0] == square["W"].shape[1]


def test_answer_keys_are_restored_after_the_check():
    """The checks watch the libraries' own versions while the student's code runs, only."""
    from helpers.jax import labkit as jax_labkit

    keys = [
        (obj, name)
        for module in (lab02_torch, lab02_jax)
        for obj, name in (*module._GRU, *module._ATTENTION)
    ]
    keys += [(obj, name) for obj, name, *_ in jax_labkit._PUBLIC_AUTODIFF]
    keys += [(obj, name) for obj, name, _ in jax_labkit._ad_internals()]
    keys += [(torch.autograd.forward_ad, "make_dual")]
    originals = [getattr(obj, name) for obj, name in keys]
    for framework, table in MISTAKES.items():
        for exercise, wrong, hint in table:
            if hint.endswith("_answer_key"):
                with pytest.raises(CheckFailed):
                    checks(framework)[exercise](wrong)
    for (obj, name), original in zip(keys, originals, strict=True):
        assert getattr(obj, name) is original, name
    assert not torch.overrides._get_current_function_mode_stack()  # the mode has left
    assert not jax.config.jax_disable_jit  # and jit is back on
