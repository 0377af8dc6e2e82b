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
# # Lab 5 solutions: on-device augmentation and label smoothing in JAX
#
# Five exercises on chapter 5: crop and flip a whole batch at once on the device, the
# label-smoothed cross-entropy written by hand, the logits a trained model gives at test time,
# one training step with label smoothing, and, beyond the chapter, mixup and CutMix of a batch
# on the device (5a, 5b). Each exercise is a function. Replace the line
# `raise NotImplementedError(...)` with your code, run the cell, then run the check below it:
# a check prints ✅ when your function is right, or ❌ with what it expected and a hint.
#
# The checks call your function on small inputs (two batches of different shapes, or two
# training steps) and compare with reference outputs: a per-image NumPy loop (and, for 5a and
# 5b, a NumPy mix of the same draws),
# `optax.smooth_labels` + `optax.softmax_cross_entropy`, a tiny network with BatchNorm run the
# right way. They never look at your code; when your result equals what a known mistake
# gives, the hint names that mistake. Images are `uint8` JAX arrays in NHWC order,
# `(B, H, W, C)`, as the chapter keeps them on the device.
#
# The exercises alone, without the answers: [Lab 5 in JAX](../../labs/05-cifar10/in-jax.ipynb).

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
# must equal the reference's, and the dtype must stay `uint8`. It also counts the operations
# of a call on a batch three times larger: a Python loop over the images fails.


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
# $s = 0.3$; the first lacks the last class), a float32 loss compared with
# `optax.softmax_cross_entropy(logits, optax.smooth_labels(...))` to 1e-4.


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

# %% [markdown] tags=["shared"]
# ## Exercise 5: mixup and CutMix on the device
#
# Label smoothing softens the targets; *mixup* {cite}`zhang2018mixup` and *CutMix*
# {cite}`yun2019cutmix` soften the examples too. Each image $x_i$ of a batch gets a partner
# $x_{\pi(i)}$ from the same batch ($\pi$ a random permutation) and a weight $\lambda_i$ drawn
# from $\mathrm{Beta}(\alpha, \alpha)$. mixup blends both the images and their one-hot targets
# with that weight,
#
# $$\tilde x_i = \lambda_i\, x_i + (1 - \lambda_i)\, x_{\pi(i)}, \qquad
# \tilde y_i = \lambda_i\, y_i + (1 - \lambda_i)\, y_{\pi(i)},$$
#
# so the network is trained on points between the examples and asked to answer in proportion,
# not with full confidence: it regularises like label smoothing, and makes the function
# between classes closer to linear. CutMix pastes a box of the partner into $x_i$ instead,
# keeping each pixel real, and weights the targets by the share of pixels each image supplies:
# $\lambda = 1 - (\text{box area}) / (H W)$. Both need nothing but the batch already on the
# device: a gather with $\pi$ and some arithmetic.
#
# The random draws are the functions' inputs here, so that the check can be exact: `perm`
# `(B,)` (the partner of image `i` is `images[perm[i]]`), `lam` `(B,)` float32 (one weight per
# image; the papers draw one for the batch, which is the same value `B` times) and the box.
# Both functions return `(images, targets)`: the images `(B, H, W, C)` float32 in 0..255
# units (not divided by 255 nor normalised: that comes after, as in exercise 3's
# `H.vision.to_input`, and is linear, so it commutes with the blend), the targets
# `(B, num_classes)` float32, each row summing to 1. Work on the whole batch at once (no
# Python loop over the images: the checks run a larger batch too, and fail if the number of
# operations grows with `B`) and leave
# the inputs as they are.

# %% [markdown]
# ### 5a: mixup
#
# `images` `(B, H, W, C)` `uint8`, `labels` and `perm` `(B,)` int32, `lam` `(B,)` float32.
# Cast the images to float32 first (sums of `uint8` arrays wrap around past 255),
# gather the partners with `images[perm]`, and broadcast `lam` as `lam[:, None, None, None]`;
# the targets from `jax.nn.one_hot(labels, num_classes)`, with the argument (a batch need not
# hold the last class, so `labels.max() + 1` is no substitute). (Per image, with
# `jax.vmap`, works too, once the partners are gathered.) The check also traces your
# function, as `jax.jit` does: no `int(...)`, `.tolist()` or `np.asarray(...)` of the inputs.
#
# The check: two batches (4 images 5x6 with one `lam` of 0.3, 6 images 7x4 with a weight per
# image, 0 and 1 among them), permutations that are not their own inverse; images to 1e-3,
# targets to 1e-6.


# %%
def mixup(
    images: jax.Array,
    labels: jax.Array,
    perm: jax.Array,
    lam: jax.Array,
    num_classes: int,
) -> tuple[jax.Array, jax.Array]:
    ### BEGIN SOLUTION
    x = images.astype(jnp.float32)  # (B, H, W, C)
    w = lam[:, None, None, None]  # (B, 1, 1, 1)
    mixed = w * x + (1 - w) * x[perm]
    one_hot = jax.nn.one_hot(labels, num_classes)  # (B, K) float32
    targets = lam[:, None] * one_hot + (1 - lam[:, None]) * one_hot[perm]
    return mixed, targets
    ### END SOLUTION


# %%
H.lab05.check_mixup(mixup)

