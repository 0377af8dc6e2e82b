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
# Five exercises on chapter 1: tensors, top-k accuracy with a rule for ties, a gradient by
# autograd, checking a gradient along random directions, and a training step with two bugs that
# only a second call shows. Each exercise
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
# ## Exercise 2: top-k accuracy, with a rule for ties
#
# Chapter 1 counts an example as right when its label's class has the highest score (`argmax`).
# **Top-k accuracy** is more lenient: an example counts when its label is among the `k`
# highest-scoring classes. `logits` is a float tensor of shape `(B, C)`, `labels` an integer
# tensor of shape `(B,)`, and `k` an int. Return the fraction of examples that count, as a
# Python `float` between 0 and 1.
#
# "Among the `k` highest" needs a rule for ties: with scores `[4, 1, 1, 1]`, which classes are
# the top two? `torch.topk` and `argsort` pick among equal scores in an order their
# documentation leaves open (here `torch.topk` on `[4, 1, 1, 1]` with `k = 2` returns classes
# 0 and 2), so the answer would depend on where the label sits. Use this rule: an example
# counts when **fewer than `k` classes score strictly higher** than its label's class, so a tie
# goes in the label's favour.
# (scikit-learn's `top_k_accuracy_score` decides otherwise: among equal scores it takes the
# classes with the highest indices first, its
# [documentation](https://scikit-learn.org/stable/modules/generated/sklearn.metrics.top_k_accuracy_score.html)
# says.) The rule needs no sort: take each row's label score as a `(B, 1)` column
# (`logits.gather(1, labels[:, None])`), compare the whole row with it by broadcasting, and
# count, per row, the classes above it. With `k = 1` and no ties, this is chapter 1's accuracy.
#
# A `k` outside `1..C` has no meaning: raise `ValueError`, with a message that names the range,
# before computing anything. The check calls your function with `k = 0` and `k = C + 1` and
# expects that error: a function that quietly returned 0.0 or 1.0 would hide the caller's bug.


# %%
def top_k_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    ### BEGIN SOLUTION
    classes = logits.shape[-1]
    if not 1 <= k <= classes:
        raise ValueError(f"k must be between 1 and {classes}, got {k}")
    own = logits.gather(1, labels[:, None])  # (B, 1) the label's score
    higher = (logits > own).sum(dim=1)  # (B,) classes scoring strictly higher
    return (higher < k).float().mean().item()
    ### END SOLUTION


# %%
H.lab01.check_top_k_accuracy(top_k_accuracy)

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
# ## Exercise 4: a gradient check along random directions
#
# Chapter 1 checks a gradient coordinate by coordinate: two evaluations of `f` per parameter,
# `2 D` for `D` parameters, far too many for a real model. A cheaper check looks along a few
# directions. For a direction $v$, the derivative of $f$ along $v$ is the dot product of the
# gradient with $v$, and a central difference along $v$ estimates it from two evaluations,
# whatever the size of $x$:
#
# $$\begin{aligned}\nabla f(x) \cdot v &\approx \mathrm{fd}_v\\
# &= \frac{f(x + \varepsilon v) - f(x - \varepsilon v)}{2 \varepsilon}.\end{aligned}$$
#
# JAX's own tests check gradients this way: `jax.test_util.check_grads` compares them with
# finite differences "only ... in a single randomly chosen direction", its
# [documentation](https://docs.jax.dev/en/latest/_autosummary/jax.test_util.check_grads.html)
# says, so that the check stays cheap for large inputs; PyTorch's
# `torch.autograd.gradcheck(..., fast_mode=True)` multiplies the Jacobian by random vectors for
# the same reason, calling the function twice instead of twice per input entry
# ([pytorch/pytorch#53876](https://github.com/pytorch/pytorch/issues/53876)).
#
# `f` maps a 1-D `torch.float32` tensor `x` of shape `(D,)` to a 0-d tensor, `grad_f(x)`
# claims to be its gradient, `eps` is the step, and `directions` is a `torch.float32` tensor of
# shape `(K, D)` whose rows have norm 1 (the caller draws them, e.g.
# `torch.randn(K, D, generator=g)`, each row divided by its norm, so your function needs no
# random numbers). Call `grad_f` once, `g = grad_f(x)`; for each row $v$ compute $g \cdot v$,
# the central difference $\mathrm{fd}_v$, and their relative error
#
# $$e_v = \frac{|g \cdot v - \mathrm{fd}_v|}{\max(|g \cdot v|,\ |\mathrm{fd}_v|,\ 10^{-12})}.$$
#
# Return the largest $e_v$, as a Python `float`, and leave `x` unchanged. Relative, because an
# absolute difference grows with the scale of `f` (a loss 1000 times larger gives differences
# 1000 times larger), while $e_v$ reads the same at any scale: `1e-3` means agreement to about
# three digits. The `1e-12` only keeps `0 / 0` away. The check's steps are large on purpose,
# so the central difference's own error (of order `eps ** 2`) shows and a one-sided difference
# fails.
#
# The whole check costs `2 K` evaluations of `f` and one gradient. What it cannot see: a
# gradient error orthogonal to every direction tried (then $g \cdot v$ is right although $g$ is
# wrong). With directions drawn at random from a continuous distribution (the normal, here),
# that has probability zero in exact arithmetic. In float32, an error much smaller than the
# gradient (one wrong entry among millions) can hide under the rounding floor, about `1e-3`,
# that the demo below shows.


