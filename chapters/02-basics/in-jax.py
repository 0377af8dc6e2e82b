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
# # 2. Deep-learning basics: JAX
#
# This is the JAX half of chapter 2; the [PyTorch half](in-pytorch.ipynb) tells the same story in
# the same order. Chapter 1 trained a network with the framework doing the work; this chapter opens
# the boxes. By the end you will have written, and checked against JAX's and Flax's own versions,
#
# * layers as matrix products, with their shapes;
# * the usual activation functions and their derivatives, and a softmax that does not overflow;
# * the forward and backward pass of a two-layer network by hand, trained on MNIST with them;
# * convolution and pooling, recurrent and LSTM cells, attention and a Transformer block.

# %% [markdown] tags=["notebook-only"]
# Every number on this page is printed by the code above it; the cell below says at which scale
# (`smoke`, `cpu` or `gpu`) this page was produced.

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
import pprint
import textwrap
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx
from jax.scipy.stats import norm
from matplotlib.ticker import MaxNLocator
from tqdm import tqdm

from helpers import jax as H

# Every size this notebook uses comes from helpers/scale/foundations.py.
sizes = H.sizes("backprop")
device = H.default_device()
H.runtime_info()

# %% [markdown] tags=["shared"]
# ## 2.1 Neurons, layers, weights and biases
#
# A **neuron** takes a vector $x \in \mathbb{R}^{n}$, forms a weighted sum plus a bias and
# passes it through a non-linear **activation** $\varphi$:
# $y = \varphi\left(\sum_i w_i x_i + b\right) = \varphi(w \cdot x + b)$.
# A **layer** is $m$ neurons reading the same input: stack their weight vectors as the columns
# of a matrix $W \in \mathbb{R}^{n \times m}$ and their biases in $b \in \mathbb{R}^{m}$. For a
# **batch** of $B$ inputs, the rows of $X \in \mathbb{R}^{B \times n}$, the whole layer is one
# matrix product,
#
# $$
# \begin{gathered}
# Z = X W + b, \\
# X: (B, n),\; W: (n, m),\; Z: (B, m), \\
# b: (m,) \text{ broadcast over rows},
# \end{gathered}
# $$
#
# followed by $\varphi$ element-wise. That is why deep learning runs on hardware built for
# matrix products: a layer applied to a batch is one of them. The layer has $n m + m$
# parameters. Below, one layer computed three ways: neuron by neuron, as one product, and by
# the framework's own linear layer.

# %%
# Explicit keys: one per draw, split from a seed (JAX has no global random state).
k_x, k_w, k_b = jax.random.split(jax.random.key(0), 3)
X = jax.random.normal(k_x, (4, 3))  # (B=4, n=3) a batch of 4 inputs
W = jax.random.normal(k_w, (3, 2))  # (n=3, m=2) one column per neuron
b = jax.random.normal(k_b, (2,))  # (m=2,)

# Neuron by neuron, example by example: two nested loops of dot products. JAX arrays are
# immutable, so the loop builds Python lists rather than writing into an array.
Z_loops = jnp.array([[X[row] @ W[:, j] + b[j] for j in range(2)] for row in range(4)])
Z = X @ W + b  # (4, 3) @ (3, 2) + (2,) -> (4, 2)
print("Z = XW + b, shape", Z.shape)
print(Z)
np.testing.assert_allclose(Z_loops, Z, rtol=1e-6)

# %% [markdown]
# Flax's `nnx.Linear(n, m)` stores its weight (`kernel`) as `(in, out)` = `(n, m)`, the $W$ above
# itself, and computes $x W + b$; PyTorch's `nn.Linear` stores the transpose, `(out, in)`. Copy
# our $W$ in and both agree:

# %%
layer = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
layer.kernel[...] = W  # (3, 2) = (in, out): no transpose
layer.bias[...] = b
print("nnx.Linear kernel", layer.kernel[...].shape, "| bias", layer.bias[...].shape)
np.testing.assert_allclose(layer(X), Z, rtol=1e-6)
print("nnx.Linear(X) == X @ W + b")

# %% [markdown] tags=["shared"]
# Layers compose: the output of one is the input of the next. Below, a tiny network with
# 3 inputs, 4 hidden neurons and 2 outputs, drawn from its own parameters: each line is one
# weight, its width proportional to the weight's magnitude and its colour giving the sign; each
# neuron's fill gives its bias (white for zero: Flax starts every bias at zero, PyTorch draws
# them at random; the inputs have none). With random initial weights the picture is noise;
# training (section 2.3 trains a larger network) is what gives the weights structure.


# %%
def draw_network(weights, biases, title: str):
    """Draw a fully connected network from its weights [(n_in, n_out), ...] and biases."""
    widths = [weights[0].shape[0]] + [w.shape[1] for w in weights]
    names = ["input"] + [f"hidden {i}" for i in range(1, len(weights))] + ["output"]
    # Neuron j of column c sits at (c, its height), each column centred on 0.
    pos = [np.arange(n) - (n - 1) / 2 for n in widths]
    wmax = max(np.abs(w).max() for w in weights)
    bmax = max(np.abs(v).max() for v in biases) or 1.0  # all-zero biases: a ±1 scale
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for c, w in enumerate(weights):
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                color = "C0" if w[i, j] > 0 else "C3"
                lw = 4 * abs(w[i, j]) / wmax
                ax.plot([c, c + 1], [pos[c][i], pos[c + 1][j]], color=color, lw=lw)
    ax.scatter(np.zeros(widths[0]), pos[0], s=300, c="white", edgecolors="k", zorder=3)
    for c, v in enumerate(biases, start=1):
        dots = ax.scatter(
            np.full(widths[c], c),
            pos[c],
            s=300,
            c=v,
            cmap="RdBu",
            vmin=-bmax,
            vmax=bmax,
            edgecolors="k",
            zorder=3,
        )
    ax.plot([], [], color="C0", label="positive weight")
    ax.plot([], [], color="C3", label="negative weight")
    ax.set_xticks(range(len(widths)))
    labels = [f"{name}\n({n} neurons)" for name, n in zip(names, widths, strict=True)]
    ax.set_xticklabels(labels)
    ax.set(xlabel="layer", title=title)
    # A diagram, not a chart: the heights only space the neurons, so no y axis and no frame.
    ax.yaxis.set_visible(False)
    ax.spines[:].set_visible(False)
    ax.tick_params(axis="x", length=0)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2, fontsize=8)
    fig.colorbar(dots, ax=ax, label="bias (neuron fill)")
    fig.tight_layout()
    return fig


tiny = nnx.Sequential(
    nnx.Linear(3, 4, rngs=nnx.Rngs(0)), nnx.relu, nnx.Linear(4, 2, rngs=nnx.Rngs(1))
)
linears = [tiny.layers[0], tiny.layers[2]]
# Flax's kernels are already (in, out), the layout of the formula above.
tiny_weights = [np.asarray(m.kernel[...]) for m in linears]
tiny_biases = [np.asarray(m.bias[...]) for m in linears]
print({f"layer {i}": w.shape for i, w in enumerate(tiny_weights)})
print(f"{H.count_params(tiny)} parameters = 3*4 + 4 + 4*2 + 2")
fig = draw_network(tiny_weights, tiny_biases, "A 3-4-2 network, Flax's initial weights")

# %% [markdown] tags=["shared"]
# ## 2.2 Activations
#
# Without a non-linearity between them, two layers collapse into one: $(XW_1 + b_1)W_2 + b_2$
# is again $XW + b$. The activation is what lets depth add expressive power. The usual ones
# (ReLU {cite}`nair2010rectified`, GELU {cite}`hendrycks2016gaussian`), with $\Phi$ and $\phi$
# the standard normal CDF and density:
#
# | name | $\varphi(x)$ | $\varphi'(x)$ |
# |---|---|---|
# | sigmoid $\sigma$ | $1/(1 + e^{-x})$ | $\sigma(x)\,(1 - \sigma(x))$ |
# | tanh | $\tanh x$ | $1 - \tanh^2 x$ |
# | ReLU | $\max(0, x)$ | $\mathbb{1}[x > 0]$ |
# | GELU | $x\,\Phi(x)$ | $\Phi(x) + x\,\phi(x)$ |
#
# **Softmax** acts on a whole vector of $K$ scores (logits) and returns probabilities,
# $\operatorname{softmax}(z)_k = e^{z_k} / \sum_j e^{z_j}$. With two classes and logits
# $(x, 0)$ its first output is $\sigma(x)$: the sigmoid is a two-class softmax.
#
# The derivatives below are not typed in: automatic differentiation computes each one at every
# point of the grid (a per-example gradient, vectorised with `vmap`), and the cell checks them
# against the formulas of the table.

# %% [markdown]
# `jax.grad(f)` differentiates a function of one scalar; `jax.vmap` maps the result over the 401
# points of the grid in one call. JAX's `jax.nn.gelu` defaults to the tanh approximation;
# `approximate=False` gives the exact $x\,\Phi(x)$, PyTorch's default. The derivatives are
# computed in float64, which JAX enables only inside the `jax.enable_x64(True)` block: outside
# it, JAX keeps its default float32.

# %%
activations = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "ReLU": jax.nn.relu,
    "GELU": lambda x: jax.nn.gelu(x, approximate=False),  # exact: x * Phi(x)
    # axis=0: the two logits (x, 0) are stacked along axis 0, also for a whole grid of x
    "softmax(x, 0)[0]": lambda x: jax.nn.softmax(
        jnp.stack([x, jnp.zeros_like(x)]), axis=0
    )[0],
}
# jit: each derivative compiles into one program instead of running op by op.
derivative = {name: jax.jit(jax.vmap(jax.grad(fn))) for name, fn in activations.items()}
with jax.enable_x64(True):
    grid = jnp.linspace(-6, 6, 401, dtype=jnp.float64)  # (401,)
    values = {name: np.asarray(fn(grid)) for name, fn in activations.items()}
    derivs = {name: np.asarray(derivative[name](grid)) for name in activations}
    s, t = jax.nn.sigmoid(grid), jnp.tanh(grid)
    formulas = {
        "sigmoid": s * (1 - s),
        "tanh": 1 - t**2,
        "ReLU": (grid > 0).astype(jnp.float64),
        "GELU": norm.cdf(grid) + grid * norm.pdf(grid),  # Phi(x) + x phi(x)
        "softmax(x, 0)[0]": s * (1 - s),
    }
    for name in activations:
        np.testing.assert_allclose(derivs[name], formulas[name], atol=1e-12)
    np.testing.assert_allclose(values["softmax(x, 0)[0]"], s, atol=1e-15)
    grid = np.asarray(grid)
