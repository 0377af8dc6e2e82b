"""Lab 7 self-checks shared by both frameworks, written once on numpy answers.

Exercises: discounted returns of a rollout with episode boundaries, generalised advantage
estimation (GAE) with the same boundaries, and PPO's clipped policy loss with its value loss.
Every answer comes from one float64 numpy reference per exercise with a switch per known
mistake (:func:`returns_reference`, :func:`gae_reference`, :func:`ppo_reference`);
``tests/labs/test_lab07.py`` asserts that the GAE reference equals ``H.rl.gae`` of both halves
and that the PPO reference equals ``H.rl.ppo_loss``, and that every mistake moves the answer
well beyond the tolerance.

The checks run the student's code on these cases in either framework (``fw``: how arrays go
in and come out); the adapters (``torch.py``, ``jax.py``) only bind their framework.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, Framework, Hints, checking

__all__ = [
    "HINTS",
    "RETURN_CASES",
    "check_gae",
    "check_ppo_loss",
    "check_returns",
    "compare_gae",
    "compare_ppo",
    "compare_returns",
    "gae_reference",
    "ppo_inputs",
    "ppo_reference",
    "returns_reference",
    "rollout",
]

HINTS = Hints(
    {
        "no_done_mask": "a return (or an advantage) must not reach across an episode end: "
        "where terminated[t] or truncated[t] is 1, step t + 1 belongs to the next episode, "
        "so multiply what flows back from t + 1 by (1 - done[t]), done = max(terminated, "
        "truncated)",
        "truncated_as_terminated": "a truncated episode was cut by the time limit, not "
        "ended by the task: bootstrap it from next_values[t] (the value of the state it "
        "stopped in); only terminated[t] means a future worth 0",
        "no_bootstrap": "the rollout stops in the middle of an episode at its last step: "
        "bootstrap that step from next_values[T - 1] instead of treating the future as 0",
        "lambda_missing": "the advantage flows back with gamma * lam: "
        "A[t] = delta[t] + gamma * lam * (1 - done[t]) * A[t + 1]",
        "max_not_min": "PPO takes the pessimistic bound: the MINIMUM of ratio * A and "
        "clip(ratio, 1 - clip, 1 + clip) * A (then the mean, negated); the maximum "
        "rewards the very steps the clip is there to stop",
        "not_normalised": "normalise the advantages first: (A - A.mean()) / (A.std() + "
        "1e-8), with the population std (numpy's default, ddof 0)",
        "target_from_new_values": "the value target is fixed by the rollout: returns = "
        "advantages + old_values (the values of the network that collected the data); "
        "built from new_values, the target moves with the network being trained",
        "normalised_target": "the value target uses the raw advantages: returns = "
        "advantages + old_values, before any normalisation (that is only for the policy "
        "term)",
        "unbiased_std": "normalise with the population std, dividing by n (ddof 0): "
        "PyTorch's advantages.std() divides by n - 1 unless you pass correction=0 "
        "(JAX's .std() already uses ddof 0)",
        "no_clip": "the surrogate takes the minimum of the unclipped ratio * A and the "
        "CLIPPED one, clip(ratio, 1 - clip, 1 + clip) * A: without the clipped term the "
        "loss keeps rewarding policy changes far outside the trust region",
        "no_negation": "the policy loss is MINUS the clipped objective: the optimizer "
        "minimises, PPO wants to maximise the surrogate",
        "truncated_ignored": "a truncated step ends its episode too: step t + 1 is the "
        "first step of a new episode, so nothing may flow back across it; bootstrap the "
        "truncated step from next_values[t] instead",
        "terminated_bootstrapped": "terminated[t] means the task ended: the future is "
        "worth 0, so no gamma * next_values[t] there (only a truncated step bootstraps)",
        "truncated_wins": "a step can be both terminated and truncated (the pole fell on "
        "the time limit's last step): then the task ended and the future is 0, so "
        "terminated must win (test it after truncated, or first with elif)",
        "not_reversed": "the loop runs from the last step back to the first: reverse "
        "what you collected (out[::-1]) so that G[0] is the first step's return",
        "stored_before_reward": "off by one step: store G[t] after adding the step's own "
        "reward, G[t] = rewards[t] + gamma * future; you stored the future before it",
        "values_shifted": "delta[t] bootstraps from next_values[t], not values[t + 1]: at "
        "an episode end values[t + 1] is the value of the NEXT episode's first state",
        "returns_from_next_values": "the critic's target is returns = advantages + values "
        "(the values of the states the steps started from), not + next_values",
        "outputs_swapped": "the two results are in the wrong order: return them in the "
        "order the exercise asks for",
        "ratio_inverted": "the ratio is pi_new / pi_old = exp(new_log_probs - "
        "old_log_probs); you computed exp(old_log_probs - new_log_probs), its inverse",
        "clip_range": "clip the ratio around 1, lower bound first: clip(ratio, 1 - clip, "
        "1 + clip) (clip is epsilon, e.g. 0.2: the range is [0.8, 1.2])",
        "sum_not_mean": "average over the minibatch with .mean(), not .sum(): the loss "
        "must not grow with the batch size",
        "value_half": "the value loss has a factor one half: 0.5 * mean((new_values - "
        "returns)**2)",
        "integer_dtype": "the result is not a float array (integers cut every value to a "
        "whole number): fill a float array, e.g. zeros_like(rewards)",
        "python_float": "return the framework's arrays, not Python floats: .item() or "
        "float(...) cuts the loss off from autodiff, so nothing could train on it",
    }
)

# Rollouts: (T, seed, where an episode terminates, where one is truncated).
RETURN_CASES = [
    dict(length=10, seed=0, terminated=(3,), truncated=(6,), gamma=0.9, lam=0.8),
    # step 9 is both terminated and truncated (the pole fell on the time limit's last step)
    dict(length=12, seed=1, terminated=(2, 9), truncated=(5, 9), gamma=0.95, lam=0.7),
]


def rollout(case: dict) -> dict[str, np.ndarray]:
    """One environment's rollout, float32: rewards, values, next_values, terminated,
    truncated (0/1), all ``(T,)``."""
    rng = np.random.default_rng(case["seed"])
    T = case["length"]
    terminated = np.zeros(T, np.float32)
    truncated = np.zeros(T, np.float32)
    terminated[list(case["terminated"])] = 1
    truncated[list(case["truncated"])] = 1
    values = rng.normal(size=T + 1).astype(np.float32)
    next_values = values[1:].copy()
    # at an episode end, next_values holds V(final observation), not V(next episode's start)
    ends = (terminated + truncated) > 0
    next_values[ends] = rng.normal(size=int(ends.sum())).astype(np.float32)
    return {
        "rewards": rng.normal(1.0, 0.5, size=T).astype(np.float32),
        "values": values[:-1],
        "next_values": next_values,
        "terminated": terminated,
        "truncated": truncated,
    }


def returns_reference(
    r: dict[str, np.ndarray],
    gamma: float,
    *,
    no_done_mask: bool = False,
    truncated_as_terminated: bool = False,
    no_bootstrap: bool = False,
    truncated_ignored: bool = False,
    terminated_bootstrapped: bool = False,
    truncated_wins: bool = False,
    stored_before_reward: bool = False,
) -> np.ndarray:
    """G[t] = r[t] + gamma * (G[t+1], or the bootstrap / 0 at an end), float64."""
    T = len(r["rewards"])
    out = np.zeros(T)
    future = 0.0
    for t in reversed(range(T)):
        terminated, truncated = bool(r["terminated"][t]), bool(r["truncated"][t])
        if truncated_as_terminated:
            terminated, truncated = terminated or truncated, False
        if truncated_ignored:
            truncated = False
        if terminated_bootstrapped:
            terminated, truncated = False, terminated or truncated
        if truncated_wins and truncated:
            terminated = False
        last = t == T - 1
        if no_done_mask and not last:
            nxt = future  # the boundary ignored
        elif terminated:
            nxt = 0.0
        elif truncated:
            nxt = r["next_values"][t]
        elif last:
            nxt = 0.0 if no_bootstrap else r["next_values"][t]
        else:
            nxt = future
        future = r["rewards"][t] + gamma * nxt
        out[t] = nxt if stored_before_reward else future
    return out


def gae_reference(
    r: dict[str, np.ndarray],
    gamma: float,
    lam: float,
    *,
    no_done_mask: bool = False,
    truncated_as_terminated: bool = False,
    lambda_missing: bool = False,
    truncated_ignored: bool = False,
    terminated_bootstrapped: bool = False,
    values_shifted: bool = False,
    returns_from_next_values: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(advantages, returns), float64; ``returns = advantages + values``."""
    v = r["values"].astype(np.float64)
    term = r["terminated"].astype(np.float64)
    done = term if truncated_ignored else np.maximum(term, r["truncated"])
    if truncated_as_terminated:
        term = done
    if terminated_bootstrapped:
        term = np.zeros_like(term)
    nv = r["next_values"].astype(np.float64)
    if values_shifted:  # values[t + 1], the rollout's last step from next_values
        nv = np.concatenate([v[1:], nv[-1:]])
    delta = r["rewards"] + gamma * nv * (1 - term) - v
    keep = np.ones_like(done) if no_done_mask else 1 - done
    decay = gamma if lambda_missing else gamma * lam
    adv = np.zeros_like(v)
    a = 0.0
    for t in reversed(range(len(v))):
        a = delta[t] + decay * keep[t] * a
        adv[t] = a
    return adv, adv + (nv if returns_from_next_values else v)


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


