"""Lab 6 self-checks shared by both frameworks, written once on numpy answers.

Exercises: a padding mask from lengths, masked mean pooling, the output of a recurrent layer at
each sequence's last real step, and a vocabulary built on the training split that maps unknown
words to ``<unk>``. Each answer comes from a numpy reference with a switch per known mistake
(:mod:`helpers.labs.lab06.references`, with the cases); a result that matches a mistake's
answer fails with that mistake's hint (:data:`HINTS`).

The adapters (``torch.py``, ``jax.py``) only say how arrays go in and come out
(:class:`~helpers.labs.kit.Framework`); the calls and the hints live here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, CheckFailed, Framework, Hints, checking
from helpers.labs.lab06.references import (
    ENCODE_CASES,
    ENCODE_MISTAKES,
    LAST_MISTAKES,
    MASK_CASES,
    MASK_MISTAKES,
    MEAN_MISTAKES,
    encode_reference,
    last_cases,
    last_reference,
    mask_reference,
    mean_cases,
    mean_reference,
)

__all__ = [
    "HINTS",
    "check_encode_splits",
    "check_last_true_output",
    "check_length_mask",
    "check_masked_mean",
]

HINTS = Hints(
    {
        "off_by_one_length": "a row of length L holds tokens at positions 0, ..., L - 1: "
        "position t is real when t < L (t <= L also marks the first padding position, "
        "t < L - 1 drops the last token)",
        "polarity": "the mask is True at real tokens and False at padding; yours is the "
        "other way round (ids == PAD, or t >= length, marks the padding)",
        "mask_broadcast": "lengths (B,) and the positions (T,) do not broadcast: compare a row "
        "of positions with a column of lengths, arange(max_len)[None, :] < lengths[:, None], "
        "to get (B, T)",
        "mask_dtype": "return a boolean mask (the comparison itself, e.g. t < length), "
        "not 0/1 numbers: a bool mask can be inverted with ~ and used to select",
        "list_result": "a Python list is not an array: compute the whole batch with the "
        "framework's operations, or turn the rows you built into one array",
        "padding_leaks": "the plain mean over T averages the padding too: multiply by the "
        "mask first, so padded positions add nothing",
        "divide_by_t": "divide the masked sum by each row's number of real tokens, "
        "mask.sum(1) (shape (B, 1)), not by T: a short review would be diluted by its padding",
        "divide_keepdim": "mask.sum(1) has shape (B,) and cannot divide (B, D): keep the "
        "summed axis (sum(1, keepdim=True) in PyTorch, sum(1, keepdims=True) in JAX) so "
        "each row is divided by its own count",
        "mask_axis": "x is (B, T, D) and the mask (B, T): give the mask a trailing axis, "
        "mask[..., None] of shape (B, T, 1), so that it multiplies every feature of its token",
        "flattened": "x[mask] gathers the real tokens of every review into one (N, D) "
        "list, so its mean mixes the reviews: multiply x by the mask and sum over the time "
        "axis (dim 1) to keep one row per review",
        "extra_axis": "your result has an extra axis of size 1, (B, 1, ...): drop it with "
        "squeeze(1), or sum or index without keeping that axis (in a mean, keepdim belongs "
        "on the divisor only)",
        "mean_dtype": "keep the dtype of x (float32): convert the mask with mask.to(x.dtype) "
        "in PyTorch or mask.astype(x.dtype) in JAX, not to float64 or float16",
        "last_padded": "outputs[:, -1] is the last column, which is padding for every "
        "sequence shorter than T: read each row at its own last real step",
        "off_by_one_index": "a sequence of length L ends at index L - 1: "
        "outputs[b, lengths[b] - 1], not outputs[b, lengths[b]]",
        "batch_axis": "outputs[lengths - 1] indexes the batch axis (dim 0): the step is "
        "the second index, outputs[arange(B), lengths - 1]",
        "pair_index": "outputs[:, lengths - 1] picks every length for every row, (B, B, H): "
        "index rows and steps together, outputs[arange(B), lengths - 1]",
        "last_dtype": "return the rows of outputs as they are, in their dtype (float32): "
        "picking a step needs no conversion",
        "test_leak": "a word that occurs only in the test reviews got its own id: build the "
        "vocabulary on the training tokens only, so that unseen words become <unk> (1), as "
        "they would for a new review",
        "unk_is_pad": "an unknown word must map to <unk>, id 1: not to <pad> (id 0), "
        "which the mask would drop as padding, nor to a new id after the vocabulary",
        "unk_missing": "a word missing from the vocabulary (rare, or seen only in the "
        "test reviews) is not a key of your dict: look it up with stoi.get(word, 1) so "
        "that it becomes <unk>",
        "min_freq": "keep only the words seen at least min_freq times in the training "
        "tokens (count them first, e.g. with collections.Counter); rarer ones are <unk>",
        "min_freq_strict": "a word seen exactly min_freq times is kept: count >= min_freq, "
        "not count > min_freq",
        "no_specials": "ids 0 and 1 are reserved for <pad> and <unk>: the most frequent "
        "word is id 2",
        "vocab_order": "number the kept words by decreasing count, ties in alphabetical "
        "order: sorted(words, key=lambda w: (-count[w], w))",
        "ties": "Counter.most_common (like a dict) orders words of equal count by first "
        "appearance: sort them yourself, sorted(words, key=lambda w: (-count[w], w)), so "
        "that ties are alphabetical",
        "truncate_pad": "keep the first max_len tokens of each review and pad with 0 after "
        "them (on the right), so every row has exactly max_len ids",
        "ids_numpy": "convert the numpy ids to the framework's array before returning them",
        "swapped": "return the training ids first: return train_ids, test_ids",
    }
)


# How PyTorch, JAX and numpy word arrays whose shapes do not broadcast.
_BROADCAST = re.compile(
    r"must match the size of tensor|Incompatible shapes for broadcasting|"
    r"could not be broadcast"
)
# ... and a 3-D operand among them: PyTorch names the axis, JAX and numpy print the shapes.
_BROADCAST_3D = re.compile(r"non-singleton dimension 2|\(\d+, ?\d+, ?\d+\)")


def _call(
    c: Checker,
    explain: Callable[[str], str | None],
    fn: Callable,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """``c.call(fn, ...)``; an error the framework left unexplained gets the hint
    ``explain(problem)`` names (a key of :data:`HINTS`), if any."""
    try:
        return c.call(fn, *args, **kwargs)
    except CheckFailed as e:
        key = None if e.hint else explain(e.problem)
        if key:
            raise c.fail(e.problem, c.hint(key)) from None
        raise


def _broadcast(key: str) -> Callable[[str], str | None]:
    """An ``explain`` for :func:`_call`: ``key`` for a broadcasting error, else nothing."""
    return lambda problem: key if _BROADCAST.search(problem) else None


def _array(c: Checker, value: Any, what: str | None = None) -> np.ndarray:
    """``c.array(value)``; a Python list gets the hint that says how to make one array."""
    if isinstance(value, list):
        raise c.fail(
            f"expected {what or c.fw.array_type}, got a Python list",
            c.hint("list_result"),
        )
    return c.array(value, what)


def _int_array(c: Checker, value: Any, what: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        raise c.fail(
            f"{what} is a numpy array, expected {c.fw.array_type}", c.hint("ids_numpy")
        )
    arr = _array(c, value, f"{what} as {c.fw.array_type}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise c.fail(
            f"{what} has dtype {arr.dtype}, expected integer ids",
            "ids are integers: build the tensor from a list of ints (or set an int dtype)",
        )
    return arr


def _compare(
    c: Checker,
    arr: np.ndarray,
    right: np.ndarray,
    mistakes: list[tuple[str, np.ndarray]],
    *,
    shape_hint: str,
    **close: Any,
) -> None:
    """``c.close`` against ``right``; a wrong shape that no mistake explains gets
    ``shape_hint``. ``mistakes`` pairs a key of :data:`HINTS` with the answer it gives."""
    pairs = [(c.hint(key), wrong) for key, wrong in mistakes]
    if arr.shape != right.shape:
        close["hint"] = shape_hint
    c.close(arr, right, mistakes=pairs, **close)


# --- exercise 1: a padding mask from lengths ----------------------------------------------------
def check_length_mask(length_mask: Callable, *, fw: Framework) -> None:
    """``length_mask(lengths (B,) int, max_len)`` -> bool ``(B, max_len)``, True at tokens."""
    with checking(
        "length_mask", fw, passed="True at real tokens, False at padding"
    ) as c:
        for case in MASK_CASES:
            lengths = np.array(case["lengths"], np.int32)
            out = _call(
                c,
                _broadcast("mask_broadcast"),
                length_mask,
                fw.from_numpy(lengths),
                case["max_len"],
            )
            arr = _array(c, out)
            right = mask_reference(lengths, case["max_len"])
            c.shape(arr, right.shape, "one row per sequence, max_len columns")
            if arr.dtype != np.bool_:
                values = np.asarray(arr, np.float64)
                if np.array_equal(values, right):  # the right 0/1 values, not a mask
                    raise c.fail(
                        f"the mask has dtype {arr.dtype}, expected bool",
                        c.hint("mask_dtype"),
                    )
            _compare(
                c,
                arr,
                right,
                [
                    (key, mask_reference(lengths, case["max_len"], m))
                    for key, m in MASK_MISTAKES
                ],
                what="the mask",
                shape_hint="one row per sequence, max_len columns",
                hint="position t of row b is True exactly when t < lengths[b]",
            )
            c.dtype(arr, "bool", c.hint("mask_dtype"))


# --- exercise 2: masked mean pooling ------------------------------------------------------------
def _mean_broadcast(problem: str) -> str | None:
    if not _BROADCAST.search(problem):
        return None
    return "mask_axis" if _BROADCAST_3D.search(problem) else "divide_keepdim"


def check_masked_mean(masked_mean: Callable, *, fw: Framework) -> None:
    """``masked_mean(x (B, T, D), mask (B, T) bool)`` -> ``(B, D)``: mean over real tokens."""
    with checking("masked_mean", fw, passed="the mean of the real tokens only") as c:
        for case in mean_cases():
            x, mask = case["x"], case["mask"]
            out = _call(
                c,
                _mean_broadcast,
                masked_mean,
                fw.from_numpy(x.copy()),
                fw.from_numpy(mask.copy()),
            )
            arr = _array(c, out)
            right = mean_reference(x, mask)
            mistakes = [(key, mean_reference(x, mask, m)) for key, m in MEAN_MISTAKES]
            shape_hint = "one row per review, D features"
            if arr.shape != right.shape:
                _compare(c, arr, right, mistakes, shape_hint=shape_hint)
            c.dtype(arr, "float32", c.hint("mean_dtype"))
            _compare(
                c,
                arr,
                right,
                mistakes,
                what="the pooled features",
                rtol=1e-4,
                atol=1e-5,
                shape_hint=shape_hint,
                hint="sum x * mask over the time axis (dim 1), then divide by the number "
                "of True entries of each row",
            )


# --- exercise 3: the output at each sequence's true length -------------------------------------
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
            arr = _array(c, out)
            if arr.shape == (len(lengths), len(lengths), outputs.shape[2]):
                raise c.fail(
                    f"the result has shape {arr.shape}, expected "
                    f"{(len(lengths), outputs.shape[2])}",
                    c.hint("pair_index"),
                )
            right = last_reference(outputs, lengths)
            mistakes = [
                (key, last_reference(outputs, lengths, m)) for key, m in LAST_MISTAKES
            ]
            hint = "for row b take step lengths[b] - 1 of outputs[b]"
            if arr.shape != right.shape:
                _compare(c, arr, right, mistakes, shape_hint=hint)
            c.dtype(arr, "float32", c.hint("last_dtype"))
            _compare(
                c, arr, right, mistakes, what="the output", shape_hint=hint, hint=hint
            )


# --- exercise 4: a vocabulary from the training split, <unk> for the rest ----------------------
def _key_error(problem: str) -> str | None:
    return "unk_missing" if problem.startswith("your code raised KeyError") else None


def check_encode_splits(encode_splits: Callable, *, fw: Framework) -> None:
    """``encode_splits(train_tokens, test_tokens, *, min_freq, max_len)`` -> two id arrays."""
    with checking(
        "encode_splits", fw, passed="a training-only vocabulary, <unk> for the rest"
    ) as c:
        for case in ENCODE_CASES:
            kw = dict(min_freq=case["min_freq"], max_len=case["max_len"])
            train = [list(t) for t in case["train"]]
            test = [list(t) for t in case["test"]]
            out = _call(c, _key_error, encode_splits, train, test, **kw)
            if not isinstance(out, tuple | list) or len(out) != 2:
                got = type(out).__name__
                if isinstance(out, tuple | list):
                    got = f"a {got} of {len(out)}"
                elif not isinstance(out, np.ndarray | type(None)):
                    try:  # one array of the framework: its class name says little
                        got = f"one array of shape {tuple(fw.to_numpy(out).shape)}"
                    except Exception:
                        pass
                raise c.fail(
                    f"expected a tuple (train_ids, test_ids), got {got}",
                    "return both encoded splits: return train_ids, test_ids",
                )
            right = encode_reference(case["train"], case["test"], **kw)
            mistakes = [
                (key, encode_reference(case["train"], case["test"], **kw, mistake=m))
                for key, m in ENCODE_MISTAKES
            ]
            for k, split in enumerate(("train_ids", "test_ids")):
                arr = _int_array(c, out[k], split)
                if arr.shape == right[1 - k].shape != right[k].shape:
                    raise c.fail(
                        f"{split} has shape {arr.shape}, expected {right[k].shape}",
                        c.hint("swapped"),
                    )
                if arr.ndim == 2 and arr.shape[1] != kw["max_len"]:
                    raise c.fail(
                        f"{split} has {arr.shape[1]} columns, expected max_len = "
                        f"{kw['max_len']}",
                        c.hint("truncate_pad"),
                    )
                _compare(
                    c,
                    arr,
                    right[k],
                    [(key, wrong[k]) for key, wrong in mistakes],
                    what=split,
                    shape_hint="one row per review, max_len columns",
                    hint="<pad> is 0, <unk> is 1, then the kept training words from 2 by "
                    "decreasing count (ties alphabetical); first max_len tokens, 0 after",
                )
