"""Lab 4 self-checks for JAX notebooks: ``H.lab04.check_train_step(train_step)`` etc.

The checks are :mod:`helpers.labs.lab04.checks`, shared with PyTorch; this module builds the
reference NNX models and training steps (one variant per known mistake), counts compilations
for exercise 1 through ``jax.monitoring``, and checks exercise 4a's sharding itself. Each check
explains the JAX errors that mean one mistake in its own exercise (``EXPLAIN``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding

from helpers.jax.labkit import lab_framework
from helpers.labs.kit import Checker, Hints, checking, explainer
from helpers.labs.lab04 import checks as lab04
from helpers.labs.lab04 import ste, wording

__all__ = [
    "check_build_mlp",
    "check_data_parallel_grads",
    "check_per_example_grad_norms",
    "check_round_ste",
    "check_shard_batch",
    "check_train_step",
]

# The shared hints, and JAX's own (helpers.labs.lab04.wording).
HINTS = Hints(lab04.HINTS, ste.HINTS, wording.JAX)

# JAX errors that mean one mistake, per exercise.
_MAP_PARAMS = {"inconsistent sizes for array axes to be mapped": "map_params"}
# float(x), int(x) or x.item() on a tracer, inside the student's jitted step
_CONCRETE = (
    r"problem arose with the `(float|int|complex)` function|in the item\(\) method"
)
# optax.softmax_cross_entropy(logits, y) with y integer labels (B,): y * logits (B, C)
_ONE_HOT = r"shapes=\[\((\d+),\), \(\1, \d+\)\]"
EXPLAIN = {
    "per_example_grad_norms": {
        **_MAP_PARAMS,
        # W's (B, D, C) and b's (B, C) gradients summed over their last axis only
        "Incompatible shapes for broadcasting": "flatten_leaves",
        # xi[None] with a 0-d label yi: optax indexes the labels' axis 1
        "axis 1 is out of bounds for array of dimension 1": "batch_of_one",
    },
    "build_mlp": {
        "'PRNGKeyArray' object has no attribute": "rngs_type",
        r"Found data on value of type '<class 'list'>'": "nnx_list",
    },
    "train_step": {
        "update requires both \\(model, grads\\)": "no_update",
        _CONCRETE: "loss_number_jit",
        _ONE_HOT: "integer_labels",
    },
    "shard_batch": {
        "device_put` only accepts": "not_sharded",
        "is not found in mesh": "axis_name",
        "has duplicate entries": "wrong_axis",
    },
    "data_parallel_grads": {
        # params mapped, or x and y cut into different numbers of shards
        "inconsistent sizes for array axes to be mapped": "dp_mapped_sizes",
        "dot_general requires contracting dimensions": "shard_x_shape",
        "Incompatible shapes for broadcasting": "shard_y",
    },
    "round_ste": {
        "TracerArrayConversionError|The numpy.ndarray conversion method": "ste_numpy",
        "fwd rule .* must produce a pair|bwd rule must produce|No VJP defined": (
            "ste_custom_vjp"
        ),
    },
}
JAX = lab_framework(HINTS, explainer({}, HINTS))
FRAMEWORKS = {
    exercise: replace(JAX, explain=explainer(messages, HINTS))
    for exercise, messages in EXPLAIN.items()
}

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def _count_compilations(thunk: Callable[[], Any]) -> int:
    """How many times XLA compiled a program while ``thunk()`` ran (``jax.monitoring``)."""
    events: list[str] = []

    def listener(name: str, seconds: float, **kwargs: Any) -> None:
        if name == _COMPILE_EVENT:
            events.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        thunk()
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    return len(events)


class _MLP(nnx.Module):
    """The reference of exercise 2; ``variant`` builds a known mistake instead."""

    def __init__(self, seed: int, variant: str = "") -> None:
        rngs = nnx.Rngs(seed)
        widths = lab04.MLP_WIDTHS
        self.layers = nnx.List(
            [
                nnx.Linear(
                    a, b, rngs=nnx.Rngs(seed) if variant == "key_reused" else rngs
                )
                for a, b in itertools.pairwise(widths)
            ]
        )
        self.activation = variant != "no_activation"

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers[:-1]:
            x = layer(x)
            x = nnx.relu(x) if self.activation else x
        return self.layers[-1](x)


def _apply(model: Any, x: np.ndarray) -> np.ndarray:
    if not isinstance(model, nnx.Module):
        raise TypeError(type(model).__name__)
    return np.asarray(model(jnp.asarray(x)), np.float64)


def _parameters(model: Any) -> list[np.ndarray]:
    """What an optimizer over ``nnx.Param`` trains: the model's parameters, as numpy."""
    return [np.asarray(v) for v in jax.tree.leaves(nnx.state(model, nnx.Param))]


def _setup() -> tuple[nnx.Module, nnx.Optimizer]:
    model = _MLP(0)
    return model, nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)


def _train(variant: str) -> tuple[np.ndarray, np.ndarray]:
    """Two reference steps (or a known mistake's): the losses ``(2,)`` and the outputs."""
    model, optimizer = _setup()
    losses = []
    for x, y in lab04.train_batches():
        x, y = jnp.asarray(x), jnp.asarray(y, jnp.int32)

        def loss_fn(model: nnx.Module, x: jax.Array = x, y: jax.Array = y) -> jax.Array:
            logits = model(x)
            if variant == "nll_on_logits":
                return -jnp.mean(logits[jnp.arange(len(y)), y])
            if variant == "double_softmax":
                logits = jax.nn.softmax(logits)
            per_example = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            return per_example.sum() if variant == "sum_loss" else per_example.mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        if variant != "no_update":
            optimizer.update(model, grads)
        losses.append(loss_fn(model) if variant == "loss_after_update" else loss)
    return np.asarray(jnp.stack(losses), np.float64), _apply(model, lab04._probe())


