"""Lab 4 self-checks for JAX notebooks: ``H.lab04.check_train_step(train_step)`` etc.

The checks are :mod:`helpers.labs.lab04.checks`, shared with PyTorch; this module builds the
reference NNX models and training steps (one variant per known mistake), counts compilations
for exercise 1 through ``jax.monitoring``, and checks exercise 4's sharding itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding

from helpers.jax.labkit import lab_framework
from helpers.labs.kit import Hints, checking, explainer
from helpers.labs.lab04 import checks as lab04

__all__ = [
    "check_build_mlp",
    "check_data_parallel_grads",
    "check_per_example_grad_norms",
    "check_shard_batch",
    "check_train_step",
]

# Known mistakes that only JAX allows, and JAX's wording of framework-dependent ones.
HINTS = Hints(
    lab04.HINTS,
    {
        "retrace": "the function compiles again at every call: decorate it once with "
        "@jax.jit (at module level) instead of calling jax.jit(...) inside it, which "
        "makes a new function, and a new compilation, each time",
        "key_reused": "a key was reused across layers: create one nnx.Rngs(seed) and pass "
        "the same object to every layer (it hands each one a fresh key); nnx.Rngs(seed) "
        "per layer gives layers of the same shape the same weights",
        "no_update": "apply the gradients: optimizer.update(model, grads) after "
        "nnx.value_and_grad",
        "wrong_axis": "shard the batch axis, axis 0: NamedSharding(mesh, P('data')), not "
        "P(None, 'data'), which splits the features",
        "replicated": "P() copies the whole batch to every device; P('data') splits its "
        "first axis over the mesh axis 'data'",
        "map_params": "vmap maps every argument over axis 0 unless told otherwise: the "
        "parameters are shared by all examples, so in_axes=(None, 0, 0)",
        "not_sharded": "place the batch with a NamedSharding: "
        "jax.device_put(x, NamedSharding(mesh, P('data')))",
    },
)

_explain = explainer(
    {
        "inconsistent sizes for array axes to be mapped": "map_params",
        "device_put` only accepts": "not_sharded",
        "update requires both \\(model, grads\\)": "no_update",
    },
    HINTS,
)

JAX = lab_framework(HINTS, _explain)

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
            per_example = optax.softmax_cross_entropy_with_integer_labels(model(x), y)
            return per_example.sum() if variant == "sum_loss" else per_example.mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        if variant != "no_update":
            optimizer.update(model, grads)
        losses.append(loss_fn(model) if variant == "loss_after_update" else loss)
    return np.asarray(jnp.stack(losses), np.float64), _apply(model, lab04._probe())


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
    with checking("shard_batch", JAX, passed="the batch axis split over 'data'") as c:
        mesh = _mesh()
        rng = np.random.default_rng(43)
        for batch in (16, 24):
            x = rng.normal(size=(batch, 8)).astype(np.float32)
            out = c.call(shard_batch, jnp.asarray(x), mesh)
            arr = c.array(out)
            c.close(
                arr,
                x,
                what="the values",
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


check_per_example_grad_norms = partial(
    lab04.check_per_example_grad_norms, fw=JAX, compilations=_count_compilations
)
check_build_mlp = partial(
    lab04.check_build_mlp,
    fw=JAX,
    build=_MLP,
    apply=_apply,
    module_type="an nnx.Module",
)
check_train_step = partial(
    lab04.check_train_step,
    fw=JAX,
    setup=_setup,
    train=_train,
    apply=_apply,
    variants=("no_update", "loss_after_update", "sum_loss"),
)
check_data_parallel_grads = partial(lab04.check_data_parallel_grads, fw=JAX)
