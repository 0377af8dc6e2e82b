"""Lab 4, exercise 5: a straight-through estimator, ``round_ste(x)``, checked in both frameworks.

The forward pass must equal ``round(x)``, ties to even (``torch.round``, ``jnp.round`` and
``np.round`` agree), in float32; the backward pass must pass the incoming gradient through
unchanged, as the identity's would (Bengio, Léonard & Courville 2013). The check feeds inputs
with ``.5`` ties and negatives, and a non-constant incoming gradient ``g`` (the gradient of
``sum(g * round_ste(x))`` with respect to ``x`` must be ``g``: a gradient of ones, the answer for
``g = 1``, would pass a weaker check). The known mistakes are recognised from their values;
the adapters supply how to differentiate (``gradient``), and, for a zero gradient, which
mistake made it (``zero_gradient``): plain round, or the one-line form without its
``detach`` / ``stop_gradient``. A PyTorch answer must leave ``x`` as it was (``x.data = ...``
and ``x.round_()`` give the right values and gradient while rounding the caller's tensor).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, Framework, Hints, checking

__all__ = ["HINTS", "cases", "check_round_ste"]

# Exercise 5's known mistakes in words of no framework; the adapters add the ones that name
# their framework's functions (plain round, the ties, the one-line form, a backward of ones).
HINTS = Hints(
    {
        "ste_not_nearest": "round to the nearest integer: floor, ceil and truncation (a cast "
        "to int) each differ from it (floor(2.7) = 2, ceil(0.2) = 1, trunc(-1.7) = -1)",
        "ste_identity": "the forward pass rounds: return round(x); only the backward pass "
        "acts as the identity",
        "ste_forward": "the forward pass returns round(x), ties to even, with x's shape",
        "ste_scaled": "the identity's backward is the incoming gradient, unchanged: no "
        "factor of x or of round(x)",
        "ste_grad": "the gradient of sum(g * round_ste(x)) with respect to x must be g "
        "itself: the backward pass returns the incoming gradient unchanged",
        "ste_clipped": "the plain STE passes the incoming gradient everywhere: no mask such "
        "as |x| <= 1 (the clipped STE, hardtanh's gradient), which zeroes it where |x| > 1",
    }
)


def cases() -> list[tuple[np.ndarray, np.ndarray]]:
    """Two inputs ``x (B, D)`` float32, with .5 ties and negatives, and incoming gradients ``g``.

    ``g`` is random, not constant, so that a backward returning ones fails.
    """
    rng = np.random.default_rng(46)
    ties = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -0.7, -1.2], np.float32)
    out = []
    for batch, d in ((2, 8), (3, 6)):
        x = rng.uniform(-4, 4, size=(batch, d)).astype(np.float32)
        x.flat[: len(ties)] = ties
        g = rng.normal(size=(batch, d)).astype(np.float32)
        out.append((x, g))
    return out


def _half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(x + np.float32(0.5))


def _half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + np.float32(0.5))


def check_round_ste(
    round_ste: Callable,
    *,
    fw: Framework,
    gradient: Callable[[Checker, Callable, np.ndarray, np.ndarray], np.ndarray],
    zero_gradient: Callable[[Callable, np.ndarray], str],
    jit: Callable[[Callable], Callable] | None = None,
) -> None:
    """``round_ste(x)`` -> ``round(x)`` forward; the incoming gradient, unchanged, backward.

    ``gradient(c, round_ste, x, g)`` is the gradient of ``sum(g * round_ste(x))`` with respect
    to ``x``, as numpy (it fails ``c`` itself when no gradient reaches ``x``);
    ``zero_gradient(round_ste, x)`` names the hint for a gradient of zeros. With ``jit``
    (JAX's ``jax.jit``) the compiled function, and its gradient, must give the same answers.
    """
    with checking(
        "round_ste", fw, passed="round(x) forward, the incoming gradient backward"
    ) as c:
        for x, g in cases():
            given = fw.from_numpy(x.copy())
            out = c.call(round_ste, given)
            if not np.array_equal(
                fw.to_numpy(given), x
            ):  # only PyTorch can write into x
                raise c.fail("your function changed x in place", c.hint("ste_in_place"))
            if isinstance(out, np.ndarray):
                raise c.fail(
                    f"expected {fw.array_type}, got a NumPy array", c.hint("ste_numpy")
                )
            _forward(c, c.array(out), x)
            _backward(c, gradient(c, round_ste, x, g), x, g, round_ste, zero_gradient)
            if jit is not None:
                compiled = jit(round_ste)
                out = c.call(compiled, fw.from_numpy(x.copy()))
                _forward(c, c.array(out), x, " under jit")
                dx = gradient(c, compiled, x, g)
                _backward(c, dx, x, g, round_ste, zero_gradient, " under jit")


def _forward(c: Checker, arr: np.ndarray, x: np.ndarray, where: str = "") -> None:
    c.shape(arr, x.shape, c.hint("ste_forward"))
    c.expect(
        arr.dtype == np.float32,
        f"the result{where} has dtype {arr.dtype}, expected float32 (x's)",
        c.hint("dtype"),
    )
    c.close(
        arr,
        np.round(x),
        what=f"round_ste(x){where}",
        rtol=0,
        atol=1e-6,
        hint=c.hint("ste_forward"),
        mistakes=[
            (c.hint("ste_identity"), x),
            (c.hint("ste_not_nearest"), np.floor(x)),
            (c.hint("ste_not_nearest"), np.trunc(x)),
            (c.hint("ste_not_nearest"), np.ceil(x)),
            (c.hint("ste_ties"), _half_up(x)),
            (c.hint("ste_ties"), _half_away(x)),
        ],
    )


def _backward(
    c: Checker,
    dx: Any,
    x: np.ndarray,
    g: np.ndarray,
    round_ste: Callable,
    zero_gradient: Callable[[Callable, np.ndarray], str],
    where: str = "",
) -> None:
    dx = np.asarray(dx)
    c.shape(dx, x.shape, c.hint("ste_grad"))
    if np.all(dx == 0):  # which mistake: the adapter looks at the computation
        raise c.fail(
            f"the gradient{where} is 0 everywhere, expected the incoming gradient",
            c.hint(zero_gradient(round_ste, x)),
        )
    c.close(
        dx,
        g,
        what=f"the gradient{where}",
        hint=c.hint("ste_grad"),
        mistakes=[
            (c.hint("ste_ones"), np.ones_like(g)),
            (c.hint("ste_scaled"), g * x),
            (c.hint("ste_scaled"), g * np.round(x)),
            (c.hint("ste_detached_x"), -g),
            (c.hint("ste_clipped"), g * (np.abs(x) <= 1)),
        ],
    )
