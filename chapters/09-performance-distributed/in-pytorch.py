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
# # 9. Performance tuning and distributed training: PyTorch
#
# This is the PyTorch half of chapter 9; the [JAX half](in-jax.ipynb) tells the same story in
# the same order. The outline lists GPU choice, CPU threads, caches, data parallelism, model
# parallelism and parameter servers in prose. Here all but two become experiments you rerun.
# GPU choice and caches are not measured: a page can time only the machine that runs it, and
# no cell here turns a cache off, so its effect hides inside every timing (the chapter's
# index lists both under what it leaves out). The rest, in order:
#
# * measuring first: timing done right, a profiler trace, finding the bottleneck;
# * single-device tuning on chapter 5's CIFAR-10 network, every step a before/after measured
#   on this page;
# * data parallelism with `DistributedDataParallel`, asserted equal to one process;
# * several processes and several "nodes" joined by `torchrun`, and what a cluster adds;
# * model parallelism (FSDP2), pipelines, and why parameter servers gave way to all-reduce.

# %% [markdown] tags=["notebook-only"]
# Every number on this page is printed by the code above it; the cell below says at which scale
# (`smoke`, `cpu` or `gpu`) this page was produced, on how many threads.

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
import os
import shlex
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from IPython.display import Markdown, display

from helpers import torch as H
from helpers.distributed import markdown_table, measure, measure_interleaved

# Every size this notebook uses comes from helpers/scale/training.py.
sizes = H.sizes("performance")
device = H.default_device()
H.runtime_info()

# %% [markdown]
# The subject is the chapter 5 recipe: the airbench-style `H.vision.CifarNet`, the CIFAR-10
# training images kept on the device as `uint8`, each batch cropped, flipped and normalised
# there. A training *step* is what every measurement below times.

# %%
with H.vision.data_source() as source:
    x_train, y_train = H.load_cifar10("train", limit=sizes.train_examples)
print("data:", source["data"], f"train {x_train.shape}")
mean, std = H.vision.channel_stats(x_train)
images = torch.from_numpy(x_train).to(device)  # (N, 32, 32, 3) uint8
labels = torch.from_numpy(y_train).long().to(device)  # (N,) int64
B = sizes.batch_size


def make_step(model, optimizer, batch_size=B, sync=False, channels_last=True, amp=None):
    """One training step on a random batch of `images`; returns the loss (a tensor)."""
    g = torch.Generator(device=device).manual_seed(0)

    def step():
        idx = torch.randint(0, len(images), (batch_size,), device=device, generator=g)
        x = H.vision.random_crop_flip(images[idx], 2, generator=g)  # (B, 32, 32, 3)
        x = H.vision.to_input(x, mean, std)  # (B, 3, 32, 32), channels_last strides
        if not channels_last:
            x = x.contiguous()  # plain NCHW memory
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = F.cross_entropy(model(x), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if sync:
            loss.item()  # a host sync: waits for the device and copies one number back
        return loss

    return step


def new_model(channels_last=True):
    torch.manual_seed(0)
    model = H.vision.CifarNet(sizes.widths, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


model, optimizer = new_model()
step = make_step(model, optimizer)
print(
    f"{len(images)} images on {device}, batch {B}, {H.count_params(model):,} parameters"
)

# %% [markdown] tags=["shared"]
# ## 9.1 Measuring first
#
# Three rules make a timing mean something. **Warm up**: the first calls pay one-time costs
# (memory allocation, kernel selection, compilation) that a long run pays once. **Wait for the
# device**: GPUs and JAX run asynchronously, so a call returns before its work is done, and a
# clock read right after it times the dispatch, not the work. **Repeat and report the median
# with its spread**: other programs share the machine, and one slow sample should neither hide
# nor dominate. Written out, with the median and half the interquartile range:


# %%
def wait(loss):
    if device.type == "cuda":
        torch.cuda.synchronize()  # without it, a GPU timing stops at the kernel launch
    return loss


def smoke_caveat():
    """At `smoke` scale, print a note saying that the timings above are noise."""
    if H.current_scale() == "smoke":
        print(
            "smoke scale: these timings are too short to mean anything;\n"
            "rerun the notebook with BOOK_SCALE unset (it picks cpu or gpu)"
        )


first = time.perf_counter()
wait(step())  # warm-up: pays the one-time costs
first = time.perf_counter() - first
samples = []
for _ in range(sizes.repeats):
    start = time.perf_counter()
    wait(step())
    samples.append(time.perf_counter() - start)
q1, median, q3 = np.percentile(samples, [25, 50, 75])
print(
    f"first call {first * 1e3:.1f} ms; then median {median * 1e3:.1f} ms "
    f"± {(q3 - q1) / 2 * 1e3:.1f} ms over {sizes.repeats} calls"
)

# %% [markdown]
# `helpers.distributed.measure` is that loop (warm-up calls, `wait`, median and spread), and
# times every row of this chapter. Next, where the time of one step goes. `torch.profiler`
# records every operator the step runs; the summary sorts them by the time spent inside each
# one (`self`), and `export_chrome_trace` writes the timeline that `chrome://tracing` or
# [Perfetto](https://ui.perfetto.dev) draws.

# %% tags=["remove-stderr"]
# (the profiler's C++ side logs start/stop lines, and a failed GPU query on a CPU machine,
# to stderr: hidden in the book)
from torch.profiler import ProfilerActivity, profile

activities = [ProfilerActivity.CPU]
if device.type == "cuda":
    activities.append(ProfilerActivity.CUDA)
with profile(activities=activities) as prof:
    for _ in range(sizes.profile_steps):
        wait(step())
trace_file = Path(tempfile.mkdtemp()) / "step-trace.json"
prof.export_chrome_trace(str(trace_file))
# The ten operators with the most CPU time of their own ("self"), and with what they called
# ("total"): the columns of the profiler's .table() that fit a page. On a GPU its full table,
# with the CUDA times.
ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
self_total = sum(e.self_cpu_time_total for e in ops)  # microseconds
if device.type == "cuda":
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))
else:
    print(
        f"{'operator':44} {'self CPU %':>10} {'self ms':>9} {'total ms':>9} {'calls':>6}"
    )
    for e in ops[:10]:
        print(
            f"{e.key[:44]:44} {e.self_cpu_time_total / self_total:10.2%} "
            f"{e.self_cpu_time_total / 1e3:9.3f} {e.cpu_time_total / 1e3:9.3f} {e.count:6}"
        )
    print(f"self CPU time total: {self_total / 1e3:.3f} ms")
