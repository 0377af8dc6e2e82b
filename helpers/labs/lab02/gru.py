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

from helpers.labs.kit import Checker, CheckFailed, Framework, Watch, checking
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
    cut: str = "blocks",
    gate_acts: tuple[Callable, Callable] = (_sigmoid, _sigmoid),
    n_act: Callable = np.tanh,
    reset: str = "after",
    update: str = "old",
    gates_input_only: bool = False,
) -> np.ndarray:
    """``h_new (B, H)`` in float64 from PyTorch-layout weights; the keywords switch on mistakes.

    r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h (PyTorch's
    ``nn.GRUCell``). ``order[k]`` is the block of the 3H axis read as gate k of (r, z, n)
    (``interleaved``: every third entry, ``reshape(B, H, 3)[..., k]``, not a block;
    ``cut="reshape"``: ``reshape(3, B, H)[k]``, which mixes the batch into the blocks);
    ``gate_acts`` replace r's and z's sigmoids, ``n_act`` n's tanh; ``reset`` is "after" (the
    right one), "before" (W_hn (r ⊙ h) + b_hn, Cho et al. 2014), "before_no_bias" (W_hn (r ⊙ h)),
    "h_alone" (r ⊙ h, no W_hn), "z_gate" (z ⊙ gh_n), "none" (no reset gate),
    "bias_outside" (r ⊙ (W_hn h) + b_hn), "whole" (r ⊙ (gi_n + gh_n), input part too),
    "after_tanh" (r ⊙ tanh(gi_n + gh_n)) or "inverted" ((1 − r) ⊙ gh_n); ``update`` is "old"
    (the right one), "flipped" (z n + (1 − z) h), "no_old" ((1 − z) n), "none" (n alone),
    "plus" (n + z h), "plus_h" ((1 − z) n + h) or "r_gate" ((1 − r) n + r h);
    ``gates_input_only``: r and z from gi alone.
    """
    x, h, W_ih, W_hh, b_ih, b_hh = (
        np.asarray(a, np.float64) for a in (x, h, W_ih, W_hh, b_ih, b_hh)
    )
    gi, gh = x @ W_ih.T + b_ih, h @ W_hh.T + b_hh  # (B, 3H)
    if interleaved:
        gi, gh = (list(np.moveaxis(g.reshape(len(g), -1, 3), -1, 0)) for g in (gi, gh))
    elif cut == "reshape":
        gi, gh = (list(g.reshape(3, len(g), -1)) for g in (gi, gh))
    else:
        gi, gh = np.split(gi, 3, axis=-1), np.split(gh, 3, axis=-1)  # (B, H) each
    i_r, i_z, i_n = (gi[k] for k in order)
    h_r, h_z, h_n = (gh[k] for k in order)
    if gates_input_only:
        h_r = h_z = 0
    r, z = gate_acts[0](i_r + h_r), gate_acts[1](i_z + h_z)
    W_hn, b_hn = np.split(W_hh, 3)[order[2]], np.split(b_hh, 3)[order[2]]
    n = {
        "after": lambda: n_act(i_n + r * h_n),
        "before": lambda: n_act(i_n + (r * h) @ W_hn.T + b_hn),
        "before_no_bias": lambda: n_act(i_n + (r * h) @ W_hn.T),
        "h_alone": lambda: n_act(i_n + r * h),
        "z_gate": lambda: n_act(i_n + z * h_n),
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
        "plus_h": lambda: (1 - z) * n + h,
        "r_gate": lambda: (1 - r) * n + r * h,
    }[update]()


