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
# # 4. JAX in depth: PyTorch
#
# This is the PyTorch half of chapter 4; the [JAX half](in-jax.ipynb) takes JAX's
# transformations apart. PyTorch has the same ideas, in `torch.func` (function transforms
# borrowed from JAX) and `torch.compile` (a compiler that captures graphs from ordinary
# Python), and this page teaches them in the same order:
#
# * `torch.func.grad` and its relatives, and when forward mode beats reverse mode (measured);
# * `torch.compile`: graph capture, recompilation (counted), graph breaks (counted);
# * `torch.func.vmap`: per-example gradients and their norms, the core of DP-SGD;
# * nested parameter structures and random generators;
# * data parallelism, as the averaging of per-shard gradients;
# * modules, optimizers and schedulers in full, MNIST trained to chapter 3's accuracy at `cpu`
#   and `gpu` scale (asserted there; a `smoke` run only checks that both networks learn), and
#   checkpoints with `state_dict`.

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
import functools
import logging
import math
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.func as tf
import torch.nn as nn
import torch.nn.functional as F
from matplotlib.ticker import MaxNLocator
from tqdm import tqdm

from helpers import torch as H
from helpers.distributed import measure_interleaved

# torch.func's jacfwd and hessian trigger torch.jit.script's deprecation warning from inside
# torch (2.14): not this page's code, so it is not shown.
warnings.filterwarnings(
    "ignore", message=".*torch.jit.script.*", category=FutureWarning
)

# Every size this notebook uses comes from helpers/scale/foundations.py.
sizes = H.sizes("transforms")
device = H.default_device()
H.runtime_info()

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
# `torch.func.grad(f)` is that transformation: a function in, its gradient function out, the
# same as JAX's `grad` (the outline's chapter calls JAX's "finite differences"; neither is).
# Finite differences in float32 are off at every step size (a large step truncates the Taylor
# series, a small one loses digits to rounding); autodiff is exact:

# %%
x0 = torch.tensor(1.0)
for h in (1e-2, 1e-4, 1e-6):
    fd = (torch.sin(x0 + h) - torch.sin(x0)) / h
    print(f"finite difference h={h:g}: error {abs(float(fd - torch.cos(x0))):.2e}")
err = abs(float(tf.grad(torch.sin)(x0) - torch.cos(x0)))
print(f"torch.func.grad:           error {err:.2e}")

# %% [markdown]
# `grad` wants a **scalar** output, as in JAX; a one-element vector is not one:

# %%
try:
    tf.grad(torch.sin)(torch.tensor([0.0]))
except (
    RuntimeError
) as e:  # the first sentence, after the name of torch's inner function
    print(f"{type(e).__name__}: {str(e).split('. ')[0].split(': ', 1)[-1]}.")

# %% [markdown]
# The same three fixes as in JAX: `vmap(grad)` for the derivative at each point, the gradient
# of a sum, or a vector-Jacobian product `vjp` with a vector of ones.

# %%
xs = torch.linspace(0.0, 3.0, 4)  # (4,)
per_point = tf.vmap(tf.grad(torch.sin))(xs)  # (4,)
of_sum = tf.grad(lambda x: torch.sin(x).sum())(xs)  # (4,)
_, pullback = tf.vjp(torch.sin, xs)
(via_vjp,) = pullback(torch.ones_like(xs))  # (4,)
print(per_point, of_sum, via_vjp, torch.cos(xs), sep="\n")
torch.testing.assert_close(per_point, torch.cos(xs))
torch.testing.assert_close(via_vjp, of_sum)

# %% [markdown] tags=["shared"]
# Training needs the loss *and* its gradient, and often something else the forward pass
# computed (the logits, for an accuracy). `value_and_grad` returns the value with the
# gradient, and `has_aux=True` lets the function return `(loss, anything)`: the gradient is
# taken of the first entry only.


# %%
def loss_and_logits(w, x, y):
    logits = x @ w  # (B, 3)
    return F.cross_entropy(logits, y), logits


