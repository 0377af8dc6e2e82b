# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # PyTorch ↔ JAX cheat sheet
#
# The same operation in both frameworks, topic by topic. Every cell on this page runs when the
# site is built and in the course's tests, and ends by asserting that the PyTorch and the JAX
# lines give the same numbers (randomness is the exception: the two use different generators,
# so the check there is that each is reproducible from its seed).

# %% tags=["remove-cell"]
# Colab only: install the course helpers, and newer flax/optax if Colab's are too old.
# torch and jax are never reinstalled: Colab builds them for its CUDA.
import sys

if "google.colab" in sys.modules:
    import subprocess

    repo = "git+https://github.com/pytorch-jax-course/pytorch-jax-course"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", repo], check=True)
    from helpers.versions import colab_setup

    colab_setup()

# %%
import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from flax import nnx
from torch import nn

# torch.compile's C++ toolchain probe logs a warning on a CUDA build without a GPU: not news.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)


def same(t, j, tol=1e-6):
    """Assert a PyTorch tensor and a JAX array hold the same numbers; print them once."""
    t, j = t.detach().cpu().numpy(), np.asarray(j)
    np.testing.assert_allclose(t, j, rtol=tol, atol=tol)
    print("same:", np.array2string(t.ravel()[:6], precision=4))


# %% [markdown]
# ## Tensors and arrays
#
# | | PyTorch | JAX |
# |---|---|---|
# | create | `torch.tensor([[1., 2.], [3., 4.]])` | `jnp.array([[1., 2.], [3., 4.]])` |
# | shape, dtype | `x.shape`, `x.dtype` | `x.shape`, `x.dtype` |
# | change one entry | `x[0, 0] = 5` (in place) | `x = x.at[0, 0].set(5)` (a new array) |
# | to NumPy | `x.numpy()` (shares memory on the CPU) | `np.asarray(x)` |

# %%
t = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
j = jnp.array([[1.0, 2.0], [3.0, 4.0]])
t[0, 0] = 5.0
j = j.at[0, 0].set(5.0)
same(t @ t.T + t.sum(dim=0), j @ j.T + j.sum(axis=0))

# %% [markdown]
# ## Automatic differentiation
#
# | | PyTorch | JAX |
# |---|---|---|
# | gradient | `x.requires_grad_(); f(x).backward(); x.grad` | `jax.grad(f)(x)` |
# | value and gradient | `loss.item()` then `.grad` | `jax.value_and_grad(f)(x)` |
# | both, functional | `torch.func.grad_and_value(f)(x)`: (gradient, value) | `jax.value_and_grad(f)(x)`: (value, gradient) |
# | functional style | `torch.func.grad(f)(x)` | `jax.grad(f)(x)` |
# | second derivative | `torch.func.grad(torch.func.grad(f))(x)` | `jax.grad(jax.grad(f))(x)` |

# %%
x_t = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
(x_t**3).sum().backward()
g_j = jax.grad(lambda x: (x**3).sum())(jnp.array([0.5, -1.0, 2.0]))
same(x_t.grad, g_j)
d2_t = torch.func.grad(torch.func.grad(torch.sin))(torch.tensor(0.3))
d2_j = jax.grad(jax.grad(jnp.sin))(0.3)
same(d2_t, d2_j)
# The same pair in opposite orders: PyTorch gives (gradient, value), JAX (value, gradient).
grad_t, value_t = torch.func.grad_and_value(torch.sin)(torch.tensor(0.3))
value_j, grad_j = jax.value_and_grad(jnp.sin)(0.3)
same(torch.stack([grad_t, value_t]), jnp.stack([grad_j, value_j]))

# %% [markdown]
# ## Modules
#
# A linear layer stores its weight as (out, in) in PyTorch and as (in, out) in Flax: copy one
# into the other with a transpose. A Flax parameter is an `nnx.Param` variable: read its array
# with `lin.kernel[...]` and replace it with `lin.kernel[...] = array` (Flax 0.12 deprecates
# `.value`).

