"""Chapter 7's networks in PyTorch, and the greedy policy of a trained one."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["Actor", "ActorCritic", "Critic", "QNetwork"]


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


def _greedy(net: nn.Module, head: int | None = None):
    """A fixed policy for :func:`helpers.rl.evaluate_policy` (argmax, or the actor's action)."""

    def policy(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = net(torch.as_tensor(obs, dtype=torch.float32))
        if head is not None:
            return out[head].argmax(-1).numpy()
        return out.numpy() if isinstance(net, Actor) else out.argmax(-1).numpy()

    return policy
