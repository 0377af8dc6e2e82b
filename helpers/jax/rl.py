"""Chapter 7's reinforcement-learning pieces, the JAX way: ``H.rl`` (imported on first use).

* A pure-JAX CartPole (``cartpole_reset``, ``cartpole_step``): gymnasium's CartPole-v1
  dynamics as functions of explicit state, so ``vmap`` runs many environments and ``lax.scan``
  runs time; ``tests/test_rl.py`` checks it step for step against gymnasium. JAX-only.
* Networks (``QNetwork``, ``ActorCritic``, ``Actor``, ``Critic``: Flax NNX), ``gae``.
* Trainers: ``make_ppo_train`` (the whole PPO run as one jittable function of a key, seeds
  vmapped), ``train_dqn`` and ``train_ddpg`` (gymnasium environments, jitted update steps),
  and the ``run_*`` entries of ``python -m helpers.bench``.

The chapter writes the algorithms out; these are the same algorithms, kept here so the bench
and the notebooks train the same thing.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.flatten_util import ravel_pytree

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
    "CartPoleState",
    "Critic",
    "QNetwork",
    "cartpole_reset",
    "cartpole_step",
    "gae",
    "make_dqn_train",
    "make_ppo_train",
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
)

# gymnasium's CartPole-v1 constants (classic_control/cartpole.py).
GRAVITY, CART_MASS, POLE_MASS, HALF_LENGTH, FORCE, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
TOTAL_MASS = CART_MASS + POLE_MASS
POLE_MASS_LENGTH = POLE_MASS * HALF_LENGTH
THETA_LIMIT = 12 * 2 * np.pi / 360  # radians
X_LIMIT = 2.4  # metres
MAX_STEPS = 500  # CartPole-v1's time limit
# The PRNG of the jitted training loops: XLA's own generator ("rbg") compiles much faster
# than the default threefry on a CPU (every env step draws keys).
PRNG_IMPL = "rbg"


class CartPoleState(NamedTuple):
    """One CartPole: ``physics`` (4,) float32 = (x, x_dot, theta, theta_dot), ``t`` int32."""

    physics: jax.Array
    t: jax.Array


def cartpole_reset(key: jax.Array) -> tuple[CartPoleState, jax.Array]:
    """A fresh CartPole: every state variable uniform in [-0.05, 0.05]; ``(state, obs (4,))``."""
    physics = jax.random.uniform(key, (4,), jnp.float32, -0.05, 0.05)
    return CartPoleState(physics, jnp.zeros((), jnp.int32)), physics


def cartpole_physics(physics: jax.Array, action: jax.Array) -> jax.Array:
    """One Euler step of gymnasium's CartPole: ``(4,)`` float32 state, int action 0 or 1."""
    x, x_dot, theta, theta_dot = physics
    force = jnp.where(action == 1, FORCE, -FORCE)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    temp = (force + POLE_MASS_LENGTH * theta_dot**2 * sin) / TOTAL_MASS
    theta_acc = (GRAVITY * sin - cos * temp) / (
        HALF_LENGTH * (4.0 / 3.0 - POLE_MASS * cos**2 / TOTAL_MASS)
    )
    x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos / TOTAL_MASS
    return jnp.stack(
        [
            x + TAU * x_dot,
            x_dot + TAU * x_acc,
            theta + TAU * theta_dot,
            theta_dot + TAU * theta_acc,
        ]
    )


