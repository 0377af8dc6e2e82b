"""Lab 8 self-checks for PyTorch notebooks: ``H.lab08.check_adam(adam_step)`` etc.

Exercise 4 (``check_lion``) is checked by :mod:`helpers.labs.lab08.lion`, whose answers the
tests prove equal to Optax's Lion: ``torch.optim`` has none to compare with, or to refuse.

The checks are :mod:`helpers.labs.lab08.checks`, shared with JAX; this module calls the
student's functions on tensors, step after step, and hands the results over as numpy.
``tests/labs/test_lab08.py`` asserts that the numpy answers equal ``torch.optim.Adam``,
``torch.optim.AdamW`` and ``torch.optim.lr_scheduler`` on the same cases; those are the
answer keys, so a call of one from the student's function fails the check.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import torch

from helpers.labs.kit import Checker, Hints, checking, explainer
from helpers.labs.lab08 import checks as lab08
from helpers.labs.lab08 import lion
from helpers.torch.labkit import lab_framework

__all__ = ["check_adam", "check_adamw", "check_lion", "check_warmup_cosine"]

# Lion's hints in PyTorch's names, and the mistakes only PyTorch allows.
_LION_HINTS = {
    **lion.lion_hints(
        dict(
            lr="lr",
            b1="beta1",
            b2="beta2",
            p="param",
            g="grad",
            sign="torch.sign",
            where="",
            step="param - lr * (torch.sign(c) + weight_decay * param)",
        )
    ),
    "lion_returned_swapped": "return the pair in the order (param, m): the new parameter "
    "first, then the new momentum",
    "lion_in_place": "leave the tensors you are given as they are and return new ones: "
    "param.sub_(...), m.mul_(...).add_(...), param -= ... or m.lerp_(...) write into the "
    "caller's tensors; compute with out-of-place operations (param - ..., beta2 * m + ...)",
    "lion_float64": "keep the inputs' dtype, float32: param and m come in as float32 and "
    "must go out as float32; a float64 tensor in the computation (.double(), "
    "torch.from_numpy of a NumPy result, torch.tensor(np.sign(...))) promotes the result",
}

# The shared hints worded for PyTorch's names and update, and PyTorch's own mistakes.
HINTS = Hints(
    lab08.HINTS,
    _LION_HINTS,
    {
        "bias_correction": "correct both moments, m and v, by (1 - beta**(t + 1)) before "
        "the square root: m_hat = m / (1 - beta1**(t + 1)), v_hat = v / (1 - beta2**(t + "
        "1)), then param - lr * m_hat / (sqrt(v_hat) + eps)",
        "l2_not_decoupled": "AdamW decouples the decay from the gradient: leave the "
        "gradient alone and shrink the parameter, param - lr * weight_decay * param, besides "
        "Adam's step; adding weight_decay * param to the gradient is Adam's L2 penalty",
        "decoupled_not_l2": "this exercise asks for the L2 penalty of torch.optim.Adam: "
        "add weight_decay * param to the gradient first, g = grad + weight_decay * param, "
        "and use that g in m and v; shrinking the parameter outside the gradient is AdamW",
        "decay_without_lr": "the decoupled decay is scaled by the learning rate too: "
        "param * (1 - lr * weight_decay), as torch.optim.AdamW does, not "
        "param - weight_decay * param",
        "update_sign": "the step goes against the gradient: param - lr * m_hat / "
        "(sqrt(v_hat) + eps)",
        "frozen_count": "the bias correction uses the number of the current step, t + 1 "
        "(1, 2, 3, ...): use the t the caller passes, which grows by one at every call, "
        "not a constant",
        "float64": "keep the inputs' dtype, float32: param, m and v come in as float32 and "
        "must go out as float32; a float64 array in the computation (.double(), "
        "torch.from_numpy of a NumPy result, moments started as float64) promotes the "
        "result, and .half() loses precision",
        "state_not_returned": "return the new moments, the m and v you computed from this "
        "gradient, not the ones you were given: the caller feeds them back at the next "
        "step, and with the old ones every step starts Adam again from m = v = 0",
        "returned_order": "return the tuple in the order (param, m, v): the new parameter "
        "first, then the two moments",
        "adam_shape": "return param, m and v in the shape of the param you were given: "
        "every operation of the step is elementwise (no flatten, reshape, sum or mean)",
    },
)

# The library's answers, refused: each exercise asks to write its rule out.
_OPTIM_KEYS = (
    (torch.optim, "Adam"),
    (torch.optim, "AdamW"),
    # the functional forms the classes call (torch.optim deletes these module names, but
    # `from torch.optim.adam import adam` still reaches them)
    (importlib.import_module("torch.optim.adam"), "adam"),
    (importlib.import_module("torch.optim.adamw"), "adamw"),
)
_SCHEDULE_KEYS = tuple(
    (torch.optim.lr_scheduler, name)
    for name in (
        "LinearLR",
        "CosineAnnealingLR",
        "SequentialLR",
        "OneCycleLR",
        "ChainedScheduler",
        "CosineAnnealingWarmRestarts",
    )
)

TORCH = lab_framework(HINTS, explainer({}, HINTS))

# The first step's parameter of PyTorch's own mistakes: (m, v, param) returned, so the
# parameter the check reads is m.
_FIRST_STEP = [("returned_order", lambda param, right: right["m"])]


def _adam_run(
    c: Checker, fn: Any, case: dict, answer_key: str
) -> tuple[list[dict], np.ndarray, list]:
    """Call the student's step function ``case["steps"]`` times, feeding back its results."""
    param, grads = lab08.adam_inputs(case)
    p = torch.tensor(param)
    m, v, t = torch.zeros_like(p), torch.zeros_like(p), 0
    hyper = {k: case[k] for k in ("lr", "beta1", "beta2", "eps", "weight_decay")}
    got = []
    for g in grads:
        out = lab08.call_refusing(
            c, _OPTIM_KEYS, answer_key, fn, p, torch.tensor(g), m, v, t, **hyper
        )
        if not isinstance(out, tuple | list) or len(out) != 3:
            raise c.fail(
                f"expected a tuple (param, m, v), got {type(out).__name__}",
                "return the new parameter and both moments: return param, m, v",
            )
        names = ("param", "m", "v")
        for x, n in zip(out, names, strict=True):
            if isinstance(x, torch.Tensor) and x.dtype != torch.float32:
                raise c.fail(
                    f"{n} has dtype {str(x.dtype).removeprefix('torch.')}, expected "
                    "float32",
                    c.hint("float64"),
                )
        arrays = [
            np.array(c.array(x, f"a torch.Tensor for {n}"))
            for x, n in zip(out, names, strict=True)
        ]
        for array in arrays:
            c.shape(array, param.shape, c.hint("adam_shape"))
        got.append(dict(zip(names, arrays, strict=True)))
        p, m, v = out
        t += 1  # the caller counts the steps taken: t is 0 at the first call
    return got, param, grads


