"""Lab 6, exercise 3: rotary position embeddings (RoPE), interleaved pairs.

``apply_rope(x (B, T, heads, D), positions (T,), base=10000.0)`` rotates each pair of
features ``(2i, 2i + 1)`` of ``x[b, t, h]`` by the angle ``positions[t] * base ** (-2i / D)``
(Su et al.'s RoFormer, GPT-J, Meta's original LLaMA code). The cases, the float64 numpy answer
(:func:`rope_reference`, with a switch per known mistake) and the check are here; the hints
are :data:`helpers.labs.lab06.mistakes.HINTS`, worded per framework by the adapters
(``torch.py``, ``jax.py``), which also say how to refuse a library's RoPE (PyTorch's ONNX
``RotaryEmbedding`` op; JAX and Flax have none) and, for JAX, run the function under
``jax.jit`` too. ``tests/labs/test_lab06.py`` asserts that the reference equals PyTorch's
ONNX op with ``interleaved=True`` and that every mistake moves some case.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, CheckFailed, Framework, Watch, checking

__all__ = ["ROPE_MISTAKES", "check_apply_rope", "rope_cases", "rope_reference"]

DEFAULT_BASE = 10000.0

# Each known mistake whose whole answer is known: (the key of its hint, its name below).
ROPE_MISTAKES = [
    ("rope_rotate_half", "rotate_half"),
    ("rope_table_layout", "table_cat"),
    ("rope_table_layout", "table_repeat_half"),
    ("rope_exponent", "freq_half"),
    ("rope_exponent", "freq_sign"),
    ("rope_no_frequency", "no_freq"),
    ("rope_base", "base_default"),
    ("rope_positions", "arange"),
    ("rope_direction", "sin_flipped"),
    ("rope_axes", "angles_on_heads"),
    ("rope_cos_sin", "cos_only"),
    ("rope_cos_sin", "sin_only"),
    ("rope_pair_swap", "no_swap"),
    ("rope_cat_output", "cat_output"),
    ("rope_shape", "transposed"),
    # from the student pass (each got only the formula's hint, or none, before)
    ("rope_unchanged", "unchanged"),
    ("rope_positions", "positions_plus_one"),
    ("rope_positions", "contiguous"),
    ("rope_exponent", "linspace"),
    ("rope_exponent", "freq_quarter"),
    ("rope_cos_sin", "cos_sin_swapped"),
    ("rope_pair_order", "pair_roles"),
    ("rope_pair_order", "pair_output_swapped"),
    ("rope_partial", "partial"),
    # from the second student pass (each got only the formula's hint, or another one, before)
    ("rope_exponent", "freq_from_one"),
    ("rope_exponent", "freq_odd"),
    ("rope_exponent", "freq_2i_minus_1"),
    ("rope_exponent", "floor_div"),
    ("rope_direction", "sign_y0"),
    ("rope_direction", "sign_y1"),
    ("rope_axes", "angles_on_pairs"),
    ("rope_overwritten", "stale_even"),
    ("rope_overwritten", "stale_odd"),
]


def rope_cases() -> list[dict[str, Any]]:
    """float32 ``x (B, T, heads, D)``, int64 ``positions (T,)`` and ``base`` (None: the default).

    1. positions ``0..T-1``, ``T == heads`` (angles laid along the heads axis show as values);
    2. an offset, ``50..53``, as when decoding after 50 cached tokens, ``D = 6``;
    3. gaps and a base of 100, ``D = 10`` (neither multiple of 4);
    4. ``D = 2``, one pair, with gaps.
    """
    rng = np.random.default_rng(63)
    specs = [
        ((2, 4, 4, 8), np.arange(4), None),
        ((1, 4, 2, 6), np.arange(50, 54), None),
        ((2, 6, 3, 10), np.array([2, 3, 7, 8, 15, 40]), 100.0),
        ((3, 3, 2, 2), np.array([0, 4, 11]), None),
    ]
    return [
        dict(
            x=rng.normal(size=shape).astype(np.float32),
            positions=positions.astype(np.int64),
            base=base,
        )
        for shape, positions, base in specs
    ]


def _interleave(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(..., D/2)`` and ``(..., D/2)`` -> ``(..., D)``: a at even, b at odd features."""
    return np.stack([a, b], axis=-1).reshape(*a.shape[:-1], 2 * a.shape[-1])


