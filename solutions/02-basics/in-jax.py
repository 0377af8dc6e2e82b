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
# # Lab 2 solutions: deep-learning basics by hand in JAX
#
# Four exercises on chapter 2: the backward pass of a linear + ReLU layer written without
# autodiff, one step of a GRU cell (beyond the chapter's LSTM), masked scaled dot-product
# attention, and, beyond the chapter (which leaves it to autodiff), the backward pass of that
# attention by hand. Each
# exercise is a function. Replace the line `raise NotImplementedError(...)` with your code, run
# the cell, then run the check below it: a check prints ✅ when your function is right, or ❌
# with what it expected and a hint.
#
# The checks call your function on small inputs of two or three different shapes and compare
# with an answer computed independently (`jax.vjp`, `jax.nn.dot_product_attention`, a NumPy
# GRU cell, a float64 NumPy answer for exercise 4), and fail a function that calls the
# library's version (or autodiff, in exercises 1 and 4); they never look at your code.
# All inputs are `jnp.float32` arrays (the mask is `jnp.bool_`), and so must be your results.
#
# The exercises alone, without the answers: [Lab 2 in JAX](../../labs/02-basics/in-jax.ipynb).

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
from flax import nnx

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
# $$
# \begin{gathered} \delta = \frac{\partial L}{\partial z} = dy \odot \mathbb{1}[z > 0], \\
# dx = \delta\, W^\top, \qquad dW = x^\top \delta, \qquad db = \sum_{n=1}^{B} \delta_{n,:}. \end{gathered}
# $$
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
# `(B, H)` from the step before, with `jax.Array` weights in Flax's layout (that of
# `nnx.GRUCell`'s kernels, `(in, out)`): `W_ih` `(D, 3H)`, `W_hh` `(H, 3H)`, `b_ih` and `b_hh`
# `(3H,)`, the three blocks side by side along the `3H` axis in the order $r$, $z$, $n$
# (columns `0:H` for $r$, `H:2H` for $z$, `2H:3H` for $n$: `W_ih[:, :H]` is $W_{ir}^\top$,
# $b_{hn}$ is `b_hh[2*H:]`). So `gi = x @ W_ih + b_ih` and `gh = h @ W_hh + b_hh`, both
# `(B, 3H)`, each cut into three along the last axis (`jnp.split(gi, 3, axis=-1)`). (Flax's
# `nnx.GRUCell` has no `b_hh`, although its docstring's formula shows a $b_{hn}$: it is this
# cell with `b_hh = 0`; `linen.GRUCell` keeps $b_{hn}$ but has no $b_{hr}$ or $b_{hz}$.)
# Return `h_new` $= h'$, one `(B, H)` array in `jnp.float32`, written out, without Flax's GRU
# cells, `nnx.GRUCell` and `linen.GRUCell` (the check refuses them, under any name, inside
# `nnx.RNN` too). The check runs two cells (`D = 5`, `H = 4`, batch 2; `D = 4`, `H = 7`,
# batch 3) against a float64 NumPy GRU, so take the sizes from the inputs. (Inside your
# function `H = h.shape[1]` is fine; at the notebook's top level `H` is the helpers module
# that runs the checks, so try your function with another name for the size, such as
# `hidden`, as the cell after the check does.)


# %%
def gru_step(
    x: jax.Array,
    h: jax.Array,
    W_ih: jax.Array,
    W_hh: jax.Array,
    b_ih: jax.Array,
    b_hh: jax.Array,
) -> jax.Array:
    ### BEGIN SOLUTION
    gi_r, gi_z, gi_n = jnp.split(x @ W_ih + b_ih, 3, axis=-1)  # each (B, H)
    gh_r, gh_z, gh_n = jnp.split(h @ W_hh + b_hh, 3, axis=-1)
    r = jax.nn.sigmoid(gi_r + gh_r)
    z = jax.nn.sigmoid(gi_z + gh_z)
    n = jnp.tanh(gi_n + r * gh_n)  # reset after the product, b_hn included
    return (1 - z) * n + z * h  # z keeps the old state
    ### END SOLUTION


# %%
H.lab02.check_gru_step(gru_step)

# %% [markdown]
# Your cell, unrolled over a sequence, is Flax's `nnx.RNN(nnx.GRUCell(...))`: given the cell's
# kernels and input bias (and `b_hh = 0`), its states at every step agree with the library's
# to float32 rounding.

# %%
try:  # runs once exercise 2 is solved
    B, L, D, hidden = 2, 6, 3, 5
    cell = nnx.GRUCell(D, hidden, rngs=nnx.Rngs(0))
    xs = jax.random.normal(jax.random.key(0), (B, L, D))
    theirs = nnx.RNN(cell)(xs)  # (B, L, hidden): the state after each step
    weights = (
        cell.dense_i.kernel[...],
        cell.dense_h.kernel[...],
        cell.dense_i.bias[...],
        jnp.zeros(3 * hidden),  # Flax's cell has no hidden bias
    )
    h = jnp.zeros((B, hidden))
    ours = []
    for t in range(L):
        h = gru_step(xs[:, t], h, *weights)
        ours.append(h)
    diff = jnp.abs(jnp.stack(ours, axis=1) - theirs).max()
    print(f"max |yours - nnx.RNN(nnx.GRUCell)| over {L} steps = {diff:.1e}")
except NotImplementedError:
    print("solve exercise 2 first")

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
    # (B, T, S) bool; every query may attend to key 0
    mask = (jax.random.uniform(km, (B, T, S)) < 0.6).at[..., 0].set(True)
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
# Rewrite your `gru_step` as Cho et al.'s original cell (the reset gate on `h` before
# `W_hn`), train both on a small sequence task, and compare; wrap either in `jax.lax.scan`
# over the time steps of a `(L, B, D)` sequence and check it against the Python loop above.
# Then give your `attention` a causal mask,
# `jnp.tril(jnp.ones((T, T), bool))`, and check that changing the last key changes no output
# except the last query's. Finally, compare your `linear_relu_backward` with `jax.vjp` of the
# forward pass for random `dy`, and use it twice for two stacked layers: the `dx` of the
# second layer is the `dy` of the first.
