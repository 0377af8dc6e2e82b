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
# # Lab 5: on-device augmentation and label smoothing in PyTorch
#
# Four exercises on chapter 5: crop and flip a whole batch at once on the device, the
# label-smoothed cross-entropy written by hand, the logits a trained model gives at test time,
# and one training step with label smoothing. Each exercise is a function. Replace the line
# `raise NotImplementedError(...)` with your code, run the cell, then run the check below it:
# a check prints ✅ when your function is right, or ❌ with what it expected and a hint.
#
# The checks call your function on small inputs (two batches of different shapes, or two
# training steps) and compare with reference outputs: a per-image NumPy loop,
# `F.cross_entropy(label_smoothing=...)`, a tiny network with BatchNorm run the right way.
# They never look at your code; when your result equals what a known mistake gives, the hint
# names that mistake. Images are `torch.uint8` in NHWC order, `(B, H, W, C)`, as the chapter
# keeps them on the device. The solved lab is
# [`solutions/05-cifar10/in-pytorch.ipynb`](../../solutions/05-cifar10/in-pytorch.ipynb).

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
import numpy as np
import torch
import torch.nn.functional as F

from helpers import torch as H

# %% [markdown]
# ## Exercise 1: crop and flip a batch
#
# `images` is a batch `(B, H, W, C)` of `uint8` images; `offsets` `(B, 2)` holds, for each
# image, the row and column where its crop starts in the image padded with `pad` zero pixels
# on every side (each in `0 .. 2 * pad`); `flips` `(B,)` is `True` where the crop must be
# mirrored left-right. Return the `(B, H, W, C)` crops, `uint8`, in one batched operation:
# pad the batch, build for each image the row indices `offsets[i, 0] + arange(H)` and column
# indices `offsets[i, 1] + arange(W)` (reversed where flipped), and gather with advanced
# indexing. Each image has its own offset; a horizontal flip reverses the columns.
# Write it yourself: `H.vision.crop_flip` is the reference the check compares with; calling
# it fails the check.
#
# The check: two batches (4 images 6x6 padded by 2, 5 images 8x7 padded by 1), offsets that
# differ per image and reach both ends of `0 .. 2 * pad`, some images flipped; every pixel
# must equal the reference's, and the dtype must stay `uint8`.


# %%
def crop_flip(
    images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int
) -> torch.Tensor:
    ### BEGIN SOLUTION
    b, h, w, _ = images.shape
    padded = F.pad(images, (0, 0, pad, pad, pad, pad))  # (B, H + 2p, W + 2p, C)
    rows = offsets[:, :1] + torch.arange(h)  # (B, H)
    cols = offsets[:, 1:] + torch.arange(w)  # (B, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = torch.arange(b)[:, None, None]  # (B, 1, 1)
    return padded[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    ### END SOLUTION


# %%
H.lab05.check_crop_flip(crop_flip)

# %% [markdown]
# ## Exercise 2: the label-smoothed cross-entropy
#
# With $C$ classes and smoothing $s$, the target of an example of class $y$ is
# $t = (1 - s)\,\mathrm{onehot}(y) + s / C$, and its loss
# $-\sum_k t_k \log \mathrm{softmax}(z)_k$. Return the mean over the batch, a 0-d tensor,
# from `logits` `(B, C)` float32 and `labels` `(B,)` int64, from `F.log_softmax` and
# `F.one_hot`: a call of `F.cross_entropy` or `nn.CrossEntropyLoss` (the check compares with
# the first) fails the check.
#
# The check: two batches (6 examples of 10 classes with $s = 0.2$, 5 of 4 classes with
# $s = 0.3$), compared with `F.cross_entropy(logits, labels, label_smoothing=s)` to 1e-4.


# %%
def smoothed_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, smoothing: float
) -> torch.Tensor:
    ### BEGIN SOLUTION
    c = logits.shape[-1]
    targets = (1 - smoothing) * F.one_hot(labels, c).to(logits.dtype) + smoothing / c
    return -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean()
    ### END SOLUTION


# %%
H.lab05.check_smoothed_cross_entropy(smoothed_cross_entropy)

# %% [markdown]
# ## Exercise 3: logits at test time
#
# After training, `model` (a network with BatchNorm, like `H.vision.CifarNet`) is still in
# training mode. Return its logits `(N, 10)`, float32, for the `uint8` images `(N, H, W, C)`,
# normalised with the training split's per-channel `mean` and `std` (NumPy arrays of 3 values,
# in 0..1 units) as in training: `H.vision.to_input(images, mean, std)` does that and returns
# the channels_last `(N, C, H, W)` batch the model expects. Evaluate: no augmentation,
# BatchNorm with its running statistics (`model.eval()`), no tape (`torch.no_grad()`).
#
# The check: a tiny network whose BatchNorm running statistics differ from any batch's, in
# training mode before each call; two batches of images (32x32 and 16x16), each evaluated
# twice, must give the same logits both times, equal to the evaluation-mode reference.


# %%
def predict_logits(
    model: torch.nn.Module, images: torch.Tensor, mean: np.ndarray, std: np.ndarray
) -> torch.Tensor:
    ### BEGIN SOLUTION
    model.eval()
    with torch.no_grad():
        return model(H.vision.to_input(images, mean, std))  # (N, 10)
    ### END SOLUTION


# %%
H.lab05.check_predict_logits(predict_logits)

# %% [markdown]
# ## Exercise 4: one training step with label smoothing
#
# Write the training step of the chapter without its augmentation and schedule: `model` takes
# `x`, a normalised float32 batch `(B, 3, H, W)` (channels_last, as `H.vision.to_input`
# returns), and gives logits `(B, C)`; `labels` are `(B,)` int64; `optimizer` is SGD over the
# model's parameters. One call: the model in training mode, the logits, the label-smoothed
# cross-entropy with the given `smoothing` (`F.cross_entropy(..., label_smoothing=...)` or
# your `smoothed_cross_entropy`), cleared gradients, backward, one optimizer step. Return the
# loss computed before the step, a 0-d tensor detached from the graph. Everything in float32:
# no `torch.autocast` (the chapter's mixed precision on a GPU); the check compares to 1e-4.
#
# The check builds a tiny network (a 3x3 convolution, BatchNorm, GELU, the mean over
# positions, a linear layer) and hands it over in evaluation mode, as an evaluation between
# epochs leaves it; it calls your step twice, with smoothing 0.2 and then 0.35, and compares
# both losses, the weights and BatchNorm's running statistics with two reference steps.


# %%
def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    labels: torch.Tensor,
    smoothing: float,
) -> torch.Tensor:
    ### BEGIN SOLUTION
    model.train()
    logits = model(x)  # (B, C)
    loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()  # ()
    ### END SOLUTION


# %%
H.lab05.check_train_step(train_step)
