# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 9. Performance tuning and distributed training: JAX
#
# This is the JAX half of chapter 9; the [PyTorch half](in-pytorch.ipynb) tells the same story
# in the same order. The outline lists GPU choice, CPU threads, caches, data parallelism, model
# parallelism and parameter servers in prose. Here all but two become experiments you rerun.
# GPU choice and caches are not measured: a page can time only the machine that runs it, and
# no cell here turns a cache off, so its effect hides inside every timing (the chapter's
# index lists both under what it leaves out). The rest, in order:
#
# * measuring first: timing done right, a profiler trace, finding the bottleneck;
# * single-device tuning on chapter 5's CIFAR-10 network, every step a before/after measured
#   on this page;
# * data parallelism by sharding the batch over a device mesh, asserted equal to one device;
# * several processes joined by `jax.distributed.initialize`, and what a cluster adds;
# * model parallelism (a weight split over devices, `shard_map`), pipelines, and why parameter
#   servers gave way to all-reduce.

# %% [markdown] tags=["notebook-only"]
# Every number on this page is printed by the code above it, except chapter 5's gain from
# XLA's own CPU kernels in section 9.2, quoted from its recorded runs; the cell below says at
# which scale (`smoke`, `cpu` or `gpu`) this page was produced.

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

# %% [markdown]
# One setting must come first. Sections 9.3 and 9.5 need several devices; this machine may have
# one CPU, but XLA can split it into 8 *simulated* CPU devices, as long as it is told before
# the CPU backend starts (before the first array is made). Everything else runs on device 0.

# %%
import jax

jax.config.update("jax_num_cpu_devices", 8)  # the same as XLA_FLAGS=...device_count=8

import glob
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import defaultdict
from functools import cache, partial
from pathlib import Path

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx
from IPython.display import Markdown, display
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from helpers import jax as H
from helpers.distributed import (
    child_env,
    markdown_table,
    measure,
    measure_interleaved,
    toy_data,
)

# Every size this notebook uses comes from helpers/scale/training.py.
sizes = H.sizes("performance")
device = H.default_device()
H.runtime_info()

# %% [markdown]
# The subject is the chapter 5 recipe: the airbench-style `H.vision.CifarNet`, the CIFAR-10
# training images kept on the device as `uint8`, each batch cropped, flipped and normalised
# there. A training *step* is what every measurement below times. It is two compiled
# functions: `batch` draws and augments a batch on the device, `update` runs the forward and
# backward passes and the optimizer. Each variant measured below (another dtype, no donation,
# another batch size) is one more `batch` or `update` to compile, so each is built once and
# shared by every measurement that uses it: compiling a step of this network takes seconds,
# running it milliseconds. The random keys, the initial weights' included, use JAX's `rbg`
# generator, which draws its bits with one XLA instruction; the default generator, threefry,
# builds them from many integer operations, and the cell times tracing and compiling the
# network's initialisation with each (not at `smoke` scale).

# %%
with H.vision.data_source() as source:
    x_train, y_train = H.load_cifar10("train", limit=sizes.train_examples)
print("data:", source["data"], f"train {x_train.shape}")
mean, std = H.vision.channel_stats(x_train)
images = jax.device_put(x_train, device)  # (N, 32, 32, 3) uint8
labels = jax.device_put(y_train.astype(np.int32), device)  # (N,) int32
B = sizes.batch_size


def device_key(seed, impl="rbg"):
    # committed to the device, like outputs
    return jax.device_put(jax.random.key(seed, impl=impl), device)


def build(impl="rbg"):
    model = H.vision.CifarNet(sizes.widths, rngs=nnx.Rngs(device_key(0, impl)))
    return model, nnx.Optimizer(model, optax.sgd(0.05, momentum=0.9), wrt=nnx.Param)


graphdef = nnx.split(nnx.eval_shape(build))[0]


def compile_init(impl):
    """The initialisation traced and compiled ahead of time, and the seconds that took."""
    start = time.perf_counter()
    compiled = jax.jit(lambda: nnx.state(build(impl))).lower().compile()
    return compiled, time.perf_counter() - start


# Built once under jit: creating the network eagerly runs (and compiles) every
# initialiser op by op, which costs more than the compiled version of the whole thing.
init_state, rbg_seconds = compile_init("rbg")  # a compiled function of no arguments
if sizes.compile:  # threefry's slow compilation is not worth smoke's seconds
    _, threefry_seconds = compile_init("threefry2x32")
    print(
        f"tracing and compiling the initialisation: {rbg_seconds:.2f} s with rbg keys, "
        f"{threefry_seconds:.2f} s with threefry"
    )