print("autodiff derivatives == the table's formulas; softmax(x, 0)[0] == sigmoid(x)")

# %%
fig, axes = plt.subplots(2, 3, figsize=(11, 6), sharex=True)
for ax, name in zip(axes.flat[:5], activations, strict=True):  # the sixth: the legend
    ax.plot(grid, values[name], label="φ(x)")
    ax.plot(grid, derivs[name], "--", label="φ'(x), autodiff")
    ax.set(title=name, xlabel="x (pre-activation)", ylabel="value")
    ax.xaxis.set_tick_params(labelbottom=True)  # sharex hides them on the top row
    ax.grid(alpha=0.3)
axes[1, 2].axis("off")
axes[1, 2].legend(*axes[0, 0].get_legend_handles_labels(), loc="center", fontsize=11)
fig.suptitle("Activations and their derivatives (JAX)")
fig.tight_layout()
plt.show()

# %% [markdown] tags=["shared"]
# Where the derivative is near zero, little gradient flows back through the neuron: it
# **saturates**. The table prints each derivative at a few points. Sigmoid and tanh saturate on
# both sides, and the sigmoid's derivative never exceeds 1/4 even at its peak, so a chain of
# many sigmoid layers shrinks gradients multiplicatively. ReLU does not saturate for positive
# inputs (its derivative is exactly 1) but passes no gradient at all for negative ones: a
# neuron whose input is negative on every example stops learning ("dies"). GELU is a smooth
# ReLU, with a small negative dip just below zero.

# %%
with jax.enable_x64(True):
    points = jnp.array([-6.0, -3.0, -1.0, 0.0, 1.0, 3.0, 6.0], jnp.float64)
    print("derivative at x = " + "".join(f"{p:>10.0f}" for p in points))
    for name in activations:
        at_points = derivative[name](points)  # (7,)
        print(f"{name:>16}  " + "".join(f"{d:10.2e}" for d in at_points))
print(f"max of sigmoid' over the grid: {derivs['sigmoid'].max():.4f}")

# %% [markdown] tags=["shared"]
# **A softmax that does not overflow.** Written as in the formula, softmax exponentiates the
# logits: in float32, $e^{z}$ overflows to `inf` once $z$ exceeds about 88.7 (printed below),
# and `inf / inf` is `nan`. Very negative logits underflow to 0, and the log of the
# probability, which the cross-entropy needs, becomes $\log 0 = -\infty$. Softmax does not
# change when the same constant is subtracted from every logit, since
# $e^{z_k - c} / \sum_j e^{z_j - c} = e^{z_k} / \sum_j e^{z_j}$. Choosing $c = \max_j z_j$
# makes the largest exponent $e^0 = 1$: nothing overflows, and the sum is at least 1. The
# log-softmax is computed directly, never as the log of a probability:
#
# $$
# \begin{aligned}
# \log \operatorname{softmax}(z)_k &= (z_k - c) \\
# &\quad - \log \sum_j e^{z_j - c}, \\
# c &= \max_j z_j .
# \end{aligned}
# $$


# %%
def softmax_naive(z: jax.Array) -> jax.Array:  # (..., K)
    e = jnp.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax_stable(z: jax.Array) -> jax.Array:  # (..., K)
    shifted = z - z.max(axis=-1, keepdims=True)  # largest entry is now 0
    return shifted - jnp.log(jnp.exp(shifted).sum(axis=-1, keepdims=True))


print(f"float32 exp overflows above {math.log(np.finfo(np.float32).max):.2f}")
# (3 examples, K=3), float32.
logits = jnp.array([[1.0, 2.0, 3.0], [1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]])
print("naive softmax:\n", softmax_naive(logits))
print("naive log-softmax:\n", jnp.log(softmax_naive(logits)))
print("stable log-softmax:\n", log_softmax_stable(logits))
np.testing.assert_allclose(log_softmax_stable(logits), jax.nn.log_softmax(logits, -1))
print("stable log-softmax == jax.nn.log_softmax")

# %% [markdown] tags=["shared"]
# The naive version returns `nan` for the second row and $-\infty$ (or `nan`) for the third,
# while the shifted one gives finite values that agree with the library's. The first row is
# small enough for both. This is why the cross-entropy losses of both frameworks take
# *logits*, not probabilities, and compute the log-softmax inside.
#
# ## 2.3 Backpropagation by hand
#
# The network of this section is an MLP like chapter 1's, with one hidden layer:
# $784 \to H \to 10$, with a ReLU between the layers, $H$ from this scale's sizes. For a batch
# $X \in \mathbb{R}^{B \times 784}$ with labels $y \in \{0, \dots, 9\}^B$ the **forward pass**
# is
#
# $$
# \begin{gathered}
# Z_1 = X W_1 + b_1, \quad A_1 = \operatorname{ReLU}(Z_1), \\
# Z_2 = A_1 W_2 + b_2, \quad P = \operatorname{softmax}(Z_2), \\
# L = -\frac{1}{B} \sum_{i=1}^{B} \log P_{i, y_i},
# \end{gathered}
# $$
#
# with shapes $W_1: (784, H)$, $b_1: (H,)$, $Z_1, A_1: (B, H)$, $W_2: (H, 10)$, $b_2: (10,)$,
# $Z_2, P: (B, 10)$. The **backward pass** applies the chain rule from the loss back to each
# parameter {cite}`rumelhart1986learning`. Write $G_T = \partial L / \partial T$ for the
# gradient with respect to any tensor $T$; it has the shape of $T$. With $Y$ the one-hot labels
# $(B, 10)$:
#
# 1. Softmax and cross-entropy together have the simple derivative
#    $G_{Z_2} = (P - Y) / B$: for one example, $\partial(-\log P_y)/\partial z_k = P_k - \mathbb{1}[k = y]$,
#    and the mean divides by $B$.
# 2. $Z_2 = A_1 W_2 + b_2$ gives $G_{W_2} = A_1^\top G_{Z_2}$ $(H, 10)$,
#    $G_{b_2} = \sum_i (G_{Z_2})_{i,:}$ $(10,)$ (the bias was broadcast over rows, so its
#    gradient sums over them), and $G_{A_1} = G_{Z_2} W_2^\top$ $(B, H)$.
# 3. ReLU acts element-wise, so its derivative multiplies element-wise, evaluated at its
#    *input*: $G_{Z_1} = G_{A_1} \odot \mathbb{1}[Z_1 > 0]$.
# 4. $Z_1 = X W_1 + b_1$ gives $G_{W_1} = X^\top G_{Z_1}$ $(784, H)$ and
#    $G_{b_1} = \sum_i (G_{Z_1})_{i,:}$ $(H,)$.
#
# Every gradient is a matrix product of something the forward pass computed with the gradient
# that arrives from above. That is why the forward pass keeps its intermediate values (the
# *cache*: $X$, $Z_1$, $A_1$, $P$): the backward pass needs them.

# %% [markdown]
# Below, the two passes as plain functions of `jnp` arrays, which JAX never differentiates unless
# asked (`jax.grad`): every gradient is computed by the formulas above. The parameters are a
# dictionary of arrays in the `(in, out)` layout of the formulas, and every random draw takes
# its own key. The first weight matrix is drawn with variance $2/784$ and the second with $1/H$,
# so that the signals neither grow nor shrink from layer to layer (the factor 2 makes up for ReLU
# zeroing half its inputs) {cite}`glorot2010understanding,he2015delving`; the biases start at
# zero. (He et al. put the factor 2 on the layer that reads the ReLU's outputs, here $W_2$.
# Either placement keeps the logits at the inputs' scale, the same mean square: the signal
# passes the ReLU, which halves its mean square, once.)


# %%
# jit: the random draws run as one compiled program, not op by op (hidden fixes the shapes).
@jax.jit(static_argnames="hidden")
def init_params(hidden: int, key: jax.Array) -> dict:
    """W1 (784, hidden), b1 (hidden,), W2 (hidden, 10), b2 (10,), all float32."""
    k1, k2 = jax.random.split(key)
    return {
        "W1": jax.random.normal(k1, (784, hidden)) * math.sqrt(2 / 784),
        "b1": jnp.zeros(hidden),
        "W2": jax.random.normal(k2, (hidden, 10)) * math.sqrt(1 / hidden),
        "b2": jnp.zeros(10),
    }


def forward(params: dict, x: jax.Array, y: jax.Array):
    """Mean cross-entropy of the batch x (B, 784), labels y (B,) int; returns (loss, cache)."""
    z1 = x @ params["W1"] + params["b1"]  # (B, H)
    a1 = jax.nn.relu(z1)  # (B, H)
    z2 = a1 @ params["W2"] + params["b2"]  # (B, 10) logits
    log_p = log_softmax_stable(z2)  # (B, 10)
    loss = -log_p[jnp.arange(len(y)), y].mean()  # picks log P[i, y_i] in each row
    return loss, (x, z1, a1, jnp.exp(log_p))


def backward(params: dict, cache: tuple, y: jax.Array) -> dict:
    """Gradients of the mean loss w.r.t. every parameter, from the forward pass's cache."""
    x, z1, a1, p = cache
    g_z2 = (p - jax.nn.one_hot(y, 10, dtype=p.dtype)) / len(y)  # (B, 10): (P - Y) / B
    g_a1 = g_z2 @ params["W2"].T  # (B, 10) @ (10, H) -> (B, H)
    g_z1 = g_a1 * (z1 > 0)  # ReLU's derivative at its input z1
    return {
        "W1": x.T @ g_z1,  # (784, B) @ (B, H) -> (784, H)
        "b1": g_z1.sum(0),  # (H,)
        "W2": a1.T @ g_z2,  # (H, B) @ (B, 10) -> (H, 10)
        "b2": g_z2.sum(0),  # (10,)
    }


