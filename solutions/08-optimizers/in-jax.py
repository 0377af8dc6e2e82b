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
# # Lab 8: Adam and a warmup + cosine schedule in JAX
#
# Three exercises on chapter 8: Adam with bias correction and L2 weight decay as an
# Optax-style gradient transformation, the same with decoupled weight decay (AdamW), and an
# Optax-compatible learning-rate schedule with a linear warmup followed by cosine annealing.
# Each exercise is a function. Replace the line `raise NotImplementedError(...)` with your
# code, run the cell, then run the check below it: a check prints ✅ when your function is
# right, or ❌ with what it expected and a hint.
#
# The checks build your transformation, run it for several steps on three cases (the
# schedule on two) and compare with answers computed independently (`tests/labs/test_lab08.py`
# proves those answers equal `optax.adam`, `optax.adamw` and
# `optax.warmup_cosine_decay_schedule`); they never look at your code, except that those
# library functions are the answer key: the exercises ask you to write their rules out, and a
# call of one from your code fails the check. The solved lab is
# [`solutions/08-optimizers/in-jax.ipynb`](../../solutions/08-optimizers/in-jax.ipynb).

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
import optax

from helpers import jax as H

# %% [markdown]
# ## Exercise 1: Adam with L2 weight decay, as a gradient transformation
#
# Return `optax.GradientTransformation(init, update)`: `init(params)` builds the state (the
# number of steps taken so far, starting at 0, and the moments `m`, `v`, zeros shaped like
# `params`); `update(grads, state, params)` returns `(updates, new_state)`, where the updates
# are what `optax.apply_updates` adds to the parameters. The check compares with
# `optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(...))`, Adam with the L2
# penalty added to the gradient:
#
# $$g = \text{grad} + \lambda\,\theta,\quad m \leftarrow \beta_1 m + (1-\beta_1) g,\quad
# v \leftarrow \beta_2 v + (1-\beta_2) g^2,\quad t \leftarrow t + 1,$$
# $$\text{update} = -\eta\, \frac{m / (1-\beta_1^{t})}{\sqrt{v / (1-\beta_2^{t})} + \epsilon}.$$
#
# Count the step before the correction: $t = 1$ at the first step; $\epsilon$ goes outside
# the square root (one case has gradients as small as $\epsilon$, where that matters). Work on
# pytrees with `jax.tree.map`.
#
# Write Adam yourself: a call of `optax.adam`, `optax.adamw` or `optax.scale_by_adam` fails the
# check. `optax.chain` and `optax.add_decayed_weights` are allowed: they hold no part of Adam
# (the decay is the one line $g = \text{grad} + \lambda\theta$), and the exercise is Adam's
# moments, count and bias correction.


# %%
def adam(learning_rate, b1, b2, eps, weight_decay):
    ### BEGIN SOLUTION
    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return (jnp.zeros([], jnp.int32), zeros, zeros)

    def update(grads, state, params):
        count, m, v = state
        g = jax.tree.map(lambda g, p: g + weight_decay * p, grads, params)
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g**2, v, g)
        count = count + 1
        c1, c2 = 1 - b1**count, 1 - b2**count
        updates = jax.tree.map(
            lambda m, v: -learning_rate * (m / c1) / (jnp.sqrt(v / c2) + eps), m, v
        )
        return updates, (count, m, v)

    return optax.GradientTransformation(init, update)
    ### END SOLUTION


# %%
H.lab08.check_adam(adam)

# %% [markdown]
# ## Exercise 2: AdamW, decoupled weight decay
#
# The same, now as `optax.adamw`: the gradient is left alone, and the decay is added to
# Adam's direction after the scaling, $\text{update} = -\eta\,(\text{Adam's direction} +
# \lambda\theta)$. Calling `optax.adamw` (or `adam`, `scale_by_adam`) fails the check.


# %%
def adamw(learning_rate, b1, b2, eps, weight_decay):
    ### BEGIN SOLUTION
    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return (jnp.zeros([], jnp.int32), zeros, zeros)

    def update(grads, state, params):
        count, m, v = state
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g**2, v, grads)
        count = count + 1
        c1, c2 = 1 - b1**count, 1 - b2**count
        updates = jax.tree.map(
            lambda m, v, p: (
                -learning_rate
                * ((m / c1) / (jnp.sqrt(v / c2) + eps) + weight_decay * p)
            ),
            m,
            v,
            params,
        )
        return updates, (count, m, v)

    return optax.GradientTransformation(init, update)
    ### END SOLUTION


# %%
H.lab08.check_adamw(adamw)

# %% [markdown]
# ## Exercise 3: linear warmup, then cosine annealing
#
# Return a **schedule**, a function of the step count that gives the learning rate, as
# `optax.warmup_cosine_decay_schedule(init_value, peak_value, warmup_steps, decay_steps,
# end_value)` does: a straight line from `init_value` at step 0 to `peak_value` at step
# `warmup_steps`, then half a cosine down to `end_value` at step `decay_steps`:
#
# $$\eta(t) = \text{init} + (\text{peak} - \text{init})\,\frac{t}{W} \quad (t < W), \qquad
# \eta(t) = \text{end} + (\text{peak} - \text{end})\,\frac{1 + \cos(\pi s / S)}{2},\;
# s = t - W,\; S = T - W \quad (t \ge W).$$
#
# The check calls your schedule under `jax.jit`, where the step is a traced array. Write it
# out: a call of `optax.warmup_cosine_decay_schedule` or of the schedules it is made of
# (`linear_schedule`, `cosine_decay_schedule`, `join_schedules`) fails the check.


# %%
def warmup_cosine(init_value, peak_value, warmup_steps, decay_steps, end_value):
    ### BEGIN SOLUTION
    def schedule(step):
        ramp = init_value + (peak_value - init_value) * step / warmup_steps
        s, length = step - warmup_steps, decay_steps - warmup_steps
        cos = (
            end_value
            + (peak_value - end_value) * (1 + jnp.cos(jnp.pi * s / length)) / 2
        )
        return jnp.where(step < warmup_steps, ramp, cos)

    return schedule
    ### END SOLUTION


# %%
H.lab08.check_warmup_cosine(warmup_cosine)

# %% [markdown]
# Done. Chapter 8's [JAX notebook](../../chapters/08-optimizers/in-jax.ipynb) chains these
# rules from smaller transformations and runs the schedule on MNIST.
