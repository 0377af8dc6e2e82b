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
# # 3. PyTorch in depth: JAX
#
# This is the JAX half of chapter 3; the [PyTorch half](in-pytorch.ipynb) teaches the same
# tasks the PyTorch way, in the same order. Chapter 1 trained a network with the course's
# `fit`; this chapter takes apart everything that call hides:
#
# * arrays: dtypes, devices, immutability and `.at[].set`, broadcasting, explicit PRNG keys;
# * differentiation: `jax.grad` on pure functions, vector-Jacobian products, a custom
#   derivative checked with `check_grads`;
# * Flax NNX modules, their parameters and other state; Optax optimizers with masks;
# * a NumPy data pipeline on real MNIST, measured;
# * a training and evaluation loop written out once, with a validation split, then a CNN;
# * saving with Orbax and resuming training exactly; `jax.jit`, measured.
#
# The chapter follows a course outline written for PyTorch whose code fails as written in
# several places; the PyTorch half runs each of those snippets and shows its error. This half
# shows the JAX counterpart of each, and where JAX makes the mistake impossible, says so.
# Every number on this page is printed by the code above it.

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
import os
import statistics
import tempfile
import textwrap
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from jax.test_util import check_grads
from tqdm import tqdm

from helpers import jax as H
from helpers.results import latest_by, read_records, short_hardware

# Every size this notebook uses comes from helpers/scale/foundations.py.
sizes = H.sizes("depth")
cnn_sizes = H.sizes("mnist_cnn")
device = H.default_device()
H.runtime_info()

# %% [markdown] tags=["shared"]
# ## 3.1 Tensors and arrays
#
# An array is a block of memory plus metadata: a **dtype** (what one element is), a **shape**,
# the **device** whose memory holds it, and, in PyTorch, **strides**: how many elements to
# skip in memory to move one step along each axis. Many operations (transpose, slicing, a
# reshape that keeps the order) only write new metadata over the same memory: they return a
# **view**. Others must copy.

# %% [markdown]
# A JAX array exposes no strides and no views: arrays are **immutable**, so whether an
# operation shares memory cannot change any result, and inside `jit` the compiler (XLA)
# chooses layouts and removes copies itself. `reshape` and `.T` always work; there is no
# `view`/`contiguous` distinction to learn.

# %%
x = jnp.arange(12, dtype=jnp.float32).reshape(3, 4)  # (3, 4)
print(x.dtype, x.devices(), x.shape, "| has strides:", hasattr(x, "strides"))
print("x.T.reshape(12):", x.T.reshape(12))

# %% [markdown]
# Immutability replaces in-place updates: `x[0] = 1` is an error, and `x.at[0].set(1)`
# returns a new array (under `jit`, XLA performs it in place when the old array is dead).

# %%
try:
    x[0, 0] = 100.0
except TypeError as e:
    msg = str(e).split(":")[0]  # up to the colon that introduces a link
    print(textwrap.fill(f"{type(e).__name__} - {msg}", 88, subsequent_indent="  "))
y = x.at[0, 0].set(100.0)
print("x unchanged:", x[0, 0], "| new array:", y[0, 0])

# %% [markdown]
# **Broadcasting** follows NumPy's rules, as in PyTorch: a `(3, 1)` column minus a `(4,)`
# row gives a `(3, 4)` table.

# %%
col = jnp.array([[0.0], [10.0], [20.0]])  # (3, 1)
row = jnp.array([1.0, 2.0, 3.0, 4.0])  # (4,)
print(col - row)  # (3, 4)

# %% [markdown]
# **Randomness** uses explicit keys instead of a global generator: a key is split into new
# keys, and the same key always gives the same numbers. This is what makes the exact resume of
# section 3.7 simple.

# %%
key = jax.random.key(0)
k1, k2 = jax.random.split(key)
print("same key, same draw:", jax.random.normal(k1, (2,)), jax.random.normal(k1, (2,)))
print("another key:        ", jax.random.normal(k2, (2,)))

# %% [markdown]
# **NumPy interop**: `jnp.asarray(a)` copies a NumPy array into device memory, so a later
# write to `a` does not reach the JAX array; `np.asarray(x)` gives a read-only NumPy view of
# a CPU array. JAX's default float is 32-bit (64-bit must be enabled explicitly).

