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
# # 2. Deep-learning basics: PyTorch
#
# This is the PyTorch half of chapter 2; the [JAX half](in-jax.ipynb) tells the same story in the
# same order. Chapter 1 trained a network with the framework doing the work; this chapter opens
# the boxes. By the end you will have written, and checked against PyTorch's own versions,
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
import textwrap
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from matplotlib.ticker import MaxNLocator
from tqdm import tqdm

from helpers import torch as H

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
# Explicit stream: this page's draws do not interleave.
gen = torch.Generator().manual_seed(0)
X = torch.randn(4, 3, generator=gen)  # (B=4, n=3) a batch of 4 inputs
W = torch.randn(3, 2, generator=gen)  # (n=3, m=2) one column per neuron
b = torch.randn(2, generator=gen)  # (m=2,)

# Neuron by neuron, example by example: two nested loops of dot products.
Z_loops = torch.empty(4, 2)
for row in range(4):
    for j in range(2):
        Z_loops[row, j] = X[row] @ W[:, j] + b[j]
Z = X @ W + b  # (4, 3) @ (3, 2) + (2,) -> (4, 2)
print("Z = XW + b, shape", tuple(Z.shape))
print(Z)
np.testing.assert_allclose(Z_loops, Z, rtol=1e-6)

# %% [markdown]
# PyTorch's `nn.Linear(n, m)` stores its weight as `(out, in)` = `(m, n)`, the transpose of the
# $W$ above, and computes $x W^\top + b$; Flax stores the `(in, out)` matrix itself. Copy our
# $W$ in (transposed) and both agree:

# %%
layer = nn.Linear(3, 2)
# Writing parameters is not part of any computation to differentiate.
with torch.no_grad():
    layer.weight.copy_(W.T)  # (2, 3) = (out, in)
    layer.bias.copy_(b)
print("nn.Linear weight", tuple(layer.weight.shape), "| bias", tuple(layer.bias.shape))
np.testing.assert_allclose(layer(X).detach(), Z, rtol=1e-6)
print("nn.Linear(X) == X @ W + b")

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


torch.manual_seed(0)
tiny = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
linears = [tiny[0], tiny[2]]
# Transposed to (in, out), the layout of the formula above.
tiny_weights = [m.weight.detach().T.numpy() for m in linears]
tiny_biases = [m.bias.detach().numpy() for m in linears]
print({f"layer {i}": tuple(w.shape) for i, w in enumerate(tiny_weights)})
print(f"{H.count_params(tiny)} parameters = 3*4 + 4 + 4*2 + 2")
fig = draw_network(
    tiny_weights, tiny_biases, "A 3-4-2 network, PyTorch's initial weights"
)

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
# `torch.func.grad(f)` differentiates a function of one scalar tensor; `torch.func.vmap` maps
# it over the 401 points of the grid in one call. PyTorch's `F.gelu` is the exact
# $x\,\Phi(x)$ by default (`approximate="tanh"` selects the tanh approximation); JAX's
# `jax.nn.gelu` defaults to the approximation.

# %%
grid = torch.linspace(-6, 6, 401, dtype=torch.float64)  # (401,)
activations = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "ReLU": F.relu,
    "GELU": F.gelu,  # exact: x * Phi(x)
    "softmax(x, 0)[0]": lambda x: torch.softmax(
        torch.stack([x, torch.zeros_like(x)]), 0
    )[0],
}
values = {name: fn(grid) for name, fn in activations.items()}
derivs = {
    name: torch.func.vmap(torch.func.grad(fn))(grid) for name, fn in activations.items()
}

s, t = torch.sigmoid(grid), torch.tanh(grid)
formulas = {
    "sigmoid": s * (1 - s),
    "tanh": 1 - t**2,
    "ReLU": (grid > 0).double(),
    # Phi(x) + x phi(x), with ndtr the standard normal CDF
    "GELU": torch.special.ndtr(grid)
    + grid * torch.exp(-(grid**2) / 2) / math.sqrt(2 * math.pi),
    "softmax(x, 0)[0]": s * (1 - s),
}
for name in activations:
    np.testing.assert_allclose(derivs[name], formulas[name], atol=1e-12)
