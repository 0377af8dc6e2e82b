"""The course's shared PyTorch networks: the MLP and CNN of the early chapters, and chapter
5's CIFAR-10 networks, ``CifarNet`` (reused by chapters 9 and 10) and the outline's CNN,
fixed (``OutlineCNN``, section 5.2), and the weight average of a trained network
(``ema_model``); ``H.vision`` re-exports them."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from helpers.scale import cnn_feature_side
from helpers.whitening import _check_whitening

__all__ = [
    "CNN",
    "MLP",
    "CifarNet",
    "OutlineCNN",
    "count_params",
    "ema_model",
]


class MLP(nn.Module):
    """A multi-layer perceptron: flatten, then Linear-ReLU blocks, then a Linear head.

    ``MLP(784, (256,), 10)`` maps a batch of images ``(B, 28, 28)`` to logits ``(B, 10)``.
    """

    def __init__(
        self, in_features: int, hidden: Sequence[int], out_features: int
    ) -> None:
        super().__init__()
        widths = [in_features, *hidden]
        blocks: list[nn.Module] = [nn.Flatten()]  # (B, ...) -> (B, in_features)
        for fan_in, fan_out in itertools.pairwise(widths):
            blocks += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        blocks.append(nn.Linear(widths[-1], out_features))
        self.layers = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (B, out_features) logits


class CNN(nn.Module):
    """A small convolutional classifier for MNIST-sized images (chapter 3 onwards).

    Per entry of ``channels``: a 3x3 convolution (padding 1), a 2x2 max pool that halves
    height and width, BatchNorm and ReLU (pooling first leaves BatchNorm and ReLU a quarter of
    the pixels: about a fifth faster on a CPU); then flatten, a Linear-ReLU of width ``hidden``,
    Dropout with probability ``dropout`` (training only) and a Linear head. With the defaults::

        (B, 1, 28, 28)            images, channels first (a (B, 28, 28) batch gets C=1 added)
        -> (B, 16, 14, 14)        conv 1->16, pool, BN, ReLU
        -> (B, 32, 7, 7)          conv 16->32, pool, BN, ReLU
        -> (B, 1568)              flatten
        -> (B, 128) -> (B, 10)    Linear-ReLU, Dropout, Linear: logits

    BatchNorm and Dropout behave differently in ``model.train()`` and ``model.eval()``: call
    ``model.eval()`` before evaluating. Raises ``ValueError`` if ``image_size`` is not
    divisible by ``2 ** len(channels)`` or ``dropout`` is not in [0, 1).
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32),
        hidden: int = 128,
        out_features: int = 10,
        *,
        image_size: int = 28,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        side = cnn_feature_side(channels, image_size, dropout)
        blocks: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise([in_channels, *channels]):
            blocks += [
                nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
                nn.MaxPool2d(2),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
            ]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Flatten(),  # (B, C, s, s) -> (B, C*s*s)
            nn.Linear(channels[-1] * side * side, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)  # (B, H, W) -> (B, 1, H, W)
        return self.head(self.features(x))  # (B, out_features) logits


