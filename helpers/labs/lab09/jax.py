"""Lab 9 self-checks for JAX notebooks: ``H.lab09.check_data_parallel(data_parallel_step)``.

The sharding checks read the ``NamedSharding`` of what the student returns (which axis is
split over which mesh axis), so they mean the same on 1 device or 8. The collective checks
run the student's per-worker function under ``jax.vmap(..., axis_name="data")``: the named
axis stands for the workers, and ``jax.lax.pmean``/``psum`` over it behave as across devices.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AbstractMesh, AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from helpers.jax.labkit import lab_framework
from helpers.jax.sharding import make_mesh
from helpers.labs.kit import Hints, checking, explainer
from helpers.labs.lab09 import checks as lab09
from helpers.labs.lab09 import ring

__all__ = [
    "check_average_gradients",
    "check_data_parallel",
    "check_ring_all_reduce",
    "check_shard_batch",
    "check_shard_weight",
]

HINTS = Hints(
    lab09.HINTS,
    lab09.JAX_HINTS,
    ring.HINTS,
    {
        "ring_library": "the exercise writes the collective by hand: communicate only with "
        "jax.lax.ppermute (one chunk to the next worker per step), not jax.lax.psum, pmean, "
        "all_gather, psum_scatter or all_to_all",
        "ring_shape": "return one 1-D array of N numbers, every summed chunk in its place: "
        "chunks.reshape(-1) (or jnp.concatenate of a list of chunks), not the (W, N / W) "
        "chunks",
        "ring_traced_index": "jax.lax.axis_index(axis_name) is a traced value, not a Python "
        "int: keep the chunks in one array, chunks = x.reshape(W, -1), read chunk k as "
        "chunks[k] and update it with chunks.at[k].add(...) or .set(...), with k = "
        "(i - s) % W computed on the traced i; no int(i), list[i] or if on i",
        "no_allreduce": "each worker kept its own gradient, so the copies of the "
        "parameters drift apart: average the gradients over the workers with "
        "jax.lax.pmean(grads, 'data') before the update (a pmean of the loss inside "
        "jax.grad leaves each worker its own gradient)",
    },
)
_ERRORS = {
    r"unbound axis name": "axis_name",
    # An axis split over more devices than its length holds: for these checks, the rows of
    # a weight (axis 0) or the features of a batch (axis 1 or later).
    r"array axis 0 is partitioned": "weight_axis",
    r"array axis [1-9]\d* is partitioned": "feature_axis",
    r"is not found in mesh": "mesh_axis_name",
    r"is only valid for values of rank at least": "spec_rank",
    r"`jax\.device_put` only accepts": "device_put_sharding",
}
_TYPES = {
    "DuplicateSpecError": "spec_duplicate",
    "TracerArrayConversionError": "traced_numpy",
}
JAX = lab_framework(HINTS, explainer(_ERRORS, HINTS, types=_TYPES))
# Exercise 5: the worker's index used as a Python int (int(i), a list indexed by i, if i).
_TRACED = ("ConcretizationTypeError", "TracerIntegerConversionError",
           "TracerBoolConversionError")  # fmt: skip
# W taken as jax.device_count() (8 in the notebook): x.reshape(8, -1) fails for the check's N.
RING = replace(JAX, explain=explainer(
    {**_ERRORS, r"cannot reshape array of shape \(\d+,\)": "ring_world"}, HINTS,
    types={**_TYPES, **dict.fromkeys(_TRACED, "ring_traced_index")}))  # fmt: skip


def _spec(c, out, shape) -> tuple:
    """The partition spec of ``out``, one entry per axis (``None``: not split)."""
    if not isinstance(out, jax.Array):
        raise c.fail(
            f"expected a jax.Array placed on the mesh, got {type(out).__name__}",
            "return jax.device_put(x, NamedSharding(mesh, PartitionSpec(...)))",
        )
    c.expect(tuple(out.shape) == tuple(shape), f"the result has shape {out.shape}, "
             f"expected {tuple(shape)}: place the array, do not reshape it")  # fmt: skip
    c.expect(out.dtype == jnp.float32, f"the result has dtype {out.dtype}, expected "
             "float32", c.hint("dtype"))  # fmt: skip
    sharding = out.sharding
    if not isinstance(sharding, NamedSharding):
        raise c.fail(
            f"the array's sharding is a {type(sharding).__name__}, not a NamedSharding",
            c.hint("replicated"),
        )
    spec = tuple(sharding.spec) + (None,) * (len(shape) - len(sharding.spec))
    return spec


def check_shard_batch(student: Any) -> None:
    """``shard_batch(x, mesh) -> x`` on ``mesh`` with its rows split over ``"data"``."""
    with checking(
        "shard_batch", JAX, passed="rows split over 'data', values kept"
    ) as c:
        mesh = make_mesh()
        rng = np.random.default_rng(7)
        n = mesh.shape["data"]
        # Every axis divides evenly, so a wrong split is placed and then named below.
        for shape in ((4 * n, 2 * n), (2 * n, n, 5)):
            x = rng.standard_normal(shape).astype(np.float32)
            out = c.call(student, jnp.asarray(x), mesh)
            spec = _spec(c, out, shape)
            if spec[0] is None and "data" in spec:
                raise c.fail(f"the batch is split as {spec}", c.hint("feature_axis"))
            if all(s is None for s in spec):
                raise c.fail("the batch is not split over 'data'", c.hint("replicated"))
            c.expect(spec[0] == "data" and all(s is None for s in spec[1:]),
                     f"the batch is split as {spec}, expected ('data', None, ...)",
                     c.hint("feature_axis"))  # fmt: skip
            c.close(c.array(out), x, what="the sharded batch's values",
                    hint=c.hint("place_values"))  # fmt: skip


def check_shard_weight(student: Any) -> None:
    """``shard_weight(w, mesh) -> w`` ``(in, out)`` on ``mesh``, columns split over ``"model"``."""
    with checking("shard_weight", JAX, passed="columns split over 'model'") as c:
        n = jax.device_count()
        model = 4 if n % 4 == 0 else 1
        mesh = make_mesh((n // model, model), ("data", "model"))
        rng = np.random.default_rng(8)
        for shape in ((8, 4 * model), (4, 8 * model)):  # rows divide over 4 too
            w = rng.standard_normal(shape).astype(np.float32)
            out = c.call(student, jnp.asarray(w), mesh)
            spec = _spec(c, out, shape)
            if spec == (None, None):
                raise c.fail("the weight is not split", c.hint("replicated"))
            if spec[0] == "model":
                raise c.fail(f"the weight is split as {spec}", c.hint("weight_axis"))
            named = [a for e in spec for a in (e if isinstance(e, tuple) else (e,))]
            if "data" in named:
                raise c.fail(f"the weight is split as {spec}", c.hint("mesh_axis"))
            c.expect(spec == (None, "model"),
                     f"the weight is split as {spec}, expected (None, 'model')",
                     c.hint("weight_axis"))  # fmt: skip
            c.close(c.array(out), w, what="the sharded weight's values",
                    hint=c.hint("place_values"))  # fmt: skip


def _workers_grads(world: int) -> tuple[dict, dict]:
    """Per-worker gradients of the lab's softmax regression ``(world, ...)`` and their mean."""
    x, y, w, b = _problem(world)
    per = [lab09.softmax_regression_grads(w, b, xs, ys)
           for xs, ys in zip(np.split(x, world), np.split(y, world), strict=True)]  # fmt: skip
    grads = {"w": np.stack([g[0] for g in per]), "b": np.stack([g[1] for g in per])}
    full = lab09.softmax_regression_grads(w, b, x, y)
    return grads, {"w": full[0], "b": full[1]}