def compare_returns(c: Checker, got: np.ndarray, r: dict, case: dict) -> None:
    g = case["gamma"]
    right = returns_reference(r, g)
    switches = [
        "no_done_mask",
        "truncated_as_terminated",
        "no_bootstrap",
        "truncated_ignored",
        "terminated_bootstrapped",
        "truncated_wins",
        "stored_before_reward",
    ]
    mistakes = [(c.hint(k), returns_reference(r, g, **{k: True})) for k in switches]
    c.close(
        got,
        right,
        what="the return G[t]",
        rtol=1e-4,
        atol=1e-5,
        hint="work backwards from the last step: G[t] = rewards[t] + gamma * future, where "
        "future is G[t + 1] inside an episode, 0 after terminated[t], and next_values[t] "
        "after truncated[t] or at the rollout's last step",
        mistakes=[*mistakes, (c.hint("not_reversed"), right[::-1])],
    )


def compare_gae(
    c: Checker, got: tuple[np.ndarray, np.ndarray], r: dict, case: dict
) -> None:
    g, lam = case["gamma"], case["lam"]
    right = gae_reference(r, g, lam)
    switches = [
        "no_done_mask",
        "truncated_as_terminated",
        "lambda_missing",
        "truncated_ignored",
        "terminated_bootstrapped",
        "values_shifted",
        "returns_from_next_values",
    ]
    for i, name in enumerate(("advantages", "returns")):
        mistakes = [
            (c.hint(k), gae_reference(r, g, lam, **{k: True})[i]) for k in switches
        ]
        # a mistake that leaves this result unchanged must not take the hint
        mistakes = [(h, w) for h, w in mistakes if not np.allclose(w, right[i])]
        c.close(
            got[i],
            right[i],
            what=name,
            rtol=1e-4,
            atol=1e-5,
            hint="delta[t] = rewards[t] + gamma * next_values[t] * (1 - terminated[t]) - "
            "values[t]; A[t] = delta[t] + gamma * lam * (1 - done[t]) * A[t + 1] from the "
            "last step backwards (A after the last step is 0); returns = A + values",
            mistakes=[(c.hint("outputs_swapped"), right[1 - i]), *mistakes],
        )


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


