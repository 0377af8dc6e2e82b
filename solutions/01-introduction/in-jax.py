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
# # Lab 1 solutions: first steps in JAX
#
# Five exercises on chapter 1: arrays, accuracy, a gradient by autodiff, checking it with finite
# differences, and a branching function made fit for `jax.jit`. Each exercise is a function.
# Replace the line `raise NotImplementedError(...)` with your code, run the cell, then run the
# check below it: a check prints ✅ when your function is right, or ❌ with what it expected
# and a hint.
#
# The checks call your function several times, on small inputs, and compare with answers
# computed independently; they never look at your code.
#
# The exercises alone, without the answers: [Lab 1 in JAX](../../labs/01-introduction/in-jax.ipynb).

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
import jax
import jax.numpy as jnp

from helpers import jax as H

# %% [markdown]
# ## Exercise 1: from images to model inputs
#
# `images` is a `jnp.uint8` array of shape `(N, 28, 28)` with values 0..255. Return a
# `jnp.float32` array of shape `(N, 784)`: each image flattened to one row, each pixel divided
# by 255, so that 0 stays 0 and 255 becomes 1.


# %%
def preprocess(images: jax.Array) -> jax.Array:
    ### BEGIN SOLUTION
    return images.reshape(images.shape[0], -1).astype(jnp.float32) / 255
    ### END SOLUTION


# %%
H.lab01.check_preprocess(preprocess)

# %% [markdown]
# ## Exercise 2: accuracy
#
# `logits` is a float array of shape `(B, C)`: one score per class for each of `B` examples.
# `labels` is an integer array of shape `(B,)`. The predicted class of an example is the
# index of its highest score (`argmax` over the class axis). Return the fraction of examples
# whose prediction equals the label, as a Python `float` between 0 and 1.


# %%
def accuracy(logits: jax.Array, labels: jax.Array) -> float:
    ### BEGIN SOLUTION
    return float((logits.argmax(axis=-1) == labels).mean())
    ### END SOLUTION


# %%
H.lab01.check_accuracy(accuracy)

# %% [markdown]
# ## Exercise 3: a gradient by automatic differentiation
#
# For a linear model with weights `w` `(D,)`, inputs `X` `(N, D)` and targets `y` `(N,)`, all
# `jnp.float32`, the mean squared error is `loss(w) = mean((X @ w - y) ** 2)`. Return its
# gradient with respect to `w`, a `jnp.float32` array of shape `(D,)`, computed with
# `jax.grad`, not by a formula derived by hand.


# %%
def mse_grad(w: jax.Array, X: jax.Array, y: jax.Array) -> jax.Array:
    ### BEGIN SOLUTION
    def loss(w):
        return jnp.mean((X @ w - y) ** 2)

    return jax.grad(loss)(w)
    ### END SOLUTION


# %%
H.lab01.check_mse_grad(mse_grad)

# %% [markdown]
# ## Exercise 4: check a gradient with finite differences
#
# Finite differences are too slow to train with, but they check a gradient you computed
# another way. `f` maps a 1-D `jnp.float32` array to a 0-d array, `grad_f(x)` claims to be its
# gradient, and `eps` is a step size. For each coordinate `i`, estimate the partial derivative
# by the central difference `(f(x + eps * e_i) - f(x - eps * e_i)) / (2 * eps)`, where `e_i`
# is 1 at position `i` and 0 elsewhere. Return the largest absolute difference between
# `grad_f(x)` and the estimates, as a Python `float`. (JAX arrays cannot change in place:
# `x.at[i].add(eps)` returns a new array.)
#
# Even for a correct `grad_f` the result is not 0: the central difference is off by a term of
# order `eps ** 2`, which the check's large steps make visible.


# %%
def gradient_error(f, grad_f, x: jax.Array, eps: float) -> float:
    ### BEGIN SOLUTION
    estimate = jnp.stack(
        [
            (f(x.at[i].add(eps)) - f(x.at[i].add(-eps))) / (2 * eps)
            for i in range(x.size)
        ]
    )
    return float(jnp.abs(grad_f(x) - estimate).max())
    ### END SOLUTION


# %%
H.lab01.check_gradient_error(gradient_error)

# %% [markdown]
# Used on your `mse_grad`, for instance, `gradient_error(loss, grad, w, 1e-2)` with
# `loss = lambda w: jnp.mean((X @ w - y) ** 2)` and `grad = lambda w: mse_grad(w, X, y)`
# should give a small number for any `X`, `y` and `w`.
#
# ## Exercise 5: a branch under `jax.jit`
#
# This function runs eagerly, but `jax.jit(relu_or_negate)` cannot compile it:
#
# ```python
# def relu_or_negate(x):
#     print("relu_or_negate got", x)
#     if x.sum() > 0:
#         return jnp.maximum(x, 0)
#     return -x
# ```
#
# Why not? And once it compiles, how many lines would its `print` give for four calls on
# float32 arrays of two different shapes? Predict, then write a version that `jax.jit`
# compiles: for a 1-D `jnp.float32` array `x` it returns `jnp.maximum(x, 0)` if `x.sum() > 0`
# and `-x` otherwise (same shape and dtype as `x`), and it prints one line on every call
# (what the line says is up to you). The check compiles your function with `jax.jit` and
# calls it five times, on two shapes.


# %%
def relu_or_negate(x: jax.Array) -> jax.Array:
    ### BEGIN SOLUTION
    # jax.debug.print runs on every call; a Python print only once per trace.
    jax.debug.print("relu_or_negate got {x}", x=x)
    return jnp.where(x.sum() > 0, jnp.maximum(x, 0), -x)
    ### END SOLUTION


# %%
H.lab01.check_framework_specific(relu_or_negate)

# %% [markdown]
# ## Going further
#
# Put the pieces together: load MNIST with `H.load_mnist`, turn the images into inputs with your
# `preprocess`, train `H.MLP(784, (256,), 10, rngs=nnx.Rngs(0))` (with `from flax import nnx`)
# using chapter 1's training step on batches of 128, and measure test accuracy with your
# `accuracy`. Then call `gradient_error` on your `mse_grad` for `eps` from `1e-1` down to
# `1e-7`, in float32 and in float64 (inside `jax.enable_x64()`), and explain the numbers you
# see.
