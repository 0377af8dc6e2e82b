"""Lab 5 self-checks for PyTorch notebooks: ``H.lab05.check_crop_flip(crop_flip)`` etc.

The checks are :mod:`helpers.labs.lab05.checks`, shared with JAX; this module hands them
tensors, PyTorch's own loss (``F.cross_entropy(label_smoothing=...)``) and a small
``H.vision.CifarNet``, and turns PyTorch's error messages into hints.
"""

from __future__ import annotations

import copy
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from helpers.labs.kit import Hints, explainer
from helpers.labs.lab05 import checks as lab05
from helpers.torch.labkit import lab_framework
from helpers.torch.vision import CifarNet, to_input

__all__ = ["check_crop_flip", "check_predict_logits", "check_smoothed_cross_entropy"]

HINTS = Hints(lab05.HINTS)

# PyTorch error messages (a regular expression on the message) -> the hint that fixes them.
_ERRORS = {
    r"to have 3 channels|expected input.*channels|Padding length|"
    r"must match the size of tensor": "nhwc",
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
