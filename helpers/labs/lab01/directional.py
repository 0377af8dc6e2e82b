"""Lab 1, exercise 4: a gradient check along given directions, in both frameworks.

``directional_gradient_error(f, grad_f, x, eps, directions) -> float``: for each row ``v`` of
``directions`` (K, D), the central difference ``fd = (f(x + eps v) - f(x - eps v)) / (2 eps)``
against ``g . v`` with ``g = grad_f(x)``; the result is the largest relative error,
``max_v |g . v - fd| / max(|g . v|, |fd|, TINY)``. Two evaluations of ``f`` per direction and
one gradient, whatever the size of ``x`` (chapter 1's per-coordinate check takes 2 D).

The check runs five cases: two exact gradients (the answer is the central difference's own
error, of order eps ** 2, which the large steps make visible, so a one-sided difference
shows), a gradient missing a term and a gradient of another function (large errors, where
the choice of denominator shows), and an exact gradient at a minimum, where g . v and fd are
both 0 and only the 1e-12 floor keeps the answer from 0 / 0. The reference and the known
mistakes are computed here in float64 NumPy from the same float32 inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, Framework, Hints, checking
from helpers.labs.lab01.checks import float_result, untouched

__all__ = ["HINTS", "TINY", "check_directional_gradient_error", "directional_mistakes"]

TINY = 1e-12  # the denominator's floor: 0 / 0 never happens

HINTS = Hints(
    {
        "dgc_forward": "that is a one-sided difference, (f(x + eps v) - f(x)) / eps or "
        "(f(x) - f(x - eps v)) / eps, whose error is of order eps; use the central one, "
        "(f(x + eps v) - f(x - eps v)) / (2 * eps), of order eps ** 2",
        "dgc_one_eps": "x + eps v and x - eps v are 2 eps apart: divide their difference by "
        "(2 * eps), with the brackets (a / 2 * eps multiplies by eps)",
        "dgc_absolute": "return the relative error, |g . v - fd| / max(|g . v|, |fd|, "
        "1e-12), not the absolute |g . v - fd|: it does not depend on the scale of f",
        "dgc_denominator": "divide by max(|g . v|, |fd|, 1e-12), the larger of the two "
        "magnitudes, not by one of them or their sum",
        "dgc_signed": "take the absolute value of g . v - fd before dividing and taking the "
        "max: an error of either sign counts",
        "dgc_first": "compute the error for every direction, every row of directions, and "
        "return the largest one, not only the first or the last row's",
        "dgc_mean": "return the largest relative error over the directions (max), not the "
        "mean, the sum, the norm or the smallest",
        "dgc_vector": "return one number, the largest relative error over the directions "
        "(max), not one error per direction",
        "dgc_unscaled": "step by eps along v: evaluate f(x + eps * v) and f(x - eps * v), "
        "not f(x + v) and f(x - v), nor f(x + eps + v)",
        "dgc_dot": "the directional derivative is the dot product of the gradient with v, "
        "sum_i g_i v_i (g @ v), not the sum of the gradient's entries nor the mean of "
        "g * v",
        "dgc_rows": "each row of directions, shape (K, D), is one direction of D entries, "
        "like x: loop over the rows (for v in directions), not over the columns",
        "dgc_rounded": "return the largest error as it is, unrounded: round only where you "
        "print it (f'{error:.1e}')",
        "dgc_tiny": "keep the 1e-12 in the denominator, max(|g . v|, |fd|, 1e-12): where "
        "g . v and fd are both 0 (x at a minimum, or a flat direction) the error is 0, "
        "while 0 / 0 is NaN (or a ZeroDivisionError)",
        "dgc_ignores_eps": "your result is smaller than a step of eps allows: use the "
        "argument eps as the step, and compare with grad_f(x), the gradient under test (not "
        "one you computed yourself)",
    }
)


def _cube(x: Any) -> Any:
    return (x**3).sum()


def _cube_grad(x: Any) -> Any:
    return 3 * x**2  # exact: only the finite difference's own error remains


def _cube_plus(x: Any) -> Any:
    return (x**3).sum() + x[0] * x[1]


def _square(x: Any) -> Any:
    return (x**2).sum()


def _square_grad(x: Any) -> Any:
    return 2 * x


def _quartic(x: Any) -> Any:
    return (x**4).sum() / 4


def _quartic_grad(x: Any) -> Any:
    return x**3


def _relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), TINY)


def directional_mistakes(
    f: Callable, g: np.ndarray, x: np.ndarray, eps: float, directions: np.ndarray
) -> tuple[float, list[tuple[str, Any]]]:
    """Exercise 4's right answer, and (hint key, result) for each known mistake, in float64."""
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 at a minimum
        return _mistakes(f, g, x, eps, directions)