def rope_reference(
    x: np.ndarray,
    positions: np.ndarray,
    base: float | None = None,
    mistake: str = "",
) -> np.ndarray | None:
    """float64 ``x`` rotated pair by pair; ``mistake`` computes a known wrong answer (None
    where that mistake gives no array of this case: angles on the heads axis need T == heads).
    """
    x = np.asarray(x, np.float64)
    t, heads, d = x.shape[1:]
    if mistake in ("transposed", "partial"):
        right = rope_reference(x, positions, base)
        if mistake == "partial":  # only the first D/2 features rotated (rotary_pct 0.5)
            return np.concatenate([right[..., : d // 2], x[..., d // 2 :]], axis=-1)
        # (B, heads, T, D): x's shape only when T == heads
        return right.transpose(0, 2, 1, 3) if t == heads else None
    if mistake == "unchanged":
        return x
    half = d // 2
    i = np.arange(half)
    b = DEFAULT_BASE if base is None or mistake == "base_default" else base
    exponent = {
        "freq_half": -i / d,
        "freq_sign": 2 * i / d,
        "freq_quarter": -4 * i / d,  # -2i / (D/2)
        "linspace": -i / max(half - 1, 1),  # linspace(0, 1, D/2)
        # i = 1, ..., D/2: the paper's i, without its - 1
        "freq_from_one": -2 * (i + 1) / d,
        "freq_odd": -(2 * i + 1) / d,  # arange(1, D, 2): the odd features
        "freq_2i_minus_1": -(2 * i - 1) / d,
        "floor_div": np.floor(-2 * i / d),  # (-2 * i) // D: 0, then -1 for every pair
    }.get(mistake, -2 * i / d)
    inv = np.ones(half) if mistake == "no_freq" else b**exponent  # (D/2,)
    pos = np.asarray(positions, np.float64)
    pos = {
        "arange": np.arange(t),
        "positions_plus_one": pos + 1,
        "contiguous": pos[0] + np.arange(t),  # from the first position, without gaps
    }.get(mistake, pos)
    angle = pos[:, None] * inv[None, :]  # (T, D/2)
    if mistake == "sin_flipped":
        angle = -angle
    if mistake == "angles_on_heads":  # cos (T, D/2) without its heads axis
        if t != heads:
            return None
        angle = angle[None]  # (1, T, D/2): broadcasts along the heads axis
    # cos[..., None], (T, D/2, 1): the angle of pair i on head i
    elif mistake == "angles_on_pairs":
        if half != heads:
            return None
        angle = angle[:, :, None]
    else:
        angle = angle[:, None, :]  # (T, 1, D/2)
    x0, x1 = x[..., 0::2], x[..., 1::2]  # (B, T, heads, D/2) each
    if mistake in ("table_cat", "table_repeat_half"):  # per-feature tables (T, 1, D)
        if mistake == "table_cat":  # cat(freqs, freqs) on interleaved pairs
            e = np.concatenate([angle, angle], axis=-1)
            turned = _interleave(-x1, x0)
        else:  # repeat_interleave(freqs, 2) on rotate-half pairs
            e = np.repeat(angle, 2, axis=-1)
            turned = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * np.cos(e) + turned * np.sin(e)
    cos, sin = np.cos(angle), np.sin(angle)
    if mistake == "rotate_half":  # pairs (i, i + D/2)
        h0, h1 = x[..., :half], x[..., half:]
        return np.concatenate([h0 * cos - h1 * sin, h1 * cos + h0 * sin], axis=-1)
    y0, y1 = {
        "cos_only": lambda: (x0 * cos, x1 * cos),
        "sin_only": lambda: (-x1 * sin, x0 * sin),
        "no_swap": lambda: (x0 * cos - x0 * sin, x1 * cos + x1 * sin),
        "cos_sin_swapped": lambda: (x0 * sin - x1 * cos, x0 * cos + x1 * sin),
        "pair_roles": lambda: (x1 * cos - x0 * sin, x1 * sin + x0 * cos),
        "pair_output_swapped": lambda: (x0 * sin + x1 * cos, x0 * cos - x1 * sin),
        "sign_y0": lambda: (x0 * cos + x1 * sin, x0 * sin + x1 * cos),
        "sign_y1": lambda: (x0 * cos - x1 * sin, x1 * cos - x0 * sin),
        # the even features written first, the odd ones then read from them (or the other way)
        "stale_even": lambda: (
            x0 * cos - x1 * sin,
            (x0 * cos - x1 * sin) * sin + x1 * cos,
        ),
        "stale_odd": lambda: (
            x0 * cos - (x0 * sin + x1 * cos) * sin,
            x0 * sin + x1 * cos,
        ),
    }.get(mistake, lambda: (x0 * cos - x1 * sin, x1 * cos + x0 * sin))()
    if mistake == "cat_output":  # the rotated pairs put back as [evens, odds]
        return np.concatenate([y0, y1], axis=-1)
    return _interleave(y0, y1)


# --- the check -----------------------------------------------------------------------------------
_KIND = re.compile(r"^(?:float|int|uint|complex|bfloat)")


def _sizes(case: dict[str, Any]) -> str:
    b, t, heads, d = case["x"].shape
    pos = case["positions"]
    if np.array_equal(pos, np.arange(t)):
        where = "positions 0..T-1"
    elif np.array_equal(pos, np.arange(pos[0], pos[0] + t)):
        where = f"positions {pos[0]}..{pos[-1]} (an offset)"
    else:
        where = f"positions {pos.tolist()} (with gaps)"
    base = "" if case["base"] is None else f", base = {case['base']:g}"
    return f"B = {b}, T = {t}, heads = {heads}, D = {d}, {where}{base}"


def _result(c: Checker, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The student's result as numpy, or a failure naming a tuple, list or complex result."""
    if isinstance(value, tuple):
        raise c.fail(
            f"expected {c.fw.array_type}, the rotated x alone, got a tuple of {len(value)}",
            c.hint("rope_tuple"),
        )
    if isinstance(value, list):
        raise c.fail(
            f"expected {c.fw.array_type}, got a Python list", c.hint("list_result")
        )
    arr = c.array(value)
    if np.iscomplexobj(arr):
        raise c.fail(
            f"the result is complex ({arr.dtype}, shape {arr.shape}), expected float32 "
            f"{shape}",
            c.hint("rope_complex"),
        )
    if not _KIND.match(arr.dtype.name) and arr.dtype != np.bool_:
        raise c.fail(f"the result has dtype {arr.dtype}, expected float32")
    return arr


def _one(
    c: Checker,
    fn: Callable,
    case: dict[str, Any],
    watch: Watch | None,
    label: str,
) -> None:
    x, positions, base = case["x"], case["positions"], case["base"]
    given = [c.fw.from_numpy(x.copy()), c.fw.from_numpy(positions.copy())]
    pos_dtype = c.fw.to_numpy(given[1]).dtype  # JAX holds int64 positions as int32
    with watch() if watch is not None else nullcontext([]) as called:
        try:
            out = c.call(fn, *given) if base is None else c.call(fn, *given, base)
        except CheckFailed as e:
            raise _outer_or_axes(c, e, x.shape) from None
    if called:
        raise c.fail(f"your function called {called[0]}", c.hint("rope_answer_key"))
    for value, original in zip(given, (x, positions.astype(pos_dtype)), strict=True):
        if not np.array_equal(c.fw.to_numpy(value), original):
            raise c.fail("an input changed during the call", c.hint("in_place"))
    arr = _result(c, out, x.shape)
    right = rope_reference(x, positions, base)
    what = f"{label}the case {_sizes(case)}: the result"
    if arr.shape != right.shape:
        raise c.fail(
            f"{what} has shape {arr.shape}, expected {right.shape} (that of x)",
            c.hint("rope_shape"),
        )
    values = np.asarray(arr, np.float64)
    # an integer or bool result, or float64/float16 values that are right otherwise
    if arr.dtype.kind in "iub" or (
        arr.dtype != np.float32 and np.allclose(values, right, rtol=1e-2, atol=1e-2)
    ):
        raise c.fail(
            f"{what} has dtype {arr.dtype}, expected float32", c.hint("rope_dtype")
        )
    c.close(
        values,
        right,
        what=what,
        rtol=1e-4,
        atol=1e-4,
        hint=_mistake_hint(c, values, case, right),
    )
    c.dtype(arr, "float32", c.hint("rope_dtype"))


def _mistake_hint(
    c: Checker, values: np.ndarray, case: dict[str, Any], right: np.ndarray
) -> str:
    """The hint of the first known mistake that gives ``values`` to 1e-4; else
    ``rope_partial`` when every feature is either rotated right or x's own; else a known
    mistake to 1e-2 (float32 angles of thousands of radians, as a growing frequency makes,
    drift by ~1e-3), among those that differ from the answer by more; else the formula's."""
    x, positions, base = case["x"], case["positions"], case["base"]
    wrongs = [
        (key, wrong)
        for key, name in ROPE_MISTAKES
        if (wrong := rope_reference(x, positions, base, name)) is not None
        and wrong.shape == values.shape
    ]
    for key, wrong in wrongs:
        if np.allclose(values, wrong, rtol=1e-4, atol=1e-4):
            return c.hint(key)
    if values.shape == right.shape:
        kept = np.isclose(values, x, rtol=1e-4, atol=1e-4)
        if np.all(kept | np.isclose(values, right, rtol=1e-4, atol=1e-4)):
            return c.hint("rope_partial")
    for key, wrong in wrongs:
        if np.allclose(values, wrong, rtol=1e-2, atol=1e-2) and not np.allclose(
            wrong, right, rtol=1e-2, atol=1e-2
        ):
            return c.hint(key)
    return c.hint("rope_formula")


def _outer_or_axes(c: Checker, e: CheckFailed, shape: tuple[int, ...]) -> CheckFailed:
    """PyTorch words positions (T,) times freqs (D/2,) and a (T, 1, 1, D/2) table against
    x (B, T, heads, D/2) alike ("size of tensor a (B) must match ... at non-singleton
    dimension 0"): the outer product's hint only where the sizes are T and D/2."""
    sizes = {int(n) for n in re.findall(r"\((\d+),?\)", e.problem)}
    if e.hint == c.hint("rope_outer") and sizes and sizes != {shape[1], shape[3] // 2}:
        return c.fail(e.problem, c.hint("rope_axes"))
    return e


def check_apply_rope(
    fn: Callable,
    *,
    fw: Framework,
    watch: Watch | None = None,
    jit: Callable[[Callable], Callable] | None = None,
) -> None:
    """``fn(x (B, T, heads, D) float32, positions (T,) int[, base])`` -> float32 like x.

    Four cases (:func:`rope_cases`), each called with ``base`` only where it is not the
    default, compared with the float64 reference; then, if ``jit`` is given (JAX:
    ``jax.jit``), each case again through ``jit(lambda x, positions: fn(...))``. ``watch``
    sees the library's RoPE (the answer key), which fails the check. Raises only
    :class:`~helpers.labs.kit.CheckFailed`, whatever ``fn`` returns.
    """
    with checking(
        "apply_rope",
        fw,
        # the pass line fits the site's 96-character output box in both frameworks
        passed="pair i turned by positions[t] * base**(-2i/D), 4 cases"
        + (", also jitted" if jit is not None else ""),
    ) as c:
        runs = [("", fn)]
        if jit is not None:
            runs.append(("under jax.jit, ", jit(fn)))
        for label, run in runs:
            for case in rope_cases():
                try:
                    _one(c, run, case, watch, label)
                except CheckFailed as e:
                    if label and e.problem.startswith("your code raised"):
                        raise c.fail(f"under jax.jit: {e.problem}", e.hint) from None
                    raise
