"""Lab 5's typical mistakes: each one fails its check with the hint written for it.

``MISTAKES`` lists, per framework, (exercise, a wrong solution, the key of the hint it must
get); every hint the lab declares must be produced by at least one row. Also here: the NumPy
references equal the helpers' batched versions and the libraries' losses, and every mistake
changes the checks' answers.
"""

from __future__ import annotations

import contextlib
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from flax import nnx
from labtools import mistake_table_tests

from helpers.jax import vision as jv
from helpers.labs.lab05 import checks as lab05
from helpers.labs.lab05 import loss_checks, model_checks
from helpers.torch import vision as tv

LAB = "lab05"


# --- PyTorch -------------------------------------------------------------------------------------
def _t_plain_crop(images, offsets, pad):
    """The crops, unflipped, written here: the check rejects a call of tv.crop_flip."""
    padded = F.pad(images, (0, 0, pad, pad, pad, pad))
    h, w = images.shape[1:3]
    rows = offsets[:, :1] + torch.arange(h)
    cols = offsets[:, 1:] + torch.arange(w)
    return padded[
        torch.arange(len(images))[:, None, None], rows[..., None], cols[:, None]
    ]


def _t_crop(*, same_offset=False, flip_axis=2, flip=True, flip_all=False):
    def crop_flip(images, offsets, flips, pad):
        if same_offset:
            offsets = offsets[:1].expand(len(offsets), 2)
        out = _t_plain_crop(images, offsets, pad)
        if flip_all:
            return out.flip(2)
        if not flip:
            return out
        return torch.where(flips[:, None, None, None], out.flip(flip_axis), out)

    return crop_flip


def _t_crop_library(images, offsets, flips, pad):
    return tv.crop_flip(
        images, offsets, flips, pad
    )  # H.vision.crop_flip: the answer key


def _t_flip_before_crop(images, offsets, flips, pad):
    padded = F.pad(images, (0, 0, pad, pad, pad, pad))
    padded = torch.where(flips[:, None, None, None], padded.flip(2), padded)
    h, w = images.shape[1:3]
    return torch.stack(
        [
            p[r : r + h, c : c + w]
            for p, (r, c) in zip(padded, offsets.tolist(), strict=True)
        ]
    )


def _t_crop_nchw_pad(images, offsets, flips, pad):
    return F.pad(images, (pad, pad, pad, pad))  # pads W and C of an NHWC batch


def _t_crop_variant(kind):
    def crop_flip(images, offsets, flips, pad):
        b, h, w, _ = images.shape
        p = pad + 1 if kind == "pad_plus_1" else pad
        padded = F.pad(images, (0, 0, p, p, p, p))  # (B, H + 2p, W + 2p, C)
        if kind in ("reflect", "replicate"):  # these modes need NCHW floats
            nchw = F.pad(images.permute(0, 3, 1, 2).float(), (p,) * 4, mode=kind)
            padded = nchw.permute(0, 2, 3, 1).to(images.dtype)
        if kind == "padded":
            return padded
        if kind == "unpadded":  # indexes the unpadded batch: out of bounds
            padded = images
        if kind == "swapped":
            offsets = offsets.flip(1)
        rows = offsets[:, :1] + (kind == "off_by_one") + torch.arange(h)  # (B, H)
        # off_by_one_cols: the last offset's crop ends past the padded image: IndexError
        cols = offsets[:, 1:] + (kind == "off_by_one_cols") + torch.arange(w)  # (B, W)
        out = padded[torch.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]
        if kind == "no_broadcast":
            return torch.where(flips, out.flip(2), out)
        return torch.where(flips[:, None, None, None], out.flip(2), out)

    return crop_flip


def _t_loss_library(logits, labels, smoothing):
    return F.cross_entropy(logits, labels, label_smoothing=smoothing)  # the answer key


def _t_loss_soft_targets(logits, labels, smoothing):
    c = logits.shape[-1]
    targets = (1 - smoothing) * F.one_hot(labels, c).float() + smoothing / c
    return F.cross_entropy(logits, targets)  # still the library's loss


def _t_loss(kind):
    def smoothed_cross_entropy(logits, labels, smoothing):
        c = 10 if kind == "ten_classes" else logits.shape[-1]
        one_hot = F.one_hot(labels, c).float()
        if kind == "twice":  # smoothed targets smoothed again
            once = (1 - smoothing) * one_hot + smoothing / c
            targets = (1 - smoothing) * once + smoothing / c
        elif kind == "c_minus_1":
            targets = (1 - smoothing) * one_hot + (1 - one_hot) * smoothing / (c - 1)
        elif kind == "c_minus_1_all":  # s / (C - 1) added to every class
            targets = (1 - smoothing) * one_hot + smoothing / (c - 1)
        elif kind == "none":
            targets = one_hot
        else:
            targets = (1 - smoothing) * one_hot + smoothing / c
        log_p = F.log_softmax(logits, 0 if kind == "softmax_batch" else -1)
        per_example = -(targets * log_p).sum(-1)
        if kind == "sign":
            return -per_example.mean()
        if kind == "per_example":
            return per_example
        if kind == "mean_all":
            return -(targets * log_p).mean()
        if kind == "item":
            return per_example.mean().item()
        if kind == "keepdim":
            return per_example.mean(0, keepdim=True)
        if kind == "bfloat16":
            return per_example.mean().bfloat16()
        return per_example.sum() if kind == "sum" else per_example.mean()

    return smoothed_cross_entropy


def _t_predict(kind):
    def predict_logits(model, images, mean, std):
        if kind != "train_mode":
            model.eval()
        if kind == "augment":
            images = tv.random_crop_flip(images, 2)
        if kind == "flip":
            images = images.flip(2)
        if kind == "unnormalised":
            mean, std = np.zeros(3, np.float32), np.ones(3, np.float32)
        if kind == "nchw_to_input":  # to_input takes the NHWC images as they are
            with torch.no_grad():
                return model(tv.to_input(images.permute(0, 3, 1, 2), mean, std))
        if kind == "nchw_input":  # normalised, but never permuted to (B, C, H, W)
            x = (images.float() / 255 - torch.from_numpy(mean)) / torch.from_numpy(std)
            with torch.no_grad():
                return model(x)
        if kind == "no_255":
            x = (images.float() - torch.from_numpy(mean)) / torch.from_numpy(std)
            with torch.no_grad():
                return model(x.permute(0, 3, 1, 2))
        if kind == "raw":  # the 0..255 values, no normalisation at all
            with torch.no_grad():
                return model(images.float().permute(0, 3, 1, 2))
        if kind == "batch_scalar":  # one mean and std over the whole batch
            x = images.float() / 255
            with torch.no_grad():
                return model(
                    ((x - x.mean()) / x.std(unbiased=False)).permute(0, 3, 1, 2)
                )
        if kind == "batch_stats":  # this batch's statistics (torch.std: n - 1)
            x = images.float() / 255
            x = (x - x.mean((0, 1, 2))) / x.std((0, 1, 2))
            with torch.no_grad():
                return model(x.permute(0, 3, 1, 2))
        if kind == "no_grad_missing":
            return model(tv.to_input(images, mean, std))
        if kind == "divide_by_zero":
            std = std * 0
        with torch.no_grad():
            x = tv.to_input(images, mean, std)
            if kind == "autocast":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return model(x)
            if kind == "float64":
                return model(x).double()
            if (
                kind == "train_forward"
            ):  # a forward before model.eval(), then the logits
                model.train()
                model(x)
                model.eval()
            if kind == "tta":
                return model(x) + model(x.flip(3))
            if kind == "softmax":
                return model(x).softmax(-1)
            return model(x)

    return predict_logits