def _mistakes(f, g, x, eps, directions):
    gv = directions @ g  # (K,)
    fd = np.array([(f(x + eps * v) - f(x - eps * v)) / (2 * eps) for v in directions])
    forward = np.array([(f(x + eps * v) - f(x)) / eps for v in directions])
    backward = np.array([(f(x) - f(x - eps * v)) / eps for v in directions])
    unscaled = np.array([(f(x + v) - f(x - v)) / (2 * eps) for v in directions])
    added = np.array(
        [(f(x + eps + v) - f(x - eps - v)) / (2 * eps) for v in directions]
    )
    error = _relative(gv, fd)
    top = np.abs(gv - fd)
    return float(error.max()), [
        ("dgc_forward", _relative(gv, forward).max()),
        ("dgc_forward", _relative(gv, backward).max()),
        ("dgc_one_eps", _relative(gv, 2 * fd).max()),
        ("dgc_one_eps", _relative(gv, fd * eps**2).max()),  # / 2 * eps
        ("dgc_one_eps", _relative(gv, fd / eps).max()),  # / (2 * eps ** 2)
        ("dgc_absolute", top.max()),
        ("dgc_denominator", (top / np.abs(gv)).max()),
        ("dgc_denominator", (top / np.abs(fd)).max()),
        ("dgc_denominator", (top / (np.abs(gv) + np.abs(fd))).max()),
        ("dgc_denominator", (top / np.linalg.norm(g)).max()),
        ("dgc_denominator", (2 * top / (np.abs(gv) + np.abs(fd))).max()),  # their mean
        (
            "dgc_denominator",
            (top / np.maximum(np.maximum(gv, fd), TINY)).max(),
        ),  # no |.|
        # Before dgc_first: with few rows the largest signed error may be the first's.
        ("dgc_signed", ((gv - fd) / np.maximum(np.abs(gv), np.abs(fd))).max()),
        ("dgc_signed", ((fd - gv) / np.maximum(np.abs(gv), np.abs(fd))).max()),
        ("dgc_first", error[0]),
        ("dgc_first", error[-1]),
        ("dgc_mean", error.mean()),
        ("dgc_mean", error.sum()),
        ("dgc_mean", error.min()),
        ("dgc_mean", np.linalg.norm(error)),
        ("dgc_unscaled", _relative(gv, unscaled).max()),
        ("dgc_unscaled", _relative(gv, added).max()),  # x + eps + v
        ("dgc_dot", _relative(np.full_like(fd, g.sum()), fd).max()),
        ("dgc_dot", _relative(gv / len(g), fd).max()),  # the mean of g * v
        *[("dgc_rounded", round(float(error.max()), d)) for d in range(1, 7)],
    ]


