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
# # Lab 1 solutions: first steps in JAX
#
# Five exercises on chapter 1: arrays, top-k accuracy with a rule for ties, a gradient by
# autodiff, checking a gradient along random directions, and a training step with two bugs that
# only a second call shows. Each exercise is a function.
# Replace the line `raise NotImplementedError(...)` with your code, run the cell, then run the
# check below it: a check prints ✅ when your function is right, or ❌ with what it expected
# and a hint.
#
# The checks call your function several times, on small inputs, and compare with answers
# computed independently; they never look at your code.
#
# The exercises alone, without the answers: [Lab 1 in JAX](../../labs/01-introduction/in-jax.ipynb).

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
import optax

from helpers import jax as H

# %% [markdown]
# ## Exercise 1: from images to model inputs
#
# `images` is a `jnp.uint8` array of shape `(N, 28, 28)` with values 0..255. Return a
# `jnp.float32` array of shape `(N, 784)`: each image flattened to one row, each pixel divided
# by 255, so that 0 stays 0 and 255 becomes 1.


# %%
def preprocess(images: jax.Array) -> jax.Array:
    ### BEGIN SOLUTION
    return images.reshape(images.shape[0], -1).astype(jnp.float32) / 255
    ### END SOLUTION


# %%
H.lab01.check_preprocess(preprocess)

# %% [markdown]
# ## Exercise 2: top-k accuracy, with a rule for ties
#
# Chapter 1 counts an example as right when its label's class has the highest score (`argmax`).
# **Top-k accuracy** is more lenient: an example counts when its label is among the `k`
# highest-scoring classes. `logits` is a float array of shape `(B, C)`, `labels` an integer
# array of shape `(B,)`, and `k` an int. Return the fraction of examples that count, as a
# Python `float` between 0 and 1.
#
# "Among the `k` highest" needs a rule for ties: with scores `[4, 1, 1, 1]`, which classes are
# the top two? `jax.lax.top_k` and `argsort` choose among equal scores by position, so the
# answer would depend on where the label sits. Use this rule: an example counts when **fewer
# than `k` classes score strictly higher** than its label's class, so a tie goes in the label's
# favour.
# (scikit-learn's `top_k_accuracy_score` decides otherwise: among equal scores it takes the
# classes with the highest indices first, its
# [documentation](https://scikit-learn.org/stable/modules/generated/sklearn.metrics.top_k_accuracy_score.html)
# says.) The rule needs no sort: take each row's label score as a `(B, 1)` column
# (`jnp.take_along_axis(logits, labels[:, None], axis=-1)`), compare the whole row with it by
# broadcasting, and count, per row, the classes above it. With `k = 1` and no ties, this is
# chapter 1's accuracy.
#
# A `k` outside `1..C` has no meaning: raise `ValueError`, with a message that names the range,
# before computing anything. The check calls your function with `k = 0` and `k = C + 1` and
# expects that error: a function that quietly returned 0.0 or 1.0 would hide the caller's bug.


# %%
def top_k_accuracy(logits: jax.Array, labels: jax.Array, k: int) -> float:
    ### BEGIN SOLUTION
    classes = logits.shape[-1]
    if not 1 <= k <= classes:
        raise ValueError(f"k must be between 1 and {classes}, got {k}")
    # (B, 1): each row's label score
    own = jnp.take_along_axis(logits, labels[:, None], axis=-1)
    higher = (logits > own).sum(axis=-1)  # (B,) classes scoring strictly higher
    return float((higher < k).mean())
    ### END SOLUTION


# %%
H.lab01.check_top_k_accuracy(top_k_accuracy)

# %% [markdown]
# ## Exercise 3: a gradient by automatic differentiation
#
# For a linear model with weights `w` `(D,)`, inputs `X` `(N, D)` and targets `y` `(N,)`, all
# `jnp.float32`, the mean squared error is `loss(w) = mean((X @ w - y) ** 2)`. Return its
# gradient with respect to `w`, a `jnp.float32` array of shape `(D,)`, computed with
# `jax.grad`, not by a formula derived by hand.


