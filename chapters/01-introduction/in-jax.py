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
# # 1. Introduction: JAX
#
# This is the JAX half of chapter 1; the [PyTorch half](in-pytorch.ipynb) tells the same story
# in the same order, so you can read them side by side. By the end you will know
#
# * where PyTorch and JAX come from and what each is built around;
# * how JAX arrays behave (and where PyTorch tensors behave differently);
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
import math
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx
from matplotlib.ticker import LogFormatter

from helpers import jax as H
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
# ## 1.2 Arrays
#
# A `jax.Array` is an n-dimensional array with a `dtype`, a `shape` and the device(s) it lives
# on. `jax.numpy` mirrors NumPy's API, and NumPy arrays convert both ways. One difference from
# NumPy: JAX computes in 32 bits unless 64-bit mode is switched on (section 1.4 does).

# %%
x = jnp.arange(6, dtype=jnp.float32).reshape(2, 3)
a = np.ones((2, 3), dtype=np.float32)
print(x, x.dtype, x.shape, x.devices(), sep="\n")
print(
    "from numpy:",
    jnp.asarray(a).dtype,
    "| back to numpy:",
    type(np.asarray(x)).__name__,
)
print("a Python float becomes:", jnp.asarray(1.0).dtype)

# %% [markdown]
# Arithmetic **broadcasts** like NumPy: dimensions of size 1 are stretched to match. Here a
# column `(2, 1)` and a row `(3,)` give a `(2, 3)` table.

# %%
col = jnp.array([[10.0], [20.0]])  # (2, 1)
row = jnp.array([1.0, 2.0, 3.0])  # (3,)
col + row  # (2, 3)

# %% [markdown]
# Reductions take the axis to reduce, `axis=` as in NumPy. A classifier outputs one score per
# class for each example, a `(B, C)` table; `argmax(axis=1)` picks the highest-scoring class of
# each row. Comparing predictions with labels gives a `bool` array, and its mean is the
# accuracy. JAX, like NumPy, averages booleans as 0s and 1s; PyTorch refuses (`mean()` of a
# bool tensor raises), so code meant for both casts to float first.

# %%
# Class scores of 4 examples: (B=4, C=3).
scores = jnp.array(
    [[2.0, 0.5, -1.0], [0.1, 0.3, 3.0], [1.0, 2.0, 0.0], [0.0, -1.0, 4.0]]
)
labels = jnp.array([0, 2, 0, 2])  # (4,)
predicted = scores.argmax(axis=1)  # (4,) index of the largest score in each row
hits = predicted == labels  # (4,) bool
print("predicted:", predicted, "| hits:", hits)
print(
    "mean of bools:", hits.mean(), "| with the cast:", hits.astype(jnp.float32).mean()
)

# %% [markdown]
# JAX arrays are **immutable**: assigning into one is an error. `x.at[index].set(value)` (or
# `.add`, `.mul`, ...) returns a new array instead. Immutability is what lets JAX treat programs
# as pure functions; inside `jax.jit`, XLA turns such updates into in-place writes when the old
# array is not used again. (PyTorch tensors are mutable: see the PyTorch notebook.)

# %%
base = jnp.zeros((2, 3))
try:
    base[0, 0] = 42.0
except TypeError as e:
    print("TypeError:", str(e).split(".")[0])
updated = base.at[0, 0].set(42.0)  # a new array; `base` is unchanged
print(base, updated, sep="\n")

# %% [markdown]
# Random numbers need an explicit **key**: the same key always gives the same numbers, and
# `jax.random.split` derives new, independent keys from one. There is no hidden global state,
# so a function's randomness depends only on the key you pass, even when JAX compiles or
# parallelises it. The habit that keeps streams independent: **split first, then use each key
# once**. Drawing numbers from a key and then splitting that same key reuses it, and the
# "independent" streams are no longer guaranteed to be independent. (PyTorch draws from a
# global generator instead.)

# %%
key = jax.random.key(0)
# Split first; keep `key` only for further splits.
key, k1, k2 = jax.random.split(key, 3)
first = jax.random.uniform(k1, (3,))
again = jax.random.uniform(k1, (3,))  # same key, same numbers
other = jax.random.uniform(k2, (3,))  # another key, other numbers
print(first, again, other, sep="\n")

# %% [markdown]
# ## 1.3 Eager execution, tracing and compilation
#
# Called directly, `jax.numpy` functions run one operation at a time, like PyTorch (**eager
# execution**): each call dispatches one compiled kernel, and ordinary Python control flow just
# works.


