"""Lab 7 self-checks for PyTorch notebooks: ``H.lab07.check_returns(discounted_returns)`` etc.

The checks are :mod:`helpers.labs.lab07.checks`, shared with JAX; this module only says
how arrays go in and come out (float32 tensors, read back as numpy).
"""

from __future__ import annotations

from functools import partial

from helpers.labs.kit import Hints, explainer
from helpers.labs.lab07 import checks as lab07
from helpers.torch.labkit import lab_framework

__all__ = ["check_gae", "check_ppo_loss", "check_returns"]

HINTS = Hints(
    lab07.HINTS,
    {
        "bool_mask": "PyTorch cannot compute 1 - mask on a bool tensor: keep the masks "
        "as 0.0/1.0 floats (torch.maximum(terminated, truncated) is the float "
        "done), or convert with mask.float()",
    },
)

# PyTorch error messages (a regular expression on the message) -> the hint that fixes them.
_MESSAGES = {r"Subtraction, the `-` operator, with a bool tensor": "bool_mask"}

TORCH = lab_framework(HINTS, explainer(_MESSAGES, HINTS))

check_returns = partial(lab07.check_returns, fw=TORCH)
check_gae = partial(lab07.check_gae, fw=TORCH)
check_ppo_loss = partial(lab07.check_ppo_loss, fw=TORCH)