# %%
a = np.zeros(3, dtype=np.float32)
j = jnp.asarray(a)
a[0] = 7.0
print(
    "jnp.asarray copied:",
    j[0],
    "| np.asarray is read-only:",
    not np.asarray(j).flags.writeable,
)
print("default dtypes: jax", jnp.zeros(1).dtype, "| numpy", np.zeros(1).dtype)

# %% [markdown] tags=["shared"]
# ## 3.2 Automatic differentiation

# %% [markdown]
# JAX differentiates **functions**, not tensors: there are no variables, leaves or recorded
# graphs to manage. `jax.grad(f)` is a new function that returns the gradient of `f`, which
# must return a scalar.

# %%
x = jnp.array([1.0, 2.0, 3.0])  # (3,)


def f(x):
    return (x**2).sum()


print("grad of sum(x^2) = 2x:", jax.grad(f)(x))
print("called twice, nothing accumulates:", jax.grad(f)(x))

# %% [markdown]
# PyTorch's `.grad` accumulates across `backward` calls; a JAX gradient is a return value,
# so it cannot. For a non-scalar output, `jax.grad` refuses, as PyTorch's `backward` does;
# `jax.vjp` computes the **vector-Jacobian product** $v^\top J$ with the $v$ you give.

# %%
try:
    jax.grad(lambda x: x * 2)(x)  # the outline's non-scalar backward, in JAX
except TypeError as e:
    print(type(e).__name__, "-", e)
out, vjp = jax.vjp(lambda x: x * 2, x)
print("vjp with v = ones:", vjp(jnp.ones_like(out))[0])

# %% [markdown]
# Nothing is recorded unless a function is transformed, so JAX needs no `no_grad`;
# `jax.lax.stop_gradient` plays the part of `detach`, a value treated as a constant. The
# gradient of `sum(x * stop_gradient(x))` is therefore $x$, not the $2x$ of `sum(x**2)`.

# %%
print(
    "grad of sum(x * stop_gradient(x)) = x:",
    jax.grad(lambda x: (x * jax.lax.stop_gradient(x)).sum())(x),
)

# %% [markdown]
# A **custom derivative** with `jax.custom_vjp`: a softplus, $\log(1 + e^x)$, with derivative
# $\sigma(x)$, written in a form that does not overflow. `check_grads` compares it with
# finite differences. By default it checks forward mode (`jvp`) too, which a `custom_vjp`
# function does not have (it defines only the reverse-mode rule, and `jvp` raises a
# `TypeError`), so `modes=["rev"]` checks reverse mode only.


# %%
@jax.custom_vjp
def softplus(x):
    return jnp.maximum(x, 0) + jnp.log1p(jnp.exp(-jnp.abs(x)))


def softplus_fwd(x):
    return softplus(x), x  # the residual saved for backward


def softplus_bwd(x, g):
    return (g * jax.nn.sigmoid(x),)  # vector-Jacobian product: g * sigma(x)


softplus.defvjp(softplus_fwd, softplus_bwd)
xs = jax.random.normal(jax.random.key(1), (8,))
check_grads(softplus, (xs,), order=1, modes=["rev"])  # raises if they disagree
print(
    "check_grads passed; equals jax.nn.softplus:",
    jnp.allclose(softplus(xs), jax.nn.softplus(xs)),
)

# %% [markdown] tags=["shared"]
# ## 3.3 Modules, parameters and state
#
# A module holds **parameters** (trained by the optimizer) and **buffers** (state that is
# saved but not trained, such as BatchNorm's running mean). The outline's MLP is 784-256-10.
# Its code uses `F.relu` without importing `F`; run in a fresh namespace, as written:

# %%
outline_forward = "x = F.relu(self.fc1(x))"
try:
    exec(outline_forward, {"self": None, "x": None})
except NameError as e:
    print("outline:", type(e).__name__, "-", e)


