"""Lab 7 self-checks for PyTorch notebooks: ``H.lab07.check_returns(discounted_returns)`` etc.

The checks are :mod:`helpers.labs.lab07.checks`, shared with JAX; this module says how arrays
go in and come out (float32 tensors, read back as numpy), how PyTorch differentiates the PPO
losses (:func:`_gradients`) and words the hints whose API differs from JAX's.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from helpers.labs.kit import Checker, Hints, explainer
from helpers.labs.lab07 import checks as lab07
from helpers.torch.labkit import lab_framework

__all__ = ["check_gae", "check_ppo_loss", "check_returns", "check_vtrace"]

HINTS = Hints(
    lab07.HINTS,
    {
        "bool_mask": "PyTorch cannot compute 1 - mask on a bool tensor: keep the masks "
        "as 0.0/1.0 floats (torch.maximum(terminated, truncated) is the float "
        "done), or convert with mask.float()",
        "unbiased_std": "normalise with the population std, dividing by n (ddof 0): "
        "advantages.std() divides by n - 1 unless you pass correction=0",
        "not_reversed": "the loop runs from the last step back to the first: reverse "
        "what you collected (a list: out[::-1]; a tensor: out.flip(0)) so that G[0] is "
        "the first step's return",
        "forward": "returns, advantages and V-trace targets flow backwards in time: loop "
        "t from T - 1 down to 0, for t in reversed(range(T)); a forward loop carries the "
        "past into each step instead of the future",
        "input_changed": "do not write into the inputs (rewards += ..., x[t] = ..., "
        "x.sub_(...), log_rhos.exp_()): the caller's rollout would change under it. "
        "Compute into new tensors, e.g. returns = torch.zeros_like(rewards), or work on "
        "x.clone() (torch.exp(log_rhos) is a new tensor)",
        "float32": "keep float32, the inputs' dtype: float64 comes from .double(), "
        "dtype=torch.float64 or a NumPy array (float64 by default) turned into a "
        "tensor; build on torch.zeros_like(rewards) and the inputs themselves",
        "not_differentiable": "the loss must stay in autograd's graph: no .detach(), "
        "torch.no_grad(), .item() or NumPy round trip (.numpy(), torch.tensor(...) of "
        "a value) between new_log_probs / new_values and the loss, or nothing trains",
        "partly_detached": "the values are right but the gradient is not: part of the "
        "loss is cut from autograd (a .detach() on the ratio in one of the two terms, "
        "say); only the data (old_log_probs, advantages, old_values) may be constants",
        "tensor_max_float": "torch.max / torch.min (and torch.maximum / torch.minimum) "
        "compare two tensors: bound a tensor by numbers with clamp, "
        "ratio.clamp(1 - clip, 1 + clip) in PPO, ratio.clamp(max=rho_bar) in V-trace",
        "rho_at_c_bar": "rho is clipped at rho_bar, not c_bar: rho[t] = min(rho_bar, "
        "exp(log_rhos[t])) weights the TD error delta[t]; c_bar is only for c[t]. If "
        "you wrote rho_bar: c = ratio; c[c > c_bar] = c_bar writes into ratio itself, so "
        "a rho taken from ratio afterwards is clipped at c_bar too; use ratio.clamp("
        "max=c_bar), a new tensor",
        "inf_bar": "rho_bar and c_bar may be float('inf'), no clipping: clip with a "
        "minimum, ratio.clamp(max=rho_bar); arithmetic on the bar turns inf into NaN "
        "(rho_bar - torch.relu(rho_bar - ratio) is inf - inf, rho_bar * (ratio / "
        "rho_bar).clamp(max=1) is inf * 0)",
        "python_min": "Python's min / max (and if, and, or) need one number, not a "
        "tensor of T: clip elementwise with ratio.clamp(max=rho_bar) (or torch.clamp), "
        "and choose with torch.where or the 0/1 masks",
    },
)

# PyTorch error messages (a regular expression on the message) -> the hint that fixes them.
_MESSAGES = {
    r"Subtraction, the `-` operator, with a bool tensor": "bool_mask",
    r"Can't call numpy\(\) on Tensor that requires grad": "not_differentiable",
    r"leaf Variable that requires grad is being used in an in-place": "input_changed",
    r"(max|min)\(\) received an invalid combination of arguments - got "
    r"\((Tensor, float|float, Tensor)": "tensor_max_float",
    r"(maximum|minimum)\(\): argument '\w+' \(position \d\) must be Tensor, not float": (
        "tensor_max_float"
    ),
    r"Boolean value of Tensor with more than one value is ambiguous": "python_min",
}

TORCH = lab_framework(HINTS, explainer(_MESSAGES, HINTS))

check_returns = partial(lab07.check_returns, fw=TORCH)
check_gae = partial(lab07.check_gae, fw=TORCH)
check_vtrace = partial(lab07.check_vtrace, fw=TORCH)


def _gradients(
    c: Checker, student: Callable, x: dict[str, np.ndarray], clip: float
) -> tuple[np.ndarray, np.ndarray]:
    """d policy_loss / d new_log_probs and d value_loss / d new_values, by autograd."""
    t = {k: torch.from_numpy(v.copy()) for k, v in x.items()}
    wrt = (t["new_log_probs"].requires_grad_(), t["new_values"].requires_grad_())
    out = c.call(student, *(t[k] for k in lab07.PPO_ARGS), clip=clip)
    grads = []
    for loss, w, name in zip(out, wrt, ("policy_loss", "value_loss"), strict=True):
        if not loss.requires_grad:
            raise c.fail(
                f"{name} does not record gradients (requires_grad=False)",
                c.hint("not_differentiable"),
            )
        (g,) = torch.autograd.grad(loss, w, retain_graph=True, allow_unused=True)
        grads.append(np.zeros(w.shape) if g is None else g.numpy())
    return tuple(grads)


check_ppo_loss = partial(lab07.check_ppo_loss, fw=TORCH, gradients=_gradients)
