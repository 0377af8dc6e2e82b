"""Lab 7 self-checks for JAX notebooks: ``H.lab07.check_returns(discounted_returns)`` etc.

The checks are :mod:`helpers.labs.lab07.checks`, shared with PyTorch; this module says how
arrays go in and come out (float32 jax arrays, read back as numpy), how JAX differentiates the
PPO losses (:func:`_gradients`) and words the hints whose API differs from PyTorch's.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from helpers.jax.labkit import lab_framework
from helpers.labs.kit import Checker, Hints, explainer
from helpers.labs.lab07 import checks as lab07

__all__ = ["check_gae", "check_ppo_loss", "check_returns", "check_vtrace"]

HINTS = Hints(
    lab07.HINTS,
    {
        "immutable": "JAX arrays cannot change in place (returns[t] = g fails): collect "
        "the steps in a list and jnp.stack it, write returns = returns.at[t].set(g), or "
        "let jax.lax.scan(..., reverse=True) build the array",
        "traced_if": "under jax.jit a Python `if` cannot read an array's value: choose "
        "with jnp.where(truncated[t] > 0, next_values[t], future), or multiply by the "
        "0/1 masks",
        "unbiased_std": "normalise with the population std, dividing by n: .std() "
        "(ddof=0, JAX's default), not .std(ddof=1)",
        "not_reversed": "the loop runs from the last step back to the first: reverse "
        "what you collected (out[::-1] or jnp.flip) so that G[0] is the first step's "
        "return; jax.lax.scan(..., reverse=True) keeps the time order by itself",
        "forward": "returns, advantages and V-trace targets flow backwards in time: "
        "jax.lax.scan(..., reverse=True) (a scan runs forwards by default), or a Python "
        "loop over reversed(range(T))",
        "not_differentiable": "jax.grad must see the loss as a function of new_log_probs "
        "and new_values: build it from jnp operations only, with no NumPy (np.clip, "
        "np.asarray), float(...) or jax.lax.stop_gradient between the inputs and the loss",
        "partly_detached": "the values are right but the gradient is not: part of the "
        "loss is cut from jax.grad (a jax.lax.stop_gradient on the ratio in one of the "
        "two terms, say); only the data (old_log_probs, advantages, old_values) may be "
        "constants",
        "jnp_min": "jnp.min / jnp.max reduce ONE array (their second argument is the "
        "axis): the elementwise minimum of two arrays, or of an array and a number, is "
        "jnp.minimum(a, b), e.g. jnp.minimum(rho_bar, ratio)",
        "inf_bar": "rho_bar and c_bar may be float('inf'), no clipping: clip with a "
        "minimum, jnp.minimum(rho_bar, ratio); arithmetic on the bar turns inf into NaN "
        "(rho_bar - jax.nn.relu(rho_bar - ratio) is inf - inf, rho_bar * "
        "jnp.minimum(1.0, ratio / rho_bar) is inf * 0)",
        "python_min": "Python's min / max (and if, and, or) need one number, not an "
        "array of T: clip elementwise with jnp.minimum(rho_bar, ratio) (or jnp.clip), "
        "and choose with jnp.where or the 0/1 masks",
    },
)

# JAX error messages (a regular expression on the message) -> the hint that fixes them.
_MESSAGES = {
    r"arrays are immutable": "immutable",
    r"TracerBoolConversionError|boolean conversion of traced": "traced_if",
    r"Only integer scalar arrays can be converted to a scalar index": "jnp_min",
    r"'float' object is not iterable": "jnp_min",  # jnp.min(ratio, rho_bar): an axis
    r"truth value of an array with more than one element is ambiguous": "python_min",
}

JAX = lab_framework(
    HINTS, explainer(_MESSAGES, HINTS, types={"TracerBoolConversionError": "traced_if"})
)

check_returns = partial(lab07.check_returns, fw=JAX)
check_gae = partial(lab07.check_gae, fw=JAX)
check_vtrace = partial(lab07.check_vtrace, fw=JAX)


def _gradients(
    c: Checker, student: Callable, x: dict[str, np.ndarray], clip: float
) -> tuple[np.ndarray, np.ndarray]:
    """d policy_loss / d new_log_probs and d value_loss / d new_values, by jax.grad."""
    t = {k: jnp.asarray(v) for k, v in x.items()}

    def loss(i: int, **changed: jax.Array) -> jax.Array:
        given = {**t, **changed}
        return student(*(given[k] for k in lab07.PPO_ARGS), clip=clip)[i]

    try:
        policy = jax.grad(lambda v: loss(0, new_log_probs=v))(t["new_log_probs"])
        value = jax.grad(lambda v: loss(1, new_values=v))(t["new_values"])
    except (
        jax.errors.ConcretizationTypeError,
        jax.errors.TracerArrayConversionError,
    ) as error:
        first = str(error).strip().splitlines()[0]
        raise c.fail(
            f"jax.grad of your losses raised {type(error).__name__}: {first}",
            c.hint("not_differentiable"),
        ) from None
    except Exception as error:
        raise c.raised(error) from None
    return np.asarray(policy), np.asarray(value)


check_ppo_loss = partial(lab07.check_ppo_loss, fw=JAX, gradients=_gradients)
