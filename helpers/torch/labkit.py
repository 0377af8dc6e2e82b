"""What every lab's PyTorch adapter shares: how a check hands tensors over and reads them back.

``helpers/labs/labNN/torch.py`` builds its :class:`~helpers.labs.kit.Framework` here, giving
only what is particular to its lab (its hints and how to explain PyTorch's errors).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from helpers.labs.kit import Framework, Hints

__all__ = ["lab_framework", "to_numpy"]


def to_numpy(value: object) -> np.ndarray:
    """A tensor as numpy; ``TypeError`` (naming the type) for anything that is not a tensor."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(type(value).__name__)
    return value.detach().cpu().numpy()


def lab_framework(
    hints: Hints,
    explain: Callable[[BaseException], str | None],
    side_effects: Callable[[Any], str | None] | None = None,
) -> Framework:
    """The PyTorch ``Framework`` of one lab: its ``hints``, ``explain`` and ``side_effects``."""
    extra = {} if side_effects is None else {"side_effects": side_effects}
    return Framework(
        name="torch",
        array_type="a torch.Tensor",
        from_numpy=torch.from_numpy,
        to_numpy=to_numpy,
        hints=hints,
        explain=explain,
        **extra,
    )
