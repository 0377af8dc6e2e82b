"""Chapter 7's reinforcement-learning pieces, the JAX way: ``H.rl`` (imported on first use).

* ``cartpole``: a pure-JAX CartPole (``cartpole_reset``, ``cartpole_step``), gymnasium's
  CartPole-v1 dynamics as functions of explicit state, so ``vmap`` runs many environments and
  ``lax.scan`` runs time; ``tests/test_rl.py`` checks it step for step against gymnasium.
  JAX-only.
* ``networks``: ``QNetwork``, ``ActorCritic``, ``Actor``, ``Critic`` (Flax NNX).
* ``ppo``: ``gae``, ``ppo_loss``, ``make_ppo_train`` (the whole PPO run as one jittable
  function of a key, seeds vmapped); ``dqn``: ``train_dqn`` (gymnasium, jitted update
  steps) and ``make_dqn_train`` (pure JAX, with ``n_step_batch``'s n-step targets);
  ``ddpg``: ``train_ddpg``. Each has the ``run_*`` entry of ``python -m helpers.bench``.

The chapter writes the algorithms out; these are the same algorithms, kept here so the bench
and the notebooks train the same thing. The PyTorch twin is :mod:`helpers.torch.rl`.
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

from .cartpole import CartPoleState, cartpole_reset, cartpole_step
from .ddpg import run_pendulum_ddpg, train_ddpg
from .dqn import make_dqn_train, n_step_batch, run_cartpole_dqn, train_dqn
from .networks import Actor, ActorCritic, Critic, QNetwork
from .ppo import gae, make_ppo_train, ppo_loss, run_cartpole_ppo, train_ppo

__all__ = [
    "Actor",
    "ActorCritic",
    "CartPoleState",
    "Critic",
    "QNetwork",
    "cartpole_reset",
    "cartpole_step",
    "gae",
    "make_dqn_train",
    "make_ppo_train",
    "n_step_batch",
    "ppo_loss",
    "run_cartpole_dqn",
    "run_cartpole_ppo",
    "run_pendulum_ddpg",
    "train_ddpg",
    "train_dqn",
    "train_ppo",
]
# The pure-JAX environment has no PyTorch twin: PyTorch steps gymnasium's own.
__framework_only__ = (
    "CartPoleState",
    "cartpole_reset",
    "cartpole_step",
    "make_dqn_train",
    "make_ppo_train",
    "n_step_batch",
)