# %% [markdown]
# **Checking the gradients.** Real MNIST images and random initial parameters, in float64 so
# that rounding does not hide a mistake (inside `jax.enable_x64(True)` blocks only). The
# reference is autodiff: `jax.grad` differentiates the same `forward` (`has_aux=True`: it
# returns the cache too, which is carried along, not differentiated). The loss itself is checked
# against Optax's `softmax_cross_entropy_with_integer_labels`.

# %%
x_train_u8, y_train = H.load_mnist("train", limit=sizes.train_examples)
x_test_u8, y_test = H.load_mnist("test", limit=sizes.test_examples)
params32 = init_params(sizes.hidden, jax.random.key(1))
with jax.enable_x64(True):
    xb = jnp.asarray(H.images_to_vectors(x_train_u8[:32]), jnp.float64)  # (32, 784)
    yb = jnp.asarray(y_train[:32], jnp.int32)  # (32,)
    # The same draws, in float64.
    params64 = {name: jnp.asarray(p, jnp.float64) for name, p in params32.items()}

    loss, cache = jax.jit(forward)(params64, xb, yb)
    grads = jax.jit(backward)(params64, cache, yb)
    logits = cache[2] @ params64["W2"] + params64["b2"]  # (32, 10)
    reference = jax.jit(optax.softmax_cross_entropy_with_integer_labels)(
        logits, yb
    ).mean()
    np.testing.assert_allclose(loss, reference, rtol=1e-12)
    print(f"loss {loss:.6f} == optax's cross-entropy; ln 10 = {math.log(10):.6f}")

    auto, _ = jax.jit(jax.grad(forward, has_aux=True))(params64, xb, yb)
    # jit returns dicts with sorted keys; print in the order of the formulas instead.
    order = ("W1", "b1", "W2", "b2")
    for name in order:
        g, ref = np.asarray(grads[name]), np.asarray(auto[name])  # float64 NumPy copies
        rel = np.linalg.norm(g - ref) / np.linalg.norm(ref)
        print(
            f"{name}: shape {g.shape}, {g.dtype}, relative error vs autodiff {rel:.1e}"
        )
        assert rel <= 1e-6, name

# %% [markdown]
# Autodiff could share a mistake with our `forward` (it differentiates the same code), so the
# second check uses the loss values alone: a central finite difference
# $(L(\theta + h) - L(\theta - h)) / 2h$ on a few coordinates of each parameter, the one with
# the largest gradient and two random non-zero ones (chapter 1 measured the error of this
# estimate).

# %%
h = 1e-6
pick = jax.random.key(2)
print(f"{'coordinate':>14} {'by hand':>12} {'finite diff.':>12} {'rel. error':>10}")
with jax.enable_x64(True):
    # Compiled once, then called 24 times (jit also caches per x64 setting).
    loss_at = jax.jit(lambda p: forward(p, xb, yb)[0])
    for name in order:
        pick, k = jax.random.split(pick)
        # NumPy for the bookkeeping: picking and perturbing coordinates.
        g = np.asarray(grads[name])
        nonzero = np.flatnonzero(g)  # (e.g. pixels always 0 have zero gradient)
        flat = [int(np.abs(g).argmax())]
        flat += [int(nonzero[i]) for i in jax.random.randint(k, (2,), 0, len(nonzero))]
        for i in flat:
            step = np.zeros(g.size)
            step[i] = h
            step = step.reshape(g.shape)
            plus = {**params64, name: params64[name] + step}
            minus = {**params64, name: params64[name] - step}
            fd = float(loss_at(plus) - loss_at(minus)) / (2 * h)
            exact = float(g.reshape(-1)[i])
            rel = abs(fd - exact) / max(abs(exact), 1e-12)
            where = name + str([int(c) for c in np.unravel_index(i, g.shape)])
            print(f"{where:>14} {exact:12.4e} {fd:12.4e} {rel:10.1e}")
            np.testing.assert_allclose(fd, exact, rtol=1e-5, atol=1e-9)

# %% [markdown] tags=["shared"]
# ```{admonition} A common mistake: "the hidden layer's derivative is (1 - a)"
# :class: warning
# Backpropagation is often sketched as pseudocode whose backward function multiplies the
# upstream gradient by `(1 - a)`, and reads `a` and `x`, which it was never given. Both are
# wrong. The backward pass needs the forward pass's values, so they must be passed to it (the
# cache above). And the factor is the derivative of the activation actually used: for ReLU
# $\mathbb{1}[z > 0]$, for the sigmoid $\sigma'(z) = a(1 - a)$ with $a = \sigma(z)$. `(1 - a)`
# is neither; it is part of the sigmoid's derivative with the other factor $a$ missing. The
# cell below compares it with both true derivatives, and then runs our backward pass with it.
# ```

# %%
with jax.enable_x64(True):
    z = jnp.array([-2.0, -0.5, 0.5, 2.0], jnp.float64)
    a_relu, a_sig = jax.nn.relu(z), jax.nn.sigmoid(z)
    print("z                    ", z.tolist())
    print("ReLU: (1 - a)        ", (1 - a_relu).tolist())
    print("      1[z > 0]       ", (z > 0).astype(jnp.float64).tolist())
    print("sigmoid: (1 - a)     ", [round(v, 4) for v in (1 - a_sig).tolist()])
    print(
        "         a (1 - a)   ", [round(v, 4) for v in (a_sig * (1 - a_sig)).tolist()]
    )

    x, z1, a1, p = cache
    g_z2 = (p - jax.nn.one_hot(yb, 10, dtype=p.dtype)) / len(yb)
    g_z1_wrong = (g_z2 @ params64["W2"].T) * (1 - a1)  # the pseudocode's factor
    g_w1_wrong = x.T @ g_z1_wrong
    rel = float(jnp.linalg.norm(g_w1_wrong - auto["W1"]) / jnp.linalg.norm(auto["W1"]))
    print(f"W1 gradient with (1 - a): relative error vs autodiff {rel:.2f}")

# %% [markdown] tags=["shared"]
# **Training the hand-written network.** The same two functions, in float32 now, trained on
# MNIST with plain mini-batch **stochastic gradient descent**: after each batch, every
# parameter moves against its gradient, $\theta \leftarrow \theta - \eta\, G_\theta$, with the
# learning rate $\eta$ from this scale's sizes. No autodiff and no optimiser object: the update
# is one line per parameter. Each epoch visits the training set in a new random order, and ends
# with the loss and accuracy on the test set.

# %% [markdown]
# The step is one jitted function: forward, backward and the update compile into one XLA
# program, which also gathers the batch from the data set's indices. It returns new parameters
# instead of changing them (JAX arrays are immutable); `donate_argnums=0` lets XLA reuse the old
# parameters' memory for the new ones. Shuffling splits a fresh key per epoch from one seed.

# %%
x_train = jax.device_put(H.images_to_vectors(x_train_u8), device)  # (N, 784)
y_train_j = jax.device_put(y_train.astype(np.int32), device)  # (N,) int32
x_test = jax.device_put(H.images_to_vectors(x_test_u8), device)
y_test_j = jax.device_put(y_test.astype(np.int32), device)
print(f"train {x_train.shape}, test {x_test.shape}")
print(textwrap.fill(f"sizes: {sizes}", 88, subsequent_indent="    "))


@jax.jit(donate_argnums=0)
def sgd_step(params: dict, xs: jax.Array, ys: jax.Array, idx: jax.Array, lr: float):
    """One SGD step on the batch ``idx`` (B,) of (xs, ys): new parameters, and the batch's
    loss and correct count before the step."""
    x, y = xs[idx], ys[idx]  # (B, 784), (B,): gathered inside the compiled step
    loss, cache = forward(params, x, y)
    grads = backward(params, cache, y)
    new_params = {name: params[name] - lr * grads[name] for name in params}
    correct = (cache[3].argmax(1) == y).sum()
    return new_params, loss, correct


@jax.jit
def eval_batch(params: dict, x: jax.Array, y: jax.Array):
    loss, cache = forward(params, x, y)
    return loss * len(y), (cache[3].argmax(1) == y).sum()


def evaluate(params: dict, x: jax.Array, y: jax.Array, batch=2048):
    """Mean loss and accuracy over (x, y), batch by batch."""
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch):
        loss_sum, hits = eval_batch(params, x[i : i + batch], y[i : i + batch])
        total_loss, correct = total_loss + float(loss_sum), correct + int(hits)
    return total_loss / len(x), correct / len(x)


# Compiled once: the shuffle of every epoch is one program, not dozens of small ones.
permutation = jax.jit(jax.random.permutation, static_argnums=1)
key_init, key_shuffle = jax.random.split(jax.random.key(0))
params = jax.device_put(init_params(sizes.hidden, key_init), device)
# The last incomplete batch is dropped.
steps_per_epoch = len(x_train) // sizes.batch_size
history = H.History()
start = time.perf_counter()
bar = tqdm(total=sizes.epochs * steps_per_epoch, desc="train", unit="step")
for epoch in range(1, sizes.epochs + 1):
    t0 = time.perf_counter()
    key_shuffle, key = jax.random.split(key_shuffle)
    order = permutation(key, len(x_train))  # a new shuffle each epoch
    losses, correct = [], 0
    for step in range(steps_per_epoch):
        idx = order[step * sizes.batch_size : (step + 1) * sizes.batch_size]  # (B,)
        params, loss, hits = sgd_step(
            params, x_train, y_train_j, idx, sizes.learning_rate
        )
        losses.append(loss)
        correct += hits
        bar.update()
    test_loss, test_accuracy = evaluate(params, x_test, y_test_j)
    history.end_epoch(
        epoch,
        np.asarray(jnp.stack(losses)).tolist(),  # one device -> host copy per epoch
        correct=int(correct),
        seen=steps_per_epoch * sizes.batch_size,
        seconds=time.perf_counter() - t0,
        test_loss=test_loss,
        test_accuracy=test_accuracy,
    )
    bar.set_postfix(epoch=epoch, test_accuracy=f"{test_accuracy:.4f}")