# %%
class OutlineMLP(nnx.Module):
    """The outline's MLP in Flax NNX, ReLU from nnx; the reshape takes this course's images."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.fc1 = nnx.Linear(784, 256, rngs=rngs)
        self.fc2 = nnx.Linear(256, 10, rngs=rngs)

    def __call__(self, x):  # x (B, 28, 28) or (B, 784)
        x = x.reshape(x.shape[0], -1)  # (B, 784)
        x = nnx.relu(self.fc1(x))  # (B, 256)
        return self.fc2(x)  # (B, 10) logits


mlp = OutlineMLP(rngs=nnx.Rngs(0))
params = nnx.state(mlp, nnx.Param)
for path, p in jax.tree_util.tree_leaves_with_path(params):
    print(f"{jax.tree_util.keystr(path):24s} {p.shape}")
print("parameters:", H.count_params(mlp))
bn = nnx.BatchNorm(4, rngs=nnx.Rngs(0))
print(
    "BatchNorm state:",
    [(k, type(v).__name__) for k, v in vars(bn).items() if isinstance(v, nnx.Variable)],
)

# %% [markdown]
# NNX marks state by type: `nnx.Param` is trained, `nnx.BatchStat` (BatchNorm's running
# statistics) is not, and `nnx.split` separates a module into a static **graph definition**
# and its **state**, a pytree of arrays that `jax.jit`, Optax and Orbax all understand.
# `nnx.Linear` initialises its kernel with LeCun normal (variance $1/\text{fan}_\text{in}$),
# not PyTorch's uniform; another scheme is an argument. The class also flattens its input
# (`x.reshape(x.shape[0], -1)`), so it takes this course's image batches, `(B, 28, 28)` or
# `(B, 28, 28, 1)`, as they come.

# %%
graphdef, state = nnx.split(mlp)
print("state leaves:", len(jax.tree.leaves(state)))
print(
    f"default fc1 kernel std: {mlp.fc1.kernel[...].std():.4f}, 1/sqrt(784) = {784**-0.5:.4f}"
)
probe = nnx.Linear(784, 256, kernel_init=nnx.initializers.he_normal(), rngs=nnx.Rngs(0))
print(
    f"he_normal std: {probe.kernel[...].std():.4f} (sqrt(2/784) = {(2 / 784) ** 0.5:.4f})"
)

# %% [markdown] tags=["shared"]
# ## 3.4 Optimizers

# %% [markdown]
# An Optax optimizer is a pair of pure functions, `init` and `update`, on any pytree, so the
# outline's bare tensor of weights is a valid input here (`optax.sgd(0.01).init(weights)`
# works); `nnx.Optimizer` applies one to a module's `nnx.Param` state. Weight decay only on
# kernels, not on biases or normalisation parameters (every parameter with fewer than
# 2 dimensions), is a **mask**: a pytree of booleans with the parameters' structure.

# %%
weights = jnp.zeros((784, 10))
print("optax on a bare array:", type(optax.sgd(0.01).init(weights)).__name__)


def decay_mask(params):
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(model):
    tx = optax.chain(
        optax.add_decayed_weights(sizes.weight_decay, mask=decay_mask),
        optax.sgd(sizes.learning_rate, momentum=0.9, nesterov=True),
    )
    return nnx.Optimizer(model, tx, wrt=nnx.Param)


optimizer = make_optimizer(mlp)
for path, m in jax.tree_util.tree_leaves_with_path(
    decay_mask(nnx.state(mlp, nnx.Param))
):
    print(f"{jax.tree_util.keystr(path):24s} weight decay: {m}")

# %% [markdown] tags=["shared"]
# ## 3.5 Data pipelines
#
# The real MNIST (60,000 training and 10,000 test digits) from the course's cache; `smoke`
# scale takes a subset of each, and the line below the code prints the sizes used. The last
# examples of the training split become a **validation split**: choices (epochs, learning
# rate) are made on it, and the test split is used once, at the end.

# %%
x_all, y_all = H.load_mnist(
    "train", limit=sizes.train_examples
)  # uint8 (N, 28, 28), (N,)
x_test, y_test = H.load_mnist("test", limit=sizes.test_examples)
n_val = sizes.validation_examples
x_train, y_train = x_all[:-n_val], y_all[:-n_val]
x_val, y_val = x_all[-n_val:], y_all[-n_val:]
print(f"train {x_train.shape}, validation {x_val.shape}, test {x_test.shape}")
MEAN, STD = 0.1307, 0.3081  # MNIST's pixel mean and std, the usual normalisation

# %% [markdown]
# JAX has no data loader of its own. The same two questions a PyTorch `Dataset` answers,
# `len(ds)` and `ds[i]`, make a plain Python class; batching is a permutation drawn from an
# explicit key. PyTorch's worker processes and `pin_memory` have no counterpart here (the
# `grain` library offers workers); the measurement below compares per-example fetching with
# whole-array preprocessing.


# %%
class MnistDataset:
    def __init__(self, images: np.ndarray, labels: np.ndarray, transform=None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        image = self.images[i]  # uint8 (28, 28)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[i])


def to_array(image: np.ndarray) -> np.ndarray:
    """uint8 (28, 28) -> float32 (28, 28, 1), normalised: channels last."""
    return ((image.astype(np.float32) / 255 - MEAN) / STD)[..., None]


def batches(ds, batch_size: int, key):
    """Shuffled batches (x, y) of a Dataset: one permutation per epoch, from key."""
    order = np.asarray(jax.random.permutation(key, len(ds)))
    for start in range(0, len(ds), batch_size):
        items = [ds[int(i)] for i in order[start : start + batch_size]]
        yield (
            jnp.asarray(np.stack([x for x, _ in items])),
            jnp.asarray([y for _, y in items]),
        )


train_ds = MnistDataset(x_train, y_train, transform=to_array)
image, label = train_ds[0]
print("one example:", image.shape, image.dtype, "label", label)
xb, yb = next(batches(train_ds, sizes.batch_size, jax.random.key(0)))
print("one batch:", xb.shape, yb.shape, yb.dtype)  # (B, 28, 28, 1), (B,)


# %%
def time_batches(loader, n_batches: int) -> float:
    """Seconds per batch over the first n_batches."""
    start = time.perf_counter()
    for i, (xb, _) in enumerate(loader):  # noqa: B007
        if i + 1 == n_batches:
            break
    jax.block_until_ready(xb)
    return (time.perf_counter() - start) / n_batches


def normalised(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1), normalised, as one array."""
    return ((images.astype(np.float32) / 255 - MEAN) / STD)[..., None]