print(f"timeline: {trace_file.name} ({trace_file.stat().st_size / 1e6:.1f} MB)")

# %% [markdown] tags=["shared"]
# The table names the operators that cost most, but not whether the step as a whole waits on
# its input, on its arithmetic, or on the host. Three timings say that, taken in turn (one
# sample of each per round, so that a slow spell of a shared machine falls on all three): the
# input pipeline alone (gather, crop, flip, normalise), the model's forward and backward on a
# fixed batch, and the whole step. When the first two add up to far less than the third,
# something else (a host sync, Python overhead) is the bottleneck. When they add up to more
# than 100 %, or the whole step here is far slower than the step timed at the top of 9.1, the
# difference is timing noise.

# %%
g = torch.Generator(device=device).manual_seed(1)


def pipeline_only():
    idx = torch.randint(0, len(images), (B,), device=device, generator=g)
    return H.vision.to_input(
        H.vision.random_crop_flip(images[idx], 2, generator=g), mean, std
    )


fixed = pipeline_only()


def compute_only():
    loss = F.cross_entropy(model(fixed), labels[:B])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


parts = measure_interleaved(  # one sample of each in turn, `repeats` rounds
    {
        "input pipeline": pipeline_only,
        "forward + backward + update": compute_only,
        "whole step": step,
    },
    wait=wait,
    repeats=sizes.repeats,
)
whole = parts["whole step"].median
table = markdown_table(
    ["part", "ms per step", "share of the step"],
    [[k, t, f"{t.median / whole:.0%}"] for k, t in parts.items()],
)
display(Markdown(table))
smoke_caveat()

# %% [markdown] tags=["shared"]
# ## 9.2 Single-device tuning
#
# Each change below is measured the same way: `timed_steps` training steps per sample, a
# warm-up, the median of `repeats` samples with its spread, before and after, in one table at
# the end. What helps depends on the hardware: a change that wins on a GPU can lose on a CPU,
# which is why the table comes from this page's own run and not from a blog post.

# %%
rows = []
per = f"per {sizes.timed_steps} step" + ("s" if sizes.timed_steps > 1 else "")


def compare(name, before, after, note=""):
    """Time two step functions; add a row with both medians and the speedup."""
    t = [
        measure(
            lambda f=f: [f() for _ in range(sizes.timed_steps)][-1],
            wait=wait,
            repeats=sizes.repeats,
            warmup=sizes.warmup,
        )
        for f in (before, after)
    ]
    rows.append([name, t[0], t[1], f"{t[0].median / t[1].median:.2f}x", note])
    print(f"{name}: {t[0]} → {t[1]} {per}")