def new_state():
    """The model and optimizer state at the same initial weights every time."""
    return jax.device_put(init_state(), device)  # committed to the device


# Both cached: the same arguments (all given, in order) return the same compiled function.
@cache
def make_batch(batch_size, use_jit):
    """key, images, labels -> key, x (batch_size, 32, 32, 3) float32, y (batch_size,) int32."""

    def batch(key, images, labels):
        key, k_idx, k_aug = jax.random.split(key, 3)
        idx = jax.random.randint(k_idx, (batch_size,), 0, len(images))  # (B,)
        # x: (B, 32, 32, 3) uint8
        x = H.vision.random_crop_flip(images[idx], 2, rngs=k_aug)
        return key, H.vision.to_input(x, mean, std), labels[idx]  # (B, 32, 32, 3), (B,)

    return jax.jit(batch) if use_jit else batch


@cache
def make_update(dtype, donate, use_jit):
    """state, x, y -> state, loss: one SGD step on the batch x (B, 32, 32, 3), y (B,)."""

    def update(state, x, y):
        model, optimizer = nnx.merge(graphdef, state)
        if dtype != jnp.float32:
            for _, layer in nnx.iter_graph(model):
                if isinstance(layer, (nnx.Conv, nnx.Linear, nnx.BatchNorm)):
                    layer.dtype = dtype  # computes in dtype; parameters stay float32

        def loss_fn(model):
            logits = model(x.astype(dtype)).astype(jnp.float32)  # (B, 10)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), loss

    # donate_argnums=0: XLA may write the new state into the old state's buffers.
    return jax.jit(update, donate_argnums=0 if donate else ()) if use_jit else update


def make_step(batch_size=B, dtype=jnp.float32, donate=True, use_jit=True):
    """A training step on a random batch: state, key -> state, key, loss."""
    batch, update = make_batch(batch_size, use_jit), make_update(dtype, donate, use_jit)

    def step(state, key):
        # The data set is an argument, not a constant baked into the compiled program.
        key, x, y = batch(key, images, labels)
        state, loss = update(state, x, y)
        return state, key, loss

    return step


class Runner:
    """Carries the state from call to call, so that a timed call is one more training step."""

    def __init__(self, step, state, sync=False):
        self.step, self.state, self.sync = step, state, sync
        self.key = device_key(0)

    def __call__(self):
        self.state, self.key, loss = self.step(self.state, self.key)
        if self.sync:
            float(loss)  # a host sync: waits for the device and copies one number back
        return loss


step = Runner(make_step(), new_state())
n_weights = sum(
    v.size
    for v in jax.tree.leaves(nnx.state(nnx.merge(graphdef, step.state)[0], nnx.Param))
)
print(f"{len(images)} images on {device}, batch {B}, {n_weights:,} parameters")

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
wait = jax.block_until_ready  # JAX returns before the work is done: wait for the result


def smoke_caveat():
    """At `smoke` scale, print a note saying that the timings above are noise."""
    if H.current_scale() == "smoke":
        print(
            "smoke scale: these timings are too short to mean anything;\n"
            "rerun the notebook with BOOK_SCALE unset (it picks cpu or gpu)"
        )


first = time.perf_counter()
wait(step())  # warm-up: compiles the step, then runs it
first = time.perf_counter() - first
samples, unsynced = [], []
for _ in range(sizes.repeats):
    start = time.perf_counter()
    wait(step())
    samples.append(time.perf_counter() - start)
    start = time.perf_counter()
    loss = step()  # the mistake: no wait, so the clock stops at the dispatch
    unsynced.append(time.perf_counter() - start)
    wait(loss)
q1, median, q3 = np.percentile(samples, [25, 50, 75])
print(
    f"first call (compilation) {first * 1e3:.0f} ms; then median {median * 1e3:.1f} ms "
    f"± {(q3 - q1) / 2 * 1e3:.1f} ms over {sizes.repeats} calls;\nwithout the wait: "
    f"{np.median(unsynced) * 1e3:.2f} ms"
)

# %% [markdown]
# Without the wait the clock measured only the dispatch of the step, a fraction of its real
# time. `helpers.distributed.measure` is the loop above (warm-up calls, `wait`, median and
# spread), and times every row of this chapter. Next, where the time of one step goes.
# `jax.profiler.trace` records what the XLA runtime executes in a trace file (`.xplane.pb`)
# that TensorBoard's profile plugin opens; with `create_perfetto_trace=True` it also writes a
# `perfetto_trace.json.gz` for [Perfetto](https://ui.perfetto.dev). Here
# `jax.profiler.ProfileData` reads the `.xplane.pb` to sum the time per XLA operation. The
# names are those of the compiled program: `convolution.N` and `conv_general_dilated.N` are
# convolutions of the forward and backward passes, a `...fusion.N` is several operations XLA
# compiled into one kernel (`ynn_fusion.N`: one handed to the YNNPACK library, see 9.2). A
# convolution listed under its own name is one XLA kept out of YNNPACK (some forward, some
# backward); those inside YNNPACK show up only as `ynn_fusion.N`.

