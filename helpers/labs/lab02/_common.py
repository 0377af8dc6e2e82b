"""What Lab 2's three checks share: reading the student's result and guarding the inputs.

A tuple result is read back part by part (:func:`_parts`) with its shape and dtype checked
under the part's name (``dx``, ``dq``...); the inputs go in as fresh copies in the
student's framework (:func:`_inputs`), and a function that writes into them fails
(:func:`_untouched`; only PyTorch allows it); a function that calls the library's own version
of the exercise, the answer key, fails (:func:`call_refusing`). Used by
:mod:`~helpers.labs.lab02.backprop`, :mod:`~helpers.labs.lab02.gru` and
:mod:`~helpers.labs.lab02.attention`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, CheckFailed, Framework, Watch


def call_refusing(
    c: Checker, watch_answer_keys: Watch, hint_key: str, fn: Callable, *args: Any
) -> Any:
    """``c.call(fn, *args)``; fail with hint ``hint_key`` if ``fn`` called an answer key.

    ``watch_answer_keys()`` watches the library functions that solve the exercise outright:
    the adapter's ``autodiff_calls`` (autodiff under any name), or a ``recording`` of the
    framework's GRU cells or attention (calls through the module or class only). A function
    that called one and then crashed gets the answer key's hint too.
    """
    failure = None
    with watch_answer_keys() as called:
        try:
            result = c.call(fn, *args)
        except CheckFailed as e:  # the answer key, misused, may be what raised
            failure = e
    if called:
        raise c.fail(
            f"your function called the library's {called[0]}", c.hint(hint_key)
        )
    if failure is not None:
        raise failure
    return result


def _parts(c: Checker, out: Any, names: Sequence[str], hint: str) -> list[np.ndarray]:
    """The tuple the exercise asks for, each entry as numpy; fail on anything else."""
    what = f"a tuple ({', '.join(names)})"
    try:
        c.fw.to_numpy(out)
        got = c.fw.array_type  # one array instead of a tuple
    except Exception:
        got = type(out).__name__
        if isinstance(out, tuple | list) and len(out) != len(names):
            got = f"a {got} of {len(out)}"
    if not isinstance(out, tuple | list) or len(out) != len(names):
        raise c.fail(f"expected {what}, got {got}", hint)
    return [
        c.array(part, f"{c.fw.array_type} for {name}")
        for part, name in zip(out, names, strict=True)
    ]


def _untouched(
    c: Checker, inputs: dict[str, Any], before: dict[str, np.ndarray]
) -> None:
    """Fail if the student's function wrote into an input (possible in PyTorch only)."""
    if "changed_input" not in c.fw.hints:
        return
    for name, value in inputs.items():
        if not np.array_equal(c.fw.to_numpy(value), before[name]):
            raise c.fail(
                f"your function changed the values of the caller's {name}",
                c.hint("changed_input"),
            )


def _inputs(fw: Framework, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    return {name: fw.from_numpy(a.copy()) for name, a in arrays.items()}


def _shape(
    c: Checker, arr: np.ndarray, name: str, expected: tuple[int, ...], hint: str
) -> None:
    """``c.shape``, but the message names the part of the tuple (dx, db, h_new...)."""
    if tuple(arr.shape) != tuple(expected):
        raise c.fail(f"{name} has shape {tuple(arr.shape)}, expected {expected}", hint)


def _dtype(c: Checker, arr: np.ndarray, name: str, hint: str) -> None:
    if arr.dtype != np.float32:
        raise c.fail(f"{name} has dtype {arr.dtype}, expected float32", hint)


def _or_precision(c: Checker, got: np.ndarray, expected: np.ndarray, hint: str) -> str:
    """``hint``, or the precision hint if ``got`` is right to 1e-2 only (float16, bfloat16).

    A named mistake still wins: :meth:`Checker.close` gives a matching mistake's hint first.
    """
    if got.shape == expected.shape and np.allclose(got, expected, rtol=1e-2, atol=1e-2):
        return c.hint("precision")
    return hint
