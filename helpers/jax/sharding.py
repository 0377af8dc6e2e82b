"""Meshes, shardings and multi-process runs in JAX (chapter 9): ``H.sharding``, JAX-only.

A mesh names the axes of a grid of devices; a ``NamedSharding(mesh, PartitionSpec(...))`` says
which array axis is split over which mesh axis. ``jax.jit`` then runs one program on every
device and inserts the collectives (all-reduce of the gradients, for data parallelism) itself.
This module holds the plumbing around that: building meshes, placing a batch and parameters,
and the worker that several processes joined by ``jax.distributed.initialize`` run. Every run
trains the same small MLP on :func:`helpers.distributed.toy_data`, so it can be compared with
:func:`reference_training`.

Simulated devices: ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (or the
``jax_num_cpu_devices`` option) must be set before JAX starts its CPU backend, so
:func:`run_script` starts a fresh process for it. Run one process of a multi-process run::

    python -m helpers.jax.sharding --sizes '{...}' --out DIR \\
        --coordinator 127.0.0.1:PORT --num-processes 2 --process-id 0
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from helpers.distributed import (
    child_env,
    free_port,
    run_processes,
    sizes_from_json,
    sizes_to_json,
    toy_data,
)
from helpers.scale import DataParallelSizes

__all__ = [
    "launch_processes",
    "load_results",
    "make_mesh",
    "make_model",
    "reference_training",
    "replicate",
    "shard_batch",
    "simulate_cpu_devices",
    "train",
]
__framework_only__ = True  # PyTorch's counterpart is helpers.torch.parallel (DDP)

Result = dict[str, np.ndarray]


def make_mesh(
    shape: tuple[int, ...] | None = None,
    axes: tuple[str, ...] = ("data",),
    *,
    device: str | None = None,
) -> Mesh:
    """A mesh over all devices (of every process) with named ``axes``.

    ``shape`` defaults to ``(number of devices,)``; ``device`` picks a platform (``"cpu"``:
    the simulated CPU devices even on a GPU machine), default JAX's default backend.
    ``ValueError`` when the shape does not match ``axes`` or the number of devices.
    """
    devices = jax.devices(device)
    n = len(devices)
    shape = (n,) if shape is None else tuple(shape)
    if len(shape) != len(axes) or int(np.prod(shape)) != n:
        raise ValueError(
            f"a mesh of shape {shape} with axes {axes} does not fit {n} devices"
        )
    # Auto axes: jax.jit decides how intermediates are sharded (the classic GSPMD behaviour
    # the chapter teaches); JAX 0.10's default, Explicit, makes sharding part of every type.
    auto = (jax.sharding.AxisType.Auto,) * len(axes)
    return jax.make_mesh(shape, axes, devices=devices, axis_types=auto)


def shard_batch(x: np.ndarray | jax.Array, mesh: Mesh, axis: str = "data") -> jax.Array:
    """Split axis 0 (the batch) of ``x`` over mesh axis ``axis``; other axes stay whole.

    In a multi-process run ``x`` is this process's rows only (``make_array_from_process_local_data``
    assembles the global array). ``ValueError`` when the batch does not divide evenly.
    """
    parts = mesh.shape[axis]
    rows = x.shape[0] * (jax.process_count() if jax.process_count() > 1 else 1)
    if rows % parts:
        raise ValueError(f"a batch of {rows} rows does not split over {parts} devices")
    sharding = NamedSharding(mesh, P(axis, *([None] * (x.ndim - 1))))
    if jax.process_count() > 1:
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))
    return jax.device_put(x, sharding)


def simulate_cpu_devices(count: int = 8) -> int:
    """Split the CPU into ``count`` XLA devices; returns how many CPU devices JAX has.

    Works only before JAX runs its first operation (the backend then exists and its device
    count is fixed): later it warns and leaves the count as it is. The same as
    ``XLA_FLAGS=--xla_force_host_platform_device_count=count`` set before starting Python.
    """
    import warnings

    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:
        warnings.warn(
            "JAX has already started its CPU backend; restart the kernel and call "
            "simulate_cpu_devices before any JAX operation to get several devices",
            stacklevel=2,
        )
    return len(jax.devices("cpu"))


def replicate(tree, mesh: Mesh):
    """A full copy of every array of ``tree`` on every device of ``mesh``."""
    sharding = NamedSharding(mesh, P())
    if jax.process_count() > 1:
        return jax.tree.map(
            lambda v: jax.make_array_from_process_local_data(sharding, np.asarray(v)),
            tree,
        )
    return jax.device_put(tree, sharding)


class _MLP(nnx.Module):
    def __init__(self, sizes: DataParallelSizes, rngs: nnx.Rngs) -> None:
        self.l1 = nnx.Linear(sizes.features, sizes.hidden, rngs=rngs)
        self.l2 = nnx.Linear(sizes.hidden, sizes.classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.l2(jnp.tanh(self.l1(x)))  # (B, features) -> (B, classes)


def make_model(sizes: DataParallelSizes) -> nnx.Module:
    """The MLP every run trains, initialised from ``sizes.seed``: ``Linear``, tanh, ``Linear``
    (no BatchNorm, like PyTorch's, whose DDP workers would each normalise their own share).

    The key is JAX's ``rbg`` generator: on CPU the default threefry initialisers take
    seconds to compile, in every process of a multi-process run.
    """
    return _MLP(sizes, nnx.Rngs(jax.random.key(sizes.seed, impl="rbg")))


def _order(sizes: DataParallelSizes, epoch: int) -> np.ndarray:
    return np.random.default_rng([sizes.seed, epoch]).permutation(sizes.examples)


def train(
    sizes: DataParallelSizes, mesh: Mesh | None = None
) -> tuple[dict[str, np.ndarray], list[float]]:
    """``sizes.steps`` SGD steps of the global batch; data-parallel over ``mesh`` if given.

    Without a mesh every step runs on one device. With one, the parameters are replicated,
    each global batch is split over mesh axis ``"data"`` (each process passes only its own
    rows), and ``jax.jit`` inserts the all-reduce that averages the gradients. Returns the
    final parameters (``{path: float32 array}``) and the loss per step.
    """
    x, y = toy_data(sizes)
    graphdef, params = nnx.split(make_model(sizes))
    tx = optax.sgd(sizes.learning_rate)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, xb, yb):
        def loss_fn(params):
            logits = nnx.merge(graphdef, params)(xb)  # (B, classes)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    if mesh is not None:
        params, opt_state = replicate((params, opt_state), mesh)
    per_epoch, losses = sizes.examples // sizes.batch_size, []
    rank, procs = jax.process_index(), jax.process_count()
    for t in range(sizes.steps):
        epoch, i = divmod(t, per_epoch)
        idx = _order(sizes, epoch)[i * sizes.batch_size : (i + 1) * sizes.batch_size]
        if mesh is not None:
            local = np.array_split(idx, procs)[rank]  # this process's rows of the batch
            xb, yb = (
                shard_batch(x[local], mesh),
                shard_batch(y[local].astype(np.int32), mesh),
            )
        else:
            xb, yb = x[idx], y[idx].astype(np.int32)  # (B, features), (B,)
        params, opt_state, loss = step(params, opt_state, xb, yb)
        losses.append(loss)
    flat = {
        "/".join(map(str, path)): np.asarray(v.addressable_data(0))
        for path, v in nnx.to_flat_state(params)
    }
    return flat, [float(np.asarray(v.addressable_data(0))) for v in losses]


def reference_training(sizes: DataParallelSizes) -> Result:
    """Single-device training: what every data-parallel run must equal.

    Returns ``{parameter path: float32 array}`` plus ``"losses"`` ``(steps,)``.
    """
    params, losses = train(sizes)
    return {**params, "losses": np.asarray(losses, dtype=np.float32)}


def load_results(out_dir: str | Path, count: int) -> list[Result]:
    """What processes ``0 .. count - 1`` wrote; ``RuntimeError`` names a missing one."""
    results = []
    for rank in range(count):
        path = Path(out_dir) / f"rank{rank}.npz"
        if not path.exists():
            raise RuntimeError(f"process {rank} wrote no result ({path} is missing)")
        with np.load(path) as f:
            results.append({k: f[k] for k in f.files})
    return results


def launch_processes(
    sizes: DataParallelSizes, num_processes: int = 2, *, timeout: float = 120.0
) -> tuple[list[Result], float]:
    """Start ``num_processes`` Python processes on this machine that join one JAX runtime
    through ``jax.distributed.initialize`` (coordinator on 127.0.0.1) and train data-parallel
    over one CPU device each, with cross-process CPU collectives (gloo).

    What ``srun`` or a Kubernetes Job does on a cluster, done with ``subprocess`` here. Returns
    each process's result and the wall-clock seconds; ``RuntimeError`` with the failing
    process's output.
    """
    coordinator = f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory() as out_dir:
        commands = [
            [
                sys.executable,
                "-m",
                "helpers.jax.sharding",
                "--sizes",
                sizes_to_json(sizes),
                "--out",
                out_dir,
                "--coordinator",
                coordinator,
                "--num-processes",
                str(num_processes),
                "--process-id",
                str(i),
            ]
            for i in range(num_processes)
        ]
        seconds = run_processes(
            commands,
            child_env(XLA_FLAGS="--xla_force_host_platform_device_count=1"),
            timeout=timeout,
            what="the JAX processes",
        )
        return load_results(out_dir, num_processes), seconds


def main(argv: list[str] | None = None) -> None:
    """One process of a multi-process run: join the coordinator, train, write the result."""
    parser = argparse.ArgumentParser(description="one process of a jax.distributed run")
    parser.add_argument("--sizes", required=True, help="DataParallelSizes as JSON")
    parser.add_argument("--out", required=True, help="folder for rank{N}.npz")
    parser.add_argument("--coordinator", required=True, help="HOST:PORT of process 0")
    parser.add_argument("--num-processes", type=int, required=True)
    parser.add_argument("--process-id", type=int, required=True)
    args = parser.parse_args(argv)
    jax.distributed.initialize(
        args.coordinator, num_processes=args.num_processes, process_id=args.process_id
    )
    try:
        params, losses = train(sizes_from_json(args.sizes), make_mesh())
        result = {**params, "losses": np.asarray(losses, dtype=np.float32)}
        path = Path(args.out) / f"rank{args.process_id}.npz"
        np.savez(path.with_suffix(".tmp.npz"), **result)
        path.with_suffix(".tmp.npz").replace(path)
    finally:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main()
