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


def _t_estimates(f, x, eps, *, forward=False, denominator=2):
    estimate = torch.zeros_like(x)
    for i in range(len(x)):
        step = torch.zeros_like(x)
        step[i] = eps
        low = f(x) if forward else f(x - step)
        estimate[i] = (f(x + step) - low) / (eps if forward else denominator * eps)
    return estimate


def _t_gradient_error(reduce=lambda d: d.abs().max().item(), **kwargs):
    def gradient_error(f, grad_f, x, eps):
        return reduce(grad_f(x) - _t_estimates(f, x, eps, **kwargs))

    return gradient_error


def _t_in_place_difference(f, grad_f, x, eps):
    estimate = torch.zeros_like(x)
    for i in range(len(x)):
        plus = x  # not a copy: the same tensor
        plus[i] += eps
        estimate[i] = (f(plus) - f(x - 2 * eps * torch.eye(len(x))[i])) / (2 * eps)
    return (grad_f(x) - estimate).abs().max().item()


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


def _t_coordinates(keep):
    """gradient_error that leaves out a coordinate: ``keep`` slices the differences."""

    def gradient_error(f, grad_f, x, eps):
        return keep((grad_f(x) - _t_estimates(f, x, eps)).abs()).max().item()

    return gradient_error


def _t_set_entry(f, grad_f, x, eps):
    estimate = torch.zeros_like(x)
    for i in range(len(x)):
        plus, minus = x.clone(), x.clone()
        plus[i], minus[i] = eps, -eps  # replaces entry i instead of moving it
        estimate[i] = (f(plus) - f(minus)) / (2 * eps)
    return (grad_f(x) - estimate).abs().max().item()


def _t_every_entry_moved(f, grad_f, x, eps):
    estimate = (f(x + eps) - f(x - eps)) / (2 * eps)
    return (grad_f(x) - estimate).abs().max().item()


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


def _t_fd_with_autograd(f, grad_f, x, eps):
    x.requires_grad_(True)  # the caller's x
    f(x).backward()
    return (grad_f(x.detach()) - x.grad).abs().max().item()


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
    ("accuracy", lambda lg, lb: (lg.argmax(-1) == lb).mean().item(), "bool_mean"),
    (
        "accuracy",
        lambda lg, lb: (lg.argmax(0) == lb).float().mean().item(),
        "accuracy_axis",
    ),
    ("accuracy", lambda lg, lb: (lg.argmax(-1) == lb).sum().item(), "accuracy_count"),
    (
        "accuracy",
        lambda lg, lb: (lg.argmax(-1) == lb).float().sum().item(),
        "accuracy_count",
    ),
    ("accuracy", lambda lg, lb: (lg.argmax(-1) == lb).float().mean(), "not_float"),
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
    ("gradient_error", _t_gradient_error(forward=True), "fd_forward"),
    ("gradient_error", _t_gradient_error(denominator=1), "fd_one_eps"),
    ("gradient_error", _t_gradient_error(lambda d: d.max().item()), "fd_signed"),
    ("gradient_error", _t_gradient_error(lambda d: (-d).max().item()), "fd_signed"),
    ("gradient_error", _t_gradient_error(lambda d: d.abs().mean().item()), "fd_mean"),
    (
        "gradient_error",
        lambda f, g, x, eps: _t_gradient_error()(f, g, x, 1e-3),
        "fd_ignores_eps",
    ),
    ("gradient_error", _t_in_place_difference, "changed_input"),
    ("gradient_error", _t_gradient_error(lambda d: d.abs().max()), "not_float"),
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
    (
        "accuracy",
        lambda lg, lb: 100 * (lg.argmax(-1) == lb).float().mean().item(),
        "accuracy_percent",
    ),
    (
        "accuracy",
        lambda lg, lb: (lg.argmax(-1) == lb).sum().item() / lg.shape[1],
        "accuracy_classes",
    ),
    (
        "accuracy",
        lambda lg, lb: 1 - (lg.argmax(-1) == lb).float().mean().item(),
        "accuracy_error_rate",
    ),
    (
        "accuracy",
        lambda lg, lb: (lg.argmax(-1, keepdim=True) == lb).float().mean().item(),
        "accuracy_broadcast",
    ),
    (
        "accuracy",
        lambda lg, lb: (lg.max(-1).values == lb).float().mean().item(),
        "accuracy_axis",
    ),
    ("mse_grad", _t_hand_formula, "mse_grad_by_hand"),
    ("mse_grad", _t_grad_wrt_X, "mse_grad_wrt_X"),
    ("mse_grad", _t_loss_under_no_grad, "no_grad_leaf"),
    ("gradient_error", _t_coordinates(lambda d: d[1:]), "fd_range"),
    ("gradient_error", _t_coordinates(lambda d: d[:-1]), "fd_range"),
    ("gradient_error", _t_set_entry, "fd_set"),
    ("gradient_error", _t_every_entry_moved, "fd_all_at_once"),
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
    (
        "accuracy",
        lambda lg, lb: (lg.argmax(-1) == lb).sum().item() / lg.numel(),
        "accuracy_classes",
    ),
    (
        "accuracy",
        lambda lg, lb: (lg.argmax(-1) == lb.argmax(-1)).float().mean().item(),
        "accuracy_onehot",
    ),
    ("accuracy", lambda lg, lb: (lg.argmax(-1) == lb).float(), "accuracy_vector"),
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
    (
        "gradient_error",
        _t_gradient_error(lambda d: torch.linalg.norm(d).item()),
        "fd_norm",
    ),
    ("gradient_error", _t_gradient_error(lambda d: d.abs()), "fd_vector"),
    ("gradient_error", _t_fd_with_autograd, "fd_autograd"),
    ("train_step", _t_flatten_step(lambda x: x.view(-1, 784)), "step_flatten"),
    ("train_step", _t_flatten_step(lambda x: x.view(-1, len(x))), "step_flatten"),
]


