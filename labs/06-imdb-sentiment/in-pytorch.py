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
# # Lab 6: padding masks, attention pooling, rotary positions and a vocabulary in PyTorch
#
# Five exercises on chapter 6, the pieces that make a text model read only the real tokens of
# a review and where each token stands: a padding mask built from lengths, masked attention
# pooling with a learned query, which the chapter does not teach (its models pool with a masked
# mean), rotary position embeddings (RoPE) for attention's queries and keys, which it does not
# teach either (its Transformer learns its position embeddings), a vocabulary built on the training
# split that maps every other word to `<unk>`, and each review reversed within its length for
# the backward direction of a bidirectional RNN. Each exercise is a function. Replace the line
# `raise NotImplementedError(...)` with your code, run the cell, then run the check below it: a
# check prints ✅ when your function is right, or ❌ with what it expected and a hint.
#
# The checks call your functions on small cases and compare with answers computed
# independently ([`tests/labs/test_lab06.py`](https://github.com/pytorch-jax-course/pytorch-jax-course/blob/main/tests/labs/test_lab06.py) proves those answers equal the chapter's helpers
# and, for exercise 2, PyTorch's `scaled_dot_product_attention` with a scale of 1 and the
# chapter's masked mean for a query of zeros, for exercise 3, PyTorch's ONNX
# `RotaryEmbedding` op);
# they never look at your code.
#
# The solved lab: [Lab 6 solutions in PyTorch](../../solutions/06-imdb-sentiment/in-pytorch.ipynb).

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

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from helpers import torch as H

# %% [markdown]
# ## Exercise 1: a padding mask from lengths
#
# A batch of `B` reviews is padded to `max_len` tokens; `lengths` (an integer tensor `(B,)`)
# holds each review's number of real tokens. Return the boolean mask `(B, max_len)` that is
# `True` at real tokens and `False` at padding: row `b` is real at positions
# `0, ..., lengths[b] - 1`.


# %%
def length_mask(lengths, max_len):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab06.check_length_mask(length_mask)

# %% [markdown] tags=["shared"]
# ## Exercise 2: masked attention pooling
#
# Chapter 6's models pool a review's tokens with a masked mean: every real token counts the
# same. Attention pooling lets the model learn which tokens matter. {cite:t}`yang2016hierarchical`
# pass each token's hidden state $h_t$ through a one-layer MLP, $u_t = \tanh(W h_t + b)$,
# score it against a learned context vector $u_w$ (the score is $u_t \cdot u_w$), and pool the
# $h_t$ with
# the softmax of the scores. This exercise drops the MLP (a model can put one in front):
# each token $x_t$ is scored with a learned query $q$ directly, and the softmax runs over
# the review's real tokens only ($m_t = 1$ at a real token, 0 at padding):
#
# $$s_t = x_t \cdot q, \qquad p_t = \frac{m_t\, e^{s_t}}{\sum_u m_u\, e^{s_u}},$$
#
# $$\text{pool}(x) = \sum_t p_t\, x_t.$$
#
# Yang *et al.* score with the plain dot product, without the $1/\sqrt{D}$ of a Transformer's
# attention: the learned vector absorbs any scale. This exercise does the same (unscaled).
#
# - **Mask the scores before the softmax**: set the padded scores to $-\infty$ (or the
#   dtype's most negative number). $e^{-\infty} = 0$, so the padding gets weight exactly 0
#   and the real tokens' weights sum to 1. A fill of 0 is not "nothing": $e^0 = 1$, a padded
#   token then weighs as much as a real token that scores 0.
# - **Masking after the softmax** (weights times the mask) drops the padding's share, so a
#   row no longer sums to 1; it needs a renormalisation, $p_t m_t / \sum_u p_u m_u$, exact on
#   paper, but once the padding scores high, float32 has already rounded the real tokens'
#   weights to 0 and the renormalisation divides 0 by 0.
# - **Subtract the max**: $e^{s_t} / \sum_u e^{s_u} = e^{s_t - s_{\max}} / \sum_u e^{s_u -
#   s_{\max}}$, the same softmax, but $e^{s}$ overflows float32 above $s \approx 88.7$. The
#   library's softmax subtracts it for you; a softmax written by hand must too (the check has
#   scores in the hundreds). Take the max over the real tokens, after masking.
# - With $q = 0$ every score is 0 and each of the review's $L$ real tokens weighs $1/L$: the
#   chapter's masked mean
#   is the special case $q = 0$.
#
# The cell below shows the first and third points on a row of two real and two padded tokens.

# %%
s = torch.tensor([2.0, 1.0, 5.0, 5.0])  # scores (T,): two real tokens, two padded
real = torch.tensor([True, True, False, False])
print("padding filled with 0:   ", torch.softmax(s.masked_fill(~real, 0.0), -1))
print("padding filled with -inf:", torch.softmax(s.masked_fill(~real, -torch.inf), -1))
big = torch.tensor([300.0, 299.0])  # two real scores in the hundreds
print("exp by hand:", big.exp() / big.exp().sum(), " softmax:", torch.softmax(big, -1))

