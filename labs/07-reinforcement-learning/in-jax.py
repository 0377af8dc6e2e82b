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
# # Lab 7: returns, GAE, PPO's clipped loss and V-trace in JAX
#
# Four exercises on chapter 7: the discounted returns of a rollout that crosses episode ends,
# generalised advantage estimation (GAE) over the same rollout, PPO's clipped policy loss with
# its value loss, and, beyond the chapter, V-trace targets (IMPALA's) for a rollout that an
# older policy collected. Each exercise is a function. Replace the line
# `raise NotImplementedError(...)` with your code, run the cell, then run the check below it: a
# check prints ✅ when your function is right, or ❌ with what it expected and a hint.
#
# The checks call your functions on rollouts with both kinds of episode end and compare with
# answers computed independently ([`tests/labs/test_lab07.py`](https://github.com/pytorch-jax-course/pytorch-jax-course/blob/main/tests/labs/test_lab07.py) proves those answers equal the
# chapter's `H.rl.gae` and `H.rl.ppo_loss`, and the V-trace answers the paper's formula); they
# never look at your code.
#
# The solved lab: [Lab 7 solutions in JAX](../../solutions/07-reinforcement-learning/in-jax.ipynb).
#
# All inputs are float32 `jax.Array`s of shape `(T,)` (one environment's rollout of `T` steps)
# or `(B,)` (a minibatch); `terminated` and `truncated` hold 0.0 or 1.0; return float32 arrays
# too. A backwards loop is best written with `jax.lax.scan(..., reverse=True)`, which also
# works under `jit`.

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
import jax
import jax.numpy as jnp

from helpers import jax as H

# %% [markdown]
# ## Exercise 1: discounted returns across episode ends
#
# Return `G` of shape `(T,)`, computed backwards from the last step:
#
# $$G_t = r_t + \gamma \cdot \begin{cases} 0 & \text{if terminated}_t = 1,\\
# V_t^{\text{next}} & \text{if truncated}_t = 1,\\
# V_{T-1}^{\text{next}} & \text{if } t = T - 1,\\
# G_{t+1} & \text{otherwise.}\end{cases}$$
#
# A terminated step has no future: the task ended. A truncated step was cut by the time
# limit, and the last step of the rollout stops mid-episode: both bootstrap from the critic's
# value of the state they reached.
#
# `next_values[t]` is the critic's value of the state step `t` led to (at an episode end,
# the state the episode stopped in, not the next episode's first state). A step can be both
# terminated and truncated (the pole falls on the time limit's last step): the task ended,
# so the first case wins.


# %%
def discounted_returns(rewards, terminated, truncated, next_values, *, gamma):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab07.check_returns(discounted_returns)

# %% [markdown]
# ## Exercise 2: generalised advantage estimation
#
# Return `(advantages, returns)`, both `(T,)`. With $d_t = \max(\text{terminated}_t,
# \text{truncated}_t)$:
#
# $$\delta_t = r_t + \gamma\, V_t^{\text{next}}\,(1 - \text{terminated}_t) - V_t,$$
#
# $$A_t = \delta_t + \gamma\lambda\,(1 - d_t)\,A_{t+1},\quad A_T = 0,$$
#
# and `returns = advantages + values`, the critic's targets. Only `terminated` removes the
# bootstrap from $\delta_t$; both kinds of end stop the advantage from flowing back across
# the boundary.


