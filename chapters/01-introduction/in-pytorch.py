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
# # 1. Introduction: PyTorch
#
# This is the PyTorch half of chapter 1; the [JAX half](in-jax.ipynb) tells the same story in
# the same order, so you can read them side by side. By the end you will know
#
# * where PyTorch and JAX come from and what each is built around;
# * how tensors behave (and where JAX arrays behave differently);
# * what eager execution is, and what tracing a program into a graph means;
# * how automatic differentiation differs from finite differences, measured;
# * how devices and models are handled;
# * how to train a first model on real MNIST digits, with a loop written out and then a
#   reusable one;
# * what eager execution and compilation cost, measured.

# %% [markdown] tags=["notebook-only"]
# Every number on this page is printed by the code above it. The notebook runs at one of three
# scales (`smoke` for CI, `cpu` for a laptop, `gpu` for Colab); the cell below says which one
# produced this page.

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
import itertools
import logging
import math
import time
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.ticker import LogFormatter
from torch import nn

from helpers import torch as H
from helpers.results import first_step_seconds, latest_by, read_records

# Every size this notebook uses comes from helpers/scale/foundations.py.
sizes = H.sizes("mnist")
timing = H.sizes("timing")
device = H.default_device()
H.runtime_info()

# %% [markdown] tags=["shared"]
# ## 1.1 Two frameworks, one job
#
# A deep-learning framework gives you four things: n-dimensional arrays that live on an
# accelerator, **automatic differentiation** of programs written with them, building blocks
# (layers, losses, optimisers, data pipelines), and tools to make the result fast.
#
# **PyTorch** {cite}`paszke2019pytorch` descends from Torch7 {cite}`collobert2011torch7`, a Lua
# library, and took from Chainer {cite}`tokui2015chainer` the *define-by-run* idea: the program
# *is* the model, executed line by line by Python, and the graph needed for gradients is
# recorded as it runs. First released publicly by Facebook AI Research in early 2017, it has
# been governed by the PyTorch Foundation (part of the Linux Foundation) since 2022. PyTorch 2
# added `torch.compile`, which captures graphs from Python bytecode and compiles them
# {cite}`ansel2024pytorch2`.
#
# **JAX** {cite}`jax2018github` comes from Google and grew out of Autograd
# {cite}`maclaurin2015autograd`: NumPy's API plus *composable function transformations*
# (`grad`, `jit`, `vmap`, ...) that work by tracing Python functions. Only `jit` compiles: it
# hands the traced program to the XLA compiler {cite}`frostig2018compiling`, while `grad` and
# `vmap` transform the trace into another program without compiling it. Neural-network layers
# come from libraries on top: in this course Flax NNX {cite}`flaxnnx2024`, the object-based API
# that Flax first shipped as `flax.experimental.nnx` and made its recommended API (`flax.nnx`)
# with Flax 0.10 in 2024, and Optax {cite}`deepmind2020jax` for optimisers.
#
# Where each fits: PyTorch is object-oriented and eager by default, so a model is debugged like
# any Python program, and much of the wider ecosystem (torchvision and Hugging Face
# Transformers, for instance) is built on it. JAX is functional: programs are pure functions
# that JAX transforms (differentiate, compile, vectorise, shard across devices), which suits
# compiled accelerator code, large-scale sharded training and scientific computing. Both run on
# CPUs, NVIDIA GPUs (CUDA) and AMD GPUs (ROCm); PyTorch also runs on Apple-silicon GPUs through
# its `mps` device, where JAX has only an experimental plugin. JAX reaches Google's TPUs
# natively through XLA, PyTorch through PyTorch/XLA. The rest of this chapter makes these
# differences concrete.

# %% [markdown]
# ## 1.2 Tensors
#
# A `torch.Tensor` is an n-dimensional array with a `dtype`, a `shape` and a `device`. NumPy
# arrays convert both ways, sharing memory on the CPU.

# %%
x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
a = np.ones((2, 3), dtype=np.float32)
print(x, x.dtype, x.shape, x.device, sep="\n")
print(
    "from numpy:",
    torch.from_numpy(a).dtype,
    "| back to numpy:",
    type(x.numpy()).__name__,
)

# %% [markdown]
# Arithmetic **broadcasts** like NumPy: dimensions of size 1 are stretched to match. Here a
# column `(2, 1)` and a row `(3,)` give a `(2, 3)` table.

# %%
col = torch.tensor([[10.0], [20.0]])  # (2, 1)
row = torch.tensor([1.0, 2.0, 3.0])  # (3,)
col + row  # (2, 3)

# %% [markdown]
# Reductions take the axis to reduce, `dim=` in PyTorch. A classifier outputs one score per
# class for each example, a `(B, C)` table; `argmax(dim=1)` picks the highest-scoring class of
# each row. Comparing predictions with labels gives a `bool` tensor, and its mean is the
# accuracy, but PyTorch refuses to average booleans: cast to float first. (JAX, like NumPy,
# averages booleans as 0s and 1s; the explicit cast works in both.)

