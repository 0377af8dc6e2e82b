"""DQN (Mnih et al. 2015) and Double DQN (van Hasselt et al. 2016) on gymnasium, in PyTorch."""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn

from helpers.rl import (
    ReplayBuffer,
    ReplayCollector,
    evaluate_policy,
    linear_schedule,
    make_env,
    rl_summary,
)
from helpers.scale import CartpoleSizes, DqnSizes
from helpers.torch.rl.networks import QNetwork, _greedy

__all__ = ["run_cartpole_dqn", "train_dqn"]


def train_dqn(
    sizes: DqnSizes,
    *,
    seed: int = 0,
    double: bool = False,
    env_id: str = "CartPole-v1",
    progress: bool = True,
) -> tuple[QNetwork, dict]:
    """DQN (Mnih et al. 2015) or, with ``double``, Double DQN (van Hasselt et al. 2016).

    One gymnasium environment; epsilon-greedy acting; a replay buffer; ``gradient_steps``
    Huber-loss steps on batches from the buffer every ``train_every`` env steps; the target
    network copied every ``target_every`` env steps. Returns the trained ``QNetwork`` and
    ``{"episode_ends", "episode_returns", "train_seconds", "compile_seconds"}``.
    """
    from tqdm import tqdm

    torch.manual_seed(seed)
    env = make_env(env_id)
    obs_dim, actions = env.observation_space.shape[0], int(env.action_space.n)
    q = QNetwork(obs_dim, actions, sizes.hidden)
    target = copy.deepcopy(q)
    optimizer = torch.optim.Adam(q.parameters(), lr=sizes.learning_rate)
    buffer = ReplayBuffer(sizes.buffer_size, obs_dim)
    rng = np.random.default_rng(seed)
    collector = ReplayCollector(env, buffer, seed=seed)
    start = time.perf_counter()
    for t in tqdm(
        range(sizes.total_steps),
        desc="Double DQN" if double else "DQN",
        disable=not progress,
    ):
        eps = linear_schedule(
            sizes.epsilon_start,
            sizes.epsilon_end,
            int(sizes.epsilon_fraction * sizes.total_steps),
            t,
        )
        if t < sizes.learning_starts or rng.random() < eps:
            action = int(rng.integers(actions))
        else:
            with torch.no_grad():
                action = int(q(torch.as_tensor(collector.obs[None])).argmax(-1)[0])
        collector.step(action)
        if t >= sizes.learning_starts and t % sizes.train_every == 0:
            for _ in range(sizes.gradient_steps):
                b = {
                    k: torch.as_tensor(v)
                    for k, v in buffer.sample(sizes.batch_size, rng).items()
                }
                with torch.no_grad():
                    q_next = target(b["next_obs"])  # (B, actions)
                    if double:  # the online network picks, the target network scores
                        pick = q(b["next_obs"]).argmax(-1, keepdim=True)
                        next_value = q_next.gather(1, pick)[:, 0]
                    else:
                        next_value = q_next.max(-1).values
                    y = b["rewards"] + sizes.gamma * (1 - b["terminated"]) * next_value
                q_taken = q(b["obs"]).gather(1, b["actions"][:, None])[:, 0]  # (B,)
                loss = nn.functional.smooth_l1_loss(q_taken, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        if t % sizes.target_every == 0:
            target.load_state_dict(q.state_dict())
    history = collector.history(time.perf_counter() - start)
    env.close()
    return q, history


def run_cartpole_dqn(
    sizes: CartpoleSizes,
    *,
    seed: int = 0,
    progress: bool = True,
    double: bool = False,
    n_step: int | None = None,
) -> dict:
    """``sizes.seeds`` DQN runs (one after another), each evaluated greedily. This
    gymnasium DQN uses one-step targets: ``n_step`` (the JAX twin's ablation) may only be
    ``None`` or 1, else ``ValueError``."""
    if n_step not in (None, 1):
        raise ValueError(
            f"run_cartpole_dqn: the gymnasium DQN takes one-step targets, got n_step={n_step}"
        )
    returns, seconds = [], 0.0
    for i in range(sizes.seeds):
        model, history = train_dqn(
            sizes.dqn, seed=seed + i, double=double, progress=progress
        )
        seconds += history["train_seconds"]
        returns.append(evaluate_policy(_greedy(model), episodes=sizes.eval_episodes))
    name = "Double DQN" if double else "DQN"
    return {
        "model": f"{name}, gymnasium CartPole-v1, MLP {sizes.dqn.hidden}",
        **rl_summary(
            returns,
            env_steps=sizes.dqn.total_steps * sizes.seeds,
            train_seconds=seconds,
        ),
    }
