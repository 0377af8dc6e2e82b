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
# # 4. JAX in depth: JAX
#
# This is the JAX half of chapter 4; the [PyTorch half](in-pytorch.ipynb) teaches the same
# ideas with `torch.func` and `torch.compile`, in the same order. Chapters 1-3 used JAX's
# transformations as a recipe; this chapter takes them apart:
#
# * `grad` and its relatives, and when forward mode beats reverse mode (measured);
# * `jit`: tracing, static arguments, recompilation (counted), control flow, side effects;
# * `vmap`: per-example gradients and their norms, the core of DP-SGD;
# * pytrees and explicit random keys;
# * sharding a computation over 8 (simulated) devices, and data-parallel training;
# * Flax NNX and Optax in full, MNIST trained to chapter 3's accuracy at `cpu` and `gpu` scale
#   (asserted there; a `smoke` run only checks that both networks learn), and Orbax checkpoints.

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

# %% [markdown]
# Section 4.5 spreads work over 8 devices. A CPU is one device unless JAX is told, before its
# first operation, to present it as several: `jax.config.update("jax_num_cpu_devices", 8)`,
# right after `import jax`. (The older way, `--xla_force_host_platform_device_count=8` in
# `XLA_FLAGS`, is read at the same moment; setting it means editing an environment variable
# that may already hold other flags, which the config option avoids.) On a GPU runtime the 8
# CPU devices come in addition to the GPU.

# %%
import jax

jax.config.update("jax_num_cpu_devices", 8)  # before any JAX operation
# The other imports come after this line on purpose.

import functools
import tempfile
import time
from pathlib import Path

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from matplotlib.ticker import MaxNLocator
from tqdm import tqdm

from helpers import jax as H
from helpers.distributed import measure_interleaved

# Every size this notebook uses comes from helpers/scale/foundations.py.
sizes = H.sizes("transforms")
device = H.default_device()
print("CPU devices:", len(jax.devices("cpu")))
H.runtime_info()  # the cell's last expression: shown below, as on the PyTorch page

# %% [markdown] tags=["shared"]
# ## 4.1 Transformations: derivatives as functions
#
# A **function transformation** takes a function and returns another. The gradient transformation
# takes $f: \mathbb{R}^n \to \mathbb{R}$ and returns $\nabla f: \mathbb{R}^n \to \mathbb{R}^n$,
# computed by **automatic differentiation**: the program of $f$ is traced into primitive
# operations, and each primitive's known derivative is chained backwards (reverse mode) or
# forwards (forward mode). The result is exact up to floating-point rounding; no step size is
# involved.

# %% [markdown]
# ```{admonition} The outline says
# :class: note
# The outline calls `jax.grad` "numerical differentiation by finite differences". It is
# automatic differentiation: `jax.make_jaxpr` shows the program `grad` builds, made of the
# primitives' derivatives (`cos` for `sin`), with no step size anywhere; and it matches the
# exact derivative, where finite differences in float32 are off at every step size (a large
# step truncates the Taylor series, a small one loses digits to rounding).
# ```

# %%
print(jax.make_jaxpr(jax.grad(jnp.sin))(1.0))
x0 = jnp.float32(1.0)
for h in (1e-2, 1e-4, 1e-6):
    fd = (jnp.sin(x0 + h) - jnp.sin(x0)) / h
    print(f"finite difference h={h:g}: error {abs(float(fd - jnp.cos(x0))):.2e}")
print(
    f"jax.grad:                  error {abs(float(jax.grad(jnp.sin)(x0) - jnp.cos(x0))):.2e}"
)

# %% [markdown]
# `grad` wants a function with one **scalar** output: the gradient of a vector output is not
# defined (it would be a Jacobian). The outline's `jax.grad(jnp.sin)(jnp.array([0.0]))`
# passes a one-element *array*, so `sin` returns an array of shape `(1,)`:

# %%
try:
    jax.grad(jnp.sin)(jnp.array([0.0]))
except TypeError as e:
    print(f"{type(e).__name__}: {str(e).splitlines()[0]}")

# %% [markdown]
# Three fixes, depending on what you want: the derivative at each point (`vmap(grad)`), the
# gradient of a sum (the same numbers here, since the points do not interact), or a
# vector-Jacobian product `vjp` with a vector of ones (what `grad` does inside, for one scalar).

# %%
xs = jnp.linspace(0.0, 3.0, 4)  # (4,)
per_point = jax.vmap(jax.grad(jnp.sin))(xs)  # (4,): d sin / dx at each point
of_sum = jax.grad(lambda x: jnp.sin(x).sum())(xs)  # (4,)
_, pullback = jax.vjp(jnp.sin, xs)
(via_vjp,) = pullback(jnp.ones_like(xs))  # (4,)
print(per_point, of_sum, via_vjp, jnp.cos(xs), sep="\n")
np.testing.assert_allclose(per_point, jnp.cos(xs), rtol=1e-6)
np.testing.assert_allclose(via_vjp, of_sum, rtol=1e-6)

# %% [markdown] tags=["shared"]
# Training needs the loss *and* its gradient, and often something else the forward pass
# computed (the logits, for an accuracy). `value_and_grad` returns the value with the
# gradient, and `has_aux=True` lets the function return `(loss, anything)`: the gradient is
# taken of the first entry only.


# %%
def loss_and_logits(w, x, y):
    logits = x @ w  # (B, 3)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, logits