def _t_step(kind):
    def train_step(model, optimizer, x, labels, smoothing):
        if kind != "no_train_mode":
            model.train()
        if kind == "eval_in_step":
            model.eval()
        if kind.startswith("constant"):  # constant: 0.2, the first call's; constant_0.1
            smoothing = float(kind.partition("_")[2] or 0.2)
        if kind == "autocast":  # forward and loss in bfloat16 mixed precision
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x), labels, label_smoothing=smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return loss.detach()
        logits = model(x.permute(0, 3, 1, 2) if kind == "permute" else x)
        if kind == "twice":
            c = logits.shape[-1]
            targets = (1 - smoothing) * F.one_hot(labels, c).float() + smoothing / c
            loss = F.cross_entropy(logits, targets, label_smoothing=smoothing)
        elif kind == "plain":
            loss = F.cross_entropy(logits, labels)
        elif kind in ("per_example", "backward_vector"):
            loss = F.cross_entropy(
                logits, labels, label_smoothing=smoothing, reduction="none"
            )
        elif kind == "sum":
            loss = F.cross_entropy(
                logits, labels, label_smoothing=smoothing, reduction="sum"
            )
        else:
            loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
        if kind not in ("no_zero_grad", "zero_grad_late"):
            optimizer.zero_grad()
        (loss.mean() if kind == "per_example" else loss).backward()
        if kind == "zero_grad_late":
            optimizer.zero_grad()
        if kind == "plain_sgd":  # without the optimizer's momentum
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
        elif kind != "no_step":
            optimizer.step()
        if kind == "step_twice":
            optimizer.step()
        if kind == "attached":
            return loss
        return loss.item() if kind == "item" else loss.detach()

    return train_step


TORCH_MISTAKES = [
    ("crop_flip", _t_crop(same_offset=True), "same_offset"),
    ("crop_flip", _t_crop(flip_axis=1), "vertical_flip"),
    ("crop_flip", _t_crop(flip=False), "flip_missing"),
    ("crop_flip", _t_crop(flip_axis=3), "nhwc"),
    ("crop_flip", _t_crop_nchw_pad, "nhwc"),
    ("crop_flip", _t_flip_before_crop, "flip_before_crop"),
    ("crop_flip", _t_crop_variant("padded"), "crop_missing"),
    ("crop_flip", _t_crop_variant("unpadded"), "pad_axes"),
    ("crop_flip", _t_crop_variant("swapped"), "offsets_swapped"),
    ("crop_flip", _t_crop_variant("no_broadcast"), "flip_broadcast"),
    ("crop_flip", _t_crop_library, "answer_key"),
    ("crop_flip", _t_crop(flip_all=True), "flip_all"),
    ("crop_flip", _t_crop_variant("pad_plus_1"), "pad_amount"),
    ("crop_flip", _t_crop_variant("off_by_one"), "crop_bounds"),
    ("crop_flip", _t_crop_variant("off_by_one_cols"), "crop_bounds"),
    ("crop_flip", _t_crop_variant("reflect"), "pad_mode"),
    ("crop_flip", _t_crop_variant("replicate"), "pad_mode"),
    ("smoothed_cross_entropy", _t_loss_library, "loss_answer_key"),
    ("smoothed_cross_entropy", _t_loss_soft_targets, "loss_answer_key"),
    ("smoothed_cross_entropy", _t_loss("twice"), "smoothing_twice"),
    ("smoothed_cross_entropy", _t_loss("c_minus_1"), "smoothing_c_minus_1"),
    ("smoothed_cross_entropy", _t_loss("c_minus_1_all"), "smoothing_c_minus_1"),
    ("smoothed_cross_entropy", _t_loss("none"), "smoothing_missing"),
    ("smoothed_cross_entropy", _t_loss("sum"), "loss_sum"),
    ("smoothed_cross_entropy", _t_loss("sign"), "loss_sign"),
    ("smoothed_cross_entropy", _t_loss("per_example"), "loss_not_reduced"),
    ("smoothed_cross_entropy", _t_loss("mean_all"), "loss_mean_all"),
    ("smoothed_cross_entropy", _t_loss("softmax_batch"), "softmax_axis"),
    ("smoothed_cross_entropy", _t_loss("ten_classes"), "classes_hardcoded"),
    ("smoothed_cross_entropy", _t_loss("item"), "loss_float"),
    ("smoothed_cross_entropy", _t_loss("keepdim"), "loss_keepdim"),
    ("smoothed_cross_entropy", _t_loss("bfloat16"), "loss_dtype"),
    ("predict_logits", _t_predict("augment"), "augment_at_test"),
    ("predict_logits", _t_predict("train_mode"), "train_mode"),
    ("predict_logits", _t_predict("unnormalised"), "not_normalised"),
    ("predict_logits", _t_predict("no_255"), "not_normalised"),
    ("predict_logits", _t_predict("raw"), "not_normalised"),
    ("predict_logits", _t_predict("batch_stats"), "batch_stats"),
    ("predict_logits", _t_predict("batch_scalar"), "batch_stats"),
    ("predict_logits", _t_predict("flip"), "test_flip"),
    ("predict_logits", _t_predict("tta"), "test_flip"),
    ("predict_logits", _t_predict("softmax"), "probabilities"),
    ("predict_logits", _t_predict("nchw_input"), "model_input"),
    ("predict_logits", _t_predict("nchw_to_input"), "to_input_layout"),
    ("predict_logits", _t_predict("no_grad_missing"), "no_grad_missing"),
    ("predict_logits", _t_predict("autocast"), "logits_dtype"),
    ("predict_logits", _t_predict("float64"), "logits_dtype"),
    ("predict_logits", _t_predict("divide_by_zero"), "logits_not_finite"),
    ("predict_logits", _t_predict("train_forward"), "stats_updated"),
    ("train_step", _t_step("no_zero_grad"), "grad_accumulated"),
    ("train_step", _t_step("no_step"), "no_update"),
    ("train_step", _t_step("zero_grad_late"), "no_update"),
    ("train_step", _t_step("twice"), "step_smoothing_twice"),
    ("train_step", _t_step("plain"), "step_no_smoothing"),
    ("train_step", _t_step("constant"), "step_constant_smoothing"),
    ("train_step", _t_step("constant_0.1"), "step_constant_smoothing"),
    ("train_step", _t_step("constant_0.35"), "step_constant_smoothing"),
    ("train_step", _t_step("autocast"), "step_autocast"),
    ("train_step", _t_step("no_train_mode"), "train_mode_missing"),
    ("train_step", _t_step("eval_in_step"), "train_mode_missing"),
    ("train_step", _t_step("attached"), "loss_attached"),
    ("train_step", _t_step("item"), "loss_float"),
    ("train_step", _t_step("per_example"), "loss_not_scalar"),
    ("train_step", _t_step("backward_vector"), "loss_not_scalar"),
    ("train_step", _t_step("sum"), "loss_sum"),
    ("train_step", _t_step("plain_sgd"), "update_wrong"),
    ("train_step", _t_step("step_twice"), "update_wrong"),
    ("train_step", _t_step("permute"), "step_layout"),
]


