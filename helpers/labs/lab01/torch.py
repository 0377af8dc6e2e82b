"""Lab 1 self-checks for PyTorch notebooks: ``H.lab01.check_preprocess(preprocess)`` etc.

Exercises 1-4 are checked by :mod:`helpers.labs.lab01.checks`, ``topk`` and ``directional``,
shared with JAX; this module
hands them tensors, words their hints for PyTorch, turns PyTorch's error messages into hints,
and checks exercise 5, PyTorch's own: a training step with two bugs that only a second call
shows (a write through a view, gradients that accumulate).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from helpers.labs.kit import Framework, Hints, checking, explainer
from helpers.labs.lab01 import checks as lab01
from helpers.labs.lab01 import directional, topk
from helpers.torch.labkit import autodiff_calls, lab_framework
from helpers.torch.models import MLP

__all__ = [
    "check_directional_gradient_error",
    "check_framework_specific",
    "check_mse_grad",
    "check_preprocess",
    "check_top_k_accuracy",
]

# Known mistakes that only PyTorch allows, and PyTorch's wording of shared ones.
HINTS = Hints(
    lab01.HINTS,
    topk.HINTS,
    directional.HINTS,
    {
        "not_float": "return a Python float: call .item() on the 0-d tensor",
        "preprocess_in_place": "images holds uint8 integers: an in-place division (/=, "
        "div_) cannot store fractions in it, and would change the caller's images; divide "
        "out of place after converting, images.float() / 255",
        "mse_grad_by_hand": "the values are right, but autograd never ran: compute the loss "
        "from a copy of w that requires grad and call backward() (or use torch.func.grad), "
        "instead of a formula derived by hand",
        "array_tolist": "return the tensor itself, as torch computed it: .tolist() turns it "
        "into a Python list, without dtype or device",
        "mse_grad_loss": "that is one number, the loss: after loss.backward() return w.grad "
        "(one partial derivative per entry of w), not the loss",
        "mse_grad_w": "that is w itself: backward() puts the gradient in w.grad; return "
        "w.grad, not w",
        "mse_grad_wrt_y": "that is the gradient with respect to y: torch.func.grad "
        "differentiates argument argnums (0, the first, by default), which must be w; with "
        "backward(), set requires_grad on (a copy of) w only and return its .grad",
        "step_flatten": "flatten each image into one row, (B, H*W): x.reshape(len(x), -1) "
        "or x.flatten(1); a fixed 784, or -1 as the number of rows, does not fit the "
        "check's 4x4 images",
        "mse_grad_wrt_X": "that is the gradient with respect to X: set requires_grad on (a "
        "copy of) w only and return its .grad (torch.func.grad differentiates its first "
        "argument, argnums=0)",
        "bool_mean": "a comparison gives a bool tensor, and mean() needs floats: cast "
        "first, (higher < k).float().mean()",
        "topk_broadcast": "compare each row with its own label's score, as a (B, 1) "
        "column: logits.gather(1, labels[:, None]) or logits[torch.arange(len(labels)), "
        "labels][:, None]; a (B,) tensor lines up with the class axis instead",
        "topk_gather": "take each row's own label score with logits.gather(1, labels[:, "
        "None]) (dim 1, the classes): gather(0, ...) indexes the rows with the labels and "
        "reads other examples' scores",
        "dgc_autograd": "grad_f is the gradient under test: leave x as it is (no "
        "requires_grad_(), no backward()) and estimate each directional derivative from "
        "f(x + eps * v) and f(x - eps * v)",
        "caller_requires_grad": "work on a copy, w = w.detach().clone().requires_grad_(True), "
        "or use torch.func.grad: requires_grad_() and backward() on the caller's tensor "
        "change it, and a second call adds its gradient to the first",
        "grad_none": ".grad is filled only on a leaf tensor that requires grad: make the "
        "copy of w with w.detach().clone().requires_grad_(True) and compute the loss from it",
        "no_grad_leaf": "nothing in the loss requires grad: call .requires_grad_(True) on "
        "(a copy of) w before computing the loss from it, outside torch.no_grad()",
        "scalar_loss": "backward() and grad need a scalar loss: take the mean over examples",
        "dtype_mismatch": "keep every tensor in the inputs' dtype (float32): do not call "
        ".double(), and create new tensors with dtype=x.dtype (or zeros_like(x))",
        "device": "keep every tensor on the inputs' device: create new tensors with "
        "device=x.device (or zeros_like(x)), and never call .cuda() or .to('cuda') here",
        "changed_input": "do not write into the caller's tensors: x + eps * v is a new "
        "tensor, while x += ... or x.add_(...) changes the caller's x",
        "view_write": "an in-place operation (/=, div_) on x or on a view of it writes into "
        "the caller's batch (view shares x's memory): scale out of place, "
        "inputs = x.reshape(len(x), -1) / 255",
        "zero_grad": "backward() adds to .grad: call optimizer.zero_grad() at the start of "
        "each step, or the second step also applies the first step's gradient",
        "no_update": "apply the update: loss.backward() fills .grad, then optimizer.step() "
        "changes the parameters from it; optimizer.zero_grad() belongs before backward(), "
        "not between backward() and step()",
        "step_no_grad": "the loss was computed without gradients: compute it outside "
        "torch.no_grad(), from the model's output as it is (no .detach())",
        "labels_long": "F.cross_entropy takes the labels as integer class indices "
        "(torch.long): pass y as it is, without .float()",
        "step_logits": "F.cross_entropy takes the raw logits and applies log_softmax "
        "itself: pass model(inputs) as it is, without softmax (and F.nll_loss expects "
        "log-probabilities, not logits)",
        "step_once": "call optimizer.step() once per training step: each call applies the "
        "gradient again",
        "loss_mean": "keep F.cross_entropy's default reduction='mean': a sum scales the "
        "gradient, and so the step, by the batch size",
        "loss_before": "return the loss of this step's forward pass, computed before "
        "optimizer.step(), as loss.item()",
    },
)

# PyTorch error messages (a regular expression on the message) -> the hint that fixes them.
_ERRORS = {
    r"shape '\[\d+, 784\]' is invalid for input of size": "preprocess_batch",
    r"result type Float can't be cast to the desired output type Byte": "preprocess_in_place",
    r"could not infer output dtype.*Bool": "bool_mean",
    r"does not require grad and does not have a grad_fn": "no_grad_leaf",
    r"grad can be implicitly created only for scalar outputs": "scalar_loss",
    r"same dtype|expected scalar type|dtype.* but got|found dtype": "dtype_mismatch",
    r"same device|expected device|NVIDIA driver|not compiled with CUDA": "device",
}


_explain = explainer(_ERRORS, HINTS)
# Exercise 2: a (B,) vector of the labels' scores against (B, C) logits.
_TOPK_ERRORS = {
    r"must match the size of tensor b": "topk_broadcast",
    r"Expected dtype int32/int64 for index|tensors used as indices must be": "topk_labels_int",
    **_ERRORS,
}
# Exercise 4: a column of directions (K,) dotted with the gradient (D,).
_DGC_ERRORS = {
    r"inconsistent tensor size|size of tensor a": "dgc_rows",
    r"division by zero": "dgc_tiny",
    **_ERRORS,
}
# Exercise 5 has labels and a model, and no w: its own wording of two errors.
_STEP_ERRORS = {
    # Before _ERRORS' preprocess_batch: here a fixed 784 is the mistake, not the batch size.
    r"shape '\[(-1|\d+), 784\]' is invalid|mat1 and mat2 shapes": "step_flatten",
    r"target dtype to be Long|expected scalar type Long": "labels_long",
    **_ERRORS,
    r"does not require grad and does not have a grad_fn": "step_no_grad",  # replaces
}


def _side_effects(value: Any) -> str | None:
    if isinstance(value, torch.Tensor) and value.requires_grad:
        return "it now has requires_grad=True"
    if isinstance(value, torch.Tensor) and value.grad is not None:
        return "its .grad is filled"
    return None


TORCH = lab_framework(HINTS, _explain, side_effects=_side_effects)


# --- Exercise 5: a training step that only goes wrong on its second call ----------------------
def _problem() -> tuple[MLP, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
    """12 4x4 'images' with float pixels in 0..255, 3 classes; the same on every call.

    12 images of 16 pixels: x.view(-1, len(x)) is not x.view(len(x), -1) here."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (12, 4, 4), generator=g).float()
    y = torch.randint(0, 3, (12,), generator=g)
    with torch.random.fork_rng():  # leave the student's global RNG state alone
        torch.manual_seed(0)
        model = MLP(16, (8,), 3)
    return model, torch.optim.SGD(model.parameters(), lr=0.5), x, y


