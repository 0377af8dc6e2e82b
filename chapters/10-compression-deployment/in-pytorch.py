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
# # 10. Compression, export, interpretability and the outlook: PyTorch
#
# This is the PyTorch half of chapter 10; the [JAX half](in-jax.ipynb) tells the same story in
# the same order. By the end you will have
#
# * quantized a trained CIFAR-10 network to int8 by hand (per-channel symmetric scales) and with
#   PyTorch's dynamic quantization, pruned it by weight magnitude (single weights and whole
#   channels) with fine-tuning, and distilled it into a smaller network;
# * measured every variant in one table: size on disk, CPU latency (median and 95th percentile
#   at batch 1 and 64) and test accuracy;
# * exported the model with `torch.export` and to ONNX, run both in a fresh process or in
#   onnxruntime, and checked their outputs against the original;
# * explained predictions with saliency maps and integrated gradients, for images and for the
#   words of a review, and measured how complete the attributions are;
# * compared the two frameworks with the numbers this course recorded.

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

# %%
import copy
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune
from tqdm import tqdm

from helpers import torch as H
from helpers.comparison import code_lines, framework_pairs, latest_runs
from helpers.data import text as T
from helpers.results import load_records, summary_rows

# Every size this notebook uses comes from helpers/scale/compression.py.
s = H.sizes("compression")
# Latency and export are measured on the CPU, where a deployed small model usually runs.
device = torch.device("cpu")
generator = H.seed_everything(0)
workdir = Path(tempfile.mkdtemp(prefix="ch10-"))  # exported files go here
H.runtime_info(device)

# %% [markdown] tags=["shared"]
# ## 10.1 Two trained models
#
# The chapter works on two small models trained right here with the helpers of chapters 5 and
# 6: chapter 5's `CifarNet` on CIFAR-10 {cite}`krizhevsky2009learning`, and a bag-of-words
# sentiment classifier on IMDB {cite}`maas2011learning` (chapter 6's `BagOfNgrams` without the
# hashed bigrams, so each input position is one word and its attribution can be read). At
# `smoke` scale both are tiny and barely trained; the numbers only mean something at `cpu`
# scale and above.
#
# One short training loop serves the whole chapter: Adam on random batches, without chapter
# 5's augmentation and schedule (fewer moving parts, one compiled step per network shape in
# JAX), with two options used later: masks that keep pruned weights at zero (section 10.3) and
# a distillation term (section 10.4, where its formula is explained). It trains the CIFAR-10
# model first.

# %%
with H.vision.data_source() as source:
    x_train, y_train = H.load_cifar10("train", limit=s.train_examples)
    x_test, y_test = H.load_cifar10("test", limit=s.test_examples)
print("data:", source["data"])
print(f"train {x_train.shape}, test {x_test.shape}")
mean, std = H.vision.channel_stats(x_train)  # (3,), (3,) of the training split
train_images = torch.as_tensor(x_train)  # (N, 32, 32, 3) uint8
train_labels = torch.as_tensor(y_train, dtype=torch.long)  # (N,)
test_images = torch.as_tensor(x_test)


def accuracy(model: nn.Module) -> float:
    """Test accuracy of a CIFAR-10 model (no test-time flips)."""
    logits = H.vision.predict_logits(model, test_images, mean, std)  # (N, 10)
    return float((logits.argmax(1) == y_test).mean())


def distillation_loss(student_logits, teacher_logits, temperature):
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), mean over the batch."""
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=-1)  # (B, C)
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)  # (B,)
    return temperature**2 * kl.mean()


def train_steps(model, steps, *, masks=(), teacher_logits=None, desc="train"):
    """Adam for `steps` batches; re-apply (weight, mask) pairs after every step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=s.learning_rate)
    g = torch.Generator().manual_seed(1)
    batches = torch.randint(len(train_images), (steps, s.batch_size), generator=g)
    model.train()
    for idx in tqdm(batches, desc=desc):  # idx: (B,) image indices
        logits = model(H.vision.to_input(train_images[idx], mean, std))  # (B, 10)
        loss = F.cross_entropy(logits, train_labels[idx])
        if teacher_logits is not None:
            soft = distillation_loss(logits, teacher_logits[idx], s.temperature)
            loss = (1 - s.distill_weight) * loss + s.distill_weight * soft
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for weight, mask in masks:
                weight.mul_(mask)
    return model.eval()


teacher = H.vision.CifarNet(s.teacher_widths, device=device)
# The first optimiser a process builds imports torch._dynamo (seconds, once): done here, so
# the time below measures training.
import torch._dynamo

start = time.perf_counter()
train_steps(teacher, s.teacher_steps, desc="teacher")
teacher_seconds = time.perf_counter() - start
teacher.eval()
teacher_accuracy = accuracy(teacher)
print(
    f"CifarNet {s.teacher_widths}: {H.count_params(teacher):,} parameters, "
    f"{s.teacher_steps} steps of {s.batch_size} in {teacher_seconds:.0f} s, "
    f"test accuracy {teacher_accuracy:.2%}"
)
assert teacher_accuracy > 0.15, "the CIFAR-10 model should learn above chance (10 %)"

# %%
imdb = T.encode_imdb(
    train_examples=s.imdb_train_examples,
    test_examples=s.imdb_test_examples,
    max_len=s.imdb_max_len,
    min_freq=s.imdb_min_freq,
)
ids, lengths, labels = imdb.train  # (N, T) int32, (N,), (N,)
text_model = H.text.BagOfNgrams(imdb.table_size, s.imdb_dim).to(device)
# Every batch padded to max_len (multiple=): one shape, so JAX compiles its step once.
width = s.imdb_max_len
text_train = H.text.TextLoader(
    ids, lengths, labels, 64, shuffle=True, multiple=width, device=device
)
text_test = H.text.TextLoader(*imdb.test, 250, multiple=width, device=device)
text_history = H.fit(
    text_model,
    torch.optim.Adam(text_model.parameters(), lr=1e-2),
    text_train,
    epochs=s.imdb_epochs,
    eval_loader=text_test,
)
text_model.eval()
text_accuracy = text_history.last("test_accuracy")
print(
    f"bag of words, vocabulary {len(imdb.vocab):,}: test accuracy {text_accuracy:.2%}"
)
assert text_accuracy > 0.55, "the IMDB model should learn above chance (50 %)"

