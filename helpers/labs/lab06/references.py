"""Lab 6's cases and numpy answers, with a switch per known mistake; no framework here.

:func:`mask_reference` and :func:`encode_reference` compute the right answer of exercises 1
and 4 on the cases below, or, given ``mistake``, the answer a known mistake gives (exercises 2,
3 and 5 have their own modules, :mod:`~.attention_pool`, :mod:`~.rope` and :mod:`~.reverse`).
``*_MISTAKES`` pair each mistake with the key of its hint in
:data:`helpers.labs.lab06.checks.HINTS`. ``tests/labs/test_lab06.py`` asserts that the
references, with no switch set, equal :mod:`helpers.data.text` and ``H.text``'s padding mask,
and that every mistake moves the answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = [
    "ENCODE_CASES",
    "ENCODE_MISTAKES",
    "MASK_CASES",
    "MASK_MISTAKES",
    "encode_reference",
    "mask_reference",
]


# --- exercise 1: a padding mask from lengths -----------------------------------------------------
MASK_CASES = [
    dict(lengths=[3, 1, 6, 4], max_len=6),
    dict(lengths=[2, 5, 5, 1, 3], max_len=7),
]
# Each known mistake: (the key of its hint, the name of the wrong answer in the reference).
MASK_MISTAKES = [
    ("off_by_one_length", "off_by_one_length"),
    ("off_by_one_length", "drops_last"),
    ("polarity", "polarity"),
]


def mask_reference(
    lengths: Sequence[int], max_len: int, mistake: str = ""
) -> np.ndarray:
    """bool ``(B, max_len)``: True where ``t < lengths[b]``; ``mistake`` computes one."""
    t = np.arange(max_len)[None, :]
    lengths = np.asarray(lengths)[:, None]
    if mistake == "off_by_one_length":
        return t <= lengths
    if mistake == "drops_last":
        return t < lengths - 1
    if mistake == "polarity":
        return t >= lengths
    return t < lengths


# --- exercise 4: a vocabulary from the training split, <unk> for the rest ------------------------
# Tokens of four training and three test reviews. "superb" occurs only in the test reviews;
# "dull" occurs once in training (below min_freq 2) and once in the test reviews (so it is
# kept only if the test split is counted too); "plot" twice, once past max_len in the
# first review (so it is kept only if whole reviews are counted); "a", "great" and "the" tie,
# and so do "film", "movie" and "plot", each group first appearing in another order than the
# alphabet's; "a" and "great" occur twice in the first review and "the" in three reviews, so
# counting reviews instead of words reorders them.
ENCODE_CASES = [
    dict(
        train=[
            "a great movie a great cast plot".split(),
            "the dull plot".split(),
            "the film was great".split(),
            "the movie film a".split(),
        ],
        test=[
            "a superb movie".split(),
            "superb superb the great film a great a".split(),
            "dull plot".split(),
        ],
        min_freq=2,
        max_len=6,
    ),
    dict(
        train=[
            "bad bad acting".split(),
            "good acting and good music".split(),
            "and the music".split(),
            "the end".split(),
        ],
        test=["brilliant acting".split(), "good brilliant bad the end and".split()],
        min_freq=1,
        max_len=7,  # longer than every review: padding to the longest review falls short
    ),
]
# (the key of its hint, the name of the wrong answer in encode_reference), first match wins.
ENCODE_MISTAKES = [
    ("test_leak", "test_leak"),
    ("test_counts", "test_counts"),
    ("unk_is_pad", "unk_is_pad"),
    ("unk_is_pad", "unk_after_vocab"),
    ("min_freq", "min_freq"),
    ("min_freq_strict", "min_freq_strict"),
    ("no_specials", "no_specials"),
    ("no_specials", "start_at_one"),
    ("vocab_order", "vocab_order"),
    ("vocab_order", "unsorted"),
    ("vocab_order", "ascending"),
    ("ties", "ties"),
    ("ties_reversed", "ties_reversed"),
    ("doc_freq", "doc_freq"),
    ("count_truncated", "count_truncated"),
    ("test_own_vocab", "test_own_vocab"),
    ("truncate_pad", "truncate_pad"),
    ("truncate_pad", "keep_last"),
    ("truncate_pad", "pad_left"),
    ("truncate_pad", "cut_short"),
    ("truncate_pad", "pad_with_one"),
]


def encode_reference(
    train: Sequence[Sequence[str]],
    test: Sequence[Sequence[str]],
    *,
    min_freq: int,
    max_len: int,
    mistake: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """``(train_ids, test_ids)``, int64 ``(N, max_len)``; ``mistake`` computes a known one."""
    if mistake == "test_own_vocab":  # each split encoded with a vocabulary of its own
        own = [
            encode_reference(split, split, min_freq=min_freq, max_len=max_len)[0]
            for split in (train, test)
        ]
        return own[0], own[1]
    built_on = [*train, *test] if mistake in ("test_leak", "test_counts") else train
    if mistake == "count_truncated":  # the vocabulary of the reviews cut to max_len
        built_on = [tokens[:max_len] for tokens in built_on]
    if mistake == "doc_freq":  # in how many reviews a word occurs
        built_on = [list(dict.fromkeys(tokens)) for tokens in built_on]
    counts = Counter(w for tokens in built_on for w in tokens)  # first-seen order
    keep = {"min_freq": 1, "min_freq_strict": min_freq + 1}.get(mistake, min_freq)
    words = [w for w, n in counts.items() if n >= keep]
    if mistake == "test_counts":  # counted on both splits, only the training words kept
        words = [w for w in words if any(w in tokens for tokens in train)]
    if mistake == "vocab_order":
        words = sorted(words)
    elif mistake == "unsorted":  # the Counter's own order: first appearance
        pass
    elif mistake == "ascending":
        words = sorted(words, key=lambda w: (counts[w], w))
    elif mistake == "ties":  # Counter.most_common: by count, ties by first appearance
        words = sorted(words, key=lambda w: -counts[w])
    elif mistake == "ties_reversed":  # sorted by (count, word), reverse=True
        words = sorted(words, key=lambda w: (counts[w], w), reverse=True)
    else:
        words = sorted(words, key=lambda w: (-counts[w], w))
    first = {"no_specials": 0, "start_at_one": 1}.get(mistake, 2)
    stoi = {w: first + i for i, w in enumerate(words)}
    unk = {"unk_is_pad": 0, "unk_after_vocab": first + len(words)}.get(mistake, 1)
    pad = 1 if mistake == "pad_with_one" else 0
    out = []
    for split in (train, test):
        ids = np.full((len(split), max_len), pad, np.int64)
        for i, tokens in enumerate(split):
            row = [stoi.get(w, unk) for w in tokens]
            if mistake in ("truncate_pad", "pad_left"):  # padded on the left
                row = row[-max_len:] if mistake == "truncate_pad" else row[:max_len]
                ids[i, max_len - len(row) :] = row
            else:
                keep = max_len - 1 if mistake == "cut_short" else max_len
                row = row[-max_len:] if mistake == "keep_last" else row[:keep]
                ids[i, : len(row)] = row
        out.append(ids)
    return out[0], out[1]