gen = torch.Generator().manual_seed(0)
x_small = torch.randn(8, 5, generator=gen)  # (B=8, D=5)
y_small = torch.arange(8) % 3  # (8,) labels in 0..2
w_small = torch.randn(5, 3, generator=gen) * 0.1  # (D, C)
g, (loss, logits) = tf.grad_and_value(loss_and_logits, has_aux=True)(
    w_small, x_small, y_small
)
print(
    f"loss {float(loss):.4f}, logits {tuple(logits.shape)}, gradient {tuple(g.shape)}"
)

# %% [markdown]
# `torch.func` calls it `grad_and_value` and returns the gradient first; `loss.backward()`,
# the usual PyTorch way, fills `.grad` on the leaf tensors instead of returning anything.

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
    return torch.stack([x[0] * x[1] ** 2, torch.sin(x[2]) * x[0]])


def cubic(x):  # R^3 -> R
    return torch.sum(x**3) + x[0] * x[1]


x3 = torch.tensor([1.0, 2.0, 3.0])
J_fwd, J_rev = tf.jacfwd(f_small)(x3), tf.jacrev(f_small)(x3)  # (2, 3) each
print("Jacobian (2, 3):\n", J_fwd)
torch.testing.assert_close(J_fwd, J_rev)
print("Hessian (3, 3):\n", tf.hessian(cubic)(x3))
torch.testing.assert_close(tf.hessian(cubic)(x3), tf.jacfwd(tf.jacrev(cubic))(x3))

# %% [markdown] tags=["shared"]
# The timing: a *wide* function $\mathbb{R}^n \to \mathbb{R}$ and a *tall* one
# $\mathbb{R} \to \mathbb{R}^n$, each built from the same matrix, their Jacobians computed both
# ways (median of several calls).

# %% [markdown]
# Here the transforms run eagerly at every scale, where the JAX page jits them: `torch.func`
# composes with `torch.compile`, but each Jacobian function would then pay its own compilation
# first. Eager, each `torch.func` call also pays a fixed cost of dispatching every operation;
# at small sizes that cost can hide most of the difference (at `smoke` scale, compare the two
# columns of the tall row: one forward pass against $n$ reverse ones).

# %%
n = sizes.jacobian_width
A = torch.randn(n, n, generator=torch.Generator().manual_seed(1)) / math.sqrt(n)


def wide(x):  # (n,) -> ()
    return torch.sum(torch.tanh(A @ torch.tanh(A @ x)))


def tall(t):  # () -> (n,)
    return torch.tanh(A @ torch.tanh(A @ (t * torch.ones(n))))


rows = []
with torch.no_grad():
    for name, fn, arg in [
        ("wide R^n -> R", wide, torch.ones(n)),
        ("tall R -> R^n", tall, torch.tensor(0.5)),
    ]:
        jf, jr = tf.jacfwd(fn), tf.jacrev(fn)
        torch.testing.assert_close(jf(arg), jr(arg), rtol=1e-4, atol=1e-5)
        t_f = H.time_fn(jf, arg, repeats=sizes.repeats)
        t_r = H.time_fn(jr, arg, repeats=sizes.repeats)
        rows.append((name, t_f, t_r))
print(f"n = {n}\n{'function':<16}{'jacfwd (ms)':>13}{'jacrev (ms)':>13}{'faster':>9}")
for name, t_f, t_r in rows:
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
# `torch.compile` captures graphs with TorchDynamo, which reads the function's Python bytecode,
# and hands each graph to a **backend** (Inductor by default, which generates C++ or GPU
# kernels). Unlike JAX, Dynamo keeps Python's semantics: side effects such as appending to a
# list run again at every call, because Dynamo replays them around the graph, so a side effect
# would count calls, not compilations. A backend is just a function that receives each
# captured graph, so a counting backend counts compilations, the supported way to see them.
# One difference from JAX shows
# at once: after a second shape PyTorch recompiles once with the size as a symbol (**dynamic
# shapes**) instead of once per shape.

