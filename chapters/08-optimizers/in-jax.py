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
# # 8. Optimizers and learning-rate schedules: JAX
#
# This is the JAX half of chapter 8; the [PyTorch half](in-pytorch.ipynb) tells the same story
# in the same order. Every earlier chapter called `optax.adam` and moved on. Here the optimizer
# is the subject:
#
# * the update rules of SGD, momentum, Nesterov, RMSProp, Adam and AdamW, written out as
#   Optax-style gradient transformations, chained, and checked against Optax;
# * how they move on three 2-D test functions, drawn on contour maps;
# * the same MLP on MNIST trained with each, a learning-rate x batch-size sweep and a
#   learning-rate range test;
# * learning-rate schedules written by hand and checked against `optax.schedules`, and what
#   they change on the real task;
# * practice that follows: clipping, which parameters get weight decay, warmup, batch size.

# %% [markdown] tags=["notebook-only"]
# Every number on this page is printed by the code above it; the cell below says at which scale
# (`smoke`, `cpu` or `gpu`) this page was produced.

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

# %% tags=["reference"]
import itertools
import math
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from helpers import jax as H

# Every size this notebook uses comes from helpers/scale/training.py.
sizes = H.sizes("optimizers")
H.runtime_info()

# %% [markdown] tags=["shared"]
# ## 8.1 Update rules from scratch
#
# Training moves the parameters $\theta$ against the gradient $g_t = \nabla_\theta L$ of the
# loss on the current mini-batch. The optimizers differ in what they remember between steps.
# With learning rate $\eta$ and weight decay $\lambda$:
#
# | optimizer | state | update |
# |---|---|---|
# | SGD | none | $\theta \leftarrow \theta - \eta\, g$ |
# | momentum {cite}`polyak1964some,sutskever2013importance` | velocity $b$ | $b \leftarrow \mu b + g,\quad \theta \leftarrow \theta - \eta\, b$ |
# | Nesterov {cite}`nesterov1983method,sutskever2013importance` | velocity $b$ | $b \leftarrow \mu b + g,\quad \theta \leftarrow \theta - \eta\,(g + \mu b)$ |
# | RMSProp {cite}`tieleman2012rmsprop` | mean square $v$ | $v \leftarrow \alpha v + (1-\alpha) g^2,\quad \theta \leftarrow \theta - \eta\, g / (\sqrt{v} + \epsilon)$ |
# | Adam {cite}`kingma2015adam` | $m$, $v$, step $t$ | $m \leftarrow \beta_1 m + (1-\beta_1) g,\; v \leftarrow \beta_2 v + (1-\beta_2) g^2,\; t \leftarrow t + 1$ |
# | | | $\hat m = m / (1-\beta_1^t),\; \hat v = v / (1-\beta_2^t),\quad \theta \leftarrow \theta - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)$ |
# | AdamW {cite}`loshchilov2019decoupled` | as Adam | Adam's step plus $-\eta \lambda \theta$, the decay taken apart from the gradient |
#
# Two details matter. **Bias correction**: $m$ and $v$ start at 0, so early on they are
# shrunk towards 0; dividing by $1 - \beta^t$ (with $t = 1$ at the first step, never 0) undoes
# that. **L2 versus decoupled decay**: the classic *L2 penalty* adds $\lambda \theta$ to the
# gradient, $g \leftarrow g + \lambda\theta$, before any of the rules above; in Adam that term
# is then divided by $\sqrt{\hat v}$, so parameters with large gradients are barely decayed.
# AdamW *decouples* the decay from the gradient and shrinks every parameter by the same
# factor {cite}`loshchilov2019decoupled`. For plain SGD the two are the same thing. One
# difference from the paper: its Algorithm 2 multiplies Adam's step by $\alpha \eta_t$ (a base
# rate $\alpha$ times a schedule multiplier $\eta_t$) but the decay $\lambda\theta$ by $\eta_t$
# alone; both libraries, and the code here, multiply the decay by the whole learning rate
# $\eta$, as in the table, so their $\lambda$ is the paper's divided by $\alpha$.
#
# The momentum rows use the form both libraries implement (the velocity sums gradients; the
# learning rate multiplies it when it is applied), which equals Sutskever et al.'s form for a
# constant learning rate; for Nesterov only after a change of variable: the parameters the
# libraries store are Sutskever et al.'s look-ahead point $\theta + \mu u$, where $u = -\eta b$
# is Sutskever et al.'s velocity. RMSProp's $\epsilon$ sits outside the root in PyTorch, as in the
# table, and inside it by default in Optax, $g / \sqrt{v + \epsilon}$; each notebook follows
# its library, and the two defaults differ as well ($\alpha$ = 0.99 in PyTorch, 0.9 in Optax).

# %% [markdown]
# Optax splits an optimizer into **gradient transformations**: pairs of pure functions
# `init(params) -> state` and `update(updates, state, params) -> (new_updates, new_state)`.
# Each does one thing (add weight decay, keep a momentum, divide by a root mean square, scale
# by minus the learning rate), and `chain` runs them in order, feeding each one's output to
# the next. The state is an explicit pytree returned by `update`: nothing is changed in place.
# Below, each piece written out, packed in `optax.GradientTransformation` (a named pair of
# functions, so Flax's `nnx.Optimizer` accepts ours like its own), then the six optimizers
# chained from them.


# %% tags=["reference"]
def chain(*transforms):
    """Run ``transforms`` in order; the state is the tuple of their states."""

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(updates, state, params=None):
        new_state = []
        for t, s in zip(transforms, state, strict=True):
            updates, s = t.update(updates, s, params)
            new_state.append(s)
        return updates, tuple(new_state)

    return optax.GradientTransformation(init, update)


def add_decayed_weights(weight_decay, mask=None):
    """updates + weight_decay * params (where ``mask(params)`` is True, if given)."""

    def init(params):
        return ()

    def update(updates, state, params=None):
        keep = jax.tree.map(lambda _: True, params) if mask is None else mask(params)
        decayed = jax.tree.map(
            lambda u, p, k: u + weight_decay * p if k else u, updates, params, keep
        )
        return decayed, state

    return optax.GradientTransformation(init, update)


