"""Lab 4's typical mistakes: each one fails its check with the hint written for it.

``MISTAKES`` lists, per framework, (exercise, a wrong solution, the key of the hint it must get).
Every hint the lab declares (``HINTS`` in ``helpers/labs/lab04/torch.py`` and ``jax.py``: the
shared ones of ``mistakes.py`` and ``ste.py``, and each framework's of ``wording.py``) must be
produced by at least one entry.

Also here: the closed-form numpy answers equal autodiff in both frameworks, and a per-example
function that is correct but not compiled passes the JAX check (the check counts
recompilations, it does not demand ``jit``).
"""

from __future__ import annotations

import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from labtools import exercise_functions, mistake_table_tests, source
from torch import nn

from helpers.labs import CheckFailed
from helpers.labs.lab04 import checks as lab04
from helpers.labs.lab04 import jax as lab04_jax
from helpers.labs.lab04 import ste
from helpers.labs.lab04 import torch as lab04_torch

LAB = "lab04"


# --- JAX ---------------------------------------------------------------------------------------
def _j_loss(params, x, y):
    logits = x @ params["W"] + params["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def _j_grads(params, x, y):  # per-example gradients, leaves (B, ...)
    one = lambda p, xi, yi: jax.grad(_j_loss)(p, xi[None], yi[None])  # noqa: E731
    return jax.vmap(one, in_axes=(None, 0, 0))(params, x, y)


def _j_norms(which=("W", "b"), root=True):
    def per_example_grad_norms(params, x, y):
        grads = _j_grads(params, x, y)
        sq = sum(jnp.sum(grads[k].reshape(len(x), -1) ** 2, 1) for k in which)
        return jnp.sqrt(sq) if root else sq

    return per_example_grad_norms


def _j_per_batch(params, x, y):
    g = jax.grad(_j_loss)(params, x, y)
    norm = jnp.sqrt(sum(jnp.sum(v**2) for v in g.values()))
    return jnp.full(len(x), norm)


def _j_per_batch_scalar(params, x, y):
    g = jax.grad(_j_loss)(params, x, y)
    return jnp.sqrt(sum(jnp.sum(v**2) for v in g.values()))


def _j_retrace(params, x, y):
    return jax.jit(lambda p, a, b: _j_norms()(p, a, b))(
        params, x, y
    )  # a new jit per call


class _JMLP(nnx.Module):
    def __init__(self, seed, reuse=False, relu=True, fixed_seed=None, relu_last=False):
        seed = seed if fixed_seed is None else fixed_seed
        rngs = nnx.Rngs(seed)
        pick = lambda: nnx.Rngs(seed) if reuse else rngs  # noqa: E731
        self.l1 = nnx.Linear(4, 16, rngs=pick())
        self.l2 = nnx.Linear(16, 16, rngs=pick())
        self.l3 = nnx.Linear(16, 3, rngs=pick())
        self.relu, self.relu_last = relu, relu_last

    def __call__(self, x):
        act = nnx.relu if self.relu else (lambda v: v)
        out = self.l3(act(self.l2(act(self.l1(x)))))
        return nnx.relu(out) if self.relu_last else out


def _j_step(*, update=True, after=False, total=False):
    @nnx.jit
    def train_step(model, optimizer, x, y):
        def loss(model):
            ce = optax.softmax_cross_entropy_with_integer_labels(model(x), y)
            return ce.sum() if total else ce.mean()

        value, grads = nnx.value_and_grad(loss)(model)
        if update:
            optimizer.update(model, grads)
        return loss(model) if after else value

    return train_step


def _j_two_steps(model, optimizer, x, y):  # two updates per call
    step = _j_step()
    step(model, optimizer, x, y)
    return step(model, optimizer, x, y)


def _j_sum_of_norms(params, x, y):  # |g_W| + |g_b|
    g = _j_grads(params, x, y)
    return sum(jnp.sqrt(jnp.sum(v.reshape(len(x), -1) ** 2, 1)) for v in g.values())


def _j_dp(reduce="mean"):
    def data_parallel_grads(params, x, y, n_shards):
        xs, ys = x.reshape(n_shards, -1, x.shape[1]), y.reshape(n_shards, -1)
        g = jax.vmap(jax.grad(_j_loss), in_axes=(None, 0, 0))(params, xs, ys)
        if reduce == "none":
            return g
        if reduce == "last":  # one shard's gradient only
            return jax.tree.map(lambda v: v[-1], g)
        return jax.tree.map(lambda v: getattr(v, reduce)(0), g)

    return data_parallel_grads


def _j_map_params(params, x, y):
    return jax.vmap(jax.grad(_j_loss))(params, x, y)  # maps over params too


def _j_old_update(model, optimizer, x, y):  # Flax < 0.11's optimizer.update(grads)
    def loss(model):
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

    value, grads = nnx.value_and_grad(loss)(model)
    optimizer.update(grads)
    return value


_FRESH_SEEDS = itertools.count(100)  # a new seed at every call: as if unseeded


def _j_from_grads(fn):  # a norm computed by fn from the per-example gradients
    return lambda p, x, y: fn(_j_grads(p, x, y), x)


def _j_wrt_x(params, x, y):  # differentiates x, argnums=1
    one = lambda xi, yi: jax.grad(_j_loss, argnums=1)(params, xi[None], yi[None])  # noqa: E731
    return jnp.linalg.norm(jax.vmap(one)(x, y).reshape(len(x), -1), axis=1)


def _j_labels_not_mapped(
    params, x, y
):  # in_axes=(None, 0, None): each x_i against all y
    one = lambda p, xi, yy: jax.grad(_j_loss)(p, xi[None], yy)  # noqa: E731
    g = jax.vmap(one, in_axes=(None, 0, None))(params, x, y)
    return jnp.sqrt(sum(jnp.sum(v.reshape(len(x), -1) ** 2, 1) for v in g.values()))


class _JMLPOut(_JMLP):  # a softmax (or log-softmax) after the last layer
    def __init__(self, seed, out):
        super().__init__(seed)
        self.out = out

    def __call__(self, x):
        return self.out(super().__call__(x))


class _JMLPKey(nnx.Module):  # a key where the layers want an nnx.Rngs
    def __init__(self, key):
        self.l1 = nnx.Linear(4, 16, rngs=key)
        self.l2 = nnx.Linear(16, 3, rngs=key)

    def __call__(self, x):
        return self.l2(nnx.relu(self.l1(x)))


def _j_loss_step(kind, *, jit=nnx.jit):
    def train_step(model, optimizer, x, y):
        def loss(model):
            z = model(x)
            if kind == "nll":
                return -jnp.mean(z[jnp.arange(len(y)), y])
            if kind == "softmax":
                z = jax.nn.softmax(z)
            if kind == "one_hot":
                return optax.softmax_cross_entropy(z, y).mean()
            ce = optax.softmax_cross_entropy_with_integer_labels(z, y).mean()
            return float(ce) if kind == "float" else ce

        value, grads = nnx.value_and_grad(loss)(model)
        optimizer.update(model, grads)
        return value.astype(jnp.float16) if kind == "float16" else value

    return jit(train_step)


def _j_dp_shards(shard_x, shard_y, axes=(None, 0, 0)):
    def data_parallel_grads(params, x, y, n_shards):
        xs, ys = shard_x(x, n_shards), shard_y(y, n_shards)
        g = jax.vmap(jax.grad(_j_loss), in_axes=axes)(params, xs, ys)
        return jax.tree.map(lambda v: v.mean(0), g)

    return data_parallel_grads


def _j_placed(spec):
    return lambda x, mesh: jax.device_put(x, NamedSharding(mesh, spec))


def _j_ste(bwd, fwd=None):  # a custom_vjp round with the given rules
    @jax.custom_vjp
    def round_ste(x):
        return jnp.round(x)

    round_ste.defvjp(fwd or (lambda x: (jnp.round(x), x)), bwd)
    return round_ste


def _j_ste_right(x):  # the one-line form
    return x + jax.lax.stop_gradient(jnp.round(x) - x)


def _j_label_not_batched(params, x, y):  # xi[None] (1, D) with a 0-d label yi
    one = lambda p, xi, yi: jax.grad(_j_loss)(p, xi[None], yi)  # noqa: E731
    g = jax.vmap(one, in_axes=(None, 0, 0))(params, x, y)
    return jnp.sqrt(sum(jnp.sum(v.reshape(len(x), -1) ** 2, 1) for v in g.values()))


class _JMLPList(nnx.Module):  # the layers in a plain Python list
    def __init__(self, seed):
        rngs = nnx.Rngs(seed)
        self.layers = [
            nnx.Linear(a, b, rngs=rngs) for a, b in [(4, 16), (16, 16), (16, 3)]
        ]

    def __call__(self, x):
        x = nnx.relu(self.layers[0](x))
        return self.layers[2](nnx.relu(self.layers[1](x)))


class _JMLPArray(_JMLP):  # the last layer's kernel copied out as a plain array
    def __init__(self, seed):
        super().__init__(seed)
        self.kernel3 = self.l3.kernel[...]
        del self.l3.kernel

    def __call__(self, x):
        h = nnx.relu(self.l2(nnx.relu(self.l1(x))))
        return h @ self.kernel3 + self.l3.bias[...]


class _JMLPExtra(_JMLP):  # a fourth layer the forward pass never uses
    def __init__(self, seed):
        super().__init__(seed)
        self.l4 = nnx.Linear(3, 3, rngs=nnx.Rngs(seed))


class _JMLPHalf(nnx.Module):  # bfloat16 parameters
    def __init__(self, seed):
        rngs, kw = nnx.Rngs(seed), {"param_dtype": jnp.bfloat16}
        self.l1 = nnx.Linear(4, 16, rngs=rngs, **kw)
        self.l2 = nnx.Linear(16, 16, rngs=rngs, **kw)
        self.l3 = nnx.Linear(16, 3, rngs=rngs, **kw)

    def __call__(self, x):
        return self.l3(nnx.relu(self.l2(nnx.relu(self.l1(x)))))


def _j_dp_reduced(reduce, *, pmean=False):  # the shards' gradients, reduced by `reduce`
    def data_parallel_grads(params, x, y, n_shards):
        xs, ys = x.reshape(n_shards, -1, x.shape[1]), y.reshape(n_shards, -1)

        def one(xs, ys):
            g = jax.grad(_j_loss)(params, xs, ys)
            return jax.lax.pmean(g, "shards") if pmean else g

        return jax.tree.map(reduce, jax.vmap(one, axis_name="shards")(xs, ys))

    return data_parallel_grads


JAX_MISTAKES = [
    ("per_example_grad_norms", _j_per_batch, "per_batch"),
    ("per_example_grad_norms", _j_per_batch_scalar, "per_batch"),
    ("per_example_grad_norms", _j_norms(root=False), "squared"),
    ("per_example_grad_norms", _j_norms(which=("W",)), "one_leaf"),
    ("per_example_grad_norms", _j_sum_of_norms, "sum_of_norms"),
    (
        "per_example_grad_norms",
        lambda p, x, y: _j_norms()(p, x, y)[:, None],
        "norms_differ",
    ),
    ("per_example_grad_norms", _j_retrace, "retrace"),
    ("per_example_grad_norms", _j_map_params, "map_params"),
    ("build_mlp", lambda seed: _JMLP(seed, reuse=True), "key_reused"),
    ("build_mlp", lambda seed: _JMLP(seed, fixed_seed=0), "seed_ignored"),
    ("build_mlp", lambda seed: _JMLP(seed, relu=False), "no_activation"),
    ("build_mlp", lambda seed: _JMLP(seed, relu_last=True), "mlp_differs"),
    ("train_step", _j_step(update=False), "no_update"),
    ("train_step", _j_old_update, "no_update"),
    ("train_step", _j_step(after=True), "loss_after_update"),
    ("train_step", _j_step(total=True), "sum_loss"),
    ("train_step", _j_two_steps, "loss_differs"),
    (
        "shard_batch",
        lambda x, mesh: jax.device_put(x, NamedSharding(mesh, P(None, "data"))),
        "wrong_axis",
    ),
    (
        "shard_batch",
        lambda x, mesh: jax.device_put(x, NamedSharding(mesh, P())),
        "replicated",
    ),
    ("shard_batch", lambda x, mesh: jax.device_put(x), "not_sharded"),
    ("shard_batch", lambda x, mesh: jax.device_put(x, mesh), "not_sharded"),
    ("data_parallel_grads", _j_dp("sum"), "sum_shards"),
    ("data_parallel_grads", _j_dp("none"), "not_averaged"),
    ("data_parallel_grads", _j_dp("last"), "dp_differs"),
    # found by a student pass: each failed, or passed, or got a generic hint before
    (
        "per_example_grad_norms",
        _j_from_grads(lambda g, x: jnp.linalg.norm(g["b"], axis=1)),
        "one_leaf",
    ),
    (
        "per_example_grad_norms",
        _j_from_grads(lambda g, x: jnp.sqrt(sum(jnp.sum(v**2) for v in g.values()))),
        "whole_batch",
    ),
    (
        "per_example_grad_norms",
        _j_from_grads(
            lambda g, x: jnp.sqrt(sum(jnp.sum(v**2, -1) for v in g.values()))
        ),
        "flatten_leaves",
    ),
    (
        "per_example_grad_norms",
        lambda p, x, y: _j_norms()(p, x, y) / len(x),
        "divided_by_b",
    ),
    ("per_example_grad_norms", _j_wrt_x, "wrt_x"),
    ("per_example_grad_norms", _j_labels_not_mapped, "map_labels"),
    (
        "per_example_grad_norms",
        lambda p, x, y: _j_norms()(p, x, y).astype(jnp.float16),
        "dtype",
    ),
    ("build_mlp", lambda seed: _JMLP(next(_FRESH_SEEDS)), "not_seeded"),
    ("build_mlp", lambda seed: _JMLP, "class_not_instance"),
    ("build_mlp", lambda seed: nnx.state(_JMLP(seed)), "state_not_module"),
    ("build_mlp", lambda seed: _JMLPOut(seed, jax.nn.softmax), "softmax_output"),
    ("build_mlp", lambda seed: _JMLPOut(seed, jax.nn.log_softmax), "softmax_output"),
    ("build_mlp", lambda seed: _JMLPKey(jax.random.key(seed)), "rngs_type"),
    ("train_step", _j_loss_step("nll"), "nll_on_logits"),
    ("train_step", _j_loss_step("softmax"), "double_softmax"),
    ("train_step", _j_loss_step("one_hot"), "integer_labels"),
    ("train_step", _j_loss_step("float"), "loss_number_jit"),
    ("train_step", _j_loss_step("ce", jit=jax.jit), "jax_jit"),
    ("train_step", _j_loss_step("float16"), "dtype"),
    ("shard_batch", _j_placed(P("batch")), "axis_name"),
    ("shard_batch", _j_placed(P("data", "data")), "wrong_axis"),
    (
        "shard_batch",
        lambda x, mesh: NamedSharding(mesh, P("data")),
        "sharding_not_array",
    ),
    (
        "data_parallel_grads",
        _j_dp_shards(lambda x, n: x.reshape(n, -1), lambda y, n: y.reshape(n, -1)),
        "shard_x_shape",
    ),
    (
        "data_parallel_grads",
        _j_dp_shards(
            lambda x, n: x.reshape(n, -1, x.shape[1]), lambda y, n: y, (None, 0, None)
        ),
        "shard_y",
    ),
    (
        "data_parallel_grads",
        lambda p, x, y, n: jax.tree.map(
            lambda v: v.astype(jnp.float16), _j_dp()(p, x, y, n)
        ),
        "dtype",
    ),
    # exercise 5: the straight-through estimator
    ("round_ste", jnp.round, "ste_plain_round"),
    ("round_ste", lambda x: x + jnp.round(x) - x, "ste_no_detach"),
    ("round_ste", jnp.floor, "ste_not_nearest"),
    ("round_ste", jnp.trunc, "ste_not_nearest"),
    ("round_ste", jax.lax.round, "ste_ties"),  # rounds half away from zero
    ("round_ste", lambda x: _j_ste_right(jnp.floor(x + 0.5)), "ste_ties"),
    ("round_ste", lambda x: x, "ste_identity"),
    ("round_ste", lambda x: jnp.round(x * 10) / 10, "ste_forward"),
    ("round_ste", _j_ste(lambda x, g: (jnp.ones_like(g),)), "ste_ones"),
    ("round_ste", _j_ste(lambda x, g: (g * x,)), "ste_scaled"),
    ("round_ste", _j_ste(lambda x, g: (g * jnp.round(x),)), "ste_scaled"),
    ("round_ste", _j_ste(lambda x, g: (2 * g,)), "ste_grad"),
    (
        "round_ste",
        lambda x: jax.lax.stop_gradient(x) + (jnp.round(x) - x),
        "ste_detached_x",
    ),
    ("round_ste", _j_ste(lambda x, g: (g,), fwd=jnp.round), "ste_custom_vjp"),
    ("round_ste", _j_ste(lambda x, g: g), "ste_custom_vjp"),
    ("round_ste", lambda x: _j_ste_right(x).astype(jnp.float16), "dtype"),
    ("round_ste", lambda x: np.round(np.asarray(x)), "ste_numpy"),
    ("round_ste", lambda x: jnp.asarray(np.round(np.asarray(x))), "ste_numpy"),
    # the primal rounds, but fwd (what jax.grad runs) returns x: training sees no rounding
    ("round_ste", _j_ste(lambda x, g: (g,), fwd=lambda x: (x, x)), "ste_fwd_rule"),
    (
        "round_ste",
        _j_ste(lambda x, g: (g * (jnp.abs(x) <= 1),)),  # the clipped STE
        "ste_clipped",
    ),
    # found by a second student pass: each passed, or got a generic or misleading hint
    ("per_example_grad_norms", _j_label_not_batched, "batch_of_one"),
    ("build_mlp", _JMLPList, "nnx_list"),
    ("build_mlp", _JMLPArray, "params_hidden"),
    ("build_mlp", _JMLPExtra, "extra_params"),
    ("build_mlp", _JMLPHalf, "model_dtype"),
    (
        "shard_batch",
        lambda x, mesh: _j_placed(P("data"))(  # PyTorch's (devices, B / devices, D)
            x.reshape(mesh.size, -1, x.shape[1]), mesh
        ),
        "shard_reshape",
    ),
    (
        "shard_batch",
        lambda x, mesh: _j_placed(P("data"))(x.astype(jnp.bfloat16), mesh),
        "dtype",
    ),
    ("data_parallel_grads", _j_dp_reduced(jnp.mean), "shard_axis"),
    ("data_parallel_grads", _j_dp_reduced(lambda g: g, pmean=True), "dp_copies"),
    (
        "data_parallel_grads",
        _j_dp_shards(
            lambda x, n: x.reshape(n, -1, x.shape[1]), lambda y, n: y.reshape(-1, n)
        ),
        "dp_mapped_sizes",
    ),
    (
        "data_parallel_grads",
        _j_dp_shards(
            lambda x, n: x.reshape(n, -1, x.shape[1]), lambda y, n: y.reshape(-1, n).T
        ),
        "shard_alike",
    ),
    (
        "round_ste",
        lambda x: x + jax.lax.stop_gradient(jnp.round(x)) - x,
        "ste_no_detach",
    ),
]


# --- PyTorch -----------------------------------------------------------------------------------
def _t_loss(params, x, y):
    return F.cross_entropy(x @ params["W"] + params["b"], y)


def _t_grads(params, x, y):
    one = lambda p, xi, yi: torch.func.grad(_t_loss)(p, xi[None], yi[None])  # noqa: E731
    return torch.func.vmap(one, in_dims=(None, 0, 0))(params, x, y)


def _t_norms(which=("W", "b"), root=True):
    def per_example_grad_norms(params, x, y):
        grads = _t_grads(params, x, y)
        sq = sum(grads[k].reshape(len(x), -1).pow(2).sum(1) for k in which)
        return sq.sqrt() if root else sq

    return per_example_grad_norms


def _t_per_batch(params, x, y):
    g = torch.func.grad(_t_loss)(params, x, y)
    return torch.full((len(x),), float(sum(v.pow(2).sum() for v in g.values()).sqrt()))


def _t_sum_of_norms(params, x, y):  # |g_W| + |g_b|
    g = _t_grads(params, x, y)
    return sum(v.reshape(len(x), -1).norm(dim=1) for v in g.values())


def _t_autograd_in_vmap(params, x, y):  # loss.backward's API inside torch.func
    def one(p, xi, yi):
        loss = _t_loss(p, xi[None], yi[None])
        return torch.autograd.grad(loss, list(p.values()))

    grads = torch.func.vmap(one, in_dims=(None, 0, 0))(params, x, y)
    return sum(g.reshape(len(x), -1).pow(2).sum(1) for g in grads).sqrt()


def _t_zero_after_backward(model, optimizer, x, y):  # clears the gradients before step
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.detach()


def _t_two_steps(model, optimizer, x, y):  # two updates per call
    _t_step()(model, optimizer, x, y)
    return _t_step()(model, optimizer, x, y)


def _t_mlp(seed, reseed=False, relu=True, fixed_seed=None):
    torch.manual_seed(seed if fixed_seed is None else fixed_seed)
    layers = []
    for i, (a, b) in enumerate([(4, 16), (16, 16), (16, 3)]):
        if reseed:
            torch.manual_seed(seed)
        layers.append(nn.Linear(a, b))
        if i < 2 and relu:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _t_step(*, update=True, after=False, total=False, zero=True):
    def train_step(model, optimizer, x, y):
        if zero:
            optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y, reduction="sum" if total else "mean")
        loss.backward()
        if update:
            optimizer.step()
        return F.cross_entropy(model(x), y).detach() if after else loss.detach()

    return train_step


