"""Chapter 8's hand-written optimizers and schedules equal the libraries' to float tolerance.

The code under test is the chapter's own: the cells tagged ``reference`` in
``chapters/08-optimizers/in-{pytorch,jax}.py`` (the imports, the update rules, the schedules)
are executed here, so the page a reader sees is the code that is tested, with no copy in the
helpers. Each comparison runs several steps with several settings, beyond the notebook's own
one-setting check.
"""

from __future__ import annotations

import functools
import math

import jupytext
import numpy as np
import pytest

from helpers.notebooks import ROOT

CHAPTER = ROOT / "chapters" / "08-optimizers"


@functools.cache
def reference(framework: str) -> dict:
    """The namespace left by the notebook's cells tagged ``reference``."""
    path = CHAPTER / f"in-{framework}.py"
    namespace: dict = {}
    cells = [
        c
        for c in jupytext.read(path, fmt="py:percent").cells
        if "reference" in c.metadata.get("tags", [])
    ]
    assert len(cells) >= 3, f"{path} lost its reference cells"
    for cell in cells:
        exec(compile(cell.source, str(path), "exec"), namespace)
    return namespace


# ---------------------------------------------------------------- PyTorch


def _torch_run(make, steps=8, seed=0):
    import torch

    gen = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)
    ).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    opt = make(net.parameters())
    for _ in range(steps):
        x = torch.randn(8, 4, generator=gen, dtype=torch.float64)  # (B, 4)
        loss = net(x).pow(3).mean()  # gradients of mixed sign and size
        opt.zero_grad()
        loss.backward()
        opt.step()
    return np.concatenate([p.detach().numpy().ravel() for p in net.parameters()])


TORCH_OPTIMIZERS = [
    ("SGD", dict(lr=0.05), "SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, weight_decay=0.1), "SGD", dict(lr=0.05, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9), "SGD", dict(lr=0.05, momentum=0.9)),
    (
        "SGD",
        dict(lr=0.05, momentum=0.5, nesterov=True, weight_decay=0.01),
        "SGD",
        dict(lr=0.05, momentum=0.5, nesterov=True, weight_decay=0.01),
    ),
    ("RMSprop", dict(lr=0.01), "RMSprop", dict(lr=0.01)),
    (
        "RMSprop",
        dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1),
        "RMSprop",
        dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1),
    ),
    ("Adam", dict(lr=0.01), "Adam", dict(lr=0.01)),
    (
        "Adam",
        dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1),
        "Adam",
        dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1),
    ),
    (
        "AdamW",
        dict(lr=0.01, weight_decay=0.1),
        "AdamW",
        dict(lr=0.01, weight_decay=0.1),
    ),
    ("AdamW", dict(lr=0.01), "AdamW", dict(lr=0.01)),  # both default decays
]


@pytest.mark.parametrize(
    ("hand", "hand_kw", "library", "library_kw"),
    TORCH_OPTIMIZERS,
    ids=[f"{h}-{kw}" for h, kw, _, _ in TORCH_OPTIMIZERS],
)
def test_torch_optimizer_equals_torch_optim(hand, hand_kw, library, library_kw):
    import torch

    ns = reference("pytorch")
    ours = _torch_run(lambda p: ns[hand](p, **hand_kw))
    theirs = _torch_run(lambda p: getattr(torch.optim, library)(p, **library_kw))
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    untouched = _torch_run(lambda p: torch.optim.SGD(p, lr=0.0))
    assert np.abs(ours - untouched).max() > 1e-3  # the comparison can fail


def test_torch_l2_and_decoupled_decay_differ():
    ns = reference("pytorch")
    l2 = _torch_run(lambda p: ns["Adam"](p, lr=0.01, weight_decay=0.1))
    decoupled = _torch_run(lambda p: ns["AdamW"](p, lr=0.01, weight_decay=0.1))
    assert np.abs(l2 - decoupled).max() > 1e-4


def _torch_lrs(make_scheduler, steps, lr):
    import torch

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = make_scheduler(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out)


