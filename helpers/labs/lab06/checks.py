"""Lab 6 self-checks shared by both frameworks, written once on numpy answers.

Exercises: a padding mask from lengths, masked mean pooling, the output of a recurrent layer at
each sequence's last real step, and a vocabulary built on the training split that maps unknown
words to ``<unk>``. Each answer comes from a numpy reference with a switch per known mistake
(:func:`mask_reference`, :func:`mean_reference`, :func:`last_reference`,
:func:`encode_reference`); ``tests/labs/test_lab06.py`` asserts that the references, with no
switch set, equal :mod:`helpers.data.text` and ``H.text`` of both frameworks, and that every
mistake moves the answer.

The adapters (``torch.py``, ``jax.py``) only say how arrays go in and come out
(:class:`~helpers.labs.kit.Framework`); the cases, the calls and the hints live here.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, CheckFailed, Framework, Hints, checking

__all__ = [
    "HINTS",
    "check_encode_splits",
    "check_last_true_output",
    "check_length_mask",
    "check_masked_mean",
    "encode_reference",
    "last_reference",
    "mask_reference",
    "mean_reference",
]

HINTS = Hints(
    {
        "off_by_one_length": "a row of length L holds tokens at positions 0, ..., L - 1: "
        "position t is real when t < L (with t <= L the first padding position counts as "
        "a token)",
        "polarity": "the mask is True at real tokens and False at padding; yours is the "
        "other way round (ids == PAD, or t >= length, marks the padding)",
        "mask_broadcast": "lengths (B,) and the positions (T,) do not broadcast: compare a row "
        "of positions with a column of lengths, arange(max_len)[None, :] < lengths[:, None], "
        "to get (B, T)",
        "mask_dtype": "return a boolean mask (the comparison itself, e.g. t < length), "
        "not 0/1 numbers: a bool mask can be inverted with ~ and used to select",
        "padding_leaks": "the plain mean over T averages the padding too: multiply by the "
        "mask first, so padded positions add nothing",
        "divide_by_t": "divide the masked sum by each row's number of real tokens, "
        "mask.sum(1) (shape (B, 1)), not by T: a short review would be diluted by its padding",
        "divide_keepdim": "mask.sum(1) has shape (B,) and cannot divide (B, D): keep the "
        "summed axis (sum(1, keepdim=True) in PyTorch, sum(1, keepdims=True) in JAX) so "
        "each row is divided by its own count",
        "mean_dtype": "keep the dtype of x (float32): convert the mask with mask.to(x.dtype) "
        "in PyTorch or mask.astype(x.dtype) in JAX, not to float64 or float16",
        "last_padded": "outputs[:, -1] is the last column, which is padding for every "
        "sequence shorter than T: read each row at its own last real step",
        "off_by_one_index": "a sequence of length L ends at index L - 1: "
        "outputs[b, lengths[b] - 1], not outputs[b, lengths[b]]",
        "pair_index": "outputs[:, lengths - 1] picks every length for every row, (B, B, H): "
        "index rows and steps together, outputs[arange(B), lengths - 1]",
        "test_leak": "a word that occurs only in the test reviews got its own id: build the "
        "vocabulary on the training tokens only, so that unseen words become <unk> (1), as "
        "they would for a new review",
        "unk_is_pad": "an unknown word must map to <unk> (id 1), not to <pad> (id 0): the "
        "mask would drop it as padding",
        "min_freq": "keep only the words seen at least min_freq times in the training "
        "tokens (count them first, e.g. with collections.Counter); rarer ones are <unk>",
        "no_specials": "ids 0 and 1 are reserved for <pad> and <unk>: the most frequent "
        "word is id 2",
        "vocab_order": "number the kept words by decreasing count, ties in alphabetical "
        "order: sorted(words, key=lambda w: (-count[w], w))",
        "truncate_pad": "keep the first max_len tokens of each review and pad with 0 after "
        "them (on the right), so every row has exactly max_len ids",
    }
)


# How PyTorch, JAX and numpy word arrays whose shapes do not broadcast.
_BROADCAST = re.compile(
    r"must match the size of tensor|Incompatible shapes for broadcasting|"
    r"could not be broadcast"
)


def _call(c: Checker, hint: str, fn: Callable, *args: Any) -> Any:
    """``c.call(fn, *args)``; a broadcasting error gets this exercise's ``hint``."""
    try:
        return c.call(fn, *args)
    except CheckFailed as e:
        if _BROADCAST.search(e.problem) and not e.hint:
            raise c.fail(e.problem, c.hint(hint)) from None
        raise


def _int_array(c: Checker, value: Any, what: str) -> np.ndarray:
    arr = c.array(value, None)
    if not np.issubdtype(arr.dtype, np.integer):
        raise c.fail(
            f"{what} has dtype {arr.dtype}, expected integer ids",
            "ids are integers: build the tensor from a list of ints (or set an int dtype)",
        )
    return arr