# %%
def f(x: jax.Array) -> jax.Array:
    """Six element-wise operations."""
    return jnp.sin(x * 2.0 + 1.0) ** 2 + jnp.cos(x)


def relu_or_negate(x: jax.Array) -> jax.Array:
    if x.sum() > 0:  # a Python `if` on an array's value: fine in eager mode
        return jnp.maximum(x, 0)
    return -x


print(relu_or_negate(jnp.array([1.0, -2.0, 3.0])))

# %% [markdown]
# JAX's transformations work by **tracing**: they call the function with *tracers* in place of
# arrays and record each operation. `jax.grad` and `jax.vmap` trace and transform the recorded
# program without compiling it. A `grad` tracer still carries the value, so the Python `if`
# works under `grad`, as it does under PyTorch's autograd (under `vmap` it does not: a batch
# of values cannot choose one branch):

# %%
jax.grad(lambda x: relu_or_negate(x).sum())(jnp.array([1.0, -2.0, 3.0]))  # (3,)

# %% [markdown]
# `jax.jit` is the one that compiles. It traces with *abstract* tracers that carry only shape
# and dtype, and records each operation in a *jaxpr*. The jaxpr of `f` holds exactly its six
# operations:

# %%
jax.make_jaxpr(f)(jnp.ones(3))

# %% [markdown]
# XLA then compiles the jaxpr for the device, fusing the operations into one kernel. The Python
# code runs only while tracing, which happens again for every new input shape or dtype (a
# *retrace*): a `print` inside a jitted function prints a tracer at each trace and nothing on
# the calls in between. `jax.debug.print` prints the actual values on every call. A branch on a
# traced value cannot be decided at all, because the tracer has no value; `jnp.where` (both
# branches computed, one selected) or `jax.lax.cond` (one branch run) express it as an
# operation instead. PyTorch's tracer (`torch.fx`) has the same limit and the same two repairs,
# `torch.where` and `torch.cond`.


# %%
@jax.jit
def doubled(x):
    print("tracing with", x)  # runs at trace time only
    jax.debug.print("running with {x}", x=x)  # runs on every call
    return x * 2


doubled(jnp.ones(3))  # traces, compiles, runs
doubled(jnp.zeros(3))  # same shape and dtype: no trace, compiled code only
doubled(jnp.ones(4))  # a new shape: traces (and prints) again
try:
    jax.jit(relu_or_negate)(jnp.array([1.0, -2.0, 3.0]))
except jax.errors.TracerBoolConversionError as e:
    print("TracerBoolConversionError:", str(e).splitlines()[0])


@jax.jit
def relu_or_negate_where(x):
    # Both branches are computed; the condition selects one, element by element.
    return jnp.where(x.sum() > 0, jnp.maximum(x, 0), -x)


@jax.jit
def relu_or_negate_cond(x):
    return jax.lax.cond(x.sum() > 0, lambda x: jnp.maximum(x, 0), lambda x: -x, x)


for v in (jnp.array([1.0, -2.0, 3.0]), jnp.array([-1.0, -2.0, 3.0])):
    print(v, relu_or_negate(v), relu_or_negate_where(v), relu_or_negate_cond(v))

# %% [markdown]
# The price of `jit` is the compilation (once per input shape and dtype) and the tracing rules
# above; section 1.8 measures what it buys.

# %% [markdown]
# ## 1.4 Automatic differentiation
#
# `jax.grad(g)` takes a function and returns a **new function** that computes its gradient.
# Under the hood it traces `g`, and applies the chain rule to the recorded operations in
# reverse order: **reverse-mode automatic differentiation** {cite}`baydin2018automatic`, exact
# up to floating-point rounding, at a cost of a small multiple of one evaluation of `g`.
#
# Take $g(x) = \sum_i \sin(x_i)\,x_i^2$, whose gradient is
# $\partial g / \partial x_i = \cos(x_i)\,x_i^2 + 2 x_i \sin(x_i)$.


# %%
def g(x: jax.Array) -> jax.Array:
    return (jnp.sin(x) * x**2).sum()


def g_grad_exact(x: np.ndarray) -> np.ndarray:
    """The gradient by hand, in float64 NumPy: the reference for the errors below."""
    return np.cos(x) * x**2 + 2 * x * np.sin(x)


