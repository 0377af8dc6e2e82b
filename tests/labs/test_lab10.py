"""Lab 10's typical mistakes: each one fails its check with the hint written for it.

``MISTAKES`` lists, per framework, (exercise, a wrong solution, the key of the hint it must get).
Every hint the lab declares must be produced by at least one entry.

Also here: the numpy quantization reference of ``helpers/labs/lab10/checks.py`` equals
``torch.quantize_per_channel`` on the checks' cases, and the integrated-gradients reference is
complete (its attributions sum to F(x) - F(x')) on every case; exercise 5's (fake
quantization) forward equals ``torch.fake_quantize_per_*_affine``, its gradient differs only
where 127 < |w / scale| < 127.5 (PyTorch masks on the rounded value), and the check accepts
each valid form (detach, autograd.Function, stop_gradient, custom_vjp, custom_jvp, jit).
"""

from __future__ import annotations

import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from labtools import mistake_table_tests

from helpers.labs.lab10 import affine, ste
from helpers.labs.lab10 import checks as lab10
from helpers.labs.lab10 import jax as jax_adapter
from helpers.labs.lab10 import torch as torch_adapter


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


# ---------------------------------------------------------------- exercise 5 (fake quantization)
def _t_fq(*, rounding=torch.round, lo=-127, clip=True, times_scale=True, mask="clamp",
          dtype=None, wrong_term=False):  # fmt: skip
    """fake_quantize in the detach form, with one known mistake switched on."""

    def fake_quantize(w, scale):
        r = rounding(w / scale)
        q = torch.clamp(r, lo, 127) if clip else r
        value = q * scale if times_scale else q
        if mask == "none":  # no STE at all
            out = value
        elif mask == "all":  # the STE without the clip mask
            out = w + (value - w).detach()
        else:
            w_c = torch.clamp(w, lo * scale, 127 * scale)
            out = (
                w_c.detach() + (value - w_c)
                if wrong_term
                else w_c + (value - w_c).detach()
            )
        return out if dtype is None else out.to(dtype)

    return fake_quantize


def _t_fq_function(backward):
    """fake_quantize as a torch.autograd.Function whose backward is backward(g, w, scale)."""

    class FakeQuantize(torch.autograd.Function):
        @staticmethod
        def forward(ctx, w, scale):
            ctx.save_for_backward(w, scale)
            return torch.clamp(torch.round(w / scale), -127, 127) * scale

        @staticmethod
        def backward(ctx, g):
            w, scale = ctx.saved_tensors
            return backward(g, w, scale), None

    return FakeQuantize.apply