# --- JAX -----------------------------------------------------------------------------------------
def _j_plain_crop(images, offsets, pad):
    """The crops, unflipped, written here: the check rejects a call of jv.crop_flip."""
    _, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

    def one(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))

    return jax.vmap(one)(padded, offsets)


def _j_crop(*, same_offset=False, flip_axis=2, flip=True, flip_all=False):
    def crop_flip(images, offsets, flips, pad):
        if same_offset:
            offsets = jnp.broadcast_to(offsets[:1], offsets.shape)
        out = _j_plain_crop(images, offsets, pad)
        if flip_all:
            return out[:, :, ::-1]
        if not flip:
            return out
        return jnp.where(flips[:, None, None, None], jnp.flip(out, flip_axis), out)

    return crop_flip


def _j_crop_library(images, offsets, flips, pad):
    return jv.crop_flip(
        images, offsets, flips, pad
    )  # H.vision.crop_flip: the answer key


def _j_flip_before_crop(images, offsets, flips, pad):
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    padded = jnp.where(flips[:, None, None, None], padded[:, :, ::-1], padded)
    h, w = images.shape[1:3]
    return jnp.stack(
        [
            p[r : r + h, c : c + w]
            for p, (r, c) in zip(padded, offsets.tolist(), strict=True)
        ]
    )


def _j_crop_nchw_pad(images, offsets, flips, pad):
    return jnp.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def _j_crop_variant(kind):
    def crop_flip(images, offsets, flips, pad):
        _, h, w, c = images.shape
        if (
            kind == "pad_2d"
        ):  # pad widths for an (H, W) image, not the (B, H, W, C) batch
            return jnp.pad(images, ((pad, pad), (pad, pad)))
        p = {"unpadded": 0, "pad_plus_1": pad + 1}.get(kind, pad)
        # nchw_pad pads columns and channels; dynamic_slice then clamps the starts
        nhwc, nchw = ((0, 0), (p, p), (p, p), (0, 0)), ((0, 0), (0, 0), (p, p), (p, p))
        mode = kind if kind in ("reflect", "edge") else "constant"
        padded = jnp.pad(images, nchw if kind == "nchw_pad" else nhwc, mode=mode)
        if kind == "padded":
            return padded
        if kind == "swapped":
            offsets = offsets[:, ::-1]

        def one(image, offset, flip):
            if kind == "python_slice":
                crop = image[offset[0] : offset[0] + h, offset[1] : offset[1] + w]
            elif kind == "off_by_one":  # dynamic_slice clamps the start: no error
                crop = jax.lax.dynamic_slice(
                    image, (offset[0] + 1, offset[1], 0), (h, w, c)
                )
            elif kind == "gather_off_by_one":  # indexing clamps each index: no error
                rows = offset[0] + jnp.arange(h)
                crop = image[rows[:, None], offset[1] + 1 + jnp.arange(w)]
            elif kind == "nchw_slice":  # as if each image were (C, H, W)
                crop = jax.lax.dynamic_slice(
                    image, (0, offset[0], offset[1]), (c, h, w)
                )
            else:
                crop = jax.lax.dynamic_slice(
                    image, (offset[0], offset[1], 0), (h, w, c)
                )
            if kind == "python_if":
                return crop[:, ::-1] if flip else crop
            return (
                crop if kind == "no_broadcast" else jnp.where(flip, crop[:, ::-1], crop)
            )

        out = jax.vmap(one)(padded, offsets, flips)
        if (
            kind == "no_broadcast"
        ):  # the flip chosen for the whole batch, flips not indexed
            return jnp.where(flips, out[:, :, ::-1], out)
        return out

    return crop_flip


def _j_loss_library(logits, labels, smoothing):
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), smoothing)
    return optax.softmax_cross_entropy(logits, targets).mean()  # the answer key


def _j_loss_library_losses_module(logits, labels, smoothing):
    # the same functions reached through optax.losses, the safe variant for the loss
    one_hot = jax.nn.one_hot(labels, logits.shape[-1])
    targets = optax.losses.smooth_labels(one_hot, smoothing)
    return optax.losses.safe_softmax_cross_entropy(logits, targets).mean()


def _j_loss_integer_labels(logits, labels, smoothing):
    # smoothing by hand around optax's integer-label loss: (1 - s) * CE(y) + s * mean_k CE(k)
    c = logits.shape[-1]
    ce = optax.losses.softmax_cross_entropy_with_integer_labels
    per_class = jnp.stack([ce(logits, jnp.full_like(labels, k)) for k in range(c)], -1)
    return (
        (1 - smoothing) * ce(logits, labels) + smoothing * per_class.mean(-1)
    ).mean()


def _j_loss_h_vision(logits, labels, smoothing):
    return jv.smoothed_cross_entropy(logits, labels, smoothing)  # H.vision's


def _j_loss(kind):
    def smoothed_cross_entropy(logits, labels, smoothing):
        c = 10 if kind == "ten_classes" else logits.shape[-1]
        one_hot = jax.nn.one_hot(labels, c)
        targets = (1 - smoothing) * one_hot + smoothing / c
        if kind == "twice":
            targets = (1 - smoothing) * targets + smoothing / c
        elif kind == "c_minus_1":
            targets = (1 - smoothing) * one_hot + (1 - one_hot) * smoothing / (c - 1)
        elif kind == "c_minus_1_all":  # s / (C - 1) added to every class
            targets = (1 - smoothing) * one_hot + smoothing / (c - 1)
        elif kind == "none":
            targets = one_hot
        log_p = jax.nn.log_softmax(logits, 0 if kind == "softmax_batch" else -1)
        per_example = -(targets * log_p).sum(-1)
        if kind == "sign":
            return -per_example.mean()
        if kind == "per_class":
            return -(targets * log_p)
        if kind == "mean_all":
            return -(targets * log_p).mean()
        if kind == "float":
            return float(per_example.mean())
        if kind == "keepdims":
            return per_example.mean(keepdims=True)
        if kind == "bfloat16":
            return per_example.mean().astype(jnp.bfloat16)
        return per_example.sum() if kind == "sum" else per_example.mean()

    return smoothed_cross_entropy


# Compiled once: eager, its many small operations would each compile on their own.
_j_augment = jax.jit(jv.random_crop_flip, static_argnums=1)


def _j_predict(kind):
    def predict_logits(model, images, mean, std):
        if kind != "train_mode":
            model.eval()
        if kind == "augment":
            key = jax.random.key(np.random.default_rng().integers(1 << 30))
            images = _j_augment(images, 2, rngs=key)
        if kind == "flip":
            images = images[:, :, ::-1]
        if kind == "unnormalised":
            mean, std = np.zeros(3, np.float32), np.ones(3, np.float32)
        if kind == "no_255":
            return model((images.astype(jnp.float32) - mean) / std)
        if kind == "raw":  # the 0..255 values, no normalisation at all
            return model(images.astype(jnp.float32))
        if kind == "batch_scalar":  # one mean and std over the whole batch
            x = images.astype(jnp.float32) / 255
            return model((x - x.mean()) / x.std())
        if kind == "batch_stats":  # this batch's statistics (jnp.std: population)
            x = images.astype(jnp.float32) / 255
            return model((x - x.mean((0, 1, 2))) / x.std((0, 1, 2)))
        if kind == "divide_by_zero":
            std = std * 0
        if kind == "nchw_to_input":  # to_input takes the NHWC images as they are
            return model(jv.to_input(jnp.transpose(images, (0, 3, 1, 2)), mean, std))
        x = jv.to_input(images, mean, std)
        if kind == "bfloat16":
            return model(x).astype(jnp.bfloat16)
        if kind == "train_forward":  # a forward before model.eval(), then the logits
            model.train()
            model(x)
            model.eval()
        if kind == "nchw_input":  # transposed as PyTorch would want it
            return model(jnp.transpose(x, (0, 3, 1, 2)))
        if kind == "tta":
            return model(x) + model(x[:, :, ::-1])
        if kind == "softmax":
            return jax.nn.softmax(model(x))
        return model(x)

    return predict_logits


