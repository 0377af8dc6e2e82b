"""Lab 7 self-checks for JAX notebooks: ``H.lab07.check_returns(discounted_returns)`` etc.

The checks are :mod:`helpers.labs.lab07.checks`, shared with PyTorch; this module only says
how arrays go in and come out (float32 jax arrays, read back as numpy).
"""

from __future__ import annotations

from functools import partial

from helpers.jax.labkit import lab_framework
from helpers.labs.kit import Hints, explainer
from helpers.labs.lab07 import checks as lab07

__all__ = ["check_gae", "check_ppo_loss", "check_returns"]

# JAX adds no known mistakes of its own to this lab.
HINTS = Hints(lab07.HINTS, {})

JAX = lab_framework(HINTS, explainer({}, HINTS))

check_returns = partial(lab07.check_returns, fw=JAX)
check_gae = partial(lab07.check_gae, fw=JAX)
check_ppo_loss = partial(lab07.check_ppo_loss, fw=JAX)