kx, kw = jax.random.split(jax.random.key(0))
x_small = jax.random.normal(kx, (8, 5))  # (B=8, D=5)
y_small = jnp.arange(8) % 3  # (8,) labels in 0..2
w_small = jax.random.normal(kw, (5, 3)) * 0.1  # (D, C)
(loss, logits), g = jax.jit(jax.value_and_grad(loss_and_logits, has_aux=True))(
    w_small, x_small, y_small
)
print(f"loss {float(loss):.4f}, logits {logits.shape}, gradient {g.shape}")

# %% [markdown] tags=["shared"]
# For $f: \mathbb{R}^n \to \mathbb{R}^m$ the whole Jacobian $J \in \mathbb{R}^{m \times n}$ can
# be built two ways. **Forward mode** pushes one input direction through the program per pass
# (a Jacobian-vector product, one column of $J$): $n$ passes. **Reverse mode** pulls one output
# direction back per pass (a vector-Jacobian product, one row): $m$ passes. So forward mode is
# cheaper for *tall* Jacobians (few inputs, many outputs), reverse mode for *wide* ones (many
# inputs, few outputs: every loss, which is why training uses reverse mode). The Hessian is
# the Jacobian of the gradient, usually built forward-over-reverse.


# %%
def f_small(x):  # R^3 -> R^2
    return jnp.stack([x[0] * x[1] ** 2, jnp.sin(x[2]) * x[0]])


x3 = jnp.array([1.0, 2.0, 3.0])
# Each transformed function is jitted: one compiled program instead of one per primitive.
J_fwd, J_rev = (
    jax.jit(jax.jacfwd(f_small))(x3),
    jax.jit(jax.jacrev(f_small))(x3),
)  # (2, 3)
print("Jacobian (2, 3):\n", J_fwd)
np.testing.assert_allclose(J_fwd, J_rev, rtol=1e-6)


def cubic(x):  # R^3 -> R
    return jnp.sum(x**3) + x[0] * x[1]


hess = jax.jit(jax.hessian(cubic))(x3)  # (3, 3)
print("Hessian (3, 3):\n", hess)
np.testing.assert_allclose(hess, jax.jit(jax.jacfwd(jax.jacrev(cubic)))(x3))

# %% [markdown] tags=["shared"]
# The timing: a *wide* function $\mathbb{R}^n \to \mathbb{R}$ and a *tall* one
# $\mathbb{R} \to \mathbb{R}^n$, each built from the same matrix, their Jacobians computed both
# ways (median of several calls).

# %%
n = sizes.jacobian_width
A = jax.random.normal(jax.random.key(1), (n, n)) / jnp.sqrt(n)  # (n, n)


def wide(x):  # (n,) -> ()
    return jnp.sum(jnp.tanh(A @ jnp.tanh(A @ x)))


def tall(t):  # () -> (n,)
    return jnp.tanh(A @ jnp.tanh(A @ (t * jnp.ones(n))))


rows = []
for name, fn, arg in [
    ("wide R^n -> R", wide, jnp.ones(n)),
    ("tall R -> R^n", tall, 0.5),
]:
    jf, jr = jax.jit(jax.jacfwd(fn)), jax.jit(jax.jacrev(fn))
    np.testing.assert_allclose(jf(arg), jr(arg), rtol=1e-4, atol=1e-5)
    t_f = H.time_fn(jf, arg, repeats=sizes.repeats)
    t_r = H.time_fn(jr, arg, repeats=sizes.repeats)
    rows.append((name, t_f, t_r))
print(f"n = {n}\n{'function':<16}{'jacfwd (ms)':>13}{'jacrev (ms)':>13}{'faster':>9}")
for name, t_f, t_r in rows:  # within 10 % of each other: a tie
    faster = (
        "tie" if abs(t_f - t_r) < 0.1 * min(t_f, t_r) else "fwd" if t_f < t_r else "rev"
    )
    print(f"{name:<16}{t_f * 1e3:>13.3f}{t_r * 1e3:>13.3f}{faster:>9}")

# %% [markdown] tags=["shared"]
# By the count of passes, reverse mode should win on the wide function and forward mode on
# the tall one, by up to the factor of passes saved; the table says whether it did here ("tie":
# the two times within 10 % of each other). `jacfwd` and `jacrev` run their passes (one per
# input, or one per output) as one batched computation, through `vmap`: the count of passes
# decides the work, not the number of Python calls. At small sizes the fixed cost of each call
# can hide the difference: run this notebook at `cpu` scale (`BOOK_SCALE` unset on a CPU
# machine) to see it grow.

# %% [markdown] tags=["shared"]
# ## 4.2 Compilation: tracing, recompilation and control flow
#
# A compiler for array programs first needs the program. Calling the compiled function the first
# time **traces** the Python function: it runs once on abstract values that carry only a shape
# and a dtype, records every array operation, and compiles that record for the device. Later
# calls with the same shapes and dtypes reuse the compiled program: in JAX they do not run the
# Python code at all, while PyTorch's compiler still runs its side effects (below). A new shape,
# a new dtype or a new value of a *static* argument means a new trace and a new compilation.

# %% [markdown]
# Counting compilations: a Python side effect (here appending to a list) runs only while
# tracing, so it counts traces; JAX's monitoring hooks report each backend compilation by
# name (`/jax/core/compile/backend_compile_duration`), a supported way to count them from
# outside any function. (PyTorch's compiler replays such side effects at every call, so its
# page counts in the compiler's backend instead.)

# %%
traces: list[tuple] = []
compiles: list[str] = []


def on_event(name: str, seconds: float, **kwargs) -> None:
    if name == "/jax/core/compile/backend_compile_duration":
        compiles.append(name)


