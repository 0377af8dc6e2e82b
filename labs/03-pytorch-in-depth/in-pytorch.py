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
# Five exercises on chapter 3: a `Dataset` with a transform, one training step, an evaluation
# function that returns the accuracy, and, beyond the chapter, early stopping that restores
# the best weights (then trained on real MNIST digits in a demo) and a training step that
# accumulates gradients over micro-batches. Replace each line `raise NotImplementedError(...)`
# with your code, run the cell, then run the check below it: a check prints ✅ when your code
# is right, or ❌ with what it expected and a hint.
#
# The checks call your code on their own inputs and models (at least two different cases each,
# so a hard-coded answer cannot pass) and compare with PyTorch's own answers (exercise 4: a
# scripted sequence of losses and weights; exercise 5: a float64 NumPy reference); they never
# read your code.
#
# The solved lab: [Lab 3 solutions in PyTorch](../../solutions/03-pytorch-in-depth/in-pytorch.ipynb).

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
import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

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
# ## Exercise 4: early stopping that restores the best weights
#
# Past some epoch the training loss goes on falling while the validation loss rises: the model
# has started to fit its training set's noise. Early stopping evaluates the validation loss
# after each epoch, stops once it has not improved for `patience` epochs in a row, and puts
# back the weights of the best epoch. Waiting longer buys little: {cite:t}`prechelt1998early`
# compared stopping criteria on 1,296 training runs and found that the slower ones (those that
# wait longer before stopping) improved generalisation by only about 4 % on average, for about
# four times the training time.
#
# Keeping "the best weights" has a trap, which
# [section 3.7](../../chapters/03-pytorch-in-depth/in-pytorch.ipynb) did not need to show: a
# model's state is live, not a copy. `model.state_dict()` returns tensors that share storage
# with the parameters and buffers, so the optimizer's next in-place step changes a "saved"
# state dict too; `copy.deepcopy` (or `.detach().clone()` per tensor) makes a copy that
# training cannot reach. Run the cell: the `state_dict()` line prints the weight after the
# step (it is the layer's own tensor), the `deepcopy` line the weight before it.

# %%
torch.manual_seed(0)
layer = nn.Linear(2, 1)
kept = layer.state_dict()  # the live tensors
copied = copy.deepcopy(layer.state_dict())  # new tensors
optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
layer(torch.ones(1, 2)).pow(2).sum().backward()
optimizer.step()  # updates layer.weight in place
print("weight after the step: ", layer.weight.detach().numpy().round(4))
print(
    "state_dict() kept:     ",
    kept["weight"].numpy().round(4),
    "same storage:",
    kept["weight"].data_ptr() == layer.weight.data_ptr(),
)
print("deepcopy kept:         ", copied["weight"].numpy().round(4))

# %% [markdown]
# Write a class `EarlyStopping(patience, min_delta=0.0)` with
#
# * `step(val_loss, model) -> bool`, called once per epoch with that epoch's validation loss
#   (a Python float, possibly NaN) and the model. An improvement is
#   `val_loss < best_loss - min_delta` (strict: an equal loss is none; NaN never is one). On an
#   improvement, record the loss, the epoch (0 on the first call of `step`, 1 on the second,
#   ...) and a copy of the model's whole state, parameters and buffers (batch-norm's running
#   statistics). Return `True` when `patience` epochs in a row have brought no improvement
#   (with `patience=2` and the losses 1.0, 0.9, 0.95, 0.93: `False`, `False`, `False`, `True`,
#   and `True` again on a fifth epoch without improvement), else `False`.
# * `restore(model) -> None`: load the best epoch's state back into the caller's `model`, in
#   place (`load_state_dict` copies into the model's own tensors), and keep the snapshot:
#   `restore` may be called again, and training after a restore must not change it.
# * attributes `best_loss` (a Python float, `inf` before any step) and `best_epoch` (an int).
#
# The check drives four instances of your class side by side (so keep all the state in `self`)
# through four scripted loss sequences on a small model with a batch-norm. Before each `step`
# it writes that epoch's values into the parameters and buffers in place, as an optimizer
# does, and once more after the last one; then `restore` must put back exactly the best
# epoch's parameters and buffers, twice.


# %%
class EarlyStopping:
    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        # YOUR CODE HERE
        raise NotImplementedError("Exercise: replace this line with your code")

    def step(self, val_loss: float, model: nn.Module) -> bool:
        # YOUR CODE HERE
        raise NotImplementedError("Exercise: replace this line with your code")

    def restore(self, model: nn.Module) -> None:
        # YOUR CODE HERE
        raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab03.check_early_stopping(EarlyStopping)

