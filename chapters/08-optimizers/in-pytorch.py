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
# # 8. Optimizers and learning-rate schedules: PyTorch
#
# This is the PyTorch half of chapter 8; the [JAX half](in-jax.ipynb) tells the same story in
# the same order. Every earlier chapter called `torch.optim.Adam` and moved on. Here the
# optimizer is the subject:
#
# * the update rules of SGD, momentum, Nesterov, RMSProp, Adam and AdamW, written out and
#   checked against `torch.optim`;
# * how they move on three 2-D test functions, drawn on contour maps;
# * the same MLP on MNIST trained with each, a learning-rate x batch-size sweep and a
#   learning-rate range test;
# * learning-rate schedules written by hand and checked against `torch.optim.lr_scheduler`,
#   and what they change on the real task;
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

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm import tqdm

from helpers import torch as H

# Every size this notebook uses comes from helpers/scale/training.py.
sizes = H.sizes("optimizers")
device = H.default_device()
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
# In PyTorch an optimizer is a `torch.optim.Optimizer` subclass: the base class keeps the
# parameter groups (each with its own hyperparameters), a `state` dict per parameter,
# `zero_grad`, `state_dict`, and step hooks (`register_step_pre_hook` and
# `register_step_post_hook`, used below for clipping and schedules); a subclass writes `step`,
# which reads `p.grad` and changes `p` in place. A scheduler of `torch.optim.lr_scheduler`
# uses no hook: it rewrites each group's `"lr"`. Three classes cover the six optimizers.


# %% tags=["reference"]
class SGD(torch.optim.Optimizer):
    """SGD with optional momentum (heavy ball or Nesterov) and L2 weight decay."""

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        defaults = dict(
            lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + wd * p  # L2: the decay is part of the gradient
                if mu != 0:
                    state = self.state[p]
                    if "velocity" not in state:
                        state["velocity"] = g.clone()  # b_1 = g_1
                    else:
                        state["velocity"].mul_(mu).add_(g)  # b = mu b + g
                    b = state["velocity"]
                    g = g + mu * b if group["nesterov"] else b
                p.add_(g, alpha=-lr)


class RMSprop(torch.optim.Optimizer):
    """RMSProp: divide the gradient by a running root mean square of its past values."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                if "square_avg" not in state:
                    state["square_avg"] = torch.zeros_like(p)
                v = state["square_avg"]
                v.mul_(alpha).addcmul_(g, g, value=1 - alpha)  # v = a v + (1 - a) g^2
                # PyTorch: eps outside the root
                p.addcdiv_(g, v.sqrt() + eps, value=-lr)


class Adam(torch.optim.Optimizer):
    """Adam with bias correction; L2 decay by default, decoupled decay (AdamW) on request."""

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        decoupled=False,
    ):
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled=decoupled
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
            wd = group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["t"] = 0  # steps taken so far
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                if group["decoupled"]:
                    p.mul_(1 - lr * wd)  # AdamW: shrink theta, outside the gradient
                    g = p.grad
                else:
                    g = p.grad + wd * p  # Adam: L2 inside the gradient
                state["t"] += 1  # t = 1 at the first step
                t, m, v = state["t"], state["m"], state["v"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                m_hat = m / (1 - b1**t)  # bias correction
                v_hat = v / (1 - b2**t)
                p.sub_(lr * m_hat / (v_hat.sqrt() + eps))


def AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    """Adam with decoupled weight decay, with ``torch.optim.AdamW``'s defaults."""
    return Adam(params, lr, betas, eps, weight_decay, decoupled=True)


# %% [markdown] tags=["shared"]
# **Checked against the library.** Each hand-written optimizer and the library's own start from
# the same parameters of a small network and see the same batches for 10 steps (each computing
# its own gradients); the table the cell prints gives the largest difference in any
# parameter after the last step. `tests/test_optimizers.py` runs the same comparison for
# several settings.

# %%
hand_and_library = {
    "SGD": (lambda p: SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    "momentum": (
        lambda p: SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2),
    ),
    "Nesterov": (
        lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    ),
    "RMSProp": (
        lambda p: RMSprop(p, lr=1e-2),
        lambda p: torch.optim.RMSprop(p, lr=1e-2),
    ),
    "Adam + L2": (
        lambda p: Adam(p, lr=1e-2, weight_decay=0.1),
        lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=0.1),
    ),
    "AdamW": (
        lambda p: AdamW(p, lr=1e-2, weight_decay=0.1),
        lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    ),
}


