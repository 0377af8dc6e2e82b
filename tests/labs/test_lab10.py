"""Lab 10's typical mistakes: each one fails its check with the hint written for it.

``MISTAKES`` lists, per framework, (exercise, a wrong solution, the key of the hint it must get).
Every hint the lab declares must be produced by at least one entry.

Also here: the numpy quantization reference of ``helpers/labs/lab10/checks.py`` equals
``torch.quantize_per_channel`` on the checks' cases, and the integrated-gradients reference is
complete (its attributions sum to F(x) - F(x')) on every case.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from labtools import mistake_table_tests

from helpers.labs.lab10 import affine
from helpers.labs.lab10 import checks as lab10


# ---------------------------------------------------------------- PyTorch mistakes
def _t_quantize(*, per_tensor=False, wrong_axis=False, levels=127, clip=True, dtype=True,
                pair=True, rounding=torch.round, swapped=False, scale_dtype=torch.float32,
                clamp=True, in_place=False):  # fmt: skip
    def quantize_int8(w, axis):
        if per_tensor:
            scale = w.abs().max().reshape((1,) * w.ndim)
        elif wrong_axis:
            scale = w.abs().amax(dim=axis, keepdim=True)
        else:
            others = tuple(d for d in range(w.ndim) if d != axis)
            scale = w.abs().amax(dim=others, keepdim=True)
        scale = (scale / levels).to(scale_dtype)
        if clamp:
            scale = scale.clamp(min=torch.finfo(torch.float32).tiny)
        if in_place:
            w /= scale
            r = rounding(w)
        else:
            r = rounding(w / scale)
        if clip:
            r = torch.clamp(r, -127, 127)
        q = r.to(torch.int8) if dtype else r
        if swapped:
            return scale, q
        return (q, scale) if pair else q

    return quantize_int8


def _t_ig(*, from_zero=False, times_x=False, no_difference=False, fixed_steps=None,
          summed=False, leaf=True, scalar=True, reversed_path=False,
          wrt_x=False):  # fmt: skip
    def integrated_gradients(f, x, baseline, steps):
        steps = fixed_steps or steps
        start = torch.zeros_like(x) if from_zero else baseline
        total = torch.zeros_like(x)
        for i in range(steps + 1):
            alpha = i / steps
            if wrt_x:  # the gradient with respect to x, through the path point
                x_leaf = x.detach().requires_grad_(True)
                point = start + alpha * (x_leaf - start)
                (grad,) = torch.autograd.grad(f(point).sum(), x_leaf)
            else:
                point = start + alpha * (x - start)
                if leaf:
                    point = point.requires_grad_(True)
                score = f(point).sum() if scalar else f(point)
                (grad,) = torch.autograd.grad(score, point)
            total += grad * (0.5 if i in (0, steps) else 1.0) / (1 if summed else steps)
        if no_difference:
            return total
        if reversed_path:
            return (start - x) * total
        return (x if times_x else x - start) * total

    return integrated_gradients


def _t_uint8(*, with_zero=True, levels=255, sign=1, zero_point=round, dtype=torch.uint8,
             scale_type=float, triple=True, floor=True, clip_z=False,
             per_channel=False):  # fmt: skip
    def quantize_uint8(x):
        if per_channel:
            lo, hi = (
                x.amin(-1, keepdim=True).clamp(max=0),
                x.amax(-1, keepdim=True).clamp(min=0),
            )
            scale = ((hi - lo) / 255).clamp(min=torch.finfo(torch.float32).tiny)
            z = torch.round(-lo / scale)
            return (
                torch.clamp(torch.round(x / scale) + z, 0, 255).to(torch.uint8),
                scale,
                z,
            )
        lo, hi = x.min().item(), x.max().item()
        if with_zero:
            lo, hi = min(lo, 0.0), max(hi, 0.0)
        scale = (hi - lo) / levels
        if floor:
            scale = max(scale, torch.finfo(torch.float32).tiny)
        z = zero_point(
            sign * -lo / scale
        )  # ZeroDivisionError for zeros without the floor
        if clip_z:
            z = min(max(z, 0), 255)
        q = torch.clamp(torch.round(x / scale) + z, 0, 255).to(dtype)
        return (q, scale_type(scale), z) if triple else (q, scale)

    return quantize_uint8


def _t_dequantize_uint8_in_place(q, scale, zero_point):
    q -= zero_point  # uint8 in place: wraps, and writes into the caller's tensor
    return q.float() * scale


def _t_dequantize_in_place(q, scale):
    scale /= 127  # a write into the caller's tensor (the answer is then wrong too)
    return q.float() * scale


def _t_codes(mistake):
    """quantize_uint8 with the codes (or the returned order) of one known mistake."""

    def quantize_uint8(x):
        lo, hi = min(x.min().item(), 0.0), max(x.max().item(), 0.0)
        scale = max((hi - lo) / 255, torch.finfo(torch.float32).tiny)
        z = round(-lo / scale)
        r = {
            "truncated": x / scale + z,  # the cast cuts the fraction off
            "no_zero_point": torch.round(x / scale),
            "round_once": torch.round((x - lo) / scale),
        }.get(mistake, torch.round(x / scale) + z)
        q = torch.clamp(r, 0, 255).to(torch.uint8)
        return (q, z, scale) if mistake == "swapped" else (q, scale, z)

    return quantize_uint8


def _t_ig_batch_mean(f, x, baseline, steps):
    return _t_ig()(lambda p: f(p) / len(p), x, baseline, steps)  # f(point).mean()


def _t_ig_midpoint(f, x, baseline, steps):
    total = torch.zeros_like(x)
    for i in range(
        steps
    ):  # the midpoint rule: near the integral, not the trapezoid rule
        point = (baseline + (i + 0.5) / steps * (x - baseline)).requires_grad_(True)
        total += torch.autograd.grad(f(point).sum(), point)[0] / steps
    return (x - baseline) * total


TORCH_MISTAKES = [
    ("quantize_int8", _t_quantize(per_tensor=True), "per_tensor"),
    ("quantize_int8", _t_quantize(wrong_axis=True), "channel_axis"),
    ("quantize_int8", _t_quantize(levels=128, clip=False), "overflow"),
    ("quantize_int8", _t_quantize(levels=128), "overflow"),
    ("quantize_int8", _t_quantize(dtype=False), "not_int8"),
    ("quantize_int8", _t_quantize(pair=False), "result_pair"),
    ("quantize_int8", _t_quantize(rounding=lambda r: r), "no_round"),
    ("quantize_int8", _t_quantize(rounding=torch.floor), "no_round"),
    ("quantize_int8", _t_quantize(swapped=True), "swapped_pair"),
    ("quantize_int8", _t_quantize(scale_dtype=torch.float64), "scale_float32"),
    ("quantize_int8", _t_quantize(clamp=False), "zero_channel"),
    ("quantize_int8", _t_quantize(in_place=True), "in_place"),
    ("dequantize_int8", lambda q, s: q.float() / s, "dequant_divide"),
    ("dequantize_int8", _t_dequantize_in_place, "in_place"),
    ("quantize_uint8", _t_uint8(with_zero=False), "range_with_zero"),
    ("quantize_uint8", _t_uint8(with_zero=False, clip_z=True), "range_with_zero"),
    ("quantize_uint8", _t_uint8(levels=256), "levels_255"),
    ("quantize_uint8", _t_uint8(sign=-1), "zero_point_sign"),
    ("quantize_uint8", _t_uint8(sign=-1, clip_z=True), "zero_point_sign"),
    ("quantize_uint8", _t_uint8(floor=False), "all_zero_input"),
    ("quantize_uint8", _t_uint8(per_channel=True), "per_tensor_scale"),
    ("quantize_uint8", _t_uint8(zero_point=int), "zero_point_integer"),
    ("quantize_uint8", _t_uint8(zero_point=lambda v: v), "zero_point_integer"),
    ("quantize_uint8", _t_uint8(dtype=torch.int8), "not_uint8"),
    ("quantize_uint8", _t_uint8(scale_type=torch.tensor), "scale_python_float"),
    ("quantize_uint8", _t_uint8(triple=False), "result_triple"),
    ("dequantize_uint8", lambda q, s, z: (q - z).float() * s, "uint8_wrap"),
    ("dequantize_uint8", lambda q, s, z: q.float() * s, "zero_point_missing"),
    ("dequantize_uint8", lambda q, s, z: (q.float() + z) * s, "zero_point_missing"),
    ("dequantize_uint8", _t_dequantize_uint8_in_place, "in_place"),
    ("dequantize_int8", lambda q, s: q.float(), "dequant_scale_missing"),
    ("integrated_gradients", _t_ig(from_zero=True), "missing_baseline"),
    ("integrated_gradients", _t_ig(times_x=True), "missing_baseline"),
    ("integrated_gradients", _t_ig(no_difference=True), "times_difference"),
    ("integrated_gradients", _t_ig(fixed_steps=2), "too_few_steps"),
    ("integrated_gradients", _t_ig(summed=True), "sum_not_mean"),
    ("integrated_gradients", _t_ig(leaf=False), "point_requires_grad"),
    ("integrated_gradients", _t_ig(scalar=False), "scalar_grad"),
    ("integrated_gradients", _t_ig(reversed_path=True), "reversed_path"),
    ("integrated_gradients", _t_ig(wrt_x=True), "path_gradient"),
    ("quantize_int8", _t_quantize(scale_dtype=torch.float16), "scale_float32"),
    ("dequantize_int8", lambda q, s: q.mul_(s), "in_place_dtype"),
    ("dequantize_int8", lambda q, s: s.mul_(q), "in_place"),
    ("quantize_uint8", _t_uint8(zero_point=math.ceil), "zero_point_integer"),
    ("quantize_uint8", _t_codes("swapped"), "triple_order"),
    ("quantize_uint8", _t_codes("truncated"), "codes_no_round"),
    ("quantize_uint8", _t_codes("no_zero_point"), "codes_add_zero_point"),
    ("quantize_uint8", _t_codes("round_once"), "codes_round_once"),
    ("dequantize_uint8", lambda q, s, z: (q.float() - z) / s, "affine_divide"),
    ("dequantize_uint8", lambda q, s, z: q.float() * s - z, "zero_point_order"),
    (
        "dequantize_uint8",
        lambda q, s, z: (q.to(torch.int8) - z).float() * s,
        "int8_wrap",
    ),
    ("integrated_gradients", _t_ig_batch_mean, "batch_mean"),
    ("integrated_gradients", _t_ig_midpoint, "trapezoid"),
]


# ---------------------------------------------------------------- JAX mistakes
def _j_quantize(*, per_tensor=False, wrong_axis=False, levels=127, clip=True, dtype=True,
                pair=True, rounding=jnp.round, swapped=False, clamp=True):  # fmt: skip
    def quantize_int8(w, axis):
        if per_tensor:
            scale = jnp.abs(w).max().reshape((1,) * w.ndim)
        elif wrong_axis:
            scale = jnp.abs(w).max(axis=axis, keepdims=True)
        else:
            others = tuple(d for d in range(w.ndim) if d != axis)
            scale = jnp.abs(w).max(axis=others, keepdims=True)
        scale = scale / levels
        if clamp:
            scale = jnp.maximum(scale, jnp.finfo(jnp.float32).tiny)
        r = rounding(w / scale)
        if clip:
            r = jnp.clip(r, -127, 127)
        q = r.astype(jnp.int8) if dtype else r
        if swapped:
            return scale, q
        return (q, scale) if pair else q

    return quantize_int8


def _j_ig(*, from_zero=False, times_x=False, no_difference=False, fixed_steps=None,
          summed=False, scalar=True, reversed_path=False, wrt_x=False):  # fmt: skip
    def integrated_gradients(f, x, baseline, steps):
        steps = fixed_steps or steps
        start = jnp.zeros_like(x) if from_zero else baseline
        grad = jax.grad(lambda p: f(p).sum()) if scalar else jax.grad(f)
        total = jnp.zeros_like(x)
        for i in range(steps + 1):
            weight = (0.5 if i in (0, steps) else 1.0) / (1 if summed else steps)
            alpha = i / steps
            if wrt_x:  # the gradient with respect to x, through the path point
                g = jax.grad(lambda x_, a=alpha: f(start + a * (x_ - start)).sum())(x)
            else:
                g = grad(start + alpha * (x - start))
            total = total + weight * g
        if no_difference:
            return total
        if reversed_path:
            return (start - x) * total
        return (x if times_x else x - start) * total

    return integrated_gradients


def _j_uint8(*, with_zero=True, levels=255, sign=1, zero_point=round, dtype=jnp.uint8,
             scale_type=float, triple=True, floor=True, clip_z=False,
             per_channel=False):  # fmt: skip
    def quantize_uint8(x):
        if per_channel:
            lo = jnp.minimum(x.min(-1, keepdims=True), 0)
            hi = jnp.maximum(x.max(-1, keepdims=True), 0)
            scale = jnp.maximum((hi - lo) / 255, jnp.finfo(jnp.float32).tiny)
            z = jnp.round(-lo / scale)
            return (
                jnp.clip(jnp.round(x / scale) + z, 0, 255).astype(jnp.uint8),
                scale,
                z,
            )
        if not floor:  # in float32 arrays: 0 / 0 is NaN, and int(NaN) raises
            lo, hi = jnp.minimum(x.min(), 0), jnp.maximum(x.max(), 0)
            scale = (hi - lo) / 255
            z = int(jnp.round(-lo / scale))
            q = jnp.clip(jnp.round(x / scale) + z, 0, 255).astype(jnp.uint8)
            return q, float(scale), z
        lo, hi = float(x.min()), float(x.max())
        if with_zero:
            lo, hi = min(lo, 0.0), max(hi, 0.0)
        scale = max((hi - lo) / levels, float(jnp.finfo(jnp.float32).tiny))
        z = zero_point(sign * -lo / scale)
        if clip_z:
            z = min(max(z, 0), 255)
        q = jnp.clip(jnp.round(x / scale) + z, 0, 255).astype(dtype)
        return (q, scale_type(scale), z) if triple else (q, scale)

    return quantize_uint8


def _j_scale_float64(w, axis):
    q, scale = _j_quantize()(w, axis)
    with jax.enable_x64(True):  # as a student who turned x64 on would get
        return q, jnp.asarray(scale, jnp.float64)


def _j_codes(mistake):
    """quantize_uint8 with the codes (or the returned order) of one known mistake."""

    def quantize_uint8(x):
        lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
        scale = max((hi - lo) / 255, float(jnp.finfo(jnp.float32).tiny))
        z = round(-lo / scale)
        r = {
            "truncated": x / scale + z,  # the cast cuts the fraction off
            "no_zero_point": jnp.round(x / scale),
            "round_once": jnp.round((x - lo) / scale),
        }.get(mistake, jnp.round(x / scale) + z)
        q = jnp.clip(r, 0, 255).astype(jnp.uint8)
        return (q, z, scale) if mistake == "swapped" else (q, scale, z)

    return quantize_uint8


def _j_scale_bfloat16(w, axis):
    q, scale = _j_quantize()(w, axis)
    return q, scale.astype(jnp.bfloat16)  # 3 significant digits


def _j_ig_batch_mean(f, x, baseline, steps):
    return _j_ig()(lambda p: f(p) / len(p), x, baseline, steps)  # f(point).mean()


def _j_ig_midpoint(f, x, baseline, steps):
    alphas = (
        jnp.arange(steps) + 0.5
    ) / steps  # the midpoint rule, not the trapezoid rule
    grad = jax.grad(lambda p: f(p).sum())
    grads = jax.vmap(lambda a: grad(baseline + a * (x - baseline)))(alphas)
    return (x - baseline) * grads.mean(0)


JAX_MISTAKES = [
    ("quantize_int8", _j_quantize(per_tensor=True), "per_tensor"),
    ("quantize_int8", _j_quantize(wrong_axis=True), "channel_axis"),
    ("quantize_int8", _j_quantize(levels=128, clip=False), "overflow"),
    ("quantize_int8", _j_quantize(levels=128), "overflow"),
    ("quantize_int8", _j_quantize(dtype=False), "not_int8"),
    ("quantize_int8", _j_quantize(pair=False), "result_pair"),
    ("quantize_int8", _j_quantize(rounding=lambda r: r), "no_round"),
    ("quantize_int8", _j_quantize(rounding=jnp.floor), "no_round"),
    ("quantize_int8", _j_quantize(swapped=True), "swapped_pair"),
    ("quantize_int8", _j_scale_float64, "scale_float32"),
    ("quantize_int8", _j_quantize(clamp=False), "zero_channel"),
    ("dequantize_int8", lambda q, s: q.astype(jnp.float32) / s, "dequant_divide"),
    ("dequantize_int8", lambda q, s: q.astype(jnp.float32), "dequant_scale_missing"),
    ("quantize_uint8", _j_uint8(with_zero=False), "range_with_zero"),
    ("quantize_uint8", _j_uint8(with_zero=False, clip_z=True), "range_with_zero"),
    ("quantize_uint8", _j_uint8(levels=256), "levels_255"),
    ("quantize_uint8", _j_uint8(sign=-1), "zero_point_sign"),
    ("quantize_uint8", _j_uint8(sign=-1, clip_z=True), "zero_point_sign"),
    ("quantize_uint8", _j_uint8(floor=False), "all_zero_input"),
    ("quantize_uint8", _j_uint8(per_channel=True), "per_tensor_scale"),
    ("quantize_uint8", _j_uint8(zero_point=int), "zero_point_integer"),
    ("quantize_uint8", _j_uint8(zero_point=jnp.round), "zero_point_integer"),
    ("quantize_uint8", _j_uint8(dtype=jnp.int8), "not_uint8"),
    ("quantize_uint8", _j_uint8(scale_type=jnp.float32), "scale_python_float"),
    ("quantize_uint8", _j_uint8(triple=False), "result_triple"),
    ("dequantize_uint8", lambda q, s, z: (q - z).astype(jnp.float32) * s, "uint8_wrap"),
    (
        "dequantize_uint8",
        lambda q, s, z: q.astype(jnp.float32) * s,
        "zero_point_missing",
    ),
    (
        "dequantize_uint8",
        lambda q, s, z: (q.astype(jnp.float32) + z) * s,
        "zero_point_missing",
    ),
    ("integrated_gradients", _j_ig(from_zero=True), "missing_baseline"),
    ("integrated_gradients", _j_ig(times_x=True), "missing_baseline"),
    ("integrated_gradients", _j_ig(no_difference=True), "times_difference"),
    ("integrated_gradients", _j_ig(fixed_steps=2), "too_few_steps"),
    ("integrated_gradients", _j_ig(summed=True), "sum_not_mean"),
    ("integrated_gradients", _j_ig(scalar=False), "scalar_grad"),
    ("integrated_gradients", _j_ig(reversed_path=True), "reversed_path"),
    ("integrated_gradients", _j_ig(wrt_x=True), "path_gradient"),
    ("quantize_int8", _j_scale_bfloat16, "scale_float32"),
    ("quantize_uint8", _j_uint8(zero_point=math.ceil), "zero_point_integer"),
    ("quantize_uint8", _j_codes("swapped"), "triple_order"),
    ("quantize_uint8", _j_codes("truncated"), "codes_no_round"),
    ("quantize_uint8", _j_codes("no_zero_point"), "codes_add_zero_point"),
    ("quantize_uint8", _j_codes("round_once"), "codes_round_once"),
    (
        "dequantize_uint8",
        lambda q, s, z: (q.astype(jnp.float32) - z) / s,
        "affine_divide",
    ),
    (
        "dequantize_uint8",
        lambda q, s, z: q.astype(jnp.float32) * s - z,
        "zero_point_order",
    ),
    ("dequantize_uint8", lambda q, s, z: (q.astype(jnp.int8) - z) * s, "int8_wrap"),
    ("integrated_gradients", _j_ig_batch_mean, "batch_mean"),
    ("integrated_gradients", _j_ig_midpoint, "trapezoid"),
]

MISTAKES = {"pytorch": TORCH_MISTAKES, "jax": JAX_MISTAKES}

(
    test_catches_mistake_with_its_hint,
    test_at_least_two_mistakes_per_exercise,
    test_every_declared_hint_is_produced_by_a_mistake,
) = mistake_table_tests("lab10", MISTAKES)


# ---------------------------------------------------------------- the references
@pytest.mark.parametrize("case", range(3))
def test_quantize_reference_equals_torch_quantize_per_channel(case):
    w, axis = lab10.quantize_cases(channels_last=False)[case]
    q, scale = lab10.quantize_reference(w, axis)
    with (
        warnings.catch_warnings()
    ):  # the quantized-tensor API is deprecated, still there
        warnings.simplefilter("ignore")
        library = torch.quantize_per_channel(
            torch.from_numpy(w), torch.from_numpy(scale.ravel()).double(),
            torch.zeros(w.shape[axis], dtype=torch.long), axis, torch.qint8,
        )  # fmt: skip
    np.testing.assert_array_equal(library.int_repr().numpy(), q)
    # The rounding error is at most half a step of each channel's scale.
    assert np.all(np.abs(q * scale - w) <= scale / 2 + 1e-8)


def test_quantize_cases_in_flax_layout_are_the_same_weights():
    for (w_t, a_t), (w_j, a_j) in zip(
        lab10.quantize_cases(False), lab10.quantize_cases(True), strict=True
    ):
        q_t, s_t = lab10.quantize_reference(w_t, a_t)
        q_j, s_j = lab10.quantize_reference(w_j, a_j)
        # PyTorch's channel axis goes to the other end in Flax's layout (first <-> last).
        other_end = w_t.ndim - 1 if a_t == 0 else 0
        assert a_j == other_end
        np.testing.assert_array_equal(np.moveaxis(q_t, a_t, a_j), q_j)
        np.testing.assert_allclose(np.moveaxis(s_t, a_t, a_j), s_j)


@pytest.mark.parametrize("case", lab10.IG_CASES, ids=["case0", "case1"])
def test_ig_reference_is_complete(case):
    ig = lab10.ig_reference(case["x"], case["baseline"], case["steps"])
    gap = lab10.ig_score(case["x"]) - lab10.ig_score(case["baseline"])
    assert np.all(np.abs(ig.sum(1) - gap) <= 1e-3 * np.abs(gap))
    # and two steps are not enough: the too-few-steps mistake is caught by completeness
    few = lab10.ig_reference(case["x"], case["baseline"], 2)
    assert np.max(np.abs(few.sum(1) - gap) / np.abs(gap)) > 0.01


@pytest.mark.parametrize("case", range(len(affine.affine_cases())))
def test_affine_reference_equals_torch_quantize_per_tensor(case):
    x = affine.affine_cases()[case]
    q, scale, zero_point = affine.affine_reference(x)
    assert 0 <= zero_point <= 255 and isinstance(zero_point, int)
    library = torch.quantize_per_tensor(
        torch.from_numpy(x), scale, zero_point, torch.quint8
    )
    np.testing.assert_array_equal(library.int_repr().numpy(), q)
    # Every value is within half a step of its code.
    assert np.all(
        np.abs((q.astype(np.float64) - zero_point) * scale - x) <= scale / 2 + 1e-7
    )


def test_affine_cases_tell_round_from_int_for_the_zero_point():
    fractions = [
        -min(x.min(), 0) / affine.affine_reference(x)[1] % 1
        for x in affine.affine_cases()
    ]
    assert max(fractions) > 0.6  # int() cuts it down, round() goes up: the codes differ
    assert (
        min(f for f in fractions if f) < 0.4
    )  # and ceil() goes up where round() does not