def _j_step(kind):
    # Eager, as the check accepts: each row jitted would compile its own step twice (the
    # model arrives in evaluation mode). The mistakes that need a tracer are jitted below.
    def train_step(model, optimizer, x, labels, smoothing):
        if kind != "no_train_mode":
            model.train()
        if kind.startswith("constant"):  # constant: 0.2, the first call's; constant_0.1
            smoothing = float(kind.partition("_")[2] or 0.2)
        if kind == "if_smoothing" and smoothing == 0:  # a Python if on a traced value
            smoothing = 0.0

        def loss_fn(m):
            logits = (model if kind == "closure" else m)(
                jnp.transpose(x, (0, 3, 1, 2)) if kind == "transpose" else x
            )
            if kind == "bfloat16":  # mixed precision: logits and targets in bfloat16
                logits = logits.astype(jnp.bfloat16)
            one_hot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
            targets = optax.smooth_labels(one_hot, smoothing)
            if kind == "twice":
                targets = optax.smooth_labels(targets, smoothing)
            if kind == "plain":
                return optax.softmax_cross_entropy_with_integer_labels(
                    logits, labels
                ).mean()
            per_example = optax.softmax_cross_entropy(logits, targets)
            if kind == "per_example":
                return per_example
            return per_example.sum() if kind == "sum" else per_example.mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        if kind == "update_grads_only":
            optimizer.update(grads)
        elif kind == "own_sgd":  # without the optimizer's momentum
            params = nnx.state(model, nnx.Param)
            nnx.update(model, jax.tree.map(lambda p, g: p - 0.1 * g, params, grads))
        elif kind != "no_update":
            optimizer.update(model, grads)
        if kind == "update_twice":
            optimizer.update(model, grads)
        return float(loss) if kind == "float" else loss

    return nnx.jit(train_step) if kind in ("float", "if_smoothing") else train_step


JAX_MISTAKES = [
    ("crop_flip", _j_crop(same_offset=True), "same_offset"),
    ("crop_flip", _j_crop(flip_axis=1), "vertical_flip"),
    ("crop_flip", _j_crop(flip=False), "flip_missing"),
    ("crop_flip", _j_crop(flip_axis=3), "nhwc"),
    ("crop_flip", _j_crop_nchw_pad, "nhwc"),
    ("crop_flip", _j_flip_before_crop, "flip_before_crop"),
    ("crop_flip", _j_crop_variant("padded"), "crop_missing"),
    ("crop_flip", _j_crop_variant("pad_2d"), "pad_axes"),
    ("crop_flip", _j_crop_variant("swapped"), "offsets_swapped"),
    ("crop_flip", _j_crop_variant("no_broadcast"), "flip_broadcast"),
    ("crop_flip", _j_crop_variant("python_if"), "traced_if"),
    ("crop_flip", _j_crop_variant("python_slice"), "traced_slice"),
    ("crop_flip", _j_crop_library, "answer_key"),
    ("crop_flip", _j_crop(flip_all=True), "flip_all"),
    ("crop_flip", _j_crop_variant("pad_plus_1"), "pad_amount"),
    ("crop_flip", _j_crop_variant("off_by_one"), "crop_bounds"),
    ("crop_flip", _j_crop_variant("gather_off_by_one"), "crop_bounds"),
    ("crop_flip", _j_crop_variant("reflect"), "pad_mode"),
    ("crop_flip", _j_crop_variant("edge"), "pad_mode"),
    ("crop_flip", _j_crop_variant("unpadded"), "pad_axes"),
    ("crop_flip", _j_crop_variant("nchw_slice"), "nhwc"),
    ("crop_flip", _j_crop_variant("nchw_pad"), "pad_axes"),
    ("smoothed_cross_entropy", _j_loss_library, "loss_answer_key"),
    ("smoothed_cross_entropy", _j_loss_h_vision, "loss_answer_key"),
    ("smoothed_cross_entropy", _j_loss_library_losses_module, "loss_answer_key"),
    ("smoothed_cross_entropy", _j_loss_integer_labels, "loss_answer_key"),
    ("smoothed_cross_entropy", _j_loss("twice"), "smoothing_twice"),
    ("smoothed_cross_entropy", _j_loss("c_minus_1"), "smoothing_c_minus_1"),
    ("smoothed_cross_entropy", _j_loss("c_minus_1_all"), "smoothing_c_minus_1"),
    ("smoothed_cross_entropy", _j_loss("none"), "smoothing_missing"),
    ("smoothed_cross_entropy", _j_loss("sum"), "loss_sum"),
    ("smoothed_cross_entropy", _j_loss("sign"), "loss_sign"),
    ("smoothed_cross_entropy", _j_loss("per_class"), "loss_not_reduced"),
    ("smoothed_cross_entropy", _j_loss("mean_all"), "loss_mean_all"),
    ("smoothed_cross_entropy", _j_loss("softmax_batch"), "softmax_axis"),
    ("smoothed_cross_entropy", _j_loss("ten_classes"), "classes_hardcoded"),
    ("smoothed_cross_entropy", _j_loss("float"), "loss_float"),
    ("smoothed_cross_entropy", _j_loss("keepdims"), "loss_keepdim"),
    ("smoothed_cross_entropy", _j_loss("bfloat16"), "loss_dtype"),
    ("predict_logits", _j_predict("augment"), "augment_at_test"),
    ("predict_logits", _j_predict("train_mode"), "train_mode"),
    ("predict_logits", _j_predict("unnormalised"), "not_normalised"),
    ("predict_logits", _j_predict("no_255"), "not_normalised"),
    ("predict_logits", _j_predict("raw"), "not_normalised"),
    ("predict_logits", _j_predict("batch_stats"), "batch_stats"),
    ("predict_logits", _j_predict("batch_scalar"), "batch_stats"),
    ("predict_logits", _j_predict("flip"), "test_flip"),
    ("predict_logits", _j_predict("tta"), "test_flip"),
    ("predict_logits", _j_predict("softmax"), "probabilities"),
    ("predict_logits", _j_predict("nchw_input"), "model_input"),
    ("predict_logits", _j_predict("nchw_to_input"), "to_input_layout"),
    ("predict_logits", _j_predict("bfloat16"), "logits_dtype"),
    ("predict_logits", _j_predict("divide_by_zero"), "logits_not_finite"),
    ("predict_logits", _j_predict("train_forward"), "stats_updated"),
    ("train_step", _j_step("no_update"), "no_update"),
    ("train_step", _j_step("update_grads_only"), "no_update"),
    ("train_step", _j_step("twice"), "step_smoothing_twice"),
    ("train_step", _j_step("plain"), "step_no_smoothing"),
    ("train_step", _j_step("constant"), "step_constant_smoothing"),
    ("train_step", _j_step("constant_0.1"), "step_constant_smoothing"),
    ("train_step", _j_step("no_train_mode"), "train_mode_missing"),
    ("train_step", _j_step("closure"), "closure_model"),
    ("train_step", _j_step("per_example"), "loss_not_scalar"),
    ("train_step", _j_step("sum"), "loss_sum"),
    ("train_step", _j_step("float"), "loss_float"),
    ("train_step", _j_step("if_smoothing"), "step_traced_if"),
    ("train_step", _j_step("own_sgd"), "update_wrong"),
    ("train_step", _j_step("update_twice"), "update_wrong"),
    ("train_step", _j_step("transpose"), "step_layout"),
    ("train_step", _j_step("bfloat16"), "loss_dtype"),
]