# %%
def mse_grad(w: jax.Array, X: jax.Array, y: jax.Array) -> jax.Array:
    ### BEGIN SOLUTION
    def loss(w):
        return jnp.mean((X @ w - y) ** 2)

    return jax.grad(loss)(w)
    ### END SOLUTION


# %%
H.lab01.check_mse_grad(mse_grad)

# %% [markdown]
# ## Exercise 4: a gradient check along random directions
#
# Chapter 1 checks a gradient coordinate by coordinate: two evaluations of `f` per parameter,
# `2 D` for `D` parameters, far too many for a real model. A cheaper check looks along a few
# directions. For a direction $v$, the derivative of $f$ along $v$ is the dot product of the
# gradient with $v$, and a central difference along $v$ estimates it from two evaluations,
# whatever the size of $x$:
#
# $$\begin{aligned}\nabla f(x) \cdot v &\approx \mathrm{fd}_v\\
# &= \frac{f(x + \varepsilon v) - f(x - \varepsilon v)}{2 \varepsilon}.\end{aligned}$$
#
# JAX's own tests check gradients this way: `jax.test_util.check_grads` compares them with
# finite differences "only ... in a single randomly chosen direction", its
# [documentation](https://docs.jax.dev/en/latest/_autosummary/jax.test_util.check_grads.html)
# says, so that the check stays cheap for large inputs; PyTorch's
# `torch.autograd.gradcheck(..., fast_mode=True)` multiplies the Jacobian by random vectors for
# the same reason, calling the function twice instead of twice per input entry
# ([pytorch/pytorch#53876](https://github.com/pytorch/pytorch/issues/53876)).
#
# `f` maps a 1-D `jnp.float32` array `x` of shape `(D,)` to a 0-d array, `grad_f(x)` claims
# to be its gradient, `eps` is the step, and `directions` is a `jnp.float32` array of shape
# `(K, D)` whose rows have norm 1 (the caller draws them, e.g.
# `jax.random.normal(key, (K, D))`, each row divided by its norm, so your function needs no
# random numbers). Call `grad_f` once, `g = grad_f(x)`; for each row $v$ compute $g \cdot v$,
# the central difference $\mathrm{fd}_v$, and their relative error
#
# $$e_v = \frac{|g \cdot v - \mathrm{fd}_v|}{\max(|g \cdot v|,\ |\mathrm{fd}_v|,\ 10^{-12})}.$$
#
# Return the largest $e_v$, as a Python `float`, and leave `x` unchanged. Relative, because an
# absolute difference grows with the scale of `f` (a loss 1000 times larger gives differences
# 1000 times larger), while $e_v$ reads the same at any scale: `1e-3` means agreement to about
# three digits. The `1e-12` only keeps `0 / 0` away. The check's steps are large on purpose,
# so the central difference's own error (of order `eps ** 2`) shows and a one-sided difference
# fails.
#
# The whole check costs `2 K` evaluations of `f` and one gradient. What it cannot see: a
# gradient error orthogonal to every direction tried (then $g \cdot v$ is right although $g$ is
# wrong). With directions drawn at random from a continuous distribution (the normal, here),
# that has probability zero in exact arithmetic. In float32, an error much smaller than the
# gradient (one wrong entry among millions) can hide under the rounding floor, about `1e-3`,
# that the demo below shows.


# %%
def directional_gradient_error(
    f, grad_f, x: jax.Array, eps: float, directions: jax.Array
) -> float:
    ### BEGIN SOLUTION
    g = grad_f(x)  # (D,)
    errors = []
    for v in directions:  # v: (D,)
        exact = g @ v
        fd = (f(x + eps * v) - f(x - eps * v)) / (2 * eps)
        scale = max(float(jnp.abs(exact)), float(jnp.abs(fd)), 1e-12)
        errors.append(float(jnp.abs(exact - fd)) / scale)
    return max(errors)
    ### END SOLUTION


# %%
H.lab01.check_directional_gradient_error(directional_gradient_error)

