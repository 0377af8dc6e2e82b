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
# # Lab 6: padding masks, rotary positions and a training-only vocabulary in JAX
#
# Five exercises on chapter 6, the pieces that make a text model read only the real tokens of
# a review and where each token stands: a padding mask built from lengths, masked mean pooling,
# rotary position embeddings (RoPE) for attention's queries and keys, which the chapter does not
# teach (its Transformer learns its position embeddings), a vocabulary built on the training
# split that maps every other word to `<unk>`, and each review reversed within its length for
# the backward direction of a bidirectional RNN. Each exercise is a function. Replace the line
# `raise NotImplementedError(...)` with your code, run the cell, then run the check below it: a
# check prints ✅ when your function is right, or ❌ with what it expected and a hint.
#
# The checks call your functions on small cases and compare with answers computed
# independently (`tests/labs/test_lab06.py` proves those answers equal the chapter's helpers
# and, for exercise 3, PyTorch's ONNX `RotaryEmbedding` op);
# they never look at your code.
# The solved lab: [`solutions/06-imdb-sentiment/in-jax.ipynb`](../../solutions/06-imdb-sentiment/in-jax.ipynb).

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
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from helpers import jax as H

# %% [markdown]
# ## Exercise 1: a padding mask from lengths
#
# A batch of `B` reviews is padded to `max_len` tokens; `lengths` (an integer array `(B,)`)
# holds each review's number of real tokens. Return the boolean mask `(B, max_len)` that is
# `True` at real tokens and `False` at padding: row `b` is real at positions
# `0, ..., lengths[b] - 1`.


# %%
def length_mask(lengths, max_len):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab06.check_length_mask(length_mask)

# %% [markdown]
# ## Exercise 2: masked mean pooling
#
# `x` is a float array `(B, T, D)` (a feature per token) and `mask` the boolean `(B, T)` of
# exercise 1. Return `(B, D)`: for each review the mean of its real tokens' features. The
# padded positions of `x` are **not** zero, so they must not enter the sum, and the divisor is
# the number of real tokens of each row, not `T`. Write the pooling yourself: calling the
# chapter's `H.text.masked_mean` fails the check.


# %%
def masked_mean(x, mask):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab06.check_masked_mean(masked_mean)

# %% [markdown] tags=["shared"]
# ## Exercise 3: rotary position embeddings (RoPE)
#
# Chapter 6's Transformer (section 6.5) adds a learned embedding of each position to the tokens.
# {cite:t}`su2024roformer` encode positions instead by *rotating* the queries and keys of
# attention. The $D$ features of a head are cut into $D/2$ pairs; pair $i$ of the vector at
# position $m$ turns by the angle $m\,\theta_i$, with $\theta_i = \text{base}^{-2i/D}$ for
# $i = 0, \dots, D/2 - 1$ ($\text{base} = 10000$): pair 0 turns fastest, the last pairs slowest.
#
# $$\begin{pmatrix} q'_{2i} \\ q'_{2i+1} \end{pmatrix} =
# \begin{pmatrix} \cos m\theta_i & -\sin m\theta_i \\ \sin m\theta_i & \cos m\theta_i \end{pmatrix}
# \begin{pmatrix} q_{2i} \\ q_{2i+1} \end{pmatrix}$$
#
# Call this block-diagonal rotation $R_m$. Each pair turns by an angle proportional to the
# position, so $R_m^\top = R_{-m}$ and $R_m^\top R_n = R_{n-m}$, and the score of a query at position $m$ and a key at
# position $n$ is
#
# $$(R_m q) \cdot (R_n k) = q^\top R_m^\top R_n\, k = q^\top R_{n-m}\, k,$$
#
# which depends on the positions only through the offset $n - m$ (its sign included: swapping
# the two positions changes the score), and a rotation keeps each vector's norm. The values are not rotated, and nothing is added to the tokens.
#
# This lab pairs neighbours, features $2i$ and $2i+1$ ("interleaved": the paper, GPT-J, Meta's
# original LLaMA code). The other common convention, "rotate-half" (GPT-NeoX, Hugging Face's
# LLaMA), pairs features $i$ and $i + D/2$; both are RoPE, but weights trained with one run with
# the other only once the rows of the query and key projections are permuted (Hugging Face's
# conversion of Meta's LLaMA weights does so), and the check names that mistake.