# %% [markdown]
# Write `attention_pool(x, mask, query)`. `x` is `torch.float32` `(B, T, D)`, token features
# whose padded positions hold arbitrary values (large ones too, never 0 in the check); `mask`
# the boolean `(B, T)` of exercise 1 (every row has at least one real token); `query` a
# `torch.float32` `(D,)`. Return `torch.float32` `(B, D)`, the weighted sum of each row's real
# tokens. Mask with `masked_fill(~mask, -torch.inf)` (or `torch.where`) on the scores, leave
# `x` as it is (no `x.masked_fill_`) and keep every step in float32. You may call
# `torch.softmax`, but not an attention function: with a length-1 query,
# `F.scaled_dot_product_attention` computes this very pooling (scaled by $1/\sqrt{D}$ unless
# `scale=1`), and `nn.MultiheadAttention` a version with learned projections of the query,
# keys and values; calling either, under any name, fails the check.
# The check runs four cases against a float64 NumPy answer (uneven lengths, length 1 and full
# rows, large padded values, scores in the hundreds, a query of zeros), then the first case
# padded 3 positions further with junk, and finally `torch.autograd.grad` of your result: the gradients must equal the
# answer's, none of them NaN and none reaching a padded position of `x`.


# %%
def attention_pool(x, mask, query):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab06.check_attention_pool(attention_pool)

# %% [markdown]
# Why it matters. The weights can be read back from your function: append a one-hot
# position to each token's features, with query entries of 0 there, so the scores do not
# change, and the last $T$ features of the pooled vector are the weights. They sum to 1 over
# each review's real tokens and are 0 on its padding, however large its values; the same
# batch padded 3 positions further, with junk, pools to the same vectors.

# %%
try:  # runs once exercise 2 is solved
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3)  # (B, T, D): 2 reviews padded to 5 tokens
    mask = torch.arange(5) < torch.tensor([[3], [5]])  # lengths 3 and 5
    x[~mask] = 100.0  # large junk at the padding
    query = torch.randn(3)
    onehot = torch.eye(5).expand(2, 5, 5)  # (B, T, T): position t of each token
    pooled = attention_pool(
        torch.cat([x, onehot], -1), mask, torch.cat([query, torch.zeros(5)])
    )
    weights = pooled[:, 3:]  # (B, T)
    for b in range(2):
        row = " ".join(f"{w:.4f}" for w in weights[b].tolist())
        n, total = int(mask[b].sum()), float(weights[b].sum())
        print(f"review {b} (length {n}): weights {row}, sum {total:.6f}")
    longer = torch.cat([x, torch.full((2, 3, 3), 1e4)], 1)  # padded 3 tokens further
    longer_mask = torch.cat([mask, torch.zeros(2, 3, dtype=torch.bool)], 1)
    diff = (
        (attention_pool(longer, longer_mask, query) - attention_pool(x, mask, query))
        .abs()
        .max()
    )
    print(f"padded to T = 8 instead of 5: max |difference| {diff:.1e}")
    assert torch.allclose(weights.sum(1), torch.ones(2)) and (weights[~mask] == 0).all()
    assert diff < 1e-5
except NotImplementedError:
    print("solve exercise 2 first")