def trace(decay, nesterov=False):
    """Momentum: b = decay * b + g; return b (or g + decay * b, Nesterov)."""

    def init(params):
        return jax.tree.map(jnp.zeros_like, params)

    def update(updates, state, params=None):
        b = jax.tree.map(lambda g, b: g + decay * b, updates, state)
        if nesterov:
            return jax.tree.map(lambda g, b: g + decay * b, updates, b), b
        return b, b

    return optax.GradientTransformation(init, update)


def scale_by_rms(decay=0.9, eps=1e-8):
    """RMSProp's scaling: v = decay * v + (1 - decay) * g^2; return g / sqrt(v + eps)."""

    def init(params):
        return jax.tree.map(jnp.zeros_like, params)

    def update(updates, state, params=None):
        v = jax.tree.map(lambda g, v: decay * v + (1 - decay) * g**2, updates, state)
        # Optax's default: eps inside the root
        return jax.tree.map(lambda g, v: g / jnp.sqrt(v + eps), updates, v), v

    return optax.GradientTransformation(init, update)


def scale_by_adam(b1=0.9, b2=0.999, eps=1e-8):
    """Adam's direction m_hat / (sqrt(v_hat) + eps), with bias correction."""

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return (jnp.zeros([], jnp.int32), zeros, zeros)  # (steps taken so far, m, v)

    def update(updates, state, params=None):
        count, m, v = state
        m = jax.tree.map(lambda g, m: b1 * m + (1 - b1) * g, updates, m)
        v = jax.tree.map(lambda g, v: b2 * v + (1 - b2) * g**2, updates, v)
        count = count + 1  # t = 1 at the first step
        correct1, correct2 = 1 - b1**count, 1 - b2**count  # bias correction
        direction = jax.tree.map(
            lambda m, v: (m / correct1) / (jnp.sqrt(v / correct2) + eps), m, v
        )
        return direction, (count, m, v)

    return optax.GradientTransformation(init, update)


def scale_by_learning_rate(learning_rate):
    """Multiply by -learning_rate; a callable is a schedule of the step count (0, 1, ...)."""

    def init(params):
        return jnp.zeros([], jnp.int32)  # steps taken so far

    def update(updates, count, params=None):
        lr = learning_rate(count) if callable(learning_rate) else learning_rate
        return jax.tree.map(lambda u: -lr * u, updates), count + 1

    return optax.GradientTransformation(init, update)


def sgd(learning_rate, momentum=None, nesterov=False):
    parts = [] if momentum is None else [trace(momentum, nesterov)]
    return chain(*parts, scale_by_learning_rate(learning_rate))


def rmsprop(learning_rate, decay=0.9, eps=1e-8):
    return chain(scale_by_rms(decay, eps), scale_by_learning_rate(learning_rate))


def adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8):
    return chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(learning_rate))


def adamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4, mask=None):
    """Decoupled decay: added to Adam's direction, after the scaling, not to the gradient."""
    return chain(
        scale_by_adam(b1, b2, eps),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def l2(weight_decay, optimizer):
    """The classic L2 penalty: weight_decay * params added to the gradient, first."""
    return chain(add_decayed_weights(weight_decay), optimizer)


# %% [markdown] tags=["shared"]
# **Checked against the library.** Each hand-written optimizer and the library's own start from
# the same parameters of a small network and see the same batches for 10 steps (each computing
# its own gradients); the table the cell prints gives the largest difference in any
# parameter after the last step. `tests/test_optimizers.py` runs the same comparison for
# several settings.

# %%
hand_and_library = {
    "SGD": (sgd(0.1), optax.sgd(0.1)),
    "momentum": (
        l2(1e-2, sgd(0.1, momentum=0.9)),
        optax.chain(optax.add_decayed_weights(1e-2), optax.sgd(0.1, momentum=0.9)),
    ),
    "Nesterov": (
        sgd(0.1, momentum=0.9, nesterov=True),
        optax.sgd(0.1, momentum=0.9, nesterov=True),
    ),
    "RMSProp": (rmsprop(1e-2), optax.rmsprop(1e-2)),
    "Adam + L2": (
        l2(0.1, adam(1e-2)),
        optax.chain(optax.add_decayed_weights(0.1), optax.adam(1e-2)),
    ),
    "AdamW": (adamw(1e-2, weight_decay=0.1), optax.adamw(1e-2, weight_decay=0.1)),
}


def small_loss(p, x):  # a small network's loss on a batch x: (B, 5)
    return jnp.mean((jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]) ** 2)


small_grad = jax.jit(jax.grad(small_loss))  # compiled once, shared by every run


def run_optimizer(tx, steps=10):
    """Parameters of a small fixed network after ``steps`` steps of ``tx``, as one vector."""
    # Test data from numpy: every run gets the same numbers, and no random-number program has
    # to be compiled for each shape.
    rng = np.random.default_rng(0)
    shapes = {"w1": (5, 8), "b1": (8,), "w2": (8, 3), "b2": (3,)}
    params = {
        k: jnp.asarray(rng.normal(size=s), jnp.float32) for k, s in shapes.items()
    }
    state = tx.init(params)
    for _ in range(steps):
        x = jnp.asarray(rng.normal(size=(16, 5)), jnp.float32)
        grads = small_grad(params, x)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return jnp.concatenate([v.ravel() for v in jax.tree.leaves(params)])


print(f"{'optimizer':<10} {'max |hand - optax|':>26}")
for name, (hand, library) in hand_and_library.items():
    diff = float(jnp.abs(run_optimizer(hand) - run_optimizer(library)).max())
    print(f"{name:<10} {diff:>26.2e}")
    assert diff < 1e-5, name  # float32