# %%
trace_dir = tempfile.mkdtemp()
with jax.profiler.trace(trace_dir):
    for _ in range(sizes.profile_steps):
        wait(step())
(trace_file,) = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)
totals, counts = defaultdict(float), defaultdict(int)
for plane in jax.profiler.ProfileData.from_file(trace_file).planes:
    for line in plane.lines:
        if line.name.startswith("python"):
            continue  # the Python thread's frames; keep what XLA ran
        for event in line.events:
            # "$file.py:line" are Python frames of other threads (the kernel's event loop);
            # ThunkExecutor::Execute wraps a whole program, whose operations are listed
            if event.name.startswith(
                ("$", "end:", "ThreadpoolListener", "ThunkExecutor")
            ):
                continue
            totals[event.name] += event.duration_ns / 1e6
            counts[event.name] += 1
top = sorted(totals.items(), key=lambda kv: -kv[1])[:10]
table = markdown_table(
    [
        "XLA operation (trace event)",
        "calls",
        "total ms",
        f"ms per step ({sizes.profile_steps} steps)",
    ],
    [[name[:60], counts[name], ms, ms / sizes.profile_steps] for name, ms in top],
)
display(Markdown(table))
print(
    f"timeline: {Path(trace_file).name} ({Path(trace_file).stat().st_size / 1e6:.1f} MB)"
)

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
batch, update = (
    make_batch(B, True),
    make_update(jnp.float32, True, True),
)  # step's halves
key0 = device_key(1)
_, fixed, fixed_labels = batch(key0, images, labels)  # (B, 32, 32, 3), (B,)


def on_fixed_batch(state, key):
    """The step without its input pipeline: the update on one fixed batch."""
    state, loss = update(state, fixed, fixed_labels)
    return state, key, loss