def _torch_schedule_cases():
    import torch

    s = torch.optim.lr_scheduler
    return {
        "step_decay": (
            lambda ns, t: ns["step_decay"](t, 0.3, 7, 0.5),
            lambda o: s.StepLR(o, step_size=7, gamma=0.5),
            0.3,
        ),
        "exponential": (
            lambda ns, t: ns["exponential"](t, 0.3, 0.9),
            lambda o: s.ExponentialLR(o, gamma=0.9),
            0.3,
        ),
        "cosine": (
            lambda ns, t: ns["cosine"](t, 0.3, 40, 0.01),
            lambda o: s.CosineAnnealingLR(o, T_max=40, eta_min=0.01),
            0.3,
        ),
        "warmup_cosine": (
            lambda ns, t: ns["warmup_cosine"](t, 0.06, 0.3, 6, 40, 0.01),
            lambda o: s.SequentialLR(
                o,
                [
                    s.LinearLR(o, start_factor=0.2, total_iters=6),
                    s.CosineAnnealingLR(o, T_max=34, eta_min=0.01),
                ],
                milestones=[6],
            ),
            0.3,
        ),
        "one_cycle": (
            lambda ns, t: ns["one_cycle"](t, 0.3, 40, pct_start=0.25),
            lambda o: s.OneCycleLR(
                o, max_lr=0.3, total_steps=40, pct_start=0.25, cycle_momentum=False
            ),
            0.3,
        ),
        "sgdr": (
            lambda ns, t: ns["sgdr"](t, 0.3, 5, 0.01, period_mult=2),
            lambda o: s.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.01),
            0.3,
        ),
        "sgdr_mult1": (
            lambda ns, t: ns["sgdr"](t, 0.3, 7, 0.0),
            lambda o: s.CosineAnnealingWarmRestarts(o, T_0=7),
            0.3,
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        "step_decay",
        "exponential",
        "cosine",
        "warmup_cosine",
        "one_cycle",
        "sgdr",
        "sgdr_mult1",
    ],
)
def test_torch_schedule_equals_lr_scheduler(name):
    ns = reference("pytorch")
    hand, make, lr = _torch_schedule_cases()[name]
    steps = 40
    ours = np.array([hand(ns, t) for t in range(steps)])
    np.testing.assert_allclose(ours, _torch_lrs(make, steps, lr), rtol=1e-9, atol=1e-12)
    assert np.ptp(ours) > 1e-3  # a schedule that changes: the comparison can fail


def test_cosine_stays_within_bounds_and_the_outline_does_not():
    ns = reference("pytorch")
    values = [ns["cosine"](t, 0.1, 100, 0.001) for t in range(101)]
    assert min(values) >= 0.001 - 1e-12 and max(values) <= 0.1 + 1e-12
    outline = 0.1 * math.cos(2 * math.pi * 50 / 100)
    assert outline < 0


# ---------------------------------------------------------------- JAX


def _jax_run(tx, steps=8, seed=0):
    import jax
    import jax.numpy as jnp
    import optax

    key = jax.random.key(seed)
    k1, k2, k3, key = jax.random.split(key, 4)
    params = {
        "w": jax.random.normal(k1, (4, 6)),
        "b": jax.random.normal(k2, (6,)),
        "v": jax.random.normal(k3, (6, 2)),
    }

    def loss(p, x):  # x: (B, 4)
        return jnp.mean((jnp.tanh(x @ p["w"] + p["b"]) @ p["v"]) ** 3)

    state = tx.init(params)
    for k in jax.random.split(key, steps):
        grads = jax.grad(loss)(params, jax.random.normal(k, (8, 4)))
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return np.concatenate([np.asarray(v).ravel() for v in jax.tree.leaves(params)])


