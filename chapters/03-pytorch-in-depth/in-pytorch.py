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
# # 3. PyTorch in depth: PyTorch
#
# This is the PyTorch half of chapter 3; the [JAX half](in-jax.ipynb) teaches the same tasks
# the JAX way, in the same order. Chapter 1 trained a network with the course's `fit`; this
# chapter takes apart everything that call hides:
#
# * tensors: dtype, device, strides, views and copies, broadcasting, in-place operations;
# * autograd: the recorded graph, gradient accumulation, vector-Jacobian products, a custom
#   `autograd.Function` checked with `gradcheck`;
# * `nn.Module`, parameters, buffers and `state_dict`; optimizers and parameter groups;
# * `Dataset` and `DataLoader` on real MNIST, with what each option costs here, measured;
# * a training and evaluation loop written out once, with a validation split, then a CNN;
# * saving, loading and resuming training exactly; `torch.compile`, measured.
#
# The chapter follows a course outline whose code fails as written in several places; each
# time, the outline's code runs below inside `try` and prints its real error, then the fix.
# Every number on this page is printed by the code above it.

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
import io
import logging
import os
import statistics
import tempfile
import textwrap
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchvision.transforms import v2
from tqdm import tqdm

from helpers import torch as H
from helpers.results import latest_by, read_records, short_hardware

# Every size this notebook uses comes from helpers/scale/foundations.py.
sizes = H.sizes("depth")
cnn_sizes = H.sizes("mnist_cnn")
device = H.default_device()
H.runtime_info()

# %% [markdown] tags=["shared"]
# ## 3.1 Tensors and arrays
#
# An array is a block of memory plus metadata: a **dtype** (what one element is), a **shape**,
# the **device** whose memory holds it, and, in PyTorch, **strides**: how many elements to
# skip in memory to move one step along each axis. Many operations (transpose, slicing, a
# reshape that keeps the order) only write new metadata over the same memory: they return a
# **view**. Others must copy.

# %%
x = torch.arange(12, dtype=torch.float32).reshape(3, 4)  # (3, 4)
print(x.dtype, x.device, x.shape, "strides:", x.stride())
xt = x.T  # (4, 3): a view with swapped strides, no copy
print("x.T strides:", xt.stride(), "contiguous:", xt.is_contiguous())
print("same memory:", xt.data_ptr() == x.data_ptr())

# %% [markdown]
# `view` only re-labels memory, so it refuses a layout it cannot express; `reshape` views when
# it can and copies when it must; `contiguous()` makes the copy explicit.

# %%
try:
    xt.view(12)
except RuntimeError as e:
    # The message's first clause; the rest says why and suggests .reshape(...).
    print("view on a transposed tensor:", type(e).__name__)
    print("  ", str(e).split(" (")[0])
flat = xt.reshape(12)  # (12,): a copy here
print("reshape copied:", flat.data_ptr() != x.data_ptr())
print("contiguous().view works:", xt.contiguous().view(12)[:4])

# %% [markdown]
# **Broadcasting** lines shapes up from the right; a missing or size-1 axis is stretched
# without copying. A `(3, 1)` column minus a `(4,)` row gives a `(3, 4)` table.

# %%
col = torch.tensor([[0.0], [10.0], [20.0]])  # (3, 1)
row = torch.tensor([1.0, 2.0, 3.0, 4.0])  # (4,)
print(col - row)  # (3, 4)

# %% [markdown]
# **In-place** operations end in `_` (`add_`, `mul_`) or use `x[...] =`: they overwrite memory
# instead of allocating. Autograd forbids the ones that destroy a value the backward pass still
# needs: `sigmoid` saves its output for its derivative $\sigma(1 - \sigma)$, so changing that
# output in place makes the gradient wrong, and PyTorch detects it through a version counter.

# %%
w = torch.ones(3, requires_grad=True)
s = torch.sigmoid(w)  # saves its output for backward
s.mul_(2)  # overwrites that saved output
try:
    s.sum().backward()
except RuntimeError as e:
    # Up to the colon, wrapped; the rest names the tensor and its version counter.
    msg = str(e).split(":")[0]
    print(textwrap.fill(f"{type(e).__name__} - {msg}", 88, subsequent_indent="  "))
try:
    w.add_(1)  # a leaf that requires grad cannot be changed in place outside no_grad
except RuntimeError as e:
    print(type(e).__name__, "-", str(e).splitlines()[0])

# %% [markdown]
# **NumPy interop** on the CPU shares memory both ways: `torch.from_numpy` and `.numpy()` are
# views, so writing into one changes the other. `torch.tensor(a)` copies.

