# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 7. Reinforcement learning: PyTorch
#
# This is the PyTorch half of chapter 7; the [JAX half](in-jax.ipynb) tells the same story in
# the same order. An agent acts in an environment, gets rewards, and learns a policy that
# earns more of them. This chapter builds three methods and measures them:
#
# * environments with gymnasium: spaces, episodes, `terminated` vs `truncated`, seeding,
#   vector environments, and what a random policy scores;
# * DQN for discrete actions (replay buffer, target network, epsilon schedule) and Double DQN;
# * PPO (clipped objective, GAE, advantage normalisation, vector environments);
# * a CartPole written as pure functions, the JAX half's showcase, and what PyTorch does instead;
# * DDPG where it belongs, on a continuous action (Pendulum-v1);
# * evaluation of a fixed policy over 100 episodes, learning curves over seeds, a trajectory.
#
# The chapter follows a course outline, the syllabus this course was built from, whose code
# fails as written in several places; each time, a box at that place runs the outline's code,
# prints what happens and says what is true.

# %% [markdown] tags=["notebook-only"]
# Every measured number on this page is printed by a cell (the recorded ones from
# `bench.jsonl`, with their machine and date); the few numbers the prose quotes from elsewhere
# name their source. The cell below says at which scale (`smoke`, `cpu` or `gpu`) this page
# was produced.

# %% tags=["remove-cell"]
# Colab only: install the course helpers, and newer flax/optax if Colab's are too old.
# torch and jax are never reinstalled: Colab builds them for its CUDA.
import sys

if "google.colab" in sys.modules:
    import subprocess

    repo = "git+https://github.com/pytorch-jax-course/pytorch-jax-course"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", repo], check=True)
    from helpers.versions import colab_setup

    colab_setup()

# %%
import re
import textwrap
import time

import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from helpers import torch as H
from helpers.results import latest_by, read_records

# Every size this notebook uses comes from helpers/scale/rl.py.
cartpole = H.sizes("cartpole")
pendulum = H.sizes("pendulum")
torch.manual_seed(0)
H.runtime_info()

# %% [markdown] tags=["shared"]
# ## 7.1 Environments with gymnasium
#
# An environment has an **observation space** (what the agent sees) and an **action space**
# (what it may do). CartPole-v1 {cite}`barto1983neuronlike`: a pole hinged on a cart; the
# observation is four numbers (cart position, cart velocity, pole angle, pole angular velocity),
# the action is one of two integers (push left, push right), and every step the pole stays up
# earns a reward of 1. gymnasium {cite}`towers2024gymnasium`, the maintained successor of OpenAI
# Gym, is the interface both halves of this chapter use.

# %%
env = gym.make("CartPole-v1")
space = env.observation_space
print("observation space:", type(space).__name__, space.shape, space.dtype)
print("  low: ", space.low)
print("  high:", space.high)
print("action space:     ", env.action_space)
obs, info = env.reset(seed=0)
print("first observation:", obs, obs.dtype)  # (4,) float32

# %% [markdown] tags=["shared"]
# An **episode** runs from `reset` until `step` says it is over, and gymnasium says why, in
# two flags:
#
# * `terminated`: the task itself ended (the pole fell past 12 degrees or the cart left the
#   track). There is no future: the value of the next state is 0.
# * `truncated`: an outside limit cut the episode short (CartPole-v1 stops at 500 steps). The
#   state was fine and had a future: a learner must still **bootstrap** from the value of the
#   last observation, or it learns that good states near the time limit are worth nothing.
#
# The seed passed to `reset` fixes the first observation and the environment's own random
# draws, at later resets too. The action space draws from a generator of its own:
# `env.action_space.sample()` repeats from one run to the next only after
# `env.action_space.seed(...)`, as in the cells below.

# %%
obs, _ = env.reset(seed=42)
again, _ = env.reset(seed=42)
print("same seed, same start:", np.array_equal(obs, again))
env.action_space.seed(42)  # sample() has its own generator, unseeded until now
total, steps, done = 0.0, 0, False
while not done:
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    total, steps = total + reward, steps + 1
    done = terminated or truncated
print(
    f"random actions: {steps} steps, return {total}, terminated={terminated}, truncated={truncated}"
)

# %% [markdown] tags=["shared"]
# :::{admonition} The outline's environment code uses the retired `gym` API
# :class: warning
# The outline imports `gym` and writes `state = env.reset()` and
# `next_state, reward, done, _ = env.step(action)`. The `gym` package is no longer maintained;
# its successor gymnasium returns `(obs, info)` from `reset` and **five** values from `step`
# (`done` split into `terminated` and `truncated`). The outline also steps CartPole with a
# float vector, the output of a continuous actor, where CartPole accepts only the integers 0
# and 1. The cell below runs each of these and prints what happens.
# :::

# %%
try:
    import gym  # the import of the outline
except ModuleNotFoundError as e:
    print("import gym ->", type(e).__name__, e)
env.reset(seed=0)
try:
    next_state, reward, done, _ = env.step(0)  # four values, as in the outline
except ValueError as e:
    print("four values from step ->", type(e).__name__, e)
try:
    env.step(np.array([0.37], np.float32))  # a float action, as a DDPG actor outputs
except AssertionError as e:
    print("float action into CartPole ->", type(e).__name__)
    print(" ", e)