# --- JAX -----------------------------------------------------------------------------------------
def _j_flat(images):
    return images.reshape(len(images), -1).astype(jnp.float32)


def _j_mse(w, X, y):
    return jnp.mean((X @ w - y) ** 2)


def _j_estimates(f, x, eps, *, forward=False, denominator=2):
    if forward:
        return jnp.stack([(f(x.at[i].add(eps)) - f(x)) / eps for i in range(x.size)])
    return jnp.stack(
        [
            (f(x.at[i].add(eps)) - f(x.at[i].add(-eps))) / (denominator * eps)
            for i in range(x.size)
        ]
    )


def _j_gradient_error(reduce=lambda d: float(jnp.abs(d).max()), **kwargs):
    def gradient_error(f, grad_f, x, eps):
        return reduce(grad_f(x) - _j_estimates(f, x, eps, **kwargs))

    return gradient_error


def _j_in_place_difference(f, grad_f, x, eps):
    estimate = jnp.zeros_like(x)
    for i in range(x.size):
        plus = x
        plus[i] += eps  # what PyTorch allows; JAX arrays refuse
        estimate = estimate.at[i].set((f(plus) - f(x)) / eps)
    return float(jnp.abs(grad_f(x) - estimate).max())


@jax.jit
def _j_jitted_accuracy(logits, labels):
    return float((logits.argmax(-1) == labels).mean())  # float() of a tracer


def _j_python_branch(x):
    jax.debug.print("{x}", x=x)
    if x.sum() > 0:
        return jnp.maximum(x, 0)
    return -x


def _j_float_branch(x):
    jax.debug.print("{x}", x=x)
    return jnp.maximum(x, 0) if float(x.sum()) > 0 else -x


def _j_branch(log=jax.debug.print, lines=1, condition=lambda x: x.sum() > 0):
    def relu_or_negate(x):
        for _ in range(lines):
            log("relu_or_negate got {}", x)
        return jnp.where(condition(x), jnp.maximum(x, 0), -x)

    return relu_or_negate


def _j_cond_prints(x):
    # A Python print in each lax.cond branch: both branches are traced once per shape.
    def positive(x):
        print("positive", x)
        return jnp.maximum(x, 0)

    def negative(x):
        print("negative", x)
        return -x

    return jax.lax.cond(x.sum() > 0, positive, negative, x)


