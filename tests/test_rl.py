"""Chapter 7's helpers: the pure-JAX CartPole against gymnasium, GAE, the buffers, errors."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from helpers.jax import rl as jrl
from helpers.rl import (
    ReplayBuffer,
    ReplayCollector,
    RolloutStorage,
    evaluate_policy,
    random_baseline,
    returns_on_grid,
)
from helpers.scale import DdpgSizes, PpoSizes
from helpers.torch import rl as trl


def test_pure_jax_cartpole_matches_gymnasium_step_for_step():
    """Same states, same actions: next state, reward and termination agree (float32)."""
    env = gym.make("CartPole-v1")
    step = jax.jit(jrl.cartpole_step)
    rng = np.random.default_rng(0)
    compared = terminations = 0
    for episode in range(20):
        obs, _ = env.reset(seed=episode)
        state = jrl.CartPoleState(jnp.asarray(obs), jnp.int32(0))
        for _ in range(500):
            action = int(rng.integers(2))
            # gymnasium keeps float64 internally: start both from the same float32 state
            env.unwrapped.state = np.asarray(state.physics, np.float64)
            obs, reward, terminated, truncated, _ = env.step(action)
            state, _, j_reward, j_term, j_trunc, final_obs = step(
                jax.random.key(episode), state, jnp.int32(action)
            )
            np.testing.assert_allclose(final_obs, obs, rtol=1e-5, atol=1e-6)
            assert float(j_reward) == reward
            assert bool(j_term) == terminated and bool(j_trunc) == truncated
            compared += 1
            if terminated or truncated:
                terminations += terminated
                break
    assert compared > 200 and terminations > 10


def test_pure_jax_cartpole_truncates_at_500_and_resets():
    state, _ = jrl.cartpole_reset(jax.random.key(0))
    state = state._replace(t=jnp.int32(499))
    new, obs, _, term, trunc, final = jrl.cartpole_step(
        jax.random.key(1), state, jnp.int32(0)
    )
    assert bool(trunc) and not bool(term)
    assert int(new.t) == 0 and np.all(np.abs(np.asarray(obs)) <= 0.05)
    assert not np.allclose(obs, final)


def gae_reference(rewards, values, dones, last_value, gamma, lam):
    """GAE written as the sum over future TD errors, cut at episode ends (float64)."""
    T = len(rewards)
    values_next = np.concatenate([values[1:], last_value[None]])
    delta = rewards + gamma * values_next * (1 - dones) - values
    adv = np.zeros_like(rewards)
    for t in range(T):
        weight = np.ones_like(last_value)
        for k in range(t, T):
            adv[t] += weight * delta[k]
            weight = weight * gamma * lam * (1 - dones[k])
    return adv, adv + values


def _gae_inputs():
    rng = np.random.default_rng(3)
    T, E = 7, 3
    rewards = rng.normal(size=(T, E)).astype(np.float32)
    values = rng.normal(size=(T, E)).astype(np.float32)
    dones = (rng.random((T, E)) < 0.3).astype(np.float32)
    last = rng.normal(size=E).astype(np.float32)
    return rewards, values, dones, last


@pytest.mark.parametrize("fw", ["torch", "jax"])
def test_gae_matches_the_sum_of_td_errors(fw):
    r, v, d, last = _gae_inputs()
    want_adv, want_ret = gae_reference(
        *(x.astype(np.float64) for x in (r, v, d, last)), 0.9, 0.8
    )
    if fw == "torch":
        adv, ret = trl.gae(
            *map(torch.as_tensor, (r, v, d, last)), gamma=0.9, gae_lambda=0.8
        )
    else:
        adv, ret = jrl.gae(
            *map(jnp.asarray, (r, v, d, last)), gamma=0.9, gae_lambda=0.8
        )
    np.testing.assert_allclose(np.asarray(adv), want_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ret), want_ret, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fw", ["torch", "jax"])
def test_gae_rejects_mismatched_shapes(fw):
    r, v, d, last = _gae_inputs()
    conv, mod = (torch.as_tensor, trl) if fw == "torch" else (jnp.asarray, jrl)
    with pytest.raises(ValueError, match="one \\(T, E\\) shape"):
        mod.gae(conv(r), conv(v[:-1]), conv(d), conv(last), gamma=0.9, gae_lambda=0.8)
    with pytest.raises(ValueError, match="last_value must be"):
        mod.gae(conv(r), conv(v), conv(d), conv(last[:-1]), gamma=0.9, gae_lambda=0.8)


def test_ppo_loss_is_the_same_in_both_frameworks():
    """Same weights, same minibatch: the same loss (the JAX model copied into PyTorch)."""
    jmodel = jrl.ActorCritic(4, 2, (8,), rngs=nnx.Rngs(0))
    tmodel = trl.ActorCritic(4, 2, (8,))
    with torch.no_grad():
        for tnet, jlayers in (
            (tmodel.actor, jmodel.actor),
            (tmodel.critic, jmodel.critic),
        ):
            linears = [m for m in tnet if isinstance(m, torch.nn.Linear)]
            for t, j in zip(linears, jlayers, strict=True):
                t.weight.copy_(torch.as_tensor(np.array(j.kernel[...]).T))
                t.bias.copy_(torch.as_tensor(np.array(j.bias[...])))
    rng = np.random.default_rng(0)
    batch = {
        "obs": rng.normal(size=(16, 4)).astype(np.float32),
        "actions": rng.integers(0, 2, 16),
        "log_probs": np.log(rng.uniform(0.3, 0.7, 16)).astype(np.float32),
        "advantages": rng.normal(size=16).astype(np.float32),
        "returns": rng.normal(size=16).astype(np.float32),
    }
    opts = dict(clip=0.2, entropy_coef=0.01, value_coef=0.5)
    lt, _ = trl.ppo_loss(
        tmodel, {k: torch.as_tensor(v) for k, v in batch.items()}, **opts
    )
    lj, _ = jrl.ppo_loss(jmodel, {k: jnp.asarray(v) for k, v in batch.items()}, **opts)
    np.testing.assert_allclose(lt.item(), float(lj), rtol=1e-5)


def test_replay_buffer_wraps_and_samples():
    buf = ReplayBuffer(5, 2)
    for i in range(7):
        buf.add(np.full(2, i), i % 2, 1.0, np.full(2, i + 1), i == 6)
    assert len(buf) == 5
    assert sorted(buf.obs[:, 0]) == [2, 3, 4, 5, 6]
    batch = buf.sample(32, np.random.default_rng(0))
    assert batch["obs"].shape == (32, 2) and batch["actions"].dtype == np.int64
    np.testing.assert_array_equal(batch["next_obs"], batch["obs"] + 1)


class _CountingEnv:
    """Obs = steps since reset; reward 1; ends by termination at 3 or truncation at 2."""

    def __init__(self, truncate: bool) -> None:
        self.truncate, self.resets, self.t = truncate, [], 0

    def reset(self, seed=None):
        self.resets.append(seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        truncated = self.truncate and self.t == 2
        return np.full(2, self.t, np.float32), 1.0, self.t == 3, truncated, {}


@pytest.mark.parametrize("truncate", [False, True])
def test_replay_collector_stores_terminated_only_and_logs_episodes(truncate):
    env, buf = _CountingEnv(truncate), ReplayBuffer(10, 2)
    collector = ReplayCollector(env, buf, seed=7)
    for _ in range(6):
        collector.step(0)
    length = 2 if truncate else 3
    assert collector.episode_ends == list(range(length, 7, length))
    assert collector.episode_returns == [float(length)] * (6 // length)
    assert env.resets[0] == 7 and len(env.resets) == 1 + 6 // length
    assert len(buf) == 6 and buf.obs[length, 0] == 0  # reset before the next episode
    # a time-limit cut is not a termination: it must be bootstrapped
    assert buf.terminated[:6].sum() == (0 if truncate else 2)
    h = collector.history(1.5)
    assert h["train_seconds"] == 1.5 and h["compile_seconds"] == 0.0


def test_replay_buffer_errors_name_what_was_expected():
    with pytest.raises(ValueError, match="capacity and obs_dim"):
        ReplayBuffer(0, 4)
    buf = ReplayBuffer(3, 4)
    with pytest.raises(ValueError, match="empty"):
        buf.sample(2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="obs must end in 4"):
        buf.add(np.zeros(3), 0, 0.0, np.zeros(3), False)
    with pytest.raises(KeyError, match="unknown field"):
        RolloutStorage(2, 2, 4).add(0, reward=np.zeros(2))


def test_evaluation_counts_one_episode_per_copy_and_random_is_poor():
    always_left = evaluate_policy(lambda obs: np.zeros(len(obs), np.int64), episodes=10)
    assert always_left.shape == (10,) and np.all(always_left < 20)
    random = random_baseline(episodes=20)
    assert 10 < random.mean() < 60


def test_returns_on_grid():
    out = returns_on_grid(
        [10, 20, 30], [1.0, 2.0, 3.0], np.array([5, 20, 40]), window=2
    )
    assert np.isnan(out[0]) and out[1] == 1.5 and out[2] == 2.5


def test_learning_curves_carry_the_last_value_over_updates_without_an_episode():
    from helpers.rl_plots import _carry_forward

    nan = np.nan
    curves = np.array([[nan, 1.0, nan, nan, 3.0], [2.0, nan, 5.0, nan, nan]])
    want = np.array([[nan, 1.0, 1.0, 1.0, 3.0], [2.0, 2.0, 5.0, 5.0, 5.0]])
    np.testing.assert_array_equal(_carry_forward(curves), want)
    assert np.isnan(curves[0, 2])  # the input is left as it was
    with pytest.raises(ValueError, match="seeds, points"):
        _carry_forward(np.zeros(3))


@pytest.mark.parametrize("mod", [trl, jrl], ids=["torch", "jax"])
def test_ddpg_refuses_discrete_actions(mod):
    sizes = DdpgSizes(
        total_steps=1,
        buffer_size=10,
        batch_size=2,
        actor_learning_rate=1e-3,
        critic_learning_rate=1e-3,
        gamma=0.99,
        tau=0.005,
        noise=0.1,
        learning_starts=1,
        hidden=(4,),
        eval_episodes=1,
    )
    with pytest.raises(ValueError, match="continuous"):
        mod.train_ddpg(sizes, env_id="CartPole-v1", progress=False)


def test_importing_the_torch_half_does_not_import_gymnasium():
    code = "import sys; from helpers import torch; print('gymnasium' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("task", ["cartpole", "pendulum"])
def test_bench_entries_name_existing_functions_and_sizes(task):
    from helpers.bench import MODELS
    from helpers.scale import sizes

    for block, function, _ in MODELS[task].values():
        module, name = function.split(".")
        assert module == "rl"
        assert callable(getattr(trl, name)) and callable(getattr(jrl, name))
        for scale in ("smoke", "cpu", "gpu"):
            sizes(block, scale)


def _tiny_dqn(**changes):
    import dataclasses

    from helpers.scale import sizes

    base = sizes("cartpole", "smoke").dqn_jit
    tiny = dict(
        total_steps=400,
        learning_starts=100,
        buffer_size=400,
        hidden=(8,),
        train_every=50,
    )
    return dataclasses.replace(base, **{**tiny, **changes})


@pytest.mark.parametrize("tau", [None, 0.01], ids=["copies", "polyak"])
def test_jitted_dqn_runs_whole_and_vmaps_over_seeds(tau):
    """The pure-JAX DQN (n-step targets, clipped gradients, target copies or a Polyak
    average): one jitted call trains two seeds; a curve per training phase."""
    dqn = _tiny_dqn(tau=tau)
    train, graphdef = jrl.make_dqn_train(dqn, double=True)
    params, metrics = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(0), 2))
    phases = (dqn.total_steps - dqn.learning_starts) // dqn.train_every
    assert metrics["returns"].shape == (2, phases)
    q = jax.vmap(lambda p: nnx.merge(graphdef, p)(jnp.zeros((3, 4))))(params)
    assert q.shape == (2, 3, 2) and bool(jnp.isfinite(q).all())
    # the two seeds learned different networks
    assert not np.allclose(q[0], q[1])


def test_jitted_dqn_rejects_sizes_that_do_not_split_over_envs():
    with pytest.raises(ValueError, match="multiples of envs"):
        jrl.make_dqn_train(_tiny_dqn(envs=4, train_every=15))


def test_jitted_dqn_rejects_n_step_with_a_buffer_that_forgets():
    with pytest.raises(ValueError, match="buffer_size >= total_steps"):
        jrl.make_dqn_train(_tiny_dqn(n_step=3, buffer_size=200))


@pytest.mark.parametrize("scale", ["smoke", "cpu", "gpu"])
def test_every_scale_s_jitted_dqn_sizes_build(scale):
    """The bench's `cartpole --algo dqn --framework jax` at every scale: its sizes pass
    make_dqn_train's checks (gpu's 100k-step run once had a 50k buffer, which 5-step
    returns refuse)."""
    from helpers.scale import sizes

    dqn = sizes("cartpole", scale=scale).dqn_jit
    train, _ = jrl.make_dqn_train(dqn)
    assert callable(train) and dqn.buffer_size >= dqn.total_steps


def test_n_step_batch_sums_rewards_until_the_episode_ends():
    """Two envs interleaved (row i + 2 is row i's next step); env 0 terminates at row 4,
    env 1 is truncated at row 3. n = 3, gamma = 0.5, hand-computed targets."""
    rewards = jnp.array([1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0, 5.0, 50.0])
    done = jnp.array([0, 0, 0, 1, 1, 0, 0, 0, 0, 0], jnp.float32)
    terminated = jnp.array([0, 0, 0, 0, 1, 0, 0, 0, 0, 0], jnp.float32)
    buffer = dict(
        obs=jnp.arange(10.0)[:, None] * jnp.ones(4),
        actions=jnp.arange(10) % 2,
        rewards=rewards,
        next_obs=100 + jnp.arange(10.0)[:, None] * jnp.ones(4),
        terminated=terminated,
        done=done,
    )
    b = jrl.n_step_batch(buffer, jnp.array([0, 1, 3, 4, 5]), n=3, gamma=0.5, envs=2)
    # row 0: rows 0, 2, 4 (4 terminates): 1 + 0.5 * 2 + 0.25 * 3, no bootstrap
    # row 1: rows 1, 3 (3 truncated): 10 + 0.5 * 20, bootstrap from row 3's next_obs
    # rows 3, 4: their episode ends there; row 5: rows 5, 7, 9, all three
    np.testing.assert_allclose(b["rewards"], [2.75, 20.0, 20.0, 3.0, 62.5])
    np.testing.assert_allclose(b["next_obs"][:, 0], [104.0, 103.0, 103.0, 104.0, 109.0])
    np.testing.assert_allclose(b["terminated"], [1.0, 0.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(b["discounts"], [0.125, 0.25, 0.5, 0.5, 0.125])
    np.testing.assert_allclose(b["obs"][:, 0], [0.0, 1.0, 3.0, 4.0, 5.0])
    # n = 1 is the one-step target
    one = jrl.n_step_batch(buffer, jnp.array([0, 4]), n=1, gamma=0.5, envs=2)
    np.testing.assert_allclose(one["rewards"], [1.0, 3.0])
    np.testing.assert_allclose(one["discounts"], [0.5, 0.5])
    np.testing.assert_allclose(one["next_obs"][:, 0], [100.0, 104.0])


@pytest.mark.parametrize("module", ["torch", "jax"])
def test_run_cartpole_dqn_rejects_a_bad_n_step(module):
    from helpers.scale import sizes

    rl = trl if module == "torch" else jrl
    with pytest.raises(ValueError, match="n_step"):
        rl.run_cartpole_dqn(
            sizes("cartpole", "smoke"), n_step=0 if module == "jax" else 3
        )


def test_jitted_ppo_starts_from_orthogonal_weights_and_vmaps_over_seeds():
    """The whole-run PPO: with no update its weights are the orthogonal init it draws
    itself (W^T W = gain^2 I on the smaller side, zero biases); two seeds differ."""
    sizes = PpoSizes(
        envs=2, steps=8, total_steps=16, epochs=1, minibatches=2, learning_rate=0.0,
        max_grad_norm=0.5, gamma=0.99, gae_lambda=0.95, clip=0.2, entropy_coef=0.01,
        value_coef=0.5, hidden=(8, 8),
    )  # fmt: skip
    train, graphdef = jrl.make_ppo_train(sizes)
    params, metrics = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(0), 2))
    assert metrics["returns"].shape == (2, 1)
    model = nnx.merge(graphdef, jax.tree.map(lambda x: x[0], params))
    for layers, last_gain in ((model.actor, 0.01), (model.critic, 1.0)):
        for i, layer in enumerate(layers):
            w = np.asarray(layer.kernel[...])
            w = w if w.shape[0] >= w.shape[1] else w.T
            gain = last_gain if i == len(layers) - 1 else np.sqrt(2)
            np.testing.assert_allclose(w.T @ w, gain**2 * np.eye(w.shape[1]), atol=1e-5)
            assert not np.asarray(layer.bias[...]).any()
    kernels = np.asarray(params["actor"][1]["kernel"][...])  # (2 seeds, 8, 8)
    assert not np.allclose(kernels[0], kernels[1])


def test_process_seconds_counts_from_the_process_start():
    from helpers.rl import process_seconds

    first = process_seconds()
    assert first is None or first > 0
    if first is not None:
        assert process_seconds() >= first


def test_jitted_ppo_seed_keys_are_the_keys_of_consecutive_seeds():
    from helpers.jax.rl.ppo import _seed_keys

    keys = jax.random.key_data(_seed_keys(7, 3))
    expected = np.stack([jax.random.key_data(jax.random.key(s)) for s in (7, 8, 9)])
    np.testing.assert_array_equal(np.asarray(keys), expected)


@pytest.mark.parametrize(
    ("seeds", "band"), [(2, "range of the seeds"), (8, "middle 50%")]
)
def test_learning_curve_band_is_interquartile_only_with_enough_seeds(seeds, band):
    import matplotlib.pyplot as plt

    from helpers.rl_plots import plot_learning_curves

    curves = np.arange(seeds * 5, dtype=float).reshape(seeds, 5)
    curves[-1] += 1000  # one outlying seed
    ax = plot_learning_curves(curves, np.arange(5), label="PPO")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(band in text for text in labels), labels
    (poly,) = ax.collections
    top = poly.get_paths()[0].vertices[:, 1].max()
    # the quartile band ignores the outlier; the range of two seeds cannot
    assert (top > 1000) == (seeds < 4)
    plt.close("all")


def test_plot_trajectory_draws_the_first_steps_asked_for():
    import matplotlib.pyplot as plt

    from helpers.rl_plots import plot_trajectory

    obs = np.tile([[1.0, -1.0]], (200, 1)) * np.array([1, -1])[np.arange(200) % 2, None]
    fig = plot_trajectory(obs, ["x", "x'"], title="t", dt=0.02, first_steps=[None, 50])
    whole, first = (len(ax.lines[0].get_xdata()) for ax in fig.axes)
    assert (whole, first) == (200, 50)
    with pytest.raises(ValueError, match="first_steps must have 2 entries"):
        plot_trajectory(obs, ["x", "x'"], title="t", dt=0.02, first_steps=[None])
    plt.close("all")
