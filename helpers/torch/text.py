"""Text classifiers in PyTorch (chapter 6): masks, pooling, a loader by length, three models.

A batch is ids ``int64 (B, T)`` padded with ``PAD`` (0) after each review; every model derives
its padding mask from the ids, so ``H.fit`` and ``H.evaluate`` train them unchanged. The
framework-free pipeline (vocabulary, encoding, buckets) is :mod:`helpers.data.text`; the JAX
twin is :mod:`helpers.jax.text`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from helpers.data.text import PAD, LengthBuckets
from helpers.torch.runtime import default_device

__all__ = [
    "BagOfNgrams",
    "CnnLstm",
    "TextLoader",
    "TransformerClassifier",
    "masked_max",
    "masked_mean",
    "padding_mask",
]


def padding_mask(ids: torch.Tensor) -> torch.Tensor:
    """``True`` at real tokens, ``False`` at padding: bool ``(B, T)`` from ids ``(B, T)``."""
    return ids != PAD


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` ``(B, T, D)`` over the positions where ``mask`` ``(B, T)`` is True."""
    m = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
    return (x * m).sum(1) / m.sum(1).clamp(min=1)  # (B, D)


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max of ``x`` ``(B, T, D)`` over real positions (padding set to -inf first)."""
    return x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)  # (B, D)


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
        device: torch.device | str | None = None,
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
        self.device = default_device() if device is None else torch.device(device)
        self.ids = torch.as_tensor(np.asarray(ids), dtype=torch.long)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx, width in self.batches():
            i = torch.from_numpy(idx)
            x = self.ids[i, : min(width, self.ids.shape[1])]
            yield x.to(self.device), self.labels[i].to(self.device)


class BagOfNgrams(nn.Module):
    """fastText: the mean embedding of a review's unigrams and hashed bigrams, then a Linear.

    Input ids ``(B, T)`` from :func:`helpers.data.text.add_hashed_bigrams`; logits ``(B, C)``.
    Embeddings start at ``N(0, init_std**2)``: small, as in fastText, so that a rare n-gram's
    random start does not outweigh what training teaches it (``nn.Embedding``'s default is
    ``N(0, 1)``; 0.01 scored higher on chapter 6's validation split).
    """

    def __init__(
        self, vocab_size: int, dim: int, classes: int = 2, init_std: float = 0.01
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        nn.init.normal_(self.embed.weight, std=init_std)
        with torch.no_grad():
            self.embed.weight[PAD].zero_()
        self.head = nn.Linear(dim, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(masked_mean(self.embed(ids), padding_mask(ids)))


class CnnLstm(nn.Module):
    """Convolutions of several widths over embeddings, then an LSTM, read at true lengths.

    ids ``(B, T)`` -> embeddings ``(B, T, E)`` -> ``Conv1d`` per width (``channels`` each,
    ReLU) -> masked max pooling by ``pool`` along time -> an LSTM (packed, so its final state is
    taken at each review's last real step) -> ``[h_T, masked max over time] -> Linear``.
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
    ) -> None:
        super().__init__()
        self.pool = pool
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.convs = nn.ModuleList(
            [nn.Conv1d(dim, channels, w, padding=w // 2) for w in widths]
        )
        features = channels * len(widths)
        self.lstm = nn.LSTM(features, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden + features, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = padding_mask(ids)  # (B, T)
        lengths = mask.sum(1)  # (B,)
        # Zero the padding's embeddings: a convolution near a review's end reads them.
        e = self.embed(ids).masked_fill(~mask.unsqueeze(-1), 0.0)  # (B, T, E)
        e = e.transpose(1, 2)  # (B, E, T): Conv1d wants channels first
        h = torch.cat([F.relu(conv(e)) for conv in self.convs], 1)  # (B, F, T)
        h = h.masked_fill(~mask.unsqueeze(1), 0.0)  # ReLU >= 0: zero is neutral for max
        h = F.max_pool1d(h, self.pool, ceil_mode=True).transpose(1, 2)  # (B, T/p, F)
        steps = (lengths + self.pool - 1) // self.pool  # real steps after pooling
        packed = pack_padded_sequence(
            h, steps.cpu(), batch_first=True, enforce_sorted=False
        )
        _, (h_n, _) = self.lstm(packed)  # h_n (1, B, H): state at each true length
        pooled = h.amax(1)  # (B, F); padding is 0 and features >= 0
        return self.head(self.drop(torch.cat([h_n[-1], pooled], 1)))


class TransformerClassifier(nn.Module):
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
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.position = nn.Embedding(max_len, dim)
        block = nn.TransformerEncoderLayer(
            dim,
            heads,
            dim_feedforward=2 * dim,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = padding_mask(ids)  # (B, T) True = token
        t = torch.arange(ids.shape[1], device=ids.device)
        x = self.embed(ids) + self.position(t)  # (B, T, D)
        # PyTorch's src_key_padding_mask has the opposite polarity: True = ignore.
        x = self.encoder(x, src_key_padding_mask=~mask)
        return self.head(masked_mean(self.norm(x), mask))
