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
# # Lab 5: on-device augmentation and label smoothing in JAX
#
# Four exercises on chapter 5: crop and flip a whole batch at once on the device, the
# label-smoothed cross-entropy written by hand, the logits a trained model gives at test time,
# and one training step with label smoothing. Each exercise is a function. Replace the line
# `raise NotImplementedError(...)` with your code, run the cell, then run the check below it:
# a check prints ✅ when your function is right, or ❌ with what it expected and a hint.
#
# The checks call your function on small inputs (two batches of different shapes, or two
# training steps) and compare with reference outputs: a per-image NumPy loop,
# `optax.smooth_labels` + `optax.softmax_cross_entropy`, a tiny network with BatchNorm run the
# right way. They never look at your code; when your result equals what a known mistake
# gives, the hint names that mistake. Images are `uint8` JAX arrays in NHWC order,
# `(B, H, W, C)`, as the chapter keeps them on the device. The solved lab is
# [`solutions/05-cifar10/in-jax.ipynb`](../../solutions/05-cifar10/in-jax.ipynb).

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
# ## Exercise 1: crop and flip a batch
#
# `images` is a batch `(B, H, W, C)` of `uint8` images; `offsets` `(B, 2)` holds, for each
# image, the row and column where its crop starts in the image padded with `pad` zero pixels
# on every side (each in `0 .. 2 * pad`); `flips` `(B,)` is `True` where the crop must be
# mirrored left-right. Return the `(B, H, W, C)` crops, `uint8`, for the whole batch at once:
# write the crop of *one* padded image with `jax.lax.dynamic_slice` (its start may be a traced
# value) and a `jnp.where` on its flip, then `jax.vmap` it over the batch. Each image has its
# own offset; a horizontal flip reverses the columns.
# Write it yourself: `H.vision.crop_flip` is the reference the check compares with; calling
# it fails the check.
#
# The check: two batches (4 images 6x6 padded by 2, 5 images 8x7 padded by 1), offsets that
# differ per image and reach both ends of `0 .. 2 * pad`, some images flipped; every pixel
# must equal the reference's, and the dtype must stay `uint8`.


# %%
def crop_flip(
    images: jax.Array, offsets: jax.Array, flips: jax.Array, pad: int
) -> jax.Array:
    ### BEGIN SOLUTION
    _, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

    def one(image, offset, flip):  # (H + 2p, W + 2p, C) -> (H, W, C)
        crop = jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))
        return jnp.where(flip, crop[:, ::-1], crop)

    return jax.vmap(one)(padded, offsets, flips)  # (B, H, W, C)
    ### END SOLUTION


# %%
H.lab05.check_crop_flip(crop_flip)

# %% [markdown]
# ## Exercise 2: the label-smoothed cross-entropy
#
# With $C$ classes and smoothing $s$, the target of an example of class $y$ is
# $t = (1 - s)\,\mathrm{onehot}(y) + s / C$, and its loss
# $-\sum_k t_k \log \mathrm{softmax}(z)_k$. Return the mean over the batch, a 0-d array,
# from `logits` `(B, C)` float32 and `labels` `(B,)` int32, from `jax.nn.log_softmax` and
# `jax.nn.one_hot`: a call of optax's `smooth_labels` or of its cross-entropies
# (`softmax_cross_entropy`, `softmax_cross_entropy_with_integer_labels`; the check compares
# with the first) fails the check.
#
# The check: two batches (6 examples of 10 classes with $s = 0.2$, 5 of 4 classes with
# $s = 0.3$), compared with `optax.softmax_cross_entropy(logits, optax.smooth_labels(...))`
# to 1e-4.


# %%
def smoothed_cross_entropy(
    logits: jax.Array, labels: jax.Array, smoothing: float
) -> jax.Array:
    ### BEGIN SOLUTION
    c = logits.shape[-1]
    targets = (1 - smoothing) * jax.nn.one_hot(labels, c) + smoothing / c
    return -(targets * jax.nn.log_softmax(logits, axis=-1)).sum(-1).mean()
    ### END SOLUTION


# %%
H.lab05.check_smoothed_cross_entropy(smoothed_cross_entropy)

# %% [markdown]
# ## Exercise 3: logits at test time
#
# After training, `model` (a network with BatchNorm, like `H.vision.CifarNet`) is still in
# training mode. Return its logits `(N, 10)`, float32, for the `uint8` images `(N, H, W, C)`,
# normalised with the training split's per-channel `mean` and `std` (NumPy arrays of 3 values,
# in 0..1 units) as in training: `H.vision.to_input(images, mean, std)` does that and keeps
# the NHWC order Flax's convolutions take. Evaluate: no augmentation and BatchNorm with its
# running statistics (`model.eval()`). JAX has no tape to switch off: nothing is recorded
# unless a function is differentiated.
#
# The check: a tiny network whose BatchNorm running statistics differ from any batch's, in
# training mode before each call; two batches of images (32x32 and 16x16), each evaluated
# twice, must give the same logits both times, equal to the evaluation-mode reference.


# %%
def predict_logits(
    model: nnx.Module, images: jax.Array, mean: np.ndarray, std: np.ndarray
) -> jax.Array:
    ### BEGIN SOLUTION
    model.eval()
    return model(H.vision.to_input(images, mean, std))  # (N, 10)
    ### END SOLUTION


# %%
H.lab05.check_predict_logits(predict_logits)

# %% [markdown]
# ## Exercise 4: one training step with label smoothing
#
# Write the training step of the chapter without its augmentation and schedule: `model` takes
# `x`, a normalised float32 batch `(B, H, W, 3)`, and gives logits `(B, C)`; `labels` are
# `(B,)` int32; `optimizer` is an `nnx.Optimizer` (SGD) over the model's `nnx.Param`s. One
# call: the model in training mode, a loss function of the model that returns the
# label-smoothed cross-entropy with the given `smoothing` (`optax.smooth_labels` +
# `optax.softmax_cross_entropy`, or your `smoothed_cross_entropy`), `nnx.value_and_grad` of
# it, and `optimizer.update(model, grads)`. Return the loss computed before the update, a 0-d
# array. `@nnx.jit` compiles the step again only when the shapes or the model's structure
# change (switching between training and evaluation mode is such a change); `smoothing`
# arrives in it as a traced scalar, so a new value does not recompile.
#
# The check builds a tiny network (a 3x3 convolution, BatchNorm, GELU, the mean over
# positions, a linear layer) and hands it over in evaluation mode, as an evaluation between
# epochs leaves it; it calls your step twice, with smoothing 0.2 and then 0.35, and compares
# both losses, the weights and BatchNorm's running statistics with two reference steps.


# %%
@nnx.jit
def train_step(
    model: nnx.Module,
    optimizer: nnx.Optimizer,
    x: jax.Array,
    labels: jax.Array,
    smoothing: float,
) -> jax.Array:
    ### BEGIN SOLUTION
    model.train()  # BatchNorm: batch statistics, running averages updated

    def loss_fn(model: nnx.Module) -> jax.Array:
        logits = model(x)  # (B, C)
        one_hot = jax.nn.one_hot(labels, logits.shape[-1])  # (B, C)
        targets = optax.smooth_labels(one_hot, smoothing)
        return optax.softmax_cross_entropy(logits, targets).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss  # ()
    ### END SOLUTION


# %%
H.lab05.check_train_step(train_step)
