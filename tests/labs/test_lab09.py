"""Lab 9's typical mistakes: each one fails its check with the hint written for it.

``MISTAKES`` lists, per framework, (exercise, a wrong solution, the key of the hint it must get).
Every hint the lab declares must be produced by at least one entry. The PyTorch checks of
``average_gradients`` and ``data_parallel`` fork two gloo processes per call.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from labtools import mistake_table_tests
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from helpers.distributed import toy_data
from helpers.torch.parallel import make_model

# The PyTorch checks fork their ranks (so a notebook-defined function runs in them); this test
# process has imported JAX, whose threads make Python warn on every fork. The forked ranks run
# only PyTorch and never touch JAX, and a rank that hangs fails its check after a time limit.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork.. was called:RuntimeWarning")


# ---------------------------------------------------------------- PyTorch mistakes
def _t_share(*, whole=False, offset=False):
    def shard_batch(order, step, rank, world_size, batch_size):
        start = step * (batch_size // world_size if offset else batch_size)
        batch = order[start : start + batch_size]
        return batch if whole else batch[rank::world_size]

    return shard_batch


def _t_average(*, divide=1, reduce=True):
    def average_gradients(grads, world_size):
        out = []
        for g in grads:
            g = g.clone()
            if reduce:
                dist.all_reduce(g)
            out.append(g / world_size**divide)
        return out

    return average_gradients


def _t_train(*, sampler=True, loss_scale=1.0, global_batch=False, set_epoch=True):
    def train_ddp(rank, world_size, sizes):
        x, y = toy_data(sizes)
        data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
        model = DDP(make_model(sizes))
        opt = torch.optim.SGD(model.parameters(), lr=sizes.learning_rate)
        if sampler:
            s = DistributedSampler(
                data, world_size, rank, seed=sizes.seed, drop_last=True
            )
            share = sizes.batch_size if global_batch else sizes.batch_size // world_size
            loader = DataLoader(data, batch_size=share, sampler=s)
        else:
            g = torch.Generator().manual_seed(sizes.seed)
            loader = DataLoader(data, batch_size=sizes.batch_size // world_size,
                                shuffle=True, generator=g)  # fmt: skip
        losses, epoch = [], 0
        while len(losses) < sizes.steps:
            if sampler and set_epoch:
                s.set_epoch(epoch)
            for xb, yb in loader:
                if (
                    len(xb) * world_size < sizes.batch_size
                    or len(losses) == sizes.steps
                ):
                    break
                loss = F.cross_entropy(model(xb), yb) * loss_scale
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            epoch += 1
        return model, losses

    return train_ddp


def _t_wrong_order(order, step, rank, world_size, batch_size):
    return order[rank::world_size][step * batch_size : (step + 1) * batch_size]


def _t_columns(w, rank, world):
    cols = w.shape[1] // world
    return w[:, rank * cols : (rank + 1) * cols]


TORCH_MISTAKES = [
    ("shard_batch", _t_share(whole=True), "same_data"),
    ("shard_batch", _t_share(offset=True), "step_offset"),
    ("shard_batch", _t_wrong_order, "step_offset"),
    ("shard_weight", lambda w, rank, world: w, "replicated"),
    ("shard_weight", _t_columns, "weight_axis"),
    ("shard_weight", lambda w, rank, world: w[rank::world], "block"),
    ("average_gradients", _t_average(divide=0), "summed"),
    ("average_gradients", _t_average(divide=2), "averaged_twice"),
    ("average_gradients", _t_average(divide=0, reduce=False), "no_allreduce"),
    ("train_ddp", _t_train(sampler=False), "same_data"),
    ("train_ddp", _t_train(loss_scale=0.5), "averaged_twice"),
    ("train_ddp", _t_train(global_batch=True), "global_batch"),
    ("train_ddp", _t_train(set_epoch=False), "set_epoch"),
]


# ---------------------------------------------------------------- JAX mistakes
def _j_twice(g):
    return jax.tree.map(lambda v: jax.lax.pmean(v, "data") / jax.lax.psum(1, "data"), g)


def _j_place(spec):
    return lambda x, mesh: jax.device_put(x, NamedSharding(mesh, spec))


def _j_step(*, collective="pmean", extra_divide=False, sign=-1.0, by8=False):
    def data_parallel_step(loss_fn, params, x, y, lr):
        grads = jax.grad(loss_fn)(params, x, y)
        if collective == "pmean":
            grads = jax.lax.pmean(grads, "data")
        elif collective == "psum":
            grads = jax.lax.psum(grads, "data")
        if extra_divide:
            grads = jax.tree.map(lambda g: g / jax.lax.psum(1, "data"), grads)
        if by8:  # "there are 8 devices"
            grads = jax.tree.map(lambda g: g / 8, grads)
        return jax.tree.map(lambda p, g: p + sign * lr * g, params, grads)

    return data_parallel_step


JAX_MISTAKES = [
    ("shard_batch", _j_place(P(None, "data")), "feature_axis"),
    ("shard_batch", _j_place(P()), "replicated"),
    ("shard_weight", _j_place(P("model", None)), "weight_axis"),
    ("shard_weight", _j_place(P()), "replicated"),
    ("shard_weight", _j_place(P(None, "data")), "mesh_axis"),
    ("shard_weight", _j_place(P("data", "model")), "mesh_axis"),
    ("average_gradients", lambda g: jax.lax.psum(g, "data"), "summed"),
    ("average_gradients", _j_twice, "averaged_twice"),
    ("average_gradients", lambda g: g, "no_allreduce"),
    ("average_gradients", lambda g: jax.lax.pmean(g, "batch"), "axis_name"),
    ("average_gradients", lambda g: jax.tree.map(lambda v: v.mean(0), g), "local_mean"),
    (
        "average_gradients",
        lambda g: jax.tree.map(lambda v: jax.lax.psum(v, "data") / 8, g),
        "hardcoded_world",
    ),
    ("data_parallel_step", _j_step(collective=None), "no_allreduce"),
    ("data_parallel_step", _j_step(collective="psum"), "summed"),
    ("data_parallel_step", _j_step(extra_divide=True), "averaged_twice"),
    ("data_parallel_step", _j_step(sign=1.0), "ascent"),
    ("data_parallel_step", _j_step(collective="psum", by8=True), "hardcoded_world"),
]

MISTAKES = {"pytorch": TORCH_MISTAKES, "jax": JAX_MISTAKES}

(
    test_catches_mistake_with_its_hint,
    test_at_least_two_mistakes_per_exercise,
    test_every_declared_hint_is_produced_by_a_mistake,
) = mistake_table_tests("lab09", MISTAKES)


def test_softmax_regression_reference_equals_jax_grad():
    from helpers.labs.lab09 import checks

    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 5)).astype(np.float32)
    y = rng.integers(0, 3, 7)
    w, b = rng.standard_normal((5, 3)), rng.standard_normal(3)

    def loss(params):
        logits = jnp.asarray(x) @ params[0] + params[1]
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1).mean()

    gw, gb = jax.grad(loss)((jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)))
    ref = checks.softmax_regression_grads(w, b, x.astype(np.float64), y)
    np.testing.assert_allclose(ref[0], gw, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ref[1], gb, rtol=1e-4, atol=1e-6)
