# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---
# %% [markdown]
# # Lab 9 solutions: sharding and data parallelism in JAX
#
# Five exercises on chapter 9: place a batch and a weight matrix on a device mesh, average
# gradients across workers with a collective, write the data-parallel SGD step, and write
# the ring all-reduce itself from point-to-point messages. Each exercise is a function.
# Replace the line `raise NotImplementedError(...)` with your code, run the cell, then run
# the check below it: a check prints ✅ when your function is right, or ❌ with what it
# expected and a hint.
#
# The sharding checks read how your array is split (its `NamedSharding`); the collective
# checks run your function for several workers under `jax.vmap(..., axis_name="data")` and
# compare with one worker on the whole batch; the ring's check also reads which messages
# your function's program sends (its jaxpr). They never look at your code.
#
# The exercises alone, without the answers: [Lab 9 in JAX](../../labs/09-performance-distributed/in-jax.ipynb).

# %% tags=["remove-cell"]
# Colab only: install the course helpers, and newer flax/optax if Colab's are too old.
# torch and jax are never reinstalled: Colab builds them for its CUDA.
import sys

if "google.colab" in sys.modules:
    import subprocess

    repo = "git+https://github.com/pytorch-jax-course/pytorch-jax-course"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", repo], check=True)
    from helpers.versions import colab_setup

    colab_setup()

# %% [markdown]
# First, 8 simulated CPU devices (possible only before JAX's first operation: if this warns,
# restart the kernel and run this cell first).

# %%
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from helpers import jax as H

# like jax.config.update("jax_num_cpu_devices", 8), checked
H.sharding.simulate_cpu_devices(8)
print(jax.device_count(), "devices:", jax.devices()[0], "...", jax.devices()[-1])

# %% [markdown]
# ## Exercise 1: shard a batch
#
# Return `x` (a batch, examples on axis 0) placed on `mesh` with its rows split over the mesh
# axis `"data"`: each device holds whole examples, `len(x) / mesh.shape["data"]` of them
# (copied along any other mesh axis).


# %%
def shard_batch(x, mesh):
    ### BEGIN SOLUTION
    return jax.device_put(x, NamedSharding(mesh, P("data")))
    ### END SOLUTION


# %%
H.lab09.check_shard_batch(shard_batch)

# %% [markdown]
# ## Exercise 2: shard a weight matrix
#
# A Flax `Linear` kernel has shape `(in_features, out_features)`. On a mesh with axes
# `("data", "model")`, return `w` placed with its *output* features (columns) split over
# `"model"`, so each device computes a slice of the layer's outputs (tensor parallelism
# {cite}`shoeybi2019megatron`).


# %%
def shard_weight(w, mesh):
    ### BEGIN SOLUTION
    return jax.device_put(w, NamedSharding(mesh, P(None, "model")))
    ### END SOLUTION


# %%
H.lab09.check_shard_weight(shard_weight)

# %% [markdown]
# With both in place, `jax.jit` computes the layer on the 2 x 4 mesh, each device one block:

# %%
if jax.device_count("cpu") != 8:
    print(
        "restart the kernel and run the first code cell first: 8 CPU devices are needed"
    )
else:
    try:  # runs once the exercises above are solved
        mesh = H.sharding.make_mesh((2, 4), ("data", "model"), device="cpu")
        x = shard_batch(jnp.ones((8, 16)), mesh)  # (8, 16): 4 rows on each "data" row
        # (16, 12): 3 columns per "model" device
        w = shard_weight(jnp.ones((16, 12)), mesh)
        y = jax.jit(jnp.matmul)(x, w)  # (8, 12)
        print(y.sharding.spec, y.addressable_shards[0].data.shape)
    except NotImplementedError:
        print("solve the exercises above first")

# %% [markdown]
# ## Exercise 3: average gradients across workers
#
# Inside a per-worker function (under `shard_map` over a mesh axis, or `vmap` with an
# `axis_name`), `grads` is this worker's gradient pytree. Return the pytree of their means
# over the axis `"data"` with one collective.