def run_optimizer(make, steps=10):
    """Parameters of a small fixed network after ``steps`` steps of ``make``'s optimizer."""
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    optimizer = make(net.parameters())
    for _ in range(steps):
        x = torch.randn(16, 5, generator=gen, dtype=torch.float64)  # (B, 5)
        loss = net(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return torch.cat([p.detach().flatten() for p in net.parameters()])


print(f"{'optimizer':<10} {'max |hand - torch.optim|':>26}")
for name, (hand, library) in hand_and_library.items():
    diff = (run_optimizer(hand) - run_optimizer(library)).abs().max().item()
    print(f"{name:<10} {diff:>26.2e}")
    assert diff < 1e-10, name

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
    "SGD": lambda p, lr: SGD(p, lr=lr),
    "momentum": lambda p, lr: SGD(p, lr=lr, momentum=0.9),
    "Nesterov": lambda p, lr: SGD(p, lr=lr, momentum=0.9, nesterov=True),
    "RMSProp": lambda p, lr: RMSprop(p, lr=lr),
    "Adam": lambda p, lr: Adam(p, lr=lr),
}
lr_grid = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]


def descend(f, start, make, steps):
    """Run one optimizer from ``start`` at every learning rate of the grid, all at once.

    Each learning rate gets its own parameter group holding its own point; the loss is the sum
    of f over the points, so each point's gradient is its own. Returns the trajectories,
    (len(lr_grid), steps + 1, 2), and f along them, (len(lr_grid), steps + 1).
    """
    points = [
        torch.tensor(start, dtype=torch.float64, requires_grad=True) for _ in lr_grid
    ]
    optimizer = make([{"params": [p]} for p in points], lr_grid[0])
    for group, lr in zip(optimizer.param_groups, lr_grid, strict=True):
        group["lr"] = lr
    path = [torch.stack(points).detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        xy = torch.stack(points)  # (L, 2)
        f(xy[:, 0], xy[:, 1]).sum().backward()
        optimizer.step()
        path.append(torch.stack(points).detach().clone())
    path = torch.stack(path, dim=1)  # (L, steps + 1, 2)
    return path.numpy(), f(path[..., 0], path[..., 1]).numpy()


def steps_to(values, tolerance):
    """First step at which f < tolerance (NaN-safe), or None."""
    hit = np.flatnonzero(np.nan_to_num(values, nan=np.inf) < tolerance)
    return int(hit[0]) if len(hit) else None


best_2d = {}  # (problem, optimizer) -> (steps or None, lr, trajectory)
for (pname, (f, start, tol)), (oname, make) in tqdm(
    list(itertools.product(problems.items(), optimizers_2d.items())), desc="2-D runs"
):
    paths, values = descend(f, start, make, sizes.landscape_steps)
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
test_loader = H.ArrayLoader(x_test, y_test, 1024, device=device)
print(f"train {x_train.shape}, test {x_test.shape}, {sizes.epochs} epoch(s) per run")


def attach_schedule(optimizer, schedule):
    """Set every group's learning rate to ``schedule(step)`` before each step (step 0, 1, ...).

    A step hook does what a ``torch.optim.lr_scheduler`` does when it is stepped once per batch.
    """
    counter = itertools.count(1)
    for group in optimizer.param_groups:
        group["lr"] = schedule(0)

    def set_next_lr(opt, args, kwargs):
        lr = schedule(next(counter))
        for group in opt.param_groups:
            group["lr"] = lr

    optimizer.register_step_post_hook(set_next_lr)


def train(make_optimizer, *, batch_size=None, epochs=None, schedule=None, seed=0):
    """Train a fresh MLP with ``make_optimizer(model)``; return (model, History)."""
    H.seed_everything(seed)
    model = H.MLP(784, sizes.hidden, 10).to(device)
    optimizer = make_optimizer(model)
    if schedule is not None:
        attach_schedule(optimizer, schedule)
    loader = H.ArrayLoader(
        x_train,
        y_train,
        batch_size or sizes.batch_size,
        shuffle=True,
        seed=seed,
        drop_last=True,
        device=device,
    )
    history = H.fit(
        model,
        optimizer,
        loader,
        epochs=epochs or sizes.epochs,
        eval_loader=test_loader,
        progress=False,
    )
    return model, history


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
    "SGD": lambda m: SGD(m.parameters(), lr=0.1),
    "momentum": lambda m: SGD(m.parameters(), lr=0.01, momentum=0.9),
    "Nesterov": lambda m: SGD(m.parameters(), lr=0.01, momentum=0.9, nesterov=True),
    "RMSProp": lambda m: RMSprop(m.parameters(), lr=1e-3),
    "Adam": lambda m: Adam(m.parameters(), lr=1e-3),
    "AdamW": lambda m: AdamW(m.parameters(), lr=1e-3, weight_decay=1e-2),
}
results = {}
for name, make in tqdm(contenders.items(), desc="optimizers"):
    start = time.perf_counter()
    _, history = train(make)
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
    title=f"Optimizers on MNIST, PyTorch ({H.current_scale()} scale)",
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
    _, h = train(
        lambda m, lr=lr: SGD(m.parameters(), lr=lr, momentum=0.9),
        batch_size=bs,
        epochs=sizes.sweep_epochs,
    )
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