jax.monitoring.register_event_duration_secs_listener(on_event)


@jax.jit
def scaled_norm(x, scale):
    traces.append(x.shape)  # runs at trace time only
    return scale * jnp.sqrt(jnp.sum(x**2))


for shape in [(3,), (3,), (4,), (3,), (4,)]:
    x_in = jnp.ones(shape)  # created first: making it compiles a small program too
    before = len(compiles)
    scaled_norm(x_in, 2.0)
    print(f"shape {shape}: compiled {len(compiles) - before} time(s)")
print("traces:", traces)

# %% [markdown]
# A **static** argument is part of the cache key by *value*: a Python `int` or `str` that
# decides the program's structure (a number of layers, a mode). Marking an ordinary numeric
# argument static costs one compilation per value, a common way to recompile every step:

# %%
power = functools.partial(jax.jit, static_argnames="p")(lambda x, p: x**p)
x_in = jnp.ones(3)
before = len(compiles)
for p in [1, 2, 3, 2, 1]:
    power(x_in, p=p)
print(f"5 calls with p in 1, 2, 3: {len(compiles) - before} compilations")

# %% [markdown]
# Python `if` on a traced value fails: while tracing, `x > 0` has no value yet. Branch with
# `lax.cond` (one of two functions), `lax.switch` (one of many), or `jnp.where` (both computed,
# one selected element-wise); loop with `lax.fori_loop` or `lax.scan` (which also stacks the
# per-step outputs), so that the loop is compiled once instead of unrolled.
# (PyTorch's compiler takes the other road: it splits the graph at such an `if` and runs that
# piece in Python, a "graph break" its page counts.)


# %%
@jax.jit
def relu_if(x):
    return x if x > 0 else 0.0


try:
    relu_if(1.0)
except jax.errors.TracerBoolConversionError as e:
    print(f"{type(e).__name__}: {str(e).splitlines()[0]}")


@jax.jit
def branches(x, k):
    by_cond = jax.lax.cond(x > 0, lambda v: v, lambda v: 0.0 * v, x)
    by_switch = jax.lax.switch(k, [jnp.sin, jnp.cos, jnp.tanh], x)
    return by_cond, by_switch


@jax.jit
def cumulative(xs):
    def step(carry, x):  # carry: running sum; emits it at each step
        carry = carry + x
        return carry, carry

    total, running = jax.lax.scan(step, 0.0, xs)
    doubled = jax.lax.fori_loop(0, 3, lambda i, v: 2 * v, total)  # total * 2**3
    return running, doubled


print(jax.tree.map(float, (branches(1.5, 2), branches(-1.5, 0))))  # as plain floats
print(cumulative(jnp.arange(5.0)))

# %% [markdown]
# **Side effects** run at trace time only: a `print` inside a compiled function prints once,
# at the first call, and shows tracers, not numbers. `jax.debug.print` is compiled into the
# program and prints the values at every call.


# %%
@jax.jit
def noisy(x):
    print("python print sees:", x)
    jax.debug.print("jax.debug.print sees: {x}", x=x)
    return x + 1


for v in (1.0, 2.0):
    noisy(v).block_until_ready()

# %% [markdown]
# **Donation** lets the compiled function write its output into an input's memory, which
# halves the memory of an update `params = step(params)`. The donated input is deleted: using it
# again is an error. (A backend that cannot reuse the buffer warns and copies instead.)
# PyTorch needs no donation: its tensors are mutable, and optimizers update them in place.

# %%
step_fn = jax.jit(lambda p: p - 0.1 * p, donate_argnums=0)
params_d = jnp.ones(1000)
new_params = step_fn(params_d)
print("donated input deleted:", params_d.is_deleted())

# %% [markdown]
# **Host round trips**: JAX dispatches work asynchronously and returns at once; reading a value
# on the host (`float(loss)`, `print`, `np.asarray`) waits for the device. Reading the loss
# at every step makes the host wait for every step; collecting them and reading once does not.

# %%
w_host = jax.random.normal(jax.random.key(2), (256, 256)) / 16
sgd_step = jax.jit(lambda w: (w - 0.01 * jnp.tanh(w @ w), jnp.sum(w**2)))
sgd_step(w_host)  # compile


def train_loop(read_each_step):  # sizes.loop_steps steps; every loss read on the host
    w, losses = w_host, []
    for _ in range(sizes.loop_steps):
        w, loss_v = sgd_step(w)
        losses.append(float(loss_v) if read_each_step else loss_v)
    return np.asarray(jnp.stack([jnp.asarray(v) for v in losses]))


# Each loop runs once untimed, then the timed rounds alternate them (median of the rounds):
# timed cold, whichever ran first would pay the warm-up and look the slower.
timings = measure_interleaved(
    {
        "float(loss) every step": functools.partial(train_loop, True),
        "read once at the end": functools.partial(train_loop, False),
    },
    repeats=sizes.repeats,
    warmup=1,
)
for name, t in timings.items():
    print(f"{name:<24} {t.median / sizes.loop_steps * 1e6:8.1f} µs per step")

# %% [markdown] tags=["shared"]
# On a CPU, PyTorch runs each operation before it returns, so reading the loss costs nothing
# extra. JAX dispatches asynchronously on a CPU too: while XLA computes one step, Python
# already dispatches the next, and reading the loss at every step removes that overlap; but the
# overlap is only the time to dispatch a step. So on a CPU neither framework has much to gain,
# and at this size the gap the cell prints can point either way: each line is a median of a
# few rounds of a short loop, and the cell does not measure their noise. On a GPU every read,
# in either framework, is a synchronisation that stalls the queue of kernels, and the gap
# grows.