def cartpole_step(
    key: jax.Array, state: CartPoleState, action: jax.Array
) -> tuple[CartPoleState, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """Step one CartPole, resetting it (with ``key``) when the episode ends.

    Returns ``(state, obs, reward, terminated, truncated, final_obs)``: ``obs`` (4,) is the
    next episode's first observation after an end, ``final_obs`` (4,) always the observation
    the action led to (what a truncated episode bootstraps from). Reward 1.0 every step, as
    gymnasium's CartPole-v1; ``truncated`` after 500 steps.
    """
    _, fresh = cartpole_reset(key)
    return _cartpole_advance(state, action, fresh)


def _cartpole_advance(
    state: CartPoleState, action: jax.Array, fresh: jax.Array
) -> tuple[CartPoleState, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """``cartpole_step`` with the next episode's first state ``fresh`` (4,) drawn by the
    caller: a training loop draws all of a rollout's in one call, outside its time loop."""
    physics = cartpole_physics(state.physics, action)
    t = state.t + 1
    x, theta = physics[0], physics[2]
    terminated = (jnp.abs(x) > X_LIMIT) | (jnp.abs(theta) > THETA_LIMIT)
    truncated = (t >= MAX_STEPS) & ~terminated
    done = terminated | truncated
    obs = jnp.where(done, fresh, physics)
    new = CartPoleState(obs, jnp.where(done, 0, t))
    return new, obs, jnp.float32(1.0), terminated, truncated, physics


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


def gae(
    rewards: jax.Array,
    values: jax.Array,
    dones: jax.Array,
    last_value: jax.Array,
    *,
    gamma: float,
    gae_lambda: float,
) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation (Schulman et al. 2016), backwards with ``lax.scan``.

    ``rewards``, ``values``, ``dones``: ``(T, E)`` (``dones[t]``: the episode ended at step t,
    so ``t + 1`` starts a new one and is not bootstrapped from); ``last_value``: ``(E,)``, the
    value of the observation after the last step. Returns ``(advantages, returns)``, both
    ``(T, E)`` float32, ``returns = advantages + values`` (the critic's targets).
    Raises ``ValueError`` when the shapes disagree.
    """
    if not (rewards.shape == values.shape == dones.shape) or rewards.ndim != 2:
        raise ValueError(
            "gae: rewards, values and dones must share one (T, E) shape, got "
            f"{rewards.shape}, {values.shape}, {dones.shape}"
        )
    if last_value.shape != rewards.shape[1:]:
        raise ValueError(
            f"gae: last_value must be (E,) = {rewards.shape[1:]}, got {last_value.shape}"
        )
    not_done = 1.0 - dones.astype(jnp.float32)
    next_values = jnp.concatenate([values[1:], last_value[None]], axis=0)

    def back(advantage, xs):
        reward, value, next_value, keep = xs
        delta = reward + gamma * next_value * keep - value
        advantage = delta + gamma * gae_lambda * keep * advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(
        back,
        jnp.zeros_like(last_value, jnp.float32),
        (rewards, values, next_values, not_done),
        reverse=True,
    )
    return advantages, advantages + values


def ppo_loss(
    model: ActorCritic,
    batch: dict[str, jax.Array],
    *,
    clip: float,
    entropy_coef: float,
    value_coef: float,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """PPO's loss on a minibatch (Schulman et al. 2017): clipped surrogate, value, entropy.

    ``batch``: ``obs`` (B, 4), ``actions`` (B,) int, ``log_probs`` (B,) of the policy that
    acted, ``advantages`` (B,) (normalised here, per minibatch), ``returns`` (B,).
    """
    logits, values = model(batch["obs"])
    log_all = jax.nn.log_softmax(logits)  # (B, actions)
    log_probs = jnp.take_along_axis(log_all, batch["actions"][:, None], 1)[:, 0]
    ratio = jnp.exp(log_probs - batch["log_probs"])
    adv = batch["advantages"]
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip, 1 + clip) * adv)
    policy_loss = -surrogate.mean()
    value_loss = 0.5 * ((values - batch["returns"]) ** 2).mean()
    entropy = -(jnp.exp(log_all) * log_all).sum(-1).mean()
    loss = policy_loss + value_coef * value_loss - entropy_coef * entropy
    return loss, {"policy_loss": policy_loss, "value_loss": value_loss}


def make_ppo_train(
    sizes: PpoSizes,
) -> tuple[Callable[[jax.Array], tuple[nnx.State, dict]], nnx.GraphDef]:
    """PPO on the pure-JAX CartPole as ONE function of a PRNG key, ready for ``jit``/``vmap``.

    Returns ``(train, graphdef)``: ``train(key)`` -> ``(params, metrics)``, where
    ``nnx.merge(graphdef, params)`` is the trained ``ActorCritic`` and ``metrics["returns"]``
    ``(updates,)`` is the mean return of the episodes finished in each rollout (NaN where none
    finished). Everything, rollouts included, is traced once: ``jax.jit(jax.vmap(train))``
    trains many seeds in one call.

    Kept small for the compiler (on a CPU, compilation is most of a short run, and every
    random draw of a new shape costs about half a second of it): ``train`` draws ALL its
    random numbers in one call, uniforms sliced into the initial weights (Gaussians by
    Box-Muller, orthogonalised by one batched QR: the distribution of the orthogonal init of
    ``ActorCritic``), the first states, and per update the actions' Gumbel noise, the reset
    states and the epochs' shuffles. Adam works on the parameters raveled into ONE vector
    (the same arithmetic, one fused update instead of one per weight array).
    """
    envs, steps = sizes.envs, sizes.steps
    updates = sizes.total_steps // (envs * steps)
    batch = envs * steps
    minibatch = batch // sizes.minibatches
    # Shapes only (an eager init would compile every initializer op by op: seconds).
    graphdef, params0 = nnx.split(
        nnx.eval_shape(lambda: ActorCritic(4, 2, sizes.hidden, rngs=nnx.Rngs(0)))
    )
    _, unravel = ravel_pytree(
        jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), params0)
    )
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params0)
    width = max(max(leaf.shape) for _, leaf in leaves)
    kernels = sum(leaf.ndim == 2 for _, leaf in leaves)
    # One update's uniforms: Gumbel noise (T, E, 2), reset states (T, E, 4), shuffles (K, B).
    per_update = steps * envs * 6 + sizes.epochs * batch
    n_init = 2 * kernels * width * width + envs * 4

    def init_params(u: jax.Array) -> nnx.State:
        """Orthogonal kernels (gain sqrt 2, 0.01 on the actor's last, 1 on the critic's
        last), zero biases, from ``u`` (2 K W W,) uniforms in [0, 1)."""
        u1, u2 = u.reshape(2, kernels, width, width)
        normal = jnp.sqrt(-2.0 * jnp.log1p(-u1)) * jnp.cos(2.0 * jnp.pi * u2)
        q, r = jnp.linalg.qr(normal)  # (K, W, W) each
        q = q * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[..., None, :]
        out, i = [], 0
        for path, leaf in leaves:
            if leaf.ndim == 1:
                out.append(jnp.zeros(leaf.shape))
                continue
            a, b = leaf.shape
            big, small = max(a, b), min(a, b)
            if big == width:  # the first `small` columns of a W x W Q
                w = q[i, :, :small]
            else:
                w, r = jnp.linalg.qr(normal[i, :big, :small])
                w = w * jnp.sign(jnp.diagonal(r))
            last = path[1].key == len(sizes.hidden)
            gain = (0.01 if path[0].key == "actor" else 1.0) if last else np.sqrt(2)
            out.append(gain * (w if a >= b else w.T))
            i += 1
        return jax.tree_util.tree_unflatten(treedef, out)

    schedule = optax.linear_schedule(
        sizes.learning_rate, 0.0, updates * sizes.epochs * sizes.minibatches
    )
    tx = optax.chain(
        optax.clip_by_global_norm(sizes.max_grad_norm),
        optax.adam(schedule, eps=1e-5),
    )
    loss_options = dict(
        clip=sizes.clip, entropy_coef=sizes.entropy_coef, value_coef=sizes.value_coef
    )

    def loss_fn(flat, mb):
        return ppo_loss(nnx.merge(graphdef, unravel(flat)), mb, **loss_options)

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def env_step(model, carry, noise):
        env_state, obs, ep_return = carry
        gumbel, fresh = noise  # (E, 2), (E, 4)
        logits, value = model(obs)  # (E, 2), (E,)
        action = jnp.argmax(logits + gumbel, -1)  # a sample of softmax(logits), (E,)
        log_all = jax.nn.log_softmax(logits)
        log_prob = jnp.take_along_axis(log_all, action[:, None], 1)[:, 0]
        env_state, next_obs, reward, term, trunc, final_obs = jax.vmap(
            _cartpole_advance
        )(env_state, action, fresh)
        # A truncated episode did not end in failure: bootstrap it from its last state
        # (the critic alone: the actor's half of the network is not needed here).
        final_value = _forward(model.critic, final_obs)[:, 0]  # (E,)
        reward = reward + sizes.gamma * final_value * trunc
        ep_return = ep_return + 1.0
        done = term | trunc
        finished = jnp.where(done, ep_return, 0.0)
        ep_return = jnp.where(done, 0.0, ep_return)
        out = dict(
            obs=obs,
            actions=action,
            log_probs=log_prob,
            values=value,
            rewards=reward,
            dones=done,
            finished=finished,
        )
        return (env_state, next_obs, ep_return), out

    def update(carry, u):
        flat, opt_state, env_state, obs, ep_return = carry
        tiny = jnp.finfo(jnp.float32).tiny
        gumbel = -jnp.log(-jnp.log(jnp.maximum(u[: steps * envs * 2], tiny)))
        gumbel = gumbel.reshape(steps, envs, 2)
        fresh = u[steps * envs * 2 : steps * envs * 6].reshape(steps, envs, 4)
        fresh = 0.1 * fresh - 0.05  # uniform in [-0.05, 0.05), as cartpole_reset
        model = nnx.merge(graphdef, unravel(flat))
        (env_state, obs, ep_return), traj = jax.lax.scan(
            functools.partial(env_step, model),
            (env_state, obs, ep_return),
            (gumbel, fresh),
        )
        _, last_value = model(obs)
        advantages, returns = gae(
            traj["rewards"],
            traj["values"],
            traj["dones"],
            last_value,
            gamma=sizes.gamma,
            gae_lambda=sizes.gae_lambda,
        )
        data = {
            "obs": traj["obs"].reshape(batch, 4),
            "actions": traj["actions"].reshape(batch),
            "log_probs": traj["log_probs"].reshape(batch),
            "advantages": advantages.reshape(batch),
            "returns": returns.reshape(batch),
        }
        # Every epoch's shuffle at once: (epochs, batch) indices -> (epochs, M, B) batches.
        perms = jnp.argsort(u[steps * envs * 6 :].reshape(sizes.epochs, batch), -1)
        shuffled = jax.tree.map(
            lambda x: x[perms].reshape(
                sizes.epochs * sizes.minibatches, minibatch, *x.shape[1:]
            ),
            data,
        )

        def minibatch_step(state, mb):
            flat, opt_state = state
            grads, _ = grad_fn(flat, mb)
            changes, opt_state = tx.update(grads, opt_state, flat)
            return (flat + changes, opt_state), None

        (flat, opt_state), _ = jax.lax.scan(minibatch_step, (flat, opt_state), shuffled)
        count = traj["dones"].sum()
        mean_return = jnp.where(
            count > 0, traj["finished"].sum() / jnp.maximum(count, 1), jnp.nan
        )
        return (flat, opt_state, env_state, obs, ep_return), mean_return

    def train(key: jax.Array) -> tuple[nnx.State, dict]:
        u = jax.random.uniform(key, (n_init + updates * per_update,))
        flat, _ = ravel_pytree(init_params(u[: n_init - envs * 4]))  # (P,) all weights
        obs = 0.1 * u[n_init - envs * 4 : n_init].reshape(envs, 4) - 0.05
        env_state = CartPoleState(obs, jnp.zeros(envs, jnp.int32))
        carry = (flat, tx.init(flat), env_state, obs, jnp.zeros(envs))
        (flat, *_), returns = jax.lax.scan(
            update, carry, u[n_init:].reshape(updates, per_update)
        )
        return unravel(flat), {"returns": returns}

    return train, graphdef


def train_ppo(
    sizes: PpoSizes, *, seed: int = 0, progress: bool = True
) -> tuple[ActorCritic, dict]:
    """One PPO run on the pure-JAX CartPole (``make_ppo_train``, jitted), like the PyTorch
    half's ``train_ppo``: the trained ``ActorCritic`` and ``{"steps", "returns",
    "train_seconds", "compile_seconds"}``. ``progress`` is accepted for symmetry (one call)."""
    train, graphdef = make_ppo_train(sizes)
    key = jax.random.key(seed)
    start = time.perf_counter()
    compiled = jax.jit(train).lower(key).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    params, metrics = jax.block_until_ready(compiled(key))
    batch = sizes.envs * sizes.steps
    returns = np.asarray(metrics["returns"])
    history = {
        "steps": [(i + 1) * batch for i in range(len(returns))],
        "returns": list(returns),
        "train_seconds": time.perf_counter() - start,
        "compile_seconds": compile_seconds,
    }
    return nnx.merge(graphdef, params), history


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


def _greedy_ppo(graphdef: nnx.GraphDef, params: nnx.State) -> Callable:
    """The deterministic policy of a trained ``ActorCritic`` (or ``QNetwork``): argmax."""
    act = _greedy_action(graphdef)
    return lambda obs: np.asarray(act(params, jnp.asarray(obs)))


def run_cartpole_ppo(
    sizes: CartpoleSizes, *, seed: int = 0, progress: bool = True
) -> dict:
    """``sizes.vmapped_seeds`` PPO runs on the pure-JAX CartPole, vmapped in groups of
    ``sizes.seed_group``, each evaluated greedily on gymnasium's CartPole-v1.

    The record times every part of the run: ``import_seconds`` (from the
    process's start to this call: interpreter, imports, the bench's setup),
    ``compile_seconds``, ``train_seconds``, ``eval_seconds`` (the gymnasium evaluation), and
    ``end_to_end_seconds``, from the process's start to the end of the evaluation (``None``
    where the process's start cannot be read: not Linux, or when the process imported PyTorch,
    as ``--framework both`` does: it trained PyTorch first, so its start is not this run's).
    ``progress`` is accepted for symmetry (one call per group, no loop to show).
    """
    import sys

    alone = "torch" not in sys.modules
    import_seconds = process_seconds() if alone else None
    ppo = sizes.ppo
    train, graphdef = make_ppo_train(ppo)
    n = sizes.vmapped_seeds
    keys = jax.random.split(jax.random.key(seed), n)
    groups = [keys[i : i + sizes.seed_group] for i in range(0, n, sizes.seed_group)]
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
    for group in params:
        count = len(jax.tree.leaves(group)[0])
        returns += _evaluate_seeds(graphdef, group, count, sizes.eval_episodes)
    eval_seconds = time.perf_counter() - start
    end_to_end = process_seconds() if alone else None
    steps_per_seed = (ppo.total_steps // (ppo.envs * ppo.steps)) * ppo.envs * ppo.steps
    return {
        "model": f"PPO, pure-JAX CartPole, whole run jitted, {sizes.seed_group} seeds "
        f"vmapped per call, {ppo.envs} envs x {ppo.steps} steps, MLP {ppo.hidden}",
        **rl_summary(
            returns,
            env_steps=steps_per_seed * n,
            train_seconds=train_seconds,
            compile_seconds=compile_seconds,
        ),
        "import_seconds": None if import_seconds is None else round(import_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        "end_to_end_seconds": None if end_to_end is None else round(end_to_end, 3),
    }


def make_dqn_train(
    sizes: DqnSizes, *, double: bool = False
) -> tuple[Callable[[jax.Array], tuple[nnx.State, dict]], nnx.GraphDef]:
    """DQN on the pure-JAX CartPole as ONE function of a PRNG key, like ``make_ppo_train``.

    ``sizes.envs`` CartPoles step together; every transition goes into a replay buffer held
    as arrays in the loop's carry; after each ``train_every`` env steps (all envs together)
    come ``gradient_steps`` Huber-loss steps on uniform minibatches of the buffer, and the
    target network is copied every ``target_every`` env steps. Random actions until
    ``learning_starts``, then epsilon-greedy (epsilon linear over ``epsilon_fraction`` of the
    run). A truncated episode is bootstrapped from its final observation; only
    ``terminated`` zeroes the target. Returns ``(train, graphdef)``: ``train(key)`` ->
    ``(params, {"returns": (phases,)})``, the mean return of the episodes finished in each
    training phase (NaN where none). Raises ``ValueError`` when ``train_every`` or
    ``buffer_size`` is not a multiple of ``envs``.
    """
    envs = sizes.envs
    if sizes.train_every % envs or sizes.buffer_size % envs:
        raise ValueError(
            "make_dqn_train: train_every and buffer_size must be multiples of envs, got "
            f"{sizes.train_every}, {sizes.buffer_size} and {envs}"
        )
    per_phase = sizes.train_every // envs  # vector steps between training phases
    warm = sizes.learning_starts // envs  # vector steps of random actions first
    phases = (sizes.total_steps - warm * envs) // sizes.train_every
    target_phases = max(1, sizes.target_every // sizes.train_every)
    explore_steps = max(1, int(sizes.epsilon_fraction * sizes.total_steps))
    graphdef, _ = nnx.split(QNetwork(4, 2, sizes.hidden, rngs=nnx.Rngs(0)))
    learning_rate = sizes.learning_rate
    if sizes.anneal_learning_rate:
        learning_rate = optax.linear_schedule(
            sizes.learning_rate, 0.0, phases * sizes.gradient_steps
        )
    tx = optax.adam(learning_rate)

    def q_values(params, obs):
        return nnx.merge(graphdef, params)(obs)

    def loss_fn(params, target, b):
        q_taken = jnp.take_along_axis(
            q_values(params, b["obs"]), b["actions"][:, None], 1
        )
        q_next = q_values(target, b["next_obs"])  # (B, 2)
        if double:  # the online network picks, the target network scores
            pick = q_values(params, b["next_obs"]).argmax(-1)
            next_value = jnp.take_along_axis(q_next, pick[:, None], 1)[:, 0]
        else:
            next_value = q_next.max(-1)
        y = b["rewards"] + sizes.gamma * (1.0 - b["terminated"]) * next_value
        return optax.huber_loss(q_taken[:, 0], jax.lax.stop_gradient(y)).mean()

    def env_step(carry, key):
        params, env_state, obs, buffer, t, ep_return, finished = carry
        k_explore, k_random, k_env = jax.random.split(key, 3)
        fraction = jnp.minimum(t * envs / explore_steps, 1.0)
        eps = sizes.epsilon_start + fraction * (sizes.epsilon_end - sizes.epsilon_start)
        eps = jnp.where(t < warm, 1.0, eps)
        greedy = q_values(params, obs).argmax(-1)  # (E,)
        explore = jax.random.uniform(k_explore, (envs,)) < eps
        action = jnp.where(explore, jax.random.randint(k_random, (envs,), 0, 2), greedy)
        env_state, next_obs, reward, term, trunc, final_obs = jax.vmap(cartpole_step)(
            jax.random.split(k_env, envs), env_state, action
        )
        row = (t * envs) % sizes.buffer_size
        new = dict(
            obs=obs,
            actions=action.astype(jnp.int32),
            rewards=reward * jnp.ones(envs),
            next_obs=final_obs,  # the state the action led to, also at an episode end
            terminated=term.astype(jnp.float32),
        )
        buffer = jax.tree.map(
            lambda b, x: jax.lax.dynamic_update_slice_in_dim(b, x, row, 0), buffer, new
        )
        ep_return = ep_return + 1.0
        done = term | trunc
        finished = (
            finished[0] + jnp.where(done, ep_return, 0.0).sum(),
            finished[1] + done.sum(),
        )
        ep_return = jnp.where(done, 0.0, ep_return)
        return (params, env_state, next_obs, buffer, t + 1, ep_return, finished), None

    def gradient_step(state, key, target, buffer, filled):
        params, opt_state = state
        idx = jax.random.randint(key, (sizes.batch_size,), 0, filled)
        b = jax.tree.map(lambda x: x[idx], buffer)
        grads = jax.grad(loss_fn)(params, target, b)
        changes, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, changes), opt_state), None

    def phase(carry, xs):
        key, index = xs
        params, target, opt_state, env_state, obs, buffer, t, ep_return = carry
        k_act, k_learn = jax.random.split(key)
        zero = (jnp.float32(0.0), jnp.int32(0))
        (_, env_state, obs, buffer, t, ep_return, finished), _ = jax.lax.scan(
            env_step,
            (params, env_state, obs, buffer, t, ep_return, zero),
            jax.random.split(k_act, per_phase),
        )
        filled = jnp.minimum(t * envs, sizes.buffer_size)
        (params, opt_state), _ = jax.lax.scan(
            functools.partial(
                gradient_step, target=target, buffer=buffer, filled=filled
            ),
            (params, opt_state),
            jax.random.split(k_learn, sizes.gradient_steps),
        )
        copy = (index + 1) % target_phases == 0
        target = jax.tree.map(lambda p, q: jnp.where(copy, p, q), params, target)
        mean = jnp.where(
            finished[1] > 0, finished[0] / jnp.maximum(finished[1], 1), jnp.nan
        )
        return (params, target, opt_state, env_state, obs, buffer, t, ep_return), mean

    def train(key: jax.Array) -> tuple[nnx.State, dict]:
        k_init, k_env, k_warm, k_train = jax.random.split(key, 4)
        _, params = nnx.split(QNetwork(4, 2, sizes.hidden, rngs=nnx.Rngs(k_init)))
        env_state, obs = jax.vmap(cartpole_reset)(jax.random.split(k_env, envs))
        n = sizes.buffer_size
        buffer = dict(
            obs=jnp.zeros((n, 4)),
            actions=jnp.zeros(n, jnp.int32),
            rewards=jnp.zeros(n),
            next_obs=jnp.zeros((n, 4)),
            terminated=jnp.zeros(n),
        )
        t, ep_return = jnp.int32(0), jnp.zeros(envs)
        zero = (jnp.float32(0.0), jnp.int32(0))
        (_, env_state, obs, buffer, t, ep_return, _), _ = jax.lax.scan(
            env_step,
            (params, env_state, obs, buffer, t, ep_return, zero),
            jax.random.split(k_warm, warm),
        )
        carry = (params, params, tx.init(params), env_state, obs, buffer, t, ep_return)
        (params, *_), returns = jax.lax.scan(
            phase, carry, (jax.random.split(k_train, phases), jnp.arange(phases))
        )
        return params, {"returns": returns}

    return train, graphdef


@functools.cache
def _dqn_functions(graphdef: nnx.GraphDef, sizes: DqnSizes, double: bool) -> tuple:
    """DQN's jitted acting and training functions, built once per network and sizes (so
    seeds after the first reuse the compiled code)."""
    tx = optax.adam(sizes.learning_rate)
    act = jax.jit(lambda p, obs: nnx.merge(graphdef, p)(obs).argmax(-1))

    def loss_fn(p, target, b):
        q = nnx.merge(graphdef, p)(b["obs"])  # (B, actions)
        q_taken = jnp.take_along_axis(q, b["actions"][:, None], 1)[:, 0]  # (B,)
        q_next = nnx.merge(graphdef, target)(b["next_obs"])  # (B, actions)
        if double:  # the online network picks, the target network scores
            pick = nnx.merge(graphdef, p)(b["next_obs"]).argmax(-1)
            next_value = jnp.take_along_axis(q_next, pick[:, None], 1)[:, 0]
        else:
            next_value = q_next.max(-1)
        y = b["rewards"] + sizes.gamma * (1 - b["terminated"]) * next_value
        return optax.huber_loss(q_taken, jax.lax.stop_gradient(y)).mean()

    @jax.jit
    def train_phase(p, target, opt_state, data, idx):  # idx (G, B)
        def step(carry, i):
            p, opt_state = carry
            b = jax.tree.map(lambda x: x[i], data)
            grads = jax.grad(loss_fn)(p, target, b)
            changes, opt_state = tx.update(grads, opt_state, p)
            return (optax.apply_updates(p, changes), opt_state), None

        return jax.lax.scan(step, (p, opt_state), idx)[0]

    return act, train_phase, tx


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
    Huber-loss steps on batches from the buffer every ``train_every`` env steps (one jitted
    ``lax.scan``); the target network copied every ``target_every`` env steps. Returns the
    trained ``QNetwork`` and ``{"episode_ends", "episode_returns", "train_seconds",
    "compile_seconds"}`` (the first call of each jitted function).
    """
    from tqdm.auto import tqdm

    env = make_env(env_id)
    obs_dim, actions = env.observation_space.shape[0], int(env.action_space.n)
    graphdef, params = nnx.split(
        QNetwork(obs_dim, actions, sizes.hidden, rngs=nnx.Rngs(seed))
    )
    target = params
    act, train_phase, tx = _dqn_functions(graphdef, sizes, double)
    opt_state = tx.init(params)

    buffer = ReplayBuffer(sizes.buffer_size, obs_dim)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    ends, rets, ep_return = [], [], 0.0
    compile_seconds, compiled, start = 0.0, False, time.perf_counter()
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
            action = int(act(params, jnp.asarray(obs[None]))[0])
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
            # The whole buffer (fixed shape: one compilation), indices below its fill.
            data = {
                "obs": buffer.obs,
                "actions": buffer.actions,
                "rewards": buffer.rewards,
                "next_obs": buffer.next_obs,
                "terminated": buffer.terminated,
            }
            idx = rng.integers(0, len(buffer), (sizes.gradient_steps, sizes.batch_size))
            t0 = time.perf_counter()
            params, opt_state = train_phase(params, target, opt_state, data, idx)
            if not compiled:  # the first call compiles
                jax.block_until_ready(params)
                compile_seconds, compiled = time.perf_counter() - t0, True
        if t % sizes.target_every == 0:
            target = params
    jax.block_until_ready(params)
    train_seconds = time.perf_counter() - start - compile_seconds
    env.close()
    history = {
        "episode_ends": ends,
        "episode_returns": rets,
        "train_seconds": train_seconds,
        "compile_seconds": compile_seconds,
    }
    return nnx.merge(graphdef, params), history


def run_cartpole_dqn(
    sizes: CartpoleSizes, *, seed: int = 0, progress: bool = True, double: bool = False
) -> dict:
    """``sizes.seeds`` DQN runs on the pure-JAX CartPole (``make_dqn_train`` with
    ``sizes.dqn_jit``): the whole run one jitted function, the seeds vmapped in one call,
    each evaluated greedily on gymnasium's CartPole-v1. ``progress`` is accepted for
    symmetry (one call, no loop to show)."""
    dqn = sizes.dqn_jit
    train, graphdef = make_dqn_train(dqn, double=double)
    keys = jax.random.split(jax.random.key(seed, impl=PRNG_IMPL), sizes.seeds)
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(train)).lower(keys).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    params, _ = jax.block_until_ready(compiled(keys))
    train_seconds = time.perf_counter() - start
    returns = _evaluate_seeds(graphdef, params, sizes.seeds, sizes.eval_episodes)
    warm = dqn.learning_starts // dqn.envs * dqn.envs
    steps = warm + (dqn.total_steps - warm) // dqn.train_every * dqn.train_every
    name = "Double DQN" if double else "DQN"
    return {
        "model": f"{name}, pure-JAX CartPole, whole run jitted, {sizes.seeds} seeds "
        f"vmapped, {dqn.envs} envs, MLP {dqn.hidden}",
        **rl_summary(
            returns,
            env_steps=steps * sizes.seeds,
            train_seconds=train_seconds,
            compile_seconds=compile_seconds,
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
    Gaussian exploration noise, a replay buffer, one jitted update of both per env step after
    ``learning_starts``. Returns the trained ``Actor`` and the history (as ``train_dqn``).
    Raises ``ValueError`` for an environment with discrete actions.
    """
    from tqdm.auto import tqdm

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
    obs, _ = env.reset(seed=seed)
    ends, rets, ep_return = [], [], 0.0
    compile_seconds, compiled, start = 0.0, False, time.perf_counter()
    for t in tqdm(range(sizes.total_steps), desc="DDPG", disable=not progress):
        if t < sizes.learning_starts:
            action = rng.uniform(-max_action, max_action, act_dim)
        else:
            action = np.asarray(act(actor, jnp.asarray(obs[None]))[0])
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
    history = {
        "episode_ends": ends,
        "episode_returns": rets,
        "train_seconds": train_seconds,
        "compile_seconds": compile_seconds,
    }
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
