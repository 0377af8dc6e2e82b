"""Chapter 4's claims, tested: per-example gradients from vmap equal a loop of single-example
gradients (both frameworks), and data-parallel training sharded over 8 simulated devices equals
single-device training to 1e-5 (JAX, in a subprocess: the device count must be set before JAX
starts, and this process has started it already)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from helpers.notebooks import ROOT


def _data(batch: int = 12, d: int = 5, classes: int = 3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, d)).astype(np.float32)
    y = rng.integers(0, classes, size=batch)
    W = rng.normal(size=(d, classes)).astype(np.float32)
    b = rng.normal(size=classes).astype(np.float32)
    return x, y, W, b


def _per_example_jax(x, y, W, b):
    import jax
    import jax.numpy as jnp
    import optax

    def loss(params, xi, yi):
        logits = xi @ params["W"] + params["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, yi)

    params = {"W": jnp.asarray(W), "b": jnp.asarray(b)}
    xs, ys = jnp.asarray(x), jnp.asarray(y)
    vmapped = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(params, xs, ys)
    looped = [jax.grad(loss)(params, xs[i], ys[i]) for i in range(len(x))]
    return (
        {k: np.asarray(v) for k, v in vmapped.items()},
        {k: np.stack([np.asarray(g[k]) for g in looped]) for k in params},
    )


def _per_example_torch(x, y, W, b):
    import torch
    import torch.nn.functional as F
    from torch.func import grad, vmap

    def loss(params, xi, yi):
        return F.cross_entropy((xi @ params["W"] + params["b"])[None], yi[None])

    params = {"W": torch.from_numpy(W), "b": torch.from_numpy(b)}
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    vmapped = vmap(grad(loss), in_dims=(None, 0, 0))(params, xs, ys)
    looped = [grad(loss)(params, xs[i], ys[i]) for i in range(len(x))]
    return (
        {k: v.numpy() for k, v in vmapped.items()},
        {k: torch.stack([g[k] for g in looped]).numpy() for k in params},
    )


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_vmapped_per_example_gradients_equal_a_loop(framework):
    fn = {"torch": _per_example_torch, "jax": _per_example_jax}[framework]
    vmapped, looped = fn(*_data())
    for k in ("W", "b"):
        assert (
            vmapped[k].shape
            == looped[k].shape
            == (12, *_data()[2 if k == "W" else 3].shape)
        )
        np.testing.assert_allclose(vmapped[k], looped[k], rtol=1e-5, atol=1e-7)
    # And they are per example: the rows differ, and their mean is the batch gradient.
    assert not np.allclose(vmapped["b"][0], vmapped["b"][1])


_SHARDED = textwrap.dedent(
    """
    import jax
    jax.config.update("jax_num_cpu_devices", 8)
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.sharding import NamedSharding, PartitionSpec as P

    devices = jax.devices("cpu")
    assert len(devices) == 8, devices
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,),
                         devices=devices)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(64, 10)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 4, 64), jnp.int32)
    params = {"W": jnp.asarray(rng.normal(size=(10, 4)) * 0.1, jnp.float32),
              "b": jnp.zeros(4)}

    def loss(p, x, y):
        logits = x @ p["W"] + p["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def step(p, x, y):
        g = jax.grad(loss)(p, x, y)
        return jax.tree.map(lambda a, b: a - 0.5 * b, p, g)

    single, sharded = params, jax.device_put(params, NamedSharding(mesh, P()))
    xs, ys = jax.device_put((x, y), NamedSharding(mesh, P("data")))
    assert len(xs.sharding.device_set) == 8
    for _ in range(10):
        single, sharded = step(single, x, y), step(sharded, xs, ys)
    diff = max(float(jnp.abs(a - b).max())
               for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(sharded)))
    moved = float(jnp.abs(single["W"] - params["W"]).max())
    print(diff, moved)
    """
)


def test_sharded_data_parallel_training_equals_single_device():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # The script sets jax_num_cpu_devices, not the XLA flag: a device-count flag appended to
    # a caller's XLA_FLAGS has no effect after a bare word (XLA stops reading there).
    out = subprocess.run(
        [sys.executable, "-c", _SHARDED],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    diff, moved = map(float, out.stdout.split())
    assert moved > 1e-3  # training changed the parameters
    assert diff < 1e-5
