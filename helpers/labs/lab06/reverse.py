"""Lab 6, exercise 5: reverse each sequence within its length (the input of a backward RNN).

``reverse_padded(x (B, T, ...), lengths (B,))`` returns ``x`` with the first ``lengths[b]``
steps of row ``b`` in reverse order and the padding left where it was, at the end. The cases,
the numpy answer (:func:`reverse_reference`, with a switch per known mistake) and the check
are here; the hints are :data:`helpers.labs.lab06.mistakes.HINTS`, bound per framework by the
adapters (``torch.py``, ``jax.py``). ``tests/labs/test_lab06.py`` asserts that the reference
feeds a one-way LSTM what the backward direction of PyTorch's packed bidirectional LSTM and
Flax's ``nnx.RNN(..., reverse=True, keep_order=True)`` read, and that every mistake moves it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, CheckFailed, Framework, checking

__all__ = [
    "REVERSE_MISTAKES",
    "check_reverse_padded",
    "reverse_cases",
    "reverse_index",
    "reverse_reference",
]

# Each known mistake whose whole answer is known: (the key of its hint, its name below). The
# check tries them in this order: on a (B, T) case the feature axis is the time axis, so a
# whole-row flip must be named first.
REVERSE_MISTAKES = [
    ("reverse_whole_row", "flip_whole"),
    ("reverse_axis", "batch_axis"),
    ("reverse_axis", "feature_axis"),
    ("reverse_clamped", "clamped"),
    ("padding_changed", "padding_zeroed"),
]
# The off-by-one indices, L - t and L - 2 - t: one end of each row reads past the row, which
# PyTorch refuses (an error), JAX's take_along_axis fills (NaN, or the int minimum) and
# negative indices wrap; the check compares only the steps whose index stays in the row.
OFF_BY_ONE = ("plus_one", "minus_one")


def reverse_cases() -> list[dict[str, np.ndarray]]:
    """``x`` and ``lengths (B,)`` int64: a float32 ``(B, T, H)`` case, then two int ``(B, T)``.

    The first two cases have distinct lengths, a full-length row and a length-1 row; the third
    is padded past its longest row (``T > max(lengths)``). The float case comes
    first (its features tell the time axis from the others) and has non-zero padding unlike
    any real token, so zeroed or repeated padding shows; the int case is token ids padded
    with 0, as the chapter's batches are.
    """
    rng = np.random.default_rng(65)
    x = rng.normal(size=(4, 6, 3)).astype(np.float32) + 2.0
    ids = np.zeros((5, 7), np.int64)
    lengths_ids = np.array([3, 7, 1, 5, 2], np.int64)
    for b, n in enumerate(lengths_ids):
        ids[b, :n] = rng.choice(np.arange(2, 50), size=n, replace=False)
    padded = np.zeros((3, 8), np.int64)  # padded past its longest row, to a fixed T
    lengths_padded = np.array([5, 2, 6], np.int64)
    for b, n in enumerate(lengths_padded):
        padded[b, :n] = rng.choice(np.arange(2, 50), size=n, replace=False)
    return [
        {"x": x, "lengths": np.array([6, 3, 1, 4], np.int64)},
        {"x": ids, "lengths": lengths_ids},
        {"x": padded, "lengths": lengths_padded},
    ]


def reverse_index(lengths: np.ndarray, t: int, mistake: str = "") -> np.ndarray:
    """``(B, T)`` int: the step that position ``s`` of row ``b`` reads, ``L - 1 - s`` for
    ``s < L`` and ``s`` itself for the padding; ``mistake`` computes a wrong one."""
    s = np.arange(t)[None, :]
    n = np.asarray(lengths)[:, None]
    inside = s < n
    if mistake == "plus_one":
        return np.where(inside, n - s, s)
    if mistake == "minus_one":
        return np.where(inside, n - 2 - s, s)
    if mistake == "clamped":  # (L - 1 - s).clamp(min=0): the padding reads step 0
        return np.maximum(n - 1 - s, 0)
    return np.where(inside, n - 1 - s, s)


def _gather(x: np.ndarray, index: np.ndarray) -> np.ndarray:
    index = index.reshape(index.shape + (1,) * (x.ndim - 2))
    return np.take_along_axis(x, np.broadcast_to(index, x.shape), axis=1)


def reverse_reference(
    x: np.ndarray, lengths: np.ndarray, mistake: str = ""
) -> np.ndarray:
    """``x`` with each row's first ``lengths[b]`` steps reversed, padding kept at the end.

    ``mistake`` computes a known wrong answer; for an off-by-one index (:data:`OFF_BY_ONE`)
    the steps whose index leaves the row are undefined (they hold whatever, masked by
    :func:`off_by_one_valid`).
    """
    x = np.asarray(x)
    t = x.shape[1]
    if mistake == "flip_whole":  # x.flip(1), x[:, ::-1]: the padding moves to the front
        return x[:, ::-1]
    if mistake == "batch_axis":
        return x[::-1]
    if mistake == "feature_axis":
        return x[..., ::-1]
    if mistake == "padding_zeroed":  # the right real tokens, the padding set to 0
        right = reverse_reference(x, lengths)
        inside = np.arange(t)[None, :] < np.asarray(lengths)[:, None]
        return np.where(inside.reshape(inside.shape + (1,) * (x.ndim - 2)), right, 0)
    index = reverse_index(lengths, t, mistake)
    return _gather(x, np.clip(index, 0, t - 1))


def off_by_one_valid(lengths: np.ndarray, t: int, mistake: str) -> np.ndarray:
    """bool ``(B, T)``: where the off-by-one ``mistake``'s index stays inside the row."""
    index = reverse_index(lengths, t, mistake)
    return (index >= 0) & (index < t)


