"""Lab 1 self-checks for PyTorch notebooks: ``H.lab01.check_preprocess(preprocess)`` etc.

The checks themselves live in :mod:`helpers.labs.lab01.checks`, shared with JAX;
this module says how to hand them tensors and how to run a reference PyTorch training step.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from helpers.labs.lab01 import checks as lab01
from helpers.torch.models import MLP

__all__ = [
    "check_accuracy",
    "check_central_difference",
    "check_mse_grad",
    "check_preprocess",
    "check_train_step",
]


def _to_numpy(value: object) -> np.ndarray:
    if not isinstance(value, torch.Tensor):
        raise TypeError(type(value).__name__)
    return value.detach().cpu().numpy()


TORCH = lab01.Framework("a torch.Tensor", torch.from_numpy, _to_numpy)


class _TorchTrainStep:
    """A tiny classification problem and a reference SGD step (``lab01.TrainStepHarness``)."""

    def setup(self) -> tuple[MLP, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(16, 6, generator=g)
        y = torch.randint(0, 3, (16,), generator=g)
        with torch.random.fork_rng():  # leave the student's global RNG state alone
            torch.manual_seed(0)  # the same initial weights on every call
            model = MLP(6, (8,), 3)
        return model, torch.optim.SGD(model.parameters(), lr=0.5), x, y

    def reference_step(self, model, optimizer, x, y) -> float:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    def parameters(self, model) -> np.ndarray:
        return (
            torch.cat([p.detach().flatten() for p in model.parameters()]).numpy().copy()
        )


# The checks, bound to this framework. Call them with the student's function.
check_preprocess = partial(lab01.check_preprocess, fw=TORCH)
check_accuracy = partial(lab01.check_accuracy, fw=TORCH)
check_central_difference = partial(lab01.check_central_difference, fw=TORCH)
check_mse_grad = partial(lab01.check_mse_grad, fw=TORCH)
check_train_step = partial(lab01.check_train_step, harness=_TorchTrainStep())
