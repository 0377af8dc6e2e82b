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
# # Lab 1: first steps in JAX
#
# Five exercises on chapter 1: arrays, accuracy, finite differences, autodiff and one training
# step. Each exercise is a function. Replace the line `raise NotImplementedError(...)` with
# your code, run the cell, then run the check below it: a check prints ✅ when your function
# is right, or ❌ with what it expected and a hint.
#
# The checks call your function on small inputs and compare with answers computed
# independently; they never look at your code. The solved lab is
# `solutions/01-introduction/in-jax.ipynb`.

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
import optax
from flax import nnx

from helpers import jax as H

# %% [markdown]
# ## Exercise 1: from images to model inputs
#
# `images` is a `jnp.uint8` array of shape `(N, 28, 28)` with values 0..255. Return a
# `jnp.float32` array of shape `(N, 784)` (each image flattened to one row) with values scaled
# to [0, 1].


# %%
def preprocess(images: jax.Array) -> jax.Array:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab01.check_preprocess(preprocess)

# %% [markdown]
# ## Exercise 2: accuracy
#
# `logits` has shape `(B, C)`: one score per class for each of `B` examples. `labels` has shape
# `(B,)`. The predicted class is the one with the highest score. Return the fraction of
# examples whose prediction equals the label, as a Python `float`.


# %%
def accuracy(logits: jax.Array, labels: jax.Array) -> float:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab01.check_accuracy(accuracy)

# %% [markdown]
# ## Exercise 3: finite differences
#
# Estimate the gradient of a scalar function `f` at a 1-D array `x` by central differences: the
# `i`-th entry is `(f(x + eps * e_i) - f(x - eps * e_i)) / (2 * eps)`, where `e_i` is 1 at
# position `i` and 0 elsewhere. Return an array shaped like `x`. (JAX arrays cannot change in
# place: `x.at[i].add(eps)` returns a new array.)


# %%
def central_difference(f, x: jax.Array, eps: float) -> jax.Array:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab01.check_central_difference(central_difference)

# %% [markdown]
# ## Exercise 4: a gradient by automatic differentiation
#
# For a linear model with weights `w` `(D,)`, inputs `X` `(N, D)` and targets `y` `(N,)`, the
# mean squared error is `loss(w) = mean((X @ w - y) ** 2)`. Return its gradient with respect to
# `w`, computed with `jax.grad`, not by a formula derived by hand.


# %%
def mse_grad(w: jax.Array, X: jax.Array, y: jax.Array) -> jax.Array:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab01.check_mse_grad(mse_grad)

# %% [markdown]
# ## Exercise 5: one training step
#
# Write the step that `H.fit` repeats: compute the cross-entropy loss of `model(x)` against the
# integer labels `y` (`optax.softmax_cross_entropy_with_integer_labels`, averaged over the
# batch), take its gradient with respect to the model (`nnx.value_and_grad`), and apply it with
# `optimizer.update(model, grads)`. Return the loss (computed before the update) as a Python
# `float`. You may decorate the function with `@nnx.jit`.


# %%
def train_step(model: nnx.Module, optimizer: nnx.Optimizer, x, y) -> float:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab01.check_train_step(train_step)

# %% [markdown]
# ## Going further
#
# With every check passing you have written the pieces of chapter 1's training loop. Try them
# together: load MNIST with `H.load_mnist`, turn the images into inputs with your `preprocess`,
# train `H.MLP(784, (256,), 10, rngs=nnx.Rngs(0))` with your `train_step` (now under
# `@nnx.jit`) on batches of 128, and measure test accuracy with your `accuracy`. Then compare
# your finite-difference gradient with `mse_grad` on a random problem, for several `eps`, and
# explain the errors you see.