np.testing.assert_allclose(values["softmax(x, 0)[0]"], s, atol=1e-15)
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
fig.suptitle("Activations and their derivatives (PyTorch)")
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
points = torch.tensor([-6.0, -3.0, -1.0, 0.0, 1.0, 3.0, 6.0], dtype=torch.float64)
print("derivative at x = " + "".join(f"{p:>10.0f}" for p in points))
for name, fn in activations.items():
    at_points = torch.func.vmap(torch.func.grad(fn))(points)  # (7,)
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
def softmax_naive(z: torch.Tensor) -> torch.Tensor:  # (..., K)
    e = torch.exp(z)
    return e / e.sum(dim=-1, keepdim=True)


def log_softmax_stable(z: torch.Tensor) -> torch.Tensor:  # (..., K)
    shifted = z - z.max(dim=-1, keepdim=True).values  # largest entry is now 0
    return shifted - torch.log(torch.exp(shifted).sum(dim=-1, keepdim=True))


print(f"float32 exp overflows above {math.log(torch.finfo(torch.float32).max):.2f}")
# (3 examples, K=3), float32.
logits = torch.tensor(
    [[1.0, 2.0, 3.0], [1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]]
)
print("naive softmax:\n", softmax_naive(logits))
print("naive log-softmax:\n", torch.log(softmax_naive(logits)))
print("stable log-softmax:\n", log_softmax_stable(logits))
np.testing.assert_allclose(log_softmax_stable(logits), torch.log_softmax(logits, -1))
print("stable log-softmax == torch.log_softmax")

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
# Below, the two passes as plain functions of tensors that carry no `requires_grad`, so
# autograd records nothing: every gradient is computed by the formulas above. The parameters
# use the `(in, out)` layout of the formulas. The first weight matrix is drawn with variance
# $2/784$ and the second with $1/H$, so that the signals neither grow nor shrink from layer to
# layer (the factor 2 makes up for ReLU zeroing half its inputs)
# {cite}`glorot2010understanding,he2015delving`; the biases start at zero. (He et al. put the
# factor 2 on the layer that reads the ReLU's outputs, here $W_2$. Either placement keeps the
# logits at the inputs' scale, the same mean square: the signal passes the ReLU, which halves
# its mean square, once.)


# %%
def init_params(hidden: int, generator: torch.Generator) -> dict:
    """W1 (784, hidden), b1 (hidden,), W2 (hidden, 10), b2 (10,), all float32."""
    return {
        "W1": torch.randn(784, hidden, generator=generator) * math.sqrt(2 / 784),
        "b1": torch.zeros(hidden),
        "W2": torch.randn(hidden, 10, generator=generator) * math.sqrt(1 / hidden),
        "b2": torch.zeros(10),
    }


def forward(params: dict, x: torch.Tensor, y: torch.Tensor):
    """Mean cross-entropy of the batch x (B, 784), labels y (B,) int; returns (loss, cache)."""
    z1 = x @ params["W1"] + params["b1"]  # (B, H)
    a1 = torch.relu(z1)  # (B, H)
    z2 = a1 @ params["W2"] + params["b2"]  # (B, 10) logits
    log_p = log_softmax_stable(z2)  # (B, 10)
    loss = -log_p[torch.arange(len(y)), y].mean()  # picks log P[i, y_i] in each row
    return loss, (x, z1, a1, log_p.exp())


def backward(params: dict, cache: tuple, y: torch.Tensor) -> dict:
    """Gradients of the mean loss w.r.t. every parameter, from the forward pass's cache."""
    x, z1, a1, p = cache
    g_z2 = p.clone()  # (B, 10)
    g_z2[torch.arange(len(y)), y] -= 1  # P - Y
    g_z2 /= len(y)  # the mean over the batch
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
# that rounding does not hide a mistake. The reference is autograd: `torch.func.grad`
# differentiates the same `forward` (its loss output), which is written with ordinary tensor
# operations. The loss itself is checked against PyTorch's `F.cross_entropy`.

# %%
x_train_u8, y_train = H.load_mnist("train", limit=sizes.train_examples)
x_test_u8, y_test = H.load_mnist("test", limit=sizes.test_examples)
# (32, 784) float64
xb = torch.from_numpy(H.images_to_vectors(x_train_u8[:32])).double()
yb = torch.from_numpy(y_train[:32]).long()  # (32,)
params32 = init_params(sizes.hidden, torch.Generator().manual_seed(1))
# The same draws, in float64.
params64 = {name: p.double() for name, p in params32.items()}

loss, cache = forward(params64, xb, yb)
grads = backward(params64, cache, yb)
logits = cache[2] @ params64["W2"] + params64["b2"]  # (32, 10)
np.testing.assert_allclose(loss, F.cross_entropy(logits, yb), rtol=1e-12)
print(f"loss {loss:.6f} == F.cross_entropy; ln 10 = {math.log(10):.6f}")

