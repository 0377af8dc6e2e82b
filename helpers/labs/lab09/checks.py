"""Lab 9 self-checks shared by both frameworks, written once on numpy answers.

Exercises (the same names in both frameworks, each in its framework's terms):

* ``shard_batch``: each worker's share of a batch (PyTorch: the indices a rank reads, as a
  ``DistributedSampler`` gives them; JAX: the batch placed on a mesh, rows split over ``"data"``);
* ``shard_weight``: one layer's weight split over workers by output features (PyTorch: the
  rank's block of an ``nn.Linear`` weight; JAX: the weight placed on a mesh, columns split);
* ``average_gradients``: the all-reduce that makes every worker's gradient the mean;
* ``data_parallel``: training that equals one process on the whole batch (PyTorch: a DDP
  worker; JAX: a data-parallel SGD step with a collective over ``"data"``);
* ``ring_all_reduce``: the sum over workers written by hand as a ring of point-to-point
  messages (its checks and hints live in :mod:`helpers.labs.lab09.ring`).

The known mistakes the hints name: both ranks reading the same rows, gradients summed or
averaged twice or not exchanged at all, a batch split on the feature axis, a weight split on
the wrong axis or not at all, a converted dtype, and (per framework) the mistakes of each
exercise's own API: a contiguous share instead of every world_size-th index, an input written
in place, a DDP run that differs in its shuffle, steps, learning rate, loss or optimizer, its
epoch numbers or the losses it records, a sampler given (rank, world_size), sends that all
wait for their receivers; a PartitionSpec naming an axis the mesh lacks, a step without its
learning rate, numpy inside the workers' function, the ring's W taken from the devices.
"""

from __future__ import annotations

import numpy as np

from helpers.labs.kit import Checker, Hints
from helpers.scale import DataParallelSizes

__all__ = [
    "HINTS",
    "JAX_HINTS",
    "LAB_SIZES",
    "TORCH_HINTS",
    "WORLD_SIZES",
    "compare_share",
    "softmax_regression_grads",
]

# The small problem the data-parallel checks train (every process builds the same).
LAB_SIZES = DataParallelSizes(
    examples=48,
    features=6,
    hidden=8,
    classes=3,
    batch_size=12,
    steps=6,
    learning_rate=0.5,
    seed=9,
)
WORLD_SIZES = (2, 3, 4)

HINTS = Hints(
    {
        "summed": "the gradients were summed over the workers, not averaged: divide by "
        "the number of workers after the all-reduce (or use a mean)",
        "averaged_twice": "the update is 1/world_size of the right one: the gradients were "
        "averaged twice. The all-reduce already averages (DDP does it in backward): do "
        "not divide the loss or the gradients by world_size again",
        "no_allreduce": "each worker kept its own gradient, so the copies of the model "
        "drift apart: all-reduce the gradients (their mean) before the update (with "
        "async_op=True, wait() on the work before reading the result)",
        "replicated": "the array is not split: every worker holds all of it. Name the mesh "
        "axis in the PartitionSpec (or take this rank's block)",
        "weight_axis": "the weight is split along its input features: split the output "
        "features instead, so each worker computes a slice of the layer's outputs",
    }
)