# %% [markdown]
# ### 5b: CutMix
#
# The same inputs, with `box = (top, left, height, width)`, Python ints, the same box for the
# whole batch and inside the image (`top + height <= H`, `left + width <= W`: no clipping).
# Return a float32 copy of `images` whose rows `top .. top + height - 1` and columns
# `left .. left + width - 1` (axes 1 and 2 of NHWC) come from `images[perm]`, and the targets
# mixed with $\lambda = 1 - \text{height} \cdot \text{width} / (H W)$ (H and W from
# `images.shape[1:3]`). JAX arrays cannot be assigned to: with `rows = slice(top, top + height)` and
# `cols = slice(left, left + width)` (slices, not index arrays), `x.at[:, rows, cols].set(...)`
# returns the pasted copy (or choose with `jnp.where` and a mask of the box).
#
# The check: the two batches of 5a, two boxes each, each touching the border; top and left
# differ, and so do height and width, so swapped axes show.


# %%
def cutmix(
    images: jax.Array,
    labels: jax.Array,
    perm: jax.Array,
    box: tuple[int, int, int, int],
    num_classes: int,
) -> tuple[jax.Array, jax.Array]:
    ### BEGIN SOLUTION
    top, left, height, width = box
    h, w = images.shape[1:3]
    rows, cols = slice(top, top + height), slice(left, left + width)
    x = images.astype(jnp.float32)  # (B, H, W, C)
    mixed = x.at[:, rows, cols].set(x[perm, rows, cols])  # a new array
    lam = 1 - height * width / (h * w)  # the share of pixels left to the original
    one_hot = jax.nn.one_hot(labels, num_classes)  # (B, K)
    return mixed, lam * one_hot + (1 - lam) * one_hot[perm]
    ### END SOLUTION


# %%
H.lab05.check_cutmix(cutmix)

# %% [markdown]
# Both on 8 CIFAR-10 training images, every draw from its own key split from one
# `jax.random.key`. mixup: one $\lambda_i \sim \mathrm{Beta}(0.4, 0.4)$ per image, which often
# lands near 0 or 1 (most of the image from one side). CutMix: one $\lambda \sim
# \mathrm{Beta}(1, 1)$, uniform, as its paper draws it, for the batch; the square box has the
# side $\sqrt{1 - \lambda}\, 32$ at a random place inside the image, so it covers about a
# share $1 - \lambda$ of it (`cutmix` recomputes $\lambda$ from the box it pastes). Each
# title gives the two classes and their weights in the target. A soft-target cross-entropy,
# $-\sum_k \tilde y_k \log \mathrm{softmax}(z)_k$, takes the mixed targets as they are; with
# one-hot targets it is exercise 2's loss with $s = 0$.

# %%
try:  # runs once exercise 5 is solved
    x8, y8 = H.load_cifar10("train", sample=True)
    images = jnp.asarray(x8[:8])  # (8, 32, 32, 3) uint8
    labels = jnp.asarray(y8[:8], jnp.int32)
    keys = jax.random.split(jax.random.key(6), 5)  # a permutation without fixed points
    k_lam, k_perm, k_cut, k_box, k_logits = keys
    lam = jax.random.beta(k_lam, 0.4, 0.4, (8,))  # (8,) float32, one per image
    perm = jax.random.permutation(k_perm, 8)
    lam_box = float(jax.random.uniform(k_cut))  # Beta(1, 1), for the batch
    side = round(32 * (1 - lam_box) ** 0.5)
    top, left = jax.random.randint(k_box, (2,), 0, 32 - side + 1).tolist()
    mixed, mixed_targets = mixup(images, labels, perm, lam, 10)
    cut, cut_targets = cutmix(images, labels, perm, (top, left, side, side), 10)
    shown = jnp.concatenate([mixed, cut]).round().clip(0, 255).astype(jnp.uint8)
    fig = H.show_images(np.asarray(shown), ncols=8)
    names, lam_cut = H.CIFAR10_CLASSES, 1 - side * side / 32**2
    for i, ax in enumerate(fig.axes):  # row 1 mixup, row 2 CutMix
        j = i % 8  # the image; its partner is perm[j]
        w = float(lam[j]) if i < 8 else lam_cut
        a, b = names[int(labels[j])], names[int(labels[perm[j]])]
        ax.set_title(f"{a} {w:.2f}\n{b} {1 - w:.2f}", fontsize=8)
    fig.suptitle(
        f"mixup (top, lam per image) and CutMix (bottom, lam = {lam_cut:.2f}):\n"
        "each image's class and its partner's, with their weights"
    )
    logits = jax.random.normal(k_logits, (8, 10))

    def soft_cross_entropy(logits, targets):
        return -(targets * jax.nn.log_softmax(logits, axis=-1)).sum(-1).mean()

    for name, t in [("mixup", mixed_targets), ("CutMix", cut_targets)]:
        sums = t.sum(-1)
        loss = float(soft_cross_entropy(logits, t))
        rows = f"rows sum to {sums.min():.4f}..{sums.max():.4f}"
        print(f"{name}: targets {t.shape}, {rows}, loss {loss:.4f}")
    hard = jax.nn.one_hot(labels, 10)
    ours, ex2 = (
        soft_cross_entropy(logits, hard),
        smoothed_cross_entropy(logits, labels, 0.0),
    )
    print(f"one-hot targets: {ours:.4f}, exercise 2's loss with s = 0: {ex2:.4f}")
except NotImplementedError:
    print("solve exercise 5 first")
