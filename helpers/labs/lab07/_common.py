"""What Lab 7's checks share: the inputs in the student's framework, the results read back.

:func:`_inputs` hands a case's arrays to the student's code as copies in its framework;
:func:`_unchanged` fails when the student's code changed one of them in place; :func:`_array`
and :func:`_pair` read one result, or the two of a ``(a, b)`` answer, back as numpy, failing
with a hint on a Python float, an integer or float64 array or a result of the wrong kind.
Used by :mod:`~helpers.labs.lab07.returns` and :mod:`~helpers.labs.lab07.ppo`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from helpers.labs.kit import Checker, Framework


def _inputs(arrays: dict[str, np.ndarray], fw: Framework) -> dict[str, Any]:
    """The case's arrays in the student's framework (copies: the references stay intact)."""
    return {k: fw.from_numpy(v.copy()) for k, v in arrays.items()}


def _unchanged(
    c: Checker, given: dict[str, Any], arrays: dict[str, np.ndarray], fw: Framework
) -> None:
    """Fail when the student's code wrote into one of its inputs (``+=``, ``x[t] = ...``).

    Only PyTorch's tensors can change in place; the hint (``input_changed``) is PyTorch's.
    """
    for name, value in given.items():
        if not np.array_equal(fw.to_numpy(value), arrays[name]):
            raise c.fail(
                f"your function changed its input {name} in place",
                fw.hints.get("input_changed", ""),
            )


def _array(c: Checker, value: Any, what: str, fw: Framework) -> np.ndarray:
    """``value`` as numpy; a Python float (``.item()``) fails with its own hint.

    The result must be a float32 array, the inputs' dtype: an integer array and any other
    float (float64 from NumPy or ``.double()``, float16) fail with their own hints.
    """
    if isinstance(value, float):
        raise c.fail(
            f"expected {fw.array_type} for {what}, got float", c.hint("python_float")
        )
    arr = c.array(value, f"{fw.array_type} for {what}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise c.fail(
            f"{what} has dtype {arr.dtype}, expected a float dtype",
            c.hint("integer_dtype"),
        )
    if arr.dtype != np.float32:
        raise c.fail(
            f"{what} has dtype {arr.dtype}, expected float32 (the inputs' dtype)",
            fw.hints.get("float32", ""),
        )
    return arr


def _pair(c: Checker, out: Any, names: tuple[str, str], fw: Framework) -> tuple:
    """The two arrays of a ``(a, b)`` answer as numpy, or a failure that says what to return."""
    if not isinstance(out, tuple | list) or len(out) != 2:
        got = type(out).__name__
        if isinstance(out, tuple | list):  # not "expected a tuple, got tuple"
            got = f"a {got} of {len(out)}"
        raise c.fail(
            f"expected a tuple ({names[0]}, {names[1]}), got {got}",
            f"return both: return {names[0]}, {names[1]}",
        )
    return tuple(_array(c, x, n, fw) for x, n in zip(out, names, strict=True))
