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
# # Lab 8: Adam, AdamW, a warmup + cosine schedule and Lion in JAX
#
# Four exercises, three on chapter 8: Adam with bias correction and L2 weight decay as an
# Optax-style gradient transformation, the same with decoupled weight decay (AdamW), and an
# Optax-compatible learning-rate schedule with a linear warmup followed by cosine annealing;
# and one beyond it, Lion, an optimizer that keeps one state instead of Adam's two. Each
# exercise is a function. Replace the line `raise NotImplementedError(...)` with your
# code, run the cell, then run the check below it: a check prints ✅ when your function is
# right, or ❌ with what it expected and a hint.
#
# The checks build your transformation, run it for several steps on three cases (the
# schedule on two) and compare with answers computed independently ([`tests/labs/test_lab08.py`](https://github.com/pytorch-jax-course/pytorch-jax-course/blob/main/tests/labs/test_lab08.py)
# proves those answers equal `optax.adam`, `optax.adamw`,
# `optax.warmup_cosine_decay_schedule` and `optax.lion`); they never look at your code, except that those
# library functions are the answer key: the exercises ask you to write their rules out, and a
# call of one from your code fails the check.
#
# The solved lab: [Lab 8 solutions in JAX](../../solutions/08-optimizers/in-jax.ipynb).

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
import numpy as np
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
# $$g = \text{grad} + \lambda\,\theta,\quad m \leftarrow \beta_1 m + (1-\beta_1) g,$$
# $$v \leftarrow \beta_2 v + (1-\beta_2) g^2,\quad t \leftarrow t + 1,$$
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
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


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
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


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
# $$\eta(t) = \text{init} + (\text{peak} - \text{init})\,\frac{t}{W} \quad (t < W),$$
#
# $$
# \begin{gathered} \eta(t) = \text{end} + (\text{peak} - \text{end})\,\frac{1 + \cos(\pi s / S)}{2}, \\
# s = t - W,\; S = T - W \quad (t \ge W), \end{gathered}
# $$
#
# with $W$ = `warmup_steps` and $T$ = `decay_steps`, which counts the warmup steps too (as in
# Optax). The check covers steps 0 to `decay_steps` and calls your schedule under `jax.jit`,
# where the step is a traced array. Write it
# out: a call of `optax.warmup_cosine_decay_schedule` or of the schedules it is made of
# (`linear_schedule`, `cosine_decay_schedule`, `join_schedules`) fails the check.


# %%
def warmup_cosine(init_value, peak_value, warmup_steps, decay_steps, end_value):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab08.check_warmup_cosine(warmup_cosine)

# %% [markdown]
# ## Exercise 4: Lion
#
# Adam keeps two running averages per parameter, $m$ and $v$, and divides one by the root of
# the other, so that each coordinate's step is scaled by its own gradient statistics. Lion
# {cite}`chen2023symbolic` (EvoLved Sign Momentum), which a program search over update rules
# found, keeps only the momentum and throws the scale away: the step is the **sign** of an
# interpolation of the momentum and this gradient,
#
# $$c = \beta_1 m + (1-\beta_1)\, g,\qquad
# \theta \leftarrow \theta - \eta\,\big(\operatorname{sign}(c) + \lambda\,\theta\big),$$
#
# $$m \leftarrow \beta_2 m + (1-\beta_2)\, g.$$
#
# Two betas with two jobs: $\beta_1$ (`b1`, 0.9 in the paper) mixes this step's direction,
# $\beta_2$ (`b2`, 0.99) tracks the momentum, which is updated only **after** the step. What
# this buys:
#
# - **one state instead of two**: $m$ only, no $v$ (and no step count, since there is no bias
#   correction), so half of Adam's optimizer memory;
# - **every coordinate moves by exactly $\pm\eta$** before the decay, whatever its
#   gradient's size (0 where $c = 0$: $\operatorname{sign}(0) = 0$). Those steps are larger
#   than Adam's, whose normalized steps are mostly below 1 per coordinate, so the paper
#   recommends a learning rate 3-10 times smaller than AdamW's and a weight decay 3-10 times
#   larger, which keeps the decay's strength $\eta\lambda$ about the same. The decay is
#   decoupled, as in AdamW: it is not part of the gradient, which the sign would flatten.
#
# Return `optax.GradientTransformation(init, update)`, as `optax.lion(learning_rate, b1, b2,
# weight_decay=weight_decay)` does (`learning_rate` is a float here, not a schedule): `init(params)` builds the state, the momentum (zeros shaped
# like `params`); `update(grads, state, params)` returns `(updates, new_state)`, the update
# being $-\eta\,(\operatorname{sign}(c) + \lambda\theta)$ since `optax.apply_updates` adds
# it (return the pair in that order). The check runs six steps on each of three cases,
# `update` under `jax.jit`, so each leaf is a traced array: no Python `if` on its values. One
# case has gradients exactly 0 (as an unused embedding row's), where $c = 0$ and only the
# decay may move the parameter; skip no coordinate there: the momentum decays too,
# $m \leftarrow \beta_2 m$, wherever $g = 0$. The same case has gradients of $10^{-9}$,
# whose coordinates move by exactly $\eta$ too. Write Lion yourself: a call of `optax.lion`
# or `optax.scale_by_lion` (by any module path) fails the check.


# %%
def lion(learning_rate, b1, b2, weight_decay):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab08.check_lion(lion)

# %% [markdown]
# Lion against your AdamW (exercise 2) on a small least-squares problem (10 unknowns, noise of
# variance 0.01), 80 steps from zero, Lion with a 6 times smaller learning rate and a 10 times
# larger weight decay, as the paper advises; then the size of Lion's last step, coordinate by
# coordinate, without the decay.

# %%
rng = np.random.default_rng(2)  # the same problem as in the PyTorch lab
A = jnp.asarray(rng.normal(size=(64, 10)), jnp.float32)
b = A @ jnp.asarray(rng.normal(size=10), jnp.float32)
b = b + 0.1 * jnp.asarray(rng.normal(size=64), jnp.float32)


def loss(params):
    return jnp.mean((A @ params["x"] - b) ** 2)


def train(tx, steps=80):
    params = {"x": jnp.zeros(10)}
    state = tx.init(params)
    update = jax.jit(tx.update)
    for _ in range(steps):
        before = params
        updates, state = update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    return before, params


try:  # runs once exercises 2 and 4 are solved
    _, params = train(adamw(0.3, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.01))
    print(f"AdamW, lr 0.3:  final loss {float(loss(params)):.4f}")
    lr, wd = 0.05, 0.1
    before, params = train(lion(lr, b1=0.9, b2=0.99, weight_decay=wd))
    print(f"Lion,  lr 0.05: final loss {float(loss(params)):.4f}")
    # the decay taken out
    step = jnp.abs(before["x"] * (1 - lr * wd) - params["x"]) / lr
    sizes = sorted(set(np.round(np.asarray(step), 4).tolist()))
    print(f"Lion's last step / lr, all 10 coordinates: {sizes}")
except NotImplementedError:
    print("solve exercise 4 first (and exercise 2, whose AdamW it races)")

# %% [markdown]
# Read the two losses with the last line in mind: with a constant learning rate every
# coordinate of Lion still moves by $\pm\eta$ at the end, so it keeps stepping across the
# minimum instead of settling; the paper trains it, as AdamW, with a decaying schedule such
# as exercise 3's. 80 steps on one small problem are no verdict on either method.

# %% [markdown]
# Done. Chapter 8's [JAX notebook](../../chapters/08-optimizers/in-jax.ipynb) chains these
# rules from smaller transformations and runs the schedule on MNIST.