# %% [markdown] tags=["shared"]
# ## 4.3 Vectorising: per-example gradients
#
# A **vectorising map** turns a function written for one example into one for a batch: it
# adds a batch axis to every operation, without a Python loop. Its best-known use is
# **per-example gradients**: the gradient of the loss of each example separately, which a
# batched loss (a mean) mixes together. Differentially private SGD {cite}`abadi2016deep` needs
# them: it clips each example's gradient to norm at most $C$, averages, and adds noise,
#
# $$
# \begin{aligned}
# \tilde g = \frac{1}{B}\Big(&\sum_{i=1}^{B} g_i \,\min\big(1, C/\lVert g_i\rVert\big)\\
# &+ \mathcal{N}(0, \sigma^2 C^2 I)\Big).
# \end{aligned}
# $$

# %%
B = sizes.batch_size
kx, kw, kb = jax.random.split(jax.random.key(3), 3)
xb = jax.random.normal(kx, (B, 20))  # (B, D)
yb = jax.random.randint(kb, (B,), 0, 4)  # (B,)
params = {"W": jax.random.normal(kw, (20, 4)) * 0.1, "b": jnp.zeros(4)}  # a pytree


def example_loss(params, x, y):  # one example: x (D,), y ()
    logits = x @ params["W"] + params["b"]  # (C,)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)


# The loss of one example, its gradient, mapped over the batch axis of x and y (not params).
per_example_grads = jax.jit(jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0)))
g_vmap = per_example_grads(params, xb, yb)  # {"W": (B, D, C), "b": (B, C)}
one_grad = jax.jit(jax.grad(example_loss))  # one example's gradient, compiled once
one_grad(
    params, xb[0], yb[0]
)  # compile before the clock starts, as for the vmap version
start = time.perf_counter()
g_loop = [
    one_grad(params, xb[i], yb[i])
    for i in tqdm(range(B), desc="one example at a time", unit="example")
]
t_loop = time.perf_counter() - start  # one pass of the Python loop, seconds
for k in ("W", "b"):
    np.testing.assert_allclose(
        g_vmap[k], jnp.stack([g[k] for g in g_loop]), rtol=1e-5, atol=1e-7
    )
print(
    {k: v.shape for k, v in g_vmap.items()},
    "== a Python loop of",
    B,
    "single-example grads",
)

# %% [markdown] tags=["shared"]
# The per-example norm is the norm of all of an example's gradients together, every parameter
# array flattened into one vector. Below: the norms, clipping as in DP-SGD, and the time of the
# vectorised version against the loop.


# %%
@jax.jit
def per_example_norms(params, x, y):
    grads = jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0))(params, x, y)
    squares = [
        jnp.sum(g.reshape(len(x), -1) ** 2, axis=1) for g in jax.tree.leaves(grads)
    ]
    return jnp.sqrt(sum(squares))  # (B,)


norms = per_example_norms(params, xb, yb)
clip = float(jnp.median(norms))
clipped = jax.tree.map(
    lambda g: g * jnp.minimum(1.0, clip / norms).reshape(-1, *[1] * (g.ndim - 1)),
    g_vmap,
)
print(
    f"norms: min {float(norms.min()):.3f}, median {clip:.3f}, max {float(norms.max()):.3f}"
)
t_vmap = H.time_fn(per_example_norms, params, xb, yb, repeats=sizes.repeats)
print(
    f"B={B}: vmap {t_vmap * 1e3:.2f} ms, Python loop (one pass) {t_loop * 1e3:.1f} ms"
)

fig, ax = plt.subplots(figsize=(6, 3))
ax.hist(np.asarray(norms), bins=20, label="per-example gradient norm")
ax.axvline(clip, color="C3", label="clipping threshold C (median)")
ax.set(title="Per-example gradient norms", xlabel="norm (no unit)", ylabel="examples")
ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: whole examples
H.legend_below_axes(ax)  # under the x label: no corner is free of bars at every scale
plt.show()

# %% [markdown] tags=["shared"]
# ## 4.4 Pytrees and explicit randomness
#
# Parameters are rarely one array: a model holds a nested structure of them. A **pytree** is
# any nesting of lists, tuples, dicts (and registered classes) with arrays at the leaves, and
# the tree utilities map a function over every leaf while keeping the structure. Gradients
# come back in the parameters' structure, so an optimizer update is one tree map.

# %%
tree = {"layer1": {"W": jnp.ones((3, 2)), "b": jnp.zeros(2)}, "scale": jnp.float32(2.0)}
print("leaves:", [leaf.shape for leaf in jax.tree.leaves(tree)])
print("structure:", jax.tree.structure(tree))
print("scalars:", sum(leaf.size for leaf in jax.tree.leaves(tree)))
grads_t = jax.tree.map(jnp.ones_like, tree)
updated = jax.tree.map(lambda p, g: p - 0.1 * g, tree, grads_t)  # an SGD step
print(jax.tree.map(lambda a: np.round(np.asarray(a, float), 2).tolist(), updated))
leaves, treedef = jax.tree.flatten(tree)
print("round trip:", jax.tree.unflatten(treedef, leaves)["layer1"]["W"].shape)

# %% [markdown]
# JAX has **no global random state**: a random function takes a **key** and is a pure function
# of it, so the same key gives the same numbers, in any process, in any order of calls, inside
# `jit` and `vmap`. New randomness comes from *splitting* a key into independent ones (or
# `fold_in`, to derive one from a number such as the step). Reusing a key is the classic
# mistake: two layers initialised with one key get identical weights.

