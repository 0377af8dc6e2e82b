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
# # Lab 8 solutions: Adam, AdamW, a warmup + cosine schedule and Lion in PyTorch
#
# Four exercises, three on chapter 8: one step of Adam with bias correction and L2 weight
# decay, the same with decoupled weight decay (AdamW), and a learning-rate schedule with a
# linear warmup followed by cosine annealing; and one beyond it, a step of Lion, an optimizer
# that keeps one state instead of Adam's two. Each exercise is a function. Replace the line
# `raise NotImplementedError(...)` with your code, run the cell, then run the check below it: a
# check prints ✅ when your function is right, or ❌ with what it expected and a hint.
#
# The checks call your functions for several steps on three cases (the schedule on two) and
# compare with answers computed independently ([`tests/labs/test_lab08.py`](https://github.com/pytorch-jax-course/pytorch-jax-course/blob/main/tests/labs/test_lab08.py) proves those answers
# equal `torch.optim.Adam`, `torch.optim.AdamW`, `torch.optim.lr_scheduler` and, for Lion,
# Optax's `lion`, since `torch.optim` has none); they never
# look at your code, except that those library classes are the answer key: the exercises ask
# you to write their rules out, and a call of one from your function fails the check.
#
# The exercises alone, without the answers: [Lab 8 in PyTorch](../../labs/08-optimizers/in-pytorch.ipynb).

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
import math

import numpy as np
import torch

from helpers import torch as H

# %% [markdown]
# ## Exercise 1: one step of Adam, with L2 weight decay
#
# `param`, `grad`, `m` and `v` are float32 tensors of one shape; `t` is the number of steps
# taken **before** this one (0 at the first call; the caller counts). Return the tuple
# `(new_param, new_m, new_v)` of one step of `torch.optim.Adam` with `weight_decay`, which is
# the classic L2 penalty, added to the gradient:
#
# $$g = \text{grad} + \lambda\,\theta,\quad m \leftarrow \beta_1 m + (1-\beta_1) g,$$
# $$v \leftarrow \beta_2 v + (1-\beta_2) g^2,$$
# $$\hat m = \frac{m}{1-\beta_1^{t+1}},\quad \hat v = \frac{v}{1-\beta_2^{t+1}},\quad
# \theta \leftarrow \theta - \eta\, \frac{\hat m}{\sqrt{\hat v} + \epsilon}.$$
#
# The bias correction uses the number of this step, $t + 1$, which is 1 at the first step;
# $\epsilon$ goes outside the square root (one case has gradients as small as $\epsilon$,
# where that matters). Return float32 tensors, like the inputs. Write the step yourself:
# `torch.optim.Adam` (or `torch.optim.adam.adam`, the function it calls) is what the check
# compares with, and calling it fails the check.


# %%
def adam_step(param, grad, m, v, t, *, lr, beta1, beta2, eps, weight_decay):
    ### BEGIN SOLUTION
    g = grad + weight_decay * param  # L2: the decay is part of the gradient
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g**2
    step = t + 1  # 1 at the first step
    m_hat = m / (1 - beta1**step)
    v_hat = v / (1 - beta2**step)
    return param - lr * m_hat / (v_hat.sqrt() + eps), m, v
    ### END SOLUTION


# %%
H.lab08.check_adam(adam_step)

# %% [markdown]
# ## Exercise 2: AdamW, decoupled weight decay
#
# The same signature and return value, now as `torch.optim.AdamW`: the gradient is left
# alone, and the parameter is shrunk directly, $\theta \leftarrow \theta - \eta\lambda\theta$,
# besides Adam's step (both computed from the parameter the step starts from). The check
# compares with `torch.optim.AdamW`; calling it fails the check.


# %%
def adamw_step(param, grad, m, v, t, *, lr, beta1, beta2, eps, weight_decay):
    ### BEGIN SOLUTION
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    step = t + 1
    m_hat = m / (1 - beta1**step)
    v_hat = v / (1 - beta2**step)
    decayed = param * (1 - lr * weight_decay)  # decoupled: outside the gradient
    return decayed - lr * m_hat / (v_hat.sqrt() + eps), m, v
    ### END SOLUTION


# %%
H.lab08.check_adamw(adamw_step)

# %% [markdown]
# ## Exercise 3: linear warmup, then cosine annealing
#
# Return the learning rate (a Python float) at `step` = 0, 1, ...: a straight line from
# `init` at step 0 to `peak` at step `warmup_steps`, then half a cosine from `peak` down to
# `end` at step `total_steps`:
#
# $$\eta(t) = \text{init} + (\text{peak} - \text{init})\,\frac{t}{W} \quad (t < W),$$
#
# $$
# \begin{gathered} \eta(t) = \text{end} + (\text{peak} - \text{end})\,\frac{1 + \cos(\pi s / S)}{2}, \\
# s = t - W,\; S = T - W \quad (t \ge W), \end{gathered}
# $$
#
# with $W$ = `warmup_steps` and $T$ = `total_steps`. The check covers steps 0 to `total_steps`, where this is `torch.optim.lr_scheduler`'s
# `SequentialLR` of a `LinearLR` warmup and a `CosineAnnealingLR` (which, past `total_steps`,
# climbs back up) and `optax.warmup_cosine_decay_schedule` (which stays at `end`). Write it
# out: a call of `LinearLR`, `CosineAnnealingLR`, `SequentialLR` or `OneCycleLR` fails the
# check.


# %%
def warmup_cosine(step, *, init, peak, warmup_steps, total_steps, end):
    ### BEGIN SOLUTION
    if step < warmup_steps:
        return init + (peak - init) * step / warmup_steps
    s, length = step - warmup_steps, total_steps - warmup_steps
    return end + (peak - end) * (1 + math.cos(math.pi * s / length)) / 2
    ### END SOLUTION