# %% [markdown]
# **Threads.** PyTorch runs CPU operators on `torch.get_num_threads()` threads: one per core
# unless `OMP_NUM_THREADS` set fewer before PyTorch started. `torch.set_num_threads` changes
# that inside a running process. The course's CI sets `OMP_NUM_THREADS=1` (two notebooks
# share its two cores); the hardware line at the top of the page and the line below show the
# count this run started with, and every row but this one runs on that many threads.
# PyTorch's CPU convolutions run on oneDNN by default (`torch.backends.mkldnn.enabled`).
# JAX fixes its thread pool when its backend starts, so its page compares fresh processes;
# it also compares XLA's two CPU kernel libraries. One thread against all the cores:

# %%
threads = torch.get_num_threads()
cores = (
    len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
)


def with_threads(n, f):
    def run():
        torch.set_num_threads(n)
        try:
            return f()
        finally:
            torch.set_num_threads(threads)

    return run


print(
    f"this process started with {threads} thread(s) "
    f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); {cores} core(s)"
)
compare(
    "threads: 1 → all cores",
    with_threads(1, step),
    with_threads(max(cores, 1), step),
    note=f"{cores} core(s) available to this process",
)

# %% [markdown]
# **Input pipeline.** The usual tutorial loads each image through torchvision's per-sample
# transforms in a `DataLoader` (`H.vision.seed_style_loader`); `num_workers` moves that work
# to other processes, and `pin_memory=True` puts each batch in page-locked host memory, from
# which `.to(device, non_blocking=True)` can copy it to the GPU asynchronously (it only
# matters with a GPU). Chapter 5 instead keeps the data set on the device and augments whole
# batches there. The same model step fed both ways:

# %%
# PyTorch warns on machines with fewer cores than workers; the measurement shows the cost.
warnings.filterwarnings("ignore", message="This DataLoader will create")
loader_model, loader_opt = new_model()
n_loader = B * (sizes.timed_steps + 1) * (sizes.warmup + sizes.repeats)


def loader_step_fn(workers):
    loader = H.vision.seed_style_loader(
        x_train[:n_loader],
        y_train[:n_loader],
        mean,
        std,
        batch_size=B,
        pad=2,
        generator=torch.Generator().manual_seed(0),
    )
    if workers:
        loader = torch.utils.data.DataLoader(
            loader.dataset,
            batch_size=B,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            persistent_workers=True,
            pin_memory=device.type == "cuda",
        )
    batches = iter(loader)

    def run():
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        x = x.to(device, non_blocking=True).contiguous(
            memory_format=torch.channels_last
        )
        loss = F.cross_entropy(loader_model(x), y.to(device))
        loader_opt.zero_grad(set_to_none=True)
        loss.backward()
        loader_opt.step()
        return loss

    return run


on_device = make_step(loader_model, loader_opt)
compare("per-sample DataLoader → data on the device", loader_step_fn(0), on_device)
compare("DataLoader: 0 → 2 worker processes", loader_step_fn(0), loader_step_fn(2))

# %% [markdown]
# **Compilation.** `torch.compile` traces the model into a graph and generates fused kernels
# {cite}`ansel2024pytorch2`. Compiling a training step on a CPU takes longer than a whole smoke
# page may run, so at `smoke` scale the row says so instead of a number; at `cpu` and `gpu`
# scale the note column prints how long compiling took.

# %% tags=["remove-stderr"]
# (on a machine without CUDA, compiling logs that it found no CUDA runtime: hidden in the book)
if sizes.compile:
    eager_model, eager_opt = new_model()
    compiled_model, compiled_opt = new_model()
    compiled = torch.compile(compiled_model)
    start = time.perf_counter()
    wait(make_step(compiled, compiled_opt)())
    compile_seconds = time.perf_counter() - start
    compare(
        "eager → torch.compile",
        make_step(eager_model, eager_opt),
        make_step(compiled, compiled_opt),
        note=f"compiling took {compile_seconds:.0f} s",
    )
else:
    rows.append(["eager → torch.compile", "not run at this scale", "", "", ""])

# %% [markdown]
# **Mixed precision.** Under `torch.autocast` matrix products and convolutions run in a 16-bit
# type. Which operations are cast back to float32 depends on the device
# ([op reference](https://pytorch.org/docs/stable/amp.html#autocast-op-reference)): on a GPU
# those that need float32's range (softmax, sums, losses); on the CPU a shorter list, so in
# this network only the loss (`cross_entropy`) runs in float32, while batch norm, GELU and
# pooling take the 16-bit values they are given. bfloat16 keeps float32's exponent range, so
# it needs nothing else; float16 does not, so small gradients underflow to zero unless the
# loss is multiplied by a large factor before `backward` and the gradients divided by it
# after: that is `torch.amp.GradScaler` {cite}`micikevicius2018mixed`. Whether bfloat16 pays
# off on a CPU depends on the kernels behind it, and the two frameworks use different ones
# (oneDNN's behind PyTorch's autocast, XLA's and YNNPACK's in JAX), so on the same CPU this
# row and JAX's need not go the same way.

