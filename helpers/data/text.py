"""From token lists to padded id matrices, framework-free: vocabulary, encoding, buckets.

Chapter 6 teaches each step in its notebooks; both frameworks' ``H.text`` build on these:

* :class:`Vocab` / :func:`build_vocab`: ``<pad>`` = 0, ``<unk>`` = 1, then the words of the
  *training* texts seen at least ``min_freq`` times, most frequent first.
* :func:`encode`: ids ``int32 (N, T)`` padded with 0 and true lengths ``int32 (N,)``.
* :func:`add_hashed_bigrams`: fastText-style features, unigrams then hashed bigrams.
* :func:`distinct_features`: each review's features counted once (a binary bag).
* :class:`LengthBuckets`: batches of reviews of similar length, cut to the longest one.
* :func:`imdb_review_ids` and :func:`group_split`: a validation split with the class balance
  of the whole (stratified) that holds out whole movies, as IMDB's test split does.

A subword tokenizer (BPE, WordPiece) trained on the training split is what Hugging Face
``tokenizers`` is for; the course uses the documented regex of :func:`helpers.data.tokenize`.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "IMDB_MODELS",
    "PAD",
    "UNK",
    "EncodedImdb",
    "LengthBuckets",
    "Vocab",
    "add_hashed_bigrams",
    "build_vocab",
    "distinct_features",
    "encode",
    "encode_imdb",
    "group_split",
    "imdb_review_ids",
    "imdb_setup",
    "imdb_summary",
]

PAD, UNK = 0, 1


@dataclass(frozen=True)
class Vocab:
    """Words and their ids: ``itos[i]`` is the word of id ``i``; ``<pad>`` 0, ``<unk>`` 1."""

    itos: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.itos[:2] != ("<pad>", "<unk>"):
            raise ValueError("a Vocab starts with ('<pad>', '<unk>') at ids 0 and 1")
        object.__setattr__(self, "stoi", {w: i for i, w in enumerate(self.itos)})

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: object) -> bool:
        return word in self.stoi

    def lookup(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``; a word not in the vocabulary becomes ``UNK`` (1)."""
        stoi = self.stoi
        return [stoi.get(t, UNK) for t in tokens]


def build_vocab(
    token_lists: Iterable[Sequence[str]],
    *,
    min_freq: int = 2,
    max_size: int | None = None,
) -> Vocab:
    """The vocabulary of ``token_lists`` (build it on the training split only).

    Keeps words seen at least ``min_freq`` times, the ``max_size`` most frequent (``None``: all),
    ties broken alphabetically so the result does not depend on the input order. Raises
    ``TypeError`` when given a string instead of a list of token lists, ``ValueError`` for
    ``min_freq < 1``.
    """
    if isinstance(token_lists, str):
        raise TypeError("build_vocab expects a list of token lists, not one string")
    if min_freq < 1:
        raise ValueError(f"min_freq must be >= 1, got {min_freq}")
    counts: Counter[str] = Counter()
    for tokens in token_lists:
        if isinstance(tokens, str):
            raise TypeError("each item must be a list of tokens, got a string")
        counts.update(tokens)
    words = sorted(
        (w for w, c in counts.items() if c >= min_freq and w not in ("<pad>", "<unk>")),
        key=lambda w: (-counts[w], w),
    )
    if max_size is not None:
        words = words[: max(max_size - 2, 0)]
    return Vocab(("<pad>", "<unk>", *words))