# %%
def average_gradients(grads):
    ### BEGIN SOLUTION
    return jax.lax.pmean(grads, "data")
    ### END SOLUTION


# %%
H.lab09.check_average_gradients(average_gradients)

# %% [markdown]
# ## Exercise 4: the data-parallel step
#
# One SGD step of one worker on its share `(x, y)` of the batch: the gradient of
# `loss_fn(params, x, y)` (a mean over the share), averaged over the workers, then
# `params - lr * grad` for every leaf. Every worker must end with the parameters one worker
# would reach on the whole batch.


# %%
def data_parallel_step(loss_fn, params, x, y, lr):
    ### BEGIN SOLUTION
    grads = average_gradients(jax.grad(loss_fn)(params, x, y))
    return jax.tree.map(lambda p, g: p - lr * g, params, grads)
    ### END SOLUTION


# %%
H.lab09.check_data_parallel(data_parallel_step)

# %% [markdown]
# The same function runs on the 8 devices with `jax.shard_map`: each device gets its rows of
# the batch and a copy of the parameters, and the `pmean` becomes an all-reduce. Pass
# `check_vma=False`. With the default (`True`), `shard_map` tracks which values vary over
# the devices: `params` come in replicated, so `jax.grad` already sums their gradient over
# the devices (the transpose of a copy is a sum), and the `pmean` of that sum is the sum, $W$
# times the gradient (4 times on 4 devices, measured). The exercises' per-worker code expects
# each device's own gradient until the `pmean`.

# %%
if jax.device_count("cpu") != 8:
    print(
        "restart the kernel and run the first code cell first: 8 CPU devices are needed"
    )
else:
    try:  # runs once the exercises above are solved
        mesh8 = H.sharding.make_mesh((8,), ("data",), device="cpu")

        def loss_fn(params, x, y):
            logits = x @ params["w"]  # (B, 3)
            return -jnp.take_along_axis(
                jax.nn.log_softmax(logits), y[:, None], axis=1
            ).mean()

        params = jax.device_put({"w": jnp.zeros((5, 3))}, NamedSharding(mesh8, P()))
        xs = shard_batch(
            jax.random.normal(jax.random.key(0), (32, 5)), mesh8
        )  # (32, 5)
        ys = shard_batch(jnp.arange(32) % 3, mesh8)  # (32,)
        step = jax.jit(
            jax.shard_map(
                lambda p, x, y: data_parallel_step(loss_fn, p, x, y, 0.5),
                mesh=mesh8,
                in_specs=(P(), P("data"), P("data")),
                out_specs=P(),
                check_vma=False,  # per-worker code: each gradient is local until the pmean
            )
        )
        one_device = jax.tree.map(
            lambda p, g: p - 0.5 * g, params, jax.grad(loss_fn)(params, xs, ys)
        )
        np.testing.assert_allclose(
            step(params, xs, ys)["w"], one_device["w"], rtol=1e-5, atol=1e-6
        )
        print("8 devices with shard_map equal one device")
    except NotImplementedError:
        print("solve the exercises above first")