def _case(
    c: Checker,
    fn: Callable,
    f: Callable,
    grad_f: Callable,
    x: np.ndarray,
    eps: float,
    directions: np.ndarray,
) -> None:
    x64 = x.astype(np.float64)
    directions = _middle_first(f, grad_f(x64), x64, eps, directions)
    right, mistakes = directional_mistakes(
        f, grad_f(x64), x64, eps, directions.astype(np.float64)
    )
    x_in = c.fw.from_numpy(x.copy())
    value = c.call(fn, f, grad_f, x_in, eps, c.fw.from_numpy(directions.copy()))
    untouched(c, x_in, x, "x")
    value = float_result(c, value, "the error", many="dgc_vector")
    hint = (
        "for each row v of directions (the given ones): fd = (f(x + eps v) - "
        "f(x - eps v)) / (2 * eps), error = "
        "|g . v - fd| / max(|g . v|, |fd|, 1e-12) with g = grad_f(x); return the max"
    )
    if 0 <= value < right / 10 and right > 1e-3:  # unless a known mistake matches
        hint = c.hint("dgc_ignores_eps")
    if np.isnan(value):  # 0 / 0, where g . v and fd are both 0
        hint = c.hint("dgc_tiny")
    c.close(
        value,
        right,
        what="the largest relative error",
        rtol=1e-2,
        atol=1e-6,
        hint=hint,
        mistakes=[(c.hint(key), wrong) for key, wrong in mistakes],
    )


def _middle_first(f, g, x, eps, directions: np.ndarray) -> np.ndarray:
    """``directions`` reordered so that the first and last rows' errors are neither the
    largest nor the smallest (with 3 rows or more), and, where there are rows enough, not
    the largest of either sign when signed: leaving out rows then shows, and a signed error
    is not mistaken for the first row's."""
    d64 = directions.astype(np.float64)
    fd = np.array([(f(x + eps * v) - f(x - eps * v)) / (2 * eps) for v in d64])
    gv = d64 @ g
    error = _relative(gv, fd)
    if len(error) < 3:
        return directions
    extremes = [int(np.argmin(error)), int(np.argmax(error))]
    signed = (gv - fd) / np.maximum(np.maximum(np.abs(gv), np.abs(fd)), TINY)
    extremes += [int(np.argmax(signed)), int(np.argmax(-signed))]
    free = [i for i in np.argsort(error) if i not in extremes]
    if len(free) < 2:  # too few rows: only the largest and smallest stay inside
        free = [i for i in np.argsort(error) if i not in extremes[:2]]
    first, last = free[0], free[-1] if len(free) > 1 else free[0]
    inside = [i for i in range(len(error)) if i not in (first, last)]
    order = [first, *inside] + ([last] if last != first else [])
    return directions[order]


def _directions(rng: np.random.Generator, k: int, d: int) -> np.ndarray:
    v = rng.normal(size=(k, d))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def check_directional_gradient_error(fn: Callable, fw: Framework) -> None:
    """Exercise 4: ``directional_gradient_error(f, grad_f, x, eps, directions) -> float`` on
    four functions and gradients, steps and sets of directions."""
    rng = np.random.default_rng(4)
    x = np.array([0.5, -1.0, 2.0, 1.5, -0.3], np.float32)
    x2 = np.array([0.5, 1.0, 2.0, 1.5, -0.3], np.float32)
    x4 = np.array([1.0, -1.5, 0.25, -2.0], np.float32)
    with checking(
        "directional_gradient_error",
        fw,
        passed="5 cases: 3 exact gradients (one at a minimum), 2 wrong",
    ) as c:
        # Exact gradient: the answer is the central difference's own error (eps ** 2).
        _case(c, fn, _cube, _cube_grad, x, 0.25, _directions(rng, 6, 5))
        # The gradient forgets the x0 * x1 term.
        _case(c, fn, _cube_plus, _cube_grad, x2, 0.05, _directions(rng, 4, 5))
        # The gradient of another function (the cube's, for the quartic).
        _case(c, fn, _quartic, _cube_grad, x4, 0.1, _directions(rng, 2, 4))
        _case(c, fn, _quartic, _quartic_grad, x4, 0.1, _directions(rng, 3, 4))
        # x at the square's minimum: g . v and fd are both exactly 0, the error 0 (not 0 / 0).
        _case(
            c,
            fn,
            _square,
            _square_grad,
            np.zeros(4, np.float32),
            0.1,
            _directions(rng, 2, 4),
        )