auto = torch.func.grad(lambda p: forward(p, xb, yb)[0])(params64)
for name, g in grads.items():
    rel = ((g - auto[name]).norm() / auto[name].norm()).item()
    print(f"{name}: shape {tuple(g.shape)}, relative error vs autograd {rel:.1e}")
    assert rel <= 1e-6, name

# %% [markdown]
# Autograd could share a mistake with our `forward` (it differentiates the same code), so the
# second check uses the loss values alone: a central finite difference
# $(L(\theta + h) - L(\theta - h)) / 2h$ on a few coordinates of each parameter, the one with
# the largest gradient and two random non-zero ones (chapter 1 measured the error of this
# estimate).

# %%
h = 1e-6
pick = torch.Generator().manual_seed(2)
print(f"{'coordinate':>14} {'by hand':>12} {'finite diff.':>12} {'rel. error':>10}")
for name, g in grads.items():
    nonzero = g.view(-1).nonzero().view(-1)  # (e.g. pixels always 0 have zero gradient)
    flat = [int(g.abs().argmax())]
    flat += nonzero[torch.randint(len(nonzero), (2,), generator=pick)].tolist()
    for i in flat:
        plus = {k: v.clone() for k, v in params64.items()}
        minus = {k: v.clone() for k, v in params64.items()}
        plus[name].view(-1)[i] += h
        minus[name].view(-1)[i] -= h
        fd = (forward(plus, xb, yb)[0] - forward(minus, xb, yb)[0]) / (2 * h)
        exact = g.view(-1)[i]
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
z = torch.tensor([-2.0, -0.5, 0.5, 2.0], dtype=torch.float64)
a_relu, a_sig = torch.relu(z), torch.sigmoid(z)
print("z                    ", z.tolist())
print("ReLU: (1 - a)        ", (1 - a_relu).tolist())
print("      1[z > 0]       ", (z > 0).double().tolist())
print("sigmoid: (1 - a)     ", [round(v, 4) for v in (1 - a_sig).tolist()])
print("         a (1 - a)   ", [round(v, 4) for v in (a_sig * (1 - a_sig)).tolist()])

x, z1, a1, p = cache
g_z2 = p.clone()
g_z2[torch.arange(len(yb)), yb] -= 1
g_z2 /= len(yb)
g_z1_wrong = (g_z2 @ params64["W2"].T) * (1 - a1)  # the pseudocode's factor
g_w1_wrong = x.T @ g_z1_wrong
rel = ((g_w1_wrong - auto["W1"]).norm() / auto["W1"].norm()).item()
print(f"W1 gradient with (1 - a): relative error vs autograd {rel:.2f}")

# %% [markdown] tags=["shared"]
# **Training the hand-written network.** The same two functions, in float32 now, trained on
# MNIST with plain mini-batch **stochastic gradient descent**: after each batch, every
# parameter moves against its gradient, $\theta \leftarrow \theta - \eta\, G_\theta$, with the
# learning rate $\eta$ from this scale's sizes. No autodiff and no optimiser object: the update
# is one line per parameter. Each epoch visits the training set in a new random order, and ends
# with the loss and accuracy on the test set.

# %%
x_train = torch.from_numpy(H.images_to_vectors(x_train_u8)).to(device)  # (N, 784)
y_train_t = torch.from_numpy(y_train).long().to(device)  # (N,)
x_test = torch.from_numpy(H.images_to_vectors(x_test_u8)).to(device)
y_test_t = torch.from_numpy(y_test).long().to(device)
print(f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}")
print(textwrap.fill(f"sizes: {sizes}", 88, subsequent_indent="    "))


def sgd_step(params: dict, x: torch.Tensor, y: torch.Tensor, lr: float):
    """One SGD step in place; returns the batch's loss and correct count before it."""
    loss, cache = forward(params, x, y)
    grads = backward(params, cache, y)
    for name in params:
        params[name] -= lr * grads[name]  # in place: no autograd, nothing recorded
    correct = (cache[3].argmax(1) == y).sum()
    return loss, correct


def evaluate(params: dict, x: torch.Tensor, y: torch.Tensor, batch=2048):
    """Mean loss and accuracy over (x, y), batch by batch."""
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch):
        loss, cache = forward(params, x[i : i + batch], y[i : i + batch])
        total_loss += loss.item() * len(cache[0])
        correct += (cache[3].argmax(1) == y[i : i + batch]).sum().item()
    return total_loss / len(x), correct / len(x)


