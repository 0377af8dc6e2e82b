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
# # Lab 4: the same ideas in PyTorch
#
# Five exercises, four on chapter 4: (1) a vectorised per-example gradient-norm function with
# `torch.func`; (2) an `nn.Module` network and (3) its optimizer step; (4) data parallelism by
# hand, in two parts (the shards of a batch, then the data-parallel gradient); and (5) one on
# chapter 3's custom backward, a straight-through estimator. Each part is a function you
# complete: replace the line `raise NotImplementedError(...)` with your code, run the cell,
# then run the check below it: a check prints ✅ when your function is right, or ❌ with what
# it expected and a hint.
#
# The checks call your function on small inputs of two different shapes and compare with an
# answer computed independently (a closed-form gradient in NumPy, reference models built by
# the check); they never look at your code.
#
# The solved lab: [Lab 4 solutions in PyTorch](../../solutions/04-jax-in-depth/in-pytorch.ipynb).

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
import torch
import torch.func as tf
import torch.nn as nn
import torch.nn.functional as F

from helpers import torch as H

# %% [markdown]
# Exercises 1 and 4b use a linear softmax classifier whose parameters are a dict,
# `params = {"W": (D, C), "b": (C,)}`, and this loss, the mean cross-entropy of a batch
# `x (B, D)`, `y (B,)` (integer labels):


# %%
def loss_fn(params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = x @ params["W"] + params["b"]  # (B, C)
    return F.cross_entropy(logits, y)


# %% [markdown]
# ## Exercise 1: per-example gradient norms, vectorised
#
# Return the norm of each example's gradient, shape `(B,)`: for example $i$, the gradient of
# its own loss with respect to *all* parameters, $g_i = \nabla_\theta \ell(\theta; x_i, y_i)$,
# and $\lVert g_i \rVert = \sqrt{\sum (\text{every entry of } g_i)^2}$ over W's and b's
# gradients together. Use `torch.func.vmap` and `torch.func.grad` (not a Python loop). (The
# JAX lab also compiles this function and checks that it does not recompile at every call;
# `torch.func` transforms run eagerly, so there is nothing to count here.)


# %%
def per_example_grad_norms(
    params: dict, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab04.check_per_example_grad_norms(per_example_grad_norms)

# %% [markdown]
# ## Exercise 2: an `nn.Module` network
#
# Write the network's class, then return one for `seed`: three `nn.Linear` layers of sizes
# 4 → 16 → 16 → 3, with a ReLU after each of the first two, mapping `(B, 4)` to logits
# `(B, 3)`. Seed the global generator **once**, `torch.manual_seed(seed)`, then create the
# layers in that order: the check compares your network's outputs with its own, built that
# way.


# %%
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        # YOUR CODE HERE
        raise NotImplementedError("Exercise: replace this line with your code")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 4) -> (B, 3)
        # YOUR CODE HERE
        raise NotImplementedError("Exercise: replace this line with your code")


def build_mlp(seed: int) -> nn.Module:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab04.check_build_mlp(build_mlp)

# %% [markdown]
# ## Exercise 3: an optimizer step
#
# `model` is a network like exercise 2's and `optimizer` a `torch.optim` optimizer over its
# parameters (the check uses plain SGD). Compute the mean cross-entropy of `model(x)` against
# `y`, its gradients, apply one optimizer step, and return the loss (computed before the
# update, detached from its graph: `loss.detach()`).


# %%
def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x, y
) -> torch.Tensor:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab04.check_train_step(train_step)

# %% [markdown]
# ## Exercise 4: data parallelism by hand
#
# Two functions: the shards of a batch (4a), then the gradient a data-parallel job computes
# from them (4b).
#
# ### 4a: the shards of a batch
#
# PyTorch has no single-process mesh like JAX's (chapter 9 shows `DTensor`, through FSDP2's
# `fully_shard`):
# a data-parallel job runs one process per device, and each process takes its shard of the
# batch. Return `x (B, D)` cut into `world_size` equal, contiguous shards, stacked into one
# tensor `(world_size, B / world_size, D)`: shard `r` holds rows `r * B / world_size` to
# `(r + 1) * B / world_size - 1`, the rows JAX's `P("data")` puts on device `r`. (PyTorch's
# `DistributedSampler` deals examples out round-robin instead; either way each process gets
# its own `B / world_size` rows, and the averaged gradient is the same.)


