"""PPO (Schulman et al. 2017) with GAE on gymnasium's vector environments, in PyTorch."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from helpers.rl import (
    RolloutStorage,
    evaluate_policy,
    rl_summary,
)
from helpers.scale import CartpoleSizes, PpoSizes
from helpers.torch.rl.networks import ActorCritic, _greedy

__all__ = ["gae", "ppo_loss", "run_cartpole_ppo", "train_ppo"]


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    *,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016), a backwards loop over time.

    ``rewards``, ``values``, ``dones``: ``(T, E)`` (``dones[t]``: the episode ended at step t,
    so ``t + 1`` starts a new one and is not bootstrapped from); ``last_value``: ``(E,)``, the
    value of the observation after the last step. Returns ``(advantages, returns)``, both
    ``(T, E)``, ``returns = advantages + values`` (the critic's targets).
    Raises ``ValueError`` when the shapes disagree.
    """
    if not (rewards.shape == values.shape == dones.shape) or rewards.ndim != 2:
        raise ValueError(
            "gae: rewards, values and dones must share one (T, E) shape, got "
            f"{tuple(rewards.shape)}, {tuple(values.shape)}, {tuple(dones.shape)}"
        )
    if last_value.shape != rewards.shape[1:]:
        raise ValueError(
            f"gae: last_value must be (E,) = {tuple(rewards.shape[1:])}, "
            f"got {tuple(last_value.shape)}"
        )
    keep = 1.0 - dones.float()
    advantages = torch.zeros_like(values)
    advantage = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + gamma * next_value * keep[t] - values[t]
        advantage = delta + gamma * gae_lambda * keep[t] * advantage
        advantages[t] = advantage
        next_value = values[t]
    return advantages, advantages + values


