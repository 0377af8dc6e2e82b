"""Text classifiers in JAX (chapter 6): masks, pooling, a loader by length, three models.

A batch is ids ``int32 (B, T)`` padded with ``PAD`` (0) after each review; every model derives
its padding mask from the ids, so ``H.fit`` and ``H.evaluate`` train them unchanged. Widths are
rounded up to a power of two by the loader, so ``jit`` compiles once per width, not per batch.
The framework-free pipeline is :mod:`helpers.data.text`; the PyTorch twin is
:mod:`helpers.torch.text`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from helpers.data.text import PAD, LengthBuckets
from helpers.jax.runtime import default_device

__all__ = [
    "BagOfNgrams",
    "CnnLstm",
    "TextLoader",
    "TransformerClassifier",
    "masked_max",
    "masked_mean",
    "padding_mask",
]


def padding_mask(ids: jax.Array) -> jax.Array:
    """``True`` at real tokens, ``False`` at padding: bool ``(B, T)`` from ids ``(B, T)``."""
    return ids != PAD


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of ``x`` ``(B, T, D)`` over the positions where ``mask`` ``(B, T)`` is True."""
    m = mask[..., None].astype(x.dtype)  # (B, T, 1)
    return (x * m).sum(1) / jnp.maximum(m.sum(1), 1)  # (B, D)


