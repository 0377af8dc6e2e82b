"""Lab 7, exercises 1 and 2: discounted returns, then GAE advantages and their value targets.

Both run on the same rollouts (:data:`RETURN_CASES`, built by :func:`rollout`), whose
episodes end by termination (the future is worth 0), by truncation (bootstrap from
``next_values``) and, once, by both on the same step; the last rollout ends with its episode
(terminated on its last step) and starts with a one-step episode. :func:`returns_reference` and
:func:`gae_reference` compute the float64 numpy answers, with a switch per known mistake;
:func:`compare_returns` and :func:`compare_gae` match a result against them, and
:func:`check_returns` and :func:`check_gae` run the student's code. The hints are
:data:`helpers.labs.lab07.checks.HINTS`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.labs.kit import Checker, Framework, checking
from helpers.labs.lab07._common import _array, _inputs, _pair, _unchanged

__all__ = [
    "GAE_MISTAKES",
    "RETURN_CASES",
    "RETURN_MISTAKES",
    "check_gae",
    "check_returns",
    "compare_gae",
    "compare_returns",
    "gae_reference",
    "returns_reference",
    "rollout",
]

# Rollouts: (T, seed, where an episode terminates, where one is truncated).
RETURN_CASES = [
    dict(length=10, seed=0, terminated=(3,), truncated=(6,), gamma=0.9, lam=0.8),
    # step 9 is both terminated and truncated (the pole fell on the time limit's last step)
    dict(length=12, seed=1, terminated=(2, 9), truncated=(5, 9), gamma=0.95, lam=0.7),
    # the rollout stops where an episode terminates: no bootstrap at its last step
    dict(length=9, seed=2, terminated=(0, 8), truncated=(4,), gamma=0.9, lam=0.85),
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
    last_overrides_end: bool = False,
    done_sum: bool = False,
    discounted_reward: bool = False,
    skip_first: bool = False,
    forward: bool = False,
) -> np.ndarray:
    """G[t] = r[t] + gamma * (G[t+1], or the bootstrap / 0 at an end), float64.

    ``last_overrides_end``: the last step bootstraps even when it ended; ``done_sum``: the
    masks ``truncated * next_values + (1 - terminated - truncated) * future``, -1 where both
    are set; ``discounted_reward``: ``gamma * (r[t] + future)``; ``skip_first``: the loop
    stops before step 0 (left at 0); ``forward``: the same steps from t = 0 up (a
    ``lax.scan`` without ``reverse=True``), the bootstrap first.
    """
    T = len(r["rewards"])
    out = np.zeros(T)
    future = 0.0
    steps = range(T) if forward else range(T - 1, -1, -1)
    for t in steps:
        terminated, truncated = bool(r["terminated"][t]), bool(r["truncated"][t])
        if truncated_as_terminated:
            terminated, truncated = terminated or truncated, False
        if truncated_ignored:
            truncated = False
        if terminated_bootstrapped:
            terminated, truncated = False, terminated or truncated
        if truncated_wins and truncated:
            terminated = False
        last = t == steps[0]  # the first step visited starts from the bootstrap
        if no_done_mask and not last:
            nxt = future  # the boundary ignored
        elif last_overrides_end and last:
            nxt = r["next_values"][t]
        elif done_sum:
            boot = r["next_values"][-1] if last else future
            nxt = truncated * r["next_values"][t] + (1 - terminated - truncated) * boot
        elif terminated:
            nxt = 0.0
        elif truncated:
            nxt = r["next_values"][t]
        elif last:
            nxt = 0.0 if no_bootstrap else r["next_values"][-1]
        else:
            nxt = future
        if discounted_reward:
            future = gamma * (r["rewards"][t] + nxt)
        else:
            future = r["rewards"][t] + gamma * nxt
        out[t] = nxt if stored_before_reward else future
    if skip_first:
        out[0] = 0.0
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
    done_sum: bool = False,
    mask_shifted: bool = False,
    stored_before: bool = False,
    normalised: int | None = None,
    forward: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(advantages, returns), float64; ``returns = advantages + values``.

    ``done_sum``: ``1 - (terminated + truncated)``, -1 where both are set; ``mask_shifted``:
    ``A[t]`` cut by ``done[t + 1]`` (CleanRL's convention); ``stored_before``: ``A[t]`` holds
    ``A[t + 1]``; ``normalised``: the advantages normalised with this ddof (the target too);
    ``forward``: the recursion run from t = 0 up, ``A[t]`` from ``A[t - 1]``.
    """
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
    if done_sum:
        keep = 1 - (r["terminated"] + r["truncated"]).astype(np.float64)
    if mask_shifted:
        keep = np.concatenate([keep[1:], [1.0]])
    decay = gamma if lambda_missing else gamma * lam
    adv = np.zeros_like(v)
    a = 0.0
    for t in range(len(v)) if forward else reversed(range(len(v))):
        if stored_before:
            adv[t] = a
        a = delta[t] + decay * keep[t] * a
        if not stored_before:
            adv[t] = a
    if normalised is not None:
        adv = (adv - adv.mean()) / (adv.std(ddof=normalised) + 1e-8)
    return adv, adv + (nv if returns_from_next_values else v)


# The known mistakes the checks recognise: (hint key, the reference's switch for it).
RETURN_MISTAKES: list[tuple[str, str]] = [
    *((k, k) for k in (
        "no_done_mask", "truncated_as_terminated", "no_bootstrap", "truncated_ignored",
        "terminated_bootstrapped", "truncated_wins", "stored_before_reward",
        "last_overrides_end", "done_sum", "discounted_reward",
    )),
    ("step_skipped", "skip_first"),
    ("forward", "forward"),
]  # fmt: skip
GAE_MISTAKES: list[tuple[str, dict]] = [
    *((k, {k: True}) for k in (
        "no_done_mask", "truncated_as_terminated", "lambda_missing", "truncated_ignored",
        "terminated_bootstrapped", "values_shifted", "returns_from_next_values", "done_sum",
        "mask_shifted",
    )),
    ("gae_stored_before", {"stored_before": True}),
    ("forward", {"forward": True}),
    *(("normalised_in_gae", {"normalised": ddof}) for ddof in (0, 1)),
]  # fmt: skip


def compare_returns(c: Checker, got: np.ndarray, r: dict, case: dict) -> None:
    """The returns (``got``, numpy) against :func:`returns_reference`, with its mistakes."""
    g = case["gamma"]
    right = returns_reference(r, g)
    mistakes = [
        (c.hint(k), returns_reference(r, g, **{sw: True})) for k, sw in RETURN_MISTAKES
    ]
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
    """(advantages, returns) (``got``, numpy) against :func:`gae_reference`."""
    g, lam = case["gamma"], case["lam"]
    right = gae_reference(r, g, lam)
    for i, name in enumerate(("advantages", "returns")):
        mistakes = [
            (c.hint(k), gae_reference(r, g, lam, **sw)[i]) for k, sw in GAE_MISTAKES
        ]
        if i == 1:  # right advantages, and exercise 1's return as the target
            mistakes.insert(0, (c.hint("returns_monte_carlo"), returns_reference(r, g)))
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


def check_returns(student: Callable, *, fw: Framework) -> None:
    """Discounted returns with terminated / truncated episode ends and a bootstrap."""
    with checking(
        "discounted_returns", fw, passed="three rollouts with episode ends"
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
            _unchanged(c, t, r, fw)
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
    with checking("gae", fw, passed="three rollouts with episode ends") as c:
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
            _unchanged(c, t, r, fw)
            compare_gae(c, _pair(c, out, ("advantages", "returns"), fw), r, case)