# %% [markdown]
# Write `apply_rope(x, positions, base=10000.0)`. `x` is `float32` `(B, T, heads, D)`,
# queries or keys after the head split ($D$ even); `positions` an integer array `(T,)`, the
# position of each of the $T$ tokens, which need not be `0, ..., T-1`: a model decoding with a
# cache of 50 earlier tokens rotates its new ones from position 50, and the check also has
# positions with gaps. Return `float32` of `x`'s shape: pair $i$ (features `2*i` and
# `2*i + 1`) of `x[b, t, h]` rotated by `positions[t] * base ** (-2 * i / D)`. Build the angles
# `(T, D/2)`, give `cos` and `sin` a heads axis, `(T, 1, D/2)`, rotate
# `x[..., 0::2]` and `x[..., 1::2]`, and put each pair back where it came from (stack the two
# rotated halves on a new last axis of 2, then merge it into $D$; concatenating them would move
# the pairs to the two halves). The check runs
# four cases (different `B`, `T`, heads and `D`, including `D = 2` and `D = 6`; an offset,
# gaps, and `base = 100`) against a float64 NumPy answer, then runs them again under
# `jax.jit`, where `positions` is traced: compute with it as an array (no `int(...)` or
# `.tolist()`). Neither JAX nor Flax has a RoPE function to call.


# %%
def apply_rope(x, positions, base=10000.0):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab06.check_apply_rope(apply_rope)

# %% [markdown]
# Why it matters. A query and a key keep their score, to float32 rounding, when both move by
# the same number of positions, however far; a different gap ($m - n = 3$) gives another score.
# The unrotated $q \cdot k$ is printed for comparison: it is the score at $m = n$, since
# position 0 is not rotated. The rotation also keeps every vector's length.

# %%
try:  # runs once exercise 3 is solved
    # one query and one key, (B, T, heads, D) each
    q, k = jax.random.normal(jax.random.key(0), (2, 1, 1, 1, 8))

    def score(m, n):  # the query at position m, the key at position n
        qm = apply_rope(q, jnp.array([m]))
        kn = apply_rope(k, jnp.array([n]))
        return float((qm * kn).sum())

    pairs = [(3, 1), (10, 8), (1002, 1000)]  # all at offset m - n = 2
    for m, n in pairs:
        print(f"q at {m:4d}, k at {n:4d} (m - n = 2): score {score(m, n):+.6f}")
    print(f"q at    4, k at    1 (m - n = 3): score {score(4, 1):+.6f}")
    print(f"no rotation:                      score {float((q * k).sum()):+.6f}")
    far = apply_rope(q, jnp.array([1000]))
    q_norm, far_norm = float(jnp.linalg.norm(q)), float(jnp.linalg.norm(far))
    print(f"|q| = {q_norm:.6f}, |q rotated to position 1000| = {far_norm:.6f}")
    assert max(abs(score(m, n) - score(3, 1)) for m, n in pairs) < 1e-4
    assert abs(far_norm - q_norm) < 1e-5
except NotImplementedError:
    print("solve exercise 3 first")

# %% [markdown]
# ## Exercise 4: a vocabulary from the training split, `<unk>` for the rest
#
# `train_tokens` and `test_tokens` are lists of reviews, each a list of words. Build the
# vocabulary on the **training** reviews only: id 0 is `<pad>`, id 1 is `<unk>`, then every
# word seen at least `min_freq` times in the whole training reviews (every occurrence counts),
# numbered from 2 by decreasing count (ties in alphabetical order). Encode both splits with it: a word not in the vocabulary becomes 1;
# keep each review's first `max_len` ids and pad with 0 after them. Return
# `(train_ids, test_ids)`, two integer `jax.Array`s `(N, max_len)`.
#
# The check includes a word that occurs only in the test reviews: with a vocabulary built on
# the training split it is `<unk>`, exactly what a new review's unseen word would be. Leave
# the token lists as they are, and count with `collections.Counter` yourself: calling
# `helpers.data.text`'s `build_vocab` or `encode` fails the check.