# %% [markdown] tags=["shared"]
# ## 10.2 Quantization: int8 weights
#
# A float32 weight takes 4 bytes; an int8 takes 1. *Symmetric* quantization maps a weight
# tensor onto the integers $-127 \dots 127$ with one scale $s$ (the integer-only inference of
# {cite}`jacob2018quantization` adds a zero point for ranges that are not centred on 0, such
# as a ReLU's activations; lab 10 has you write it), and
# *per-channel* quantization uses one scale per output channel $c$ (each filter of a
# convolution, each row of a linear layer), because channels differ in range and one shared
# scale wastes the small ones' precision {cite}`krishnamoorthi2018quantizing`:
#
# $$
# \begin{gathered}
# s_c = \frac{\max_i |W_{c,i}|}{127}, \qquad \hat W_{c,i} = s_c\, q_{c,i}, \\
# q_{c,i} = \operatorname{clip}\big(\operatorname{round}(W_{c,i} / s_c), -127, 127\big).
# \end{gathered}
# $$
#
# The rounding error is at most $s_c / 2$ per weight. The output-channel axis is the first axis
# of PyTorch's weights, `(out, in, kh, kw)` for a convolution and `(out, in)` for a linear
# layer, and the last axis of Flax's, `(kh, kw, in, out)` and `(in, out)`. The code below
# quantizes every convolution and linear weight this way and keeps the BatchNorm parameters in
# float32 (they are few). This is *weight-only* quantization: the weights are stored in int8
# and turned back into float32 when the model is loaded (`dequantize_int8` below), so it saves
# disk and download; the loaded model holds float32 weights again, takes float32's memory and
# computes in float32.


