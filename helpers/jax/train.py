"""A small, explicit JAX training loop for classifiers (Flax NNX + Optax): batches, fit, evaluate.

The data set lives on the device and batches are gathered there. The step functions are
compiled once per loss function with ``nnx.jit`` and reused by every ``fit`` call; a new batch
shape (a smaller last batch) compiles once more.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm  # text bar: same in Jupyter, Colab, terminals, the book

from helpers.data import BatchSampler
from helpers.jax.runtime import default_device, to_device
from helpers.metrics import History

__all__ = ["ArrayLoader", "cross_entropy", "evaluate", "fit", "predict"]

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of logits ``(B, C)`` against integer labels ``(B,)``."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


class ArrayLoader(BatchSampler):
    """Mini-batches ``(x, y)`` of in-memory arrays, held on ``device`` as JAX arrays.

    Integer labels become int32, JAX's default integer. With ``shuffle=True`` the order changes
    every epoch, drawn from a numpy generator seeded with ``seed``.
    """

    def __init__(
        self,
        x: np.ndarray | jax.Array,
        y: np.ndarray | jax.Array,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        device: jax.Device | None = None,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
        super().__init__(
            len(x), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        self.device = default_device() if device is None else device
        if np.issubdtype(np.asarray(y[:1]).dtype, np.integer):
            y = np.asarray(y).astype(np.int32)
        self.x, self.y = to_device((x, y), self.device)

    def __iter__(self) -> Iterator[tuple[jax.Array, jax.Array]]:
        for idx in self.indices():
            yield _take(self.x, self.y, jax.device_put(idx, self.device))


@jax.jit
def _take(x: jax.Array, y: jax.Array, idx: jax.Array) -> tuple[jax.Array, jax.Array]:
    # One compiled gather per batch: eager x[idx], y[idx] costs ~15x more in dispatch.
    return x[idx], y[idx]


def _seconds_since(start: float, result: jax.Array) -> float:
    jax.block_until_ready(result)
    return time.perf_counter() - start


@functools.cache
def step_functions(loss_fn: LossFn) -> tuple[Callable, Callable]:
    """Compiled train and eval steps for ``loss_fn`` (cached: compiled once per process)."""

    def loss_and_logits(model: nnx.Module, x: jax.Array, y: jax.Array):
        logits = model(x)  # (B, C)
        return loss_fn(logits, y), logits

    @nnx.jit
    def train_step(model, optimizer, x, y):
        grad_fn = nnx.value_and_grad(loss_and_logits, has_aux=True)
        (loss, logits), grads = grad_fn(model, x, y)
        optimizer.update(model, grads)  # in place: NNX objects carry their state
        return loss, (logits.argmax(-1) == y).sum()

    @nnx.jit
    def eval_step(model, x, y):
        loss, logits = loss_and_logits(model, x, y)
        return loss * len(y), (logits.argmax(-1) == y).sum()

    return train_step, eval_step


def fit(
    model: nnx.Module,
    optimizer: nnx.Optimizer,
    train_loader: ArrayLoader,
    *,
    epochs: int,
    loss_fn: LossFn = cross_entropy,
    eval_loader: ArrayLoader | None = None,
    eval_name: str = "test",
    progress: bool = True,
) -> History:
    """Train ``model`` for ``epochs`` passes over ``train_loader``; return the History.

    Logs the same metrics as the PyTorch ``fit``. JAX dispatches each step asynchronously, so
    the loop only waits for the device when it reads a value: every 50 steps for the progress
    bar and once per epoch for the history.
    """
    train_step, _ = step_functions(loss_fn)
    # cached_partial binds model and optimizer once, so each call skips NNX's graph traversal
    # (about 2 ms per step on a CPU, more than the MNIST step itself). It also freezes the
    # model's mode flags (Dropout's `deterministic`): set train mode before binding, since a
    # later model.train() or model.eval() (as evaluate does) no longer reaches the bound step.
    model.train()
    # Arrays made eagerly (a fresh model) are uncommitted, a step's outputs are committed to
    # their device, and jit compiles once for each: committing the state first saves the
    # second compilation (measured: two compiles of the same step without this).
    for obj in (model, optimizer):
        nnx.update(obj, jax.device_put(nnx.state(obj), train_loader.device))
    step = nnx.cached_partial(train_step, model, optimizer)
    history = History()
    bar = tqdm(
        total=epochs * len(train_loader),
        desc="train",
        unit="step",
        disable=not progress,
    )
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        losses, corrects, seen = [], [], 0
        for x, y in train_loader:
            loss, correct = step(x, y)
            if history.first_step_seconds is None:
                history.first_step_seconds = _seconds_since(start, loss)
            losses.append(loss)
            corrects.append(correct)
            seen += len(y)
            bar.update()
            if len(losses) % 50 == 1:
                bar.set_postfix(epoch=epoch, loss=f"{float(loss):.4f}", refresh=False)
        step_losses = np.asarray(jnp.stack(losses)).tolist()  # waits for the last step
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
            correct=int(jnp.stack(corrects).sum()),
            seen=seen,
            seconds=seconds,
            **scores,
        )
    bar.refresh()  # the final state, also when the book build delays bars (helpers.book)
    bar.close()
    sys.stderr.flush()  # the bar before whatever the caller prints next
    return history


def evaluate(
    model: nnx.Module, loader: ArrayLoader, *, loss_fn: LossFn = cross_entropy
) -> dict:
    """Mean loss and accuracy of ``model`` over every example in ``loader``."""
    _, eval_step = step_functions(loss_fn)
    model.eval()
    losses, corrects, n = [], [], 0
    for x, y in loader:
        loss, correct = eval_step(model, x, y)
        losses.append(loss)
        corrects.append(correct)
        n += len(y)
    return {
        "loss": float(jnp.stack(losses).sum()) / n,
        "accuracy": int(jnp.stack(corrects).sum()) / n,
    }


@nnx.jit
def _predict_batch(model: nnx.Module, x: jax.Array) -> jax.Array:
    return model(x).argmax(-1)


def predict(model: nnx.Module, loader: ArrayLoader) -> np.ndarray:
    """Predicted class of every example in ``loader``, in order, as a numpy array."""
    if loader.shuffle:
        raise ValueError(
            "predict needs an unshuffled loader, or predictions lose their order"
        )
    model.eval()
    return np.concatenate([np.asarray(_predict_batch(model, x)) for x, _ in loader])
