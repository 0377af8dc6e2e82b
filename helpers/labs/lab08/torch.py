"""Lab 8 self-checks for PyTorch notebooks: ``H.lab08.check_adam(adam_step)`` etc.

The checks are :mod:`helpers.labs.lab08.checks`, shared with JAX; this module calls the
student's functions on tensors, step after step, and hands the results over as numpy.
``tests/labs/test_lab08.py`` asserts that the numpy answers equal ``torch.optim.Adam``,
``torch.optim.AdamW`` and ``torch.optim.lr_scheduler`` on the same cases.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from helpers.labs.kit import Checker, Hints, checking, explainer
from helpers.labs.lab08 import checks as lab08
from helpers.torch.labkit import lab_framework

__all__ = ["check_adam", "check_adamw", "check_warmup_cosine"]

# PyTorch adds no known mistakes of its own to this lab.
HINTS = Hints(lab08.HINTS, {})

TORCH = lab_framework(HINTS, explainer({}, HINTS))


def _adam_run(c: Checker, fn: Any, case: dict) -> tuple[list[dict], np.ndarray, list]:
    """Call the student's step function ``case["steps"]`` times, feeding back its results."""
    param, grads = lab08.adam_inputs(case)
    p = torch.tensor(param)
    m, v, t = torch.zeros_like(p), torch.zeros_like(p), 0
    hyper = {k: case[k] for k in ("lr", "beta1", "beta2", "eps", "weight_decay")}
    got = []
    for g in grads:
        out = c.call(fn, p, torch.tensor(g), m, v, t, **hyper)
        if not isinstance(out, tuple | list) or len(out) != 3:
            raise c.fail(
                f"expected a tuple (param, m, v), got {type(out).__name__}",
                "return the new parameter and both moments: return param, m, v",
            )
        names = ("param", "m", "v")
        arrays = [
            np.array(c.array(x, f"a torch.Tensor for {n}"))
            for x, n in zip(out, names, strict=True)
        ]
        got.append(dict(zip(names, arrays, strict=True)))
        p, m, v = out
        t += 1  # the caller counts the steps taken: t is 0 at the first call
    return got, param, grads


def _check_adam(student: Any, exercise: str, decoupled: bool) -> None:
    with checking(
        exercise, TORCH, passed="parameter, m and v match over several steps"
    ) as c:
        for case in lab08.ADAM_CASES:
            got, param, grads = _adam_run(c, student, case)
            lab08.compare_adam(c, got, param, grads, case, decoupled=decoupled)


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
                lr = c.call(student, step, **case)
                if isinstance(lr, torch.Tensor) and lr.numel() == 1:
                    lr = float(lr)  # a one-element tensor is a number too
                values.append(c.python_float(lr, f"the learning rate at step {step}"))
            lab08.compare_schedule(c, np.array(values), case)