# %% [markdown] tags=["shared"]
# A **vector environment** steps several copies at once; observations gain a leading axis.
# gymnasium ships a vectorised CartPole (one NumPy array for all copies), which the evaluation
# below uses. A copy whose episode ends is reset automatically, by default in the **next**
# step (autoreset mode `NEXT_STEP`, printed below): that step ignores the copy's action,
# returns reward 0 and the first observation of a new episode. In **same-step** mode
# (`AutoresetMode.SAME_STEP`, which the PyTorch PPO trainer of 7.3 asks for), the step that
# ends an episode already returns the new first observation, and the ended episode's last
# observation comes in `info["final_obs"]`.

# %%
envs = H.rl.make_env("CartPole-v1", num_envs=8)
obs, _ = envs.reset(seed=0)
print("vector observations:", obs.shape)  # (8, 4)
obs, rewards, terminated, truncated, _ = envs.step(np.ones(8, np.int64))
print("rewards:", rewards, "terminated:", terminated)
print("autoreset mode:", envs.metadata["autoreset_mode"])
envs.close()

# %% [markdown] tags=["shared"]
# **The random-policy baseline.** Every method below must beat what uniform random actions
# score. The evaluation protocol used throughout: 100 episodes of gymnasium's CartPole-v1, run
# with a *fixed* policy (no exploration, no learning), reported as mean ± standard deviation.
# CartPole-v1 counts as **solved** at a mean of 475 or more.

# %%
random_returns = H.rl.random_baseline(episodes=cartpole.eval_episodes)
print(
    f"random policy: {random_returns.mean():.1f} ± {random_returns.std():.1f} "
    f"over {len(random_returns)} episodes"
)
always_left = H.rl.evaluate_policy(
    lambda obs: np.zeros(len(obs), np.int64), episodes=cartpole.eval_episodes
)
print(f"always push left: {always_left.mean():.1f} ± {always_left.std():.1f}")


# %% [markdown] tags=["shared"]
# ## 7.2 DQN: a value-based method for discrete actions
#
# DQN {cite}`mnih2015human` learns $Q(s, a)$, the return expected after taking action $a$ in
# state $s$ and acting well afterwards, with a network, by regressing it on the one-step target
#
# $$y = r + \gamma(1 - \text{terminated}) \max_{a'} Q_{\bar\theta}(s', a'),$$
#
# where $Q_{\bar\theta}$ is a **target network**, a copy of the online network refreshed only
# every few steps, so the target does not move with every update. Transitions go into a
# **replay buffer** and are sampled in random minibatches, which breaks the correlation of
# consecutive steps. The agent acts **epsilon-greedily**: a random action with probability
# $\epsilon$, else $\arg\max_a Q(s, a)$; $\epsilon$ falls linearly from `epsilon_start` (1)
# to `epsilon_end` (0.04) over the first `epsilon_fraction` (16 %) of the run's env steps,
# then stays there. Only `terminated` zeroes the bootstrap: a truncated transition is
# bootstrapped like any other.
#
# **Double DQN** {cite}`vanhasselt2016deep` changes one line: the online network *picks* the
# next action and the target network *scores* it,
#
# $$\begin{aligned}
# y = r &+ \gamma\,(1 - \text{terminated})\\
# &\times Q_{\bar\theta}\bigl(s', \arg\max_{a'} Q_\theta(s', a')\bigr),
# \end{aligned}$$
#
# which reduces the upward bias of taking a max over noisy estimates.
#
# The loss, written out. The regression uses the Huber loss (squared for errors below 1,
# linear above, so a few large TD errors do not dominate the gradient): PyTorch's
# `smooth_l1_loss` with its default `beta=1` and optax's `huber_loss` with its default
# `delta=1` are the same function. The trainer `H.rl.train_dqn` acts randomly for the first
# `learning_starts` env steps, then runs this loss in bursts: `gradient_steps` updates every
# `train_every` env steps (`gradient_steps` differs per scale, in `cartpole.dqn`), and it copies
# the online network into the target every `target_every` env steps. With `target_every`
# (10) below `train_every` (256) and the online network unchanged between bursts, that
# means in effect one copy before each burst, and a target held fixed through the burst's
# updates (the pure-JAX trainer of 7.4 copies after each burst: the same).


# %%
def dqn_loss(q, target, batch, gamma, double=False):
    """Huber loss of Q(s, a) against the (Double) DQN target; batch from a ReplayBuffer."""
    with torch.no_grad():
        q_next = target(batch["next_obs"])  # (B, actions)
        if double:
            pick = q(batch["next_obs"]).argmax(-1, keepdim=True)  # online network picks
            next_value = q_next.gather(1, pick)[:, 0]  # target network scores
        else:
            next_value = q_next.max(-1).values  # (B,)
        y = batch["rewards"] + gamma * (1 - batch["terminated"]) * next_value
    q_taken = q(batch["obs"]).gather(1, batch["actions"][:, None])[:, 0]  # (B,)
    return nn.functional.smooth_l1_loss(q_taken, y)


buffer = H.rl.ReplayBuffer(1_000, obs_dim=4)
env = gym.make("CartPole-v1")
obs, _ = env.reset(seed=0)
env.action_space.seed(0)
for _ in range(200):
    action = env.action_space.sample()
    next_obs, reward, terminated, truncated, _ = env.step(action)
    buffer.add(obs, action, reward, next_obs, terminated)
    obs = next_obs if not (terminated or truncated) else env.reset()[0]
