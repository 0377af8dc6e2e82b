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
#
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
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx
from jax.scipy.stats import norm
from tqdm import tqdm

from helpers import jax as H

sizes = H.sizes("backprop")  # every size this notebook uses comes from helpers/scale.py
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
# $$ Z = X W + b, \qquad X: (B, n),\; W: (n, m),\; b: (m,) \text{ broadcast over rows},\; Z: (B, m), $$
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
# training (section 2.3) is what gives it structure.


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
    ax.set(xlabel="layer", ylabel="neuron (centred index)", title=title)
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
# is again $XW + b$. The activation is what lets depth add expressive power. The usual ones:
#
# | name | $\varphi(x)$ | $\varphi'(x)$ |
# |---|---|---|
# | sigmoid | $\sigma(x) = 1/(1 + e^{-x})$ | $\sigma(x)\,(1 - \sigma(x))$ |
# | tanh | $\tanh x$ | $1 - \tanh^2 x$ |
# | ReLU {cite}`nair2010rectified` | $\max(0, x)$ | $\mathbb{1}[x > 0]$ |
# | GELU {cite}`hendrycks2016gaussian` | $x\,\Phi(x)$, $\Phi$ the standard normal CDF | $\Phi(x) + x\,\phi(x)$ |
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
fig, axes = plt.subplots(1, 5, figsize=(15, 3.2), sharex=True)
for ax, name in zip(axes, activations, strict=True):
    ax.plot(grid, values[name], label="φ(x)")
    ax.plot(grid, derivs[name], "--", label="φ'(x), autodiff")
    ax.set(title=name, xlabel="x (pre-activation)", ylabel="value")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
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
# $$ \log \operatorname{softmax}(z)_k = (z_k - c) - \log \sum_j e^{z_j - c}, \qquad c = \max_j z_j . $$


# %%
def softmax_naive(z: jax.Array) -> jax.Array:  # (..., K)
    e = jnp.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax_stable(z: jax.Array) -> jax.Array:  # (..., K)
    shifted = z - z.max(axis=-1, keepdims=True)  # largest entry is now 0
    return shifted - jnp.log(jnp.exp(shifted).sum(axis=-1, keepdims=True))


print(f"float32 exp overflows above {math.log(np.finfo(np.float32).max):.2f}")
logits = jnp.array(
    [[1.0, 2.0, 3.0], [1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]]
)  # (3 examples, K=3), float32
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
# The network of this section is the one chapter 1 trained, with one hidden layer:
# $784 \to H \to 10$, with a ReLU between the layers, $H$ from this scale's sizes. For a batch
# $X \in \mathbb{R}^{B \times 784}$ with labels $y \in \{0, \dots, 9\}^B$ the **forward pass**
# is
#
# $$
# Z_1 = X W_1 + b_1, \quad A_1 = \operatorname{ReLU}(Z_1), \quad Z_2 = A_1 W_2 + b_2, \quad
# P = \operatorname{softmax}(Z_2), \quad L = -\frac{1}{B} \sum_{i=1}^{B} \log P_{i, y_i},
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
# zero.


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
    for name, g in grads.items():
        g, ref = np.asarray(g), np.asarray(auto[name])  # float64 NumPy copies
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
    for name, g in grads.items():
        pick, k = jax.random.split(pick)
        g = np.asarray(
            g
        )  # NumPy for the bookkeeping: picking and perturbing coordinates
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
print(f"train {x_train.shape}, test {x_test.shape}; sizes: {sizes}")


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
steps_per_epoch = (
    len(x_train) // sizes.batch_size
)  # the last incomplete batch is dropped
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
print(
    f"At {H.current_scale()} scale, the hand-written network reaches {final:.2%} test "
    f"accuracy after {sizes.epochs} epoch(s) of plain SGD on {len(x_train):,} images "
    f"({train_seconds:.1f} s of training on {device.platform}, compilation included; "
    "chance is 10%)."
)
# smoke: a few dozen steps on a subset, still far above chance; cpu/gpu: the target.
assert final > (0.5 if H.current_scale() == "smoke" else 0.97), final

# %% [markdown] tags=["shared"]
# The loss falls from about $\ln 10$, the value of uniform guessing, and the test accuracy
# above is that of a network whose every gradient was written by hand. Both frameworks compute
# exactly these products inside their autodiff; from here on we let them.

# %% [markdown] tags=["shared"]
# ## 2.7 Summary
#
# | section | built by hand | checked against |
# |---|---|---|
# | 2.1 layers | a layer as neuron-by-neuron dot products and as $XW + b$; a network drawn from its weights | the framework's linear layer (`(out, in)` in PyTorch, `(in, out)` in Flax) |
# | 2.2 activations | sigmoid, tanh, ReLU, GELU, softmax and their derivatives; the max-shifted log-softmax | autodiff derivatives vs the formulas; the library's log-softmax, where the naive one overflows |
# | 2.3 backprop | forward and backward of a 784-H-10 ReLU MLP with softmax cross-entropy; SGD training on MNIST | autodiff (float64) and finite differences; test accuracy printed above |
# | 2.4 convolution | convolution and pooling as loops, then vectorised; a small CNN | the framework's convolution, with its layout (NCHW or NHWC) |
# | 2.5 recurrence | an RNN cell and an LSTM cell with its four gates, unrolled over time | the library's LSTM with the same weights; gradient norms over time steps |
# | 2.6 attention | scaled dot-product attention with padding and causal masks, multi-head attention, positional encoding, a pre-norm Transformer block | the library's attention with the same weights; a synthetic task the block learns |

# %% [markdown]
# Next: [the PyTorch half of this chapter](in-pytorch.ipynb), then the
# [lab](../../labs/02-basics/in-jax.ipynb), whose self-checks tell you when each exercise
# is right. Works cited are listed in the [bibliography](../../bibliography.md).
