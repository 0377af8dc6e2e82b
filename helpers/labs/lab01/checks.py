"""Lab 1 self-checks shared by both frameworks (exercises 1 and 3), written once on numpy answers.

Each ``check_*`` takes the student's function and a :class:`~helpers.labs.kit.Framework`;
``helpers.labs.lab01.torch`` and ``.jax`` bind it (and add exercise 5, which differs per
framework), so a notebook calls ``H.lab01.check_preprocess(preprocess)``.

Every check calls the student's function at least twice, on different inputs (a hard-coded
answer, hidden state or an ignored argument shows), checks the type the exercise names, and
uses inputs on which the typical mistakes give visibly wrong answers. Expected answers are
computed here in float64 numpy, independently of the solutions; the shared hints, and what the
known mistakes return, are in :mod:`helpers.labs.lab01.mistakes`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, Framework, Watch, checking
from helpers.labs.lab01.mistakes import HINTS, preprocess_mistakes

__all__ = [
    "HINTS",
    "array_result",
    "check_mse_grad",
    "check_preprocess",
    "float_result",
    "untouched",
]


def float_result(
    c: Checker, value: Any, what: str = "the result", many: str | None = None
) -> float:
    """A Python float, or a failure whose hint says how to convert a 0-d array (or, for an
    array of several numbers, the hint ``many``: how to reduce them to one)."""
    if isinstance(value, float):
        return float(value)
    try:
        arr = c.fw.to_numpy(value)
    except Exception:
        return c.python_float(value, what)
    if many is not None and arr.size > 1:
        raise c.fail(
            f"{what} should be one number, got an array of shape {arr.shape}",
            c.hint(many),
        )
    raise c.fail(
        f"{what} should be a Python float, got {c.fw.array_type}", c.hint("not_float")
    )


def array_result(c: Checker, value: Any) -> np.ndarray:
    """The framework array ``value`` as numpy; a Python list (``.tolist()``) fails with a hint
    of its own, not the kit's "one value, not a list"."""
    if isinstance(value, list):
        raise c.fail(f"expected {c.fw.array_type}, got list", c.hint("array_tolist"))
    return c.array(value)


# --- Exercise 1: from uint8 images to model inputs -----------------------------------------------
def _preprocess_case(c: Checker, preprocess: Callable, images: np.ndarray) -> None:
    n = len(images)
    expected = images.reshape(n, 784).astype(np.float64) / 255
    flat = images.reshape(n, 784).astype(np.float64)
    out = c.call(preprocess, c.fw.from_numpy(images.copy()))
    arr = array_result(c, out)
    c.shape(arr, (n, 784), c.hint("preprocess_shape"))
    c.dtype(arr, "float32", c.hint("preprocess_dtype"))
    c.close(
        arr,
        expected,
        what="a pixel value",
        rtol=1e-6,
        atol=1e-6,
        hint="row i holds image i's pixels in reading order (a plain reshape, no "
        "transpose), each divided by 255",
        mistakes=[(c.hint(key), wrong) for key, wrong in preprocess_mistakes(flat)],
    )


def check_preprocess(preprocess: Callable, fw: Framework) -> None:
    """Exercise 1: ``preprocess(images) -> (N, 784) float32`` on two batches."""
    rng = np.random.default_rng(0)
    # No pixel reaches 255 here, and image 0 is dim: dividing by the data's maximum shows.
    dim = rng.integers(0, 251, size=(5, 28, 28), dtype=np.uint8)
    dim[0] //= 2
    dim[1, 0, 0] = 250
    # Both ends of the range, and another batch size (a hard-coded 5 shows).
    full = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    full[0, 0, 0], full[1, 0, 0] = 255, 0
    with checking(
        "preprocess", fw, passed="shape (N, 784), float32, pixel / 255 on two batches"
    ) as c:
        _preprocess_case(c, preprocess, dim)
        _preprocess_case(c, preprocess, full)