# %%
amp_model, amp_opt = new_model()
dtype16 = torch.bfloat16
compare(
    "float32 → bfloat16 autocast",
    make_step(amp_model, amp_opt),
    make_step(amp_model, amp_opt, amp=dtype16),
)

scaler = torch.amp.GradScaler(device.type)
x16 = H.vision.to_input(images[:B], mean, std)
with torch.autocast(device.type, dtype=torch.float16):
    loss16 = F.cross_entropy(amp_model(x16), labels[:B])
amp_opt.zero_grad()
scaler.scale(loss16).backward()  # gradients of loss * scale
scaler.step(amp_opt)  # unscales; skips the step if any gradient is inf or NaN
scaler.update()  # halves the scale after an overflow; doubles it only after a run of
# growth_interval steps without one, so one clean step leaves it where it started
print(
    f"float16 loss {loss16.item():.3f}, loss scale now {scaler.get_scale():.0f} "
    f"(it doubles after {scaler.get_growth_interval()} steps without an overflow)"
)

# %% [markdown]
# **Memory format.** A convolution reads each pixel's channels together; in `channels_last`
# memory (NHWC) they are adjacent; in the default NCHW they are H × W values apart (one
# channel plane).

# %%
nchw_model, nchw_opt = new_model(channels_last=False)
cl_model, cl_opt = new_model(channels_last=True)
compare(
    "NCHW → channels_last",
    make_step(nchw_model, nchw_opt, channels_last=False),
    make_step(cl_model, cl_opt),
)

# %% [markdown]
# **Host syncs.** `loss.item()` inside the loop waits for the device and copies a number to
# the host every step, so the host cannot queue the next step while the GPU works. Keep losses
# as tensors and read them once at the end, as chapter 5's training loop (section 5.3) does
# with `torch.stack(losses).tolist()` after each epoch. On a CPU, PyTorch finishes each
# operation before returning, so there is nothing to overlap: any gap in this row on a CPU is
# noise. At `smoke` scale the row shows only noise on any device: a sample is `timed_steps`
# steps, one at `smoke`, and `measure` waits for the device after every sample, so both
# columns sync once a step. At `cpu` and `gpu` scale a sample is 3 and 20 steps
# (`helpers/scale/training.py`), and only the *before* column syncs inside it.

# %%
sync_model, sync_opt = new_model()
compare(
    "loss.item() every step → no host sync",
    make_step(sync_model, sync_opt, sync=True),
    make_step(sync_model, sync_opt),
)

# %% [markdown]
# **Batch size.** On a GPU, larger batches usually raise throughput, since each step gives its
# many cores more parallel work, until the GPU is saturated. On a CPU, with far fewer cores,
# larger batches may gain little or even be slower. The plot shows which way it goes on the
# machine that ran this page: throughput in images per second, for each batch size of the
# sweep:

# %%
sweep = []
for bs in sizes.sweep_batch_sizes:
    m, o = new_model()
    f = make_step(m, o, batch_size=bs)
    t = measure(f, wait=wait, repeats=sizes.repeats, warmup=sizes.warmup)
    sweep.append((bs, t.rate(bs)))
    print(f"batch {bs:5d}: {t.rate(bs):8.0f} images/s")
small, large = sweep[0], sweep[-1]
rows.append(
    [
        f"batch {small[0]} → {large[0]} (images/s)",
        f"{small[1]:.0f}",
        f"{large[1]:.0f}",
        f"{large[1] / small[1]:.2f}x",
        "throughput, not time",
    ]
)

fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(*zip(*sweep, strict=True), "o-", label=f"CifarNet {sizes.widths}")
ax.set(
    xlabel="batch size (images)",
    ylabel="throughput (images/s)",
    title="Training throughput against batch size",
)
ax.set_xscale("log", base=2)  # ticks at the measured sizes, as plain numbers
ax.set_xticks([bs for bs, _ in sweep], [str(bs) for bs, _ in sweep])
ax.xaxis.set_minor_locator(plt.NullLocator())
ax.set_ylim(0, 1.15 * max(rate for _, rate in sweep))  # from zero: differences to scale
ax.legend(loc="lower right")
plt.show()

# %% [markdown] tags=["shared", "notebook-only"]
# All the steps together, each a before/after from this run. A speedup above 1 means the change
# helped *here*; read it next to the hardware line printed at the top of the page.

# %%
table = markdown_table(
    [
        "change",
        f"before ({per} unless the row says otherwise)",
        "after",
        "speedup",
        "note",
    ],
    rows,
)
display(Markdown(table))
smoke_caveat()