# Mistakes only one framework's exercises can make.
TORCH_HINTS = {
    "same_data": "the workers read the same rows: give each worker its own share of "
    "every batch (a DistributedSampler in PyTorch, indices[rank::world_size] of the "
    "step's batch), so that together they cover the batch exactly once",
    "step_offset": "step t's batch is positions t * batch_size ... (t + 1) * "
    "batch_size of the order (batch_size is the global batch); the rank's share is "
    "every world_size-th of those, starting at rank",
    "block": "a block is a run of consecutive rows: rank r of W gets rows r * n ... "
    "(r + 1) * n with n = out_features / W (weight.chunk(W)[r]), not every W-th row",
    "global_batch": "each rank's DataLoader must load its share of the global batch, "
    "sizes.batch_size // world_size rows: with the whole global batch on every rank, "
    "each step trains on world_size times the batch",
    "set_epoch": "call sampler.set_epoch(epoch) before each epoch: without it every "
    "epoch repeats the first epoch's order, and the run differs from one process",
    "strided": "each rank reads every world_size-th index of the step's batch, starting at "
    "rank (batch[rank::world_size], as DistributedSampler deals them), not a contiguous "
    "block of it",
    "positions": "return the dataset indices that order holds (order[...]), not positions "
    "in the batch or in order",
    "index_dtype": "return integer indices, as order holds them (a LongTensor): slice order, "
    "do not convert it to floats",
    "share_shape": "return a 1-D tensor of this rank's indices, (batch_size / world_size,), "
    "as slicing order gives it: do not add or stack axes",
    "mutated_input": "your function wrote into its input in place: slice it (a view is fine) "
    "or reduce a copy (g.clone()), and leave the caller's tensors as they were",
    "dtype": "keep the input's dtype, float32: .double(), .half() or a NumPy round trip "
    "changes it",
    "block_rows": "rank r's block is rows r * n ... (r + 1) * n of the weight, as they are, "
    "shape (n, in_features) with n = out_features // world_size = weight.shape[0] // "
    "world_size (weight.chunk(world_size)[r])",
    "len_grads": "divide the sum by world_size, the number of ranks, not by len(grads), the "
    "number of parameters",
    "allreduce_mean": "each rank must return the mean of every rank's gradient: "
    "dist.all_reduce(copy, op=dist.ReduceOp.SUM), then divide by world_size",
    "losses": "return the losses as a list of sizes.steps Python floats, one per step "
    "(loss.item())",
    "no_ddp": "the ranks' models drifted apart: wrap the model in "
    "DistributedDataParallel(model), whose backward averages the gradients over the ranks",
    "model_first": "return (model, losses): the model first, then the list of losses",
    "shuffle": "the sampler must shuffle (shuffle=True, the default of DistributedSampler): "
    "one process reads the batches in a shuffled order",
    "seed": "pass seed=sizes.seed to the DistributedSampler: its default seed 0 shuffles "
    "differently from the one process it is compared with",
    "steps": "take exactly sizes.steps SGD steps (stop inside the epoch loop when "
    "len(losses) == sizes.steps), no more and no fewer",
    "lr_scaled": "use lr=sizes.learning_rate as it is: DDP averages the gradients, so they "
    "equal one process's and need no scaled learning rate",
    "loss_sum": "use the mean cross-entropy (F.cross_entropy's default reduction), not a "
    "sum: the rank's loss is the mean over its share",
    "zero_grad": "call opt.zero_grad() every step: without it backward adds each step's "
    "gradients to the last ones",
    "plain_sgd": "plain SGD: torch.optim.SGD(model.parameters(), lr=sizes.learning_rate), "
    "without momentum or weight decay",
    "untrained": "the returned model has its initial weights: return the model you trained "
    "(the DDP wrapper or its .module)",
    "loss_values": "record each step's loss as it trains: loss.item() of the loss you call "
    "backward on, before opt.step() (the ranks' losses then average to one process's loss "
    "on the global batch)",
    "model_dtype": "keep the model in float32, as H.parallel.make_model builds it: "
    ".double() changes every parameter's dtype",
    "epoch_offset": "DistributedSampler shuffles epoch e with seed + e: pass "
    "seed=sizes.seed and call sampler.set_epoch(epoch) with epoch = 0, 1, 2, ... (not "
    "epoch + 1)",
    "fresh_iter": "a new iter(loader) each step starts the epoch over, so every step trains "
    "on its first batch: loop for xb, yb in loader (set_epoch before each epoch) and count "
    "the steps",
    "sampler_args": "DistributedSampler(dataset, num_replicas, rank, ...): the number of "
    "ranks comes before the rank (or pass num_replicas=world_size, rank=rank by name)",
    "grads_list": "return one averaged tensor per gradient, in grads' order: a list as long "
    "as grads",
    "ring_deadlock": "dist.send waits until the receiver calls recv: if every rank sends "
    "first, they all wait forever. Post the send with dist.isend, then dist.recv, then "
    "wait() on the send",
    "ddp_recipe": "build the model with H.parallel.make_model(sizes), wrap it in DDP, read "
    "the rank's share through DistributedSampler(data, world_size, rank, shuffle=True, "
    "seed=sizes.seed, drop_last=True) with batch_size // world_size rows, set_epoch each "
    "epoch, and take sizes.steps SGD steps on the mean cross-entropy",
}
JAX_HINTS = {
    "feature_axis": "the batch is split along the feature axis, so every device holds "
    "a slice of every example: split axis 0 (the rows), PartitionSpec('data')",
    "mesh_axis": "split the columns over the mesh axis 'model' and keep the rows whole: "
    "'data' is the batch's axis, and every worker along it needs all of the weight's "
    "input rows. PartitionSpec(None, 'model')",
    "axis_name": "the collective names an axis that does not exist here: the workers' "
    "axis is called 'data', as in jax.lax.pmean(grads, 'data')",
    "local_mean": "that is a mean over each gradient's own entries, on one worker: "
    "average across the workers with a collective, jax.lax.pmean(grads, 'data'), which "
    "keeps every gradient's shape",
    "hardcoded_world": "the number of workers is not always 8 (the check uses 2, 3 and "
    "4): jax.lax.pmean averages over however many there are (or divide a psum by "
    "jax.lax.psum(1, 'data'))",
    "ascent": "the step went uphill: gradient descent subtracts, params - lr * grad",
    "mesh_axis_name": "the PartitionSpec names an axis this mesh does not have: its axes "
    "are mesh.axis_names ('data' for a batch's rows, 'model' for a weight's columns)",
    "spec_rank": "the PartitionSpec has more entries than the array has axes: one entry "
    "per axis, from axis 0 (PartitionSpec('data') splits axis 0 and keeps the rest whole)",
    "dtype": "keep the input's dtype, float32: jax.device_put, jax.lax.pmean and ppermute "
    "keep it, an .astype(...) changes it",
    "place_values": "placing an array must not change its values: "
    "jax.device_put(x, NamedSharding(mesh, spec)) only moves them to the devices",
    "len_grads": "divide the psum by the number of workers, jax.lax.psum(1, 'data'), not "
    "by len(grads), the number of leaves (or use jax.lax.pmean)",
    "pmean_tree": "average every leaf across the workers, jax.lax.pmean(grads, 'data'): "
    "each worker then holds the mean of all workers' gradients",
    "no_lr": "the step must scale the gradient by the learning rate: params - lr * grad",
    "returned_grads": "return the new parameters, params - lr * grad for every leaf, not "
    "the gradients",
    "device_put_sharding": "jax.device_put takes a sharding, not the mesh: "
    "jax.device_put(x, NamedSharding(mesh, PartitionSpec(...)))",
    "spec_duplicate": "a mesh axis can split one array axis only: name 'data' once, for "
    "the axis it splits (PartitionSpec('data') for a batch's rows)",
    "traced_numpy": "inside the workers' function the arrays are traced: compute with "
    "jax.numpy and jax.lax, not numpy (np.asarray, np.mean, ...)",
    "pytree": "return the same pytree you were given, a dict {'w': ..., 'b': ...}: not a "
    "tuple or list (no loss next to it)",
    "ring_world": "W, the number of workers, is jax.lax.axis_size(axis_name) (2, 3 or 4 in "
    "the check), not jax.device_count() or a fixed number: chunks = x.reshape(W, -1), and "
    "every worker sends 2 (W - 1) chunks",
    "step_recipe": "take jax.grad(loss_fn)(params, x, y) on this worker's share, average "
    "it across the workers with jax.lax.pmean(grads, 'data'), then params - lr * grad for "
    "every leaf (jax.tree.map)",
}


