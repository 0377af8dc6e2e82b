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
# # Lab 3: data, training and evaluation loops in PyTorch
#
# Four exercises on chapter 3: a `Dataset` with a transform, one training step, an evaluation
# function that returns the accuracy, and a classifier trained on real MNIST digits to a test
# accuracy the check verifies. Replace each line `raise NotImplementedError(...)` with your
# code, run the cell, then run the check below it: a check prints ✅ when your code is right,
# or ❌ with what it expected and a hint.
#
# The checks call your code on their own inputs and models (two different cases each, so a
# hard-coded answer cannot pass) and compare with PyTorch's own answers; they never read your
# code. The solved lab is
# [`solutions/03-pytorch-in-depth/in-pytorch.ipynb`](../../solutions/03-pytorch-in-depth/in-pytorch.ipynb).

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
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from helpers import torch as H

# %% [markdown]
# ## Exercise 1: a Dataset with a transform
#
# Write `DigitDataset(images, labels, transform)`: `images` is a uint8 NumPy array
# `(N, 28, 28)`, `labels` a NumPy array `(N,)` of classes 0-9, and `transform` a function
# that turns one uint8 image into a tensor. `len(ds)` is `N`, and `ds[i]` returns the pair
# `(transform(images[i]), label i)`, the label as a Python `int`. Example `i` must keep its
# own label: a `DataLoader` with `shuffle=True` shuffles *indices*, so never shuffle the
# images or the labels yourself.


# %%
class DigitDataset(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        # YOUR CODE HERE
        raise NotImplementedError("Exercise: replace this line with your code")

    def __len__(self) -> int:
        # YOUR CODE HERE
        raise NotImplementedError("Exercise: replace this line with your code")

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        # YOUR CODE HERE
        raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab03.check_dataset(DigitDataset)

# %% [markdown]
# ## Exercise 2: one training step
#
# Write `train_step(model, optimizer, x, y)`: one step of gradient descent on the batch
# `x` `(B, ...)` with integer labels `y` `(B,)`, using the mean cross-entropy of the model's
# logits `(B, C)` (`F.cross_entropy`). Return the loss of the batch, computed before the
# update, as a 0-d tensor (`loss.detach()`, not `loss.item()`). The check runs three steps
# from the same start and compares the parameters with the right ones: remember that `.grad`
# accumulates.


# %%
def train_step(model: nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab03.check_train_step(train_step)

# %% [markdown]
# ## Exercise 3: evaluation
#
# Write `evaluate_accuracy(model, loader)`: the fraction of examples in `loader` (an iterable
# of batches `(x, y)`) whose predicted class, the argmax of the logits, equals the label,
# as a Python `float`. The check's model has dropout and batch-norm, and its batches have
# different sizes: evaluate in the right mode, without recording gradients, and count per
# example.


# %%
def evaluate_accuracy(model: nn.Module, loader) -> float:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab03.check_evaluate_accuracy(evaluate_accuracy)

# %% [markdown]
# ## Exercise 4: train a classifier
#
# Write `train_classifier(images, labels)`: build a model, train it on these MNIST `images`
# (uint8 `(N, 28, 28)`, here 2,000 of them) and `labels` with your `DigitDataset`, a
# `DataLoader`, your `train_step` and an optimizer of your choice, and return the trained
# model. The check evaluates it on 500 test images, calling `model(x)` with `x` float32
# `(B, 28, 28)` in [0, 1] (pixel / 255), so use that scaling as your transform. It must reach
# the test accuracy the check names; a few epochs of a small MLP (`H.MLP`) with Adam take a
# few seconds. The check trains twice, the second time with the classes renamed.


# %%
def train_classifier(images: np.ndarray, labels: np.ndarray) -> nn.Module:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab03.check_train_classifier(train_classifier)