# %%
a = np.zeros(3, dtype=np.float32)
t_view, t_copy = torch.from_numpy(a), torch.tensor(a)
a[0] = 7.0
print(
    "from_numpy sees the write:",
    t_view[0].item(),
    "| torch.tensor does not:",
    t_copy[0].item(),
)
print(
    "default dtypes: torch",
    torch.get_default_dtype(),
    "| numpy float",
    np.zeros(1).dtype,
)

# %% [markdown] tags=["shared"]
# ## 3.2 Automatic differentiation

# %% [markdown]
# The outline calls a tensor with `requires_grad=True` a "variable". `torch.autograd.Variable`
# was merged into `Tensor` in PyTorch 0.4 (2018); the name survives only as a deprecated alias.
# Today any floating-point tensor can be a leaf of the graph.

# %%
old = torch.autograd.Variable(torch.ones(2), requires_grad=True)  # the outline's name
print(
    "Variable(...) returns a", type(old).__name__, "| requires_grad:", old.requires_grad
)
x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)  # (3,), a leaf
y = (x**2).sum()  # the graph: pow -> sum, recorded as it runs
print(
    "y.grad_fn:",
    type(y.grad_fn).__name__,
    "->",
    type(y.grad_fn.next_functions[0][0]).__name__,
)
y.backward()
print("dy/dx = 2x:", x.grad)

# %% [markdown]
# `.grad` **accumulates**: a second `backward` adds to it. That is why every training step
# starts with `optimizer.zero_grad()`.

# %%
(x**2).sum().backward()
print("after a second backward, 2x + 2x:", x.grad)
x.grad = None

# %% [markdown]
# The outline calls `out.backward()` on a non-scalar output. `backward` computes a
# **vector-Jacobian product** $v^\top J$: for a scalar loss $v = 1$ is implied, for a vector
# output you must pass $v$ yourself. The outline's call, as written:

# %%
out = x * 2  # (3,): not a scalar
try:
    out.backward()  # the outline's call
except RuntimeError as e:
    print("outline:", type(e).__name__, "-", e)
out.backward(gradient=torch.ones_like(out))  # v = (1, 1, 1): d(sum(out))/dx
print("with a gradient argument:", x.grad)
x.grad = None

# %% [markdown]
# `torch.no_grad()` stops recording (evaluation, weight updates); `torch.inference_mode()`
# does so more strictly and a little faster, and its tensors can never enter a graph later.
# `detach()` returns a tensor that shares memory but is cut from the graph.

# %%
with torch.no_grad():
    print("no_grad:", (x * 2).requires_grad)
with torch.inference_mode():
    print("inference_mode:", (x * 2).requires_grad)
print("detach:", (x * 2).detach().requires_grad)

# %% [markdown]
# A **custom `autograd.Function`** supplies its own backward. Here a softplus,
# $\log(1 + e^x)$, with derivative $\sigma(x)$, written in a form that does not overflow.
# `gradcheck` compares the backward with finite differences in float64.