# %%
key = jax.random.key(0)
k1, k2 = jax.random.split(key)
print("same key twice:", jax.random.normal(k1, (3,)), jax.random.normal(k1, (3,)))
print("split keys:    ", jax.random.normal(k1, (3,)), jax.random.normal(k2, (3,)))
reused = [jax.random.normal(key, (2, 2)) for _layer in range(2)]
print(
    "a key reused across two layers gives equal weights:",
    bool(jnp.all(reused[0] == reused[1])),
)
step_keys = [jax.random.fold_in(key, step) for step in range(3)]  # one key per step
print("fold_in:", [round(float(jax.random.uniform(k)), 4) for k in step_keys])

# %% [markdown]
# Why no global seed: a global generator is state that a compiled, vectorised or parallel
# function cannot see change; a key is an ordinary input, so the result of a function depends
# only on its arguments, and parallel workers each get a key of their own without coordination.

# %% [markdown]
# ## 4.5 Parallelism: meshes and sharding
#
# JAX's current way to run on several devices is to describe **where the data lives** and let
# the compiler partition the program. A `Mesh` arranges devices in a grid with named axes; a
# `PartitionSpec` says which array axis is split over which mesh axis (`P("data")`: the first
# axis over `data`, the rest whole); a `NamedSharding` pairs the two. `jit` then compiles one
# program for all devices and inserts the communication (the all-reduce of gradients, here).
# The mesh below is built from the CPU devices explicitly, so it also works on a GPU runtime.
# `Auto` axes leave the placement of intermediate results to the compiler (the newer
# `Explicit` axes, `make_mesh`'s default, make every sharding part of the types).
# PyTorch has no supported way to simulate devices inside one process like this (only a
# private, debugging-only `LocalTensor`): each of its data-parallel devices is a process, so
# its page shows the same arithmetic on one process instead.

# %%
devices = jax.devices("cpu")[:8]
mesh = jax.make_mesh(
    (len(devices),),
    ("data",),
    axis_types=(jax.sharding.AxisType.Auto,),
    devices=devices,
)
batch_sharding = NamedSharding(mesh, P("data"))  # split axis 0 (the batch) over "data"
replicated = NamedSharding(mesh, P())  # a full copy on every device
print(mesh)
x_sharded = jax.device_put(xb, batch_sharding)  # (B, D), B/8 rows per device
print("shard shapes by device:")
print({s.device.id: s.data.shape for s in x_sharded.addressable_shards})

# %% [markdown] tags=["shared"]
# **Data parallelism**: every device holds the whole model and a slice of the batch, computes
# the gradient of its slice, and the gradients are averaged over devices (an all-reduce), so
# every device applies the same update. With equal slices, the mean of the slices' mean
# gradients *is* the full batch's mean gradient: data-parallel training computes the same
# numbers as one device, up to the order of float additions.


# %% [markdown]
# Below, the same steps run on one device and on the 8-device mesh (compiled once each), and
# the parameters must agree.


# %%
def batch_loss(params, x, y):
    return jax.vmap(example_loss, in_axes=(None, 0, 0))(params, x, y).mean()


@jax.jit
def train_step(params, x, y):
    loss, grads = jax.value_and_grad(batch_loss)(params, x, y)
    return jax.tree.map(lambda p, g: p - 0.5 * g, params, grads), loss


# One CPU device for the single-device run (on a GPU runtime, too: the same arithmetic).
p_single, x_one, y_one = jax.device_put((params, xb, yb), devices[0])
p_mesh = jax.device_put(params, replicated)
x_mesh, y_mesh = jax.device_put((xb, yb), batch_sharding)
for _ in range(sizes.parallel_steps):
    p_single, loss_single = train_step(p_single, x_one, y_one)
    p_mesh, loss_mesh = train_step(p_mesh, x_mesh, y_mesh)
diff = max(
    float(
        np.abs(np.asarray(a) - np.asarray(b)).max()
    )  # on different devices: compare on the host
    for a, b in zip(jax.tree.leaves(p_single), jax.tree.leaves(p_mesh), strict=True)
)
print(f"after {sizes.parallel_steps} steps: largest parameter difference {diff:.2e}")
print("parameters replicated on", len(p_mesh["W"].sharding.device_set), "devices")
assert diff < 1e-5

# %% [markdown]
# `jit` partitioned the program automatically. `shard_map` instead writes the per-device
# program by hand: the function sees one device's slice and calls the collective itself. A
# subtlety of current JAX: inside `shard_map`, the gradient with respect to a *replicated*
# input is already summed over devices (the transpose of broadcasting to every device is a
# sum). So differentiate the global loss, the `pmean` of the per-device losses, and the
# gradient comes out right (a further `pmean` of it changes nothing: it is the same on every
# device). The older `pmap` recipe, the gradient of the *local* loss followed by a `pmean` of
# the gradients, now gives gradients as many times too large as there are devices: the sum
# over devices is already in it, as the cell shows.


# %%
def local_grads(params, x, y):  # x: (B/8, D) on each device
    loss_fn = lambda p: jax.lax.pmean(batch_loss(p, x, y), "data")  # noqa: E731
    return jax.grad(loss_fn)(params)