# %% [markdown]
# ## Exercise 5: ring all-reduce by hand
#
# Chapter 9's ring all-reduce {cite}`patarasuk2009bandwidth`, written with point-to-point
# messages only. `x` is this
# worker's 1-D float32 array of $N$ numbers, $N$ a multiple of the number of workers $W$
# (`jax.lax.axis_size(axis_name)`); return the sum of every worker's `x`, an array of $N$
# numbers like `x`, on every worker. Communicate only with `jax.lax.ppermute` (no `psum`,
# `pmean`, `all_gather`, `psum_scatter`), and find this worker's place with
# `jax.lax.axis_index(axis_name)`, a traced value: index an array of chunks with it,
# `x.reshape(W, -1)`, not a Python list, and update it with `chunks.at[k].add(...)` or
# `.set(...)`. One step of messages to the next worker is
# `jax.lax.ppermute(chunk, axis_name, perm=[(j, (j + 1) % W) for j in range(W)])`. The
# algorithm:
#
# 1. split the array into $W$ chunks of $N/W$ numbers;
# 2. reduce-scatter, steps $s = 0, \dots, W-2$: worker $i$ sends chunk $(i-s) \bmod W$ to
#    worker $(i+1) \bmod W$ and adds the chunk it receives into its chunk $(i-s-1) \bmod W$;
#    after these $W-1$ steps worker $i$ holds chunk $(i+1) \bmod W$ summed over all workers;
# 3. all-gather, steps $s = 0, \dots, W-2$: worker $i$ sends its summed chunk
#    $(i+1-s) \bmod W$ to worker $(i+1) \bmod W$ and stores the chunk it receives, already
#    summed, in place of its chunk $(i-s) \bmod W$.
#
# The check runs your function for 2, 3 and 4 workers (under `jax.vmap` with a named axis,
# which needs no devices) and compares with the sum that `jax.lax.psum` returns; it also reads
# the messages of your function's program under `jax.shard_map` (its jaxpr): each worker must
# send $2(W-1)$ messages of $N/W$ numbers, always to the same neighbour: the chapter's
# $2N(W-1)/W$ sent by each worker.


# %%
def ring_all_reduce(x, axis_name):
    ### BEGIN SOLUTION
    w = jax.lax.axis_size(axis_name)  # W workers on the ring
    i = jax.lax.axis_index(axis_name)  # this worker's place, traced
    chunks = x.reshape(w, -1)  # (W, N / W): chunk k is row k
    right = [(j, (j + 1) % w) for j in range(w)]  # everyone sends to the next worker
    for s in range(w - 1):  # reduce-scatter: partial sums travel and grow
        got = jax.lax.ppermute(chunks[(i - s) % w], axis_name, right)  # (N / W,)
        chunks = chunks.at[(i - s - 1) % w].add(got)  # the chunk worker i - 1 sent
    # Worker i now holds chunk i + 1 summed over all W workers.
    for s in range(w - 1):  # all-gather: summed chunks travel, replace partial ones
        got = jax.lax.ppermute(chunks[(i + 1 - s) % w], axis_name, right)
        chunks = chunks.at[(i - s) % w].set(got)
    return chunks.reshape(-1)  # (N,)
    ### END SOLUTION


# %%
H.lab09.check_ring_all_reduce(ring_all_reduce)

# %% [markdown]
# On the 8 devices, `jax.shard_map` runs it as one program per device, and it equals `psum`:

# %%
if jax.device_count("cpu") != 8:
    print(
        "restart the kernel and run the first code cell first: 8 CPU devices are needed"
    )
else:
    try:  # runs once the exercise above is solved
        mesh8 = H.sharding.make_mesh((8,), ("data",), device="cpu")
        grads = jax.random.normal(jax.random.key(1), (8 * 16,))  # (128,): 16 per device

        def by_hand_and_library(g):  # g: (16,), this device's gradient
            return ring_all_reduce(g, "data"), jax.lax.psum(g, "data")

        both = jax.shard_map(
            by_hand_and_library, mesh=mesh8, in_specs=P("data"), out_specs=P("data")
        )
        ours, library = jax.jit(both)(grads)
        np.testing.assert_allclose(ours, library, rtol=1e-5, atol=1e-5)
        print("ring all-reduce on 8 devices equals psum")
    except NotImplementedError:
        print("solve the exercise above first")

# %% [markdown]
# Done. Chapter 9's [JAX notebook](../../chapters/09-performance-distributed/in-jax.ipynb)
# trains with exercise 1's kind of sharded batch under `jax.jit`, where the compiler inserts
# the all-reduce (section 9.3), splits a weight with `shard_map` (section 9.5), and counts what
# each worker of a ring all-reduce sends (section 9.5).
