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
# # Lab 3 solutions: data, training and evaluation loops in JAX
#
# Five exercises on chapter 3: a `Dataset` with a transform, one training step, an evaluation
# function that returns the accuracy, and, beyond the chapter, early stopping that restores
# the best weights (then trained on real MNIST digits in a demo) and a training step that
# accumulates gradients over micro-batches. Replace each line `raise NotImplementedError(...)`
# with your code, run the cell, then run the check below it: a check prints ✅ when your code
# is right, or ❌ with what it expected and a hint.
#
# The checks call your code on their own inputs and models (at least two different cases each,
# so a hard-coded answer cannot pass) and compare with JAX's own answers (exercise 4: a
# scripted sequence of losses and weights; exercise 5: a float64 NumPy reference); they never
# read your code.
#
# The exercises alone, without the answers: [Lab 3 in JAX](../../labs/03-pytorch-in-depth/in-jax.ipynb).

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
import numpy as np
import optax
from flax import nnx

from helpers import jax as H

# %% [markdown]
# ## Exercise 1: a Dataset with a transform
#
# Write `DigitDataset(images, labels, transform)`, a plain Python class (JAX has no `Dataset`
# type; any object with `len` and indexing will do): `images` is a uint8 NumPy array
# `(N, 28, 28)`, `labels` a NumPy array `(N,)` of classes 0-9, and `transform` a function
# that turns one uint8 image into a JAX array. `len(ds)` is `N`, and `ds[i]` returns the pair
# `(transform(images[i]), label i)`, the label as a Python `int`. Example `i` must keep its
# own label: shuffle the order of *indices* when batching, never the images or the labels.


# %%
class DigitDataset:
    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        ### BEGIN SOLUTION
        self.images, self.labels, self.transform = images, labels, transform
        ### END SOLUTION

    def __len__(self) -> int:
        ### BEGIN SOLUTION
        return len(self.labels)
        ### END SOLUTION

    def __getitem__(self, i: int) -> tuple[jax.Array, int]:
        ### BEGIN SOLUTION
        return self.transform(self.images[i]), int(self.labels[i])
        ### END SOLUTION


# %%
H.lab03.check_dataset(DigitDataset)

# %% [markdown]
# ## Exercise 2: one training step
#
# Write `train_step(model, optimizer, x, y)` for a Flax NNX `model` and an `nnx.Optimizer`:
# one step of gradient descent on the batch `x` `(B, ...)` with integer labels `y` `(B,)`,
# using the mean cross-entropy of the model's logits `(B, C)`
# (`optax.softmax_cross_entropy_with_integer_labels`). Return the loss of the batch,
# computed before the update, as a 0-d array. The check runs three steps
# from the same start and compares the parameters with the right ones. You may compile it
# with `@nnx.jit`.


# %%
@nnx.jit
def train_step(model: nnx.Module, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array):
    ### BEGIN SOLUTION
    def loss_fn(model):
        logits = model(x)  # (B, C)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss
    ### END SOLUTION


# %%
H.lab03.check_train_step(train_step)

# %% [markdown]
# ## Exercise 3: evaluation
#
# Write `evaluate_accuracy(model, loader)`: the fraction of examples in `loader` (an iterable
# of batches `(x, y)`) whose predicted class, the argmax of the logits, equals the label,
# as a Python `float`. The check's model has dropout and batch-norm, and its batches have
# different sizes: evaluate in the right mode and count per example.


# %%
def evaluate_accuracy(model: nnx.Module, loader) -> float:
    ### BEGIN SOLUTION
    model.eval()
    correct, n = 0, 0
    for x, y in loader:
        correct += int((model(x).argmax(-1) == y).sum())
        n += len(y)
    return correct / n
    ### END SOLUTION


# %%
H.lab03.check_evaluate_accuracy(evaluate_accuracy)