# --- exercise 5: mixup and CutMix, both frameworks -------------------------------------------
def _mix(ns, kind):
    """A mixup with the mistake ``kind``, in the framework of ``ns`` (_T or _J)."""

    def mixup(images, labels, perm, lam, num_classes):
        x = ns.float(images)
        p = {"inverse": ns.argsort(perm), "self": ns.arange(len(perm))}.get(kind, perm)
        w = lam[:, None, None, None]
        w = {"swapped": 1 - w, "lam_first": lam[0], "no_broadcast": lam}.get(kind, w)
        if kind == "scale":
            x = x / 255
        mixed = w * x + (1 - w) * x[p]
        if kind == "loop":
            rows = [lam[i] * x[i] + (1 - lam[i]) * x[perm[i]] for i in range(len(x))]
            mixed = ns.stack(rows)
        if kind == "uint8_diff":  # x[perm] - x in uint8 wraps around
            mixed = images + (1 - w) * (images[p] - images)
        num_classes = int(labels.max()) + 1 if kind == "labels_max" else num_classes
        if kind in ("uint8", "uint8_back"):
            mixed = ns.uint8(mixed)
            mixed = ns.float(mixed) if kind == "uint8_back" else mixed
        one_hot = ns.one_hot(labels, num_classes)
        t = {"lam_first": lam[0], "swapped": 1 - lam[:, None]}.get(kind, lam[:, None])
        t = 1 - t if kind == "targets_weight" else t
        q = ns.argsort(perm) if kind == "targets_partner" else p
        targets = {"hard": one_hot, "hard_labels": labels, "sum": t * one_hot}.get(
            kind, t * one_hot + (1 - t) * one_hot[q]
        )
        if kind == "float16":
            targets = ns.half(targets)
        return mixed if kind == "images_only" else (mixed, targets)

    return mixup


def _cut(ns, kind):
    """A CutMix with the mistake ``kind``, in the framework of ``ns`` (_T or _J)."""

    def cutmix(images, labels, perm, box, num_classes):
        top, left, bh, bw = box
        h, w = images.shape[1:3]
        p = {"inverse": ns.argsort(perm), "self": ns.arange(len(perm))}.get(kind, perm)
        rows, cols = {
            "axes": (slice(left, left + bw), slice(top, top + bh)),
            "top_left": (slice(left, left + bh), slice(top, top + bw)),
            "hw": (slice(top, top + bw), slice(left, left + bh)),
            "plus_one": (slice(top, top + bh + 1), slice(left, left + bw + 1)),
            "corners": (slice(top, bh), slice(left, bw)),
            # ends written from the far border: -0 is an empty slice where the box meets it
            "neg_end": (slice(top, -(h - top - bh)), slice(left, -(w - left - bw))),
        }.get(kind, (slice(top, top + bh), slice(left, left + bw)))
        x = ns.float(images)
        if kind == "reversed":
            mixed = ns.paste(x[p], (slice(None), rows, cols), x[:, rows, cols])
        elif kind == "nchw":
            where = (slice(None), slice(None), rows, cols)
            mixed = ns.paste(x, where, x[p][where])
        elif kind == "loop":
            mixed = x
            for i in range(len(x)):
                mixed = ns.paste(mixed, (i, rows, cols), x[p[i], rows, cols])
        elif kind == "inplace":  # torch only: pasted into the caller's batch
            images[:, rows, cols] = images[p, rows, cols]
            mixed = images.float()
        elif kind == "assign":  # jax only: arrays are immutable
            x[:, rows, cols] = x[p, rows, cols]
            mixed = x
        else:
            mixed = ns.paste(x, (slice(None), rows, cols), x[p, rows, cols])
        h, w = images.shape[2:4] if kind == "lam_nchw" else (h, w)
        num_classes = int(labels.max()) + 1 if kind == "labels_max" else num_classes
        lam = {
            "side": 1 - bh / h,
            "width_side": 1 - bw / w,
            "lam_swapped": bh * bw / (h * w),
        }.get(kind, 1 - bh * bw / (h * w))
        one_hot = ns.one_hot(labels, num_classes)
        q = ns.argsort(perm) if kind == "targets_partner" else p
        targets = {"hard": one_hot, "sum": lam * one_hot}.get(
            kind, lam * one_hot + (1 - lam) * one_hot[q]
        )
        if kind == "uint8":
            mixed = ns.uint8(mixed)
        return mixed, targets

    return cutmix


def _t_paste(x, where, value):
    x = x.clone()
    x[where] = value
    return x


class _T:  # PyTorch's spelling of what _mix and _cut need
    float, half, uint8 = (staticmethod(lambda x, d=d: x.to(d))
                          for d in (torch.float32, torch.float16, torch.uint8))  # fmt: skip
    argsort, stack, paste = torch.argsort, torch.stack, staticmethod(_t_paste)
    arange = staticmethod(torch.arange)
    one_hot = staticmethod(lambda labels, k: F.one_hot(labels, k).float())


class _J:  # JAX's
    float, half, uint8 = (staticmethod(lambda x, d=d: x.astype(d))
                          for d in (jnp.float32, jnp.float16, jnp.uint8))  # fmt: skip
    argsort, stack, arange = jnp.argsort, jnp.stack, jnp.arange
    paste = staticmethod(lambda x, where, value: x.at[where].set(value))
    one_hot = staticmethod(jax.nn.one_hot)


def _t_mix_library(images, labels, perm, lam, num_classes):
    from torchvision.transforms import v2

    out, targets = v2.MixUp(num_classes=num_classes)(
        images.permute(0, 3, 1, 2).float(), labels
    )
    return out.permute(0, 2, 3, 1), targets


def _t_cut_library(images, labels, perm, box, num_classes):
    from torchvision.transforms import v2

    out, targets = v2.CutMix(num_classes=num_classes)(
        images.permute(0, 3, 1, 2).float(), labels
    )
    return out.permute(0, 2, 3, 1), targets


