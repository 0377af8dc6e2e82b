"""Lab 6 self-checks shared by both frameworks, written once on numpy answers.

Exercises 1 and 4: a padding mask from lengths, and a vocabulary built on the training split
that maps unknown words to ``<unk>`` (exercise 2, masked attention pooling, is
:mod:`~.attention_pool`; exercise 3, rotary position embeddings, :mod:`~.rope`; exercise 5,
:mod:`~.reverse`). Each answer comes from a numpy
reference with a switch per known mistake (:mod:`helpers.labs.lab06.references`, with the
cases); a result that matches a mistake's answer fails with that mistake's hint
(:data:`~helpers.labs.lab06.mistakes.HINTS`). A call of the chapter's helper that answers an
exercise (``helpers.data.text.build_vocab``, ...) fails, and so does a write into an input (a
tensor, or the token lists).

The adapters (``torch.py``, ``jax.py``) only say how arrays go in and come out
(:class:`~helpers.labs.kit.Framework`); the calls and the hints live here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, CheckFailed, Framework, checking, recording
from helpers.labs.lab06.mistakes import HINTS, answer_keys
from helpers.labs.lab06.references import (
    ENCODE_CASES,
    ENCODE_MISTAKES,
    MASK_CASES,
    MASK_MISTAKES,
    encode_reference,
    mask_reference,
)

__all__ = [
    "HINTS",
    "check_encode_splits",
    "check_length_mask",
]

# How PyTorch, JAX and numpy word arrays whose shapes do not broadcast.
# (JAX raises a TypeError, "mul got incompatible shapes", when both operands have 3 axes.)
_BROADCAST = re.compile(
    r"must match the size of tensor|Incompatible shapes for broadcasting|"
    r"could not be broadcast",
    re.IGNORECASE,
)


def _call(
    c: Checker,
    explain: Callable[[str], str | None],
    fn: Callable,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """``c.call(fn, ...)``; an error the framework left unexplained gets the hint
    ``explain(problem)`` names (a key of :data:`HINTS`), if any. A call of the chapter's
    helper that answers the exercise (:func:`~helpers.labs.lab06.mistakes.answer_keys`)
    fails with that exercise's hint."""
    hint_key, keys = answer_keys(c.exercise, c.fw.name)
    with recording(keys) as called:
        try:
            result = c.call(fn, *args, **kwargs)
        except CheckFailed as e:
            key = None if e.hint else explain(e.problem)
            if key:
                raise c.fail(e.problem, c.hint(key)) from None
            raise
    if called:
        raise c.fail(
            f"your function called the chapter's {called[0]}", c.hint(hint_key)
        )
    return result


def _unchanged(c: Checker, given: list[Any], originals: list[np.ndarray]) -> None:
    """Fail if the student's function wrote into an array it was handed (PyTorch only:
    JAX arrays cannot change; the hint ``in_place`` is the PyTorch adapter's)."""
    for value, original in zip(given, originals, strict=True):
        if not np.array_equal(c.fw.to_numpy(value), original):
            raise c.fail("an input tensor changed during the call", c.hint("in_place"))


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
            given = fw.from_numpy(lengths.copy())
            out = _call(
                c, _broadcast("mask_broadcast"), length_mask, given, case["max_len"]
            )
            _unchanged(c, [given], [lengths])
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


# --- exercise 4: a vocabulary from the training split, <unk> for the rest ----------------------
# What torch.tensor and numpy (under jnp.asarray) say of rows of different lengths, and of
# a None among the ids (stoi.get(word) without a default).
_RAGGED = re.compile(r"expected sequence of length \d+ at dim|inhomogeneous")
_NONE_ID = re.compile(r"NoneType|None is not a valid value|numpy\.object_")


def _encode_error(problem: str) -> str | None:
    if problem.startswith("your code raised KeyError"):
        return "unk_missing"
    if _NONE_ID.search(problem):
        return "unk_none"
    return "ragged" if _RAGGED.search(problem) else None


def check_encode_splits(encode_splits: Callable, *, fw: Framework) -> None:
    """``encode_splits(train_tokens, test_tokens, *, min_freq, max_len)`` -> two id arrays."""
    with checking(
        "encode_splits", fw, passed="a training-only vocabulary, <unk> for the rest"
    ) as c:
        for case in ENCODE_CASES:
            kw = dict(min_freq=case["min_freq"], max_len=case["max_len"])
            train = [list(t) for t in case["train"]]
            test = [list(t) for t in case["test"]]
            out = _call(c, _encode_error, encode_splits, train, test, **kw)
            if train != case["train"] or test != case["test"]:
                raise c.fail(
                    "the token lists you were given changed during the call",
                    c.hint("tokens_changed"),
                )
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
                if arr.shape == right[k].shape[::-1] != right[k].shape:
                    raise c.fail(
                        f"{split} has shape {arr.shape}, expected {right[k].shape}",
                        c.hint("ids_transposed"),
                    )
                reviews = case["train" if k == 0 else "test"]
                longest = max(len(tokens) for tokens in reviews)
                if arr.ndim == 2 and arr.shape[1] == longest < kw["max_len"]:
                    raise c.fail(
                        f"{split} has {arr.shape[1]} columns (its longest review), "
                        f"expected max_len = {kw['max_len']}",
                        c.hint("pad_longest"),
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
