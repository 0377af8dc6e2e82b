"""The small Flax NNX models of the early chapters."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
from flax import nnx

__all__ = ["MLP", "count_params"]


class MLP(nnx.Module):
    """A multi-layer perceptron: flatten, then Linear-ReLU blocks, then a Linear head.

    ``MLP(784, (256,), 10, rngs=nnx.Rngs(0))`` maps images ``(B, 28, 28)`` to logits ``(B, 10)``.
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        *,
        rngs: nnx.Rngs,
    ) -> None:
        widths = [in_features, *hidden]
        self.hidden = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(widths)]
        )
        self.head = nnx.Linear(widths[-1], out_features, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)  # (B, ...) -> (B, in_features)
        for layer in self.hidden:
            x = nnx.relu(layer(x))
        return self.head(x)  # (B, out_features) logits


def count_params(model: nnx.Module) -> int:
    """Number of trainable scalars (``nnx.Param`` leaves) in ``model``."""
    return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