# %%
def directional_gradient_error(
    f, grad_f, x: torch.Tensor, eps: float, directions: torch.Tensor
) -> float:
    ### BEGIN SOLUTION
    g = grad_f(x)  # (D,)
    errors = []
    for v in directions:  # v: (D,)
        exact = torch.dot(g, v)
        fd = (f(x + eps * v) - f(x - eps * v)) / (2 * eps)
        scale = max(exact.abs().item(), fd.abs().item(), 1e-12)
        errors.append((exact - fd).abs().item() / scale)
    return max(errors)
    ### END SOLUTION


# %%
H.lab01.check_directional_gradient_error(directional_gradient_error)

# %% [markdown]
# Used on your `mse_grad`: a linear model with `D = 10,000` weights, checked along `K = 4`
# random directions, with the gradient from autograd and with one wrong by a factor 2 (a
# classic slip). The loss is quadratic in `w`, so the central difference has no truncation
# error, whatever the step: `eps = 1`. What is left for autograd's gradient, about `1e-3`,
# is float32 rounding: each loss is stored to about 7 significant digits, and the last line
# below prints the loss beside the smallest $|f(w + v) - f(w - v)|$ over the directions,
# thousands of times smaller, of which only three or four digits survive.

# %%
g = torch.Generator().manual_seed(0)
N, D, K = 64, 10_000, 4
X = torch.randn(N, D, generator=g) / D**0.5  # (N, D)
y = torch.randn(N, generator=g)  # (N,)
w = torch.randn(D, generator=g)  # (D,)
directions = torch.randn(K, D, generator=g)
directions /= directions.norm(dim=1, keepdim=True)  # (K, D), rows of norm 1
calls = []


def loss(w):
    calls.append(1)  # one evaluation
    return ((X @ w - y) ** 2).mean()


try:
    for name, grad in [
        ("autograd", lambda w: mse_grad(w, X, y)),
        ("autograd / 2", lambda w: mse_grad(w, X, y) / 2),
    ]:
        calls.clear()
        error = directional_gradient_error(loss, grad, w, 1.0, directions)
        print(f"{name:>12}: largest relative error {error:.1e}, {len(calls)} calls")
    print(f"chapter 1's check, coordinate by coordinate: {2 * D:,} calls of f")
    gaps = [(loss(w + v) - loss(w - v)).abs().item() for v in directions]  # (K,)
    print(f"loss {loss(w).item():.3f}, smallest |f(w + v) - f(w - v)| {min(gaps):.1e}")
    assert loss(w).item() > 1000 * min(gaps), (
        "the text says: thousands of times smaller"
    )
except NotImplementedError:
    print("solve exercises 3 and 4 first")

# %% [markdown]
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
# flattens and scales them), and measure test top-1 and top-3 accuracy with your
# `top_k_accuracy` on the logits of `preprocess`-ed test images. Then call
# `directional_gradient_error` on your `mse_grad` for `eps` from `1e0` down to `1e-7`, in
# float32 and in float64, and explain the numbers you see (the loss is quadratic: where does the
# error come from?).
