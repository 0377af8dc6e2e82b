"""Lab 7, exercise 3: PPO's clipped policy loss, on normalised advantages, and its value loss.

:func:`ppo_inputs` draws a minibatch whose probability ratios fall well outside the clip
range for some entries; :func:`ppo_reference` computes the float64 numpy answer with a switch
per known mistake; :func:`compare_ppo` matches a result against it, and
:func:`check_ppo_loss` runs the student's code on two minibatches and two clip ranges. The
hints are :data:`helpers.labs.lab07.checks.HINTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, Framework, checking
from helpers.labs.lab07._common import _inputs, _pair

__all__ = ["check_ppo_loss", "compare_ppo", "ppo_inputs", "ppo_reference"]


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
) -> tuple[float, float]:
    """(policy loss, value loss), float64. ``value_half``: the 0.5 forgotten."""
    adv = x["advantages"].astype(np.float64)
    std = adv.std(ddof=1 if unbiased_std else 0)
    norm = adv if not_normalised else (adv - adv.mean()) / (std + 1e-8)
    log_ratio = x["new_log_probs"].astype(np.float64) - x["old_log_probs"]
    ratio = np.exp(-log_ratio if ratio_inverted else log_ratio)
    pick = np.maximum if max_not_min else np.minimum
    low, high = (-clip, clip) if clip_around_zero else (1 - clip, 1 + clip)
    if clip_swapped:  # clip(x, high, low) is high..low reversed: every entry -> low
        low, high = high, low
    clipped = ratio if no_clip else np.minimum(np.maximum(ratio, low), high)
    reduce = np.sum if sum_not_mean else np.mean
    surrogate = reduce(pick(ratio * norm, clipped * norm))
    policy = surrogate if no_negation else -surrogate
    base = x["new_values"] if target_from_new_values else x["old_values"]
    target = (norm if normalised_target else adv) + base
    value = (1.0 if value_half else 0.5) * reduce((x["new_values"] - target) ** 2)
    return float(policy), float(value)


def compare_ppo(c: Checker, got: tuple[Any, Any], x: dict, clip: float) -> None:
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
    ]
    switches = [(k, k) if isinstance(k, str) else k for k in switches]
    for i, name in enumerate(("the policy loss", "the value loss")):
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


def check_ppo_loss(student: Callable, *, fw: Framework) -> None:
    """PPO's clipped policy loss (normalised advantages) and its value loss."""
    with checking("ppo_loss", fw, passed="two minibatches, two clip ranges") as c:
        for seed, clip in ((0, 0.2), (1, 0.1)):
            x = ppo_inputs(seed)
            t = _inputs(x, fw)
            out = c.call(
                student,
                t["new_log_probs"],
                t["old_log_probs"],
                t["advantages"],
                t["old_values"],
                t["new_values"],
                clip=clip,
            )
            compare_ppo(c, _pair(c, out, ("policy_loss", "value_loss"), fw), x, clip)
