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
from helpers.labs.lab04 import ste

__all__ = [
    "check_build_mlp",
    "check_data_parallel_grads",
    "check_per_example_grad_norms",
    "check_round_ste",
    "check_shard_batch",
    "check_train_step",
]

# Known mistakes that only JAX allows, and JAX's wording of framework-dependent ones.
HINTS = Hints(
    lab04.HINTS,
    ste.HINTS,
    {
        "retrace": "the function compiles again at every call: decorate it once with "
        "@jax.jit (at module level) instead of calling jax.jit(...) inside it, which "
        "makes a new function, and a new compilation, each time",
        "key_reused": "a key was reused across layers: create one nnx.Rngs(seed) and pass "
        "the same object to every layer (it hands each one a fresh key); nnx.Rngs(seed) "
        "per layer gives layers of the same shape the same weights",
        "no_update": "apply the gradients: optimizer.update(model, grads) after "
        "nnx.value_and_grad",
        "wrong_axis": "shard the batch axis, axis 0, only: NamedSharding(mesh, P('data')) "
        "(P(None, 'data') splits the features; a mesh axis can split one array axis only)",
        "replicated": "P() copies the whole batch to every device; P('data') splits its "
        "first axis over the mesh axis 'data'",
        "map_params": "vmap maps every argument over axis 0 unless told otherwise: the "
        "parameters are shared by all examples, so in_axes=(None, 0, 0)",
        "not_sharded": "place the batch with a NamedSharding: "
        "jax.device_put(x, NamedSharding(mesh, P('data')))",
        "axis_name": "name the mesh's axis as it is, 'data': P('data') (a PartitionSpec "
        "names mesh axes, and this mesh has only 'data')",
        "sharding_not_array": "return the array, placed: jax.device_put(x, sharding), not "
        "the sharding itself",
        "dtype": "keep float32, the dtype of the inputs: no .astype(jnp.float16), bfloat16 "
        "or float64 on the way",
        "wrt_x": "differentiate with respect to the parameters: jax.grad(loss_fn) "
        "differentiates its first argument, params (argnums=0), not x",
        "map_labels": "map y along with x: in_axes=(None, 0, 0) gives each example its own "
        "label (with in_axes=(None, 0, None) every example is scored against the whole y)",
        "flatten_leaves": "W's and b's gradients have different shapes, (B, D, C) and "
        "(B, C): flatten each per example, g.reshape(B, -1), and sum its squares over axis 1",
        "not_seeded": "build every layer from nnx.Rngs(seed), the seed given: two calls "
        "with the same seed must give the same weights",
        "class_not_instance": "return a network, an instance: MLP(nnx.Rngs(seed)), not "
        "the class MLP",
        "state_not_module": "return the nnx.Module itself, not its nnx.state(...)",
        "rngs_type": "pass an nnx.Rngs(seed) as rngs, not a key: the layers draw their "
        "keys from it (rngs.params())",
        "nll_on_logits": "the cross-entropy is -log softmax(logits)[y], not -logits[y]: "
        "use optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()",
        "double_softmax": "optax.softmax_cross_entropy_with_integer_labels applies the "
        "log-softmax itself: give it the logits, model(x), not jax.nn.softmax(model(x))",
        "jax_jit": "your step updates the model when run as it is, but jax.jit runs it on "
        "copies of the model and the optimizer, so the update is lost: decorate it with "
        "@nnx.jit, which writes the changes back into your objects",
        "loss_number_jit": "inside a jitted function the arrays are tracers, with no value "
        "yet: float(...), int(...) and .item() fail there. Return the loss itself, a 0-d "
        "array",
        "integer_labels": "optax.softmax_cross_entropy expects one-hot labels (B, C): with "
        "integer labels (B,) use optax.softmax_cross_entropy_with_integer_labels(logits, y)",
        "shard_x_shape": "cut x into (n_shards, B / n_shards, D): "
        "x.reshape(n_shards, -1, *x.shape[1:]) keeps each example's D features together",
        "shard_y": "shard y like x, y.reshape(n_shards, -1), and map over both: "
        "in_axes=(None, 0, 0)",
        "ste_numpy": "compute with jax.numpy: jnp.round(x), not np.round(np.asarray(x)): "
        "a NumPy array leaves JAX, so no gradient reaches x and jit cannot trace it",
        "ste_plain_round": "round's derivative is 0 almost everywhere, so jnp.round passes "
        "no gradient back; the STE replaces it by 1: a jax.custom_vjp whose bwd returns the "
        "incoming cotangent unchanged, (g,) (or x + jax.lax.stop_gradient(jnp.round(x) - x))",
        "ste_no_detach": "x + jnp.round(x) - x has round's gradient, 0: the two x terms "
        "cancel in the backward pass too. Stop the correction's gradient, "
        "x + jax.lax.stop_gradient(jnp.round(x) - x), so that only the first x's gradient, "
        "1, remains",
        "ste_detached_x": "stop the gradient of the correction, not of x: "
        "x + jax.lax.stop_gradient(jnp.round(x) - x); jax.lax.stop_gradient(x) + "
        "(jnp.round(x) - x) has the gradient 0 - 1 = -1",
        "ste_ties": "round ties to the even integer, as jnp.round does (2.5 -> 2, "
        "-0.5 -> -0, 1.5 -> 2): jax.lax.round rounds half away from zero unless told "
        "otherwise (-2.5 -> -3), and jnp.floor(x + 0.5) rounds every tie up",
        "ste_ones": "pass the incoming cotangent through as it is: bwd returns (g,), not "
        "(jnp.ones_like(g),), which is right only when the incoming gradient is all ones",
        "ste_custom_vjp": "a jax.custom_vjp needs round_ste.defvjp(fwd, bwd): fwd(x) "
        "returns a pair, (output, residuals), here (jnp.round(x), None); bwd(residuals, g) "
        "returns one cotangent per argument, as a tuple: (g,)",
        "ste_fwd_rule": "jax.grad and jax.vjp run fwd instead of the function itself: fwd "
        "must return the same output, (jnp.round(x), residuals), not (x, ...)",
    },
)

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
    },
    "build_mlp": {"'PRNGKeyArray' object has no attribute": "rngs_type"},
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
        **_MAP_PARAMS,
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
    """The hint for a zero gradient: ``x + round(x) - x`` (a subtraction, no custom rule
    nor stop_gradient in its jaxpr) has "ste_no_detach", anything else "ste_plain_round"."""
    text = str(jax.make_jaxpr(round_ste)(jnp.asarray(x)))
    if re.search(r"custom_[jv]jp_call|stop_gradient", text):
        return "ste_plain_round"
    if re.search(r"\bround\b", text) and re.search(r"\bsub\b", text):
        return "ste_no_detach"
    return "ste_plain_round"


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