# %%
class Softplus(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.clamp(x, min=0) + torch.log1p(torch.exp(-x.abs()))

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * torch.sigmoid(x)  # vector-Jacobian product: v * sigma(x)


xs = torch.randn(8, dtype=torch.float64, requires_grad=True)
print("gradcheck:", torch.autograd.gradcheck(Softplus.apply, (xs,)))
print("equals F.softplus:", torch.allclose(Softplus.apply(xs), F.softplus(xs)))

# %% [markdown] tags=["shared"]
# ## 3.3 Modules, parameters and state
#
# A module holds **parameters** (trained by the optimizer) and **buffers** (state that is
# saved but not trained, such as BatchNorm's running mean). The outline's MLP is 784-256-10.
# Its code uses `F.relu` without importing `F`; run in a fresh namespace, as written:

# %%
outline_forward = "x = F.relu(self.fc1(x))"
try:
    exec(outline_forward, {"self": None, "x": None})
except NameError as e:
    print("outline:", type(e).__name__, "-", e)


# %%
class OutlineMLP(nn.Module):
    """The outline's MLP, with F imported; flatten takes this course's image batches."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x):  # x (B, 28, 28) or (B, 784)
        x = x.flatten(1)  # (B, 784)
        x = F.relu(self.fc1(x))  # (B, 256)
        return self.fc2(x)  # (B, 10) logits


torch.manual_seed(0)
mlp = OutlineMLP().to(device)
for name, p in mlp.named_parameters():
    print(f"{name:12s} {tuple(p.shape)}")
print("parameters:", H.count_params(mlp))
bn = nn.BatchNorm1d(4)
print("BatchNorm1d buffers:", [name for name, _ in bn.named_buffers()])
print("state_dict keys:", list(bn.state_dict()))

# %% [markdown]
# The class also flattens its input (`x.flatten(1)`), so it takes this course's image
# batches, `(B, 28, 28)` or `(B, 1, 28, 28)`, as they come.
#
# `nn.Linear` initialises its weight uniformly in $\pm b$, with
# $b = 1/\sqrt{\text{fan}_\text{in}}$ (Kaiming uniform with $a = \sqrt 5$). A uniform
# distribution on $\pm b$ has standard deviation $b/\sqrt 3$, not $b$: the first two lines
# below check that. To choose another scheme, write into the parameters under `no_grad`,
# which is what the functions in `nn.init` do:

# %%
bound = 784**-0.5  # b = 1/sqrt(fan_in)
print(f"bound b = 1/sqrt(784) = {bound:.4f}, b/sqrt(3) = {bound / 3**0.5:.4f}")
print(f"default fc1 weight std: {mlp.fc1.weight.std():.4f}")
with torch.no_grad():
    probe = nn.Linear(784, 256)
    nn.init.kaiming_normal_(probe.weight, nonlinearity="relu")
    nn.init.zeros_(probe.bias)
print(
    f"kaiming_normal_ std: {probe.weight.std():.4f} (sqrt(2/784) = {(2 / 784) ** 0.5:.4f})"
)

# %% [markdown] tags=["shared"]
# ## 3.4 Optimizers

# %% [markdown]
# The outline passes a bare tensor of weights to the optimizer. An optimizer takes an
# *iterable* of parameters (or of parameter groups):

# %%
weights = torch.randn(784, 10, requires_grad=True)
try:
    torch.optim.SGD(weights, lr=0.01)  # the outline's call
except TypeError as e:
    print(
        textwrap.fill(f"outline: {type(e).__name__} - {e}", 88, subsequent_indent="  ")
    )
print("fixed:", type(torch.optim.SGD([weights], lr=0.01)).__name__)

# %% [markdown]
# Each step is `zero_grad` (clear the accumulated gradients), forward, `backward`, `step`.
# **Parameter groups** give parts of the model their own settings; the usual one excludes
# biases and normalisation parameters (every parameter with fewer than 2 dimensions) from
# weight decay, which should shrink weights, not shifts or scales.


# %%
def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(model, sizes.weight_decay)
    return torch.optim.SGD(groups, lr=sizes.learning_rate, momentum=0.9, nesterov=True)


optimizer = make_optimizer(mlp)
for i, g in enumerate(optimizer.param_groups):
    shapes = [tuple(p.shape) for p in g["params"]]
    print(f"group {i}: weight_decay={g['weight_decay']}, params {shapes}")

# %% [markdown] tags=["shared"]
# ## 3.5 Data pipelines
#
# The real MNIST (60,000 training and 10,000 test digits) from the course's cache; `smoke`
# scale takes a subset of each, and the line below the code prints the sizes used. The last
# examples of the training split become a **validation split**: choices (epochs, learning
# rate) are made on it, and the test split is used once, at the end.

# %%
x_all, y_all = H.load_mnist(
    "train", limit=sizes.train_examples
)  # uint8 (N, 28, 28), (N,)
x_test, y_test = H.load_mnist("test", limit=sizes.test_examples)
n_val = sizes.validation_examples
x_train, y_train = x_all[:-n_val], y_all[:-n_val]
x_val, y_val = x_all[-n_val:], y_all[-n_val:]
print(f"train {x_train.shape}, validation {x_val.shape}, test {x_test.shape}")
MEAN, STD = 0.1307, 0.3081  # MNIST's pixel mean and std, the usual normalisation

# %% [markdown]
# A `Dataset` answers two questions, `len(ds)` and `ds[i]`; a `DataLoader` draws indices
# (shuffled with `shuffle=True`), fetches the examples, optionally in worker processes, and
# stacks them into batches. Here the per-example work is a torchvision transform.


# %%
class MnistDataset(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, transform=None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        image = self.images[i]  # uint8 (28, 28)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[i])


to_tensor = v2.Compose(
    [
        v2.ToImage(),  # (28, 28) uint8 -> (1, 28, 28)
        v2.ToDtype(torch.float32, scale=True),  # to [0, 1]
        v2.Normalize([MEAN], [STD]),
    ]
)
train_ds = MnistDataset(x_train, y_train, transform=to_tensor)
image, label = train_ds[0]
print("one example:", tuple(image.shape), image.dtype, "label", label)
xb, yb = next(iter(DataLoader(train_ds, batch_size=sizes.batch_size, shuffle=True)))
print("one batch:", tuple(xb.shape), tuple(yb.shape), yb.dtype)  # (B, 1, 28, 28), (B,)

# %% [markdown]
# What do workers and `pin_memory` cost here? Each setting below reads the same number of
# batches. `pin_memory=True` puts batches in page-locked memory so that a later copy to a GPU
# can run asynchronously; with no GPU there is nothing to speed up. The alternative to
# per-example transforms is **whole-tensor preprocessing**: normalise the whole split once as
# one tensor and slice batches out of it (`TensorDataset`, or the course's `ArrayLoader`).


# %%
def time_batches(loader, n_batches: int) -> float:
    """Seconds per batch over the first n_batches (worker start-up included)."""
    start = time.perf_counter()
    for i, (xb, _) in enumerate(loader):  # noqa: B007
        if i + 1 == n_batches:
            break
    return (time.perf_counter() - start) / n_batches


whole = (torch.from_numpy(x_train).float().div(255) - MEAN) / STD  # (N, 28, 28), once
whole = whole.unsqueeze(1)  # (N, 1, 28, 28)
tensor_ds = TensorDataset(whole, torch.from_numpy(y_train).long())
settings = {
    "transform, 0 workers": dict(dataset=train_ds),
    "transform, 2 workers": dict(dataset=train_ds, num_workers=2),
    "transform, pin_memory": dict(dataset=train_ds, pin_memory=True),
    "whole tensor, TensorDataset": dict(dataset=tensor_ds),
}
loader_seconds = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for name, kw in settings.items():
        loader = DataLoader(batch_size=sizes.batch_size, shuffle=True, **kw)
        loader_seconds[name] = time_batches(loader, sizes.loader_batches)
array_loader = H.ArrayLoader(whole, y_train, sizes.batch_size, shuffle=True)
loader_seconds["whole tensor, ArrayLoader"] = time_batches(
    array_loader, sizes.loader_batches
)
print(f"{sizes.loader_batches} batches of {sizes.batch_size} per setting")
for name, sec in loader_seconds.items():
    print(
        f"{name:30s} {sec * 1e3:8.2f} ms/batch  {sizes.batch_size / sec:10,.0f} images/s"
    )
messages = sorted({str(w.message).split(".")[0] for w in caught})
print("warnings:" if messages else "warnings: none")
for m in messages:
    print(textwrap.fill(m, 88, initial_indent="  ", subsequent_indent="  "))

# %%
fig, ax = plt.subplots(figsize=(7, 3))
names = list(loader_seconds)
bars = ax.barh(names, [sizes.batch_size / loader_seconds[n] for n in names])
ax.bar_label(bars, fmt="{:,.0f}", padding=3)  # each bar's value, at its end
ax.set_xlim(0, 1.2 * max(b.get_width() for b in bars))  # linear, from zero
ax.set(xlabel="images per second", title="MNIST input pipelines")
ax.xaxis.set_major_locator(plt.MaxNLocator(4))  # few, wide labels: no overlap
ax.xaxis.set_major_formatter("{x:,.0f}")  # plain numbers, no 1e6 offset
ax.invert_yaxis()  # first setting on top, as in the table
plt.show()

# %% [markdown]
# The table shows the costs on the machine that ran this page. Per-example transforms run
# Python and torchvision code for every image of every epoch; whole-tensor preprocessing runs
# once and each batch is one indexing operation. Workers start new processes (the time
# includes that start-up); with few cores they compete with the main process for them, and
# they pay off when the per-example work is heavy (decoding JPEGs, random augmentation) and
# cores are free. `pin_memory` only matters with a GPU: on a machine without one PyTorch warns
# that it is ignored (the `warnings` line above); with one, this loop never copies the batches
# to it, so pinning has nothing to speed up. MNIST fits in memory as one tensor, so the rest
# of this chapter slices batches from whole tensors.
#
# Each row times only the number of batches printed above the table, so rows differ by noise
# too. Without a GPU, the `0 workers` and `pin_memory` rows run the same code: whatever gap
# the table shows between them is noise, and it can change sign from one run to the next. The
# real effect is the gap between the per-example rows and the whole-tensor rows, many times
# larger than that noise.

# %% [markdown] tags=["shared"]
# ## 3.6 Training and evaluation loops
#
# The outline's "model optimisation" loop feeds the same batch at every step. Here is its
# pattern, as written, for 100 steps: the training loss on that batch goes to nearly zero
# while accuracy on held-out data stays well below what one pass over the training data
# gives (the first epoch of the loop that follows). A loop must draw a new batch each step.

# %%
torch.manual_seed(0)
one_batch_model = OutlineMLP()
opt = torch.optim.SGD(one_batch_model.parameters(), lr=0.1)
data, target = whole[:64], torch.from_numpy(y_train[:64]).long()  # one batch, reused
for _ in range(100):  # the outline's loop: no new batch per step
    opt.zero_grad()
    loss = F.cross_entropy(one_batch_model(data), target)
    loss.backward()
    opt.step()
val_x = (torch.from_numpy(x_val).float().div(255) - MEAN) / STD  # (V, 28, 28)
val_y = torch.from_numpy(y_val).long()
with torch.no_grad():
    val_acc = (one_batch_model(val_x).argmax(1) == val_y).float().mean().item()
print(f"one batch: training loss {loss.item():.4f}, validation accuracy {val_acc:.3f}")

# %% [markdown]
# The loop written out once. `model.train()` and `model.eval()` switch dropout and
# batch-norm between their two behaviours; evaluation runs under `no_grad` and counts correct
# predictions **per example** (averaging per-batch accuracies would over-weight a smaller last
# batch).


# %%
def train_epoch(model, optimizer, loader) -> float:
    model.train()
    total, n = 0.0, 0
    for xb, yb in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)  # (B, 10) logits vs (B,) labels
        loss.backward()
        optimizer.step()
        total += loss.item() * len(yb)
        n += len(yb)
    return total / n


@torch.no_grad()
def evaluate(model, loader) -> tuple[float, float]:
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    for xb, yb in loader:
        logits = model(xb)
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
        n += len(yb)
    return loss_sum / n, correct / n


def normalised(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), normalised."""
    return ((torch.from_numpy(images).float().div(255) - MEAN) / STD).unsqueeze(1)


train_loader = H.ArrayLoader(
    normalised(x_train), y_train, sizes.batch_size, shuffle=True, drop_last=True
)
val_loader = H.ArrayLoader(normalised(x_val), y_val, 1000)
test_loader = H.ArrayLoader(normalised(x_test), y_test, 1000)

torch.manual_seed(0)
mlp = OutlineMLP().to(device)
optimizer = make_optimizer(mlp)
curve = []
start, cpu_start = time.perf_counter(), time.process_time()
for epoch in tqdm(range(1, sizes.mlp_epochs + 1), desc="MLP epochs"):
    train_loss = train_epoch(mlp, optimizer, train_loader)
    val_loss, val_acc = evaluate(mlp, val_loader)
    curve.append((epoch, train_loss, val_loss, val_acc))
mlp_seconds = time.perf_counter() - start
mlp_cpu = time.process_time() - cpu_start
for epoch, tl, vl, va in curve:
    print(
        f"epoch {epoch}: train loss {tl:.4f}, validation loss {vl:.4f}, accuracy {va:.4f}"
    )

# %% [markdown]
# The outline prints its accuracy with `%d`, which truncates towards zero; `%.2f` (or an
# f-string) prints what was measured:

# %%
test_loss, mlp_test_acc = evaluate(mlp, test_loader)
print("outline: Accuracy: %d %%" % (100 * mlp_test_acc))  # noqa: UP031
print(f"fixed:   Accuracy: {100 * mlp_test_acc:.2f} %")
print(
    f"MLP 784-256-10: test accuracy {mlp_test_acc:.4f} after {mlp_seconds:.1f} s of "
    f"training (process CPU time {mlp_cpu:.1f} s)"
)

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
epochs_ = [c[0] for c in curve]
ax.plot(epochs_, [c[1] for c in curve], marker="o", label="training loss")
ax.plot(epochs_, [c[2] for c in curve], marker="o", label="validation loss")
ax.set(xlabel="epoch", ylabel="cross-entropy (nats)", title="MLP 784-256-10 on MNIST")
ax.set_xticks(epochs_)  # whole epochs only
ax.legend()
plt.show()

# %% [markdown]
# The training loss is the mean over the epoch's steps, taken while the model was still
# improving, and the validation loss is measured after the epoch, so the first epoch's
# training loss can lie above its validation loss.
#
# The same training with the course's `H.fit`, which runs this loop (plus timing and a
# progress bar): the same initial weights (the same seed) and a new loader with the same
# shuffling seed. Reusing `train_loader` would continue its random generator and give other
# batches. The two lines the cell prints, the loop's and `fit`'s, should then match.

# %%
torch.manual_seed(0)
mlp_fit = OutlineMLP().to(device)
fit_loader = H.ArrayLoader(
    normalised(x_train), y_train, sizes.batch_size, shuffle=True, drop_last=True
)
history = H.fit(
    mlp_fit,
    make_optimizer(mlp_fit),
    fit_loader,
    epochs=sizes.mlp_epochs,
    eval_loader=val_loader,
    eval_name="val",
)
fit_test_acc = H.evaluate(mlp_fit, test_loader)["accuracy"]
print(f"loop:  last train loss {curve[-1][1]:.4f}, test accuracy {mlp_test_acc:.4f}")
print(
    f"H.fit: last train loss {history.last('train_loss'):.4f}, test accuracy {fit_test_acc:.4f}"
)

# %% [markdown]
# Then a small **CNN**, the course's shared `H.CNN`: two blocks of 3x3 convolution, 2x2 max
# pooling, batch-norm and ReLU, then a hidden layer with dropout. It trains with Adam and a
# cosine decay of the learning rate to zero; `fit` calls only `optimizer.step()`, so a step
# hook advances the schedule.

# %%
torch.manual_seed(0)
cnn = H.CNN(1, cnn_sizes.channels, cnn_sizes.hidden, 10, dropout=cnn_sizes.dropout).to(
    device
)
print(cnn)
cnn_train = H.ArrayLoader(
    normalised(x_all), y_all, cnn_sizes.batch_size, shuffle=True, drop_last=True
)
cnn_opt = torch.optim.Adam(cnn.parameters(), lr=cnn_sizes.learning_rate)
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
    cnn_opt, T_max=cnn_sizes.epochs * len(cnn_train)
)
cnn_opt.register_step_post_hook(lambda *_: schedule.step())
cpu_start = time.process_time()
cnn_history = H.fit(cnn, cnn_opt, cnn_train, epochs=cnn_sizes.epochs)
cnn_cpu = time.process_time() - cpu_start
cnn_seconds = sum(e["seconds"] for e in cnn_history.epochs)
cnn_test_acc = H.evaluate(cnn, test_loader)["accuracy"]
print(f"CNN ({H.count_params(cnn):,} parameters): test accuracy {cnn_test_acc:.4f}")
print(
    f"  {cnn_seconds:.1f} s of training on {len(y_all):,} images, {cnn_sizes.epochs} "
    f"epoch(s) (process CPU time {cnn_cpu:.1f} s)"
)