gen = torch.Generator().manual_seed(0)  # one stream for initialisation and shuffling
params = {k: v.to(device) for k, v in init_params(sizes.hidden, gen).items()}
# The last incomplete batch is dropped.
steps_per_epoch = len(x_train) // sizes.batch_size
history = H.History()
start = time.perf_counter()
bar = tqdm(total=sizes.epochs * steps_per_epoch, desc="train", unit="step")
for epoch in range(1, sizes.epochs + 1):
    t0 = time.perf_counter()
    # A new shuffle each epoch.
    order = torch.randperm(len(x_train), generator=gen).to(device)
    losses, correct = [], 0
    for step in range(steps_per_epoch):
        idx = order[step * sizes.batch_size : (step + 1) * sizes.batch_size]  # (B,)
        loss, hits = sgd_step(params, x_train[idx], y_train_t[idx], sizes.learning_rate)
        losses.append(loss)
        correct += hits
        bar.update()
    test_loss, test_accuracy = evaluate(params, x_test, y_test_t)
    history.end_epoch(
        epoch,
        torch.stack(losses).tolist(),  # one device -> host copy per epoch
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
    title=f"Hand-written backprop + SGD on MNIST, PyTorch ({H.current_scale()} scale)",
)

# %%
final = history.last("test_accuracy")
epochs = f"{sizes.epochs} epoch" + ("s" if sizes.epochs > 1 else "")
print(
    f"At {H.current_scale()} scale, the hand-written network reaches {final:.2%} test "
    f"accuracy\nafter {epochs} of plain SGD on {len(x_train):,} images "
    f"({train_seconds:.2f} s of training on {device.type}; chance is 10%)."
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
# PyTorch stores a batch of images as `(N, C, H, W)`, "NCHW": batch, channels, height, width,
# and a convolution's weights as `(C_out, C_in, k, k)`.


# %%
def conv2d_loops(x, w, b, stride=1, padding=0):
    """x (N, C, H, W), w (O, C, k, k), b (O,) -> (N, O, H_out, W_out): the formula, one output
    pixel at a time."""
    x = F.pad(x, (padding, padding, padding, padding))  # zeros around H and W
    n_images, _, height, width = x.shape
    c_out, _, k, _ = w.shape
    h_out, w_out = (height - k) // stride + 1, (width - k) // stride + 1
    y = torch.zeros(n_images, c_out, h_out, w_out, dtype=x.dtype)
    for n in range(n_images):
        for o in range(c_out):
            for i in range(h_out):
                for j in range(w_out):
                    patch = x[
                        n, :, i * stride : i * stride + k, j * stride : j * stride + k
                    ]
                    y[n, o, i, j] = (w[o] * patch).sum() + b[o]  # sum over c, u, v
    return y


torch.manual_seed(0)
x_small = torch.randn(1, 2, 5, 5, dtype=torch.float64)  # (N, C, H, W)
w_small = torch.randn(3, 2, 3, 3, dtype=torch.float64)  # (C_out, C_in, k, k)
b_small = torch.randn(3, dtype=torch.float64)
for stride, padding in [(1, 0), (1, 1), (2, 1)]:
    ours = conv2d_loops(x_small, w_small, b_small, stride, padding)
    theirs = F.conv2d(x_small, w_small, b_small, stride=stride, padding=padding)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, atol=1e-12)
    print(
        f"stride {stride}, padding {padding}: output {tuple(ours.shape)} equals F.conv2d"
    )

# %% [markdown] tags=["shared"]
# Four nested Python loops are far too slow for real images. The vectorised form first gathers
# every $k \times k$ patch the kernel visits into one array, indexed by image, output position
# $(i, j)$ and the patch's channel and pixel $(c, u, v)$ (the "im2col" idea), then does all the
# weighted sums at once as a single `einsum`: multiply each patch by each output channel's kernel
# and sum over $c, u, v$.

# %% [markdown]
# `Tensor.unfold(dim, size, step)` gathers windows along one dimension; applied to H and then W
# it returns the patches as a *view* of the padded input (strides into the same memory, no
# copy) until `einsum` reads them.


# %%
def conv2d(x, w, b, stride=1, padding=0):
    """x (N, C, H, W), w (O, C, k, k), b (O,) -> (N, O, H_out, W_out), vectorised."""
    k = w.shape[-1]
    x = F.pad(x, (padding, padding, padding, padding))
    patches = x.unfold(2, k, stride).unfold(3, k, stride)  # (N, C, H_out, W_out, k, k)
    return torch.einsum("ncijuv,ocuv->noij", patches, w) + b[:, None, None]