# --- the check -----------------------------------------------------------------------------------
# PyTorch's gather and indexing refuse an index past either end of the time axis; past the
# end of the batch axis (dimension 0), the steps were used to index the rows: x[index].
_OUT_OF_BOUNDS = re.compile(r"index -?\d+ is out of bounds")
_BATCH_OUT_OF_BOUNDS = re.compile(r"index -?\d+ is out of bounds for dimension 0")


def _call(c: Checker, fn: Callable, *args: Any) -> Any:
    """``c.call``; an index past the row (PyTorch raises) gets this exercise's hint."""
    try:
        return c.call(fn, *args)
    except CheckFailed as e:
        if _BATCH_OUT_OF_BOUNDS.search(e.problem):
            raise c.fail(e.problem, c.hint("reverse_batch_index")) from None
        if _OUT_OF_BOUNDS.search(e.problem):
            raise c.fail(e.problem, c.hint("reverse_off_by_one")) from None
        raise


def _result(c: Checker, value: Any) -> np.ndarray:
    if isinstance(value, list):
        raise c.fail(
            f"expected {c.fw.array_type}, got a Python list", c.hint("list_result")
        )
    if isinstance(value, np.ndarray):
        raise c.fail(
            f"the result is a numpy array, expected {c.fw.array_type}",
            c.hint("reverse_numpy"),
        )
    return c.array(value)


def _same(arr: np.ndarray, target: np.ndarray, where: np.ndarray | None = None) -> bool:
    """Equal (float32 within rounding) in shape and values; only at ``where`` if given."""
    if arr.shape != target.shape:
        return False
    a, b = np.asarray(arr, np.float64), np.asarray(target, np.float64)
    if where is not None:
        where = np.broadcast_to(
            where.reshape(where.shape + (1,) * (a.ndim - 2)), a.shape
        )
        a, b = a[where], b[where]
    return bool(np.allclose(a, b, rtol=1e-6, atol=1e-6))


def _index_shape(c: Checker, arr: np.ndarray, x: np.ndarray) -> None:
    """Fail for the shapes of x[:, index] (B, B, T, ...) and x[index] (B, T, T, ...), which
    index one axis with the whole (B, T) index (JAX clamps the steps past the batch)."""
    b, t = x.shape[:2]
    for shape, key in (
        ((b, *x.shape), "reverse_pair_index"),
        ((b, t, *x.shape[1:]), "reverse_batch_index"),
    ):
        if arr.shape == shape:
            raise c.fail(
                f"the result has shape {arr.shape}, expected {x.shape} (that of x)",
                c.hint(key),
            )


def check_reverse_padded(reverse_padded: Callable, *, fw: Framework) -> None:
    """``reverse_padded(x (B, T, ...), lengths (B,))`` -> ``x`` reversed within each length."""
    with checking(
        "reverse_padded",
        fw,
        passed="each row's real steps reversed, its padding left at the end",
    ) as c:
        for case in reverse_cases():
            x, lengths = case["x"], case["lengths"]
            given = [fw.from_numpy(x.copy()), fw.from_numpy(lengths.copy())]
            dtype = fw.to_numpy(given[0]).dtype  # JAX holds int64 ids as int32
            out = _call(c, reverse_padded, *given)
            for value, original in zip(given, (x, lengths), strict=True):
                if not np.array_equal(fw.to_numpy(value), original):
                    raise c.fail(
                        "an input tensor changed during the call", c.hint("in_place")
                    )
            arr = _result(c, out)
            _index_shape(c, arr, x)
            longest = int(lengths.max())
            if arr.ndim == x.ndim and arr.shape[1] == longest < x.shape[1]:
                raise c.fail(
                    f"the result has {longest} steps (the longest length), expected "
                    f"T = {x.shape[1]} (x's)",
                    c.hint("reverse_length"),
                )
            right = reverse_reference(x, lengths)
            kind = f"{dtype} {tuple(x.shape)}"
            rounded = arr.shape == right.shape and np.allclose(
                np.asarray(arr, np.float64), right, rtol=1e-2, atol=1e-2
            )
            if rounded and arr.dtype != dtype:  # the right steps in another dtype
                raise c.fail(
                    f"the result has dtype {arr.dtype}, expected {dtype} (that of x)",
                    c.hint("reverse_dtype"),
                )
            if not _same(arr, right):
                for key, mistake in REVERSE_MISTAKES:
                    if _same(arr, reverse_reference(x, lengths, mistake)):
                        raise c.fail(f"the {kind} case: {_WRONG[mistake]}", c.hint(key))
                for mistake in OFF_BY_ONE:
                    valid = off_by_one_valid(lengths, x.shape[1], mistake)
                    if _same(arr, reverse_reference(x, lengths, mistake), valid):
                        raise c.fail(
                            f"the {kind} case: a row's steps are shifted by one",
                            c.hint("reverse_off_by_one"),
                        )
                inside = np.arange(x.shape[1])[None, :] < lengths[:, None]
                if _same(arr, right, inside):
                    raise c.fail(
                        f"the {kind} case: the real steps are right, the padding "
                        "after them is not",
                        c.hint("padding_changed"),
                    )
                c.close(
                    arr,
                    right,
                    what=f"the {kind} case",
                    hint="position s < L of row b holds step L - 1 - s "
                    "(L = lengths[b]); the padding, s >= L, keeps step s",
                )
            c.dtype(arr, str(dtype), c.hint("reverse_dtype"))


_WRONG = {
    "flip_whole": "the padding moved to the front of the rows",
    "batch_axis": "the rows (the batch axis) are in reverse order",
    "feature_axis": "the features (the last axis) are in reverse order",
    "clamped": "the padding repeats a real token",
    "padding_zeroed": "the real steps are right, the padding after them is zero",
}