x0 = jnp.array([0.5, -1.0, 2.0, 3.0])
value, grad = jax.value_and_grad(g)(x0)
print("jax.grad        :", jax.grad(g)(x0))
print("value_and_grad  :", value, grad)
print("by hand         :", g_grad_exact(np.asarray(x0, np.float64)))
second = jax.grad(jax.grad(jnp.sin))(1.0)
print(f"2nd derivative of sin at 1: {float(second):.6f}; -sin(1) = {-math.sin(1):.6f}")

# %% [markdown]
# Transformations compose: `jax.grad(jax.grad(jnp.sin))` differentiates twice (the second
# derivative printed above), `jax.jit(jax.grad(g))` compiles the gradient. There is no tape to
# inspect: the gradient is a function, and its result a plain array. PyTorch's `torch.func.grad`
# is modelled on the same idea.

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
# and float64 (inside `jax.enable_x64`), against the autodiff error. The reference is the
# float64 formula above, so "error" means distance from that formula, itself rounded to float64.


# %%
def central_difference(fn, x: jax.Array, h: float) -> jax.Array:
    """Estimate the gradient of scalar ``fn`` at ``x``: two evaluations per coordinate."""
    return jnp.stack(
        [(fn(x.at[i].add(h)) - fn(x.at[i].add(-h))) / (2 * h) for i in range(x.size)]
    )


exact = g_grad_exact(np.asarray(x0, np.float64))
steps = np.logspace(-9, 0, 28)
errors, autodiff_error = {}, {}  # dtype -> max |error| (for each step size)
for dtype in ("float32", "float64"):
    with jax.enable_x64(dtype == "float64"):
        xd = x0.astype(dtype)
        estimates = [
            np.asarray(central_difference(g, xd, h), np.float64) for h in steps
        ]
        errors[dtype] = [np.abs(est - exact).max() for est in estimates]
        autodiff_error[dtype] = np.abs(
            np.asarray(jax.grad(g)(xd), np.float64) - exact
        ).max()
for dtype, errs in errors.items():
    best = int(np.argmin(errs))
    fd = f"best finite-difference error {errs[best]:.1e} at h={steps[best]:.0e}"
    print(f"{dtype}: {fd}; autodiff error {autodiff_error[dtype]:.1e}")

# %%
# A log axis cannot show 0: an error of exactly 0 is drawn on this floor, and labelled so.
FLOOR = 1e-17
fig, ax = plt.subplots(figsize=(6, 3.6))
for (dtype, errs), color in zip(errors.items(), ("C0", "C1"), strict=True):
    ax.loglog(
        steps,
        np.maximum(errs, FLOOR),
        "o-",
        ms=3,
        color=color,
        label=f"central diff., {dtype}",
    )
    err = autodiff_error[dtype]
    ax.axhline(
        max(err, FLOOR),
        ls="--",
        color=color,
        label=f"jax.grad, {dtype}" + (" (0, drawn at 1e-17)" if err == 0 else ""),
    )
ax.set(
    xlabel="step h",
    ylabel="max |error| over the 4 coordinates",
    title="Gradient error: finite differences vs autodiff",
)
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# The V shape is the trade-off between truncation (right) and rounding (left); its best point
# is still far above autodiff in float32. Where the float64 autodiff error prints as 0, it
# agrees bit for bit with the float64 formula: both are the true derivative rounded to float64
# along the same chain of operations, not the true derivative itself. The cost problem is
# worse: finite differences need two evaluations *per parameter*. For the MLP trained below
# (its parameter count is printed there) that is two forward passes per parameter for one
# gradient, where backpropagation needs about one forward and one backward pass
# {cite}`griewank2008evaluating`. Finite differences remain useful for one thing: *checking* a
# gradient implementation on a few coordinates.

# %% [markdown]
# ## 1.5 Devices
#
# JAX lists its devices with `jax.devices()`: CPU cores appear as one `CpuDevice`, GPUs and TPUs
# as one device each. New arrays land on the default device (the first accelerator, if any),
# and `jax.device_put` moves them. Course code asks `H.default_device()` once, so the same
# notebook runs on a laptop and on a GPU.

# %%
print("devices:", jax.devices(), "| default backend:", jax.default_backend())
a_host = np.ones(3, np.float32)
a_dev = jax.device_put(a_host, device)  # a copy on the device
print(type(a_host).__name__, "->", a_dev.devices())

# %% [markdown]
# JAX dispatches **asynchronously**: a call returns once the work is queued, and a result is
# only waited for when you read it (printing, `np.asarray`, `float`) or call
# `jax.block_until_ready`. Timing code must wait, as `H.time_fn` does; a training loop should
# not read values every step.