# %% [markdown]
# The CNN trains on the whole training split loaded above, the validation examples included
# (nothing more is chosen with them here; the line above prints how many images: all 60,000
# at `cpu` scale). At `cpu` scale the page asserts that the MLP reaches at least 97 % test
# accuracy and the CNN 99.0 %, each in under five minutes of training; at the other scales, only
# that both learn. The time it checks is the smaller of the wall time and the process's CPU
# time (all its threads together), since other programs running on the machine lengthen the
# first but not the second. The recorded `helpers.bench mnist --model cnn` runs, which time
# both frameworks through one harness on one machine, are in `bench.jsonl` beside this
# notebook; the cell after the check prints the latest of each. Those runs trained the `cpu`
# scale's CNN, which the first lines of that cell describe from the records (model, parameter
# count, training images). Only at `cpu` scale does this page train the same CNN on the same
# images; at `smoke` scale it trains a smaller one on fewer images (compare the parameter
# counts), so its accuracy is not comparable with the table's.

# %%
if H.current_scale() == "cpu":
    assert mlp_test_acc >= 0.97 and min(mlp_seconds, mlp_cpu) < 300, (
        mlp_test_acc,
        mlp_cpu,
    )
    assert cnn_test_acc >= 0.99 and min(cnn_seconds, cnn_cpu) < 300, (
        cnn_test_acc,
        cnn_cpu,
    )
