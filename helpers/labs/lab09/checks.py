"""Lab 9 self-checks shared by both frameworks, written once on numpy answers.

Exercises (the same names in both frameworks, each in its framework's terms):

* ``shard_batch``: each worker's share of a batch (PyTorch: the indices a rank reads, as a
  ``DistributedSampler`` gives them; JAX: the batch placed on a mesh, rows split over ``"data"``);
* ``shard_weight``: one layer's weight split over workers by output features (PyTorch: the
  rank's block of an ``nn.Linear`` weight; JAX: the weight placed on a mesh, columns split);
* ``average_gradients``: the all-reduce that makes every worker's gradient the mean;
* ``data_parallel``: training that equals one process on the whole batch (PyTorch: a DDP
  worker; JAX: a data-parallel SGD step with a collective over ``"data"``).

The known mistakes the hints name: both ranks reading the same rows, gradients summed or
averaged twice or not exchanged at all, a batch split on the feature axis, a weight split on
the wrong axis or not at all.
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
        "drift apart: all-reduce the gradients (their mean) before the update",
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
}


def compare_share(c: Checker, shares: list[np.ndarray], batch: np.ndarray) -> None:
    """Every rank's indices: equal sizes, disjoint, together exactly ``batch``."""
    world = len(shares)
    size = len(batch) // world
    for rank, share in enumerate(shares):
        if share.ndim != 1:
            raise c.fail(
                f"rank {rank}'s share has shape {share.shape}, expected ({size},)",
                c.hint("step_offset"),
            )
    if all(np.array_equal(np.sort(s), np.sort(shares[0])) for s in shares[1:]):
        raise c.fail(
            f"all {world} ranks got the same indices {shares[0][:6].tolist()}...",
            c.hint("same_data"),
        )
    for rank, share in enumerate(shares):
        c.expect(
            len(share) == size,
            f"rank {rank} got {len(share)} indices, expected {size} "
            f"(batch {len(batch)} / {world} ranks)",
            c.hint("step_offset"),
        )
    together = np.sort(np.concatenate(shares))
    c.expect(
        np.array_equal(together, np.sort(batch)),
        f"together the ranks read {together[:6].tolist()}..., expected this step's batch "
        f"{np.sort(batch)[:6].tolist()}...",
        c.hint("step_offset"),
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
