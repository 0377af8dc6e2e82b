"""Lab 4 self-checks for PyTorch notebooks: ``H.lab04.check_train_step(train_step)`` etc.

The checks are :mod:`helpers.labs.lab04.checks`, shared with JAX; this module builds the
reference ``nn.Sequential`` models and training steps (one variant per known mistake), and
checks exercise 4a, PyTorch's version of sharding a batch: the ``(world_size, B / world_size,
...)`` stack of the contiguous shards each process of a data-parallel job would get. Each
check explains the PyTorch errors that mean one mistake in its own exercise (``EXPLAIN``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from helpers.labs.kit import Checker, Hints, checking, explainer
from helpers.labs.lab04 import checks as lab04
from helpers.labs.lab04 import ste, wording
from helpers.torch.labkit import lab_framework

__all__ = [
    "check_build_mlp",
    "check_data_parallel_grads",
    "check_per_example_grad_norms",
    "check_round_ste",
    "check_shard_batch",
    "check_train_step",
]

# The shared hints, and PyTorch's own (helpers.labs.lab04.wording).
HINTS = Hints(lab04.HINTS, ste.HINTS, wording.TORCH)

# PyTorch errors that mean one mistake, per exercise.
_MAP_PARAMS = {
    "Expected all tensors to have the same size in the mapped dimension": "map_params"
}
EXPLAIN = {
    "per_example_grad_norms": {
        **_MAP_PARAMS,
        "does not require grad and does not have a grad_fn": "autograd_in_func",
        # W's (B, D, C) and b's (B, C) gradients summed over their last axis only
        "must match the size of tensor b": "flatten_leaves",
        # xi[None] with a 0-d label yi: a batch of one against no labels
        r"target batch_size \(0\)": "batch_of_one",
        # in_dims=(None, 0, None): a batch of one against the whole y
        "0D or 1D target tensor expected|to match target batch_size": "map_labels",
    },
    "build_mlp": {"mat1 and mat2 must have the same dtype": "model_dtype"},
    "train_step": {
        "does not require grad and does not have a grad_fn": "no_grad_loss",
        "Expected floating point type for target with class probabilities": (
            "integer_targets"
        ),
    },
    "shard_batch": {},
    "data_parallel_grads": {
        # params mapped, or x and y cut into different numbers of shards
        "Expected all tensors to have the same size in the mapped dimension": (
            "dp_mapped_sizes"
        ),
        "mat1 and mat2 shapes cannot be multiplied": "shard_x_shape",
        "to match target batch_size": "shard_y",
    },
    "round_ste": {
        "Legacy autograd function": "ste_apply",
        "Can't call numpy\\(\\) on Tensor that requires grad": "ste_numpy",
    },
}
TORCH = lab_framework(HINTS, explainer({}, HINTS))
FRAMEWORKS = {
    exercise: replace(TORCH, explain=explainer(messages, HINTS))
    for exercise, messages in EXPLAIN.items()
}


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


def _parameters(model: Any) -> list[np.ndarray]:
    """What an optimizer over ``model.parameters()`` trains, as numpy."""
    return [p.detach().numpy() for p in model.parameters()]


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
        logits = model(x)
        if variant == "nll_on_logits":
            loss = F.nll_loss(logits, y)
        elif variant == "double_softmax":
            loss = F.cross_entropy(logits.softmax(-1), y)
        else:
            loss = F.cross_entropy(logits, y, reduction=reduction)
        loss.backward()
        if variant != "no_update":
            optimizer.step()
        if variant == "loss_after_update":
            loss = F.cross_entropy(model(x), y)
        losses.append(float(loss.detach()))
    return np.asarray(losses), _apply(model, lab04._probe())


def _loss_problem(loss: Any) -> str:
    """ "loss_detach" for a loss still attached to its graph, else ""."""
    return (
        "loss_detach" if isinstance(loss, torch.Tensor) and loss.requires_grad else ""
    )


def check_shard_batch(shard_batch: Callable) -> None:
    """``shard_batch(x, world_size)`` -> ``(world_size, B / world_size, D)``, contiguous."""
    with checking(
        "shard_batch",
        FRAMEWORKS["shard_batch"],
        passed="contiguous shards of the batch axis",
    ) as c:
        rng = np.random.default_rng(43)
        for batch, world in ((16, 4), (24, 8)):
            x = rng.normal(size=(batch, 8)).astype(np.float32)
            given = torch.from_numpy(x.copy())
            out = c.call(shard_batch, given, world)
            lab04.inputs_kept(c, [given], [x])
            if isinstance(out, tuple | list):
                raise c.fail(
                    f"expected {TORCH.array_type}, got a {type(out).__name__}",
                    "stack the shards into one tensor: torch.stack(x.chunk(world_size))",
                )
            arr = c.array(out)
            expected = x.reshape(world, batch // world, 8)
            shape_keys = {
                (world, batch, 8 // world): "wrong_axis",
                (world, 8, batch // world): "keep_rows",
                (world, batch * 8 // world): "keep_rows",
                (world, batch // world - 1, 8): "slice_end",
                (batch // world, 8): "one_shard",
            }
            key = shape_keys.get(arr.shape, "shard_shape")
            c.shape(arr, expected.shape, c.hint(key))
            c.expect(
                arr.dtype == np.float32,
                f"the result has dtype {arr.dtype}, expected float32",
                c.hint("dtype"),
            )
            interleaved = x.reshape(batch // world, world, 8).transpose(1, 0, 2)
            c.close(
                arr,
                expected,
                what="the sharded batch",
                mistakes=[(c.hint("interleaved"), interleaved)],
            )


def _ste_gradient(
    c: Checker, round_ste: Callable, x: np.ndarray, g: np.ndarray
) -> np.ndarray:
    """The gradient of ``sum(g * round_ste(x))`` with respect to ``x``, by ``backward``."""
    xt = torch.from_numpy(x.copy()).requires_grad_()
    out = c.call(round_ste, xt)
    c.array(out)
    if not out.requires_grad or out.grad_fn is None:  # detached, or a new leaf
        raise c.fail(
            "the result is not connected to x: it has no grad_fn",
            c.hint("ste_no_graph"),
        )
    c.call(out.backward, torch.from_numpy(g))
    return np.zeros_like(x) if xt.grad is None else xt.grad.numpy()


def _ste_zero_gradient(round_ste: Callable, x: np.ndarray) -> str:
    """The hint for a zero gradient: a subtraction and no custom backward (``x + round(x) -
    x``, or ``round(x).detach()`` alone) has "ste_no_detach", anything else
    "ste_plain_round"."""
    seen, stack = (
        set(),
        [round_ste(torch.from_numpy(x.copy()).requires_grad_()).grad_fn],
    )
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack += [parent for parent, _ in node.next_functions]
    if any(
        isinstance(node, torch.autograd.function.BackwardCFunction) for node in seen
    ):
        return "ste_plain_round"
    names = {type(node).__name__ for node in seen}
    if "SubBackward0" in names:
        return "ste_no_detach"
    return "ste_plain_round"


check_round_ste = partial(
    ste.check_round_ste,
    fw=FRAMEWORKS["round_ste"],
    gradient=_ste_gradient,
    zero_gradient=_ste_zero_gradient,
)
check_per_example_grad_norms = partial(
    lab04.check_per_example_grad_norms, fw=FRAMEWORKS["per_example_grad_norms"]
)
check_build_mlp = partial(
    lab04.check_build_mlp,
    fw=FRAMEWORKS["build_mlp"],
    build=_mlp,
    apply=_apply,
    module_type="an nn.Module",
    parameters=_parameters,
)
check_train_step = partial(
    lab04.check_train_step,
    fw=FRAMEWORKS["train_step"],
    setup=_setup,
    train=_train,
    apply=_apply,
    variants=(
        "no_update",
        "loss_after_update",
        "sum_loss",
        "zero_grad",
        "nll_on_logits",
        "double_softmax",
    ),
    loss_problem=_loss_problem,
)
check_data_parallel_grads = partial(
    lab04.check_data_parallel_grads, fw=FRAMEWORKS["data_parallel_grads"]
)