whole = normalised(x_train)  # once, for the whole split
# Warm-up: ArrayLoader gathers each batch with a jitted function, compiled on first use.
next(iter(H.ArrayLoader(whole, y_train, sizes.batch_size)))
loader_seconds = {
    "transform, per example": time_batches(
        batches(train_ds, sizes.batch_size, jax.random.key(0)), sizes.loader_batches
    ),
    "whole array, ArrayLoader": time_batches(
        H.ArrayLoader(whole, y_train, sizes.batch_size, shuffle=True),
        sizes.loader_batches,
    ),
}
for name, sec in loader_seconds.items():
    print(
        f"{name:30s} {sec * 1e3:8.2f} ms/batch  {sizes.batch_size / sec:10,.0f} images/s"
    )

# %%
fig, ax = plt.subplots(figsize=(7, 2.5))
names = list(loader_seconds)
bars = ax.barh(names, [sizes.batch_size / loader_seconds[n] for n in names])
ax.bar_label(bars, fmt="{:,.0f}", padding=3)  # each bar's value, at its end
ax.set_xlim(0, 1.2 * max(b.get_width() for b in bars))  # linear, from zero
ax.set(xlabel="images per second", title="MNIST input pipelines")
ax.xaxis.set_major_locator(plt.MaxNLocator(4))  # few, wide labels: no overlap
ax.xaxis.set_major_formatter("{x:,.0f}")  # plain numbers, no 1e6 offset
ax.invert_yaxis()  # first setting on top, as in the table
plt.show()

# %% [markdown]
# The table compares building each batch from examples in Python (here with a cheap NumPy
# transform) with slicing batches out of one preprocessed array on the device. The second
# also keeps the data where a jitted training step reads it, and costs nothing per epoch
# for the transform. MNIST fits in memory as one array, so the rest of this chapter does that.

# %% [markdown] tags=["shared"]
# ## 3.6 Training and evaluation loops
#
# The outline's "model optimisation" loop feeds the same batch at every step. Here is its
# pattern, as written, for 100 steps: the training loss on that batch goes to nearly zero
# while accuracy on held-out data stays well below what one pass over the training data
# gives (the first epoch of the loop that follows). A loop must draw a new batch each step.


# %%
def loss_fn(model, x, y):
    logits = model(x)  # (B, 10)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits


@nnx.jit
def train_step(model, optimizer, x, y):
    (loss, _), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model, x, y)
    optimizer.update(model, grads)  # in place: NNX objects carry their state
    return loss


one_batch_model = OutlineMLP(rngs=nnx.Rngs(0))
opt = nnx.Optimizer(one_batch_model, optax.sgd(0.1), wrt=nnx.Param)
data, target = (
    jnp.asarray(whole[:64]),
    jnp.asarray(y_train[:64], jnp.int32),
)  # one batch
for _ in range(100):  # the outline's loop: no new batch per step
    loss = train_step(one_batch_model, opt, data, target)