sharded_grads = jax.jit(
    jax.shard_map(
        local_grads, mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=P()
    )
)
g_shard = sharded_grads(p_mesh, x_mesh, y_mesh)
g_full = jax.grad(batch_loss)(jax.device_put(p_mesh, devices[0]), x_one, y_one)
for k in ("W", "b"):
    np.testing.assert_allclose(g_shard[k], g_full[k], rtol=1e-5, atol=1e-6)
print("shard_map gradient == full-batch gradient")


def pmap_era_grads(params, x, y):  # the local loss's gradient, then averaged: wrong now
    return jax.lax.pmean(jax.grad(batch_loss)(params, x, y), "data")


g_old = jax.jit(
    jax.shard_map(
        pmap_era_grads, mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=P()
    )
)(p_mesh, x_mesh, y_mesh)
ratio = np.linalg.norm(g_old["W"]) / np.linalg.norm(g_full["W"])  # on the host
print(f"local gradient + pmean: {ratio:.1f} times the full-batch gradient")

# %% [markdown]
# ```{admonition} The outline says
# :class: note
# The outline shows `jax.pmap(f, axis=0)`. `pmap` has no `axis` argument; its mapped axis is
# `in_axes` and the name used by collectives is `axis_name`. `pmap` is the legacy API, kept
# for old code: new code uses `jit` with shardings, or `shard_map`, as above.
# ```

# %%
try:
    jax.pmap(lambda v: v * 2, axis=0)
except TypeError as e:
    print(f"{type(e).__name__}: {e}")
per_device = xb[: 8 * 2].reshape(8, 2, -1)  # (devices, rows per device, D)
means = jax.pmap(
    lambda v: jax.lax.pmean(v.mean(), "i"), axis_name="i", devices=devices
)(per_device)
print(
    "pmap with in_axes=0 (the default) and axis_name='i':", means.shape, float(means[0])
)

# %% [markdown] tags=["shared"]
# ## 4.6 Modules, optimizers, MNIST and checkpoints
#
# A module library keeps parameters, buffers and random-number streams in objects; an
# optimizer library turns gradients into updates. This section takes both apart, trains
# MNIST with the multi-layer perceptron of chapter 1 and the convolutional network of
# chapter 3, and saves, restores and resumes a training run.

# %% [markdown]
# ```{admonition} The outline says
# :class: note
# The outline writes `jax.nn.Module`, `jnn.Linear` (with `jnn` as `jax.nn`) and
# `jaxagy.no_grad()`: none exist. `jax.nn` holds functions (`relu`, `softmax`), not layers;
# layers come from Flax (`flax.nnx.Linear`). JAX needs no `no_grad` at all: nothing is
# recorded unless you call `grad`. The outline also uses `jaxopt.optimizers.ScipyOptimizer`,
# which never existed: jaxopt's SciPy wrappers are `jaxopt.ScipyMinimize`,
# `jaxopt.ScipyBoundedMinimize`, `jaxopt.ScipyLeastSquares`,
# `jaxopt.ScipyBoundedLeastSquares` and `jaxopt.ScipyRootFinding`. jaxopt is deprecated (and not
# installed here); parts of it (losses, projections, L-BFGS) now live in Optax, whose
# `optax.lbfgs()` is an optimizer like `optax.adam` whose `update` also takes the loss's value
# and function, for its line search. And `jnp.max(outputs.data, 1)`, PyTorch's idiom for the
# predicted class, fails twice: JAX arrays have no `.data`, and `jnp.max` returns maxima, not
# indices (`argmax` does).
# ```

# %%
outputs = jnp.array([[0.1, 2.0, 0.3], [1.5, 0.2, 0.1]])  # (B=2, C=3) logits
import jax.nn as jnn  # noqa: F401  (the outline's alias, used by eval below)

for code in [
    "jax.nn.Module",
    "jnn.Linear(3, 2)",
    "jaxagy.no_grad()",
    "jnp.max(outputs.data, 1)",
]:
    try:
        eval(code)
    except (AttributeError, NameError) as e:
        print(f"{code:<26} {type(e).__name__}: {e}")
try:
    import jaxopt

    print(jaxopt.optimizers.ScipyOptimizer)
except ImportError as e:
    print(f"{'import jaxopt':<26} {type(e).__name__}: {e}")
print(f"{'optax.lbfgs()':<26} {type(optax.lbfgs()).__name__}")
print(
    "jnp.max(outputs, 1) =",
    jnp.max(outputs, 1),
    "| jnp.argmax(outputs, 1) =",
    jnp.argmax(outputs, 1),
)

# %% [markdown]
# A Flax NNX module is a Python object holding `Variable`s: `nnx.Param` for what is trained,
# `nnx.BatchStat` for running statistics, random streams in `nnx.Rngs`. JAX's transformations
# want pure functions of arrays, so NNX can **split** a module into a static description (its
# `GraphDef`) and its state (a pytree of arrays), and **merge** them back. `nnx.jit`,
# `nnx.grad` do that split and merge for you around the function.