def _t_fq_library(w, scale):
    if scale.ndim == 0:
        return torch.fake_quantize_per_tensor_affine(w, scale.item(), 0, -127, 127)
    zero = torch.zeros(scale.numel(), dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(
        w, scale.flatten(), zero, 0, -127, 127
    )


def _t_fq_module(w, scale):
    fq = torch.ao.quantization.FakeQuantize(
        quant_min=-127, quant_max=127, dtype=torch.qint8,
        qscheme=torch.per_tensor_symmetric,
    )  # fmt: skip
    fq.disable_observer()
    fq.scale, fq.zero_point = scale.max().reshape(1), torch.zeros(1, dtype=torch.int32)
    return fq(w)


def _t_fq_in_place(w, scale):
    w /= scale  # writes into the caller's tensor
    return torch.clamp(torch.round(w), -127, 127) * scale


def _t_half_away(r):
    return torch.sign(r) * torch.floor(r.abs() + 0.5)


_T_MASK = lambda w, s: ((w / s).abs() <= 127).float()  # noqa: E731

TORCH_STE_MISTAKES = [
    ("fake_quantize", _t_fq(mask="none"), "ste_missing"),
    ("fake_quantize", lambda w, s: _t_fq()(w, s).detach(), "ste_detached"),
    ("fake_quantize", _t_fq(mask="all"), "ste_no_mask"),
    (
        "fake_quantize",
        _t_fq_function(lambda g, w, s: g * (w.abs() <= 127)),
        "mask_units",
    ),
    (
        "fake_quantize",
        _t_fq_function(lambda g, w, s: g * (torch.round(w / s).abs() <= 127)),
        "mask_rounding_range",
    ),
    ("fake_quantize", _t_fq_library, "fq_library"),
    ("fake_quantize", _t_fq_module, "fq_library"),
    ("fake_quantize", _t_fq(times_scale=False, mask="none"), "fq_times_scale"),
    (
        "fake_quantize",
        lambda w, s: torch.clamp(torch.round(w / s), -127, 127).to(torch.int8),
        "fq_times_scale",
    ),
    ("fake_quantize", _t_fq(lo=-128), "clamp_symmetric"),
    ("fake_quantize", _t_fq(rounding=torch.floor), "fq_round"),
    ("fake_quantize", _t_fq(rounding=torch.trunc), "fq_round"),
    ("fake_quantize", _t_fq(rounding=_t_half_away), "round_ties"),
    ("fake_quantize", _t_fq(rounding=lambda r: torch.floor(r + 0.5)), "round_ties"),
    ("fake_quantize", _t_fq(wrong_term=True), "detach_term"),
    ("fake_quantize", _t_fq(dtype=torch.float64), "fq_float32"),
    ("fake_quantize", _t_fq(dtype=torch.float16), "fq_float32"),
    ("fake_quantize", _t_fq_in_place, "fq_in_place"),
    ("fake_quantize", _t_fq_function(lambda g, w, s: _T_MASK(w, s)), "ste_upstream"),
    (
        "fake_quantize",
        _t_fq_function(lambda g, w, s: g * _T_MASK(w, s) / s),
        "ste_scale",
    ),
    (
        "fake_quantize",
        _t_fq_function(lambda g, w, s: g * (1 - _T_MASK(w, s))),
        "mask_inverted",
    ),
    ("fake_quantize", _t_fq(clip=False, mask="all"), "fq_clip"),
    ("fake_quantize", lambda w, s: w.clone(), "fq_identity"),
    ("fake_quantize", lambda w, s: _t_fq()(w, s.item()), "fq_broadcast"),
    ("fake_quantize", lambda w, s: _t_fq()(w, s.reshape(-1)), "fq_broadcast"),
]


def _j_fq(*, rounding=jnp.round, lo=-127, clip=True, times_scale=True, mask="clip",
          dtype=None, wrong_term=False):  # fmt: skip
    """fake_quantize in the stop_gradient form, with one known mistake switched on."""
    sg = jax.lax.stop_gradient

    def fake_quantize(w, scale):
        r = rounding(w / scale)
        q = jnp.clip(r, lo, 127) if clip else r
        value = q * scale if times_scale else q
        if mask == "none":
            out = value
        elif mask == "all":
            out = w + sg(value - w)
        elif mask == "stopped":  # the whole result stopped
            out = sg(value)
        else:
            w_c = jnp.clip(w, lo * scale, 127 * scale)
            out = sg(w_c) + (value - w_c) if wrong_term else w_c + sg(value - w_c)
        return out if dtype is None else out.astype(dtype)

    return fake_quantize


def _j_fq_vjp(backward):
    """fake_quantize as a jax.custom_vjp whose bwd gives backward(g, w, scale) for w."""

    @jax.custom_vjp
    def fake_quantize(w, scale):
        return jnp.clip(jnp.round(w / scale), -127, 127) * scale

    def fwd(w, scale):
        return fake_quantize(w, scale), (w, scale)

    def bwd(res, g):
        w, scale = res
        return backward(g, w, scale), jnp.zeros_like(scale)

    fake_quantize.defvjp(fwd, bwd)
    return fake_quantize


def _j_fq_float64(w, scale):
    with jax.enable_x64(True):  # as a student who turned x64 on would get
        return _j_fq()(w, scale).astype(jnp.float64)


def _j_fq_numpy_round(w, scale):
    r = jnp.asarray(np.round(np.asarray(w / scale)))  # fine eagerly, not under jax.grad
    w_c = jnp.clip(w, -127 * scale, 127 * scale)
    return w_c + jax.lax.stop_gradient(jnp.clip(r, -127, 127) * scale - w_c)


def _j_fq_python_if(w, scale):
    if jnp.any(jnp.abs(w / scale) > 127):  # a Python if on values: fails under jax.jit
        w = w + 0.0
    return _j_fq()(w, scale)


def _j_fq_fp8(w, scale):
    from flax.linen import fp8_ops

    return fp8_ops.qdq(w, jnp.float8_e4m3fn, scale, jnp.float32)


def _j_half_away(r):
    return jnp.sign(r) * jnp.floor(jnp.abs(r) + 0.5)


_J_MASK = lambda w, s: (jnp.abs(w / s) <= 127).astype(w.dtype)  # noqa: E731

JAX_STE_MISTAKES = [
    ("fake_quantize", _j_fq(mask="none"), "ste_missing"),
    ("fake_quantize", _j_fq(mask="stopped"), "ste_missing"),
    ("fake_quantize", _j_fq(mask="all"), "ste_no_mask"),
    ("fake_quantize", _j_fq_vjp(lambda g, w, s: g * (jnp.abs(w) <= 127)), "mask_units"),
    (
        "fake_quantize",
        _j_fq_vjp(lambda g, w, s: g * (jnp.abs(jnp.round(w / s)) <= 127)),
        "mask_rounding_range",
    ),
    ("fake_quantize", _j_fq_fp8, "fq_library"),
    ("fake_quantize", _j_fq(times_scale=False, mask="none"), "fq_times_scale"),
    (
        "fake_quantize",
        lambda w, s: jnp.clip(jnp.round(w / s), -127, 127).astype(jnp.int8),
        "fq_times_scale",
    ),
    ("fake_quantize", _j_fq(lo=-128), "clamp_symmetric"),
    (
        "fake_quantize",
        _j_fq_vjp(lambda g, w, s: g * (w / s >= -128) * (w / s <= 127)),
        "clamp_symmetric",
    ),
    ("fake_quantize", _j_fq(rounding=jnp.floor), "fq_round"),
    ("fake_quantize", _j_fq(rounding=jnp.trunc), "fq_round"),
    ("fake_quantize", _j_fq(rounding=_j_half_away), "round_ties"),
    ("fake_quantize", _j_fq(rounding=lambda r: jnp.floor(r + 0.5)), "round_ties"),
    ("fake_quantize", _j_fq(wrong_term=True), "detach_term"),
    ("fake_quantize", _j_fq_float64, "fq_float32"),
    ("fake_quantize", _j_fq(dtype=jnp.bfloat16), "fq_float32"),
    ("fake_quantize", _j_fq_vjp(lambda g, w, s: _J_MASK(w, s)), "ste_upstream"),
    ("fake_quantize", _j_fq_vjp(lambda g, w, s: g * _J_MASK(w, s) * s), "ste_scale"),
    (
        "fake_quantize",
        _j_fq_vjp(lambda g, w, s: g * (1 - _J_MASK(w, s))),
        "mask_inverted",
    ),
    ("fake_quantize", _j_fq(clip=False, mask="all"), "fq_clip"),
    ("fake_quantize", lambda w, s: w + 0.0, "fq_identity"),
    ("fake_quantize", lambda w, s: _j_fq()(w, float(s)), "fq_broadcast"),
    ("fake_quantize", lambda w, s: _j_fq()(w, s.reshape(-1)[:, None]), "fq_broadcast"),
    ("fake_quantize", _j_fq_numpy_round, "jit_trace"),
    ("fake_quantize", _j_fq_python_if, "jit_trace"),
]


class _TFqOneGradient(torch.autograd.Function):
    """A backward that forgets the None for scale."""

    @staticmethod
    def forward(ctx, w, scale):
        ctx.save_for_backward(w, scale)
        return torch.clamp(torch.round(w / scale), -127, 127) * scale

    @staticmethod
    def backward(ctx, g):
        w, scale = ctx.saved_tensors
        return g * ((w / scale).abs() <= 127)


def _t_fq_own_scale(w, scale):
    return _t_fq()(w, w.abs().max() / 127)  # ignores the scale it is given


def _t_fq_int8_wrap(w, scale):
    q = torch.round(w / scale).to(torch.int8).float()  # no clamp before the cast: wraps
    return w + (q * scale - w).detach()


def _t_fq_divide(w, scale):
    w_c = torch.clamp(w, -127 * scale, 127 * scale)
    return w_c + (torch.clamp(torch.round(w * scale), -127, 127) / scale - w_c).detach()


def _t_fq_scale_in_place(w, scale):
    scale *= 127  # the caller's scale, changed
    return _t_fq()(w, scale / 127)


def _t_fq_one_sided(w, scale):
    w_c = torch.minimum(w, 127 * scale)  # the lower clip forgotten in the mask
    return w_c + (torch.clamp(torch.round(w / scale), -127, 127) * scale - w_c).detach()


TORCH_STE_MISTAKES += [
    (
        "fake_quantize",
        _t_fq_function(lambda g, w, s: g * (torch.round(w / s).abs() < 127)),
        "mask_codes",
    ),
    ("fake_quantize", _t_fq_int8_wrap, "fq_clip"),
    ("fake_quantize", _t_fq_own_scale, "fq_own_scale"),
    ("fake_quantize", _t_fq_divide, "fq_divide"),
    ("fake_quantize", _t_fq_one_sided, "mask_abs"),
    ("fake_quantize", _TFqOneGradient.apply, "fq_function_grads"),
    ("fake_quantize", lambda w, s: _t_fq()(w, s.max()), "fq_broadcast"),
    ("fake_quantize", _t_fq_scale_in_place, "fq_in_place"),
]


@jax.custom_vjp
def _j_fq_one_cotangent(w, scale):
    return jnp.clip(jnp.round(w / scale), -127, 127) * scale


_j_fq_one_cotangent.defvjp(
    lambda w, s: (_j_fq_one_cotangent(w, s), (w, s)),
    lambda res, g: (g * _J_MASK(*res),),  # no cotangent for scale
)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _j_fq_nondiff(w, scale):
    return jnp.clip(jnp.round(w / scale), -127, 127) * scale


_j_fq_nondiff.defvjp(
    lambda w, s: (_j_fq_nondiff(w, s), w),
    lambda s, w, g: (g * _J_MASK(w, s),),
)


def _j_fq_divide(w, scale):
    w_c = jnp.clip(w, -127 * scale, 127 * scale)
    value = jnp.clip(jnp.round(w * scale), -127, 127) / scale
    return w_c + jax.lax.stop_gradient(value - w_c)


def _j_fq_one_sided(w, scale):
    w_c = jnp.minimum(w, 127 * scale)  # the lower clip forgotten in the mask
    return w_c + jax.lax.stop_gradient(
        jnp.clip(jnp.round(w / scale), -127, 127) * scale - w_c
    )


JAX_STE_MISTAKES += [
    (
        "fake_quantize",
        _j_fq_vjp(lambda g, w, s: g * (jnp.abs(jnp.round(w / s)) < 127)),
        "mask_codes",
    ),
    ("fake_quantize", lambda w, s: _j_fq()(w, jnp.abs(w).max() / 127), "fq_own_scale"),
    ("fake_quantize", _j_fq_divide, "fq_divide"),
    ("fake_quantize", _j_fq_one_sided, "mask_abs"),
    ("fake_quantize", _j_fq_one_cotangent, "fq_vjp_structure"),
    ("fake_quantize", _j_fq_nondiff, "fq_vjp_nondiff"),
    ("fake_quantize", lambda w, s: _j_fq()(w, float(s.max())), "fq_broadcast"),
]


# ---------------------------------------------------------------- exercise 5, second student pass
def _t_clamped(w, scale):
    return torch.clamp(w, -127 * scale, 127 * scale)


def _t_value(w, scale):
    return torch.clamp(torch.round(w / scale), -127, 127) * scale


def _t_fq_with(wrap_scale):
    """The detach form with the scale replaced by wrap_scale(w, scale): shape mistakes."""

    def fake_quantize(w, scale):
        scale = wrap_scale(w, scale)
        return (
            _t_clamped(w, scale) + (_t_value(w, scale) - _t_clamped(w, scale)).detach()
        )

    return fake_quantize


def _t_fq_int8_then_clamp(w, scale):
    q = torch.clamp(torch.round(w / scale).to(torch.int8), -127, 127)  # wrapped first
    w_c = _t_clamped(w, scale)
    return w_c + (q.float() * scale - w_c).detach()


def _t_fq_round_then_clamp(
    w, scale
):  # the STE on round, clamp after: a mask on the codes
    r = w / scale
    return torch.clamp(r + (torch.round(r) - r).detach(), -127, 127) * scale


TORCH_STE_MISTAKES += [
    (
        "fake_quantize",
        lambda w, s: _t_clamped(w, s) - (_t_value(w, s) - _t_clamped(w, s)).detach(),
        "detach_sign",
    ),
    ("fake_quantize", lambda w, s: w + (w - _t_value(w, s)).detach(), "detach_sign"),
    (
        "fake_quantize",
        lambda w, s: _t_clamped(w, s) + (_t_value(w, s) - w).detach(),
        "ste_mixed_terms",
    ),
    (
        "fake_quantize",
        lambda w, s: w + (_t_value(w, s) - _t_clamped(w, s)).detach(),
        "ste_mixed_terms",
    ),
    (
        "fake_quantize",
        lambda w, s: w + (torch.clamp(torch.round(w / s) * s, -127, 127) - w).detach(),
        "fq_clip_units",
    ),
    ("fake_quantize", _t_fq_int8_then_clamp, "fq_clip"),
    ("fake_quantize", _t_fq_with(lambda w, s: s.mean()), "fq_broadcast"),
    (
        "fake_quantize",
        _t_fq_function(lambda g, w, s: g * ((w / s.max()).abs() <= 127)),
        "fq_broadcast",
    ),
    ("fake_quantize", _t_fq_with(lambda w, s: s.reshape(w.shape[0], 1)), "fq_shape"),
    (
        "fake_quantize",
        _t_fq_with(lambda w, s: s[0]),
        "fq_broadcast",
    ),  # (1,): channel 0's
    ("fake_quantize", _t_fq_round_then_clamp, "mask_codes"),
]


def _j_clipped(w, scale):
    return jnp.clip(w, -127 * scale, 127 * scale)


def _j_value(w, scale):
    return jnp.clip(jnp.round(w / scale), -127, 127) * scale


def _j_fq_with(wrap_scale):
    """The stop_gradient form with the scale replaced by wrap_scale(w, scale)."""

    def fake_quantize(w, scale):
        scale = wrap_scale(w, scale)
        w_c = _j_clipped(w, scale)
        return w_c + jax.lax.stop_gradient(_j_value(w, scale) - w_c)

    return fake_quantize


def _j_fq_round_then_clip(
    w, scale
):  # the STE on round, clip after: a mask on the codes
    r = w / scale
    return jnp.clip(r + jax.lax.stop_gradient(jnp.round(r) - r), -127, 127) * scale


@jax.custom_vjp
def _j_fq_scale_cotangent(w, scale):
    return _j_value(w, scale)


_j_fq_scale_cotangent.defvjp(
    lambda w, s: (_j_value(w, s), (w, s)),
    lambda res, g: (g * _J_MASK(*res), g),  # scale's cotangent has w's shape
)

_J_SG = jax.lax.stop_gradient

JAX_STE_MISTAKES += [
    (
        "fake_quantize",
        lambda w, s: _j_clipped(w, s) - _J_SG(_j_value(w, s) - _j_clipped(w, s)),
        "detach_sign",
    ),
    ("fake_quantize", lambda w, s: w + _J_SG(w - _j_value(w, s)), "detach_sign"),
    (
        "fake_quantize",
        lambda w, s: _j_clipped(w, s) + _J_SG(_j_value(w, s) - w),
        "ste_mixed_terms",
    ),
    (
        "fake_quantize",
        lambda w, s: w + _J_SG(_j_value(w, s) - _j_clipped(w, s)),
        "ste_mixed_terms",
    ),
    (
        "fake_quantize",
        lambda w, s: w + _J_SG(jnp.clip(jnp.round(w / s) * s, -127, 127) - w),
        "fq_clip_units",
    ),
    ("fake_quantize", _j_fq_with(lambda w, s: s.mean()), "fq_broadcast"),
    (
        "fake_quantize",
        _j_fq_vjp(lambda g, w, s: g * (jnp.abs(w / s.max()) <= 127)),
        "fq_broadcast",
    ),
    ("fake_quantize", _j_fq_with(lambda w, s: s.reshape(1, w.shape[-1])), "fq_shape"),
    ("fake_quantize", _j_fq_with(lambda w, s: s.reshape(())), "fq_shape"),
    ("fake_quantize", _j_fq_with(lambda w, s: s[0]), "fq_shape"),
    ("fake_quantize", _j_fq_round_then_clip, "mask_codes"),
    ("fake_quantize", _j_fq_scale_cotangent, "fq_vjp_structure"),
]


MISTAKES = {
    "pytorch": TORCH_MISTAKES + TORCH_STE_MISTAKES,
    "jax": JAX_MISTAKES + JAX_STE_MISTAKES,
}

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


# ---------------------------------------------------------------- exercise 5's accepted answers
def _t_fq_where(w, scale):  # the mask as a factor on the straight-through term
    mask = ((w / scale).abs() <= 127).float()
    q = torch.clamp(torch.round(w / scale), -127, 127)
    return (q * scale).detach() + (w - w.detach()) * mask


def _t_fq_clip_ratio(w, scale):  # the STE on round alone, after the clip
    r = torch.clamp(w / scale, -127, 127)
    return (r + (torch.round(r) - r).detach()) * scale


def _t_fq_int8_roundtrip(w, scale):
    q = torch.clamp(torch.round(w * (1 / scale)), -127, 127).to(torch.int8)
    w_c = torch.clamp(w, -127 * scale, 127 * scale)
    return w_c - (w_c - q.float() * scale).detach()


def _j_fq_where(w, scale):
    mask = (jnp.abs(w / scale) <= 127).astype(w.dtype)
    q = jnp.clip(jnp.round(w / scale), -127, 127)
    return jax.lax.stop_gradient(q * scale) + (w - jax.lax.stop_gradient(w)) * mask


def _j_fq_clip_ratio(w, scale):
    r = jnp.clip(w / scale, -127, 127)
    return (r + jax.lax.stop_gradient(jnp.round(r) - r)) * scale


@jax.custom_jvp
def _j_fq_jvp(w, scale):
    return jnp.clip(jnp.round(w / scale), -127, 127) * scale


@_j_fq_jvp.defjvp
def _j_fq_jvp_rule(primals, tangents):
    w, scale = primals
    return _j_fq_jvp(w, scale), tangents[0] * _J_MASK(w, scale)


def _j_fq_rint_int8(w, scale):
    q = jnp.clip(jnp.rint(w / scale), -127, 127).astype(jnp.int8)
    w_c = jnp.clip(w, -127 * scale, 127 * scale)
    return w_c + jax.lax.stop_gradient(q.astype(jnp.float32) * scale - w_c)


class _TFqSavedMask(torch.autograd.Function):
    """Saves the boolean mask, not w; backward through torch.where."""

    @staticmethod
    def forward(ctx, w, scale):
        r = w / scale
        ctx.save_for_backward((r >= -127) & (r <= 127))
        return torch.clamp(torch.round(r), -127, 127) * scale

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return torch.where(mask, g, torch.zeros_like(g)), None


class _TFqSetupContext(torch.autograd.Function):
    """The newer style: forward without ctx, setup_context saves the inputs."""

    @staticmethod
    def forward(w, scale):
        return torch.clamp(torch.round(w / scale), -127, 127) * scale

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, g):
        w, scale = ctx.saved_tensors
        return g * _T_MASK(w, scale), None


