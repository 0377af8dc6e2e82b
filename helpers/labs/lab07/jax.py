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

HINTS = Hints(
    lab07.HINTS,
    {
        "immutable": "JAX arrays cannot change in place (returns[t] = g fails): collect "
        "the steps in a list and jnp.stack it, write returns = returns.at[t].set(g), or "
        "let jax.lax.scan(..., reverse=True) build the array",
        "traced_if": "under jax.jit a Python `if` cannot read an array's value: choose "
        "with jnp.where(truncated[t] > 0, next_values[t], future), or multiply by the "
        "0/1 masks",
    },
)

# JAX error messages (a regular expression on the message) -> the hint that fixes them.
_MESSAGES = {
    r"arrays are immutable": "immutable",
    r"TracerBoolConversionError|boolean conversion of traced": "traced_if",
}

JAX = lab_framework(
    HINTS, explainer(_MESSAGES, HINTS, types={"TracerBoolConversionError": "traced_if"})
)

check_returns = partial(lab07.check_returns, fw=JAX)
check_gae = partial(lab07.check_gae, fw=JAX)
check_ppo_loss = partial(lab07.check_ppo_loss, fw=JAX)