_MIX_ROWS = [
    ("inverse", "mix_partner_inverse"),
    ("self", "mix_partner_self"),
    ("swapped", "mix_lam_swapped"),
    ("lam_first", "mix_lam_broadcast"),
    ("no_broadcast", "mix_lam_broadcast"),
    ("scale", "mix_scale"),
    ("loop", "mix_loop"),
    ("uint8", "mix_uint8"),
    ("uint8_back", "mix_uint8"),
    ("targets_weight", "mix_targets_weight"),
    ("targets_partner", "mix_targets_partner"),
    ("hard", "mix_targets_hard"),
    ("hard_labels", "mix_targets_hard"),
    ("sum", "mix_targets_sum"),
    ("float16", "mix_float32"),
    ("images_only", "mix_shapes"),
    ("uint8_diff", "mix_uint8"),
    ("labels_max", "mix_shapes"),
]
_CUT_ROWS = [
    ("inverse", "mix_partner_inverse"),
    ("self", "mix_partner_self"),
    ("axes", "cut_box_swapped"),
    ("top_left", "cut_box_swapped"),
    ("hw", "cut_box_swapped"),
    ("plus_one", "cut_box_bounds"),
    ("corners", "cut_box_bounds"),
    ("width_side", "cut_lam_area"),
    ("nchw", "cut_box_nchw"),
    ("reversed", "cut_reversed"),
    ("loop", "mix_loop"),
    ("side", "cut_lam_area"),
    ("lam_swapped", "cut_lam_swapped"),
    ("targets_partner", "mix_targets_partner"),
    ("hard", "mix_targets_hard"),
    ("sum", "mix_targets_sum"),
    ("uint8", "cut_uint8"),
    ("neg_end", "cut_nothing"),
    ("lam_nchw", "cut_lam_nchw"),
    ("labels_max", "mix_shapes"),
]
for _ns, _table, _extra in (
    (_T, TORCH_MISTAKES, [("cutmix", "inplace", "mix_inplace")]),
    (_J, JAX_MISTAKES, [("cutmix", "assign", "mix_immutable")]),
):
    _table += [("mixup", _mix(_ns, kind), key) for kind, key in _MIX_ROWS]
    _table += [("cutmix", _cut(_ns, kind), key) for kind, key in _CUT_ROWS]
    _table += [(ex, _cut(_ns, kind), key) for ex, kind, key in _extra]


def _j_mix_int_loop(images, labels, perm, lam, num_classes):
    """Right values, but perm's entries as Python ints: fails when traced."""
    x, one_hot = images.astype(jnp.float32), jax.nn.one_hot(labels, num_classes)
    p = [int(i) for i in perm]
    w = lam[:, None, None, None]
    return w * x + (1 - w) * x[jnp.array(p)], lam[:, None] * one_hot + (
        1 - lam[:, None]
    ) * one_hot[jnp.array(p)]


JAX_MISTAKES += [("mixup", _j_mix_int_loop, "mix_traced")]


def _t_mix_numpy(images, labels, perm, lam, num_classes):
    """Right values, but mixed in NumPy, one image at a time: the loop is not counted."""
    x, p, w = images.numpy().astype(np.float32), perm.numpy(), lam.numpy()
    mixed = np.stack([w[i] * x[i] + (1 - w[i]) * x[p[i]] for i in range(len(x))])
    one_hot = F.one_hot(labels, num_classes).float()
    targets = lam[:, None] * one_hot + (1 - lam[:, None]) * one_hot[perm]
    return torch.from_numpy(mixed), targets


TORCH_MISTAKES += [
    ("mixup", _t_mix_numpy, "mix_host"),
    ("mixup", _t_mix_library, "mix_answer_key"),
    ("cutmix", _t_cut_library, "mix_answer_key"),
]


# --- a second student pass on exercises 1-4 ---------------------------------------------------
def _t_gather(
    images, offsets, flips, pad, *, widths=None, rows=None, cols=None, flip=None
):
    """Exercise 1 by gather, with one part replaced: the padding, the rows, the columns, or
    how the flipped column indices are chosen."""
    b, h, w, _ = images.shape
    padded = F.pad(images, widths or (0, 0, pad, pad, pad, pad))
    r = offsets[:, :1] + torch.arange(h) if rows is None else rows(offsets, h)
    c = offsets[:, 1:] + torch.arange(w) if cols is None else cols(offsets, w)
    c = flip(c, flips) if flip else torch.where(flips[:, None], c.flip(1), c)
    return padded[torch.arange(b)[:, None, None], r[:, :, None], c[:, None, :]]


def _t_crop_loop(images, offsets, flips, pad):
    padded = F.pad(images, (0, 0, pad, pad, pad, pad))
    h, w = images.shape[1:3]
    crops = [
        p[r : r + h, c : c + w]
        for p, (r, c) in zip(padded, offsets.tolist(), strict=True)
    ]
    return torch.stack(
        [c.flip(1) if f else c for c, f in zip(crops, flips.tolist(), strict=True)]
    )


def _t_crop_inplace(images, offsets, flips, pad):
    images[flips] = images[flips].flip(2)  # the caller's batch, mirrored
    offsets[flips, 1] = 2 * pad - offsets[flips, 1]
    return _t_gather(images, offsets, torch.zeros_like(flips), pad)


def _t_crop_bool_arith(images, offsets, flips, pad):
    out = _t_gather(images, offsets, torch.zeros_like(flips), pad)
    m = flips[:, None, None, None]
    return out * (1 - m) + out.flip(2) * m  # 1 - a bool tensor: an error


def _t_loss2(kind):
    def smoothed_cross_entropy(logits, labels, smoothing):
        c = logits.shape[-1]
        one_hot = F.one_hot(labels, c).float()
        if kind == "no_num_classes":  # labels.max() + 1 classes
            one_hot = F.one_hot(labels).float()
        if kind == "eye64":  # float64 one-hot rows
            one_hot = torch.from_numpy(np.eye(c))[labels]
        targets = {
            "not_divided": lambda: (1 - smoothing) * one_hot + smoothing,
            "swapped": lambda: smoothing * one_hot + (1 - smoothing) / c,
        }.get(kind, lambda: (1 - smoothing) * one_hot + smoothing / c)()
        if kind == "inplace":
            logits -= logits.max(-1, keepdim=True).values  # the caller's logits
        log_p = F.softmax(logits, -1) if kind == "no_log" else F.log_softmax(logits, -1)
        return -(targets * log_p).sum(-1).mean()

    return smoothed_cross_entropy


def _t_predict2(kind):
    def predict_logits(model, images, mean, std):
        model.eval()
        if kind == "swapped":
            mean, std = std, mean
        with torch.no_grad():
            logits = model(
                tv.to_input(images, mean, std ** (2 if kind == "var" else 1))
            )
        return logits.log_softmax(-1) if kind == "log_softmax" else logits

    return predict_logits


def _t_step2(kind):
    def train_step(model, optimizer, x, labels, smoothing):
        model.train()
        with torch.no_grad() if kind == "no_grad" else contextlib.nullcontext():
            logits = model(x)
        if kind == "positional":
            loss = F.cross_entropy(logits, labels, smoothing)  # smoothing as weight
        else:
            loss = F.cross_entropy(logits.double() if kind == "float64" else logits,
                                   labels, label_smoothing=smoothing)  # fmt: skip
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if kind == "log_forward":  # a second training-mode forward, for a log
            with torch.no_grad():
                model(x)
        return loss.detach()

    return train_step


