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
# # Lab 10: int8 and uint8 quantization, integrated gradients and fake quantization in PyTorch
#
# Five exercises on chapter 10: per-channel symmetric int8 quantization of a weight tensor and
# its inverse, as in section 10.2; asymmetric uint8 quantization of activations, with the zero
# point that the chapter only names; integrated gradients with a baseline; and, beyond the
# chapter, fake quantization with a straight-through estimator, the core of quantization-aware
# training. Each exercise asks for a function (exercise 3 for two). Replace the line
# `raise NotImplementedError(...)` with your code, run the cell, then run the check below it:
# a check prints ✅ when your function is right, or ❌ with what it expected and a hint.
#
# The checks call your functions on several inputs and compare with answers computed
# independently ([`tests/labs/test_lab10.py`](https://github.com/pytorch-jax-course/pytorch-jax-course/blob/main/tests/labs/test_lab10.py) proves the quantization answers equal
# `torch.quantize_per_channel` and `torch.quantize_per_tensor`); they never look at your code.
#
# The solved lab: [Lab 10 solutions in PyTorch](../../solutions/10-compression-deployment/in-pytorch.ipynb).

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

from helpers import torch as H

# %% [markdown]
# ## Exercise 1: per-channel symmetric int8 quantization
#
# Return `(q, scale)` for a float32 weight `w` whose output channels lie along `axis` (0 in
# PyTorch's layouts, `(out, in, kh, kw)` and `(out, in)`):
#
# $$s_c = \max_i |w_{c,i}| / 127,$$
#
# $$q_{c,i} = \operatorname{clip}(\operatorname{round}(w_{c,i} / s_c), -127, 127)$$
#
# `q` is `torch.int8` with `w`'s shape; `scale` is float32 with the channel count on `axis`
# and 1 on every other axis, so that `q * scale` broadcasts.
#
# A channel of zeros (a pruned filter, section 10.3) has $s_c = 0$, and $0 / 0$ is NaN, which
# no cast turns into a defined int8: keep each scale at least `torch.finfo(torch.float32).tiny`. The
# check also hands you a weight whose channels lie on another axis.


# %%
def quantize_int8(w, axis):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab10.check_quantize_int8(quantize_int8)

# %% [markdown]
# ## Exercise 2: dequantization
#
# Return the float32 weights that `(q, scale)` stand for: $\hat w = q \cdot s$.


# %%
def dequantize_int8(q, scale):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab10.check_dequantize_int8(dequantize_int8)

# %% [markdown]
# ## Exercise 3: asymmetric uint8 quantization of activations
#
# Activations are often far from centred on 0: a ReLU's are never negative, a sigmoid's lie in
# $(0, 1)$. The integer-arithmetic scheme of {cite:t}`jacob2018quantization` stores
# a tensor $x$ as uint8 codes $q \in \{0, \dots, 255\}$ with one scale $s$ and a *zero point*
# $z$, the code that stands for 0.0:
#
# $$\ell = \min(\min_i x_i, 0),\qquad h = \max(\max_i x_i, 0),$$
#
# $$s = \frac{h - \ell}{255},\qquad z = \operatorname{round}(-\ell / s),$$
#
# $$q_i = \operatorname{clip}(\operatorname{round}(x_i / s) + z, 0, 255)$$
#
# and reads it back as $\hat x = s\,(q - z)$. The range is widened to contain 0, so that 0.0
# (padding, a ReLU's zeros) has an exact code. `quantize_uint8(x)` returns `(q, scale,
# zero_point)`: `q` is `torch.uint8` with `x`'s shape, `scale` a Python float (at least the smallest
# normal float32, for an all-zero `x`) and `zero_point` a Python int; `.item()`, `float(...)` and `int(...)` turn 0-d tensors into them.
# `dequantize_uint8(q, scale, zero_point)` returns $\hat x$ in float32. Mind the dtype of
# `q - zero_point`.


# %%
def quantize_uint8(x):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab10.check_quantize_uint8(quantize_uint8)


# %%
def dequantize_uint8(q, scale, zero_point):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab10.check_dequantize_uint8(dequantize_uint8)

# %% [markdown]
# ## Exercise 4: integrated gradients
#
# `f` maps a batch `(B, D)` to one score per example `(B,)`. Return the attributions, shaped
# like `x`:
#
# $$\mathrm{IG}(x) = (x - x') \int_0^1 \nabla f\big(x' + \alpha (x - x')\big)\, d\alpha,$$
#
# with the integral approximated by `steps` intervals of the trapezoid rule (the points
# `alpha = linspace(0, 1, steps + 1)`, the two end points weighted half). Use
# `torch.autograd.grad` of `f(point).sum()` for the gradient at a path point. The check also
# measures completeness: the attributions of each example must sum to $f(x) - f(x')$ within
# 1 %.


# %%
def integrated_gradients(f, x, baseline, steps):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab10.check_integrated_gradients(integrated_gradients)

