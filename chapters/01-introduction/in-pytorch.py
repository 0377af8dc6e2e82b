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
# This is the PyTorch half of chapter 1; the [JAX half](in-jax.ipynb) tells the same story in the
# same order, so you can read them side by side. By the end you will know
#
# * where PyTorch and JAX come from and what each is built around;
# * how tensors behave (and where JAX arrays behave differently);
# * what eager execution is, and what tracing a program into a graph means;
# * how automatic differentiation differs from finite differences, measured;
# * how devices and models are handled;
# * how to train a first model on real MNIST digits, step by step and with a reusable loop.
#
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
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from helpers import torch as H

sizes = H.sizes("mnist")  # every size this notebook uses comes from helpers/scale.py
timing = H.sizes("timing")
device = H.default_device()
H.runtime_info()

# %% [markdown]
# ## 1.1 Two frameworks, one job
#
# A deep-learning framework gives you four things: n-dimensional arrays that live on an
# accelerator, **automatic differentiation** of programs written with them, building blocks
# (layers, losses, optimisers, data pipelines), and tools to make the result fast.
#
# **PyTorch** {cite}`paszke2019pytorch` descends from Torch7 {cite}`collobert2011torch7`, a Lua
# library, and took from Chainer {cite}`tokui2015chainer` the *define-by-run* idea: the program
# *is* the model, executed line by line by Python, and the graph needed for gradients is
# recorded as it runs. First released publicly by Facebook AI Research in early 2017, it has been
# governed by the PyTorch Foundation (part of the Linux Foundation) since 2022. PyTorch 2 added `torch.compile`,
# which captures graphs from Python bytecode and compiles them {cite}`ansel2024pytorch2`.
#
# **JAX** {cite}`jax2018github` comes from Google and grew out of Autograd
# {cite}`maclaurin2015autograd`: NumPy's API plus *composable function transformations*
# (`grad`, `jit`, `vmap`, ...) that work by tracing Python functions and compiling them with the
# XLA compiler {cite}`frostig2018compiling`. Neural-network layers come from libraries on top:
# in this course Flax NNX {cite}`flax2020github` and Optax {cite}`deepmind2020jax`.
#
# Where each fits: PyTorch is object-oriented and eager by default, so a model is debugged like
# any Python program, and much of the wider ecosystem (torchvision and Hugging Face Transformers,
# for instance) is built on it. JAX is functional: programs are pure functions that
# JAX transforms (differentiate, compile, vectorise, shard across devices), which suits compiled
# accelerator code, large-scale sharded training and scientific computing. Both run on CPUs and
# NVIDIA GPUs; JAX reaches Google's TPUs natively through XLA, PyTorch through PyTorch/XLA.
# The rest of this chapter makes these differences concrete.

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
# PyTorch tensors are **mutable**: you can assign into them, and a *view* (`reshape` of a
# contiguous tensor, slicing, `.T`) shares memory with its base, so a write through one is seen
# through the other. Autograd tracks such in-place changes and refuses those that would corrupt
# a gradient. (JAX arrays are immutable: see the JAX notebook.)

# %%
base = torch.zeros(2, 3)
view = base.reshape(6)  # no copy: same memory
view[0] = 42.0  # in-place write through the view
print(base)

# %% [markdown]
# Random numbers come from a **global generator**: seeding it makes a run repeatable, but any
# code that draws a number in between changes what every later draw returns. `torch.Generator`
# objects give explicit, independent streams when that matters.

# %%
torch.manual_seed(0)
first = torch.rand(3)
torch.manual_seed(0)
_ = torch.rand(1)  # one extra draw ...
second = torch.rand(3)  # ... shifts everything after it
g = torch.Generator().manual_seed(0)
print(first, second, torch.rand(3, generator=g), sep="\n")

# %% [markdown]
# ## 1.3 Eager execution, graphs and compilation
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
# `torch.compile` (PyTorch 2) avoids this limit by capturing graphs from Python bytecode: where
# it meets such a branch it splits the graph and falls back to Python, then compiles each piece
# with fused kernels. The performance chapter measures what it buys; compilation takes seconds
# to minutes, too long for this introduction.
#
# What does eager execution cost? Each operation is a call from Python into PyTorch's
# dispatcher, which takes microseconds whatever the size of the tensor. On a small tensor that overhead
# *is* the run time; on a large one the arithmetic dominates. Below, the median of
# `timing.repeats` calls:

# %%
for n in (1_000, timing.n):
    v = torch.randn(n, device=device)
    seconds = H.time_fn(f, v, repeats=timing.repeats)
    print(
        f"n={n:>10,}: {seconds * 1e6:9.1f} µs per call, {seconds / n * 1e9:8.3f} ns per element"
    )