# %% [markdown]
# ## Exercise 4: early stopping that restores the best weights
#
# Past some epoch the training loss goes on falling while the validation loss rises: the model
# has started to fit its training set's noise. Early stopping evaluates the validation loss
# after each epoch, stops once it has not improved for `patience` epochs in a row, and puts
# back the weights of the best epoch. Waiting longer buys little: {cite:t}`prechelt1998early`
# compared stopping criteria on 1,296 training runs and found that the slower ones (those that
# wait longer before stopping) improved generalisation by only about 4 % on average, for about
# four times the training time.
#
# Keeping "the best weights" has a trap, which
# [section 3.7](../../chapters/03-pytorch-in-depth/in-jax.ipynb) did not need to show: a
# model's state is live, not a copy. JAX arrays are immutable, but NNX Variables are not:
# `nnx.state(model)` (like the state `nnx.split` returns) holds the model's own Variables, and
# an optimizer update gives them new values, so a "saved" state changes with the model.
# `nnx.clone(model)` makes new Variables; a pure dict of the arrays,
# `nnx.to_pure_dict(nnx.state(model))`, holds values that nothing can change. Run the cell:
# the `nnx.state` line prints the kernel after the update, the `nnx.clone` and pure-dict lines
# the kernel before it.

# %%
layer = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
kept = nnx.state(layer)  # the live Variables
cloned = nnx.state(nnx.clone(layer))  # new Variables
arrays = nnx.to_pure_dict(nnx.state(layer))  # plain (immutable) arrays
optimizer = nnx.Optimizer(layer, optax.sgd(0.1), wrt=nnx.Param)
optimizer.update(layer, nnx.grad(lambda m: (m(jnp.ones((1, 2))) ** 2).sum())(layer))
print("kernel after the update:", np.asarray(layer.kernel[...]).ravel().round(4))
print(
    "nnx.state kept:         ",
    np.asarray(kept["kernel"][...]).ravel().round(4),
    "same Variable:",
    kept["kernel"] is layer.kernel,
)
print("nnx.clone kept:         ", np.asarray(cloned["kernel"][...]).ravel().round(4))
print("pure dict kept:         ", np.asarray(arrays["kernel"]).ravel().round(4))

# %% [markdown]
# Write a class `EarlyStopping(patience, min_delta=0.0)` with
#
# * `step(val_loss, model) -> bool`, called once per epoch with that epoch's validation loss
#   (a Python float, possibly NaN) and the model. An improvement is
#   `val_loss < best_loss - min_delta` (strict: an equal loss is none; NaN never is one). On an
#   improvement, record the loss, the epoch (0 on the first call of `step`, 1 on the second,
#   ...) and a copy of the model's whole state, parameters and batch statistics (BatchNorm's
#   `nnx.BatchStat`). Return `True` when `patience` epochs in a row have brought no
#   improvement (with `patience=2` and the losses 1.0, 0.9, 0.95, 0.93: `False`, `False`,
#   `False`, `True`, and `True` again on a fifth epoch without improvement), else `False`.
# * `restore(model) -> None`: write the best epoch's state back into the caller's `model`, in
#   place (`nnx.update` sets the values of the model's own Variables), and keep the snapshot:
#   `restore` may be called again, and training after a restore must not change it.
# * attributes `best_loss` (a Python float, `inf` before any step) and `best_epoch` (an int).
#
# The check drives four instances of your class side by side (so keep all the state in `self`)
# through four scripted loss sequences on a small model with a BatchNorm. Before each `step`
# it gives every Variable that epoch's value, as an optimizer does, and once more after the
# last one; then `restore` must put back exactly the best epoch's parameters and batch
# statistics, twice. (`flax.training.early_stopping` only counts, keeps no weights, and sets
# `should_stop` one epoch later than asked here.)


# %%
class EarlyStopping:
    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        ### BEGIN SOLUTION
        self.patience, self.min_delta = patience, min_delta
        self.best_loss, self.best_epoch = float("inf"), -1
        self.epoch, self.wait, self.best_model = 0, 0, None
        ### END SOLUTION

    def step(self, val_loss: float, model: nnx.Module) -> bool:
        ### BEGIN SOLUTION
        if val_loss < self.best_loss - self.min_delta:  # False for NaN
            self.best_loss, self.best_epoch, self.wait = val_loss, self.epoch, 0
            self.best_model = nnx.clone(model)  # new Variables, not the live ones
        else:
            self.wait += 1
        self.epoch += 1
        return self.wait >= self.patience
        ### END SOLUTION

    def restore(self, model: nnx.Module) -> None:
        ### BEGIN SOLUTION
        nnx.update(model, nnx.state(self.best_model))  # sets model's Variables' values
        ### END SOLUTION


# %%
H.lab03.check_early_stopping(EarlyStopping)

