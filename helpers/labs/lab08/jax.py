"""Lab 8 self-checks for JAX notebooks: ``H.lab08.check_adam(adam)`` etc.

The checks are :mod:`helpers.labs.lab08.checks`, shared with PyTorch; this module builds the
student's Optax-style transformation or schedule, runs it (``update`` and the schedule under
``jax.jit``, as an optimizer would) and hands the results over as numpy.
``tests/labs/test_lab08.py`` asserts that the numpy answers equal ``optax.adam`` (after
``add_decayed_weights``), ``optax.adamw`` and ``optax.warmup_cosine_decay_schedule`` on the
same cases.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from helpers.jax.labkit import lab_framework
from helpers.labs.kit import Checker, Hints, checking, explainer
from helpers.labs.lab08 import checks as lab08

__all__ = ["check_adam", "check_adamw", "check_warmup_cosine"]

# Known mistakes that only JAX allows.
HINTS = Hints(
    lab08.HINTS,
    {
        "traced_if": "inside jit the step is a traced array, so a Python `if step < "
        "warmup_steps` cannot decide: compute both branches and pick with "
        "jnp.where(step < warmup_steps, warmup_value, cosine_value)",
    },
)

_ERRORS = {r"TracerBoolConversionError|ConcretizationTypeError": "traced_if"}

JAX = lab_framework(
    HINTS,
    explainer(
        _ERRORS,
        HINTS,
        types={
            "TracerBoolConversionError": "traced_if",
            "ConcretizationTypeError": "traced_if",
        },
    ),
)


def _transformation(c: Checker, tx: Any) -> Any:
    """``tx`` if it has callable ``init`` and ``update``; fail otherwise."""
    if not (
        callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))
    ):
        raise c.fail(
            f"expected a GradientTransformation (init, update), got {type(tx).__name__}",
            "return optax.GradientTransformation(init, update), the two functions "
            "defined inside your function",
        )
    return tx


def _adam_run(
    c: Checker, factory: Any, case: dict
) -> tuple[list[dict], np.ndarray, list]:
    param, grads = lab08.adam_inputs(case)
    tx = _transformation(
        c,
        c.call(
            factory,
            learning_rate=case["lr"],
            b1=case["beta1"],
            b2=case["beta2"],
            eps=case["eps"],
            weight_decay=case["weight_decay"],
        ),
    )
    params = {"w": jnp.asarray(param)}
    state = c.call(tx.init, params)
    update = jax.jit(tx.update)  # as an optimizer runs it
    got = []
    for g in grads:
        out = c.call(update, {"w": jnp.asarray(g)}, state, params)
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise c.fail(
                f"update should return a pair (updates, new_state), got {type(out).__name__}",
                "end update with `return updates, new_state`",
            )
        updates, state = out
        if not isinstance(updates, dict) or set(updates) != {"w"}:
            raise c.fail(
                "the updates should have the structure of the gradients (here {'w': ...})",
                "map over the pytree: jax.tree.map(lambda g, ...: ..., updates, ...)",
            )
        u = c.array(updates["w"], "a jax.Array in the updates")
        new = np.asarray(params["w"]) + u  # optax.apply_updates
        params = {"w": jnp.asarray(new)}
        got.append({"param": np.array(new)})
    return got, param, grads


def _check_adam(student: Any, exercise: str, decoupled: bool) -> None:
    with checking(exercise, JAX, passed="parameters match over several steps") as c:
        for case in lab08.ADAM_CASES:
            got, param, grads = _adam_run(c, student, case)
            lab08.compare_adam(c, got, param, grads, case, decoupled=decoupled)


def check_adam(student: Any) -> None:
    """Adam with bias correction and L2 decay (``add_decayed_weights`` then ``adam``)."""
    _check_adam(student, "adam", decoupled=False)


def check_adamw(student: Any) -> None:
    """Adam with decoupled weight decay (``optax.adamw``)."""
    _check_adam(student, "adamw", decoupled=True)


def check_warmup_cosine(student: Any) -> None:
    """A schedule like ``optax.warmup_cosine_decay_schedule``, evaluated under jit."""
    with checking(
        "warmup_cosine", JAX, passed="every step of two schedules, under jit"
    ) as c:
        for case in lab08.SCHEDULE_CASES:
            schedule = c.call(
                student,
                init_value=case["init"],
                peak_value=case["peak"],
                warmup_steps=case["warmup_steps"],
                decay_steps=case["total_steps"],
                end_value=case["end"],
            )
            schedule = lab08.expect_function(
                c, schedule, "a schedule (a function of the step)"
            )
            steps = jnp.arange(case["total_steps"] + 1)
            values = c.call(jax.jit(jax.vmap(schedule)), steps)
            lab08.compare_schedule(
                c, c.array(values, "a jax.Array of learning rates"), case
            )
