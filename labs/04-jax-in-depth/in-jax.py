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
# # Lab 4: JAX in depth
#
# Five exercises, four on chapter 4: (1) a compiled, vectorised per-example gradient-norm
# function; (2) a Flax NNX network and (3) its Optax training step; (4) data parallelism by
# hand, in two parts (a batch sharded over a device mesh, then the data-parallel gradient);
# and (5) one on chapter 3's custom derivatives, a straight-through estimator. Each part is a
# function you complete: replace the line `raise NotImplementedError(...)` with your code, run
# the cell, then run the check below it: a check prints ✅ when your function is right, or ❌
# with what it expected and a hint.
#
# The checks call your function on small inputs of two different shapes and compare with an
# answer computed independently (a closed-form gradient in NumPy, reference models built by
# the check); they never look at your code.
#
# The solved lab: [Lab 4 solutions in JAX](../../solutions/04-jax-in-depth/in-jax.ipynb).

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

# %% [markdown]
# Exercise 4a needs several devices: the cell below asks JAX for 8 CPU devices, which works
# only before JAX's first operation (restart the kernel to change it).

# %%
import jax

try:
    jax.config.update("jax_num_cpu_devices", 8)  # before any JAX operation
except RuntimeError:  # JAX has already started in this process: keep its devices
    pass
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from helpers import jax as H

print("CPU devices:", len(jax.devices("cpu")))

# %% [markdown]
# Exercises 1 and 4b use a linear softmax classifier whose parameters are a pytree,
# `params = {"W": (D, C), "b": (C,)}`, and this loss, the mean cross-entropy of a batch
# `x (B, D)`, `y (B,)` (integer labels):


