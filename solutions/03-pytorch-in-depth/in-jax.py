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
# # Lab 3: data, training and evaluation loops in JAX
#
# Four exercises on chapter 3: a `Dataset` with a transform, one training step, an evaluation
# function that returns the accuracy, and a classifier trained on real MNIST digits to a test
# accuracy the check verifies. Replace each line `raise NotImplementedError(...)` with your
# code, run the cell, then run the check below it: a check prints ✅ when your code is right,
# or ❌ with what it expected and a hint.
#
# The checks call your code on their own inputs and models (two different cases each, so a
# hard-coded answer cannot pass) and compare with JAX's own answers; they never read your
# code. The solved lab is
# [`solutions/03-pytorch-in-depth/in-jax.ipynb`](../../solutions/03-pytorch-in-depth/in-jax.ipynb).

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
import numpy as np
import optax
from flax import nnx

from helpers import jax as H

# %% [markdown]
# ## Exercise 1: a Dataset with a transform
#
# Write `DigitDataset(images, labels, transform)`, a plain Python class (JAX has no `Dataset`
# type; any object with `len` and indexing will do): `images` is a uint8 NumPy array
# `(N, 28, 28)`, `labels` a NumPy array `(N,)` of classes 0-9, and `transform` a function
# that turns one uint8 image into a JAX array. `len(ds)` is `N`, and `ds[i]` returns the pair
# `(transform(images[i]), label i)`, the label as a Python `int`. Example `i` must keep its
# own label: shuffle the order of *indices* when batching, never the images or the labels.


# %%
class DigitDataset:
    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        ### BEGIN SOLUTION
        self.images, self.labels, self.transform = images, labels, transform
        ### END SOLUTION

    def __len__(self) -> int:
        ### BEGIN SOLUTION
        return len(self.labels)
        ### END SOLUTION

    def __getitem__(self, i: int) -> tuple[jax.Array, int]:
        ### BEGIN SOLUTION
        return self.transform(self.images[i]), int(self.labels[i])
        ### END SOLUTION


# %%
H.lab03.check_dataset(DigitDataset)

# %% [markdown]
# ## Exercise 2: one training step
#
# Write `train_step(model, optimizer, x, y)` for a Flax NNX `model` and an `nnx.Optimizer`:
# one step of gradient descent on the batch `x` `(B, ...)` with integer labels `y` `(B,)`,
# using the mean cross-entropy of the model's logits `(B, C)`
# (`optax.softmax_cross_entropy_with_integer_labels`). Return the loss of the batch,
# computed before the update, as a 0-d array. The check runs three steps
# from the same start and compares the parameters with the right ones. You may compile it
# with `@nnx.jit`.


# %%
@nnx.jit
def train_step(model: nnx.Module, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array):
    ### BEGIN SOLUTION
    def loss_fn(model):
        logits = model(x)  # (B, C)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss
    ### END SOLUTION


# %%
H.lab03.check_train_step(train_step)

# %% [markdown]
# ## Exercise 3: evaluation
#
# Write `evaluate_accuracy(model, loader)`: the fraction of examples in `loader` (an iterable
# of batches `(x, y)`) whose predicted class, the argmax of the logits, equals the label,
# as a Python `float`. The check's model has dropout and batch-norm, and its batches have
# different sizes: evaluate in the right mode and count per example.


# %%
def evaluate_accuracy(model: nnx.Module, loader) -> float:
    ### BEGIN SOLUTION
    model.eval()
    correct, n = 0, 0
    for x, y in loader:
        correct += int((model(x).argmax(-1) == y).sum())
        n += len(y)
    return correct / n
    ### END SOLUTION


# %%
H.lab03.check_evaluate_accuracy(evaluate_accuracy)

# %% [markdown]
# ## Exercise 4: train a classifier
#
# Write `train_classifier(images, labels)`: build a model, train it on these MNIST `images`
# (uint8 `(N, 28, 28)`, here 2,000 of them) and `labels` with your `DigitDataset`, shuffled
# batches drawn with an explicit key, your `train_step` and an Optax optimizer of your choice,
# and return the trained model. The check evaluates it on 500 test images, calling `model(x)`
# with `x` float32 `(B, 28, 28)` in [0, 1] (pixel / 255) after `model.eval()`, so use that
# scaling as your transform. It must reach the test accuracy the check names; a few epochs
# of a small MLP (`H.MLP`) with Adam take a few seconds. The check trains twice, the second
# time with the classes renamed.


# %%
def train_classifier(images: np.ndarray, labels: np.ndarray) -> nnx.Module:
    ### BEGIN SOLUTION
    dataset = DigitDataset(
        images, labels, lambda im: jnp.asarray(im, jnp.float32) / 255
    )
    model = H.MLP(784, (128,), 10, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    model.train()
    key = jax.random.key(0)
    for _ in range(4):
        key, sub = jax.random.split(key)
        order = np.asarray(jax.random.permutation(sub, len(dataset)))
        # Full batches of 64 only: one compiled shape.
        for start in range(0, len(order) - 63, 64):
            items = [dataset[int(i)] for i in order[start : start + 64]]
            x = jnp.asarray(np.stack([x for x, _ in items]))  # (64, 28, 28)
            y = jnp.asarray([y for _, y in items])  # (64,)
            train_step(model, optimizer, x, y)
    return model
    ### END SOLUTION


# %%
H.lab03.check_train_classifier(train_classifier)
