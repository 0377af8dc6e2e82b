"""A small, explicit PyTorch training loop for classifiers: batches, ``fit``, ``evaluate``.

The data set lives on the device as tensors and batches are gathered there, so nothing is
copied per step (for MNIST-sized data this beats a DataLoader by a wide margin on a GPU).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm  # text bar: same in Jupyter, Colab, terminals, the book

from helpers.data import BatchSampler
from helpers.metrics import History
from helpers.torch.runtime import default_device, to_device

__all__ = ["ArrayLoader", "cross_entropy", "evaluate", "fit", "predict"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy of logits ``(B, C)`` against integer labels ``(B,)``."""
    return F.cross_entropy(logits, labels)


class ArrayLoader(BatchSampler):
    """Mini-batches ``(x, y)`` of in-memory arrays, held on ``device`` as tensors.

    Integer labels become int64, the dtype PyTorch's losses expect. With ``shuffle=True`` the
    order changes every epoch, drawn from a numpy generator seeded with ``seed``.
    """

    def __init__(
        self,
        x: np.ndarray | torch.Tensor,
        y: np.ndarray | torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
        super().__init__(
            len(x), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        self.device = default_device() if device is None else torch.device(device)
        self.x = to_device(x, self.device)
        self.y = to_device(y, self.device)
        if not torch.is_floating_point(self.y):
            self.y = self.y.long()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in self.indices():
            i = torch.from_numpy(idx).to(self.device, non_blocking=True)
            yield self.x[i], self.y[i]


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _seconds_since(start: float, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(
            device
        )  # GPU work is asynchronous: wait before reading the clock
    return time.perf_counter() - start


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: ArrayLoader,
    *,
    epochs: int,
    loss_fn: LossFn = cross_entropy,
    eval_loader: ArrayLoader | None = None,
    eval_name: str = "test",
    progress: bool = True,
) -> History:
    """Train ``model`` for ``epochs`` passes over ``train_loader``; return the History.

    Per epoch it logs ``train_loss`` and ``train_accuracy`` (running averages over the epoch),
    ``seconds`` and ``examples_per_second``, and, with ``eval_loader``, ``<eval_name>_loss``
    and ``<eval_name>_accuracy``. Losses stay on the device until the epoch ends: a ``.item()``
    per step would make the GPU wait for Python every step.
    """
    history = History()
    device = _device_of(model)
    bar = tqdm(
        total=epochs * len(train_loader),
        desc="train",
        unit="step",
        disable=not progress,
    )
    for epoch in range(1, epochs + 1):
        model.train()
        start = time.perf_counter()
        losses: list[torch.Tensor] = []
        correct = torch.zeros((), dtype=torch.long, device=device)
        seen = 0
        for x, y in train_loader:
            logits = model(x)  # (B, C)
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if history.first_step_seconds is None:
                history.first_step_seconds = _seconds_since(start, device)
            losses.append(loss.detach())
            correct += (logits.detach().argmax(-1) == y).sum()
            seen += len(y)
            bar.update()
            if len(losses) % 50 == 1:
                bar.set_postfix(epoch=epoch, loss=f"{loss.item():.4f}", refresh=False)
        step_losses = torch.stack(losses).tolist()  # one device->host copy per epoch
        seconds = time.perf_counter() - start
        # The epoch's mean loss: the bar's in-epoch loss is only every 50th step's.
        postfix = {"epoch": epoch, "loss": f"{sum(step_losses) / len(step_losses):.4f}"}
        scores = {}
        if eval_loader is not None:
            evaluated = evaluate(model, eval_loader, loss_fn=loss_fn)
            scores = {f"{eval_name}_{k}": v for k, v in evaluated.items()}
            postfix[f"{eval_name}_acc"] = f"{evaluated['accuracy']:.4f}"
        bar.set_postfix(postfix)
        history.end_epoch(
            epoch,
            step_losses,
            correct=correct.item(),
            seen=seen,
            seconds=seconds,
            **scores,
        )
    bar.refresh()  # the final state, also when the book build delays bars (helpers.book)
    bar.close()
    sys.stderr.flush()  # the bar before whatever the caller prints next
    return history


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: ArrayLoader, *, loss_fn: LossFn = cross_entropy
) -> dict:
    """Mean loss and accuracy of ``model`` over every example in ``loader``."""
    model.eval()
    device = _device_of(model)
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    n = 0
    for x, y in loader:
        logits = model(x)
        total_loss += loss_fn(logits, y) * len(y)  # mean over the batch -> sum
        correct += (logits.argmax(-1) == y).sum()
        n += len(y)
    return {"loss": total_loss.item() / n, "accuracy": correct.item() / n}


@torch.no_grad()
def predict(model: nn.Module, loader: ArrayLoader) -> np.ndarray:
    """Predicted class of every example in ``loader``, in order, as a numpy array."""
    if loader.shuffle:
        raise ValueError(
            "predict needs an unshuffled loader, or predictions lose their order"
        )
    model.eval()
    return torch.cat([model(x).argmax(-1) for x, _ in loader]).cpu().numpy()