# %%
graphs_compiled: list[int] = []


def counting_backend(gm: torch.fx.GraphModule, example_inputs):
    graphs_compiled.append(len(gm.graph.nodes))
    return gm.forward  # run the captured graph as it is


@torch.compile(backend=counting_backend)
def scaled_norm(x, scale):
    return scale * torch.sqrt(torch.sum(x**2))


for shape in [(3,), (3,), (4,), (3,), (5,)]:
    before = len(graphs_compiled)
    scaled_norm(torch.ones(shape), 2.0)
    print(f"shape {shape}: compiled {len(graphs_compiled) - before} time(s)")

# %% [markdown]
# Inductor itself, timed: the first call pays the compilation, later calls reuse it.


# %%
def gelu_mlp(x, w):  # (B, n) @ (n, n): a matmul and element-wise work to fuse
    return F.gelu(x @ w) * torch.sigmoid(x)


xw, ww = torch.randn(256, 256), torch.randn(256, 256) / 16
# Inductor logs a harmless warning on machines without CUDA; keep the page quiet.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
start = time.perf_counter()
compiled = torch.compile(gelu_mlp)
compiled(xw, ww)
compile_s = time.perf_counter() - start
t_eager = H.time_fn(gelu_mlp, xw, ww, repeats=sizes.repeats)
t_compiled = H.time_fn(compiled, xw, ww, repeats=sizes.repeats)
print(f"first call (compilation): {compile_s:.1f} s")
print(f"eager {t_eager * 1e3:.3f} ms | compiled {t_compiled * 1e3:.3f} ms per call")
torch.testing.assert_close(compiled(xw, ww), gelu_mlp(xw, ww), rtol=1e-4, atol=1e-5)

# %% [markdown]
# Whether the compiled call comes out faster varies with the run and the scale (compare the
# two times above); on one CPU thread it can as well be slower. The matrix product goes to the
# same matrix library in both modes; compilation can only fuse the element-wise work after it,
# and each compiled call first checks its guards (is this still the shape and dtype it was
# compiled for?). Compilation pays most on long chains of element-wise work, and on a GPU.

# %% [markdown]
# Python control flow on a tensor's *value* does not fail as in JAX: Dynamo cannot put it in
# the graph, so it **breaks the graph** there, runs that bit of Python eagerly, and starts a
# new graph after it. The program stays correct, but each break costs a return to Python and
# splits what the compiler can fuse. `torch._dynamo.explain` counts graphs and breaks, with
# the reason of each (private, like `_pytree` below; the public switch is the environment
# variable `TORCH_LOGS=graph_breaks`, which logs each break). `torch.cond` is PyTorch's
# counterpart of `lax.cond` (a prototype API): both branches become part of the one graph.


# %%
def relu_if(x):
    if x.sum() > 0:  # a tensor's value decides: a graph break
        return x
    return x * 0


def relu_cond(x):
    return torch.cond(x.sum() > 0, lambda v: v.clone(), lambda v: v * 0, (x,))


def with_print(x):
    y = torch.sin(x)
    print("printing inside a compiled function")  # a side effect: another break
    return torch.cos(y)


x_pos = torch.ones(4)  # a fixed input whose sum is positive: relu_if returns x
for fn in (relu_if, relu_cond, with_print):
    ex = torch._dynamo.explain(fn)(x_pos)
    reasons = [str(r.reason).splitlines()[0][:60] for r in ex.break_reasons]
    print(f"{fn.__name__:<11} graphs {ex.graph_count}, breaks {len(reasons)} {reasons}")