def _t_dp(reduce="mean"):
    def data_parallel_grads(params, x, y, n_shards):
        xs, ys = x.reshape(n_shards, -1, x.shape[1]), y.reshape(n_shards, -1)
        g = torch.func.vmap(torch.func.grad(_t_loss), in_dims=(None, 0, 0))(
            params, xs, ys
        )
        if reduce == "none":
            return g
        if reduce == "last":  # one shard's gradient only
            return {k: v[-1] for k, v in g.items()}
        return {k: getattr(v, reduce)(0) for k, v in g.items()}

    return data_parallel_grads


def _t_map_params(params, x, y):
    return torch.func.vmap(torch.func.grad(_t_loss))(
        params, x, y
    )  # maps over params too


def _t_from_grads(fn):  # a norm computed by fn from the per-example gradients
    return lambda p, x, y: fn(_t_grads(p, x, y), x)


def _t_wrt_x(params, x, y):  # differentiates x, argnums=1
    def one(xi, yi):
        return torch.func.grad(_t_loss, argnums=1)(params, xi[None], yi[None])

    return torch.func.vmap(one)(x, y).reshape(len(x), -1).norm(dim=1)


def _t_labels_not_mapped(
    params, x, y
):  # in_dims=(None, 0, None): each x_i against all y
    one = lambda p, xi, yy: torch.func.grad(_t_loss)(p, xi[None], yy)  # noqa: E731
    g = torch.func.vmap(one, in_dims=(None, 0, None))(params, x, y)
    return sum(v.reshape(len(x), -1).pow(2).sum(1) for v in g.values()).sqrt()