# %% [markdown] tags=["shared"]
# ## 8.2 Three 2-D test functions
#
# With two parameters we can watch an optimizer move. Three functions, each a known difficulty:
#
# * **Rosenbrock** $f(x, y) = (1-x)^2 + 100 (y - x^2)^2$: a curved, narrow valley; the minimum
#   $f = 0$ at $(1, 1)$.
# * **an ill-conditioned quadratic** $f(x, y) = \tfrac12 (x^2 + 50 y^2)$: curvatures 1 and 50,
#   condition number 50; the minimum $f = 0$ at the origin. Plain SGD must keep its step below
#   $2/50$ to stay stable in $y$, and then crawls along $x$.
# * **a saddle** $f(x, y) = x^2 - y^2$, started just off the ridge at $y = 10^{-3}$: the
#   gradient there is almost 0 in $y$; the question is how fast an optimizer escapes (we stop
#   when $f < -1$).
#
# Every optimizer gets a small grid of learning rates on each function, and we keep the one
# that reaches the tolerance in the fewest steps: comparing optimizers at one shared learning
# rate would mostly measure how well that rate suits each. The table counts the steps; "-"
# means the tolerance was not reached within the budget at any learning rate of the grid, and
# the rate shown is then the one that ended lowest.


# %%
def rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def quadratic(x, y):
    return 0.5 * (x**2 + 50 * y**2)


def saddle(x, y):
    return x**2 - y**2


# name: (function, start, tolerance on f: stop once f < tolerance)
problems = {
    "Rosenbrock": (rosenbrock, (-1.2, 1.0), 1e-4),
    "quadratic": (quadratic, (-4.0, 1.0), 1e-4),
    "saddle": (saddle, (-1.0, 1e-3), -1.0),
}
optimizers_2d = {
    "SGD": lambda lr: sgd(lr),
    "momentum": lambda lr: sgd(lr, momentum=0.9),
    "Nesterov": lambda lr: sgd(lr, momentum=0.9, nesterov=True),
    "RMSProp": lambda lr: rmsprop(lr),
    "Adam": lambda lr: adam(lr),
}
lr_grid = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]


def descend(make, steps):
    """Run one optimizer on every problem at every learning rate of the grid, all at once.

    ``jax.lax.switch`` picks the problem's function, ``jax.vmap`` (twice) runs one copy per
    problem and learning rate, ``jax.lax.scan`` the steps: one compiled program per optimizer.
    Returns {problem: (trajectories (len(lr_grid), steps + 1, 2), f along them
    (len(lr_grid), steps + 1))}.
    """
    functions = [f for f, _, _ in problems.values()]
    starts = jnp.array([start for _, start, _ in problems.values()])  # (P, 2)

    def one_run(k, lr):
        tx = make(lr)
        point = starts[k]  # (2,)
        grad = jax.grad(lambda p: jax.lax.switch(k, functions, p[0], p[1]))

        def step(carry, _):
            p, state = carry
            updates, state = tx.update(grad(p), state, p)
            p = p + updates
            return (p, state), p

        _, path = jax.lax.scan(step, (point, tx.init(point)), length=steps)
        return jnp.concatenate([point[None], path])  # (steps + 1, 2)

    every_lr = jax.vmap(one_run, in_axes=(None, 0))
    paths = jax.jit(jax.vmap(every_lr, in_axes=(0, None)))(
        jnp.arange(len(problems)), jnp.array(lr_grid)
    )  # (P, L, steps + 1, 2)
    paths = np.asarray(paths)
    with np.errstate(over="ignore", invalid="ignore"):  # diverged runs hold inf and NaN
        return {
            name: (paths[k], f(paths[k, ..., 0], paths[k, ..., 1]))
            for k, (name, (f, _, _)) in enumerate(problems.items())
        }


def steps_to(values, tolerance):
    """First step at which f < tolerance (NaN-safe), or None."""
    hit = np.flatnonzero(np.nan_to_num(values, nan=np.inf) < tolerance)
    return int(hit[0]) if len(hit) else None


best_2d = {}  # (problem, optimizer) -> (steps or None, lr, trajectory)
for oname, make in tqdm(optimizers_2d.items(), desc="2-D runs"):
    for pname, (paths, values) in descend(make, sizes.landscape_steps).items():
        tol = problems[pname][2]
        found = [(steps_to(v, tol), i) for i, v in enumerate(values)]
        reached = [(s, i) for s, i in found if s is not None]
        # Fewest steps; if none reached the tolerance, the lowest final f.
        s, i = (
            min(reached)
            if reached
            else (None, int(np.nanargmin(np.nan_to_num(values[:, -1], nan=np.inf))))
        )
        best_2d[pname, oname] = (s, lr_grid[i], paths[i])

print(
    f"steps to tolerance (best learning rate of the grid), budget {sizes.landscape_steps}"
)
print(f"{'optimizer':<10}" + "".join(f"{p:>22}" for p in problems))
for oname in optimizers_2d:
    cells = []
    for pname in problems:
        s, lr, _ = best_2d[pname, oname]
        cells.append(f"{'-' if s is None else s:>12} (lr {lr:g})")
    print(f"{oname:<10}" + "".join(f"{c:>22}" for c in cells))

# %%
# One panel per row, so that each keeps its size on a narrow (phone) screen.
fig, axes = plt.subplots(3, 1, figsize=(7, 15))
views = {
    "Rosenbrock": (-2, 2, -1, 3),
    "quadratic": (-5, 5, -2, 2),
    "saddle": (-1.5, 1.5, -2, 2),
}
for ax, (pname, (f, start, _)) in zip(axes, problems.items(), strict=True):
    x0, x1, y0, y1 = views[pname]
    gx, gy = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
    z = f(gx, gy)
    levels = np.logspace(-1, 3.5, 20) if pname == "Rosenbrock" else 20
    ax.contour(gx, gy, z, levels=levels, cmap="Greys", linewidths=0.6)
    for k, oname in enumerate(optimizers_2d):
        s, lr, path = best_2d[pname, oname]
        ax.plot(*path.T, "-", color=f"C{k}", lw=1.2, label=oname)
    ax.plot(*start, "ko", label="start")
    ax.set(
        xlim=(x0, x1), ylim=(y0, y1), xlabel="x (parameter 1)", ylabel="y (parameter 2)"
    )
    ax.set_title(pname)
fig.suptitle(
    "Trajectories at each optimizer's best learning rate\nof the grid (rates in the table)"
)
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=11)
fig.tight_layout(rect=(0, 0.05, 1, 1))  # leave the bottom strip to the legend
plt.show()