# %% [markdown] tags=["shared"]
# ## 9.3 Data parallelism
#
# Data parallelism copies the model to $W$ workers, gives each a $1/W$ share of every global
# batch, and averages the gradients before every update:
#
# $$
# \begin{aligned}
# g_r &= \frac{W}{B} \sum_{i \in \text{share}_r} \nabla_\theta \ell_i, \\
# g &= \frac{1}{W} \sum_{r=1}^{W} g_r = \frac{1}{B} \sum_{i=1}^{B} \nabla_\theta \ell_i,
# \end{aligned}
# $$
#
# where $g_r$ is worker $r$'s gradient on its share and $g$, their mean, is the gradient of the
# mean loss over the whole batch.
#
# So $W$ workers take exactly the steps one worker would take on the global batch, up to the
# order of floating-point additions: the check below asserts that. The toy problem: a seeded
# classification set and a two-layer MLP, the same in every process.

# %% [markdown]
# The equality holds for this MLP, not for a network with BatchNorm: each DDP worker computes
# the BatchNorm statistics on its own share (`torch.nn.SyncBatchNorm` combines them across
# workers).
#
# `DistributedDataParallel` (DDP) {cite}`li2020pytorch` does the averaging: wrapping the model
# registers hooks that all-reduce the gradients in buckets while `backward` is still running,
# so communication overlaps computation. Each worker joins a *process group* (gloo between
# CPUs, NCCL between GPUs) and reads its share through a `DistributedSampler`. The worker,
# written out:

# %%
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from helpers.distributed import sizes_from_json, toy_data

dp = sizes.parallel