# %%
def gae(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab07.check_gae(gae)

# %% [markdown]
# ## Exercise 3: PPO's clipped loss
#
# Return `(policy_loss, value_loss)`, two scalar arrays, for a minibatch:
#
# * normalise the advantages, $\hat A = (A - \bar A) / (\operatorname{std}(A) + 10^{-8})$
#   (population std: `A.std()`);
# * $\rho = \exp(\log\pi_{\text{new}} - \log\pi_{\text{old}})$, its clipped copy
#   $\tilde\rho = \operatorname{clip}(\rho, 1 - \epsilon, 1 + \epsilon)$ ($\epsilon$ is the
#   argument `clip`, e.g. 0.2), and
#   `policy_loss` $= -\operatorname{mean}(\min(\rho\hat A,\ \tilde\rho\hat A))$;
# * the value target is fixed by the rollout, `returns = advantages + old_values` (raw
#   advantages), and `value_loss` $= \tfrac12 \operatorname{mean}((V_{\text{new}} -
#   \text{returns})^2)$.
#
# The check also takes `jax.grad` of both losses, with respect to `new_log_probs` and
# `new_values`: build them from `jnp` operations (no NumPy, `float(...)` or
# `jax.lax.stop_gradient` on the way), or they would train nothing.


# %%
def ppo_loss(new_log_probs, old_log_probs, advantages, old_values, new_values, *, clip):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab07.check_ppo_loss(ppo_loss)

# %% [markdown]
# ## Exercise 4: V-trace targets
#
# PPO learns from rollouts that its current policy collected. In IMPALA
# {cite}`espeholt2018impala` many actors collect rollouts with copies of the policy a few
# updates old, a *behaviour policy* $\mu$, while the learner trains $\pi$; GAE's targets would
# then estimate the value of $\mu$, not of $\pi$. V-trace corrects them with importance
# weights, truncated so that they stay small: it is exercise 2's backward recursion with
# $\lambda = 1$ and a weight per step. With $\ell_t$ = `log_rhos[t]`, the log of the ratio
# $\pi(a_t \mid x_t) / \mu(a_t \mid x_t)$, and $d_t = \max(\text{terminated}_t,
# \text{truncated}_t)$:
#
# $$\rho_t = \min\left(\bar\rho,\ e^{\ell_t}\right),\qquad
# c_t = \min\left(\bar c,\ e^{\ell_t}\right),$$
#
# $$\delta_t = \rho_t\left(r_t + \gamma\, V_t^{\text{next}}\,(1 - \text{terminated}_t) -
# V_t\right),$$
#
# $$v_t - V_t = \delta_t + \gamma\, c_t\,(1 - d_t)\,(v_{t+1} - V_{t+1}),$$
#
# where no step follows the last, $t = T - 1$: take $v_T - V_T = 0$ there (as exercise 2's
# $A_T = 0$).
#
# Return `(vs, pg_advantages)`, both `(T,)`: `vs` $= v_t$, the critic's targets, and the
# advantages for the policy gradient, $A^{\text{pg}}_t = \rho_t\,(r_t + \gamma\,\hat
# v_{t+1} - V_t)$, with the next state's target taken as in exercise 1 (the first case that
# applies):
#
# $$\hat v_{t+1} = \begin{cases} 0 & \text{if terminated}_t = 1,\\
# V_t^{\text{next}} & \text{if truncated}_t = 1,\\
# V_{T-1}^{\text{next}} & \text{if } t = T - 1,\\
# v_{t+1} & \text{otherwise.}\end{cases}$$
#
# After a truncated step, $v_{t+1}$ belongs to the next episode; after the last step, no
# step follows in the rollout.
#
# So the episode ends work as in exercises 1 and 2: only `terminated` removes the bootstrap,
# from $\delta_t$ and from $\hat v_{t+1}$; both kinds of end stop the recursion; a step both
# terminated and truncated has no future.
#
# The two weights clip the same ratio at two levels. $\bar\rho$ weights each TD error and
# decides what the targets converge to: the value of $\pi$ when $\bar\rho = \infty$,
# otherwise that of a policy between $\mu$ and $\pi$. $\bar c$ weights what flows back from
# later steps, as $\lambda$ does in GAE, and sets how fast they converge; the paper assumes
# $\bar\rho \ge \bar c$. `log_rhos` is a float32 array `(T,)` like the other inputs;
# `gamma`, `rho_bar` and `c_bar` are Python floats (`float("inf")`: no clipping), and
# `jnp.minimum(rho_bar, ratio)` clips an array at a number (arithmetic on a bar, such as
# `rho_bar - jax.nn.relu(rho_bar - ratio)`, turns inf into NaN). The check runs the three
# rollouts of exercises 1 and 2, with ratios below, between and above the bars, $(\bar\rho,
# \bar c)$ = (1, 1), (2, 0.9) and (1.5, 0.6), then the first again with both bars inf, and
# compares with a numpy answer that
# [`tests/labs/test_lab07.py`](https://github.com/pytorch-jax-course/pytorch-jax-course/blob/main/tests/labs/test_lab07.py) proves equal to the paper's sum, $v_s = V(x_s) + \sum_{t \ge s}
# \gamma^{t-s} \left(\prod_{i=s}^{t-1} c_i\right) \delta_t$.


# %%
def vtrace(
    rewards,
    values,
    next_values,
    terminated,
    truncated,
    log_rhos,
    *,
    gamma,
    rho_bar,
    c_bar,
):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab07.check_vtrace(vtrace)

# %% [markdown]
# What V-trace adds to GAE. On-policy ($\mu = \pi$, `log_rhos` all 0) with $\bar\rho = \bar c
# = 1$, every weight is 1 and V-trace is exercise 2's GAE with $\lambda = 1$: `vs - values`
# and `pg_advantages` are its advantages, and `vs` is exercise 1's return. Off-policy, the
# cell below draws 1,000 behaviour policies for one rollout, the ratio $\pi/\mu$ of each step
# log-normal with mean 1 (as $\mathbb{E}_\mu[\pi/\mu] = 1$), and compares `vs[0]` over them,
# all 1,000 in one call of your function under `jax.vmap` (one with Python branches on values
# cannot be vmapped; the cell then calls it on 200, one at a time). Without clipping
# ($\bar\rho = \bar c = \infty$, importance sampling) its mean is the on-policy target, up to
# sampling noise (the products of ratios are skewed, so a sample mean falls below it more
# often than above), and its spread is wide; clipped at 1, the spread narrows and the mean moves
# away: truncation trades variance for bias.

# %%
try:  # runs once exercises 1, 2 and 4 are solved
    k_values, k_next, k_ends, k_mu = jax.random.split(jax.random.key(0), 4)
    T, gamma = 12, 0.9
    rewards = jnp.ones(T)  # CartPole's +1 a step
    values = 5 * jax.random.uniform(k_values, (T,))  # a critic's guesses
    next_values = jnp.append(values[1:], 5 * jax.random.uniform(k_next))
    terminated = jnp.zeros(T).at[4].set(1.0)  # the pole falls at step 4
    truncated = jnp.zeros(T).at[8].set(1.0)  # the time limit cuts the next episode at 8
    # at an episode end: V(the state it stopped in), not V(the next episode's first)
    next_values = next_values.at[jnp.array([4, 8])].set(
        5 * jax.random.uniform(k_ends, (2,))
    )
    rollout = (rewards, values, next_values, terminated, truncated)

    vs, pg = vtrace(*rollout, jnp.zeros(T), gamma=gamma, rho_bar=1.0, c_bar=1.0)
    adv, _ = gae(*rollout, gamma=gamma, lam=1.0)
    G = discounted_returns(rewards, terminated, truncated, next_values, gamma=gamma)
    print("on-policy; adv: GAE's advantages with lam = 1, G: exercise 1's returns")
    print(f"  max |(vs - values) - adv| {jnp.abs(vs - values - adv).max():.1e}")
    print(f"  max |pg_advantages - adv| {jnp.abs(pg - adv).max():.1e}")
    print(f"  max |vs - G|              {jnp.abs(vs - G).max():.1e}")

    def first_target(log_rhos, bar):  # vs[0] for one behaviour policy
        targets, _ = vtrace(*rollout, log_rhos, gamma=gamma, rho_bar=bar, c_bar=bar)
        return targets[0]

    sigma = 0.5  # log(pi / mu) ~ N(-sigma^2 / 2, sigma^2), so pi / mu has mean 1
    log_rhos = -(sigma**2) / 2 + sigma * jax.random.normal(k_mu, (1000, T))
    print(f"off-policy vs[0] over behaviour policies (on-policy: {vs[0]:.3f}):")

    def first_targets(bar):  # vs[0] for every behaviour policy, in one vmapped call
        try:
            return jax.vmap(first_target, in_axes=(0, None))(log_rhos, bar)
        except jax.errors.JAXTypeError:
            # a vtrace with Python branches on values: one call per policy
            return jnp.array([first_target(row, bar) for row in log_rhos[:200]])

    for bar in (float("inf"), 1.0):
        first = first_targets(bar)
        mean, std = first.mean(), first.std(ddof=1)
        se = std / len(first) ** 0.5  # the mean's standard error
        print(
            f"  rho_bar = c_bar = {bar}: {len(first)} policies, "
            f"mean {mean:.3f} ± {se:.3f}, std {std:.3f}"
        )
except NotImplementedError:
    print("solve exercises 1, 2 and 4 first")

# %% [markdown]
# Done. Chapter 7's [JAX notebook](../../chapters/07-reinforcement-learning/in-jax.ipynb)
# trains PPO with exercises 1-3's pieces on a CartPole written in JAX. IMPALA's learner trains
# on exercise 4's targets instead: `vs` for the critic, `pg_advantages` for the policy.