batch = {
    k: torch.as_tensor(v)
    for k, v in buffer.sample(32, np.random.default_rng(0)).items()
}
q_net = H.rl.QNetwork(4, 2, cartpole.dqn.hidden)
# A target network that differs from the online one, as it does between two copies; were
# they equal, the online network's pick would be the target's max and both losses equal.
target_net = H.rl.QNetwork(4, 2, cartpole.dqn.hidden)
print("a batch:", {k: tuple(v.shape) for k, v in batch.items()})
print(
    f"DQN loss {dqn_loss(q_net, target_net, batch, 0.99):.4f}, Double DQN loss "
    f"{dqn_loss(q_net, target_net, batch, 0.99, double=True):.4f}"
)

# %% [markdown] tags=["shared"]
# Training: the tuned CartPole-v1 settings of RL Baselines3 Zoo {cite}`raffin2020rlzoo` (a
# fixed budget of env steps, no stopping at a lucky evaluation), DQN and Double DQN with the
# same seeds, each evaluated greedily over 100 episodes. At `smoke` scale (the page's first
# cell prints its scale) the budget is a few thousand env steps, too few to learn CartPole:
# greedy returns stay around those of the random policy of 7.1, a little above or below by
# chance, and far from solved; a greedy policy that has learned nothing picks the same action
# everywhere and scores like "always push left" there. That scale only checks that the page
# runs; the records below measure.

# %%
dqn_results = {}
for double in (False, True):
    name = "Double DQN" if double else "DQN"
    runs = []
    for seed in range(cartpole.page_seeds):
        model, history = H.rl.train_dqn(cartpole.dqn, seed=seed, double=double)
        policy = lambda obs, m=model: m(torch.as_tensor(obs)).argmax(-1).numpy()  # noqa: E731
        with torch.no_grad():
            returns = H.rl.evaluate_policy(policy, episodes=cartpole.eval_episodes)
        runs.append((history, returns))
    dqn_results[name] = runs
    means = [r.mean() for _, r in runs]
    seconds = sum(h["train_seconds"] for h, _ in runs) / len(runs)
    print(
        f"{name}: greedy return per seed {np.round(means, 1)}, "
        f"solved {sum(m >= H.rl.SOLVED_RETURN for m in means)}/{len(means)}, "
        f"{seconds:.1f} s of training per seed"
    )

# %% [markdown] tags=["shared"]
# **The recorded DQN.** The loop above steps gymnasium's CartPole from Python, one step at a
# time. The chapter's DQN *measurement* comes from its JAX twin, `H.rl.make_dqn_train`
# (JAX-only; section 7.4 of [the JAX half](in-jax.ipynb) says how it is built): the same
# Double DQN algorithm, written as one compiled function of a PRNG key over the pure-JAX
# CartPole, seeds vmapped in one call, each seed's greedy policy evaluated over 100 episodes
# of gymnasium's CartPole-v1. Its sizes, `cartpole.dqn_jit`, keep the RL Baselines3 Zoo
# settings of `cartpole.dqn` except where the cell below prints a difference; these were
# chosen on seeds other than the recorded ones:
#
# * a network of two hidden layers of 64 (`hidden`; at cpu and gpu scale the page's DQN has
#   two of 256, which train far slower in the pure-JAX loop);
# * a replay buffer that keeps the whole run (`buffer_size`: 50,000 transitions at cpu scale,
#   where the page's DQN keeps 100,000): n-step targets are read from consecutive rows of a
#   buffer that is never overwritten;
# * Adam's step size annealed linearly to 0 over the run (`anneal_learning_rate`);
# * the gradient clipped to a global norm of 10 (`max_grad_norm`), Stable-Baselines3's default
#   for DQN;
# * **n-step returns** (`n_step`, here 5) {cite}`sutton1988learning`, one of Rainbow's parts
#   {cite}`hessel2018rainbow`: the target sums up to $n$ rewards before it bootstraps,
#
#   $$\begin{aligned}
#   y = \sum_{k=0}^{m-1} \gamma^k r_{t+k} &+ \gamma^m\,(1 - \text{terminated})\\
#   &\times Q_{\bar\theta}(s_{t+m}, a^\star),
#   \end{aligned}$$
#
#   where $m = n$, or fewer when the episode ends within $n$ steps: the sum stops at its last
#   step, `terminated` is that step's flag, and $s_{t+m}$ its last observation (a truncated
#   episode bootstraps from it, as before). For DQN,
#   $a^\star = \arg\max_{a'} Q_{\bar\theta}(s_{t+m}, a')$; for Double DQN,
#   $a^\star = \arg\max_{a'} Q_\theta(s_{t+m}, a')$. The news of a failure travels $n$ steps
#   back per update instead of one.
#
# The cell prints the latest record of each variant: the chapter's setting
# (`python -m helpers.bench cartpole --framework jax --algo double-dqn`), the same run with
# one-step targets (`--algo double-dqn-1-step`) and without Double DQN (`--algo dqn`); the
# same seeds, the same budget of env steps, no stopping at a lucky evaluation. The first two
# lines show what n-step returns buy; the first and the last, whether Double DQN's
# correction still matters once the targets look n steps ahead. With this few seeds the
# count of solved seeds is a coarse measure, and another set of seeds moves it. In the latest
# records the correction buys nothing: with 5-step targets plain DQN solved 5 of 5 seeds (mean
# greedy return 499.6), Double DQN 4 of 5 (488.8), a difference 5 seeds cannot tell from chance.