TORCH_MISTAKES += [
    ("crop_flip", partial(_t_gather, cols=lambda o, w: o[:, :1] + torch.arange(w)),
     "offsets_swapped"),
    ("crop_flip", lambda i, o, f, p: _t_gather(i, o, f, p, widths=(0, 0, 0, 2 * p, 0, 2 * p)),
     "pad_amount"),
    ("crop_flip", partial(_t_gather, flip=lambda c, f: torch.where(f[:, None], c.flip(0), c)),
     "flip_batch_axis"),
    ("crop_flip", _t_crop_loop, "crop_loop"),
    ("crop_flip", _t_crop_inplace, "inputs_changed"),
    ("crop_flip", _t_crop_bool_arith, "flip_bool_arith"),
    ("smoothed_cross_entropy", _t_loss2("no_num_classes"), "classes_hardcoded"),
    ("smoothed_cross_entropy", _t_loss2("not_divided"), "smoothing_sum"),
    ("smoothed_cross_entropy", _t_loss2("swapped"), "smoothing_swapped"),
    ("smoothed_cross_entropy", _t_loss2("no_log"), "loss_log_missing"),
    ("smoothed_cross_entropy", _t_loss2("eye64"), "loss_float64"),
    ("smoothed_cross_entropy", _t_loss2("inplace"), "inputs_changed"),
    ("predict_logits", _t_predict2("swapped"), "not_normalised"),
    ("predict_logits", _t_predict2("var"), "not_normalised"),
    ("predict_logits", _t_predict2("log_softmax"), "probabilities"),
    ("train_step", _t_step2("no_grad"), "step_no_graph"),
    ("train_step", _t_step2("positional"), "step_smoothing_keyword"),
    ("train_step", _t_step2("float64"), "loss_float64"),
    ("train_step", _t_step2("log_forward"), "stats_twice"),
]  # fmt: skip


def _j_crop2(kind):
    def crop_flip(images, offsets, flips, pad):
        _, h, w, c = images.shape
        widths = ((0, 0), (0, 2 * pad), (0, 2 * pad), (0, 0)) if kind == "one_side" else (
            ((0, 0), (pad, pad), (pad, pad), (0, 0)))  # fmt: skip
        padded = jnp.pad(
            images, pad if kind == "int_pad" else widths
        )  # int: every axis

        def one(image, offset, flip):
            start = (offset[0], offset[0 if kind == "rows_both" else 1], 0)
            if kind == "no_channel":  # a start and a size for rows and columns only
                return jax.lax.dynamic_slice(image, start[:2], (h, w))
            crop = jax.lax.dynamic_slice(image, start, (h, w, c))
            return jnp.where(flip, crop[:, ::-1], crop)

        if kind == "loop":
            return jnp.stack(
                [one(*a) for a in zip(padded, offsets, flips, strict=True)]
            )
        if kind == "tolist":  # concrete offsets: fails under jax.jit
            given = zip(padded, offsets.tolist(), flips.tolist(), strict=True)
            return jnp.stack([one(p, o, f) for p, o, f in given])
        return jax.vmap(one)(padded, offsets, flips)

    return crop_flip


def _j_crop_batch_flip(images, offsets, flips, pad):
    b, h, w, _ = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    rows, cols = offsets[:, :1] + jnp.arange(h), offsets[:, 1:] + jnp.arange(w)
    cols = jnp.where(flips[:, None], cols[::-1], cols)  # reversed over the batch
    return padded[jnp.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _j_loss2(kind):
    def smoothed_cross_entropy(logits, labels, smoothing):
        c = int(labels.max()) + 1 if kind == "labels_max" else logits.shape[-1]
        one_hot = jax.nn.one_hot(labels, c)
        targets = {
            "not_divided": (1 - smoothing) * one_hot + smoothing,
            "swapped": smoothing * one_hot + (1 - smoothing) / c,
        }.get(kind, (1 - smoothing) * one_hot + smoothing / c)
        log_p = logits if kind == "no_log" else jax.nn.log_softmax(logits)
        return -(targets * log_p).sum(-1).mean()

    return smoothed_cross_entropy


def _j_predict2(kind):
    def predict_logits(model, images, mean, std):
        model.eval()
        if kind == "swapped":
            mean, std = std, mean
        logits = model(jv.to_input(images, mean, std))
        return jax.nn.log_softmax(logits) if kind == "log_softmax" else logits

    return predict_logits


def _j_step2(kind):
    @nnx.jit
    def train_step(model, optimizer, x, labels, smoothing):
        model.train()

        def loss_fn(m):
            logits = m(x)
            if kind == "int_targets":  # integer labels where one-hot targets go
                return optax.softmax_cross_entropy(
                    logits, optax.smooth_labels(labels, smoothing)
                ).mean()
            one_hot = jax.nn.one_hot(labels, logits.shape[-1])
            targets = optax.smooth_labels(one_hot, smoothing)
            return optax.softmax_cross_entropy(logits, targets).mean()

        if kind == "grad_then_loss":  # the model runs twice in training mode
            grads = nnx.grad(loss_fn)(model)
            loss = loss_fn(model)
        elif kind == "jax_grad":  # JAX's own transform: the state updates are lost
            loss, grads = jax.value_and_grad(loss_fn)(model)
        else:
            loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    return train_step


JAX_MISTAKES += [
    ("crop_flip", _j_crop2("rows_both"), "offsets_swapped"),
    ("crop_flip", _j_crop2("one_side"), "pad_amount"),
    ("crop_flip", _j_crop2("int_pad"), "pad_axes"),
    ("crop_flip", _j_crop2("no_channel"), "slice_rank"),
    ("crop_flip", _j_crop2("loop"), "crop_loop"),
    ("crop_flip", _j_crop2("tolist"), "crop_loop"),
    ("crop_flip", _j_crop_batch_flip, "flip_batch_axis"),
    ("smoothed_cross_entropy", _j_loss2("labels_max"), "classes_hardcoded"),
    ("smoothed_cross_entropy", _j_loss2("not_divided"), "smoothing_sum"),
    ("smoothed_cross_entropy", _j_loss2("swapped"), "smoothing_swapped"),
    ("smoothed_cross_entropy", _j_loss2("no_log"), "loss_log_missing"),
    ("predict_logits", _j_predict2("swapped"), "not_normalised"),
    ("predict_logits", _j_predict2("log_softmax"), "probabilities"),
    ("train_step", _j_step2("int_targets"), "step_one_hot"),
    ("train_step", _j_step2("grad_then_loss"), "stats_twice"),
    ("train_step", _j_step2("jax_grad"), "stats_lost"),
]

MISTAKES = {"pytorch": TORCH_MISTAKES, "jax": JAX_MISTAKES}
(
    test_catches_mistake_with_its_hint,
    test_at_least_two_mistakes_per_exercise,
    test_every_declared_hint_is_produced_by_a_mistake,
) = mistake_table_tests(LAB, MISTAKES)


# --- the references --------------------------------------------------------------------------
@pytest.mark.parametrize("case", lab05.crop_cases(), ids=["case0", "case1"])
def test_crop_reference_equals_both_batched_versions(case):
    args = (case["images"], case["offsets"], case["flips"])
    expected = lab05.crop_mistake(case, "right")
    t = tv.crop_flip(*(torch.from_numpy(a) for a in args), case["pad"]).numpy()
    j = np.asarray(jv.crop_flip(*(jnp.asarray(a) for a in args), case["pad"]))
    assert np.array_equal(t, expected) and np.array_equal(j, expected)


def test_every_mixing_mistake_changes_the_answer():
    """Each known mistake of exercise 5 differs from the answer on every call of the check
    (but lam[0] for the batch, which the first batch's one lam cannot show)."""
    from helpers.labs.lab05 import mixing

    first, *_ = cases = mixing.mixing_cases()
    for case in cases:
        right = mixing.mixup_answer(case)
        for m in set(mixing.MIXUP_MISTAKES) - (
            {"mix_lam_broadcast"} if case is first else set()
        ):
            wrong = mixing.mixup_answer(case, m)
            assert not all(
                np.allclose(a, b) for a, b in zip(wrong, right, strict=True)
            ), m
        for box in case["boxes"]:
            right = mixing.cutmix_answer(case, box)
            answers = {
                m: mixing.cutmix_answer(case, box, m) for m in mixing.CUTMIX_MISTAKES
            }
            for m, wrong in answers.items():  # two hints never share an answer
                assert not any(
                    mixing.CUTMIX_MISTAKES[m] != mixing.CUTMIX_MISTAKES[n]
                    # W * C and W give the same lam on one box; the first box tells them apart
                    and {m, n} != {"cut_lam_nchw", "cut_lam_width"}
                    and all(
                        np.allclose(a, b) for a, b in zip(wrong, other, strict=True)
                    )
                    for n, other in answers.items()
                ), m
            for m in mixing.CUTMIX_MISTAKES:
                wrong = answers[m]
                assert not all(
                    np.allclose(a, b) for a, b in zip(wrong, right, strict=True)
                ), m


def test_every_crop_mistake_changes_the_answer():
    for case in lab05.crop_cases():
        right = lab05.crop_mistake(case, "right")
        for mistake in lab05._CROP_MISTAKES:
            assert not np.array_equal(lab05.crop_mistake(case, mistake), right), mistake


def test_smoothing_reference_equals_both_libraries_and_mistakes_differ():
    for case in lab05.smooth_cases():
        logits, labels, s = case["logits"], case["labels"], case["smoothing"]
        ref = lab05.smoothed_ce(logits, labels, s)
        lib = F.cross_entropy(
            torch.from_numpy(logits).double(),
            torch.from_numpy(labels),
            label_smoothing=s,
        ).item()
        assert ref == pytest.approx(lib, rel=1e-9)
        assert ref == pytest.approx(
            float(
                jv.smoothed_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), s)
            ),
            rel=1e-5,
        )
        for mistake in loss_checks._SMOOTH_MISTAKES:
            wrong = lab05.smoothed_ce(logits, labels, s, mistake)
            assert abs(wrong - ref) > 1e-2 * abs(ref), mistake


