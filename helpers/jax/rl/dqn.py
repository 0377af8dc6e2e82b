"""DQN (Mnih et al. 2015) and Double DQN (van Hasselt et al. 2016) in JAX: on gymnasium's
CartPole with jitted update steps (``train_dqn``), and as one jitted function on the
pure-JAX CartPole (``make_dqn_train``).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from helpers.jax.rl.cartpole import PRNG_IMPL, cartpole_reset, cartpole_step
from helpers.jax.rl.networks import QNetwork, _train_and_evaluate_seeds
from helpers.rl import (
    ReplayBuffer,
    ReplayCollector,
    linear_schedule,
    make_env,
    rl_summary,
)
from helpers.scale import CartpoleSizes, DqnSizes

__all__ = ["make_dqn_train", "n_step_batch", "run_cartpole_dqn", "train_dqn"]


def n_step_batch(
    buffer: dict[str, jax.Array], idx: jax.Array, *, n: int, gamma: float, envs: int = 1
) -> dict[str, jax.Array]:
    """n-step transitions (Sutton 1988; Hessel et al. 2018) from replay rows ``idx`` (B,).

    ``buffer`` holds rows written in time order, ``envs`` per vector step (row ``i + envs``
    is the next step of row ``i``'s environment), with keys ``obs`` (N, 4), ``actions``,
    ``rewards``, ``next_obs`` (N, 4), ``terminated`` and ``done`` (N,) float32 (``done`` =
    terminated or truncated). From each row the rewards of up to ``n`` steps are summed,
    discounted, stopping after the first row that ends its episode; the target then
    bootstraps from that last row's ``next_obs`` with ``discounts`` = gamma ** (rows summed),
    zeroed by its ``terminated`` in the loss. Rows ``idx + envs * (n - 1)`` must exist.
    Returns ``obs``, ``actions``, ``rewards``, ``next_obs``, ``terminated``, ``discounts``,
    each with leading axis B. n = 1 is DQN's one-step target.
    """
    rows = idx[:, None] + envs * jnp.arange(n)  # (B, n): the same env's next n steps
    done = buffer["done"][rows]  # (B, n)
    # row k counts while no earlier row of the n ended the episode
    included = jnp.cumprod(
        jnp.concatenate([jnp.ones_like(done[:, :1]), 1.0 - done[:, :-1]], 1), 1
    )
    count = included.sum(1).astype(jnp.int32)  # (B,) rows summed, 1..n
    last = jnp.take_along_axis(rows, (count - 1)[:, None], 1)[:, 0]  # (B,)
    rewards = (buffer["rewards"][rows] * included * gamma ** jnp.arange(n)).sum(1)
    return dict(
        obs=buffer["obs"][idx],
        actions=buffer["actions"][idx],
        rewards=rewards,
        next_obs=buffer["next_obs"][last],
        terminated=buffer["terminated"][last],
        discounts=gamma ** count.astype(jnp.float32),
    )


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
    ``buffer_size`` is not a multiple of ``envs``, or when ``n_step > 1`` and the buffer is
    smaller than the run (``total_steps``).
    """
    envs = sizes.envs
    if sizes.train_every % envs or sizes.buffer_size % envs:
        raise ValueError(
            "make_dqn_train: train_every and buffer_size must be multiples of envs, got "
            f"{sizes.train_every}, {sizes.buffer_size} and {envs}"
        )
    if sizes.n_step > 1 and sizes.buffer_size < sizes.total_steps:
        raise ValueError(
            "make_dqn_train: n_step > 1 needs a buffer that keeps the whole run "
            f"(buffer_size >= total_steps), got {sizes.buffer_size} < {sizes.total_steps}"
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
    if sizes.max_grad_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(sizes.max_grad_norm), tx)
    polyak = sizes.tau is not None

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
        y = b["rewards"] + b["discounts"] * (1.0 - b["terminated"]) * next_value
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
            done=(term | trunc).astype(jnp.float32),
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

    def gradient_step(state, key, buffer, filled):
        params, target, opt_state = state
        # rows whose n - 1 next steps (of the same env) are written already
        high = filled - envs * (sizes.n_step - 1)
        idx = jax.random.randint(key, (sizes.batch_size,), 0, high)
        batch = n_step_batch(buffer, idx, n=sizes.n_step, gamma=sizes.gamma, envs=envs)
        grads = jax.grad(loss_fn)(params, target, batch)
        changes, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, changes)
        if polyak:
            target = optax.incremental_update(params, target, sizes.tau)
        return (params, target, opt_state), None

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
        (params, target, opt_state), _ = jax.lax.scan(
            functools.partial(gradient_step, buffer=buffer, filled=filled),
            (params, target, opt_state),
            jax.random.split(k_learn, sizes.gradient_steps),
        )
        if not polyak:
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
            done=jnp.zeros(n),
        )
        t, ep_return = jnp.int32(0), jnp.zeros(envs)
        zero = (jnp.float32(0.0), jnp.int32(0))
        (_, env_state, obs, buffer, t, ep_return, _), _ = jax.lax.scan(
            env_step,
            (params, env_state, obs, buffer, t, ep_return, zero),
            jax.random.split(k_warm, warm),
        )
        carry = (params, params, tx.init(params), env_state, obs, buffer, t, ep_return)
        (params, target, *_), returns = jax.lax.scan(
            phase, carry, (jax.random.split(k_train, phases), jnp.arange(phases))
        )
        return params, {"returns": returns, "target": target}

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
    from tqdm import tqdm

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
    collector = ReplayCollector(env, buffer, seed=seed)
    env.action_space.seed(seed)
    compile_seconds, compiled, start = 0.0, False, time.perf_counter()
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
            action = int(act(params, jnp.asarray(collector.obs[None]))[0])
        collector.step(action)
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
    history = collector.history(train_seconds, compile_seconds)
    return nnx.merge(graphdef, params), history


