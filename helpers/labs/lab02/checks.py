"""Lab 2 self-checks shared by both frameworks, written once on numpy answers.

Each ``check_*`` takes the student's function, a :class:`~helpers.labs.kit.Framework` and the
framework's own implementation of the same computation (autodiff, ``nn.LSTMCell``,
``scaled_dot_product_attention``), which gives the expected answer; ``helpers.labs.lab02.torch``
and ``.jax`` bind them, so a notebook calls ``H.lab02.check_lstm_step(lstm_step)``.

The known mistakes are computed here, in float64 numpy, by one reference per exercise with a
switch per mistake (``relu_backward``, ``lstm_step``, ``attention``); a test asserts that each
reference, with no switch set, equals the framework's implementation on every case below. The
cases are chosen so that every mistake changes the answer well beyond the tolerance (another
test asserts it): biases large enough to move units across 0, a square layer where a transposed
matrix still has the right shape, masks where every row has allowed and forbidden keys.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, Framework, Hints, checking

__all__ = [
    "HINTS",
    "attention",
    "attention_cases",
    "check_attention",
    "check_linear_relu_backward",
    "check_lstm_step",
    "linear_relu_cases",
    "lstm_cases",
    "lstm_step",
    "relu_backward",
]

# Known mistakes and what to change; the adapters add framework ones and word the hints whose
# formula depends on the weight layout ("weight_transposed", "dx_transposed_weight").
# tests/labs/test_lab02.py proves that each hint is produced by a mistake in its table.
HINTS = Hints(
    {
        "result_tuple3": "return the three gradients as one tuple, in this order: "
        "return dx, dW, db",
        "db_not_summed": "b is shared by every example of the batch, so its gradient sums "
        "dz over the batch axis: db = dz.sum(0), shape (out,)",
        "grad_batch_mean": "dy already is the gradient of the loss, averaging included: sum "
        "over the batch, do not divide dW or db by the batch size",
        "relu_mask_missing": "ReLU lets the gradient through only where it was active: "
        "dz = dy * (z > 0), with z the pre-activation (y >= 0 holds everywhere, so a mask "
        "taken as y >= 0 is no mask at all)",
        "relu_times_output": "ReLU's derivative is the indicator 1[z > 0], 0 or 1, not the "
        "output y = relu(z): multiply dy by (z > 0), not by y",
        "relu_sigmoid_form": "y * (1 - y) is sigmoid's derivative written in its output, and "
        "(1 - y) is no derivative at all: ReLU's is 1[z > 0], so dz = dy * (z > 0)",
        "relu_mask_from_dy": "the mask comes from the forward pass, where z > 0, not from the "
        "sign of dy: relu(dy) is not the backward pass of ReLU",
        "relu_mask_from_x": "take the mask at ReLU's own input, the pre-activation z "
        "(weights and bias applied), not at the layer's input x",
        "relu_mask_no_bias": "the mask is z > 0 for the whole pre-activation z, bias "
        "included: leaving b out moves some units across 0",
        "result_tuple2": "return the new hidden and cell states as one tuple, in this "
        "order: return h_new, c_new",
        "lstm_swapped": "return (h_new, c_new) in this order: c_new = f * c + i * g, and "
        "h_new = o * tanh(c_new)",
        "lstm_one_bias": "PyTorch's layout has two bias vectors, and both are added: "
        "z = x W_ih^T + b_ih + h W_hh^T + b_hh",
        "lstm_forget_bias": "the forget gate has a bias like the other gates: "
        "f = sigmoid(z[:, H:2H]) with the slices H:2H of both b_ih and b_hh in z",
        "lstm_gate_order": "the gates are stacked along the 4H axis in the order i, f, g, o: "
        "i = z[:, :H], f = z[:, H:2H], g = z[:, 2H:3H], o = z[:, 3H:]",
        "lstm_tanh_cell": "the output squashes the new cell state first: "
        "h_new = o * tanh(c_new), not o * c_new",
        "lstm_g_sigmoid": "the candidate g = tanh(z[:, 2H:3H]) takes values in -1..1; only "
        "i, f and o are sigmoid gates",
        "lstm_forget_cell": "the new cell state keeps the old one, scaled by the forget gate: "
        "c_new = f * c + i * g",
        "softmax_axis": "normalise over the keys, the last axis (S): each query's weights "
        "over the keys must sum to 1",
        "mask_polarity": "True in mask means 'may attend': keep the scores where mask is "
        "True and set the others to -inf; you hid the allowed keys instead",
        "mask_zero_fill": "a forbidden score must become -inf (or a very negative number), "
        "not 0: exp(0) still gives the key a weight",
        "mask_after_softmax": "mask the scores before the softmax (forbidden ones to -inf): "
        "zeroing weights after it leaves rows that no longer sum to 1",
        "scale_missing": "scale the scores q k^T by 1 / sqrt(d) before the softmax, "
        "d = q.shape[-1]",
        "scale_d": "divide the scores by sqrt(d), not by d",
        "scale_dv": "d is the size of queries and keys, q.shape[-1], not v.shape[-1]",
    }
)


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
    """``c.shape``, but the message names the part of the tuple (dx, db, c_new...)."""
    if tuple(arr.shape) != tuple(expected):
        raise c.fail(f"{name} has shape {tuple(arr.shape)}, expected {expected}", hint)


def _dtype(c: Checker, arr: np.ndarray, name: str, hint: str) -> None:
    if arr.dtype != np.float32:
        raise c.fail(f"{name} has dtype {arr.dtype}, expected float32", hint)


# --- Exercise 1: the backward pass of a linear + ReLU layer ---------------------------------------
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
    ``dy * (z > 0)``; the others are the mistakes whose hint has the same name.
    """
    x, W, b, dy = (np.asarray(a, np.float64) for a in (x, W, b, dy))
    z = x @ W.T + b  # (B, out)
    y = np.maximum(z, 0)
    dz = {
        "right": dy * (z > 0),
        "relu_mask_missing": dy,
        "relu_times_output": dy * y,
        "relu_sigmoid_form": dy * y * (1 - y),
        "relu_sigmoid_one_minus": dy * (1 - y),
        "relu_mask_from_dy": dy * (dy > 0),
        "relu_mask_from_x": dy * (x > 0) if x.shape == dy.shape else np.nan * dy,
        "relu_mask_no_bias": dy * (x @ W.T > 0),
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
}