# %% [markdown]
# `relu_if` shows one graph for its one break: the graph before the `if` (the sum and the
# comparison), and none after it, because the branch this input takes, `return x`, has no
# tensor operation to put in a graph (a negative sum would run `x * 0`, a second graph).
# In JAX the `if` on a traced value is an error, and a `print` runs only while tracing; here
# the program runs correctly either way, and `explain` shows what it cost. PyTorch has no
# counterpart of `jax.lax.scan` in its stable API (`torch._higher_order_ops.scan` is
# experimental): a Python loop in a compiled function is unrolled into the graph.
#
# **Donation** has no counterpart either: PyTorch tensors are mutable, so an update reuses
# memory by writing in place (`p.sub_(lr * g)`, what optimizers do), the thing JAX's
# immutable arrays need donation for.
#
# **Host round trips**: on a GPU, PyTorch also queues kernels asynchronously, and `loss.item()`
# (or `float(loss)`, `print`) waits for the queue to drain. Reading the loss at every step makes
# the host wait for every step; collecting them and reading once does not.

# %%
w_host = torch.randn(256, 256, generator=torch.Generator().manual_seed(2)) / 16


def train_loop(read_each_step):  # sizes.loop_steps steps; every loss read on the host
    w, losses = w_host.clone(), []
    for _ in range(sizes.loop_steps):
        loss_v = torch.sum(w**2)
        w = w - 0.01 * torch.tanh(w @ w)
        losses.append(float(loss_v) if read_each_step else loss_v)
    return torch.stack([torch.as_tensor(v) for v in losses]).tolist()


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

# %% [markdown]
# A PyTorch module keeps its parameters inside; `torch.func.functional_call(model, params, x)`
# runs it with a dictionary of parameters passed in, which makes the module a function of its
# parameters that `grad` can differentiate (JAX's modules get the same from `nnx.split`).

# %%
B = sizes.batch_size
gen = torch.Generator().manual_seed(3)
xb = torch.randn(B, 20, generator=gen)  # (B, D)
yb = torch.randint(0, 4, (B,), generator=gen)  # (B,)
model = nn.Linear(20, 4)
params = {
    k: v.detach() for k, v in model.named_parameters()
}  # {"weight": (C, D), "bias": (C,)}


def example_loss(params, x, y):  # one example: x (D,), y ()
    logits = tf.functional_call(model, params, (x[None],))  # (1, C)
    return F.cross_entropy(logits, y[None])


# The loss of one example, its gradient, mapped over the batch axis of x and y (not params).
per_example_grads = tf.vmap(tf.grad(example_loss), in_dims=(None, 0, 0))
g_vmap = per_example_grads(params, xb, yb)  # {"weight": (B, C, D), "bias": (B, C)}
start = time.perf_counter()
g_loop = [
    tf.grad(example_loss)(params, xb[i], yb[i])
    for i in tqdm(range(B), desc="one example at a time", unit="example")
]
t_loop = time.perf_counter() - start  # one pass of the Python loop, seconds
for k in g_vmap:
    torch.testing.assert_close(g_vmap[k], torch.stack([g[k] for g in g_loop]))
print(
    {k: tuple(v.shape) for k, v in g_vmap.items()},
    "== a loop of",
    B,
    "single-example grads",
)

# %% [markdown] tags=["shared"]
# The per-example norm is the norm of all of an example's gradients together, every parameter
# array flattened into one vector. Below: the norms, clipping as in DP-SGD, and the time of the
# vectorised version against the loop.


# %%
def per_example_norms(params, x, y):
    grads = tf.vmap(tf.grad(example_loss), in_dims=(None, 0, 0))(params, x, y)
    squares = [g.reshape(len(x), -1).pow(2).sum(1) for g in grads.values()]
    return torch.stack(squares).sum(0).sqrt()  # (B,)


norms = per_example_norms(params, xb, yb)
clip = float(norms.median())
factor = torch.clamp(clip / norms, max=1.0)  # (B,)
clipped = {k: g * factor.reshape(-1, *[1] * (g.ndim - 1)) for k, g in g_vmap.items()}
print(
    f"norms: min {float(norms.min()):.3f}, median {clip:.3f}, max {float(norms.max()):.3f}"
)
t_vmap = H.time_fn(per_example_norms, params, xb, yb, repeats=sizes.repeats)
print(
    f"B={B}: vmap {t_vmap * 1e3:.2f} ms, Python loop (one pass) {t_loop * 1e3:.1f} ms"
)