# %%
# Class scores of 4 examples: (B=4, C=3).
scores = torch.tensor(
    [[2.0, 0.5, -1.0], [0.1, 0.3, 3.0], [1.0, 2.0, 0.0], [0.0, -1.0, 4.0]]
)
labels = torch.tensor([0, 2, 0, 2])  # (4,)
predicted = scores.argmax(dim=1)  # (4,) index of the largest score in each row
hits = predicted == labels  # (4,) bool
print("predicted:", predicted, "| hits:", hits)
try:
    hits.mean()
except RuntimeError as e:
    print("RuntimeError:", str(e).split(".")[0])
print("accuracy:", hits.float().mean().item())  # bool -> float32, then the mean

# %% [markdown]
# PyTorch tensors are **mutable**: you can assign into them, and a *view* (`reshape` of a
# contiguous tensor, slicing, `.T`) shares memory with its base, so a write through one is seen
# through the other; in-place operators (`view /= 255`, `view.add_(1)`) write into the base
# too. Autograd tracks such in-place changes and refuses those that would corrupt a gradient.
# (JAX arrays are immutable: see the JAX notebook.)

# %%
base = torch.zeros(2, 3)
view = base.reshape(6)  # no copy: same memory
view[0] = 42.0  # in-place write through the view
print(base)

# %% [markdown]
# Random numbers come from a **global generator**: seeding it makes a run repeatable, but any
# code that draws a number in between changes what every later draw returns. `torch.Generator`
# objects give explicit, independent streams when that matters. (JAX has no global generator:
# every draw takes an explicit key.)

# %%
torch.manual_seed(0)
first = torch.rand(3)
torch.manual_seed(0)
_ = torch.rand(1)  # one extra draw ...
second = torch.rand(3)  # ... shifts everything after it
gen = torch.Generator().manual_seed(0)  # an independent stream
print(first, second, torch.rand(3, generator=gen), sep="\n")

# %% [markdown]
# ## 1.3 Eager execution, tracing and compilation
#
# PyTorch runs each operation when Python reaches it (**eager execution**). Nothing is
# compiled ahead, so ordinary Python control flow, even on tensor values, just works:


# %%
def f(x: torch.Tensor) -> torch.Tensor:
    """Six element-wise operations."""
    return torch.sin(x * 2.0 + 1.0) ** 2 + torch.cos(x)


def relu_or_negate(x: torch.Tensor) -> torch.Tensor:
    if x.sum() > 0:  # a Python `if` on a tensor's value: fine in eager mode
        return x.clamp(min=0)
    return -x


print(relu_or_negate(torch.tensor([1.0, -2.0, 3.0])))

# %% [markdown]
# Compilers need the whole computation as a **graph**. `torch.fx.symbolic_trace` obtains one by
# *tracing*: it calls the function with placeholder values and records each operation. The
# graph of `f` holds exactly its six operations:

# %%
traced = torch.fx.symbolic_trace(f)
print(traced.graph)

# %% [markdown]
# Tracing sees operations, not Python: a branch on a traced value cannot be recorded, because
# the placeholder has no value to decide it. JAX's `jit` has the same limit.

# %%
try:
    torch.fx.symbolic_trace(relu_or_negate)
except torch.fx.proxy.TraceError as e:
    print("TraceError:", e)

# %% [markdown]
# Two repairs turn the branch into an operation that a graph can hold. `torch.where` computes
# both branches and selects element by element; `torch.cond(pred, true_fn, false_fn, operands)`
# is one operation that runs one of two functions, and `torch.compile` and `torch.export`
# capture it whole instead of breaking the graph (a prototype feature in PyTorch today). JAX's
# `jnp.where` and `jax.lax.cond` are the same two tools. Gradients need no repair: autograd
# records the operations that actually ran, so it differentiates through the Python `if` above,
# and so does JAX's `grad`.


# %%
def relu_or_negate_where(x: torch.Tensor) -> torch.Tensor:
    # Both branches are computed; the condition selects one, element by element.
    return torch.where(x.sum() > 0, x.clamp(min=0), -x)


def relu_or_negate_cond(x: torch.Tensor) -> torch.Tensor:
    return torch.cond(x.sum() > 0, lambda x: x.clamp(min=0), lambda x: -x, (x,))


for v in (torch.tensor([1.0, -2.0, 3.0]), torch.tensor([-1.0, -2.0, 3.0])):
    print(v, relu_or_negate(v), relu_or_negate_where(v), relu_or_negate_cond(v))
print(torch.fx.symbolic_trace(relu_or_negate_where).graph)  # traceable now

