"""Lab 8 self-checks shared by both frameworks, written once on numpy answers.

Exercises: Adam with bias correction and L2 weight decay (``torch.optim.Adam``'s
``weight_decay``; in Optax ``add_decayed_weights`` before ``adam``), Adam with decoupled weight
decay (AdamW), and a linear-warmup + cosine schedule. The answers come from one float64 numpy
reference per exercise with a switch per known mistake (:func:`adam_reference`,
:func:`warmup_cosine_reference`); ``tests/labs/test_lab08.py`` asserts that the references,
with no switch set, equal ``torch.optim.Adam`` / ``AdamW``, ``torch.optim.lr_scheduler``,
``optax.adam`` / ``adamw`` and ``optax.warmup_cosine_decay_schedule`` on every case below, and
that every mistake moves the answer well beyond the tolerance (except where a case cannot
show it: the test says which and why). Those libraries are the answer keys: the adapters
refuse a call of one from the student's code (:func:`call_refusing`).

The adapters (``torch.py``, ``jax.py``) run the student's code on these cases and hand the
results over as lists of numpy arrays; the comparison and the hints live here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, Hints, recording

__all__ = [
    "ADAM_CASES",
    "HINTS",
    "SCHEDULE_CASES",
    "adam_reference",
    "call_refusing",
    "compare_adam",
    "compare_schedule",
    "warmup_cosine_reference",
]

# Hints whose wording depends on the framework (names, the sign of Optax's update) are in
# the adapters: bias_correction, l2_not_decoupled, decoupled_not_l2, decay_without_lr,
# update_sign, frozen_count, state_not_returned; these read the same in both.
HINTS = Hints(
    {
        "step_from_zero": "the correction needs t = 1 at the first step: count the step "
        "first (t = t + 1), then divide by 1 - beta**t; with t = 0, 1 - beta**0 = 0 and the "
        "first step divides by zero",
        "betas_swapped": "the running averages keep beta of the old value: "
        "m = beta1 * m + (1 - beta1) * g and v = beta2 * v + (1 - beta2) * g**2",
        "eps_inside": "eps goes outside the square root: m_hat / (sqrt(v_hat) + eps), as "
        "torch.optim.Adam and optax.adam put it (optax's eps_root, added inside the root, "
        "is a separate option, 0 by default); with gradients as small as eps (one case has "
        "them), sqrt(v_hat + eps) is about sqrt(eps), far above sqrt(v_hat), and the step "
        "shrinks",
        "eps_missing": "add eps to the denominator, m_hat / (sqrt(v_hat) + eps): with "
        "gradients as small as eps (one case has them) the step changes by about half",
        "negative_cosine": "lr * cos(2 pi t / T) goes negative half-way (gradient ascent); "
        "anneal with half a cosine from peak to end: "
        "end + (peak - end) * (1 + cos(pi * s / S)) / 2, s steps into the decay of S steps",
        "off_by_one": "the schedule is one step off: step 0 must give init (the warmup's "
        "start) and step warmup_steps the peak, so use the step as given, not step + 1 or "
        "step - 1",
        "warmup_length": "the warmup reaches the peak at step warmup_steps, not one step "
        "early: divide by warmup_steps, init + (peak - init) * step / warmup_steps, not by "
        "warmup_steps - 1",
        "sqrt_missing": "divide by the square root of v_hat, m_hat / (sqrt(v_hat) + eps): "
        "v averages squared gradients, and its root brings it back to the gradient's scale; "
        "m_hat / (v_hat + eps) scales each step by 1 / |g| too",
        "v_squared": "v averages the squared gradient, (1 - beta2) * g**2 (or g * g), which "
        "is never negative: with g alone, v goes negative wherever the gradient is, and its "
        "square root gives NaN there",
        "state_corrected": "keep the raw moments as the state: m_hat and v_hat (the bias-"
        "corrected ones) are for this step's update only; carried to the next step, they are "
        "corrected again",
        "decay_order": "the decoupled decay uses the parameter the step starts from: both "
        "the decay and Adam's step are computed from it, not the decay from the parameter "
        "Adam's step has already moved",
        "warmup_from_zero": "the warmup starts at init, not 0: init + (peak - init) * step / "
        "warmup_steps is init at step 0",
        "end_ignored": "the cosine ends at end, not 0: end + (peak - end) * (1 + cos(pi * s "
        "/ S)) / 2",
        "cosine_length": "the cosine runs over the steps after the warmup, "
        "S = total_steps - warmup_steps, and starts at s = step - warmup_steps",
        # The library's answer to each exercise, refused: the exercises write it out.
        "adam_answer_key": "write the step yourself from the exercise's formula (m, v, "
        "their bias correction, the step): the library's Adam is the answer key the check "
        "compares with, and calling it fails the check",
        "adamw_answer_key": "write the step yourself from the exercise's formula (Adam's "
        "moments and bias correction, plus the decoupled decay): the library's AdamW is the "
        "answer key the check compares with, and calling it fails the check",
        "schedule_answer_key": "write the schedule yourself from the exercise's formula (a "
        "line, then half a cosine): the library's schedules are the answer key the check "
        "compares with, and calling them fails the check",
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
    # Gradients as small as eps, so that where eps sits matters (with |g| ~ 0.5 above, eps
    # inside the root or no eps at all changes nothing); a weight decay as small, else the
    # L2 term would drown the gradient. Last, so the mistakes above fail on the first two
    # cases as before; the decay's scale (decay_without_lr) cannot show here.
    dict(
        shape=(3,),
        steps=3,
        seed=2,
        lr=0.05,
        beta1=0.85,
        beta2=0.995,
        eps=1e-6,
        weight_decay=1e-6,
        grad_scale=1e-6,
    ),
]


def adam_inputs(case: dict) -> tuple[np.ndarray, list[np.ndarray]]:
    """The starting parameter and the gradient of every step, float32."""
    rng = np.random.default_rng(case["seed"])
    param = rng.normal(size=case["shape"]).astype(np.float32)
    grads = [
        rng.normal(scale=case.get("grad_scale", 0.5), size=case["shape"]).astype(
            np.float32
        )
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
    eps_inside: bool = False,
    eps_missing: bool = False,
    sqrt_missing: bool = False,
    state_corrected: bool = False,  # m_hat and v_hat kept as the state
    state_frozen: bool = False,  # the moments given returned: m and v start at 0 each step
    decay_after_step: bool = False,  # AdamW's decay of the parameter Adam's step moved
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
            if decoupled and not decay_after_step:
                p = p * (1 - (1 if decay_without_lr else lr) * weight_decay)
            elif not decoupled:
                g = g + weight_decay * p
            a1, a2 = (1 - beta1, 1 - beta2) if betas_swapped else (beta1, beta2)
            m = a1 * m + (1 - a1) * g
            v = a2 * v + (1 - a2) * g**2
            k = t - 1 if step_from_zero else 1 if frozen_count else t
            m_hat = m / (1 - beta1**k) if bias_correction in (True, "m") else m
            v_hat = v / (1 - beta2**k) if bias_correction in (True, "v") else v
            if eps_inside:
                denominator = np.sqrt(v_hat + eps)
            else:
                root = v_hat if sqrt_missing else np.sqrt(v_hat)
                denominator = root + (0 if eps_missing else eps)
            p = p - lr * m_hat / denominator
            if decay_after_step:
                p = p * (1 - lr * weight_decay)
            if state_corrected:
                m, v = m_hat, v_hat
            if state_frozen:
                m, v = np.zeros_like(m), np.zeros_like(v)
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
    first_step: Sequence[tuple[str, Callable[[np.ndarray, dict], np.ndarray]]] = (),
) -> None:
    """Fail unless the student's values after each step match the reference.

    ``got`` holds, per step, the parameter and (where the exercise returns them) ``m`` and
    ``v``, as numpy arrays. ``first_step`` adds the framework's own mistakes of the first
    step's parameter: (hint key, a function of the starting parameter and the right first
    step's ``{"param", "m", "v"}`` that gives the wrong parameter).
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
        ("eps_inside", dict(eps_inside=True)),
        ("eps_missing", dict(eps_missing=True)),
        ("sqrt_missing", dict(sqrt_missing=True)),
        ("state_corrected", dict(state_corrected=True)),
        ("state_not_returned", dict(state_frozen=True)),
        ("state_not_returned", dict(state_frozen=True, frozen_count=True)),
    ]
    if decoupled:
        switches.append(("decay_without_lr", dict(decay_without_lr=True)))
        switches.append(("decay_order", dict(decay_after_step=True)))
    wrong_runs = [
        (
            c.hint(key),
            adam_reference(param, grads, **{**case, "decoupled": decoupled, **sw}),
        )
        for key, sw in switches
    ]
    for step, (actual, right) in enumerate(zip(got, expected, strict=True), start=1):
        finite = np.isfinite(actual["param"])
        if step == 1 and not np.all(finite):  # 1 - beta**0 = 0 makes every entry NaN or
            # inf; the root of a negative v (g, not g**2) only some
            raise c.fail(
                "after the first step the parameter holds NaN or inf",
                c.hint("v_squared" if np.any(finite) else "step_from_zero"),
            )
        for name in ("param", "m", "v"):
            if name not in actual:
                continue
            mistakes = [(hint, run[step - 1][name]) for hint, run in wrong_runs]
            if step == 1 and name == "param":  # the step taken with the wrong sign
                flipped = 2 * np.asarray(param, np.float64) - right["param"]
                mistakes.append((c.hint("update_sign"), flipped))
                for key, wrong in first_step:
                    mistakes.append((c.hint(key), wrong(np.asarray(param), right)))
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
    warmup_short: bool = False,
    warmup_from_zero: bool = False,
    end_ignored: bool = False,
) -> float:
    """The learning rate at ``step``; the switches compute known mistakes."""
    step = step + shift
    init = 0.0 if warmup_from_zero else init
    end = 0.0 if end_ignored else end
    if step < warmup_steps:
        return init + (peak - init) * step / (warmup_steps - warmup_short)
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
            (c.hint("warmup_length"), curve(warmup_short=True)),
            (c.hint("warmup_from_zero"), curve(warmup_from_zero=True)),
            (c.hint("end_ignored"), curve(end_ignored=True)),
        ],
    )


def call_refusing(
    c: Checker,
    answer_keys: Sequence[tuple[Any, str]],
    hint_key: str,
    fn: Callable,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """``c.call(fn, ...)``; fail with hint ``hint_key`` if ``fn`` called an answer key.

    ``answer_keys`` pairs a module with the name of a library function that solves the
    exercise (``torch.optim.Adam``, ``optax.adam``, ...). As in lab 5, only calls made
    through the module are seen (``optax.adam(...)``, not a name imported before the check).
    """
    with recording(answer_keys) as called:
        result = c.call(fn, *args, **kwargs)
    if called:
        raise c.fail(
            f"your function called the library's {called[0]}", c.hint(hint_key)
        )
    return result


def expect_function(c: Checker, value: Any, what: str) -> Callable:
    """``value`` if callable; fail with what was expected otherwise."""
    if not callable(value):
        raise c.fail(
            f"expected {what}, got {type(value).__name__}",
            "return the function itself (no call), e.g. `return schedule`",
        )
    return value