fig, ax = plt.subplots(figsize=(6, 3))
ax.hist(norms.numpy(), bins=20, label="per-example gradient norm")
ax.axvline(clip, color="C3", label="clipping threshold C (median)")
ax.set(title="Per-example gradient norms", xlabel="norm (no unit)", ylabel="examples")
ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: whole examples
H.legend_below_axes(ax)  # under the x label: no corner is free of bars at every scale
plt.show()

# %% [markdown]
# Opacus, PyTorch's DP-SGD library, computes these norms by default with hooks on each layer
# and a hand-written rule per layer type, and falls back to `torch.func`'s `vmap` for layers
# without a rule
# ([Opacus 1.2.0 release notes](https://github.com/pytorch/opacus/releases/tag/v1.2.0));
# `torch.func` is the general tool.

# %% [markdown] tags=["shared"]
# ## 4.4 Pytrees and explicit randomness
#
# Parameters are rarely one array: a model holds a nested structure of them. A **pytree** is
# any nesting of lists, tuples, dicts (and registered classes) with arrays at the leaves, and
# the tree utilities map a function over every leaf while keeping the structure. Gradients
# come back in the parameters' structure, so an optimizer update is one tree map.

# %% [markdown]
# PyTorch keeps parameters flat, as named entries of a module (`model.named_parameters()`,
# `model.state_dict()`: dotted names such as `0.weight`), and `torch.func` accepts and returns
# nested dicts and tuples of tensors. Its tree utilities live in `torch.utils._pytree`, a
# private module (the underscore: it may change without notice); PyTorch has no public
# counterpart of `jax.tree`.

# %%
import torch.utils._pytree as pytree  # private API: shown, not relied on

tree = {
    "layer1": {"W": torch.ones(3, 2), "b": torch.zeros(2)},
    "scale": torch.tensor(2.0),
}
leaves, spec = pytree.tree_flatten(tree)
print("leaves:", [tuple(leaf.shape) for leaf in leaves])
print("scalars:", sum(leaf.numel() for leaf in leaves))
updated = pytree.tree_map(lambda p: p - 0.1 * torch.ones_like(p), tree)  # an SGD step
print(pytree.tree_map(lambda a: a.double().round(decimals=2).tolist(), updated))
print("state_dict names:", list(nn.Sequential(nn.Linear(3, 2), nn.ReLU()).state_dict()))

# %% [markdown]
# PyTorch has a **global random generator**, seeded with `torch.manual_seed`: every draw
# advances it, so a number depends on how many draws came before. An explicit
# `torch.Generator` is the closest thing to a JAX key: pass it to the function that draws.
# Layer constructors (`nn.Linear`) take no generator and draw from the global one, so two
# layers never share weights by accident, the opposite of JAX's key reuse, but reseeding the
# global generator between them does the same harm.

# %%
torch.manual_seed(0)
a, b = torch.randn(3), torch.randn(3)
print("two draws, one seed: different\n", a, "\n", b)
gen0 = torch.Generator().manual_seed(0)
print("an explicit generator:", torch.randn(3, generator=gen0))
reused = []
for _layer in range(2):
    torch.manual_seed(0)  # the mistake: reseeding before each layer
    reused.append(nn.Linear(2, 2).weight)
print("reseeding before each layer gives equal weights:", bool(torch.equal(*reused)))
try:
    tf.vmap(lambda v: v + torch.randn(()))(torch.zeros(3))
except RuntimeError as e:
    print(f"{type(e).__name__}: {str(e).split('. ')[0]}.")  # its first sentence
print(
    "randomness='different':",
    tf.vmap(lambda v: v + torch.randn(()), randomness="different")(torch.zeros(3)),
)
print(
    "randomness='same':     ",
    tf.vmap(lambda v: v + torch.randn(()), randomness="same")(torch.zeros(3)),
)