# %% [markdown]
# `torch.compile` (PyTorch 2) reads Python bytecode instead of running placeholders: where it
# meets a branch on a tensor's value it *breaks the graph*, lets Python decide, and compiles the
# pieces on either side into fused kernels. Section 1.8 measures what compiling buys and what it
# costs.

# %% [markdown]
# ## 1.4 Automatic differentiation
#
# Mark a tensor with `requires_grad=True` and PyTorch records every operation on it (the
# *tape*); `backward()` walks the tape in reverse and stores the gradient in `.grad`. This is
# **reverse-mode automatic differentiation** {cite}`baydin2018automatic`: exact up to
# floating-point rounding, at a cost of a small multiple of one evaluation of the function.
#
# Take $g(x) = \sum_i \sin(x_i)\,x_i^2$, whose gradient is
# $\partial g / \partial x_i = \cos(x_i)\,x_i^2 + 2 x_i \sin(x_i)$.


# %%
def g(x: torch.Tensor) -> torch.Tensor:
    return (torch.sin(x) * x**2).sum()


def g_grad_exact(x: np.ndarray) -> np.ndarray:
    """The gradient by hand, in float64 NumPy: the reference for the errors below."""
    return np.cos(x) * x**2 + 2 * x * np.sin(x)


x0 = torch.tensor([0.5, -1.0, 2.0, 3.0])
w = x0.clone().requires_grad_(True)
value = g(w)
print(value)  # grad_fn: the tape's last node, where backward() starts
value.backward()
print("autograd (.backward):", w.grad)
print("torch.func.grad     :", torch.func.grad(g)(x0))  # the functional API, JAX-style
print("by hand             :", g_grad_exact(x0.double().numpy()))
second = torch.func.grad(torch.func.grad(torch.sin))(torch.tensor(1.0))
print(f"2nd derivative of sin at 1: {second.item():.6f}; -sin(1) = {-math.sin(1):.6f}")

# %% [markdown]
# A printed tensor that carries `grad_fn=<...Backward0>` is the output of a recorded operation:
# that node computes its part of the gradient when `backward()` runs. `torch.func.grad(g)`
# returns a *new function* that computes the gradient, and such functions compose:
# `grad(grad(sin))` is the second derivative. These are the same idea, and the same names, as
# JAX's `jax.grad`.

# %% [markdown] tags=["shared"]
# ```{admonition} A common misconception: "autodiff is numerical differentiation"
# :class: warning
# JAX's `grad` (and PyTorch's autograd) is often described as *numerical* differentiation. It
# is not: both apply the chain rule to the operations the program performs, exact up to
# floating-point rounding. **Finite differences**, the numerical method, estimate a derivative
# from function values, $\partial g/\partial x_i$ by $(g(x + h e_i) - g(x - h e_i)) / (2h)$, and
# pay for it in accuracy and in cost. The measurement below shows both.
# ```

# %% [markdown]
# The accuracy problem: a large step $h$ has truncation error (of order $h^2$), a small one
# loses digits to rounding (of order $\varepsilon/h$, with $\varepsilon$ the machine
# precision). Below, the worst error over the four coordinates, for many step sizes, in float32
# and float64, against the autograd error. The reference is the float64 formula above, so
# "error" means distance from that formula, itself rounded to float64.


# %%
def central_difference(fn, x: torch.Tensor, h: float) -> torch.Tensor:
    """Estimate the gradient of scalar ``fn`` at ``x``: two evaluations per coordinate."""
    grad = torch.empty_like(x)
    for i in range(x.numel()):
        step = torch.zeros_like(x)
        step[i] = h
        grad[i] = (fn(x + step) - fn(x - step)) / (2 * h)
    return grad


exact = g_grad_exact(x0.double().numpy())
steps = np.logspace(-9, 0, 28)
errors = {}  # dtype -> max |error| for each step size
for dtype in (torch.float32, torch.float64):
    estimates = [central_difference(g, x0.to(dtype), h).double().numpy() for h in steps]
    errors[dtype] = [np.abs(est - exact).max() for est in estimates]
autograd_error = {
    dtype: np.abs(torch.func.grad(g)(x0.to(dtype)).double().numpy() - exact).max()
    for dtype in errors
}
for dtype, errs in errors.items():
    best = int(np.argmin(errs))
    fd = f"best finite-difference error {errs[best]:.1e} at h={steps[best]:.0e}"
    print(f"{dtype}: {fd}; autograd error {autograd_error[dtype]:.1e}")

# %%
# A log axis cannot show 0: an error of exactly 0 is drawn on this floor, and labelled so.
FLOOR = 1e-17
fig, ax = plt.subplots(figsize=(6, 3.6))
for (dtype, errs), color in zip(errors.items(), ("C0", "C1"), strict=True):
    name = str(dtype).removeprefix("torch.")
    ax.loglog(
        steps,
        np.maximum(errs, FLOOR),
        "o-",
        ms=3,
        color=color,
        label=f"central diff., {name}",
    )
    err = autograd_error[dtype]
    ax.axhline(
        max(err, FLOOR),
        ls="--",
        color=color,
        label=f"autograd, {name}" + (" (0, drawn at 1e-17)" if err == 0 else ""),
    )