# %%
differs = {
    f: getattr(cartpole.dqn_jit, f)
    for f in vars(cartpole.dqn)
    if getattr(cartpole.dqn_jit, f) != getattr(cartpole.dqn, f)
}
print(textwrap.fill(f"cartpole.dqn_jit differs from cartpole.dqn in: {differs}", 100))
bench_file = H.course_root() / "chapters/07-reinforcement-learning/bench.jsonl"
dqn_records = latest_by(
    [
        r
        for r in read_records(bench_file)
        if r["task"] == "cartpole"
        and r["framework"] == "jax"
        and "-step returns" in r["model"]
    ],
    "model_option",
)
for (algo,), r in dqn_records.items():
    seconds = r.get("end_to_end_seconds") or r["compile_seconds"] + r["train_seconds"]
    indent = " " * 19
    print(
        textwrap.fill(
            f"{algo:<18} solved {r['seeds_solved']}/{r['seeds']} seeds, greedy return "
            f"per seed {r['eval_return_mean_per_seed']}",
            100,
            subsequent_indent=indent,
        )
    )
    print(
        textwrap.fill(
            f"{r['model']}; {seconds:.1f} s end to end for {r['seeds']} seeds "
            f"({r['hardware']['cores']} cores, {r['date'][:10]})",
            100,
            initial_indent=indent,
            subsequent_indent=indent,
        )
    )

# %% [markdown] tags=["shared"]
# ## 7.3 PPO: a policy-gradient method
#
# PPO {cite}`schulman2017proximal` learns the policy $\pi_\theta(a \mid s)$ directly. It
# collects a rollout of $T$ steps in $E$ environments with the current policy, then takes
# several epochs of minibatch steps on the **clipped surrogate objective**
#
# $$\begin{aligned} L^{\text{clip}} = \mathbb{E}\Big[\min\Big(&\rho\,\hat A,\;\\
# &\operatorname{clip}(\rho, 1 - \varepsilon, 1 + \varepsilon)\,\hat A\Big)\Big],\\
# \rho = {}&\frac{\pi_\theta(a \mid s)}{\pi_{\text{old}}(a \mid s)}, \end{aligned}$$
#
# which stops rewarding a change of the policy once the probability ratio $\rho$ leaves
# $[1 - \varepsilon, 1 + \varepsilon]$ in the direction the advantage favours. The advantages
# $\hat A$ come from **generalised advantage estimation** {cite}`schulman2016high`: with the
# critic's values $V$ and TD errors $\delta_t = r_t + \gamma V(s_{t+1})(1 - d_t) - V(s_t)$,
#
# $$\hat A_t = \delta_t + \gamma\lambda\,(1 - d_t)\,\hat A_{t+1},$$
#
# computed backwards over the rollout, cut at every episode end $d_t$; the critic's target is
# $\hat A_t + V(s_t)$, computed once from the values of the policy that collected the rollout.
# Advantages are **normalised** per minibatch (zero mean, unit standard deviation). A truncated
# episode (the 500-step limit) is bootstrapped by adding $\gamma V(s_{\text{last}})$ to its
# last reward, unless that step also terminated (the pole fell on the last allowed step): then
# the task ended and nothing is added. GAE, written out and checked against the helper the
# trainer uses:


# %%
def gae(rewards, values, dones, last_value, gamma, lam):
    """Advantages and returns (T, E) from rewards, values, dones (T, E), last_value (E,)."""
    advantages = torch.zeros_like(values)
    advantage = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(len(rewards))):
        keep = 1.0 - dones[t]  # 0 where the episode ended at step t
        delta = rewards[t] + gamma * next_value * keep - values[t]
        advantage = delta + gamma * lam * keep * advantage
        advantages[t] = advantage
        next_value = values[t]
    return advantages, advantages + values


g = torch.Generator().manual_seed(0)
rewards, values = torch.rand(16, 4, generator=g), torch.randn(16, 4, generator=g)
dones = (torch.rand(16, 4, generator=g) < 0.1).float()
last = torch.randn(4, generator=g)
mine = gae(rewards, values, dones, last, 0.99, 0.95)
theirs = H.rl.gae(rewards, values, dones, last, gamma=0.99, gae_lambda=0.95)
assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(mine, theirs, strict=True))
print("GAE written out == H.rl.gae on a (16, 4) rollout with episode ends")

# %% [markdown] tags=["shared"]
# The clipped loss, written out and checked against the trainer's `H.rl.ppo_loss` (value loss
# and an entropy bonus added, as in the paper):


# %%
def clipped_policy_loss(logits, actions, old_log_probs, advantages, clip):
    log_probs = torch.log_softmax(logits, -1).gather(1, actions[:, None])[:, 0]  # (B,)
    ratio = torch.exp(log_probs - old_log_probs)
    adv = (advantages - advantages.mean()) / (advantages.std(correction=0) + 1e-8)
    return -torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()


