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
# # Lab 7: returns, GAE and PPO's clipped loss in JAX
#
# Three exercises on chapter 7: the discounted returns of a rollout that crosses episode ends,
# generalised advantage estimation (GAE) over the same rollout, and PPO's clipped policy loss
# with its value loss. Each exercise is a function. Replace the line
# `raise NotImplementedError(...)` with your code, run the cell, then run the check below it: a
# check prints ✅ when your function is right, or ❌ with what it expected and a hint.
#
# The checks call your functions on rollouts with both kinds of episode end and compare with
# answers computed independently (`tests/labs/test_lab07.py` proves those answers equal the
# chapter's `H.rl.gae` and `H.rl.ppo_loss`); they never look at your code. The solved lab is
# [`solutions/07-reinforcement-learning/in-jax.ipynb`](../../solutions/07-reinforcement-learning/in-jax.ipynb).
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
# $$G_t = r_t + \gamma \cdot \begin{cases} 0 & \text{terminated}_t = 1 \text{ (the task ended: no future)}\\
# V_t^{\text{next}} & \text{truncated}_t = 1 \text{ (cut by the time limit: bootstrap)}\\
# V_{T-1}^{\text{next}} & t = T - 1 \text{ (the rollout stops mid-episode: bootstrap)}\\
# G_{t+1} & \text{otherwise.}\end{cases}$$
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
# $$\delta_t = r_t + \gamma\, V_t^{\text{next}}\,(1 - \text{terminated}_t) - V_t,\qquad
# A_t = \delta_t + \gamma\lambda\,(1 - d_t)\,A_{t+1},\quad A_T = 0,$$
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
# * $\rho = \exp(\log\pi_{\text{new}} - \log\pi_{\text{old}})$ and
#   `policy_loss` $= -\operatorname{mean}\left(\min(\rho\hat A,\;
#   \operatorname{clip}(\rho, 1 - \epsilon, 1 + \epsilon)\,\hat A)\right)$;
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
# Done. Chapter 7's [JAX notebook](../../chapters/07-reinforcement-learning/in-jax.ipynb)
# trains PPO with these pieces on a CartPole written in JAX.