else:  # smoke and gpu scale: both still learn
    assert mlp_test_acc > 0.5 and cnn_test_acc > 0.3, (mlp_test_acc, cnn_test_acc)

# %%
# Recorded by `python -m helpers.bench mnist --model cnn --framework both --scale cpu --record`:
# the latest record of each framework, scale and machine (older ones left out).
bench_file = H.course_root() / "chapters/03-pytorch-in-depth/bench.jsonl"
records = [{**r, "machine": short_hardware(r)} for r in read_records(bench_file)]
recorded = {(r["model"], r["parameters"], r["train_examples"]) for r in records}
for model_name, n_params, n_images in sorted(recorded):
    print(f"recorded: {model_name}")
    print(f"  {n_params:,} parameters, {n_images:,} training images")
print(
    f"{'framework':9} {'scale':5} {'epochs':>6} {'test acc':>8} {'train s':>7}"
    f" {'examples/s':>10}  hardware, date, commit"
)
for r in latest_by(records, "scale", "machine", "framework").values():
    print(
        f"{r['framework']:9} {r['scale']:5} {r['epochs']:6} {r['test_accuracy']:8.2%}"
        f" {r['train_seconds']:7.1f} {r['train_examples_per_second']:10,.0f}"
        f"  {r['machine']}, {r['date'][:10]}, {r['commit'][:7]}"
    )

