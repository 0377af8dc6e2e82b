"""Lab 7 self-checks for JAX notebooks: ``H.lab07.check_returns(discounted_returns)`` etc.

The checks are :mod:`helpers.labs.lab07.checks`, shared with PyTorch; this module calls the
student's functions on float32 jax arrays and hands the results over as numpy.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from helpers.jax.labkit import lab_framework
from helpers.labs.kit import Checker, Hints, checking, explainer
from helpers.labs.lab07 import checks as lab07

__all__ = ["check_gae", "check_ppo_loss", "check_returns"]

# JAX adds no known mistakes of its own to this lab.
HINTS = Hints(lab07.HINTS, {})

JAX = lab_framework(HINTS, explainer({}, HINTS))


def _tensors(arrays: dict) -> dict[str, jnp.ndarray]:
    return {k: jnp.asarray(v) for k, v in arrays.items()}


def _pair(c: Checker, out: Any, names: tuple[str, str]) -> tuple:
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise c.fail(
            f"expected a tuple ({names[0]}, {names[1]}), got {type(out).__name__}",
            f"return both: return {names[0]}, {names[1]}",
        )
    return tuple(
        c.array(x, f"a jax.Array for {n}") for x, n in zip(out, names, strict=True)
    )


def check_returns(student: Any) -> None:
    """Discounted returns with terminated / truncated episode ends and a bootstrap."""
    with checking(
        "discounted_returns", JAX, passed="two rollouts with episode ends"
    ) as c:
        for case in lab07.RETURN_CASES:
            r = lab07.rollout(case)
            t = _tensors(r)
            out = c.call(
                student,
                t["rewards"],
                t["terminated"],
                t["truncated"],
                t["next_values"],
                gamma=case["gamma"],
            )
            lab07.compare_returns(c, c.array(out), r, case)


def check_gae(student: Any) -> None:
    """GAE advantages and value targets with terminated / truncated episode ends."""
    with checking("gae", JAX, passed="two rollouts with episode ends") as c:
        for case in lab07.RETURN_CASES:
            r = lab07.rollout(case)
            t = _tensors(r)
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
            lab07.compare_gae(c, _pair(c, out, ("advantages", "returns")), r, case)


def check_ppo_loss(student: Any) -> None:
    """PPO's clipped policy loss (normalised advantages) and its value loss."""
    with checking("ppo_loss", JAX, passed="two minibatches, two clip ranges") as c:
        for seed, clip in ((0, 0.2), (1, 0.1)):
            x = lab07.ppo_inputs(seed)
            t = _tensors(x)
            out = c.call(
                student,
                t["new_log_probs"],
                t["old_log_probs"],
                t["advantages"],
                t["old_values"],
                t["new_values"],
                clip=clip,
            )
            lab07.compare_ppo(c, _pair(c, out, ("policy_loss", "value_loss")), x, clip)
