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
# `bench.jsonl`. This page reads all of them when the site is built: the table lists every run,
# oldest first, and each task gets a plot.
#
# **Protocol.** `helpers.bench` trains the task's model from scratch with a fixed seed at the
# scale it names, then evaluates it once on the full test split. *Train s* is the wall time of
# the training epochs (evaluation excluded), measured with the device synchronised;
# *examples/s* leaves out the first step, which carries compilation (JAX) or GPU warm-up, and
# that step's time is recorded apart (`first_step_seconds`). A run is comparable with another
# only on the same hardware.

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

from helpers.notebooks import ROOT
from helpers.results import load_records, plot_task, records_table

records = load_records(ROOT)
print(f"{len(records)} recorded runs in {ROOT / 'chapters'}")
Markdown(records_table(records)) if records else print(
    "no recorded runs in this checkout"
)

# %%
for task in dict.fromkeys(r["task"] for r in records):
    plot_task(records, task)