# %% [markdown] tags=["shared"]
# ## 3.7 Saving, loading and resuming

# %% [markdown]
# Save the **state** (named tensors), not the Python object: a pickled object can run
# arbitrary code when loaded and breaks when the class's code moves. `torch.load` therefore
# defaults to `weights_only=True` (since PyTorch 2.6), which refuses anything but tensors and
# plain containers; loading a whole pickled model fails:

# %%
buffer = io.BytesIO()
torch.save(mlp, buffer)  # the whole module, pickled
buffer.seek(0)
try:
    torch.load(buffer, weights_only=True)
except Exception as e:
    print(type(e).__name__, "-", str(e).split(".")[0])

path = os.path.join(tempfile.mkdtemp(), "mlp.pt")
torch.save(mlp.state_dict(), path)
restored = OutlineMLP().to(device)
restored.load_state_dict(torch.load(path, weights_only=True))
same_acc = evaluate(restored, test_loader)[1] == mlp_test_acc
print("restored model's test accuracy equals the original's:", same_acc)

# %% [markdown]
# **Resuming exactly** needs everything the next step depends on: the weights and buffers,
# the optimizer's state (momentum, Adam's moments, the current learning rate), a learning-rate
# scheduler's own `state_dict` if one is used (its position in the schedule lives there, not
# in the optimizer's), and the random number generators (the batch order and dropout masks).
# This example uses no scheduler. Below, a small MLP with dropout
# trains for a few steps; a checkpoint is written; training continues. Then a fresh model,
# optimizer and generator load the checkpoint and take the same next steps: their losses are
# bit-identical.