def max_pool2d(x, k, stride=None):
    """x (N, C, H, W) -> (N, C, H_out, W_out): the largest value of each k x k window."""
    stride = k if stride is None else stride
    patches = x.unfold(2, k, stride).unfold(3, k, stride)  # (N, C, H_out, W_out, k, k)
    return patches.amax(dim=(-2, -1))


x_batch = torch.randn(8, 3, 28, 28, dtype=torch.float64)  # (N, C, H, W)
w_batch = torch.randn(16, 3, 5, 5, dtype=torch.float64)  # (C_out, C_in, k, k)
b_batch = torch.randn(16, dtype=torch.float64)
for stride, padding in [(1, 2), (2, 1)]:
    ours = conv2d(x_batch, w_batch, b_batch, stride, padding)
    theirs = F.conv2d(x_batch, w_batch, b_batch, stride=stride, padding=padding)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-10)
    print(
        f"conv2d, stride {stride}, padding {padding}: {tuple(ours.shape)} equals F.conv2d"
    )
for k, stride in [(2, 2), (3, 2)]:
    ours = max_pool2d(x_batch, k, stride)
    np.testing.assert_array_equal(
        ours.numpy(), F.max_pool2d(x_batch, k, stride).numpy()
    )
    print(
        f"max_pool2d, window {k}, stride {stride}: {tuple(ours.shape)} equals F.max_pool2d"
    )

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
    """Width of the input region that one central output pixel depends on, found by autograd."""
    x = torch.ones(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    y = x
    for kind, k, s in layers:
        ones = torch.ones(1, 1, k, k, dtype=torch.float64)
        y = F.conv2d(y, ones, stride=s) if kind == "conv" else F.avg_pool2d(y, k, s)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(dim=1)).flatten()
    return int(rows.max() - rows.min() + 1)


measured = field_from_gradient(cnn_layers)
print(f"receptive field from the gradient: {measured} pixels; formula: {fields[-1][0]}")
assert measured == fields[-1][0]

# %% [markdown] tags=["shared"]
# A small CNN for 28 x 28 digits: three convolutions (3 x 3, padded so they keep the size), each
# followed by a ReLU, with 2 x 2 max pooling after the first two, then one dense layer over the
# flattened feature maps. Its last convolution sees the receptive field computed above.


# %%
class SmallCNN(nn.Module):
    def __init__(self, channels=(8, 16, 32), classes=10):
        super().__init__()
        c1, c2, c3 = channels
        self.layers = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c3 * 7 * 7, classes),
        )

    def forward(self, x):  # (N, 1, 28, 28)
        return self.layers(x)  # (N, classes) logits


torch.manual_seed(0)
cnn = SmallCNN()
h = torch.zeros(2, 1, 28, 28)  # (N, C, H, W)
print(f"{'input':10} {tuple(h.shape)}")
for layer in cnn.layers:
    h = layer(h)
    n_params = H.count_params(layer)
    print(f"{type(layer).__name__:10} {tuple(h.shape)!s:18} {n_params:6,} parameters")
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
# `nn.RNN` stores $W_{ih}$ as `weight_ih_l0` `(H, D)`, $W_{hh}$ as `weight_hh_l0` `(H, H)` and
# two biases (`_l0` is the first layer; a stacked RNN has `_l1`, ...). The hand-written cell runs
# in a Python loop over time and is asserted equal to `nn.RNN` with the same weights.


# %%
def rnn_cell(x_t, h, w_ih, w_hh, b_ih, b_hh):
    """x_t (B, D), h (B, H) -> next h (B, H)."""
    return torch.tanh(x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh)


torch.manual_seed(0)
batch, steps, d_in, d_hidden = 4, 7, 5, 6
x_seq = torch.randn(batch, steps, d_in, dtype=torch.float64)  # (B, T, D)
rnn = nn.RNN(d_in, d_hidden, batch_first=True, dtype=torch.float64)
h = torch.zeros(batch, d_hidden, dtype=torch.float64)  # (B, H)
outputs = []
for t in range(steps):
    h = rnn_cell(
        x_seq[:, t],
        h,
        rnn.weight_ih_l0,
        rnn.weight_hh_l0,
        rnn.bias_ih_l0,
        rnn.bias_hh_l0,
    )
    outputs.append(h)