def run_cartpole_dqn(
    sizes: CartpoleSizes,
    *,
    seed: int = 0,
    progress: bool = True,
    double: bool = False,
    n_step: int | None = None,
) -> dict:
    """``sizes.seeds`` DQN runs on the pure-JAX CartPole (``make_dqn_train`` with
    ``sizes.dqn_jit``, its ``n_step`` replaced by ``n_step`` when given: the ablation of
    ``helpers.bench``): the whole run one jitted function, the seeds vmapped in one call,
    each evaluated greedily on gymnasium's CartPole-v1. Timed like ``run_cartpole_ppo``:
    ``import_seconds``, ``compile_seconds``, ``train_seconds``, ``eval_seconds`` and
    ``end_to_end_seconds`` (``None`` where the process's start is not this run's).
    ``progress`` is accepted for symmetry (one call, no loop to show). Raises
    ``ValueError`` for ``n_step < 1``."""
    dqn = sizes.dqn_jit
    if n_step is not None:
        if n_step < 1:
            raise ValueError(f"run_cartpole_dqn: n_step must be >= 1, got {n_step}")
        dqn = dataclasses.replace(dqn, n_step=n_step)
    returns, times = _train_and_evaluate_seeds(
        lambda: (
            *make_dqn_train(dqn, double=double),
            jax.random.split(jax.random.key(seed, impl=PRNG_IMPL), sizes.seeds),
        ),
        sizes.seeds,  # one vmapped call
        sizes.eval_episodes,
    )
    warm = dqn.learning_starts // dqn.envs * dqn.envs
    steps = warm + (dqn.total_steps - warm) // dqn.train_every * dqn.train_every
    name = "Double DQN" if double else "DQN"
    return {
        "model": f"{name}, {dqn.n_step}-step returns, pure-JAX CartPole, whole run jitted, "
        f"{sizes.seeds} seeds vmapped, {dqn.envs} env{'s' * (dqn.envs != 1)}, MLP {dqn.hidden}",
        **rl_summary(
            returns,
            env_steps=steps * sizes.seeds,
            train_seconds=times.pop("train_seconds"),
            compile_seconds=times.pop("compile_seconds"),
        ),
        **times,
    }