# %% [markdown] tags=["shared"]
# ## Exercise 5: fake quantization with a straight-through estimator
#
# Exercises 1–3 quantize a model after training. Quantization-aware training, as
# {cite:t}`jacob2018quantization` describe it, trains with the rounding in the loop: the
# forward pass sees the weights int8 inference will see, *fake-quantized* (quantized and
# dequantized, still float32), and the optimizer updates the float weights behind them. With a
# scale $s$ (one for the tensor, or one per output channel as in exercise 1):
#
# $$\operatorname{fq}(w) = s \cdot \operatorname{clip}\big(\operatorname{round}(w / s), -127, 127\big),$$
#
# $$\frac{\partial L}{\partial w} \approx \frac{\partial L}{\partial \operatorname{fq}(w)} \cdot \mathbb{1}\bigl[-127 \le w / s \le 127\bigr].$$
#
# The derivative of round is 0 almost everywhere, so the true gradient tells the weights
# nothing (the cell below shows it). The straight-through estimator, studied by
# {cite:t}`bengio2013estimating` (you wrote one in lab 4's exercise 5), treats the rounding as
# the identity in the backward pass; here the clip is kept: a weight clipped to $\pm 127 s$
# does not move the output, so it gets no gradient. This exercise masks on the clipping range,
# $|w / s| \le 127$; PyTorch's `torch.fake_quantize_per_tensor_affine` masks on the rounded
# value instead, $|\operatorname{round}(w / s)| \le 127$, i.e. $|w / s| < 127.5$ (the PyTorch
# version of this lab runs it in the cell after this text). Exactly at $|w / s| = 127$
# conventions differ (a clip with array bounds, as in the recipe below, passes half the
# gradient there; `torch.clamp` with plain-number bounds passes none), and the check accepts
# any gradient there.

# %%
w_demo = torch.tensor([0.3, 1.7, -2.2, 40.0], requires_grad=True)
s_demo = torch.tensor(0.25)
fq_round = torch.clamp(torch.round(w_demo / s_demo), -127, 127) * s_demo
(grad,) = torch.autograd.grad(fq_round.sum(), w_demo)
print("gradient through round and clamp:", grad.tolist())
# PyTorch's own fake quantization, at w / s = 126.9, 127.25, 127.6 and 130:
# which of them get a gradient
w_edge = (torch.tensor([126.9, 127.25, 127.6, 130.0]) * 0.25).requires_grad_(True)
fq_torch = torch.fake_quantize_per_tensor_affine(w_edge, 0.25, 0, -127, 127)
(grad,) = torch.autograd.grad(fq_torch.sum(), w_edge)
print("torch.fake_quantize_per_tensor_affine's gradient:", grad.tolist())
# this exercise's mask, on the clipping range
mask = ((w_edge / 0.25).abs() <= 127).float()
print("this exercise's mask, |w / s| <= 127:           ", mask.tolist())

# %% [markdown]
# Write `fake_quantize(w, scale)`: `w` is a float32 tensor, `scale` a positive float32 tensor
# that broadcasts to it (0-d, or exercise 1's per-channel shape). Return $\operatorname{fq}(w)$
# in float32, `w`'s shape, rounding half to even as `torch.round` does (0.5 → 0, 2.5 → 2), with
# the straight-through gradient above. Two ways, both accepted: the detach form, whose value
# is `q * scale` and whose gradient is that of `w_c`, `w_c + (q * scale - w_c).detach()`, with `q` exercise 1's clipped codes kept in float32 (no
# int8 cast) and `w_c = torch.clamp(w, -127 * scale, 127 * scale)`; or a
# `torch.autograd.Function` whose `backward` returns `grad_output * mask` (and `None` for
# `scale`). If you reuse lab 4's `round_ste`, clip before rounding,
# `round_ste(torch.clamp(w / scale, -127, 127)) * scale`: clipping the rounded codes instead
# masks on $\operatorname{round}(w / s)$, as PyTorch's own fake quantization does. Leave `w` and `scale` as
# they are, and do not call PyTorch's fake quantization: the check refuses it.
#
# The check tries per-channel and per-tensor scales with ties, both clip edges, values
# between 127 and 127.5 and beyond both sides, compares the forward with a float64 NumPy
# reference, and the gradient of `(fake_quantize(w, scale) * g).sum()` with `mask * g` for a
# random `g`.


# %%
def fake_quantize(w, scale):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise: replace this line with your code")


# %%
H.lab10.check_fake_quantize(fake_quantize)

# %% [markdown]
# Twenty steps of quantization-aware fine-tuning of one linear layer, weight `(out, in) = (4, 16)`, on a regression
# target, from a weight near it, the loss computed with the fake-quantized weight and exercise
# 1's per-channel scales; once with your `fake_quantize`, once with the same rounding without
# the STE.

# %%
try:
    gen = torch.Generator().manual_seed(0)
    x_qat = torch.randn(256, 16, generator=gen)  # (N, in)
    w_true = torch.randn(4, 16, generator=gen)  # (out, in)
    y_qat = x_qat @ w_true.T  # (N, out)
    # A "pretrained" weight near the target, and exercise 1's per-channel scales of it.
    w_start = w_true + 0.3 * torch.randn(4, 16, generator=gen)
    scale_qat = w_start.abs().amax(dim=1, keepdim=True) / 127  # (out, 1)

    def no_ste(w, scale):
        return torch.clamp(torch.round(w / scale), -127, 127) * scale

    for name, quantize in [("fake_quantize (STE)", fake_quantize), ("no STE", no_ste)]:
        w_qat = w_start.clone().requires_grad_(True)
        optimizer = torch.optim.SGD([w_qat], lr=0.1)
        losses = []
        for step in range(20):
            loss = ((x_qat @ quantize(w_qat, scale_qat).T - y_qat) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            if step == 0:
                largest = w_qat.grad.abs().max().item()
            optimizer.step()
            losses.append(loss.item())
        print(
            f"{name:>19}: loss {losses[0]:.3f} -> {losses[-1]:.3f} in 20 steps, "
            f"largest |gradient| at step 1: {largest:.3g}"
        )
except NotImplementedError:
    print("solve exercise 5 first")