def ppo_loss(
    model: ActorCritic,
    batch: dict[str, torch.Tensor],
    *,
    clip: float,
    entropy_coef: float,
    value_coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's loss on a minibatch (Schulman et al. 2017): clipped surrogate, value, entropy.

    ``batch``: ``obs`` (B, 4), ``actions`` (B,) int64, ``log_probs`` (B,) of the policy that
    acted, ``advantages`` (B,) (normalised here, per minibatch), ``returns`` (B,).
    """
    logits, values = model(batch["obs"])
    log_all = torch.log_softmax(logits, -1)  # (B, actions)
    log_probs = log_all.gather(1, batch["actions"][:, None])[:, 0]
    ratio = torch.exp(log_probs - batch["log_probs"])
    adv = batch["advantages"]
    # NumPy's std (ddof 0), as the JAX half
    adv = (adv - adv.mean()) / (adv.std(correction=0) + 1e-8)
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    policy_loss = -surrogate.mean()
    value_loss = 0.5 * ((values - batch["returns"]) ** 2).mean()
    entropy = -(log_all.exp() * log_all).sum(-1).mean()
    loss = policy_loss + value_coef * value_loss - entropy_coef * entropy
    return loss, {"policy_loss": policy_loss, "value_loss": value_loss}


def train_ppo(
    sizes: PpoSizes, *, seed: int = 0, progress: bool = True
) -> tuple[ActorCritic, dict]:
    """PPO on ``sizes.envs`` gymnasium CartPole-v1 copies (``SyncVectorEnv``, same-step reset).

    Returns the trained ``ActorCritic`` and ``{"steps", "returns"}`` (per update: env steps so
    far, mean return of the episodes finished in that rollout, NaN if none) plus
    ``train_seconds`` and ``compile_seconds`` (0: eager).
    """
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode
    from tqdm import tqdm

    torch.manual_seed(seed)
    envs, steps = sizes.envs, sizes.steps
    env = gym.make_vec(
        "CartPole-v1",
        num_envs=envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
    )
    model = ActorCritic(4, 2, sizes.hidden)
    # foreach: one fused kernel per step for all weights (PyTorch's CPU default is a loop).
    optimizer = torch.optim.Adam(
        model.parameters(), lr=sizes.learning_rate, eps=1e-5, foreach=True
    )
    updates = sizes.total_steps // (envs * steps)
    total_grad_steps = updates * sizes.epochs * sizes.minibatches
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: 1 - k / total_grad_steps
    )
    storage = RolloutStorage(steps, envs, 4)
    obs, _ = env.reset(seed=seed)
    ep_return = np.zeros(envs)
    history: dict = {"steps": [], "returns": []}
    start = time.perf_counter()
    for update in tqdm(range(updates), desc="PPO", disable=not progress):
        finished = []
        for t in range(steps):
            with torch.inference_mode():
                logits, value = model(torch.as_tensor(obs))  # (E, 2), (E,)
                # validate_args=False: no per-step argument checks (same samples)
                dist = torch.distributions.Categorical(
                    logits=logits, validate_args=False
                )
                action = dist.sample()  # (E,) int64
                log_prob = dist.log_prob(action)  # (E,)
            next_obs, reward, terminated, truncated, info = env.step(action.numpy())
            reward = reward.astype(np.float32)
            # bootstrap a time-limited episode from its last state; a step that is both
            # terminated and truncated (the pole fell at the limit) ended: no bootstrap
            cut = truncated & ~terminated
            if cut.any():
                final = np.stack(list(info["final_obs"][cut])).astype(np.float32)
                with torch.inference_mode():
                    reward[cut] += (
                        sizes.gamma * model(torch.as_tensor(final))[1].numpy()
                    )
            done = terminated | truncated
            ep_return += 1.0
            finished += list(ep_return[done])
            ep_return[done] = 0.0
            storage.add(
                t,
                obs=obs,
                actions=action.numpy(),
                log_probs=log_prob.numpy(),
                values=value.numpy(),
                rewards=reward,
                dones=done,
            )
            obs = next_obs
        with torch.no_grad():
            last_value = model(torch.as_tensor(obs))[1]
        advantages, returns = gae(
            torch.as_tensor(storage.rewards),
            torch.as_tensor(storage.values),
            torch.as_tensor(storage.dones),
            last_value,
            gamma=sizes.gamma,
            gae_lambda=sizes.gae_lambda,
        )
        data = {
            "obs": torch.as_tensor(storage.obs).reshape(-1, 4),
            "actions": torch.as_tensor(storage.actions).reshape(-1),
            "log_probs": torch.as_tensor(storage.log_probs).reshape(-1),
            "advantages": advantages.reshape(-1),
            "returns": returns.reshape(-1),
        }
        batch = envs * steps
        for _ in range(sizes.epochs):
            perm = torch.randperm(batch)
            for idx in perm.reshape(sizes.minibatches, -1):
                mb = {k: v[idx] for k, v in data.items()}
                loss, _ = ppo_loss(
                    model,
                    mb,
                    clip=sizes.clip,
                    entropy_coef=sizes.entropy_coef,
                    value_coef=sizes.value_coef,
                )
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(
                    model.parameters(), sizes.max_grad_norm, foreach=True
                )
                optimizer.step()
                schedule.step()
        history["steps"].append((update + 1) * batch)
        history["returns"].append(np.mean(finished) if finished else np.nan)
    history["train_seconds"] = time.perf_counter() - start
    history["compile_seconds"] = 0.0
    env.close()
    return model, history


def run_cartpole_ppo(
    sizes: CartpoleSizes, *, seed: int = 0, progress: bool = True
) -> dict:
    """``sizes.seeds`` PPO runs (one after another), each evaluated greedily."""
    returns, seconds = [], 0.0
    for i in range(sizes.seeds):
        model, history = train_ppo(sizes.ppo, seed=seed + i, progress=progress)
        seconds += history["train_seconds"]
        returns.append(
            evaluate_policy(_greedy(model, head=0), episodes=sizes.eval_episodes)
        )
    ppo = sizes.ppo
    per_seed = (ppo.total_steps // (ppo.envs * ppo.steps)) * ppo.envs * ppo.steps
    return {
        "model": f"PPO, gymnasium CartPole-v1 SyncVectorEnv, {ppo.envs} envs x "
        f"{ppo.steps} steps, MLP {ppo.hidden}, seeds one after another",
        **rl_summary(returns, env_steps=per_seed * sizes.seeds, train_seconds=seconds),
    }