bar.close()
train_seconds = time.perf_counter() - start
print("epoch  train loss  train acc  test loss  test acc")
for row in history.epochs:
    print(
        f"{row['epoch']:5.0f}  {row['train_loss']:10.4f}  {row['train_accuracy']:9.2%}"
        f"  {row['test_loss']:9.4f}  {row['test_accuracy']:8.2%}"
    )
fig = H.plot_history(
    history,
    title=f"Hand-written backprop + SGD on MNIST, JAX ({H.current_scale()} scale)",
)

# %%
final = history.last("test_accuracy")
epochs = f"{sizes.epochs} epoch" + ("s" if sizes.epochs > 1 else "")
print(
    f"At {H.current_scale()} scale, the hand-written network reaches {final:.2%} test "
    f"accuracy\nafter {epochs} of plain SGD on {len(x_train):,} images "
    f"({train_seconds:.2f} s of training on {device.platform},\ncompilation included; "
    "chance is 10%)."
)
# smoke: a few dozen steps on a subset, still far above chance; cpu/gpu: 97 % or more.
assert final > (0.5 if H.current_scale() == "smoke" else 0.97), final

# %% [markdown] tags=["shared"]
# The loss falls from about $\ln 10$, the value of uniform guessing, and the test accuracy
# above is that of a network whose every gradient was written by hand. The train accuracy is
# counted during the epoch, on each batch before its update (what `sgd_step` returns), so it
# averages over the whole epoch, from the untrained start on; the test accuracy is measured
# after the epoch's last step. After a single epoch (`smoke` scale) the train column can
# therefore lie well below the test column. Both frameworks compute exactly these products
# inside their autodiff; from here on we let them.

# %% [markdown] tags=["shared"]
# ## 2.4 Convolution and pooling
#
# A dense layer connects every input to every output and ignores what an image is made of:
# neighbouring pixels belong together, and a pattern (an edge, a stroke) means the same wherever
# it appears. A **convolutional layer** {cite}`lecun1998gradient` slides one small set of
# weights, a *kernel* of $k \times k$ weights per input channel, across the image and computes a
# weighted sum at every position. For image $n$, output channel $o$ and output pixel $(i, j)$,
# with stride $s$ and the input padded with $p$ zeros on each side,
#
# $$
# \begin{aligned}
# y_{n,o,i,j} &= b_o + \sum_{c=0}^{C_\text{in}-1} \sum_{u=0}^{k-1} \sum_{v=0}^{k-1} \\
# &\qquad w_{o,c,u,v}\; x_{n,c,\,s i+u,\,s j+v}, \\
# H_\text{out} &= \left\lfloor \frac{H + 2p - k}{s} \right\rfloor + 1 .
# \end{aligned}
# $$
#
# Strictly this is a cross-correlation (the kernel is not flipped); every framework calls it
# convolution, and a learned kernel does not care. The same $C_\text{out} \times C_\text{in}
# \times k \times k$ weights serve every position, so the layer has far fewer parameters than a
# dense one and finds a pattern wherever it is. First the formula as loops, on an input small
# enough to follow.

# %% [markdown]
# Flax's convolution layer, `nnx.Conv`, stores a batch of images as `(N, H, W, C)`, "NHWC":
# channels last, and its kernel as `(k, k, C_in, C_out)`, "HWIO". PyTorch uses NCHW and
# `(C_out, C_in, k, k)`. Neither is wrong; channels-last is often faster on accelerators, and
# converting weights between the frameworks means transposing these axes. This page follows
# Flax: NHWC. JAX arrays are immutable, and every eager JAX operation has a fixed cost, so the
# loops, written for reading and not for speed, fill a NumPy array. The test inputs are drawn
# with NumPy too (the random keys of JAX come in with the models' weights).

# %%
from functools import partial


def conv2d_loops(x, w, b, stride=1, padding=0):
    """x (N, H, W, C), w (k, k, C, O), b (O,) -> (N, H_out, W_out, O): the formula, one output
    pixel at a time."""
    # Zeros around H, W.
    x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    n_images, height, width, _ = x.shape
    k, _, _, c_out = w.shape
    h_out, w_out = (height - k) // stride + 1, (width - k) // stride + 1
    y = np.zeros((n_images, h_out, w_out, c_out), dtype=x.dtype)
    for n in range(n_images):
        for o in range(c_out):
            for i in range(h_out):
                for j in range(w_out):
                    patch = x[
                        n, i * stride : i * stride + k, j * stride : j * stride + k, :
                    ]
                    # Sum over u, v, c.
                    y[n, i, j, o] = (w[:, :, :, o] * patch).sum() + b[o]
    return y


@partial(jax.jit, static_argnames=("stride", "padding"))
def lax_conv(x, w, b, stride, padding):
    """JAX's own convolution, told the layout of each operand: NHWC input, HWIO kernel."""
    y = jax.lax.conv_general_dilated(
        x,
        w,
        window_strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),  # input, kernel, output
    )
    return y + b


rng = np.random.default_rng(0)
x_small = rng.standard_normal((1, 5, 5, 2), dtype=np.float32)  # (N, H, W, C)
w_small = rng.standard_normal((3, 3, 2, 3), dtype=np.float32)  # (k, k, C_in, C_out)
b_small = rng.standard_normal(3, dtype=np.float32)
for stride, padding in [(1, 0), (1, 1), (2, 1)]:
    ours = conv2d_loops(x_small, w_small, b_small, stride, padding)
    theirs = lax_conv(x_small, w_small, b_small, stride, padding)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    print(
        f"stride {stride}, padding {padding}: output {ours.shape} equals lax.conv_general_dilated"
    )

# %% [markdown]
# `dimension_numbers` tells `lax.conv_general_dilated` which axis is which, so the same call
# handles PyTorch's layout too: `("NCHW", "OIHW", "NCHW")`. The check below transposes the data
# and the kernel to that layout and gets the same numbers back. (The comparisons use float32,
# JAX's default, hence tolerances of 1e-5 to 1e-4.)

# %%
y_nchw = jax.lax.conv_general_dilated(
    x_small.transpose(0, 3, 1, 2),  # (N, H, W, C) -> (N, C, H, W)
    w_small.transpose(3, 2, 0, 1),  # (k, k, C_in, C_out) -> (C_out, C_in, k, k)
    window_strides=(1, 1),
    padding="VALID",  # no padding
    dimension_numbers=("NCHW", "OIHW", "NCHW"),
)
ours = conv2d_loops(x_small, w_small, np.zeros(3, dtype=np.float32))
np.testing.assert_allclose(y_nchw.transpose(0, 2, 3, 1), ours, rtol=1e-5, atol=1e-5)
print(f"NCHW result {y_nchw.shape} = NHWC result {ours.shape}, transposed")

# %% [markdown] tags=["shared"]
# Four nested Python loops are far too slow for real images. The vectorised form first gathers
# every $k \times k$ patch the kernel visits into one array, indexed by image, output position
# $(i, j)$ and the patch's channel and pixel $(c, u, v)$ (the "im2col" idea), then does all the
# weighted sums at once as a single `einsum`: multiply each patch by each output channel's kernel
# and sum over $c, u, v$.

# %% [markdown]
# JAX has no `unfold`; the patches are gathered with index arrays instead. Row $s i + u$ of
# every patch is `rows[i, u]`, an `(H_out, k)` table, and likewise for columns; indexing with
# both (broadcast against each other) returns all patches at once.


# %%
def patches(x, k, stride):
    """x (N, H, W, C) -> (N, H_out, W_out, k, k, C): every k x k window, gathered."""
    h_out = (x.shape[1] - k) // stride + 1
    w_out = (x.shape[2] - k) // stride + 1
    rows = (jnp.arange(h_out) * stride)[:, None] + jnp.arange(k)  # (H_out, k)
    cols = (jnp.arange(w_out) * stride)[:, None] + jnp.arange(k)  # (W_out, k)
    return x[:, rows[:, None, :, None], cols[None, :, None, :], :]


@partial(jax.jit, static_argnames=("stride", "padding"))
def conv2d(x, w, b, stride=1, padding=0):
    """x (N, H, W, C), w (k, k, C, O), b (O,) -> (N, H_out, W_out, O), vectorised."""
    x = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    p = patches(x, w.shape[0], stride)  # (N, H_out, W_out, k, k, C)
    return jnp.einsum("nijuvc,uvco->nijo", p, w) + b


@partial(jax.jit, static_argnames=("k", "stride"))
def max_pool2d(x, k, stride=None):
    """x (N, H, W, C) -> (N, H_out, W_out, C): the largest value of each k x k window."""
    stride = k if stride is None else stride
    return patches(x, k, stride).max(axis=(3, 4))


x_batch = rng.standard_normal((8, 28, 28, 3), dtype=np.float32)  # (N, H, W, C)
w_batch = rng.standard_normal((5, 5, 3, 16), dtype=np.float32)  # (k, k, C_in, C_out)
b_batch = rng.standard_normal(16, dtype=np.float32)
for stride, padding in [(1, 2), (2, 1)]:
    ours = conv2d(x_batch, w_batch, b_batch, stride, padding)
    theirs = lax_conv(x_batch, w_batch, b_batch, stride, padding)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    print(
        f"conv2d, stride {stride}, padding {padding}: {ours.shape} equals lax.conv_general_dilated"
    )
for k, stride in [(2, 2), (3, 2)]:
    ours = max_pool2d(x_batch, k, stride)
    theirs = nnx.max_pool(x_batch, window_shape=(k, k), strides=(stride, stride))
    window = jax.lax.reduce_window(
        x_batch, -jnp.inf, jax.lax.max, (1, k, k, 1), (1, stride, stride, 1), "VALID"
    )
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(ours, window)
    print(f"max_pool2d, window {k}, stride {stride}: {ours.shape} equals nnx.max_pool")