def compare_share(
    c: Checker, shares: list[np.ndarray], batch: np.ndarray, start: int
) -> None:
    """Every rank's indices: 1-D integers, equal sizes, disjoint, together exactly ``batch``,
    rank ``r`` holding ``batch[r::world]`` (in any order). ``start`` is the batch's first
    position in the epoch's order (the positions mistake returns positions, not indices)."""
    world = len(shares)
    size = len(batch) // world
    for rank, share in enumerate(shares):
        if share.ndim != 1:
            raise c.fail(
                f"rank {rank}'s share has shape {share.shape}, expected ({size},)",
                c.hint("share_shape"),
            )
        if share.size and not np.issubdtype(share.dtype, np.integer):
            raise c.fail(
                f"rank {rank}'s indices have dtype {share.dtype}, expected int64",
                c.hint("index_dtype"),
            )
    if all(np.array_equal(np.sort(s), np.sort(shares[0])) for s in shares[1:]):
        raise c.fail(
            f"all {world} ranks got the same indices {shares[0][:6].tolist()}...",
            c.hint("same_data"),
        )
    together = np.sort(np.concatenate(shares))
    for positions in (np.arange(len(batch)), start + np.arange(len(batch))):
        if np.array_equal(together, positions) and not np.array_equal(
            positions, np.sort(batch)
        ):
            raise c.fail(
                f"together the ranks read {together[:6].tolist()}..., positions; this "
                f"step's batch holds the indices {np.sort(batch)[:6].tolist()}...",
                c.hint("positions"),
            )
    for rank, share in enumerate(shares):
        c.expect(
            len(share) == size,
            f"rank {rank} got {len(share)} indices, expected {size} "
            f"(batch {len(batch)} / {world} ranks)",
            c.hint("step_offset"),
        )
    c.expect(
        np.array_equal(together, np.sort(batch)),
        f"together the ranks read {together[:6].tolist()}..., expected this step's batch "
        f"{np.sort(batch)[:6].tolist()}...",
        c.hint("step_offset"),
    )
    for rank, share in enumerate(shares):
        c.expect(
            np.array_equal(np.sort(share), np.sort(batch[rank::world])),
            f"rank {rank} read {share.tolist()}, expected {batch[rank::world].tolist()} "
            f"(every {world}th index of the batch, from position {rank})",
            c.hint("strided"),
        )


def softmax_regression_grads(
    w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of the mean cross-entropy of ``softmax(x w + b)``: ``(dw, db)``, float64.

    ``w`` ``(D, C)``, ``b`` ``(C,)``, ``x`` ``(B, D)``, ``y`` ``int (B,)``.
    """
    logits = x @ w + b
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    p /= len(y)
    return x.T @ p, p.sum(axis=0)
