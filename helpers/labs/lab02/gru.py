"""Lab 2, exercise 2: one step of a GRU cell, ``h_new``, in the framework's layout.

:func:`gru_step` is the float64 numpy reference, in PyTorch's layout (``W_ih (3H, D)``, gates
r, z, n as in ``nn.GRUCell``), with keywords that switch on the known mistakes (gate order,
Cho et al.'s reset before the product, ``z`` keeping the candidate...; ``_gru_mistakes`` lists
them with their hints). :func:`check_gru_step` gives the student the weights in the
framework's layout (transposed, ``(D, 3H)``, for JAX, as in Flax's ``nnx.GRUCell``) and compares
the result with the framework's own cell (``nn.GRUCell``) or, without one, with the reference;
it refuses a function that calls the library's cell (the adapters' answer keys). The hints are
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
    _shape,
    _untouched,
    call_refusing,
)

__all__ = ["check_gru_step", "gru_cases", "gru_step"]


def gru_cases() -> list[dict[str, np.ndarray]]:
    """float32 inputs in PyTorch's layout: ``x (B, D)``, ``h (B, H)``, ``W_ih (3H, D)``,
    ``W_hh (3H, H)``, ``b_ih, b_hh (3H,)``; two cells, ``D != H``, batches of 2 and 3.

    The biases are large enough (``b_hn`` especially) that every known mistake moves the
    result far beyond the check's tolerance (a test asserts it).
    """
    rng = np.random.default_rng(22)
    cases = []
    for batch, d_in, hidden in [(2, 5, 4), (3, 4, 7)]:
        case = dict(
            x=rng.normal(size=(batch, d_in)),
            h=np.tanh(2 * rng.normal(size=(batch, hidden))),
            W_ih=rng.normal(size=(3 * hidden, d_in)) / np.sqrt(d_in),
            W_hh=rng.normal(size=(3 * hidden, hidden)) * 1.5 / np.sqrt(hidden),
            b_ih=rng.normal(size=3 * hidden) * 0.5,
            b_hh=rng.normal(size=3 * hidden) * 0.5,
        )
        case["b_hh"][2 * hidden :] += np.where(rng.random(hidden) < 0.5, -1.0, 1.0)
        cases.append({k: v.astype(np.float32) for k, v in case.items()})
    return cases


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def gru_step(
    x: np.ndarray,
    h: np.ndarray,
    W_ih: np.ndarray,
    W_hh: np.ndarray,
    b_ih: np.ndarray,
    b_hh: np.ndarray,
    *,
    order: Sequence[int] = (0, 1, 2),
    interleaved: bool = False,
    gate_acts: tuple[Callable, Callable] = (_sigmoid, _sigmoid),
    n_act: Callable = np.tanh,
    reset: str = "after",
    update: str = "old",
) -> np.ndarray:
    """``h_new (B, H)`` in float64 from PyTorch-layout weights; the keywords switch on mistakes.

    r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h (PyTorch's
    ``nn.GRUCell``). ``order[k]`` is the block of the 3H axis read as gate k of (r, z, n)
    (``interleaved``: every third entry, ``reshape(B, H, 3)[..., k]``, not a block);
    ``gate_acts`` replace r's and z's sigmoids, ``n_act`` n's tanh; ``reset`` is "after" (the
    right one), "before" (W_hn (r ⊙ h) + b_hn, Cho et al. 2014), "none" (no reset gate) or
    "bias_outside" (r ⊙ (W_hn h) + b_hn), "whole" (r ⊙ (gi_n + gh_n), input part too),
    "after_tanh" (r ⊙ tanh(gi_n + gh_n)) or "inverted" ((1 − r) ⊙ gh_n); ``update`` is "old"
    (the right one), "flipped" (z n + (1 − z) h), "no_old" ((1 − z) n), "none" (n alone) or
    "plus" (n + z h).
    """
    x, h, W_ih, W_hh, b_ih, b_hh = (
        np.asarray(a, np.float64) for a in (x, h, W_ih, W_hh, b_ih, b_hh)
    )
    gi, gh = x @ W_ih.T + b_ih, h @ W_hh.T + b_hh  # (B, 3H)
    if interleaved:
        gi, gh = (list(np.moveaxis(g.reshape(len(g), -1, 3), -1, 0)) for g in (gi, gh))
    else:
        gi, gh = np.split(gi, 3, axis=-1), np.split(gh, 3, axis=-1)  # (B, H) each
    i_r, i_z, i_n = (gi[k] for k in order)
    h_r, h_z, h_n = (gh[k] for k in order)
    r, z = gate_acts[0](i_r + h_r), gate_acts[1](i_z + h_z)
    W_hn, b_hn = np.split(W_hh, 3)[order[2]], np.split(b_hh, 3)[order[2]]
    n = {
        "after": lambda: n_act(i_n + r * h_n),
        "before": lambda: n_act(i_n + (r * h) @ W_hn.T + b_hn),
        "none": lambda: n_act(i_n + h_n),
        "bias_outside": lambda: n_act(i_n + r * (h_n - b_hn) + b_hn),
        "whole": lambda: n_act(r * (i_n + h_n)),
        "after_tanh": lambda: r * n_act(i_n + h_n),
        "inverted": lambda: n_act(i_n + (1 - r) * h_n),
    }[reset]()
    return {
        "old": lambda: (1 - z) * n + z * h,
        "flipped": lambda: z * n + (1 - z) * h,
        "no_old": lambda: (1 - z) * n,
        "none": lambda: n,
        "plus": lambda: n + z * h,
    }[update]()


def _gru_mistakes(case: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """(hint key, h_new) for each known mistake on ``case`` (PyTorch's layout)."""
    zero = np.zeros_like(case["b_ih"])
    no_b_hn = case["b_hh"].copy()
    no_b_hn[2 * case["h"].shape[1] :] = 0
    sig, identity = _sigmoid, lambda a: a
    mistakes = [
        ("gru_n_sigmoid", gru_step(**case, n_act=sig)),
        ("gru_n_sigmoid", gru_step(**case, n_act=identity)),
        ("gru_gate_tanh", gru_step(**case, gate_acts=(np.tanh, sig))),
        ("gru_gate_tanh", gru_step(**case, gate_acts=(sig, np.tanh))),
        ("gru_gate_tanh", gru_step(**case, gate_acts=(np.tanh, np.tanh))),
        (
            "gru_gate_tanh",
            gru_step(**case, gate_acts=(sig, lambda a: np.maximum(a, 0))),
        ),
        ("gru_update_flipped", gru_step(**case, update="flipped")),
        ("gru_old_state", gru_step(**case, update="no_old")),
        ("gru_old_state", gru_step(**case, update="none")),
        ("gru_old_state", gru_step(**case, update="plus")),
        ("gru_reset_input", gru_step(**case, reset="whole")),
        ("gru_reset_input", gru_step(**case, reset="after_tanh")),
        ("gru_reset_inverted", gru_step(**case, reset="inverted")),
        ("gru_one_bias", gru_step(**dict(case, b_hh=no_b_hn))),  # b_hn left out
        ("gru_gate_order", gru_step(**case, interleaved=True)),
        ("gru_reset_before", gru_step(**case, reset="before")),
        ("gru_reset_missing", gru_step(**case, reset="none")),
        ("gru_bias_outside", gru_step(**case, reset="bias_outside")),
        ("gru_one_bias", gru_step(**dict(case, b_hh=zero))),
        ("gru_one_bias", gru_step(**dict(case, b_ih=zero))),
        ("gru_one_bias", gru_step(**dict(case, b_ih=zero, b_hh=zero))),
        ("gru_no_recurrence", gru_step(**dict(case, W_hh=np.zeros_like(case["W_hh"])))),
    ]
    for order in itertools.permutations(range(3)):
        if order != (0, 1, 2):
            mistakes.append(("gru_gate_order", gru_step(**case, order=order)))
    return mistakes


def _gru_case(
    c: Checker,
    fn: Callable,
    case: dict[str, np.ndarray],
    weights_out_in: bool,
    library: Callable | None,
    watch_answer_keys: Watch,
) -> None:
    expected = library(**case) if library is not None else gru_step(**case)
    given = dict(case)
    if not weights_out_in:  # the framework's layout: (D, 3H) and (H, 3H)
        given["W_ih"], given["W_hh"] = case["W_ih"].T.copy(), case["W_hh"].T.copy()
    inputs = _inputs(c.fw, given)
    out = call_refusing(c, watch_answer_keys, "gru_answer_key", fn, *inputs.values())
    _untouched(c, inputs, given)
    if isinstance(out, tuple | list):
        raise c.fail(
            f"expected one {c.fw.array_type}, h_new, got a {type(out).__name__}",
            c.hint("gru_result_one"),
        )
    h_new = c.array(out, f"{c.fw.array_type} h_new")
    _shape(c, h_new, "h_new", case["h"].shape, "h_new has the shape of h, (B, H)")
    _dtype(c, h_new, "h_new", c.hint("gru_float32"))
    c.close(
        h_new,
        expected,
        what="an entry of h_new",
        rtol=1e-4,
        atol=1e-5,
        hint=_or_precision(
            c,
            h_new,
            expected,
            "h_new = (1 - z) * n + z * h, with the gates r, z, n read in that order "
            "from the 3H axis and n = tanh(gi_n + r * gh_n)",
        ),
        mistakes=[(c.hint(key), wrong) for key, wrong in _gru_mistakes(case)],
    )


def check_gru_step(
    fn: Callable,
    fw: Framework,
    *,
    weights_out_in: bool,
    library: Callable | None = None,
    watch_answer_keys: Watch,
) -> None:
    """``fn(x, h, W_ih, W_hh, b_ih, b_hh) -> h_new (B, H)`` float32, on two cells.

    ``weights_out_in``: the weights are given in PyTorch's layout, ``W_ih (3H, D)``, or else
    transposed, ``(D, 3H)`` (Flax's). ``library(**case)`` gives the expected ``h_new`` as
    float64 numpy from the framework's own GRU cell (PyTorch-layout case); without one, the
    numpy :func:`gru_step` does. ``fn`` must not call ``watch_answer_keys`` (the framework's
    GRU cells). Raises :class:`~helpers.labs.kit.CheckFailed` only, whatever ``fn`` returns.
    """
    with checking(
        "gru_step",
        fw,
        passed="h_new equals "
        + ("nn.GRUCell's" if library is not None else "a NumPy GRU cell's")
        + " on two cells",
    ) as c:
        for case in gru_cases():
            _gru_case(c, fn, case, weights_out_in, library, watch_answer_keys)
