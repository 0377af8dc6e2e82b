"""The small Flax NNX models of the early chapters."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
from flax import nnx

from helpers.scale import cnn_feature_side

__all__ = ["CNN", "MLP", "count_params"]


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


class CNN(nnx.Module):
    """A small convolutional classifier for MNIST-sized images (chapter 3 onwards).

    Per entry of ``channels``: a 3x3 convolution ("SAME" padding), a 2x2 max pool that halves
    height and width, BatchNorm and ReLU (pooling first leaves BatchNorm and ReLU a quarter of
    the pixels); then flatten, a Linear-ReLU of width ``hidden``,
    Dropout with rate ``dropout`` (training only) and a Linear head. Channels last, the layout
    XLA's CPU convolutions prefer. With the defaults::

        (B, 28, 28, 1)            images, channels last (a (B, 28, 28) batch gets C=1 added)
        -> (B, 14, 14, 16)        conv 1->16, pool, BN, ReLU
        -> (B, 7, 7, 32)          conv 16->32, pool, BN, ReLU
        -> (B, 1568)              flatten
        -> (B, 128) -> (B, 10)    Linear-ReLU, Dropout, Linear: logits

    BatchNorm and Dropout behave differently in ``model.train()`` and ``model.eval()``: call
    ``model.eval()`` before evaluating. BatchNorm uses PyTorch's constants (momentum 0.9 here
    is PyTorch's 0.1; epsilon 1e-5). Raises ``ValueError`` if ``image_size`` is not divisible
    by ``2 ** len(channels)`` or ``dropout`` is not in [0, 1).
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32),
        hidden: int = 128,
        out_features: int = 10,
        *,
        image_size: int = 28,
        dropout: float = 0.25,
        rngs: nnx.Rngs,
    ) -> None:
        side = cnn_feature_side(channels, image_size, dropout)
        widths = [in_channels, *channels]
        self.convs = nnx.List(
            [
                nnx.Conv(
                    a, b, kernel_size=(3, 3), padding="SAME", use_bias=False, rngs=rngs
                )
                for a, b in itertools.pairwise(widths)
            ]
        )
        self.norms = nnx.List(
            [nnx.BatchNorm(b, momentum=0.9, epsilon=1e-5, rngs=rngs) for b in channels]
        )
        self.hidden = nnx.Linear(channels[-1] * side * side, hidden, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.out = nnx.Linear(hidden, out_features, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim == 3:
            x = x[..., None]  # (B, H, W) -> (B, H, W, 1)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = conv(x)  # (B, H, W, C)
            b, h, w, c = x.shape
            # 2x2 max pool as reshape + max: faster on XLA's CPU than a windowed reduce.
            x = x.reshape(b, h // 2, 2, w // 2, 2, c).max(
                axis=(2, 4)
            )  # (B, H/2, W/2, C)
            x = nnx.relu(norm(x))
        x = x.reshape(x.shape[0], -1)  # (B, s, s, C) -> (B, s*s*C)
        x = self.dropout(nnx.relu(self.hidden(x)))
        return self.out(x)  # (B, out_features) logits


def count_params(model: nnx.Module) -> int:
    """Number of trainable scalars (``nnx.Param`` leaves) in ``model``."""
    return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