def count_params(model: nn.Module) -> int:
    """Number of trainable scalars in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _conv_bn(c_in: int, c_out: int, device) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False, device=device),
        nn.BatchNorm2d(c_out, device=device),
        nn.GELU(approximate="tanh"),
    ]


class _PatchWhitening(nn.Module):
    """A fixed convolution (no padding) with given filters, a trained bias, then GELU."""

    def __init__(self, filters: np.ndarray, device) -> None:
        super().__init__()
        # (O, k, k, C) -> (O, C, k, k). A buffer: saved and moved with the model, never trained.
        weight = torch.as_tensor(np.asarray(filters, np.float32)).permute(0, 3, 1, 2)
        self.register_buffer("weight", weight.contiguous().to(device))
        self.bias = nn.Parameter(torch.zeros(len(filters), device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(F.conv2d(x, self.weight, self.bias), approximate="tanh")

    def extra_repr(self) -> str:
        o, c, k, _ = self.weight.shape
        return (
            f"{c}, {o}, kernel_size=({k}, {k}), fixed filters, trained bias; then GELU"
        )


class CifarNet(nn.Module):
    """An airbench-style CIFAR-10 network: a stem and three conv blocks, BatchNorm, GELU.

    ``widths = (stem, block1, block2, block3)``. The stem is a 3x3 convolution, BN and GELU;
    or, given ``whitening`` filters ``(widths[0], k, k, 3)``
    (:func:`helpers.whitening.patch_whitening`), a fixed kxk convolution without padding
    (32 -> 31 pixels for k = 2) whose bias alone is trained, then GELU. Each block is conv 3x3,
    2x2 max-pool (rounding down), BN, GELU, conv 3x3, BN, GELU; the head takes the maximum
    over the remaining 4x4 (3x3 after a whitening stem) positions and applies a linear layer
    without bias, scaled by ``logit_scale``. Input ``(B, 3, 32, 32)`` normalised
    (channels_last is fastest), output logits ``float32 (B, num_classes)``.
    ``dtype=torch.bfloat16``: mixed precision, the forward pass runs under
    ``torch.autocast`` in that dtype (weights stay float32), as the JAX twin's layers do
    with ``dtype=``. Raises ``ValueError`` for other than four widths or filters of another
    shape.
    """

    def __init__(
        self,
        widths: tuple[int, ...] = (16, 32, 64, 128),
        num_classes: int = 10,
        *,
        whitening: np.ndarray | None = None,
        logit_scale: float = 1 / 9,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"widths are (stem, block1, block2, block3), got {widths}")
        if whitening is None:
            self.stem = nn.Sequential(*_conv_bn(3, widths[0], device))
        else:
            _check_whitening(whitening, widths[0])
            self.stem = _PatchWhitening(whitening, device)
        self.blocks = nn.ModuleList()
        for c_in, c_out in itertools.pairwise(widths):
            first, bn, act = _conv_bn(c_in, c_out, device)
            self.blocks.append(
                nn.Sequential(
                    first, nn.MaxPool2d(2), bn, act, *_conv_bn(c_out, c_out, device)
                )
            )
        self.head = nn.Linear(widths[-1], num_classes, bias=False, device=device)
        self.logit_scale = logit_scale
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dtype is None:
            return self._forward(x)
        with torch.autocast(x.device.type, dtype=self.dtype):
            return self._forward(x).float()  # float32 logits for the loss

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, w0, 32, 32); (B, w0, 31, 31) after a 2x2 whitening stem
        # each block: (B, w, 16, 16), (B, w, 8, 8), (B, w, 4, 4); 15, 7, 3 after 31
        for block in self.blocks:
            x = block(x)
        x = x.amax(dim=(2, 3))  # (B, w3): global max-pool
        return self.head(x) * self.logit_scale  # (B, num_classes)


class OutlineCNN(nn.Module):
    """The course outline's CIFAR-10 CNN with its flatten fixed (chapter 5, section 5.2).

    Three 3x3 convolutions (32, 64, 128 channels; the third without padding), ReLU, two 2x2
    max-pools, then linear layers 4608 -> 256 -> 10. Input ``float32 (B, 3, 32, 32)``
    normalised, output logits ``(B, 10)``. The outline flattens with ``view(-1, 128 * 4 * 4)``
    and a 2,048-input ``fc1``, which the 6x6 map of the third convolution does not fit; this
    is the network with the per-example flatten and ``fc1`` sized from the real map.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(128 * 6 * 6, 256)  # the real 6x6 feature map
        self.fc2 = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))  # (B, 32, 16, 16)
        x = self.pool(F.relu(self.conv2(x)))  # (B, 64, 8, 8)
        x = F.relu(self.conv3(x))  # (B, 128, 6, 6): no padding, 8 - 2 = 6
        x = x.flatten(1)  # (B, 4608): one row per example
        return self.fc2(F.relu(self.fc1(x)))


def ema_model(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``model``'s weights and BatchNorm statistics.

    Returns ``torch.optim.swa_utils.AveragedModel`` (a copy of ``model`` on its device, in its
    memory format): call ``average.update_parameters(model)`` after every optimiser step; the
    first call copies the weights, each later one sets ``w_avg <- decay * w_avg + (1 - decay)
    * w``, buffers included (``use_buffers=True``: BatchNorm's running means and variances
    are averaged alongside the weights, not recomputed for the averaged weights, as
    ``torch.optim.swa_utils.update_bn`` would; the integer ``num_batches_tracked`` is
    averaged and truncated, unused while BatchNorm's momentum is set). Evaluate it like the
    model, ``average(x)``. Polyak and Juditsky (1992); related to, but simpler than,
    airbench's Lookahead average. Raises ``ValueError`` unless ``0 <= decay <= 1``.
    """
    # The same bounds as torch's own check, which lets NaN through; this refuses it.
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"expected a decay in [0, 1], got {decay}")
    return AveragedModel(
        model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True
    )