def _t_fq_hardtanh(w, scale):
    r = torch.nn.functional.hardtanh(w / scale, -127, 127)
    return (r + (torch.round(r) - r).detach()) * scale


def _t_fq_float64_inside(w, scale):
    return _t_fq()(w.double(), scale.double()).float()


def _t_fq_vmap(w, scale):  # one channel (and its scale) at a time
    return _t_fq()(w, scale) if scale.ndim == 0 else torch.vmap(_t_fq())(w, scale)


def _j_fq_lax_round(w, scale):
    even = jax.lax.round(w / scale, jax.lax.RoundingMethod.TO_NEAREST_EVEN)
    w_c = jnp.clip(w, -127 * scale, 127 * scale)
    return w_c + jax.lax.stop_gradient(jnp.clip(even, -127, 127) * scale - w_c)


def _j_fq_vmap(w, scale):  # one channel (the last axis) at a time
    if scale.ndim == 0:
        return _j_fq()(w, scale)
    return jax.vmap(_j_fq(), in_axes=(-1, -1), out_axes=-1)(w, scale)


@jax.custom_vjp
def _j_fq_none_cotangent(w, scale):
    return jnp.clip(jnp.round(w / scale), -127, 127) * scale


_j_fq_none_cotangent.defvjp(
    lambda w, s: (_j_fq_none_cotangent(w, s), jnp.abs(w / s) <= 127),
    lambda mask, g: (jnp.where(mask, g, 0.0), None),  # None: a zero cotangent for scale
)

