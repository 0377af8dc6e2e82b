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

# PyTorch adds no known mistakes of its own to this lab.
HINTS = Hints(lab07.HINTS, {})

TORCH = lab_framework(HINTS, explainer({}, HINTS))

check_returns = partial(lab07.check_returns, fw=TORCH)
check_gae = partial(lab07.check_gae, fw=TORCH)
check_ppo_loss = partial(lab07.check_ppo_loss, fw=TORCH)