# %%
def quantize_int8(w: torch.Tensor, axis: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel symmetric int8: (q int8, like w; scale float32, 1 along every other axis)."""
    others = tuple(d for d in range(w.ndim) if d != axis % w.ndim)
    scale = w.abs().amax(dim=others, keepdim=True) / 127  # (out, 1, 1, 1) for a conv
    scale = scale.clamp(min=torch.finfo(torch.float32).tiny)  # an all-zero channel
    q = torch.clamp(torch.round(w / scale), -127, 127).to(torch.int8)
    return q, scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.to(torch.float32) * scale


w = teacher.stem[0].weight.detach()  # (out, in, kh, kw)
q, scale = quantize_int8(w)
# The same numbers from PyTorch's (deprecated) quantized-tensor API:
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    library = torch.quantize_per_channel(
        w, scale.flatten(), torch.zeros(len(w), dtype=torch.long), 0, torch.qint8
    )
assert torch.equal(library.int_repr(), q), "hand-written int8 differs from PyTorch's"
per_tensor = w.abs().max() / 127
err_channel = (dequantize_int8(q, scale) - w).abs().mean()
err_tensor = (
    (torch.clamp(torch.round(w / per_tensor), -127, 127) * per_tensor - w).abs().mean()
)
print(
    f"stem weight {tuple(w.shape)}: mean |error| per-channel {err_channel:.2e}, "
    f"per-tensor {err_tensor:.2e}"
)

# Quantize every conv / linear weight; keep the rest (BatchNorm) as float32.
int8_state = {}
for name, value in teacher.state_dict().items():
    if name.endswith("weight") and value.ndim >= 2:
        int8_state[name + ".q"], int8_state[name + ".scale"] = quantize_int8(value)
    else:
        int8_state[name] = value
# Loading: dequantize into a float32 model of the same architecture.
restored = {}
for name, value in int8_state.items():
    if name.endswith(".q"):
        restored[name[:-2]] = dequantize_int8(value, int8_state[name[:-2] + ".scale"])
    elif not name.endswith(".scale"):
        restored[name] = value
int8_model = H.vision.CifarNet(s.teacher_widths, device=device)
int8_model.load_state_dict(restored)
int8_model.eval()
print(
    f"accuracy float32 {teacher_accuracy:.2%}, int8 weights {accuracy(int8_model):.2%}"
)

# %% [markdown]
# PyTorch also quantizes *dynamically*: the weights of `nn.Linear` layers (and of recurrent
# layers such as LSTM and GRU) are stored in int8 and the activations are quantized on the
# fly, batch by batch, so the matrix products run in int8 arithmetic. Its API,
# `torch.ao.quantization`, warns that it is deprecated and points to the `torchao` package
# (`quantize_`), which this course's environment does not include. The next cell shows both
# facts and the installed version: it is already past the release the warning names for the
# removal, yet the old API still works, so the cell uses it. It converts only linear layers:
# in this convolutional network that is the head.

# %%
print("PyTorch", torch.__version__)
try:
    import torchao  # noqa: F401

    print("torchao is installed: prefer torchao.quantization.quantize_")
except ModuleNotFoundError as e:
    print(f"{type(e).__name__}: {e}")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    dynamic_model = torch.ao.quantization.quantize_dynamic(
        copy.deepcopy(teacher), {nn.Linear}, dtype=torch.qint8
    )
for message in {str(w.message) for w in caught}:
    lines = [line.strip() for line in message.splitlines()]
    print(
        textwrap.fill(lines[0], 96, initial_indent="warning: ", subsequent_indent="  ")
    )
    # the item that names torchao's replacement, `quantize_`, without its list number
    for line in (ln for ln in lines[1:] if "quantize_ API" in ln):
        item = line.split(". ", 1)[-1] if line[:1].isdigit() else line
        print(textwrap.fill(item, 96, initial_indent="  ", subsequent_indent="  "))
converted = [
    n for n, m in dynamic_model.named_modules() if "quantized" in type(m).__module__
]
print("converted modules:", converted)

# %% [markdown] tags=["shared"]
# ## 10.3 Pruning: removing weights and channels
#
# Magnitude pruning sets the weights of smallest absolute value to zero and fine-tunes the
# rest {cite}`han2015learning`. *Unstructured* pruning zeroes single weights anywhere: the
# tensor keeps its shape, so a dense file and a dense matrix product do not shrink or speed up
# (the zeros only compress well); it takes sparse kernels to profit. *Structured* pruning
# removes whole output channels, here those whose filters have the smallest L1 norm
# {cite}`li2017pruning`, and rebuilds a genuinely narrower network, which is smaller
# everywhere and does less arithmetic (whether it is measurably faster depends on the hardware
# and the size: section 10.5). Both are fine-tuned below (`finetune_steps` steps: 100 at `cpu`
# scale); the unstructured masks are applied again after every step, so pruned weights stay
# zero.


# %%
def magnitude_mask(w: torch.Tensor, fraction: float) -> torch.Tensor:
    """1 where |w| is among the largest (1 - fraction) of the tensor, 0 elsewhere."""
    k = round(fraction * w.numel())  # weights to remove
    mask = torch.ones_like(w)
    mask.view(-1)[w.abs().flatten().topk(k, largest=False).indices] = 0
    return mask


convs = [m for m in teacher.modules() if isinstance(m, nn.Conv2d)]
check = copy.deepcopy(convs[1])
prune.l1_unstructured(check, "weight", amount=s.prune_fraction)
assert torch.equal(magnitude_mask(convs[1].weight, s.prune_fraction), check.weight_mask)


pruned = copy.deepcopy(teacher)
masks = [
    (m.weight, magnitude_mask(m.weight.detach(), s.prune_fraction))
    for m in pruned.modules()
    if isinstance(m, nn.Conv2d)
]
with torch.no_grad():
    for weight, mask in masks:
        weight.mul_(mask)
pruned_before = accuracy(pruned)
train_steps(pruned, s.finetune_steps, masks=masks, desc="fine-tune (unstructured)")
zeros = sum(int((wt == 0).sum()) for wt, _ in masks) / sum(
    wt.numel() for wt, _ in masks
)
print(
    f"{zeros:.0%} of conv weights zero: accuracy {pruned_before:.2%} right after "
    f"pruning, {accuracy(pruned):.2%} after fine-tuning"
)


# %%
def prune_channels(model: nn.Module, widths: tuple[int, ...]) -> nn.Module:
    """A CifarNet of `widths` holding each conv's filters of largest L1 norm."""
    small = H.vision.CifarNet(widths, device=device)
    pairs = zip(
        [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.BatchNorm2d)],
        [m for m in small.modules() if isinstance(m, nn.Conv2d | nn.BatchNorm2d)],
        strict=True,
    )
    keep = torch.arange(3)  # input channels kept: all three colours
    with torch.no_grad():
        for big, little in pairs:
            if isinstance(big, nn.Conv2d):  # weight (out, in, kh, kw)
                inputs = keep
                norms = big.weight.abs().sum(dim=(1, 2, 3))  # (out,)
                keep = norms.topk(little.out_channels).indices.sort().values
                little.weight.copy_(big.weight[keep][:, inputs])
            else:  # the BatchNorm after it: its channels follow the conv's
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(little, name).copy_(getattr(big, name)[keep])
        small.head.weight.copy_(model.head.weight[:, keep])  # (classes, kept)
    return small.eval()


narrow = prune_channels(teacher, s.student_widths)
narrow_before = accuracy(narrow)
train_steps(narrow, s.finetune_steps, desc="fine-tune (structured)")
print(
    f"channels {s.teacher_widths} -> {s.student_widths}: {H.count_params(narrow):,} "
    f"parameters\naccuracy {narrow_before:.2%} right after pruning, "
    f"{accuracy(narrow):.2%} after fine-tuning"
)

# %% [markdown] tags=["shared"]
# ## 10.4 Knowledge distillation
#
# A small *student* can learn from a trained *teacher*'s full output distribution, not only
# from the labels {cite}`hinton2015distilling`. Both logits are softened by a temperature $T$,
# and the student minimises
#
# $$
# \begin{aligned}
# \mathcal L = {} & (1-\alpha)\,\mathrm{CE}(y, z_s) \\
# & + \alpha\, T^2\, \mathrm{KL}(p_t \,\|\, p_s), \\
# p_k = {} & \operatorname{softmax}(z_k / T), \quad k \in \{s, t\},
# \end{aligned}
# $$
#
# with $z_s$ and $z_t$ the student's and the teacher's logits, $y$ the label and $\alpha$ the
# soft term's weight, the $T^2$ keeping the soft term's gradients on the scale of the hard
# one's (the next cell prints $T$ and $\alpha$, the settings `temperature` and
# `distill_weight`). The teacher's logits are computed once for the training images (without
# augmentation, so they can be looked up by index). To see what the teacher adds, the same
# student architecture (the narrow widths of section 10.3) is trained twice from the same
# initialisation for the same number of steps: on the labels alone, and with the distillation
# term.

# %%
student_logits = torch.randn(4, 10, generator=generator)
teacher_check = torch.randn(4, 10, generator=generator)
library = 9 * F.kl_div(
    F.log_softmax(student_logits / 3, -1),
    F.log_softmax(teacher_check / 3, -1),
    reduction="batchmean",
    log_target=True,
)
torch.testing.assert_close(
    distillation_loss(student_logits, teacher_check, 3.0), library
)