# %% [markdown]
# The cost per element drops sharply as `n` grows: on a small tensor the time goes to the six
# dispatches, not to the arithmetic. Fusing the six operations into one kernel (what a
# compiler does) removes the dispatches and the five intermediate results written to memory
# and read back.
#
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
g(w).backward()
print("autograd (.backward):", w.grad)
print("torch.func.grad     :", torch.func.grad(g)(x0))  # the functional API, JAX-style
print("by hand             :", g_grad_exact(x0.double().numpy()))

# %% [markdown]
# `torch.func.grad(g)` returns a *new function* that computes the gradient: the same idea, and
# the same name, as JAX's `jax.grad`.
#
# ```{admonition} Automatic differentiation is not numerical differentiation
# :class: warning
# A widely circulated outline of this course describes JAX's `grad` as "numerical
# differentiation". It is not, in JAX or in PyTorch: both apply the chain rule to the
# operations the program performs. **Finite differences**, the numerical method, estimate a
# derivative from function values, $\partial g/\partial x_i \approx (g(x + h e_i) - g(x - h
# e_i)) / 2h$, and pay for it in accuracy and in cost.
# ```
#
# The accuracy problem: a large step $h$ has truncation error (of order $h^2$), a small one
# loses digits to rounding (of order $\varepsilon/h$, with $\varepsilon$ the machine
# precision). Below, the worst error over the four coordinates, for many step sizes, in float32
# and float64, against the autograd error:


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
fig, ax = plt.subplots(figsize=(6, 3.6))
for (dtype, errs), color in zip(errors.items(), ("C0", "C1"), strict=True):
    name = str(dtype).removeprefix("torch.")
    ax.loglog(
        steps,
        np.maximum(errs, 1e-17),
        "o-",
        ms=3,
        color=color,
        label=f"central diff., {name}",
    )
    ax.axhline(
        max(autograd_error[dtype], 1e-17),
        ls="--",
        color=color,
        label=f"autograd, {name}",
    )
ax.set(
    xlabel="step h",
    ylabel="max |error|",
    title="Gradient error: finite differences vs autograd",
)
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# The V shape is the trade-off between truncation (right) and rounding (left); its best point
# is still far above autograd in float32. The cost problem is worse: finite differences need
# two evaluations *per parameter*. For the MLP trained below (its parameter count is printed
# there) that is two forward passes per parameter for one gradient, where backpropagation needs
# about one forward and one backward pass {cite}`griewank2008evaluating`. Finite differences
# remain useful for one thing: *checking* a gradient implementation on a few coordinates.
#
# ## 1.5 Devices
#
# Every tensor lives on one device: the CPU, a CUDA GPU (`cuda:0`, ...), or Apple's `mps`.
# Operations need their inputs on the same device, and `.to(device)` copies between them.
# Course code never hard-codes `.cuda()`: it asks `H.default_device()` once and passes the
# device along, so the same notebook runs on a laptop and on a GPU.

# %%
print("default device:", device, "| CUDA available:", torch.cuda.is_available())
t_cpu = torch.ones(3)
t_dev = t_cpu.to(device)  # a copy on the device (no-op when the device is the CPU)
print(t_cpu.device, "->", t_dev.device)

# %% [markdown]
# GPU operations are **asynchronous**: a call returns once the kernel is queued. Timing code
# must therefore wait for the GPU (`torch.cuda.synchronize()`), as `H.time_fn` does; reading a
# value with `.item()` also waits, which is why a training loop should not do it every step.
#
# ## 1.6 Models: objects and functions
#
# An `nn.Module` is an object that owns its parameters; calling it runs `forward`. This is
# PyTorch's object-oriented style:

# %%
torch.manual_seed(0)
layer = nn.Linear(3, 2)  # weight (2, 3), bias (2,)
inputs = torch.randn(4, 3)
print({name: tuple(p.shape) for name, p in layer.named_parameters()})
print(layer(inputs))

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
# ## 1.7 A first model: MNIST digits
#
# MNIST {cite}`lecun1998gradient` has 70,000 greyscale digits of 28x28 pixels (60,000 for
# training, 10,000 for testing). `H.load_mnist` downloads the original files once, checks their
# SHA-256 and caches them; it returns NumPy arrays, the same bytes for both frameworks.

# %%
x_train_u8, y_train = H.load_mnist("train", limit=sizes.train_examples)
x_test_u8, y_test = H.load_mnist("test", limit=sizes.test_examples)
print(
    f"train {x_train_u8.shape} {x_train_u8.dtype}, test {x_test_u8.shape}; labels {y_train[:10]}"
)
fig = H.show_images(x_train_u8[:16], y_train[:16])

