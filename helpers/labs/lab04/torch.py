"""Lab 4 self-checks for PyTorch notebooks: ``H.lab04.check_train_step(train_step)`` etc.

The checks are :mod:`helpers.labs.lab04.checks`, shared with JAX; this module builds the
reference ``nn.Sequential`` models and training steps (one variant per known mistake), and
checks exercise 4, PyTorch's version of sharding a batch: the ``(world_size, B / world_size,
...)`` stack of the contiguous shards each process of a data-parallel job would get.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from helpers.labs.kit import Hints, checking, explainer
from helpers.labs.lab04 import checks as lab04
from helpers.torch.labkit import lab_framework

__all__ = [
    "check_build_mlp",
    "check_data_parallel_grads",
    "check_per_example_grad_norms",
    "check_shard_batch",
    "check_train_step",
]

# Known mistakes that only PyTorch allows, and PyTorch's wording of framework-dependent ones.
HINTS = Hints(
    lab04.HINTS,
    {
        "key_reused": "the generator was reseeded between layers: call torch.manual_seed(seed) "
        "once, before the first layer; reseeding before each layer gives layers of the same "
        "shape the same weights",
        "no_update": "the weights did not change: call optimizer.zero_grad() before "
        "loss.backward() (not between backward() and step()), then optimizer.step()",
        "zero_grad": "clear the gradients at every step with optimizer.zero_grad(): "
        "backward() adds to .grad, so the second step used the sum of both gradients",
        "wrong_axis": "split the batch axis, dim 0: x.reshape(world_size, -1, *x.shape[1:]) "
        "(or torch.stack(x.chunk(world_size))), not the features",
        "map_params": "vmap maps every argument over dim 0 unless told otherwise: the "
        "parameters are shared by all examples, so in_dims=(None, 0, 0)",
        "shard_shape": "return (world_size, B / world_size, D), the shard first: "
        "x.chunk(n) cuts n pieces, while x.split(k) cuts pieces of k rows",
        "autograd_in_func": "inside torch.func transforms differentiate with "
        "torch.func.grad(loss_fn)(params, ...): the params passed in do not require grad, "
        "so loss.backward() and torch.autograd.grad have nothing to differentiate",
        "interleaved": "each shard is a contiguous block of rows, as P('data') gives in "
        "JAX: shard r holds rows r*B/n to (r+1)*B/n - 1, not every n-th row",
    },
)

_explain = explainer(
    {
        "Expected all tensors to have the same size in the mapped dimension": "map_params",
        "does not require grad and does not have a grad_fn": "autograd_in_func",
    },
    HINTS,
)

TORCH = lab_framework(HINTS, _explain)


def _mlp(seed: int, variant: str = "") -> nn.Module:
    """The reference of exercise 2; ``variant`` builds a known mistake instead."""
    torch.manual_seed(seed)
    widths = lab04.MLP_WIDTHS
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        if variant == "key_reused":
            torch.manual_seed(seed)
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2 and variant != "no_activation":
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _apply(model: Any, x: np.ndarray) -> np.ndarray:
    if not isinstance(model, nn.Module):
        raise TypeError(type(model).__name__)
    with torch.no_grad():
        return model(torch.from_numpy(x)).double().numpy()


def _setup() -> tuple[nn.Module, torch.optim.Optimizer]:
    model = _mlp(0)
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def _train(variant: str) -> tuple[np.ndarray, np.ndarray]:
    """Two reference steps (or a known mistake's): the losses ``(2,)`` and the outputs."""
    model, optimizer = _setup()
    losses = []
    for x, y in lab04.train_batches():
        x, y = torch.from_numpy(x), torch.from_numpy(y)
        reduction = "sum" if variant == "sum_loss" else "mean"
        if variant != "zero_grad":
            optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y, reduction=reduction)
        loss.backward()
        if variant != "no_update":
            optimizer.step()
        if variant == "loss_after_update":
            loss = F.cross_entropy(model(x), y)
        losses.append(float(loss.detach()))
    return np.asarray(losses), _apply(model, lab04._probe())


def check_shard_batch(shard_batch: Callable) -> None:
    """``shard_batch(x, world_size)`` -> ``(world_size, B / world_size, D)``, contiguous."""
    with checking(
        "shard_batch", TORCH, passed="contiguous shards of the batch axis"
    ) as c:
        rng = np.random.default_rng(43)
        for batch, world in ((16, 4), (24, 8)):
            x = rng.normal(size=(batch, 8)).astype(np.float32)
            out = c.call(shard_batch, torch.from_numpy(x.copy()), world)
            if isinstance(out, tuple | list):
                raise c.fail(
                    f"expected {TORCH.array_type}, got a {type(out).__name__}",
                    "stack the shards into one tensor: torch.stack(x.chunk(world_size))",
                )
            arr = c.array(out)
            expected = x.reshape(world, batch // world, 8)
            if arr.shape == (world, batch, 8 // world):
                raise c.fail(
                    f"the result has shape {arr.shape}, expected {expected.shape}",
                    c.hint("wrong_axis"),
                )
            c.shape(arr, expected.shape, c.hint("shard_shape"))
            interleaved = x.reshape(batch // world, world, 8).transpose(1, 0, 2)
            c.close(
                arr,
                expected,
                what="the sharded batch",
                mistakes=[(c.hint("interleaved"), interleaved)],
            )


check_per_example_grad_norms = partial(lab04.check_per_example_grad_norms, fw=TORCH)
check_build_mlp = partial(
    lab04.check_build_mlp,
    fw=TORCH,
    build=_mlp,
    apply=_apply,
    module_type="an nn.Module",
)
check_train_step = partial(
    lab04.check_train_step,
    fw=TORCH,
    setup=_setup,
    train=_train,
    apply=_apply,
    variants=("no_update", "loss_after_update", "sum_loss", "zero_grad"),
)
check_data_parallel_grads = partial(lab04.check_data_parallel_grads, fw=TORCH)