def test_step_references_agree_across_frameworks_and_mistakes_differ():
    """The two adapters' reference steps (same weights, same batches) give the same losses
    and weights (BatchNorm's running variance to 5e-3: PyTorch averages the unbiased batch
    variance, Flax the biased one); every known mistake changes the losses or the weights."""
    from helpers.labs.lab05 import jax as lab_jax
    from helpers.labs.lab05 import torch as lab_torch

    t_losses, t_weights = lab_torch._step_train("")
    j_losses, j_weights = lab_jax._step_train("")
    np.testing.assert_allclose(t_losses, j_losses, rtol=1e-5)
    for part, value in t_weights.items():
        rtol = 5e-3 if part == "bn_var" else 1e-4
        np.testing.assert_allclose(value, j_weights[part], rtol=rtol, atol=1e-6)
    start = model_checks.tiny_net_weights()
    # the steps moved the weights and the running statistics
    assert not np.allclose(t_weights["conv"], start["conv"])
    assert not np.allclose(t_weights["bn_mean"], start["bn_mean"])
    for adapter in (lab_torch, lab_jax):
        losses, weights = adapter._step_train("")
        for variant in adapter.check_train_step.keywords["variants"]:
            w_losses, w_weights = adapter._step_train(variant)
            same = [np.allclose(w_weights[k], weights[k], rtol=1e-3) for k in weights]
            assert not (np.allclose(w_losses, losses, rtol=1e-3) and all(same)), variant


# --- the kit's fixes the lab needed ------------------------------------------------------------
def test_the_answer_key_is_restored_after_the_check():
    """The check wraps H.vision.crop_flip to notice a call; afterwards it is the original."""
    from helpers.jax import augment as ja
    from helpers.labs import CheckFailed
    from helpers.labs.lab05 import jax as lab_jax
    from helpers.labs.lab05 import torch as lab_torch
    from helpers.torch import augment as ta

    before = [
        tv.crop_flip,
        ta.crop_flip,
        ta.random_crop_flip,
        jv.crop_flip,
        ja.crop_flip,
    ]
    for check, answer in ((lab_torch, tv), (lab_jax, jv)):
        with pytest.raises(CheckFailed, match="called the library"):
            check.check_crop_flip(lambda *args, a=answer: a.crop_flip(*args))
    after = [
        tv.crop_flip,
        ta.crop_flip,
        ta.random_crop_flip,
        jv.crop_flip,
        ja.crop_flip,
    ]
    assert after == before
    # the loss's answer keys too
    before = [F.cross_entropy, tv.smoothed_cross_entropy, optax.smooth_labels,
              optax.softmax_cross_entropy, jv.smoothed_cross_entropy]  # fmt: skip
    for check, loss in ((lab_torch, _t_loss_library), (lab_jax, _j_loss_library)):
        with pytest.raises(CheckFailed, match="called the library"):
            check.check_smoothed_cross_entropy(loss)
    after = [F.cross_entropy, tv.smoothed_cross_entropy, optax.smooth_labels,
             optax.softmax_cross_entropy, jv.smoothed_cross_entropy]  # fmt: skip
    assert after == before


def test_a_bfloat16_tensor_is_read_with_its_dtype_not_rejected_as_no_tensor():
    from helpers.labs import CheckFailed
    from helpers.labs.lab05 import torch as lab_torch
    from helpers.torch.labkit import to_numpy

    value = torch.tensor([1.5, -2.0], dtype=torch.bfloat16)
    assert to_numpy(value).astype(np.float32).tolist() == [1.5, -2.0]
    assert to_numpy(value).dtype == jnp.bfloat16  # the dtype JAX gives, named in checks
    with pytest.raises(CheckFailed) as info:
        lab_torch.check_smoothed_cross_entropy(lambda *args: value.mean())
    assert "got Tensor" not in info.value.message and "bfloat16" in info.value.message


@pytest.mark.parametrize(
    "number", [3, 0.5, np.float32(0.5)], ids=["int", "float", "numpy"]
)
def test_a_number_where_an_array_is_asked_gets_a_hint_that_leads_there(number):
    """No circle: the hint for an int or a NumPy scalar never says float(...), which the
    next run would reject as "not an array"."""
    from helpers.labs import CheckFailed
    from helpers.labs.lab05 import jax as lab_jax
    from helpers.labs.lab05 import torch as lab_torch

    for lab, array_type in ((lab_torch, "a torch.Tensor"), (lab_jax, "a jax.Array")):
        with pytest.raises(CheckFailed) as info:
            lab.check_crop_flip(lambda *args: number)
        assert f"return {array_type}" in info.value.hint, info.value.message
        assert "convert" not in info.value.hint


def test_each_smoothing_twice_hint_speaks_of_its_own_exercise():
    """Exercise 2's hint is about targets smoothed twice by hand; exercise 4's, where the
    library's loss is allowed, about the library smoothing targets already smoothed."""
    from helpers.labs.lab05 import jax as lab_jax
    from helpers.labs.lab05 import torch as lab_torch

    for lab, library in (
        (lab_torch, "label_smoothing="),
        (lab_jax, "optax.smooth_labels"),
    ):
        exercise_2, exercise_4 = (
            lab.HINTS[k] for k in ("smoothing_twice", "step_smoothing_twice")
        )
        assert library not in exercise_2 and "exercise 4" not in exercise_2
        assert library in exercise_4