# %%
lin_t = nn.Linear(3, 2)
lin_j = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
# (out, in) -> (in, out)
lin_j.kernel[...] = jnp.asarray(lin_t.weight.detach().numpy().T)
lin_j.bias[...] = jnp.asarray(lin_t.bias.detach().numpy())
x = np.arange(6, dtype=np.float32).reshape(2, 3)
same(lin_t(torch.from_numpy(x)), lin_j(jnp.asarray(x)))

# %% [markdown]
# ## Optimizers
#
# | | PyTorch | JAX (Optax, Flax NNX) |
# |---|---|---|
# | build | `torch.optim.Adam(model.parameters(), lr)` | `nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)` |
# | one step | `opt.zero_grad(); loss.backward(); opt.step()` | `grads = nnx.grad(loss_fn)(model); opt.update(model, grads)` |
# | Optax alone, on arrays | | `state = tx.init(w)`, then `updates, state = tx.update(grads, state); w = optax.apply_updates(w, updates)` |
#
# The cell takes three Adam steps each way, from the same start.


# %%
class Weights(nnx.Module):
    def __init__(self, w):
        self.w = nnx.Param(jnp.asarray(w))


def loss_fn(model):
    return (model.w[...] ** 2).sum()


w0 = np.array([1.0, -2.0, 3.0], np.float32)
w_t = torch.tensor(w0, requires_grad=True)
opt_t = torch.optim.Adam([w_t], lr=0.1)
model_j = Weights(w0)
opt_j = nnx.Optimizer(model_j, optax.adam(0.1), wrt=nnx.Param)
tx = optax.adam(0.1)
w_j = jnp.asarray(w0)
state = tx.init(w_j)
for _ in range(3):
    opt_t.zero_grad()
    (w_t**2).sum().backward()
    opt_t.step()
    opt_j.update(model_j, nnx.grad(loss_fn)(model_j))
    updates, state = tx.update(jax.grad(lambda w: (w**2).sum())(w_j), state)
    w_j = optax.apply_updates(w_j, updates)
same(w_t, model_j.w[...], tol=1e-5)  # float32: the two order the arithmetic differently
same(w_t, w_j, tol=1e-5)

# %% [markdown]
# ## Data
#
# PyTorch has `torch.utils.data.Dataset` / `DataLoader`; JAX has no loader of its own (use
# NumPy batches, `grain`, or `tf.data`). The course's `H.ArrayLoader` keeps a data set on the
# device in both frameworks and draws the same batches from the same seed.

# %%
from helpers import jax as HJ
from helpers import torch as HT

xs = np.arange(20, dtype=np.float32).reshape(10, 2)
ys = np.arange(10, dtype=np.uint8)
batches_t = [yb for _, yb in HT.ArrayLoader(xs, ys, 4, shuffle=True, seed=1)]
batches_j = [yb for _, yb in HJ.ArrayLoader(xs, ys, 4, shuffle=True, seed=1)]
for bt, bj in zip(batches_t, batches_j, strict=True):
    same(bt, bj)

# %% [markdown]
# ## Devices
#
# | | PyTorch | JAX |
# |---|---|---|
# | list | `torch.cuda.device_count()`, `torch.device("cuda")` | `jax.devices()` |
# | move | `x.to(device)` | `jax.device_put(x, device)` |
# | wait for a result | `torch.cuda.synchronize()` | `x.block_until_ready()` |
#
# (`H.synchronize(value)` waits for a value in either framework.)

# %%
device_t = HT.default_device()
device_j = HJ.default_device()
print(device_t, device_j)
same(
    HT.synchronize(torch.ones(3, device=device_t) * 2), HJ.synchronize(jnp.ones(3) * 2)
)

# %% [markdown]
# ## Compilation
#
# | | PyTorch | JAX |
# |---|---|---|
# | compile a function | `torch.compile(f)` | `jax.jit(f)` |
# | a data-dependent branch | `torch.where` / `torch.cond` | `jnp.where` / `jax.lax.cond` |
# | a Python `if` on a tensor's value | runs: `torch.compile` splits the graph there (a graph break) | `jax.jit` raises `TracerBoolConversionError` |