def _problem(world: int):
    rng = np.random.default_rng(10 + world)
    x = rng.standard_normal((4 * world, 5)).astype(np.float32)
    y = rng.integers(0, 3, 4 * world)
    w = (0.5 * rng.standard_normal((5, 3))).astype(np.float32)
    b = (0.1 * rng.standard_normal(3)).astype(np.float32)
    return x, y, w, b


def _as_dict(c, out) -> dict:
    if isinstance(out, (tuple, list)):
        raise c.fail(f"expected a dict with keys 'w' and 'b', got a {type(out).__name__}",
                     c.hint("pytree"))  # fmt: skip
    if not isinstance(out, dict) or set(out) != {"w", "b"}:
        got = sorted(out) if isinstance(out, dict) else type(out).__name__
        raise c.fail(
            f"expected a dict with keys 'w' and 'b' (the same pytree), got {got}"
        )
    return {k: c.array(v) for k, v in out.items()}


def check_average_gradients(student: Any) -> None:
    """``average_gradients(grads) -> grads`` averaged over the named axis ``"data"``."""
    with checking("average_gradients", JAX, passed="2, 3 and 4 workers") as c:
        c.expect(
            callable(student), f"expected a function, got {type(student).__name__}"
        )
        for world in lab09.WORLD_SIZES:
            grads, mean = _workers_grads(world)
            run = jax.vmap(student, axis_name="data")  # one row per worker
            out = _as_dict(
                c, c.call(run, {k: jnp.asarray(v) for k, v in grads.items()})
            )
            for k in ("w", "b"):
                want = np.broadcast_to(mean[k], grads[k].shape)
                c.expect(out[k].shape == want.shape,
                         f"{k!r} has shape {out[k].shape} on the workers, expected "
                         f"{want.shape} (workers first)", c.hint("local_mean"))  # fmt: skip
                c.expect(out[k].dtype == np.float32, f"{k!r} has dtype {out[k].dtype}, "
                         "expected float32", c.hint("dtype"))  # fmt: skip
                wrong = [
                    (c.hint("summed"), world * want),
                    (c.hint("averaged_twice"), want / world),
                    (c.hint("no_allreduce"), grads[k]),
                    (c.hint("hardcoded_world"), want / 8),  # pmean, then / 8 devices
                    (c.hint("hardcoded_world"), want * world / 8),  # psum / 8 devices
                    (c.hint("len_grads"), want * world / len(grads)),  # psum / 2 leaves
                ]
                c.close(out[k], want, what=f"worker gradients of {k!r}", rtol=1e-4,
                        atol=1e-5, hint=c.hint("pmean_tree"), mistakes=wrong)  # fmt: skip


