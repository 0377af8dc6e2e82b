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
# # Lab 9: data parallelism by hand and with DDP in PyTorch
#
# Five exercises on chapter 9: the share of a batch each rank reads, the block of a weight
# each rank holds, the all-reduce that averages gradients, a DDP worker whose training
# equals one process, and the ring all-reduce itself from point-to-point messages. Each
# exercise is a function. Replace the line
# `raise NotImplementedError(...)` with your code, run the cell, then run the check below it:
# a check prints ✅ when your function is right, or ❌ with what it expected and a hint.
#
# The checks of exercises 3 to 5 start two processes or more (forked from this notebook,
# joined by gloo on 127.0.0.1) that run your function, and compare with one process (the
# ring's check also records what each process sends); they never look at your code.
# After exercise 5's check, a demo times your ring against gloo's `dist.all_reduce`.
#
# The solved lab: [Lab 9 solutions in PyTorch](../../solutions/09-performance-distributed/in-pytorch.ipynb).

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

# %%
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from helpers import torch as H
from helpers.distributed import toy_data

# %% [markdown]
# ## Exercise 1: each rank's share of a batch
#
# `order` is one epoch's shuffled indices, the same on every rank. Step `step` trains on the
# global batch `order[step * batch_size : (step + 1) * batch_size]`. Return the indices rank
# `rank` of `world_size` reads: every `world_size`-th index of that batch, starting at
# `rank` (what `DistributedSampler` gives each rank). Together the ranks must read the batch
# exactly once.


# %%
def shard_batch(order, step, rank, world_size, batch_size):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab09.check_shard_batch(shard_batch)

# %% [markdown]
# ## Exercise 2: each rank's block of a weight
#
# Tensor parallelism {cite}`shoeybi2019megatron` splits a layer over ranks. An `nn.Linear` weight has shape
# `(out_features, in_features)`; split its *output* features evenly, so rank `rank` computes
# `out_features / world_size` of the layer's outputs from the whole input. Return that
# rank's block of rows (a view is fine).


# %%
def shard_weight(weight, rank, world_size):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab09.check_shard_weight(shard_weight)

# %% [markdown]
# ## Exercise 3: average the gradients by hand
#
# After `backward` on its share, each rank's gradients (`grads`, a list of tensors, one per
# parameter) are those of *its* mean loss. Return the list of their means over the
# `world_size` ranks, computed with `dist.all_reduce` (the process group exists when the
# check calls you; `all_reduce` works in place, so reduce a copy). This is what DDP
# {cite}`li2020pytorch` does for you, in buckets, during `backward`.


# %%
def average_gradients(grads, world_size):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab09.check_average_gradients(average_gradients)

# %% [markdown]
# ## Exercise 4: a DDP worker
#
# Write the worker each rank runs (the process group exists): build the model with
# `H.parallel.make_model(sizes)`, wrap it in `DistributedDataParallel`, read this rank's
# share of every global batch of `toy_data(sizes)` (`sizes.batch_size` is the global batch)
# through a `DistributedSampler` (`shuffle=True, seed=sizes.seed, drop_last=True`, and
# `set_epoch` each epoch), and take `sizes.steps` SGD steps with learning rate
# `sizes.learning_rate` on the mean cross-entropy. The `DataLoader` reads
# `sizes.batch_size // world_size` rows per step; keep going across epochs until `sizes.steps`
# steps are taken. Return `(model, losses)`, the losses a list of floats. The check asserts
# that two ranks end where one process ends.


# %%
def train_ddp(rank, world_size, sizes):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab09.check_data_parallel(train_ddp)

# %% [markdown]
# ## Exercise 5: ring all-reduce by hand
#
# Chapter 9's ring all-reduce {cite}`patarasuk2009bandwidth`, written with point-to-point
# messages only. `tensor` is this
# rank's 1-D float32 tensor of $N$ numbers, $N$ a multiple of the number of ranks
# $W$ (`world_size`); return a new tensor holding the sum of every rank's `tensor`, on every
# rank, and leave `tensor` as it was. Communicate only with `dist.isend`/`dist.irecv` (or
# `dist.send`/`dist.recv`), no `dist.all_reduce`, `reduce_scatter`, `all_gather` or
# `broadcast`. Every rank sends and receives at each step: post the `isend` first, then
# `recv`, then `wait` on the send, or two blocking sends can wait for each other forever.
# The algorithm:
#
# 1. split the array into $W$ chunks of $N/W$ numbers;
# 2. reduce-scatter, steps $s = 0, \dots, W-2$: worker $i$ sends chunk $(i-s) \bmod W$ to
#    worker $(i+1) \bmod W$ and adds the chunk it receives into its chunk $(i-s-1) \bmod W$;
#    after these $W-1$ steps worker $i$ holds chunk $(i+1) \bmod W$ summed over all workers;
# 3. all-gather, steps $s = 0, \dots, W-2$: worker $i$ sends its summed chunk
#    $(i+1-s) \bmod W$ to worker $(i+1) \bmod W$ and stores the chunk it receives, already
#    summed, in place of its chunk $(i-s) \bmod W$.
#
# The check runs your function in 2 and 4 processes and compares with the sum that
# `dist.all_reduce` returns; it also records what each rank sends: $2(W-1)$ messages of
# $N/W$ numbers, always to the same neighbour: the chapter's $2N(W-1)/W$ sent by each worker.


