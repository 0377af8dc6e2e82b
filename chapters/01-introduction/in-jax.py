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
# This is the JAX half of chapter 1; the [PyTorch half](in-pytorch.ipynb) tells the same story in
# the same order, so you can read them side by side. By the end you will know
#
# * where PyTorch and JAX come from and what each is built around;
# * how JAX arrays behave (and where PyTorch tensors behave differently);
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
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx

from helpers import jax as H

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
# `jax.random.split` derives independent keys. There is no hidden global state, so a function's
# randomness depends only on the key you pass, even when JAX compiles or parallelises it.

# %%
key = jax.random.key(0)
first = jax.random.uniform(key, (3,))
again = jax.random.uniform(key, (3,))  # same key, same numbers
key, subkey = jax.random.split(key)
print(first, again, jax.random.uniform(subkey, (3,)), sep="\n")

# %% [markdown]
# ## 1.3 Eager execution, graphs and compilation
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
# `jax.jit` compiles a whole function instead. It first **traces** it: it calls the function
# with abstract *tracers* that carry only shape and dtype, and records each operation in a
# *jaxpr*. The jaxpr of `f` holds exactly its six operations:

# %%
jax.make_jaxpr(f)(jnp.ones(3))

# %% [markdown]
# XLA then compiles the jaxpr for the device, fusing the operations into one kernel. The Python
# code runs only while tracing, once per new input shape and dtype: a `print` inside a jitted
# function prints a tracer, once, and never again. A branch on a traced value cannot be decided
# at all, because the tracer has no value; `jnp.where` (or `jax.lax.cond`) expresses it as an
# operation instead. PyTorch's tracer (`torch.fx`) has the same limit.


# %%
@jax.jit
def traced_twice(x):
    print("tracing with", x)  # runs at trace time only
    return x * 2


traced_twice(jnp.ones(3))  # traces, compiles, runs
# Same shape and dtype: reuses the compiled code and prints nothing.
traced_twice(jnp.zeros(3))
try:
    jax.jit(relu_or_negate)(jnp.array([1.0, -2.0, 3.0]))
except jax.errors.TracerBoolConversionError as e:
    print("TracerBoolConversionError:", str(e).splitlines()[0])


@jax.jit
def relu_or_negate_jit(x):
    # Both branches are computed; the condition selects one, on the device.
    return jnp.where(x.sum() > 0, jnp.maximum(x, 0), -x)


print(relu_or_negate_jit(jnp.array([1.0, -2.0, 3.0])))

# %% [markdown]
# What does each style cost? In eager mode every operation is a separate dispatch from Python,
# which takes microseconds whatever the size of the array; under `jit` the whole function is
# one call to compiled, fused code. Below, the median of `timing.repeats` calls (compilation
# happens in a warm-up call and is not counted):

# %%
f_jit = jax.jit(f)
for n in (1_000, timing.n):
    v = jax.random.normal(jax.random.key(1), (n,))
    eager = H.time_fn(f, v, repeats=timing.repeats)
    compiled = H.time_fn(f_jit, v, repeats=timing.repeats)
    print(
        f"n={n:>10,}: eager {eager * 1e6:9.1f} µs, jit {compiled * 1e6:9.1f} µs "
        f"({eager / compiled:4.1f}x faster)"
    )

# %% [markdown]
# On a small array `jit` wins by removing six dispatches' worth of overhead. On a large one the
# arithmetic itself (a sine and a cosine per element) takes most of the time, and fusion saves
# only the five intermediate results written to memory and read back; how much that is worth
# depends on the hardware, as the second row shows for this page's device. The price of `jit`
# is the compilation (once per input shape) and the tracing rules above.
#
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
print("2nd derivative of sin at 1:", jax.grad(jax.grad(jnp.sin))(1.0), "= -sin(1)")

# %% [markdown]
# Transformations compose: `jax.grad(jax.grad(f))` differentiates twice, `jax.jit(jax.grad(f))`
# compiles the gradient. PyTorch's `torch.func.grad` is modelled on the same idea.
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
# and float64 (inside `jax.enable_x64`), against the autodiff error:


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
fig, ax = plt.subplots(figsize=(6, 3.6))
for (dtype, errs), color in zip(errors.items(), ("C0", "C1"), strict=True):
    ax.loglog(
        steps,
        np.maximum(errs, 1e-17),
        "o-",
        ms=3,
        color=color,
        label=f"central diff., {dtype}",
    )
    ax.axhline(
        max(autodiff_error[dtype], 1e-17),
        ls="--",
        color=color,
        label=f"jax.grad, {dtype}",
    )