# --- exercise 1: a padding mask from lengths ----------------------------------------------------
MASK_CASES = [
    dict(lengths=[3, 1, 6, 4], max_len=6),
    dict(lengths=[2, 5, 5, 1, 3], max_len=7),
]


def mask_reference(
    lengths: Sequence[int], max_len: int, mistake: str = ""
) -> np.ndarray:
    """bool ``(B, max_len)``: True where ``t < lengths[b]``; ``mistake`` computes one."""
    t = np.arange(max_len)[None, :]
    lengths = np.asarray(lengths)[:, None]
    if mistake == "off_by_one_length":
        return t <= lengths
    if mistake == "polarity":
        return t >= lengths
    return t < lengths


def check_length_mask(length_mask: Callable, *, fw: Framework) -> None:
    """``length_mask(lengths (B,) int, max_len)`` -> bool ``(B, max_len)``, True at tokens."""
    with checking(
        "length_mask", fw, passed="True at real tokens, False at padding"
    ) as c:
        for case in MASK_CASES:
            lengths = np.array(case["lengths"], np.int32)
            out = _call(
                c,
                "mask_broadcast",
                length_mask,
                fw.from_numpy(lengths),
                case["max_len"],
            )
            arr = c.array(out)
            right = mask_reference(lengths, case["max_len"])
            c.shape(arr, right.shape, "one row per sequence, max_len columns")
            mistakes = [
                (c.hint(m), mask_reference(lengths, case["max_len"], m))
                for m in ("off_by_one_length", "polarity")
            ]
            if arr.dtype != np.bool_:
                values = np.asarray(arr, np.float64)
                if np.array_equal(values, right):  # the right 0/1 values, not a mask
                    raise c.fail(
                        f"the mask has dtype {arr.dtype}, expected bool",
                        c.hint("mask_dtype"),
                    )
            c.close(
                arr,
                right,
                what="the mask",
                hint="position t of row b is True exactly when t < lengths[b]",
                mistakes=mistakes,
            )
            c.dtype(arr, "bool", c.hint("mask_dtype"))


# --- exercise 2: masked mean pooling ------------------------------------------------------------
def mean_cases() -> list[dict[str, np.ndarray]]:
    """``x (B, T, D)`` float32 with non-zero padding, and its mask ``(B, T)``.

    No row is full, so the inverted mask (the padding's mean) is defined too.
    """
    rng = np.random.default_rng(6)
    cases = []
    for lengths, t, d in (([2, 4, 1], 5, 4), ([4, 3, 5, 2], 6, 3)):
        x = rng.normal(size=(len(lengths), t, d)).astype(np.float32) + 1.0
        cases.append({"x": x, "mask": mask_reference(lengths, t)})
    return cases


def mean_reference(x: np.ndarray, mask: np.ndarray, mistake: str = "") -> np.ndarray:
    """``(B, D)``: the mean of ``x`` over the True positions of ``mask``."""
    x, m = np.asarray(x, np.float64), np.asarray(mask, np.float64)[..., None]
    if mistake == "padding_leaks":
        return x.mean(1)
    if mistake == "divide_by_t":
        return (x * m).sum(1) / x.shape[1]
    if mistake == "polarity":
        m = 1 - m
    return (x * m).sum(1) / m.sum(1)


def check_masked_mean(masked_mean: Callable, *, fw: Framework) -> None:
    """``masked_mean(x (B, T, D), mask (B, T) bool)`` -> ``(B, D)``: mean over real tokens."""
    with checking("masked_mean", fw, passed="the mean of the real tokens only") as c:
        for case in mean_cases():
            x, mask = case["x"], case["mask"]
            out = _call(
                c,
                "divide_keepdim",
                masked_mean,
                fw.from_numpy(x.copy()),
                fw.from_numpy(mask.copy()),
            )
            arr = c.array(out)
            c.shape(arr, (x.shape[0], x.shape[2]), "one row per review, D features")
            c.dtype(arr, "float32", c.hint("mean_dtype"))
            c.close(
                arr,
                mean_reference(x, mask),
                what="the pooled features",
                rtol=1e-4,
                atol=1e-5,
                hint="sum x * mask over the time axis (dim 1), then divide by the number "
                "of True entries of each row",
                mistakes=[
                    (c.hint(m), mean_reference(x, mask, m))
                    for m in ("padding_leaks", "divide_by_t", "polarity")
                ],
            )


# --- exercise 3: the output at each sequence's true length -------------------------------------
def last_cases() -> list[dict[str, np.ndarray]]:
    """``outputs (B, T, H)`` float32 and ``lengths (B,)``; the first case has no full row."""
    rng = np.random.default_rng(60)
    cases = []
    for lengths, t, h in (([3, 1, 5, 2], 6, 3), ([7, 2, 4], 7, 5)):
        outputs = rng.normal(size=(len(lengths), t, h)).astype(np.float32)
        cases.append({"outputs": outputs, "lengths": np.array(lengths, np.int32)})
    return cases


