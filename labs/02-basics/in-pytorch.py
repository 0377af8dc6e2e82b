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
# # Lab 2: deep-learning basics by hand in PyTorch
#
# Three exercises on chapter 2: the backward pass of a linear + ReLU layer written without
# autograd, one step of an LSTM cell, and masked scaled dot-product attention. Each exercise is
# a function. Replace the line `raise NotImplementedError(...)` with your code, run the cell,
# then run the check below it: a check prints ✅ when your function is right, or ❌ with what
# it expected and a hint.
#
# The checks call your function on small inputs of two different shapes and compare with
# PyTorch's own answer (autograd, `nn.LSTMCell`, `F.scaled_dot_product_attention`), and fail a
# function that calls it; they never look at your code. All inputs are `torch.float32` (the
# mask is `torch.bool`), and so must be your results. The solved lab is
# [`solutions/02-basics/in-pytorch.ipynb`](../../solutions/02-basics/in-pytorch.ipynb).

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

import torch

from helpers import torch as H

# %% [markdown]
# ## Exercise 1: the backward pass of a linear + ReLU layer
#
# The layer takes a batch `x` of shape `(B, in)` and uses PyTorch's layout for its weights,
# `W` of shape `(out, in)` (as in `nn.Linear`), with a bias `b` of shape `(out,)`; the
# pre-activation `z` and the output `y` are both `(B, out)`:
#
# $$z = x W^\top + b, \qquad y = \mathrm{relu}(z) = \max(z, 0).$$
#
# `dy` `(B, out)` is the gradient of some loss $L$ with respect to `y`,
# $\partial L / \partial y$. Return the tuple `(dx, dW, db)` of the gradients of $L$ with
# respect to `x`, `W` and `b`, with the shapes of `x`, `W` and `b`, computed from these
# formulas, without autograd (the check refuses `torch.autograd.grad`, `.backward()` and
# `torch.func`):
#
# $$\delta = \frac{\partial L}{\partial z} = dy \odot \mathbb{1}[z > 0], \qquad
# dx = \delta\, W, \qquad dW = \delta^\top x, \qquad db = \sum_{n=1}^{B} \delta_{n,:}.$$
#
# ReLU's derivative is the indicator $\mathbb{1}[z > 0]$ of the pre-activation, a tensor of
# 0s and 1s. Leave the inputs unchanged: build new tensors rather than writing into `dy`.


# %%
def linear_relu_backward(
    x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, dy: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab02.check_linear_relu_backward(linear_relu_backward)

# %% [markdown]
# ## Exercise 2: one LSTM step
#
# `x` `(B, D)` is the input at one time step, `h` and `c` `(B, H)` the hidden and cell states
# from the step before. The weights have PyTorch's layout (that of `nn.LSTM` and
# `nn.LSTMCell`): `W_ih` `(4H, D)`, `W_hh` `(4H, H)`, `b_ih` and `b_hh` `(4H,)`, with the four
# gates stacked along the `4H` axis in the order input $i$, forget $f$, candidate $g$,
# output $o$ (rows `0:H` for $i$, `H:2H` for $f$, and so on). With $\sigma$ the sigmoid and
# $\odot$ the elementwise product:
#
# $$z = x W_{ih}^\top + b_{ih} + h W_{hh}^\top + b_{hh} = [z_i, z_f, z_g, z_o],$$
# $$i = \sigma(z_i),\quad f = \sigma(z_f),\quad g = \tanh(z_g),\quad o = \sigma(z_o),$$
# $$c' = f \odot c + i \odot g, \qquad h' = o \odot \tanh(c').$$
#
# Return the tuple `(h_new, c_new)` $= (h', c')$, both `(B, H)`, written out, without
# `nn.LSTMCell`, `nn.LSTM` or `torch.lstm_cell`.


# %%
def lstm_step(
    x: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab02.check_lstm_step(lstm_step)

# %% [markdown]
# ## Exercise 3: masked scaled dot-product attention
#
# Queries `q` `(B, T, d)`, keys `k` `(B, S, d)` and values `v` `(B, S, dv)` come with a
# `torch.bool` mask `mask` `(B, T, S)`: `mask[b, t, s]` is `True` when query `t` may attend to
# key `s` (the convention of `F.scaled_dot_product_attention`). Every query may attend to at
# least one key. Return the `(B, T, dv)` tensor
#
# $$\mathrm{softmax}\!\left(\frac{q k^\top}{\sqrt{d}} + M\right) v, \qquad
# M_{bts} = \begin{cases} 0 & \text{if mask}_{bts} \\ -\infty & \text{otherwise,}\end{cases}$$
#
# with the softmax taken over the keys (the last axis, of size `S`), written out, without
# `F.scaled_dot_product_attention`.


# %%
def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab02.check_attention(attention)

# %% [markdown]
# ## Going further
#
# Wrap your `lstm_step` in a loop over the time steps of a `(B, L, D)` sequence and compare
# the last hidden state with `nn.LSTM(D, H, batch_first=True)` loaded with the same weights
# (`lstm.weight_ih_l0`, ...). Then give your `attention` a causal mask,
# `torch.ones(T, T, dtype=torch.bool).tril()`, and check that changing the last key changes
# no output except the last query's. Finally, verify your `linear_relu_backward` for two
# stacked layers: the `dx` of the second layer is the `dy` of the first.