def _linear_relu_case(
    c: Checker,
    fn: Callable,
    case: dict[str, np.ndarray],
    weights_out_in: bool,
    autodiff: Callable,
) -> None:
    # The student's layout: (out, in) in PyTorch, (in, out) in JAX; the references use (out, in).
    layout = (lambda w: w) if weights_out_in else (lambda w: w.T)
    x, W, b, dy = case["x"], case["W"], case["b"], case["dy"]
    W_student = np.ascontiguousarray(layout(W))
    arrays = dict(x=x, W=W_student, b=b, dy=dy)
    expected = autodiff(**arrays)  # (dx, dW, db) in the student's layout, float64
    inputs = _inputs(c.fw, arrays)
    out = c.call(fn, *inputs.values())
    _untouched(c, inputs, arrays)
    dx, dW, db = _parts(c, out, ("dx", "dW", "db"), c.hint("result_tuple3"))

    batch, d_out = dy.shape
    if dx.shape != x.shape and (dx.shape, dW.shape) == (W_student.shape, x.shape):
        raise c.fail(
            f"dx has shape {dx.shape} and dW {dW.shape}: they look swapped",
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
    if square:  # dz @ W^T only has the shape of dx when W is square
        dx_mistakes.append((c.hint("dx_transposed_weight"), dz @ W.T))
    c.close(
        dx,
        expected[0],
        what="an entry of dx",
        hint="dx = dz @ (the weights), with dz = dy * (z > 0)",
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
        hint="dW pairs each output's dz with each input's x, summed over the batch",
        mistakes=dW_mistakes,
        **tol,
    )
    db_mistakes = [(c.hint(h), wrong[k][2]) for k, h in _DZ_MISTAKES.items()]
    db_mistakes += [(c.hint("grad_batch_mean"), expected[2] / batch)]
    c.close(
        db,
        expected[2],
        what="an entry of db",
        hint="db = dz.sum(0), with dz = dy * (z > 0)",
        mistakes=db_mistakes,
        **tol,
    )


def check_linear_relu_backward(
    fn: Callable, fw: Framework, *, weights_out_in: bool, autodiff: Callable
) -> None:
    """``fn(x, W, b, dy) -> (dx, dW, db)``, compared with ``autodiff`` on two layers.

    ``weights_out_in``: the framework's layout is ``W (out, in)`` (PyTorch) rather than
    ``(in, out)`` (JAX). ``autodiff(x, W, b, dy)`` takes numpy arrays in that layout and
    returns the right ``(dx, dW, db)`` as float64 numpy, computed by the framework's autodiff.
    """
    with checking(
        "linear_relu_backward", fw, passed="dx, dW, db equal autodiff's on two layers"
    ) as c:
        for case in linear_relu_cases():
            _linear_relu_case(c, fn, case, weights_out_in, autodiff)


# --- Exercise 2: one LSTM step --------------------------------------------------------------------
def lstm_cases() -> list[dict[str, np.ndarray]]:
    """Inputs in PyTorch's layout: ``x (B, D)``, ``h, c (B, H)``, ``W_ih (4H, D)``, ..."""
    rng = np.random.default_rng(21)
    cases = []
    for batch, d_in, hidden in [(3, 5, 4), (2, 3, 6)]:
        case = dict(
            x=rng.normal(size=(batch, d_in)),
            h=np.tanh(rng.normal(size=(batch, hidden))),
            c=rng.normal(size=(batch, hidden)),
            W_ih=rng.normal(size=(4 * hidden, d_in)) / np.sqrt(d_in),
            W_hh=rng.normal(size=(4 * hidden, hidden)) / np.sqrt(hidden),
            b_ih=rng.normal(size=4 * hidden) * 0.5,
            b_hh=rng.normal(size=4 * hidden) * 0.5,
        )
        case["b_hh"][hidden : 2 * hidden] += 1.0  # the usual "remember by default" bias
        cases.append({k: v.astype(np.float32) for k, v in case.items()})
    return cases


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def lstm_step(
    x: np.ndarray,
    h: np.ndarray,
    c: np.ndarray,
    W_ih: np.ndarray,
    W_hh: np.ndarray,
    b_ih: np.ndarray,
    b_hh: np.ndarray,
    *,
    order: Sequence[int] = (0, 1, 2, 3),
    g_act: Callable = np.tanh,
    cell_act: Callable = np.tanh,
    forget_cell: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(h_new, c_new)`` in float64; the keywords switch on the known mistakes.

    ``order[k]`` is the chunk of the 4H axis read as gate k of (i, f, g, o).
    """
    x, h, c, W_ih, W_hh, b_ih, b_hh = (
        np.asarray(a, np.float64) for a in (x, h, c, W_ih, W_hh, b_ih, b_hh)
    )
    z = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh  # (B, 4H)
    chunks = np.split(z, 4, axis=-1)
    zi, zf, zg, zo = (chunks[k] for k in order)
    i, f, g, o = _sigmoid(zi), _sigmoid(zf), g_act(zg), _sigmoid(zo)
    c_new = (f * c if forget_cell else 0) + i * g
    return o * cell_act(c_new), c_new


def _lstm_mistakes(case: dict[str, np.ndarray]) -> list[tuple[str, tuple]]:
    """(hint key, (h_new, c_new)) for each known mistake on ``case``."""
    hidden = case["h"].shape[1]
    f_slice = slice(hidden, 2 * hidden)
    no_forget = dict(case, b_ih=case["b_ih"].copy(), b_hh=case["b_hh"].copy())
    no_forget["b_ih"][f_slice] = 0
    no_forget["b_hh"][f_slice] = 0
    zero = np.zeros_like(case["b_ih"])
    mistakes = [
        ("lstm_one_bias", lstm_step(**dict(case, b_hh=zero))),
        ("lstm_one_bias", lstm_step(**dict(case, b_ih=zero))),
        ("lstm_forget_bias", lstm_step(**no_forget)),
        ("lstm_tanh_cell", lstm_step(**case, cell_act=lambda c: c)),
        ("lstm_g_sigmoid", lstm_step(**case, g_act=_sigmoid)),
        ("lstm_forget_cell", lstm_step(**case, forget_cell=False)),
    ]
    for order in itertools.permutations(range(4)):
        if order != (0, 1, 2, 3):
            mistakes.append(("lstm_gate_order", lstm_step(**case, order=order)))
    return mistakes


def _lstm_case(
    c: Checker, fn: Callable, case: dict[str, np.ndarray], library: Callable | None
) -> None:
    expected = library(**case) if library is not None else lstm_step(**case)
    inputs = _inputs(c.fw, case)
    out = c.call(fn, *inputs.values())
    _untouched(c, inputs, case)
    h_new, c_new = _parts(c, out, ("h_new", "c_new"), c.hint("result_tuple2"))
    shape = case["h"].shape
    _shape(c, h_new, "h_new", shape, "h_new has the shape of h, (B, H)")
    _shape(c, c_new, "c_new", shape, "c_new has the shape of c, (B, H)")
    _dtype(c, h_new, "h_new", "compute in the inputs' dtype, float32")
    _dtype(c, c_new, "c_new", "compute in the inputs' dtype, float32")
    mistakes = _lstm_mistakes(case)
    tol = dict(rtol=1e-4, atol=1e-5)
    c.close(
        c_new,
        expected[1],
        what="an entry of c_new",
        hint="c_new = f * c + i * g, with the gates i, f, g, o read from z in that order",
        mistakes=[(c.hint("lstm_swapped"), expected[0])]
        + [(c.hint(key), wrong[1]) for key, wrong in mistakes],
        **tol,
    )
    c.close(
        h_new,
        expected[0],
        what="an entry of h_new",
        hint="h_new = o * tanh(c_new)",
        mistakes=[(c.hint(key), wrong[0]) for key, wrong in mistakes],
        **tol,
    )


def check_lstm_step(
    fn: Callable, fw: Framework, *, library: Callable | None = None
) -> None:
    """``fn(x, h, c, W_ih, W_hh, b_ih, b_hh) -> (h_new, c_new)`` on two cells.

    ``library(**case)`` gives the expected ``(h_new, c_new)`` as float64 numpy from the
    framework's own LSTM cell; without one, the numpy :func:`lstm_step` does.
    """
    with checking(
        "lstm_step",
        fw,
        passed="h_new, c_new equal "
        + ("nn.LSTMCell's" if library is not None else "a NumPy LSTM cell's")
        + " on two cells",
    ) as c:
        for case in lstm_cases():
            _lstm_case(c, fn, case, library)


# --- Exercise 3: masked scaled dot-product attention ----------------------------------------------
def _mask_with_both(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A random bool mask; every query row and every column, along each axis, mixes both.

    Every row allows a key and forbids one (so the wrong polarity leaves allowed keys, and
    no NaN); no slice along the query or batch axis is all forbidden (so a softmax over the
    wrong axis gives numbers, not NaN, and its hint can be given).
    """
    while True:
        mask = rng.random(shape) < 0.6
        rows = mask.any(-1).all() and (~mask).any(-1).all()
        if rows and mask.any(-2).all() and mask.any(0).all():
            return mask


def attention_cases() -> list[dict[str, np.ndarray]]:
    """``q (B, T, d)``, ``k (B, S, d)``, ``v (B, S, dv)``, ``mask (B, T, S)`` with d != dv.

    The first mask is random (see ``_mask_with_both``); the second is causal with padding:
    sequence b has ``lengths[b] < S`` real keys, so every query has a forbidden key.
    """
    rng = np.random.default_rng(22)
    batch, t, s, d, dv = 3, 4, 6, 6, 3
    first = dict(
        q=rng.normal(size=(batch, t, d)),
        k=rng.normal(size=(batch, s, d)),
        v=rng.normal(size=(batch, s, dv)),
        mask=_mask_with_both(rng, (batch, t, s)),
    )
    batch, t, d, dv = 2, 5, 4, 2
    lengths = np.array([3, 4])
    causal = np.tril(np.ones((t, t), bool))  # query i sees keys 0..i
    padding = np.arange(t)[None, :] < lengths[:, None]  # (B, S): real keys
    second = dict(
        q=rng.normal(size=(batch, t, d)),
        k=rng.normal(size=(batch, t, d)),
        v=rng.normal(size=(batch, t, dv)),
        mask=causal[None] & padding[:, None, :],
    )
    return [
        {k: v if v.dtype == bool else v.astype(np.float32) for k, v in case.items()}
        for case in (first, second)
    ]


def attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray,
    *,
    axis: int = -1,
    scale: float | None = None,
    allowed: bool = True,
    fill: float = -np.inf,
    after_softmax: bool = False,
) -> np.ndarray:
    """``softmax(q k^T / sqrt(d), masked) v`` in float64; the keywords switch on mistakes."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    keep = mask if allowed else ~mask
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.swapaxes(-1, -2) * scale  # (B, T, S)
    if not after_softmax:
        scores = np.where(keep, scores, fill)
    with np.errstate(
        invalid="ignore"
    ):  # an all -inf slice gives NaN, as in the frameworks
        weights = np.exp(scores - scores.max(axis, keepdims=True))
        weights = weights / weights.sum(axis, keepdims=True)
    if after_softmax:
        weights = weights * keep
    return weights @ v  # (B, T, dv)


def _attention_mistakes(case: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    d, dv = case["q"].shape[-1], case["v"].shape[-1]
    return [
        ("softmax_axis", attention(**case, axis=-2)),
        ("softmax_axis", attention(**case, axis=0)),
        ("mask_polarity", attention(**case, allowed=False)),
        ("mask_zero_fill", attention(**case, fill=0.0)),
        ("mask_after_softmax", attention(**case, after_softmax=True)),
        ("scale_missing", attention(**case, scale=1.0)),
        ("scale_d", attention(**case, scale=1 / d)),
        ("scale_dv", attention(**case, scale=1 / np.sqrt(dv))),
    ]


def _attention_case(
    c: Checker, fn: Callable, case: dict[str, np.ndarray], library: Callable
) -> None:
    expected = library(**case)
    inputs = _inputs(c.fw, case)
    out = c.call(fn, *inputs.values())
    _untouched(c, inputs, case)
    arr = c.array(out)
    batch, t, _ = case["q"].shape
    c.shape(
        arr,
        (batch, t, case["v"].shape[-1]),
        "the result is (B, T, dv): one weighted average of the values per query",
    )
    c.dtype(arr, "float32", "compute in the inputs' dtype, float32")
    c.close(
        arr,
        expected,
        what="an entry of the result",
        rtol=1e-4,
        atol=1e-5,
        hint="softmax(q k^T / sqrt(d), forbidden scores at -inf, over the keys) @ v",
        mistakes=[(c.hint(key), wrong) for key, wrong in _attention_mistakes(case)],
    )


def check_attention(fn: Callable, fw: Framework, *, library: Callable) -> None:
    """``fn(q, k, v, mask) -> (B, T, dv)`` on a random mask and a causal padded one.

    ``library(q=, k=, v=, mask=)`` gives the expected result as float64 numpy from the
    framework's own attention.
    """
    with checking(
        "attention", fw, passed="equal to the library's attention on two masks"
    ) as c:
        for case in attention_cases():
            _attention_case(c, fn, case, library)