# %% [markdown]
# Used on your `mse_grad`: a linear model with `D = 10,000` weights, checked along `K = 4`
# random directions, with the gradient from `jax.grad` and with one wrong by a factor 2 (a
# classic slip). The loss is quadratic in `w`, so the central difference has no truncation
# error, whatever the step: `eps = 1`. What is left for `jax.grad`'s gradient, about `1e-3`,
# is float32 rounding: each loss is stored to about 7 significant digits, and the last line
# below prints the loss beside the smallest $|f(w + v) - f(w - v)|$ over the directions,
# thousands of times smaller, of which only three or four digits survive.

# %%
key_X, key_y, key_w, key_v = jax.random.split(jax.random.key(0), 4)
N, D, K = 64, 10_000, 4
X = jax.random.normal(key_X, (N, D)) / D**0.5  # (N, D)
y = jax.random.normal(key_y, (N,))  # (N,)
w = jax.random.normal(key_w, (D,))  # (D,)
directions = jax.random.normal(key_v, (K, D))  # (K, D)
# (K, D), rows of norm 1
directions /= jnp.linalg.norm(directions, axis=1, keepdims=True)
calls = []


def loss(w):
    calls.append(1)  # one evaluation (or one trace, under jit or vmap)
    return jnp.mean((X @ w - y) ** 2)


try:
    for name, grad in [
        ("jax.grad", lambda w: mse_grad(w, X, y)),
        ("jax.grad / 2", lambda w: mse_grad(w, X, y) / 2),
    ]:
        calls.clear()
        error = directional_gradient_error(loss, grad, w, 1.0, directions)
        print(f"{name:>12}: largest relative error {error:.1e}, {len(calls)} calls")
    print(f"chapter 1's check, coordinate by coordinate: {2 * D:,} calls of f")
    gaps = [float(jnp.abs(loss(w + v) - loss(w - v))) for v in directions]  # (K,)
    print(f"loss {float(loss(w)):.3f}, smallest |f(w + v) - f(w - v)| {min(gaps):.1e}")
    assert float(loss(w)) > 1000 * min(gaps), (
        "the text says: thousands of times smaller"
    )
except NotImplementedError:
    print("solve exercises 3 and 4 first")

# %% [markdown]
# ## Exercise 5: a training step that fails the second time
#
# This training step looks right, and its first call returns the right loss and makes the right
# update. It counts its steps to decay the learning rate, and drops 10 % of the input pixels at
# random (input dropout); `loss_fn` is the mean cross-entropy of a linear classifier with
# parameters `{"w": (D, C), "b": (C,)}`. Called again, it goes wrong in two ways, and raises no
# error. Predict, before you run the cell: what does `steps_taken` read after three calls? Which
# learning rate does the third call use? Do two calls drop the same pixels? Then run it: the
# step prints its learning rate and the first pixels it drops (`jax.debug.print` runs on every
# call), and the cell prints `steps_taken`.


# %%
def loss_fn(params: dict, inputs: jax.Array, y: jax.Array) -> jax.Array:
    logits = inputs @ params["w"] + params["b"]  # (B, C)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


lr = 0.5
steps_taken = 0
key = jax.random.key(0)


@jax.jit
def train_step(params, x, y):
    global steps_taken
    steps_taken += 1  # count the steps, for the schedule
    lr_now = lr / steps_taken  # a learning rate that decays: 0.5, 0.25, ...
    # Input dropout: keep 90 % of the pixels.
    keep = jax.random.bernoulli(key, 0.9, x.shape)  # (B, D)
    inputs = jnp.where(keep, x / 0.9, 0.0)
    dropped = jnp.flatnonzero(~keep, size=3)  # the first three dropped pixels
    n = (~keep).sum()
    jax.debug.print(
        "lr {lr}, {n} pixels dropped, the first {d}", lr=lr_now, n=n, d=dropped
    )
    loss, grads = jax.value_and_grad(loss_fn)(params, inputs, y)
    return jax.tree.map(lambda p, g: p - lr_now * g, params, grads), loss


x_demo = jax.random.uniform(jax.random.key(1), (8, 16))  # (B, D)
y_demo = jnp.arange(8) % 4  # (B,) labels of C = 4 classes
params = {"w": jnp.zeros((16, 4)), "b": jnp.zeros(4)}
for _ in range(3):
    params, loss = train_step(params, x_demo, y_demo)