model = H.rl.ActorCritic(4, 2, cartpole.ppo.hidden)
mb = {
    "obs": torch.randn(32, 4, generator=g),
    "actions": torch.randint(0, 2, (32,), generator=g),
    # log-probs of the old policy
    "log_probs": torch.log(torch.rand(32, generator=g) * 0.6 + 0.2),
    "advantages": torch.randn(32, generator=g),
    "returns": torch.randn(32, generator=g),
}
_, parts = H.rl.ppo_loss(model, mb, clip=0.2, entropy_coef=0.0, value_coef=0.0)
mine = clipped_policy_loss(
    model(mb["obs"])[0], mb["actions"], mb["log_probs"], mb["advantages"], 0.2
)
assert torch.allclose(mine, parts["policy_loss"], atol=1e-6)
print(f"clipped policy loss {mine.item():.5f} equals the policy term of H.rl.ppo_loss")

# %% [markdown]
# Training: `H.rl.train_ppo` steps a gymnasium `SyncVectorEnv` of CartPoles in same-step
# autoreset mode (7.1), so the final observation of a truncated episode, in
# `info["final_obs"]`, is there to bootstrap from, and no step is wasted on a reset; one seed
# after another (`cartpole.page_seeds` of them here, 2 at every scale; the recorded PyTorch
# PPO run printed in 7.7 trains `cartpole.seeds` of them, 5 at cpu scale).

# %%
ppo_runs = []
for seed in range(cartpole.page_seeds):
    model, history = H.rl.train_ppo(cartpole.ppo, seed=seed)
    with torch.no_grad():
        policy = lambda obs, m=model: m(torch.as_tensor(obs))[0].argmax(-1).numpy()  # noqa: E731
        returns = H.rl.evaluate_policy(policy, episodes=cartpole.eval_episodes)
    ppo_runs.append((model, history, returns))
ppo_means = [r.mean() for _, _, r in ppo_runs]
ppo_seconds = [h["train_seconds"] for _, h, _ in ppo_runs]
print(
    f"PPO greedy return per seed {np.round(ppo_means, 1)}, solved "
    f"{sum(m >= H.rl.SOLVED_RETURN for m in ppo_means)}/{len(ppo_means)}, "
    f"{np.mean(ppo_seconds):.1f} s of training per seed "
    f"({cartpole.ppo.total_steps / np.mean(ppo_seconds):,.0f} env steps/s)"
)

# %% [markdown] tags=["shared"]
# ## 7.4 The environment as a pure function
#
# Stepping gymnasium means one Python call per step (per batch of environments), and with
# networks this small the network's calls, in the rollout's forward passes and above all in
# PPO's many small gradient steps, set the pace of small RL problems on a CPU, not the
# environment's physics (the PyTorch half times the split in 7.4). The JAX half rewrites
# CartPole's physics as a pure function of an explicit state, checks it step for step against
# gymnasium's for the same states and actions, runs thousands of copies with `vmap` and time
# with `lax.scan`, and compiles the whole PPO training run, rollouts included, into one XLA
# program; `vmap` then trains several seeds in one call. The gymnax library
# {cite}`gymnax2022github` provides such JAX environments (CartPole, Pendulum, MinAtar and
# more), and PureJaxRL {cite}`lu2022discovered` showed whole PPO runs compiled this way.
# PyTorch has no stable counterpart of `lax.scan` (a private prototype,
# `torch._higher_order_ops.scan`, exists), so it cannot compile the whole loop: a
# CartPole written in tensors could step many copies at once, and `torch.compile` can compile
# the network (or such a step), but the loop over time and updates stays in Python, and
# gymnasium's environments are Python (or NumPy) code. `python -m helpers.bench cartpole --algo ppo --framework both` records both
# training loops on one machine, with the ratio of their env steps per second.

# %% [markdown]
# The cell below measures where the time goes: the same vector environment stepped with
# random actions alone, then with the PyTorch policy choosing the actions (a forward pass
# and a sample per step, as in a rollout), next to 7.3's training rate (rollouts plus
# gradient steps). The rate the JAX page prints in 7.4 measures something else, the
# environment alone with random actions over 1,024 copies, so the two are not comparable:
# the like-for-like comparison is the recorded pair of training loops below.

# %%
envs = gym.make_vec(
    "CartPole-v1", num_envs=cartpole.ppo.envs, vectorization_mode="sync"
)
obs, _ = envs.reset(seed=0)
envs.action_space.seed(0)
n = 2_000
start = time.perf_counter()
for _ in range(n):
    obs, *_ = envs.step(envs.action_space.sample())
random_rate = n * cartpole.ppo.envs / (time.perf_counter() - start)
model = ppo_runs[0][0]
start = time.perf_counter()
with torch.no_grad():
    for _ in range(n):
        action = torch.distributions.Categorical(
            logits=model(torch.as_tensor(obs))[0]
        ).sample()
        obs, *_ = envs.step(action.numpy())
policy_rate = n * cartpole.ppo.envs / (time.perf_counter() - start)
train_rate = cartpole.ppo.total_steps / np.mean(ppo_seconds)
print(f"gymnasium SyncVectorEnv ({cartpole.ppo.envs} envs), rates in env steps/s:")
print(f"  random actions alone:           {random_rate:>9,.0f}")
print(f"  + PyTorch policy (as a rollout): {policy_rate:>8,.0f}")
print(f"  PPO training in 7.3:             {train_rate:>8,.0f}")
print(
    f"the environment's share of the time: {policy_rate / random_rate:.0%} of the "
    f"policy loop, {train_rate / random_rate:.0%} of training"
)
envs.close()