def _t_unseeded(seed):  # seeds after building: the weights are whatever came next
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU())
    model.append(nn.Linear(16, 3))
    torch.manual_seed(seed)
    return model


class _TMLPClass(nn.Module):  # returned as the class, not an instance
    def __init__(self):
        super().__init__()
        self.net = _t_mlp(0)


def _t_loss_step(kind):
    def train_step(model, optimizer, x, y):
        optimizer.zero_grad()
        logits = model(x)
        if kind == "nll":
            loss = F.nll_loss(logits, y)
        elif kind == "softmax":
            loss = F.cross_entropy(logits.softmax(-1), y)
        elif kind == "one_hot":
            loss = F.cross_entropy(logits, F.one_hot(y, 3))
        elif kind == "no_grad":
            with torch.no_grad():
                loss = F.cross_entropy(model(x), y)
        else:
            loss = F.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        if kind == "attached":
            return loss
        return loss.detach().double() if kind == "float64" else loss.detach()

    return train_step


def _t_step_before_backward(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    optimizer.step()
    loss.backward()
    return loss.detach()


def _t_dp_shards(shard_x, shard_y, dims=(None, 0, 0)):
    def data_parallel_grads(params, x, y, n_shards):
        xs, ys = shard_x(x, n_shards), shard_y(y, n_shards)
        g = torch.func.vmap(torch.func.grad(_t_loss), in_dims=dims)(params, xs, ys)
        return {k: v.mean(0) for k, v in g.items()}

    return data_parallel_grads


def _t_off_by_one(x, n):
    k = len(x) // n
    return torch.stack([x[r * k : (r + 1) * k - 1] for r in range(n)])


def _t_ste(backward):  # a custom Function round with the given backward(grad, x)
    class RoundSTE(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.round(x)

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return backward(grad_output, x)

    return RoundSTE.apply


def _t_ste_right(x):  # the one-line form
    return x + (torch.round(x) - x).detach()


def _t_ste_data(x):  # the right values and gradient, but the caller's x is rounded
    x.data = torch.round(x.data)
    return x


def _t_ste_round_in_place(x):
    with torch.no_grad():
        x.round_()
    return x


class _TLegacySTE(torch.autograd.Function):  # no @staticmethod, called as an instance
    def forward(self, x):
        return torch.round(x)

    def backward(self, grad_output):
        return grad_output


def _t_legacy(x):  # the legacy call, without its deprecation warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _TLegacySTE()(x)


def _t_label_not_batched(params, x, y):  # xi[None] (1, D) with a 0-d label yi
    one = lambda p, xi, yi: torch.func.grad(_t_loss)(p, xi[None], yi)  # noqa: E731
    g = torch.func.vmap(one, in_dims=(None, 0, 0))(params, x, y)
    return sum(v.reshape(len(x), -1).pow(2).sum(1) for v in g.values()).sqrt()


def _t_centred_in_place(params, x, y):  # x -= ...: the caller's x changes
    x -= x.mean(0)
    return _t_norms()(params, x, y)


class _TMLPList(
    nn.Module
):  # the layers in a plain Python list: no parameters registered
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(4, 16), nn.Linear(16, 16), nn.Linear(16, 3)]

    def forward(self, x):
        x = F.relu(self.layers[0](x))
        return self.layers[2](F.relu(self.layers[1](x)))


def _t_seeded(cls):
    def build_mlp(seed):
        torch.manual_seed(seed)
        return cls()

    return build_mlp


class _TMLPExtra(nn.Module):  # a fourth layer the forward pass never uses
    def __init__(self):
        super().__init__()
        self.net, self.unused = _t_mlp(torch.initial_seed()), nn.Linear(3, 3)

    def forward(self, x):
        return self.net(x)


def _t_dp_reduced(reduce):
    def data_parallel_grads(params, x, y, n_shards):
        return {k: reduce(v) for k, v in _t_dp("none")(params, x, y, n_shards).items()}

    return data_parallel_grads


TORCH_MISTAKES = [
    ("per_example_grad_norms", _t_per_batch, "per_batch"),
    ("per_example_grad_norms", _t_norms(root=False), "squared"),
    ("per_example_grad_norms", _t_norms(which=("W",)), "one_leaf"),
    ("per_example_grad_norms", _t_sum_of_norms, "sum_of_norms"),
    ("per_example_grad_norms", _t_autograd_in_vmap, "autograd_in_func"),
    (
        "per_example_grad_norms",
        lambda p, x, y: _t_norms()(p, x, y)[:, None],
        "norms_differ",
    ),
    ("per_example_grad_norms", _t_map_params, "map_params"),
    ("build_mlp", lambda seed: _t_mlp(seed, reseed=True), "key_reused"),
    ("build_mlp", lambda seed: _t_mlp(seed, fixed_seed=0), "seed_ignored"),
    ("build_mlp", lambda seed: _t_mlp(seed, relu=False), "no_activation"),
    ("build_mlp", lambda seed: nn.Sequential(_t_mlp(seed), nn.ReLU()), "mlp_differs"),
    ("train_step", _t_step(update=False), "no_update"),
    ("train_step", _t_step(after=True), "loss_after_update"),
    ("train_step", _t_step(total=True), "sum_loss"),
    ("train_step", _t_step(zero=False), "zero_grad"),
    ("train_step", _t_zero_after_backward, "no_update"),
    ("train_step", _t_two_steps, "loss_differs"),
    (
        "shard_batch",
        lambda x, n: torch.stack(x.chunk(n, dim=1)),
        "wrong_axis",
    ),
    (
        "shard_batch",
        lambda x, n: x.reshape(-1, n, x.shape[1]).transpose(0, 1),
        "interleaved",
    ),
    ("data_parallel_grads", _t_dp("sum"), "sum_shards"),
    ("data_parallel_grads", _t_dp("none"), "not_averaged"),
    ("data_parallel_grads", _t_dp("last"), "dp_differs"),
    ("shard_batch", lambda x, n: torch.stack(x.split(n)), "shard_shape"),
    # found by a student pass: each failed, or passed, or got a generic hint before
    (
        "per_example_grad_norms",
        _t_from_grads(lambda g, x: g["b"].norm(dim=1)),
        "one_leaf",
    ),
    (
        "per_example_grad_norms",
        _t_from_grads(lambda g, x: sum(v.pow(2).sum() for v in g.values()).sqrt()),
        "whole_batch",
    ),
    (
        "per_example_grad_norms",
        _t_from_grads(lambda g, x: sum(v.pow(2).sum(-1) for v in g.values()).sqrt()),
        "flatten_leaves",
    ),
    (
        "per_example_grad_norms",
        lambda p, x, y: _t_norms()(p, x, y) / len(x),
        "divided_by_b",
    ),
    ("per_example_grad_norms", _t_wrt_x, "wrt_x"),
    ("per_example_grad_norms", _t_labels_not_mapped, "map_labels"),
    ("per_example_grad_norms", lambda p, x, y: _t_norms()(p, x, y).double(), "dtype"),
    ("build_mlp", _t_unseeded, "not_seeded"),
    ("build_mlp", lambda seed: _TMLPClass, "class_not_instance"),
    ("build_mlp", lambda seed: _t_mlp(seed).state_dict(), "state_not_module"),
    ("build_mlp", lambda seed: _t_mlp(seed).double(), "model_dtype"),
    (
        "build_mlp",
        lambda seed: nn.Sequential(_t_mlp(seed), nn.Softmax(-1)),
        "softmax_output",
    ),
    (
        "build_mlp",
        lambda seed: nn.Sequential(_t_mlp(seed), nn.LogSoftmax(-1)),
        "softmax_output",
    ),
    ("train_step", _t_loss_step("nll"), "nll_on_logits"),
    ("train_step", _t_loss_step("softmax"), "double_softmax"),
    ("train_step", _t_loss_step("one_hot"), "integer_targets"),
    ("train_step", _t_loss_step("no_grad"), "no_grad_loss"),
    ("train_step", _t_loss_step("attached"), "loss_detach"),
    ("train_step", _t_loss_step("float64"), "dtype"),
    ("train_step", _t_step_before_backward, "no_update"),
    ("shard_batch", lambda x, n: x.reshape(n, x.shape[1], -1), "keep_rows"),
    ("shard_batch", lambda x, n: x.reshape(n, -1), "keep_rows"),
    ("shard_batch", _t_off_by_one, "slice_end"),
    ("shard_batch", lambda x, n: x[: len(x) // n], "one_shard"),
    ("shard_batch", lambda x, n: x.reshape(n, -1, x.shape[1]).double(), "dtype"),
    (
        "data_parallel_grads",
        _t_dp_shards(lambda x, n: x.reshape(n, -1), lambda y, n: y.reshape(n, -1)),
        "shard_x_shape",
    ),
    (
        "data_parallel_grads",
        _t_dp_shards(
            lambda x, n: x.reshape(n, -1, x.shape[1]), lambda y, n: y, (None, 0, None)
        ),
        "shard_y",
    ),
    (
        "data_parallel_grads",
        lambda p, x, y, n: {k: v.double() for k, v in _t_dp()(p, x, y, n).items()},
        "dtype",
    ),
    # exercise 5: the straight-through estimator
    ("round_ste", torch.round, "ste_plain_round"),
    ("round_ste", lambda x: x + torch.round(x) - x, "ste_no_detach"),
    ("round_ste", torch.floor, "ste_not_nearest"),
    ("round_ste", lambda x: x.int().float(), "ste_not_nearest"),  # truncates
    ("round_ste", lambda x: _t_ste_right(torch.floor(x + 0.5)), "ste_ties"),
    (
        "round_ste",
        lambda x: _t_ste_right(torch.sign(x) * torch.floor(x.abs() + 0.5)),
        "ste_ties",
    ),
    ("round_ste", lambda x: x.clone(), "ste_identity"),
    ("round_ste", lambda x: torch.round(x * 10) / 10, "ste_forward"),
    ("round_ste", _t_ste(lambda g, x: torch.ones_like(g)), "ste_ones"),
    ("round_ste", _t_ste(lambda g, x: g * x), "ste_scaled"),
    ("round_ste", _t_ste(lambda g, x: g * torch.round(x)), "ste_scaled"),
    ("round_ste", _t_ste(lambda g, x: 2 * g), "ste_grad"),
    ("round_ste", lambda x: x.detach() + (torch.round(x) - x), "ste_detached_x"),
    ("round_ste", lambda x: torch.round(x).detach(), "ste_no_graph"),
    ("round_ste", _t_legacy, "ste_apply"),
    ("round_ste", lambda x: _t_ste_right(x).double(), "dtype"),
    (
        "round_ste",
        lambda x: torch.from_numpy(np.round(x.detach().numpy())),
        "ste_no_graph",
    ),
    ("round_ste", lambda x: np.round(x.detach().numpy()), "ste_numpy"),
    ("round_ste", lambda x: torch.as_tensor(np.round(x.numpy())), "ste_numpy"),
    ("round_ste", _t_ste_data, "ste_in_place"),
    ("round_ste", _t_ste_round_in_place, "ste_in_place"),
    (
        "round_ste",
        _t_ste(lambda g, x: g * (x.abs() <= 1)),
        "ste_clipped",
    ),  # clipped STE
    # found by a second student pass: each passed, or got a generic or misleading hint
    ("per_example_grad_norms", _t_label_not_batched, "batch_of_one"),
    ("per_example_grad_norms", _t_centred_in_place, "input_in_place"),
    ("build_mlp", _t_seeded(_TMLPList), "params_hidden"),
    ("build_mlp", _t_seeded(_TMLPExtra), "extra_params"),
    (
        "shard_batch",
        lambda x, n: x.resize_(n, len(x) // n, x.shape[1]),
        "input_in_place",
    ),
    ("data_parallel_grads", _t_dp_reduced(torch.mean), "shard_axis"),
    (
        "data_parallel_grads",
        _t_dp_shards(
            lambda x, n: x.reshape(n, -1, x.shape[1]), lambda y, n: y.reshape(-1, n)
        ),
        "dp_mapped_sizes",
    ),
    (
        "data_parallel_grads",
        _t_dp_shards(
            lambda x, n: x.reshape(-1, n, x.shape[1]).transpose(0, 1),
            lambda y, n: y.reshape(n, -1),
        ),
        "shard_alike",
    ),
    ("round_ste", lambda x: torch.round(x).detach().requires_grad_(), "ste_no_graph"),
    ("round_ste", lambda x: x + torch.round(x).detach() - x, "ste_no_detach"),
]

MISTAKES = {"pytorch": TORCH_MISTAKES, "jax": JAX_MISTAKES}

(
    test_each_mistake_gets_its_hint,
    test_at_least_two_mistakes_per_exercise,
    test_every_declared_hint_is_produced_by_a_mistake,
) = mistake_table_tests(LAB, MISTAKES)


# --- the references ----------------------------------------------------------------------------
@pytest.mark.parametrize("case", lab04.linear_cases(), ids=["case0", "case1"])
def test_closed_form_answers_equal_autodiff_in_both_frameworks(case):
    x, y = case["x"], case["y"]
    jp = {k: jnp.asarray(case[k]) for k in ("W", "b")}
    tp = {k: torch.from_numpy(case[k]) for k in ("W", "b")}
    expected = lab04.per_example_norms(case)
    np.testing.assert_allclose(
        _j_norms()(jp, jnp.asarray(x), jnp.asarray(y)), expected, rtol=1e-5
    )
    np.testing.assert_allclose(
        _t_norms()(tp, torch.from_numpy(x), torch.from_numpy(y)), expected, rtol=1e-5
    )
    full = lab04.shard_grads(case, 4)
    g = jax.grad(_j_loss)(jp, jnp.asarray(x), jnp.asarray(y))
    for k in ("W", "b"):
        np.testing.assert_allclose(g[k], full[k], rtol=1e-5, atol=1e-7)


def test_an_uncompiled_correct_function_passes_the_jax_check(capsys):
    lab04_jax.check_per_example_grad_norms(_j_norms())
    assert "passed" in capsys.readouterr().out


def test_jax_reference_model_is_one_rngs_in_layer_order():
    np.testing.assert_allclose(
        lab04_jax._apply(_JMLP(3), lab04._probe()),
        lab04_jax._apply(lab04_jax._MLP(3), lab04._probe()),
    )


def test_a_python_float_loss_is_rejected_with_a_hint():
    def train_step(model, optimizer, x, y):
        return _t_step()(model, optimizer, x, y).item()

    with pytest.raises(CheckFailed, match="got a float") as info:
        lab04_torch.check_train_step(train_step)
    assert "loss.item()" in info.value.hint


# --- valid answers written differently from the solutions: each must pass -----------------------
def _t_manual_sgd(
    model, optimizer, x, y
):  # SGD by hand, lr 0.1 as the check's optimizer
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    with torch.no_grad():
        for p, g in zip(model.parameters(), grads, strict=True):
            p -= 0.1 * g
    return loss.detach()


def _j_manual_update(model, optimizer, x, y):  # SGD by hand with nnx.update, eager
    def loss(model):
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

    value, grads = nnx.value_and_grad(loss)(model)
    params = nnx.state(model, nnx.Param)
    nnx.update(model, jax.tree.map(lambda p, g: p - 0.1 * g, params, grads))
    return value


def _j_sequential(seed):  # nnx.Sequential, one Rngs with a named stream
    rngs = nnx.Rngs(params=seed)
    return nnx.Sequential(
        nnx.Linear(4, 16, rngs=rngs),
        nnx.relu,
        nnx.Linear(16, 16, rngs=rngs),
        nnx.relu,
        nnx.Linear(16, 3, rngs=rngs),
    )


class _TMLPModuleList(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(
            [nn.Linear(a, b) for a, b in [(4, 16), (16, 16), (16, 3)]]
        )

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


def _t_zero_grad_last(model, optimizer, x, y):  # clears the gradients after the step
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.detach()


def _j_ste_jvp():  # jax.custom_jvp: the tangent passes through
    @jax.custom_jvp
    def round_ste(x):
        return jnp.round(x)

    @round_ste.defjvp
    def _(primals, tangents):
        return jnp.round(primals[0]), tangents[0]

    return round_ste


VALID = [
    (lab04_torch.check_round_ste, _t_ste_right),
    (lab04_torch.check_round_ste, _t_ste(lambda g, x: g)),
    (lab04_jax.check_round_ste, _j_ste_right),
    (
        lab04_jax.check_round_ste,
        _j_ste(lambda x, g: (g,), fwd=lambda x: (jnp.round(x), None)),
    ),
    (lab04_jax.check_round_ste, _j_ste_jvp()),
    (lab04_jax.check_round_ste, lambda x: x - jax.lax.stop_gradient(x - jnp.rint(x))),
    (lab04_jax.check_round_ste, lambda x: jnp.round(x) + x - jax.lax.stop_gradient(x)),
    (lab04_torch.check_round_ste, lambda x: torch.round(x) + x - x.detach()),
    (lab04_torch.check_round_ste, _t_ste(lambda g, x: (g.clone(),))),
    (
        lab04_torch.check_per_example_grad_norms,
        lambda p, x, y: sum(  # unbatched examples: xi (D,), yi ()
            g.reshape(len(x), -1).pow(2).sum(1)
            for g in torch.func.vmap(torch.func.grad(_t_loss), in_dims=(None, 0, 0))(
                p, x, y
            ).values()
        ).sqrt(),
    ),
    (lab04_torch.check_train_step, _t_manual_sgd),
    (lab04_torch.check_shard_batch, lambda x, n: x.unflatten(0, (n, -1))),
    (lab04_torch.check_shard_batch, lambda x, n: torch.stack(x.split(len(x) // n))),
    (lab04_jax.check_train_step, _j_manual_update),
    (
        lab04_jax.check_shard_batch,
        lambda x, mesh: jnp.asarray(x, device=NamedSharding(mesh, P("data", None))),
    ),
    (lab04_jax.check_build_mlp, _j_sequential),
    # a second student pass's valid answers
    (lab04_jax.check_shard_batch, _j_placed(P(("data",)))),
    (
        lab04_jax.check_per_example_grad_norms,
        jax.jit(  # unbatched examples, optax.global_norm of each one's gradient
            lambda p, x, y: jax.vmap(
                lambda xi, yi: optax.global_norm(
                    jax.grad(lambda p: _j_loss(p, xi[None], yi[None]))(p)
                )
            )(x, y)
        ),
    ),
    (lab04_jax.check_data_parallel_grads, _j_dp_reduced(lambda g: g[0], pmean=True)),
    (lab04_torch.check_build_mlp, _t_seeded(_TMLPModuleList)),
    (lab04_torch.check_train_step, _t_zero_grad_last),
    (lab04_torch.check_round_ste, _t_ste(lambda g, x: (g, None))),  # a trailing None
]


@pytest.mark.parametrize(("check", "answer"), VALID)
def test_a_valid_answer_written_differently_passes(check, answer, capsys):
    check(answer)
    assert "passed" in capsys.readouterr().out


# --- exercise 5: the solutions' straight-through estimators ------------------------------------
def _solution(framework):
    return exercise_functions(source(LAB, framework))["round_ste"]


def test_the_torch_solution_passes_gradcheck_with_the_identity_backward():
    """The STE's backward is the identity's: in float64, ``round_ste(x) - round(x) + x`` (value
    x, the rounding terms carried as constants) passes gradcheck; round_ste itself must not,
    since finite differences see round's zero slope."""
    round_ste = _solution("pytorch")
    x = torch.linspace(-3.2, 3.1, 17, dtype=torch.float64, requires_grad=True)
    assert round_ste(x).dtype == torch.float64
    assert torch.equal(round_ste(x), torch.round(x))

    def identity(x):
        return round_ste(x) - (torch.round(x) - x).detach()

    assert torch.autograd.gradcheck(identity, (x,))
    assert not torch.autograd.gradcheck(round_ste, (x,), raise_exception=False)


def test_the_jax_solution_is_the_same_under_jit():
    round_ste = _solution("jax")
    x, g = (jnp.asarray(a) for a in ste.cases()[1])
    np.testing.assert_array_equal(jax.jit(round_ste)(x), jnp.round(x))

    @jax.jit
    def grad(x, g):
        return jax.grad(lambda x: jnp.sum(g * round_ste(x)))(x)

    np.testing.assert_array_equal(grad(x, g), g)
    np.testing.assert_array_equal(
        jax.jit(jax.grad(lambda x: round_ste(round_ste(x) * 2).sum()))(x),
        2 * jnp.ones_like(x),
    )


def test_the_ste_hints_name_only_their_framework():
    jax_words = ("jnp", "jax", "JAX", "custom_vjp", "stop_gradient", "cotangent")
    torch_words = ("torch", "PyTorch", "detach", "grad_output", "autograd")
    for module, foreign in ((lab04_jax, torch_words), (lab04_torch, jax_words)):
        for key, text in module.HINTS.items():
            if key.startswith("ste_"):
                assert not any(word in text for word in foreign), (module.__name__, key)