def ddp_worker(rank, world_size, sizes_json, init_method, out_dir):
    """One process of the data-parallel run: join the group, train, save the parameters."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=init_method, rank=rank, world_size=world_size
    )
    s = sizes_from_json(sizes_json)
    x, y = toy_data(s)  # the same arrays in every process
    data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    # identical initial weights, then kept in step
    model = DDP(H.parallel.make_model(s))
    opt = torch.optim.SGD(model.parameters(), lr=s.learning_rate)
    sampler = DistributedSampler(
        data, world_size, rank, shuffle=True, seed=s.seed, drop_last=True
    )
    losses, epoch = [], 0
    while len(losses) < s.steps:
        sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank
        for xb, yb in DataLoader(
            data, batch_size=s.batch_size // world_size, sampler=sampler
        ):
            if len(xb) * world_size < s.batch_size or len(losses) == s.steps:
                break
            loss = F.cross_entropy(model(xb), yb)  # mean over this rank's share
            opt.zero_grad()
            loss.backward()  # DDP all-reduces (averages) the gradients here
            opt.step()
            losses.append(loss.item())
        epoch += 1
    state = {k: v.numpy() for k, v in model.module.state_dict().items()}
    np.savez(Path(out_dir) / f"rank{rank}.npz", losses=np.array(losses), **state)
    dist.destroy_process_group()


# %% [markdown]
# `H.parallel.spawn` starts the workers with `torch.multiprocessing.start_processes` and reads
# back what they saved. A function defined in a notebook cannot be imported by a fresh
# interpreter, so here the processes are *forked* (copies of this one; fine on a CPU, never
# after CUDA has started); `torchrun` in section 9.4 starts fresh ones that run the same worker
# from an importable module, `helpers/torch/parallel.py`.

# %%
reference = H.parallel.reference_training(dp)  # one process, whole global batches
start = time.perf_counter()
ranks = H.parallel.spawn(dp, world_size=2, worker=ddp_worker, start_method="fork")
ddp_seconds = time.perf_counter() - start


def max_difference(results, ref):
    params = [k for k in ref if k != "losses"]
    worst = max(float(np.abs(r[k] - ref[k]).max()) for r in results for k in params)
    # Each rank's loss is the mean over its share; their mean is the global batch's loss.
    mean_loss = sum(r["losses"] for r in results) / len(results)
    return max(worst, float(np.abs(mean_loss - ref["losses"]).max()))


ddp_diff = max_difference(ranks, reference)
print(
    f"2 gloo processes, {dp.steps} steps in {ddp_seconds:.1f} s; largest difference from "
    f"one process: {ddp_diff:.1e}; loss {reference['losses'][0]:.3f} -> "
    f"{reference['losses'][-1]:.3f}"
)
assert ddp_diff < 1e-5
assert reference["losses"][-1] < reference["losses"][0]  # it learned

# %% [markdown]
# JAX has no DDP wrapper: it shards the batch over a device mesh and lets the compiler insert
# the all-reduce (the JAX half shows it on 8 simulated CPU devices).

# %% [markdown] tags=["shared"]
# ## 9.4 Several processes, several nodes

# %% [markdown]
# On a cluster each machine (a *node*) runs a launcher that starts one worker per accelerator;
# the launchers find each other through a *rendezvous* and tell every worker its rank, the
# world size and where the group meets. Here two launches on this one machine play two nodes,
# one worker each, meeting on 127.0.0.1.
#
# PyTorch's launcher is `torchrun` (`python -m torch.distributed.run`). With the c10d
# rendezvous, both launches get the same `--rdzv-endpoint`, and the launch running on the
# endpoint's host serves the store through which they meet; here both are on 127.0.0.1, so
# the first to bind the port serves it and the other connects. The group starts once
# `--nnodes` launches have joined. `H.parallel.torchrun_command` builds the command line,
# `H.parallel.launch_torchrun` starts it once per node and waits:

# %%
cmd = H.parallel.torchrun_command(
    dp, "OUT", nnodes=2, nproc_per_node=1, rdzv_endpoint="127.0.0.1:PORT"
)
# Shown with "python" for this interpreter's full path, one option per line; the JSON of
# --sizes wraps inside its quotes (a line break there is JSON whitespace: the same command).
groups = [["python"]]
for arg in cmd[1:]:
    if arg.startswith("-") and groups[-1] != ["python"]:
        groups.append([])
    groups[-1].append(shlex.quote(arg))
# (a no-break space keeps each "key": value of the JSON on one line)
shown = [
    textwrap.fill(
        " ".join(g).replace(": ", ":\xa0"), 84, subsequent_indent=" " * 8
    ).replace("\xa0", " ")
    for g in groups
]
print(" \\\n    ".join(shown))
nodes, torchrun_seconds = H.parallel.launch_torchrun(dp, nnodes=2, nproc_per_node=1)
torchrun_diff = max_difference(nodes, reference)
print(
    f"2 torchrun nodes x 1 process: {torchrun_seconds:.1f} s (start-up included);\n"
    f"largest difference from one process: {torchrun_diff:.1e}"
)
assert torchrun_diff < 1e-5

# %% [markdown] tags=["shared"]
# Most of those seconds are start-up: every process imports the framework and the group
# connects before the first step. What a worker is told, and by whom:
#
# | a worker needs | PyTorch: variables `torchrun` sets | JAX: `jax.distributed.initialize` arguments | Slurm's variables |
# |---|---|---|---|
# | its number, and how many there are | `RANK`, `WORLD_SIZE` | `process_id`, `num_processes` | `SLURM_PROCID`, `SLURM_NTASKS` |
# | its number on this node: which GPU to use | `LOCAL_RANK` | `local_device_ids` | `SLURM_LOCALID` |
# | where the group meets | `MASTER_ADDR`, `MASTER_PORT` (from the rendezvous at `--rdzv-endpoint`) | `coordinator_address`, process 0's `host:port` | the first host of `SLURM_JOB_NODELIST` (`scontrol show hostnames`) |
#
# On a real cluster three things change. The **endpoint** is the first node's host name, not
# 127.0.0.1 (Slurm: `scontrol show hostnames`; Kubernetes: a headless Service gives each pod a
# DNS name). The **backend** is NCCL between GPUs. **Failures** are normal: a node dies, a job
# is pre-empted. `torchrun --max-restarts=N` restarts the whole group after a worker fails
# (with `--nnodes=MIN:MAX` an *elastic* group continues with however many nodes rejoin); JAX
# has no launcher, so the scheduler restarts the job (Slurm's `--requeue`, a Kubernetes Job's
# `backoffLimit`). Either way, training resumes only if it saves checkpoints. The chapter
# folder holds a Slurm batch script for each framework and a Kubernetes manifest
# (`tests/test_distributed.py` checks them; they are not run here):

# %%
chapter = H.course_root() / "chapters/09-performance-distributed"
for name in ("train-torch.sbatch", "torch-job.yaml"):
    text = (chapter / name).read_text()
    print(f"---- {name} ({len(text.splitlines())} lines); its launch:")
    # the command: from its line that runs torchrun to its rendezvous and restart flags
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    first = next(i for i, ln in enumerate(lines) if "torchrun" in ln)
    last = max(i for i, ln in enumerate(lines) if "rdzv" in ln or "restarts" in ln)
    indent = lines[last][: len(lines[last]) - len(lines[last].lstrip())]
    print(
        "\n".join([*lines[first : last + 1], indent + "...  (the rest of the command)"])
    )

# %% [markdown]
# A checkpoint holds everything the next step depends on: parameters, optimizer state, the
# step (and data position). A run stopped at half time and resumed from its checkpoint must
# end exactly where an uninterrupted run ends:


# %%
def train_steps(model, opt, first, last, s=dp):
    x, y = (torch.from_numpy(a) for a in toy_data(s))
    for t in range(first, last):
        idx = torch.arange(t * s.batch_size, (t + 1) * s.batch_size) % s.examples
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


def fresh():
    m = H.parallel.make_model(dp)
    return m, torch.optim.SGD(m.parameters(), lr=dp.learning_rate, momentum=0.9)


full, full_opt = fresh()
train_steps(full, full_opt, 0, dp.steps)

ckpt = Path(tempfile.mkdtemp()) / "checkpoint.pt"
first_half, opt_a = fresh()
train_steps(first_half, opt_a, 0, dp.steps // 2)
torch.save(
    {
        "model": first_half.state_dict(),
        "optimizer": opt_a.state_dict(),
        "step": dp.steps // 2,
    },
    ckpt,
)
del first_half, opt_a  # the "crash"

resumed, opt_b = fresh()
saved = torch.load(ckpt, weights_only=True)
resumed.load_state_dict(saved["model"])
opt_b.load_state_dict(saved["optimizer"])  # momentum buffers too, or the run differs
train_steps(resumed, opt_b, saved["step"], dp.steps)
gap = max(
    (a - b).abs().max().item()
    for a, b in zip(full.parameters(), resumed.parameters(), strict=True)
)
print(f"resumed at step {saved['step']} of {dp.steps}: largest difference {gap:.1e}")
assert gap == 0.0

# %% [markdown] tags=["shared"]
# ## 9.5 Model parallelism, pipelines and parameter servers
#
# Data parallelism keeps a full copy of the model, its gradients and its optimizer state on
# every worker. When that no longer fits, the model itself is split. **Sharded data
# parallelism** (ZeRO {cite}`rajbhandari2020zero`, PyTorch FSDP {cite}`zhao2023pytorch`)
# splits that state over the $W$ workers. ZeRO's first two stages shard the optimizer state
# and then the gradients; its third stage, like FSDP, shards the parameters too: each worker
# keeps $1/W$ of every parameter, gathers a layer's full weight just before it is used and
# reduce-scatters its gradient after. **Tensor parallelism** splits one layer's matrix
# product over devices {cite}`shoeybi2019megatron`; **pipeline parallelism** gives each device
# a run of consecutive layers.

# %% [markdown]
# FSDP2's `fully_shard` turns every parameter into a `DTensor` sharded along its first
# dimension. It runs on CPUs with gloo, so here it is on two processes: each holds half of
# every matrix, and training still equals one process.

# %%
from torch.distributed.fsdp import fully_shard


def fsdp_worker(rank, world_size, sizes_json, init_method, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=init_method, rank=rank, world_size=world_size
    )
    s = sizes_from_json(sizes_json)
    model = H.parallel.make_model(s)
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer)  # each Linear gathers its weight on use, then frees it
    fully_shard(model)
    shards = {n: tuple(p.to_local().shape) for n, p in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=s.learning_rate)
    x, y = (torch.from_numpy(a) for a in toy_data(s))
    losses = []
    for t in range(s.steps):
        epoch, i = divmod(t, s.examples // s.batch_size)
        order = torch.randperm(
            s.examples, generator=torch.Generator().manual_seed(s.seed + epoch)
        )
        batch = order[i * s.batch_size : (i + 1) * s.batch_size]
        idx = batch[rank::world_size]  # my share
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()  # gradients reduce-scattered: each rank keeps the mean of its shard
        opt.step()  # each rank updates only its shard
        losses.append(loss.item())
    full = {n: p.full_tensor().detach().numpy() for n, p in model.named_parameters()}
    np.savez(Path(out_dir) / f"rank{rank}.npz", losses=np.array(losses), **full)
    if rank == 0:
        print("parameter -> local shard on rank 0:", shards, flush=True)
    dist.destroy_process_group()


fsdp = H.parallel.spawn(dp, world_size=2, worker=fsdp_worker, start_method="fork")
fsdp_diff = max_difference(fsdp, reference)
print(f"FSDP2 on 2 processes: largest difference from one process {fsdp_diff:.1e}")
assert fsdp_diff < 1e-5

# %% [markdown]
# Tensor parallelism (`torch.distributed.tensor.parallel.parallelize_module` with
# `ColwiseParallel`/`RowwiseParallel`) uses the same `DTensor` machinery; the JAX half shows a
# weight split over devices, which JAX expresses with a sharding annotation.

# %% [markdown] tags=["shared"]
# A pipeline gives each of $S$ devices a stage of consecutive layers and cuts each batch into
# $M$ micro-batches, so that stage 2 works on micro-batch 1 while stage 1 works on micro-batch
# 2 (GPipe {cite}`huang2019gpipe`). The forward passes flow down the stages, the backward passes
# flow back; the idle triangles (the *bubble*) take a fraction $(S-1)/(M+S-1)$ of the time.

# %%
fig = H.plot_pipeline_schedule(stages=4, micro_batches=6)
plt.show()

# %% [markdown] tags=["shared"]
# Before all-reduce became the default, data parallelism went through **parameter servers**
# {cite}`dean2012large,li2014scaling`: every worker sends its gradient to a server and receives
# the new parameters back. With $N$ bytes of gradients and $W$ workers, each worker sends $N$
# and receives $N$ per step, but the server receives $WN$ and sends $WN$: its link carries $W$
# times a worker's traffic, and a step lasts as long as its busiest link needs.
# **Ring all-reduce** {cite}`patarasuk2009bandwidth,sergeev2018horovod` splits the gradient into
# $W$ chunks passed around a ring, a reduce-scatter and then an all-gather: every worker sends
# $2(W-1)$ chunks of $N/W$ bytes, $2N(W-1)/W$ in all, and receives as much (lab 9, exercise 5,
# has you write it from point-to-point messages). That is as much per worker as a parameter
# server's $N$ each way at $W = 2$, and up to twice as much as $W$ grows, but the load is
# spread evenly: every node sends and receives $2N(W-1)/W$, under $2N$ however many workers
# join, while one server's $WN$ each way grows with $W$ (sharding the parameters over $K$
# servers, as {cite}`li2014scaling` do, divides that by $K$). $N$ below is measured on this
# chapter's data-parallel MLP: the gradient bytes its training step hands to all-reduce.

# %% [markdown]
# In PyTorch a communication hook on the DDP model counts the bytes of every bucket it
# all-reduces, on a two-process run like 9.3's.


# %%
def counting_worker(rank, world_size, sizes_json, init_method, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=init_method, rank=rank, world_size=world_size
    )
    s = sizes_from_json(sizes_json)
    model = DDP(H.parallel.make_model(s))
    counted = []

    def count_then_allreduce(state, bucket):
        counted.append(bucket.buffer().numel() * bucket.buffer().element_size())
        fut = dist.all_reduce(bucket.buffer() / world_size, async_op=True).get_future()
        return fut.then(lambda f: f.value()[0])

    model.register_comm_hook(None, count_then_allreduce)
    x, y = (torch.from_numpy(a[: s.batch_size]) for a in toy_data(s))
    F.cross_entropy(model(x[rank::world_size]), y[rank::world_size]).backward()
    np.savez(Path(out_dir) / f"rank{rank}.npz", bytes=np.array(sum(counted)))
    dist.destroy_process_group()


counted = H.parallel.spawn(
    dp, world_size=2, worker=counting_worker, start_method="fork"
)
n_bytes = int(counted[0]["bytes"])
n_params = sum(p.numel() for p in H.parallel.make_model(dp).parameters())
print(
    f"DDP handed {n_bytes:,} bytes to all-reduce per step = {n_params:,} float32 gradients"
)
assert n_bytes == 4 * n_params

# Bytes sent per step; every node receives as many as it sends.
bytes_rows = [
    [w, f"{n_bytes:,}", f"{w * n_bytes:,}", f"{round(2 * n_bytes * (w - 1) / w):,}"]
    for w in (2, 8, 64, 512)
]
table = markdown_table(
    [
        "workers W",
        "parameter server: sent by each worker",
        "parameter server: sent by the server (busiest node)",
        "ring all-reduce: sent by each worker (every node alike)",
    ],
    bytes_rows,
)
display(Markdown(table))

# %% [markdown] tags=["shared"]
# ## 9.6 Summary
#
# * Time with warm-up, a wait for the device and the median of several samples; profile before
#   changing anything, and split a step into input, compute and the rest.
# * Each tuning step above is a before/after from this run; which ones help depends on the
#   hardware and the framework (each half of the chapter runs the list its own way).
# * Data parallelism averages the gradients of $W$ shares of the batch, which equals one
#   process on the whole batch: asserted on each page, in PyTorch for 2 processes and for two
#   "nodes" joined by a rendezvous, in JAX for 8 devices in one process and for 2 processes
#   joined by `jax.distributed`.
# * When a model does not fit, shard it (FSDP, tensor or pipeline parallelism). All-reduce
#   replaced parameter servers because a ring spreads the traffic evenly: no node sends more
#   than $2N(W-1)/W$ a step, while a single server's link carries $WN$ each way, growing
#   with $W$.

# %% [markdown] tags=["notebook-only"]
# Next: [the JAX half of this chapter](in-jax.ipynb), then the
# [lab](../../labs/09-performance-distributed/in-pytorch.ipynb), whose self-checks tell you when
# each exercise is right. Works cited are listed in the [bibliography](../../bibliography.md).