with torch.no_grad():
    # teacher_logits: (N, 10)
    teacher_logits = torch.as_tensor(
        H.vision.predict_logits(teacher, train_images, mean, std)
    )
torch.manual_seed(2)
scratch = H.vision.CifarNet(s.student_widths, device=device)
distilled = copy.deepcopy(scratch)  # the same initial weights
train_steps(scratch, s.student_steps, desc="student, labels only")
train_steps(distilled, s.student_steps, teacher_logits=teacher_logits, desc="distilled")
print(
    f"student {s.student_widths}: labels only {accuracy(scratch):.2%}, "
    f"distilled {accuracy(distilled):.2%} (teacher {teacher_accuracy:.2%})"
)
print(f"temperature T = {s.temperature:g}, distill_weight alpha = {s.distill_weight:g}")

# %% [markdown] tags=["shared"]
# ## 10.5 One table: size, latency, accuracy
#
# Every variant is measured the same way: its size as the file its framework saves (and that
# file compressed with deflate, which is where unstructured zeros pay off), its latency on the
# CPU at batch 1 and batch 64 as the median (p50) and 95th percentile (p95) of
# `latency_repeats` timed calls after warm-up (the p95 is close to the single slowest call
# when there are few, as at `smoke` scale; the line above the table prints their number),
# and its test accuracy. A p95 far above the p50 means that some calls stalled on the shared
# machine.

# %%
x1 = H.vision.to_input(test_images[:1], mean, std)  # (1, 3, 32, 32) channels_last
x64 = H.vision.to_input(test_images[:64], mean, std)  # (64, 3, 32, 32)
variants = {
    "float32": (teacher, teacher.state_dict()),
    "int8 weights (by hand)": (int8_model, int8_state),
    f"pruned {s.prune_fraction:.0%} (unstructured)": (pruned, pruned.state_dict()),
    "pruned channels (structured)": (narrow, narrow.state_dict()),
    "student, labels only": (scratch, scratch.state_dict()),
    "student, distilled": (distilled, distilled.state_dict()),
    # PyTorch only, so last: the variants both pages share get the same marker and colour
    "dynamic int8 (torch.ao)": (dynamic_model, dynamic_model.state_dict()),
}
rows = []
for name, (model, state) in tqdm(variants.items(), desc="measure"):
    size = H.deploy.saved_size(state)
    b1 = H.deploy.latency_ms(model, x1, repeats=s.latency_repeats)
    b64 = H.deploy.latency_ms(model, x64, repeats=s.latency_repeats)
    # torch.ao's dynamic int8 modules keep packed weights that count_params does not see
    params = H.count_params(model) if name != "dynamic int8 (torch.ao)" else "-"
    rows.append(
        {
            "variant": name,
            "params": params,
            "size": size["bytes"] / 1e3,
            "zip": size["zipped_bytes"] / 1e3,
            "b1 p50": b1["p50"],
            "b1 p95": b1["p95"],
            "b64 p50": b64["p50"],
            "b64 p95": b64["p95"],
            "acc": accuracy(model),
        }
    )
print(
    "size, zip (deflated) in kB; b1, b64: latency in ms at batch 1, 64; acc: test accuracy"
)
print(f"p50, p95 of latency_repeats = {s.latency_repeats} timed calls after warm-up")
print(H.deploy.format_table(rows))
# Narrow rows compute less (fewer params than the teacher); the rest compute the teacher's.
# Each line: the two groups' ranges of medians, and whether the gap exceeds the wider range.
print("\n".join(H.deploy.latency_verdicts(rows, H.count_params(teacher))))
print(f"torch threads: {torch.get_num_threads()}")

# Variants can land on one point: the plot nests coincident markers; a legend names them.
fig = H.deploy.plot_size_accuracy(
    rows, title="CIFAR-10 variants: size against accuracy (PyTorch)"
)
plt.show()

# %% [markdown] tags=["shared"]
# Read the table with its caveats. Weight-only int8 shrinks the file (a weight takes one byte
# instead of four; BatchNorm stays in float32), but the loaded model is a float32 model again
# and does the float32 row's arithmetic, on weights rounded to the int8 grid (hence its
# slightly different accuracy). Unstructured pruning leaves the dense file's size alone and
# shows up only in the zipped size; its dense products, zeros included, are the float32 row's
# too. (The PyTorch page's dynamic int8 row changes only the small linear head.) Structured
# pruning and the students are the only variants that compute less (the `params` column counts
# their weights), and their accuracy column is what it costs. Whether they also run faster, the
# latency columns can show only beyond the measurement's own spread: rows that compute the same
# thing (float32, int8 weights and unstructured pruning; the structured model and the two
# students) differ by chance alone, so a difference no larger than theirs is noise. At `smoke`
# scale, with a handful of timed calls of a tiny network on a shared CPU, the spread can be as
# large as the effects: the lines under the table give, for each batch size, the medians'
# ranges of the narrow models (the rows with fewer `params`) and of the wide ones, and call the
# gap between the groups a difference only when it exceeds the wider of the two ranges. Fine-tuning is also extra training:
# where a pruned model beats the float32 row, the teacher was not trained to convergence. At
# `smoke` scale every model is barely trained and tiny: the accuracies are noise, and the sizes
# and latencies are not those of the `cpu` or `gpu` models.
#
# ## 10.6 Export: a model without its Python
#
# Exporting turns a model into a file that another process, language or machine can run without
# the Python code that defined it. PyTorch offers `torch.export`, which traces the model into
# an ATen-level graph saved with its weights as a `.pt2` archive that `torch.export.load` reads
# back (PyTorch's ahead-of-time compiler,
# [AOTInductor](https://docs.pytorch.org/docs/stable/torch.compiler_aot_inductor.html), takes
# such an exported program and writes a package of compiled code of its own), and ONNX export,
# which writes the standard ONNX graph that runtimes such as onnxruntime execute
# {cite}`onnx2017`. JAX offers `jax.export`, which serialises the StableHLO program of a jitted
# function for a stated platform. Each export below marks the batch dimension as symbolic, so
# one artefact serves many batch sizes: the JAX artefact any batch size (the symbol `b`); the
# PyTorch exports declare `Dim("batch", min=1, max=4096)`, a range the `.pt2` program checks at
# every call and the ONNX graph keeps only as the name `batch`. Each is run in a fresh process
# (or a separate runtime) and compared with the original model.