# %%
def shard_batch(x: torch.Tensor, world_size: int) -> torch.Tensor:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab04.check_shard_batch(shard_batch)

# %% [markdown]
# ### 4b: the data-parallel gradient
#
# Data parallelism in one function: cut the batch into `n_shards` equal, contiguous shards
# (as in 4a), compute each shard's gradient of `loss_fn` (a mean over its examples)
# with `torch.func.vmap` over the shards, and return the mean over shards, in the structure of
# `params` (`{"W": (D, C), "b": (C,)}`). In a real job that mean is the all-reduce
# `DistributedDataParallel` runs during `backward()` (in buckets, while the backward pass is
# still running: chapter 9); with equal shards it equals the full batch's gradient, which is
# what the check compares.


# %%
def data_parallel_grads(
    params: dict, x: torch.Tensor, y: torch.Tensor, n_shards: int
) -> dict:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab04.check_data_parallel_grads(data_parallel_grads)

# %% [markdown] tags=["shared"]
# ## Exercise 5: a straight-through estimator
#
# Quantization rounds: $\operatorname{round}(w / s)\, s$ keeps a weight on a grid of step $s$
# (chapter 10). To *train* through the rounding, as quantization-aware training does
# {cite}`jacob2018quantization`, the gradient has to get past it, but round's derivative is 0
# almost everywhere (and undefined at the jumps), so the weights before it would get no
# gradient at all. The *straight-through estimator* {cite}`bengio2013estimating` keeps the
# rounding in the forward pass and, in the backward pass, pretends the function was the
# identity: the incoming gradient goes through unchanged.

# %% [markdown]
# Write `round_ste(x)`: forward, `round(x)`, ties to the even integer as `torch.round` does
# (2.5 → 2, −0.5 → 0), in `x`'s dtype; backward, the incoming gradient `grad_output`, as it is.
# Write the custom rule, as chapter 3 does for a softplus, with a `torch.autograd.Function`
# (its `forward` and `backward`, both `@staticmethod`s, called as `RoundSTE.apply(x)`). Return
# a new tensor and leave `x` as it is.
#
# The check feeds float32 batches `(B, D)` with ties (±0.5, ±1.5, ±2.5) and negatives, compares
# the forward values with NumPy's `np.round`, and checks that the gradient of
# `sum(g * round_ste(x))` with respect to `x` is `g`, for a random `g` (a backward that returns
# ones is right only when `g` is all ones).


# %%
def round_ste(x: torch.Tensor) -> torch.Tensor:
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab04.check_round_ste(round_ste)

# %% [markdown]
# The reason for it: fake quantization with step `s`, the loss seeing the rounded weight
# `round(w / s) * s`. Through `torch.round` every weight's gradient is 0, and training would
# never move them; through `round_ste` each gets the gradient of the rounded weight, as if
# there had been no rounding.

# %%
w = torch.tensor([0.31, -0.72, 1.18, 0.05], requires_grad=True)
inputs = torch.tensor([1.0, -2.0, 0.5, 3.0])
s = 0.25  # the grid's step


def fake_quantized_loss(w, rounding):
    return ((rounding(w / s) * s * inputs).sum() - 1.0) ** 2


try:  # runs once exercise 5 is solved
    for name, rounding in [("torch.round", torch.round), ("round_ste", round_ste)]:
        (grad,) = torch.autograd.grad(fake_quantized_loss(w, rounding), w)
        print(f"{name:>11}: dloss/dw = {[round(v, 3) for v in grad.tolist()]}")
except NotImplementedError:
    print("solve exercise 5 first")