def last_reference(
    outputs: np.ndarray, lengths: np.ndarray, mistake: str = ""
) -> np.ndarray:
    """``(B, H)``: ``outputs[b, lengths[b] - 1]``; ``mistake`` computes a known one."""
    b, t = outputs.shape[:2]
    lengths = np.asarray(lengths)
    if mistake == "last_padded":
        return outputs[:, -1]
    if mistake == "off_by_one_index":
        return outputs[np.arange(b), np.minimum(lengths, t - 1)]  # JAX clamps
    if mistake == "pair_index":
        return outputs[:, lengths - 1]  # (B, B, H)
    return outputs[np.arange(b), lengths - 1]


def check_last_true_output(last_true_output: Callable, *, fw: Framework) -> None:
    """``last_true_output(outputs (B, T, H), lengths (B,))`` -> ``(B, H)``."""
    with checking(
        "last_true_output", fw, passed="each row read at its last real step"
    ) as c:
        for case in last_cases():
            outputs, lengths = case["outputs"], case["lengths"]
            out = c.call(
                last_true_output,
                fw.from_numpy(outputs.copy()),
                fw.from_numpy(lengths.copy()),
            )
            arr = c.array(out)
            if arr.shape == (len(lengths), len(lengths), outputs.shape[2]):
                raise c.fail(
                    f"the result has shape {arr.shape}, expected "
                    f"{(len(lengths), outputs.shape[2])}",
                    c.hint("pair_index"),
                )
            c.close(
                arr,
                last_reference(outputs, lengths),
                what="the output",
                hint="for row b take step lengths[b] - 1 of outputs[b]",
                mistakes=[
                    (c.hint(m), last_reference(outputs, lengths, m))
                    for m in ("off_by_one_index", "last_padded")
                ],
            )


# --- exercise 4: a vocabulary from the training split, <unk> for the rest ----------------------
# Tokens of four training and three test reviews. "superb" occurs only in the test reviews;
# "dull" and "plot" occur once in training (below min_freq 2); "film" and "movie" tie.
ENCODE_CASES = [
    dict(
        train=[
            "a great movie a great cast".split(),
            "a dull plot".split(),
            "the film was great".split(),
            "the movie film a".split(),
        ],
        test=[
            "a superb movie".split(),
            "superb superb the great film a great a".split(),
            "plot".split(),
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
        max_len=5,
    ),
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
    built_on = [*train, *test] if mistake == "test_leak" else train
    counts = Counter(w for tokens in built_on for w in tokens)
    keep = 1 if mistake == "min_freq" else min_freq
    words = [w for w, n in counts.items() if n >= keep]
    if mistake == "vocab_order":
        words = sorted(words)
    else:
        words = sorted(words, key=lambda w: (-counts[w], w))
    first = 0 if mistake == "no_specials" else 2
    stoi = {w: first + i for i, w in enumerate(words)}
    unk = 0 if mistake == "unk_is_pad" else 1
    out = []
    for split in (train, test):
        ids = np.zeros((len(split), max_len), np.int64)
        for i, tokens in enumerate(split):
            row = [stoi.get(w, unk) for w in tokens][:max_len]
            if mistake == "truncate_pad":
                row = row[-max_len:] if len(tokens) > max_len else row
                ids[i, max_len - len(row) :] = row
            else:
                ids[i, : len(row)] = row
        out.append(ids)
    return out[0], out[1]


def check_encode_splits(encode_splits: Callable, *, fw: Framework) -> None:
    """``encode_splits(train_tokens, test_tokens, *, min_freq, max_len)`` -> two id arrays."""
    with checking(
        "encode_splits", fw, passed="a training-only vocabulary, <unk> for the rest"
    ) as c:
        for case in ENCODE_CASES:
            train = [list(t) for t in case["train"]]
            test = [list(t) for t in case["test"]]
            out = c.call(
                encode_splits,
                train,
                test,
                min_freq=case["min_freq"],
                max_len=case["max_len"],
            )
            if not isinstance(out, tuple | list) or len(out) != 2:
                raise c.fail(
                    f"expected a tuple (train_ids, test_ids), got {type(out).__name__}",
                    "return both encoded splits: return train_ids, test_ids",
                )
            right = encode_reference(
                case["train"],
                case["test"],
                min_freq=case["min_freq"],
                max_len=case["max_len"],
            )
            mistakes = [
                (
                    c.hint(m),
                    encode_reference(
                        case["train"],
                        case["test"],
                        min_freq=case["min_freq"],
                        max_len=case["max_len"],
                        mistake=m,
                    ),
                )
                for m in (
                    "test_leak",
                    "unk_is_pad",
                    "min_freq",
                    "no_specials",
                    "vocab_order",
                    "truncate_pad",
                )
            ]
            for k, split in enumerate(("train_ids", "test_ids")):
                arr = _int_array(c, out[k], split)
                c.close(
                    arr,
                    right[k],
                    what=split,
                    hint="<pad> is 0, <unk> is 1, then the kept training words from 2 by "
                    "decreasing count (ties alphabetical); first max_len tokens, 0 after",
                    mistakes=[(hint, wrong[k]) for hint, wrong in mistakes],
                )