def _check_adam(student: Any, exercise: str, decoupled: bool) -> None:
    with checking(
        exercise, TORCH, passed="parameter, m and v match over several steps"
    ) as c:
        for case in lab08.ADAM_CASES:
            key = "adamw_answer_key" if decoupled else "adam_answer_key"
            got, param, grads = _adam_run(c, student, case, key)
            lab08.compare_adam(
                c, got, param, grads, case, decoupled=decoupled, first_step=_FIRST_STEP
            )


def check_adam(student: Any) -> None:
    """Adam with bias correction and L2 weight decay (``torch.optim.Adam``)."""
    _check_adam(student, "adam_step", decoupled=False)


def check_adamw(student: Any) -> None:
    """Adam with decoupled weight decay (``torch.optim.AdamW``)."""
    _check_adam(student, "adamw_step", decoupled=True)


def check_warmup_cosine(student: Any) -> None:
    """Linear warmup from ``init`` to ``peak``, then half a cosine down to ``end``."""
    with checking("warmup_cosine", TORCH, passed="every step of two schedules") as c:
        for case in lab08.SCHEDULE_CASES:
            values = []
            for step in range(case["total_steps"] + 1):
                lr = lab08.call_refusing(
                    c, _SCHEDULE_KEYS, "schedule_answer_key", student, step, **case
                )
                if isinstance(lr, torch.Tensor) and lr.numel() == 1:
                    lr = float(lr)  # a one-element tensor is a number too
                if isinstance(lr, np.floating):
                    lr = float(lr)  # as is np.float32 (np.float64 is a float already)
                values.append(c.python_float(lr, f"the learning rate at step {step}"))
            lab08.compare_schedule(c, np.array(values), case)


def check_lion(student: Any) -> None:
    """One step of Lion, ``lion_step(param, grad, m, *, lr, beta1, beta2, weight_decay)`` ->
    ``(param, m)``, float32, the inputs left unchanged (Chen et al. 2023). ``torch.optim`` has
    no Lion in the pinned PyTorch, so there is no answer key to refuse."""
    with checking(
        "lion_step",
        TORCH,
        passed="parameter and momentum match over several steps, zero gradients included",
    ) as c:
        for case in lion.LION_CASES:
            param, grads = lion.lion_inputs(case)
            p = torch.tensor(param)
            m = torch.zeros_like(p)
            hyper = {k: case[k] for k in ("lr", "beta1", "beta2", "weight_decay")}
            got = []
            for grad in grads:
                g = torch.tensor(grad)
                given = (p, g, m)
                before = [x.clone() for x in given]
                out = c.call(student, p, g, m, **hyper)
                if not all(
                    torch.allclose(x, y, rtol=0, atol=0, equal_nan=True)
                    for x, y in zip(given, before, strict=True)
                ):
                    raise c.fail(
                        "your function changed a tensor it was given (param, grad or m)",
                        c.hint("lion_in_place"),
                    )
                if not isinstance(out, tuple | list) or len(out) != 2:
                    raise c.fail(
                        f"expected a tuple (param, m), got {type(out).__name__}",
                        "return the new parameter and momentum: return param, m",
                    )
                for x, name in zip(out, ("param", "m"), strict=True):
                    if isinstance(x, torch.Tensor) and x.dtype == torch.float64:
                        raise c.fail(
                            f"{name} has dtype float64, expected float32",
                            c.hint("lion_float64"),
                        )
                arrays = {
                    name: np.array(c.array(x, f"a torch.Tensor for {name}"))
                    for x, name in zip(out, ("param", "m"), strict=True)
                }
                for name, array in arrays.items():
                    c.shape(array, param.shape, f"return {name} in param's shape")
                got.append(arrays)
                if not all(np.all(np.isfinite(a)) for a in arrays.values()):
                    break  # the comparison reports it
                p, m = (x.detach() for x in out)
            lion.compare_lion(c, got, param, grads, case)