ax.set(
    xlabel="step h",
    ylabel="max |error| over the 4 coordinates",
    title="Gradient error: finite differences vs autograd",
)
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# The V shape is the trade-off between truncation (right) and rounding (left); its best point
# is still far above autograd in float32. Where autograd's float64 error prints as 0, it agrees
# bit for bit with the float64 formula: both are the true derivative rounded to float64 along
# the same chain of operations, not the true derivative itself. The cost problem is worse:
# finite differences need two evaluations *per parameter*. For the MLP trained below (its
# parameter count is printed there) that is two forward passes per parameter for one gradient,
# where backpropagation needs about one forward and one backward pass
# {cite}`griewank2008evaluating`. Finite differences remain useful for one thing: *checking* a
# gradient implementation on a few coordinates.

# %% [markdown]
# ## 1.5 Devices
#
# Every tensor lives on one device: the CPU, a GPU (`cuda:0`, ...; AMD GPUs use the same name
# under ROCm builds), or Apple's `mps`. Operations need their inputs on the same device, and
# `.to(device)` copies between them. Course code never hard-codes `.cuda()`: it asks
# `H.default_device()` once and passes the device along, so the same notebook runs on a laptop
# and on a GPU.

# %%
print("default device:", device, "| CUDA available:", torch.cuda.is_available())
t_cpu = torch.ones(3)
t_dev = t_cpu.to(device)  # a copy on the device (no-op when the device is the CPU)
print(t_cpu.device, "->", t_dev.device)

# %% [markdown]
# GPU operations are **asynchronous**: a call returns once the kernel is queued. Timing code
# must therefore wait for the GPU (`torch.cuda.synchronize()`), as `H.time_fn` does; reading a
# value with `.item()` also waits, which is why a training loop should not do it every step.

# %% [markdown]
# ## 1.6 Models: objects and functions
#
# An `nn.Module` is an object that owns its parameters; calling it runs its `forward` method
# (section 1.7 writes one). `nn.Linear(3, 2)` computes $y = x W^\top + b$ and stores its weight
# as `(out, in)`, here `(2, 3)`; Flax stores the same matrix transposed, `(in, out)`. PyTorch
# initialises both weight and bias uniformly in $\pm 1/\sqrt{\text{in}}$ (Flax: a truncated
# normal distribution for the weight, zeros for the bias).

# %%
torch.manual_seed(0)
layer = nn.Linear(3, 2)  # weight (2, 3) = (out, in), bias (2,)
inputs = torch.randn(4, 3)  # (B=4, 3)
print({name: tuple(p.shape) for name, p in layer.named_parameters()})
bound = 1 / math.sqrt(3)
print(
    f"all |weight| <= 1/sqrt(3) = {bound:.3f}:", bool(layer.weight.abs().max() <= bound)
)
print(layer(inputs))  # (4, 2)

# %% [markdown]
# The same layer can be called as a **pure function** of explicit parameters with
# `torch.func.functional_call`. This is JAX's style, and what `torch.func` transformations
# (per-example gradients, `vmap`) build on:

# %%
params = {name: p.detach() for name, p in layer.named_parameters()}
same = torch.func.functional_call(layer, params, (inputs,))
doubled = torch.func.functional_call(
    layer, {k: 2 * v for k, v in params.items()}, (inputs,)
)
print("same output:", torch.allclose(same, layer(inputs)))
print("doubled parameters, doubled output:", torch.allclose(doubled, 2 * layer(inputs)))

# %% [markdown]
# A module's state is more than its parameters. Batch normalisation keeps running statistics,
# which are *buffers*: `parameters()` (what the optimiser updates) leaves them out,
# `state_dict()` (what a checkpoint saves) holds both. Such layers also behave differently in
# training and in evaluation, which `model.train()` and `model.eval()` switch. Flax's
# `nnx.split` likewise returns every variable, statistics and random-number state included.

# %%
bn = nn.BatchNorm1d(4)
print("parameters:", [name for name, _ in bn.named_parameters()])
print("state_dict:", list(bn.state_dict()))
bn.eval()
print("training mode after eval():", bn.training)