ours = torch.stack(outputs, dim=1)  # (B, T, H)
theirs, h_last = rnn(x_seq)  # (B, T, H), (layers, B, H)
np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-12)
np.testing.assert_allclose(h.detach().numpy(), h_last[0].detach().numpy(), rtol=1e-12)
print(f"hand-written RNN equals nn.RNN: outputs {tuple(ours.shape)}")

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
# PyTorch stacks the four blocks (its documentation calls them all gates) in the order
# **i, f, g, o**: `weight_ih_l0` is `(4H, D)`, `weight_hh_l0` is `(4H, H)`, and there are two
# biases `bias_ih_l0`, `bias_hh_l0` of `(4H,)` (two where one would do, as in NVIDIA's cuDNN
# LSTM). `nn.LSTMCell` is one step with the same layout; `nn.LSTM` runs the whole loop over
# time inside one call, in C++ (and with cuDNN on an NVIDIA GPU), which is much faster than the
# Python loop below.


# %%
def lstm_cell(x_t, h, c, w_ih, w_hh, b_ih, b_hh):
    """x_t (B, D), h and c (B, H) -> next (h, c), each (B, H). PyTorch's layout."""
    gates = x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)  # each (B, H), in PyTorch's order
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    h = o * torch.tanh(c)
    return h, c


def lstm_loop(x, lstm_weights, h, c):
    """x (B, T, D), h and c (B, H) -> outputs (B, T, H) and the last (h, c)."""
    outputs = []
    for t in range(x.shape[1]):
        h, c = lstm_cell(x[:, t], h, c, *lstm_weights)
        outputs.append(h)
    return torch.stack(outputs, dim=1), (h, c)


lstm = nn.LSTM(d_in, d_hidden, batch_first=True, dtype=torch.float64)
weights = (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
print({name: tuple(p.shape) for name, p in lstm.named_parameters()})
h0 = torch.randn(batch, d_hidden, dtype=torch.float64)  # start from a non-zero state
c0 = torch.randn(batch, d_hidden, dtype=torch.float64)
ours, (h_ours, c_ours) = lstm_loop(x_seq, weights, h0, c0)
theirs, (h_n, c_n) = lstm(x_seq, (h0[None], c0[None]))  # states are (layers, B, H)
np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-12)
np.testing.assert_allclose(c_ours.detach().numpy(), c_n[0].detach().numpy(), rtol=1e-12)

cell = nn.LSTMCell(d_in, d_hidden, dtype=torch.float64)
with torch.no_grad():
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(cell, name).copy_(getattr(lstm, name + "_l0"))
h_one, c_one = cell(x_seq[:, 0], (h0, c0))
np.testing.assert_allclose(
    h_one.detach().numpy(), ours[:, 0].detach().numpy(), rtol=1e-12
)
print(f"hand-written LSTM equals nn.LSTM and nn.LSTMCell: outputs {tuple(ours.shape)}")

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
# The hand-written cells run in a Python loop, so every $h_t$ is a tensor in autograd's graph,
# and `torch.autograd.grad(loss, states)` returns $\partial L / \partial h_t$ for all of them at
# once, each through every later step. The weights come from `nn.RNN` and `nn.LSTM` with their
# default initialisation, built with `dtype=torch.float64` and fed float64 inputs.


