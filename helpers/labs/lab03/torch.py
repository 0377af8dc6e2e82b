"""Lab 3 self-checks for PyTorch notebooks: ``H.lab03.check_train_step(train_step)`` etc.

The checks are :mod:`helpers.labs.lab03.checks`, shared with JAX; this module builds their
PyTorch half (:class:`~helpers.labs.lab03.checks.Ops`): the transforms, a small model with
plain SGD whose right and wrong training steps are run here, an evaluation model with
Dropout and BatchNorm whose forward hook records ``model.training`` and
``torch.is_grad_enabled()``, and batches as tensors; and, per check, the PyTorch errors
that mean one mistake in that exercise (``EXPLAIN``). For exercise 4
(:mod:`helpers.labs.lab03.early_stopping`) a Linear and a BatchNorm1d whose parameters and
buffers are set in place with ``copy_``, as an optimizer does. For exercise 5
(:mod:`helpers.labs.lab03.accumulation`) an MLP whose forward passes and backward hook
record the rows they saw, and an SGD optimizer whose step pre-hook counts its steps.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers.labs.kit import Hints, explainer
from helpers.labs.lab03 import accumulation, early_stopping, stopping_hints
from helpers.labs.lab03 import checks as lab03
from helpers.torch.labkit import lab_framework

__all__ = [
    "check_dataset",
    "check_early_stopping",
    "check_evaluate_accuracy",
    "check_train_step",
    "check_train_step_accumulated",
]

HINTS = Hints(
    lab03.HINTS,
    early_stopping.HINTS,
    stopping_hints.TORCH_HINTS,
    accumulation.HINTS,
    {
        "grad_accumulated": "the gradients of earlier steps were added to this one: call "
        "optimizer.zero_grad() before loss.backward() in every step (.grad accumulates)",
        "eval_missing": "call model.eval() before evaluating: in training mode dropout "
        "drops units at random and batch-norm normalises with the batch's own statistics",
        "no_grad_missing": "evaluate under torch.no_grad() (or torch.inference_mode()): "
        "without it autograd records a graph for every batch, which costs memory and time",
        "loss_detach": "return loss.detach(): the same 0-d tensor without the graph of this "
        "step, which would otherwise stay in memory as long as the loss is kept",
        "accum_last_only": "only the last micro-batch's gradient reached the update: call "
        "optimizer.zero_grad() once, before the loop, not inside it (.grad adds up each "
        "backward, which is what accumulation needs)",
        "accum_step_each": "call optimizer.step() once, after the loop over micro-batches: "
        "a step per micro-batch makes several small updates, not the whole batch's one",
        "accum_no_step": "call optimizer.step() once, after the backward passes of all the "
        "micro-batches, to apply the summed .grad: the optimizer you were given, not a new "
        "one nor a hand-written update",
        "accum_zero_update": "the gradients optimizer.step() applied were zero: call "
        "optimizer.zero_grad() before the loop and optimizer.step() after it, with no "
        "zero_grad() between the last backward and the step",
        "accum_step_first": "optimizer.step() ran before the backward passes, on the old "
        "gradients the model came with: zero_grad() first, then the backward of every "
        "micro-batch, then one step()",
        "accum_no_graph": "the loss has no graph to differentiate: compute the micro-batch's "
        "loss outside torch.no_grad(), call backward() on it, and detach only the copy you "
        "add to the returned total",
        "accum_no_zero_grad": "the model came with old gradients in .grad, and they were "
        "added to this batch's: call optimizer.zero_grad() once, before the first backward",
        "accum_loss_number": "keep the total loss a 0-d tensor: add loss.detach() * "
        "len(xb) / len(x), not loss.item() (a Python float)",
        "accum_loss_graph": "add loss.detach() * weight to the total: a total of attached "
        "losses keeps every micro-batch's graph in memory, which accumulation exists to avoid",
        "accum_one_backward": "call backward() on each micro-batch's weighted loss inside "
        "the loop: one backward on the sum of all the losses keeps every micro-batch's "
        "graph (its activations) in memory until the end, which accumulation exists to "
        "avoid",
        "accum_loss_dtype": "start the total as torch.zeros(()) (float32) or from the first "
        "loss, not a float64 tensor",
    },
)

# The lab's Framework; each check gets a copy that also explains its own exercise's errors.
TORCH = lab_framework(HINTS, explainer({}, HINTS))

# PyTorch errors that mean one mistake in one exercise only, so each check explains its own.
EXPLAIN = {
    "DigitDataset": {
        "'NoneType' object cannot be interpreted as an integer": "dataset_len"
    },
    "train_step": {},
    "train_step_accumulated": {
        "does not require grad and does not have a grad_fn": "accum_no_graph"
    },
    # argmax over the batch's axis, or logits compared with labels: tensors (C,)/(B, C) vs (B,)
    "evaluate_accuracy": {"must match the size of tensor": "argmax_axis"},
    # strict load_state_dict of a snapshot of the parameters alone
    "EarlyStopping": {
        r"Missing key\(s\) in state_dict": "es_buffers_lost",
        stopping_hints.SIGNATURE: "es_signature",
    },
}
FRAMEWORKS = {
    exercise: replace(TORCH, explain=explainer(messages, HINTS))
    for exercise, messages in EXPLAIN.items()
}


def _transforms():
    def scaled(image: np.ndarray) -> torch.Tensor:  # uint8 (28, 28) -> float32 [0, 1]
        return torch.from_numpy(image).float() / 255

    def centred(image: np.ndarray) -> torch.Tensor:  # -> (1, 28, 28) in [-1, 1]
        return (torch.from_numpy(image).float() / 127.5 - 1).unsqueeze(0)

    return scaled, centred


def _make_model() -> tuple[nn.Module, torch.optim.Optimizer]:
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def _prepare(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))


def _params(model: nn.Module) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in model.parameters()]


def _steps(batches, *, zero_grad: bool = True, step: bool = True):
    model, optimizer = _make_model()
    losses = []
    for x, y in batches:
        if zero_grad:
            optimizer.zero_grad()
        loss = F.cross_entropy(model(*_prepare(x, y)[:1]), _prepare(x, y)[1])
        loss.backward()
        if step:
            optimizer.step()
        losses.append(loss.item())
    return losses, _params(model)


class _Probe(nn.Module):
    """(B, 12) -> (B, 10): Linear, BatchNorm with set running statistics, Dropout(0.5)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(100 + seed)
        self.linear = nn.Linear(12, 10)
        self.norm = nn.BatchNorm1d(10)
        self.drop = nn.Dropout(0.5)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(10, 12, generator=gen))
            self.linear.bias.copy_(torch.randn(10, generator=gen))
            self.norm.running_mean.copy_(torch.randn(10, generator=gen))
            self.norm.running_var.copy_(torch.rand(10, generator=gen) + 0.5)
        self.modes: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append((self.training, torch.is_grad_enabled()))
        return self.drop(self.norm(self.linear(x)))