def _jax_optimizer_cases():
    import optax

    return {
        "sgd": (lambda ns: ns["sgd"](0.05), optax.sgd(0.05)),
        "momentum": (
            lambda ns: ns["sgd"](0.05, momentum=0.9),
            optax.sgd(0.05, momentum=0.9),
        ),
        "nesterov_l2": (
            lambda ns: ns["l2"](0.01, ns["sgd"](0.05, momentum=0.5, nesterov=True)),
            optax.chain(
                optax.add_decayed_weights(0.01),
                optax.sgd(0.05, momentum=0.5, nesterov=True),
            ),
        ),
        "rmsprop": (lambda ns: ns["rmsprop"](0.01), optax.rmsprop(0.01)),
        "rmsprop_args": (
            lambda ns: ns["rmsprop"](0.01, decay=0.99, eps=1e-6),
            optax.rmsprop(0.01, decay=0.99, eps=1e-6),
        ),
        "adam": (lambda ns: ns["adam"](0.01), optax.adam(0.01)),
        "adam_l2": (
            lambda ns: ns["l2"](0.1, ns["adam"](0.01, b1=0.8, b2=0.99)),
            optax.chain(
                optax.add_decayed_weights(0.1), optax.adam(0.01, b1=0.8, b2=0.99)
            ),
        ),
        "adamw": (
            lambda ns: ns["adamw"](0.01, weight_decay=0.1),
            optax.adamw(0.01, weight_decay=0.1),
        ),
        "adamw_mask": (
            lambda ns: ns["adamw"](
                0.01, weight_decay=0.1, mask=lambda p: {k: k != "b" for k in p}
            ),
            optax.adamw(
                0.01, weight_decay=0.1, mask=lambda p: {k: k != "b" for k in p}
            ),
        ),
        "adam_schedule": (
            lambda ns: ns["adam"](optax.linear_schedule(0.0, 0.02, 5)),
            optax.adam(optax.linear_schedule(0.0, 0.02, 5)),
        ),
    }


JAX_OPTIMIZERS = [
    "sgd",
    "momentum",
    "nesterov_l2",
    "rmsprop",
    "rmsprop_args",
    "adam",
    "adam_l2",
    "adamw",
    "adamw_mask",
    "adam_schedule",
]


@pytest.mark.parametrize("name", JAX_OPTIMIZERS)
def test_jax_transformation_equals_optax(name):
    import optax

    ns = reference("jax")
    hand, library = _jax_optimizer_cases()[name]
    ours = _jax_run(hand(ns))
    np.testing.assert_allclose(ours, _jax_run(library), rtol=2e-5, atol=2e-6)
    assert np.abs(ours - _jax_run(optax.sgd(0.0))).max() > 1e-3


def test_jax_l2_and_decoupled_decay_differ():
    ns = reference("jax")
    l2 = _jax_run(ns["l2"](0.1, ns["adam"](0.01)))
    decoupled = _jax_run(ns["adamw"](0.01, weight_decay=0.1))
    assert np.abs(l2 - decoupled).max() > 1e-4


def _jax_schedule_cases():
    import optax.schedules as S

    return {
        "step_decay": (
            lambda ns, t: ns["step_decay"](t, 0.3, 7, 0.5),
            S.exponential_decay(0.3, 7, 0.5, staircase=True),
        ),
        "exponential": (
            lambda ns, t: ns["exponential"](t, 0.3, 0.9),
            S.exponential_decay(0.3, 1, 0.9),
        ),
        "cosine": (
            lambda ns, t: ns["cosine"](t, 0.3, 40, 0.01),
            S.cosine_decay_schedule(0.3, 40, alpha=0.01 / 0.3),
        ),
        "warmup_cosine": (
            lambda ns, t: ns["warmup_cosine"](t, 0.06, 0.3, 6, 40, 0.01),
            S.warmup_cosine_decay_schedule(0.06, 0.3, 6, 40, 0.01),
        ),
        "one_cycle": (
            lambda ns, t: ns["one_cycle"](t, 0.3, 40, pct_start=0.25),
            S.cosine_onecycle_schedule(40, 0.3, pct_start=0.25),
        ),
        "sgdr": (
            lambda ns, t: ns["sgdr"](t, 0.3, 5, 0.01, period_mult=2),
            S.join_schedules(
                [
                    S.cosine_decay_schedule(0.3, n, alpha=0.01 / 0.3)
                    for n in (5, 10, 20)
                ],
                boundaries=[5, 15],
            ),
        ),
    }


@pytest.mark.parametrize(
    "name",
    ["step_decay", "exponential", "cosine", "warmup_cosine", "one_cycle", "sgdr"],
)
def test_jax_schedule_equals_optax_schedules(name):
    import jax
    import jax.numpy as jnp

    ns = reference("jax")
    hand, library = _jax_schedule_cases()[name]
    steps = jnp.arange(35 if name == "sgdr" else 40)
    ours = np.asarray(hand(ns, steps))
    theirs = np.asarray(jax.vmap(library)(steps))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)
    # Also one step at a time under jit, as an optimizer calls it.
    one = jax.jit(lambda t: hand(ns, t))
    np.testing.assert_allclose(
        [float(one(t)) for t in steps[:12]], theirs[:12], rtol=1e-5, atol=1e-7
    )
    assert np.ptp(ours) > 1e-3