# %% [markdown] tags=["shared"]
# The two loops compared on one machine: the latest
# `python -m helpers.bench cartpole --algo ppo --framework both --scale cpu` pair recorded in
# this chapter's `bench.jsonl` (PPO with the same recipe: PyTorch stepping gymnasium's vector
# environment, JAX stepping its own CartPole inside one compiled run; each side trains its
# own number of seeds, printed below, and the two frameworks draw different random numbers
# from the same seed). The ratio compares the loops only if both sides trained
# the same network for the same env steps per seed; the cell checks it from the records (the
# smaller `cartpole.ppo_jit` that the JAX half trains in 7.4 is not used here). Each rate is
# the record's env steps, summed over its seeds, per second of training: the JAX record
# trains all its seeds together in one vmapped call, the PyTorch record one seed after
# another, so the ratio measures the compiled loop and the vmapped seeds together. One pair
# is one measurement: the cell also prints the earlier recorded pairs of the same recipe and
# the range of the PyTorch loop's rate across its records on the same machine.

# %%
ppo_records = [
    r
    for r in read_records(bench_file)
    if r["task"] == "cartpole" and r["model_option"] == "ppo"
]
pairs = [r for r in ppo_records if "throughput_ratio" in r]
both = pairs[-2:]  # the pair one --framework both run wrote: torch, then jax
for r in both:
    line = (
        f"{r['framework']:>5}: {r['env_steps_per_second']:>9,.0f} env steps/s, "
        f"{r['seeds_solved']}/{r['seeds']} seeds solved ({r['model']})"
    )
    print(textwrap.fill(line, 100, subsequent_indent=" " * 7))


def recipe(r: dict) -> tuple[str, int]:
    """The network named in a record's model and its env steps per seed."""
    return re.search(r"MLP \([^)]*\)", r["model"]).group(), r["env_steps"] // r["seeds"]


print("same network and env steps per seed:", recipe(both[0]) == recipe(both[1]))
ratio = both[1]["throughput_ratio"] / both[0]["throughput_ratio"]
hardware = both[1]["hardware"]
print(
    f"pure-JAX loop / gymnasium loop: {ratio:.1f}x env steps per second\n"
    f"({hardware['cpu']}, {hardware['cores']} cores, {both[1]['date'][:10]}, "
    f"commit {both[1]['commit'][:7]})"
)
for torch_r, jax_r in zip(pairs[:-2:2], pairs[1:-2:2], strict=True):
    assert (torch_r["framework"], jax_r["framework"]) == ("torch", "jax")
    if recipe(torch_r) == recipe(jax_r) == recipe(both[1]) and (
        jax_r["hardware"] == torch_r["hardware"] == hardware
    ):
        print(
            f"an earlier pair, same recipe, on the pair's machine: "
            f"{jax_r['throughput_ratio'] / torch_r['throughput_ratio']:.1f}x "
            f"({jax_r['date'][:10]}, commit {jax_r['commit'][:7]})"
        )
rates = [
    r["env_steps_per_second"]
    for r in ppo_records
    if r["framework"] == "torch"
    and r["model"] == both[0]["model"]
    and r["hardware"] == hardware
]
print(
    f"the PyTorch loop over its {len(rates)} records on the pair's machine: "
    f"{min(rates):,.0f} to {max(rates):,.0f} env steps/s"
)

# %% [markdown] tags=["shared"]
# ## 7.5 DDPG, on a continuous action
#
# DDPG {cite}`lillicrap2016continuous` learns a **deterministic** actor $\mu_\phi(s)$ that
# outputs an action vector, and a critic $Q_\theta(s, a)$. The critic regresses on
# $y = r + \gamma (1 - \text{terminated})\, Q_{\bar\theta}(s', \mu_{\bar\phi}(s'))$; the actor
# climbs the critic, maximising $Q_\theta(s, \mu_\phi(s))$, with the gradient flowing from the
# critic **through the action** into the actor. Target networks ($\bar\theta$ for the
# critic, $\bar\phi$ for the actor) follow by soft updates,
# $\bar\theta \leftarrow \tau\theta + (1 - \tau)\bar\theta$ and likewise for $\bar\phi$;
# exploration adds Gaussian noise to the actor's action (the paper used temporally
# correlated Ornstein-Uhlenbeck noise; independent Gaussian noise is the simpler choice TD3
# {cite}`fujimoto2018addressing` found to do as well). All of this needs an action space
# where "a little more action" means something: real numbers, like Pendulum-v1's torque in
# $[-2, 2]$.

# %%
pend = gym.make("Pendulum-v1")
print(
    "Pendulum-v1 actions:",
    pend.action_space,
    "| CartPole-v1 actions:",
    env.action_space,
)
print(
    "CartPole actions have a high bound (to scale a tanh to):",
    hasattr(env.action_space, "high"),
)
try:
    H.rl.train_ddpg(pendulum, env_id="CartPole-v1")
except ValueError as e:
    print("train_ddpg on CartPole ->", e)

