"""Lab 2, exercise 1: the backward pass of a linear + ReLU layer, ``(dx, dW, db)``.

:func:`relu_backward` is the float64 numpy reference, with a switch per known mistake in the
gradient at the pre-activation (``_DZ_MISTAKES`` pairs each with its hint);
:func:`check_linear_relu_backward` compares the student's gradients with the framework's
autodiff on :func:`linear_relu_cases`, in the framework's weight layout, and refuses a function
that calls that autodiff itself (the adapters' answer keys). The hints are
:data:`helpers.labs.lab02.checks.HINTS` and the adapters' layout-dependent ones.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.labs.kit import Checker, Framework, Watch, checking
from helpers.labs.lab02._common import (
    _dtype,
    _inputs,
    _or_precision,
    _parts,
    _shape,
    _untouched,
    call_refusing,
)

__all__ = ["check_linear_relu_backward", "linear_relu_cases", "relu_backward"]


def linear_relu_cases() -> list[dict[str, np.ndarray]]:
    """Inputs in PyTorch's layout, ``W (out, in)``: ``x (B, in)``, ``W``, ``b (out,)``, ``dy``.

    The first layer is square, so a transposed matrix or a mask taken at x still has the
    right shape and its values show which mistake it is; the second is not (a transposed dW
    has the wrong shape there).
    """
    rng = np.random.default_rng(20)
    cases = []
    for batch, d_in, d_out in [(3, 4, 4), (4, 5, 3)]:
        x = rng.normal(size=(batch, d_in))
        W = rng.normal(size=(d_out, d_in)) / np.sqrt(d_in)
        b = rng.normal(size=d_out)  # as large as x W^T: it moves units across 0
        dy = rng.normal(size=(batch, d_out))
        cases.append(
            {k: v.astype(np.float32) for k, v in dict(x=x, W=W, b=b, dy=dy).items()}
        )
    return cases


def relu_backward(
    x: np.ndarray, W: np.ndarray, b: np.ndarray, dy: np.ndarray, dz: str = "right"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dx, dW, db)`` of ``y = relu(x W^T + b)`` in float64, ``W (out, in)``.

    ``dz`` names how the gradient at the pre-activation is formed: "right" is
    ``dy * (z > 0)``; the others are the mistakes whose hint has the same name. The mistakes
    that need a square layer (a mask at x, a forward pass in the other weight layout) give NaN
    on the others.
    """
    x, W, b, dy = (np.asarray(a, np.float64) for a in (x, W, b, dy))
    z = x @ W.T + b  # (B, out)
    y = np.maximum(z, 0)
    square = W.shape[0] == W.shape[1]
    dz = {
        "right": dy * (z > 0),
        "relu_mask_missing": dy,
        "relu_times_output": dy * y,
        "relu_sigmoid_form": dy * y * (1 - y),
        "relu_sigmoid_one_minus": dy * (1 - y),
        "relu_mask_from_dy": dy * (dy > 0),
        "relu_mask_from_x": dy * (x > 0) if x.shape == dy.shape else np.nan * dy,
        "relu_mask_no_bias": dy * (x @ W.T > 0),
        "relu_mask_flipped": dy * (z < 0),
        "relu_sign": dy * np.sign(z),
        # z = x W + b: PyTorch's forward with JAX's layout, or the other way round
        "relu_mask_layout": dy * (x @ W + b > 0) if square else np.nan * dy,
    }[dz]
    return dz @ W, dz.T @ x, dz.sum(0)


_DZ_MISTAKES = {  # the mistake in dz -> its hint
    "relu_mask_missing": "relu_mask_missing",
    "relu_times_output": "relu_times_output",
    "relu_sigmoid_form": "relu_sigmoid_form",
    "relu_sigmoid_one_minus": "relu_sigmoid_form",
    "relu_mask_from_dy": "relu_mask_from_dy",
    "relu_mask_from_x": "relu_mask_from_x",
    "relu_mask_no_bias": "relu_mask_no_bias",
    "relu_mask_flipped": "relu_mask_flipped",
    "relu_sign": "relu_sign",
    "relu_mask_layout": "relu_mask_layout",
}