# %% [markdown]
# `nnx.max_pool` is `lax.reduce_window` with `max`: a reduction over sliding windows, the
# primitive behind every pooling layer in JAX. `conv2d` and `max_pool2d` are compiled with
# `jax.jit`; the stride, padding and window size are `static` arguments because they decide the
# shapes, which a compiled function must know.

# %% [markdown] tags=["shared"]
# **Pooling** has no weights: max pooling keeps the largest value of each window, so a feature
# that moved by a pixel inside the window gives the same output, and a stride of 2 halves the
# height and width. It is the same patch gathering as above with `max` in place of the weighted
# sum.
#
# ### Receptive fields
#
# Each output pixel of a layer sees a square of the *input image*, its **receptive field**. Going
# through a layer with kernel $k_l$ and stride $s_l$, it grows by $k_l - 1$ times the *jump*
# $j_{l-1}$, the distance in input pixels between two neighbouring pixels of the layer below:
#
# $$
# \begin{gathered}
# r_l = r_{l-1} + (k_l - 1)\, j_{l-1}, \\
# j_l = j_{l-1}\, s_l, \qquad r_0 = j_0 = 1 .
# \end{gathered}
# $$
#
# Strided layers (pooling here) multiply the jump, so every layer after them widens the view
# faster. The table is computed for the small CNN built below; then the formula is checked by
# differentiating: the gradient of one output pixel with respect to the input is non-zero exactly
# on its receptive field (here with all weights 1 and average pooling, so that no gradient is zero
# by chance).

# %%
# (kind, kernel, stride) of each layer of the CNN below; ReLUs do not change the field.
cnn_layers = [
    ("conv", 3, 1),
    ("pool", 2, 2),
    ("conv", 3, 1),
    ("pool", 2, 2),
    ("conv", 3, 1),
]


def receptive_fields(layers):
    """[(kind, k, s)] -> [(receptive field, jump)] after each layer, in input pixels."""
    field, jump, out = 1, 1, []
    for _, k, s in layers:
        field, jump = field + (k - 1) * jump, jump * s
        out.append((field, jump))
    return out


fields = receptive_fields(cnn_layers)
print("layer   kernel  stride  receptive field  jump")
for (kind, k, s), (field, jump) in zip(cnn_layers, fields, strict=True):
    print(f"{kind:6} {k:7} {s:7} {field:10} x {field:<4} {jump:4}")


