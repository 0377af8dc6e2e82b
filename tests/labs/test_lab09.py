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
from torch.distributed import all_reduce as _all_reduce
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


def _t_train(
    *, sampler=True, loss_scale=1.0, global_batch=False, set_epoch=True, ddp=True,
    shuffle=True, seed=True, extra_steps=0, lr_scale=1.0, reduction="mean",
    zero_grad=True, momentum=0.0, item=True, returned="model, losses", late_loss=False,
    double=False, adam=False, epoch_offset=0, swap_args=False, fresh_iter=False,
):  # fmt: skip
    def train_ddp(rank, world_size, sizes):
        x, y = toy_data(sizes)
        data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
        net = make_model(sizes).double() if double else make_model(sizes)
        model = DDP(net) if ddp else net
        lr = sizes.learning_rate * lr_scale
        opt = (torch.optim.Adam(model.parameters(), lr=lr) if adam else
               torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum))  # fmt: skip
        if sampler:
            replicas, me = (rank, world_size) if swap_args else (world_size, rank)
            s = DistributedSampler(
                data, replicas, me, shuffle=shuffle,
                seed=sizes.seed if seed else 0, drop_last=True,
            )  # fmt: skip
            share = sizes.batch_size if global_batch else sizes.batch_size // world_size
            loader = DataLoader(data, batch_size=share, sampler=s)
        else:
            g = torch.Generator().manual_seed(sizes.seed)
            loader = DataLoader(data, batch_size=sizes.batch_size // world_size,
                                shuffle=True, generator=g)  # fmt: skip
        losses, epoch, steps = [], 0, sizes.steps + extra_steps
        while len(losses) < steps:
            if sampler and set_epoch:
                s.set_epoch(epoch + epoch_offset)
            for xb, yb in [next(iter(loader))] if fresh_iter else loader:
                if len(xb) * world_size < sizes.batch_size or len(losses) == steps:
                    break
                xb = xb.double() if double else xb
                loss = F.cross_entropy(model(xb), yb, reduction=reduction) * loss_scale
                if zero_grad:
                    opt.zero_grad()
                loss.backward()
                opt.step()
                if late_loss:  # "the loss after the step"
                    loss = F.cross_entropy(model(xb), yb)
                losses.append(loss.item() if item else loss)
            epoch += 0 if fresh_iter else 1
        return {
            "model, losses": (model, losses),
            "losses, model": (losses, model),
            "no losses": (model, []),
            "untrained": (make_model(sizes), losses),
        }[returned]

    return train_ddp


