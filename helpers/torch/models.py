"""The small PyTorch models of the early chapters."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from helpers.scale import cnn_feature_side

__all__ = ["CNN", "MLP", "count_params"]


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