# %% [markdown]
# Inside `torch.func.vmap`, random operations raise an error unless you say whether each
# example gets different numbers or the same (`randomness="different"` or `"same"`); JAX
# needs no such switch, since a key is an ordinary input that you split or broadcast.

# %% [markdown]
# ## 4.5 Parallelism: meshes and sharding
#
# JAX's current way to run on several devices is to describe **where the data lives** and let
# the compiler partition the program. PyTorch's counterparts are `torch.distributed`'s
# `DeviceMesh` and `DTensor` (a tensor sharded over a mesh), and, the workhorse, one process
# per device with `DistributedDataParallel`; chapter 9 treats DDP and FSDP2 (whose sharded
# parameters are `DTensor`s) in full. Unlike JAX, PyTorch has no supported way to simulate 8
# devices inside one CPU process (a private, debugging-only `LocalTensor` exists in
# `torch.distributed._local_tensor`): each device is a process. What this page
# shows instead is the arithmetic of data parallelism, on one process.

# %% [markdown] tags=["shared"]
# **Data parallelism**: every device holds the whole model and a slice of the batch, computes
# the gradient of its slice, and the gradients are averaged over devices (an all-reduce), so
# every device applies the same update. With equal slices, the mean of the slices' mean
# gradients *is* the full batch's mean gradient: data-parallel training computes the same
# numbers as one device, up to the order of float additions.

# %% [markdown]
# Here the "mesh" is 8 simulated workers: the batch is cut into 8 equal shards, each worker's
# gradient is computed on its shard, and the 8 gradients are averaged, which is what
# `DistributedDataParallel`'s all-reduce computes during `backward()` (in buckets, as the
# gradients become ready: chapter 9).

# %%
WORKERS = 8


def batch_loss(params, x, y):
    return F.cross_entropy(tf.functional_call(model, params, (x,)), y)


def data_parallel_grads(params, x, y):
    shards = zip(x.chunk(WORKERS), y.chunk(WORKERS), strict=True)  # 8 x (B/8, D)
    worker_grads = [tf.grad(batch_loss)(params, xs, ys) for xs, ys in shards]
    return {k: torch.stack([g[k] for g in worker_grads]).mean(0) for k in params}


p_single = {k: v.clone() for k, v in params.items()}
p_dp = {k: v.clone() for k, v in params.items()}
for _ in range(sizes.parallel_steps):
    g_single = tf.grad(batch_loss)(p_single, xb, yb)
    g_dp = data_parallel_grads(p_dp, xb, yb)
    p_single = {k: p - 0.5 * g_single[k] for k, p in p_single.items()}
    p_dp = {k: p - 0.5 * g_dp[k] for k, p in p_dp.items()}
diff = max(float((p_single[k] - p_dp[k]).abs().max()) for k in params)
print(f"after {sizes.parallel_steps} steps: largest parameter difference {diff:.2e}")
assert diff < 1e-5

# %% [markdown]
# JAX shows here `shard_map` (a per-device program with explicit collectives) and its legacy
# `pmap`; PyTorch's per-device program is the script each process runs, with collectives from
# `torch.distributed` (`all_reduce`), chapter 9's subject.

# %% [markdown] tags=["shared"]
# ## 4.6 Modules, optimizers, MNIST and checkpoints
#
# A module library keeps parameters, buffers and random-number streams in objects; an
# optimizer library turns gradients into updates. This section takes both apart, trains
# MNIST with the multi-layer perceptron of chapter 1 and the convolutional network of
# chapter 3, and saves, restores and resumes a training run.

# %% [markdown]
# An `nn.Module` holds **parameters** (`nn.Parameter`, trained) and **buffers** (state that is
# saved but not trained, such as BatchNorm's running statistics). `state_dict()` is all of
# them as a flat dict of tensors, the thing one saves; `functional_call` (section 4.3) runs the
# module on another such dict, PyTorch's counterpart of NNX's `split` and `merge`. (The JAX
# page also runs the outline's `jax.nn.Module`, `jaxagy.no_grad()` and
# `jaxopt.optimizers.ScipyOptimizer` lines, which do not exist; PyTorch's `torch.no_grad()`
# does, since PyTorch records every operation on a tensor that requires a gradient unless told
# not to.)


