"""Lab 8's typical mistakes: each one fails its check with the hint written for it.

``MISTAKES`` lists, per framework, (exercise, a wrong solution, the key of the hint it must get).
Every hint the lab declares must be produced by at least one entry.

Also here: the numpy references of ``helpers/labs/lab08/checks.py`` equal ``torch.optim.Adam``,
``torch.optim.AdamW``, ``torch.optim.lr_scheduler``, ``optax.adam`` (after
``add_decayed_weights``), ``optax.adamw`` and ``optax.warmup_cosine_decay_schedule`` on the
checks' cases, and every mistake moves the answer beyond the checks' tolerance.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from labtools import mistake_table_tests

from helpers.labs.lab08 import checks as lab08

# ---------------------------------------------------------------- PyTorch mistakes


def _t_adam(
    *,
    decoupled=False,
    l2=None,
    bias=True,
    zero=False,
    swap=False,
    sign=1,
    decay_lr=True,
    first=False,
):
    """A PyTorch Adam step with switches for the mistakes (l2: add decay to the gradient;
    decay_lr=False: decoupled decay not scaled by lr; first: every step corrected as step 1)."""
    l2 = not decoupled if l2 is None else l2

    def step(param, grad, m, v, t, *, lr, beta1, beta2, eps, weight_decay):
        g = grad + weight_decay * param if l2 else grad
        a1, a2 = (1 - beta1, 1 - beta2) if swap else (beta1, beta2)
        m2 = a1 * m + (1 - a1) * g
        v2 = a2 * v + (1 - a2) * g**2
        k = t if zero else 1 if first else t + 1
        m_hat = m2 / (1 - beta1**k) if bias in (True, "m") else m2
        v_hat = v2 / (1 - beta2**k) if bias in (True, "v") else v2
        rate = lr if decay_lr else 1.0
        p = param * (1 - rate * weight_decay) if decoupled else param
        return p - sign * lr * m_hat / (v_hat.sqrt() + eps), m2, v2

    return step


def _t_schedule(shift=0, negative=False, full_length=False):
    def warmup_cosine(step, *, init, peak, warmup_steps, total_steps, end):
        step = step + shift
        if step < warmup_steps:
            return init + (peak - init) * step / warmup_steps
        s, n = step - warmup_steps, total_steps - warmup_steps
        if full_length:
            s, n = step, total_steps
        if negative:
            return peak * math.cos(2 * math.pi * s / n)
        return end + (peak - end) * (1 + math.cos(math.pi * s / n)) / 2

    return warmup_cosine


TORCH_MISTAKES = [
    ("adam_step", _t_adam(bias=False), "bias_correction"),
    ("adam_step", _t_adam(zero=True), "step_from_zero"),
    ("adam_step", _t_adam(decoupled=True, l2=False), "decoupled_not_l2"),
    ("adam_step", _t_adam(swap=True), "betas_swapped"),
    ("adam_step", _t_adam(bias="m"), "bias_correction"),
    ("adam_step", _t_adam(sign=-1), "update_sign"),
    ("adamw_step", _t_adam(decoupled=False, l2=True), "l2_not_decoupled"),
    ("adamw_step", _t_adam(decoupled=True, bias=False), "bias_correction"),
    ("adamw_step", _t_adam(decoupled=True, zero=True), "step_from_zero"),
    ("adamw_step", _t_adam(decoupled=True, decay_lr=False), "decay_without_lr"),
    ("adam_step", _t_adam(first=True), "frozen_count"),
    ("warmup_cosine", _t_schedule(negative=True), "negative_cosine"),
    ("warmup_cosine", _t_schedule(shift=1), "off_by_one"),
    ("warmup_cosine", _t_schedule(shift=-1), "off_by_one"),
    ("warmup_cosine", _t_schedule(full_length=True), "cosine_length"),
]

# ---------------------------------------------------------------- JAX mistakes


def _j_adam(
    *,
    decoupled=False,
    l2=None,
    bias=True,
    zero=False,
    swap=False,
    sign=1,
    decay_lr=True,
):
    l2 = not decoupled if l2 is None else l2

    def factory(learning_rate, b1, b2, eps, weight_decay):
        def init(params):
            zeros = jax.tree.map(jnp.zeros_like, params)
            return (jnp.zeros([], jnp.int32), zeros, zeros)

        def update(grads, state, params):
            count, m, v = state
            if l2:
                grads = jax.tree.map(lambda g, p: g + weight_decay * p, grads, params)
            a1, a2 = (1 - b1, 1 - b2) if swap else (b1, b2)
            m = jax.tree.map(lambda m, g: a1 * m + (1 - a1) * g, m, grads)
            v = jax.tree.map(lambda v, g: a2 * v + (1 - a2) * g**2, v, grads)
            k = count if zero else count + 1
            c1 = 1 - b1**k if bias in (True, "m") else 1.0
            c2 = 1 - b2**k if bias in (True, "v") else 1.0

            def direction(m, v, p):
                d = (m / c1) / (jnp.sqrt(v / c2) + eps)
                return d + weight_decay * p if decoupled and decay_lr else d

            updates = jax.tree.map(
                lambda m, v, p: -sign * learning_rate * direction(m, v, p), m, v, params
            )
            if decoupled and not decay_lr:  # the decay not scaled by the learning rate
                updates = jax.tree.map(
                    lambda u, p: u - weight_decay * p, updates, params
                )
            return updates, (count + 1, m, v)

        return optax.GradientTransformation(init, update)

    return factory


def _j_python_count(learning_rate, b1, b2, eps, weight_decay):
    """The step count in a Python variable outside the state: jit reads it once."""
    steps = [0]

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return (zeros, zeros)

    def update(grads, state, params):
        m, v = state
        steps[0] += 1
        t = steps[0]
        g = jax.tree.map(lambda g, p: g + weight_decay * p, grads, params)
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g**2, v, g)
        updates = jax.tree.map(
            lambda m, v: (
                -learning_rate * (m / (1 - b1**t)) / (jnp.sqrt(v / (1 - b2**t)) + eps)
            ),
            m,
            v,
        )
        return updates, (m, v)

    return optax.GradientTransformation(init, update)


def _j_schedule(shift=0, negative=False, full_length=False, python_if=False):
    def warmup_cosine(init_value, peak_value, warmup_steps, decay_steps, end_value):
        def schedule(step):
            step = step + shift
            ramp = init_value + (peak_value - init_value) * step / warmup_steps
            s, n = step - warmup_steps, decay_steps - warmup_steps
            if full_length:
                s, n = step, decay_steps
            if negative:
                cos = peak_value * jnp.cos(2 * jnp.pi * s / n)
            else:
                cos = (
                    end_value
                    + (peak_value - end_value) * (1 + jnp.cos(jnp.pi * s / n)) / 2
                )
            if python_if:
                return ramp if step < warmup_steps else cos
            return jnp.where(step < warmup_steps, ramp, cos)

        return schedule

    return warmup_cosine


JAX_MISTAKES = [
    ("adam", _j_adam(bias=False), "bias_correction"),
    ("adam", _j_adam(zero=True), "step_from_zero"),
    ("adam", _j_adam(decoupled=True, l2=False), "decoupled_not_l2"),
    ("adam", _j_adam(swap=True), "betas_swapped"),
    ("adam", _j_adam(bias="v"), "bias_correction"),
    ("adam", _j_adam(sign=-1), "update_sign"),
    ("adamw", _j_adam(decoupled=False, l2=True), "l2_not_decoupled"),
    ("adamw", _j_adam(decoupled=True, bias=False), "bias_correction"),
    ("adamw", _j_adam(decoupled=True, zero=True), "step_from_zero"),
    ("adamw", _j_adam(decoupled=True, decay_lr=False), "decay_without_lr"),
    ("adam", _j_python_count, "frozen_count"),
    ("warmup_cosine", _j_schedule(negative=True), "negative_cosine"),
    ("warmup_cosine", _j_schedule(shift=1), "off_by_one"),
    ("warmup_cosine", _j_schedule(shift=-1), "off_by_one"),
    ("warmup_cosine", _j_schedule(full_length=True), "cosine_length"),
    ("warmup_cosine", _j_schedule(python_if=True), "traced_if"),
]

MISTAKES = {"pytorch": TORCH_MISTAKES, "jax": JAX_MISTAKES}

(
    test_mistake_fails_with_its_hint,
    test_at_least_two_mistakes_per_exercise,
    test_every_declared_hint_is_produced_by_a_mistake,
) = mistake_table_tests("lab08", MISTAKES)


# ---------------------------------------------------------------- references == libraries


def _torch_library_run(case, decoupled):
    param, grads = lab08.adam_inputs(case)
    p = torch.tensor(param, dtype=torch.float64, requires_grad=True)
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    opt = cls(
        [p],
        lr=case["lr"],
        betas=(case["beta1"], case["beta2"]),
        eps=case["eps"],
        weight_decay=case["weight_decay"],
    )
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        state = opt.state[p]
        out.append(
            {
                "param": p.detach().numpy().copy(),
                "m": state["exp_avg"].numpy().copy(),
                "v": state["exp_avg_sq"].numpy().copy(),
            }
        )
    return out


def _optax_library_run(case, decoupled):
    param, grads = lab08.adam_inputs(case)
    kw = dict(b1=case["beta1"], b2=case["beta2"], eps=case["eps"])
    if decoupled:
        tx = optax.adamw(case["lr"], weight_decay=case["weight_decay"], **kw)
    else:
        tx = optax.chain(
            optax.add_decayed_weights(case["weight_decay"]),
            optax.adam(case["lr"], **kw),
        )
    params = jnp.asarray(param)
    state = tx.init(params)
    out = []
    for g in grads:
        updates, state = tx.update(jnp.asarray(g), state, params)
        params = optax.apply_updates(params, updates)
        out.append(np.asarray(params))
    return out


@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("case", range(len(lab08.ADAM_CASES)))
def test_adam_reference_equals_the_libraries(case, decoupled):
    case = lab08.ADAM_CASES[case]
    param, grads = lab08.adam_inputs(case)
    ours = lab08.adam_reference(param, grads, decoupled=decoupled, **case)
    for mine, torch_step, optax_param in zip(
        ours,
        _torch_library_run(case, decoupled),
        _optax_library_run(case, decoupled),
        strict=True,
    ):
        for key in ("param", "m", "v"):
            np.testing.assert_allclose(
                mine[key], torch_step[key], rtol=1e-10, atol=1e-12
            )
        np.testing.assert_allclose(mine["param"], optax_param, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", range(len(lab08.ADAM_CASES)))
@pytest.mark.parametrize(
    "switch",
    [
        dict(bias_correction=False),
        dict(bias_correction="m"),
        dict(bias_correction="v"),
        dict(betas_swapped=True),
        dict(decoupled=True),
        dict(frozen_count=True),
    ],
)
def test_every_adam_mistake_moves_the_answer(case, switch):
    case = lab08.ADAM_CASES[case]
    param, grads = lab08.adam_inputs(case)
    right = lab08.adam_reference(param, grads, decoupled=False, **case)
    wrong = lab08.adam_reference(param, grads, **{"decoupled": False, **case, **switch})
    assert not np.allclose(right[-1]["param"], wrong[-1]["param"], rtol=1e-3, atol=1e-4)
    zero = lab08.adam_reference(
        param, grads, decoupled=False, step_from_zero=True, **case
    )
    assert not np.all(np.isfinite(zero[0]["param"]))


@pytest.mark.parametrize("case", range(len(lab08.SCHEDULE_CASES)))
def test_schedule_reference_equals_the_libraries(case):
    case = lab08.SCHEDULE_CASES[case]
    n = case["total_steps"] + 1
    ours = np.array([lab08.warmup_cosine_reference(t, **case) for t in range(n)])
    library = optax.warmup_cosine_decay_schedule(
        case["init"],
        case["peak"],
        case["warmup_steps"],
        case["total_steps"],
        case["end"],
    )
    np.testing.assert_allclose(
        ours, [float(library(t)) for t in range(n)], rtol=1e-5, atol=1e-7
    )

    s = torch.optim.lr_scheduler
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=case["peak"])
    w = case["warmup_steps"]
    sched = s.SequentialLR(
        opt,
        [
            s.LinearLR(opt, start_factor=case["init"] / case["peak"], total_iters=w),
            s.CosineAnnealingLR(
                opt, T_max=case["total_steps"] - w, eta_min=case["end"]
            ),
        ],
        milestones=[w],
    )
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(ours, lrs, rtol=1e-9, atol=1e-12)
    for switch in (
        dict(negative_cosine=True),
        dict(shift=1),
        dict(shift=-1),
        dict(cosine_length=True),
    ):
        wrong = [lab08.warmup_cosine_reference(t, **case, **switch) for t in range(n)]
        assert not np.allclose(ours, wrong, rtol=1e-3, atol=1e-4), switch
