"""Chapter 7's networks in Flax NNX, and the greedy evaluation (and timed bench run) of
trained ones."""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from helpers.rl import evaluate_policy, process_seconds

__all__ = ["Actor", "ActorCritic", "Critic", "QNetwork"]


def _mlp(widths: Sequence[int], rngs: nnx.Rngs, scale: float) -> nnx.List:
    """Linear layers, orthogonal init (sqrt 2 gain inside, ``scale`` on the last)."""
    pairs = list(itertools.pairwise(widths))
    return nnx.List(
        [
            nnx.Linear(
                a,
                b,
                kernel_init=nnx.initializers.orthogonal(
                    scale if i == len(pairs) - 1 else np.sqrt(2)
                ),
                rngs=rngs,
            )
            for i, (a, b) in enumerate(pairs)
        ]
    )


def _forward(layers: nnx.List, x: jax.Array, act: Callable = jnp.tanh) -> jax.Array:
    for layer in layers[:-1]:
        x = act(layer(x))
    return layers[-1](x)


class ActorCritic(nnx.Module):
    """PPO's two networks: ``(B, obs_dim) -> (logits (B, actions), value (B,))`` (tanh MLPs)."""

    def __init__(
        self, obs_dim: int, actions: int, hidden: Sequence[int], *, rngs: nnx.Rngs
    ) -> None:
        self.actor = _mlp([obs_dim, *hidden, actions], rngs, 0.01)
        self.critic = _mlp([obs_dim, *hidden, 1], rngs, 1.0)

    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        return _forward(self.actor, obs), _forward(self.critic, obs)[..., 0]


class QNetwork(nnx.Module):
    """DQN's network: ``(B, obs_dim) -> Q-values (B, actions)`` (ReLU MLP)."""

    def __init__(
        self, obs_dim: int, actions: int, hidden: Sequence[int], *, rngs: nnx.Rngs
    ) -> None:
        widths = [obs_dim, *hidden, actions]
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(widths)]
        )

    def __call__(self, obs: jax.Array) -> jax.Array:
        return _forward(self.layers, obs, nnx.relu)


class Actor(nnx.Module):
    """DDPG's deterministic policy: ``(B, obs_dim) -> action (B, act_dim)`` in
    ``[-max_action, max_action]`` (tanh output)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int],
        max_action: float,
        *,
        rngs: nnx.Rngs,
    ) -> None:
        widths = [obs_dim, *hidden, act_dim]
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(widths)]
        )
        self.max_action = max_action

    def __call__(self, obs: jax.Array) -> jax.Array:
        return self.max_action * jnp.tanh(_forward(self.layers, obs, nnx.relu))


class Critic(nnx.Module):
    """DDPG's Q-function: ``(obs (B, obs_dim), action (B, act_dim)) -> Q (B,)``."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: Sequence[int], *, rngs: nnx.Rngs
    ) -> None:
        widths = [obs_dim + act_dim, *hidden, 1]
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(widths)]
        )

    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, action], axis=-1)
        return _forward(self.layers, x, nnx.relu)[..., 0]


@functools.cache
def _greedy_action(graphdef: nnx.GraphDef) -> Callable:
    """argmax of a network's (first) output, jitted once per network structure."""

    def act(params, obs):
        out = nnx.merge(graphdef, params)(obs)
        return (out[0] if isinstance(out, tuple) else out).argmax(-1)

    return jax.jit(act)


def _evaluate_seeds(
    graphdef: nnx.GraphDef, params: nnx.State, seeds: int, episodes: int
) -> list[np.ndarray]:
    """Greedy evaluation of ``seeds`` trained networks (``params`` stacked on a leading
    axis, as ``vmap`` returns them), ``episodes`` gymnasium episodes each, all in ONE
    vector environment of ``seeds * episodes`` copies (copy ``i`` plays for seed
    ``i // episodes``): one jitted call per step for every seed at once."""
    act = jax.jit(jax.vmap(_greedy_action(graphdef)))

    def policy(obs: np.ndarray) -> np.ndarray:
        obs = jnp.asarray(obs).reshape(seeds, episodes, -1)  # (S, episodes, 4)
        return np.asarray(act(params, obs)).reshape(-1)

    returns = evaluate_policy(policy, episodes=seeds * episodes)
    return [returns[i * episodes : (i + 1) * episodes] for i in range(seeds)]


def _train_and_evaluate_seeds(
    build: Callable[[], tuple[Callable, nnx.GraphDef, jax.Array]],
    group: int,
    episodes: int,
) -> tuple[list[np.ndarray], dict]:
    """The pure-JAX trainers' bench run, timed part by part: ``build()`` -> ``(train,
    graphdef, keys)``; ``jit(vmap(train))`` compiled once per group size, the seeds of
    ``keys`` (S,) trained ``group`` at a time, each evaluated greedily (``episodes``
    gymnasium episodes). Returns the ``(episodes,)`` returns of each seed and the timings:
    ``compile_seconds``, ``train_seconds`` and the record's ``import_seconds`` (the process's
    start to this call: interpreter, imports, the bench's setup), ``eval_seconds``,
    ``end_to_end_seconds`` (to the end of the evaluation). The two from the process's start
    are ``None`` where it cannot be read (not Linux) or is not this run's (PyTorch was
    imported, as ``--framework both`` does: it trained PyTorch first)."""
    import sys

    alone = "torch" not in sys.modules
    import_seconds = process_seconds() if alone else None
    train, graphdef, keys = build()
    groups = [keys[i : i + group] for i in range(0, len(keys), group)]
    start = time.perf_counter()
    compiled = {
        len(g): jax.jit(jax.vmap(train)).lower(g).compile()
        for g in {len(g): g for g in groups}.values()
    }
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    params = [jax.block_until_ready(compiled[len(g)](g)[0]) for g in groups]
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    returns = []
    for p in params:
        returns += _evaluate_seeds(graphdef, p, len(jax.tree.leaves(p)[0]), episodes)
    eval_seconds = time.perf_counter() - start
    end_to_end = process_seconds() if alone else None
    return returns, {
        "compile_seconds": compile_seconds,
        "train_seconds": train_seconds,
        "import_seconds": None if import_seconds is None else round(import_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        "end_to_end_seconds": None if end_to_end is None else round(end_to_end, 3),
    }
