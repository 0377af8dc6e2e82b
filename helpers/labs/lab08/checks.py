"""Lab 8 self-checks shared by both frameworks, written once on numpy answers.

Exercises: Adam with bias correction and L2 weight decay (``torch.optim.Adam``'s
``weight_decay``; in Optax ``add_decayed_weights`` before ``adam``), Adam with decoupled weight
decay (AdamW), and a linear-warmup + cosine schedule. The answers come from one float64 numpy
reference per exercise with a switch per known mistake (:func:`adam_reference`,
:func:`warmup_cosine_reference`); ``tests/labs/test_lab08.py`` asserts that the references,
with no switch set, equal ``torch.optim.Adam`` / ``AdamW``, ``torch.optim.lr_scheduler``,
``optax.adam`` / ``adamw`` and ``optax.warmup_cosine_decay_schedule`` on every case below, and
that every mistake moves the answer well beyond the tolerance.

The adapters (``torch.py``, ``jax.py``) run the student's code on these cases and hand the
results over as lists of numpy arrays; the comparison and the hints live here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, Hints

__all__ = [
    "ADAM_CASES",
    "HINTS",
    "SCHEDULE_CASES",
    "adam_reference",
    "compare_adam",
    "compare_schedule",
    "warmup_cosine_reference",
]

HINTS = Hints(
    {
        "bias_correction": "correct both moments, m and v, by (1 - beta^t) before the "
        "square root: m_hat = m / (1 - beta1**t), v_hat = v / (1 - beta2**t), then "
        "param - lr * m_hat / (sqrt(v_hat) + eps)",
        "step_from_zero": "the correction needs t = 1 at the first step: count the step "
        "first (t = t + 1), then divide by 1 - beta**t; with t = 0, 1 - beta**0 = 0 and the "
        "first step divides by zero",
        "l2_not_decoupled": "AdamW decouples the decay from the gradient: leave the "
        "gradient alone and shrink the parameter, param - lr * weight_decay * param, besides "
        "Adam's step; adding weight_decay * param to the gradient is Adam's L2 penalty",
        "decoupled_not_l2": "this exercise asks for the L2 penalty of torch.optim.Adam: "
        "add weight_decay * param to the gradient first, g = grad + weight_decay * param, "
        "and use that g in m and v; shrinking the parameter outside the gradient is AdamW",
        "update_sign": "the step goes against the gradient: param - lr * m_hat / "
        "(sqrt(v_hat) + eps) (in Optax the update itself is negative, "
        "-learning_rate * ..., since apply_updates adds it)",
        "betas_swapped": "the running averages keep beta of the old value: "
        "m = beta1 * m + (1 - beta1) * g and v = beta2 * v + (1 - beta2) * g**2",
        "negative_cosine": "lr * cos(2 pi t / T) goes negative half-way (gradient ascent); "
        "anneal with half a cosine from peak to end: "
        "end + (peak - end) * (1 + cos(pi * s / S)) / 2, s steps into the decay of S steps",
        "off_by_one": "the schedule is one step off: step 0 must give init (the warmup's "
        "start) and step warmup_steps the peak, so use the step as given, not step + 1 or "
        "step - 1",
        "decay_without_lr": "the decoupled decay is scaled by the learning rate too: "
        "param - lr * weight_decay * param (PyTorch's AdamW multiplies the parameter by "
        "1 - lr * weight_decay), not param - weight_decay * param",
        "frozen_count": "the bias correction uses the number of the current step, 1, 2, "
        "3, ...: the count must change at every step (in JAX keep it in the state that "
        "update returns; a Python variable outside the state is read once, when jit traces "
        "update, and stays 1)",
        "cosine_length": "the cosine runs over the steps after the warmup, "
        "S = total_steps - warmup_steps, and starts at s = step - warmup_steps",
    }
)

# Two cases per Adam exercise: (shape, steps, hyperparameters). beta2 = 0.99 and a large lr
# so every mistake moves the result far beyond the tolerance. The case with beta1 = 0.8 comes
# first: with beta1 = 0.9 and beta2 = 0.99, 1 - beta1 = sqrt(1 - beta2), so a count stuck at
# 1 gives exactly the uncorrected step and the two mistakes could not get their own hints.
ADAM_CASES = [
    dict(
        shape=(2, 3),
        steps=3,
        seed=1,
        lr=0.05,
        beta1=0.8,
        beta2=0.999,
        eps=1e-6,
        weight_decay=0.3,
    ),
    dict(
        shape=(4,),
        steps=4,
        seed=0,
        lr=0.1,
        beta1=0.9,
        beta2=0.99,
        eps=1e-8,
        weight_decay=0.1,
    ),
]


def adam_inputs(case: dict) -> tuple[np.ndarray, list[np.ndarray]]:
    """The starting parameter and the gradient of every step, float32."""
    rng = np.random.default_rng(case["seed"])
    param = rng.normal(size=case["shape"]).astype(np.float32)
    grads = [
        rng.normal(scale=0.5, size=case["shape"]).astype(np.float32)
        for _ in range(case["steps"])
    ]
    return param, grads


def adam_reference(
    param: np.ndarray,
    grads: Sequence[np.ndarray],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled: bool,
    # True, False, or "m" / "v": correct only that moment
    bias_correction: bool | str = True,
    step_from_zero: bool = False,
    betas_swapped: bool = False,
    decay_without_lr: bool = False,
    frozen_count: bool = False,
    **_: Any,
) -> list[dict[str, np.ndarray]]:
    """``{"param", "m", "v"}`` after each step, float64; switches compute known mistakes."""
    p = np.asarray(param, np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for t, grad in enumerate(grads, start=1):
            g = np.asarray(grad, np.float64)
            if decoupled:
                p = p * (1 - (1 if decay_without_lr else lr) * weight_decay)
            else:
                g = g + weight_decay * p
            a1, a2 = (1 - beta1, 1 - beta2) if betas_swapped else (beta1, beta2)
            m = a1 * m + (1 - a1) * g
            v = a2 * v + (1 - a2) * g**2
            k = t - 1 if step_from_zero else 1 if frozen_count else t
            m_hat = m / (1 - beta1**k) if bias_correction in (True, "m") else m
            v_hat = v / (1 - beta2**k) if bias_correction in (True, "v") else v
            p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
            out.append({"param": p, "m": m, "v": v})
    return out


def compare_adam(
    c: Checker,
    got: Sequence[dict[str, np.ndarray]],
    param: np.ndarray,
    grads: Sequence[np.ndarray],
    case: dict,
    *,
    decoupled: bool,
) -> None:
    """Fail unless the student's values after each step match the reference.

    ``got`` holds, per step, the parameter and (where the exercise returns them) ``m`` and
    ``v``, as numpy arrays.
    """
    expected = adam_reference(param, grads, decoupled=decoupled, **case)
    switches = [
        ("bias_correction", dict(bias_correction=False)),
        ("bias_correction", dict(bias_correction="m")),
        ("bias_correction", dict(bias_correction="v")),
        ("betas_swapped", dict(betas_swapped=True)),
        (
            "l2_not_decoupled" if decoupled else "decoupled_not_l2",
            dict(decoupled=not decoupled),
        ),
        ("frozen_count", dict(frozen_count=True)),
    ]
    if decoupled:
        switches.append(("decay_without_lr", dict(decay_without_lr=True)))
    wrong_runs = [
        (
            c.hint(key),
            adam_reference(param, grads, **{**case, "decoupled": decoupled, **sw}),
        )
        for key, sw in switches
    ]
    for step, (actual, right) in enumerate(zip(got, expected, strict=True), start=1):
        if step == 1 and not np.all(np.isfinite(actual["param"])):
            raise c.fail(
                "after the first step the parameter holds NaN or inf",
                c.hint("step_from_zero"),
            )
        for name in ("param", "m", "v"):
            if name not in actual:
                continue
            mistakes = [(hint, run[step - 1][name]) for hint, run in wrong_runs]
            if step == 1 and name == "param":  # the step taken with the wrong sign
                flipped = 2 * np.asarray(param, np.float64) - right["param"]
                mistakes.append((c.hint("update_sign"), flipped))
            c.close(
                actual[name],
                right[name],
                what=f"{name} after step {step}",
                rtol=1e-4,
                atol=1e-6,
                hint=(
                    "follow the exercise's formula in order: m and v from the gradient, "
                    "the bias correction with the step number, then the step; AdamW's "
                    "decay uses the parameter the step starts from (not the updated one)"
                    if decoupled
                    else "follow the exercise's formula in order: the L2 term added to "
                    "the gradient, m and v, the bias correction with the step number, "
                    "then the step"
                ),
                mistakes=mistakes,
            )


# The schedule: (init, peak, warmup_steps, total_steps, end) per case; steps 0..total.
SCHEDULE_CASES = [
    dict(init=0.01, peak=0.1, warmup_steps=5, total_steps=20, end=0.001),
    dict(init=0.002, peak=0.5, warmup_steps=3, total_steps=12, end=0.0),
]


def warmup_cosine_reference(
    step: int,
    *,
    init: float,
    peak: float,
    warmup_steps: int,
    total_steps: int,
    end: float,
    negative_cosine: bool = False,
    shift: int = 0,
    cosine_length: bool = False,
) -> float:
    """The learning rate at ``step``; the switches compute known mistakes."""
    step = step + shift
    if step < warmup_steps:
        return init + (peak - init) * step / warmup_steps
    s, length = step - warmup_steps, total_steps - warmup_steps
    if cosine_length:
        s, length = step, total_steps
    if negative_cosine:
        return peak * math.cos(2 * math.pi * s / length)
    return end + (peak - end) * (1 + math.cos(math.pi * s / length)) / 2


def compare_schedule(c: Checker, got: np.ndarray, case: dict) -> None:
    """Fail unless the student's learning rates at steps 0..total match the reference."""
    steps = range(case["total_steps"] + 1)

    def curve(**switch: Any) -> np.ndarray:
        return np.array([warmup_cosine_reference(t, **case, **switch) for t in steps])

    c.close(
        got,
        curve(),
        what="the learning rate (index = step)",
        rtol=1e-5,
        atol=1e-7,
        hint="check the three landmarks: init at step 0, peak at step warmup_steps, end "
        "at step total_steps (the last step checked), with the cosine between the last two",
        mistakes=[
            (c.hint("negative_cosine"), curve(negative_cosine=True)),
            (c.hint("off_by_one"), curve(shift=1)),
            (c.hint("off_by_one"), curve(shift=-1)),
            (c.hint("cosine_length"), curve(cosine_length=True)),
        ],
    )


def expect_function(c: Checker, value: Any, what: str) -> Callable:
    """``value`` if callable; fail with what was expected otherwise."""
    if not callable(value):
        raise c.fail(
            f"expected {what}, got {type(value).__name__}",
            "return the function itself (no call), e.g. `return schedule`",
        )
    return value