# %%
def steps(model, optimizer, gen, n):
    """n training steps on batches drawn with gen; the losses as Python floats."""
    model.train()
    losses = []
    for _ in range(n):
        idx = torch.randint(len(whole), (32,), generator=gen)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(whole[idx]), torch.from_numpy(y_train)[idx].long())
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def fresh(seed=0):
    torch.manual_seed(seed)
    # (B, 1, 28, 28) -> (B, 10), with dropout: the RNG state matters.
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 10)
    )
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), torch.Generator()


model, opt, gen = fresh()
gen.manual_seed(1)
steps(model, opt, gen, 5)
checkpoint = {
    "model": model.state_dict(),
    "optimizer": opt.state_dict(),
    "data_rng": gen.get_state(),
    "torch_rng": torch.get_rng_state(),  # dropout masks come from the global generator
}
torch.save(checkpoint, path)
continued = steps(model, opt, gen, 3)

model2, opt2, gen2 = fresh(
    seed=123
)  # different initial weights: all must come from disk
ckpt = torch.load(path, weights_only=True)
model2.load_state_dict(ckpt["model"])
opt2.load_state_dict(ckpt["optimizer"])
gen2.set_state(ckpt["data_rng"])
torch.set_rng_state(ckpt["torch_rng"])
resumed = steps(model2, opt2, gen2, 3)
print("continued:", continued)
print("resumed:  ", resumed)
assert continued == resumed  # bit-identical, not merely close

# %% [markdown] tags=["shared"]
# ## 3.8 Compilation

# %% [markdown]
# PyTorch runs eagerly: each operation is dispatched from Python as it is reached.
# `torch.compile` {cite}`ansel2024pytorch2` traces a function into a graph and generates
# fused code for it (on a CPU, C++ compiled by the system's compiler). The first call pays for
# the compilation; later calls may be faster. At `cpu` and `gpu` scale the MLP's whole
# training step is compiled with the default backend, `inductor`, on the page's device (on a
# GPU, `inductor` generates Triton kernels instead of C++). At `smoke` scale, a quick check
# that the page runs, a tiny function is compiled instead, with the `aot_eager` backend, which
# captures the graph but generates no code and so starts no C++ compiler.


