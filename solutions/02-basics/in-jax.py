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
# # Lab 2: deep-learning basics by hand in JAX
#
# Four exercises on chapter 2: the backward pass of a linear + ReLU layer written without
# autodiff, one step of an LSTM cell, masked scaled dot-product attention, and, beyond the
# chapter (which leaves it to autodiff), the backward pass of that attention by hand. Each
# exercise is a function. Replace the line `raise NotImplementedError(...)` with your code, run
# the cell, then run the check below it: a check prints ✅ when your function is right, or ❌
# with what it expected and a hint.
#
# The checks call your function on small inputs of two or three different shapes and compare
# with an answer computed independently (`jax.vjp`, `jax.nn.dot_product_attention`, a NumPy
# LSTM cell, a float64 NumPy answer for exercise 4), and fail a function that calls the
# library's version (or autodiff, in exercises 1 and 4); they never look at your code.
# All inputs are `jnp.float32` arrays (the mask is `jnp.bool_`), and so must be your results.
# The solved lab is
# [`solutions/02-basics/in-jax.ipynb`](../../solutions/02-basics/in-jax.ipynb).

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

from helpers import jax as H

# %% [markdown]
# ## Exercise 1: the backward pass of a linear + ReLU layer
#
# The layer takes a batch `x` of shape `(B, in)` and uses JAX's usual layout for its weights,
# `W` of shape `(in, out)` (as in `flax.nnx.Linear`'s kernel), with a bias `b` of shape
# `(out,)`; the pre-activation `z` and the output `y` are both `(B, out)`:
#
# $$z = x W + b, \qquad y = \mathrm{relu}(z) = \max(z, 0).$$
#
# `dy` `(B, out)` is the gradient of some loss $L$ with respect to `y`,
# $\partial L / \partial y$. Return the tuple `(dx, dW, db)` of the gradients of $L$ with
# respect to `x`, `W` and `b`, with the shapes of `x`, `W` and `b`, computed from these
# formulas, without `jax.grad`, `jax.vjp` or their kin (the check refuses them):
#
# $$\delta = \frac{\partial L}{\partial z} = dy \odot \mathbb{1}[z > 0], \qquad
# dx = \delta\, W^\top, \qquad dW = x^\top \delta, \qquad db = \sum_{n=1}^{B} \delta_{n,:}.$$
#
# ReLU's derivative is the indicator $\mathbb{1}[z > 0]$ of the pre-activation, an array of
# 0s and 1s.