# %% [markdown] tags=["shared"]
# ## 1.7 A first model: MNIST digits
#
# MNIST {cite}`lecun1998gradient` has 70,000 greyscale digits of 28x28 pixels (60,000 for
# training, 10,000 for testing). `H.load_mnist` downloads the original files once, checks their
# SHA-256 and caches them; it returns NumPy arrays, the same bytes for both frameworks.
#
# ```{admonition} What you need for this section
# :class: tip
# * A **batch** is a handful of examples processed together; an **epoch** is one pass over
#   the training set, batch by batch.
# * The model outputs **logits** $z \in \mathbb{R}^{10}$, one score per digit. **Softmax** turns
#   them into probabilities and the **cross-entropy** loss of an example with label $y$ is
#   $\ell = -\log \operatorname{softmax}(z)_y$, that is $\ell = -z_y + \log \sum_k e^{z_k}$.
#   With random small weights all logits are near 0, every digit gets probability about 1/10,
#   and the loss starts near $\ln 10$: the first sanity check of any 10-class classifier.
# * **ReLU**, $\max(0, x)$ element-wise, is the non-linearity between two linear layers.
# * An **optimiser** moves each parameter against its gradient; the **learning rate** sets the
#   step. **Adam** {cite}`kingma2015adam` also adapts the step to each parameter's history.
# * A **validation set** is held out to watch training and choose settings; a **test set** is
#   used once, at the end. To keep this first example short, the test set plays both roles.
#
# Chapter 2 derives each of these properly.
# ```

# %%
x_train_u8, y_train = H.load_mnist("train", limit=sizes.train_examples)
x_test_u8, y_test = H.load_mnist("test", limit=sizes.test_examples)
print(
    f"train {x_train_u8.shape} {x_train_u8.dtype}, test {x_test_u8.shape}; labels {y_train[:10]}"
)
fig = H.show_images(x_train_u8[:16], y_train[:16])

# %% [markdown]
# Inputs are scaled from 0..255 to 0..1 and each image is flattened to 784 numbers. The whole
# data set fits on the device, so it is copied there once. Labels become `int64` ("Long"), the
# integer type `F.cross_entropy` expects for class indices; it rejects `int32`, JAX's default
# integer, as the error below shows.

# %%
x_train = H.images_to_vectors(x_train_u8)  # (N, 784) float32 in [0, 1]
x_test = H.images_to_vectors(x_test_u8)
xs = torch.from_numpy(x_train).to(device)  # (N, 784)
ys = torch.from_numpy(y_train).long().to(device)  # (N,) int64
xs_test = torch.from_numpy(x_test).to(device)
ys_test = torch.from_numpy(y_test).long().to(device)
try:
    F.cross_entropy(torch.zeros(2, 10), ys[:2].int())
except RuntimeError as e:
    print("int32 labels -> RuntimeError:", e)

# %% [markdown]
# The model is a **multi-layer perceptron**: linear layers with a ReLU between each pair, the
# last one mapping to the 10 logits. The whole model is a class with two methods: `__init__`
# creates the layers (and so the parameters), `forward` says what a call computes. Its widths
# come from this scale's `sizes.hidden`; the printout shows the result.


# %%
class MLP(nn.Module):
    def __init__(self, widths: Sequence[int]) -> None:  # e.g. (784, 256, 10)
        super().__init__()
        pairs = itertools.pairwise(widths)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 784)
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))  # (B, width)
        return self.layers[-1](x)  # (B, 10) logits


torch.manual_seed(0)
model = MLP((784, *sizes.hidden, 10)).to(device)
print(model)
print(f"{H.count_params(model):,} parameters")
w0 = model.layers[0].weight  # (width, 784): (out, in)
predicted_std = 1 / math.sqrt(3 * 784)  # std of a uniform in ±1/sqrt(784)
print(
    f"first weight {tuple(w0.shape)}: std {w0.std():.4f}, predicted {predicted_std:.4f}"
)

# %% [markdown]
# One **training step**: predict, measure the loss, backpropagate, and let the optimiser move
# the parameters. Gradients *accumulate* in `.grad`, so they are reset first. The step returns
# the loss computed before its update, so step 0's loss is the untrained model's, which should
# be near $\ln 10$. The JAX page starts from another value: Flax initialises differently (a
# truncated-normal weight and zero bias instead of two uniforms), from different random
# numbers.

# %%
optimizer = torch.optim.Adam(model.parameters(), lr=sizes.learning_rate)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x, y) -> float:
    logits = model(x)  # (B, 10)
    loss = F.cross_entropy(logits, y)  # mean over the batch
    # backward() adds into p.grad: clear the previous step's gradients first.
    optimizer.zero_grad()
    loss.backward()  # d loss / d parameter, into every p.grad
    optimizer.step()  # update every parameter
    return loss.item()


xb, yb = xs[:256], ys[:256]  # (256, 784), (256,)
for step in range(3):
    print(f"step {step}: loss on this batch {train_step(model, optimizer, xb, yb):.4f}")
print(f"ln 10 = {math.log(10):.4f}")

