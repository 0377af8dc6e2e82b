"""Lab 10 self-checks for PyTorch notebooks: ``H.lab10.check_quantize_int8(quantize_int8)``.

The checks are :mod:`helpers.labs.lab10.checks`, shared with JAX; this module hands the
student's functions tensors in PyTorch's weight layout (output channels first) and float64
inputs for integrated gradients, and reads the results back as numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from helpers.labs.kit import Hints, checking, explainer
from helpers.labs.lab10 import affine, ste
from helpers.labs.lab10 import checks as lab10
from helpers.torch.labkit import function_calls, lab_framework

__all__ = [
    "check_dequantize_int8",
    "check_dequantize_uint8",
    "check_fake_quantize",
    "check_integrated_gradients",
    "check_quantize_int8",
    "check_quantize_uint8",
]

HINTS = Hints(
    lab10.HINTS,
    affine.AFFINE_HINTS,
    ste.STE_HINTS,
    {
        "fq_clip": "values beyond the int8 range were not clipped: q = clamp(round(w / "
        "scale), -127, 127), so |q * scale| is at most 127 * scale (clamp before any cast "
        "to int8: .to(torch.int8) wraps 128 around to -128)",
        "not_int8": "q must be stored as int8 (1 byte per weight): convert the rounded, "
        "clipped values with .to(torch.int8)",
        "ste_missing": "the gradient is 0 everywhere: torch.round has derivative 0 almost "
        "everywhere, so autograd through it gives nothing; the straight-through estimator "
        "routes the gradient around it: w_c + (q * scale - w_c).detach() with w_c = "
        "torch.clamp(w, -127 * scale, 127 * scale), or a torch.autograd.Function whose "
        "backward returns grad_out * mask",
        "detach_term": "the gradient has the wrong sign: .detach() is on the wrong term; in "
        "x + (y - x).detach() the value is y and the gradient flows through x: keep the "
        "clamped w outside .detach() and the quantized value inside",
        "ste_detached": "the result carries no gradient back to w: the whole expression was "
        "detached (or computed under torch.no_grad, or from w.data, .item() or NumPy); "
        "detach only the correction: w_c + (q * scale - w_c).detach()",
        "fq_in_place": "your function changed w or scale (an in-place operation such as "
        "w /= scale, w.clamp_(...) or scale *= 127): in quantization-aware training w is the "
        "float copy the optimizer updates and scale is the one int8 inference will use; "
        "both must survive the call: compute new tensors",
        "fq_function_grads": "a torch.autograd.Function's backward returns one gradient "
        "per input of its forward, None for an input that needs none: return "
        "grad_output * mask, None for (w, scale)",
        "fq_library": "torch.fake_quantize_per_tensor_affine, per_channel_affine and "
        "torch.ao.quantization's FakeQuantize modules are the answer key (and they mask on "
        "the rounding range, not this exercise's clipping range): write the forward and the "
        "straight-through gradient yourself",
        "in_place": "your function changed the tensor it was given (an in-place operation "
        "such as w /= scale, or a method ending in _): in the chapter's loop over a "
        "state_dict that would overwrite the model's own weights; compute new tensors",
        "in_place_dtype": "an in-place operation (q *= scale, q.mul_(scale)) keeps q's "
        "dtype, and a float result cannot be stored in int8 or uint8; it would also change "
        "the caller's tensor: compute a new one, q.to(torch.float32) * scale",
        "scalar_grad": "torch.autograd.grad needs a scalar output, and f returns one score "
        "per example: differentiate the sum, torch.autograd.grad(f(point).sum(), point); "
        "each example's score depends on its own row only, so the rows stay apart",
        "point_requires_grad": "autograd needs a leaf to differentiate with respect to: "
        "make each path point with point = (x' + alpha * (x - x')).requires_grad_(True), "
        "then torch.autograd.grad(f(point).sum(), point)",
    },
)

_ERRORS = {
    "does not require grad and does not have a grad_fn": "point_requires_grad",
    "grad can be implicitly created only for scalar outputs": "scalar_grad",
    # q *= scale on int8 codes; scale *= q (a (C, 1, ...) tensor cannot hold the product)
    "can't be cast to the desired output type": "in_place_dtype",
    "doesn't match the broadcast shape": "in_place",
    # quantize_uint8 of an all-zero tensor without a floor on the scale
    "float division by zero": "all_zero_input",
    "cannot convert float NaN to integer": "all_zero_input",
}

TORCH = lab_framework(HINTS, explainer(_ERRORS, HINTS))


def _unchanged(c: Any, given: torch.Tensor, original: np.ndarray) -> None:
    """Fail if the student's function wrote into a tensor it was handed."""
    if not np.array_equal(given.numpy(), original):
        raise c.fail("an input tensor changed during the call", c.hint("in_place"))


def check_quantize_int8(student: Any) -> None:
    """Per-channel symmetric int8: ``quantize_int8(w, axis) -> (q, scale)``."""
    with checking(
        "quantize_int8", TORCH, passed="a conv, a linear weight and a pruned one"
    ) as c:
        for w, axis in lab10.quantize_cases(channels_last=False):
            given = torch.from_numpy(w.copy())
            out = c.call(student, given, axis)
            _unchanged(c, given, w)
            q, scale = lab10.pair(c, out)
            lab10.compare_quantize(c, q, scale, w, axis)