# %%
class TinyNet(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.linear1 = nnx.Linear(4, 8, rngs=rngs)  # one Rngs: a fresh key per layer
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.linear2 = nnx.Linear(8, 2, rngs=rngs)

    def __call__(self, x):  # (B, 4) -> (B, 2)
        return self.linear2(nnx.relu(self.bn(self.linear1(x))))


tiny = TinyNet(nnx.Rngs(0))
graphdef, params_state, stats_state = nnx.split(tiny, nnx.Param, nnx.BatchStat)


def shapes(state):  # {"linear1/kernel": (4, 8), ...}
    return {"/".join(map(str, path)): v.shape for path, v in nnx.to_flat_state(state)}


for kind, state in [("parameter", params_state), ("batch stat", stats_state)]:
    for k, shape in shapes(
        state
    ).items():  # one per line: "parameter  linear1/kernel  (4, 8)"
        print(f"{kind:<10} {k:<24} {shape}")
rebuilt = nnx.merge(graphdef, params_state, stats_state)
xt = jnp.ones((3, 4))
np.testing.assert_allclose(rebuilt(xt), tiny(xt))


@nnx.jit  # a module in, a module changed in place: nnx.jit carries the state across
def forward_train(model, x):
    return model(x)


forward_train(tiny, xt)
print("BatchNorm running mean updated in place:", tiny.bn.mean[...][:3])

# %% [markdown]
# Optax composes an optimizer from small **gradient transformations**: `chain` runs them in
# order (clip the global norm, then Adam's scaling, then weight decay, then the learning rate
# from the schedule; `optax.adamw` is those last three, so this chain is `optax.adamw` with
# clipping in front); a **schedule** is a function from the step to the learning rate; a
# **mask** applies a transformation to some parameters only (weight decay on matrices, not on
# biases or BatchNorm scales).

# %%
schedule = optax.warmup_cosine_decay_schedule(
    init_value=0.0, peak_value=1e-3, warmup_steps=100, decay_steps=1000, end_value=1e-5
)
steps = np.arange(1000)
fig, ax = plt.subplots(figsize=(6, 2.5))
ax.plot(steps, schedule(steps))  # one vectorised call
ax.set(
    title="An Optax schedule: warmup + cosine decay",
    xlabel="step",
    ylabel="learning rate",
)
plt.show()


def decay_mask(params):  # True where weight decay applies: arrays of 2 or more dims
    return jax.tree.map(lambda p: p.ndim >= 2, params)


tx = optax.chain(
    optax.clip_by_global_norm(1.0),
    optax.scale_by_adam(),
    optax.masked(optax.add_decayed_weights(1e-4), decay_mask),
    optax.scale_by_learning_rate(schedule),
)
mask = decay_mask(nnx.state(tiny, nnx.Param))
paths = {  # "linear1/kernel": True; k[:-1] drops the Variable's ".value"
    jax.tree_util.keystr(k[:-1], simple=True, separator="/"): bool(m)
    for k, m in jax.tree.leaves_with_path(mask)
}
print("weight decay on: ", [k for k, m in paths.items() if m])
print("weight decay off:", [k for k, m in paths.items() if not m])
tiny_opt = nnx.Optimizer(tiny, tx, wrt=nnx.Param)  # the chain, used like any optimizer


@nnx.jit
def tiny_step(model, optimizer, x):
    grads = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)
    optimizer.update(model, grads)


tiny_step(tiny, tiny_opt, xt)
print("one step of the chain: step", int(tiny_opt.step[...]))

# %% [markdown]
# Now MNIST, with both networks. The loop is the course's `H.fit` (chapter 1 wrote it out);
# the optimizer is Adam as in chapters 1 and 3. The MLP trains half its epochs, is saved,
# restored and trained the rest (at least one epoch on each side of the checkpoint).

