"""Chapter 7's framework-free reinforcement-learning pieces (NumPy + gymnasium).

Replay buffer, rollout storage, the evaluation protocol (a fixed greedy policy over N episodes
of gymnasium's environment) and the random-policy baseline; the plots of learning curves and
trajectories live in ``helpers.rl_plots`` and are re-exported here. gymnasium is imported
inside the functions that step it, so importing this module (or ``helpers.torch`` /
``helpers.jax``) never imports gymnasium.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from helpers.rl_plots import plot_learning_curves, plot_trajectory

__all__ = [
    "SOLVED_RETURN",
    "ReplayBuffer",
    "ReplayCollector",
    "RolloutStorage",
    "evaluate_policy",
    "linear_schedule",
    "make_env",
    "plot_learning_curves",
    "plot_trajectory",
    "process_seconds",
    "random_baseline",
    "returns_on_grid",
    "rl_summary",
]

# CartPole-v1 counts as solved when the greedy policy's mean return over 100 episodes
# reaches this (the course's definition; the episode cap is 500).
SOLVED_RETURN = 475.0


def make_env(env_id: str = "CartPole-v1", *, num_envs: int | None = None) -> Any:
    """``gymnasium.make(env_id)``, or with ``num_envs`` a vector environment of that many.

    The vector form uses gymnasium's own vectorised implementation where the environment has
    one (CartPole-v1: one NumPy array for all copies), else ``SyncVectorEnv``. Seed through
    ``reset(seed=...)``. Raises ``ValueError`` for ``num_envs < 1``.
    """
    import gymnasium as gym

    if num_envs is None:
        return gym.make(env_id)
    if num_envs < 1:
        raise ValueError(f"make_env: num_envs must be >= 1, got {num_envs}")
    spec = gym.spec(env_id)
    mode = "vector_entry_point" if spec.vector_entry_point else "sync"
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode)


class ReplayBuffer:
    """A fixed-size ring buffer of transitions for DQN and DDPG (NumPy, float32).

    ``add(obs, action, reward, next_obs, terminated)`` stores one transition or a batch of
    them (leading axis). ``sample(batch_size, rng)`` returns a dict of arrays with a leading
    ``batch_size`` axis: ``obs`` (B, obs_dim), ``actions`` (B,) int64 or (B, act_dim) float32,
    ``rewards`` (B,), ``next_obs`` (B, obs_dim), ``terminated`` (B,) float32. Only
    ``terminated`` is stored: a truncated transition is bootstrapped like any other.
    """

    def __init__(
        self, capacity: int, obs_dim: int, action_shape: tuple[int, ...] = ()
    ) -> None:
        if capacity < 1 or obs_dim < 1:
            raise ValueError(
                f"ReplayBuffer: capacity and obs_dim must be >= 1, got {capacity}, {obs_dim}"
            )
        self.capacity = capacity
        action_dtype = np.float32 if action_shape else np.int64
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.actions = np.zeros((capacity, *action_shape), action_dtype)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.size = 0
        self.position = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: np.ndarray,
        action: Any,
        reward: Any,
        next_obs: np.ndarray,
        terminated: Any,
    ) -> None:
        """Store one transition, or a batch (arrays with a leading axis)."""
        obs = np.asarray(obs, np.float32)
        if obs.shape[-1] != self.obs.shape[1]:
            raise ValueError(
                f"ReplayBuffer.add: obs must end in {self.obs.shape[1]}, got {obs.shape}"
            )
        obs = obs.reshape(-1, self.obs.shape[1])
        n = len(obs)
        idx = (self.position + np.arange(n)) % self.capacity
        self.obs[idx] = obs
        self.next_obs[idx] = np.asarray(next_obs, np.float32).reshape(n, -1)
        self.actions[idx] = np.asarray(action).reshape(n, *self.actions.shape[1:])
        self.rewards[idx] = np.asarray(reward, np.float32).reshape(n)
        self.terminated[idx] = np.asarray(terminated, np.float32).reshape(n)
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(
        self, batch_size: int, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """``batch_size`` transitions drawn uniformly with replacement."""
        if self.size == 0:
            raise ValueError("ReplayBuffer.sample: the buffer is empty; add first")
        idx = rng.integers(0, self.size, batch_size)
        return {
            "obs": self.obs[idx],
            "actions": self.actions[idx],
            "rewards": self.rewards[idx],
            "next_obs": self.next_obs[idx],
            "terminated": self.terminated[idx],
        }


class ReplayCollector:
    """One gymnasium environment feeding a ``ReplayBuffer``, with its episode log.

    The acting half of the gymnasium-loop DQN and DDPG trainers (both frameworks): the
    trainer picks ``action`` from ``collector.obs`` (the current observation, ``(obs_dim,)``
    float32); ``step(action)`` steps the environment, stores
    ``(obs, action, reward, next_obs, terminated)`` (``truncated`` is not stored: a transition
    cut by the time limit is bootstrapped like any other), and at an episode's end (terminated
    or truncated) resets it and logs the env step count and the episode's return.
    ``history(train_seconds, compile_seconds)`` is the trainers' history dict.
    """

    def __init__(self, env: Any, buffer: ReplayBuffer, *, seed: int) -> None:
        self.env, self.buffer = env, buffer
        self.obs, _ = env.reset(seed=seed)
        self.steps = 0
        self.episode_ends: list[int] = []  # env steps at the end of each episode
        self.episode_returns: list[float] = []  # undiscounted return of each episode
        self._return = 0.0

    def step(self, action: Any) -> None:
        """Step the environment once with ``action`` and store the transition."""
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        self.buffer.add(self.obs, action, reward, next_obs, terminated)
        self.steps += 1
        self._return += float(reward)
        self.obs = next_obs
        if terminated or truncated:
            self.episode_ends.append(self.steps)
            self.episode_returns.append(self._return)
            self._return = 0.0
            self.obs, _ = self.env.reset()

    def history(self, train_seconds: float, compile_seconds: float = 0.0) -> dict:
        """``{"episode_ends", "episode_returns", "train_seconds", "compile_seconds"}``."""
        return {
            "episode_ends": self.episode_ends,
            "episode_returns": self.episode_returns,
            "train_seconds": train_seconds,
            "compile_seconds": compile_seconds,
        }


class RolloutStorage:
    """PPO's rollout: ``steps`` x ``envs`` arrays filled one time step at a time (NumPy).

    ``add(t, obs=..., actions=..., ...)`` writes row ``t`` of each named array; the fields are
    ``obs`` (T, E, obs_dim), ``actions`` (T, E) int64, ``log_probs``, ``values``, ``rewards``
    (T, E) float32 and ``dones`` (T, E) float32 (the episode ended at that step).
    """

    FIELDS = ("actions", "log_probs", "values", "rewards", "dones")

    def __init__(self, steps: int, envs: int, obs_dim: int) -> None:
        self.obs = np.zeros((steps, envs, obs_dim), np.float32)
        self.actions = np.zeros((steps, envs), np.int64)
        self.log_probs = np.zeros((steps, envs), np.float32)
        self.values = np.zeros((steps, envs), np.float32)
        self.rewards = np.zeros((steps, envs), np.float32)
        self.dones = np.zeros((steps, envs), np.float32)

    def add(self, t: int, **fields: np.ndarray) -> None:
        """Write time step ``t`` of the named fields; ``KeyError`` for an unknown name."""
        for name, value in fields.items():
            if name not in ("obs", *self.FIELDS):
                raise KeyError(
                    f"RolloutStorage.add: unknown field {name!r}; "
                    f"expected obs or one of {self.FIELDS}"
                )
            getattr(self, name)[t] = value


def linear_schedule(start: float, end: float, duration: int, t: int) -> float:
    """``start`` moving linearly to ``end`` over ``duration`` steps, then ``end``."""
    return end + (start - end) * max(0.0, 1.0 - t / max(duration, 1))


def evaluate_policy(
    policy: Callable[[np.ndarray], np.ndarray],
    env_id: str = "CartPole-v1",
    *,
    episodes: int = 100,
    seed: int = 10_000,
) -> np.ndarray:
    """Returns of ``episodes`` episodes of gymnasium's ``env_id`` under a FIXED ``policy``.

    ``policy`` maps observations ``(N, obs_dim)`` float32 to actions ``(N,)`` (discrete) or
    ``(N, act_dim)`` (continuous), with no exploration and no learning. All episodes run at
    once as a vector environment seeded with ``seed`` (away from training seeds); each copy
    counts its first episode only. Returns ``(episodes,)`` float64.
    """
    if episodes < 1:
        raise ValueError(f"evaluate_policy: episodes must be >= 1, got {episodes}")
    env = make_env(env_id, num_envs=episodes)
    obs, _ = env.reset(seed=seed)
    returns = np.zeros(episodes)
    running = np.ones(episodes, bool)
    while running.any():
        action = np.asarray(policy(obs))
        if np.issubdtype(env.single_action_space.dtype, np.integer):
            action = action.astype(np.int64)
        obs, reward, terminated, truncated, _ = env.step(action)
        returns += np.where(running, reward, 0.0)
        running &= ~(terminated | truncated)
    env.close()
    return returns


def process_seconds() -> float | None:
    """Seconds since this process started (Linux: ``/proc/self/stat``, 10 ms resolution),
    interpreter start-up and imports included; ``None`` where ``/proc`` is not there."""
    import os

    try:
        with open("/proc/self/stat") as f:
            # field 22 (after the parenthesised name, which may hold spaces): start time
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def random_baseline(
    env_id: str = "CartPole-v1", *, episodes: int = 100, seed: int = 10_000
) -> np.ndarray:
    """Returns ``(episodes,)`` of the uniformly random policy: the bar a learner must clear."""
    env = make_env(env_id)
    rng = np.random.default_rng(seed)
    space = env.action_space

    def policy(obs: np.ndarray) -> np.ndarray:
        n = len(obs)
        if hasattr(space, "n"):
            return rng.integers(0, space.n, n)
        return rng.uniform(space.low, space.high, (n, *space.shape)).astype(np.float32)

    env.close()
    return evaluate_policy(policy, env_id, episodes=episodes, seed=seed)


def returns_on_grid(
    episode_ends: Sequence[int],
    episode_returns: Sequence[float],
    grid: np.ndarray,
    *,
    window: int = 10,
) -> np.ndarray:
    """Mean return of the last ``window`` episodes finished by each step of ``grid`` (NaN
    before the first): puts runs whose episodes end at different steps on one axis."""
    ends = np.asarray(episode_ends)
    rets = np.asarray(episode_returns, np.float64)
    out = np.full(len(grid), np.nan)
    for i, step in enumerate(grid):
        done = rets[ends <= step]
        if len(done):
            out[i] = done[-window:].mean()
    return out


def rl_summary(
    returns: Sequence[np.ndarray],
    *,
    env_steps: int,
    train_seconds: float,
    compile_seconds: float = 0.0,
    solved_at: float | None = SOLVED_RETURN,
) -> dict:
    """The record ``helpers.bench`` prints for RL runs: one evaluation per seed in ``returns``.

    ``env_steps`` and ``train_seconds`` cover all seeds together; ``compile_seconds`` is
    reported apart from training. ``solved_at=None`` (Pendulum) leaves out ``seeds_solved``.
    """
    means = [float(np.mean(r)) for r in returns]
    stds = [float(np.std(r)) for r in returns]
    out = {
        "eval_episodes": len(returns[0]),
        "eval_return_mean": round(float(np.mean(means)), 2),
        "eval_return_std": round(float(np.mean(stds)), 2),
        "eval_return_mean_per_seed": [round(m, 2) for m in means],
        "seeds": len(returns),
        "env_steps": int(env_steps),
        "train_seconds": round(train_seconds, 3),
        "compile_seconds": round(compile_seconds, 3),
        "env_steps_per_second": round(env_steps / max(train_seconds, 1e-9), 1),
    }
    # helpers.bench's name for training throughput (its --framework both ratio reads it)
    out["train_examples_per_second"] = out["env_steps_per_second"]
    if solved_at is not None:
        out["seeds_solved"] = int(sum(m >= solved_at for m in means))
        out["solved_at"] = solved_at
    return out