STE_VALID = {
    "pytorch": {
        "detach": _t_fq(),
        "autograd.Function": _t_fq_function(lambda g, w, s: g * _T_MASK(w, s)),
        "autograd.Function, strict mask": _t_fq_function(
            lambda g, w, s: g * ((w / s).abs() < 127)
        ),
        "where": _t_fq_where,
        "clip ratio": _t_fq_clip_ratio,
        "int8 round trip": _t_fq_int8_roundtrip,
        "autograd.Function, saved mask": _TFqSavedMask.apply,
        "autograd.Function, setup_context": _TFqSetupContext.apply,
        "hardtanh ratio": _t_fq_hardtanh,
        "float64 inside": _t_fq_float64_inside,
        "vmap over channels": _t_fq_vmap,
    },
    "jax": {
        "stop_gradient": _j_fq(),
        "custom_vjp": _j_fq_vjp(lambda g, w, s: g * _J_MASK(w, s)),
        "custom_vjp, strict mask": _j_fq_vjp(
            lambda g, w, s: jnp.where(jnp.abs(w / s) < 127, g, 0.0)
        ),
        "custom_jvp": _j_fq_jvp,
        "jit": jax.jit(_j_fq()),
        "where": _j_fq_where,
        "clip ratio": _j_fq_clip_ratio,
        "rint, int8 round trip": _j_fq_rint_int8,
        "lax.round to nearest even": _j_fq_lax_round,
        "vmap over channels": _j_fq_vmap,
        "custom_vjp, None for scale": _j_fq_none_cotangent,
        "squeezed scale": lambda w, s: _j_fq()(w, jnp.squeeze(s)),  # (1, C) -> (C,)
    },
}