# %%
def f_t(x):
    return torch.where(x > 0, x**2, -x)


def f_j(x):
    return jnp.where(x > 0, x**2, -x)


def branch(x):  # a Python if on a value known only when the function runs
    return x * 2 if x.sum() > 0 else -x


v = np.linspace(-2, 2, 9, dtype=np.float32)
# The -0. printed below is IEEE 754 negative zero (-x at x = 0): it equals 0.
same(torch.compile(f_t)(torch.from_numpy(v)), jax.jit(f_j)(jnp.asarray(v)))
# Outside jit, JAX runs eagerly: the same Python if works there.
same(torch.compile(branch)(torch.from_numpy(v)), branch(jnp.asarray(v)))
try:
    jax.jit(branch)(jnp.asarray(v))
except jax.errors.TracerBoolConversionError:
    print("jax.jit(branch): TracerBoolConversionError")
else:
    raise AssertionError("jax.jit ran a Python if on a traced value")

# %% [markdown]
# ## Vectorising and parallelism
#
# `vmap` maps a function written for one example over a batch, in both frameworks. Across
# devices, JAX shards arrays (`jax.sharding`, `jit`); PyTorch runs one process per device
# (`torch.distributed`, `DistributedDataParallel`). Chapter 9 covers both.


# %%
def dot_t(a, b):
    return (a * b).sum()


def dot_j(a, b):
    return (a * b).sum()


a = np.arange(12, dtype=np.float32).reshape(4, 3)
same(torch.vmap(dot_t)(torch.from_numpy(a), torch.from_numpy(a)), jax.vmap(dot_j)(a, a))

# %% [markdown]
# ## Checkpointing
#
# PyTorch saves a `state_dict` (`torch.save`, then `torch.load(path, weights_only=True)`); Flax
# NNX splits a model into its graph and a state pytree (`nnx.split`), saved with Orbax or any
# array format, and merged back (`nnx.merge`).

# %%
import tempfile
from pathlib import Path

with tempfile.TemporaryDirectory() as tmp:
    torch.save(lin_t.state_dict(), Path(tmp) / "lin.pt")
    restored_t = nn.Linear(3, 2)  # fresh weights, replaced by the saved ones
    restored_t.load_state_dict(torch.load(Path(tmp) / "lin.pt", weights_only=True))
    _, state = nnx.split(lin_j)
    arrays = {"/".join(map(str, k)): np.asarray(v) for k, v in nnx.to_flat_state(state)}
    np.savez(Path(tmp) / "lin.npz", **arrays)
    # A fresh model from another seed, so that a load that changed nothing would fail below.
    graph, fresh = nnx.split(nnx.Linear(3, 2, rngs=nnx.Rngs(1)))
    loaded = np.load(Path(tmp) / "lin.npz")
    for path, var in nnx.to_flat_state(fresh):
        var[...] = jnp.asarray(loaded["/".join(map(str, path))])
    restored_j = nnx.merge(graph, fresh)
# Each restored model against the other framework's original (the two were shown equal above).
same(restored_t(torch.from_numpy(x)), lin_j(jnp.asarray(x)))
same(lin_t(torch.from_numpy(x)), restored_j(jnp.asarray(x)))

# %% [markdown]
# ## Randomness
#
# PyTorch draws from a global generator (`torch.manual_seed`) or an explicit
# `torch.Generator`; JAX has no global state: every random function takes a key, and
# `jax.random.split` makes new ones. The two produce different numbers from the same seed; each
# is reproducible.

# %%
torch.manual_seed(0)
first_t = torch.rand(3)
torch.manual_seed(0)
assert torch.equal(first_t, torch.rand(3))
key = jax.random.key(0)
key, sub = jax.random.split(key)  # split first, then draw from the new key
assert (jax.random.uniform(sub, (3,)) == jax.random.uniform(sub, (3,))).all()
print("each framework reproduces its own numbers from its seed")