# %% [markdown] tags=["shared"]
# Read the table and the maps together. On the quadratic, SGD's
# learning rate is capped by the steep direction (above $2/50$ it diverges in $y$), so it
# crawls along the shallow $x$; momentum and Nesterov accumulate speed along $x$. RMSProp and
# Adam divide each coordinate by its own gradient scale, so each coordinate moves by about
# $\eta$ per step whatever its curvature: the conditioning stops mattering, but $\eta$ now
# bounds the speed, so the largest rate of the grid bounds theirs. RMSProp's first steps are larger: its $v$ starts at zero and,
# unlike Adam's, is not bias-corrected, so after $t$ steps of a constant gradient it moves by
# $\eta/\sqrt{1-\alpha^t}$, which is $\eta/\sqrt{1-\alpha}$ at the first step: $10\eta$ with
# PyTorch's default $\alpha = 0.99$ (the PyTorch page), about $3.2\eta$ with Optax's 0.9 (the
# JAX page). That is why RMSProp's row differs between the two pages' tables. At the saddle the
# same division turns the tiny gradient in $y$ into a full-sized step (the saddle column).
# Rosenbrock's valley is curved, so no per-coordinate scaling straightens it. These are
# two-parameter toys: they show what each rule does, not which one trains a network best.
# That is the next section.

# %% [markdown] tags=["shared"]
# ## 8.3 The real task: an MLP on MNIST
#
# The same MLP (`H.MLP`, the sizes of this scale), the same data, the same number of epochs and
# the same seed for every optimizer, trained with the hand-written optimizers above by the
# course's `fit`. Each optimizer gets the learning rate usually recommended for it (SGD 0.1,
# SGD with momentum 0.9 a tenth of that, RMSProp, Adam and AdamW $10^{-3}$); the sweep and
# the range test below then ask how much the rate matters.
#
# Two columns of the table need a word. `train loss` is the mean over the epoch's steps, logged
# while training, so in a one-epoch run it includes the first, untrained steps and can sit
# above `test loss`, which is measured after the last step. `seconds` is each run's wall time:
# in JAX it includes compiling that run's training step, and the first run (SGD) also compiles
# what the later runs reuse; PyTorch compiles nothing here.

# %%
x_train, y_train = H.load_mnist("train", limit=sizes.train_examples)
x_test, y_test = H.load_mnist("test", limit=sizes.test_examples)
x_train, x_test = H.images_to_vectors(x_train), H.images_to_vectors(x_test)  # (N, 784)
test_loader = H.ArrayLoader(x_test, y_test, 1024)
print(f"train {x_train.shape}, test {x_test.shape}, {sizes.epochs} epoch(s) per run")