jax.effects_barrier()  # wait for the debug prints before the last line
print("steps_taken:", steps_taken)

# %% [markdown]
# Run the cell above before reading on. What happened: `jax.jit` runs the Python body once,
# while it traces the first call (section 1.3), and every later call with arguments of the same
# shapes and dtypes runs the compiled step without Python. So `steps_taken += 1` ran once, and
# `lr_now`, 0.5 at that moment, entered the compiled step as a constant. The global `key` was
# read at that moment too: nothing in the cell splits it, and had the loop replaced it between
# calls, the compiled step would still draw from the key it read while tracing.
# `jax.debug.print` is part of the compiled step, so it prints on every call.
#
# Now write the step so that every call does what it says, as a **pure function**: its result
# depends only on its arguments, and it changes nothing outside.
# `train_step(params, x, y, step, key)` takes the parameters (a dict like the one above), a
# batch `x` of shape `(B, D)` in `jnp.float32`, integer labels `y` of shape `(B,)`, the step
# number `step` as a 0-d `jnp.int32` array (0 on the first call), and this step's `key`, to
# use as it is. It uses the learning rate `0.5 / (step + 1)` and the mask
# `keep = jax.random.bernoulli(key, 0.9, x.shape)` (`p`, here 0.9, is the probability of
# `True`: of keeping a pixel); it divides the kept pixels by 0.9, so that each input keeps its
# expected value, 0.9 · x / 0.9 = x (*inverted* dropout: `jnp.where(keep, x / 0.9, 0.0)`).
# It makes one gradient-descent update of each parameter with the gradient of `loss_fn`, as
# given, on those dropped-out inputs, and returns `(new_params, loss)`: `new_params` a dict
# like `params`, with the same shapes and dtype, and `loss` the value of `loss_fn` on the same
# inputs before the update, as a 0-d array (under `jax.jit` it cannot become a Python float;
# the caller converts it, outside). The caller gives each step a new key, splitting first and
# using each key once (section 1.2):
#
# ```python
# step_fn = jax.jit(train_step)
# key = jax.random.key(0)
# for step in range(num_steps):
#     key, step_key = jax.random.split(key)
#     params, loss = step_fn(params, x, y, jnp.int32(step), step_key)
# ```
#
# The check compiles your function with `jax.jit`, runs three steps on one batch and a fourth
# on a smaller one, compares each with a reference, and counts how many times `jax.jit` traced
# your function: once for the three calls on the same shapes.


# %%
def train_step(
    params: dict, x: jax.Array, y: jax.Array, step: jax.Array, key: jax.Array
) -> tuple[dict, jax.Array]:
    ### BEGIN SOLUTION
    # step is an argument, so the schedule is computed on every call, not once per trace.
    lr_now = 0.5 / (step + 1)
    # (B, D): a new mask for each new key
    keep = jax.random.bernoulli(key, 0.9, x.shape)
    inputs = jnp.where(keep, x / 0.9, 0.0)  # (B, D)
    loss, grads = jax.value_and_grad(loss_fn)(params, inputs, y)
    new_params = jax.tree.map(lambda p, g: p - lr_now * g, params, grads)
    return new_params, loss
    ### END SOLUTION


# %%
H.lab01.check_framework_specific(train_step)

# %% [markdown]
# ## Going further
#
# Put the pieces together: load MNIST with `H.load_mnist`, turn the images into inputs with your
# `preprocess`, train a linear classifier (`{"w": (784, 10), "b": (10,)}`, zeros) with your
# jitted `train_step` on batches of 128, a new key for each step, and measure test top-1 and
# top-3 accuracy with your `top_k_accuracy` on its logits. Then call
# `directional_gradient_error` on your `mse_grad` for `eps` from `1e0` down to `1e-7`, in
# float32 and in float64 (create `X`, `y`, `w` and the directions again inside
# `with jax.enable_x64():`: arrays made before it stay float32), and explain the numbers you
# see: which `eps` gives the smallest error in each precision, and why does a smaller one not do
# better?