def _probe_logits(seed: int, x: np.ndarray) -> np.ndarray:
    probe = _Probe(seed).eval()
    with torch.no_grad():
        return probe(torch.from_numpy(x)).numpy()


def _batches(x: np.ndarray, y: np.ndarray, sizes: Sequence[int]):
    """A DataLoader when the sizes are one batch size and a smaller last batch, else a list.

    A real DataLoader lets the common ``len(loader.dataset)`` work, as it does in the chapter.
    """
    if all(s == sizes[0] for s in sizes[:-1]) and sizes[-1] <= sizes[0]:
        data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)))
        return DataLoader(data, batch_size=sizes[0], shuffle=False)
    edges = np.cumsum([0, *sizes])
    return [
        (torch.from_numpy(x[a:b]), torch.from_numpy(y[a:b].astype(np.int64)))
        for a, b in itertools.pairwise(edges)
    ]


OPS = lab03.Ops(
    transforms=_transforms(),
    make_model=_make_model,
    prepare=_prepare,
    reference_steps={
        "": _steps,
        "grad_accumulated": partial(_steps, zero_grad=False),
        "no_update": partial(_steps, step=False),
    },
    params=_params,
    make_probe=lambda seed: _Probe(seed).train(),
    probe_logits=_probe_logits,
    probe_modes=lambda model: list(model.modes),
    batches=_batches,
    loss_problem=lambda loss: (
        "loss_detach" if isinstance(loss, torch.Tensor) and loss.requires_grad else ""
    ),
)


