"""Lab 8 self-checks for JAX notebooks: ``H.lab08.check_adam(adam)`` etc.

The checks are :mod:`helpers.labs.lab08.checks`, shared with PyTorch; this module builds the
student's Optax-style transformation or schedule, runs it (``update`` and the schedule under
``jax.jit``, as an optimizer would) and hands the results over as numpy.
``tests/labs/test_lab08.py`` asserts that the numpy answers equal ``optax.adam`` (after
``add_decayed_weights``), ``optax.adamw`` and ``optax.warmup_cosine_decay_schedule`` on the
same cases; those (and the schedules they are made of) are the answer keys, so a call of one
from the student's code fails the check. ``optax.chain`` and ``add_decayed_weights`` stay
allowed: they hold no part of Adam. Exercise 4 (``check_lion``) is checked by
:mod:`helpers.labs.lab08.lion`; ``optax.lion`` and ``scale_by_lion`` are its answer keys.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from helpers.jax.labkit import lab_framework
from helpers.labs.kit import Checker, CheckFailed, Hints, checking, explainer
from helpers.labs.lab08 import checks as lab08
from helpers.labs.lab08 import lion

__all__ = ["check_adam", "check_adamw", "check_lion", "check_warmup_cosine"]

# The shared hints worded for Optax (its names; its update is negative, since
# apply_updates adds it), and the known mistakes that only JAX allows.
_LION_STEP = "update = -learning_rate * (jnp.sign(c) + weight_decay * p)"
_LION_HINTS = {
    **lion.lion_hints(
        dict(lr="learning_rate", b1="b1", b2="b2", p="p", g="g", sign="jnp.sign")
        | dict(step=_LION_STEP, where=", in the new state that update returns")
    ),
    # Two mistakes, one trajectory: m left at 0 gives c = (1 - b1) * g, whose sign is g's, and
    # the check sees only the parameters; one hint names both.
    **dict.fromkeys(
        ("lion_direction_g", "lion_m_not_updated"),
        "the direction is the sign of an interpolation of the momentum and this gradient, "
        "c = b1 * m + (1 - b1) * g, not of the gradient alone (that is signSGD, without "
        "momentum); if update returns the state it was given, m stays 0 and c is "
        "(1 - b1) * g too: return the new m = b2 * m + (1 - b2) * g in the new state",
    ),
    "lion_update_sign": "the update goes against the direction and is negative, "
    f"{_LION_STEP}, since optax.apply_updates adds it to the parameters",
    "lion_updates_are_params": "update returns the change that optax.apply_updates adds "
    f"to the parameters, {_LION_STEP}, not the new parameters themselves",
    "numpy_in_jit": "inside jit the values are traced arrays, which NumPy cannot read: "
    "np.sign, np.sqrt, np.cos (any np.* function) need a concrete array; use jnp.sign, "
    "jnp.sqrt, jnp.cos (jnp.where, ...), which work on traced arrays",
    "lion_returned_swapped": "return the pair in the order (updates, new_state): the "
    "change to the parameters first, then the new momentum",
    "lion_traced": "inside jit each leaf is a whole traced array, not a number: a Python "
    "`if` or `1.0 if c > 0 else -1.0`, math.copysign and float() cannot read it; use "
    "jnp.sign(c) (or jnp.where), which works elementwise on traced arrays",
    "lion_answer_key": "write Lion yourself from the exercise's formula (c, its sign and the "
    "decay, then the momentum): optax.lion is the answer key the check compares with, and "
    "calling it (or optax.scale_by_lion) fails the check",
}

HINTS = Hints(
    lab08.HINTS,
    _LION_HINTS,
    {
        "bias_correction": "correct both moments, m and v, by (1 - b**count) before the "
        "square root, count being 1 at the first step: m_hat = m / (1 - b1**count), "
        "v_hat = v / (1 - b2**count), then the update -learning_rate * m_hat / "
        "(sqrt(v_hat) + eps)",
        "l2_not_decoupled": "AdamW decouples the decay from the gradient: leave the "
        "gradient alone and add weight_decay * param to Adam's direction, update = "
        "-learning_rate * (m_hat / (sqrt(v_hat) + eps) + weight_decay * param); adding "
        "weight_decay * param to the gradient is Adam's L2 penalty",
        "decoupled_not_l2": "this exercise asks for the L2 penalty, "
        "optax.chain(optax.add_decayed_weights(weight_decay), adam): add weight_decay * "
        "param to the gradient first, g = grad + weight_decay * param, and use that g in m "
        "and v; adding the decay to the update outside Adam's scaling is AdamW "
        "(optax.adamw)",
        "decay_without_lr": "the decoupled decay is scaled by the learning rate too: "
        "update = -learning_rate * (m_hat / (sqrt(v_hat) + eps) + weight_decay * param), "
        "as optax.adamw does, not Adam's update - weight_decay * param",
        "update_sign": "the update goes against the gradient and is negative, "
        "-learning_rate * m_hat / (sqrt(v_hat) + eps), since optax.apply_updates adds it "
        "to the parameters",
        "frozen_count": "the bias correction uses the number of the current step, 1, 2, "
        "3, ...: keep the count in the state that update returns; a Python variable "
        "outside the state is read once, when jit traces update, and stays 1",
        "state_not_returned": "return the new state from update, (count + 1, the new m, "
        "the new v): returning the state it was given starts Adam again at every step, "
        "with count 1 and m = v = 0",
        "updates_are_params": "update returns the change that optax.apply_updates adds to "
        "the parameters, -learning_rate * m_hat / (sqrt(v_hat) + eps), not the new "
        "parameters themselves",
        "returned_swapped": "return the pair in the order (updates, new_state): the "
        "change to the parameters first (shaped like the gradients), then the state",
        # The shared hints in the JAX lab's names (b1, b2; optax's schedule arguments).
        "v_squared": "v averages the squared gradient, (1 - b2) * g**2 (or g * g), which "
        "is never negative: with g alone, v goes negative wherever the gradient is, and its "
        "square root gives NaN there",
        "warmup_from_zero": "the warmup starts at init_value, not 0: init_value + "
        "(peak_value - init_value) * step / warmup_steps is init_value at step 0",
        "end_ignored": "the cosine ends at end_value, not 0: end_value + (peak_value - "
        "end_value) * (1 + cos(pi * s / S)) / 2",
        "betas_swapped": "the running averages keep b of the old value: "
        "m = b1 * m + (1 - b1) * g and v = b2 * v + (1 - b2) * g**2",
        "negative_cosine": "learning_rate * cos(2 pi t / T) goes negative half-way "
        "(gradient ascent); anneal with half a cosine from peak to end: end_value + "
        "(peak_value - end_value) * (1 + cos(pi * s / S)) / 2, s steps into the decay of "
        "S steps",
        "off_by_one": "the schedule is one step off: step 0 must give init_value (the "
        "warmup's start) and step warmup_steps peak_value, so use the step as given, not "
        "step + 1 or step - 1",
        "warmup_length": "the warmup reaches peak_value at step warmup_steps, not one step "
        "early: init_value + (peak_value - init_value) * step / warmup_steps, not divided "
        "by warmup_steps - 1",
        "cosine_length": "the cosine runs over the steps after the warmup: as in optax, "
        "decay_steps counts the warmup too, so S = decay_steps - warmup_steps, and s = "
        "step - warmup_steps",
        "traced_if": "inside jit the step is a traced array, so a Python `if step < "
        "warmup_steps` cannot decide: compute both branches and pick with "
        "jnp.where(step < warmup_steps, warmup_value, cosine_value)",
        "traced_math": "inside jit the values are traced arrays, not Python numbers: "
        "math.cos (any math.* function) and float() or int() need a concrete number; use "
        "jnp.cos (and jnp.pi, jnp.sqrt, ...), which work on traced arrays",
    },
)

# A bool conversion (a Python if) and a float or int conversion (math.cos, float()) of a
# tracer both raise ConcretizationTypeError; the message names the conversion.
_ERRORS = {
    r"arose with the `(float|int|complex)` function": "traced_math",
    r"ConcretizationTypeError": "traced_if",
}

JAX = lab_framework(
    HINTS,
    explainer(
        _ERRORS,
        HINTS,
        types={
            "TracerBoolConversionError": "traced_if",
            "TracerArrayConversionError": "numpy_in_jit",
        },
    ),
)

# The library's answers, refused: each exercise asks to write its rule out. optax and
# optax.schedules are two modules, a student may reach a schedule through either.
_ADAM_KEYS = (
    *((optax, name) for name in ("adam", "adamw", "scale_by_adam")),
    # optax's own modules too, as for Lion: `from optax._src import alias` reaches them
    *((importlib.import_module("optax._src.alias"), n) for n in ("adam", "adamw")),
    (importlib.import_module("optax._src.transform"), "scale_by_adam"),
)
# The first step's parameter of JAX's own mistake: the new parameter returned as the update,
# which apply_updates adds to the old one.
_FIRST_STEP = [("updates_are_params", lambda param, right: param + right["param"])]
# JAX's own Lion mistakes with a trajectory: the new parameter returned as the update, and
# the pair returned as (new_state, updates).
_LION_EXTRA = [
    ("lion_updates_are_params", dict(updates_are_params=True)),
    ("lion_returned_swapped", dict(returned_swapped=True)),
]
# optax's own modules too: `from optax._src import alias; alias.lion(...)` is the same key
_LION_KEYS = (
    *((optax, name) for name in ("lion", "scale_by_lion")),
    (importlib.import_module("optax._src.alias"), "lion"),
    (importlib.import_module("optax._src.transform"), "scale_by_lion"),
)
# A tracer read as a Python number (an if, math.*, float()) in Lion: the schedule's hints
# (traced_if, traced_math) speak of warmup steps and cosines; Lion gets its own.
_LION_TRACED = r"TracerBoolConversionError|ConcretizationTypeError|Only scalar arrays"
_SCHEDULE_KEYS = tuple(
    (module, name)
    for module in (optax, optax.schedules)
    for name in (
        "warmup_cosine_decay_schedule",
        "cosine_decay_schedule",
        "linear_schedule",
        "join_schedules",
        "cosine_onecycle_schedule",
        "sgdr_schedule",
    )
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
    c: Checker, factory: Any, case: dict, answer_key: str
) -> tuple[list[dict], np.ndarray, list]:
    def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return lab08.call_refusing(c, _ADAM_KEYS, answer_key, fn, *args, **kwargs)

    param, grads = lab08.adam_inputs(case)
    tx = _transformation(
        c,
        call(
            factory,
            learning_rate=case["lr"],
            b1=case["beta1"],
            b2=case["beta2"],
            eps=case["eps"],
            weight_decay=case["weight_decay"],
        ),
    )
    return _steps(c, tx, param, grads, call), param, grads


def _steps(
    c: Checker, tx: Any, param: np.ndarray, grads: list, call: Any
) -> list[dict]:
    """Run ``tx`` (init, then jitted update) over ``grads`` from ``param``; the parameter
    after each step, as numpy, stopping after a step with NaN or inf."""
    params = {"w": jnp.asarray(param)}
    state = call(tx.init, params)
    update = jax.jit(tx.update)  # as an optimizer runs it
    got = []
    for g in grads:
        out = call(update, {"w": jnp.asarray(g)}, state, params)
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise c.fail(
                f"update should return a pair (updates, new_state), got {type(out).__name__}",
                "end update with `return updates, new_state`",
            )
        updates, state = out
        shaped = isinstance(updates, dict) and set(updates) == {"w"}
        if not shaped and isinstance(state, dict) and set(state) == {"w"}:
            raise c.fail(
                "update returned the pair the other way round: its first item is no "
                "pytree of updates, its second is",
                c.hint("returned_swapped"),
            )
        if not shaped:
            raise c.fail(
                "the updates should have the structure of the gradients (here {'w': ...})",
                "map over the pytree: jax.tree.map(lambda g, ...: ..., updates, ...)",
            )
        u = c.array(updates["w"], "a jax.Array in the updates")
        new = np.asarray(params["w"]) + u  # optax.apply_updates
        params = {"w": jnp.asarray(new)}
        got.append({"param": np.array(new)})
        if not np.all(np.isfinite(new)):
            break  # the comparison reports it
    return got


def _check_adam(student: Any, exercise: str, decoupled: bool) -> None:
    with checking(exercise, JAX, passed="parameters match over several steps") as c:
        for case in lab08.ADAM_CASES:
            key = "adamw_answer_key" if decoupled else "adam_answer_key"
            got, param, grads = _adam_run(c, student, case, key)
            lab08.compare_adam(
                c, got, param, grads, case, decoupled=decoupled, first_step=_FIRST_STEP
            )


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
            schedule = lab08.call_refusing(
                c,
                _SCHEDULE_KEYS,
                "schedule_answer_key",
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
            values = lab08.call_refusing(
                c,
                _SCHEDULE_KEYS,
                "schedule_answer_key",
                jax.jit(jax.vmap(schedule)),
                steps,
            )
            lab08.compare_schedule(
                c, c.array(values, "a jax.Array of learning rates"), case
            )


def check_lion(student: Any) -> None:
    """Lion as a gradient transformation, ``lion(learning_rate, b1, b2, weight_decay)``, like
    ``optax.lion`` (Chen et al. 2023), whose call (or ``scale_by_lion``'s) fails the check."""
    with checking(
        "lion",
        JAX,
        passed="parameters match over several steps, zero gradients included",
    ) as c:

        def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return lab08.call_refusing(
                    c, _LION_KEYS, "lion_answer_key", fn, *args, **kwargs
                )
            except CheckFailed as e:
                if re.search(_LION_TRACED, e.problem):
                    raise c.fail(e.problem, c.hint("lion_traced")) from None
                raise

        for case in lion.LION_CASES:
            param, grads = lion.lion_inputs(case)
            hyper = dict(b1=case["beta1"], b2=case["beta2"])
            tx = _transformation(
                c,
                call(
                    student,
                    learning_rate=case["lr"],
                    weight_decay=case["weight_decay"],
                    **hyper,
                ),
            )
            got = _steps(c, tx, param, grads, call)
            lion.compare_lion(c, got, param, grads, case, extra=_LION_EXTRA)