def _lost_update(train_step: Callable) -> str:
    """ "jax_jit" if the step's unwrapped function updates a fresh model, else "".

    Asked only when the step left the weights unchanged: ``jax.jit`` passes the model and the
    optimizer as pytrees, so the step updates copies, which are dropped; ``nnx.jit`` writes
    the updates back, so a right step it wraps never gets here.
    """
    inner = getattr(train_step, "__wrapped__", None)
    if not callable(inner):
        return ""
    model, optimizer = _setup()
    before = _apply(model, lab04._probe())
    try:
        for x, y in lab04.train_batches():
            inner(model, optimizer, jnp.asarray(x), jnp.asarray(y, jnp.int32))
    except Exception:
        return ""
    return "" if np.allclose(before, _apply(model, lab04._probe())) else "jax_jit"


def _mesh() -> jax.sharding.Mesh:
    devices = jax.devices("cpu")[:8]
    return jax.make_mesh(
        (len(devices),),
        ("data",),
        axis_types=(jax.sharding.AxisType.Auto,),
        devices=devices,
    )


def check_shard_batch(shard_batch: Callable) -> None:
    """``shard_batch(x, mesh)`` -> ``x`` placed with ``NamedSharding(mesh, P("data"))``."""
    with checking(
        "shard_batch",
        FRAMEWORKS["shard_batch"],
        passed="the batch axis split over 'data'",
    ) as c:
        mesh = _mesh()
        rng = np.random.default_rng(43)
        for batch in (16, 24):
            x = rng.normal(size=(batch, 8)).astype(np.float32)
            out = c.call(shard_batch, jnp.asarray(x), mesh)
            if isinstance(out, jax.sharding.Sharding):
                raise c.fail(
                    f"expected {JAX.array_type}, got a {type(out).__name__}",
                    c.hint("sharding_not_array"),
                )
            arr = c.array(out)
            devices = len(mesh.devices.flat)
            if arr.shape == (devices, batch // devices, x.shape[1]):
                raise c.fail(
                    f"the result has shape {arr.shape}, expected x's, {x.shape}",
                    c.hint("shard_reshape"),
                )
            c.expect(
                arr.dtype == np.float32,
                f"the result has dtype {arr.dtype}, expected float32",
                c.hint("dtype"),
            )
            c.close(
                arr,
                x,
                what="the value",
                hint="shard_batch moves x; it does not change it",
            )
            sharding = out.sharding
            if not isinstance(sharding, NamedSharding):
                raise c.fail(
                    f"the result has a {type(sharding).__name__}", c.hint("not_sharded")
                )
            c.expect(
                sharding.mesh == mesh,
                "the result lives on another mesh",
                "use the mesh you are given",
            )
            spec = tuple(sharding.spec) + (None,) * (arr.ndim - len(sharding.spec))
            if spec != ("data", None):
                key = "wrong_axis" if "data" in spec else "replicated"
                raise c.fail(
                    f"the result is sharded as P{spec}, expected P('data', None)",
                    c.hint(key),
                )


def _ste_gradient(
    c: Checker, round_ste: Callable, x: np.ndarray, g: np.ndarray
) -> np.ndarray:
    """The gradient of ``sum(g * round_ste(x))`` with respect to ``x``, by ``jax.vjp``.

    Differentiating runs a custom_vjp's ``fwd``, not the function: its output must be
    ``round(x)`` too (fails ``c`` otherwise)."""
    out, vjp = c.call(jax.vjp, round_ste, jnp.asarray(x))
    out = c.array(out)
    if out.shape == x.shape and not np.allclose(out, np.round(x), rtol=0, atol=1e-6):
        raise c.fail(
            "under jax.vjp (which runs fwd) the output is not round(x)",
            c.hint("ste_fwd_rule"),
        )
    (dx,) = c.call(vjp, jnp.asarray(g))
    return c.array(dx)


def _ste_zero_gradient(round_ste: Callable, x: np.ndarray) -> str:
    """The hint for a zero gradient: a subtraction and no custom rule in the jaxpr
    (``x + round(x) - x``, or ``stop_gradient`` on ``round(x)`` alone) has "ste_no_detach",
    anything else "ste_plain_round"."""
    text = str(jax.make_jaxpr(round_ste)(jnp.asarray(x)))
    if re.search(r"custom_[jv]jp_call", text):
        return "ste_plain_round"
    return "ste_no_detach" if re.search(r"\bsub\b", text) else "ste_plain_round"


check_round_ste = partial(
    ste.check_round_ste,
    fw=FRAMEWORKS["round_ste"],
    gradient=_ste_gradient,
    zero_gradient=_ste_zero_gradient,
    jit=jax.jit,
)
check_per_example_grad_norms = partial(
    lab04.check_per_example_grad_norms,
    fw=FRAMEWORKS["per_example_grad_norms"],
    compilations=_count_compilations,
)
check_build_mlp = partial(
    lab04.check_build_mlp,
    fw=FRAMEWORKS["build_mlp"],
    build=_MLP,
    apply=_apply,
    module_type="an nnx.Module",
    parameters=_parameters,
)
check_train_step = partial(
    lab04.check_train_step,
    fw=FRAMEWORKS["train_step"],
    setup=_setup,
    train=_train,
    apply=_apply,
    variants=(
        "no_update",
        "loss_after_update",
        "sum_loss",
        "nll_on_logits",
        "double_softmax",
    ),
    lost_update=_lost_update,
)
check_data_parallel_grads = partial(
    lab04.check_data_parallel_grads, fw=FRAMEWORKS["data_parallel_grads"]
)
