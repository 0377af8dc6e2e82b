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


try:  # NumPy's bfloat16, the one JAX returns; it comes with JAX, not with PyTorch
    from ml_dtypes import bfloat16 as _NP_BFLOAT16
except ImportError:  # pragma: no cover - PyTorch alone
    _NP_BFLOAT16 = None


def to_numpy(value: object) -> np.ndarray:
    """A tensor as numpy; ``TypeError`` (naming the type) for anything that is not a tensor.

    Every tensor converts: a ``bfloat16`` one (``torch.autocast``'s result) keeps its dtype
    as ``ml_dtypes.bfloat16`` when installed, so a check sees the dtype and can name it, as
    in JAX; other dtypes NumPy lacks (float8, complex32) become float32 or complex64.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(type(value).__name__)
    tensor = value.detach().cpu()
    if tensor.dtype == torch.bfloat16 and _NP_BFLOAT16 is not None:
        return tensor.view(torch.int16).numpy().view(_NP_BFLOAT16)
    try:
        return tensor.numpy()
    except TypeError:  # a dtype NumPy has no counterpart for
        wider = torch.complex64 if tensor.is_complex() else torch.float32
        return tensor.to(wider).numpy()


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
