"""Lab 4's known mistakes: the shared hints that name them, and the values some of them give.

:data:`HINTS` is the table both frameworks share (the adapters add theirs and word the
framework-dependent ones). :func:`per_example_norms` and :func:`shard_grads` compute, from the
closed-form gradient of the linear softmax classifier (``e = softmax(x W + b) - onehot(y)``,
one example's gradient ``(outer(x, e), e)``), the right answers of exercises 1 and 4b and what
each known mistake returns instead, so that a check recognises a mistake from its value alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from helpers.labs.kit import Hints

__all__ = ["DP_MISTAKES", "HINTS", "NORM_MISTAKES", "per_example_norms", "shard_grads"]

# Known mistakes and what to change; the adapters word the framework-dependent ones.
# tests/labs/test_lab04.py proves that each hint is produced by a mistake in its table.
HINTS = Hints(
    {
        "per_batch": "one norm per example: the gradient of each example's own loss (map "
        "over the batch axis of x and y, not over params), then a norm per example, shape "
        "(B,); the gradient of the batch's mean loss mixes the examples together",
        "whole_batch": "one norm per example, shape (B,): sum the squares over every axis of "
        "each gradient except the first, the batch axis (g.reshape(B, -1) then a sum over "
        "axis 1); summing over the whole (B, ...) array gives one number for the batch",
        "squared": "take the square root: the norm is the square root of the sum of the "
        "squares of every entry of every gradient",
        "one_leaf": "the norm covers every parameter: add the squares of the gradients of "
        "W and of b for each example, then take the square root",
        "sum_of_norms": "one norm over all the parameters: add the squares of W's and b's "
        "gradients, then take one square root; the sum of the two norms is larger",
        "divided_by_b": "do not divide by the batch size: each example's gradient is that of "
        "its own loss (a batch of one), not its share of the batch's mean loss",
        "norms_differ": "return a vector (B,): for each example, the gradient of its own "
        "loss (a batch of one) with respect to W and b, then the square root of the sum of "
        "the squares of all its entries",
        "seed_ignored": "build the layers from the `seed` argument, not from a fixed seed",
        "mlp_differs": "seed once from `seed`, then create the three Linear layers in order "
        "(4 → 16, 16 → 16, 16 → 3), with a ReLU after each of the first two and nothing "
        "after the last: the check builds its network that way and compares the outputs",
        "extra_params": "create exactly the three Linear layers (4 → 16, 16 → 16, 16 → 3): a "
        "layer the forward pass does not use still adds parameters, which an optimizer would "
        "update for nothing",
        "no_activation": "put a ReLU after each hidden layer (not after the output layer)",
        "softmax_output": "return the logits, the last layer's output as it is: no softmax "
        "or log-softmax after it (the loss applies the log-softmax itself)",
        "loss_after_update": "return the loss computed before the update, the one whose "
        "gradient the step used",
        "sum_loss": "the loss is the mean over the batch: a sum makes the gradient B "
        "times larger",
        "loss_differs": "return the mean cross-entropy of model(x) against y, computed "
        "before the update, and take exactly one step with the optimizer you are given "
        "(do not create a new one)",
        "sum_shards": "average the shards' gradients: their sum is n_shards times the "
        "full-batch gradient",
        "not_averaged": "return one gradient per parameter, with the parameter's shape: "
        "the mean over the shards, not the stack of them",
        "shard_alike": "cut x and y alike, so that each example keeps its label: "
        "x.reshape(n_shards, -1, D) and y.reshape(n_shards, -1), shard i holding rows "
        "i*B/n to (i+1)*B/n - 1 of both (y.reshape(-1, n_shards).T, or every n-th row of x "
        "with contiguous labels, pairs the examples with other labels)",
        "dp_differs": "cut x and y into n_shards contiguous shards, take each shard's "
        "gradient of loss_fn (the mean over its examples), and average the n_shards "
        "gradients: with equal shards that is the full batch's gradient",
    }
)

# Exercise 1's mistakes recognised from their values, in the order the check tries them.
NORM_MISTAKES = (
    ("per_batch", "per_batch"),
    ("squared", "squared"),
    ("one_leaf", "one_leaf"),
    ("b_only", "one_leaf"),
    ("sum_of_norms", "sum_of_norms"),
    ("divided_by_b", "divided_by_b"),
    ("wrt_x", "wrt_x"),
    ("labels_not_mapped", "map_labels"),
)

# Exercise 4b's mistakes recognised from their values (shard_grads' names), with their hints.
DP_MISTAKES = (
    ("sum_shards", "sum_shards"),
    ("not_averaged", "not_averaged"),
    ("y_interleaved", "shard_alike"),
    ("x_interleaved", "shard_alike"),
)


def _softmax(case: Mapping[str, np.ndarray]) -> np.ndarray:
    """``softmax(x W + b)``, ``(B, C)`` in float64."""
    x, W, b = (np.asarray(case[k], np.float64) for k in ("x", "W", "b"))
    z = x @ W + b
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def _errors(case: Mapping[str, np.ndarray]) -> np.ndarray:
    """``softmax(x W + b) - onehot(y)``, ``(B, C)`` in float64: dloss/dlogits per example."""
    return _softmax(case) - np.eye(case["W"].shape[1])[case["y"]]


def per_example_norms(case: Mapping[str, np.ndarray], mistake: str = "") -> np.ndarray:
    """The per-example gradient norms ``(B,)``, or what ``mistake`` gives instead.

    ``mistake`` is one of the first names of :data:`NORM_MISTAKES`, or ``"whole_batch"`` (one
    number: the norm of all the per-example gradients together).
    """
    e = _errors(case)
    x = np.asarray(case["x"], np.float64)
    sq_x, sq_e = (x**2).sum(1), (e**2).sum(1)  # (B,) each
    norms = np.sqrt((sq_x + 1) * sq_e)
    if (
        mistake == "per_batch"
    ):  # the norm of the batch's mean gradient, for every example
        gW, gb = x.T @ e / len(x), e.mean(0)
        return np.full(len(x), np.sqrt((gW**2).sum() + (gb**2).sum()))
    if mistake == "whole_batch":
        return np.sqrt((norms**2).sum())
    if mistake == "squared":
        return norms**2
    if mistake == "one_leaf":  # W's gradient only
        return np.sqrt(sq_x * sq_e)
    if mistake == "b_only":
        return np.sqrt(sq_e)
    if mistake == "sum_of_norms":  # |g_W| + |g_b|
        return np.sqrt(sq_x * sq_e) + np.sqrt(sq_e)
    if mistake == "divided_by_b":
        return norms / len(x)
    if mistake == "wrt_x":  # the gradient with respect to x_i: W e_i
        return np.linalg.norm(e @ np.asarray(case["W"], np.float64).T, axis=1)
    if (
        mistake == "labels_not_mapped"
    ):  # x_i against every label: e_i = p_i - mean onehot
        onehots = np.eye(case["W"].shape[1])[case["y"]]
        wrong = _softmax(case) - onehots.mean(0)
        return np.sqrt((sq_x + 1) * (wrong**2).sum(1))
    return norms


def shard_grads(
    case: Mapping[str, np.ndarray], n_shards: int, mistake: str = ""
) -> dict[str, np.ndarray]:
    """The full-batch mean gradient ``{"W", "b"}``, or what ``mistake`` gives instead.

    ``mistake``: "not_averaged" (the stack of the shards' gradients), "sum_shards", or a
    pairing of x's rows with other labels: "y_interleaved" (contiguous shards of x, every
    n-th label, ``y.reshape(-1, n).T``), "x_interleaved" (every n-th row of x, contiguous
    labels).
    """
    y, n = np.asarray(case["y"]), n_shards
    if mistake == "y_interleaved":  # row i*k + j gets label y[i + j*n]
        return shard_grads({**case, "y": y.reshape(-1, n).T.reshape(-1)}, n)
    if mistake == "x_interleaved":  # row i + j*n gets label y[i*k + j]
        return shard_grads({**case, "y": y.reshape(n, -1).T.reshape(-1)}, n)
    e = _errors(case)
    x = np.asarray(case["x"], np.float64)
    per_shard = [
        (xs.T @ es / len(xs), es.mean(0))
        for xs, es in zip(np.split(x, n_shards), np.split(e, n_shards), strict=True)
    ]
    stacked = {
        "W": np.stack([g[0] for g in per_shard]),
        "b": np.stack([g[1] for g in per_shard]),
    }
    if mistake == "not_averaged":
        return stacked
    if mistake == "sum_shards":
        return {k: v.sum(0) for k, v in stacked.items()}
    return {"W": x.T @ e / len(x), "b": e.mean(0)}
