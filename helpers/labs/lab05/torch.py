"""Lab 5 self-checks for PyTorch notebooks: ``H.lab05.check_crop_flip(crop_flip)`` etc.

The checks are :mod:`helpers.labs.lab05.checks`, shared with JAX; this module hands them
tensors, PyTorch's own loss (``F.cross_entropy(label_smoothing=...)``), a small
``H.vision.CifarNet``, a tiny BatchNorm network with SGD for the training step and that
step's reference runs (one per known mistake), and turns PyTorch's error messages into hints.
"""

from __future__ import annotations

import copy
import functools
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from helpers.labs.kit import Hints, explainer
from helpers.labs.lab05 import checks as lab05
from helpers.torch.labkit import lab_framework
from helpers.torch.vision import CifarNet, to_input

__all__ = [
    "check_crop_flip",
    "check_predict_logits",
    "check_smoothed_cross_entropy",
    "check_train_step",
]

HINTS = Hints(
    lab05.HINTS,
    {
        "step_no_smoothing": "train on the smoothed loss: F.cross_entropy(logits, labels, "
        "label_smoothing=smoothing), or your smoothed_cross_entropy; without it the step "
        "ignores the smoothing",
        "no_update": "update the weights: optimizer.zero_grad(), loss.backward(), then "
        "optimizer.step() (a zero_grad between backward and step throws the gradients away)",
        "loss_not_scalar": "return the mean loss, shape (): F.cross_entropy's default "
        "reduction='mean'; reduction='none' gives one loss per example, and backward() "
        "needs one number",
        "grad_accumulated": "call optimizer.zero_grad() in every step, before "
        "loss.backward(): backward() adds to .grad, so the second step used the sum of "
        "both steps' gradients",
        "loss_attached": "return loss.detach(): the loss itself still holds the step's "
        "autograd graph (requires_grad=True), and keeping it keeps every activation alive",
        "loss_item": "return loss.detach(), a 0-d tensor: loss.item() (or float(loss)) "
        "copies it to the CPU and makes Python wait for the device at every step",
    },
)

# PyTorch error messages (a regular expression on the message) -> the hint that fixes them.
_ERRORS = {
    r"to have 3 channels|expected input.*channels|Padding length|"
    r"must match the size of tensor": "nhwc",
    r"grad can be implicitly created only for scalar outputs": "loss_not_scalar",
}
_explain = explainer(_ERRORS, HINTS)
TORCH = lab_framework(HINTS, _explain)


def _library_loss(logits: np.ndarray, labels: np.ndarray, smoothing: float) -> float:
    return F.cross_entropy(
        torch.from_numpy(logits).double(),
        torch.from_numpy(labels).long(),
        label_smoothing=smoothing,
    ).item()


def _make_model() -> CifarNet:
    """A small CifarNet whose BatchNorm running statistics are far from batch statistics."""
    torch.manual_seed(0)
    model = CifarNet((4, 8, 8, 8), device="cpu").to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.train()


def _reference(model, images, mean, std, mistake: str) -> np.ndarray:
    model = copy.deepcopy(model)  # a training-mode forward updates running statistics
    x = images[:, :, ::-1] if mistake == "test_flip" else images
    x = torch.from_numpy(np.ascontiguousarray(x))
    if mistake == "not_normalised":
        mean, std = np.zeros(3, np.float32), np.ones(3, np.float32)
    model.train(mistake == "train_mode")
    with torch.no_grad():
        return model(to_input(x, mean, std)).numpy()