# %%
def field_from_gradient(layers, size=40):
    """Width of the input region that one central output pixel depends on, found by jax.grad."""

    def centre_pixel(x):  # x (1, size, size, 1)
        y = x
        for kind, k, s in layers:
            if kind == "conv":
                y = lax_conv(y, jnp.ones((k, k, 1, 1)), jnp.zeros(1), s, 0)
            else:
                y = nnx.avg_pool(y, window_shape=(k, k), strides=(s, s))
        return y[0, y.shape[1] // 2, y.shape[2] // 2, 0]

    grad = jax.jit(jax.grad(centre_pixel))(jnp.ones((1, size, size, 1)))
    rows = jnp.nonzero(jnp.abs(grad[0, :, :, 0]).sum(axis=1))[0]
    return int(rows.max() - rows.min() + 1)


measured = field_from_gradient(cnn_layers)
print(f"receptive field from the gradient: {measured} pixels; formula: {fields[-1][0]}")
assert measured == fields[-1][0]

# %% [markdown] tags=["shared"]
# A small CNN for 28 x 28 digits: three convolutions (3 x 3, padded so they keep the size), each
# followed by a ReLU, with 2 x 2 max pooling after the first two, then one dense layer over the
# flattened feature maps. Its last convolution sees the receptive field computed above.

# %% [markdown]
# Layers without parameters (ReLU, pooling, flattening) are plain functions in Flax;
# `nnx.Sequential` takes modules and functions alike. To see the shapes, nothing needs to be
# computed: `nnx.eval_shape` runs the constructor abstractly (parameters get shapes and dtypes,
# no values); then each layer propagates the shapes without running, through `nnx.eval_shape`
# for a module (its parameters are abstract too) and `jax.eval_shape` for a plain function.
# Both trace the code, as `jax.jit` does, and stop before compiling.


# %%
def flatten(x):  # (N, H, W, C) -> (N, H * W * C)
    return x.reshape(x.shape[0], -1)


class SmallCNN(nnx.Module):
    def __init__(self, channels=(8, 16, 32), classes=10, *, rngs: nnx.Rngs):
        c1, c2, c3 = channels
        pool = partial(nnx.max_pool, window_shape=(2, 2), strides=(2, 2))
        self.layers = nnx.Sequential(
            nnx.Conv(1, c1, kernel_size=(3, 3), padding=1, rngs=rngs),
            nnx.relu,
            pool,
            nnx.Conv(c1, c2, kernel_size=(3, 3), padding=1, rngs=rngs),
            nnx.relu,
            pool,
            nnx.Conv(c2, c3, kernel_size=(3, 3), padding=1, rngs=rngs),
            nnx.relu,
            flatten,
            nnx.Linear(c3 * 7 * 7, classes, rngs=rngs),
        )

    def __call__(self, x):  # (N, 28, 28, 1)
        return self.layers(x)  # (N, classes) logits


def layer_name(layer):
    if isinstance(layer, nnx.Module):
        return type(layer).__name__
    return getattr(layer, "__name__", None) or getattr(layer.func, "__name__", "?")


# Shapes only, no weights drawn.
cnn = nnx.eval_shape(lambda: SmallCNN(rngs=nnx.Rngs(0)))
h = jax.ShapeDtypeStruct((2, 28, 28, 1), jnp.float32)  # (N, H, W, C), abstract
print(f"{'input':10} {h.shape}")
for layer in cnn.layers.layers:
    if isinstance(layer, nnx.Module):  # its parameters are abstract too: pass it in
        h = nnx.eval_shape(lambda module, x: module(x), layer, h)
        n_params = H.count_params(layer)
    else:  # a plain function
        h, n_params = jax.eval_shape(layer, h), 0
    print(f"{layer_name(layer):10} {h.shape!s:18} {n_params:6,} parameters")
print(f"total: {H.count_params(cnn):,} parameters")

# %% [markdown] tags=["shared"]
# The shapes follow the formula: padding 1 keeps 28 x 28, each pooling halves it (28, 14, 7),
# and the channels grow as the image shrinks. The convolutions together hold fewer parameters
# than the final dense layer, which connects every one of the last feature-map values to every
# class. Section 2.3 already trained a network on MNIST; chapter 3 trains a small CNN on MNIST,
# and chapter 5 one on colour images (CIFAR-10), with data augmentation.
#
# ## 2.5 Recurrence: RNN and LSTM cells
#
# A recurrent network reads a sequence $x_1, \dots, x_T$ one step at a time and carries a hidden
# state $h_t$ from step to step: the same weights at every step, as a convolution uses the same
# weights at every position. The plain (Elman) **RNN cell** is
#
# $$
# h_t = \tanh\left(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}\right).
# $$

# %% [markdown]
# Here the cell is a pure function of its parameters, stored as Flax's `nnx.SimpleCell` stores
# them: an input kernel $W_{ih}^\top$ `(D, H)` applied as `x @ W` (Flax's kernels are
# `(in, out)`, the transpose of PyTorch's), a recurrent kernel `(H, H)` and one bias (the
# equation's two biases are only ever added together, so one is enough). The time
# loop is `jax.lax.scan`: it calls `step(carry, x_t)` for every `x_t` along the leading axis,
# threads the carry (here $h$) through, and stacks what each step returns. Unlike a Python loop,
# `scan` is traced once and compiled as one loop, however long the sequence. The result is
# asserted equal to `nnx.RNN(nnx.SimpleCell(...))`, Flax's own loop over its own cell.


# %%
def rnn_cell(params, h, x_t):
    """h (B, H), x_t (B, D) -> next h (B, H); Flax's layout: kernels are (in, out)."""
    return jnp.tanh(x_t @ params["w_i"] + params["b"] + h @ params["w_h"])


@jax.jit
def rnn_scan(params, x, h):
    """x (B, T, D), h (B, H) -> outputs (B, T, H), last h."""

    def step(h, x_t):
        h = rnn_cell(params, h, x_t)
        return h, h  # (new carry, this step's output)

    h, outputs = jax.lax.scan(step, h, x.swapaxes(0, 1))  # scan runs over axis 0: time
    return outputs.swapaxes(0, 1), h


batch, steps, d_in, d_hidden = 4, 7, 5, 6
x_seq = rng.standard_normal((batch, steps, d_in), dtype=np.float32)  # (B, T, D)
simple = nnx.SimpleCell(d_in, d_hidden, rngs=nnx.Rngs(0))
print(jax.tree.map(jnp.shape, nnx.to_pure_dict(nnx.state(simple))))
rnn_params = {
    "w_i": simple.dense_i.kernel[...],  # (D, H)
    "w_h": simple.dense_h.kernel[...],  # (H, H)
    "b": simple.dense_i.bias[...],  # (H,)
}
ours, h = rnn_scan(rnn_params, x_seq, jnp.zeros((batch, d_hidden)))
theirs = nnx.RNN(simple)(x_seq)  # (B, T, H); nnx.RNN scans the cell over axis 1
np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
print(
    f"hand-written RNN (lax.scan) equals nnx.RNN(nnx.SimpleCell): outputs {ours.shape}"
)

# %% [markdown] tags=["shared"]
# The **LSTM** {cite}`hochreiter1997long` adds a second state, the cell $c_t$, and four blocks
# computed from $x_t$ and $h_{t-1}$, three gates and a candidate: the input gate $i_t$, the
# forget gate $f_t$ (added to the LSTM later {cite}`gers2000learning`), the candidate $g_t$
# (PyTorch's documentation calls it the cell gate) and the output gate $o_t$. With $\sigma$
# the logistic sigmoid and $\odot$ the element-wise product,
#
# $$
# \begin{aligned}
# i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}), \\
# f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}), \\
# g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}), \\
# o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}), \\
# c_t &= f_t \odot c_{t-1} + i_t \odot g_t, \\
# h_t &= o_t \odot \tanh(c_t).
# \end{aligned}
# $$
#
# The cell state is updated by a gated *sum*, not squashed through a matrix and a $\tanh$ at every
# step: that is what lets information, and gradient, travel across many steps when $f_t$ stays
# near 1. All four blocks are computed as one matrix product of width $4H$ and then split.

# %% [markdown]
# Flax has two LSTM cells with the same equations. `nnx.OptimizedLSTMCell` stores what the text
# above calls one matrix of width $4H$: `dense_i.kernel` `(D, 4H)` without bias and
# `dense_h.kernel` `(H, 4H)` with the one bias `(4H,)`, gates in the order **i, f, g, o** (the
# same order as PyTorch, whose matrices are the transposes, `(4H, D)` and `(4H, H)`, with two
# biases). `nnx.LSTMCell` keeps eight separate kernels, `ii, if_, ig, io` for the input and
# `hi, hf, hg, ho` for the state, the biases on the latter. Both take and return the carry as
# **(c, h)**, cell state first. The printout shows the layouts; the hand-written cell below uses
# the optimised one's, and both Flax cells are loaded with its weights.

# %%
lstm_flax = nnx.OptimizedLSTMCell(d_in, d_hidden, rngs=nnx.Rngs(0))
lstm_split = nnx.LSTMCell(d_in, d_hidden, rngs=nnx.Rngs(0))
for name, cell in (("OptimizedLSTMCell", lstm_flax), ("LSTMCell", lstm_split)):
    print(f"{name}:")
    pprint.pp(jax.tree.map(jnp.shape, nnx.to_pure_dict(nnx.state(cell))), width=88)


def lstm_cell(params, carry, x_t):
    """carry (c, h), each (B, H), x_t (B, D) -> (next (c, h), h). Flax's layout and order."""
    c, h = carry
    gates = x_t @ params["w_i"] + h @ params["w_h"] + params["b"]  # (B, 4H)
    i, f, g, o = jnp.split(gates, 4, axis=-1)  # each (B, H): i, f, g, o
    i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
    c = f * c + i * g
    h = o * jnp.tanh(c)
    return (c, h), h


@jax.jit
def lstm_scan(params, x, carry):
    """x (B, T, D), carry (c, h) -> outputs (B, T, H), last (c, h)."""
    carry, outputs = jax.lax.scan(partial(lstm_cell, params), carry, x.swapaxes(0, 1))
    return outputs.swapaxes(0, 1), carry


lstm_params = {
    "w_i": 0.5 * rng.standard_normal((d_in, 4 * d_hidden), dtype=np.float32),  # (D, 4H)
    "w_h": 0.5
    * rng.standard_normal((d_hidden, 4 * d_hidden), dtype=np.float32),  # (H, 4H)
    "b": rng.standard_normal(4 * d_hidden, dtype=np.float32),  # (4H,)
}
# Load the same weights into both Flax cells.
lstm_flax.dense_i.kernel[...] = lstm_params["w_i"]
lstm_flax.dense_h.kernel[...] = lstm_params["w_h"]
lstm_flax.dense_h.bias[...] = lstm_params["b"]
for n, gate in enumerate(("i", "f", "g", "o")):
    block = slice(n * d_hidden, (n + 1) * d_hidden)  # this gate's columns
    getattr(lstm_split, "i" + gate if gate != "f" else "if_").kernel[...] = lstm_params[
        "w_i"
    ][:, block]
    getattr(lstm_split, "h" + gate).kernel[...] = lstm_params["w_h"][:, block]
    getattr(lstm_split, "h" + gate).bias[...] = lstm_params["b"][block]

# Non-zero (c, h)
carry0 = tuple(rng.standard_normal((2, batch, d_hidden), dtype=np.float32))
ours, (c_ours, h_ours) = lstm_scan(lstm_params, x_seq, carry0)
theirs = nnx.RNN(lstm_flax)(x_seq, initial_carry=carry0)  # (B, T, H)
np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
for cell in (lstm_flax, lstm_split):
    (c_one, h_one), _ = cell(carry0, x_seq[:, 0])
    np.testing.assert_allclose(h_one, ours[:, 0], rtol=1e-5, atol=1e-6)
print(
    f"hand-written LSTM equals nnx.OptimizedLSTMCell and nnx.LSTMCell: outputs {ours.shape}"
)

# %% [markdown] tags=["shared"]
# ### Vanishing gradients, measured
#
# Training a recurrent network needs the gradient of a late loss with respect to early states.
# By the chain rule, $\partial L/\partial h_t$ is a product of $T - t$ step Jacobians. For the RNN
# each factor is $\operatorname{diag}(1 - h_{s}^2)\, W_{hh}$; when these shrink vectors, the
# product shrinks exponentially with the distance, so the network cannot learn from events far
# back {cite}`bengio1994learning`. In the LSTM the path through the cell state multiplies by the
# forget gates $f_s$ instead.
#
# Below, an RNN and an LSTM with the framework's default initialisation read the same random
# sequences, the loss is $\lVert h_T \rVert^2$ at the last step, and we measure
# $\lVert \partial L / \partial h_t \rVert$ for every earlier step $t$. A third curve is the same
# LSTM with its forget-gate bias raised by 1, a common initialisation
# {cite}`jozefowicz2015empirical`. The measurement runs in float64: over the longest sequences
# (`gpu` scale) the smallest norms fall below what float32 can represent and become exactly 0.

# %% [markdown]
# JAX differentiates a function with respect to its *inputs*, and an $h_t$ computed inside
# `scan` is not one. The trick: add a zero "probe" $\epsilon_t$ to every $h_t$, pass the probes
# in as an input `(T, B, H)`, and take the gradient with respect to them. Adding zero changes
# nothing, and $\partial L / \partial \epsilon_t = \partial L / \partial h_t$. The weights come
# from Flax's cells with their default initialisation, cast to float64 with the inputs inside
# `jax.enable_x64(True)`; the whole measurement is one compiled function, `kind` a static
# argument because it changes the code traced.


# %%
@partial(jax.jit, static_argnames="kind")
def hidden_gradient_norms(p, x, kind):
    """||dL/dh_t|| for t = 1..T, L = mean over the batch of ||h_T||^2; x (B, T, D) float64
    -> (T,)."""
    hidden = p["w_h"].shape[0]

    def loss(probes):  # probes (T, B, H), all zero
        def step(carry, inputs):
            x_t, probe = inputs
            if kind == "rnn":
                h = rnn_cell(p, carry[1], x_t) + probe
                return (carry[0], h), None
            (c, h), _ = lstm_cell(p, carry, x_t)
            return (c, h + probe), None

        zeros = jnp.zeros((x.shape[0], hidden), x.dtype)
        (_, h_last), _ = jax.lax.scan(step, (zeros, zeros), (x.swapaxes(0, 1), probes))
        return (h_last**2).sum(axis=-1).mean()

    probes = jnp.zeros((x.shape[1], x.shape[0], hidden), x.dtype)
    grads = jax.grad(loss)(probes)  # (T, B, H)
    return jnp.sqrt((grads**2).sum(axis=(1, 2)))


hidden = 64
simple = nnx.SimpleCell(16, hidden, rngs=nnx.Rngs(1))
rnn_weights = {
    "w_i": simple.dense_i.kernel[...],
    "w_h": simple.dense_h.kernel[...],
    "b": simple.dense_i.bias[...],
}
optimized = nnx.OptimizedLSTMCell(16, hidden, rngs=nnx.Rngs(1))
lstm_weights = {
    "w_i": optimized.dense_i.kernel[...],
    "w_h": optimized.dense_h.kernel[...],
    "b": optimized.dense_h.bias[...],
}
# The same LSTM with 1 added to the forget gate's block of the bias: gates are i, f, g, o.
lstm_weights_f1 = {
    **lstm_weights,
    "b": lstm_weights["b"].at[hidden : 2 * hidden].add(1.0),
}

rnn_steps = H.sizes("sequences").rnn_steps
x_long = rng.standard_normal((32, rnn_steps, 16))  # (B, T, D) float64
curves = {
    "RNN": (rnn_weights, "rnn"),
    "LSTM": (lstm_weights, "lstm"),
    "LSTM, forget bias +1": (lstm_weights_f1, "lstm"),
}
# float64, so that no norm underflows to 0 even over the longest sequences.
with jax.enable_x64(True):
    norms = {
        name: np.asarray(
            hidden_gradient_norms(
                jax.tree.map(lambda w: jnp.asarray(w, jnp.float64), weights),
                jnp.asarray(x_long),
                kind,
            )
        )
        for name, (weights, kind) in curves.items()
    }
decay = {name: n[0] / n[-1] for name, n in norms.items()}
for name, ratio in decay.items():
    print(f"{name:22} ||dL/dh_1|| / ||dL/dh_T|| = {ratio:.1e}")
# What the text below says: both default cells lose orders of magnitude; the forget bias helps.
assert all((n > 0).all() for n in norms.values())  # float64: no norm underflows to 0
assert decay["RNN"] < 1e-2 and decay["LSTM"] < 1e-2
# The gain grows with T and varies with the draw: 10x still shows the forget bias's effect.
assert decay["LSTM, forget bias +1"] > 10 * decay["LSTM"]

fig, ax = plt.subplots(figsize=(6, 3.6))
for name, n in norms.items():
    ax.semilogy(np.arange(1, rnn_steps + 1), n, label=name)
ax.set(
    xlabel="time step t",
    ylabel="gradient norm ||dL/dh_t||",
    title=f"Gradient of the last step's loss, JAX (T = {rnn_steps})",
)
ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # time steps are whole numbers
ax.legend()
plt.show()

# %% [markdown] tags=["shared"]
# Read the plot from right to left: the further back the step, the smaller its gradient, and the
# RNN's falls by the factor printed above over the whole sequence. The LSTM is often said to
# solve this outright. Measured, at the framework's default initialisation (biases at or near 0,
# so $f_t \approx \sigma(0) = 0.5$) its gradient also falls exponentially with the distance; with
# the forget bias raised by 1 the first step keeps orders of magnitude more (the ratios above).
# What the LSTM provides is a path whose decay the network *controls* through $f_t$: training can
# push the forget gates towards 1 where a memory has to last. The two frameworks initialise
# recurrent cells differently (PyTorch draws every weight and bias uniformly from
# $\pm 1/\sqrt{H}$; Flax uses a LeCun-normal input kernel, an orthogonal recurrent kernel and
# zero biases), so the curves differ between the PyTorch and the JAX page, which of the two
# default cells decays faster included; the exponential decay and the effect of the forget bias
# appear on both.
#
# ## 2.6 Attention and a Transformer block
#
# A recurrent network passes information step by step. **Attention** lets every position look
# at every other position directly {cite}`vaswani2017attention`. Each position emits a query
# $q$, a key $k$ and a value $v$; the output at a position is an average of all values, weighted
# by how well its query matches each key. For $T$ queries and $S$ keys of width $d$, stacked into
# matrices $Q \in \mathbb{R}^{T \times d}$, $K \in \mathbb{R}^{S \times d}$,
# $V \in \mathbb{R}^{S \times d_v}$,
#
# $$
# \begin{aligned}
# &\operatorname{Attention}(Q, K, V) \\
# &\quad = \operatorname{softmax}\!\left(\frac{Q K^\top}{\sqrt{d}} + M\right) V ,
# \end{aligned}
# $$
#
# with the softmax over the keys (the last axis). Dividing by $\sqrt{d}$ keeps the scores' spread
# independent of the width: with unit-variance entries, a dot product of width $d$ has variance
# $d$, and a softmax of large scores saturates to a one-hot vector with vanishing gradients. The
# mask $M$ is $0$ where attending is allowed and $-\infty$ where it is not, so those weights
# become exactly 0. Two masks are common: a **padding mask** hides the padding tokens that fill
# short sequences up to the batch's length, and a **causal mask** lets position $t$ see only
# positions $\le t$, as a model that generates text one token at a time must.

# %% [markdown]
# In the code a mask is boolean, `True` where attending is allowed: the convention of Flax (and
# of PyTorch's `F.scaled_dot_product_attention`). The reference here is
# `nnx.dot_product_attention` (JAX itself has `jax.nn.dot_product_attention` with the same
# layout), which takes `(B, T, heads, d)`: the heads axis before the feature axis, where the
# hand-written function treats any leading axes as batch.


# %%
@jax.jit
def attention(q, k, v, mask=None):
    """q (..., T, d), k (..., S, d), v (..., S, d_v), mask broadcastable to (..., T, S)
    with True = may attend -> (output (..., T, d_v), weights (..., T, S))."""
    scores = q @ k.swapaxes(-2, -1) / math.sqrt(q.shape[-1])  # (..., T, S)
    if mask is not None:
        scores = jnp.where(mask, scores, -jnp.inf)
    weights = jax.nn.softmax(scores, axis=-1)  # each row sums to 1 over the keys
    return weights @ v, weights


batch, seq, width = 2, 5, 8
# Each (B, T, d)
q, k, v = rng.standard_normal((3, batch, seq, width), dtype=np.float32)
lengths = jnp.array([5, 3])  # the second sequence has 2 padding tokens
padding_mask = (jnp.arange(seq) < lengths[:, None])[:, None, :]  # (B, 1, S)
causal_mask = jnp.tril(jnp.ones((seq, seq), dtype=bool))  # (T, S)
for name, mask in [
    ("none", None),
    ("padding", padding_mask),
    ("causal", causal_mask),
    ("padding and causal", padding_mask & causal_mask),
]:
    ours, weights = attention(q, k, v, mask)
    # nnx.dot_product_attention wants (B, T, heads, d) and a mask (B, heads, T, S): one head.
    flax_mask = (
        None if mask is None else jnp.broadcast_to(mask, (batch, seq, seq))[:, None]
    )
    theirs = jax.jit(nnx.dot_product_attention)(
        q[:, :, None], k[:, :, None], v[:, :, None], mask=flax_mask
    )
    np.testing.assert_allclose(ours, theirs[:, :, 0], rtol=1e-5, atol=1e-6)
    print(f"mask {name!r:21}: equals nnx.dot_product_attention")

fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
panels = [("padding", padding_mask), ("causal", causal_mask)]
for ax, (name, mask) in zip(axes, panels, strict=True):
    _, weights = attention(q, k, v, mask)
    # the second sequence: 3 real tokens, 2 padding
    image = ax.imshow(weights[1], vmin=0, vmax=1, cmap="viridis")
    ax.set(title=f"{name} mask", xlabel="key position", ylabel="query position")
fig.colorbar(image, ax=axes, label="attention weight")
plt.show()

# %% [markdown] tags=["shared"]
# The plots show the weights for the second sequence (3 real tokens, 2 padding). With the padding
# mask, the columns of the two padding keys are 0 for every query (the rows of the padding
# queries are computed too, and ignored later); with the causal mask, the weights above the
# diagonal are 0 and the first query can only attend to itself.
#
# **Multi-head attention** runs $h$ attentions side by side, each on its own learned projection
# of width $d_\text{head} = d_\text{model} / h$, so different heads can look for different
# things; their outputs are concatenated and projected back to $d_\text{model}$:
#
# $$
# \begin{gathered}
# \operatorname{head}_j = \operatorname{Attention}(X W^Q_j, X W^K_j, X W^V_j), \\
# \operatorname{MHA}(X) = [\operatorname{head}_1, \dots, \operatorname{head}_h]\, W^O .
# \end{gathered}
# $$
#
# In code the $h$ projections are one matrix of width $d_\text{model}$, reshaped into heads.

# %% [markdown]
# `nnx.MultiHeadAttention` keeps the heads as an axis of its kernels: `query`, `key` and `value`
# each have a kernel `(d_model, heads, d_head)` and a bias `(heads, d_head)`, and `out` has a
# kernel `(heads, d_head, d_model)`; the printout shows them. The hand-written version takes
# the same arrays, so loading "the same weights" is passing the module's own. Its `mask` has the
# same polarity as ours (`True` = may attend) and shape `(B, heads, T, S)`.


# %%
@jax.jit
def multi_head_attention(x, p, mask=None):
    """x (B, T, d_model) -> (B, T, d_model) with nnx.MultiHeadAttention's weights p:
    query/key/value kernel (d_model, heads, d_head), bias (heads, d_head); out kernel
    (heads, d_head, d_model), bias (d_model,). mask broadcastable to (B, heads, T, T)."""

    def project(name):  # (B, T, d_model) -> (B, heads, T, d_head)
        y = jnp.einsum("btd,dhk->bthk", x, p[name]["kernel"]) + p[name]["bias"]
        return y.swapaxes(1, 2)

    out, _ = attention(project("query"), project("key"), project("value"), mask)
    # (B, heads, T, d_head) -> (B, T, d_model): sum over heads and their features
    return jnp.einsum("bhtk,hkd->btd", out, p["out"]["kernel"]) + p["out"]["bias"]


d_model, heads = 16, 4
x = rng.standard_normal((batch, seq, d_model), dtype=np.float32)  # (B, T, d_model)
mha = nnx.MultiHeadAttention(
    num_heads=heads,
    in_features=d_model,
    decode=False,
    bias_init=nnx.initializers.normal(
        1.0
    ),  # Flax initialises biases to 0; test them too
    rngs=nnx.Rngs(0),
)
mha_weights = nnx.to_pure_dict(nnx.state(mha, nnx.Param))
# One compiled call.
mha_call = nnx.jit(lambda module, x, mask=None: module(x, mask=mask))
pprint.pp(jax.tree.map(jnp.shape, mha_weights), width=88)
ours = multi_head_attention(x, mha_weights)
np.testing.assert_allclose(ours, mha_call(mha, x), rtol=1e-5, atol=1e-5)
ours = multi_head_attention(x, mha_weights, mask=causal_mask)
np.testing.assert_allclose(ours, mha_call(mha, x, causal_mask), rtol=1e-5, atol=1e-5)
ours = multi_head_attention(x, mha_weights, mask=padding_mask[:, None])
np.testing.assert_allclose(
    ours, mha_call(mha, x, padding_mask[:, None]), rtol=1e-5, atol=1e-5
)
print(f"hand-written multi-head attention equals nnx.MultiHeadAttention: {ours.shape}")

# %% [markdown] tags=["shared"]
# ### Positional encoding
#
# Attention compares contents; nothing in it knows *where* a token is. Permute the input
# positions and the output rows are permuted the same way (attention is *permutation
# equivariant*), so "dog bites man" and "man bites dog" would give the same set of vectors. The
# Transformer {cite}`vaswani2017attention` therefore adds a **positional encoding** to each
# token's embedding before the first layer: sines and cosines of the position at geometrically
# spaced frequencies,
#
# $$
# \begin{aligned}
# \mathrm{PE}_{t, 2m} &= \sin\!\left(t / 10000^{2m / d}\right), \\
# \mathrm{PE}_{t, 2m+1} &= \cos\!\left(t / 10000^{2m / d}\right).
# \end{aligned}
# $$
#
# ```{admonition} A common misconception: "positional encoding comes after self-attention"
# :class: warning
# Diagrams of the Transformer sometimes draw the positional encoding after the self-attention
# layer. It goes *before*: it is added to the token embeddings, and the sum is the input of the
# first attention layer {cite}`vaswani2017attention`. Added later, the first layer would already
# have mixed the tokens without knowing their order. The cell below shows it: without positional
# encoding, permuting the input tokens only permutes the outputs; with the encoding added to the
# embeddings first, the outputs change.
# ```


# %%
def sinusoidal_positions(length, d_model):
    """(length, d_model) float32 table: sin at even, cos at odd features (Vaswani et al.).
    A constant, computed once in NumPy (nothing to trace or differentiate)."""
    position = np.arange(length, dtype=np.float32)[:, None]  # (T, 1)
    frequency = 10000.0 ** (-np.arange(0, d_model, 2, dtype=np.float32) / d_model)
    table = np.zeros((length, d_model), dtype=np.float32)
    table[:, 0::2] = np.sin(position * frequency)
    table[:, 1::2] = np.cos(position * frequency)
    return table


perm = rng.permutation(seq)
positions = sinusoidal_positions(seq, d_model)  # (T, d_model)
plain, plain_permuted = mha_call(mha, x), mha_call(mha, x[:, perm])
np.testing.assert_allclose(plain_permuted, plain[:, perm], rtol=1e-5, atol=1e-5)
# The encoding is added BEFORE attention, to the inputs in their new order.
xp, xp_permuted = x + positions, x[:, perm] + positions
gap = float(jnp.abs(mha_call(mha, xp_permuted) - mha_call(mha, xp)[:, perm]).max())
print(f"permutation {perm.tolist()}: without positions, outputs permute exactly")
print(
    f"with positions added first, largest difference from the permuted outputs: {gap:.3f}"
)
assert gap > 1e-3

fig, ax = plt.subplots(figsize=(7, 2.8))
image = ax.imshow(sinusoidal_positions(64, 64).T, aspect="auto", cmap="RdBu")
ax.set(title="Sinusoidal positional encoding", xlabel="position t", ylabel="feature")
fig.colorbar(image, ax=ax, label="value")
plt.show()

# %% [markdown] tags=["shared"]
# ### A pre-norm Transformer block, trained to sort
#
# A **Transformer block** alternates two sub-layers, each wrapped in a residual connection:
# multi-head self-attention (the tokens exchange information) and a two-layer MLP applied to
# every position on its own (each token processes what it gathered). The original Transformer
# normalised *after* each residual sum; most models today use the **pre-norm** arrangement,
# which trains more stably without a long learning-rate warm-up {cite}`xiong2020layer`:
#
# $$
# \begin{aligned}
# x &\leftarrow x + \operatorname{MHA}(\operatorname{LN}(x)), \\
# x &\leftarrow x + \operatorname{MLP}(\operatorname{LN}(x)).
# \end{aligned}
# $$
#
# The task: **sort** a sequence of digits. The token at output position $t$ is the $t$-th
# smallest input, which can be anywhere in the sequence, so each output must compare the whole
# input, what attention does. `helpers.data.sequences.sort_batch` draws random sequences and
# their sorted versions as NumPy arrays, the same generator for both frameworks. The model embeds
# the tokens, adds the positional encoding, applies the blocks (no causal mask: the whole input is
# known), normalises the result with a final LayerNorm (a pre-norm block leaves its output
# unnormalised) and predicts one token per position. A sequence counts as right only if
# **all** its positions are right. Training uses Adam {cite}`kingma2015adam` with its step size
# decayed to 0 along a cosine over the run (large steps first, small ones to settle), on a fresh
# random batch at every step, so the model never sees the same batch twice.

# %%
from helpers.data.sequences import sort_batch

seq_sizes = H.sizes("sequences")
data_rng = np.random.default_rng(0)
example_in, example_out = sort_batch(data_rng, 2, seq_sizes.length, seq_sizes.vocab)
print(f"input:  {example_in[0]}\ntarget: {example_out[0]}\n(B, T) = {example_in.shape}")

# %% [markdown]
# The embedding is initialised like PyTorch's `nn.Embedding`, with unit variance (Flax's default
# is smaller), so that token and position enter the first block at comparable scales. As
# everywhere in Flax, the parameters are drawn when the module is built, from the explicit keys
# in `rngs`.


# %%
class Block(nnx.Module):
    """Pre-norm Transformer block: x + MHA(LN(x)), then x + MLP(LN(x)); (B, T, d) -> (B, T, d)."""

    def __init__(self, d_model, heads, *, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(d_model, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(
            num_heads=heads, in_features=d_model, decode=False, rngs=rngs
        )
        self.norm2 = nnx.LayerNorm(d_model, rngs=rngs)
        self.mlp = nnx.Sequential(
            nnx.Linear(d_model, 4 * d_model, rngs=rngs),
            nnx.gelu,
            nnx.Linear(4 * d_model, d_model, rngs=rngs),
        )

    def __call__(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Sorter(nnx.Module):
    """Tokens (B, T) int -> logits (B, T, vocab)."""

    def __init__(self, vocab, length, d_model, heads, layers, *, rngs: nnx.Rngs):
        self.embed = nnx.Embed(
            vocab, d_model, embedding_init=nnx.initializers.normal(1.0), rngs=rngs
        )
        # A plain array attribute: part of the module, not an nnx.Param, so not trained.
        self.positions = jnp.asarray(sinusoidal_positions(length, d_model))  # (T, d)
        self.blocks = nnx.List(
            [Block(d_model, heads, rngs=rngs) for _ in range(layers)]
        )
        self.norm = nnx.LayerNorm(d_model, rngs=rngs)
        self.head = nnx.Linear(d_model, vocab, rngs=rngs)

    def __call__(self, tokens):
        x = self.embed(tokens) + self.positions  # (B, T, d): positions BEFORE attention
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))  # (B, T, vocab)


sorter = Sorter(
    seq_sizes.vocab,
    seq_sizes.length,
    seq_sizes.d_model,
    seq_sizes.heads,
    seq_sizes.layers,
    rngs=nnx.Rngs(0),
)
print(f"{H.count_params(sorter):,} parameters")

# %%
# The step size as a function of the step number: Optax schedules are plain functions.
schedule = optax.cosine_decay_schedule(seq_sizes.learning_rate, seq_sizes.steps)
optimizer = nnx.Optimizer(sorter, optax.adam(schedule), wrt=nnx.Param)


@nnx.jit
def sort_step(model, optimizer, inputs, targets):
    def loss_fn(model):
        logits = model(inputs)  # (B, T, vocab)
        return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


losses = []
start = time.perf_counter()
for _ in tqdm(range(seq_sizes.steps), desc="sorting"):
    inputs, targets = sort_batch(
        data_rng, seq_sizes.batch_size, seq_sizes.length, seq_sizes.vocab
    )
    losses.append(sort_step(sorter, optimizer, inputs, targets))
losses = np.asarray(jax.device_get(losses))  # read back once, at the end
train_seconds = time.perf_counter() - start
print(
    f"{seq_sizes.steps} steps of {seq_sizes.batch_size} sequences in {train_seconds:.1f} s "
    "(compilation included)"
)

# %%
# Fresh sequences, from another seed than training.
test_in, test_out = sort_batch(
    np.random.default_rng(1), 4_096, seq_sizes.length, seq_sizes.vocab
)
predicted = np.asarray(nnx.jit(lambda m, t: m(t).argmax(-1))(sorter, test_in))
token_accuracy = (predicted == test_out).mean()
sequence_accuracy = (predicted == test_out).all(axis=1).mean()
print(
    f"token accuracy {token_accuracy:.2%}; sequence accuracy {sequence_accuracy:.2%} "
    f"on {len(test_in):,} new sequences (chance per token: {1 / seq_sizes.vocab:.1%})"
)
print(
    "input:    ", test_in[0], "\npredicted:", predicted[0], "\ntarget:   ", test_out[0]
)
# Even the shortest (smoke) run must have learned something; the longer ones must sort.
assert token_accuracy > 2 / seq_sizes.vocab
if H.current_scale() != "smoke":
    assert sequence_accuracy >= 0.99, sequence_accuracy

fig, ax = plt.subplots(figsize=(6, 3.6))
ax.semilogy(losses, alpha=0.4, label="per step")
window = max(1, len(losses) // 50)
ax.semilogy(
    np.arange(window - 1, len(losses)),
    np.convolve(losses, np.ones(window) / window, "valid"),
    label=f"mean of {window} steps",
)
ax.set(
    xlabel="training step",
    ylabel="cross-entropy (nats per token)",
    title=f"Transformer sorting, JAX ({H.current_scale()} scale)",
)
ax.legend()
plt.show()

# %% [markdown] tags=["shared"]
# The sequence accuracy printed above is the fraction of fresh test sequences sorted without a
# single mistake. At `cpu` scale and above the cell asserts at least 99 %; the `smoke` run (CI)
# only checks that the model learned something. Without its attention layers the model could not
# do this at all: its MLPs see one position at a time, and the token each output position needs
# depends on every input token.

# %% [markdown] tags=["shared"]
# ## 2.7 Summary
#
# | section | built by hand | checked against |
# |---|---|---|
# | 2.1 layers | a layer as neuron-by-neuron dot products and as $XW + b$; a network drawn from its weights | the framework's linear layer (`(out, in)` in PyTorch, `(in, out)` in Flax) |
# | 2.2 activations | sigmoid, tanh, ReLU, GELU, softmax and their derivatives; the max-shifted log-softmax | autodiff derivatives vs the formulas; the library's log-softmax, where the naive one overflows |
# | 2.3 backprop | forward and backward of a 784-H-10 ReLU MLP with softmax cross-entropy; SGD training on MNIST | autodiff (float64) and finite differences; test accuracy printed above |
# | 2.4 convolution | convolution and pooling as loops, then vectorised; a small CNN | the framework's convolution, with its layout (NCHW or NHWC) |
# | 2.5 recurrence | an RNN cell and an LSTM cell with its three gates and candidate, unrolled over time | the library's LSTM with the same weights; gradient norms over time steps |
# | 2.6 attention | scaled dot-product attention with padding and causal masks, multi-head attention, positional encoding, a pre-norm Transformer block | the library's attention with the same weights; a synthetic task the block learns |

# %% [markdown] tags=["notebook-only"]
# Next: [the PyTorch half of this chapter](in-pytorch.ipynb), then the
# [lab](../../labs/02-basics/in-jax.ipynb), whose self-checks tell you when each exercise is right.
# Works cited are listed in the [bibliography](../../bibliography.md).