def _t_halves(rank, world_size, sizes):
    """Each rank trains on its contiguous half of the data set, shuffled by its own loader."""
    x, y = toy_data(sizes)
    n = len(x) // world_size
    part = slice(rank * n, (rank + 1) * n)
    data = TensorDataset(torch.from_numpy(x[part]), torch.from_numpy(y[part]))
    model = DDP(make_model(sizes))
    opt = torch.optim.SGD(model.parameters(), lr=sizes.learning_rate)
    g = torch.Generator().manual_seed(sizes.seed)
    loader = DataLoader(data, sizes.batch_size // world_size, shuffle=True, generator=g)
    losses = []
    while len(losses) < sizes.steps:
        for xb, yb in loader:
            if len(losses) == sizes.steps:
                break
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return model, losses


def _t_batch(order, step, batch_size):
    return order[step * batch_size : (step + 1) * batch_size]


def _t_sorts_order(order, step, rank, world_size, batch_size):
    order[:] = order.sort().values  # "sorted for reproducibility", in place
    return _t_batch(order, step, batch_size)[rank::world_size]


def _t_zero_other_rows(w, rank, world):
    n = w.shape[0] // world
    w[: rank * n] = 0  # in place: the caller's weight loses the other ranks' rows
    w[(rank + 1) * n :] = 0
    return w[rank * n : (rank + 1) * n]


def _t_average_with(finish, *, in_place=False, op=None):
    """all_reduce (SUM, or ``op``) each gradient, then ``finish(total, grads, world_size)``."""

    def average_gradients(grads, world_size):
        out = []
        for g in grads:
            total = g if in_place else g.clone()
            dist.all_reduce(total, op=op or dist.ReduceOp.SUM)
            out.append(finish(total, grads, world_size))
        return out

    return average_gradients


def _t_wrong_order(order, step, rank, world_size, batch_size):
    return order[rank::world_size][step * batch_size : (step + 1) * batch_size]


def _t_columns(w, rank, world):
    cols = w.shape[1] // world
    return w[:, rank * cols : (rank + 1) * cols]


def _t_ring(
    *, rs_steps=0, add_shift=0, gather=True, gather_steps=0, mean=False, in_place=False,
    arrival_order=False, jump=False, dtype=None, ret="",
):  # fmt: skip
    """The solution's ring all-reduce, with one switch per mistake."""

    def ring_all_reduce(tensor, rank, world_size):
        w = world_size
        total = tensor if in_place else tensor.clone()
        chunks = total.chunk(w)

        def exchange(send, shift=1):
            got = torch.empty_like(send)
            request = dist.isend(send.contiguous(), (rank + shift) % w)
            dist.recv(got, (rank - shift) % w)
            request.wait()
            return got

        for s in range(w - 1 + rs_steps):
            got = exchange(chunks[(rank - s) % w])
            chunks[(rank - s - 1 + add_shift) % w].add_(got)
        if ret == "chunk":  # the reduce-scatter's summed chunk only
            return chunks[(rank + 1) % w].clone()
        last = (
            rank + 1 - rs_steps
        )  # the chunk added to last: the all-gather passes it first
        arrived = [chunks[last % w].clone()]
        for s in range(w - 1 + gather_steps if gather else 0):
            if jump:  # the summed chunk straight to rank + 1 + s, not around the ring
                got = exchange(chunks[last % w], shift=s + 1)
                chunks[(last - 1 - s) % w].copy_(got)
                continue
            got = exchange(chunks[(last - s) % w])
            arrived.append(got)
            chunks[(last - 1 - s) % w].copy_(got)
        if ret == "list":  # the chunks, never joined
            return list(chunks)
        out = torch.cat(arrived) if arrival_order else total
        out = out / w if mean else out
        return out.to(dtype) if dtype else out

    return ring_all_reduce


def _t_ring_whole(tensor, rank, world_size):
    """The whole array around the ring W - 1 times: the right sum, N numbers a step."""
    total, passing = tensor.clone(), tensor.clone()
    for _ in range(world_size - 1):
        got = torch.empty_like(passing)
        request = dist.isend(passing, (rank + 1) % world_size)
        dist.recv(got, (rank - 1) % world_size)
        request.wait()
        total += got
        passing = got
    return total


def _t_ring_bound_all_reduce(tensor, rank, world_size):
    """all_reduce imported by name before the check ran: no dist.all_reduce call to see."""
    total = tensor.clone()
    _all_reduce(total)
    return total


def _t_ring_send_first(tensor, rank, world_size):
    """The solution's ring with blocking sends, every rank sending first: they all wait."""
    w, total = world_size, tensor.clone()
    chunks = total.chunk(w)

    def exchange(send):
        got = torch.empty_like(send)
        dist.send(send.contiguous(), (rank + 1) % w)
        dist.recv(got, (rank - 1) % w)
        return got

    for s in range(w - 1):
        chunks[(rank - s - 1) % w].add_(exchange(chunks[(rank - s) % w]))
    for s in range(w - 1):
        chunks[(rank - s) % w].copy_(exchange(chunks[(rank + 1 - s) % w]))
    return total


def _t_ring_library(tensor, rank, world_size):
    total = tensor.clone()
    dist.all_reduce(total)
    return total


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
    # Found by a student pass: each row failed, or passed, with another hint before.
    ("shard_batch", lambda o, s, r, w, b: _t_batch(o, s, b).chunk(w)[r], "strided"),
    ("shard_batch", lambda o, s, r, w, b: torch.arange(r, b, w), "positions"),
    ("shard_batch", lambda o, s, r, w, b: _t_batch(o, s, b)[r::w].float(), "index_dtype"),
    ("shard_batch", lambda o, s, r, w, b: _t_batch(o, s, b)[r::w, None], "share_shape"),
    ("shard_batch", _t_sorts_order, "mutated_input"),
    ("shard_weight", lambda w, rank, world: w.chunk(world)[rank].double(), "dtype"),
    ("shard_weight", _t_zero_other_rows, "mutated_input"),
    ("shard_weight", lambda w, rank, world: w[rank * world :][: len(w) // world], "block_rows"),
    ("shard_weight", lambda w, rank, world: w.chunk(world)[rank].T, "block_rows"),
    ("average_gradients", _t_average_with(lambda t, gs, w: t / w, in_place=True), "mutated_input"),
    ("average_gradients", _t_average_with(lambda t, gs, w: t.double() / w), "dtype"),
    ("average_gradients", _t_average_with(lambda t, gs, w: t / len(gs)), "len_grads"),
    ("average_gradients", _t_average_with(lambda t, gs, w: t, op=dist.ReduceOp.MAX),
     "allreduce_mean"),
    ("train_ddp", _t_train(ddp=False), "no_ddp"),
    ("train_ddp", _t_train(shuffle=False), "shuffle"),
    ("train_ddp", _t_train(seed=False), "seed"),
    ("train_ddp", _t_train(extra_steps=1), "steps"),
    ("train_ddp", _t_train(lr_scale=2.0), "lr_scaled"),
    ("train_ddp", _t_train(reduction="sum"), "loss_sum"),
    ("train_ddp", _t_train(zero_grad=False), "zero_grad"),
    ("train_ddp", _t_train(momentum=0.9), "plain_sgd"),
    ("train_ddp", _t_train(returned="untrained"), "untrained"),
    ("train_ddp", _t_train(item=False), "losses"),
    ("train_ddp", _t_train(returned="no losses"), "losses"),
    ("train_ddp", _t_train(returned="losses, model"), "model_first"),
    ("train_ddp", _t_halves, "ddp_recipe"),
    # Exercise 5, the ring all-reduce.
    ("ring_all_reduce", _t_ring_library, "ring_library"),
    ("ring_all_reduce", _t_ring(gather=False), "ring_scatter_only"),
    ("ring_all_reduce", _t_ring(rs_steps=1), "ring_extra_step"),
    ("ring_all_reduce", _t_ring(add_shift=1), "ring_chunk_index"),
    ("ring_all_reduce", _t_ring_whole, "ring_whole_array"),
    ("ring_all_reduce", _t_ring(mean=True), "ring_mean"),
    ("ring_all_reduce", _t_ring(arrival_order=True), "ring_gather_place"),
    ("ring_all_reduce", _t_ring(jump=True), "ring_not_ring"),
    ("ring_all_reduce", _t_ring(gather_steps=1), "ring_steps"),
    ("ring_all_reduce", _t_ring(in_place=True), "mutated_input"),
    ("ring_all_reduce", _t_ring(dtype=torch.float64), "dtype"),
    ("ring_all_reduce", lambda t, rank, world_size: t.clone(), "ring_recipe"),
    ("ring_all_reduce", _t_ring(ret="chunk"), "ring_scatter_only"),
    ("ring_all_reduce", _t_ring(ret="list"), "ring_shape"),
    # Found by the second student pass: each row failed, or passed, with another hint before.
    ("average_gradients", lambda gs, w: _t_average()(gs[:1], w), "grads_list"),
    ("train_ddp", _t_train(late_loss=True), "loss_values"),
    ("train_ddp", _t_train(double=True), "model_dtype"),
    ("train_ddp", _t_train(adam=True), "plain_sgd"),
    ("train_ddp", _t_train(epoch_offset=1), "epoch_offset"),
    ("train_ddp", _t_train(swap_args=True), "sampler_args"),
    ("train_ddp", _t_train(fresh_iter=True), "fresh_iter"),
    ("ring_all_reduce", _t_ring_bound_all_reduce, "ring_library"),
    ("ring_all_reduce", _t_ring_send_first, "ring_deadlock"),
]  # fmt: skip


# ---------------------------------------------------------------- JAX mistakes
def _j_twice(g):
    return jax.tree.map(lambda v: jax.lax.pmean(v, "data") / jax.lax.psum(1, "data"), g)


def _j_place(spec):
    return lambda x, mesh: jax.device_put(x, NamedSharding(mesh, spec))


def _j_step(
    *, collective="pmean", extra_divide=False, sign=-1.0, by8=False, lr_scale=1.0,
    returned="params",
):  # fmt: skip
    def data_parallel_step(loss_fn, params, x, y, lr):
        grads = jax.grad(loss_fn)(params, x, y)
        if collective == "loss_pmean":  # the mean loss over the workers, differentiated
            mean_loss = lambda p: jax.lax.pmean(loss_fn(p, x, y), "data")  # noqa: E731
            grads = jax.grad(mean_loss)(params)
        if collective == "pmean":
            grads = jax.lax.pmean(grads, "data")
        elif collective == "psum":
            grads = jax.lax.psum(grads, "data")
        elif collective == "local_mean":  # each leaf's own mean, on one worker
            grads = jax.tree.map(lambda g: g.mean(0), grads)
        if returned == "grads":
            return grads
        if returned == "clipped":
            grads = jax.tree.map(lambda g: jnp.clip(g, -0.01, 0.01), grads)
        if lr_scale is None:  # "the step is params - grad"
            lr = 1.0
        if extra_divide:
            grads = jax.tree.map(lambda g: g / jax.lax.psum(1, "data"), grads)
        if by8:  # "there are 8 devices"
            grads = jax.tree.map(lambda g: g / 8, grads)
        new = jax.tree.map(lambda p, g: p + sign * lr * g, params, grads)
        if returned == "with loss":
            return new, loss_fn(params, x, y)
        if returned == "float16":
            return jax.tree.map(lambda p: p.astype(jnp.float16), new)
        return new

    return data_parallel_step


def _j_ring(
    *, rs_steps=0, add_shift=0, gather=True, gather_steps=0, mean=False,
    arrival_order=False, jump=False, dtype=None, ret="", index="", leftward=False,
    devices=False,
):  # fmt: skip
    """The solution's ring all-reduce, with one switch per mistake."""

    def ring_all_reduce(x, axis_name):
        w, i = jax.lax.axis_size(axis_name), jax.lax.axis_index(axis_name)
        if devices:  # "W is the number of devices"
            w = jax.device_count()
        if index == "int":  # the traced index as a Python int
            i = int(i)
        if index == "list":  # a Python list of chunks, indexed by the traced index
            return jnp.split(x, w)[i]
        chunks = x.reshape(w, -1)

        def shifted(v, shift=1):
            shift = (
                -shift if leftward else shift
            )  # leftward: the right ring's chunk indices
            return jax.lax.ppermute(
                v, axis_name, [(j, (j + shift) % w) for j in range(w)]
            )

        for s in range(w - 1 + rs_steps):
            got = shifted(chunks[(i - s) % w])
            chunks = chunks.at[(i - s - 1 + add_shift) % w].add(got)
        if ret == "chunk":  # the reduce-scatter's summed chunk only
            return chunks[(i + 1) % w]
        last = (
            i + 1 - rs_steps
        )  # the chunk added to last: the all-gather passes it first
        arrived = [chunks[last % w]]
        for s in range(w - 1 + gather_steps if gather else 0):
            if jump:  # the summed chunk straight to i + 1 + s, not around the ring
                chunks = chunks.at[(last - 1 - s) % w].set(
                    shifted(chunks[last % w], s + 1)
                )
                continue
            got = shifted(chunks[(last - s) % w])
            arrived.append(got)
            chunks = chunks.at[(last - 1 - s) % w].set(got)
        if ret == "chunks":  # (W, N / W), never flattened
            return chunks
        out = jnp.concatenate(arrived) if arrival_order else chunks.reshape(-1)
        out = out / w if mean else out
        return out.astype(dtype) if dtype else out

    return ring_all_reduce


def _j_ring_whole(x, axis_name):
    """The whole array around the ring W - 1 times: the right sum, N numbers a step."""
    w = jax.lax.axis_size(axis_name)
    total, passing = x, x
    for _ in range(w - 1):
        passing = jax.lax.ppermute(
            passing, axis_name, [(j, (j + 1) % w) for j in range(w)]
        )
        total = total + passing
    return total


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
    # Found by a student pass: each row failed, or passed, with another hint before.
    ("shard_batch", _j_place(P("model")), "mesh_axis_name"),
    ("shard_batch", _j_place(P(None, None, "data")), "spec_rank"),
    ("shard_batch", lambda x, mesh: _j_place(P("data"))(x.astype(jnp.bfloat16), mesh),
     "dtype"),
    ("shard_batch", lambda x, mesh: _j_place(P("data"))(jnp.sort(x, axis=0), mesh),
     "place_values"),
    ("shard_weight", _j_place(P(None, ("data", "model"))), "mesh_axis"),
    ("shard_weight", _j_place(P(None, "model", None)), "spec_rank"),
    ("shard_weight", lambda w, mesh: _j_place(P(None, "model"))(w.astype(jnp.float16), mesh),
     "dtype"),
    ("shard_weight", lambda w, mesh: _j_place(P(None, "model"))(w * 1.001, mesh),
     "place_values"),
    ("average_gradients", lambda g: jax.tree.map(lambda v: jax.lax.psum(v, "data") / len(g), g),
     "len_grads"),
    ("average_gradients",
     lambda g: jax.tree.map(lambda v: jax.lax.pmean(v, "data").astype(jnp.bfloat16), g),
     "dtype"),
    ("average_gradients", lambda g: jax.lax.pmax(g, "data"), "pmean_tree"),
    ("data_parallel_step", _j_step(lr_scale=None), "no_lr"),
    ("data_parallel_step", _j_step(returned="grads"), "returned_grads"),
    ("data_parallel_step", _j_step(collective="local_mean"), "local_mean"),
    ("data_parallel_step", _j_step(returned="clipped"), "step_recipe"),
    # Exercise 5, the ring all-reduce.
    ("ring_all_reduce", lambda x, axis_name: jax.lax.psum(x, axis_name), "ring_library"),
    ("ring_all_reduce", _j_ring(gather=False), "ring_scatter_only"),
    ("ring_all_reduce", _j_ring(rs_steps=1), "ring_extra_step"),
    ("ring_all_reduce", _j_ring(add_shift=1), "ring_chunk_index"),
    ("ring_all_reduce", _j_ring_whole, "ring_whole_array"),
    ("ring_all_reduce", _j_ring(mean=True), "ring_mean"),
    ("ring_all_reduce", _j_ring(arrival_order=True), "ring_gather_place"),
    ("ring_all_reduce", _j_ring(jump=True), "ring_not_ring"),
    ("ring_all_reduce", _j_ring(gather_steps=1), "ring_steps"),
    ("ring_all_reduce", _j_ring(dtype=jnp.float16), "dtype"),
    ("ring_all_reduce", lambda x, axis_name: x, "ring_world"),
    ("ring_all_reduce", _j_ring(leftward=True), "ring_recipe"),
    ("ring_all_reduce", _j_ring(ret="chunk"), "ring_scatter_only"),
    ("ring_all_reduce", _j_ring(ret="chunks"), "ring_shape"),
    ("ring_all_reduce", _j_ring(index="int"), "ring_traced_index"),
    ("ring_all_reduce", _j_ring(index="list"), "ring_traced_index"),
    # Found by the second student pass: each row failed, or passed, with another hint before.
    ("shard_batch", lambda x, mesh: jax.device_put(x, mesh), "device_put_sharding"),
    ("shard_batch", _j_place(P("data", "data")), "spec_duplicate"),
    ("average_gradients", lambda g: jax.tree.map(lambda v: np.asarray(v).mean(), g),
     "traced_numpy"),
    ("average_gradients", lambda g: [jax.lax.pmean(v, "data") for v in g.values()], "pytree"),
    ("data_parallel_step", _j_step(returned="with loss"), "pytree"),
    ("data_parallel_step", _j_step(returned="float16"), "dtype"),
    ("data_parallel_step", _j_step(collective="loss_pmean"), "no_allreduce"),
    ("ring_all_reduce", _j_ring(devices=True), "ring_world"),
]  # fmt: skip

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


def test_ddp_mistake_references():
    """The one-process training behind the DDP hints equals the reference without a
    mistake, and every mistake moves the trained parameters away from it."""
    from helpers.labs.lab09.checks import LAB_SIZES
    from helpers.labs.lab09.torch_mistakes import ddp_mistakes, one_process_training
    from helpers.torch.parallel import reference_training

    reference = reference_training(LAB_SIZES)
    plain = one_process_training(LAB_SIZES)
    for name, value in plain.items():
        np.testing.assert_allclose(value, reference[name], rtol=1e-5, atol=1e-6)
    for key, params in ddp_mistakes(LAB_SIZES, 2):
        assert not all(
            np.allclose(params[n], reference[n], atol=1e-4) for n in plain
        ), key


def test_ring_reference_equals_the_library_collectives():
    """The numpy ring (both directions) and the solution's ring equal jax.lax.psum; every
    mistake the check recognises moves the result away from the sum."""
    from helpers.labs.lab09.ring import ring_cases, ring_reference

    for world in (2, 3, 4):
        for x in ring_cases(world):
            psum = jax.vmap(lambda v: jax.lax.psum(v, "i"), axis_name="i")(x)
            ring = jax.vmap(lambda v: _j_ring()(v, "i"), axis_name="i")(x)
            for got in (ring, ring_reference(x), ring_reference(x, leftward=True)):
                np.testing.assert_allclose(got, psum, rtol=1e-5, atol=1e-5)
            for mistake in ({"rs_steps": world}, {"add_shift": 1}, {"gather": False}):
                assert not np.allclose(ring_reference(x, **mistake), psum, atol=1e-3)


def test_torch_ring_equals_all_reduce():
    """The PyTorch mistake table's ring without a mistake equals dist.all_reduce (SUM), on
    4 forked gloo ranks; the mistakes' input is left as it was."""
    from helpers.labs.kit import Checker
    from helpers.labs.lab09.ring import ring_cases
    from helpers.torch.labkit import run_ranks

    def body(rank, world_size):
        out = {}
        for k, x in enumerate(ring_cases(world_size)):
            library = torch.from_numpy(x[rank].copy())
            dist.all_reduce(library, op=dist.ReduceOp.SUM)
            out[f"ring{k}"] = _t_ring()(torch.from_numpy(x[rank]), rank, world_size)
            out[f"library{k}"] = library
        return {k: v.numpy() for k, v in out.items()}

    from helpers.labs.lab09.torch import TORCH

    for r in run_ranks(Checker("ring", TORCH), body, 4):
        for k in range(2):
            np.testing.assert_allclose(
                r[f"ring{k}"], r[f"library{k}"], rtol=1e-5, atol=1e-5
            )


# --- exercise 5: valid rings written differently from the solutions: each must pass ----------
def _t_ring_left_blocking(tensor, rank, world_size):
    """The mirror ring (to rank - 1), blocking send/recv, even ranks sending first."""
    w, total = world_size, tensor.clone()
    chunks = total.chunk(w)

    def exchange(send):
        got = torch.empty_like(send)
        if rank % 2 == 0:
            dist.send(send.contiguous(), (rank - 1) % w)
            dist.recv(got, (rank + 1) % w)
        else:
            dist.recv(got, (rank + 1) % w)
            dist.send(send.contiguous(), (rank - 1) % w)
        return got

    for s in range(w - 1):
        chunks[(rank + s + 1) % w].add_(exchange(chunks[(rank + s) % w]))
    for s in range(w - 1):
        chunks[(rank + s) % w].copy_(exchange(chunks[(rank - 1 + s) % w]))
    return total


def _j_ring_fori(x, axis_name):
    """The solution's ring in two jax.lax.fori_loops (a scan: the steps still count)."""
    w, i = jax.lax.axis_size(axis_name), jax.lax.axis_index(axis_name)
    perm = [(j, (j + 1) % w) for j in range(w)]

    def scatter(s, ch):
        got = jax.lax.ppermute(ch[(i - s) % w], axis_name, perm)
        return ch.at[(i - s - 1) % w].add(got)

    def gather(s, ch):
        got = jax.lax.ppermute(ch[(i + 1 - s) % w], axis_name, perm)
        return ch.at[(i - s) % w].set(got)

    chunks = jax.lax.fori_loop(0, w - 1, scatter, x.reshape(w, -1))
    return jax.lax.fori_loop(0, w - 1, gather, chunks).reshape(-1)


@pytest.mark.parametrize(
    ("framework", "answer"),
    [("pytorch", _t_ring_left_blocking), ("jax", _j_ring_fori)],
    ids=["torch-left-blocking", "jax-fori-loop"],
)
def test_a_valid_ring_written_differently_passes(framework, answer, capsys):
    from labtools import checks

    checks("lab09", framework)["ring_all_reduce"](answer)
    assert "ring_all_reduce: passed" in capsys.readouterr().out


# --- valid answers written differently from the solutions (second student pass) -------------
def _t_average_gathered(grads, world_size):
    """all_gather every rank's gradient, then the mean: no all_reduce, the same result."""
    out = []
    for g in grads:
        parts = [torch.empty_like(g) for _ in range(world_size)]
        dist.all_gather(parts, g.contiguous())
        out.append(torch.stack(parts).mean(0))
    return out


def _j_step_params_mean(loss_fn, params, x, y, lr):
    """Each worker's own step, then the mean of the parameters: equal from equal params."""
    grads = jax.grad(loss_fn)(params, x, y)
    return jax.lax.pmean(jax.tree.map(lambda p, g: p - lr * g, params, grads), "data")


@pytest.mark.parametrize(
    ("framework", "exercise", "answer"),
    [
        (
            "pytorch",
            "shard_batch",
            lambda o, s, r, w, b: o[s * b + r : (s + 1) * b : w],
        ),
        (
            "pytorch",
            "shard_batch",
            lambda o, s, r, w, b: o[r::w][s * b // w : (s + 1) * b // w],
        ),
        ("pytorch", "shard_weight", lambda w, r, n: w.view(n, -1, w.shape[1])[r]),
        ("pytorch", "average_gradients", _t_average_gathered),
        ("jax", "shard_batch", _j_place(P(("data",)))),
        ("jax", "average_gradients", lambda g: jax.lax.pmean(g, axis_name=("data",))),
        ("jax", "data_parallel_step", _j_step_params_mean),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_valid_answer_written_differently_passes(framework, exercise, answer, capsys):
    from labtools import checks

    checks("lab09", framework)[exercise](answer)
    assert f"{exercise}: passed" in capsys.readouterr().out


def test_a_rank_error_is_reported_not_its_peers_closed_connection():
    """A rank that fails leaves; its peer, waiting in recv, then fails on the closed
    connection. The check reports the first rank's error, whatever the ranks' order."""
    from helpers.labs import CheckFailed
    from helpers.labs.kit import Checker
    from helpers.labs.lab09.torch import TORCH
    from helpers.torch.labkit import run_ranks

    def body(rank, world_size):
        if rank == 1:
            raise IndexError("list index out of range")
        got = torch.empty(2)
        dist.recv(got, 1)  # never sent: rank 1 has left
        return {"got": got.numpy()}

    with pytest.raises(CheckFailed) as info:
        run_ranks(Checker("ring", TORCH), body, 2)
    assert info.value.problem.startswith("rank 1: your code raised IndexError")