# %%
def ring_all_reduce(tensor, rank, world_size):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab09.check_ring_all_reduce(ring_all_reduce)

# %% [markdown]
# How fast is your ring? Below, it runs in 2 and 4 forked processes against gloo's
# `dist.all_reduce` (on a copy, since yours leaves its input as it was), in turn, each call
# after a barrier, on $N$ float32 numbers per rank; the table shows the slowest rank's median
# milliseconds per call and the bytes each rank of your ring sends, $4 \cdot 2N(W-1)/W$,
# chapter 9's count. The cell asserts that every rank's sum equals gloo's. The sizes are
# `H.sizes("lab09_ring_timing")`, in helpers/scale/training.py.


# %%
def library_all_reduce(tensor, rank, world_size):
    total = tensor.clone()  # (N,): dist.all_reduce sums in place
    dist.all_reduce(total)
    return total


try:  # runs once the exercise above is solved
    sizes = H.sizes("lab09_ring_timing")
    rows = [
        f"{'W':>2} {'N':>9} {'ring ms':>8} {'all_reduce ms':>13} {'ring bytes sent':>15}"
    ]
    for world in sizes.world_sizes:
        # all_reduce first: each rank compares the ring's result with it
        timed = H.parallel.time_ranks(
            {"all_reduce": library_all_reduce, "ring": ring_all_reduce},
            world,
            sizes.numels,
            calls=sizes.calls,
            warmup=sizes.warmup,
        )
        for n, t in timed.items():
            assert t["ring"].max_diff.max() < 1e-4, t["ring"].max_diff  # same sums
            ring_ms, library_ms = t["ring"].ms.max(), t["all_reduce"].ms.max()
            sent = 4 * 2 * n * (world - 1) // world  # bytes
            rows.append(
                f"{world:>2} {n:>9,} {ring_ms:>8.2f} {library_ms:>13.2f} {sent:>15,}"
            )
    print("\n".join(rows))
except NotImplementedError:
    print("solve the exercise above first")

# %% [markdown]
# Chapter 9 counts bytes; a time also pays for every message. In the usual model of a
# collective's cost {cite}`thakur2005optimization`, a latency $\alpha$ per message, $\beta$
# seconds per byte sent and $\gamma$ per byte added, your ring takes $W-1$ steps each way, each
# a message of $N/W$ numbers:
#
# $$T_\text{ring} \approx 2(W-1)\,\alpha + \frac{2(W-1)}{W}\,4N\,\beta
# + \frac{W-1}{W}\,4N\,\gamma .$$
#
# For small $N$ the first term is nearly all of it (latency-bound): the time hardly changes
# with $N$ (the run-to-run noise is larger than the growth), and 4 processes pay for 6
# messages where 2 pay for 2 (on a 2-core machine, 4 processes also wait for a core). For
# large $N$ the other terms take over (bandwidth-bound): the time grows with the bytes in the
# last column.
#
# gloo's all-reduce is a ring too. PyTorch's gloo backend
# ([`ProcessGroupGloo.cpp`](https://github.com/pytorch/pytorch/blob/main/torch/csrc/distributed/c10d/ProcessGroupGloo.cpp))
# calls gloo's `allreduce` without choosing an algorithm, and gloo then runs
# [its ring](https://github.com/pytorch/gloo/blob/main/gloo/allreduce.cc), which sends the
# same $2N(W-1)/W$ numbers per rank, but in at least twice as many messages: it cuts each
# chunk into segments, so that sending one overlaps adding another, with no Python between
# messages. (Newer gloo, as on that page, can send ranks on one machine through shared memory
# instead; the gloo built into torch 2.14.1 has no such path, so these ranks get the ring.) By
# the model gloo pays more latency than yours; where it is still faster at small
# $N$, each of your messages costs far more than the wire's $\alpha$: a separate blocking
# call that has to wake its process, on cores the ranks share. At large $N$, the overlap is
# what yours lacks. The algorithm is the same. These timings come from shared processor cores
# and vary from run to run, so the cell asserts your sums, not which is faster.
#
# Chapter 9's [PyTorch notebook](../../chapters/09-performance-distributed/in-pytorch.ipynb)
# runs a DDP worker like exercise 4's on two processes (section 9.3) and on two "nodes" joined
# by `torchrun` (section 9.4), and counts what each rank of a ring all-reduce sends (section
# 9.5).