def _linear_relu_case(
    c: Checker,
    fn: Callable,
    case: dict[str, np.ndarray],
    weights_out_in: bool,
    autodiff: Callable,
    watch_answer_keys: Watch,
) -> None:
    # The student's layout: (out, in) in PyTorch, (in, out) in JAX; the references use (out, in).
    layout = (lambda w: w) if weights_out_in else (lambda w: w.T)
    x, W, b, dy = case["x"], case["W"], case["b"], case["dy"]
    W_student = np.ascontiguousarray(layout(W))
    arrays = dict(x=x, W=W_student, b=b, dy=dy)
    expected = autodiff(**arrays)  # (dx, dW, db) in the student's layout, float64
    inputs = _inputs(c.fw, arrays)
    out = call_refusing(
        c, watch_answer_keys, "autodiff_answer_key", fn, *inputs.values()
    )
    _untouched(c, inputs, arrays)
    dx, dW, db = _parts(c, out, ("dx", "dW", "db"), c.hint("result_tuple3"))

    batch, d_out = dy.shape
    for (name, got), (other, got_other), want in [
        (("dx", dx), ("dW", dW), (x.shape, W_student.shape)),
        (("dW", dW), ("db", db), (W_student.shape, b.shape)),
    ]:
        if got.shape != want[0] and (got.shape, got_other.shape) == want[::-1]:
            raise c.fail(
                f"{name} has shape {got.shape} and {other} {got_other.shape}: "
                "they look swapped",
                c.hint("result_tuple3"),
            )
    _shape(
        c, dx, "dx", x.shape, "dx has the shape of x, (B, in): one gradient per input"
    )
    if dW.shape != W_student.shape and dW.shape == W_student.shape[::-1]:
        raise c.fail(
            f"dW has shape {dW.shape}, expected W's shape {W_student.shape}",
            c.hint("weight_transposed"),
        )
    _shape(c, dW, "dW", W_student.shape, "dW has the shape of W")
    if db.shape != b.shape and db.shape == (batch, d_out):
        raise c.fail(
            f"db has shape {db.shape}, expected b's shape {b.shape}",
            c.hint("db_not_summed"),
        )
    _shape(
        c,
        db,
        "db",
        b.shape,
        "db has the shape of b, (out,): sum over the batch axis only",
    )
    for name, part in (("dx", dx), ("dW", dW), ("db", db)):
        _dtype(c, part, name, f"compute {name} in the inputs' dtype, float32")

    wrong = {key: relu_backward(x, W, b, dy, key) for key in _DZ_MISTAKES}
    dz = dy * (x @ W.T + b > 0)
    square = W.shape[0] == W.shape[1]
    tol = dict(rtol=1e-4, atol=1e-5)
    dx_mistakes = [(c.hint(h), wrong[k][0]) for k, h in _DZ_MISTAKES.items()]
    dx_mistakes += [(c.hint("grad_batch_mean"), expected[0] / batch)]
    if square:  # dz @ W^T only has the shape of dx when W is square
        dx_mistakes.append((c.hint("dx_transposed_weight"), dz @ W.T))
    c.close(
        dx,
        expected[0],
        what="an entry of dx",
        hint=_or_precision(
            c,
            dx,
            expected[0],
            "dx = dz @ (the weights), with dz = dy * (z > 0)",
        ),
        mistakes=dx_mistakes,
        **tol,
    )
    dW_mistakes = [(c.hint(h), layout(wrong[k][1])) for k, h in _DZ_MISTAKES.items()]
    dW_mistakes += [(c.hint("grad_batch_mean"), expected[1] / batch)]
    if square:
        dW_mistakes.append((c.hint("weight_transposed"), expected[1].T))
    c.close(
        dW,
        expected[1],
        what="an entry of dW",
        hint=_or_precision(
            c,
            dW,
            expected[1],
            "dW pairs each output's dz with each input's x, summed over the batch",
        ),
        mistakes=dW_mistakes,
        **tol,
    )
    db_mistakes = [(c.hint(h), wrong[k][2]) for k, h in _DZ_MISTAKES.items()]
    db_mistakes += [(c.hint("grad_batch_mean"), expected[2] / batch)]
    c.close(
        db,
        expected[2],
        what="an entry of db",
        hint=_or_precision(
            c,
            db,
            expected[2],
            "db = dz.sum(0), with dz = dy * (z > 0)",
        ),
        mistakes=db_mistakes,
        **tol,
    )


def check_linear_relu_backward(
    fn: Callable,
    fw: Framework,
    *,
    weights_out_in: bool,
    autodiff: Callable,
    watch_answer_keys: Watch,
) -> None:
    """``fn(x, W, b, dy) -> (dx, dW, db)``, compared with ``autodiff`` on two layers.

    ``weights_out_in``: the framework's layout is ``W (out, in)`` (PyTorch) rather than
    ``(in, out)`` (JAX). ``autodiff(x, W, b, dy)`` takes numpy arrays in that layout and
    returns the right ``(dx, dW, db)`` as float64 numpy, computed by the framework's autodiff.
    ``watch_answer_keys()``: watches the framework's autodiff, which ``fn`` must not call.
    """
    reference = "autograd's" if fw.name == "torch" else "jax.vjp's"
    passed = f"dx, dW, db equal {reference} on two layers"
    with checking("linear_relu_backward", fw, passed=passed) as c:
        for case in linear_relu_cases():
            _linear_relu_case(c, fn, case, weights_out_in, autodiff, watch_answer_keys)