val_x, val_y = jnp.asarray(normalised(x_val)), jnp.asarray(y_val, jnp.int32)
val_acc = float((one_batch_model(val_x).argmax(1) == val_y).mean())
print(f"one batch: training loss {float(loss):.4f}, validation accuracy {val_acc:.3f}")

# %% [markdown]
# The loop written out once. `model.train()` and `model.eval()` switch dropout and
# batch-norm between their two behaviours (NNX sets `deterministic` and
# `use_running_average` on every submodule); nothing is recorded during evaluation, so there
# is no `no_grad` to forget. Accuracy is counted **per example** (averaging per-batch
# accuracies would over-weight a smaller last batch).


# %%
@nnx.jit
def eval_step(model, x, y):
    loss, logits = loss_fn(model, x, y)
    return loss * len(y), (logits.argmax(1) == y).sum()


def train_epoch(model, optimizer, loader) -> float:
    model.train()
    losses = [train_step(model, optimizer, xb, yb) for xb, yb in loader]
    return float(jnp.stack(losses).mean())  # equal batch sizes: the mean is per example


def evaluate(model, loader) -> tuple[float, float]:
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    for xb, yb in loader:
        loss, right = eval_step(model, xb, yb)
        loss_sum, correct, n = loss_sum + float(loss), correct + int(right), n + len(yb)
    return loss_sum / n, correct / n


# drop_last: every step has the same shape, so the jitted step compiles once.
train_loader = H.ArrayLoader(
    whole, y_train, sizes.batch_size, shuffle=True, drop_last=True
)
val_loader = H.ArrayLoader(normalised(x_val), y_val, 1000)
test_loader = H.ArrayLoader(normalised(x_test), y_test, 1000)

mlp = OutlineMLP(rngs=nnx.Rngs(0))
optimizer = make_optimizer(mlp)
curve = []
start, cpu_start = time.perf_counter(), time.process_time()
for epoch in tqdm(range(1, sizes.mlp_epochs + 1), desc="MLP epochs"):
    train_loss = train_epoch(mlp, optimizer, train_loader)
    val_loss, val_acc = evaluate(mlp, val_loader)
    curve.append((epoch, train_loss, val_loss, val_acc))
mlp_seconds = time.perf_counter() - start
mlp_cpu = time.process_time() - cpu_start
for epoch, tl, vl, va in curve:
    print(
        f"epoch {epoch}: train loss {tl:.4f}, validation loss {vl:.4f}, accuracy {va:.4f}"
    )

# %% [markdown]
# The outline prints its accuracy with `%d`, which truncates towards zero; `%.2f` (or an
# f-string) prints what was measured:

# %%
test_loss, mlp_test_acc = evaluate(mlp, test_loader)
print("outline: Accuracy: %d %%" % (100 * mlp_test_acc))  # noqa: UP031
print(f"fixed:   Accuracy: {100 * mlp_test_acc:.2f} %")
print(
    f"MLP 784-256-10: test accuracy {mlp_test_acc:.4f} after {mlp_seconds:.1f} s of "
    f"training (process CPU time {mlp_cpu:.1f} s)"
)

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
epochs_ = [c[0] for c in curve]
ax.plot(epochs_, [c[1] for c in curve], marker="o", label="training loss")
ax.plot(epochs_, [c[2] for c in curve], marker="o", label="validation loss")
ax.set(xlabel="epoch", ylabel="cross-entropy (nats)", title="MLP 784-256-10 on MNIST")
ax.set_xticks(epochs_)  # whole epochs only
ax.legend()
plt.show()

# %% [markdown]
# The training loss is the mean over the epoch's steps, taken while the model was still
# improving, and the validation loss is measured after the epoch, so the first epoch's
# training loss can lie above its validation loss.
#
# The same training with the course's `H.fit`, which runs this loop (plus timing and a
# progress bar): the same initial weights (the same seed) and a new loader with the same
# shuffling seed. Reusing `train_loader` would continue its random generator and give other
# batches. The two lines the cell prints, the loop's and `fit`'s, should then match.