def _gru_mistakes(
    case: dict[str, np.ndarray], weights_out_in: bool = True
) -> list[tuple[str, np.ndarray]]:
    """(hint key, h_new) for each known mistake on ``case`` (PyTorch's layout).

    ``weights_out_in``: the student got PyTorch's layout, where ``W.reshape(in, out)``
    for ``W.T`` is a mistake of its own.
    """
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
        # from a second student pass
        ("gru_reset_before", gru_step(**case, reset="before_no_bias")),
        ("gru_candidate_hidden", gru_step(**case, reset="h_alone")),
        ("gru_gate_roles", gru_step(**case, reset="z_gate")),
        ("gru_gate_roles", gru_step(**case, update="r_gate")),
        ("gru_old_state", gru_step(**case, update="plus_h")),
        ("gru_n_sigmoid", gru_step(**case, n_act=lambda a: np.maximum(a, 0))),
        ("gru_no_recurrence", gru_step(**case, gates_input_only=True)),
        ("gru_split", gru_step(**case, cut="reshape")),
        (
            "gru_biases_swapped",
            gru_step(**dict(case, b_ih=case["b_hh"], b_hh=case["b_ih"])),
        ),
    ]
    if weights_out_in:  # x @ W_ih.reshape(D, 3H), h @ W_hh.reshape(H, 3H)
        reshaped = {
            k: case[k].reshape(case[k].shape[1], -1).T for k in ("W_ih", "W_hh")
        }
        mistakes.append(
            ("gru_reshape_not_transpose", gru_step(**dict(case, **reshaped)))
        )
    for order in itertools.permutations(range(3)):
        if order != (0, 1, 2):
            mistakes.append(("gru_gate_order", gru_step(**case, order=order)))
    return mistakes


# The exercise's formula: the hint of a wrong h_new that matches no known mistake.
_FORMULA = (
    "h_new = (1 - z) * n + z * h, with the gates r, z, n read in that order "
    "from the 3H axis and n = tanh(gi_n + r * gh_n)"
)
_SHAPE = "h_new has the shape of h, (B, H)"


def _state_tuple(c: Checker, out: tuple | list, shape: tuple[int, ...]) -> bool:
    """Whether ``out`` holds whole states, arrays of h's shape (an LSTM's (h, c), say)."""
    try:
        return all(c.fw.to_numpy(part).shape == shape for part in out)
    except Exception:
        return False


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
    shape = case["h"].shape
    if isinstance(out, tuple | list):
        key = "gru_result_one" if _state_tuple(c, out, shape) else "gru_result_list"
        raise c.fail(
            f"expected {c.fw.array_type}, h_new alone, got a {type(out).__name__} "
            f"of {len(out)}",
            c.hint(key),
        )
    h_new = c.array(out, f"{c.fw.array_type} h_new")
    if h_new.shape == shape[::-1]:
        raise c.fail(
            f"h_new has shape {h_new.shape}, expected {shape}",
            c.hint("gru_result_transposed"),
        )
    _shape(c, h_new, "h_new", shape, _SHAPE)
    _dtype(c, h_new, "h_new", c.hint("gru_float32"))
    c.close(
        h_new,
        expected,
        what="an entry of h_new",
        rtol=1e-4,
        atol=1e-5,
        hint=_or_precision(c, h_new, expected, _FORMULA),
        mistakes=[
            (c.hint(key), wrong) for key, wrong in _gru_mistakes(case, weights_out_in)
        ],
    )


def _sizes(case: dict[str, np.ndarray]) -> str:
    (batch, d_in), hidden = case["x"].shape, case["h"].shape[1]
    return f"B = {batch}, D = {d_in}, H = {hidden}"


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
    GRU cells). A function right on the first cell that fails the second with no named
    mistake (a crash, a wrong shape, wrong values) gets the hint for sizes written as
    numbers. Raises :class:`~helpers.labs.kit.CheckFailed` only, whatever ``fn`` returns.
    """
    with checking(
        "gru_step",
        fw,
        passed="h_new equals "
        + ("nn.GRUCell's" if library is not None else "a NumPy GRU cell's")
        + " on two cells",
    ) as c:
        first, *others = gru_cases()
        _gru_case(c, fn, first, weights_out_in, library, watch_answer_keys)
        unnamed = {"", _FORMULA, _SHAPE, c.hint("shapes")}
        for case in others:
            try:
                _gru_case(c, fn, case, weights_out_in, library, watch_answer_keys)
            except CheckFailed as e:
                if e.hint not in unnamed:
                    raise
                raise c.fail(
                    f"right on the first cell ({_sizes(first)}), but on the next "
                    f"({_sizes(case)}): {e.problem}",
                    c.hint("gru_hard_coded"),
                ) from None
