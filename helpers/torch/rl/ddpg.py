"""DDPG (Lillicrap et al. 2016) on a continuous-action gymnasium environment, in PyTorch."""

from __future__ import annotations

import copy
import time

import numpy as np
import torch

from helpers.rl import (
    ReplayBuffer,
    ReplayCollector,
    evaluate_policy,
    make_env,
    rl_summary,
)
from helpers.scale import DdpgSizes
from helpers.torch.rl.networks import Actor, Critic, _greedy

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
    Gaussian exploration noise, a replay buffer, one update of both per env step after
    ``learning_starts``. Returns the trained ``Actor`` and the history (as ``train_dqn``).
    Raises ``ValueError`` for an environment with discrete actions.
    """
    from tqdm import tqdm

    env = make_env(env_id)
    if not hasattr(env.action_space, "high"):
        raise ValueError(
            f"train_ddpg needs continuous (Box) actions; {env_id} has {env.action_space}"
        )
    torch.manual_seed(seed)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    max_action = float(env.action_space.high[0])
    actor = Actor(obs_dim, act_dim, sizes.hidden, max_action)
    critic = Critic(obs_dim, act_dim, sizes.hidden)
    actor_t, critic_t = copy.deepcopy(actor), copy.deepcopy(critic)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=sizes.actor_learning_rate)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=sizes.critic_learning_rate)
    buffer = ReplayBuffer(sizes.buffer_size, obs_dim, (act_dim,))
    rng = np.random.default_rng(seed)
    collector = ReplayCollector(env, buffer, seed=seed)
    start = time.perf_counter()
    for t in tqdm(range(sizes.total_steps), desc="DDPG", disable=not progress):
        if t < sizes.learning_starts:
            action = rng.uniform(-max_action, max_action, act_dim)
        else:
            with torch.no_grad():
                action = actor(torch.as_tensor(collector.obs[None]))[0].numpy()
            action = action + rng.normal(0, sizes.noise * max_action, act_dim)
            action = np.clip(action, -max_action, max_action)
        action = action.astype(np.float32)
        collector.step(action)
        if t >= sizes.learning_starts:
            b = {
                k: torch.as_tensor(v)
                for k, v in buffer.sample(sizes.batch_size, rng).items()
            }
            with torch.no_grad():
                next_q = critic_t(b["next_obs"], actor_t(b["next_obs"]))  # (B,)
                y = b["rewards"] + sizes.gamma * (1 - b["terminated"]) * next_q
            critic_loss = ((critic(b["obs"], b["actions"]) - y) ** 2).mean()
            critic_opt.zero_grad()
            critic_loss.backward()
            critic_opt.step()
            # The gradient reaches the actor THROUGH the critic: Q(s, mu(s)).
            actor_loss = -critic(b["obs"], actor(b["obs"])).mean()
            actor_opt.zero_grad()
            actor_loss.backward()
            actor_opt.step()
            with torch.no_grad():
                for net, tgt in ((actor, actor_t), (critic, critic_t)):
                    for p, p_t in zip(net.parameters(), tgt.parameters(), strict=True):
                        p_t.lerp_(p, sizes.tau)
    history = collector.history(time.perf_counter() - start)
    env.close()
    return actor, history


def run_pendulum_ddpg(
    sizes: DdpgSizes, *, seed: int = 0, progress: bool = True
) -> dict:
    """One DDPG run on Pendulum-v1, evaluated with the deterministic actor (no noise)."""
    actor, history = train_ddpg(sizes, seed=seed, progress=progress)
    returns = evaluate_policy(
        _greedy(actor), "Pendulum-v1", episodes=sizes.eval_episodes
    )
    return {
        "model": f"DDPG, gymnasium Pendulum-v1, actor and critic MLP {sizes.hidden}",
        **rl_summary(
            [returns],
            env_steps=sizes.total_steps,
            train_seconds=history["train_seconds"],
            solved_at=None,
        ),
    }
