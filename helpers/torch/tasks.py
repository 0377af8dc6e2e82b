"""Whole training runs behind ``python -m helpers.bench``, sized by :mod:`helpers.scale`."""

from __future__ import annotations

import numpy as np
import torch

from helpers.data import images_to_vectors, load_mnist
from helpers.metrics import run_summary
from helpers.scale import CnnSizes, MnistSizes
from helpers.torch.models import CNN, MLP, count_params
from helpers.torch.runtime import default_device, seed_everything
from helpers.torch.train import ArrayLoader, evaluate, fit

__all__ = ["run_mnist", "run_mnist_cnn"]


def run_mnist(sizes: MnistSizes, *, seed: int = 0, progress: bool = True) -> dict:
    """Train the chapter-1 MLP on MNIST with Adam; return test accuracy and timings."""
    device = default_device()
    x_train, y_train = load_mnist("train", limit=sizes.train_examples)
    x_test, y_test = load_mnist("test", limit=sizes.test_examples)
    seed_everything(seed)
    train = ArrayLoader(
        images_to_vectors(x_train),
        y_train,
        sizes.batch_size,
        shuffle=True,
        seed=seed,
        drop_last=True,
        device=device,
    )
    test = ArrayLoader(images_to_vectors(x_test), y_test, 1024, device=device)
    model = MLP(784, sizes.hidden, 10).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=sizes.learning_rate)
    history = fit(model, optimizer, train, epochs=sizes.epochs, progress=progress)
    widths = "-".join(str(w) for w in (784, *sizes.hidden, 10))
    return {
        "model": f"MLP {widths}, Adam",
        **run_summary(
            history,
            evaluate(model, test),
            batch_size=sizes.batch_size,
            parameters=count_params(model),
            train_examples=len(y_train),
            test_examples=len(y_test),
        ),
    }


def run_mnist_cnn(sizes: CnnSizes, *, seed: int = 0, progress: bool = True) -> dict:
    """Train the shared ``CNN`` on MNIST (Adam, cosine decay); return accuracy and timings."""
    device = default_device()
    x_train, y_train = load_mnist("train", limit=sizes.train_examples)
    x_test, y_test = load_mnist("test", limit=sizes.test_examples)
    # uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1]: channels first.
    x_train_f, x_test_f = (
        x.astype(np.float32)[:, None] / 255 for x in (x_train, x_test)
    )
    seed_everything(seed)
    train = ArrayLoader(
        x_train_f,
        y_train,
        sizes.batch_size,
        shuffle=True,
        seed=seed,
        drop_last=True,
        device=device,
    )
    test = ArrayLoader(x_test_f, y_test, 1024, device=device)
    model = CNN(1, sizes.channels, sizes.hidden, 10, dropout=sizes.dropout).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=sizes.learning_rate)
    steps = sizes.epochs * len(train)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    # fit calls optimizer.step() only: the hook advances the schedule after every step.
    optimizer.register_step_post_hook(lambda *_: schedule.step())
    history = fit(model, optimizer, train, epochs=sizes.epochs, progress=progress)
    return {
        "model": sizes.description,
        **run_summary(
            history,
            evaluate(model, test),
            batch_size=sizes.batch_size,
            parameters=count_params(model),
            train_examples=len(y_train),
            test_examples=len(y_test),
        ),
    }
