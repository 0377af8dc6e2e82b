"""PPO (Schulman et al. 2017) with GAE on the pure-JAX CartPole: the whole run one jitted
function of a key, seeds vmapped.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from helpers.jax.rl.cartpole import CartPoleState, _cartpole_advance
from helpers.jax.rl.networks import ActorCritic, _forward, _train_and_evaluate_seeds
from helpers.rl import (
    rl_summary,
)
from helpers.scale import CartpoleSizes, PpoSizes

__all__ = ["gae", "make_ppo_train", "ppo_loss", "run_cartpole_ppo", "train_ppo"]


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
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params0)
    # The weights raveled into one vector and back, by slicing (jax.flatten_util's
    # ravel_pytree would run, and compile, one reshape per array eagerly here).
    bounds = np.cumsum([0, *(leaf.size for _, leaf in leaves)])

    def unravel(flat: jax.Array) -> nnx.State:
        parts = [
            flat[a:b].reshape(leaf.shape)
            for a, b, (_, leaf) in zip(bounds[:-1], bounds[1:], leaves, strict=True)
        ]
        return jax.tree_util.tree_unflatten(treedef, parts)

    width = max(max(leaf.shape) for _, leaf in leaves)
    kernels = sum(leaf.ndim == 2 for _, leaf in leaves)
    # One update's uniforms: Gumbel noise (T, E, 2), reset states (T, E, 4), shuffles (K, B).
    per_update = steps * envs * 6 + sizes.epochs * batch
    n_init = 2 * kernels * width * width + envs * 4

    def init_params(u: jax.Array) -> jax.Array:
        """Orthogonal kernels (gain sqrt 2, 0.01 on the actor's last, 1 on the critic's
        last), zero biases, from ``u`` (2 K W W,) uniforms in [0, 1): raveled, (P,)."""
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
        return jnp.concatenate([x.reshape(-1) for x in out])

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
        flat = init_params(u[: n_init - envs * 4])  # (P,) all weights
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


def _seed_keys(first: int, count: int) -> jax.Array:
    """``jax.random.key(first + i)`` for ``i < count``, stacked: ``(count,)`` keys.

    Built from the keys' raw data (the default threefry key of a seed below 2**32 is the
    pair ``(0, seed)``): ``jax.random.split``, or stacking keys, compiles a small program
    first, tenths of a second of a run timed end to end.
    """
    seeds = np.arange(first, first + count, dtype=np.uint32)
    return jax.random.wrap_key_data(np.stack([np.zeros_like(seeds), seeds], 1))


def run_cartpole_ppo(
    sizes: CartpoleSizes, *, seed: int = 0, progress: bool = True
) -> dict:
    """``sizes.vmapped_seeds`` PPO runs (``sizes.ppo_jit``) on the pure-JAX CartPole, vmapped
    in groups of ``sizes.seed_group``, each evaluated greedily on gymnasium's CartPole-v1.
    Run ``i`` starts from ``jax.random.key(seed * sizes.vmapped_seeds + i)``: ``seed`` picks
    a set of seeds disjoint from every other ``seed``'s.

    The record times every part of the run: ``import_seconds`` (from the
    process's start to this call: interpreter, imports, the bench's setup),
    ``compile_seconds``, ``train_seconds``, ``eval_seconds`` (the gymnasium evaluation), and
    ``end_to_end_seconds``, from the process's start to the end of the evaluation (``None``
    where the process's start cannot be read: not Linux, or when the process imported PyTorch,
    as ``--framework both`` does: it trained PyTorch first, so its start is not this run's).
    ``progress`` is accepted for symmetry (one call per group, no loop to show).
    """
    ppo = sizes.ppo_jit
    n = sizes.vmapped_seeds
    returns, times = _train_and_evaluate_seeds(
        lambda: (*make_ppo_train(ppo), _seed_keys(seed * n, n)),
        sizes.seed_group,
        sizes.eval_episodes,
    )
    steps_per_seed = (ppo.total_steps // (ppo.envs * ppo.steps)) * ppo.envs * ppo.steps
    return {
        "model": f"PPO, pure-JAX CartPole, whole run jitted, {sizes.seed_group} seeds "
        f"vmapped per call, {ppo.envs} envs x {ppo.steps} steps, MLP {ppo.hidden}",
        **rl_summary(
            returns,
            env_steps=steps_per_seed * n,
            train_seconds=times.pop("train_seconds"),
            compile_seconds=times.pop("compile_seconds"),
        ),
        **times,
    }