# %%
example = x64[:4]  # (4, 3, 32, 32)
batch = torch.export.Dim("batch", min=1, max=4096)
start = time.perf_counter()
exported = torch.export.export(teacher, (example,), dynamic_shapes={"x": {0: batch}})
pt2_path = workdir / "cifarnet.pt2"
torch.export.save(exported, pt2_path)
print(
    f"torch.export in {time.perf_counter() - start:.1f} s: "
    f"{len(exported.graph.nodes)} graph nodes, {pt2_path.stat().st_size / 1e3:.0f} kB"
)
inputs = exported.graph_signature.input_specs
print(
    "inputs of the graph:",
    {k.name: sum(i.kind == k for i in inputs) for k in {i.kind for i in inputs}},
)

reload_script = f"""
import sys, numpy as np, torch
program = torch.export.load({str(pt2_path)!r})  # no CifarNet class in this process
x = torch.from_numpy(np.load(sys.argv[1])["x"])
np.savez(sys.argv[2], logits=program.module()(x).detach().numpy())
"""
probe = x64.numpy()  # (64, 3, 32, 32): another batch size than the example's 4
fresh = H.deploy.run_in_fresh_process(reload_script, {"x": probe})["logits"]
with torch.no_grad():
    reference = teacher(x64).numpy()  # (64, 10)
np.testing.assert_allclose(fresh, reference, rtol=1e-4, atol=1e-4)
print(f"fresh process: max |difference| {np.abs(fresh - reference).max():.1e}")

# %%
import onnx
import onnxruntime as ort

onnx_path = workdir / "cifarnet.onnx"
start = time.perf_counter()
torch.onnx.export(
    teacher,
    (example,),
    onnx_path,
    dynamo=True,
    dynamic_shapes={"x": {0: batch}},
    verbose=False,
)
onnx_seconds = time.perf_counter() - start
files = sorted(workdir.glob("cifarnet.onnx*"))
print(
    f"ONNX export in {onnx_seconds:.1f} s:",
    {f.name: f"{f.stat().st_size / 1e3:.0f} kB" for f in files},
)
graph = onnx.load(onnx_path)
ops = sorted({node.op_type for node in graph.graph.node})
print("opset", graph.opset_import[0].version, "| ops:", ops)
session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
(onnx_input,) = session.get_inputs()
print("input:", onnx_input.name, onnx_input.shape, onnx_input.type)
from_onnx = session.run(None, {onnx_input.name: probe})[0]  # (64, 10)
np.testing.assert_allclose(from_onnx, reference, rtol=1e-4, atol=1e-4)
print(f"onnxruntime: max |difference| {np.abs(from_onnx - reference).max():.1e}")
ort_b1 = H.deploy.time_calls(
    lambda: session.run(None, {onnx_input.name: probe[:1]}),
    repeats=s.latency_repeats,
)
print(f"onnxruntime batch 1: p50 {ort_b1['p50']:.2f} ms, p95 {ort_b1['p95']:.2f} ms")

# %% [markdown] tags=["shared"]
# A deployed model needs a little code around it: the preprocessing that training used
# (scaling to 0..1, the per-channel mean and standard deviation, the layout), batching, and
# the mapping from logits to class names. None of that is in the artefact. A minimal batched
# inference function over `uint8` images:


# %%
def classify(images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """uint8 (N, 32, 32, 3) -> predicted class ids (N,), with the ONNX model."""
    out = []
    for i in range(0, len(images), batch_size):
        x = (images[i : i + batch_size] / 255.0 - mean) / std  # (b, 32, 32, 3)
        x = x.astype(np.float32).transpose(0, 3, 1, 2)  # (b, 3, 32, 32)
        out.append(session.run(None, {onnx_input.name: x})[0].argmax(1))
    return np.concatenate(out)


served = classify(x_test)
agree = float(
    (
        served == teacher(H.vision.to_input(test_images, mean, std)).argmax(1).numpy()
    ).mean()
)
print(
    f"served accuracy {(served == y_test).mean():.2%}; agrees with the model on {agree:.2%}"
)
assert agree > 0.99
print([H.CIFAR10_CLASSES[c] for c in classify(x_test[:5])])

# %% [markdown] tags=["shared"]
# What an exported artefact contains: the computation graph (operations, shapes, dtypes, with
# the batch dimension left symbolic), the trained weights, and the names and shapes of inputs
# and outputs. Where the weights go differs. `jax.export` bakes them into the StableHLO
# program as constants: the JAX page's `forward` closes over them, so the only input the
# export lists (`in`) is the batch of images. `torch.export` lifts them out of the graph and
# makes them inputs of it: the PyTorch page's line `inputs of the graph` counts them,
# `PARAMETER` for the weights and biases, `BUFFER` for each BatchNorm's running mean, running
# variance and batch counter, beside the one `USER_INPUT`, the images; the `.pt2` archive
# stores those tensors beside the graph, and `module()` binds them back. The ONNX exporter
# writes the graph to `cifarnet.onnx` and the weights to a separate `cifarnet.onnx.data` (the
# PyTorch page lists both files), which must ship with it. What an artefact does not contain:
# the model's Python class, the preprocessing and the class names (above, they live in
# `classify`), the optimiser state and anything needed to continue training, and, for
# `jax.export`, the ability to run on a platform it was not exported for. Train mode is gone
# too: BatchNorm is frozen to its running statistics. A format also fixes what can run it: a
# `.pt2` file needs PyTorch, an `.onnx` file any ONNX runtime, a serialised `jax.export` needs
# a compatible jaxlib.
#
# ## 10.7 Interpretability: saliency and integrated gradients
#
# Which input pixels matter for a prediction? A *saliency map* is the gradient of the class
# score with respect to the input, shown as its largest absolute value over the colour
# channels {cite}`simonyan2014deep`. It is local: it says how the score changes for a tiny
# change of the input. *Integrated gradients* {cite}`sundararajan2017axiomatic` accumulate the
# gradient along the straight path from a baseline $x'$ (here the all-zero normalised image,
# the data set's mean colour) to the input $x$:
#
# $$
# \begin{gathered}
# \mathrm{IG}_i(x) = (x_i - x'_i) \int_0^1 \frac{\partial F(\tilde x)}{\partial x_i} d\alpha, \\
# \tilde x = x' + \alpha (x - x'),
# \end{gathered}
# $$
#
# and satisfy *completeness*: $\sum_i \mathrm{IG}_i(x) = F(x) - F(x')$. The integral is
# approximated with $m$ steps of the trapezoid rule, so completeness holds only approximately;
# the gap between the sum and $F(x) - F(x')$ measures whether $m$ is large enough. The cell
# below measures it for several $m$ and keeps the smallest that stays within 1 %.


# %%
def saliency(model, x, target):
    """|d score / d input|, max over channels: (B, 3, H, W) -> (B, H, W)."""
    x = x.clone().requires_grad_(True)
    score = model(x).gather(1, target[:, None]).sum()
    (grad,) = torch.autograd.grad(score, x)
    return grad.abs().amax(1)


def integrated_gradients(f, x, baseline, steps):
    """IG of f: (B, ...) -> (B,) along the straight path, trapezoid rule with `steps`."""
    alphas = torch.linspace(0, 1, steps + 1)
    weights = torch.full((steps + 1,), 1.0 / steps)
    weights[[0, -1]] /= 2
    total = torch.zeros_like(x)
    for alpha, weight in zip(alphas, weights, strict=True):
        point = (baseline + alpha * (x - baseline)).requires_grad_(True)
        (grad,) = torch.autograd.grad(f(point).sum(), point)
        total += weight * grad
    return (x - baseline) * total


# images: (k, 3, 32, 32)
images = H.vision.to_input(test_images[: s.attribution_examples], mean, std)
with torch.no_grad():
    target = teacher(images).argmax(1)  # (k,) the predicted classes


def class_score(x):
    return teacher(x).gather(1, target[:, None]).squeeze(1)  # (k,)


baseline = torch.zeros_like(images)
with torch.no_grad():
    gap = class_score(images) - class_score(baseline)  # (k,) F(x) - F(x')
completeness = {}
for steps in tqdm(s.ig_steps, desc="IG steps"):
    ig = integrated_gradients(class_score, images, baseline, steps)
    completeness[steps] = ((ig.sum(dim=(1, 2, 3)) - gap).abs() / gap.abs()).max().item()
    print(
        f"{steps:4d} steps: worst |sum(IG) - (F(x) - F(x'))| / |F(x) - F(x')| = "
        f"{completeness[steps]:.2%}"
    )
chosen = min((m for m, e in completeness.items() if e < 0.01), default=None)
assert chosen is not None, "integrated gradients did not reach 1 % completeness"
print("chosen step count:", chosen)
ig_images = integrated_gradients(class_score, images, baseline, chosen)
sal = saliency(teacher, images, target)

# Each map is divided by its own largest |value|: colour shows where the attribution lies,
# relative to that image's peak, and IG keeps its sign (white is 0).
sal_maps = np.asarray(sal)  # (k, 32, 32)
sal_maps = sal_maps / sal_maps.max(axis=(1, 2), keepdims=True)
ig_maps = np.asarray(ig_images.sum(1).detach())  # (k, 32, 32): summed over RGB
ig_maps = ig_maps / np.abs(ig_maps).max(axis=(1, 2), keepdims=True)
fig, axes = plt.subplots(
    3, len(images), figsize=(2.2 * len(images), 6.6), squeeze=False
)
for j in range(len(images)):
    axes[0, j].imshow(x_test[j])
    axes[0, j].set_title(
        f"{H.CIFAR10_CLASSES[y_test[j]]} -> {H.CIFAR10_CLASSES[target[j]]}", fontsize=8
    )
    sal_shown = axes[1, j].imshow(sal_maps[j], cmap="magma", vmin=0, vmax=1)
    ig_shown = axes[2, j].imshow(ig_maps[j], cmap="bwr", vmin=-1, vmax=1)
row_labels = ["image (true -> predicted)", "saliency", "IG (sum over RGB)"]
for ax, label in zip(axes[:, 0], row_labels, strict=True):
    ax.set_ylabel(label, fontsize=8)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("What the CIFAR-10 model looks at (x, y: pixels; colour: attribution)")
fig.subplots_adjust(right=0.85)  # room for a colour bar beside each attribution row
for row, shown, label in [
    (1, sal_shown, "saliency / image max"),
    (2, ig_shown, "IG / image max |IG|"),
]:
    box = axes[row, -1].get_position()
    bar = fig.add_axes((box.x1 + 0.03, box.y0, 0.03, box.height))
    fig.colorbar(shown, cax=bar).set_label(label, fontsize=8)
plt.show()

# %% [markdown] tags=["shared"]
# ## 10.8 Token attributions for a review
#
# For text the input is a sequence of word ids, which has no gradient; the attributions are
# computed for the word *embeddings* instead, with the all-zero embedding as baseline, and each
# word's attribution is the sum over its embedding's coordinates. The score is the log
# probability of the positive class, which is non-linear in the embeddings through the
# softmax, so completeness again depends on the step count. The bag-of-words model reads only
# the mean of the embeddings, so the gradient is the same at every position of the review and
# a word's attribution depends on which word it is, not where: every copy of a word gets the
# same attribution (the cell checks it). The chart shows one bar per distinct word, the sum
# over its copies (their number in brackets), and the cell prints the model's probability
# that the review is positive, to hold against the label in the chart's title.


# %%
def positive_log_prob(embedded, mask):
    """log p(positive) of the bag-of-words model from embeddings (B, T, D) and mask (B, T)."""
    logits = text_model.head(H.text.masked_mean(embedded, mask))  # (B, 2)
    return F.log_softmax(logits, -1)[:, 1]  # (B,)


test_ids, test_lengths, test_labels = imdb.test
review = torch.as_tensor(test_ids[:1, : test_lengths[0]], dtype=torch.long)  # (1, T)
mask = H.text.padding_mask(review)  # (1, T)
with torch.no_grad():
    embedded = text_model.embed(review)  # (1, T, D)
    assert torch.allclose(
        positive_log_prob(embedded, mask), F.log_softmax(text_model(review), -1)[:, 1]
    )
zero = torch.zeros_like(embedded)
text_gap = (positive_log_prob(embedded, mask) - positive_log_prob(zero, mask)).item()
for steps in s.ig_steps:
    token_ig = integrated_gradients(
        lambda e: positive_log_prob(e, mask), embedded, zero, steps
    )
    error = abs(token_ig.sum().item() - text_gap) / abs(text_gap)
    print(f"{steps:4d} steps: |sum(IG) - gap| / |gap| = {error:.2%}")
    if error < 0.01:
        break
assert error < 0.01
per_token = token_ig.sum(-1)[0].detach().numpy()  # (T,)
with torch.no_grad():
    p_positive = positive_log_prob(embedded, mask).exp().item()
words = [imdb.vocab.itos[i] for i in review[0].tolist()]
# One bar per distinct word: every copy has the same attribution, so the copies are summed.
distinct, which, copies = np.unique(words, return_inverse=True, return_counts=True)
per_word = np.bincount(which, weights=per_token)  # (W,) one per distinct word
np.testing.assert_allclose(per_token, (per_word / copies)[which], rtol=1e-5, atol=1e-9)
label = "positive" if test_labels[0] else "negative"
print(f"review 0: label {label}, the model's p(positive) {p_positive:.2f}")
top = np.argsort(-np.abs(per_word))[:15][::-1]
fig, ax = plt.subplots(figsize=(6, 4))
sign_colour = np.where(per_word[top] > 0, "tab:green", "tab:red")
ax.barh(range(len(top)), per_word[top], color=sign_colour)
ax.set_yticks(range(len(top)), [f"{distinct[i]} (x{copies[i]})" for i in top])
ax.set(
    xlabel="attribution to log p(positive), summed over the word's copies",
    ylabel="word (copies in the review)",
    title=f"Review 0 (label {label}): top words",
)
colours = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ("tab:green", "tab:red")]
H.legend_below_axes(ax, colours, ["towards positive (> 0)", "towards negative (< 0)"])
plt.show()