# %% [markdown] tags=["shared"]
# :::{admonition} The outline runs DDPG on CartPole, and its actor loss has no gradient path
# :class: warning
# The outline calls its method DDPG, applies it to CartPole and claims a mean reward of about
# 450 after 1,000 episodes. CartPole's action space is `Discrete(2)` (printed above): the
# actor's real-valued output is not an action there, and stepping the environment with it
# fails (7.1). Its actor loss is the critic's value of the actions *stored in the replay
# buffer*, `loss = -critic(states, actions).mean()`: those actions are data, so the loss does not
# depend on the actor at all, and backpropagation gives the actor no gradient (PyTorch:
# `None`; JAX: zeros). The cell below shows it; DDPG's actor loss evaluates the critic at
# the actor's own action. The outline also reports training returns, never a fixed policy's
# evaluation. With code that cannot run, its number cannot be reproduced; the chapter
# evaluates every agent as in 7.6.
# :::

# %%
actor = H.rl.Actor(3, 1, (32,), max_action=2.0)
critic = H.rl.Critic(3, 1, (32,))
states, stored_actions = torch.randn(8, 3), torch.rand(8, 1) * 4 - 2  # from the buffer
outline_loss = -critic(states, stored_actions).mean()  # the actor loss of the outline
outline_loss.backward()
print(
    "outline's actor loss -> actor gradients:", [p.grad for p in actor.parameters()][:2]
)
critic.zero_grad()
ddpg_loss = -critic(states, actor(states)).mean()  # through the action of the actor
ddpg_loss.backward()
print(
    "DDPG's actor loss -> actor gradient norm:",
    f"{torch.cat([p.grad.flatten() for p in actor.parameters()]).norm():.4f}",
)

# %% [markdown]
# Training DDPG on Pendulum-v1 with `H.rl.train_ddpg` (the critic and actor updates above,
# one each per env step, soft target updates), then the deterministic actor evaluated over 100
# episodes. Pendulum's reward is 0 only with the pendulum upright, at rest and no torque
# applied, and each episode starts at a random angle, most often far from upright, so even a
# good policy loses reward while it swings up: RL Baselines3 Zoo's tuned DDPG scores
# -152.1 ± 94.3 on Pendulum-v1 (its
# [benchmark table](https://github.com/DLR-RM/rl-baselines3-zoo/blob/master/benchmark.md)),
# a random policy far less (printed below). At `smoke` scale about a thousand updates are too
# few to beat random; the recorded `cpu` runs printed in 7.7 are the measurement.

# %%
actor, ddpg_history = H.rl.train_ddpg(pendulum, seed=0)
with torch.no_grad():
    ddpg_returns = H.rl.evaluate_policy(
        lambda obs: actor(torch.as_tensor(obs)).numpy(),
        "Pendulum-v1",
        episodes=pendulum.eval_episodes,
    )
pendulum_random = H.rl.random_baseline("Pendulum-v1", episodes=pendulum.eval_episodes)
print(
    f"DDPG on Pendulum-v1: {ddpg_returns.mean():.1f} ± {ddpg_returns.std():.1f} "
    f"(random policy {pendulum_random.mean():.1f} ± {pendulum_random.std():.1f}),\n"
    f"{ddpg_history['train_seconds']:.1f} s of training"
)

# %% [markdown] tags=["shared"]
# ## 7.6 Evaluation
#
# A training curve mixes exploration noise and a policy that keeps changing as it learns; the
# number that describes an agent is the return of its **fixed** policy (greedy for DQN,
# the most probable action for PPO, the actor without noise for DDPG) over many episodes,
# reported with its spread. The table gathers them; the plot shows learning curves over seeds,
# the mean with a shaded band: over the middle half of the seeds (the 25th to the 75th
# percentile, so that one outlying seed does not stretch it) where at least four seeds ran,
# over all of them where fewer did (the legend says which). A PPO point is the mean return
# of the episodes that ended during one update; where none ended (every environment in the
# middle of an episode longer than the rollout), the seed's last value is carried forward.

# %%
rows = [("random policy", random_returns)]
rows += [
    (name, np.concatenate([r for _, r in runs])) for name, runs in dqn_results.items()
]
rows += [("PPO", np.concatenate([r for _, _, r in ppo_runs]))]
print(f"{'CartPole-v1':<14} {'mean ± std over seeds x 100 episodes':>40}")
for name, returns in rows:
    print(f"{name:<14} {returns.mean():>30.1f} ± {returns.std():.1f}")
print(
    f"{'Pendulum-v1':<14}\n{'DDPG':<14} {ddpg_returns.mean():>30.1f} ± {ddpg_returns.std():.1f}"
)

# %%
grid = np.linspace(0, cartpole.dqn.total_steps, 40)
fig, axes = plt.subplots(2, 1, figsize=(7, 9), layout="constrained")
for name, runs in dqn_results.items():
    curves = [
        H.rl.returns_on_grid(h["episode_ends"], h["episode_returns"], grid)
        for h, _ in runs
    ]
    H.rl.plot_learning_curves(
        np.array(curves),
        grid,
        label=name,
        ax=axes[0],
        title="DQN on CartPole-v1 (training episodes)",
    )
H.rl.plot_learning_curves(
    np.array([h["returns"] for _, h, _ in ppo_runs]),
    np.array(ppo_runs[0][1]["steps"]),
    label="PPO",
    ax=axes[1],
    title="PPO on CartPole-v1 (training episodes)",
)
for ax in axes:
    ax.axhline(
        H.rl.SOLVED_RETURN,
        color="gray",
        ls=":",
        label=f"solved ({H.rl.SOLVED_RETURN:g})",
    )
    H.legend_below_axes(ax, ncol=1)  # hides neither a curve nor the solved line
