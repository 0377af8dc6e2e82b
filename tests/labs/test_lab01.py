"""Lab 1's typical mistakes: each one fails its check with the hint written for it.

``MISTAKES`` lists, per framework, (exercise, a wrong solution, the key of the hint it must get).
Every hint the lab declares (``HINTS`` in ``helpers/labs/lab01/torch.py`` and ``jax.py``,
which include the shared ones of ``mistakes.py``) must be produced by at least one entry, so a
hint whose mistake is never fed, or an entry deleted from this table, fails a test.
"""

from __future__ import annotations

import importlib
import re
import threading

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from jax.experimental.jet import jet
from labtools import adapter, checks, mistake_table_tests
from torch.autograd.forward_ad import dual_level, make_dual, unpack_dual

LAB = "lab01"
# A mistake below reads .grad of a non-leaf tensor on purpose; PyTorch warns the student.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The .grad attribute of a Tensor that is not"
)


# --- PyTorch -------------------------------------------------------------------------------------
def _t_flat(images):
    return images.reshape(len(images), -1).float()


def _t_grad(loss_of_w, *, copy=True):
    """mse_grad by autograd, for a loss(w, X, y) with a mistake in it."""

    def mse_grad(w, X, y):
        if copy:
            w = w.detach().clone()
        w.requires_grad_(True)
        loss_of_w(w, X, y).backward()
        return w.grad

    return mse_grad


def _t_mse(w, X, y):
    return ((X @ w - y) ** 2).mean()


def _t_no_requires_grad(w, X, y):
    w = w.clone()
    _t_mse(w, X, y).backward()
    return w.grad


def _t_non_leaf(w, X, y):
    w = w.detach().clone().requires_grad_(True) * 1.0  # a result of an operation
    _t_mse(w, X, y).backward()
    return w.grad


def _t_all_double(w, X, y):
    w = w.detach().double().requires_grad_(True)
    ((X.double() @ w - y.double()) ** 2).mean().backward()
    return w.grad


def _t_step(
    *, view_write=False, zero_grad=True, step=True, loss_after=False, item=True
):
    def train_step(model, optimizer, x, y):
        if zero_grad:
            optimizer.zero_grad()
        if view_write:
            inputs = x.view(len(x), -1)
            inputs /= 255
        else:
            inputs = x.reshape(len(x), -1) / 255
        loss = F.cross_entropy(model(inputs), y)
        loss.backward()
        if step:
            optimizer.step()
        if loss_after:
            loss = F.cross_entropy(model(inputs), y)
        return loss.item() if item else loss

    return train_step