# %%
def loss_fn(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    logits = x @ params["W"] + params["b"]  # (B, C)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


# %% [markdown]
# ## Exercise 1: per-example gradient norms, compiled and vectorised
#
# Return the norm of each example's gradient, shape `(B,)`: for example $i$, the gradient of
# its own loss with respect to *all* parameters, $g_i = \nabla_\theta \ell(\theta; x_i, y_i)$,
# and $\lVert g_i \rVert = \sqrt{\sum (\text{every entry of } g_i)^2}$ over W's and b's
# gradients together. Use `jax.vmap` over the examples (not a Python loop). The function is
# already compiled with `@jax.jit`: keep the decorator. The check calls it again with new values
# of the same shapes and counts compilations (there must be none).


# %%
@jax.jit
def per_example_grad_norms(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab04.check_per_example_grad_norms(per_example_grad_norms)

# %% [markdown]
# ## Exercise 2: a Flax NNX network
#
# Write the network's class, then return one for `seed`: three `nnx.Linear` layers of sizes
# 4 → 16 → 16 → 3, with a ReLU after each of the first two, mapping `(B, 4)` to logits
# `(B, 3)`. Create the layers in that order from **one** `nnx.Rngs(seed)`: the check compares
# your network's outputs with its own, built that way.


# %%
class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        # YOUR CODE HERE
        raise NotImplementedError("Exercise: replace this line with your code")

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, 4) -> (B, 3)
        # YOUR CODE HERE
        raise NotImplementedError("Exercise: replace this line with your code")


def build_mlp(seed: int) -> nnx.Module:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab04.check_build_mlp(build_mlp)

# %% [markdown]
# ## Exercise 3: an Optax training step
#
# `model` is a network like exercise 2's and `optimizer` an `nnx.Optimizer` over its
# `nnx.Param`s (the check uses plain SGD). Compute the mean cross-entropy of `model(x)`
# against `y` and its gradient with respect to the model (`nnx.value_and_grad`), apply the
# update in place with the optimizer, and return the loss (computed before the update).


# %%
@nnx.jit
def train_step(model: nnx.Module, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab04.check_train_step(train_step)

# %% [markdown]
# ## Exercise 4: data parallelism by hand
#
# Two functions: a batch sharded over a device mesh (4a), then the gradient a data-parallel
# job computes from the shards (4b).
#
# ### 4a: shard a batch over a mesh
#
# `mesh` is a one-axis `Mesh` whose axis is named `"data"` (the check builds it from the CPU
# devices). Return `x (B, D)` placed so that its batch axis is split over `"data"`: each
# device holds `B / devices` whole rows.


# %%
def shard_batch(x: jax.Array, mesh: jax.sharding.Mesh) -> jax.Array:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab04.check_shard_batch(shard_batch)

# %% [markdown]
# ### 4b: the data-parallel gradient
#
# Data parallelism in one function: cut the batch into `n_shards` equal, contiguous shards
# (as 4a lays them on devices), compute each shard's gradient of `loss_fn` (a mean over
# its examples) with `jax.vmap` over the shards, and return the mean over shards, in the
# structure of `params` (`{"W": (D, C), "b": (C,)}`). On a mesh, that mean is the all-reduce;
# with equal shards it equals the full batch's gradient, which is what the check compares.


# %%
def data_parallel_grads(
    params: dict, x: jax.Array, y: jax.Array, n_shards: int
) -> dict:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab04.check_data_parallel_grads(data_parallel_grads)

# %% [markdown] tags=["shared"]
# ## Exercise 5: a straight-through estimator
#
# Quantization rounds: $\operatorname{round}(w / s)\, s$ keeps a weight on a grid of step $s$
# (chapter 10). To *train* through the rounding, as quantization-aware training does
# {cite}`jacob2018quantization`, the gradient has to get past it, but round's derivative is 0
# almost everywhere (and undefined at the jumps), so the weights before it would get no
# gradient at all. The *straight-through estimator* {cite}`bengio2013estimating` keeps the
# rounding in the forward pass and, in the backward pass, pretends the function was the
# identity: the incoming gradient goes through unchanged.

# %% [markdown]
# Write `round_ste(x)`: forward, `round(x)`, ties to the even integer as `jnp.round` does
# (2.5 → 2, −0.5 → 0), in `x`'s dtype; backward, the incoming gradient `g`, as it is.
# Write the custom rule, as chapter 3 does for a softplus, with `jax.custom_vjp`
# (`fwd(x)` returns `(round(x), residuals)`, since `jax.grad` calls it instead of the
# function; `bwd(residuals, g)` returns `(g,)`, one cotangent per argument).
#
# The check feeds float32 batches `(B, D)` with ties (±0.5, ±1.5, ±2.5) and negatives, compares
# the forward values with NumPy's `np.round`, and checks that the gradient of
# `sum(g * round_ste(x))` with respect to `x` is `g`, for a random `g` (a backward that returns
# ones is right only when `g` is all ones), also under `jax.jit`.


# %%
def round_ste(x: jax.Array) -> jax.Array:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab04.check_round_ste(round_ste)

# %% [markdown]
# The reason for it: fake quantization with step `s`, the loss seeing the rounded weight
# `round(w / s) * s`. Through `jnp.round` every weight's gradient is 0, and training would
# never move them; through `round_ste` each gets the gradient of the rounded weight, as if
# there had been no rounding.

# %%
w = jnp.array([0.31, -0.72, 1.18, 0.05])
inputs = jnp.array([1.0, -2.0, 0.5, 3.0])
s = 0.25  # the grid's step


def fake_quantized_loss(w, rounding):
    return ((rounding(w / s) * s * inputs).sum() - 1.0) ** 2


try:  # runs once exercise 5 is solved
    for name, rounding in [("jnp.round", jnp.round), ("round_ste", round_ste)]:
        grad = jax.grad(fake_quantized_loss)(w, rounding)
        print(f"{name:>9}: dloss/dw = {[round(float(v), 3) for v in grad]}")
except NotImplementedError:
    print("solve exercise 5 first")
