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
# Four exercises on chapter 2: the backward pass of a linear + ReLU layer written without
# autograd, one step of a GRU cell (beyond the chapter's LSTM), masked scaled dot-product
# attention, and, beyond the chapter (which leaves it to autograd), the backward pass of that
# attention by hand. Each
# exercise is a function. Replace the line `raise NotImplementedError(...)` with your code, run
# the cell, then run the check below it: a check prints ✅ when your function is right, or ❌
# with what it expected and a hint.
#
# The checks call your function on small inputs of two or three different shapes and compare
# with PyTorch's own answer (autograd, `nn.GRUCell`, `F.scaled_dot_product_attention`; a
# float64 NumPy answer for exercise 4), and fail a function that calls the library's version
# (or autograd, in exercises 1 and 4); they never look at your code. All inputs are `torch.float32` (the
# mask is `torch.bool`), and so must be your results.
#
# The solved lab: [Lab 2 solutions in PyTorch](../../solutions/02-basics/in-pytorch.ipynb).

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
# $$
# \begin{gathered} \delta = \frac{\partial L}{\partial z} = dy \odot \mathbb{1}[z > 0], \\
# dx = \delta\, W, \qquad dW = \delta^\top x, \qquad db = \sum_{n=1}^{B} \delta_{n,:}. \end{gathered}
# $$
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

# %% [markdown] tags=["shared"]
# ## Exercise 2: one GRU step
#
# Chapter 2's LSTM carries two states and four blocks (three gates and a candidate). The gated
# recurrent unit (GRU) {cite}`cho2014learning` carries one state $h$ and has three blocks: a
# reset gate $r$, an update gate $z$ and a candidate state $n$. With $\sigma$ the sigmoid and
# $\odot$ the elementwise product, in the form today's libraries compute it:
#
# $$
# \begin{aligned}
# r &= \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}), \\
# z &= \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}), \\
# n &= \tanh\big(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})\big), \\
# h' &= (1 - z) \odot n + z \odot h.
# \end{aligned}
# $$
#
# Two details are easy to get backwards. The update gate $z$ is the share of the *old* state
# that is kept: with $z = 1$ the unit copies $h$ forward unchanged (a path along which the
# gradient crosses many steps, as through the LSTM's cell state), with $z = 0$ it takes the
# candidate; with the same weights, $z \odot n + (1 - z) \odot h$ computes something else
# (it is this cell with $z$'s weights and biases negated). And the reset gate multiplies
# $W_{hn} h + b_{hn}$, the hidden part of the candidate *after* its product, bias included:
# Cho et al.'s original GRU resets the state before the product, $W_{hn} (r \odot h)$, a
# different cell whose trained weights do not carry over. With $r$ near 0 the candidate
# forgets the past and reads the input alone.

# %% [markdown]
# Write `gru_step(x, h, W_ih, W_hh, b_ih, b_hh)` for an input `x` `(B, D)` and the state `h`
# `(B, H)` from the step before, with the weights in PyTorch's layout (that of `nn.GRUCell` and
# `nn.GRU`): `W_ih` `(3H, D)`, `W_hh` `(3H, H)`, `b_ih` and `b_hh` `(3H,)`, the three blocks
# stacked along the `3H` axis in the order $r$, $z$, $n$ (rows `0:H` for $r$, `H:2H` for $z$,
# `2H:3H` for $n$: $W_{ir}$ is `W_ih[:H]`, $b_{hn}$ is `b_hh[2*H:]`). So
# `gi = x @ W_ih.T + b_ih` and `gh = h @ W_hh.T + b_hh`, both `(B, 3H)`, each cut into three
# along the last axis (`gi.chunk(3, dim=-1)`).
# Return `h_new` $= h'$, one `(B, H)` tensor in `torch.float32`, written out, without
# `nn.GRUCell`, `nn.GRU` or `torch.gru_cell` (the check refuses them, under any name), and
# without writing into the inputs. The check runs two cells (`D = 5`, `H = 4`, batch 2;
# `D = 4`, `H = 7`, batch 3) against `nn.GRUCell` in float64, so take the sizes from the
# inputs. (Inside your function `H = h.shape[1]` is fine; at the notebook's top level `H` is
# the helpers module that runs the checks, so try your function with another name for the
# size, such as `hidden`, as the cell after the check does.)