# %%
H.lab08.check_warmup_cosine(warmup_cosine)

# %% [markdown]
# ## Exercise 4: one step of Lion
#
# Adam keeps two running averages per parameter, $m$ and $v$, and divides one by the root of
# the other, so that each coordinate's step is scaled by its own gradient statistics. Lion
# {cite}`chen2023symbolic` (EvoLved Sign Momentum), which a program search over update rules
# found, keeps only the momentum and throws the scale away: the step is the **sign** of an
# interpolation of the momentum and this gradient,
#
# $$c = \beta_1 m + (1-\beta_1)\, g,\qquad
# \theta \leftarrow \theta - \eta\,\big(\operatorname{sign}(c) + \lambda\,\theta\big),$$
#
# $$m \leftarrow \beta_2 m + (1-\beta_2)\, g.$$
#
# Two betas with two jobs: $\beta_1$ (0.9 in the paper) mixes this step's direction,
# $\beta_2$ (0.99) tracks the momentum, which is updated only **after** the step. What this
# buys:
#
# - **one state instead of two**: $m$ only, no $v$ (and no step count, since there is no bias
#   correction), so half of Adam's optimizer memory;
# - **every coordinate moves by exactly $\pm\eta$** before the decay, whatever its
#   gradient's size (0 where $c = 0$: $\operatorname{sign}(0) = 0$). Those steps are larger
#   than Adam's, whose normalized steps are mostly below 1 per coordinate, so the paper
#   recommends a learning rate 3-10 times smaller than AdamW's and a weight decay 3-10 times
#   larger, which keeps the decay's strength $\eta\lambda$ about the same. The decay is
#   decoupled, as in AdamW: it is not part of the gradient, which the sign would flatten.
#
# Write `lion_step(param, grad, m, *, lr, beta1, beta2, weight_decay)`: `param`, `grad` and
# `m` are float32 tensors of one shape; return `(new_param, new_m)`, float32, with
# out-of-place operations (the tensors you are given stay as they are); `lr`, `beta1`,
# `beta2` and `weight_decay` are Python floats. The check runs six steps on each of three
# cases from $m = 0$, feeding your results back. One case has gradients exactly 0 (as an
# unused embedding row's), where $c = 0$ and only the decay may move the parameter; skip no
# coordinate there: the momentum decays too, $m \leftarrow \beta_2 m$, wherever $g = 0$. The
# same case has gradients of $10^{-9}$, whose coordinates move by exactly $\eta$ too.
# `torch.optim` has no Lion in the PyTorch this course pins, so there is no
# library version to avoid.


# %%
def lion_step(param, grad, m, *, lr, beta1, beta2, weight_decay):
    ### BEGIN SOLUTION
    c = beta1 * m + (1 - beta1) * grad  # this step's direction, from the old m
    new_param = param - lr * (torch.sign(c) + weight_decay * param)  # sign(0) = 0
    new_m = beta2 * m + (1 - beta2) * grad  # the momentum, after the step
    return new_param, new_m
    ### END SOLUTION


# %%
H.lab08.check_lion(lion_step)

# %% [markdown]
# Lion against your AdamW (exercise 2) on a small least-squares problem (10 unknowns, noise of
# variance 0.01), 80 steps from zero, Lion with a 6 times smaller learning rate and a 10 times
# larger weight decay, as the paper advises; then the size of Lion's last step, coordinate by
# coordinate, without the decay.

# %%
rng = np.random.default_rng(2)  # the same problem as in the JAX lab
A = torch.from_numpy(rng.normal(size=(64, 10)).astype(np.float32))
b = A @ torch.from_numpy(rng.normal(size=10).astype(np.float32))
b = b + 0.1 * torch.from_numpy(rng.normal(size=64).astype(np.float32))


def loss_and_grad(x):
    r = A @ x - b
    return float((r**2).mean()), 2 * A.T @ r / len(b)


try:  # runs once exercises 2 and 4 are solved
    x, m, v = torch.zeros(10), torch.zeros(10), torch.zeros(10)
    for t in range(80):
        g = loss_and_grad(x)[1]
        hyper = dict(lr=0.3, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.01)
        x, m, v = adamw_step(x, g, m, v, t, **hyper)
    print(f"AdamW, lr 0.3:  final loss {loss_and_grad(x)[0]:.4f}")
    lr, wd = 0.05, 0.1
    x, m = torch.zeros(10), torch.zeros(10)
    for _ in range(80):
        before = x
        x, m = lion_step(
            x, loss_and_grad(x)[1], m, lr=lr, beta1=0.9, beta2=0.99, weight_decay=wd
        )
    print(f"Lion,  lr 0.05: final loss {loss_and_grad(x)[0]:.4f}")
    step = (before * (1 - lr * wd) - x).abs() / lr  # the decay taken out
    sizes = sorted(set(step.round(decimals=4).tolist()))
    print(f"Lion's last step / lr, all 10 coordinates: {sizes}")
except NotImplementedError:
    print("solve exercise 4 first (and exercise 2, whose AdamW it races)")

# %% [markdown]
# Read the two losses with the last line in mind: with a constant learning rate every
# coordinate of Lion still moves by $\pm\eta$ at the end, so it keeps stepping across the
# minimum instead of settling; the paper trains it, as AdamW, with a decaying schedule such
# as exercise 3's. 80 steps on one small problem are no verdict on either method.

# %% [markdown]
# Done. Chapter 8's [PyTorch notebook](../../chapters/08-optimizers/in-pytorch.ipynb) uses
# these rules as `torch.optim.Optimizer` subclasses and runs the schedule on MNIST.