def train(tx, *, batch_size=None, epochs=None, seed=0):
    """Train a fresh MLP with the gradient transformation ``tx``; return (optimizer, History).

    A schedule is part of ``tx`` (its scale_by_learning_rate counts the steps). The optimizer
    holds ``tx``'s state after training (8.5 reads a count from it); the PyTorch page returns
    the model instead.
    """
    H.seed_everything(seed)
    model = H.MLP(784, sizes.hidden, 10, rngs=nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    loader = H.ArrayLoader(
        x_train,
        y_train,
        batch_size or sizes.batch_size,
        shuffle=True,
        seed=seed,
        drop_last=True,
    )
    history = H.fit(
        model,
        optimizer,
        loader,
        epochs=epochs or sizes.epochs,
        eval_loader=test_loader,
        progress=False,
    )
    return optimizer, history


def smoke_caveat():
    """At `smoke` scale, print one line saying that the results above rank nothing."""
    if H.current_scale() == "smoke":
        print(
            "smoke scale: runs this short do not rank what they compare; "
            "read a run at cpu or gpu scale"
        )


def one_rate_caveat():
    """If the sweep's grid holds a single learning rate, say its "best" compares nothing."""
    if len(sizes.sweep_learning_rates) == 1:
        print(
            "the grid holds one learning rate at this scale: its 'best' compares nothing"
        )


contenders = {
    "SGD": lambda: sgd(0.1),
    "momentum": lambda: sgd(0.01, momentum=0.9),
    "Nesterov": lambda: sgd(0.01, momentum=0.9, nesterov=True),
    "RMSProp": lambda: rmsprop(1e-3),
    "Adam": lambda: adam(1e-3),
    "AdamW": lambda: adamw(1e-3, weight_decay=1e-2),
}
results = {}
for name, make in tqdm(contenders.items(), desc="optimizers"):
    start = time.perf_counter()
    _, history = train(make())
    results[name] = (history, time.perf_counter() - start)

print(
    f"{'optimizer':<10} {'train loss':>10} {'test loss':>10} {'test acc':>9} {'seconds':>8}"
)
for name, (h, seconds) in results.items():
    print(
        f"{name:<10} {h.last('train_loss'):>10.4f} {h.last('test_loss'):>10.4f}"
        f" {h.last('test_accuracy'):>9.4f} {seconds:>8.2f}"
    )
smoke_caveat()
assert (
    min(h.last("test_accuracy") for h, _ in results.values()) > 0.5
)  # learns, any scale

# %%
# Some curves coincide (see below): line style, width and staggered markers keep each visible.
line_styles = {
    "SGD": dict(ls="-", lw=3.5, alpha=0.45),
    "momentum": dict(ls="--", lw=1.6, marker="o"),
    "Nesterov": dict(ls=":", lw=2.0, marker="x"),
    "RMSProp": dict(ls="-.", lw=1.6, marker="^"),
    "Adam": dict(ls="-", lw=3.5, alpha=0.45),
    "AdamW": dict(ls="--", lw=1.6, marker="s"),
}
fig = H.plot_step_losses(
    {name: h.step_loss for name, (h, _) in results.items()},
    title=f"Optimizers on MNIST, JAX ({H.current_scale()} scale)",
    styles=line_styles,
)
plt.show()

# %% [markdown] tags=["shared"]
# Some curves lie on top of each other (the line styles keep each visible). SGD, momentum and
# Nesterov were given matching rates: with $\mu = 0.9$ the velocity builds up over about
# $1 / (1 - \mu) = 10$ steps to $g / (1 - \mu)$ where the gradient changes slowly, so the step
# of both momentum rules becomes $\eta\, g / (1 - \mu) = 0.01\, g / 0.1$, the same as SGD's
# $0.1\, g$. They differ in the first steps, where the momentum rules lag behind SGD, and
# wherever the gradient changes quickly, so a short run (`smoke` scale) can separate them.
# Adam and AdamW differ only by AdamW's decay, a shrink by
# $\eta \lambda = 10^{-3} \cdot 10^{-2} = 10^{-5}$ of each weight per step, so the thin AdamW
# line runs on top of the thick Adam one.

# %% [markdown] tags=["shared"]
# **Learning rate x batch size.** One optimizer, SGD with momentum 0.9, over a grid of learning
# rates and batch sizes, each cell a fresh run of the same number of epochs (so a smaller batch
# takes more steps). The colour is the test accuracy; a cell whose run diverged shows the
# accuracy of guessing.

# %%
sweep = np.zeros((len(sizes.sweep_batch_sizes), len(sizes.sweep_learning_rates)))
cells = list(
    itertools.product(
        enumerate(sizes.sweep_batch_sizes), enumerate(sizes.sweep_learning_rates)
    )
)
for (i, bs), (j, lr) in tqdm(cells, desc="lr x batch sweep"):
    _, h = train(sgd(lr, momentum=0.9), batch_size=bs, epochs=sizes.sweep_epochs)
    sweep[i, j] = h.last("test_accuracy")

fig, ax = plt.subplots(figsize=(7, 3.2))
image = ax.imshow(sweep, cmap="viridis", vmin=0, vmax=1, aspect="auto")
for (i, j), acc in np.ndenumerate(sweep):
    ax.text(
        j, i, f"{acc:.3f}", ha="center", va="center", color="w" if acc < 0.6 else "k"
    )
ax.set_xticks(
    range(len(sizes.sweep_learning_rates)),
    [f"{lr:g}" for lr in sizes.sweep_learning_rates],
)
ax.set_yticks(
    range(len(sizes.sweep_batch_sizes)), [str(b) for b in sizes.sweep_batch_sizes]
)
ax.set(
    xlabel="learning rate",
    ylabel="batch size (examples)",
    title=f"SGD + momentum, test accuracy after {sizes.sweep_epochs} epoch(s)",
)
fig.colorbar(image, label="test accuracy")
plt.show()
best_lr = {
    bs: sizes.sweep_learning_rates[int(np.argmax(row))]
    for bs, row in zip(sizes.sweep_batch_sizes, sweep, strict=True)
}
for bs, lr in best_lr.items():
    print(f"batch {bs:>4}: best learning rate of the grid {lr:g}")
one_rate_caveat()
smoke_caveat()

# %% [markdown] tags=["shared"]
# **The learning-rate range test** {cite}`smith2017cyclical`. In the paper the rate grows
# linearly over a few epochs and the accuracy curve gives two bounds for a cyclical schedule;
# the form used here, the rate growing exponentially and the loss read for its steepest fall,
# is the later variant popularised by fastai's
# [`lr_find`](https://docs.fast.ai/callback.schedule.html#learner.lr_find). One short run in
# which the learning rate grows exponentially, from $10^{-5}$ to 10, a little every step, while
# we record the loss. The loss first stays flat (steps too small to matter), then falls, then
# explodes. A good learning rate lies where it falls fastest, below the point of explosion; it
# costs one run of `range_test_steps` steps (300 at `cpu` scale; fewer if the loss explodes
# early) instead of a sweep of whole trainings. Single-batch losses are noisy, so both the
# stop and the reading use a moving average of 5 steps, and only the descent counts (up to
# the lowest average): a noisy dip after the lowest point is not a fast fall. The loop is
# written out: nothing but a schedule and a stop.


# %%
window = 5  # steps per moving average of the loss


def range_test(make_tx, lr_min=1e-5, lr_max=10.0, steps=sizes.range_test_steps):
    # The growing learning rate is a schedule of the step count, part of the transformation.
    def schedule(count):
        return lr_min * (lr_max / lr_min) ** (count / (steps - 1))

    model = H.MLP(784, sizes.hidden, 10, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, make_tx(schedule), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, y):
        loss, grads = nnx.value_and_grad(lambda m: H.cross_entropy(m(x), y))(model)
        optimizer.update(model, grads)
        return loss

    loader = H.ArrayLoader(
        x_train, y_train, sizes.batch_size, shuffle=True, drop_last=True
    )
    batches = itertools.chain.from_iterable(itertools.repeat(loader))
    lrs, losses, best = [], [], math.inf
    for k, (x, y) in zip(range(steps), batches, strict=False):  # x: (B, 784)
        loss = float(train_step(model, optimizer, x, y))
        lrs.append(schedule(k))
        losses.append(loss)
        recent = np.mean(losses[-window:])  # one noisy batch must not stop the run
        best = min(best, recent)
        if not math.isfinite(loss) or recent > 4 * best:
            break  # exploded: the rest of the range is useless
    return np.array(lrs), np.array(losses)


range_lrs, range_losses = range_test(lambda schedule: sgd(schedule, momentum=0.9))
smooth = np.convolve(range_losses, np.ones(window) / window, "valid")
half = window // 2
centre = range_lrs[half : len(range_lrs) - half]  # the middle step of each mean
# Only the descent counts: up to the lowest point of the mean, not the noise after it.
lowest = max(1, int(np.nanargmin(smooth)))
slope = np.gradient(smooth[: lowest + 1], np.log10(centre[: lowest + 1]))
steepest = centre[int(np.argmin(slope))]
fig, ax = plt.subplots(figsize=(7, 3.8))
ax.semilogx(range_lrs, range_losses, alpha=0.35, label="loss per step")
ax.semilogx(centre, smooth, label=f"mean of {window} steps")
ax.axvline(steepest, color="C3", ls="--", label=f"steepest descent, lr {steepest:.3g}")
ax.set(
    xlabel="learning rate (log scale)",
    ylabel="training loss (nats)",
    title="Learning-rate range test, SGD + momentum",
)
ax.legend()
plt.show()
print(
    f"range test: the loss falls fastest at lr {steepest:.3g}; "
    f"it stopped after {len(range_lrs)} steps"
)
sweep_best = best_lr.get(sizes.batch_size, "not in the sweep")
print(f"sweep: best lr at batch {sizes.batch_size}: {sweep_best}")
smoke_caveat()

# %% [markdown] tags=["shared"]
# Compare the range test's steepest point with the sweep's best rate (the two lines the cell
# prints). The steepest point is read off one short, noisy run, so treat
# it as an order of magnitude, and check it against a small sweep like the heat map's before
# trusting it.

# %% [markdown] tags=["shared"]
# ## 8.4 Learning-rate schedules
#
# A schedule gives the learning rate at each step $t$ of a run of $T$ steps. The common ones:
#
# * **constant** $\eta_t = \eta$;
#   **step decay** $\eta_t = \eta\,\gamma^{\lfloor t / s \rfloor}$;
#   **exponential** $\eta_t = \eta\,\gamma^{t}$;
# * **cosine annealing** {cite}`loshchilov2017sgdr`, from $\eta_{\max}$ at $t = 0$ down to
#   $\eta_{\min}$ at $t = T$, never below it:
#
#   $$
#   \begin{aligned}
#   \eta_t &= \eta_{\min} + (\eta_{\max} - \eta_{\min})\, c_t , \\
#   c_t &= \bigl(1 + \cos(\pi t / T)\bigr) / 2 ;
#   \end{aligned}
#   $$
#
# * **linear warmup** {cite}`goyal2017accurate` **+ cosine** {cite}`loshchilov2017sgdr`: a
#   straight ramp from a small $\eta_0$ to $\eta_{\max}$ over the first $W$ steps, then the
#   cosine over the remaining $T - W$ (Goyal et al. followed their warmup with step decay);
# * **one-cycle** {cite}`smith2019super`, with both libraries' defaults: up from
#   $\eta_{\max}/25$ to $\eta_{\max}$ over the first 30 % of the run, then down to
#   $\eta_{\max}/(25 \cdot 10^4)$, each half a cosine, as both libraries implement it (the
#   paper's ramps are linear). PyTorch's `OneCycleLR` also cycles momentum by default
#   (`cycle_momentum=True`); the PyTorch page's check turns that off, since Optax's schedule
#   sets only the learning rate;
# * **warm restarts (SGDR)** {cite}`loshchilov2017sgdr`: the cosine over a period $T_0$, then
#   again from the top, each period $T_{\mathrm{mult}}$ times longer than the last.
#
# Below, each as a plain function of the step, with the conventions of this framework's library
# (which the next cell checks).


# %% tags=["reference"]
def constant(step, lr):
    return lr * jnp.ones_like(jnp.asarray(step, jnp.float32))


def step_decay(step, lr, step_size, gamma):
    return lr * gamma ** (step // step_size)


def exponential(step, lr, gamma):
    return lr * gamma ** jnp.asarray(step, jnp.float32)


def cosine(step, lr_max, total_steps, lr_min=0.0):
    return lr_min + (lr_max - lr_min) * (1 + jnp.cos(jnp.pi * step / total_steps)) / 2


def warmup_cosine(step, lr_init, lr_max, warmup_steps, total_steps, lr_min=0.0):
    # jnp.where, not `if`: a schedule runs on traced step counts inside jit
    ramp = lr_init + (lr_max - lr_init) * step / warmup_steps
    decay = cosine(step - warmup_steps, lr_max, total_steps - warmup_steps, lr_min)
    return jnp.where(step < warmup_steps, ramp, decay)


def _cos_between(start, end, fraction):
    """Half a cosine from ``start`` (fraction 0) to ``end`` (fraction 1)."""
    return end + (start - end) * (1 + jnp.cos(jnp.pi * fraction)) / 2


def one_cycle(
    step, lr_max, total_steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4
):
    lr_start = lr_max / div_factor
    lr_end = lr_start / final_div_factor
    # Optax's cosine_onecycle_schedule peaks at step int(pct_start * T) and ends at step T.
    peak = int(pct_start * total_steps)
    up = _cos_between(lr_start, lr_max, step / peak)
    down = _cos_between(lr_max, lr_end, (step - peak) / (total_steps - peak))
    return jnp.where(step <= peak, up, down)


def sgdr(step, lr_max, period, lr_min=0.0, period_mult=1, max_periods=32):
    t, length = step, jnp.full_like(jnp.asarray(step), period)
    start, current = 0, period
    for _ in range(max_periods):  # find the period the step falls in, without `if`
        if start >= 2**30:  # int32 steps never get this far
            break
        inside = (step >= start) & (step < start + current)
        t = jnp.where(inside, step - start, t)
        length = jnp.where(inside, current, length)
        start, current = start + current, current * period_mult
    return cosine(t, lr_max, length, lr_min)


# %% [markdown]
# `optax.schedules` builds the same curves as functions of the step count, which an optimizer
# evaluates at each update (as our `scale_by_learning_rate` does). Since both sides are
# functions, checking is one call on all the steps at once:

# %%
T = 100  # steps of the run, for the plots and the checks
lr_max = 0.1
ts = jnp.arange(T)
schedules = {
    "constant": (
        lambda t: constant(t, lr_max),
        optax.schedules.constant_schedule(lr_max),
    ),
    "step decay": (
        lambda t: step_decay(t, lr_max, 30, 0.1),
        optax.schedules.exponential_decay(lr_max, 30, 0.1, staircase=True),
    ),
    "exponential": (
        lambda t: exponential(t, lr_max, 0.97),
        optax.schedules.exponential_decay(lr_max, 1, 0.97),
    ),
    "cosine": (
        lambda t: cosine(t, lr_max, T, 1e-3),
        optax.schedules.cosine_decay_schedule(lr_max, T, alpha=1e-3 / lr_max),
    ),
    "warmup + cosine": (
        lambda t: warmup_cosine(t, lr_max / 10, lr_max, 10, T, 1e-3),
        optax.schedules.warmup_cosine_decay_schedule(lr_max / 10, lr_max, 10, T, 1e-3),
    ),
    "one-cycle": (
        lambda t: one_cycle(t, lr_max, T),
        optax.schedules.cosine_onecycle_schedule(T, lr_max),
    ),
    "SGDR": (
        lambda t: sgdr(t, lr_max, 15, 1e-3, period_mult=2),
        optax.schedules.join_schedules(
            [
                optax.schedules.cosine_decay_schedule(lr_max, n, alpha=1e-3 / lr_max)
                for n in (15, 30, 60)
            ],
            boundaries=[15, 45],
        ),
    ),
}
print(f"{'schedule':<16} {'max |hand - optax.schedules|':>29}")
for name, (hand, library) in schedules.items():
    diff = float(jnp.abs(hand(ts) - jax.vmap(library)(ts)).max())
    print(f"{name:<16} {diff:>29.2e}")
    assert diff < 1e-6, name  # float32

fig, ax = plt.subplots(figsize=(8, 4))
for name, (hand, _) in schedules.items():
    ax.plot(ts, hand(ts), label=name)
ax.set(
    xlabel="step t",
    ylabel="learning rate",
    title=f"Seven schedules over T = {T} steps, peak {lr_max}",
)
ax.legend(fontsize=8)
plt.show()

# %% [markdown] tags=["shared"]
# ```{admonition} The outline's cosine formula goes negative
# :class: warning
# The outline gives cosine annealing as `lr * cos(2 * pi * epoch / total_epochs)`. That is a
# full period of the cosine, not half of one, and it has no offset: it reaches $-\eta$ half-way
# through the run (a negative learning rate is gradient *ascent*) and climbs back to $+\eta$ at
# the end, the opposite of annealing. The correct form, the cosine annealing of the list above,
# stays between $\eta_{\min}$ and $\eta_{\max}$. The cell below evaluates both and plots them;
# the runs after it train the network with each.
# ```


# %%
def outline_cosine(epoch, lr, total_epochs):
    return lr * jnp.cos(2 * jnp.pi * epoch / total_epochs)  # the outline's formula


print(
    f"outline at t = T/2: {float(outline_cosine(T // 2, lr_max, T)):+.4f}   (lr_max = {lr_max})"
)
print(f"correct at t = T/2: {float(cosine(T // 2, lr_max, T)):+.4f}")
fig, ax = plt.subplots(figsize=(7, 3.6))
ts1 = jnp.arange(T + 1)
ax.plot(ts1, outline_cosine(ts1, lr_max, T), label="outline: lr cos(2 pi t / T)")
ax.plot(ts1, cosine(ts1, lr_max, T), label="correct: lr (1 + cos(pi t / T)) / 2")
ax.axhline(0, color="k", lw=0.6)
ax.set(
    xlabel="step t",
    ylabel="learning rate",
    title="Cosine annealing: the outline's formula and the correct one",
)
# Below the axes: the two curves leave no free corner inside them.
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
plt.show()

# %% [markdown] tags=["shared"]
# **Their effect on the real task.** SGD with momentum 0.9, the same MLP and budget as in 8.3,
# the learning rate set before every step by five of the schedules (peak 0.05 for all), plus
# the outline's formula. Exponential decay and SGDR are left out to keep the page quick:
# exponential decay is step decay without the jumps, and SGDR's restarts need a run of several
# periods. Each run is one fresh model; the table gives the final test accuracy.

# %%
steps_per_run = sizes.epochs * (len(x_train) // sizes.batch_size)
peak = 0.05
warm = max(1, steps_per_run // 20)
run_schedules = {
    "constant": lambda t: constant(t, peak),
    "step decay": lambda t: step_decay(t, peak, max(1, steps_per_run // 3), 0.1),
    "cosine": lambda t: cosine(jnp.minimum(t, steps_per_run), peak, steps_per_run),
    "warmup + cosine": lambda t: warmup_cosine(
        jnp.minimum(t, steps_per_run), peak / 10, peak, warm, steps_per_run
    ),
    "one-cycle": lambda t: one_cycle(
        jnp.minimum(t, steps_per_run), peak, steps_per_run
    ),
    "outline's cosine": lambda t: outline_cosine(t, peak, steps_per_run),
}
schedule_runs = {}
for name, schedule in tqdm(run_schedules.items(), desc="schedules"):
    _, h = train(sgd(schedule, momentum=0.9))
    schedule_runs[name] = h
print(f"{'schedule':<18} {'train loss':>10} {'test acc':>9}")
for name, h in schedule_runs.items():
    print(f"{name:<18} {h.last('train_loss'):>10.4f} {h.last('test_accuracy'):>9.4f}")
smoke_caveat()

fig = H.plot_step_losses(
    {name: h.step_loss for name, h in schedule_runs.items()},
    title="Schedules on MNIST (SGD + momentum)",
)
plt.show()

# %% [markdown] tags=["shared"]
# ## 8.5 Practice that follows
#
# **Gradient clipping** {cite}`pascanu2013difficulty`. Rescale the whole gradient when its
# norm exceeds a threshold $c$: $g \leftarrow g \cdot \min(1, c / \lVert g \rVert)$, with
# $\lVert g \rVert$ the norm of all parameters' gradients together. The direction is kept.
# When $c$ sits above the typical norm, only an occasional huge step is cut down; when most
# steps are clipped, clipping acts as a smaller learning rate. Written by hand, checked against
# the library, then compared on MNIST at a high learning rate (SGD, momentum 0.9), with and
# without clipping; the cell counts the steps that were clipped.


# %%
def clip_by_global_norm(max_norm):
    """Scale all updates by max_norm / ||g|| when the norm of all of them exceeds max_norm.

    The state counts the steps that were clipped (Optax's own keeps no state).
    """

    def init(params):
        return jnp.zeros([], jnp.int32)  # steps clipped so far

    def update(updates, clipped, params=None):
        norm = jnp.sqrt(sum(jnp.sum(u**2) for u in jax.tree.leaves(updates)))
        scale = jnp.where(norm < max_norm, 1.0, max_norm / norm)
        return jax.tree.map(lambda u: u * scale, updates), clipped + (norm >= max_norm)

    return optax.GradientTransformation(init, update)


rng = np.random.default_rng(1)
grads = {
    "w": jnp.asarray(10 * rng.normal(size=(3, 4)), jnp.float32),
    "b": jnp.asarray(10 * rng.normal(size=(4,)), jnp.float32),
}
clip = clip_by_global_norm(1.0)
ours, _ = clip.update(grads, clip.init(grads), None)
theirs, _ = optax.clip_by_global_norm(1.0).update(grads, optax.EmptyState(), None)
after = optax.global_norm(ours)
print(
    f"norm before {float(optax.global_norm(grads)):.3f}; after, hand {float(after):.6f}"
)
assert all(
    jnp.allclose(a, b, atol=1e-6)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True)
)

high_lr = 0.5
_, unclipped = train(sgd(high_lr, momentum=0.9))
optimizer, with_clip = train(
    chain(clip_by_global_norm(1.0), sgd(high_lr, momentum=0.9))
)
for name, h in (("no clipping", unclipped), ("clip at norm 1", with_clip)):
    print(
        f"lr {high_lr}, {name:<15} final train loss {h.last('train_loss'):.4f}, "
        f"test acc {h.last('test_accuracy'):.4f}"
    )
# The chain's state is a tuple with one entry per transformation: the first is the clip's count.
n_clipped = int(optimizer.opt_state[0][...])
print(f"clip at norm 1: {n_clipped} of {len(with_clip.step_loss)} steps were clipped")
smoke_caveat()

# %% [markdown] tags=["shared"]
# **Which parameters get weight decay.** Decay pulls weights towards 0 to keep the function
# simple; biases (and normalisation scales) set offsets and scales, and decaying them adds
# little regularisation, so common practice decays the weight matrices only ("no bias decay"
# {cite}`he2019bag`). The choice is two parameter groups in PyTorch, a mask in Optax.

# %%
model = H.MLP(784, sizes.hidden, 10, rngs=nnx.Rngs(0))
params = nnx.state(model, nnx.Param)


def weights_only(params):
    return jax.tree.map(lambda p: p.ndim >= 2, params)  # weight matrices: True


optimizer = nnx.Optimizer(
    model, adamw(1e-3, weight_decay=1e-2, mask=weights_only), wrt=nnx.Param
)
mask = jax.tree.leaves(weights_only(params))
leaves = jax.tree.leaves(params)
decayed = [p for p, m in zip(leaves, mask, strict=True) if m]
kept = [p for p, m in zip(leaves, mask, strict=True) if not m]
print(
    f"decayed: {sum(p.size for p in decayed):,} weights in {len(decayed)} matrices; "
    f"not decayed: {sum(p.size for p in kept):,} biases in {len(kept)} vectors"
)

# %% [markdown] tags=["shared"]
# **Warmup with Adam.** Adam's first steps divide by a second-moment estimate built from a
# handful of gradients; a large learning rate applied to those first, noisy steps can throw the
# network into a bad region {cite}`liu2020variance`. A short linear warmup
# {cite}`goyal2017accurate` ramps the learning rate up while the estimates settle. Measured:
# Adam at a high learning rate, constant, cosine without warmup, and a warmup over the first
# 5 % of the run, then cosine; each line gives the mean training loss over the early steps
# (the warmup's, and at least 5) and the final test accuracy. Warmup's early steps are smaller
# by design, so its early loss is higher; its benefit, where there is one, shows as a spike in
# the constant run that the warmup avoids, and as a better final accuracy. The cell prints how
# long the warmup is: in a run as short as `smoke`'s it is a single step at learning rate 0.

# %%
adam_lr = 1e-2
# The early steps: the warmup's, and at least 5 (the warmup is a single step in a short run).
early = min(steps_per_run, max(5, warm))
print(
    f"warmup: the first {warm} of {steps_per_run} steps; "
    f"the learning rate starts at 0 and reaches {adam_lr} at step {warm}"
)
_, adam_const = train(adam(adam_lr))
_, adam_warm = train(
    adam(
        lambda t: warmup_cosine(
            jnp.minimum(t, steps_per_run), 0.0, adam_lr, warm, steps_per_run
        )
    )
)
_, adam_cos = train(
    adam(lambda t: cosine(jnp.minimum(t, steps_per_run), adam_lr, steps_per_run))
)
for name, h in (
    ("constant", adam_const),
    ("cosine, no warmup", adam_cos),
    ("warmup + cosine", adam_warm),
):
    first = np.mean(h.step_loss[:early])
    print(
        f"Adam lr {adam_lr}, {name:<18} mean loss over the first {early} steps "
        f"{first:.3f}, final test acc {h.last('test_accuracy'):.4f}"
    )
smoke_caveat()

# %% [markdown] tags=["shared"]
# **Batch size and learning rate.** {cite:t}`goyal2017accurate` train ImageNet with
# batches of up to 8k by scaling the learning rate linearly with the batch size (with warmup).
# The sweep in 8.3 printed the best learning rate of its grid for each batch size; read it next
# to the linear rule: a batch $k$ times larger should want a learning rate about $k$ times
# larger, until the rule breaks down at the largest rates.

# %%
base_bs = sizes.sweep_batch_sizes[0]
for bs in sizes.sweep_batch_sizes:
    rule = best_lr[base_bs] * bs / base_bs
    print(
        f"batch {bs:>4}: best lr of the grid {best_lr[bs]:<6g} "
        f"linear rule from batch {base_bs}: {rule:g}"
    )
one_rate_caveat()
smoke_caveat()

# %% [markdown] tags=["shared"]
# ## 8.6 Summary
#
# | section | built by hand | checked against |
# |---|---|---|
# | 8.1 update rules | SGD, momentum, Nesterov, RMSProp, Adam (bias correction), AdamW (decoupled decay) | the library's optimizers, same batches for 10 steps (table above; `tests/test_optimizers.py`) |
# | 8.2 2-D functions | trajectories on Rosenbrock, an ill-conditioned quadratic and a saddle | steps-to-tolerance table at each optimizer's best learning rate |
# | 8.3 MNIST | one MLP and budget per optimizer; lr x batch-size sweep; range test | curves and tables printed above |
# | 8.4 schedules | constant, step, exponential, cosine, warmup + cosine, one-cycle, SGDR; the outline's formula | the library's schedules (table above); runs on MNIST |
# | 8.5 practice | clipping by global norm, decay masks, warmup with Adam, batch-size scaling | the library's clipping; runs above |

# %% [markdown] tags=["notebook-only"]
# Next: [the PyTorch half of this chapter](in-pytorch.ipynb), then the
# [lab](../../labs/08-optimizers/in-jax.ipynb), whose self-checks tell you when each exercise is
# right. Works cited are listed in the [bibliography](../../bibliography.md).