# %%
def timed(fn, *args, repeats=sizes.timing_repeats):
    """(seconds of the first call, median seconds of the next `repeats` calls)."""
    start = time.perf_counter()
    H.synchronize(fn(*args))  # on a GPU, wait for the result before reading the clock
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        H.synchronize(fn(*args))
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def gelu_tanh(x):  # a chain of elementwise operations: what fusion is for
    return 0.5 * x * (1 + torch.tanh(0.79788456 * (x + 0.044715 * x**3)))


torch.manual_seed(0)
model_c = OutlineMLP().to(device)
opt_c = torch.optim.SGD(model_c.parameters(), lr=0.01)
xb_c, yb_c = (
    whole[: sizes.batch_size].to(device),
    torch.from_numpy(y_train[: sizes.batch_size]).long().to(device),
)


def train_step(xb, yb):
    opt_c.zero_grad()
    loss = F.cross_entropy(model_c(xb), yb)
    loss.backward()
    opt_c.step()
    return loss


if sizes.compile_model:
    label, fn, args = "MLP training step", train_step, (xb_c, yb_c)
else:
    label, fn, args = (
        "gelu_tanh on 100k numbers",
        gelu_tanh,
        (torch.randn(100_000, device=device),),
    )
eager_first, eager_step = timed(fn, *args)
# Two harmless messages from inside torch, kept off the page: Inductor's warning on machines
# without CUDA, and Dynamo's note that it skips the optimizer's profiler annotation
# (record_function) inside the compiled step. Only that one message of Dynamo is dropped.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
logging.getLogger("torch._dynamo.variables.ctx_manager").addFilter(
    lambda record: not str(record.msg).startswith("Profiler record function")
)
torch._dynamo.reset()
compiled_first, compiled_step = timed(
    torch.compile(fn, backend=sizes.compile_backend), *args
)
print(f"{label}: eager {eager_step * 1e3:.3f} ms per call")
print(
    f"compiled ({sizes.compile_backend}): first call {compiled_first:.1f} s (compilation), then "
    f"{compiled_step * 1e3:.3f} ms per call, {eager_step / compiled_step:.2f}x eager"
)

# %% [markdown]
# The numbers above are this machine's, and the output names the backend that produced
# them. With `aot_eager` (at `smoke` scale) the compiled function runs the same eager kernels
# as before, so its ratio to eager shows only the wrapper's overhead and run-to-run noise: it
# lands near 1, usually a little below (the wrapper's cost), sometimes above, and says nothing
# about what compilation gains (nor can it be set against the JAX page's `jit` ratio, which
# is compiled code). Only with `inductor` (at `cpu` and `gpu` scale) does the ratio measure
# generated code, and it moves too: `inductor`
# keeps compiled kernels in an on-disk cache, so running this page a second time makes the
# first call much shorter, and short steps vary from run to run, so the compiled step can
# come out faster than eager in one run and slower in the next.
#
# Compilation helps when Python dispatch and memory traffic dominate (many small
# elementwise operations it can fuse into one loop) and when a function runs many times; it
# does not pay when a run is short, when the time goes into a few large matrix products that
# already call an optimised library, or when shapes keep changing (each new shape can trigger
# a recompilation).

# %% [markdown] tags=["shared"]
# ## 3.9 Summary
#
# * Arrays are memory plus metadata; PyTorch exposes views and strides and allows in-place
#   changes (within autograd's rules), JAX arrays are immutable and the compiler owns layout.
# * A gradient is a vector-Jacobian product; for a non-scalar output you supply the vector.
#   PyTorch accumulates gradients until they are cleared, a JAX gradient is a return value.
# * Optimizers update a model's parameters; weight decay belongs on weights, not on biases or
#   normalisation parameters (parameter groups in PyTorch, a mask in Optax).
# * For data that fits in memory, preprocessing the whole array once and slicing batches from
#   it beats per-example transforms by a wide margin (section 3.5's table).
# * Train and evaluate in the right mode, count accuracy per example, save state rather than
#   objects, and restore the optimizer and the random state too to resume exactly.

# %% [markdown] tags=["notebook-only"]
# Next: [the JAX half of this chapter](in-jax.ipynb), then the
# [lab](../../labs/03-pytorch-in-depth/in-pytorch.ipynb), whose self-checks tell you when each
# exercise is right. Works cited are listed in the [bibliography](../../bibliography.md).