# %% [markdown] tags=["shared"]
# ## 10.9 Outlook: PyTorch or JAX, from what this course measured
#
# The course recorded its training runs (`python -m helpers.bench`, one JSON line per run, with
# hardware, versions and commit) beside each chapter. The next cell reads them and prints four
# tables. The first holds the latest run of each configuration (task, model option, scale and
# framework, in chapter order): what it learned by its task's own measure (`value`: test
# accuracy in %; for chapter 7's reinforcement learning, the mean return of greedy evaluation
# episodes), its training throughput (examples per second; environment steps per second in
# chapter 7), its first step's time (which includes JAX's compilation; the compilation time
# where a run records no first step; `-` where it records neither, as chapter 7's PyTorch runs,
# which compile nothing and do not time their first step) and its hardware. Accuracies compare
# only at the same training length: chapter 5's `cpu` scale trains JAX for fewer epochs. The
# earlier runs, superseded settings among them, are listed with their full records in the
# [results appendix](../../appendices/results.ipynb). The second table sets PyTorch beside JAX
# where a run of each trained the same recipe (network, training settings, data) on the same
# hardware (the same CPU and number of cores, or the same GPU): the latest run of each framework
# where those and the code's commit (uncommitted changes aside) agree; otherwise the latest pair
# that one `--framework both` run recorded, in one process at one commit (`pair` reads
# `older, one process`); otherwise the latest runs, made at two commits
# (`latest runs, two commits`: the code may have changed between them); otherwise none, and
# `pair` names what differs. The third gives the same pairs' first-step times, and the fourth
# counts the code lines of each notebook pair. Every comparison below refers to these tables.

# %%
root = H.course_root()
records = load_records(root)  # every recorded run; the results appendix lists them all
print("The latest run of each configuration (-: not recorded)\n")
summary = summary_rows(latest_runs(records))
# Each task has one measure (the text above names it): its name would only widen the table.
assert {(r["task"], r["metric"]) for r in summary} == {
    *((task, "accuracy %") for task in ("mnist", "cifar10", "imdb")),
    *((task, "eval return") for task in ("cartpole", "pendulum")),
}
print(H.deploy.format_table(summary, columns=[k for k in summary[0] if k != "metric"]))

