"""Lab 2, exercise 2: one step of an LSTM cell, ``(h_new, c_new)``, in PyTorch's layout.

:func:`lstm_step` is the float64 numpy reference, with keywords that switch on the known
mistakes (gate order, a missing bias, sigmoid for the candidate...; ``_lstm_mistakes`` lists
them with their hints); :func:`check_lstm_step` compares the student's cell with the
framework's own (``nn.LSTMCell``) on :func:`lstm_cases`, and refuses a function that calls
it (the adapters' answer keys). The hints are
:data:`helpers.labs.lab02.checks.HINTS`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

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

__all__ = ["check_lstm_step", "lstm_cases", "lstm_step"]


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
    interleaved: bool = False,
    g_act: Callable = np.tanh,
    o_act: Callable | None = None,
    cell_act: Callable = np.tanh,
    forget_cell: bool = True,
    coupled: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """``(h_new, c_new)`` in float64; the keywords switch on the known mistakes.

    ``order[k]`` is the chunk of the 4H axis read as gate k of (i, f, g, o); ``interleaved``
    reads gate k as every fourth entry of the 4H axis (``z.reshape(B, H, 4)[..., k]``), not as
    a block; ``o_act`` replaces the output gate's sigmoid; ``coupled`` is a gate written as
    one minus the forget gate: "input" (``i = 1 - f``, a GRU's coupled update gate) or
    "forget" (``(1 - f) * c`` in place of ``f * c``).
    """
    x, h, c, W_ih, W_hh, b_ih, b_hh = (
        np.asarray(a, np.float64) for a in (x, h, c, W_ih, W_hh, b_ih, b_hh)
    )
    z = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh  # (B, 4H)
    if interleaved:
        chunks = list(np.moveaxis(z.reshape(len(z), -1, 4), -1, 0))
    else:
        chunks = np.split(z, 4, axis=-1)
    zi, zf, zg, zo = (chunks[k] for k in order)
    i, f, g, o = _sigmoid(zi), _sigmoid(zf), g_act(zg), (o_act or _sigmoid)(zo)
    if coupled == "input":
        i = 1 - f
    elif coupled == "forget":
        f = 1 - f
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
        ("lstm_one_bias", lstm_step(**dict(case, b_ih=zero, b_hh=zero))),  # neither
        ("lstm_forget_bias", lstm_step(**no_forget)),
        ("lstm_tanh_cell", lstm_step(**case, cell_act=lambda c: c)),
        ("lstm_tanh_cell", lstm_step(**case, cell_act=_sigmoid)),
        ("lstm_g_sigmoid", lstm_step(**case, g_act=_sigmoid)),
        ("lstm_g_sigmoid", lstm_step(**case, g_act=lambda z: z)),
        ("lstm_gate_tanh", lstm_step(**case, o_act=np.tanh)),
        ("lstm_gate_order", lstm_step(**case, interleaved=True)),
        ("lstm_forget_cell", lstm_step(**case, forget_cell=False)),
        ("lstm_coupled_gate", lstm_step(**case, coupled="input")),  # f*c + (1-f)*g
        ("lstm_coupled_gate", lstm_step(**case, coupled="forget")),  # (1-f)*c + i*g
        ("lstm_no_recurrence", lstm_step(**dict(case, h=np.zeros_like(case["h"])))),
        ("lstm_no_recurrence", lstm_step(**dict(case, h=case["c"]))),  # c through W_hh
    ]
    for order in itertools.permutations(range(4)):
        if order != (0, 1, 2, 3):
            mistakes.append(("lstm_gate_order", lstm_step(**case, order=order)))
    return mistakes


def _lstm_case(
    c: Checker,
    fn: Callable,
    case: dict[str, np.ndarray],
    library: Callable | None,
    watch_answer_keys: Watch,
) -> None:
    expected = library(**case) if library is not None else lstm_step(**case)
    inputs = _inputs(c.fw, case)
    out = call_refusing(c, watch_answer_keys, "lstm_answer_key", fn, *inputs.values())
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
        hint=_or_precision(
            c,
            c_new,
            expected[1],
            "c_new = f * c + i * g, with the gates i, f, g, o read from z in that order",
        ),
        mistakes=[(c.hint("lstm_swapped"), expected[0])]
        + [(c.hint(key), wrong[1]) for key, wrong in mistakes],
        **tol,
    )
    c.close(
        h_new,
        expected[0],
        what="an entry of h_new",
        hint=_or_precision(c, h_new, expected[0], "h_new = o * tanh(c_new)"),
        mistakes=[(c.hint(key), wrong[0]) for key, wrong in mistakes],
        **tol,
    )


def check_lstm_step(
    fn: Callable,
    fw: Framework,
    *,
    library: Callable | None = None,
    watch_answer_keys: Watch,
) -> None:
    """``fn(x, h, c, W_ih, W_hh, b_ih, b_hh) -> (h_new, c_new)`` on two cells.

    ``library(**case)`` gives the expected ``(h_new, c_new)`` as float64 numpy from the
    framework's own LSTM cell; without one, the numpy :func:`lstm_step` does. ``fn`` must not
    call ``watch_answer_keys`` (the framework's LSTM cells).
    """
    with checking(
        "lstm_step",
        fw,
        passed="h_new, c_new equal "
        + ("nn.LSTMCell's" if library is not None else "a NumPy LSTM cell's")
        + " on two cells",
    ) as c:
        for case in lstm_cases():
            _lstm_case(c, fn, case, library, watch_answer_keys)