# %% [markdown]
# Your `EarlyStopping` on MNIST: exercise 2's `train_step` with Adam on a small MLP with a
# BatchNorm, a validation split held out from the training images, a full pass over the rest
# per epoch and one call of `stopper.step` after it; then exercise 3's `evaluate_accuracy`
# with the weights restored and with the last ones. Expect them close: the loop stops
# `patience` epochs after the best one (or at the last epoch, if that comes first; the
# patience is printed below), and the restored weights are the validation loss's choice, not
# a promise of the best test accuracy.
# The sizes are `H.sizes("lab03_early_stopping")`, in helpers/scale/foundations.py.


# %%
class Net(nnx.Module):
    def __init__(self, hidden: int, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(784, hidden, rngs=rngs)
        self.norm = nnx.BatchNorm(hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, 28, 28) -> (B, 10)
        return self.out(nnx.relu(self.norm(self.hidden(x.reshape(x.shape[0], -1)))))


@nnx.jit
def summed_loss(model: nnx.Module, x: jax.Array, y: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).sum()


def batches(x: np.ndarray, y: np.ndarray, rng: np.random.Generator | None = None):
    """(B, 28, 28) float32 in [0, 1] and int32 labels; shuffled when a generator is given
    (on the host, with NumPy: the data is there, and a jax.random.permutation compiles)."""
    order = np.arange(len(y)) if rng is None else rng.permutation(len(y))
    for start in range(0, len(y), sizes.batch_size):
        idx = order[start : start + sizes.batch_size]
        yield jnp.asarray(x[idx], jnp.float32) / 255, jnp.asarray(y[idx], jnp.int32)


try:
    sizes = H.sizes("lab03_early_stopping")
    images, labels = H.load_mnist("train", limit=sizes.train_examples)
    test_images, test_labels = H.load_mnist("test", limit=sizes.test_examples)
    n_train = len(labels) - sizes.validation_examples
    train = images[:n_train], labels[:n_train]
    splits = {
        "validation": (images[n_train:], labels[n_train:]),
        "test": (test_images, test_labels),
    }
    model = Net(sizes.hidden, nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(sizes.learning_rate), wrt=nnx.Param)
    stopper, rng = EarlyStopping(sizes.patience), np.random.default_rng(0)
    for epoch in range(sizes.max_epochs):  # noqa: B007 (read after the loop)
        model.train()
        for x, y in batches(*train, rng):
            train_step(model, optimizer, x, y)
        model.eval()
        x_val, y_val = splits["validation"]
        loss = sum(float(summed_loss(model, x, y)) for x, y in batches(x_val, y_val))
        if stopper.step(loss / len(y_val), model):
            break
    last = {name: evaluate_accuracy(model, batches(*xy)) for name, xy in splits.items()}
    stopper.restore(model)
    best = {name: evaluate_accuracy(model, batches(*xy)) for name, xy in splits.items()}
    print(
        f"stopped after epoch {epoch} (at most {sizes.max_epochs}, patience "
        f"{sizes.patience}); best epoch {stopper.best_epoch}, validation loss "
        f"{stopper.best_loss:.4f}"
    )
    for name in splits:
        print(f"{name} accuracy: restored {best[name]:.4f}, last {last[name]:.4f}")
except NotImplementedError:
    print("solve exercises 2, 3 and 4 first")

# %% [markdown]
# ## Exercise 5: gradient accumulation
#
# In JAX a gradient is the return value of one call, so nothing accumulates unless you add it
# up; here you do, on purpose. When a batch of $N$ examples does not fit in memory, split it
# into micro-batches $B_1, \dots, B_K$ of at most $m$ rows, compute each one's gradients in
# turn, add them up, and update once. The batch's mean loss is a weighted sum of the
# micro-batches' mean losses, and the gradient is linear:
#
# $$\begin{aligned}
# L &= \frac{1}{N}\sum_{i=1}^{N} \ell_i = \sum_{k=1}^{K} \frac{|B_k|}{N}\, L_k,\\
# \nabla L &= \sum_{k=1}^{K} \frac{|B_k|}{N}\, \nabla L_k, \qquad
# \theta \leftarrow \theta - \eta\, \nabla L,\end{aligned}$$
#
# where $L_k$ is the mean loss of micro-batch $B_k$; the update is the whole batch's, computed
# in $K$ passes, one after the other, each holding the activations of at most $m$ rows. Weight
# by size, not by $1/K$: the last micro-batch may be smaller. Data-parallel training meets the
# same sum: {cite:t}`goyal2017accurate` normalise each worker's loss by the total minibatch
# size, not by the worker's own, because the all-reduce adds the workers' gradients. The
# equality needs a model whose examples do not interact: batch-norm normalises with each
# micro-batch's own statistics, so it computes a different function on micro-batches (the
# check's model has none). And the check uses plain SGD: Adam's steps are invariant to a
# constant scale of the gradient (its first moment scales by $K$, the square root of its
# second by $K$ too; only $\epsilon$ breaks the tie), so with Adam a gradient $K$ times too
# large would go unnoticed, in the check and in real training.
#
# Write `train_step_accumulated(model, optimizer, x, y, micro_batch_size)` for a Flax NNX
# `model` and an `nnx.Optimizer`, as in exercise 2: one optimizer update on the batch `(x, y)`
# from the micro-batches `x[i:i + micro_batch_size]` (the last may be smaller), equal to
# exercise 2's `train_step` on the whole batch up to float32 rounding. Return the whole
# batch's mean loss before the update, a 0-d float32 array. A Python loop over the
# micro-batches is fine. To compile, define the gradient function once, outside your function,
# and decorate it with `@nnx.jit` (the last, smaller micro-batch compiles once more). Two
# gradients, trees of the same structure, add with `jax.tree.map(jnp.add, g1, g2)`.
# `optax.MultiSteps` accumulates for you, across calls: the check refuses it.
#
# The check runs four batches (10 rows in micro-batches of 4, 12 of 4, 6 of 8, 5 of 1) on a
# small MLP that records how many rows each call (or trace) and each gradient saw (never more
# than `micro_batch_size`), counts the optimizer's updates (exactly one), and compares the
# parameters after the update and the returned loss with a float64 NumPy reference.


# %%
def train_step_accumulated(
    model: nnx.Module,
    optimizer: nnx.Optimizer,
    x: jax.Array,
    y: jax.Array,
    micro_batch_size: int,
) -> jax.Array:
    ### BEGIN SOLUTION
    def loss_fn(model, xb, yb):  # one micro-batch's mean loss, weighted by its size
        loss = optax.softmax_cross_entropy_with_integer_labels(model(xb), yb).mean()
        return loss * (len(xb) / len(x))

    total_loss, total = jnp.zeros(()), None
    for start in range(0, len(x), micro_batch_size):
        xb = x[start : start + micro_batch_size]  # the last may be smaller
        yb = y[start : start + micro_batch_size]
        loss, grads = nnx.value_and_grad(loss_fn)(model, xb, yb)
        total = grads if total is None else jax.tree.map(jnp.add, total, grads)
        total_loss = total_loss + loss
    optimizer.update(model, total)  # one update, with the whole batch's gradient
    return total_loss
    ### END SOLUTION


# %%
H.lab03.check_train_step_accumulated(train_step_accumulated)

# %% [markdown]
# The same five steps from the same start, on a batch of 64 rows: with exercise 2's
# `train_step` on the whole batch, and with yours in micro-batches of 12 (12, 12, 12, 12, 12,
# 4). The model records the rows of each call (or trace, under jit).

# %%
try:
    rows: list[int] = []

    class Recorded(nnx.Module):
        def __init__(self) -> None:  # the same start each time
            self.net = H.MLP(20, (32,), 5, rngs=nnx.Rngs(0))

        def __call__(self, x: jax.Array) -> jax.Array:
            rows.append(x.shape[0])
            return self.net(x)

    x_demo = jax.random.normal(jax.random.key(0), (64, 20))
    y_demo = jax.random.randint(jax.random.key(1), (64,), 0, 5)
    trained, peak = {}, {}
    for name in ("micro-batches of 12", "whole batch"):
        rows.clear()
        model = Recorded()
        optimizer = nnx.Optimizer(model, optax.sgd(0.5), wrt=nnx.Param)
        for _ in range(5):
            if name == "whole batch":
                train_step(model, optimizer, x_demo, y_demo)
            else:
                train_step_accumulated(model, optimizer, x_demo, y_demo, 12)
        trained[name] = jax.tree.leaves(nnx.state(model, nnx.Param))
        peak[name] = max(rows)
    gap = max(
        float(jnp.abs(a - b).max()) for a, b in zip(*trained.values(), strict=True)
    )
    print(f"largest parameter difference after 5 steps: {gap:.1e} (float32 rounding)")
    print("peak rows per forward pass:", peak)
except NotImplementedError:
    print("solve exercises 2 and 5 first")