# %%
mlp_fit = OutlineMLP(rngs=nnx.Rngs(0))
fit_loader = H.ArrayLoader(
    whole, y_train, sizes.batch_size, shuffle=True, drop_last=True
)
history = H.fit(
    mlp_fit,
    make_optimizer(mlp_fit),
    fit_loader,
    epochs=sizes.mlp_epochs,
    eval_loader=val_loader,
    eval_name="val",
)
fit_test_acc = H.evaluate(mlp_fit, test_loader)["accuracy"]
print(f"loop:  last train loss {curve[-1][1]:.4f}, test accuracy {mlp_test_acc:.4f}")
print(
    f"H.fit: last train loss {history.last('train_loss'):.4f}, test accuracy {fit_test_acc:.4f}"
)

# %% [markdown]
# Then a small **CNN**, the course's shared `H.CNN`, channels last: two blocks of 3x3
# convolution, 2x2 max pooling, batch-norm and ReLU, then a hidden layer with dropout. It
# trains with Adam and a cosine decay of the learning rate to zero, which in Optax is a
# schedule passed as the learning rate.

# %%
cnn = H.CNN(
    1,
    cnn_sizes.channels,
    cnn_sizes.hidden,
    10,
    dropout=cnn_sizes.dropout,
    rngs=nnx.Rngs(0),
)
cnn_train = H.ArrayLoader(
    normalised(x_all), y_all, cnn_sizes.batch_size, shuffle=True, drop_last=True
)
schedule = optax.cosine_decay_schedule(
    cnn_sizes.learning_rate, decay_steps=cnn_sizes.epochs * len(cnn_train)
)
cnn_opt = nnx.Optimizer(cnn, optax.adam(schedule), wrt=nnx.Param)
cpu_start = time.process_time()
cnn_history = H.fit(cnn, cnn_opt, cnn_train, epochs=cnn_sizes.epochs)
cnn_cpu = time.process_time() - cpu_start
cnn_seconds = sum(e["seconds"] for e in cnn_history.epochs)
cnn_test_acc = H.evaluate(cnn, test_loader)["accuracy"]
print(f"CNN ({H.count_params(cnn):,} parameters): test accuracy {cnn_test_acc:.4f}")
print(
    f"  {cnn_seconds:.1f} s of training on {len(y_all):,} images, {cnn_sizes.epochs} "
    f"epoch(s) (process CPU time {cnn_cpu:.1f} s)"
)

# %% [markdown]
# The CNN trains on the whole training split loaded above, the validation examples included
# (nothing more is chosen with them here; the line above prints how many images: all 60,000
# at `cpu` scale). At `cpu` scale the page asserts that the MLP reaches at least 97 % test
# accuracy and the CNN 99.0 %, each in under five minutes of training; at the other scales, only
# that both learn. The time it checks is the smaller of the wall time and the process's CPU
# time (all its threads together), since other programs running on the machine lengthen the
# first but not the second. The recorded `helpers.bench mnist --model cnn` runs, which time
# both frameworks through one harness on one machine, are in `bench.jsonl` beside this
# notebook; the cell after the check prints the latest of each. Those runs trained the `cpu`
# scale's CNN, which the first lines of that cell describe from the records (model, parameter
# count, training images). Only at `cpu` scale does this page train the same CNN on the same
# images; at `smoke` scale it trains a smaller one on fewer images (compare the parameter
# counts), so its accuracy is not comparable with the table's.

# %%
if H.current_scale() == "cpu":
    assert mlp_test_acc >= 0.97 and min(mlp_seconds, mlp_cpu) < 300, (
        mlp_test_acc,
        mlp_cpu,
    )
    assert cnn_test_acc >= 0.99 and min(cnn_seconds, cnn_cpu) < 300, (
        cnn_test_acc,
        cnn_cpu,
    )
else:  # smoke and gpu scale: both still learn
    assert mlp_test_acc > 0.5 and cnn_test_acc > 0.3, (mlp_test_acc, cnn_test_acc)

# %%
# Recorded by `python -m helpers.bench mnist --model cnn --framework both --scale cpu --record`:
# the latest record of each framework, scale and machine (older ones left out).
bench_file = H.course_root() / "chapters/03-pytorch-in-depth/bench.jsonl"
records = [{**r, "machine": short_hardware(r)} for r in read_records(bench_file)]
recorded = {(r["model"], r["parameters"], r["train_examples"]) for r in records}
for model_name, n_params, n_images in sorted(recorded):
    print(f"recorded: {model_name}")
    print(f"  {n_params:,} parameters, {n_images:,} training images")