def _inputs(arrays: dict[str, np.ndarray], fw: Framework) -> dict[str, Any]:
    """The case's arrays in the student's framework (copies: the references stay intact)."""
    return {k: fw.from_numpy(v.copy()) for k, v in arrays.items()}


def _array(c: Checker, value: Any, what: str, fw: Framework) -> np.ndarray:
    """``value`` as numpy; a Python float (``.item()``) fails with its own hint."""
    if isinstance(value, float):
        raise c.fail(
            f"expected {fw.array_type} for {what}, got float", c.hint("python_float")
        )
    arr = c.array(value, f"{fw.array_type} for {what}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise c.fail(
            f"{what} has dtype {arr.dtype}, expected a float dtype",
            c.hint("integer_dtype"),
        )
    return arr


def _pair(c: Checker, out: Any, names: tuple[str, str], fw: Framework) -> tuple:
    """The two arrays of a ``(a, b)`` answer as numpy, or a failure that says what to return."""
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise c.fail(
            f"expected a tuple ({names[0]}, {names[1]}), got {type(out).__name__}",
            f"return both: return {names[0]}, {names[1]}",
        )
    return tuple(_array(c, x, n, fw) for x, n in zip(out, names, strict=True))


def check_returns(student: Callable, *, fw: Framework) -> None:
    """Discounted returns with terminated / truncated episode ends and a bootstrap."""
    with checking(
        "discounted_returns", fw, passed="two rollouts with episode ends"
    ) as c:
        for case in RETURN_CASES:
            r = rollout(case)
            t = _inputs(r, fw)
            out = c.call(
                student,
                t["rewards"],
                t["terminated"],
                t["truncated"],
                t["next_values"],
                gamma=case["gamma"],
            )
            if isinstance(out, list | tuple) and len(out) == len(r["rewards"]):
                raise c.fail(
                    f"expected {fw.array_type}, got a {type(out).__name__} of "
                    f"{len(out)} values",
                    "turn the per-step values into one array: stack them (reversed "
                    "back into time order if you collected them from the last step)",
                )
            compare_returns(c, _array(c, out, "the returns", fw), r, case)


def check_gae(student: Callable, *, fw: Framework) -> None:
    """GAE advantages and value targets with terminated / truncated episode ends."""
    with checking("gae", fw, passed="two rollouts with episode ends") as c:
        for case in RETURN_CASES:
            r = rollout(case)
            t = _inputs(r, fw)
            out = c.call(
                student,
                t["rewards"],
                t["values"],
                t["next_values"],
                t["terminated"],
                t["truncated"],
                gamma=case["gamma"],
                lam=case["lam"],
            )
            compare_gae(c, _pair(c, out, ("advantages", "returns"), fw), r, case)


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
