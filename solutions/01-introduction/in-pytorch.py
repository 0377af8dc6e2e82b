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
# # Lab 1 solutions: first steps in PyTorch
#
# Five exercises on chapter 1: tensors, accuracy, a gradient by autograd, checking it with finite
# differences, and a training step with two bugs that only a second call shows. Each exercise
# is a function. Replace the line `raise NotImplementedError(...)` with your code, run the
# cell, then run the check below it: a check prints ✅ when your function is right, or ❌ with
# what it expected and a hint.
#
# The checks call your function several times, on small inputs, and compare with answers
# computed independently; they never look at your code.
#
# The exercises alone, without the answers: [Lab 1 in PyTorch](../../labs/01-introduction/in-pytorch.ipynb).

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
import torch
import torch.nn.functional as F

from helpers import torch as H

# %% [markdown]
# ## Exercise 1: from images to model inputs
#
# `images` is a `torch.uint8` tensor of shape `(N, 28, 28)` with values 0..255. Return a
# `torch.float32` tensor of shape `(N, 784)`: each image flattened to one row, each pixel
# divided by 255, so that 0 stays 0 and 255 becomes 1.


# %%
def preprocess(images: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION
    return images.reshape(len(images), -1).to(torch.float32) / 255
    ### END SOLUTION


# %%
H.lab01.check_preprocess(preprocess)

# %% [markdown]
# ## Exercise 2: accuracy
#
# `logits` is a float tensor of shape `(B, C)`: one score per class for each of `B` examples.
# `labels` is an integer tensor of shape `(B,)`. The predicted class of an example is the
# index of its highest score (`argmax` over the class axis). Return the fraction of examples
# whose prediction equals the label, as a Python `float` between 0 and 1.
#
# A comparison such as `predictions == labels` gives a `torch.bool` tensor, and `mean()` needs
# a floating-point one.


# %%
def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    ### BEGIN SOLUTION
    return (logits.argmax(dim=-1) == labels).float().mean().item()
    ### END SOLUTION


# %%
H.lab01.check_accuracy(accuracy)

# %% [markdown]
# ## Exercise 3: a gradient by automatic differentiation
#
# For a linear model with weights `w` `(D,)`, inputs `X` `(N, D)` and targets `y` `(N,)`, all
# `torch.float32`, the mean squared error is `loss(w) = mean((X @ w - y) ** 2)`. Return its
# gradient with respect to `w`, a `torch.float32` tensor of shape `(D,)`, computed by autograd
# (`requires_grad` and `backward()`, or `torch.func.grad`), not by a formula derived by hand.
# Leave the caller's `w` as it was: the check calls your function twice with the same `w`.


# %%
def mse_grad(w: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION
    w = w.detach().clone().requires_grad_(True)
    loss = ((X @ w - y) ** 2).mean()
    loss.backward()
    return w.grad
    ### END SOLUTION


# %%
H.lab01.check_mse_grad(mse_grad)

# %% [markdown]
# ## Exercise 4: check a gradient with finite differences
#
# Finite differences are too slow to train with, but they check a gradient you computed
# another way. `f` maps a 1-D `torch.float32` tensor to a 0-d tensor, `grad_f(x)` claims to
# be its gradient, and `eps` is a step size. For each coordinate `i`, estimate the partial
# derivative by the central difference `(f(x + eps * e_i) - f(x - eps * e_i)) / (2 * eps)`,
# where `e_i` is 1 at position `i` and 0 elsewhere. Return the largest absolute difference
# between `grad_f(x)` and the estimates, as a Python `float`. Leave `x` unchanged.
#
# Even for a correct `grad_f` the result is not 0: the central difference is off by a term of
# order `eps ** 2`, which the check's large steps make visible.


# %%
def gradient_error(f, grad_f, x: torch.Tensor, eps: float) -> float:
    ### BEGIN SOLUTION
    estimate = torch.zeros_like(x)
    for i in range(len(x)):
        step = torch.zeros_like(x)
        step[i] = eps
        estimate[i] = (f(x + step) - f(x - step)) / (2 * eps)
    return (grad_f(x) - estimate).abs().max().item()
    ### END SOLUTION


# %%
H.lab01.check_gradient_error(gradient_error)

# %% [markdown]
# Used on your `mse_grad`, for instance, `gradient_error(loss, grad, w, 1e-2)` with
# `loss = lambda w: ((X @ w - y) ** 2).mean()` and `grad = lambda w: mse_grad(w, X, y)`
# should give a small number for any `X`, `y` and `w`.
#
# ## Exercise 5: a training step that fails the second time
#
# This training step looks right, and its first call returns the right loss and makes the
# right update:
#
# ```python
# def train_step(model, optimizer, x, y):
#     inputs = x.view(len(x), -1)  # (B, H*W): one row per image
#     inputs /= 255  # pixels from 0..255 to 0..1
#     loss = F.cross_entropy(model(inputs), y)
#     loss.backward()
#     optimizer.step()
#     return loss.item()
# ```
#
# Called a second time on the same batch, it goes wrong in two ways, both left behind by the
# first call. Predict what
# `inputs /= 255` does to the caller's `x` (what does `view` share?), and what `.grad` holds
# when the second call starts. Then write the step correctly: `x` is a `torch.float32` tensor
# of shape `(B, H, W)` with values 0..255 that must stay unchanged, `y` holds integer labels
# `(B,)`; update the parameters once and return the loss computed before the update, as a
# Python `float`. The check calls your step twice and compares with a reference.


# %%
def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x, y) -> float:
    ### BEGIN SOLUTION
    optimizer.zero_grad()
    inputs = x.reshape(len(x), -1) / 255  # a new tensor: x is left as it was
    loss = F.cross_entropy(model(inputs), y)
    loss.backward()
    optimizer.step()
    return loss.item()
    ### END SOLUTION


# %%
H.lab01.check_framework_specific(train_step)

# %% [markdown]
# ## Going further
#
# Put the pieces together: load MNIST with `H.load_mnist`, train `H.MLP(784, (256,), 10)` with
# your `train_step` on batches of 128 images (`torch.from_numpy(images).float()`: your step
# flattens and scales them), and measure test accuracy with your `accuracy` on the logits of
# `preprocess`-ed test images. Then call `gradient_error` on your `mse_grad` for `eps` from
# `1e-1` down to `1e-7`, in float32 and in float64, and explain the numbers you see.
