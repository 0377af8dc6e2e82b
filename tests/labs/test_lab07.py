"""Lab 7's typical mistakes: each one fails its check with the hint written for it.

``MISTAKES`` lists, per framework, (exercise, a wrong solution, the key of the hint it must get).
Every hint the lab declares must be produced by at least one entry.

Also here: the numpy references of ``helpers/labs/lab07/checks.py`` equal the chapter's
``H.rl.gae`` and ``H.rl.ppo_loss`` in both frameworks on the checks' cases, and every
mistake moves the answer beyond the checks' tolerance.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from labtools import mistake_table_tests

from helpers.jax import rl as jrl
from helpers.labs.lab07 import checks as lab07
from helpers.torch import rl as trl

# Both frameworks' mistakes are written once, over these few operations.
OPS = {
    "pytorch": dict(
        stack=torch.stack,
        maximum=torch.maximum,
        minimum=torch.minimum,
        clip=torch.clamp,
        exp=torch.exp,
        std=lambda a: a.std(correction=0),
        unbiased_std=lambda a: a.std(),  # PyTorch's default: n - 1
        zero=lambda: torch.zeros(()),
    ),
    "jax": dict(
        stack=jnp.stack,
        maximum=jnp.maximum,
        minimum=jnp.minimum,
        clip=jnp.clip,
        exp=jnp.exp,
        std=lambda a: a.std(),
        unbiased_std=lambda a: a.std(ddof=1),
        zero=lambda: jnp.zeros(()),
    ),
}


def _returns(fw, *, mask=True, trunc_is_term=False, bootstrap=True):
    op = OPS[fw]

    def discounted_returns(rewards, terminated, truncated, next_values, *, gamma):
        future = next_values[-1] if bootstrap else op["zero"]()
        out = []
        for t in reversed(range(len(rewards))):
            if mask:
                if truncated[t] and not trunc_is_term:
                    future = next_values[t]
                if terminated[t] or (truncated[t] and trunc_is_term):
                    future = op["zero"]()
            future = rewards[t] + gamma * future
            out.append(future)
        return op["stack"](out[::-1])

    return discounted_returns


def _gae(fw, *, mask=True, trunc_is_term=False, use_lambda=True):
    op = OPS[fw]

    def gae(rewards, values, next_values, terminated, truncated, *, gamma, lam):
        done = op["maximum"](terminated, truncated)
        stop = done if trunc_is_term else terminated
        delta = rewards + gamma * next_values * (1 - stop) - values
        decay = gamma * lam if use_lambda else gamma
        a, out = op["zero"](), []
        for t in reversed(range(len(rewards))):
            a = delta[t] + decay * ((1 - done[t]) if mask else 1.0) * a
            out.append(a)
        adv = op["stack"](out[::-1])
        return adv, adv + values

    return gae


def _ppo(
    fw, *, pick="min", normalise=True, target="old", negate=True, ddof=0, clipped=True
):
    op = OPS[fw]
    std = op["std"] if ddof == 0 else op["unbiased_std"]

    def ppo_loss(
        new_log_probs, old_log_probs, advantages, old_values, new_values, *, clip
    ):
        adv = advantages
        if normalise:
            adv = (advantages - advantages.mean()) / (std(advantages) + 1e-8)
        ratio = op["exp"](new_log_probs - old_log_probs)
        limited = op["clip"](ratio, 1 - clip, 1 + clip) if clipped else ratio
        both = (ratio * adv, limited * adv)
        surrogate = (op["minimum"] if pick == "min" else op["maximum"])(*both).mean()
        base = {"old": old_values, "new": new_values}[target.split("+")[0]]
        returns = (adv if target.endswith("+norm") else advantages) + base
        value_loss = 0.5 * ((new_values - returns) ** 2).mean()
        return (-surrogate if negate else surrogate), value_loss

    return ppo_loss


def _table(fw):
    return [
        ("discounted_returns", _returns(fw, mask=False), "no_done_mask"),
        (
            "discounted_returns",
            _returns(fw, trunc_is_term=True),
            "truncated_as_terminated",
        ),
        ("discounted_returns", _returns(fw, bootstrap=False), "no_bootstrap"),
        ("gae", _gae(fw, mask=False), "no_done_mask"),
        ("gae", _gae(fw, trunc_is_term=True), "truncated_as_terminated"),
        ("gae", _gae(fw, use_lambda=False), "lambda_missing"),
        ("ppo_loss", _ppo(fw, pick="max"), "max_not_min"),
        ("ppo_loss", _ppo(fw, normalise=False), "not_normalised"),
        ("ppo_loss", _ppo(fw, target="new"), "target_from_new_values"),
        ("ppo_loss", _ppo(fw, target="old+norm"), "normalised_target"),
        ("ppo_loss", _ppo(fw, negate=False), "no_negation"),
        ("ppo_loss", _ppo(fw, ddof=1), "unbiased_std"),
        ("ppo_loss", _ppo(fw, clipped=False), "no_clip"),
    ]


MISTAKES = {"pytorch": _table("pytorch"), "jax": _table("jax")}

(
    test_mistake_fails_with_its_hint,
    test_at_least_two_mistakes_per_exercise,
    test_every_declared_hint_is_produced_by_a_mistake,
) = mistake_table_tests("lab07", MISTAKES)


# ---------------------------------------------------------------- references == the chapter


@pytest.mark.parametrize("fw", ["torch", "jax"])
@pytest.mark.parametrize("case", lab07.RETURN_CASES, ids=["case0", "case1"])
def test_gae_reference_equals_the_chapters_gae(case, fw):
    """H.rl.gae folds a truncated episode's bootstrap into its last reward; same answer."""
    r = lab07.rollout(case)
    done = np.maximum(r["terminated"], r["truncated"])
    rewards = r["rewards"] + case["gamma"] * r["next_values"] * r["truncated"]
    args = (
        rewards[:, None],
        r["values"][:, None],
        done[:, None],
        r["next_values"][-1:],
    )
    conv, mod = (torch.as_tensor, trl) if fw == "torch" else (jnp.asarray, jrl)
    adv, ret = mod.gae(*map(conv, args), gamma=case["gamma"], gae_lambda=case["lam"])
    want_adv, want_ret = lab07.gae_reference(r, case["gamma"], case["lam"])
    np.testing.assert_allclose(np.asarray(adv)[:, 0], want_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ret)[:, 0], want_ret, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fw", ["torch", "jax"])