parts = measure_interleaved(  # one sample of each in turn, `repeats` rounds
    {
        "input pipeline": lambda: batch(key0, images, labels),
        "forward + backward + update": Runner(on_fixed_batch, new_state()),
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
    """Time two step functions; add a row with both medians, the speedup and the first calls."""
    first, t = [], []
    for f in (before, after):
        start = time.perf_counter()
        # the warm-up, timed apart: compiles what this version has not compiled yet
        wait(f())
        first.append(time.perf_counter() - start)
        t.append(
            measure(
                lambda f=f: [f() for _ in range(sizes.timed_steps)][-1],
                wait=wait,
                repeats=sizes.repeats,
                warmup=sizes.warmup - 1,
            )
        )
    calls = f"{first[0]:.2f} s, {first[1]:.2f} s"
    rows.append([name, t[0], t[1], f"{t[0].median / t[1].median:.2f}x", calls, note])
    print(f"{name}: {t[0]} → {t[1]} {per};\n    first calls {calls}")


# %% [markdown]
# **Kernel library.** On the CPU, jaxlib 0.10.2's XLA hands most convolutions, the matrix
# products and some elementwise and reduction fusions to a kernel library, YNNPACK, by default.
# `XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=` (an empty list of YNNPACK fusions) makes
# XLA use its own kernels instead. Chapter 5 does so (`helpers.vision.skip_ynnpack_on_cpu`)
# because its network then trained at 2.1 to 2.2 times the images per second (section 5.6;
# chapter 5's `bench.jsonl` records whole training runs at its `cpu` sizes on the course's
# Intel Xeon: 275 img/s with YNNPACK, 568 to 604 with XLA's own kernels in three runs (seed 0
# twice, seed 1 once)). XLA reads its flags once, when the backend starts, so the comparison takes two fresh
# processes, each timing one gradient of this page's `CifarNet` on a batch of `B` random
# images. At `smoke` scale the
# row is not run: two processes that each compile the network cost more seconds than smoke
# allows, for a gap too small to read. The rest of this page keeps XLA's default, what a fresh
# JAX install runs. On a GPU, XLA uses cuDNN and its own GPU kernels, not YNNPACK, so the row
# is left out. Unlike the step rows, this row and the threads row time
# single calls in fresh processes (the median of several).


# %%
def run_probe(script, *args, xla_flags=""):
    """Run `script` in a fresh Python process on the CPU; the numbers on its last line."""
    # child_env also sets the OpenMP/MKL thread variables, which XLA does not read.
    env = child_env(XLA_FLAGS=xla_flags, JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(f"the probe failed:\n{out.stderr[-2000:]}")
    return [float(v) for v in out.stdout.splitlines()[-1].split()]


kernel_probe = """
import statistics, sys, time, jax, numpy as np, optax
from flax import nnx
from helpers import jax as H
batch, *widths = map(int, sys.argv[1:])
model = H.vision.CifarNet(widths, rngs=nnx.Rngs(jax.random.key(0, impl="rbg")))
x = np.random.default_rng(0).standard_normal((batch, 32, 32, 3), np.float32)
x = jax.device_put(x)
y = jax.device_put(np.arange(batch) % 10)
loss = lambda m, x, y: optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()
grad = nnx.jit(nnx.grad(loss))
jax.block_until_ready(grad(model, x, y))  # compiles
t = []
for _ in range(9):
    start = time.perf_counter()
    jax.block_until_ready(grad(model, x, y))
    t.append(time.perf_counter() - start)
print(statistics.median(t))
"""

if device.platform != "cpu":
    print(f"{device.platform}: XLA does not use YNNPACK here; no row")
elif not sizes.compile:  # two fresh processes, each compiling the network: not at smoke
    rows.append(
        ["XLA CPU kernels: YNNPACK → XLA's own", "not run at this scale"] + [""] * 4
    )
    print("smoke scale: the kernel-library row is not run")
else:
    from helpers.vision import YNNPACK_OFF

    [ynn] = run_probe(kernel_probe, B, *sizes.widths)
    [own] = run_probe(kernel_probe, B, *sizes.widths, xla_flags=YNNPACK_OFF)
    rows.append(
        [
            f"XLA CPU kernels: YNNPACK → XLA's own (one gradient, batch {B})",
            f"{ynn * 1e3:.1f} ms",
            f"{own * 1e3:.1f} ms",
            f"{ynn / own:.2f}x",
            "",  # first calls: not timed here
            "fresh processes, median of 9 calls",
        ]
    )
    print(f"YNNPACK {ynn * 1e3:.1f} ms, XLA's own kernels {own * 1e3:.1f} ms")

# %% [markdown]
# **Threads.** JAX has no `set_num_threads`: XLA sizes its CPU thread pool once, when the
# backend starts, from the cores the process may run on. Comparing thread counts therefore
# takes fresh processes: one pinned to one core (`os.sched_setaffinity`, what `taskset` does in
# a shell), one unpinned. Each times the same jitted convolution (one operation, not the whole
# step the PyTorch page times) and reports its CPU time divided by its wall time: how many
# cores it kept busy. Limiting the cores the process may run on (`taskset`, a container's CPU
# set such as `docker --cpuset-cpus`) is the lever that works. A third process runs with
# `XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`, the flag online answers give for running
# XLA on one thread. Those answers often add `intra_op_parallelism_threads=1` after it. That
# is a TensorFlow session option, not an XLA flag. Without `--` it silently ends XLA's reading
# of `XLA_FLAGS`: it and every flag after it are ignored. With `--` the process aborts with
# "Unknown flag in XLA_FLAGS" (the course's tests check both with this jaxlib). The flag's
# name says it turns off multi-threading in XLA's calls into Eigen, and this convolution runs
# in YNNPACK by default (above): if the flag confined it to one thread, its cores-busy figure
# would be near the pinned process's. That shows only where the unpinned process keeps more
# cores busy than the pinned one; where it does not (a shared machine, a small convolution),
# the cell says that this run cannot show the flag's effect. On a shared machine, and at
# `smoke` sizes, the three times differ by noise as much as by threads.

# %%
probe = """
import os, sys
if len(sys.argv) > 1:  # pin this process to one core before JAX sizes its thread pool
    os.sched_setaffinity(0, {int(sys.argv[1])})
import statistics, time, jax, jax.numpy as jnp
x = jnp.ones((64, 32, 32, 32)); w = jnp.ones((3, 3, 32, 32))
f = jax.jit(lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC")).sum())
f(x, w).block_until_ready()  # compiles
t, cpu = [], []
for _ in range(21):
    # process_time: the CPU time of all this process's threads
    start, start_cpu = time.perf_counter(), time.process_time()
    f(x, w).block_until_ready()
    t.append(time.perf_counter() - start); cpu.append(time.process_time() - start_cpu)
print(statistics.median(t), sum(cpu) / sum(t))
"""

if hasattr(os, "sched_setaffinity"):  # Linux (Colab included); not macOS or Windows
    cores = len(os.sched_getaffinity(0))
    one, one_busy = run_probe(probe, min(os.sched_getaffinity(0)))
    many, many_busy = run_probe(probe)
    flag, flag_busy = run_probe(probe, xla_flags="--xla_cpu_multi_thread_eigen=false")
    rows.append(
        [
            f"XLA threads: 1 core → all {cores} (one convolution)",
            f"{one * 1e3:.1f} ms",
            f"{many * 1e3:.1f} ms",
            f"{one / many:.2f}x",
            "",  # first calls: not timed here
            f"fresh processes; cores busy {one_busy:.1f} → {many_busy:.1f}",
        ]
    )
    print(
        f"1 core: {one * 1e3:.1f} ms, {one_busy:.2f} cores busy; {cores} cores: "
        f"{many * 1e3:.1f} ms, {many_busy:.2f};\n--xla_cpu_multi_thread_eigen=false: "
        f"{flag * 1e3:.1f} ms, {flag_busy:.2f}"
    )
    # the unpinned process kept little more than the pinned one's single core busy
    if many_busy < one_busy + 0.5:
        print(
            "the unpinned process kept barely more cores busy than the pinned one:\n"
            "this run cannot show the flag's effect"
        )
else:
    print("This system cannot pin a process to one core: no threads row")

# %% [markdown]
# **Input pipeline.** JAX has no data loader of its own; the usual host-side pipeline augments
# one image at a time in NumPy (`H.vision.per_sample_batches`, what a per-sample `Dataset`
# does) and copies each batch to the device. Chapter 5 instead keeps the data set on the
# device and augments whole batches there, compiled (`batch` above). The same `update` fed
# both ways:


# %%
class HostFed:
    """The same `update`, fed batches augmented one image at a time on the host."""

    def __init__(self):
        self.state, self.batches = new_state(), self.new_epoch()

    def new_epoch(self):
        return H.vision.per_sample_batches(
            x_train, y_train, mean, std, batch_size=B, pad=2
        )

    def __call__(self):
        try:
            x, y = next(self.batches)  # (B, 32, 32, 3) float32, (B,) int32 in NumPy
        except StopIteration:
            self.batches = self.new_epoch()
            x, y = next(self.batches)
        self.state, loss = update(
            self.state, jax.device_put(x, device), jax.device_put(y, device)
        )
        return loss


compare(
    "per-sample host pipeline → data on the device",
    HostFed(),
    Runner(make_step(), new_state()),
)

# %% [markdown]
# **Compilation.** `jax.jit` traces the step once and compiles it into fused XLA kernels;
# without it, every operation is dispatched on its own from Python. `donate_argnums=0` lets
# XLA write the new state into the old state's buffers instead of allocating new ones (the
# old state must not be used again). Running without jit first compiles each operation on its
# own, which takes too long for `smoke` scale's seconds-long runs, so at that scale the row
# says so instead of a number. The *first calls* column is the other side of the bargain: what
# the first call of each version cost, compilation included. The donated step is the one 9.1
# compiled, so in its row the *after* first call is one step, not a compilation.

# %%
if sizes.compile:  # op-by-op warm-up compiles every operation: not at smoke scale
    compare(
        "op-by-op (no jit) → jax.jit",
        Runner(make_step(use_jit=False), new_state()),
        Runner(make_step(), new_state()),
    )
else:
    rows.append(
        ["op-by-op (no jit) → jax.jit", "not run at this scale", "", "", "", ""]
    )
compare(
    "jit → jit with donated state",
    Runner(make_step(donate=False), new_state()),
    Runner(make_step(), new_state()),
    note="after: compiled in 9.1",
)

# %% [markdown]
# **Mixed precision.** Flax layers take a `dtype`, the type they compute in, apart from
# `param_dtype`, the type they store. Setting `dtype=bfloat16` on every layer runs the
# convolutions and products in 16 bits while the parameters, their updates and the loss stay
# float32; JAX has no autocast, so the choice is written where it applies. bfloat16 keeps
# float32's exponent range; float16 would also need loss scaling (scale the loss up before
# differentiating, the gradients down after: PyTorch's `GradScaler`), because its small
# exponent range underflows {cite}`micikevicius2018mixed`. Whether bfloat16 pays off on a CPU
# depends on the kernels behind it, and the two frameworks use different ones (oneDNN's behind
# PyTorch's autocast, XLA's and YNNPACK's here), so on the same CPU this row and PyTorch's
# need not go the same way.

# %%
compare(
    "float32 → bfloat16 compute",
    Runner(make_step(), new_state()),
    Runner(make_step(dtype=jnp.bfloat16), new_state()),
)

# %% [markdown]
# **Memory format.** PyTorch's `channels_last` switch has no JAX counterpart: arrays are NHWC
# in this network, and XLA chooses the physical layout of every intermediate itself.
#
# **Host syncs.** `float(loss)` inside the loop waits for the device and copies a number to
# the host every step, so Python cannot queue the next step while the device works. Keep the
# losses as arrays and read them once at the end, as chapter 5's training loop (section 5.3)
# does with `np.asarray(jnp.stack(losses))` after each epoch. At `smoke` scale the row shows
# only noise: a sample is `timed_steps` steps, one at `smoke`, and `measure` waits for the
# device after every sample, so both columns sync once a step. At `cpu` and `gpu` scale a
# sample is 3 and 20 steps (`helpers/scale/training.py`), and only the *before* column syncs
# inside it.

# %%
compare(
    "float(loss) every step → no host sync",
    Runner(make_step(), new_state(), sync=True),
    Runner(make_step(), new_state()),
)

# %% [markdown]
# **Batch size.** On a GPU, larger batches usually raise throughput, since each step gives its
# many cores more parallel work, until the GPU is saturated. On a CPU, with far fewer cores,
# larger batches may gain little or even be slower. The plot shows which way it goes on the
# machine that ran this page: throughput in images per second, for each batch size of the
# sweep (each size is compiled once, in the warm-up call):

# %%
sweep = []
for bs in sizes.sweep_batch_sizes:
    f = Runner(make_step(batch_size=bs), new_state())
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
        "",  # first calls: not timed here
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
        "first calls, before, after",
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
# The equality holds for this MLP, and in JAX even for a network with BatchNorm: `jit`
# computes a batch mean over all rows of the sharded array, so the compiler all-reduces the
# statistics as it does the gradients. (Separate processes that each normalise their own
# share, as PyTorch's DDP workers do, need synchronised BatchNorm.)
#
# JAX needs no wrapper for this. Put the parameters on every device (*replicated*, sharding
# `P()`), split the batch's first axis over a mesh axis (`P("data")`), and `jax.jit` compiles
# one program for all devices; since the loss is a mean over the whole (sharded) batch, the
# compiler inserts the all-reduce of the gradients itself. The loop, written out:

# %%
dp = sizes.parallel
# the 8 simulated CPU devices
mesh = H.sharding.make_mesh((8,), ("data",), device="cpu")
replicated, by_rows = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))

x_all, y_all = toy_data(dp)
dp_graphdef, params = nnx.split(H.sharding.make_model(dp))
tx = optax.sgd(dp.learning_rate)


@jax.jit
def dp_step(params, opt_state, xb, yb):
    def loss_fn(params):
        logits = nnx.merge(dp_graphdef, params)(xb)  # (B, classes)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)  # grads: all-reduced by XLA
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss


params = jax.device_put(params, replicated)
opt_state = jax.device_put(tx.init(params), replicated)
per_epoch, losses = dp.examples // dp.batch_size, []
for t in range(dp.steps):
    epoch, i = divmod(t, per_epoch)
    order = np.random.default_rng([dp.seed, epoch]).permutation(dp.examples)
    idx = order[i * dp.batch_size : (i + 1) * dp.batch_size]
    xb = jax.device_put(x_all[idx], by_rows)  # (B, features): B / 8 rows on each device
    yb = jax.device_put(y_all[idx].astype(np.int32), by_rows)
    params, opt_state, loss = dp_step(params, opt_state, xb, yb)
    losses.append(loss)

# which rows of the last batch live on which device
jax.debug.visualize_array_sharding(xb)
reference = H.sharding.reference_training(dp)  # one device, whole batches
flat = {"/".join(map(str, k)): np.asarray(v) for k, v in nnx.to_flat_state(params)}


def max_difference(results, ref):
    params = [k for k in ref if k != "losses"]
    worst = max(float(np.abs(r[k] - ref[k]).max()) for r in results for k in params)
    # Each process's loss is already the global batch's mean (jit computes it over all rows).
    mean_loss = sum(r["losses"] for r in results) / len(results)
    return max(worst, float(np.abs(mean_loss - ref["losses"]).max()))


dp_diff = max_difference([{**flat, "losses": np.array(losses)}], reference)
print(
    f"8 devices, {dp.steps} steps; largest difference from one device: {dp_diff:.1e}; "
    f"loss {reference['losses'][0]:.3f} -> {reference['losses'][-1]:.3f}"
)
assert dp_diff < 1e-5
assert reference["losses"][-1] < reference["losses"][0]  # it learned

# %% [markdown]
# The all-reduce is in the compiled program; here are the lines of XLA's optimised HLO that
# hold it. PyTorch's `DistributedDataParallel` does the same averaging with hooks inside
# `backward`, in separate processes rather than one program over many devices.

# %%
hlo = dp_step.lower(params, opt_state, xb, yb).compile().as_text()
all_reduces = [
    line.strip()
    for line in hlo.splitlines()
    if re.search(r"all-reduce(-start)?\(", line)
]
for line in all_reduces:
    print(textwrap.shorten(line, 100, placeholder=" …"))  # cut between tokens

# %% [markdown] tags=["shared"]
# ## 9.4 Several processes, several nodes

# %% [markdown]
# On a cluster the scheduler starts one process per node (driving all its accelerators) or one
# per accelerator; each process is given its number and the number of processes, and they
# find each other through a *coordinator*. Here two processes on this one machine play two
# nodes, one device each, meeting on 127.0.0.1.
#
# JAX's multi-process runtime starts with
# `jax.distributed.initialize(coordinator_address, num_processes, process_id)` in every process:
# process 0 hosts the coordinator, the others connect to it, and afterwards `jax.devices()`
# lists the devices of *all* processes while `jax.local_devices()` lists this process's own. A
# mesh over all of them works as in 9.3; each process passes only its own rows
# (`jax.make_array_from_process_local_data`). Between CPUs the collectives run over gloo (the
# default value of the `jax_cpu_collectives_implementation` option in this JAX version),
# between GPUs over NCCL. JAX has no launcher like `torchrun`: on a cluster, Slurm's `srun` or
# a Kubernetes Job starts the processes (and inside Slurm `initialize()` reads its arguments
# from Slurm's variables); here `H.sharding.launch_processes` starts two on this machine with
# `subprocess`, each running `python -m helpers.jax.sharding`.

# %%
procs, procs_seconds = H.sharding.launch_processes(dp, num_processes=2)
procs_diff = max_difference(procs, reference)
print(
    f"2 processes joined by jax.distributed: {procs_seconds:.1f} s (start-up included);\n"
    f"largest difference from one device: {procs_diff:.1e}"
)
assert procs_diff < 1e-5

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
text = (chapter / "train-jax.sbatch").read_text()
print(f"---- train-jax.sbatch ({len(text.splitlines())} lines); its launch:")
lines = text.splitlines()
# the last command: from its srun line to the end, continuation lines included
srun_line = next(i for i, ln in enumerate(lines) if ln.startswith("srun"))
print("\n".join(lines[srun_line:]))

# %% [markdown]
# A checkpoint holds everything the next step depends on: parameters, optimizer state, the
# step (and data position). Orbax (`orbax-checkpoint`) is the library for real runs (sharded,
# asynchronous saves); the idea fits in a NumPy file. A run stopped at half time and resumed
# from its checkpoint must end exactly where an uninterrupted run ends:

# %%
ck_tx = optax.sgd(dp.learning_rate, momentum=0.9)


@jax.jit
def ck_step(p, o, xb, yb):
    def loss_fn(p):
        logits = nnx.merge(dp_graphdef, p)(xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    grads = jax.grad(loss_fn)(p)
    updates, o = ck_tx.update(grads, o)
    return optax.apply_updates(p, updates), o


def train_steps(p, o, first, last):
    for t in range(first, last):
        idx = np.arange(t * dp.batch_size, (t + 1) * dp.batch_size) % dp.examples
        p, o = ck_step(p, o, x_all[idx], y_all[idx].astype(np.int32))
    return p, o


def fresh():
    p = nnx.split(H.sharding.make_model(dp))[1]
    return p, ck_tx.init(p)


full = train_steps(*fresh(), 0, dp.steps)

ckpt = Path(tempfile.mkdtemp()) / "checkpoint.npz"
half = train_steps(*fresh(), 0, dp.steps // 2)
leaves, treedef = jax.tree.flatten(half)
np.savez(ckpt, *[np.asarray(v) for v in leaves], step=dp.steps // 2)
del half, leaves  # the "crash"

with np.load(ckpt) as saved:
    # JAX arrays, like the originals: the resumed run reuses the same compiled step
    restored = jax.tree.unflatten(
        treedef, [jnp.asarray(saved[f"arr_{i}"]) for i in range(treedef.num_leaves)]
    )
    first = int(saved["step"])
resumed = train_steps(*restored, first, dp.steps)  # momentum buffers restored too
gap = max(
    float(jnp.abs(a - b).max())
    for a, b in zip(jax.tree.leaves(full[0]), jax.tree.leaves(resumed[0]), strict=True)
)
print(f"resumed at step {first} of {dp.steps}: largest difference {gap:.1e}")
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
# In JAX, splitting a weight is one more sharding annotation. On a 2 x 4 mesh (`"data"` x
# `"model"`), the weight of a layer is split by columns over `"model"` and the batch by rows
# over `"data"`; `jax.jit` plans the product, and the output comes out split both ways, each
# device holding one block:

# %%
mesh2 = H.sharding.make_mesh((2, 4), ("data", "model"), device="cpu")
x = jax.random.normal(jax.random.key(0), (16, 32))  # (batch, features)
w = jax.random.normal(jax.random.key(1), (32, 64))  # (features, hidden)
x_s = jax.device_put(x, NamedSharding(mesh2, P("data", None)))  # rows over "data"
w_s = jax.device_put(w, NamedSharding(mesh2, P(None, "model")))  # columns over "model"
y_s = jax.jit(jnp.matmul)(x_s, w_s)  # (16, 64)
print("weight: each device holds", w_s.addressable_shards[0].data.shape, "of", w.shape)
print(
    "output sharding:", y_s.sharding.spec, "block", y_s.addressable_shards[0].data.shape
)
np.testing.assert_allclose(y_s, x @ w, rtol=1e-5, atol=1e-5)
# [rows, columns] of y held by each device, laid out as the mesh
blocks = y_s.sharding.devices_indices_map(y_s.shape)
for mesh_row in mesh2.devices:
    print(
        "   ".join(
            f"device {d.id}: [{r.start}:{r.stop}, {c.start}:{c.stop}]"
            for d in mesh_row
            for r, c in [blocks[d]]
        )
    )
# the same map drawn, one colour per device
jax.debug.visualize_array_sharding(y_s, max_width=100)  # wide enough for the labels

# %% [markdown]
# `jax.shard_map` writes the per-device program by hand instead: the function sees only its
# own block, and communication is explicit. Column parallelism needs none; row parallelism
# (the weight split by rows, the input by columns) ends with a `psum` over `"model"`, the
# all-reduce of Megatron's second layer {cite}`shoeybi2019megatron`:


# %%
@partial(
    jax.shard_map,
    mesh=mesh2,
    in_specs=(P("data", "model"), P("model", None)),
    out_specs=P("data", None),
)
def row_parallel(x_block, w_block):
    # x_block (16 / 2, 32 / 4), w_block (32 / 4, 64): a partial product on each device
    return jax.lax.psum(x_block @ w_block, "model")  # summed over the 4 "model" devices


x_rows = jax.device_put(x, NamedSharding(mesh2, P("data", "model")))  # blocks of x
w_rows = jax.device_put(w, NamedSharding(mesh2, P("model", None)))  # rows of w
np.testing.assert_allclose(row_parallel(x_rows, w_rows), x @ w, rtol=1e-5, atol=1e-5)
print("row-parallel shard_map matches x @ w; each device held", (32 // 4, 64), "of w")

# %% [markdown]
# PyTorch's counterparts are FSDP2 (`fully_shard`, each parameter a `DTensor` sharded over the
# processes) and `parallelize_module` for tensor parallelism; the PyTorch half runs FSDP2 on
# two CPU processes.

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
# In JAX the measurement reads the compiled data-parallel step of 9.3: the bytes of every
# all-reduce operand in its HLO, which is what XLA hands to the collective each step.


# %%
def hlo_bytes(line):
    width = {"f32": 4, "bf16": 2, "f16": 2, "s32": 4, "f64": 8, "pred": 1}
    # the result shape(s), before the op
    lhs = re.split(r"\sall-reduce(?:-start)?\(", line)[0]
    return sum(
        width[t] * int(np.prod([int(d) for d in dims.split(",") if d]))
        for t, dims in re.findall(r"\b(f32|bf16|f16|s32|f64|pred)\[([\d,]*)\]", lhs)
    )


n_params = sum(v.size for v in jax.tree.leaves(params))
grad_bytes = sum(hlo_bytes(line) for line in all_reduces)
print(
    f"the step all-reduces {grad_bytes:,} bytes: {n_params:,} float32 gradients "
    f"({4 * n_params:,} bytes) and the loss"
)
assert grad_bytes >= 4 * n_params
n_bytes = 4 * n_params
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
# Next: the [lab](../../labs/09-performance-distributed/in-jax.ipynb), whose self-checks tell
# you when each exercise is right (read [the PyTorch half](in-pytorch.ipynb) of this chapter
# first if you have not yet). Works cited are listed in the
# [bibliography](../../bibliography.md).