def range_test(make_optimizer, lr_min=1e-5, lr_max=10.0, steps=sizes.range_test_steps):
    H.seed_everything(0)
    model = H.MLP(784, sizes.hidden, 10).to(device)
    optimizer = make_optimizer(model)
    loader = H.ArrayLoader(
        x_train, y_train, sizes.batch_size, shuffle=True, drop_last=True, device=device
    )
    batches = itertools.chain.from_iterable(itertools.repeat(loader))
    lrs, losses, best = [], [], math.inf
    for k, (x, y) in zip(range(steps), batches, strict=False):
        lr = lr_min * (lr_max / lr_min) ** (k / (steps - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = H.cross_entropy(model(x), y)  # x: (B, 784) -> logits (B, 10)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        lrs.append(lr)
        losses.append(loss.item())
        recent = np.mean(losses[-window:])  # one noisy batch must not stop the run
        best = min(best, recent)
        if not math.isfinite(loss.item()) or recent > 4 * best:
            break  # exploded: the rest of the range is useless
    return np.array(lrs), np.array(losses)


range_lrs, range_losses = range_test(
    lambda m: SGD(m.parameters(), lr=0.0, momentum=0.9)
)
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
    return lr


def step_decay(step, lr, step_size, gamma):
    return lr * gamma ** (step // step_size)


def exponential(step, lr, gamma):
    return lr * gamma**step


def cosine(step, lr_max, total_steps, lr_min=0.0):
    return lr_min + (lr_max - lr_min) * (1 + math.cos(math.pi * step / total_steps)) / 2


def warmup_cosine(step, lr_init, lr_max, warmup_steps, total_steps, lr_min=0.0):
    if step < warmup_steps:  # a straight line from lr_init (step 0) to lr_max (step W)
        return lr_init + (lr_max - lr_init) * step / warmup_steps
    return cosine(step - warmup_steps, lr_max, total_steps - warmup_steps, lr_min)


def _cos_between(start, end, fraction):
    """Half a cosine from ``start`` (fraction 0) to ``end`` (fraction 1)."""
    return end + (start - end) * (1 + math.cos(math.pi * fraction)) / 2


def one_cycle(
    step, lr_max, total_steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4
):
    lr_start = lr_max / div_factor
    lr_end = lr_start / final_div_factor
    # PyTorch's OneCycleLR peaks at step pct_start * T - 1 and ends at step T - 1.
    peak = pct_start * total_steps - 1
    if step <= peak:
        return _cos_between(lr_start, lr_max, step / peak)
    return _cos_between(lr_max, lr_end, (step - peak) / (total_steps - 1 - peak))


def sgdr(step, lr_max, period, lr_min=0.0, period_mult=1):
    t, length = step, period
    while t >= length:  # skip the finished periods
        t -= length
        length *= period_mult
    return cosine(t, lr_max, length, lr_min)


# %% [markdown]
# `torch.optim.lr_scheduler` builds the same curves as objects that change an optimizer's
# learning rate each time `scheduler.step()` is called. To read one out, step a throwaway
# optimizer and record its learning rate before each step:

# %%
T = 100  # steps of the run, for the plots and the checks
lr_max = 0.1


def library_lrs(make_scheduler, steps=T):
    """The learning rate a torch scheduler gives at steps 0..steps-1."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr_max)
    scheduler = make_scheduler(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(lrs)


lrs = torch.optim.lr_scheduler
schedules = {
    "constant": (
        lambda t: constant(t, lr_max),
        lambda o: lrs.ConstantLR(o, factor=1.0, total_iters=0),
    ),
    "step decay": (
        lambda t: step_decay(t, lr_max, 30, 0.1),
        lambda o: lrs.StepLR(o, step_size=30, gamma=0.1),
    ),
    "exponential": (
        lambda t: exponential(t, lr_max, 0.97),
        lambda o: lrs.ExponentialLR(o, gamma=0.97),
    ),
    "cosine": (
        lambda t: cosine(t, lr_max, T, 1e-3),
        lambda o: lrs.CosineAnnealingLR(o, T_max=T, eta_min=1e-3),
    ),
    "warmup + cosine": (
        lambda t: warmup_cosine(t, lr_max / 10, lr_max, 10, T, 1e-3),
        lambda o: lrs.SequentialLR(
            o,
            [
                lrs.LinearLR(o, start_factor=0.1, total_iters=10),
                lrs.CosineAnnealingLR(o, T_max=T - 10, eta_min=1e-3),
            ],
            milestones=[10],
        ),
    ),
    "one-cycle": (
        lambda t: one_cycle(t, lr_max, T),
        lambda o: lrs.OneCycleLR(o, max_lr=lr_max, total_steps=T, cycle_momentum=False),
    ),
    "SGDR": (
        lambda t: sgdr(t, lr_max, 15, 1e-3, period_mult=2),
        lambda o: lrs.CosineAnnealingWarmRestarts(o, T_0=15, T_mult=2, eta_min=1e-3),
    ),
}
print(f"{'schedule':<16} {'max |hand - lr_scheduler|':>26}")
for name, (hand, library) in schedules.items():
    ours = np.array([hand(t) for t in range(T)])
    diff = np.abs(ours - library_lrs(library)).max()
    print(f"{name:<16} {diff:>26.2e}")
    assert diff < 1e-9, name

fig, ax = plt.subplots(figsize=(8, 4))
for name, (hand, _) in schedules.items():
    ax.plot(range(T), [hand(t) for t in range(T)], label=name)
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
    return lr * math.cos(2 * math.pi * epoch / total_epochs)  # the outline's formula


print(
    f"outline at t = T/2: {outline_cosine(T // 2, lr_max, T):+.4f}   (lr_max = {lr_max})"
)
print(f"correct at t = T/2: {cosine(T // 2, lr_max, T):+.4f}")
fig, ax = plt.subplots(figsize=(7, 3.6))
ax.plot(
    range(T + 1),
    [outline_cosine(t, lr_max, T) for t in range(T + 1)],
    label="outline: lr cos(2 pi t / T)",
)
ax.plot(
    range(T + 1),
    [cosine(t, lr_max, T) for t in range(T + 1)],
    label="correct: lr (1 + cos(pi t / T)) / 2",
)
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
    "cosine": lambda t: cosine(min(t, steps_per_run), peak, steps_per_run),
    "warmup + cosine": lambda t: warmup_cosine(
        min(t, steps_per_run), peak / 10, peak, warm, steps_per_run
    ),
    "one-cycle": lambda t: one_cycle(min(t, steps_per_run - 1), peak, steps_per_run),
    "outline's cosine": lambda t: outline_cosine(t, peak, steps_per_run),
}
schedule_runs = {}
for name, schedule in tqdm(run_schedules.items(), desc="schedules"):
    _, h = train(
        lambda m: SGD(m.parameters(), lr=peak, momentum=0.9), schedule=schedule
    )
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
@torch.no_grad()
def clip_by_global_norm_(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g) for g in grads])
    )
    scale = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale)
    return norm


gen = torch.Generator().manual_seed(1)
a = [torch.zeros(3, 4, requires_grad=True), torch.zeros(4, requires_grad=True)]
b = [torch.zeros(3, 4, requires_grad=True), torch.zeros(4, requires_grad=True)]
for p, q in zip(a, b, strict=True):
    p.grad = 10 * torch.randn(p.shape, generator=gen)
    q.grad = p.grad.clone()
norm = clip_by_global_norm_(a, 1.0)
torch.nn.utils.clip_grad_norm_(b, 1.0)
after = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in a]))
print(f"norm before {norm:.3f}; after, hand {after:.6f}")
assert all(torch.allclose(p.grad, q.grad, atol=1e-7) for p, q in zip(a, b, strict=True))


def clipped(optimizer, parameters, max_norm, norms):
    """Clip the gradients before every step of ``optimizer`` (a pre-step hook).

    Each step's norm before clipping is appended to the list ``norms``.
    """
    parameters = list(parameters)

    def clip(opt, args, kwargs):
        norms.append(clip_by_global_norm_(parameters, max_norm).item())
        # returning None leaves step's arguments unchanged

    optimizer.register_step_pre_hook(clip)
    return optimizer


high_lr = 0.5
norms = []  # the gradient norm of every step of the clipped run
_, unclipped = train(lambda m: SGD(m.parameters(), lr=high_lr, momentum=0.9))
_, with_clip = train(
    lambda m: clipped(
        SGD(m.parameters(), lr=high_lr, momentum=0.9), m.parameters(), 1.0, norms
    )
)
for name, h in (("no clipping", unclipped), ("clip at norm 1", with_clip)):
    print(
        f"lr {high_lr}, {name:<15} final train loss {h.last('train_loss'):.4f}, "
        f"test acc {h.last('test_accuracy'):.4f}"
    )
n_clipped = sum(n > 1.0 for n in norms)
print(f"clip at norm 1: {n_clipped} of {len(with_clip.step_loss)} steps were clipped")
smoke_caveat()

# %% [markdown] tags=["shared"]
# **Which parameters get weight decay.** Decay pulls weights towards 0 to keep the function
# simple; biases (and normalisation scales) set offsets and scales, and decaying them adds
# little regularisation, so common practice decays the weight matrices only ("no bias decay"
# {cite}`he2019bag`). The choice is two parameter groups in PyTorch, a mask in Optax.

# %%
model = H.MLP(784, sizes.hidden, 10).to(device)
decay = [p for name, p in model.named_parameters() if p.ndim >= 2]  # weight matrices
no_decay = [p for name, p in model.named_parameters() if p.ndim < 2]  # biases
optimizer = AdamW(
    [
        {"params": decay, "weight_decay": 1e-2},
        {"params": no_decay, "weight_decay": 0.0},
    ],
    lr=1e-3,
)
print(
    f"decayed: {sum(p.numel() for p in decay):,} weights in {len(decay)} matrices; "
    f"not decayed: {sum(p.numel() for p in no_decay):,} biases in {len(no_decay)} vectors"
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
_, adam_const = train(lambda m: Adam(m.parameters(), lr=adam_lr))
_, adam_warm = train(
    lambda m: Adam(m.parameters(), lr=adam_lr),
    schedule=lambda t: warmup_cosine(
        min(t, steps_per_run), 0.0, adam_lr, warm, steps_per_run
    ),
)
_, adam_cos = train(
    lambda m: Adam(m.parameters(), lr=adam_lr),
    schedule=lambda t: cosine(min(t, steps_per_run), adam_lr, steps_per_run),
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
# Next: [the JAX half of this chapter](in-jax.ipynb), then the
# [lab](../../labs/08-optimizers/in-pytorch.ipynb), whose self-checks tell you when each
# exercise is right. Works cited are listed in the [bibliography](../../bibliography.md).
