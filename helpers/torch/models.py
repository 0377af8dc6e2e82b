"""The small PyTorch models of the early chapters."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MLP", "count_params"]


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


def count_params(model: nn.Module) -> int:
    """Number of trainable scalars in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