# %% [markdown]
# One **epoch** is that step over shuffled batches covering the training set. Evaluation runs
# the model in evaluation mode (`model.eval()`, which matters for layers such as dropout and
# batch norm) and without a tape (`torch.no_grad()`: nothing is recorded for a backward pass,
# which saves memory and time). The accuracy is the `argmax` and cast of section 1.2.


# %%
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch=1024) -> float:
    """Accuracy of ``model`` on inputs ``x`` (N, 784) with labels ``y`` (N,)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = model(x[i : i + batch])  # (b, 10)
            hits = logits.argmax(dim=1) == y[i : i + batch]  # (b,) bool
            correct += hits.float().sum().item()
    return correct / len(x)


model.train()  # training mode; evaluate() switches to eval mode, so set it every epoch
order = torch.randperm(len(xs), device=device)  # this epoch's shuffle
losses = []
for i in range(0, len(order) - sizes.batch_size + 1, sizes.batch_size):
    idx = order[i : i + sizes.batch_size]  # (B,) drops the last, incomplete batch
    losses.append(train_step(model, optimizer, xs[idx], ys[idx]))
accuracy = evaluate(model, xs_test, ys_test)
print(
    f"one epoch: {len(losses)} steps, last loss {losses[-1]:.4f}, test accuracy {accuracy:.2%}"
)

# %% [markdown]
# This is what `H.fit` does, for as many epochs as asked, with a progress bar and a record of
# every loss and accuracy. Its `H.ArrayLoader` is the shuffle-and-slice above, for data sets
# that fit on the device. `torch.utils.data.DataLoader` is PyTorch's general tool for the
# others: a `Dataset` read example by example, by worker processes if needed (JAX has no loader
# of its own and uses Grain, `tf.data` or PyTorch's). `H.fit` avoids one more cost of the loop
# above: it reads the loss back (`.item()`, which waits for the device) only every 50 steps for
# the progress bar and once per epoch for the history. Below, a fresh model trained with it,
# timed from the call to the return: training, evaluation after each epoch, and the first step's
# warm-up.

# %%
torch.manual_seed(0)
model = MLP((784, *sizes.hidden, 10)).to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=sizes.learning_rate)
train_loader = H.ArrayLoader(
    x_train, y_train, sizes.batch_size, shuffle=True, drop_last=True
)
test_loader = H.ArrayLoader(x_test, y_test, 1024)
start = time.perf_counter()
history = H.fit(
    model, optimizer, train_loader, epochs=sizes.epochs, eval_loader=test_loader
)
fit_seconds = time.perf_counter() - start
examples = len(history.step_loss) * sizes.batch_size
print(
    f"H.fit: {sizes.epochs} x {len(train_loader)} steps in {fit_seconds:.2f} s on "
    f"{device.type}, {examples / fit_seconds:,.0f} training examples/s over the whole call"
)
print("epoch  train loss  train acc  test loss  test acc")
for row in history.epochs:
    print(
        f"{row['epoch']:5.0f}  {row['train_loss']:10.4f}  {row['train_accuracy']:9.2%}"
        f"  {row['test_loss']:9.4f}  {row['test_accuracy']:8.2%}"
    )
fig = H.plot_history(
    history, title=f"MLP on MNIST, PyTorch ({H.current_scale()} scale)"
)

# %% [markdown] tags=["shared"]
# The two accuracies are measured differently. The train accuracy is counted *during* the
# epoch, batch by batch, while the weights are still changing: a running average that includes
# the poor predictions of the epoch's first steps. The test accuracy is measured once, at the
# epoch's end, by the final weights. That is why, in the first epoch, the train accuracy trails
# the test accuracy in the table above. A train accuracy that keeps climbing while the test
# accuracy stalls is the first sign of overfitting (chapter 2).
#
# Which digits does the model confuse? The confusion matrix counts, for each true digit (row),
# what the model predicted (column). The correct predictions on the diagonal would dwarf every
# mistake on a common colour scale, so the diagonal is left uncoloured (its counts are still
# written) and the colours show the confusions only. Below it, the most frequent confusions,
# computed from the matrix, and test digits the model got wrong, titled "prediction (truth)".

# %%
predictions = H.predict(model, test_loader)
title = "MNIST test set, PyTorch MLP"
fig = H.plot_confusion_matrix(
    y_test, predictions, num_classes=10, mask_diagonal=True, title=title
)
counts = H.confusion_matrix(y_test, predictions, 10)  # (10, 10): true x predicted
mistakes = counts * (1 - np.eye(10, dtype=counts.dtype))  # zero the diagonal
for flat in np.argsort(mistakes, axis=None)[::-1][:3]:
    true, pred = np.unravel_index(flat, mistakes.shape)
    share = mistakes[true, pred] / counts[true].sum()
    print(
        f"{true} taken for {pred}: {mistakes[true, pred]} times ({share:.1%} of the {true}s)"
    )
wrong = np.flatnonzero(predictions != y_test)[:16]
fig = H.show_images(x_test_u8[wrong], y_test[wrong], predictions=predictions[wrong])

# %% [markdown] tags=["shared"]
# At `smoke` scale the model trains on a small subset for one epoch, which checks that the code
# runs, not what it learns; at `cpu` and `gpu` scale it sees all 60,000 training images, and the
# recorded runs at the end of section 1.8 show what that reaches. Convolutional networks do
# better on images: chapter 2 builds one, chapter 3 trains one on MNIST, and chapter 5 trains a
# larger one on CIFAR-10.

# %% [markdown] tags=["shared"]
# ## 1.8 What eager execution and compilation cost
#
# Each eager operation is a call from Python into the framework's dispatcher, which takes
# microseconds whatever the size of the array: on a small array that overhead *is* the run
# time; on a large one the arithmetic and the memory traffic dominate. A compiler removes the
# per-operation dispatches and fuses the six operations of `f` (section 1.3) into one pass
# over memory, instead of six passes that each write an intermediate array and read it back.
# Below, `f` on vectors of every power of ten from 10 up to the largest length, `timing.n`,
# from `helpers/scale/foundations.py`, so that no decade between the small lengths and the
# large ones goes unmeasured. Each time is the median of `timing.repeats` calls.

# %%
# The lengths timed in this section: every power of ten from 10, small ones to show the
# dispatch overhead, up to the scale's largest (10, 100, ..., 10⁶ at cpu scale). At smoke
# scale, a quick check that the page runs, torch.compile uses the "aot_eager" backend, which
# captures the graph but generates no code (so no C++ compiler starts); at cpu and gpu scale
# it uses the default backend, Inductor, which generates fused kernels.
ns = [10**k for k in range(1, 10) if 10**k < timing.n] + [timing.n]
compile_backend = "aot_eager" if H.current_scale() == "smoke" else "inductor"

# %%
# Inductor logs a harmless warning on machines without CUDA; keep the page quiet.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
# dynamic=True: one compiled program for every length (else each new length recompiles).
f_compiled = torch.compile(f, backend=compile_backend, dynamic=True)
start = time.perf_counter()
H.synchronize(f_compiled(torch.randn(ns[-1], device=device)))
compile_seconds = time.perf_counter() - start
print(
    f"torch.compile ({compile_backend}): first call {compile_seconds:.2f} s (compilation)"
)
if compile_backend == "aot_eager":
    print(
        "aot_eager captures the graph but fuses nothing: expect no speed-up at smoke scale"
    )
compiled = f"torch.compile ({compile_backend})"  # the legend names the backend
per_call = {"eager": [], compiled: []}  # seconds per call, one per n
for n in ns:
    v = torch.randn(n, device=device)
    per_call["eager"].append(H.time_fn(f, v, repeats=timing.repeats))
    per_call[compiled].append(H.time_fn(f_compiled, v, repeats=timing.repeats))
print(
    f"{'n':>10}  {'eager µs/call':>13} {'ns/element':>10}"
    f"  {'compiled µs/call':>16} {'ns/element':>10}"
)
for n, eager, comp in zip(ns, per_call["eager"], per_call[compiled], strict=True):
    print(
        f"{n:>10,}  {eager * 1e6:13.1f} {eager / n * 1e9:10.3f}"
        f"  {comp * 1e6:16.1f} {comp / n * 1e9:10.3f}"
    )

# %%
fig, (ax_call, ax_elem) = plt.subplots(1, 2, figsize=(10, 3.6))
for name, seconds in per_call.items():
    seconds = np.asarray(seconds)
    ax_call.loglog(ns, seconds * 1e6, "o-", label=name)
    ax_elem.loglog(ns, seconds / np.asarray(ns) * 1e9, "o-", label=name)
ax_call.set(xlabel="vector length n", ylabel="time per call (µs)", title="per call")
ax_elem.set(
    xlabel="vector length n", ylabel="time per element (ns)", title="per element"
)
for ax in (ax_call, ax_elem):
    # Minor ticks, when labelled, read 20, 30, ..., not 2x10¹, 3x10¹, ...
    ax.yaxis.set_minor_formatter(LogFormatter())
    ax.grid(alpha=0.3)
    ax.legend()
fig.suptitle(f"f(x) = sin(2x + 1)² + cos(x), PyTorch on {device.type}")
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the left panel at small `n`: the time per call hardly changes from the smallest length
# to the next, because it is almost all dispatch, not arithmetic; the right panel shows the same
# fact as a time per element that falls as `n` grows. At large lengths (`timing.n` is
# 1,000,000 at cpu scale, 10,000,000 at gpu scale) the time per call grows in proportion to
# `n`, and the cost is the work per element: a sine and a cosine, and, in eager mode, six passes
# over memory that each write an intermediate array and read it back. Inductor's fusion removes
# those passes; what remains after compiling is the arithmetic and one read and one write per
# element. How the cost splits depends on the hardware: on a GPU, element-wise code like this
# is memory-bound, so the saved memory traffic is nearly all of fusion's gain; on a CPU the sine
# and cosine weigh more. At those scales the table shows this page's split, and, in its first
# rows, whether the compiled function's own call overhead is smaller than six dispatches. At
# smoke scale, CI's quick check, the largest length is 10,000, where the time per call need not
# yet grow in proportion to `n`, and the compiled column is `aot_eager`, which captures the
# graph but fuses nothing: there it says nothing about fusion. The compilation itself, printed
# first, is paid once per program.

# %% [markdown] tags=["shared"]
# ```{admonition} Do not compare the two pages' timings
# :class: note
# The PyTorch and JAX pages time the same function, but not the same thing: each framework's
# eager dispatch has its own fixed cost per operation, its kernels for `sin` and `cos` are
# different code (vectorised differently, with different accuracy), and each uses the CPU's
# threads its own way (PyTorch's intra-op thread pool, XLA's own runtime). The pages also run
# one after the other, and page timings vary with the machine and its load. A fair comparison
# runs both frameworks through one harness on one machine and records the hardware, as
# `python -m helpers.bench` does; the recorded MNIST runs below are that comparison (from
# [`bench.jsonl`](https://github.com/pytorch-jax-course/pytorch-jax-course/blob/main/chapters/01-introduction/bench.jsonl),
# beside this notebook), the latest record of each framework, scale and machine, older ones
# left out. Where `runs` is above 1, each number is the median over that many seeds. The
# throughput leaves out the first step and the evaluations, so it measures something other than
# the whole-`fit` figure of section 1.7. `train s` is the wall time of the training epochs
# *with* their first step, which carries JAX's compilation (PyTorch's warm-up) and whose time
# `first s` shows. That is why, in the gpu rows, JAX has the longer `train s` but the higher
# `examples/s`.
# ```


# %%
# Recorded by `python -m helpers.bench mnist --record ...`: the latest record of each
# framework, scale and machine. runs > 1: medians over that many seeds (`--repeat`).
# Under each row, indented: the hardware, the date and the commit it ran.
def machine(hw: dict) -> str:
    return f"{hw['cpu']}, {hw['cores']} cores" + (f", {hw['gpu']}" if hw["gpu"] else "")


bench_file = H.course_root() / "chapters/01-introduction/bench.jsonl"
records = [{**r, "machine": machine(r["hardware"])} for r in read_records(bench_file)]
latest = latest_by(records, "scale", "machine", "framework")
print(
    f"{'framework':9} {'scale':5} {'model':24} {'epochs':>6} {'runs':>4} {'test acc':>8}"
    f" {'train s':>7} {'first s':>7} {'examples/s':>10}"
)
for r in latest.values():
    print(
        f"{r['framework']:9} {r['scale']:5} {r['model']:24} {int(r['epochs']):6}"
        f" {r.get('repeats', 1):4} {r['test_accuracy']:8.2%} {r['train_seconds']:7.1f}"
        f" {first_step_seconds(r):7.2f} {r['train_examples_per_second']:10,.0f}"
    )
    print(f"{'':10}{r['machine']}, {r['date'][:10]}, commit {r['commit'][:7]}")

# %% [markdown] tags=["shared"]
# ## 1.9 Summary
#
# | | PyTorch | JAX |
# |---|---|---|
# | arrays | `torch.Tensor`, mutable, views share memory | `jax.Array`, immutable; `x.at[i].set(v)` |
# | randomness | global generator, `torch.manual_seed` | explicit keys: split first, use each once |
# | execution | eager; `torch.compile` optional | eager op by op; `jax.jit` the norm |
# | branches on values | fine eagerly; `torch.where` / `torch.cond` for graphs | fine eagerly and under `grad`; `jnp.where` / `lax.cond` under `jit` |
# | gradients | `loss.backward()` fills `.grad`; `torch.func.grad` | `jax.grad(f)` returns a function |
# | models | `nn.Module` with `forward`; weight `(out, in)` | pure functions of a pytree; `nnx.Module` with `__call__`, kernel `(in, out)` |
# | training step | `zero_grad`, `backward`, `step` | `value_and_grad`, `optimizer.update`, under `nnx.jit` |
# | evaluation | `model.eval()`, `torch.no_grad()` | `model.eval()`, a jitted step (no tape to switch off) |
# | labels | `int64` | `int32` |

# %% [markdown] tags=["notebook-only"]
# Next: [the JAX half of this chapter](in-jax.ipynb), then the
# [lab](../../labs/01-introduction/in-pytorch.ipynb), whose self-checks tell you when each
# exercise is right. Works cited are listed in the [bibliography](../../bibliography.md).