def encode(
    token_lists: Sequence[Sequence[str]], vocab: Vocab, max_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """Ids ``int32 (N, max_len)`` (first ``max_len`` tokens, padded with ``PAD``) and lengths.

    ``lengths[i]`` (``int32``) counts the real tokens of row ``i`` after truncation: positions
    ``>= lengths[i]`` are padding. An empty review keeps one ``UNK`` so that every row has
    length >= 1 (a mean or a last state over zero tokens is undefined). Raises ``ValueError``
    for ``max_len < 1``.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    ids = np.full((len(token_lists), max_len), PAD, np.int32)
    lengths = np.empty(len(token_lists), np.int32)
    for i, tokens in enumerate(token_lists):
        row = vocab.lookup(tokens[:max_len]) or [UNK]
        ids[i, : len(row)] = row
        lengths[i] = len(row)
    return ids, lengths


def add_hashed_bigrams(
    ids: np.ndarray, lengths: np.ndarray, *, vocab_size: int, buckets: int
) -> tuple[np.ndarray, np.ndarray]:
    """fastText's features: each row's unigrams, then its bigrams hashed into ``buckets`` ids.

    ``ids`` ``int (N, T)`` padded after ``lengths``. Bigram ``(a, b)`` gets id
    ``vocab_size + (a * 1_000_003 + b) % buckets``, so an embedding table needs
    ``vocab_size + buckets`` rows. Returns ids ``int32 (N, 2T - 1)`` with the real features
    first and lengths ``2 * lengths - 1`` (Joulin et al. 2017).
    """
    ids = np.asarray(ids, np.int64)
    lengths = np.asarray(lengths)
    if ids.ndim != 2 or lengths.shape != (len(ids),):
        raise ValueError(f"expected ids (N, T) and lengths (N,), got {ids.shape}")
    t = ids.shape[1]
    bigrams = vocab_size + (ids[:, :-1] * 1_000_003 + ids[:, 1:]) % buckets
    feats = np.concatenate([ids, bigrams], axis=1)  # (N, 2T - 1)
    pos = np.arange(t)
    valid = np.concatenate(
        [pos < lengths[:, None], pos[:-1] < (lengths[:, None] - 1)], axis=1
    )
    # Move the real features to the front of each row, keeping their order.
    order = np.argsort(~valid, axis=1, kind="stable")
    feats = np.where(valid, feats, PAD)
    out = np.take_along_axis(feats, order, axis=1).astype(np.int32)
    return out, (2 * lengths - 1).astype(np.int32)


def distinct_features(
    ids: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's distinct real ids, sorted and padded with ``PAD``, and their counts.

    A bag of n-grams over these counts each n-gram once per review, however often it occurs
    (binary features, which suit sentiment better than counts: Wang and Manning 2012). ``ids``
    ``int (N, T)`` padded after ``lengths`` ``(N,)``; returns ids ``int32 (N, T')`` with ``T'``
    the most distinct ids of any row, and lengths ``int32 (N,)``. Raises ``ValueError`` for
    other shapes.
    """
    ids = np.asarray(ids)
    lengths = np.asarray(lengths)
    if ids.ndim != 2 or lengths.shape != (len(ids),):
        raise ValueError(f"expected ids (N, T) and lengths (N,), got {ids.shape}")
    big = np.iinfo(np.int64).max  # sorts after every real id
    real = np.arange(ids.shape[1]) < lengths[:, None]
    x = np.sort(np.where(real, ids.astype(np.int64), big), axis=1)
    repeat = np.zeros_like(real)
    repeat[:, 1:] = x[:, 1:] == x[:, :-1]  # a repeat of the id before it
    x = np.sort(np.where(repeat, big, x), axis=1)  # distinct ids first
    counts = (x != big).sum(1)
    x = np.where(x == big, PAD, x)[:, : max(int(counts.max(initial=0)), 1)]
    return x.astype(np.int32), counts.astype(np.int32)


class LengthBuckets:
    """Batches of rows of similar length, and the width each batch can be cut to.

    Rows are sorted by length inside chunks of ``batch_size * pool`` random rows, cut into
    batches, and the batches shuffled: little padding, still random. Widths are rounded up to
    a power of two (at least ``multiple``) so a compiled (JAX) step sees few distinct shapes.
    ``drop_last`` drops the batches smaller than ``batch_size`` (one per chunk when shuffled),
    so that every batch has the same number of rows: fewer shapes again, for training.
    ``len(buckets)`` is the number of batches per epoch.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        pool: int = 50,
        multiple: int = 32,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1 or multiple < 1:
            raise ValueError("batch_size and multiple must be >= 1")
        self.lengths = np.asarray(lengths)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.pool, self.multiple = pool, multiple
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        n, b = len(self.lengths), self.batch_size
        if not self.drop_last:
            return -(-n // b)
        if not self.shuffle:
            return n // b
        chunk = b * self.pool  # every full chunk holds exactly `pool` batches
        return (n // chunk) * self.pool + (n % chunk) // b

    def batches(self) -> Iterator[tuple[np.ndarray, int]]:
        """One epoch of ``(indices int64 (B,), width)``; unshuffled: the original order."""
        n = len(self.lengths)
        if not self.shuffle:
            for s in range(0, n, self.batch_size):
                idx = np.arange(s, min(s + self.batch_size, n))
                if len(idx) == self.batch_size or not self.drop_last:
                    yield idx, self._width(idx)
            return
        order = self._rng.permutation(n)
        chunk = self.batch_size * self.pool
        batches = []
        for s in range(0, n, chunk):
            part = order[s : s + chunk]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            batches += [
                part[i : i + self.batch_size]
                for i in range(0, len(part), self.batch_size)
                if i + self.batch_size <= len(part) or not self.drop_last
            ]
        for k in self._rng.permutation(len(batches)):
            yield batches[k], self._width(batches[k])

    def _width(self, idx: np.ndarray) -> int:
        # The next power of two (at least ``multiple``): few shapes, at most 2x padding.
        longest = int(self.lengths[idx].max())
        return max(self.multiple, 1 << (longest - 1).bit_length())


def group_split(
    labels: np.ndarray, groups: np.ndarray, fraction: float, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, valid)`` (sorted int64) where ``valid`` holds whole groups.

    For each class, a random ``fraction`` of that class's groups (at least one) goes to
    ``valid``: every row of a group lands on one side, and each class keeps about its share.
    ``labels`` and ``groups`` ``(N,)``; a group is a ``(label, group)`` pair, so group numbers
    may repeat across classes. Raises ``ValueError`` when ``fraction`` is not between 0 and 1
    or the two arrays differ in shape.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    labels, groups = np.asarray(labels), np.asarray(groups)
    if labels.ndim != 1 or labels.shape != groups.shape:
        raise ValueError(
            f"expected labels and groups of one shape (N,), got {labels.shape} "
            f"and {groups.shape}"
        )
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        members = labels == c
        names = np.unique(groups[members])
        take = rng.permutation(names)[: max(1, round(len(names) * fraction))]
        held |= members & np.isin(groups, take)
    return np.flatnonzero(~held), np.flatnonzero(held)


# IMDB's sources hold each split's 12,500 negative reviews (ids 0-12,499), then its 12,500
# positive ones, each sorted by id (helpers/data/imdb.py); load_imdb reorders them.
_IMDB_PER_LABEL = 12_500


def imdb_review_ids(labels: np.ndarray, limit: int | None = None) -> np.ndarray:
    """The IMDB file id (``0..12,499`` per label) of each review ``load_imdb`` returned.

    ``labels`` ``(N,)`` are the labels ``load_imdb(split, limit=limit)`` returned, with the
    same ``limit``. Reviews of one movie have neighbouring ids within a label, so
    ``group_split(labels, ids // 250, ...)`` holds out blocks of movies. Raises
    ``ValueError`` when ``labels`` do not match the order this ``limit`` gives.
    """
    from helpers.data.common import mixed_order, subset

    n = 2 * _IMDB_PER_LABEL
    # each row's position in the sorted source
    source = mixed_order(n)[subset(n, limit)]
    labels = np.asarray(labels)
    if labels.shape != source.shape or (labels != source // _IMDB_PER_LABEL).any():
        raise ValueError(
            f"labels {labels.shape} are not those of load_imdb(split, limit={limit})"
        )
    return (source % _IMDB_PER_LABEL).astype(np.int64)


@dataclass(frozen=True)
class EncodedImdb:
    """IMDB as model inputs: ids ``int32 (N, T)``, lengths ``int32 (N,)``, labels ``uint8``."""

    vocab: Vocab
    # Rows an embedding table needs: len(vocab), plus the hashed-bigram buckets if any.
    table_size: int
    train: tuple[np.ndarray, np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray, np.ndarray]
    # True: each review's distinct features only, each once (a binary bag).
    distinct: bool = False


def encode_imdb(
    *,
    train_examples: int | None,
    test_examples: int | None,
    max_len: int,
    min_freq: int,
    bigram_buckets: int = 0,
    distinct: bool = False,
) -> EncodedImdb:
    """Load, tokenize and encode IMDB; the vocabulary comes from the training reviews only.

    ``bigram_buckets > 0`` appends fastText's hashed bigrams (:func:`add_hashed_bigrams`);
    ``distinct`` keeps each review's distinct features only (:func:`distinct_features`).
    Used by ``python -m helpers.bench imdb``; the chapter's notebooks write these steps out.
    """
    from helpers.data.imdb import load_imdb

    tok_train, y_train = load_imdb("train", limit=train_examples, tokenized=True)
    tok_test, y_test = load_imdb("test", limit=test_examples, tokenized=True)
    vocab = build_vocab(tok_train, min_freq=min_freq)
    splits = []
    for tokens, labels in ((tok_train, y_train), (tok_test, y_test)):
        ids, lengths = encode(tokens, vocab, max_len)
        if bigram_buckets:
            ids, lengths = add_hashed_bigrams(
                ids, lengths, vocab_size=len(vocab), buckets=bigram_buckets
            )
        if distinct:
            ids, lengths = distinct_features(ids, lengths)
        splits.append((ids, lengths, labels))
    return EncodedImdb(vocab, len(vocab) + bigram_buckets, *splits, distinct=distinct)


# Chapter 6's bench task (``python -m helpers.bench imdb``), shared by both run_imdb.
IMDB_MODELS = ("bow", "cnn-lstm", "transformer")


@functools.cache
def _cached_encode_imdb(**kwargs) -> EncodedImdb:
    return encode_imdb(**kwargs)


def imdb_setup(sizes, model: str) -> tuple[object, EncodedImdb]:
    """``(model sizes, EncodedImdb)`` for ``model``; cached, so ``--framework both`` encodes
    once. ``sizes`` is :class:`helpers.scale.ImdbSizes`. Raises ``ValueError`` for a model not
    in ``IMDB_MODELS``."""
    if model not in IMDB_MODELS:
        raise ValueError(f"unknown imdb model {model!r}; choose from {IMDB_MODELS}")
    m = getattr(sizes, model.replace("-", "_"))
    data = _cached_encode_imdb(
        train_examples=sizes.train_examples,
        test_examples=sizes.test_examples,
        max_len=m.max_len,
        min_freq=sizes.min_freq,
        bigram_buckets=sizes.bigram_buckets if model == "bow" else 0,
        distinct=model == "bow" and sizes.distinct_ngrams,
    )
    return m, data


def imdb_summary(model, m, data, history, test_scores, parameters) -> dict:
    """The bench record of one IMDB run: ``run_summary`` plus real tokens per second."""
    from helpers.metrics import run_summary

    summary = run_summary(
        history,
        test_scores,
        batch_size=m.batch_size,
        parameters=parameters,
        train_examples=len(data.train[2]),
        test_examples=len(data.test[2]),
    )
    # Real (non-padding) tokens trained on per second, over all epochs.
    tokens = float(data.train[1].sum()) * len(history.epochs)
    summary["train_tokens_per_second"] = round(tokens / summary["train_seconds"], 1)
    bag = "binary bag (each distinct n-gram once)" if data.distinct else "bag"
    description = {
        "bow": f"fastText-style {bag} of unigrams + hashed bigrams",
        "cnn-lstm": "Conv1d widths 3,5 + max-pool 4 + LSTM read at true lengths",
        "transformer": "2-layer pre-norm Transformer encoder, masked mean pooling",
    }[model]
    return {
        "model": f"{model}: {description}, dim {m.dim}, max_len {m.max_len}, Adam",
        **summary,
        "vocab_size": len(data.vocab),
    }