# %%
class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear1 = nn.Linear(4, 8)
        self.bn = nn.BatchNorm1d(8)
        self.linear2 = nn.Linear(8, 2)

    def forward(self, x):  # (B, 4) -> (B, 2)
        return self.linear2(F.relu(self.bn(self.linear1(x))))


tiny = TinyNet()
for kind, named in [
    ("parameter", tiny.named_parameters()),
    ("buffer", tiny.named_buffers()),
]:
    for k, v in named:  # one per line: "parameter  linear1.weight  (8, 4)"
        print(f"{kind:<10} {k:<24} {tuple(v.shape)}")
xt = torch.ones(3, 4)
state = {k: v.clone() for k, v in tiny.state_dict().items()}
out = tf.functional_call(tiny, state, (xt,))  # updates the running stats in `state`
print("BatchNorm running mean updated:", state["bn.running_mean"][:3])

# %% [markdown]
# PyTorch's optimizers are objects with the update rule built in; what Optax composes from
# pieces is spread over three places: gradient clipping is a function called before the step
# (`clip_grad_norm_`), a **schedule** is a scheduler object stepped after the optimizer, and a
# **mask** is a parameter group with its own settings (weight decay on matrices, not on biases
# or BatchNorm scales).

# %%
decay = [p for p in tiny.parameters() if p.ndim >= 2]
no_decay = [p for p in tiny.parameters() if p.ndim < 2]
opt = torch.optim.AdamW(
    [
        {"params": decay, "weight_decay": 1e-4},
        {"params": no_decay, "weight_decay": 0.0},
    ],
    lr=1e-3,
)


def warmup_cosine(step, warmup=100, total=1000, end=1e-2):  # a multiplier of lr
    if step < warmup:
        return step / warmup
    t = min(1.0, (step - warmup) / (total - warmup))
    return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * t))