# %%
def linear_relu_backward(
    x: jax.Array, W: jax.Array, b: jax.Array, dy: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    ### BEGIN SOLUTION
    z = x @ W + b  # (B, out): the forward pass again, for the mask
    dz = dy * (z > 0).astype(dy.dtype)  # (B, out)
    return dz @ W.T, x.T @ dz, dz.sum(axis=0)
    ### END SOLUTION


# %%
H.lab02.check_linear_relu_backward(linear_relu_backward)

# %% [markdown]
# ## Exercise 2: one LSTM step
#
# `x` `(B, D)` is the input at one time step, `h` and `c` `(B, H)` the hidden and cell states
# from the step before. The weights are `jax.Array`s in PyTorch's layout (that of `nn.LSTM`,
# used here so that the two labs share one formula): `W_ih` `(4H, D)`, `W_hh` `(4H, H)`,
# `b_ih` and `b_hh` `(4H,)`, with the four gates stacked along the `4H` axis in the order
# input $i$, forget $f$, candidate $g$, output $o$ (rows `0:H` for $i$, `H:2H` for $f$, and so
# on). With $\sigma$ the sigmoid and $\odot$ the elementwise product:
#
# $$z = x W_{ih}^\top + b_{ih} + h W_{hh}^\top + b_{hh} = [z_i, z_f, z_g, z_o],$$
# $$i = \sigma(z_i),\quad f = \sigma(z_f),\quad g = \tanh(z_g),\quad o = \sigma(z_o),$$
# $$c' = f \odot c + i \odot g, \qquad h' = o \odot \tanh(c').$$
#
# Return the tuple `(h_new, c_new)` $= (h', c')$, both `(B, H)`, written out, without Flax's
# `nnx.LSTMCell`.


# %%
def lstm_step(
    x: jax.Array,
    h: jax.Array,
    c: jax.Array,
    W_ih: jax.Array,
    W_hh: jax.Array,
    b_ih: jax.Array,
    b_hh: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    ### BEGIN SOLUTION
    z = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh  # (B, 4H)
    z_i, z_f, z_g, z_o = jnp.split(z, 4, axis=-1)  # each (B, H)
    i, f, o = jax.nn.sigmoid(z_i), jax.nn.sigmoid(z_f), jax.nn.sigmoid(z_o)
    g = jnp.tanh(z_g)
    c_new = f * c + i * g
    return o * jnp.tanh(c_new), c_new
    ### END SOLUTION


# %%
H.lab02.check_lstm_step(lstm_step)

# %% [markdown]
# ## Exercise 3: masked scaled dot-product attention
#
# Queries `q` `(B, T, d)`, keys `k` `(B, S, d)` and values `v` `(B, S, d_v)` come with a
# boolean mask `mask` `(B, T, S)`: `mask[b, t, s]` is `True` when query `t` may attend to key
# `s` (the convention of `jax.nn.dot_product_attention`). Every query may attend to at least
# one key. Return the `(B, T, d_v)` array
#
# $$\mathrm{softmax}\!\left(\frac{q k^\top}{\sqrt{d}} + M\right) v, \qquad
# M_{bts} = \begin{cases} 0 & \text{if mask}_{bts} \\ -\infty & \text{otherwise,}\end{cases}$$
#
# with the softmax taken over the keys (the last axis, of size `S`), written out, without
# `jax.nn.dot_product_attention` or Flax's `nnx.dot_product_attention`.


# %%
def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    ### BEGIN SOLUTION
    scores = q @ k.swapaxes(-2, -1) / jnp.sqrt(q.shape[-1])  # (B, T, S)
    scores = jnp.where(mask, scores, -jnp.inf)
    return jax.nn.softmax(scores, axis=-1) @ v  # (B, T, d_v)
    ### END SOLUTION


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
# $$dS_{ij} = P_{ij} \Big( dP_{ij} - \sum_{l} dP_{il} P_{il} \Big), \qquad
# dZ = P \odot \big(dP - \mathrm{rowsum}(dP \odot P)\big).$$
#
# A masked key has $P_{ij} = 0$, so $dS_{ij} = 0$ and no gradient reaches it. Finally the
# scores are $q k^\top$ times $1/\sqrt{d}$, so that factor comes back in both of their
# gradients:
#
# $$dq = \frac{dZ\, k}{\sqrt{d}}, \qquad dk = \frac{dZ^\top q}{\sqrt{d}}.$$

# %% [markdown]
# Write `attention_backward(q, k, v, mask, d_out)`, with exercise 3's shapes and mask (`q`
# `(B, T, d)`, `k` `(B, S, d)`, `v` `(B, S, d_v)`, `mask` `(B, T, S)` boolean, `True` where query
# `t` may attend to key `s`, at least one key per query) and `d_out` `(B, T, d_v)`. Return the
# tuple `(dq, dk, dv)`, with the shapes of `q`, `k` and `v`, in `jnp.float32`, computed from the
# formulas, without autodiff (the check refuses `jax.grad`, `jax.vjp`, `jax.jvp`, `jax.jacrev`
# and their kin). Recompute `P` as the forward pass does; a batch of matrices is transposed with
# `P.mT` (or `jnp.swapaxes(P, -2, -1)`), and a sum kept for broadcasting needs `keepdims=True`.
# The check runs a random mask with `T = S`, a causal padded one with `T != S` and `d != d_v`,
# and an all-`True` mask (nothing masked), against a float64 NumPy answer, and says which
# gradient is wrong.


# %%
def attention_backward(
    q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, d_out: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    ### BEGIN SOLUTION
    scale = 1 / jnp.sqrt(q.shape[-1])
    scores = jnp.where(mask, q @ k.mT * scale, -jnp.inf)  # (B, T, S)
    P = jax.nn.softmax(scores, axis=-1)  # the forward pass again: 0 at masked keys
    dv = P.mT @ d_out  # (B, S, d_v)
    dP = d_out @ v.mT  # (B, T, S)
    dZ = P * (dP - (dP * P).sum(axis=-1, keepdims=True))  # softmax's backward, per row
    return dZ @ k * scale, dZ.mT @ q * scale, dv
    ### END SOLUTION


# %%
H.lab02.check_attention_backward(attention_backward)

# %% [markdown]
# Autodiff agrees: on a random case, the largest difference between your gradients and
# `jax.vjp` of the masked attention is float32 rounding.

# %%
try:  # runs once exercise 4 is solved
    kq, kk, kv, km, kd = jax.random.split(jax.random.key(0), 5)
    B, T, S, d, d_v = 2, 3, 4, 8, 5
    q = jax.random.normal(kq, (B, T, d))
    k = jax.random.normal(kk, (B, S, d))
    v = jax.random.normal(kv, (B, S, d_v))
    mask = (
        (jax.random.uniform(km, (B, T, S)) < 0.6).at[..., 0].set(True)
    )  # key 0 for all
    d_out = jax.random.normal(kd, (B, T, d_v))
    ours = attention_backward(q, k, v, mask, d_out)

    def forward(q, k, v):
        scores = jnp.where(mask, q @ k.mT / jnp.sqrt(d), -jnp.inf)
        return jax.nn.softmax(scores, axis=-1) @ v

    _, vjp = jax.vjp(forward, q, k, v)
    for name, a, b in zip(("dq", "dk", "dv"), ours, vjp(d_out), strict=True):
        print(f"{name}: max |yours - jax.vjp| = {jnp.abs(a - b).max():.1e}")
except NotImplementedError:
    print("solve exercise 4 first")

# %% [markdown]
# ## Going further
#
# Wrap your `lstm_step` in `jax.lax.scan` over the time steps of a `(L, B, D)` sequence and
# check it against a Python loop. Then give your `attention` a causal mask,
# `jnp.tril(jnp.ones((T, T), bool))`, and check that changing the last key changes no output
# except the last query's. Finally, compare your `linear_relu_backward` with `jax.vjp` of the
# forward pass for random `dy`, and use it twice for two stacked layers: the `dx` of the
# second layer is the `dy` of the first.