# %% [markdown]
# ## 1.6 Models: objects and functions
#
# In JAX a model is a **pure function** of its parameters and inputs. Parameters are a
# *pytree*: any nesting of dicts, lists and tuples with arrays at the leaves, which
# `jax.tree.map` and `jax.grad` handle as a whole. This is JAX's functional style:


# %%
def linear(params: dict, x: jax.Array) -> jax.Array:
    return x @ params["w"] + params["b"]  # (B, 3) @ (3, 2) + (2,)


kw, kx = jax.random.split(jax.random.key(0))
params = {"w": jax.random.normal(kw, (3, 2)) / jnp.sqrt(3.0), "b": jnp.zeros(2)}
inputs = jax.random.normal(kx, (4, 3))  # (B=4, 3)
print(jax.tree.map(jnp.shape, params))
print(linear(params, inputs))  # (4, 2)

# %% [markdown]
# Flax NNX brings back **objects**: an `nnx.Module` owns its parameters, as in PyTorch, and
# calling it runs its `__call__` method (section 1.7 writes one). `nnx.Linear(3, 2)` computes
# $y = x W + b$ and stores its kernel as `(in, out)`, here `(3, 2)`; PyTorch stores the same
# matrix transposed, `(out, in)`. Flax initialises the kernel from a truncated normal
# distribution with variance $1/\text{in}$ ("LeCun normal") and the bias with zeros (PyTorch:
# uniforms for both).
# Modules take their random keys explicitly, through `nnx.Rngs`. `nnx.split` separates a
# module into a static description (`graphdef`) and its state as a pytree, and `nnx.merge`
# rebuilds it: the bridge to JAX's transformations, which only see pytrees.

# %%
layer = nnx.Linear(3, 2, rngs=nnx.Rngs(0))  # kernel (3, 2) = (in, out), bias (2,)
graphdef, state = nnx.split(layer)
print(jax.tree.map(jnp.shape, nnx.to_pure_dict(state)))  # plain dicts, for printing
print("bias starts at zero:", bool((layer.bias[...] == 0).all()))
same = nnx.merge(graphdef, state)(inputs)
doubled_layer = nnx.merge(graphdef, jax.tree.map(lambda p: 2 * p, state))
print("same output:", bool(jnp.allclose(same, layer(inputs))))
print(
    "doubled parameters, doubled output:",
    bool(jnp.allclose(doubled_layer(inputs), 2 * layer(inputs))),
)

# %% [markdown]
# The state `nnx.split` returns holds *every* variable of the module, not only its parameters:
# batch normalisation's running statistics and the random-number state of dropout (a key and a
# counter) are there too. Filters split it further, `nnx.Param` first and `...` (everything
# else) after. Such layers also behave differently in training and in evaluation, which
# `model.train()` and `model.eval()` switch, as in PyTorch (where `state_dict()` likewise holds
# buffers that `parameters()` leaves out).

# %%
rngs = nnx.Rngs(0)
net = nnx.Sequential(
    nnx.Linear(3, 4, rngs=rngs),
    nnx.BatchNorm(4, rngs=rngs),
    nnx.Dropout(0.1, rngs=rngs),
)
_, state = nnx.split(net)
is_variable = lambda v: isinstance(v, nnx.Variable)  # noqa: E731
print(
    "variable types:",
    sorted({type(v).__name__ for v in jax.tree.leaves(state, is_leaf=is_variable)}),
)
_, params, rest = nnx.split(net, nnx.Param, ...)
print("not parameters:", jax.tree.map(jnp.shape, nnx.to_pure_dict(rest)))
net.eval()
print(
    "batch norm uses running averages after eval():", net.layers[1].use_running_average
)

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
# data set fits on the device, so it is copied there once. Labels become `int32`, JAX's
# default integer (64-bit integers need 64-bit mode); Optax's loss takes any integer labels,
# where PyTorch's `F.cross_entropy` rejects `int32` and expects `int64`.

# %%
x_train = H.images_to_vectors(x_train_u8)  # (N, 784) float32 in [0, 1]
x_test = H.images_to_vectors(x_test_u8)
xs = jax.device_put(x_train, device)  # (N, 784)
ys = jax.device_put(y_train.astype(np.int32), device)  # (N,) int32
xs_test = jax.device_put(x_test, device)
ys_test = jax.device_put(y_test.astype(np.int32), device)
print(xs.dtype, xs.shape, ys.dtype, ys.shape)

