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
    }
)

# Rollouts: (T, seed, where an episode terminates, where one is truncated).
RETURN_CASES = [
    dict(length=10, seed=0, terminated=(3,), truncated=(6,), gamma=0.9, lam=0.8),
    dict(length=12, seed=1, terminated=(2, 9), truncated=(5,), gamma=0.95, lam=0.7),
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
) -> np.ndarray:
    """G[t] = r[t] + gamma * (G[t+1], or the bootstrap / 0 at an end), float64."""
    T = len(r["rewards"])
    out = np.zeros(T)
    future = 0.0
    for t in reversed(range(T)):
        truncated = bool(r["truncated"][t])
        terminated = bool(r["terminated"][t]) or (truncated and truncated_as_terminated)
        truncated = truncated and not truncated_as_terminated
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
        out[t] = future
    return out


def gae_reference(
    r: dict[str, np.ndarray],
    gamma: float,
    lam: float,
    *,
    no_done_mask: bool = False,
    truncated_as_terminated: bool = False,
    lambda_missing: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(advantages, returns), float64; ``returns = advantages + values``."""
    v = r["values"].astype(np.float64)
    term = r["terminated"].astype(np.float64)
    done = np.maximum(term, r["truncated"])
    if truncated_as_terminated:
        term = done
    delta = r["rewards"] + gamma * r["next_values"] * (1 - term) - v
    keep = np.ones_like(done) if no_done_mask else 1 - done
    decay = gamma if lambda_missing else gamma * lam
    adv = np.zeros_like(v)
    a = 0.0
    for t in reversed(range(len(v))):
        a = delta[t] + decay * keep[t] * a
        adv[t] = a
    return adv, adv + v


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
) -> tuple[float, float]:
    """(policy loss, value loss), float64."""
    adv = x["advantages"].astype(np.float64)
    std = adv.std(ddof=1 if unbiased_std else 0)
    norm = adv if not_normalised else (adv - adv.mean()) / (std + 1e-8)
    ratio = np.exp(x["new_log_probs"].astype(np.float64) - x["old_log_probs"])
    pick = np.maximum if max_not_min else np.minimum
    clipped = ratio if no_clip else np.clip(ratio, 1 - clip, 1 + clip)
    surrogate = pick(ratio * norm, clipped * norm).mean()
    policy = surrogate if no_negation else -surrogate
    base = x["new_values"] if target_from_new_values else x["old_values"]
    target = (norm if normalised_target else adv) + base
    value = 0.5 * np.mean((x["new_values"] - target) ** 2)
    return float(policy), float(value)


def compare_returns(c: Checker, got: np.ndarray, r: dict, case: dict) -> None:
    g = case["gamma"]
    c.close(
        got,
        returns_reference(r, g),
        what="the return G[t]",
        rtol=1e-4,
        atol=1e-5,
        hint="work backwards from the last step: G[t] = rewards[t] + gamma * future, where "
        "future is G[t + 1] inside an episode, 0 after terminated[t], and next_values[t] "
        "after truncated[t] or at the rollout's last step",
        mistakes=[
            (c.hint("no_done_mask"), returns_reference(r, g, no_done_mask=True)),
            (
                c.hint("truncated_as_terminated"),
                returns_reference(r, g, truncated_as_terminated=True),
            ),
            (c.hint("no_bootstrap"), returns_reference(r, g, no_bootstrap=True)),
        ],
    )


def compare_gae(
    c: Checker, got: tuple[np.ndarray, np.ndarray], r: dict, case: dict
) -> None:
    g, lam = case["gamma"], case["lam"]
    right = gae_reference(r, g, lam)
    switches = [
        ("no_done_mask", dict(no_done_mask=True)),
        ("truncated_as_terminated", dict(truncated_as_terminated=True)),
        ("lambda_missing", dict(lambda_missing=True)),
    ]
    for i, name in enumerate(("advantages", "returns")):
        c.close(
            got[i],
            right[i],
            what=name,
            rtol=1e-4,
            atol=1e-5,
            hint="delta[t] = rewards[t] + gamma * next_values[t] * (1 - terminated[t]) - "
            "values[t]; A[t] = delta[t] + gamma * lam * (1 - done[t]) * A[t + 1] from the "
            "last step backwards (A after the last step is 0); returns = A + values",
            mistakes=[
                (c.hint(key), gae_reference(r, g, lam, **sw)[i]) for key, sw in switches
            ],
        )


def compare_ppo(c: Checker, got: tuple[Any, Any], x: dict, clip: float) -> None:
    right = ppo_reference(x, clip)
    switches = [
        ("max_not_min", dict(max_not_min=True)),
        ("not_normalised", dict(not_normalised=True)),
        ("no_negation", dict(no_negation=True)),
        ("unbiased_std", dict(unbiased_std=True)),
        ("no_clip", dict(no_clip=True)),
        ("target_from_new_values", dict(target_from_new_values=True)),
        ("normalised_target", dict(normalised_target=True)),
    ]
    for i, name in enumerate(("the policy loss", "the value loss")):
        mistakes = [(c.hint(k), ppo_reference(x, clip, **sw)[i]) for k, sw in switches]
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
            mistakes=mistakes,
        )


def _inputs(arrays: dict[str, np.ndarray], fw: Framework) -> dict[str, Any]:
    """The case's arrays in the student's framework (copies: the references stay intact)."""
    return {k: fw.from_numpy(v.copy()) for k, v in arrays.items()}


def _pair(c: Checker, out: Any, names: tuple[str, str], fw: Framework) -> tuple:
    """The two arrays of a ``(a, b)`` answer as numpy, or a failure that says what to return."""
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise c.fail(
            f"expected a tuple ({names[0]}, {names[1]}), got {type(out).__name__}",
            f"return both: return {names[0]}, {names[1]}",
        )
    return tuple(
        c.array(x, f"{fw.array_type} for {n}") for x, n in zip(out, names, strict=True)
    )


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
            compare_returns(c, c.array(out), r, case)


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
