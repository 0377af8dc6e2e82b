"""``seed_everything`` alone makes a run repeatable.

The pattern to copy: run the same thing twice with only the helper between the runs, after
disturbing every global generator it claims to seed; then check that another seed differs.
"""

import random

import jax
import numpy as np
import torch
from flax import nnx

from helpers import jax as hj
from helpers import torch as ht


def disturb_global_generators() -> None:
    """Leave every global generator somewhere a fresh process would not be."""
    torch.manual_seed(12345)
    torch.rand(7)
    random.seed(999)
    random.random()
    np.random.seed(999)  # noqa: NPY002  (the legacy global state is what is tested)
    np.random.rand()  # noqa: NPY002


def torch_run(seed: int) -> list[np.ndarray]:
    """Initial weights, a dropout mask, and Python's and numpy's next numbers."""
    generator = ht.seed_everything(seed)
    model = ht.MLP(4, (16,), 3)  # initial weights come from torch's global generator
    dropout = torch.nn.Dropout(0.5)  # a fresh module is in train mode: masks are random
    out = dropout(model(torch.ones(8, 4)))
    drawn = torch.rand(3, generator=generator)
    return [
        *(p.detach().numpy().copy() for p in model.parameters()),
        out.detach().numpy(),
        drawn.numpy(),
        np.array([random.random(), np.random.rand()]),  # noqa: NPY002
    ]


def test_torch_seed_everything_alone_makes_two_runs_identical():
    first = torch_run(0)
    disturb_global_generators()
    second = torch_run(0)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    other = torch_run(1)
    for a, b in zip(first, other, strict=True):
        assert not np.array_equal(a, b)


def jax_run(seed: int) -> list[np.ndarray]:
    key = hj.seed_everything(seed)
    model_key, dropout_key = jax.random.split(key)
    model = hj.MLP(4, (16,), 3, rngs=nnx.Rngs(model_key))
    dropout = nnx.Dropout(0.5, rngs=nnx.Rngs(dropout_key))
    out = dropout(model(np.ones((8, 4), np.float32)))
    return [
        *(np.asarray(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))),
        np.asarray(out),
        np.array([random.random(), np.random.rand()]),  # noqa: NPY002
    ]


def test_jax_seed_everything_alone_makes_two_runs_identical():
    first = jax_run(0)
    disturb_global_generators()
    second = jax_run(0)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    other = jax_run(1)
    # Flax starts biases at zero whatever the seed: every other array must change.
    for a, b in zip(first, other, strict=True):
        assert not np.array_equal(a, b) or not a.any()
    assert sum(not np.array_equal(a, b) for a, b in zip(first, other, strict=True)) >= 4