def _loss(params, x, y):
    logits = x @ params["w"] + params["b"]  # (B, 3)
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1).mean()


def check_data_parallel(student: Any) -> None:
    """``data_parallel_step(loss_fn, params, x, y, lr) -> params``: one SGD step of a worker
    on its share of the batch, equal on every worker to a step on the whole batch."""
    with checking(
        "data_parallel_step", JAX, passed="2, 3 and 4 workers equal one"
    ) as c:
        c.expect(
            callable(student), f"expected a function, got {type(student).__name__}"
        )
        for world in lab09.WORLD_SIZES:
            x, y, w, b = _problem(world)
            lr = 0.3  # not 1 / world: a step without lr must not look like a psum
            _, full = _workers_grads(world)
            grads, _ = _workers_grads(world)
            expected = {"w": w - lr * full["w"], "b": b - lr * full["b"]}
            params = {"w": jnp.asarray(w), "b": jnp.asarray(b)}
            xs = jnp.asarray(x).reshape(
                world, -1, x.shape[1]
            )  # (workers, B / workers, 5)
            ys = jnp.asarray(y, dtype=jnp.int32).reshape(world, -1)
            run = jax.vmap(partial(student, _loss, params), in_axes=(0, 0, None),
                           axis_name="data")  # fmt: skip
            out = _as_dict(c, c.call(run, xs, ys, lr))
            for k in ("w", "b"):
                c.expect(out[k].dtype == np.float32, f"{k!r} has dtype {out[k].dtype}, "
                         "expected float32", c.hint("dtype"))  # fmt: skip
                start = w if k == "w" else b
                want = np.broadcast_to(expected[k], (world, *expected[k].shape))
                sh = want.shape
                wrong = [
                    (c.hint("averaged_twice"), np.broadcast_to(start - lr * full[k] / world, sh)),
                    (c.hint("summed"), np.broadcast_to(start - lr * full[k] * world, sh)),
                    (c.hint("no_allreduce"), start - lr * grads[k]),
                    (c.hint("ascent"), np.broadcast_to(start + lr * full[k], sh)),
                    (c.hint("hardcoded_world"),
                     np.broadcast_to(start - lr * full[k] * world / 8, sh)),  # psum / 8
                    (c.hint("no_lr"), np.broadcast_to(start - full[k], sh)),
                    (c.hint("returned_grads"), np.broadcast_to(full[k], sh)),
                    # each worker's gradient averaged over its own axis 0, not the workers
                    (c.hint("local_mean"),
                     start - lr * grads[k].mean(axis=1, keepdims=True)),
                ]  # fmt: skip
                c.close(out[k], want, what=f"every worker's new {k!r}", rtol=1e-4, atol=1e-5,
                        hint=c.hint("step_recipe"), mistakes=wrong)  # fmt: skip