print(
    f"{'framework':9} {'scale':5} {'epochs':>6} {'test acc':>8} {'train s':>7}"
    f" {'examples/s':>10}  hardware, date, commit"
)
for r in latest_by(records, "scale", "machine", "framework").values():
    print(
        f"{r['framework']:9} {r['scale']:5} {r['epochs']:6} {r['test_accuracy']:8.2%}"
        f" {r['train_seconds']:7.1f} {r['train_examples_per_second']:10,.0f}"
        f"  {r['machine']}, {r['date'][:10]}, {r['commit'][:7]}"
    )

# %% [markdown] tags=["shared"]
# ## 3.7 Saving, loading and resuming

# %% [markdown]
# Save the **state**, a pytree of arrays, not the Python objects. **Orbax**, the JAX
# ecosystem's checkpointing library, writes a checkpoint as a directory: metadata files plus
# the arrays in a TensorStore key-value store (OCDBT), written asynchronously and readable on
# other hardware layouts; `safetensors` or `flax.serialization.msgpack` write one file, which
# is enough for a small model but has no asynchronous or sharded writes. Restoring needs a
# **target** of the same structure: an abstract state (shapes and dtypes, no arrays), which
# `nnx.eval_shape` gives without initialising a model; `nnx.merge` then builds the model
# from the restored arrays.

# %%
ckpt_dir = tempfile.mkdtemp()
checkpointer = ocp.StandardCheckpointer()
checkpointer.save(os.path.join(ckpt_dir, "mlp"), nnx.state(mlp))
checkpointer.wait_until_finished()
abstract = nnx.eval_shape(lambda: OutlineMLP(rngs=nnx.Rngs(123)))  # no arrays allocated
graphdef, target = nnx.split(abstract)
restored = nnx.merge(
    graphdef, checkpointer.restore(os.path.join(ckpt_dir, "mlp"), target)
)
same_acc = evaluate(restored, test_loader)[1] == mlp_test_acc
print("restored model's test accuracy equals the original's:", same_acc)

# %% [markdown]
# **Resuming exactly** needs everything the next step depends on: the weights and batch
# statistics, the optimizer's state (Adam's moments, the step count that drives a schedule),
# the dropout RNG state, which NNX keeps inside the model, and the data-order key. Below, a
# small MLP with dropout trains for a few steps; a checkpoint is written; training
# continues. Then a fresh model and optimizer load the checkpoint and take the same next
# steps: their losses are bit-identical.


# %%
@nnx.jit
def resume_step(model, optimizer, x, y):
    loss, grads = nnx.value_and_grad(lambda m: loss_fn(m, x, y)[0])(model)
    optimizer.update(model, grads)
    return loss


def steps(model, optimizer, key, n):
    """n training steps on batches drawn with key; (losses, the next key)."""
    model.train()
    losses = []
    for _ in range(n):
        key, sub = jax.random.split(key)
        idx = jax.random.randint(sub, (32,), 0, len(whole))
        x, y = jnp.asarray(whole)[idx], jnp.asarray(y_train, jnp.int32)[idx]
        losses.append(float(resume_step(model, optimizer, x, y)))
    return losses, key


class DropoutMLP(nnx.Module):
    """(B, 28, 28, 1) -> (B, 10): a small MLP with dropout, so the RNG state matters."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.fc1 = nnx.Linear(784, 64, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.fc2 = nnx.Linear(64, 10, rngs=rngs)

    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)  # (B, 784)
        return self.fc2(self.drop(nnx.relu(self.fc1(x))))  # (B, 10)


def fresh(seed=0):
    model = DropoutMLP(rngs=nnx.Rngs(seed))
    return model, nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)


model, opt = fresh()
_, key = steps(model, opt, jax.random.key(1), 5)
path = os.path.join(ckpt_dir, "resume")
checkpointer.save(
    path,
    {
        "model": nnx.state(model),
        "optimizer": nnx.state(opt),
        "data_key": jax.random.key_data(key),
    },
)
checkpointer.wait_until_finished()
continued, _ = steps(model, opt, key, 3)

model2, opt2 = fresh(
    seed=123
)  # different weights and dropout RNG: all must come from disk
target = {
    "model": nnx.state(model2),
    "optimizer": nnx.state(opt2),
    "data_key": jax.random.key_data(jax.random.key(0)),
}
ckpt = checkpointer.restore(path, target)
nnx.update(model2, ckpt["model"])
nnx.update(opt2, ckpt["optimizer"])
resumed, _ = steps(model2, opt2, jax.random.wrap_key_data(ckpt["data_key"]), 3)
print("continued:", continued)
print("resumed:  ", resumed)
assert continued == resumed  # bit-identical, not merely close

# %% [markdown] tags=["shared"]
# ## 3.8 Compilation

# %% [markdown]
# Without `jax.jit`, JAX dispatches each operation from Python as it is reached, like
# PyTorch's eager mode. `jax.jit` traces a function once per input shape and dtype into a
# graph that XLA compiles {cite}`frostig2018compiling`; the first call pays for the
# compilation. At `cpu` and `gpu` scale the MLP's whole training step is timed eagerly and
# compiled (`nnx.jit`, the NNX wrapper of `jax.jit`); at `smoke` scale, a quick check that the
# page runs, a tiny elementwise function is timed and compiled instead, as on the PyTorch page.


# %%
def timed(fn, *args, repeats=sizes.timing_repeats):
    """(seconds of the first call, median seconds of the next `repeats` calls)."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def gelu_tanh(x):  # a chain of elementwise operations: what fusion is for
    return 0.5 * x * (1 + jnp.tanh(0.79788456 * (x + 0.044715 * x**3)))