ax.set(
    xlabel="step h",
    ylabel="max |error|",
    title="Gradient error: finite differences vs autodiff",
)
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# The V shape is the trade-off between truncation (right) and rounding (left); its best point
# is still far above autodiff in float32. The cost problem is worse: finite differences need
# two evaluations *per parameter*. For the MLP trained below (its parameter count is printed
# there) that is two forward passes per parameter for one gradient, where backpropagation needs
# about one forward and one backward pass {cite}`griewank2008evaluating`. Finite differences
# remain useful for one thing: *checking* a gradient implementation on a few coordinates.
#
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
#
# ## 1.6 Models: functions and objects
#
# In JAX a model is a **pure function** of its parameters and inputs. Parameters are a
# *pytree*: any nesting of dicts, lists and tuples with arrays at the leaves, which
# `jax.tree.map` and `jax.grad` handle as a whole. This is JAX's functional style:


# %%
def linear(params: dict, x: jax.Array) -> jax.Array:
    return x @ params["w"] + params["b"]  # (B, 3) @ (3, 2) + (2,)


kw, kx = jax.random.split(jax.random.key(0))
params = {"w": jax.random.normal(kw, (3, 2)) / jnp.sqrt(3.0), "b": jnp.zeros(2)}
inputs = jax.random.normal(kx, (4, 3))
print(jax.tree.map(jnp.shape, params))
print(linear(params, inputs))

# %% [markdown]
# Flax NNX brings back **objects**: an `nnx.Module` owns its parameters, as in PyTorch.
# `nnx.split` separates a module into a static description (`graphdef`) and its parameters as a
# pytree (`state`), and `nnx.merge` rebuilds it: the bridge to JAX's transformations, which
# only see pytrees.

# %%
layer = nnx.Linear(3, 2, rngs=nnx.Rngs(0))  # kernel (3, 2), bias (2,)
graphdef, state = nnx.split(layer)
same = nnx.merge(graphdef, state)(inputs)
doubled = nnx.merge(graphdef, jax.tree.map(lambda p: 2 * p, state))(inputs)
print(jax.tree.map(jnp.shape, nnx.to_pure_dict(state)))  # plain dicts, for printing
print("same output:", bool(jnp.allclose(same, layer(inputs))))
print(
    "doubled parameters, doubled output:",
    bool(jnp.allclose(doubled, 2 * layer(inputs))),
)

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
# gathered there without copies. NNX modules take their PRNG keys explicitly, through `nnx.Rngs`.

# %%
x_train = H.images_to_vectors(x_train_u8)  # (N, 784) float32 in [0, 1]
x_test = H.images_to_vectors(x_test_u8)
model = H.MLP(784, sizes.hidden, 10, rngs=nnx.Rngs(0))
print(jax.tree.map(jnp.shape, nnx.to_pure_dict(nnx.state(model, nnx.Param))))
print(f"{H.count_params(model):,} parameters")

# %% [markdown]
# One **training step**, written out: predict, measure the loss (cross-entropy between the
# logits and the true labels), differentiate it with respect to the model's parameters, and let
# the optimiser (Optax's Adam {cite}`kingma2015adam`) update them. `nnx.value_and_grad` is
# `jax.value_and_grad` for modules; `nnx.jit` compiles the step, model and optimizer included.
# There is nothing to reset: gradients are return values, not state.

# %%
optimizer = nnx.Optimizer(model, optax.adam(sizes.learning_rate), wrt=nnx.Param)
xb = jnp.asarray(x_train[:256])
yb = jnp.asarray(y_train[:256], jnp.int32)


@nnx.jit
def train_step(model: nnx.Module, optimizer: nnx.Optimizer, x, y) -> jax.Array:
    def loss_fn(model):
        logits = model(x)  # (B, 10)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    # grads: a pytree shaped like the model's parameters
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)  # updates the model's parameters in place
    return loss


for step in range(5):
    loss = train_step(model, optimizer, xb, yb)
    print(f"step {step}: loss on this batch {float(loss):.4f}")

# %% [markdown]
# The loss on the batch falls. `H.fit` runs the same step over shuffled batches for several
# epochs, with a progress bar, and records the loss of every step and the test metrics after
# every epoch. (It reads losses back once per epoch, so the device never waits for Python.)

# %%
train_loader = H.ArrayLoader(
    x_train, y_train, sizes.batch_size, shuffle=True, drop_last=True
)
test_loader = H.ArrayLoader(x_test, y_test, 1024)
history = H.fit(
    model, optimizer, train_loader, epochs=sizes.epochs, eval_loader=test_loader
)
last = history.epochs[-1]
speed = f"{last['examples_per_second']:,.0f} training examples/s on {device.platform}"
print(
    f"after {sizes.epochs} epochs: test accuracy {last['test_accuracy']:.2%}, {speed}"
)
print(f"first step, including compilation: {history.first_step_seconds:.2f} s")
fig = H.plot_history(history, title=f"MLP on MNIST, JAX ({H.current_scale()} scale)")

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
# Next: [the PyTorch half of this chapter](in-pytorch.ipynb), then the
# [lab](../../labs/01-introduction/in-jax.ipynb), whose self-checks tell you when each exercise is
# right. Works cited are listed in the [bibliography](../../bibliography.md).