# %% [markdown]
# Your `EarlyStopping` on MNIST: exercise 2's `train_step` with Adam on a small MLP with a
# batch-norm, a validation split held out from the training images, a full pass over the rest
# per epoch and one call of `stopper.step` after it; then exercise 3's `evaluate_accuracy`
# with the weights restored and with the last ones. Expect them close: the loop stops
# `patience` epochs after the best one (or at the last epoch, if that comes first; the
# patience is printed below), and the restored weights are the validation loss's choice, not
# a promise of the best test accuracy.
# The sizes are `H.sizes("lab03_early_stopping")`, in helpers/scale/foundations.py.


# %%
def validation_loss(model: nn.Module, loader) -> float:
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for x, y in loader:
            total += F.cross_entropy(model(x), y, reduction="sum").item()
            n += len(y)
    return total / n


try:
    sizes = H.sizes("lab03_early_stopping")
    images, labels = H.load_mnist("train", limit=sizes.train_examples)
    test_images, test_labels = H.load_mnist("test", limit=sizes.test_examples)
    n_train = len(labels) - sizes.validation_examples

    def loader(x: np.ndarray, y: np.ndarray, shuffle: bool = False) -> DataLoader:
        data = TensorDataset(
            torch.from_numpy(x).float() / 255, torch.from_numpy(y.astype(np.int64))
        )
        return DataLoader(data, batch_size=sizes.batch_size, shuffle=shuffle)

    train_loader = loader(images[:n_train], labels[:n_train], shuffle=True)
    val_loader = loader(images[n_train:], labels[n_train:])
    test_loader = loader(test_images, test_labels)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, sizes.hidden),
        nn.BatchNorm1d(sizes.hidden),
        nn.ReLU(),
        nn.Linear(sizes.hidden, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=sizes.learning_rate)
    stopper = EarlyStopping(sizes.patience)
    for epoch in range(sizes.max_epochs):  # noqa: B007 (read after the loop)
        for x, y in train_loader:
            train_step(model, optimizer, x, y)
        if stopper.step(validation_loss(model, val_loader), model):
            break
    splits = {"validation": val_loader, "test": test_loader}
    last = {name: evaluate_accuracy(model, data) for name, data in splits.items()}
    stopper.restore(model)
    best = {name: evaluate_accuracy(model, data) for name, data in splits.items()}
    print(
        f"stopped after epoch {epoch} (at most {sizes.max_epochs}, patience "
        f"{sizes.patience}); best epoch {stopper.best_epoch}, validation loss "
        f"{stopper.best_loss:.4f}"
    )
    for name in splits:
        print(f"{name} accuracy: restored {best[name]:.4f}, last {last[name]:.4f}")
except NotImplementedError:
    print("solve exercises 2, 3 and 4 first")

# %% [markdown]
# ## Exercise 5: gradient accumulation
#
# Chapter 3 warns that `.grad` accumulates; here you use it on purpose. When a batch of $N$
# examples does not fit in memory, split it into micro-batches $B_1, \dots, B_K$ of at most
# $m$ rows, run forward and backward on each in turn, and update once. The batch's mean loss
# is a weighted sum of the micro-batches' mean losses, and the gradient is linear:
#
# $$\begin{aligned}
# L &= \frac{1}{N}\sum_{i=1}^{N} \ell_i = \sum_{k=1}^{K} \frac{|B_k|}{N}\, L_k,\\
# \nabla L &= \sum_{k=1}^{K} \frac{|B_k|}{N}\, \nabla L_k, \qquad
# \theta \leftarrow \theta - \eta\, \nabla L,\end{aligned}$$
#
# where $L_k$ is the mean loss of micro-batch $B_k$; the update is the whole batch's, computed
# in $K$ passes, one after the other, each holding the activations of at most $m$ rows. Weight
# by size, not by $1/K$: the last micro-batch may be smaller. Data-parallel training meets the
# same sum: {cite:t}`goyal2017accurate` normalise each worker's loss by the total minibatch
# size, not by the worker's own, because the all-reduce adds the workers' gradients. The
# equality needs a model whose examples do not interact: batch-norm normalises with each
# micro-batch's own statistics, so it computes a different function on micro-batches (the
# check's model has none). And the check uses plain SGD: Adam's steps are invariant to a
# constant scale of the gradient (its first moment scales by $K$, the square root of its
# second by $K$ too; only $\epsilon$ breaks the tie), so with Adam a gradient $K$ times too
# large would go unnoticed, in the check and in real training.
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
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


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