# %%
def gru_step(
    x: torch.Tensor,
    h: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> torch.Tensor:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab02.check_gru_step(gru_step)

# %% [markdown]
# Your cell, unrolled over a sequence, is `nn.GRU`: loaded with the GRU's weights, its states
# at every step agree with the library's to float32 rounding.

# %%
try:  # runs once exercise 2 is solved
    torch.manual_seed(0)
    B, L, D, hidden = 2, 6, 3, 5
    gru = torch.nn.GRU(D, hidden, batch_first=True)
    xs = torch.randn(B, L, D)
    with torch.no_grad():
        theirs, _ = gru(xs)  # (B, L, hidden): the state after each step
        weights = (gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0)
        h = torch.zeros(B, hidden)
        ours = []
        for t in range(L):
            h = gru_step(xs[:, t], h, *weights)
            ours.append(h)
    diff = (torch.stack(ours, dim=1) - theirs).abs().max()
    print(f"max |yours - nn.GRU| over {L} steps = {diff:.1e}")
except NotImplementedError:
    print("solve exercise 2 first")

# %% [markdown]
# ## Exercise 3: masked scaled dot-product attention
#
# Queries `q` `(B, T, d)`, keys `k` `(B, S, d)` and values `v` `(B, S, d_v)` come with a
# `torch.bool` mask `mask` `(B, T, S)`: `mask[b, t, s]` is `True` when query `t` may attend to
# key `s` (the convention of `F.scaled_dot_product_attention`). Every query may attend to at
# least one key. Return the `(B, T, d_v)` tensor
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

# %% [markdown] tags=["shared"]
# ## Exercise 4: the backward pass of attention
#
# Exercise 1 computed a layer's backward pass by hand; chapter 2 leaves attention's to autodiff.
# Here you write it. With $Z = q k^\top / \sqrt{d} + M$ the masked scores (exercise 3),
# $P = \mathrm{softmax}(Z)$ over the keys, and $\mathrm{out} = P v$
# {cite}`vaswani2017attention`, let $dX$ denote $\partial L / \partial X$ for some loss $L$,
# and $d_\mathrm{out}$ `(B, T, d_v)` be given. The product gives two gradients at once:
#
# $$dv = P^\top d_\mathrm{out}, \qquad dP = d_\mathrm{out}\, v^\top.$$
#
# The softmax of each query's row couples its weights (they sum to 1):
# $\partial P_{ij} / \partial Z_{il} = P_{ij} (\delta_{jl} - P_{il})$. Its
# vector-Jacobian product needs no Jacobian, only a sum over the keys of each row:
#
# $$
# \begin{gathered} dZ_{ij} = P_{ij} \Big( dP_{ij} - \sum_{l} dP_{il} P_{il} \Big), \\
# dZ = P \odot \big(dP - \mathrm{rowsum}(dP \odot P)\big). \end{gathered}
# $$
#
# A masked key has $P_{ij} = 0$, so $dZ_{ij} = 0$ and no gradient reaches it. Finally the
# scores are $q k^\top$ times $1/\sqrt{d}$, so that factor comes back in both of their
# gradients:
#
# $$dq = \frac{dZ\, k}{\sqrt{d}}, \qquad dk = \frac{dZ^\top q}{\sqrt{d}}.$$

# %% [markdown]
# Write `attention_backward(q, k, v, mask, d_out)`, with exercise 3's shapes and mask (`q`
# `(B, T, d)`, `k` `(B, S, d)`, `v` `(B, S, d_v)`, `mask` `(B, T, S)` `torch.bool`, `True` where
# query `t` may attend to key `s`, at least one key per query) and `d_out` `(B, T, d_v)`. Return
# the tuple `(dq, dk, dv)`, with the shapes of `q`, `k` and `v`, in `torch.float32`, computed
# from the formulas, without autograd (the check refuses `torch.autograd.grad`, `.backward()`
# and `torch.func`). Recompute `P` as the forward pass does; a batch of matrices is transposed
# with `P.mT` (or `P.transpose(-2, -1)`), and a sum kept for broadcasting needs `keepdim=True`.
# The check runs a random mask with `T = S`, a causal padded one with `T != S` and `d != d_v`,
# and an all-`True` mask (nothing masked), against a float64 NumPy answer, and says which
# gradient is wrong.


# %%
def attention_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor,
    d_out: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab02.check_attention_backward(attention_backward)

# %% [markdown]
# Autograd agrees: on a random case, the largest difference between your gradients and
# `torch.autograd.grad` of `F.scaled_dot_product_attention` (with the same mask) is float32
# rounding.

# %%
try:  # runs once exercise 4 is solved
    gen = torch.Generator().manual_seed(0)
    B, T, S, d, d_v = 2, 3, 4, 8, 5
    q, k, v = (
        torch.randn(B, n, m, generator=gen) for n, m in [(T, d), (S, d), (S, d_v)]
    )
    mask = torch.rand(B, T, S, generator=gen) < 0.6
    mask[..., 0] = True  # every query may attend to key 0
    d_out = torch.randn(B, T, d_v, generator=gen)
    ours = attention_backward(q, k, v, mask, d_out)
    qkv = [t.clone().requires_grad_(True) for t in (q, k, v)]
    out = torch.nn.functional.scaled_dot_product_attention(*qkv, attn_mask=mask)
    theirs = torch.autograd.grad(out, qkv, grad_outputs=d_out)
    for name, a, b in zip(("dq", "dk", "dv"), ours, theirs, strict=True):
        print(f"{name}: max |yours - autograd| = {(a - b).abs().max():.1e}")
except NotImplementedError:
    print("solve exercise 4 first")

# %% [markdown]
# ## Going further
#
# Rewrite your `gru_step` as Cho et al.'s original cell (the reset gate on `h` before
# `W_hn`), train both on a small sequence task, and compare. Then give your `attention` a
# causal mask, `torch.ones(T, T, dtype=torch.bool).tril()`, and check that changing the last
# key changes no output except the last query's. Finally, compare your `linear_relu_backward`
# with `torch.autograd.grad` of the forward pass for random `dy`, and use it twice for two
# stacked layers: the `dx` of the second layer is the `dy` of the first.