def _j_coordinates(keep):
    def gradient_error(f, grad_f, x, eps):
        return float(keep(jnp.abs(grad_f(x) - _j_estimates(f, x, eps))).max())

    return gradient_error


def _j_set_entry(f, grad_f, x, eps):
    # x.at[i].set(eps) replaces entry i by eps; add(eps) was meant.
    estimate = jnp.stack(
        [
            (f(x.at[i].set(eps)) - f(x.at[i].set(-eps))) / (2 * eps)
            for i in range(x.size)
        ]
    )
    return float(jnp.abs(grad_f(x) - estimate).max())


def _j_every_entry_moved(f, grad_f, x, eps):
    return float(jnp.abs(grad_f(x) - (f(x + eps) - f(x - eps)) / (2 * eps)).max())


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
        "accuracy",
        lambda lg, lb: float((lg.argmax(0) == lb).mean()),
        "accuracy_axis",
    ),
    ("accuracy", lambda lg, lb: int((lg.argmax(-1) == lb).sum()), "accuracy_count"),
    ("accuracy", lambda lg, lb: float((lg.argmax(-1) == lb).sum()), "accuracy_count"),
    ("accuracy", lambda lg, lb: (lg.argmax(-1) == lb).mean(), "not_float"),
    ("accuracy", _j_jitted_accuracy, "traced_value"),
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
    ("gradient_error", _j_gradient_error(forward=True), "fd_forward"),
    ("gradient_error", _j_gradient_error(denominator=1), "fd_one_eps"),
    ("gradient_error", _j_gradient_error(lambda d: float(d.max())), "fd_signed"),
    ("gradient_error", _j_gradient_error(lambda d: float((-d).max())), "fd_signed"),
    (
        "gradient_error",
        _j_gradient_error(lambda d: float(jnp.abs(d).mean())),
        "fd_mean",
    ),
    (
        "gradient_error",
        lambda f, g, x, eps: _j_gradient_error()(f, g, x, 1e-3),
        "fd_ignores_eps",
    ),
    ("gradient_error", _j_in_place_difference, "immutable"),
    ("gradient_error", _j_gradient_error(lambda d: jnp.abs(d).max()), "not_float"),
    ("relu_or_negate", _j_python_branch, "traced_value"),
    ("relu_or_negate", _j_float_branch, "traced_value"),
    ("relu_or_negate", _j_branch(condition=lambda x: x > 0), "elementwise"),
    ("relu_or_negate", _j_branch(log=lambda fmt, x: print(fmt, x)), "print_once"),
    ("relu_or_negate", _j_cond_prints, "print_once"),
    ("relu_or_negate", _j_branch(lines=0), "one_line"),
    ("relu_or_negate", _j_branch(lines=2), "one_line"),
    # From a student pass: before this change each row passed, or got a generic, another or
    # (no_grad, max) a differently worded hint.
    ("preprocess", lambda im: im.reshape(5, 784) / 255, "preprocess_batch"),
    (
        "accuracy",
        lambda lg, lb: float(100 * (lg.argmax(-1) == lb).mean()),
        "accuracy_percent",
    ),
    (
        "accuracy",
        lambda lg, lb: float((lg.argmax(-1) == lb).sum() / lg.shape[1]),
        "accuracy_classes",
    ),
    (
        "accuracy",
        lambda lg, lb: float(1 - (lg.argmax(-1) == lb).mean()),
        "accuracy_error_rate",
    ),
    (
        "accuracy",
        lambda lg, lb: float((lg.argmax(-1, keepdims=True) == lb).mean()),
        "accuracy_broadcast",
    ),
    ("mse_grad", lambda w, X, y: 2 * X.T @ (X @ w - y) / len(y), "mse_grad_by_hand"),
    ("mse_grad", _j_jitted_hand_formula, "mse_grad_by_hand"),
    (
        "mse_grad",
        lambda w, X, y: jax.grad(_j_mse, argnums=1)(w, X, y),
        "mse_grad_wrt_X",
    ),
    ("gradient_error", _j_coordinates(lambda d: d[1:]), "fd_range"),
    ("gradient_error", _j_coordinates(lambda d: d[:-1]), "fd_range"),
    ("gradient_error", _j_set_entry, "fd_set"),
    ("gradient_error", _j_every_entry_moved, "fd_all_at_once"),
    (
        "relu_or_negate",
        _j_branch(condition=lambda x: x.sum() >= 0),
        "branch_strict",
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
    (
        "accuracy",
        lambda lg, lb: float((lg.argmax(-1) == lb).sum() / lg.size),
        "accuracy_classes",
    ),
    (
        "accuracy",
        lambda lg, lb: float((lg.argmax(-1) == lb.argmax(-1)).mean()),
        "accuracy_onehot",
    ),
    (
        "accuracy",
        lambda lg, lb: (lg.argmax(-1) == lb).astype(jnp.float32),
        "accuracy_vector",
    ),
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
    (
        "gradient_error",
        _j_gradient_error(lambda d: float(jnp.abs(d).sum())),
        "fd_norm",
    ),
    ("gradient_error", _j_gradient_error(lambda d: jnp.abs(d)), "fd_vector"),
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


def _t_gradient_error_eye(f, grad_f, x, eps):
    steps = torch.eye(len(x), dtype=x.dtype) * eps
    estimate = torch.stack([(f(x + s) - f(x - s)) / (2 * eps) for s in steps])
    return float((grad_f(x) - estimate).abs().max())


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


def _t_gradient_error_float64(f, grad_f, x, eps):
    x64, steps = x.double(), torch.eye(len(x), dtype=torch.float64) * eps
    estimate = torch.stack([(f(x64 + s) - f(x64 - s)) / (2 * eps) for s in steps])
    return float((grad_f(x).double() - estimate).abs().max())


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


def _j_cond_debug_prints(x):
    def positive(x):
        jax.debug.print("positive {}", x)
        return jax.nn.relu(x)

    def negative(x):
        jax.debug.print("negative {}", x)
        return -x

    return jax.lax.cond(jnp.mean(x) > 0, positive, negative, x)


def _j_gradient_error_vmap(f, grad_f, x, eps):
    central = jax.vmap(lambda e: (f(x + eps * e) - f(x - eps * e)) / (2 * eps))
    return float(jnp.max(jnp.abs(grad_f(x) - central(jnp.eye(x.size, dtype=x.dtype)))))


def _j_callback_print(x):
    jax.debug.callback(lambda v: print("relu_or_negate got", v), x)
    return jnp.where(jnp.sum(x) > 0, jnp.clip(x, 0), jnp.negative(x))


VALID = {
    "pytorch": [
        ("preprocess", lambda im: im.flatten(1) / 255),
        ("accuracy", lambda lg, lb: (lg.argmax(1) == lb).sum().item() / len(lb)),
        ("mse_grad", _t_func_grad),
        ("mse_grad", _t_autograd_grad),
        ("mse_grad", _t_forward_mode),
        ("mse_grad", _t_forward_ad_imported),
        ("mse_grad", _t_compiled_grad),
        ("mse_grad", _t_in_thread),
        ("gradient_error", _t_gradient_error_eye),
        ("train_step", _t_zero_grad_last),
        # from a second student pass: each passed already
        ("gradient_error", _t_gradient_error_float64),
        ("train_step", _t_manual_sgd),
    ],
    "jax": [
        ("preprocess", lambda im: jnp.reshape(im, (-1, 784)) / 255.0),
        ("accuracy", lambda lg, lb: (lg.argmax(1) == lb).mean().item()),
        ("mse_grad", _j_jitted_grad),
        ("mse_grad", lambda w, X, y: jax.value_and_grad(_j_mse)(w, X, y)[1]),
        ("mse_grad", lambda w, X, y: jax.jacrev(_j_mse)(w, X, y)),
        ("mse_grad", lambda w, X, y: jax.jacfwd(_j_mse)(w, X, y)),
        ("mse_grad", _j_jet),
        ("mse_grad", _j_jitted_in_thread),
        ("relu_or_negate", _j_cond_debug_prints),
        # from a second student pass: each passed already
        ("gradient_error", _j_gradient_error_vmap),
        ("relu_or_negate", _j_callback_print),
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
