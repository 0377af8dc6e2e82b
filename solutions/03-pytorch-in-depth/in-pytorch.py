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
# # Lab 3 solutions: data, training and evaluation loops in PyTorch
#
# Five exercises on chapter 3: a `Dataset` with a transform, one training step, an evaluation
# function that returns the accuracy, a classifier trained on real MNIST digits to a test
# accuracy the check verifies, and, beyond the chapter, a training step that accumulates
# gradients over micro-batches. Replace each line `raise NotImplementedError(...)` with your
# code, run the cell, then run the check below it: a check prints ✅ when your code is right,
# or ❌ with what it expected and a hint.
#
# The checks call your code on their own inputs and models (at least two different cases each,
# so a hard-coded answer cannot pass) and compare with PyTorch's own answers (exercise 5: a
# float64 NumPy reference); they never read your
# code.
# The exercises alone, without the answers: [`labs/03-pytorch-in-depth/in-pytorch.ipynb`](../../labs/03-pytorch-in-depth/in-pytorch.ipynb).

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
        ### BEGIN SOLUTION
        self.images, self.labels, self.transform = images, labels, transform
        ### END SOLUTION

    def __len__(self) -> int:
        ### BEGIN SOLUTION
        return len(self.labels)
        ### END SOLUTION

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        ### BEGIN SOLUTION
        return self.transform(self.images[i]), int(self.labels[i])
        ### END SOLUTION


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
    ### BEGIN SOLUTION
    model.train()
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)  # (B, C) logits vs (B,) labels
    loss.backward()
    optimizer.step()
    return loss.detach()
    ### END SOLUTION


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
    ### BEGIN SOLUTION
    model.eval()
    correct, n = 0, 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(-1) == y).sum().item()
            n += len(y)
    return correct / n
    ### END SOLUTION


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
    ### BEGIN SOLUTION
    torch.manual_seed(0)
    dataset = DigitDataset(
        images, labels, lambda im: torch.from_numpy(im).float() / 255
    )
    loader = DataLoader(dataset, batch_size=64, shuffle=True)
    model = H.MLP(784, (128,), 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(4):
        for x, y in loader:
            train_step(model, optimizer, x, y)
    return model
    ### END SOLUTION


# %%
H.lab03.check_train_classifier(train_classifier)

# %% [markdown]
# ## Exercise 5: gradient accumulation
#
# Chapter 3 warns that `.grad` accumulates; here you use it on purpose. When a batch of $N$
# examples does not fit in memory, split it into micro-batches $B_1, \dots, B_K$ of at most
# $m$ rows, run forward and backward on each in turn, and update once. The batch's mean loss
# is a weighted sum of the micro-batches' mean losses, and the gradient is linear:
#
# $$L = \frac{1}{N}\sum_{i=1}^{N} \ell_i = \sum_{k=1}^{K} \frac{|B_k|}{N}\, L_k, \qquad
# \nabla L = \sum_{k=1}^{K} \frac{|B_k|}{N}\, \nabla L_k, \qquad
# \theta \leftarrow \theta - \eta\, \nabla L,$$
#
# where $L_k$ is the mean loss of micro-batch $B_k$. The update is the whole batch's, computed in
# $K$ passes, one after the other, each holding the activations of at most $m$ rows. Weight by
# size, not by $1/K$: the last micro-batch may be smaller. Data-parallel training meets the same
# sum: {cite:t}`goyal2017accurate` normalise each worker's loss by the total minibatch size, not
# by the worker's own, because the all-reduce adds the workers' gradients. The equality needs a
# model whose examples do not interact: batch-norm normalises with each micro-batch's own
# statistics, so it computes a different function on micro-batches (the check's model has
# none). And the check uses plain SGD: Adam's steps are nearly invariant to a constant scale of
# the gradient (exactly so, up to its $\epsilon$, on the first step), so with Adam a gradient
# $K$ times too large would go unnoticed, in the check and in real training.
#
# Write `train_step_accumulated(model, optimizer, x, y, micro_batch_size)`: one optimizer
# update on the batch `(x, y)` from the micro-batches `x[i:i + micro_batch_size]` (the last
# may be smaller), equal to exercise 2's `train_step` on the whole batch up to float32
# rounding. Return the whole batch's mean loss before the update, a 0-d float32 tensor without
# its graph, as in exercise 2. Mind what `.grad` holds when your function starts: the check's
# model comes with old gradients in it.
#
# The check runs four batches (10 rows in micro-batches of 4, 12 of 4, 6 of 8, 5 of 1) on a
# small MLP that records how many rows each forward and each backward pass saw (never more
# than `micro_batch_size`), counts the optimizer's steps (exactly one), and compares the
# parameters after the step and the returned loss with a float64 NumPy reference.


# %%
def train_step_accumulated(
    model: nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor, micro_batch_size: int
) -> torch.Tensor:
    ### BEGIN SOLUTION
    model.train()
    optimizer.zero_grad()  # once: .grad adds up over the micro-batches
    total = torch.zeros((), device=x.device)
    for start in range(0, len(x), micro_batch_size):
        xb = x[start : start + micro_batch_size]  # the last may be smaller
        yb = y[start : start + micro_batch_size]
        loss = F.cross_entropy(model(xb), yb) * (len(xb) / len(x))
        loss.backward()  # adds this micro-batch's share to .grad
        total += loss.detach()
    optimizer.step()  # one update, with the whole batch's gradient
    return total
    ### END SOLUTION


# %%
H.lab03.check_train_step_accumulated(train_step_accumulated)

# %% [markdown]
# The same five steps from the same start, on a batch of 64 rows: with exercise 2's
# `train_step` on the whole batch, and with yours in micro-batches of 12 (12, 12, 12, 12, 12,
# 4). A forward pre-hook records the rows of each forward pass.

# %%
try:
    x_demo = torch.randn(64, 20, generator=torch.Generator().manual_seed(0))
    y_demo = torch.randint(0, 5, (64,), generator=torch.Generator().manual_seed(1))
    trained, peak = {}, {}
    for name in ("micro-batches of 12", "whole batch"):
        torch.manual_seed(0)  # the same start for both
        model = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 5))
        rows = []
        model.register_forward_pre_hook(lambda m, a, rows=rows: rows.append(len(a[0])))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        for _ in range(5):
            if name == "whole batch":
                train_step(model, optimizer, x_demo, y_demo)
            else:
                train_step_accumulated(model, optimizer, x_demo, y_demo, 12)
        trained[name], peak[name] = list(model.parameters()), max(rows)
    gap = max(
        (a - b).abs().max().item() for a, b in zip(*trained.values(), strict=True)
    )
    print(f"largest parameter difference after 5 steps: {gap:.1e} (float32 rounding)")
    print("peak rows per forward pass:", peak)
except NotImplementedError:
    print("solve exercises 2 and 5 first")
