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
# # Results from recorded runs
#
# Every benchmark number quoted in the chapters comes from a run of `python -m helpers.bench`,
# recorded with its hardware, library versions, date and git commit in the chapter's
# `bench.jsonl`. This page reads all of them when the site is built: one table per chapter and
# task lists every record, oldest first, superseded settings and sweeps included, and each task
# gets a plot of its runs at its scale's own sizes. (The outlook of chapter 10, section 10.9,
# shows only the latest run of each configuration.)
#
# **Protocol.** `helpers.bench` trains the task's model from scratch with a fixed seed at the
# sizes of the scale it names, except where the *scale* column lists sizes changed for that
# run (`--set`, for sweeps; the plots leave those runs out). A supervised task is then
# evaluated once on its test split (the full split, or the `test_examples` its scale names),
# and its metric is the test accuracy. The reinforcement-learning tasks (`cartpole`,
# `pendulum`) have no test split: their metric is the mean return of greedy evaluation
# episodes, each seed's mean averaged over the seeds. *Train s* is the wall time of training
# (evaluation excluded; all seeds together for reinforcement learning), measured with the
# device synchronised. The *hardware* column names the GPU, else the CPU's family and the cores
# the run could use. The *throughput* of a supervised task counts training examples per
# second and leaves out the first step, which carries compilation (JAX) or GPU warm-up; that
# step's time is recorded apart (`first_step_seconds`). For reinforcement learning it counts
# environment steps per second of training, and JAX's compilation is timed apart
# (`compile_seconds`). A record made with `--repeat N` holds the medians of N seeds (its
# metric says so). A run is comparable with another only on the same hardware.
#
# **Commits.** The *commit* column names the git commit each run was made at, so that it can
# be reproduced. `+dirty` after it means the working tree had uncommitted changes when the run
# was made: that commit alone may not reproduce the run exactly.

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
from IPython.display import Markdown

from helpers import course_root
from helpers.results import load_records, plot_task, records_table

root = course_root()
records = load_records(root)
chapters = len({r["chapter"] for r in records})
print(f"{len(records)} records in the bench.jsonl files of {chapters} chapters")
Markdown(records_table(records)) if records else print(
    "no recorded runs in this checkout"
)

# %%
# One plot per task, of its runs at the scale's own sizes (sweeps are in the table only).
for task in dict.fromkeys(r["task"] for r in records if "overrides" not in r):
    plot_task(records, task)