class _Recorded(nn.Module):
    """The accumulation check's MLP, (B, D) -> (B, C), recording the rows of each input."""

    def __init__(self, params: list[np.ndarray], stale: list[np.ndarray]) -> None:
        super().__init__()
        (d, h), c = params[0].shape, len(params[3])
        self.fc1, self.fc2 = nn.Linear(d, h), nn.Linear(h, c)
        ours = [self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias]
        with torch.no_grad():
            for p, value, old in zip(ours, params, stale, strict=True):
                p.copy_(torch.from_numpy(value.T.copy()))  # (D, H) -> weight (H, D)
                p.grad = torch.from_numpy(old.T.copy())  # stale, as after a backward
        self.rows: list[int] = []
        self.pending, self.joint = (
            0,
            0,
        )  # rows since the last backward; the most at once
        self.fc1.weight.register_hook(self._backward)

    def _backward(self, grad: torch.Tensor) -> None:
        self.joint, self.pending = max(self.joint, self.pending), 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows.append(x.shape[0] if x.ndim > 1 else 1)
        if torch.is_grad_enabled():
            self.pending += self.rows[-1]
        return self.fc2(torch.tanh(self.fc1(x)))


def _accum_make(params, stale):
    model = _Recorded(params, stale)
    optimizer = torch.optim.SGD(model.parameters(), lr=accumulation.LR)
    optimizer.steps_made = 0

    def count(opt, args, kwargs) -> None:
        opt.steps_made += 1

    optimizer.register_step_pre_hook(count)
    return model, optimizer


ACCUM_OPS = accumulation.AccumOps(
    make=_accum_make,
    prepare=_prepare,
    params=lambda model: [
        p.detach().numpy().T.copy()
        for p in (model.fc1.weight, model.fc1.bias, model.fc2.weight, model.fc2.bias)
    ],
    rows=lambda model: list(model.rows),
    updates=lambda optimizer: optimizer.steps_made,
    joint_rows=lambda model: model.joint,
    covered=lambda model: sum(model.rows),
    loss_problem=lambda loss: (
        "accum_loss_graph"
        if isinstance(loss, torch.Tensor) and loss.requires_grad
        else ""
    ),
    stale_grads=True,
)


def _stop_set(model: nn.Module, state: dict[str, np.ndarray]) -> None:
    with torch.no_grad():  # in place, as optimizer.step() and batch-norm's updates are
        for name, t in itertools.chain(model.named_parameters(), model.named_buffers()):
            t.copy_(torch.from_numpy(state[name]))


def _stop_values(obj) -> dict[str, np.ndarray] | None:
    """The tensors of a module or a (state) dict, as numpy, by name; else None."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        return None
    out = {
        str(k): v.detach().cpu().numpy().copy() if isinstance(v, torch.Tensor) else v
        for k, v in obj.items()
        if isinstance(v, (torch.Tensor, np.ndarray))
    }
    return out or None


def _stop_shares(obj, own: set[int]) -> bool:
    """Whether obj (a tensor, or a list or dict of them) holds storage in ``own`` (the model's
    tensors' ``data_ptr``s)."""
    if isinstance(obj, Mapping):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_stop_shares(item, own) for item in obj)
    return isinstance(obj, torch.Tensor) and obj.data_ptr() in own


STOP_OPS = early_stopping.StopOps(
    make=lambda: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)),  # (B, 3) -> (B, 4)
    set_state=_stop_set,
    read=lambda model: _stop_values(model) or {},
    buffers=frozenset({"1.running_mean", "1.running_var", "1.num_batches_tracked"}),
    values=_stop_values,
    shares=lambda obj, model: _stop_shares(
        obj, {t.data_ptr() for t in model.state_dict().values()}
    ),
)

# The checks, bound to this framework. Call them with the student's function or class.
check_dataset = partial(lab03.check_dataset, fw=FRAMEWORKS["DigitDataset"], ops=OPS)
check_train_step = partial(lab03.check_train_step, fw=FRAMEWORKS["train_step"], ops=OPS)
check_evaluate_accuracy = partial(
    lab03.check_evaluate_accuracy, fw=FRAMEWORKS["evaluate_accuracy"], ops=OPS
)
check_early_stopping = partial(
    early_stopping.check_early_stopping, fw=FRAMEWORKS["EarlyStopping"], ops=STOP_OPS
)
check_train_step_accumulated = partial(
    accumulation.check_accumulation,
    fw=FRAMEWORKS["train_step_accumulated"],
    ops=ACCUM_OPS,
)