# %%
mlp_sizes = H.sizes("mnist")
x_train, y_train = H.load_mnist("train", limit=mlp_sizes.train_examples)
x_test, y_test = H.load_mnist("test", limit=mlp_sizes.test_examples)
train_loader = H.ArrayLoader(
    H.images_to_vectors(x_train),
    y_train,
    mlp_sizes.batch_size,
    shuffle=True,
    drop_last=True,
)
test_loader = H.ArrayLoader(H.images_to_vectors(x_test), y_test, 1024)
mlp = H.MLP(784, mlp_sizes.hidden, 10, rngs=nnx.Rngs(0))
# One Optax object for both runs: nnx.jit keys its cache on the optimizer's transformation
# (a static part of the Optimizer), so the resumed run below reuses the compiled step.
tx = optax.adam(mlp_sizes.learning_rate)
mlp_opt = nnx.Optimizer(mlp, tx, wrt=nnx.Param)
half = max(1, mlp_sizes.epochs // 2)  # epochs before the checkpoint (at least one)
history = H.fit(mlp, mlp_opt, train_loader, epochs=half, eval_loader=test_loader)
print(f"MLP after {half} epoch(s): test accuracy {history.last('test_accuracy'):.4f}")

# %% [markdown]
# **Checkpointing with Orbax**: save the model's and the optimizer's state (Adam's moments and
# step count included) as pytrees; restore them into freshly built objects, whose structure
# tells Orbax the shapes and dtypes; then resume training where it stopped.

# %%
ckpt_dir = Path(tempfile.mkdtemp()) / "mnist-mlp"
checkpointer = ocp.StandardCheckpointer()
checkpointer.save(
    ckpt_dir / "state", {"model": nnx.state(mlp), "opt": nnx.state(mlp_opt)}
)
checkpointer.wait_until_finished()
print("saved:", sorted(p.name for p in (ckpt_dir / "state").iterdir())[:4], "...")

restored_mlp = H.MLP(784, mlp_sizes.hidden, 10, rngs=nnx.Rngs(1))  # other weights
restored_opt = nnx.Optimizer(restored_mlp, tx, wrt=nnx.Param)  # the same tx
target = {"model": nnx.state(restored_mlp), "opt": nnx.state(restored_opt)}
state = checkpointer.restore(ckpt_dir / "state", target)
nnx.update(restored_mlp, state["model"])
nnx.update(restored_opt, state["opt"])
same = (
    H.evaluate(restored_mlp, test_loader)["accuracy"]
    == H.evaluate(mlp, test_loader)["accuracy"]
)
print(
    "restored model gives the same test accuracy:",
    same,
    "| optimizer step:",
    int(restored_opt.step[...]),
)
rest = max(1, mlp_sizes.epochs - half)
history = H.fit(
    restored_mlp, restored_opt, train_loader, epochs=rest, eval_loader=test_loader
)
mlp_accuracy = H.evaluate(restored_mlp, test_loader)["accuracy"]
print(f"MLP after {half} + {rest} epochs (resumed): test accuracy {mlp_accuracy:.4f}")
assert mlp_accuracy > 0.5  # far above chance (0.1) even at smoke scale

# %% [markdown]
# The convolutional network is chapter 3's (`H.CNN`: two convolution-pool-BatchNorm-ReLU
# blocks, channels last), trained as chapter 3 trains it: pixels standardised with MNIST's
# mean and standard deviation, and Adam whose step size follows an Optax cosine schedule over
# the whole run.

# %%
cnn_sizes = H.sizes("mnist_cnn")
xc_train, yc_train = H.load_mnist("train", limit=cnn_sizes.train_examples)
xc_test, yc_test = H.load_mnist("test", limit=cnn_sizes.test_examples)


MEAN, STD = 0.1307, 0.3081  # MNIST's pixel mean and std, chapter 3's normalisation


def as_images(
    x,
):  # uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) standardised, channels last
    return (x.astype(np.float32)[..., None] / 255 - MEAN) / STD


cnn_train = H.ArrayLoader(
    as_images(xc_train), yc_train, cnn_sizes.batch_size, shuffle=True, drop_last=True
)
cnn_test = H.ArrayLoader(as_images(xc_test), yc_test, 1024)
cnn = H.CNN(
    1,
    cnn_sizes.channels,
    cnn_sizes.hidden,
    10,
    dropout=cnn_sizes.dropout,
    rngs=nnx.Rngs(0),
)
cnn_schedule = optax.cosine_decay_schedule(
    cnn_sizes.learning_rate, decay_steps=cnn_sizes.epochs * len(cnn_train)
)
cnn_opt = nnx.Optimizer(cnn, optax.adam(cnn_schedule), wrt=nnx.Param)
cnn_history = H.fit(
    cnn, cnn_opt, cnn_train, epochs=cnn_sizes.epochs, eval_loader=cnn_test
)
cnn_accuracy = H.evaluate(cnn, cnn_test)["accuracy"]
H.plot_history(cnn_history, title="Chapter 3's CNN on MNIST (JAX)")
plt.show()
assert cnn_accuracy > 0.5  # far above chance (0.1) even at smoke scale

# %% [markdown] tags=["shared"]
# In the plot, the train accuracy is counted over each epoch's steps, while the model is still
# improving and with dropout on, so it can sit below the test accuracy, measured at the
# epoch's end without dropout.
#
# The table below collects this page's test accuracies. At `cpu` and `gpu` scale the cell
# asserts that they reach chapter 3's: at least 97 % for the MLP and 99 % for the CNN.

# %%
results = {"MLP (chapter 1)": mlp_accuracy, "CNN (chapter 3)": cnn_accuracy}
for name, acc in results.items():
    print(f"{name:<20} test accuracy {acc:.4f}  ({H.current_scale()} scale)")
if H.current_scale() != "smoke":
    assert mlp_accuracy >= 0.97 and cnn_accuracy >= 0.99, results

# %% [markdown] tags=["shared"]
# At `smoke` scale, which trains briefly on a small subset to check that the page runs, only
# the checks after each training apply: both accuracies above 0.5, far above chance.
#
# ## 4.7 Summary
#
# | section | JAX | PyTorch |
# |---|---|---|
# | 4.1 transformations | `grad`, `value_and_grad(has_aux=True)`, `vjp`, `jacfwd`, `jacrev`, `hessian` | `torch.func.grad`, `grad_and_value(has_aux=True)`, `vjp`, `jacfwd`, `jacrev`, `hessian` |
# | 4.2 compilation | `jit`: traces per shape, dtype and static value; `lax.cond`/`switch`/`scan`/`fori_loop`; `jax.debug.print`; donation | `torch.compile`: dynamic shapes after a second shape; graph breaks at data-dependent `if` and `print`, counted by `torch._dynamo.explain`; `torch.cond` |
# | 4.3 vectorising | `vmap(grad)`: per-example gradients and norms | `torch.func.vmap(grad)` with `functional_call` |
# | 4.4 pytrees, randomness | `jax.tree`; explicit keys, `split`, `fold_in` | flat `state_dict`, private `torch.utils._pytree`; a global generator and `torch.Generator` |
# | 4.5 parallelism | `Mesh`, `NamedSharding`, `PartitionSpec` with `jit`; `shard_map`; legacy `pmap` | one process per device (DDP, FSDP2's `DTensor`s: chapter 9); the data-parallel arithmetic on one process |
# | 4.6 modules, optimizers, checkpoints | NNX `split`/`merge`, `nnx.jit`; Optax chains, schedules, masks; Orbax | `nn.Module` parameters and buffers, `functional_call`; optimizers, parameter groups, schedulers; `state_dict` |

# %% [markdown] tags=["notebook-only"]
# Next: [the PyTorch half of this chapter](in-pytorch.ipynb), then the
# [lab](../../labs/04-jax-in-depth/in-jax.ipynb), whose self-checks tell you when each exercise is
# right. Works cited are listed in the [bibliography](../../bibliography.md).
