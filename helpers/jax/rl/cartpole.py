"""gymnasium's CartPole-v1 as pure JAX functions of explicit state (JAX-only).

``vmap`` runs many environments and ``lax.scan`` runs time; ``tests/test_rl.py`` checks the
dynamics step for step against gymnasium's ``classic_control/cartpole.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["CartPoleState", "cartpole_physics", "cartpole_reset", "cartpole_step"]


# gymnasium's CartPole-v1 constants (classic_control/cartpole.py).
GRAVITY, CART_MASS, POLE_MASS, HALF_LENGTH, FORCE, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
TOTAL_MASS = CART_MASS + POLE_MASS
POLE_MASS_LENGTH = POLE_MASS * HALF_LENGTH
THETA_LIMIT = 12 * 2 * np.pi / 360  # radians
X_LIMIT = 2.4  # metres
MAX_STEPS = 500  # CartPole-v1's time limit
# The PRNG of the jitted training loops: XLA's own generator ("rbg") compiles much faster
# than the default threefry on a CPU (every env step draws keys).
PRNG_IMPL = "rbg"


class CartPoleState(NamedTuple):
    """One CartPole: ``physics`` (4,) float32 = (x, x_dot, theta, theta_dot), ``t`` int32."""

    physics: jax.Array
    t: jax.Array


def cartpole_reset(key: jax.Array) -> tuple[CartPoleState, jax.Array]:
    """A fresh CartPole: every state variable uniform in [-0.05, 0.05]; ``(state, obs (4,))``."""
    physics = jax.random.uniform(key, (4,), jnp.float32, -0.05, 0.05)
    return CartPoleState(physics, jnp.zeros((), jnp.int32)), physics


def cartpole_physics(physics: jax.Array, action: jax.Array) -> jax.Array:
    """One Euler step of gymnasium's CartPole: ``(4,)`` float32 state, int action 0 or 1."""
    x, x_dot, theta, theta_dot = physics
    force = jnp.where(action == 1, FORCE, -FORCE)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    temp = (force + POLE_MASS_LENGTH * theta_dot**2 * sin) / TOTAL_MASS
    theta_acc = (GRAVITY * sin - cos * temp) / (
        HALF_LENGTH * (4.0 / 3.0 - POLE_MASS * cos**2 / TOTAL_MASS)
    )
    x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos / TOTAL_MASS
    return jnp.stack(
        [
            x + TAU * x_dot,
            x_dot + TAU * x_acc,
            theta + TAU * theta_dot,
            theta_dot + TAU * theta_acc,
        ]
    )


def cartpole_step(
    key: jax.Array, state: CartPoleState, action: jax.Array
) -> tuple[CartPoleState, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """Step one CartPole, resetting it (with ``key``) when the episode ends.

    Returns ``(state, obs, reward, terminated, truncated, final_obs)``: ``obs`` (4,) is the
    next episode's first observation after an end, ``final_obs`` (4,) always the observation
    the action led to (what a truncated episode bootstraps from). Reward 1.0 every step, as
    gymnasium's CartPole-v1; ``truncated`` after 500 steps.
    """
    _, fresh = cartpole_reset(key)
    return _cartpole_advance(state, action, fresh)


def _cartpole_advance(
    state: CartPoleState, action: jax.Array, fresh: jax.Array
) -> tuple[CartPoleState, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """``cartpole_step`` with the next episode's first state ``fresh`` (4,) drawn by the
    caller: a training loop draws all of a rollout's in one call, outside its time loop."""
    physics = cartpole_physics(state.physics, action)
    t = state.t + 1
    x, theta = physics[0], physics[2]
    terminated = (jnp.abs(x) > X_LIMIT) | (jnp.abs(theta) > THETA_LIMIT)
    truncated = (t >= MAX_STEPS) & ~terminated
    done = terminated | truncated
    obs = jnp.where(done, fresh, physics)
    new = CartPoleState(obs, jnp.where(done, 0, t))
    return new, obs, jnp.float32(1.0), terminated, truncated, physics
