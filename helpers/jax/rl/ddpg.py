"""DDPG (Lillicrap et al. 2016) in JAX on a continuous-action gymnasium environment."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from helpers.jax.rl.networks import Actor, Critic
from helpers.rl import (
    ReplayBuffer,
    ReplayCollector,
    evaluate_policy,
    make_env,
    rl_summary,
)
from helpers.scale import DdpgSizes

__all__ = ["run_pendulum_ddpg", "train_ddpg"]


def train_ddpg(
    sizes: DdpgSizes,
    *,
    seed: int = 0,
    env_id: str = "Pendulum-v1",
    progress: bool = True,
) -> tuple[Actor, dict]:
    """DDPG (Lillicrap et al. 2016) on a continuous-action gymnasium environment.

    Deterministic actor, Q critic, both with target copies moved by soft updates (``tau``),
    Gaussian exploration noise, a replay buffer, one jitted update of both per env step after
    ``learning_starts``. Returns the trained ``Actor`` and the history (as ``train_dqn``).
    Raises ``ValueError`` for an environment with discrete actions.
    """
    from tqdm import tqdm

    env = make_env(env_id)
    if not hasattr(env.action_space, "high"):
        raise ValueError(
            f"train_ddpg needs continuous (Box) actions; {env_id} has {env.action_space}"
        )
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    max_action = float(env.action_space.high[0])
    rngs = nnx.Rngs(seed)
    actor_def, actor = nnx.split(
        Actor(obs_dim, act_dim, sizes.hidden, max_action, rngs=rngs)
    )
    critic_def, critic = nnx.split(Critic(obs_dim, act_dim, sizes.hidden, rngs=rngs))
    targets = (actor, critic)
    actor_tx = optax.adam(sizes.actor_learning_rate)
    critic_tx = optax.adam(sizes.critic_learning_rate)
    opt_states = (actor_tx.init(actor), critic_tx.init(critic))
    act = jax.jit(lambda p, obs: nnx.merge(actor_def, p)(obs))

    @jax.jit
    def update(actor, critic, targets, opt_states, b):
        actor_t, critic_t = targets
        next_action = nnx.merge(actor_def, actor_t)(b["next_obs"])  # (B, act_dim)
        next_q = nnx.merge(critic_def, critic_t)(b["next_obs"], next_action)  # (B,)
        y = b["rewards"] + sizes.gamma * (1 - b["terminated"]) * next_q

        def critic_loss(c):
            q = nnx.merge(critic_def, c)(b["obs"], b["actions"])
            return ((q - y) ** 2).mean()

        def actor_loss(a):
            # The gradient reaches the actor THROUGH the critic: Q(s, mu(s)).
            action = nnx.merge(actor_def, a)(b["obs"])
            return -nnx.merge(critic_def, critic)(b["obs"], action).mean()

        grads = jax.grad(critic_loss)(critic)
        changes, c_state = critic_tx.update(grads, opt_states[1], critic)
        critic = optax.apply_updates(critic, changes)
        grads = jax.grad(actor_loss)(actor)
        changes, a_state = actor_tx.update(grads, opt_states[0], actor)
        actor = optax.apply_updates(actor, changes)
        targets = (
            optax.incremental_update(actor, actor_t, sizes.tau),
            optax.incremental_update(critic, critic_t, sizes.tau),
        )
        return actor, critic, targets, (a_state, c_state)

    buffer = ReplayBuffer(sizes.buffer_size, obs_dim, (act_dim,))
    rng = np.random.default_rng(seed)
    collector = ReplayCollector(env, buffer, seed=seed)
    compile_seconds, compiled, start = 0.0, False, time.perf_counter()
    for t in tqdm(range(sizes.total_steps), desc="DDPG", disable=not progress):
        if t < sizes.learning_starts:
            action = rng.uniform(-max_action, max_action, act_dim)
        else:
            action = np.asarray(act(actor, jnp.asarray(collector.obs[None]))[0])
            action = action + rng.normal(0, sizes.noise * max_action, act_dim)
            action = np.clip(action, -max_action, max_action)
        action = action.astype(np.float32)
        collector.step(action)
        if t >= sizes.learning_starts:
            b = buffer.sample(sizes.batch_size, rng)
            t0 = time.perf_counter()
            actor, critic, targets, opt_states = update(
                actor, critic, targets, opt_states, b
            )
            if not compiled:
                jax.block_until_ready(actor)
                compile_seconds, compiled = time.perf_counter() - t0, True
    jax.block_until_ready(actor)
    train_seconds = time.perf_counter() - start - compile_seconds
    env.close()
    history = collector.history(train_seconds, compile_seconds)
    return nnx.merge(actor_def, actor), history


def run_pendulum_ddpg(
    sizes: DdpgSizes, *, seed: int = 0, progress: bool = True
) -> dict:
    """One DDPG run on Pendulum-v1, evaluated with the deterministic actor (no noise)."""
    actor, history = train_ddpg(sizes, seed=seed, progress=progress)
    policy = jax.jit(lambda obs: actor(obs))
    returns = evaluate_policy(
        lambda obs: np.asarray(policy(jnp.asarray(obs))),
        "Pendulum-v1",
        episodes=sizes.eval_episodes,
    )
    return {
        "model": f"DDPG, gymnasium Pendulum-v1, actor and critic MLP {sizes.hidden}",
        **rl_summary(
            [returns],
            env_steps=sizes.total_steps,
            train_seconds=history["train_seconds"],
            compile_seconds=history["compile_seconds"],
            solved_at=None,
        ),
    }