def _reference_step(model, optimizer, x, y, loss_fn=F.cross_entropy, steps=1) -> float:
    optimizer.zero_grad()
    loss = loss_fn(model(x.reshape(len(x), -1) / 255), y)
    loss.backward()
    for _ in range(steps):
        optimizer.step()
    return loss.item()


# Exercise 5's known mistakes that show in the parameters after the first step.
_STEP_MISTAKES = {
    "step_logits": [
        dict(loss_fn=lambda out, y: F.cross_entropy(out.softmax(-1), y)),
        dict(loss_fn=F.nll_loss),
    ],
    "step_once": [dict(steps=2)],
    "loss_mean": [dict(loss_fn=partial(F.cross_entropy, reduction="sum"))],
}


def _first_step_mistakes() -> list[tuple[str, np.ndarray]]:
    """(hint key, the parameters after one step with that mistake) for each mistake."""
    mistakes = []
    for key, variants in _STEP_MISTAKES.items():
        for variant in variants:
            model, optimizer, x, y = _problem()
            _reference_step(model, optimizer, x, y, **variant)
            mistakes.append((key, _parameters(model)))
    return mistakes


def _parameters(model: torch.nn.Module) -> np.ndarray:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).numpy().copy()


def _check_train_step(train_step, fw: Framework) -> None:
    """Exercise 5 (PyTorch): ``train_step(model, optimizer, x, y) -> float``, called twice."""
    model, optimizer, x, y = _problem()
    ref_model, ref_optimizer, _, _ = _problem()
    x_before = x.clone()
    mistakes = [(fw.hints[key], wrong) for key, wrong in _first_step_mistakes()]
    fw = dataclasses.replace(fw, explain=explainer(_STEP_ERRORS, HINTS))
    with checking("train_step", fw, passed="two steps match a reference SGD step") as c:
        for step in (1, 2):
            before = _parameters(model)
            loss = c.call(train_step, model, optimizer, x, y)
            c.expect(
                torch.equal(x, x_before),
                f"after step {step} the caller's batch x has changed",
                c.hint("view_write"),
            )
            loss = lab01.float_result(c, loss, "the returned loss")
            ref_loss = _reference_step(ref_model, ref_optimizer, x, y)
            after, ref_after = _parameters(model), _parameters(ref_model)
            c.expect(
                not np.array_equal(after, before),
                f"the parameters did not change in step {step}",
                c.hint("no_update"),
            )
            c.close(
                after,
                ref_after,
                what=f"a parameter after step {step}",
                rtol=1e-4,
                atol=1e-6,
                hint=c.hint("zero_grad")
                if step == 2
                else "flatten x, divide by 255, then loss, backward() and one step()",
                mistakes=mistakes if step == 1 else (),
            )
            c.close(
                loss,
                ref_loss,
                what=f"the loss returned by step {step}",
                rtol=1e-5,
                atol=1e-6,
                hint=c.hint("loss_before"),
            )


# The checks, bound to this framework. Call them with the student's function.
check_preprocess = partial(lab01.check_preprocess, fw=TORCH)
check_top_k_accuracy = partial(
    topk.check_top_k_accuracy,
    fw=dataclasses.replace(TORCH, explain=explainer(_TOPK_ERRORS, HINTS)),
)
check_mse_grad = partial(lab01.check_mse_grad, fw=TORCH, autodiff=autodiff_calls)
check_directional_gradient_error = partial(
    directional.check_directional_gradient_error,
    fw=dataclasses.replace(TORCH, explain=explainer(_DGC_ERRORS, HINTS)),
)
check_framework_specific = partial(_check_train_step, fw=TORCH)