# %% [markdown]
# The model is a **multi-layer perceptron**: linear layers with a ReLU between each pair, the
# last one mapping to the 10 logits. The whole model is a class with two methods: `__init__`
# creates the layers (and so the parameters, drawn from the keys in `rngs`), `__call__` says
# what a call computes. Its widths come from this scale's `sizes.hidden`; the printout shows
# the result.


# %%
class MLP(nnx.Module):
    def __init__(self, widths: Sequence[int], *, rngs: nnx.Rngs) -> None:
        pairs = itertools.pairwise(widths)  # e.g. (784, 256, 10)
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in pairs])

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, 784)
        for layer in self.layers[:-1]:
            x = nnx.relu(layer(x))  # (B, width)
        return self.layers[-1](x)  # (B, 10) logits


model = MLP((784, *sizes.hidden, 10), rngs=nnx.Rngs(0))
print(jax.tree.map(jnp.shape, nnx.to_pure_dict(nnx.state(model, nnx.Param))))
print(f"{H.count_params(model):,} parameters")
k0 = model.layers[0].kernel[...]  # (784, width): (in, out)
predicted_std = 1 / math.sqrt(784)  # LeCun normal: variance 1/in
print(f"first kernel {k0.shape}: std {k0.std():.4f}, predicted {predicted_std:.4f}")

# %% [markdown]
# One **training step**: predict, measure the loss, differentiate it with respect to the
# model's parameters, and let the optimiser (Optax's Adam) update them. `nnx.value_and_grad`
# is `jax.value_and_grad` for modules; `nnx.jit` compiles the step, model and optimizer
# included. There is nothing to reset: gradients are return values, not state. The step
# returns the loss computed before its update, so step 0's loss is the untrained model's, which
# should be near $\ln 10$. The PyTorch page starts from another value: PyTorch initialises
# differently (two uniforms instead of a truncated-normal kernel and zero bias), from different
# random numbers.

# %%
optimizer = nnx.Optimizer(model, optax.adam(sizes.learning_rate), wrt=nnx.Param)


@nnx.jit
def train_step(model: nnx.Module, optimizer: nnx.Optimizer, x, y) -> jax.Array:
    def loss_fn(model):
        logits = model(x)  # (B, 10)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    # grads: a pytree shaped like the model's parameters
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)  # updates the model's parameters in place
    return loss


xb, yb = xs[:256], ys[:256]  # (256, 784), (256,)
for step in range(3):
    loss = train_step(model, optimizer, xb, yb)
    print(f"step {step}: loss on this batch {float(loss):.4f}")
print(f"ln 10 = {math.log(10):.4f}")

# %% [markdown]
# One **epoch** is that step over shuffled batches covering the training set. Evaluation runs
# a jitted step that computes no gradient (JAX differentiates only when asked, so there is no
# tape to switch off), with the model in evaluation mode (`model.eval()`, which matters for
# layers such as dropout and batch norm). The accuracy is the `argmax` and comparison of
# section 1.2. The training loop stores the losses as arrays and reads none back until the
# end, so Python never stops to wait for the device and can queue the next step while the
# current one runs.


# %%
@nnx.jit
def count_correct(model: nnx.Module, x: jax.Array, y: jax.Array) -> jax.Array:
    logits = model(x)  # (b, 10)
    return (logits.argmax(axis=1) == y).sum()  # number of True in (b,)


def evaluate(model: nnx.Module, x: jax.Array, y: jax.Array, batch=1024) -> float:
    """Accuracy of ``model`` on inputs ``x`` (N, 784) with labels ``y`` (N,)."""
    model.eval()
    correct = sum(
        int(count_correct(model, x[i : i + batch], y[i : i + batch]))
        for i in range(0, len(x), batch)
    )
    return correct / len(x)


model.train()  # training mode; evaluate() switches to eval mode, so set it every epoch
# This epoch's shuffle; a loop over epochs would split a fresh key for each.
order = jax.random.permutation(jax.random.key(1), len(xs))
losses = []
for i in range(0, len(order) - sizes.batch_size + 1, sizes.batch_size):
    idx = order[i : i + sizes.batch_size]  # (B,) drops the last, incomplete batch
    losses.append(train_step(model, optimizer, xs[idx], ys[idx]))
accuracy = evaluate(model, xs_test, ys_test)
print(
    f"one epoch: {len(losses)} steps, last loss {float(losses[-1]):.4f}, "
    f"test accuracy {accuracy:.2%}"
)

