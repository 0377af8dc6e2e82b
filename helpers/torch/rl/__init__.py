"""Chapter 7's reinforcement-learning pieces, the PyTorch way: ``H.rl`` (imported on first use).

* ``networks``: ``QNetwork``, ``ActorCritic``, ``Actor``, ``Critic``.
* Trainers on gymnasium's environments: ``ppo`` (``gae``, ``ppo_loss``, ``train_ppo`` on
  vector environments), ``dqn`` (``train_dqn``, optionally Double DQN), ``ddpg``
  (``train_ddpg``, continuous actions); each with the ``run_*`` entry of
  ``python -m helpers.bench``.

The chapter writes the algorithms out; these are the same algorithms, kept here so the bench
and the notebooks train the same thing. gymnasium is imported inside the trainers. The JAX
twin is :mod:`helpers.jax.rl`.
"""

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

from .ddpg import run_pendulum_ddpg, train_ddpg
from .dqn import run_cartpole_dqn, train_dqn
from .networks import Actor, ActorCritic, Critic, QNetwork
from .ppo import gae, ppo_loss, run_cartpole_ppo, train_ppo

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