# %%
def encode_splits(train_tokens, test_tokens, *, min_freq, max_len):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab06.check_encode_splits(encode_splits)

# %% [markdown]
# ## Exercise 5: reverse each sequence within its length
#
# A bidirectional RNN also reads each review backwards, and that backward pass must start at
# the review's last real token, not at its padding. On a right-padded batch, flipping the
# whole row (`x[:, ::-1]` or `jnp.flip(x, 1)`) moves the padding to the front: the backward
# pass would read the padding first and carry it into its state. `x` is an array `(B, T, ...)`
# padded on the right and `lengths` `(B,)` the true lengths. Return an array like `x` in which
# the first `L = lengths[b]` steps of row `b` are in reverse order and the padding stays where
# it was, at the end: position `s < L` holds step `L - 1 - s`, position `s >= L` keeps step
# `s`. Build that index with `jnp.arange` and `jnp.where`, then gather along axis 1 with
# `jnp.take_along_axis`, whose index needs as many axes as `x` (reshape the `(B, T)` index to
# `(B, T, 1, ...)`), or index with `x[jnp.arange(B)[:, None], index]`, which works for any
# trailing axes (a loop over the batch is fine too). Keep the dtype of `x`.
#
# `nnx.RNN(cell, reverse=True, keep_order=True)` called with `seq_lengths=lengths` does this
# for you: it reverses each row within its length before the scan, and `keep_order` puts the
# outputs back in the input's order. The check runs a float `(B, T, H)` batch and a `(B, T)`
# batch of token ids, each with a full-length row and a length-1 row, then token ids padded
# past the longest row (take $T$ from `x`, not from `lengths`), and compares with a numpy
# answer. Careful: JAX does not raise for an index past the end of a row.


# %%
def reverse_padded(x, lengths):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab06.check_reverse_padded(reverse_padded)

# %% [markdown]
# Why it matters. `nnx.RNN` over an LSTM cell, run forwards on `reverse_padded(x, lengths)`
# and read at step `lengths - 1`, ends in the state that the same cell reaches going backwards
# with `reverse=True, keep_order=True` and `seq_lengths` (the backward half of a
# bidirectional RNN). Run on the whole flipped row, it reads the padding first and ends
# elsewhere.

# %%
try:  # runs once exercise 5 is solved
    x = jax.random.normal(jax.random.key(0), (3, 5, 2))  # (B, T, D), padded to 5 steps
    lengths = jnp.array([5, 2, 1])
    cell = nnx.OptimizedLSTMCell(2, 4, rngs=nnx.Rngs(0))
    backward = nnx.RNN(cell, reverse=True, keep_order=True, return_carry=True)
    (_, h_back), _ = backward(x, seq_lengths=lengths)  # carry (c, h): h (B, H)
    forward = nnx.RNN(cell)  # the same cell, one way
    out = forward(reverse_padded(x, lengths))  # (B, T, H)
    ours = out[jnp.arange(3), lengths - 1]  # (B, H)
    flipped = forward(x[:, ::-1])[:, -1]  # the common mistake: padding first
    print(f"reverse_padded: max |difference| {jnp.abs(ours - h_back).max():.1e}")
    print(f"x[:, ::-1]:     max |difference| {jnp.abs(flipped - h_back).max():.1e}")
    assert jnp.allclose(ours, h_back, atol=1e-6)
    assert not jnp.allclose(flipped, h_back, atol=1e-3)
except NotImplementedError:
    print("solve exercise 5 first")

# %% [markdown]
# Done. Chapter 6's [JAX notebook](../../chapters/06-imdb-sentiment/in-jax.ipynb) uses these
# pieces on the full IMDB dataset: `H.text.masked_mean`, `nnx.RNN`'s `seq_lengths` and
# `helpers.data.text.build_vocab`. Exercise 5 is what `seq_lengths` does for
# `nnx.RNN(..., reverse=True)`, the backward half of a bidirectional RNN. Exercise 3 goes
# beyond the chapter, whose Transformer (section 6.5) learns a position embedding: RoPE would
# replace it by rotating the queries and keys of each attention layer.