plt.show()

# %% [markdown] tags=["shared"]
# DQN and Double DQN train with the same seeds, and until `learning_starts` env steps both act
# at random and update nothing: their first episodes are the same, and so are their curves
# up to there. They part only after the updates begin.
#
# A trajectory of the best PPO agent, one episode of gymnasium's CartPole-v1 with the greedy
# policy: the cart's position and the pole's angle over the whole episode (it ends at 12
# degrees, 0.21 rad, or at 2.4 m), and their velocities over its first 50 steps, one marker
# per step. Every step the agent pushes the cart left or right with the full force, and the
# first 50 steps show how each push moves both velocities; drawn over hundreds of steps, a
# velocity that reverses from one step to the next would fill its panel.

# %%
best = ppo_runs[int(np.argmax(ppo_means))][0]
obs, _ = env.reset(seed=123)
trajectory, done = [obs], False
while not done:
    with torch.no_grad():
        action = int(best(torch.as_tensor(obs[None]))[0].argmax())
    obs, _, terminated, truncated, _ = env.step(action)
    trajectory.append(obs)
    done = terminated or truncated
H.rl.plot_trajectory(
    np.array(trajectory),
    ["x (m)", "x' (m/s)", "theta (rad)", "theta' (rad/s)"],
    title=f"Greedy PPO agent, one episode ({len(trajectory) - 1} steps)",
    dt=0.02,
    first_steps=[None, 50, None, 50],
)
plt.show()

# %%
# What the smoke test guarantees: even the smallest budget learns something.
assert np.mean(ppo_means) > random_returns.mean(), (ppo_means, random_returns.mean())

# %% [markdown] tags=["shared"]
# ## 7.7 Summary
#
# | section | built | measured |
# |---|---|---|
# | 7.1 environments | spaces, episodes, `terminated` vs `truncated`, seeding, vector envs; the outline's `gym` calls and float action run | random-policy baseline |
# | 7.2 DQN | replay buffer, target network, epsilon schedule, Huber TD loss; Double DQN's one-line change; n-step returns in the recorded JAX run | greedy return per seed, solved seeds; the recorded variants |
# | 7.3 PPO | GAE and the clipped loss written out, checked against the trainer's | greedy return per seed, solved seeds, env steps/s |
# | 7.4 pure environment | (JAX) CartPole as a pure function, the whole run compiled, seeds vmapped | env steps/s of each loop |
# | 7.5 DDPG | actor through the critic, soft target updates, noise, on Pendulum-v1; the outline's actor loss run | evaluation return vs random |
# | 7.6 evaluation | fixed policy over 100 episodes, learning curves over seeds, a trajectory | the table above |
#
# The benchmark `python -m helpers.bench cartpole --algo ppo --framework both` (and `--algo dqn`,
# `--algo double-dqn`, `--algo double-dqn-1-step`, `pendulum --algo ddpg`) trains and
# evaluates the same way and records the numbers the book quotes in `bench.jsonl`. Each line
# names the network and the env steps per seed: the JAX PPO line is the `cartpole.ppo_jit`
# recipe of 7.4 (one hidden layer, and at cpu scale fewer env steps), the PyTorch one
# 7.3's `cartpole.ppo`. The cell below prints the latest record of each agent (cpu scale;
# what the course aims for: CartPole solved at a greedy mean of 475 over 100 episodes; JAX PPO in
# at least 9 of 10 seeds within 10 s end to end on 2 CPU cores; PyTorch PPO in at least 4 of 5
# seeds within 30 s per seed; DQN solved within 60 s in one framework; DDPG above -200).

# %%
latest = latest_by(read_records(bench_file), "task", "model_option", "framework")
for (task, algo, framework), r in latest.items():
    solved = (
        f", {r['seeds_solved']}/{r['seeds']} seeds solved"
        if "seeds_solved" in r
        else ""
    )
    per_seed = r["eval_return_mean_per_seed"]
    spread = f" (per seed {min(per_seed):.1f} to {max(per_seed):.1f})"
    end_to_end = r.get("end_to_end_seconds")
    seeds = f"{r['seeds']} seed{'s' if r['seeds'] > 1 else ''}"
    timing = f"{r['train_seconds']:.1f} s training ({seeds})"
    if r["compile_seconds"]:
        timing += f" + {r['compile_seconds']:.1f} s compilation"
    if end_to_end is not None:
        timing += f", {end_to_end:.1f} s end to end"
    cores = r["hardware"]["cores"]
    network, steps_per_seed = recipe(r)
    line = (
        f"{task} {algo} ({framework}, {r['scale']} scale, {cores} core{'s' * (cores > 1)}, "
        f"{r['date'][:10]}; {network}, {steps_per_seed:,} env steps per seed): mean "
        f"evaluation return {r['eval_return_mean']:.1f}"
        f"{spread if len(per_seed) > 1 else ''}{solved}; {timing}"
    )
    print(textwrap.fill(line, 100, subsequent_indent="    "))

# %% [markdown] tags=["notebook-only"]
# Next: [the JAX half of this chapter](in-jax.ipynb), then the
# [lab](../../labs/07-reinforcement-learning/in-pytorch.ipynb), whose self-checks tell you when
# each exercise is right. Works cited are listed in the [bibliography](../../bibliography.md).