def _t_scale_batch_in_place(model, optimizer, x, y):
    optimizer.zero_grad()
    x /= 255
    loss = F.cross_entropy(model(x.reshape(len(x), -1)), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def _t_update_callers_w(w, X, y):
    w.requires_grad_(False)
    grad = 2 / len(y) * X.T @ (X @ w - y)
    w -= 0.1 * grad  # a gradient step on the caller's weights
    return grad


def _t_zero_grad_before_step(model, optimizer, x, y):
    loss = F.cross_entropy(model(x.reshape(len(x), -1) / 255), y)
    loss.backward()
    optimizer.zero_grad()  # wipes the gradients step() was about to use
    optimizer.step()
    return loss.item()


def _t_hand_formula(w, X, y):
    return 2 * X.T @ (X @ w - y) / len(y)  # right, but no autograd


def _t_grad_wrt_X(w, X, y):
    X = X.clone().requires_grad_(True)
    _t_mse(w, X, y).backward()
    return X.grad


def _t_loss_under_no_grad(w, X, y):
    w = w.detach().clone().requires_grad_(True)
    with torch.no_grad():
        loss = _t_mse(w, X, y)
    loss.backward()
    return w.grad


def _t_step_with(loss_fn=F.cross_entropy, *, steps=1, no_grad=False, labels=None):
    def train_step(model, optimizer, x, y):
        optimizer.zero_grad()
        inputs = x.reshape(len(x), -1) / 255
        with torch.no_grad() if no_grad else torch.enable_grad():
            loss = loss_fn(model(inputs), y if labels is None else labels(y))
        loss.backward()
        for _ in range(steps):
            optimizer.step()
        return loss.item()

    return train_step


def _t_return_w(w, X, y):
    w = w.detach().clone().requires_grad_(True)
    _t_mse(w, X, y).backward()
    return w.detach()  # the copy, not its .grad


def _t_flatten_step(flatten):
    def train_step(model, optimizer, x, y):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(flatten(x) / 255), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return train_step


TORCH_MISTAKES = [
    ("preprocess", lambda im: im.float() / 255, "preprocess_shape"),
    ("preprocess", _t_flat, "preprocess_unscaled"),
    ("preprocess", lambda im: im.reshape(len(im), -1) // 255, "preprocess_dtype"),
    ("preprocess", lambda im: _t_flat(im).double() / 255, "preprocess_dtype"),
    ("preprocess", lambda im: _t_flat(im) / 256, "preprocess_256"),
    ("preprocess", lambda im: _t_flat(im) / _t_flat(im).max(), "preprocess_data_max"),
    (
        "preprocess",
        lambda im: _t_flat(im) / _t_flat(im).max(dim=1, keepdim=True).values,
        "preprocess_data_max",
    ),
    ("mse_grad", _t_grad(_t_mse, copy=False), "caller_requires_grad"),
    ("mse_grad", _t_grad(lambda w, X, y: ((X @ w - y) ** 2).sum()), "mse_grad_sum"),
    ("mse_grad", _t_grad(lambda w, X, y: -_t_mse(w, X, y)), "mse_grad_sign"),
    ("mse_grad", lambda w, X, y: X.T @ (X @ w - y) / len(y), "mse_grad_half"),
    ("mse_grad", _t_no_requires_grad, "no_grad_leaf"),
    ("mse_grad", _t_grad(lambda w, X, y: (X @ w - y) ** 2), "scalar_loss"),
    ("mse_grad", _t_grad(lambda w, X, y: _t_mse(w.double(), X, y)), "dtype_mismatch"),
    ("mse_grad", _t_all_double, "mse_grad_dtype"),
    ("mse_grad", _t_non_leaf, "grad_none"),
    # "meta" stands in for a GPU on a machine that has none: a second device.
    ("mse_grad", _t_grad(lambda w, X, y: _t_mse(w.to("meta"), X, y)), "device"),
    ("train_step", _t_step(view_write=True, zero_grad=False), "view_write"),
    ("train_step", _t_scale_batch_in_place, "view_write"),
    ("train_step", _t_step(zero_grad=False), "zero_grad"),
    ("train_step", _t_step(step=False), "no_update"),
    ("train_step", _t_zero_grad_before_step, "no_update"),
    ("mse_grad", _t_update_callers_w, "changed_input"),
    ("train_step", _t_step(loss_after=True), "loss_before"),
    ("train_step", _t_step(item=False), "not_float"),
    # From a student pass: before this change each row passed, or got a generic, another or
    # (no_grad, max) a differently worded hint.
    ("preprocess", lambda im: im.div_(255).reshape(len(im), -1), "preprocess_in_place"),
    ("preprocess", lambda im: im.reshape(5, 784).float() / 255, "preprocess_batch"),
    ("mse_grad", _t_hand_formula, "mse_grad_by_hand"),
    ("mse_grad", _t_grad_wrt_X, "mse_grad_wrt_X"),
    ("mse_grad", _t_loss_under_no_grad, "no_grad_leaf"),
    ("train_step", _t_step_with(no_grad=True), "step_no_grad"),
    ("train_step", _t_step_with(labels=lambda y: y.float()), "labels_long"),
    (
        "train_step",
        _t_step_with(lambda out, y: F.cross_entropy(out.softmax(-1), y)),
        "step_logits",
    ),
    ("train_step", _t_step_with(F.nll_loss), "step_logits"),
    ("train_step", _t_step_with(steps=2), "step_once"),
    (
        "train_step",
        _t_step_with(lambda out, y: F.cross_entropy(out, y, reduction="sum")),
        "loss_mean",
    ),
    # From a second student pass: before this change each row passed, or got the generic
    # hint, a misleading one or (mse_grad_half after autograd) a reworded one.
    (
        "preprocess",
        lambda im: (im.reshape(len(im), -1) // 255).float(),
        "preprocess_floor",
    ),
    (
        "preprocess",
        lambda im: (_t_flat(im) / 255 - 0.1307) / 0.3081,
        "preprocess_normalize",
    ),
    ("preprocess", lambda im: (_t_flat(im) / 255).tolist(), "array_tolist"),
    ("mse_grad", lambda w, X, y: _t_mse(w, X, y), "mse_grad_loss"),
    ("mse_grad", _t_return_w, "mse_grad_w"),
    (
        "mse_grad",
        lambda w, X, y: torch.func.grad(_t_mse, argnums=2)(w, X, y),
        "mse_grad_wrt_y",
    ),
    (
        "mse_grad",
        _t_grad(lambda w, X, y: ((X @ w - y[:, None]) ** 2).mean()),
        "mse_grad_broadcast",
    ),
    ("mse_grad", _t_grad(lambda w, X, y: 0.5 * _t_mse(w, X, y)), "mse_grad_half"),
    ("train_step", _t_flatten_step(lambda x: x.view(-1, 784)), "step_flatten"),
    ("train_step", _t_flatten_step(lambda x: x.view(-1, len(x))), "step_flatten"),
]


# --- JAX -----------------------------------------------------------------------------------------
def _j_flat(images):
    return images.reshape(len(images), -1).astype(jnp.float32)


def _j_mse(w, X, y):
    return jnp.mean((X @ w - y) ** 2)


def _j_loss(params, inputs, y):
    logits = inputs @ params["w"] + params["b"]  # (B, C)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def _j_step(
    lr=lambda step: 0.5 / (step + 1),
    mask=lambda key, x: jax.random.bernoulli(key, 0.9, x.shape),
    inputs=lambda keep, x: jnp.where(keep, x / 0.9, 0.0),
    sign=-1,
    after=False,
    out=lambda new, grads, loss: (new, loss),
):
    """Exercise 5's step, with a mistake in one of its parts."""

    def train_step(params, x, y, step, key):
        lr_now = lr(step)
        dropped = inputs(mask(key, x), x)  # (B, D)
        loss, grads = jax.value_and_grad(_j_loss)(params, dropped, y)
        new = jax.tree.map(lambda p, g: p + sign * lr_now * g, params, grads)
        if after:
            loss = _j_loss(new, dropped, y)
        return out(new, grads, loss)

    return train_step


_j_steps_taken = 0


def _j_step_counter(params, x, y, step, key):
    """The learning rate from a Python counter, as in the step the exercise shows."""
    global _j_steps_taken
    _j_steps_taken += 1  # runs once, while jit traces
    return _j_step(lr=lambda step: 0.5 / _j_steps_taken)(params, x, y, step, key)


_J_GLOBAL_KEY = jax.random.key(0)


def _j_numpy_mask(key, x):
    """NumPy's random numbers: drawn once, while jit traces, then baked in."""
    return np.random.default_rng(0).uniform(size=x.shape) < 0.9


def _j_step_one_param(name):
    """Only params[name] updated: the other one left as it was."""

    def train_step(params, x, y, step, key):
        new, loss = _j_step()(params, x, y, step, key)
        return {**params, name: new[name]}, loss

    return train_step


def _j_step_clean_loss(params, x, y, step, key):
    """The update from the dropped-out inputs, the loss reported on the clean ones."""
    new, _ = _j_step()(params, x, y, step, key)
    return new, _j_loss(params, x, y)


@jax.jit
def _j_jitted_hand_formula(w, X, y):
    return 2 * X.T @ (X @ w - y) / y.shape[0]


def _j_return_w(w, X, y):
    jax.grad(_j_mse)(w, X, y)  # computed, then not returned
    return w


JAX_MISTAKES = [
    ("preprocess", lambda im: im.astype(jnp.float32) / 255, "preprocess_shape"),
    ("preprocess", _j_flat, "preprocess_unscaled"),
    ("preprocess", lambda im: im.reshape(len(im), -1) // 255, "preprocess_dtype"),
    (
        "preprocess",
        lambda im: _j_flat(im).astype(jnp.bfloat16) / 255,
        "preprocess_dtype",
    ),
    ("preprocess", lambda im: _j_flat(im) / 256, "preprocess_256"),
    ("preprocess", lambda im: _j_flat(im) / _j_flat(im).max(), "preprocess_data_max"),
    (
        "preprocess",
        lambda im: _j_flat(im) / _j_flat(im).max(axis=1, keepdims=True),
        "preprocess_data_max",
    ),
    (
        "mse_grad",
        lambda w, X, y: jax.grad(lambda w: jnp.sum((X @ w - y) ** 2))(w),
        "mse_grad_sum",
    ),
    (
        "mse_grad",
        lambda w, X, y: jax.grad(lambda w: -_j_mse(w, X, y))(w),
        "mse_grad_sign",
    ),
    ("mse_grad", lambda w, X, y: X.T @ (X @ w - y) / len(y), "mse_grad_half"),
    (
        "mse_grad",
        lambda w, X, y: jax.grad(lambda w: (X @ w - y) ** 2)(w),
        "scalar_loss",
    ),
    (
        "mse_grad",
        lambda w, X, y: jax.grad(_j_mse)(w.astype(jnp.bfloat16), X, y),
        "mse_grad_dtype",
    ),
    ("train_step", _j_step(lr=lambda step: 0.5), "lr_constant"),
    ("train_step", _j_step_counter, "lr_constant"),
    ("train_step", _j_step(lr=lambda step: 0.5 / step), "lr_by_step"),
    ("train_step", _j_step(lr=lambda step: 0.5 / (step + 2)), "lr_off_by_one"),
    ("train_step", _j_step(lr=lambda step: 0.5 * (step + 1)), "lr_off_by_one"),
    ("train_step", _j_step(lr=lambda step: 0.5 * step), "no_update"),
    ("train_step", _j_step(lr=lambda step: 0.5 / (int(step) + 1)), "step_traced"),
    ("train_step", _j_step(lr=lambda step: 0.5 if step == 0 else 0.25), "step_traced"),
    (
        "train_step",
        _j_step(out=lambda new, grads, loss: (new, float(loss))),
        "loss_traced",
    ),
    (
        "train_step",
        _j_step(mask=lambda key, x: jax.random.bernoulli(_J_GLOBAL_KEY, 0.9, x.shape)),
        "fixed_key",
    ),
    (
        "train_step",
        _j_step(
            mask=lambda key, x: jax.random.bernoulli(jax.random.key(7), 0.9, x.shape)
        ),
        "fixed_key",
    ),
    (
        "train_step",
        _j_step(mask=lambda key, x: jax.random.bernoulli(key, 0.1, x.shape)),
        "keep_prob",
    ),
    (
        "train_step",
        _j_step(mask=lambda key, x: ~jax.random.bernoulli(key, 0.9, x.shape)),
        "keep_prob",
    ),
    (
        "train_step",
        _j_step(inputs=lambda keep, x: jnp.where(keep, x, 0.0)),
        "dropout_unscaled",
    ),
    ("train_step", _j_step(inputs=lambda keep, x: keep * x * 0.9), "dropout_unscaled"),
    (
        "train_step",
        _j_step(inputs=lambda keep, x: jnp.where(keep, x / 0.1, 0.0)),
        "dropout_scale_drop",
    ),
    ("train_step", _j_step(inputs=lambda keep, x: x), "no_dropout"),
    (
        "train_step",
        _j_step(mask=lambda key, x: jax.random.bernoulli(key, 0.9, (x.shape[0], 1))),
        "mask_shape",
    ),
    (
        "train_step",
        _j_step(mask=lambda key, x: jax.random.bernoulli(key, 0.9, x.shape[1:])),
        "mask_shape",
    ),
    (
        "train_step",
        _j_step(
            mask=lambda key, x: jax.random.bernoulli(
                jax.random.split(key)[1], 0.9, x.shape
            )
        ),
        "key_split_inside",
    ),
    ("train_step", _j_step(after=True), "loss_before"),
    ("train_step", _j_step(sign=+1), "ascent"),
    ("train_step", _j_step(out=lambda new, grads, loss: (grads, loss)), "return_grads"),
    ("train_step", _j_step(out=lambda new, grads, loss: (loss, new)), "return_pair"),
    # From a student pass on exercise 5: before this change each row got the general hint, a
    # misleading one (0.5 * step: fixed_key), none (a transposed mask), or passed (a size
    # written in).
    (
        "train_step",
        _j_step(inputs=lambda keep, x: jnp.where(keep, x / 0.9, x)),
        "dropout_zero",
    ),
    (
        "train_step",
        _j_step(mask=lambda key, x: jax.random.uniform(key, x.shape) > 0.1),
        "mask_exact",
    ),
    ("train_step", _j_step_one_param("w"), "update_all"),
    ("train_step", _j_step_one_param("b"), "update_all"),
    (
        "train_step",
        _j_step(mask=lambda key, x: jax.random.bernoulli(key, 0.9, x.shape[::-1])),
        "mask_shape",
    ),
    ("train_step", _j_step(mask=_j_numpy_mask), "fixed_key"),
    (
        "train_step",
        _j_step(
            mask=lambda key, x: jax.random.bernoulli(
                jax.random.key(x.shape[0]), 0.9, x.shape
            )
        ),
        "fixed_key",
    ),
    # The size of the check's first batch written in: fails on the fourth step's batch.
    (
        "train_step",
        _j_step(mask=lambda key, x: jax.random.bernoulli(key, 0.9, (6, 10))),
        "mask_shape",
    ),
    (
        "train_step",
        _j_step(
            mask=lambda key, x: jax.random.bernoulli(
                jax.random.fold_in(key, 1), 0.9, x.shape
            )
        ),
        "key_split_inside",
    ),
    (
        "train_step",
        _j_step(lr=jax.jit(lambda s: 0.5 / (s + 1), static_argnums=0)),
        "step_traced",
    ),
    (
        "train_step",
        _j_step(out=lambda new, grads, loss: (new, loss.item())),
        "loss_traced",
    ),
    ("train_step", _j_step_clean_loss, "loss_before"),
    (
        "train_step",
        _j_step(out=lambda new, grads, loss: (new, loss[None])),
        "return_pair",
    ),
    # From a student pass: before this change each row passed, or got a generic, another or
    # (no_grad, max) a differently worded hint.
    ("preprocess", lambda im: im.reshape(5, 784) / 255, "preprocess_batch"),
    ("mse_grad", lambda w, X, y: 2 * X.T @ (X @ w - y) / len(y), "mse_grad_by_hand"),
    ("mse_grad", _j_jitted_hand_formula, "mse_grad_by_hand"),
    (
        "mse_grad",
        lambda w, X, y: jax.grad(_j_mse, argnums=1)(w, X, y),
        "mse_grad_wrt_X",
    ),
    # From a second student pass: before this change each row got the generic hint, a
    # misleading one or (mse_grad_half after jax.grad) a reworded one.
    (
        "preprocess",
        lambda im: (im.reshape(len(im), -1) // 255).astype(jnp.float32),
        "preprocess_floor",
    ),
    ("preprocess", lambda im: (_j_flat(im) / 255 - 0.5) / 0.5, "preprocess_normalize"),
    ("preprocess", lambda im: (_j_flat(im) / 255).tolist(), "array_tolist"),
    ("mse_grad", _j_mse, "mse_grad_loss"),
    ("mse_grad", _j_return_w, "mse_grad_w"),
    (
        "mse_grad",
        lambda w, X, y: jax.grad(_j_mse, argnums=2)(w, X, y),
        "mse_grad_wrt_y",
    ),
    (
        "mse_grad",
        lambda w, X, y: jax.grad(lambda w: jnp.mean((X @ w[:, None] - y) ** 2))(w),
        "mse_grad_broadcast",
    ),
    (
        "mse_grad",
        lambda w, X, y: jax.grad(lambda w: optax.l2_loss(X @ w, y).mean())(w),
        "mse_grad_half",
    ),
    (
        "mse_grad",
        lambda w, X, y: jax.grad(_j_mse(w, X, y))(w),
        "grad_needs_function",
    ),
    ("mse_grad", lambda w, X, y: jax.grad(_j_mse)(w, X, y).tolist(), "array_tolist"),
]


# --- Exercises 2 and 4, both frameworks: top-k accuracy, a gradient check along directions ------
def _k_guard(logits, k):
    if not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"k must be between 1 and {logits.shape[-1]}, got {k}")


def _t_topk(
    count=lambda lg, own: (lg > own).sum(1),
    rule=lambda n, k: n < k,
    reduce=lambda hits: hits.float().mean().item(),
    guard=_k_guard,
):
    """top_k_accuracy in PyTorch with one piece swapped for a mistake."""

    def top_k_accuracy(logits, labels, k):
        guard(logits, k)
        return reduce(rule(count(logits, logits.gather(1, labels[:, None])), k))

    return top_k_accuracy


def _t_topk_indices(indices):
    """Label among ``indices(logits, k)``, (B, k) class indices (a sort or topk)."""

    def top_k_accuracy(logits, labels, k):
        _k_guard(logits, k)
        hits = (indices(logits, k) == labels[:, None]).any(1)
        return hits.float().mean().item()

    return top_k_accuracy


def _t_topk_per_class(logits, labels, k):
    _k_guard(logits, k)
    hits = (logits > logits.gather(1, labels[:, None])).sum(1) < k
    return torch.stack([hits[labels == c].float().mean() for c in labels.unique()])


def _t_topk_assert(logits, labels, k):
    assert 1 <= k <= logits.shape[-1], "k out of range"
    return _t_topk(guard=lambda lg, k: None)(logits, labels, k)


def _t_topk_no_message(logits, labels, k):
    if not 1 <= k <= logits.shape[-1]:
        raise ValueError
    return _t_topk()(logits, labels, k)


def _t_topk_row_vector(logits, labels, k):
    _k_guard(logits, k)
    own = logits[torch.arange(len(labels)), labels]  # (B,): no [:, None]
    return ((logits > own).sum(1) < k).float().mean().item()


def _t_central(f, x, eps, v):
    return (f(x + eps * v) - f(x - eps * v)) / (2 * eps)


def _t_relative(exact, fd):
    return ((exact - fd).abs() / max(exact.abs().item(), fd.abs().item(), 1e-12)).item()


def _t_dgc(
    diff=_t_central,
    rel=_t_relative,
    reduce=max,
    dot=torch.dot,
):
    """directional_gradient_error in PyTorch with one piece swapped for a mistake."""

    def directional_gradient_error(f, grad_f, x, eps, directions):
        g = grad_f(x)
        return reduce([rel(dot(g, v), diff(f, x, eps, v)) for v in directions])

    return directional_gradient_error


def _t_dgc_in_place(f, grad_f, x, eps, directions):
    g, errors = grad_f(x), []
    for v in directions:
        x += eps * v  # the caller's x
        plus = f(x)
        x -= 2 * eps * v
        fd = (plus - f(x)) / (2 * eps)
        errors.append(_t_relative(torch.dot(g, v), fd))
    return max(errors)


def _t_dgc_autograd(f, grad_f, x, eps, directions):
    x.requires_grad_(True)  # the caller's x
    f(x).backward()
    g = x.grad.detach()
    return max(
        _t_relative(torch.dot(g, v), _t_central(f, x, eps, v)) for v in directions
    )


TORCH_MISTAKES += [
    (
        "top_k_accuracy",
        _t_topk(count=lambda lg, own: (lg >= own).sum(1), rule=lambda n, k: n <= k),
        "topk_ties_against",
    ),
    (
        "top_k_accuracy",
        _t_topk_indices(lambda lg, k: torch.topk(lg, k).indices),
        "topk_ties",
    ),
    (
        "top_k_accuracy",
        _t_topk_indices(lambda lg, k: lg.argsort(1, descending=True)[:, :k]),
        "topk_ties",
    ),
    ("top_k_accuracy", _t_topk(rule=lambda n, k: n <= k), "topk_off_by_one"),
    ("top_k_accuracy", _t_topk(rule=lambda n, k: n < k - 1), "topk_one_short"),
    (
        "top_k_accuracy",
        _t_topk_indices(lambda lg, k: torch.topk(lg, k, largest=False).indices),
        "topk_bottom",
    ),
    (
        "top_k_accuracy",
        _t_topk_indices(lambda lg, k: lg.argsort(1)[:, :k]),
        "topk_bottom",
    ),
    (
        "top_k_accuracy",
        _t_topk_indices(lambda lg, k: lg.argmax(1, keepdim=True)),
        "topk_argmax",
    ),
    (
        "top_k_accuracy",
        _t_topk(
            reduce=lambda hits: hits.float().mean().item(), rule=lambda n, k: n < 1
        ),
        "topk_argmax",
    ),
    (
        "top_k_accuracy",
        lambda lg, lb, k: (lg > lg.gather(1, lb[:, None])).float().mean().item(),
        "topk_axis",
    ),
    (
        "top_k_accuracy",
        lambda lg, lb, k: _t_topk_per_class(lg, lb, k).mean().item(),
        "topk_per_class",
    ),
    ("top_k_accuracy", _t_topk(reduce=lambda hits: hits.float().mean()), "not_float"),
    ("top_k_accuracy", _t_topk(reduce=lambda hits: hits.float()), "topk_vector"),
    (
        "top_k_accuracy",
        _t_topk(reduce=lambda hits: hits.sum().item() // len(hits)),
        "topk_int_division",
    ),
    ("top_k_accuracy", _t_topk(reduce=lambda hits: hits.sum().item()), "topk_count"),
    ("top_k_accuracy", _t_topk(reduce=lambda hits: hits.mean().item()), "bool_mean"),
    ("top_k_accuracy", _t_topk(guard=lambda lg, k: None), "topk_k_invalid"),
    ("top_k_accuracy", _t_topk_assert, "topk_k_invalid"),
    ("top_k_accuracy", _t_topk_no_message, "topk_k_invalid"),
    ("top_k_accuracy", _t_topk_row_vector, "topk_broadcast"),
    (
        "directional_gradient_error",
        _t_dgc(diff=lambda f, x, eps, v: (f(x + eps * v) - f(x)) / eps),
        "dgc_forward",
    ),
    (
        "directional_gradient_error",
        _t_dgc(diff=lambda f, x, eps, v: (f(x + eps * v) - f(x - eps * v)) / eps),
        "dgc_one_eps",
    ),
    (
        "directional_gradient_error",
        _t_dgc(diff=lambda f, x, eps, v: (f(x + eps * v) - f(x - eps * v)) / 2 * eps),
        "dgc_one_eps",
    ),
    (
        "directional_gradient_error",
        _t_dgc(rel=lambda a, b: (a - b).abs().item()),
        "dgc_absolute",
    ),
    (
        "directional_gradient_error",
        _t_dgc(rel=lambda a, b: ((a - b) / a).abs().item()),
        "dgc_denominator",
    ),
    (
        "directional_gradient_error",
        _t_dgc(rel=lambda a, b: ((a - b).abs() / (a.abs() + b.abs())).item()),
        "dgc_denominator",
    ),
    (
        "directional_gradient_error",
        _t_dgc(rel=lambda a, b: ((a - b) / torch.maximum(a.abs(), b.abs())).item()),
        "dgc_signed",
    ),
    ("directional_gradient_error", _t_dgc(reduce=lambda e: e[0]), "dgc_first"),
    (
        "directional_gradient_error",
        _t_dgc(reduce=lambda e: sum(e) / len(e)),
        "dgc_mean",
    ),
    (
        "directional_gradient_error",
        _t_dgc(diff=lambda f, x, eps, v: (f(x + v) - f(x - v)) / (2 * eps)),
        "dgc_unscaled",
    ),
    ("directional_gradient_error", _t_dgc(dot=lambda g, v: g.sum()), "dgc_dot"),
    (
        "directional_gradient_error",
        _t_dgc(reduce=lambda e: torch.tensor(max(e))),
        "not_float",
    ),
    ("directional_gradient_error", _t_dgc(reduce=torch.tensor), "dgc_vector"),
    (
        "directional_gradient_error",
        lambda f, g, x, eps, d: _t_dgc()(f, g, x, 1e-2, d),
        "dgc_ignores_eps",
    ),
    ("directional_gradient_error", _t_dgc_in_place, "changed_input"),
    ("directional_gradient_error", _t_dgc_autograd, "dgc_autograd"),
    # From the student pass: before the fix each got a generic or another exercise's hint.
    (
        "top_k_accuracy",
        _t_topk(reduce=lambda h: 100 * h.float().mean().item()),
        "topk_percent",
    ),
    (
        "top_k_accuracy",
        _t_topk(reduce=lambda h: 1 - h.float().mean().item()),
        "topk_error_rate",
    ),
    ("top_k_accuracy", lambda lg, lb, k: _t_topk()(lg, lb, 3), "topk_ignores_k"),
    (
        "top_k_accuracy",
        _t_topk(guard=lambda lg, k: _k_guard(lg, k + 1)),
        "topk_k_valid",
    ),
    (
        "top_k_accuracy",
        _t_topk(count=lambda lg, own: (lg > own).sum(0)),
        "topk_axis",
    ),
    (
        "directional_gradient_error",
        lambda f, g, x, eps, d: _t_dgc()(f, g, x, eps, d.T),
        "dgc_rows",
    ),
    (
        "directional_gradient_error",
        _t_dgc(diff=lambda f, x, eps, v: (f(x) - f(x - eps * v)) / eps),
        "dgc_forward",
    ),
    ("directional_gradient_error", _t_dgc(reduce=min), "dgc_mean"),
    ("directional_gradient_error", _t_dgc(reduce=sum), "dgc_mean"),
    ("directional_gradient_error", _t_dgc(reduce=lambda e: e[-1]), "dgc_first"),
]


def _j_topk(
    count=lambda lg, own: (lg > own).sum(-1),
    rule=lambda n, k: n < k,
    reduce=lambda hits: float(hits.mean()),
    guard=_k_guard,
):
    """top_k_accuracy in JAX with one piece swapped for a mistake."""

    def top_k_accuracy(logits, labels, k):
        guard(logits, k)
        own = jnp.take_along_axis(logits, labels[:, None], axis=-1)
        return reduce(rule(count(logits, own), k))

    return top_k_accuracy


def _j_topk_indices(indices):
    def top_k_accuracy(logits, labels, k):
        _k_guard(logits, k)
        return float((indices(logits, k) == labels[:, None]).any(-1).mean())

    return top_k_accuracy


def _j_topk_per_class(logits, labels, k):
    _k_guard(logits, k)
    own = jnp.take_along_axis(logits, labels[:, None], axis=-1)
    hits = (logits > own).sum(-1) < k
    return float(
        jnp.mean(jnp.stack([hits[labels == c].mean() for c in jnp.unique(labels)]))
    )


def _j_topk_assert(logits, labels, k):
    assert 1 <= k <= logits.shape[-1], "k out of range"
    return _j_topk(guard=lambda lg, k: None)(logits, labels, k)


def _j_topk_no_message(logits, labels, k):
    if not 1 <= k <= logits.shape[-1]:
        raise ValueError
    return _j_topk()(logits, labels, k)


def _j_topk_row_vector(logits, labels, k):
    _k_guard(logits, k)
    own = logits[jnp.arange(len(labels)), labels]  # (B,): no [:, None]
    return float(((logits > own).sum(-1) < k).mean())


@jax.jit
def _j_topk_jitted(logits, labels, k):
    _k_guard(logits, k)  # k is traced: a Python comparison of a tracer
    own = jnp.take_along_axis(logits, labels[:, None], axis=-1)
    return ((logits > own).sum(-1) < k).mean()


def _j_central(f, x, eps, v):
    return (f(x + eps * v) - f(x - eps * v)) / (2 * eps)


def _j_relative(exact, fd):
    return float(jnp.abs(exact - fd)) / max(
        float(jnp.abs(exact)), float(jnp.abs(fd)), 1e-12
    )


def _j_dgc(diff=_j_central, rel=_j_relative, reduce=max, dot=jnp.dot):
    """directional_gradient_error in JAX with one piece swapped for a mistake."""

    def directional_gradient_error(f, grad_f, x, eps, directions):
        g = grad_f(x)
        return reduce([rel(dot(g, v), diff(f, x, eps, v)) for v in directions])

    return directional_gradient_error


def _j_dgc_in_place(f, grad_f, x, eps, directions):
    g, errors = grad_f(x), []
    for v in directions:
        x[:] = x + eps * v  # what PyTorch allows; JAX arrays refuse
        errors.append(_j_relative(g @ v, (f(x) - f(x - 2 * eps * v)) / (2 * eps)))
    return max(errors)


JAX_MISTAKES += [
    (
        "top_k_accuracy",
        _j_topk(count=lambda lg, own: (lg >= own).sum(-1), rule=lambda n, k: n <= k),
        "topk_ties_against",
    ),
    (
        "top_k_accuracy",
        _j_topk_indices(lambda lg, k: jax.lax.top_k(lg, k)[1]),
        "topk_ties",
    ),
    (
        "top_k_accuracy",
        _j_topk_indices(lambda lg, k: jnp.argsort(-lg, axis=-1)[:, :k]),
        "topk_ties",
    ),
    ("top_k_accuracy", _j_topk(rule=lambda n, k: n <= k), "topk_off_by_one"),
    ("top_k_accuracy", _j_topk(rule=lambda n, k: n < k - 1), "topk_one_short"),
    (
        "top_k_accuracy",
        _j_topk_indices(lambda lg, k: jnp.argsort(lg, axis=-1)[:, :k]),
        "topk_bottom",
    ),
    (
        "top_k_accuracy",
        _j_topk(count=lambda lg, own: (lg < own).sum(-1)),
        "topk_bottom",
    ),
    (
        "top_k_accuracy",
        lambda lg, lb, k: float(
            (lg > jnp.take_along_axis(lg, lb[:, None], axis=-1)).mean()
        ),
        "topk_axis",
    ),
    (
        "top_k_accuracy",
        _j_topk_indices(lambda lg, k: lg.argmax(-1, keepdims=True)),
        "topk_argmax",
    ),
    ("top_k_accuracy", _j_topk(rule=lambda n, k: n < 1), "topk_argmax"),
    ("top_k_accuracy", _j_topk_per_class, "topk_per_class"),
    ("top_k_accuracy", _j_topk(reduce=lambda hits: hits.mean()), "not_float"),
    (
        "top_k_accuracy",
        _j_topk(reduce=lambda hits: hits.astype(jnp.float32)),
        "topk_vector",
    ),
    (
        "top_k_accuracy",
        _j_topk(reduce=lambda hits: int(hits.sum()) // len(hits)),
        "topk_int_division",
    ),
    ("top_k_accuracy", _j_topk(reduce=lambda hits: int(hits.sum())), "topk_count"),
    ("top_k_accuracy", _j_topk(guard=lambda lg, k: None), "topk_k_invalid"),
    ("top_k_accuracy", _j_topk_assert, "topk_k_invalid"),
    ("top_k_accuracy", _j_topk_no_message, "topk_k_invalid"),
    ("top_k_accuracy", _j_topk_row_vector, "topk_broadcast"),
    ("top_k_accuracy", _j_topk_jitted, "traced_value"),
    (
        "directional_gradient_error",
        _j_dgc(diff=lambda f, x, eps, v: (f(x + eps * v) - f(x)) / eps),
        "dgc_forward",
    ),
    (
        "directional_gradient_error",
        _j_dgc(diff=lambda f, x, eps, v: (f(x + eps * v) - f(x - eps * v)) / eps),
        "dgc_one_eps",
    ),
    (
        "directional_gradient_error",
        _j_dgc(diff=lambda f, x, eps, v: (f(x + eps * v) - f(x - eps * v)) / 2 * eps),
        "dgc_one_eps",
    ),
    (
        "directional_gradient_error",
        _j_dgc(rel=lambda a, b: float(jnp.abs(a - b))),
        "dgc_absolute",
    ),
    (
        "directional_gradient_error",
        _j_dgc(rel=lambda a, b: float(jnp.abs((a - b) / a))),
        "dgc_denominator",
    ),
    (
        "directional_gradient_error",
        _j_dgc(rel=lambda a, b: float(jnp.abs(a - b) / (jnp.abs(a) + jnp.abs(b)))),
        "dgc_denominator",
    ),
    (
        "directional_gradient_error",
        _j_dgc(rel=lambda a, b: float((a - b) / jnp.maximum(jnp.abs(a), jnp.abs(b)))),
        "dgc_signed",
    ),
    ("directional_gradient_error", _j_dgc(reduce=lambda e: e[0]), "dgc_first"),
    (
        "directional_gradient_error",
        _j_dgc(reduce=lambda e: sum(e) / len(e)),
        "dgc_mean",
    ),
    (
        "directional_gradient_error",
        _j_dgc(diff=lambda f, x, eps, v: (f(x + v) - f(x - v)) / (2 * eps)),
        "dgc_unscaled",
    ),
    ("directional_gradient_error", _j_dgc(dot=lambda g, v: g.sum()), "dgc_dot"),
    (
        "directional_gradient_error",
        _j_dgc(reduce=lambda e: jnp.asarray(max(e))),
        "not_float",
    ),
    ("directional_gradient_error", _j_dgc(reduce=jnp.asarray), "dgc_vector"),
    (
        "directional_gradient_error",
        lambda f, g, x, eps, d: _j_dgc()(f, g, x, 1e-2, d),
        "dgc_ignores_eps",
    ),
    ("directional_gradient_error", _j_dgc_in_place, "immutable"),
    # From the student pass: before the fix each got a generic or another exercise's hint.
    ("top_k_accuracy", _j_topk(reduce=lambda h: 100 * float(h.mean())), "topk_percent"),
    (
        "top_k_accuracy",
        _j_topk(reduce=lambda h: 1 - float(h.mean())),
        "topk_error_rate",
    ),
    ("top_k_accuracy", lambda lg, lb, k: _j_topk()(lg, lb, 3), "topk_ignores_k"),
    (
        "top_k_accuracy",
        _j_topk(guard=lambda lg, k: _k_guard(lg, k + 1)),
        "topk_k_valid",
    ),
    ("top_k_accuracy", _j_topk(count=lambda lg, own: (lg > own).sum(0)), "topk_axis"),
    (
        "directional_gradient_error",
        lambda f, g, x, eps, d: _j_dgc()(f, g, x, eps, d.T),
        "dgc_rows",
    ),
    (
        "directional_gradient_error",
        _j_dgc(diff=lambda f, x, eps, v: (f(x) - f(x - eps * v)) / eps),
        "dgc_forward",
    ),
    ("directional_gradient_error", _j_dgc(reduce=min), "dgc_mean"),
    ("directional_gradient_error", _j_dgc(reduce=sum), "dgc_mean"),
    ("directional_gradient_error", _j_dgc(reduce=lambda e: e[-1]), "dgc_first"),
]


# From a second student pass: before the fix each passed, or got a generic, empty or misleading
# hint (the old check's hint in brackets).
def _t_topk_own(own):
    """top_k_accuracy in PyTorch with the label's score taken by ``own(logits, labels)``."""

    def top_k_accuracy(logits, labels, k):
        _k_guard(logits, k)
        return ((logits > own(logits, labels)).sum(1) < k).float().mean().item()

    return top_k_accuracy


def _t_kth_strict(logits, labels, k):
    _k_guard(logits, k)
    kth = torch.topk(logits, k).values[:, -1]  # (B,)
    return (logits[torch.arange(len(labels)), labels] > kth).float().mean().item()


def _t_no_floor(exact, fd):
    return ((exact - fd).abs() / max(exact.abs().item(), fd.abs().item())).item()


def _t_no_floor_tensor(f, grad_f, x, eps, directions):
    exact = directions @ grad_f(x)
    fd = torch.stack([_t_central(f, x, eps, v) for v in directions])
    return ((exact - fd).abs() / torch.maximum(exact.abs(), fd.abs())).max().item()


def _t_signed_reversed(exact, fd):
    scale = max(exact.abs().item(), fd.abs().item(), 1e-12)
    return ((fd - exact) / scale).item()


TORCH_MISTAKES += [
    # [topk_off_by_one]: >= counts the label's own class, and a strict > against the k-th.
    (
        "top_k_accuracy",
        _t_topk(count=lambda lg, own: (lg >= own).sum(1)),
        "topk_one_short",
    ),
    ("top_k_accuracy", _t_kth_strict, "topk_one_short"),
    # [generic]: a gather over the examples.
    (
        "top_k_accuracy",
        _t_topk_own(lambda lg, lb: lg.gather(0, lb[:, None])),
        "topk_gather",
    ),
    # [empty]: gather's own error.
    (
        "top_k_accuracy",
        _t_topk_own(lambda lg, lb: lg.gather(1, lb.float()[:, None])),
        "topk_labels_int",
    ),
    # [topk_off_by_one, topk_axis before the consistency check]: one-hot labels.
    (
        "top_k_accuracy",
        _t_topk_own(lambda lg, lb: lg * F.one_hot(lb, lg.shape[1])),
        "topk_labels_int",
    ),
    # [generic]: divided by the number of classes.
    (
        "top_k_accuracy",
        lambda lg, lb, k: _t_topk()(lg, lb, k) * len(lb) / lg.shape[1],
        "topk_classes",
    ),
    # [passed]: no floor in the denominator; 0 / 0 where g . v and fd are both 0.
    ("directional_gradient_error", _t_dgc(rel=_t_no_floor), "dgc_tiny"),
    ("directional_gradient_error", _t_no_floor_tensor, "dgc_tiny"),
    # [dgc_first]
    ("directional_gradient_error", _t_dgc(rel=_t_signed_reversed), "dgc_signed"),
    # [generic]
    (
        "directional_gradient_error",
        _t_dgc(
            diff=lambda f, x, eps, v: (f(x + eps * v) - f(x - eps * v)) / (2 * eps**2)
        ),
        "dgc_one_eps",
    ),
    (
        "directional_gradient_error",
        _t_dgc(diff=lambda f, x, eps, v: (f(x + eps + v) - f(x - eps - v)) / (2 * eps)),
        "dgc_unscaled",
    ),
    (
        "directional_gradient_error",
        _t_dgc(rel=lambda a, b: ((a - b).abs() / ((a.abs() + b.abs()) / 2)).item()),
        "dgc_denominator",
    ),
    ("directional_gradient_error", _t_dgc(dot=lambda g, v: (g * v).mean()), "dgc_dot"),
    (
        "top_k_accuracy",
        lambda lg, lb, k: round(_t_topk()(lg, lb, k), 2),
        "topk_rounded",
    ),
    (
        "directional_gradient_error",
        lambda *args: round(_t_dgc()(*args), 3),
        "dgc_rounded",
    ),
]


def _j_topk_own(own):
    """top_k_accuracy in JAX with the label's score taken by ``own(logits, labels)``."""

    def top_k_accuracy(logits, labels, k):
        _k_guard(logits, k)
        return float(((logits > own(logits, labels)).sum(-1) < k).mean())

    return top_k_accuracy


def _j_no_floor(exact, fd):
    return float(jnp.abs(exact - fd)) / max(float(jnp.abs(exact)), float(jnp.abs(fd)))


def _j_no_floor_array(f, grad_f, x, eps, directions):
    exact = directions @ grad_f(x)
    fd = jax.vmap(lambda v: _j_central(f, x, eps, v))(directions)
    return float(
        jnp.max(jnp.abs(exact - fd) / jnp.maximum(jnp.abs(exact), jnp.abs(fd)))
    )


JAX_MISTAKES += [
    # [topk_off_by_one]
    (
        "top_k_accuracy",
        _j_topk(count=lambda lg, own: (lg >= own).sum(-1)),
        "topk_one_short",
    ),
    # [topk_error_rate]: jnp.take without an axis reads the flattened logits.
    (
        "top_k_accuracy",
        _j_topk_own(lambda lg, lb: jnp.take(lg, lb)[:, None]),
        "topk_gather",
    ),
    # [generic]
    (
        "top_k_accuracy",
        _j_topk_own(lambda lg, lb: jnp.take_along_axis(lg, lb[:, None], axis=0)),
        "topk_gather",
    ),
    # [topk_k_valid]: take_along_axis' ValueError read as a k check.
    (
        "top_k_accuracy",
        _j_topk_own(lambda lg, lb: jnp.take_along_axis(lg, lb, axis=-1)),
        "topk_broadcast",
    ),
    # [topk_off_by_one]: one-hot labels.
    (
        "top_k_accuracy",
        _j_topk_own(lambda lg, lb: lg * jax.nn.one_hot(lb, lg.shape[1])),
        "topk_labels_int",
    ),
    # [empty]
    (
        "top_k_accuracy",
        _j_topk_own(
            lambda lg, lb: jnp.take_along_axis(lg, lb.astype(lg.dtype)[:, None], -1)
        ),
        "topk_labels_int",
    ),
    # [generic]
    (
        "top_k_accuracy",
        lambda lg, lb, k: _j_topk()(lg, lb, k) * lb.shape[0] / lg.shape[1],
        "topk_classes",
    ),
    # [passed]
    ("directional_gradient_error", _j_dgc(rel=_j_no_floor), "dgc_tiny"),
    ("directional_gradient_error", _j_no_floor_array, "dgc_tiny"),
    # [dgc_first]
    (
        "directional_gradient_error",
        _j_dgc(
            rel=lambda a, b: (
                float(b - a) / max(float(jnp.abs(a)), float(jnp.abs(b)), 1e-12)
            )
        ),
        "dgc_signed",
    ),
    # [generic]
    (
        "directional_gradient_error",
        _j_dgc(
            diff=lambda f, x, eps, v: (f(x + eps * v) - f(x - eps * v)) / (2 * eps**2)
        ),
        "dgc_one_eps",
    ),
    (
        "directional_gradient_error",
        _j_dgc(diff=lambda f, x, eps, v: (f(x + eps + v) - f(x - eps - v)) / (2 * eps)),
        "dgc_unscaled",
    ),
    ("directional_gradient_error", _j_dgc(dot=lambda g, v: jnp.mean(g * v)), "dgc_dot"),
    (
        "top_k_accuracy",
        lambda lg, lb, k: round(_j_topk()(lg, lb, k), 3),
        "topk_rounded",
    ),
    (
        "directional_gradient_error",
        lambda *args: round(_j_dgc()(*args), 2),
        "dgc_rounded",
    ),
]


# From a second student pass on JAX exercise 5: before this change each row got the general
# hint, or a misleading one (a summed loss: lr_off_by_one; NumPy inside jit: step_traced).
def _j_step_dropout_weights(params, x, y, step, key):
    """Dropout on the weights, then the gradient of the dropped weights."""
    keep = jax.random.bernoulli(key, 0.9, params["w"].shape)  # (D, C)
    dropped = {**params, "w": jnp.where(keep, params["w"] / 0.9, 0.0)}
    loss, grads = jax.value_and_grad(_j_loss)(dropped, x, y)
    return jax.tree.map(lambda p, g: p - 0.5 / (step + 1) * g, params, grads), loss


def _j_step_dropout_logits(params, x, y, step, key):
    """Dropout on the logits, inside the loss."""

    def loss(params):
        logits = x @ params["w"] + params["b"]  # (B, C)
        keep = jax.random.bernoulli(key, 0.9, logits.shape)
        logits = jnp.where(keep, logits / 0.9, 0.0)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    value, grads = jax.value_and_grad(loss)(params)
    return jax.tree.map(lambda p, g: p - 0.5 / (step + 1) * g, params, grads), value


def _j_step_dropout_grads(params, x, y, step, key):
    """Dropout on every gradient, with the same key."""
    loss, grads = jax.value_and_grad(_j_loss)(params, x, y)
    grads = jax.tree.map(
        lambda g: jnp.where(jax.random.bernoulli(key, 0.9, g.shape), g / 0.9, 0.0),
        grads,
    )
    return jax.tree.map(lambda p, g: p - 0.5 / (step + 1) * g, params, grads), loss


def _j_sum_loss(params, inputs, y):
    logits = inputs @ params["w"] + params["b"]  # (B, C)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).sum()


def _j_step_loss(loss_fn):
    """The right step with another loss function."""

    def train_step(params, x, y, step, key):
        inputs = jnp.where(jax.random.bernoulli(key, 0.9, x.shape), x / 0.9, 0.0)
        loss, grads = jax.value_and_grad(loss_fn)(params, inputs, y)
        return jax.tree.map(lambda p, g: p - 0.5 / (step + 1) * g, params, grads), loss

    return train_step


JAX_MISTAKES += [
    (
        "train_step",
        _j_step(mask=lambda key, x: jax.random.bernoulli(key, 0.9, x.shape[::-1]).T),
        "mask_shape",
    ),
    (
        "train_step",
        _j_step(inputs=lambda keep, x: jnp.where(keep, x * 0.1, 0.0)),
        "dropout_scale_drop",
    ),
    ("train_step", _j_step_dropout_weights, "dropout_inputs"),
    ("train_step", _j_step_dropout_logits, "dropout_inputs"),
    ("train_step", _j_step_dropout_grads, "dropout_inputs"),
    ("train_step", _j_step_loss(_j_sum_loss), "loss_scale"),
    # A mean written as a sum over the check's first batch size: wrong on its fourth step.
    ("train_step", _j_step_loss(lambda *a: _j_sum_loss(*a) / 6), "loss_scale"),
    (
        "train_step",
        _j_step(inputs=lambda keep, x: np.where(keep, x / 0.9, 0.0)),
        "numpy_traced",
    ),
]


MISTAKES = {"pytorch": TORCH_MISTAKES, "jax": JAX_MISTAKES}


(
    test_check_catches_mistake_with_its_hint,
    test_at_least_two_mistakes_per_exercise,
    test_every_declared_hint_is_produced_by_a_mistake,
) = mistake_table_tests(LAB, MISTAKES)


# --- Right answers written differently from the solutions: each must pass ------------------------
def _t_func_grad(w, X, y):
    return torch.func.grad(_t_mse)(w, X, y)


_jacfwd = torch.func.jacfwd  # as after `from torch.func import jacfwd`: forward mode


def _t_forward_mode(w, X, y):
    return _jacfwd(_t_mse)(w, X, y)


def _t_autograd_grad(w, X, y):
    w = w.detach().requires_grad_(True)
    return torch.autograd.grad(F.mse_loss(X @ w, y), w)[0]


# found by a third student pass (the autodiff watcher): each failed, 'no automatic
# differentiation ran'
def _t_forward_ad_imported(w, X, y):
    """Forward mode by hand, make_dual imported by name: one tangent per entry of w."""
    with dual_level():
        duals = [make_dual(w, e) for e in torch.eye(len(w), dtype=w.dtype)]
        return torch.stack([unpack_dual(_t_mse(d, X, y)).tangent for d in duals])


_t_compiled_grad = torch.compile(torch.func.grad(_t_mse), backend="aot_eager")


def _t_in_thread(w, X, y):
    """torch.func.grad in another thread, where the check's TorchFunctionMode is not."""
    out = []
    worker = threading.Thread(
        target=lambda: out.append(torch.func.grad(_t_mse)(w, X, y))
    )
    worker.start()
    worker.join()
    return out[0]


def _t_zero_grad_last(model, optimizer, x, y):
    loss = F.cross_entropy(model(x.flatten(1) / 255), y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()  # after the step: the next call starts from zero too
    return loss.item()


def _t_manual_sgd(model, optimizer, x, y):
    model.zero_grad()
    loss = F.cross_entropy(model(x.flatten(1) / 255), y)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= optimizer.param_groups[0]["lr"] * p.grad
    return float(loss)


_grad = jax.grad  # as after `from jax import grad`


@jax.jit
def _j_jitted_grad(w, X, y):
    return _grad(_j_mse)(w, X, y)


def _j_jet(w, X, y):
    """Taylor mode (jax.experimental.jet), one first-order term per entry of w."""
    loss = lambda w: _j_mse(w, X, y)  # noqa: E731
    return jnp.stack([jet(loss, (w,), ((e,),))[1][0] for e in jnp.eye(len(w))])


_j_jitted_grad_traced = jax.jit(jax.grad(_j_mse))
for _n, _d in ((8, 3), (6, 4)):  # traced before, on the check's shapes
    _j_jitted_grad_traced(jnp.zeros(_d), jnp.zeros((_n, _d)), jnp.zeros(_n))


def _j_jitted_in_thread(w, X, y):
    """A jitted jax.grad traced before the check, called from another thread (where the
    check's disable_jit does not hold): its cached trace ran."""
    out = []
    worker = threading.Thread(target=lambda: out.append(_j_jitted_grad_traced(w, X, y)))
    worker.start()
    worker.join()
    return out[0]


def _j_step_mask_product(params, x, y, step, key):
    """Multiplication by the mask, the update written per key, a float step."""
    keep = jax.random.bernoulli(key, p=0.9, shape=x.shape)
    inputs = x * keep / 0.9  # (B, D)
    loss, grads = jax.value_and_grad(_j_loss)(params, inputs, y)
    lr = 0.5 / (step.astype(jnp.float32) + 1.0)
    return {
        "w": params["w"] - lr * grads["w"],
        "b": params["b"] - lr * grads["b"],
    }, loss


def _j_step_select_optax(params, x, y, step, key):
    """lax.select, optax.apply_updates, and the caller's dict updated (inside jit: a copy)."""
    keep = jax.random.bernoulli(key, 0.9, x.shape)
    inputs = jax.lax.select(keep, x / 0.9, jnp.zeros_like(x))
    loss, grads = jax.value_and_grad(_j_loss)(params, inputs, y)
    updates = jax.tree.map(lambda g: -jnp.reciprocal(step + 1.0) * 0.5 * g, grads)
    params.update(optax.apply_updates(params, updates))
    return [params, loss]


def _t_topk_kth_value(logits, labels, k):
    """The label's score against the k-th largest score: ties are in its favour."""
    _k_guard(logits, k)
    kth = torch.topk(logits, k).values[:, -1]  # (B,)
    return (logits[torch.arange(len(labels)), labels] >= kth).float().mean().item()


def _t_topk_rows(logits, labels, k):
    _k_guard(logits, k)
    hits = [
        int((row > row[label]).sum()) < k
        for row, label in zip(logits, labels, strict=True)
    ]
    return sum(hits) / len(hits)


def _t_dgc_batched(f, grad_f, x, eps, directions):
    exact = directions @ grad_f(x)  # (K,)
    fd = torch.stack(
        [(f(x + eps * v) - f(x - eps * v)) / (2 * eps) for v in directions]
    )
    floor = torch.full_like(exact, 1e-12)
    scale = torch.maximum(torch.maximum(exact.abs(), fd.abs()), floor)
    return float(((exact - fd).abs() / scale).max())


def _t_dgc_float64(f, grad_f, x, eps, directions):
    g, x64 = grad_f(x).double(), x.double()
    errors = []
    for v in directions.double():
        exact, fd = (
            float(g @ v),
            float((f(x64 + eps * v) - f(x64 - eps * v)) / (2 * eps)),
        )
        errors.append(abs(exact - fd) / max(abs(exact), abs(fd), 1e-12))
    return max(errors)


def _j_topk_kth_value(logits, labels, k):
    _k_guard(logits, k)
    kth = jax.lax.top_k(logits, k)[0][:, -1]  # (B,)
    return float((logits[jnp.arange(labels.shape[0]), labels] >= kth).mean())


def _j_topk_softmax(logits, labels, k):
    _k_guard(logits, k)
    p = jax.nn.softmax(
        logits.astype(jnp.float64 if jax.config.x64_enabled else jnp.float32)
    )
    own = jnp.take_along_axis(p, labels[:, None], axis=1)
    return (p > own).sum(1).__lt__(k).mean().item()


def _j_dgc_vmap(f, grad_f, x, eps, directions):
    exact = directions @ grad_f(x)  # (K,)
    fd = jax.vmap(lambda v: (f(x + eps * v) - f(x - eps * v)) / (2 * eps))(directions)
    scale = jnp.maximum(jnp.maximum(jnp.abs(exact), jnp.abs(fd)), 1e-12)
    return float(jnp.max(jnp.abs(exact - fd) / scale))


def _j_dgc_python(f, grad_f, x, eps, directions):
    g = grad_f(x)
    errors = []
    for i in range(directions.shape[0]):
        v = directions[i]
        exact = float(jnp.vdot(g, v))
        fd = (float(f(x + eps * v)) - float(f(x - eps * v))) / (2 * eps)
        errors.append(abs(exact - fd) / max(abs(exact), abs(fd), 1e-12))
    return float(max(errors))


# From a second student pass on exercises 2 and 4: each passed already.
def _t_topk_one_hot_einsum(logits, labels, k):
    _k_guard(logits, k)
    one_hot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    own = torch.einsum("bc,bc->b", logits, one_hot)[:, None]
    return ((logits > own).sum(1) < k).float().mean().item()


def _t_dgc_vmap(f, grad_f, x, eps, directions):
    exact = directions @ grad_f(x)
    fd = torch.func.vmap(lambda v: _t_central(f, x, eps, v))(directions)
    scale = torch.maximum(exact.abs(), fd.abs()).clamp_min(1e-12)
    return ((exact - fd).abs() / scale).max().item()


def _j_topk_vmap_rows(logits, labels, k):
    _k_guard(logits, k)
    hits = jax.vmap(lambda row, label: (row > row[label]).sum() < k)(logits, labels)
    return float(hits.mean())


def _j_dgc_jitted(f, grad_f, x, eps, directions):
    @jax.jit
    def largest(x, directions):
        exact = directions @ grad_f(x)
        fd = jax.vmap(lambda v: _j_central(f, x, eps, v))(directions)
        scale = jnp.maximum(jnp.maximum(jnp.abs(exact), jnp.abs(fd)), 1e-12)
        return jnp.max(jnp.abs(exact - fd) / scale)

    return largest(x, directions).item()


def _j_step_grad_then_loss(params, x, y, step, key):
    """jax.grad, then the loss separately; the update written per key."""
    keep = jax.random.bernoulli(key, 0.9, x.shape)
    inputs = keep.astype(x.dtype) * x / 0.9  # (B, D)
    grads = jax.grad(_j_loss)(params, inputs, y)
    lr = 0.5 / (step + 1)
    new = {"w": params["w"] - lr * grads["w"], "b": params["b"] - lr * grads["b"]}
    return new, _j_loss(params, inputs, y)


def _j_step_optax_one_hot_sgd(params, x, y, step, key):
    """optax.softmax_cross_entropy on one-hot labels, optax.sgd built for this step's rate."""

    def loss(params):
        logits = inputs @ params["w"] + params["b"]  # (B, C)
        onehot = jax.nn.one_hot(y, logits.shape[-1])
        return optax.softmax_cross_entropy(logits, onehot).mean()

    inputs = jnp.where(jax.random.bernoulli(key, 0.9, x.shape), x / 0.9, 0.0)
    value, grads = jax.value_and_grad(loss)(params)
    sgd = optax.sgd(0.5 / (step + 1))
    updates, _ = sgd.update(grads, sgd.init(params))
    return optax.apply_updates(params, updates), value


def _j_step_schedule_cond(params, x, y, step, key):
    """The rate from jax.lax.cond, the loss from value_and_grad's has_aux."""
    lr = jax.lax.cond(step == 0, lambda: 0.5, lambda: 0.5 / (step + 1.0))
    inputs = jnp.where(jax.random.bernoulli(key, 0.9, x.shape), x / 0.9, 0.0)
    (_, loss), grads = jax.value_and_grad(
        lambda p: (_j_loss(p, inputs, y),) * 2, has_aux=True
    )(params)
    return jax.tree.map(lambda p, g: p - lr * g, params, grads), loss


VALID = {
    "pytorch": [
        ("preprocess", lambda im: im.flatten(1) / 255),
        ("mse_grad", _t_func_grad),
        ("mse_grad", _t_autograd_grad),
        ("mse_grad", _t_forward_mode),
        ("mse_grad", _t_forward_ad_imported),
        ("mse_grad", _t_compiled_grad),
        ("mse_grad", _t_in_thread),
        ("train_step", _t_zero_grad_last),
        # from a second student pass: each passed already
        ("train_step", _t_manual_sgd),
        # exercises 2 and 4 (top-k accuracy, a gradient check along directions)
        ("top_k_accuracy", _t_topk_kth_value),
        ("top_k_accuracy", _t_topk_rows),
        (
            "top_k_accuracy",
            _t_topk(count=lambda lg, own: torch.count_nonzero(lg > own, 1)),
        ),
        ("directional_gradient_error", _t_dgc_batched),
        ("directional_gradient_error", _t_dgc_float64),
        ("top_k_accuracy", _t_topk_one_hot_einsum),
        ("directional_gradient_error", _t_dgc_vmap),
    ],
    "jax": [
        ("preprocess", lambda im: jnp.reshape(im, (-1, 784)) / 255.0),
        ("mse_grad", _j_jitted_grad),
        ("mse_grad", lambda w, X, y: jax.value_and_grad(_j_mse)(w, X, y)[1]),
        ("mse_grad", lambda w, X, y: jax.jacrev(_j_mse)(w, X, y)),
        ("mse_grad", lambda w, X, y: jax.jacfwd(_j_mse)(w, X, y)),
        ("mse_grad", _j_jet),
        ("mse_grad", _j_jitted_in_thread),
        ("train_step", _j_step_mask_product),
        ("train_step", _j_step_select_optax),
        ("train_step", jax.jit(_j_step())),
        # from a second student pass on exercise 5: each passed already (uniform(key) < 0.9
        # is how jax.random.bernoulli draws: the same mask, bit for bit)
        (
            "train_step",
            _j_step(mask=lambda key, x: jax.random.uniform(key, x.shape) < 0.9),
        ),
        ("train_step", _j_step_grad_then_loss),
        ("train_step", _j_step_optax_one_hot_sgd),
        ("train_step", _j_step_schedule_cond),
        # exercises 2 and 4 (top-k accuracy, a gradient check along directions)
        ("top_k_accuracy", _j_topk_kth_value),
        ("top_k_accuracy", _j_topk_softmax),
        ("directional_gradient_error", _j_dgc_vmap),
        ("directional_gradient_error", _j_dgc_python),
        ("top_k_accuracy", _j_topk_vmap_rows),
        ("directional_gradient_error", _j_dgc_jitted),
    ],
}


@pytest.mark.parametrize(
    ("framework", "exercise", "right"),
    [(fw, ex, fn) for fw, rows in VALID.items() for ex, fn in rows],
    ids=[
        f"{fw}-{ex}-{i}" for fw, rows in VALID.items() for i, (ex, _) in enumerate(rows)
    ],
)
def test_check_passes_a_right_answer_written_differently(framework, exercise, right):
    checks(LAB, framework)[exercise](right)


def test_hints_name_only_their_own_framework():
    for text in adapter(LAB, "jax").HINTS.values():
        assert not re.search(r"torch|\bdim=|keepdim=|backward\(|requires_grad", text), (
            text
        )
    for text in adapter(LAB, "pytorch").HINTS.values():
        assert not re.search(r"jax|jnp|axis=|keepdims|\.at\[", text), text


@pytest.mark.parametrize(
    ("framework", "blind"),
    [
        # A JAX whose ad module lost the functions the watcher wraps.
        ("jax", {"_AD_INTERNALS": ("no_such_function",)}),
        # A PyTorch whose backward and grad stopped dispatching to a TorchFunctionMode and
        # lost the internal function they run.
        ("pytorch", {"_AUTODIFF_OPS": {}, "_INTERNALS": ("no_such_function",)}),
    ],
)
def test_autodiff_detection_switches_itself_off_when_it_cannot_see_the_framework_differentiate(
    monkeypatch, framework, blind
):
    """If the watcher stops seeing differentiation under another name (another JAX or
    PyTorch version), its calibration notices and a hand-derived gradient passes: a right
    answer is never failed for what the check cannot see."""
    from helpers.labs import CheckFailed

    labkit = importlib.import_module(
        f"helpers.{'jax' if framework == 'jax' else 'torch'}.labkit"
    )

    def by_hand(w, X, y):
        return 2 * X.T @ (X @ w - y) / len(y)

    check = adapter(LAB, framework).check_mse_grad
    with pytest.raises(CheckFailed, match="no automatic differentiation ran"):
        check(by_hand)
    for name, value in blind.items():
        monkeypatch.setattr(labkit, name, value)
    check(by_hand)