@pytest.mark.parametrize(
    ("framework", "variant"),
    [(fw, name) for fw, table in STE_VALID.items() for name in table],
)
def test_fake_quantize_accepts_each_valid_form(framework, variant, capsys):
    adapter = torch_adapter if framework == "pytorch" else jax_adapter
    adapter.check_fake_quantize(STE_VALID[framework][variant])
    assert "✅ fake_quantize: passed" in capsys.readouterr().out


def test_ste_reference_mask_is_the_clip_range_and_torch_masks_on_rounding():
    """The forward equals torch.fake_quantize_per_*_affine on every case; the gradient
    differs from it only where 127 < |w / scale| < 127.5 (PyTorch masks on the rounded value),
    and the exact edge |w / scale| = 127, which the check does not compare."""
    seen = 0
    for w, s, g in ste.fq_cases(channels_last=False):
        leaf = torch.from_numpy(w.copy()).requires_grad_(True)
        if s.ndim == 0:
            out = torch.fake_quantize_per_tensor_affine(leaf, float(s), 0, -127, 127)
        else:
            zero = torch.zeros(s.size, dtype=torch.int32)
            scales = torch.from_numpy(s.ravel().copy())
            out = torch.fake_quantize_per_channel_affine(
                leaf, scales, zero, 0, -127, 127
            )
        (grad,) = torch.autograd.grad((out * torch.from_numpy(g)).sum(), leaf)
        forward, mask, r = ste.fq_reference(w, s, g)
        np.testing.assert_allclose(out.detach().numpy(), forward, rtol=1e-6, atol=1e-9)
        differs = ~np.isclose(grad.numpy(), mask * g)
        assert np.all((np.abs(r) > 127) & (np.abs(r) < 127.5) | ~differs)
        seen += differs.sum()
    assert seen  # the cases hold such values