# Collectives that would do the exercise's work (or part of it) in one call.
_LIBRARY = {"psum", "psum2", "psum_invariant", "pmax", "pmin", "all_gather",
            "all_gather_invariant", "reduce_scatter", "all_to_all",
            "ragged_all_to_all"}  # fmt: skip


def _walk(jaxpr, times: int, found: dict) -> None:
    """Collect the ppermutes ``(perm, numbers, times)`` and library collectives of a jaxpr
    and of every jaxpr inside it; a scan's body counts ``length`` times."""
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "ppermute":
            size = sum(int(np.prod(v.aval.shape)) for v in eqn.invars)
            found["ppermute"].append((eqn.params["perm"], size, times))
        elif name in _LIBRARY:
            found["library"].append(name)
        inner = times * (eqn.params.get("length", 1) if name == "scan" else 1)
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                sub = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr holds a Jaxpr
                if hasattr(sub, "eqns"):
                    if name == "while":
                        found["while"] = True
                    _walk(sub, inner, found)


def _messages(c, student, world: int, n: int) -> list[tuple[int, int, int]]:
    """The messages of the student's function on ``world`` workers, read from the jaxpr of
    its ``shard_map`` over a 1-D mesh (abstract: no devices needed)."""
    mesh = AbstractMesh((world,), ("ring",), axis_types=(AxisType.Auto,))
    run = jax.shard_map(lambda v: student(v, "ring"), mesh=mesh, in_specs=P("ring"),
                        out_specs=P("ring"), check_vma=False)  # fmt: skip
    closed = c.call(
        jax.make_jaxpr(run), jax.ShapeDtypeStruct((world * n,), jnp.float32)
    )
    found = {"ppermute": [], "library": [], "while": False}
    _walk(closed.jaxpr, 1, found)
    if found["library"]:
        raise c.fail(f"your function used jax.lax's {found['library'][0]}",
                     c.hint("ring_library"))  # fmt: skip
    if found["while"] and found["ppermute"]:
        raise c.fail("a ppermute inside a while loop: its steps cannot be counted",
                     c.hint("ring_steps"))  # fmt: skip
    return [(src, dst, size) for perm, size, times in found["ppermute"]
            for src, dst in perm for _ in range(times)]  # fmt: skip


def check_ring_all_reduce(student: Any) -> None:
    """``ring_all_reduce(x, axis_name) -> the sum of x over the workers``, per worker under
    ``shard_map``; only ``jax.lax.ppermute`` between ring neighbours, one chunk per step."""
    with checking("ring_all_reduce", RING,
                  passed="2, 3 and 4 workers, 2 (W - 1) chunks sent each") as c:  # fmt: skip
        c.expect(
            callable(student), f"expected a function, got {type(student).__name__}"
        )
        sent = []  # every case's messages, compared once all the sums are right
        for world in lab09.WORLD_SIZES:
            for x in ring.ring_cases(world):
                sent.append(
                    (_messages(c, student, world, x.shape[1]), world, x.shape[1])
                )
                # The values on a vmapped axis: the same collectives, no devices needed.
                run = jax.vmap(lambda v: student(v, "ring"), axis_name="ring")
                outs = c.array(c.call(run, jnp.asarray(x)))
                if outs.shape == x.shape and np.array_equal(outs, x):  # W = 1: no steps
                    raise c.fail(
                        "every worker returned its own x", c.hint("ring_world")
                    )
                ring.compare_ring(c, outs, x)
        for messages, world, n in sent:
            ring.compare_messages(c, messages, world, n)
