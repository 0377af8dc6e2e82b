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
from helpers.labs.lab04 import ste
from helpers.torch.labkit import lab_framework

__all__ = [
    "check_build_mlp",
    "check_data_parallel_grads",
    "check_per_example_grad_norms",
    "check_round_ste",
    "check_shard_batch",
    "check_train_step",
]

# Known mistakes that only PyTorch allows, and PyTorch's wording of framework-dependent ones.
HINTS = Hints(
    lab04.HINTS,
    ste.HINTS,
    {
        "key_reused": "the generator was reseeded between layers: call torch.manual_seed(seed) "
        "once, before the first layer; reseeding before each layer gives layers of the same "
        "shape the same weights",
        "no_update": "the weights did not change: call, in this order, "
        "optimizer.zero_grad(), loss.backward(), optimizer.step() (zero_grad() between "
        "backward() and step() erases the gradients; step() before backward() has none)",
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
        "keep_rows": "each shard holds whole rows of x, D features each: "
        "x.reshape(world_size, -1, *x.shape[1:]) gives (world_size, B / world_size, D)",
        "slice_end": "x[a:b] stops before row b: shard r is x[r * k:(r + 1) * k] with "
        "k = B // world_size (no - 1)",
        "one_shard": "return every shard, stacked: (world_size, B / world_size, D); process "
        "r takes result[r], but the function returns them all",
        "dtype": "keep float32, the dtype of the inputs: no .double() or torch.float64 (nor "
        "half precision) on the way",
        "wrt_x": "differentiate with respect to the parameters: torch.func.grad(loss_fn) "
        "differentiates its first argument, params (argnums=0), not x",
        "map_labels": "map y along with x: in_dims=(None, 0, 0) gives each example its own "
        "label (with in_dims=(None, 0, None) every example gets the whole y)",
        "flatten_leaves": "W's and b's gradients have different shapes, (B, D, C) and "
        "(B, C): flatten each per example, g.reshape(B, -1), and sum its squares over dim 1",
        "not_seeded": "seed the generator with torch.manual_seed(seed) before creating the "
        "layers (at the start of build_mlp): two calls with the same seed must give the "
        "same weights",
        "class_not_instance": "return a network, an instance: MLP(), not the class MLP",
        "state_not_module": "return the nn.Module itself, not its state_dict()",
        "model_dtype": "keep the layers' default float32 parameters: no .double() or "
        "dtype=torch.float64 (the inputs are float32)",
        "nll_on_logits": "F.nll_loss expects log-probabilities: use "
        "F.cross_entropy(model(x), y) on the logits (or nll_loss on log_softmax(logits))",
        "double_softmax": "F.cross_entropy applies the log-softmax itself: give it the "
        "logits, model(x), not softmax(model(x))",
        "no_grad_loss": "compute the loss with gradients on, not under torch.no_grad() nor "
        "from detached outputs: loss.backward() needs the graph from the weights to the loss",
        "integer_targets": "F.cross_entropy takes the integer labels y (B,) as they are: "
        "no one-hot encoding",
        "loss_detach": "return loss.detach(): the same 0-d tensor without the graph of this "
        "step, which would otherwise stay in memory as long as the loss is kept",
        "shard_x_shape": "cut x into (n_shards, B / n_shards, D): "
        "x.reshape(n_shards, -1, *x.shape[1:]) keeps each example's D features together",
        "shard_y": "shard y like x, y.reshape(n_shards, -1), and map over both: "
        "in_dims=(None, 0, 0)",
        "ste_numpy": "compute with torch: torch.round(x) or x.round(), not np.round or "
        ".numpy(), which leave autograd (no gradient could reach x)",
        "ste_plain_round": "round's derivative is 0 almost everywhere, so torch.round "
        "passes no gradient back; the STE replaces it by 1: a torch.autograd.Function "
        "whose backward returns grad_output unchanged (or x + (torch.round(x) - x).detach())",
        "ste_no_detach": "x + torch.round(x) - x has round's gradient, 0: the two x terms "
        "cancel in the backward pass too. Detach the correction, "
        "x + (torch.round(x) - x).detach(), so that only the first x's gradient, 1, remains",
        "ste_no_graph": "the result is cut off from x, so no gradient reaches x: detach only "
        "the correction, x + (torch.round(x) - x).detach(), not the whole result (and do "
        "not compute it under torch.no_grad())",
        "ste_detached_x": "detach the correction, not x: x + (torch.round(x) - x).detach(); "
        "x.detach() + (torch.round(x) - x) has the gradient 0 - 1 = -1",
        "ste_ties": "round ties to the even integer, as torch.round does (2.5 -> 2, "
        "-0.5 -> -0, 1.5 -> 2): torch.floor(x + 0.5) rounds every tie up, and rounding half "
        "away from zero rounds -2.5 to -3",
        "ste_ones": "pass the incoming gradient through as it is: backward returns "
        "grad_output, not torch.ones_like(grad_output), which is right only when the "
        "incoming gradient is all ones",
        "ste_apply": "call a torch.autograd.Function through apply, RoundSTE.apply(x), with "
        "forward(ctx, x) and backward(ctx, grad_output) as @staticmethods (RoundSTE()(x) "
        "is the removed legacy API)",
        "ste_in_place": "leave x as it is and return a new tensor: x.data = torch.round(x), "
        "x.round_() or an in-place forward rounds the caller's tensor (a weight would lose "
        "its unrounded value); x + (torch.round(x) - x).detach() creates a new one",
    },
)

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
        **_MAP_PARAMS,
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
            out = c.call(shard_batch, torch.from_numpy(x.copy()), world)
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
    if not out.requires_grad:
        raise c.fail(
            "the result is not connected to x: it has no grad_fn",
            c.hint("ste_no_graph"),
        )
    c.call(out.backward, torch.from_numpy(g))
    return np.zeros_like(x) if xt.grad is None else xt.grad.numpy()


def _ste_zero_gradient(round_ste: Callable, x: np.ndarray) -> str:
    """The hint for a zero gradient: ``x + round(x) - x`` (a subtraction, no custom
    backward) has "ste_no_detach", anything else "ste_plain_round"."""
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
    if "RoundBackward0" in names and "SubBackward0" in names:
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