model_c = OutlineMLP(rngs=nnx.Rngs(0))
opt_c = nnx.Optimizer(model_c, optax.sgd(0.01), wrt=nnx.Param)
xb_c = jnp.asarray(whole[: sizes.batch_size])
yb_c = jnp.asarray(y_train[: sizes.batch_size], jnp.int32)


def train_step_eager(x, y):
    (loss, _), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model_c, x, y)
    opt_c.update(model_c, grads)
    return loss


@nnx.jit
def train_step_jit(model, optimizer, x, y):
    (loss, _), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model, x, y)
    optimizer.update(model, grads)
    return loss


if sizes.compile_model:
    label = "MLP training step"
    eager_first, eager_step = timed(train_step_eager, xb_c, yb_c)
    compiled_first, compiled_step = timed(train_step_jit, model_c, opt_c, xb_c, yb_c)
else:
    label = "gelu_tanh on 100k numbers"
    x_small = jax.random.normal(jax.random.key(0), (100_000,))
    eager_first, eager_step = timed(gelu_tanh, x_small)
    compiled_first, compiled_step = timed(jax.jit(gelu_tanh), x_small)
print(f"{label}: eager {eager_step * 1e3:.3f} ms per call")
print(
    f"jit: first call {compiled_first:.2f} s (compilation), then "
    f"{compiled_step * 1e3:.3f} ms per call, {eager_step / compiled_step:.2f}x eager"
)

# %% [markdown]
# The numbers above are this machine's. `jax.jit` always hands XLA the whole function to
# compile, at every scale, so even the `smoke` ratio measures compiled code. The PyTorch
# page's `smoke` ratio does not: there `aot_eager` runs the same eager kernels, so the two
# pages' `smoke` ratios cannot be compared. Compilation helps most where Python dispatch and
# memory traffic dominate, many small operations that XLA fuses, and in a training step, where
# eager JAX pays dispatch on every operation of the forward pass, the backward pass and the
# optimizer. It costs a compilation per new input shape, so shapes should stay fixed (a
# smaller last batch compiles once more). JAX code is written to be compiled; PyTorch's is
# written to run eagerly and may be compiled.

# %% [markdown] tags=["shared"]
# ## 3.9 Summary
#
# * Arrays are memory plus metadata; PyTorch exposes views and strides and allows in-place
#   changes (within autograd's rules), JAX arrays are immutable and the compiler owns layout.
# * A gradient is a vector-Jacobian product; for a non-scalar output you supply the vector.
#   PyTorch accumulates gradients until they are cleared, a JAX gradient is a return value.
# * Optimizers update a model's parameters; weight decay belongs on weights, not on biases or
#   normalisation parameters (parameter groups in PyTorch, a mask in Optax).
# * For data that fits in memory, preprocessing the whole array once and slicing batches from
#   it beats per-example transforms by a wide margin (section 3.5's table).
# * Train and evaluate in the right mode, count accuracy per example, save state rather than
#   objects, and restore the optimizer and the random state too to resume exactly.

# %% [markdown] tags=["notebook-only"]
# Next: [the PyTorch half of this chapter](in-pytorch.ipynb), then the
# [lab](../../labs/03-pytorch-in-depth/in-jax.ipynb), whose self-checks tell you when each exercise
# is right. Works cited are listed in the [bibliography](../../bibliography.md).