# PyTorch beside JAX where a run of each trained the same recipe on the same hardware.
pairs = framework_pairs(records)
print("\nPyTorch beside JAX: the same recipe on the same hardware\n")
where = ["chapter", "task", "scale"]
speeds = ["PyTorch ex/s", "JAX ex/s", "faster", "by x", "pair"]
print(H.deploy.format_table(pairs, columns=where + speeds))
compared = [p for p in pairs if p["faster"]]
print(
    f"faster in {sum(p['faster'] == 'PyTorch' for p in compared)} pairs: PyTorch, "
    f"in {sum(p['faster'] == 'JAX' for p in compared)}: JAX"
)
stepwise = [p for p in compared if p["task"] != "cartpole ppo"]  # one step per batch
for scale in ("cpu", "gpu"):
    ratios = [
        f"{p['faster']} x{p['by x']:.2f}" for p in stepwise if p["scale"] == scale
    ]
    print(f"{scale}, one step per batch, faster by:\n  {', '.join(ratios)}")
widest = max(p["by x"] for p in stepwise if p["scale"] == "cpu")
# What the text below says of these tables, checked against them: update it if one fails.
assert widest < 2, "within a factor of 2 for the cpu pairs"
assert {p["faster"] for p in compared} == {"PyTorch", "JAX"}, (
    "neither faster everywhere"
)
gpu_pairs = [p for p in stepwise if p["scale"] == "gpu"]
assert len(gpu_pairs) == 2 and {p["faster"] for p in gpu_pairs} == {"JAX"}, "gpu: JAX"
unpaired = {p["task"]: p["pair"] for p in pairs if not p["faster"]}
assert unpaired == {"pendulum ddpg": "none: cores differ"}, "only DDPG unpaired"
# "-" (NaN): a run that compiled nothing and did not time its first step
firsts = ["PyTorch first step s", "JAX first step s"]
print("\nThe same pairs' first steps, in seconds (JAX's includes compilation)\n")
print(H.deploy.format_table(pairs, columns=where + firsts))
timed = [p for p in compared if np.isfinite([p[k] for k in firsts]).all()]
slower_start = sum(p["JAX first step s"] > p["PyTorch first step s"] for p in timed)
print(
    f"JAX's first step (or compilation) took longer in {slower_start} of {len(timed)} "
    "pairs that time both"
)

code = code_lines(root)
print("\nCode lines of each chapter's two notebooks\n")
print(H.deploy.format_table(code))
longer = sum(c["JAX code lines"] > c["PyTorch code lines"] for c in code)
print(f"the JAX notebook has more code lines in {longer} of {len(code)} chapters")

# %% [markdown] tags=["shared"]
# What these measurements support, and what they do not:
#
# * **Speed depends on the workload, not on the brand.** The second table puts PyTorch beside
#   JAX wherever their runs compare. Neither framework was faster everywhere (the `faster`
#   column names both, and the first line under the table counts them). Where both train a
#   network one step per batch on a CPU, they came within a factor of 2 of each
#   other, in either direction (the `cpu` line under the table lists every ratio); chapter
#   7's PPO, where JAX compiles the whole run, environment included, into one program and
#   PyTorch steps gymnasium's environments from Python, differed far more (the `cartpole ppo`
#   row). A row whose `pair` is `none` has no pair by these rules: chapter 7's DDPG last ran
#   on one core in JAX and two in PyTorch (the one two-core JAX run came from code replaced
#   since). The `gpu` rows (chapters 1 and 5, one H200) are the only GPU runs, and JAX
#   trained faster in both (the `gpu` line). Chapter 5 offers a reading for its CifarNet,
#   not a measurement of the cause: eager PyTorch launches every operation from Python, and
#   at that size the launches rather than the arithmetic seem to bound a step (larger
#   batches, with fewer launches per epoch, sped PyTorch up), while JAX's step is one
#   compiled program. Chapter 1's MLP was not examined that way, and no run used a TPU.
# * **JAX pays compilation up front.** Its first step includes tracing and XLA compilation;
#   the line under the third table counts the pairs in which it took longer than
#   PyTorch's eager first step, among the pairs that time both. On a short run compilation
#   can be most of the time, as the JAX page shows: the progress bar of section 10.3's
#   structured fine-tuning (a new network shape, so a new compilation) advances far more
#   slowly than the two students' bars in section 10.4, which have the same shape and reuse
#   that compiled step. On a long run it is amortised.
# * **Code length does not decide it.** The line counts differ from chapter to chapter in both
#   directions (the last line counts them).
# * **What each framework offered in this chapter.** PyTorch: dynamic int8 quantization in
#   the library (10.2, deprecated there in favour of `torchao`), ONNX export run by
#   onnxruntime as well as `torch.export` (10.6), and eager execution with nothing to compile
#   before the first result. JAX: `jax.export`, whose StableHLO artefact ran in a fresh
#   process without Flax (10.6), and gradients vmapped over the path points of integrated
#   gradients (10.7); but no int8 quantizer and no ONNX exporter of its own. So: a program that
#   can be compiled whole, or that composes `grad`, `vmap` and `jit`, plays to JAX; a model
#   that must ship to many runtimes, or code you want to step through eagerly, plays to
#   PyTorch; on a CPU, the step-by-step training compared here stayed within a factor of
#   2, faster in one framework or the other depending on the network.
# * **The ecosystems used in this course**: Flax NNX and Optax for models and optimisers,
#   Orbax for checkpoints, `torch.compile` for fused PyTorch steps, gymnasium for environments,
#   ONNX and onnxruntime for portable inference.
# * **How to keep learning**: read the libraries' own examples (the Flax examples, PyTorch's
#   tutorials), re-run this course's benches on your hardware, and measure before you believe
#   a speed claim, including this page's.

# %% [markdown] tags=["notebook-only"]
# Next: [the JAX half of this chapter](in-jax.ipynb), then the
# [lab](../../labs/10-compression-deployment/in-pytorch.ipynb), whose self-checks tell you when
# each exercise is right. Works cited are listed in the [bibliography](../../bibliography.md).