def masked_max(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Max of ``x`` ``(B, T, D)`` over real positions (padding set to -inf first)."""
    return jnp.where(mask[..., None], x, -jnp.inf).max(1)  # (B, D)


class TextLoader(LengthBuckets):
    """Mini-batches ``(ids (B, width), labels (B,))`` cut to each batch's longest review.

    ``ids`` int ``(N, T)`` padded with 0, ``lengths`` ``(N,)``; see
    :class:`helpers.data.text.LengthBuckets` for the order, ``multiple`` and ``drop_last``.
    Raises ``ValueError`` when the three arrays disagree in length.
    """

    def __init__(
        self,
        ids: np.ndarray,
        lengths: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        multiple: int = 32,
        drop_last: bool = False,
        device: jax.Device | None = None,
    ) -> None:
        if not len(ids) == len(lengths) == len(labels):
            raise ValueError(
                f"ids, lengths and labels differ in length: "
                f"{len(ids)}, {len(lengths)}, {len(labels)}"
            )
        super().__init__(
            lengths,
            batch_size,
            shuffle=shuffle,
            seed=seed,
            multiple=multiple,
            drop_last=drop_last,
        )
        self.device = default_device() if device is None else device
        self.ids = np.asarray(ids, np.int32)
        self.labels = np.asarray(labels, np.int32)

    def __iter__(self) -> Iterator[tuple[jax.Array, jax.Array]]:
        for idx, width in self.batches():
            x = self.ids[idx, : min(width, self.ids.shape[1])]
            yield jax.device_put((x, self.labels[idx]), self.device)


class BagOfNgrams(nnx.Module):
    """fastText: the mean embedding of a review's unigrams and hashed bigrams, then a Linear.

    Input ids ``(B, T)`` from :func:`helpers.data.text.add_hashed_bigrams`; logits ``(B, C)``.
    Embeddings start at ``N(0, init_std**2)``: small, as in fastText, so that a rare n-gram's
    random start does not outweigh what training teaches it (``nnx.Embed``'s default has
    standard deviation ``1 / sqrt(dim)``; 0.01 scored higher on chapter 6's validation split).
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        classes: int = 2,
        init_std: float = 0.01,
        *,
        rngs: nnx.Rngs,
    ) -> None:
        init = nnx.initializers.normal(stddev=init_std)
        self.embed = nnx.Embed(vocab_size, dim, embedding_init=init, rngs=rngs)
        self.head = nnx.Linear(dim, classes, rngs=rngs)

    def __call__(self, ids: jax.Array) -> jax.Array:
        return self.head(masked_mean(self.embed(ids), padding_mask(ids)))


def _uniform(bound: float) -> nnx.Initializer:
    """U(-bound, bound): PyTorch's default law for Conv1d, Linear and LSTM parameters."""

    def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class CnnLstm(nnx.Module):
    """Convolutions of several widths over embeddings, then an LSTM, read at true lengths.

    ids ``(B, T)`` -> embeddings ``(B, T, E)`` -> ``nnx.Conv`` per width (``channels`` each,
    ReLU) -> masked max pooling by ``pool`` along time -> ``nnx.RNN`` over an LSTM cell with
    ``seq_lengths`` (the carry stops updating after each review's last real step) ->
    ``[h_T, masked max over time] -> Linear``. Every parameter starts from PyTorch's default
    law (``nn.Embedding``, ``nn.Conv1d``, ``nn.LSTM``, ``nn.Linear``), so that the twins are one
    model: embeddings ``N(0, 1)``; convolution and head weights and biases
    ``U(+-1/sqrt(fan_in))``; LSTM weights and its two biases (input and recurrent side, as
    PyTorch's) ``U(+-1/sqrt(hidden))`` (Flax's defaults: LeCun normal, orthogonal, one zero
    bias).
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        widths: Sequence[int] = (3, 5),
        channels: int = 64,
        hidden: int = 64,
        pool: int = 4,
        classes: int = 2,
        dropout: float = 0.3,
        *,
        rngs: nnx.Rngs,
    ) -> None:
        self.pool = pool
        # N(0, 1), PyTorch's nn.Embedding default, not nnx.Embed's N(0, 1/dim): with Adam's
        # steps of the same size, the smaller start let the JAX model memorise the training
        # reviews sooner (chapter 6's validation split: see helpers/scale/text.py).
        init = nnx.initializers.normal(stddev=1.0)
        self.embed = nnx.Embed(vocab_size, dim, embedding_init=init, rngs=rngs)
        self.convs = nnx.List(
            [
                nnx.Conv(
                    dim,
                    channels,
                    (w,),
                    padding="SAME",
                    kernel_init=_uniform((dim * w) ** -0.5),
                    bias_init=_uniform((dim * w) ** -0.5),
                    rngs=rngs,
                )
                for w in widths
            ]
        )
        features = channels * len(widths)
        bound = hidden**-0.5
        cell = nnx.OptimizedLSTMCell(
            features,
            hidden,
            kernel_init=_uniform(bound),
            recurrent_kernel_init=_uniform(bound),
            bias_init=_uniform(bound),
            rngs=rngs,
        )
        # PyTorch's LSTM has two bias vectors (b_ih + b_hh), Flax's cell one. The sum is the
        # same function, but Adam moves each vector by about the learning rate per step, so
        # PyTorch's summed bias moves twice as fast: give the input side its own bias too.
        cell.dense_i = nnx.Linear(
            features,
            4 * hidden,
            kernel_init=_uniform(bound),
            bias_init=_uniform(bound),
            rngs=rngs,
        )
        self.lstm = nnx.RNN(cell, return_carry=True)
        self.drop = nnx.Dropout(dropout, rngs=rngs)
        fan_in = hidden + features
        self.head = nnx.Linear(
            fan_in,
            classes,
            kernel_init=_uniform(fan_in**-0.5),
            bias_init=_uniform(fan_in**-0.5),
            rngs=rngs,
        )

    def __call__(self, ids: jax.Array) -> jax.Array:
        mask = padding_mask(ids)  # (B, T)
        lengths = mask.sum(1)  # (B,)
        # Zero the padding's embeddings: a convolution near a review's end reads them.
        e = jnp.where(mask[..., None], self.embed(ids), 0.0)  # (B, T, E), channels last
        h = jnp.concatenate([nnx.relu(conv(e)) for conv in self.convs], -1)
        h = jnp.where(mask[..., None], h, 0.0)  # (B, T, F); ReLU >= 0: 0 is neutral
        b, t, f = h.shape
        p = self.pool
        h = jnp.pad(h, ((0, 0), (0, -t % p), (0, 0)))  # ceil mode
        h = h.reshape(b, -1, p, f).max(2)  # (B, T/p, F)
        steps = (lengths + p - 1) // p  # real steps after pooling
        (_, h_n), _ = self.lstm(h, seq_lengths=steps)  # carry (c, h) at true lengths
        pooled = h.max(1)  # (B, F); padding is 0 and features >= 0
        return self.head(self.drop(jnp.concatenate([h_n, pooled], -1)))


class _Block(nnx.Module):
    """Pre-norm encoder block: ``x + MHA(LN(x), mask)``, then ``x + MLP(LN(x))``."""

    def __init__(self, dim: int, heads: int, dropout: float, *, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(dim, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(
            heads, dim, dropout_rate=dropout, decode=False, rngs=rngs
        )
        self.norm2 = nnx.LayerNorm(dim, rngs=rngs)
        self.up = nnx.Linear(dim, 2 * dim, rngs=rngs)
        self.down = nnx.Linear(2 * dim, dim, rngs=rngs)
        self.drop = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        # Flax's attention mask is (B, heads, T_q, T_k), True = may attend.
        attend = mask[:, None, None, :]  # (B, 1, 1, T): every query sees real keys only
        x = x + self.drop(self.attn(self.norm1(x), mask=attend))
        return x + self.drop(self.down(self.drop(nnx.relu(self.up(self.norm2(x))))))


class TransformerClassifier(nnx.Module):
    """A small Transformer encoder: embeddings + learned positions, ``layers`` pre-norm
    blocks with a padding mask, masked mean pooling, Linear. ids ``(B, T)`` -> ``(B, C)``."""

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        heads: int = 4,
        layers: int = 2,
        max_len: int = 512,
        classes: int = 2,
        dropout: float = 0.1,
        *,
        rngs: nnx.Rngs,
    ) -> None:
        self.embed = nnx.Embed(vocab_size, dim, rngs=rngs)
        self.position = nnx.Embed(max_len, dim, rngs=rngs)
        self.blocks = nnx.List(
            [_Block(dim, heads, dropout, rngs=rngs) for _ in range(layers)]
        )
        self.norm = nnx.LayerNorm(dim, rngs=rngs)
        self.head = nnx.Linear(dim, classes, rngs=rngs)

    def __call__(self, ids: jax.Array) -> jax.Array:
        mask = padding_mask(ids)  # (B, T) True = token
        x = self.embed(ids) + self.position(jnp.arange(ids.shape[1]))  # (B, T, D)
        for block in self.blocks:
            x = block(x, mask)
        return self.head(masked_mean(self.norm(x), mask))
