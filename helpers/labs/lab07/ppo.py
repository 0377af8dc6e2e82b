"""Lab 7, exercise 3: PPO's clipped policy loss, on normalised advantages, and its value loss.

:func:`ppo_inputs` draws a minibatch whose probability ratios fall well outside the clip
range for some entries; :func:`ppo_reference` computes the float64 numpy answer with a switch
per known mistake, and :func:`ppo_gradients` the gradients the losses must have;
:func:`compare_ppo` matches a result against it, and :func:`check_ppo_loss` runs the
student's code on two minibatches and two clip ranges, then asks the framework (``gradients``,
from the adapter) for the losses' gradients with respect to ``new_log_probs`` and
``new_values``: a loss cut from autodiff (``.detach()``, a NumPy round trip) gives the right
numbers but trains nothing. The hints are :data:`helpers.labs.lab07.checks.HINTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, Framework, checking
from helpers.labs.lab07._common import _inputs, _pair, _unchanged

__all__ = [
    "PPO_ARGS",
    "Gradients",
    "check_ppo_loss",
    "compare_gradients",
    "compare_ppo",
    "ppo_gradients",
    "ppo_inputs",
    "ppo_reference",
]

# The adapter's way to differentiate the student's losses: (checker, student, the case's
# arrays, clip) -> (d policy_loss / d new_log_probs, d value_loss / d new_values) as numpy.
Gradients = Callable[[Checker, Callable, dict[str, np.ndarray], float], tuple]

# The student's ppo_loss takes these arrays, in this order (then clip=...).
PPO_ARGS = ("new_log_probs", "old_log_probs", "advantages", "old_values", "new_values")


def ppo_inputs(seed: int) -> dict[str, np.ndarray]:
    """A minibatch of 16: log-probabilities, advantages and values, float32."""
    rng = np.random.default_rng(seed)
    old = np.log(rng.uniform(0.2, 0.8, 16))
    new = old + rng.normal(0, 0.4, 16)  # ratios well outside [0.8, 1.2] for some
    return {
        "new_log_probs": new.astype(np.float32),
        "old_log_probs": old.astype(np.float32),
        "advantages": rng.normal(0.5, 2.0, 16).astype(np.float32),
        "old_values": rng.normal(size=16).astype(np.float32),
        "new_values": rng.normal(size=16).astype(np.float32),
    }


def ppo_reference(
    x: dict[str, np.ndarray],
    clip: float,
    *,
    max_not_min: bool = False,
    not_normalised: bool = False,
    target_from_new_values: bool = False,
    normalised_target: bool = False,
    no_negation: bool = False,
    unbiased_std: bool = False,
    no_clip: bool = False,
    ratio_inverted: bool = False,
    clip_swapped: bool = False,
    clip_around_zero: bool = False,
    sum_not_mean: bool = False,
    value_half: bool = False,
    ratio_divided: bool = False,
    ratio_no_exp: bool = False,
    clip_advantages: bool = False,
    clip_product: bool = False,
    not_centred: bool = False,
    var_not_std: bool = False,
    value_clipped: bool = False,
    target_without_values: bool = False,
) -> tuple[float, float]:
    """(policy loss, value loss), float64. ``value_half``: the 0.5 forgotten.

    ``ratio_divided`` / ``ratio_no_exp``: new / old or new - old log-probabilities as the
    ratio; ``clip_advantages`` / ``clip_product``: clip(A) or clip(ratio * A) in the clipped
    term; ``not_centred``: A / std; ``var_not_std``: (A - mean) / var; ``value_clipped``: PPO2's
    clipped value loss; ``target_without_values``: the advantages alone as the target.
    """
    adv = x["advantages"].astype(np.float64)
    std = adv.std(ddof=1 if unbiased_std else 0)
    if var_not_std:
        std = adv.var()
    norm = adv if not_normalised else (adv - adv.mean()) / (std + 1e-8)
    if not_centred:
        norm = adv / (std + 1e-8)
    new, old = x["new_log_probs"].astype(np.float64), x["old_log_probs"]
    log_ratio = new - old
    ratio = np.exp(-log_ratio if ratio_inverted else log_ratio)
    if ratio_divided or ratio_no_exp:
        ratio = new / old if ratio_divided else log_ratio
    pick = np.maximum if max_not_min else np.minimum
    low, high = (-clip, clip) if clip_around_zero else (1 - clip, 1 + clip)
    if clip_swapped:  # clip(x, high, low) is high..low reversed: every entry -> low
        low, high = high, low
    clipped = ratio if no_clip else np.minimum(np.maximum(ratio, low), high)
    clipped_term = clipped * norm
    if clip_advantages or clip_product:
        inner = norm if clip_advantages else ratio * norm
        clipped_term = np.clip(inner, low, high) * (ratio if clip_advantages else 1)
    reduce = np.sum if sum_not_mean else np.mean
    surrogate = reduce(pick(ratio * norm, clipped_term))
    policy = surrogate if no_negation else -surrogate
    base = x["new_values"] if target_from_new_values else x["old_values"]
    target = (norm if normalised_target else adv) + base
    if target_without_values:
        target = adv
    squared = (x["new_values"] - target) ** 2
    if value_clipped:  # PPO2: old_values + clip(new - old, -clip, clip)
        moved = x["old_values"] + np.clip(
            x["new_values"] - x["old_values"], -clip, clip
        )
        squared = np.maximum(squared, (moved - target) ** 2)
    value = (1.0 if value_half else 0.5) * reduce(squared)
    return float(policy), float(value)


def ppo_gradients(
    x: dict[str, np.ndarray], clip: float
) -> tuple[np.ndarray, np.ndarray]:
    """(d policy loss / d new_log_probs, d value loss / d new_values), float64.

    An entry of the surrogate passes its gradient, ratio * A_n, only where the minimum takes
    the unclipped term (inside the clip range both are the same); the clipped term is a
    constant there.
    """
    adv = x["advantages"].astype(np.float64)
    norm = (adv - adv.mean()) / (adv.std() + 1e-8)
    ratio = np.exp(x["new_log_probs"].astype(np.float64) - x["old_log_probs"])
    clipped = np.clip(ratio, 1 - clip, 1 + clip)
    inside = (ratio > 1 - clip) & (ratio < 1 + clip)
    passes = inside | (ratio * norm < clipped * norm)
    n = len(adv)
    policy = -np.where(passes, ratio * norm, 0.0) / n
    value = (x["new_values"] - (adv + x["old_values"])) / n
    return policy, value


def compare_ppo(c: Checker, got: tuple[Any, Any], x: dict, clip: float) -> None:
    """The two losses (``got``, numpy) against :func:`ppo_reference`, with its mistakes."""
    right = ppo_reference(x, clip)
    switches = [
        "max_not_min",
        "not_normalised",
        "no_negation",
        "unbiased_std",
        "no_clip",
        "ratio_inverted",
        ("clip_range", "clip_swapped"),
        ("clip_range", "clip_around_zero"),
        "sum_not_mean",
        "target_from_new_values",
        "normalised_target",
        "value_half",
        ("ratio_of_logs", "ratio_divided"),
        ("ratio_of_logs", "ratio_no_exp"),
        ("clip_what", "clip_advantages"),
        ("clip_what", "clip_product"),
        "not_centred",
        "var_not_std",
        "value_clipped",
        "target_without_values",
    ]
    switches = [(k, k) if isinstance(k, str) else k for k in switches]
    for i, name in enumerate(("the policy loss", "the value loss")):
        if np.shape(got[i]) != ():
            raise c.fail(
                f"{name} has shape {np.shape(got[i])}, expected () (one number)",
                c.hint("loss_shape"),
            )
        mistakes = [
            (c.hint(k), ppo_reference(x, clip, **{sw: True})[i]) for k, sw in switches
        ]
        # a mistake that leaves this term unchanged must not take the hint
        mistakes = [(h, w) for h, w in mistakes if not np.isclose(w, right[i])]
        c.close(
            got[i],
            right[i],
            what=name,
            rtol=1e-4,
            atol=1e-5,
            hint="policy: -mean(min(ratio * A_n, clip(ratio, 1 - clip, 1 + clip) * A_n)), "
            "ratio = exp(new_log_probs - old_log_probs), A_n the normalised advantages; "
            "value: 0.5 * mean((new_values - (advantages + old_values))**2)",
            mistakes=[(c.hint("outputs_swapped"), right[1 - i]), *mistakes],
        )


def compare_gradients(c: Checker, got: tuple, x: dict, clip: float) -> None:
    """The losses' gradients (``got``, numpy) against :func:`ppo_gradients`."""
    names = (("policy", "new_log_probs"), ("value", "new_values"))
    for (name, w), g, right in zip(names, got, ppo_gradients(x, clip), strict=True):
        c.close(
            g,
            right,
            what=f"d {name}_loss / d {w}",
            rtol=1e-4,
            atol=1e-5,
            hint=c.hint("partly_detached"),
            mistakes=[(c.hint("not_differentiable"), np.zeros_like(right))],
        )


def check_ppo_loss(
    student: Callable, *, fw: Framework, gradients: Gradients | None = None
) -> None:
    """PPO's clipped policy loss (normalised advantages) and its value loss.

    With ``gradients`` (each adapter passes its framework's), the losses must also have the
    right gradients with respect to ``new_log_probs`` and ``new_values``.
    """
    with checking(
        "ppo_loss", fw, passed="two minibatches, two clip ranges, gradients"
    ) as c:
        for seed, clip in ((0, 0.2), (1, 0.1)):
            x = ppo_inputs(seed)
            t = _inputs(x, fw)
            out = c.call(student, *(t[k] for k in PPO_ARGS), clip=clip)
            _unchanged(c, t, x, fw)
            compare_ppo(c, _pair(c, out, ("policy_loss", "value_loss"), fw), x, clip)
            if gradients is not None:
                compare_gradients(c, gradients(c, student, x, clip), x, clip)