# %% [markdown]
# This is what `H.fit` does, for as many epochs as asked, with a progress bar and a record of
# every loss and accuracy. Its `H.ArrayLoader` is the shuffle-and-slice above, for data sets
# that fit on the device. JAX has no loader for the others: Grain and `tf.data` fill that role,
# or PyTorch's `torch.utils.data.DataLoader` yielding NumPy arrays. `H.fit` reads the loss back
# only every 50 steps for the progress bar and once per epoch for the history. Below, a fresh
# model trained with it, timed from the call to the return: training, evaluation after each
# epoch, and the compilation of its steps.

# %%
model = MLP((784, *sizes.hidden, 10), rngs=nnx.Rngs(0))
optimizer = nnx.Optimizer(model, optax.adam(sizes.learning_rate), wrt=nnx.Param)
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
    f"{device.platform}, {examples / fit_seconds:,.0f} training examples/s over the whole call"
)
print(f"(the first step, with compilation, took {history.first_step_seconds:.2f} s)")
print("epoch  train loss  train acc  test loss  test acc")
for row in history.epochs:
    print(
        f"{row['epoch']:5.0f}  {row['train_loss']:10.4f}  {row['train_accuracy']:9.2%}"
        f"  {row['test_loss']:9.4f}  {row['test_accuracy']:8.2%}"
    )
fig = H.plot_history(history, title=f"MLP on MNIST, JAX ({H.current_scale()} scale)")

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
title = "MNIST test set, JAX MLP"
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
# dispatch overhead, up to the scale's largest (10, 100, ..., 10⁶ at cpu scale).
ns = [10**k for k in range(1, 10) if 10**k < timing.n] + [timing.n]

# %%
per_call = {"eager": [], "jax.jit": []}  # seconds per call, one per n
compile_seconds = []  # jit compiles once per input shape: once per n here
for n, k in zip(ns, jax.random.split(jax.random.key(2), len(ns)), strict=True):
    v = jax.random.normal(k, (n,))
    start = time.perf_counter()
    f_compiled = jax.jit(f).lower(v).compile()  # trace and compile for this shape
    compile_seconds.append(time.perf_counter() - start)
    per_call["eager"].append(H.time_fn(f, v, repeats=timing.repeats))
    per_call["jax.jit"].append(H.time_fn(f_compiled, v, repeats=timing.repeats))
print(
    f"{'n':>10}  {'eager µs/call':>13} {'ns/element':>10}"
    f"  {'jit µs/call':>11} {'ns/element':>10}  {'compile ms':>10}"
)
for n, eager, compiled, c in zip(
    ns, per_call["eager"], per_call["jax.jit"], compile_seconds, strict=True
):
    print(
        f"{n:>10,}  {eager * 1e6:13.1f} {eager / n * 1e9:10.3f}"
        f"  {compiled * 1e6:11.1f} {compiled / n * 1e9:10.3f}  {c * 1e3:10.1f}"
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
fig.suptitle(f"f(x) = sin(2x + 1)² + cos(x), JAX on {device.platform}")
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the left panel at small `n`: the eager time per call hardly changes from the smallest
# length to the next, because it is almost all dispatch, not arithmetic; the right panel shows
# the same fact as a time per element that falls as `n` grows. Under `jit` the six dispatches
# become one call, so its time per call at small `n` is the fixed cost of a single dispatch. At
# large lengths (`timing.n` is 1,000,000 at cpu scale, 10,000,000 at gpu scale) the time per
# call grows in proportion to `n`, and the cost is the work per element: a sine and a cosine,
# and, in eager mode, six passes over memory that each write an intermediate array and read it
# back. Fusion removes those passes; what remains after compiling is the arithmetic and one
# read and one write per element. How the cost splits depends on the hardware: on a GPU,
# element-wise code like this is memory-bound, so the saved memory traffic is nearly all of
# fusion's gain; on a CPU the sine and cosine weigh more. At those scales the table shows this
# page's split. At smoke scale, CI's quick check, the largest length is 10,000, where the time
# per call need not yet grow in proportion to `n`. `jit` compiles once per input shape, which
# the last column measures; PyTorch's `torch.compile(dynamic=True)` instead compiles one
# program for every length.

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
# Next: [the PyTorch half of this chapter](in-pytorch.ipynb), then the
# [lab](../../labs/01-introduction/in-jax.ipynb), whose self-checks tell you when each exercise
# is right. Works cited are listed in the [bibliography](../../bibliography.md).