# %% [markdown] tags=["shared"]
# ## Exercise 3: rotary position embeddings (RoPE)
#
# Chapter 6's Transformer (section 6.5) adds a learned embedding of each position to the tokens.
# {cite:t}`su2024roformer` encode positions instead by *rotating* the queries and keys of
# attention. The $D$ features of a head are cut into $D/2$ pairs; pair $i$ of the vector at
# position $m$ turns by the angle $m\,\theta_i,$ with $\theta_i = \text{base}^{-2i/D}$ for
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
# Write `apply_rope(x, positions, base=10000.0)`. `x` is `torch.float32` `(B, T, heads, D)`,
# queries or keys after the head split ($D$ even); `positions` an integer tensor `(T,)`, the
# position of each of the $T$ tokens, which need not be `0, ..., T-1`: a model decoding with a
# cache of 50 earlier tokens rotates its new ones from position 50, and the check also has
# positions with gaps. Return `torch.float32` of `x`'s shape: pair $i$ (features `2*i` and
# `2*i + 1`) of `x[b, t, h]` rotated by `positions[t] * base ** (-2 * i / D)`. Build the angles
# `(T, D/2)`, give `cos` and `sin` a heads axis, `(T, 1, D/2)`, rotate
# `x[..., 0::2]` and `x[..., 1::2]`, and put each pair back where it came from (stack the two
# rotated halves on a new last axis of 2, then merge it into $D$; concatenating them would move
# the pairs to the two halves). Leave `x` as it
# is. The check runs four cases (different `B`, `T`, heads and `D`, including `D = 2` and
# `D = 6`; an offset, gaps, and `base = 100`) against a float64 NumPy answer.
# `torch.nn` has no RoPE; `torch.onnx.ops.rotary_embedding` (the ONNX `RotaryEmbedding` op)
# is one (rotate-half by default, interleaved with `interleaved=True`; it takes cos and sin
# tables you build), and calling it fails the check.


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
    torch.manual_seed(0)
    q, k = torch.randn(2, 1, 1, 1, 8)  # one query and one key, (B, T, heads, D) each

    def score(m, n):  # the query at position m, the key at position n
        qm = apply_rope(q, torch.tensor([m]))
        kn = apply_rope(k, torch.tensor([n]))
        return float((qm * kn).sum())

    pairs = [(3, 1), (10, 8), (1002, 1000)]  # all at offset m - n = 2
    for m, n in pairs:
        print(f"q at {m:4d}, k at {n:4d} (m - n = 2): score {score(m, n):+.6f}")
    print(f"q at    4, k at    1 (m - n = 3): score {score(4, 1):+.6f}")
    print(f"no rotation:                      score {float((q * k).sum()):+.6f}")
    far = apply_rope(q, torch.tensor([1000]))
    print(f"|q| = {q.norm():.6f}, |q rotated to position 1000| = {far.norm():.6f}")
    assert max(abs(score(m, n) - score(3, 1)) for m, n in pairs) < 1e-4
    assert abs(far.norm() - q.norm()) < 1e-5
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
# `(train_ids, test_ids)`, two integer tensors `(N, max_len)`.
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
# whole row (`x.flip(1)`) moves the padding to the front: the backward pass would read the
# padding first and carry it into its state. `x` is a tensor `(B, T, ...)` padded on the
# right and `lengths` `(B,)` the true lengths. Return a new tensor like `x` in which the first
# `L = lengths[b]` steps of row `b` are in reverse order and the padding stays where it was,
# at the end: position `s < L` holds step `L - 1 - s`, position `s >= L` keeps step `s`.
# Build that index with `torch.arange` and `torch.where`, then `gather` along axis 1, whose
# index must have the shape of `x` (expand the `(B, T)` index over the trailing axes), or
# index with `x[torch.arange(B)[:, None], index]`, which works for any trailing axes (a loop
# over the batch is fine too). Leave `x` as it is and keep its dtype.
#
# `nn.LSTM(bidirectional=True)` fed `pack_padded_sequence(x, lengths, ...)` does this for
# you: a packed batch holds only the real steps, so the backward direction starts at each
# review's last one. The check runs a float `(B, T, H)` batch and a `(B, T)` batch of token
# ids, each with a full-length row and a length-1 row, then token ids padded past the longest
# row (take $T$ from `x`, not from `lengths`), compares with a numpy answer, and verifies that
# `x` and `lengths` are unchanged.


# %%
def reverse_padded(x, lengths):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab06.check_reverse_padded(reverse_padded)

# %% [markdown]
# Why it matters. A one-way `nn.LSTM` with the weights of the backward direction of
# `nn.LSTM(bidirectional=True)`, run on `reverse_padded(x, lengths)` and read at step
# `lengths - 1`, gives the backward `h_n` that the bidirectional LSTM computes on the packed
# batch. Run on the whole flipped row, it reads the padding first and ends elsewhere.

# %%
try:  # runs once exercise 5 is solved
    torch.manual_seed(0)
    x = torch.randn(3, 5, 2)  # (B, T, D): 3 sequences padded to 5 steps, 2 features
    lengths = torch.tensor([5, 2, 1])
    bi = nn.LSTM(2, 4, batch_first=True, bidirectional=True)
    # one way, with the backward direction's weights copied in
    backward = nn.LSTM(2, 4, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(backward, name).copy_(getattr(bi, f"{name}_reverse"))
        packed = pack_padded_sequence(
            x, lengths, batch_first=True, enforce_sorted=False
        )
        _, (h_n, _) = bi(packed)  # h_n (2, B, H): [1] is the backward direction
        out, _ = backward(reverse_padded(x, lengths))  # (B, T, H)
        ours = out[torch.arange(3), lengths - 1]  # (B, H)
        _, (h_flip, _) = backward(x.flip(1))  # the common mistake: padding first
    print(f"reverse_padded: max |difference| {(ours - h_n[1]).abs().max():.1e}")
    print(f"x.flip(1):      max |difference| {(h_flip[0] - h_n[1]).abs().max():.1e}")
    assert torch.allclose(ours, h_n[1], atol=1e-6)
    assert not torch.allclose(h_flip[0], h_n[1], atol=1e-3)
except NotImplementedError:
    print("solve exercise 5 first")

# %% [markdown]
# Done. Chapter 6's [PyTorch notebook](../../chapters/06-imdb-sentiment/in-pytorch.ipynb) uses
# these pieces on the full IMDB dataset: `H.text.padding_mask`, packed sequences and
# `helpers.data.text.build_vocab`. Exercise 5 is what a packed batch does for the backward
# direction of `nn.LSTM(bidirectional=True)`. Exercise 2 goes beyond the chapter, whose
# models pool with `H.text.masked_mean`, attention pooling's special case `query = 0`: a
# learned `nn.Parameter` query would let a model weigh its tokens. Exercise 3 goes beyond the
# chapter too: its Transformer (section 6.5) learns a position embedding; RoPE would replace
# it by rotating the queries and keys of each attention layer.