def check_dequantize_int8(student: Any) -> None:
    """``dequantize_int8(q, scale) -> q * scale`` in float32."""
    with checking(
        "dequantize_int8", TORCH, passed="a conv, a linear weight and a pruned one"
    ) as c:
        for w, axis in lab10.quantize_cases(channels_last=False):
            q, scale = lab10.quantize_reference(w, axis)
            # Copies: the answer is computed from q and scale, which the call must not touch.
            given = torch.from_numpy(q.copy()), torch.from_numpy(scale.copy())
            out = c.call(student, *given)
            _unchanged(c, given[0], q)
            _unchanged(c, given[1], scale)
            lab10.compare_dequantize(c, c.array(out), q, scale)


def _score(x: torch.Tensor) -> torch.Tensor:
    """F(x) = tanh(x W) v per example: (B, 5) float64 -> (B,)."""
    w = torch.as_tensor(lab10.IG_W, dtype=x.dtype)
    v = torch.as_tensor(lab10.IG_V, dtype=x.dtype)
    return torch.tanh(x @ w) @ v


def check_integrated_gradients(student: Any) -> None:
    """``integrated_gradients(f, x, baseline, steps)``: complete to 1 %, equal to the integral."""
    with checking(
        "integrated_gradients",
        TORCH,
        passed="two inputs, non-zero baselines, complete to 1 %",
    ) as c:
        for case in lab10.IG_CASES:
            x = torch.tensor(case["x"])  # (B, 5) float64
            baseline = torch.tensor(case["baseline"])
            out = c.call(student, _score, x, baseline, case["steps"])
            lab10.compare_ig(c, np.asarray(c.array(out), np.float64), case)


def check_quantize_uint8(student: Any) -> None:
    """Affine uint8: ``quantize_uint8(x) -> (q, scale, zero_point)``."""
    with checking(
        "quantize_uint8",
        TORCH,
        passed="mixed, positive, negative, leaky-ReLU and all-zero inputs",
    ) as c:
        for x in affine.affine_cases():
            given = torch.from_numpy(x.copy())
            out = c.call(student, given)
            _unchanged(c, given, x)
            q, scale, zero_point = affine.triple(c, out)
            affine.compare_affine_quantize(c, q, scale, zero_point, x)


def check_dequantize_uint8(student: Any) -> None:
    """``dequantize_uint8(q, scale, zero_point) -> (q - zero_point) * scale`` in float32."""
    with checking(
        "dequantize_uint8",
        TORCH,
        passed="mixed, positive, negative, leaky-ReLU and all-zero inputs",
    ) as c:
        for x in affine.affine_cases():
            q, scale, zero_point = affine.affine_reference(x)
            given = torch.from_numpy(q.copy())
            out = c.call(student, given, scale, zero_point)
            _unchanged(c, given, q)
            affine.compare_affine_dequantize(c, c.array(out), q, scale, zero_point)


# --- exercise 5: fake quantization with a straight-through estimator -------------------------
def _fake_quant_function(name: str) -> str | None:
    """PyTorch's fake quantization under any name: torch.fake_quantize_per_*_affine,
    torch._fake_quantize_*, torch.fused_moving_avg_obs_fake_quant, torch.ops.aten's (and
    .default), as torch.ao.quantization's FakeQuantize modules call them."""
    name = name.split(".")[0]
    if "fake_quant" in name or name.startswith("_fused_moving_avg_obs_fq"):
        return f"torch.{name}"
    return None


_STE_ERRORS = {
    **_ERRORS,
    **ste.BROADCAST_ERRORS,
    "returned an incorrect number of gradients": "fq_function_grads",
}
_TORCH_STE = lab_framework(HINTS, explainer(_STE_ERRORS, HINTS))


def check_fake_quantize(student: Any) -> None:
    """``fake_quantize(w, scale)``: int8 fake quantization, straight-through gradient."""
    with (
        checking(
            "fake_quantize",
            _TORCH_STE,
            passed="per-channel and per-tensor scales, ties, both clip edges, gradients",
        ) as c,
        function_calls(_fake_quant_function) as calls,
    ):
        for w, s, g in ste.fq_cases(channels_last=False):
            given = torch.from_numpy(w.copy()), torch.from_numpy(s.copy())
            out = c.call(student, *given)
            ste.refuse_library(c, calls)
            for name, tensor, original in zip("ws", given, (w, s), strict=True):
                if not np.array_equal(tensor.numpy(), original):
                    raise c.fail(
                        f"{name} changed during the call", c.hint("fq_in_place")
                    )
            ste.compare_forward(c, c.array(out), w, s)
            leaf = torch.from_numpy(w.copy()).requires_grad_(True)
            out = c.call(student, leaf, torch.from_numpy(s.copy()))
            ste.refuse_library(c, calls)
            ste.compare_forward(c, c.array(out), w, s)
            if not out.requires_grad:
                raise c.fail("the result does not require grad", c.hint("ste_detached"))
            upstream = torch.from_numpy(g)
            (grad,) = c.call(
                torch.autograd.grad, (out * upstream).sum(), leaf, allow_unused=True
            )
            grad = np.zeros_like(w) if grad is None else grad.numpy()
            ste.compare_gradient(c, grad, w, s, g)