# %%
def hidden_gradient_norms(kind, x, forget_bias=0.0):
    """||dL/dh_t|| for t = 1..T, L = mean over the batch of ||h_T||^2; x (B, T, D) float64
    -> (T,)."""
    torch.manual_seed(1)  # the same initial weights for each LSTM curve
    cls = nn.RNN if kind == "rnn" else nn.LSTM
    module = cls(x.shape[-1], 64, batch_first=True, dtype=torch.float64)
    w = [module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0]
    if kind == "lstm":
        hidden = w[1].shape[1]
        w[2] = w[2] + forget_bias * (torch.arange(4 * hidden) // hidden == 1)  # f block
    h = c = torch.zeros(x.shape[0], 64, dtype=torch.float64)
    states = []
    for t in range(x.shape[1]):
        if kind == "rnn":
            h = rnn_cell(x[:, t], h, *w)
        else:
            h, c = lstm_cell(x[:, t], h, c, *w)
        states.append(h)
    loss = states[-1].pow(2).sum(dim=-1).mean()
    grads = torch.autograd.grad(loss, states)  # dL/dh_t through every later step
    return torch.stack([g.norm() for g in grads]).numpy()


rnn_steps = H.sizes("sequences").rnn_steps
torch.manual_seed(0)
x_long = torch.randn(32, rnn_steps, 16, dtype=torch.float64)  # (B, T, D)
norms = {
    "RNN": hidden_gradient_norms("rnn", x_long),
    "LSTM": hidden_gradient_norms("lstm", x_long),
    "LSTM, forget bias +1": hidden_gradient_norms("lstm", x_long, forget_bias=1.0),
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
    title=f"Gradient of the last step's loss, PyTorch (T = {rnn_steps})",
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
# In the code a mask is boolean, `True` where attending is allowed: the convention of
# `F.scaled_dot_product_attention` (and of Flax).


# %%
def attention(q, k, v, mask=None):
    """q (..., T, d), k (..., S, d), v (..., S, d_v), mask broadcastable to (..., T, S)
    with True = may attend -> (output (..., T, d_v), weights (..., T, S))."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # each row sums to 1 over the keys
    return weights @ v, weights


torch.manual_seed(0)
batch, seq, width = 2, 5, 8
q, k, v = torch.randn(3, batch, seq, width, dtype=torch.float64)  # each (B, T, d)
lengths = torch.tensor([5, 3])  # the second sequence has 2 padding tokens
padding_mask = (torch.arange(seq) < lengths[:, None])[:, None, :]  # (B, 1, S)
causal_mask = torch.ones(seq, seq, dtype=torch.bool).tril()  # (T, S)
for name, mask in [
    ("none", None),
    ("padding", padding_mask),
    ("causal", causal_mask),
    ("padding and causal", padding_mask & causal_mask),
]:
    ours, weights = attention(q, k, v, mask)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, atol=1e-12)
    print(f"mask {name!r:21}: equals F.scaled_dot_product_attention")

fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
panels = [("padding", padding_mask), ("causal", causal_mask)]
for ax, (name, mask) in zip(axes, panels, strict=True):
    _, weights = attention(q, k, v, mask)
    # the second sequence: 3 real tokens, 2 padding
    image = ax.imshow(weights[1].numpy(), vmin=0, vmax=1, cmap="viridis")
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
# `nn.MultiheadAttention` keeps $W^Q, W^K, W^V$ stacked in one `in_proj_weight` of shape
# `(3 d_model, d_model)` (applied as `x @ W.T`, like `nn.Linear`), with `in_proj_bias`, and $W^O$
# in `out_proj`. Its masks use the **opposite polarity**: in `attn_mask` and `key_padding_mask`,
# `True` means "may *not* attend" (padding). Passing a mask of one convention to the other is a
# silent bug, so the comparison below passes `~mask`.


# %%
def multi_head_attention(x, w_in, b_in, w_out, b_out, heads, mask=None):
    """x (B, T, d_model) -> (B, T, d_model), with nn.MultiheadAttention's weight layout:
    w_in (3 d_model, d_model), b_in (3 d_model,), w_out (d_model, d_model), b_out (d_model,).
    mask broadcastable to (B, heads, T, T), True = may attend."""
    batch, seq, d_model = x.shape
    q, k, v = (x @ w_in.T + b_in).chunk(3, dim=-1)  # each (B, T, d_model)

    def split_heads(t):  # (B, T, d_model) -> (B, heads, T, d_head)
        return t.reshape(batch, seq, heads, d_model // heads).transpose(1, 2)

    q, k, v = split_heads(q), split_heads(k), split_heads(v)
    out, _ = attention(q, k, v, mask)  # (B, heads, T, d_head)
    out = out.transpose(1, 2).reshape(batch, seq, d_model)  # heads side by side again
    return out @ w_out.T + b_out


d_model, heads = 16, 4
torch.manual_seed(0)
x = torch.randn(batch, seq, d_model, dtype=torch.float64)  # (B, T, d_model)
mha = nn.MultiheadAttention(d_model, heads, batch_first=True, dtype=torch.float64)
mha_weights = (
    mha.in_proj_weight,
    mha.in_proj_bias,
    mha.out_proj.weight,
    mha.out_proj.bias,
)
with torch.no_grad():
    # PyTorch initialises the biases to 0; make them non-zero to test them too.
    mha.in_proj_bias.normal_()
    mha.out_proj.bias.normal_()
    ours = multi_head_attention(x, *mha_weights, heads)
    theirs, _ = mha(x, x, x, need_weights=False)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12)
    ours = multi_head_attention(x, *mha_weights, heads, mask=causal_mask)
    # nn.MultiheadAttention's masks: True = blocked.
    theirs, _ = mha(x, x, x, attn_mask=~causal_mask, need_weights=False)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12)
    ours = multi_head_attention(x, *mha_weights, heads, mask=padding_mask[:, None])
    theirs, _ = mha(x, x, x, key_padding_mask=~padding_mask[:, 0], need_weights=False)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12)
print(
    f"hand-written multi-head attention equals nn.MultiheadAttention: {tuple(ours.shape)}"
)

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
    """(length, d_model) float32 table: sin at even, cos at odd features (Vaswani et al.)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]  # (T, 1)
    frequency = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


perm = torch.randperm(seq)
with torch.no_grad():
    positions = sinusoidal_positions(seq, d_model).double()  # (T, d_model)
    plain, _ = mha(x, x, x, need_weights=False)
    plain_permuted, _ = mha(x[:, perm], x[:, perm], x[:, perm], need_weights=False)
    np.testing.assert_allclose(
        plain_permuted.numpy(), plain[:, perm].numpy(), atol=1e-12
    )
    # The encoding is added BEFORE attention, to the inputs in their new order.
    xp, xp_permuted = x + positions, x[:, perm] + positions
    encoded, _ = mha(xp, xp, xp, need_weights=False)
    encoded_permuted, _ = mha(xp_permuted, xp_permuted, xp_permuted, need_weights=False)
gap = (encoded_permuted - encoded[:, perm]).abs().max().item()
print(f"permutation {perm.tolist()}: without positions, outputs permute exactly")
print(
    f"with positions added first, largest difference from the permuted outputs: {gap:.3f}"
)
assert gap > 1e-3

fig, ax = plt.subplots(figsize=(7, 2.8))
image = ax.imshow(sinusoidal_positions(64, 64).T.numpy(), aspect="auto", cmap="RdBu")
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


# %%
class Block(nn.Module):
    """Pre-norm Transformer block: x + MHA(LN(x)), then x + MLP(LN(x)); (B, T, d) -> (B, T, d)."""

    def __init__(self, d_model, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )

    def forward(self, x):
        a = self.norm1(x)
        x = x + self.attn(a, a, a, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class Sorter(nn.Module):
    """Tokens (B, T) int64 -> logits (B, T, vocab)."""

    def __init__(self, vocab, length, d_model, heads, layers):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        # A buffer: saved and moved with the model, but not trained.
        self.register_buffer("positions", sinusoidal_positions(length, d_model))
        self.blocks = nn.Sequential(*[Block(d_model, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens):
        x = self.embed(tokens) + self.positions  # (B, T, d): positions BEFORE attention
        return self.head(self.norm(self.blocks(x)))  # (B, T, vocab)


torch.manual_seed(0)
sorter = Sorter(
    seq_sizes.vocab,
    seq_sizes.length,
    seq_sizes.d_model,
    seq_sizes.heads,
    seq_sizes.layers,
).to(device)
print(f"{H.count_params(sorter):,} parameters on {device}")

# %%
optimizer = torch.optim.Adam(sorter.parameters(), lr=seq_sizes.learning_rate)
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=seq_sizes.steps)
losses = []
start = time.perf_counter()
for _ in tqdm(range(seq_sizes.steps), desc="sorting"):
    inputs, targets = (
        torch.from_numpy(a).to(device)
        for a in sort_batch(
            data_rng, seq_sizes.batch_size, seq_sizes.length, seq_sizes.vocab
        )
    )
    logits = sorter(inputs)  # (B, T, vocab)
    loss = F.cross_entropy(logits.reshape(-1, seq_sizes.vocab), targets.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()  # the next step's size
    losses.append(loss.item())
train_seconds = time.perf_counter() - start
print(
    f"{seq_sizes.steps} steps of {seq_sizes.batch_size} sequences in {train_seconds:.1f} s"
)

# %%
# Fresh sequences, from another seed than training.
test_in, test_out = sort_batch(
    np.random.default_rng(1), 4_096, seq_sizes.length, seq_sizes.vocab
)
with torch.no_grad():
    predicted = sorter(torch.from_numpy(test_in).to(device)).argmax(-1).cpu().numpy()
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
    title=f"Transformer sorting, PyTorch ({H.current_scale()} scale)",
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
# Next: [the JAX half of this chapter](in-jax.ipynb), then the
# [lab](../../labs/02-basics/in-pytorch.ipynb), whose self-checks tell you when each exercise is
# right. Works cited are listed in the [bibliography](../../bibliography.md).