scheduler = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine)
lrs = []
for _ in range(1000):
    loss = tiny(torch.randn(16, 4)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(tiny.parameters(), 1.0)
    opt.step()
    scheduler.step()
    lrs.append(opt.param_groups[0]["lr"])
fig, ax = plt.subplots(figsize=(6, 2.5))
ax.plot(lrs)
ax.set(
    title="A PyTorch schedule: warmup + cosine decay",
    xlabel="step",
    ylabel="learning rate",
)
plt.show()
print("weight decay per group:", [g["weight_decay"] for g in opt.param_groups])

# %% [markdown]
# Now MNIST, with both networks. The loop is the course's `H.fit` (chapter 1 wrote it out);
# the optimizer is Adam as in chapters 1 and 3. The MLP trains half its epochs, is saved,
# restored and trained the rest (at least one epoch on each side of the checkpoint).

# %%
mlp_sizes = H.sizes("mnist")
x_train, y_train = H.load_mnist("train", limit=mlp_sizes.train_examples)
x_test, y_test = H.load_mnist("test", limit=mlp_sizes.test_examples)
torch.manual_seed(0)
train_loader = H.ArrayLoader(
    H.images_to_vectors(x_train),
    y_train,
    mlp_sizes.batch_size,
    shuffle=True,
    drop_last=True,
)
test_loader = H.ArrayLoader(H.images_to_vectors(x_test), y_test, 1024)
mlp = H.MLP(784, mlp_sizes.hidden, 10).to(device)
mlp_opt = torch.optim.Adam(mlp.parameters(), lr=mlp_sizes.learning_rate)
half = max(1, mlp_sizes.epochs // 2)  # epochs before the checkpoint (at least one)
history = H.fit(mlp, mlp_opt, train_loader, epochs=half, eval_loader=test_loader)
print(f"MLP after {half} epoch(s): test accuracy {history.last('test_accuracy'):.4f}")

# %% [markdown]
# **Checkpointing with `state_dict`**: save the model's and the optimizer's state (Adam's
# moments and step count included) with `torch.save`; load them with
# `torch.load(weights_only=True)` (which refuses to unpickle arbitrary objects) into freshly
# built objects; then resume training where it stopped.

# %%
ckpt = Path(tempfile.mkdtemp()) / "mnist-mlp.pt"
torch.save({"model": mlp.state_dict(), "opt": mlp_opt.state_dict()}, ckpt)
print(f"saved: {ckpt.name}, {ckpt.stat().st_size / 1e6:.2f} MB")

restored_mlp = H.MLP(784, mlp_sizes.hidden, 10).to(device)  # other weights
restored_opt = torch.optim.Adam(restored_mlp.parameters(), lr=mlp_sizes.learning_rate)
state = torch.load(ckpt, weights_only=True)
restored_mlp.load_state_dict(state["model"])
restored_opt.load_state_dict(state["opt"])
same = (
    H.evaluate(restored_mlp, test_loader)["accuracy"]
    == H.evaluate(mlp, test_loader)["accuracy"]
)
step = int(next(iter(restored_opt.state.values()))["step"])
print("restored model gives the same test accuracy:", same, "| optimizer step:", step)
rest = max(1, mlp_sizes.epochs - half)
history = H.fit(
    restored_mlp, restored_opt, train_loader, epochs=rest, eval_loader=test_loader
)
mlp_accuracy = H.evaluate(restored_mlp, test_loader)["accuracy"]
print(f"MLP after {half} + {rest} epochs (resumed): test accuracy {mlp_accuracy:.4f}")
assert mlp_accuracy > 0.5  # far above chance (0.1) even at smoke scale

# %% [markdown]
# The convolutional network is chapter 3's (`H.CNN`: two convolution-pool-BatchNorm-ReLU
# blocks, channels first), trained as chapter 3 trains it: pixels standardised with MNIST's
# mean and standard deviation, and Adam whose step size follows a cosine schedule over the
# whole run, the scheduler stepped after every optimizer step.

# %%
cnn_sizes = H.sizes("mnist_cnn")
xc_train, yc_train = H.load_mnist("train", limit=cnn_sizes.train_examples)
xc_test, yc_test = H.load_mnist("test", limit=cnn_sizes.test_examples)


MEAN, STD = 0.1307, 0.3081  # MNIST's pixel mean and std, chapter 3's normalisation


def as_images(
    x,
):  # uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) standardised, channels first
    return (x.astype("float32")[:, None] / 255 - MEAN) / STD


torch.manual_seed(0)
cnn_train = H.ArrayLoader(
    as_images(xc_train), yc_train, cnn_sizes.batch_size, shuffle=True, drop_last=True
)
cnn_test = H.ArrayLoader(as_images(xc_test), yc_test, 1024)
cnn = H.CNN(1, cnn_sizes.channels, cnn_sizes.hidden, 10, dropout=cnn_sizes.dropout).to(
    device
)
cnn_opt = torch.optim.Adam(cnn.parameters(), lr=cnn_sizes.learning_rate)
cnn_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
    cnn_opt, T_max=cnn_sizes.epochs * len(cnn_train)
)
cnn_opt.register_step_post_hook(
    lambda *_: cnn_schedule.step()
)  # H.fit only calls step()
cnn_history = H.fit(
    cnn, cnn_opt, cnn_train, epochs=cnn_sizes.epochs, eval_loader=cnn_test
)
cnn_accuracy = H.evaluate(cnn, cnn_test)["accuracy"]
H.plot_history(cnn_history, title="Chapter 3's CNN on MNIST (PyTorch)")
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
# Next: [the JAX half of this chapter](in-jax.ipynb), then the
# [lab](../../labs/04-jax-in-depth/in-pytorch.ipynb), whose self-checks tell you when each exercise
# is right. Works cited are listed in the [bibliography](../../bibliography.md).
