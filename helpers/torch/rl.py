"""Chapter 7's reinforcement-learning pieces, the PyTorch way: ``H.rl`` (imported on first use).

* Networks (``QNetwork``, ``ActorCritic``, ``Actor``, ``Critic``), ``gae`` and ``ppo_loss``.
* Trainers on gymnasium's environments: ``train_ppo`` (vector environments), ``train_dqn``
  (optionally Double DQN), ``train_ddpg`` (continuous actions), and the ``run_*`` entries of
  ``python -m helpers.bench``.

The chapter writes the algorithms out; these are the same algorithms, kept here so the bench
and the notebooks train the same thing. gymnasium is imported inside the trainers.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

# The framework-free core, also reachable as H.rl.<name> (a notebook imports one module).
from helpers.rl import (  # noqa: F401
    SOLVED_RETURN,
    ReplayBuffer,
    RolloutStorage,
    evaluate_policy,
    linear_schedule,
    make_env,
    plot_learning_curves,
    plot_trajectory,
    process_seconds,
    random_baseline,
    returns_on_grid,
    rl_summary,
)
from helpers.scale import CartpoleSizes, DdpgSizes, DqnSizes, PpoSizes

__all__ = [
    "Actor",
    "ActorCritic",
    "Critic",
    "QNetwork",
    "gae",
    "ppo_loss",
    "run_cartpole_dqn",
    "run_cartpole_ppo",
    "run_pendulum_ddpg",
    "train_ddpg",
    "train_dqn",
    "train_ppo",
]


def _mlp(
    widths: Sequence[int], act: type[nn.Module], last_gain: float | None
) -> nn.Sequential:
    """Linear layers with ``act`` between them; orthogonal init when ``last_gain`` is given."""
    layers: list[nn.Module] = []
    pairs = list(itertools.pairwise(widths))
    for i, (a, b) in enumerate(pairs):
        linear = nn.Linear(a, b)
        if last_gain is not None:
            gain = last_gain if i == len(pairs) - 1 else np.sqrt(2)
            nn.init.orthogonal_(linear.weight, gain)
            nn.init.zeros_(linear.bias)
        layers.append(linear)
        if i < len(pairs) - 1:
            layers.append(act())
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """PPO's two networks: ``(B, obs_dim) -> (logits (B, actions), value (B,))`` (tanh MLPs)."""

    def __init__(self, obs_dim: int, actions: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.actor = _mlp([obs_dim, *hidden, actions], nn.Tanh, 0.01)
        self.critic = _mlp([obs_dim, *hidden, 1], nn.Tanh, 1.0)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(obs), self.critic(obs)[..., 0]


class QNetwork(nn.Module):
    """DQN's network: ``(B, obs_dim) -> Q-values (B, actions)`` (ReLU MLP)."""

    def __init__(self, obs_dim: int, actions: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.layers = _mlp([obs_dim, *hidden, actions], nn.ReLU, None)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.layers(obs)


class Actor(nn.Module):
    """DDPG's deterministic policy: ``(B, obs_dim) -> action (B, act_dim)`` in
    ``[-max_action, max_action]`` (tanh output)."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: Sequence[int], max_action: float
    ) -> None:
        super().__init__()
        self.layers = _mlp([obs_dim, *hidden, act_dim], nn.ReLU, None)
        self.max_action = max_action

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.max_action * torch.tanh(self.layers(obs))


class Critic(nn.Module):
    """DDPG's Q-function: ``(obs (B, obs_dim), action (B, act_dim)) -> Q (B,)``."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.layers = _mlp([obs_dim + act_dim, *hidden, 1], nn.ReLU, None)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.cat([obs, action], -1))[..., 0]


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
    from tqdm.auto import tqdm

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
            if truncated.any():  # bootstrap a time-limited episode from its last state
                final = np.stack(list(info["final_obs"][truncated])).astype(np.float32)
                with torch.inference_mode():
                    reward[truncated] += (
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


def _greedy(net: nn.Module, head: int | None = None):
    """A fixed policy for :func:`helpers.rl.evaluate_policy` (argmax, or the actor's action)."""

    def policy(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = net(torch.as_tensor(obs, dtype=torch.float32))
        if head is not None:
            return out[head].argmax(-1).numpy()
        return out.numpy() if isinstance(net, Actor) else out.argmax(-1).numpy()

    return policy


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
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    env = make_env(env_id)
    obs_dim, actions = env.observation_space.shape[0], int(env.action_space.n)
    q = QNetwork(obs_dim, actions, sizes.hidden)
    target = copy.deepcopy(q)
    optimizer = torch.optim.Adam(q.parameters(), lr=sizes.learning_rate)
    buffer = ReplayBuffer(sizes.buffer_size, obs_dim)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    ends, rets, ep_return = [], [], 0.0
    start = time.perf_counter()
    for t in tqdm(range(sizes.total_steps), desc="DQN", disable=not progress):
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
                action = int(q(torch.as_tensor(obs[None])).argmax(-1)[0])
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, reward, next_obs, terminated)
        ep_return += reward
        obs = next_obs
        if terminated or truncated:
            ends.append(t + 1)
            rets.append(ep_return)
            ep_return = 0.0
            obs, _ = env.reset()
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
    history = {
        "episode_ends": ends,
        "episode_returns": rets,
        "train_seconds": time.perf_counter() - start,
        "compile_seconds": 0.0,
    }
    env.close()
    return q, history


def run_cartpole_dqn(
    sizes: CartpoleSizes, *, seed: int = 0, progress: bool = True, double: bool = False
) -> dict:
    """``sizes.seeds`` DQN runs (one after another), each evaluated greedily."""
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
    from tqdm.auto import tqdm

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
    obs, _ = env.reset(seed=seed)
    ends, rets, ep_return = [], [], 0.0
    start = time.perf_counter()
    for t in tqdm(range(sizes.total_steps), desc="DDPG", disable=not progress):
        if t < sizes.learning_starts:
            action = rng.uniform(-max_action, max_action, act_dim)
        else:
            with torch.no_grad():
                action = actor(torch.as_tensor(obs[None]))[0].numpy()
            action = action + rng.normal(0, sizes.noise * max_action, act_dim)
            action = np.clip(action, -max_action, max_action)
        action = action.astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, reward, next_obs, terminated)
        ep_return += reward
        obs = next_obs
        if terminated or truncated:
            ends.append(t + 1)
            rets.append(ep_return)
            ep_return = 0.0
            obs, _ = env.reset()
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
    history = {
        "episode_ends": ends,
        "episode_returns": rets,
        "train_seconds": time.perf_counter() - start,
        "compile_seconds": 0.0,
    }
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