# --- Exercise 3: a gradient by automatic differentiation -----------------------------------------
def untouched(c: Checker, value: Any, before: np.ndarray, name: str) -> None:
    """Fail if the student's function changed its input or left autograd state on it."""
    leftover = c.fw.side_effects(value)
    if leftover is not None:
        # Exercise 4's x: grad_f is the gradient under test, no autograd needed on x.
        key = "dgc_autograd" if name == "x" else "caller_requires_grad"
        raise c.fail(
            f"your function changed the caller's {name}: {leftover}", c.hint(key)
        )
    if not np.array_equal(c.fw.to_numpy(value), before):  # possible in PyTorch only
        raise c.fail(
            f"your function changed the values of the caller's {name}",
            c.hint("changed_input"),
        )


def _mse_grad_case(
    c: Checker, mse_grad: Callable, w_in: Any, X, y, autodiff: Watch
) -> None:
    w = c.fw.to_numpy(w_in).astype(np.float64)
    expected = 2 / len(y) * X.T.astype(np.float64) @ (X.astype(np.float64) @ w - y)
    with autodiff() as ran:
        out = c.call(mse_grad, w_in, c.fw.from_numpy(X), c.fw.from_numpy(y))
    untouched(c, w_in, w.astype(np.float32), "w")
    if out is None and "grad_none" in c.fw.hints:
        raise c.fail("expected " + c.fw.array_type + ", got None", c.hint("grad_none"))
    arr = array_result(c, out)
    for name, shape, key in (
        ("X", X.shape, "mse_grad_wrt_X"),
        ("y", y.shape, "mse_grad_wrt_y"),
        ("the loss, one number", (), "mse_grad_loss"),
    ):
        if arr.shape != w.shape and arr.shape == shape:
            raise c.fail(
                f"the result has shape {arr.shape}, that of {name}, expected {w.shape}",
                c.hint(key),
            )
    c.shape(arr, w.shape, "return one partial derivative per entry of w")
    c.dtype(arr, "float32", c.hint("mse_grad_dtype"))
    c.close(
        arr,
        expected,
        what="a gradient entry",
        rtol=1e-4,
        atol=1e-5,
        hint="differentiate loss(w) = mean((X @ w - y) ** 2) with respect to w",
        mistakes=[
            (c.hint("mse_grad_sign"), -expected),
            (c.hint("mse_grad_sum"), expected * len(y)),
            (c.hint("mse_grad_half"), expected / 2),
            (c.hint("mse_grad_w"), w),  # w itself (PyTorch: the copy, not its .grad)
            # y[:, None] or w[:, None]: the loss averages an (N, N) table, (Xw)_i - y_j.
            (c.hint("mse_grad_broadcast"), 2 / len(y) * X.T @ (X @ w - y.mean())),
        ],
    )
    c.expect(
        bool(ran) or not ran.complete,
        "the gradient is right, but no automatic differentiation ran",
        c.hint("mse_grad_by_hand"),
    )


def check_mse_grad(mse_grad: Callable, fw: Framework, autodiff: Watch) -> None:
    """Exercise 3. ``autodiff()`` watches the framework's differentiation while the
    student's function runs (the adapter's ``autodiff_calls``): if it saw none, and knows it
    would have, the gradient was derived by hand and fails."""
    rng = np.random.default_rng(1)
    X, X2 = rng.normal(size=(8, 3)), rng.normal(size=(6, 4))
    y, y2 = rng.normal(size=8), rng.normal(size=6)
    w, w2 = rng.normal(size=3), rng.normal(size=4)
    X, X2, y, y2, w, w2 = (a.astype(np.float32) for a in (X, X2, y, y2, w, w2))
    with checking(
        "mse_grad", fw, passed="2/n X^T (Xw - y) on two problems, twice"
    ) as c:
        w_in = fw.from_numpy(w)
        # The same w twice: a gradient that accumulates between calls shows.
        _mse_grad_case(c, mse_grad, w_in, X, y, autodiff)
        _mse_grad_case(c, mse_grad, w_in, X, y, autodiff)
        _mse_grad_case(c, mse_grad, fw.from_numpy(w2), X2, y2, autodiff)