class _StepNet(torch.nn.Module):
    """Exercise 4's model: conv 3x3, BatchNorm, GELU, mean over positions, linear.

    ``(B, 3, H, W)`` float32 -> logits ``(B, 10)``; the weights of ``step_weights()``.
    """

    def __init__(self) -> None:
        super().__init__()
        w = {k: torch.from_numpy(v) for k, v in lab05.step_weights().items()}
        width, classes = w["fc_kernel"].shape
        self.conv = torch.nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(width)
        self.fc = torch.nn.Linear(width, classes)
        with torch.no_grad():
            self.conv.weight.copy_(w["conv"].permute(3, 2, 0, 1))  # HWIO -> OIHW
            self.bn.weight.copy_(w["bn_scale"])
            self.bn.bias.copy_(w["bn_bias"])
            self.bn.running_mean.copy_(w["bn_mean"])
            self.bn.running_var.copy_(w["bn_var"])
            self.fc.weight.copy_(w["fc_kernel"].T)
            self.fc.bias.copy_(w["fc_bias"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.bn(self.conv(x)), approximate="tanh")  # (B, w, H, W)
        return self.fc(x.mean((2, 3)))  # (B, 10)


def _step_setup() -> tuple[_StepNet, torch.optim.SGD]:
    """A fresh model, in evaluation mode (as after an evaluation), and its SGD."""
    model = _StepNet().eval()
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=lab05.STEP_LR,
        momentum=lab05.STEP_MOMENTUM,
        nesterov=True,
    )
    return model, optimizer


def _step_prepare(
    x: np.ndarray, labels: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """NHWC numpy -> the channels_last ``(B, 3, H, W)`` float32 batch, int64 labels."""
    return torch.from_numpy(x.copy()).permute(0, 3, 1, 2), torch.from_numpy(
        labels.astype(np.int64)
    )


def _step_weights(model: _StepNet) -> dict[str, np.ndarray]:
    """The model's weights and running statistics in the layout of ``step_weights()``."""
    t = {
        "conv": model.conv.weight.permute(2, 3, 1, 0),  # OIHW -> HWIO
        "bn_scale": model.bn.weight,
        "bn_bias": model.bn.bias,
        "bn_mean": model.bn.running_mean,
        "bn_var": model.bn.running_var,
        "fc_kernel": model.fc.weight.T,
        "fc_bias": model.fc.bias,
    }
    return {k: v.detach().numpy().copy() for k, v in t.items()}


@functools.cache
def _step_train(variant: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Two reference steps (``""``) or a known mistake's: the losses ``(2,)``, the weights."""
    model, optimizer = _step_setup()
    losses = []
    for (x, labels), s in zip(lab05.step_batches(), lab05.STEP_SMOOTHING, strict=True):
        x, y = _step_prepare(x, labels)
        s = lab05.STEP_SMOOTHING[0] if variant == "step_constant_smoothing" else s
        if variant != "train_mode_missing":
            model.train()
        logits = model(x)  # (B, 10)
        if variant == "smoothing_twice":  # smoothed targets, smoothed again by the loss
            c = logits.shape[1]
            targets = (1 - s) * F.one_hot(y, c).float() + s / c
            loss = F.cross_entropy(logits, targets, label_smoothing=s)
        else:
            smoothing = 0.0 if variant == "step_no_smoothing" else s
            reduction = "sum" if variant == "loss_sum" else "mean"
            loss = F.cross_entropy(
                logits, y, label_smoothing=smoothing, reduction=reduction
            )
        if variant != "grad_accumulated":
            optimizer.zero_grad()
        loss.backward()
        if variant != "no_update":
            optimizer.step()
        losses.append(loss.item())
    return np.asarray(losses), _step_weights(model)


# The checks, bound to this framework. Call them with the student's function.
check_crop_flip = partial(lab05.check_crop_flip, fw=TORCH)
check_smoothed_cross_entropy = partial(
    lab05.check_smoothed_cross_entropy,
    fw=TORCH,
    library=_library_loss,
    int_dtype=np.int64,
)
check_predict_logits = partial(
    lab05.check_predict_logits, fw=TORCH, make_model=_make_model, reference=_reference
)
check_train_step = partial(
    lab05.check_train_step,
    fw=TORCH,
    setup=_step_setup,
    prepare=_step_prepare,
    train=_step_train,
    weights=_step_weights,
    training=lambda model: model.training,
    attached=lambda loss: isinstance(loss, torch.Tensor) and loss.requires_grad,
    variants=(
        "grad_accumulated",
        "no_update",
        "smoothing_twice",
        "step_no_smoothing",
        "step_constant_smoothing",
        "train_mode_missing",
        "loss_sum",
    ),
)