# %% [markdown]
# The model is a **multi-layer perceptron**: flatten each image to 784 numbers, apply a hidden
# layer (a linear map followed by a ReLU), then a linear map to 10 *logits*, one score per digit.
# Inputs are scaled from 0..255 to 0..1; the whole data set fits on the device, so batches are
# gathered there without copies.

# %%
x_train = H.images_to_vectors(x_train_u8)  # (N, 784) float32 in [0, 1]
x_test = H.images_to_vectors(x_test_u8)
torch.manual_seed(0)
model = H.MLP(784, sizes.hidden, 10).to(device)
print(model)
print(f"{H.count_params(model):,} parameters")

# %% [markdown]
# One **training step**, written out: predict, measure the loss (cross-entropy between the
# logits and the true labels), backpropagate, and let the optimiser (Adam
# {cite}`kingma2015adam`) move the parameters. Gradients *accumulate* in `.grad`, so they are
# reset first.

# %%
optimizer = torch.optim.Adam(model.parameters(), lr=sizes.learning_rate)
xb = torch.from_numpy(x_train[:256]).to(device)
yb = torch.from_numpy(y_train[:256]).long().to(device)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x, y) -> float:
    logits = model(x)  # (B, 10)
    loss = F.cross_entropy(logits, y)  # mean over the batch
    optimizer.zero_grad()  # forget the previous step's gradients
    loss.backward()  # d loss / d parameter, into every p.grad
    optimizer.step()  # update every parameter
    return loss.item()


for step in range(5):
    loss = train_step(model, optimizer, xb, yb)
    print(f"step {step}: loss on this batch {loss:.4f}")

# %% [markdown]
# The loss on the batch falls. `H.fit` runs the same step over shuffled batches for several
# epochs, with a progress bar, and records the loss of every step and the test metrics after
# every epoch. (It avoids `.item()` per step: losses stay on the device until the epoch ends.)

# %%
train_loader = H.ArrayLoader(
    x_train, y_train, sizes.batch_size, shuffle=True, drop_last=True
)
test_loader = H.ArrayLoader(x_test, y_test, 1024)
history = H.fit(
    model, optimizer, train_loader, epochs=sizes.epochs, eval_loader=test_loader
)
last = history.epochs[-1]
speed = f"{last['examples_per_second']:,.0f} training examples/s on {device.type}"
print(
    f"after {sizes.epochs} epochs: test accuracy {last['test_accuracy']:.2%}, {speed}"
)
fig = H.plot_history(
    history, title=f"MLP on MNIST, PyTorch ({H.current_scale()} scale)"
)

# %% [markdown]
# Which digits does it confuse? The confusion matrix counts, for each true digit (row), what
# the model predicted (column); below it, test digits the model got wrong, titled
# "prediction (truth)".

# %%
predictions = H.predict(model, test_loader)
fig = H.plot_confusion_matrix(y_test, predictions, num_classes=10)
wrong = np.flatnonzero(predictions != y_test)[:16]
fig = H.show_images(x_test_u8[wrong], y_test[wrong], predictions=predictions[wrong])

# %% [markdown]
# At `cpu` scale this small model reaches about 98 % test accuracy in seconds on a laptop CPU
# (the output above is this page's own run; `bench.jsonl` beside this notebook records
# `python -m helpers.bench mnist` runs with their hardware). At `smoke` scale it trains on 2,000
# images for one epoch, which checks that the code runs, not what it learns. Convolutional
# networks do better on images; chapter 5 builds one for CIFAR-10.
#
# ## 1.8 Summary
#
# | | PyTorch | JAX |
# |---|---|---|
# | arrays | `torch.Tensor`, mutable, views share memory | `jax.Array`, immutable; `x.at[i].set(v)` |
# | randomness | global generator, `torch.manual_seed` | explicit keys, `jax.random.split` |
# | execution | eager; `torch.compile` optional | eager op by op; `jax.jit` the norm |
# | gradients | `loss.backward()` fills `.grad`; `torch.func.grad` | `jax.grad(f)` returns a function |
# | models | `nn.Module` objects own parameters | pure functions of a parameter pytree; Flax NNX objects |
# | training step | `zero_grad`, `backward`, `step` | `value_and_grad`, `optimizer.update` |
#
# Next: [the JAX half of this chapter](in-jax.ipynb), then the
# [lab](../../labs/01-introduction/in-pytorch.ipynb), whose self-checks tell you when each exercise
# is right. Works cited are listed in the [bibliography](../../bibliography.md).