@pytest.mark.parametrize("seed", [0, 1])
def test_ppo_reference_equals_the_chapters_loss(seed, fw):
    x = lab07.ppo_inputs(seed)
    # A stand-in model: uniform logits over 2 actions (log-prob log 0.5 for action 0), so the
    # ratio is exp(new - old) when the batch's old log-prob is log 0.5 - (new - old).
    conv = torch.as_tensor if fw == "torch" else jnp.asarray
    zeros = np.zeros((16, 2), np.float32)
    batch = {
        "obs": conv(np.zeros((16, 4), np.float32)),
        "actions": conv(np.zeros(16, np.int64 if fw == "torch" else np.int32)),
        "log_probs": conv(np.log(0.5) - (x["new_log_probs"] - x["old_log_probs"])),
        "advantages": conv(x["advantages"]),
        "returns": conv(x["advantages"] + x["old_values"]),
    }

    def model(obs):
        return conv(zeros), conv(x["new_values"])

    mod = trl if fw == "torch" else jrl
    _, parts = mod.ppo_loss(model, batch, clip=0.2, entropy_coef=0.0, value_coef=0.5)
    policy, value = lab07.ppo_reference(x, 0.2)
    assert float(parts["policy_loss"]) == pytest.approx(policy, rel=1e-4)
    assert float(parts["value_loss"]) == pytest.approx(value, rel=1e-4)


def test_every_mistake_moves_the_answer_beyond_the_tolerance():
    for case in lab07.RETURN_CASES:
        r = lab07.rollout(case)
        right = lab07.returns_reference(r, case["gamma"])
        for sw in ("no_done_mask", "truncated_as_terminated", "no_bootstrap"):
            wrong = lab07.returns_reference(r, case["gamma"], **{sw: True})
            assert np.abs(wrong - right).max() > 1e-2, sw
        right = lab07.gae_reference(r, case["gamma"], case["lam"])[0]
        for sw in ("no_done_mask", "truncated_as_terminated", "lambda_missing"):
            wrong = lab07.gae_reference(r, case["gamma"], case["lam"], **{sw: True})[0]
            assert np.abs(wrong - right).max() > 1e-2, sw
    # PPO: over the check's two (minibatch, clip) cases; the checks' rtol is 1e-4.
    cases = [(lab07.ppo_inputs(seed), clip) for seed, clip in ((0, 0.2), (1, 0.1))]
    right = np.array([lab07.ppo_reference(x, clip) for x, clip in cases])
    for sw in (
        "max_not_min",
        "not_normalised",
        "target_from_new_values",
        "normalised_target",
        "no_negation",
        "unbiased_std",
        "no_clip",
    ):
        wrong = np.array([lab07.ppo_reference(x, c, **{sw: True}) for x, c in cases])
        assert np.abs(wrong - right).max() > 1e-3, sw
