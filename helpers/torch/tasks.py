"""Whole training runs behind ``python -m helpers.bench``, sized by :mod:`helpers.scale`."""

from __future__ import annotations

import numpy as np
import torch

from helpers.data import images_to_vectors, load_mnist
from helpers.data.text import imdb_setup, imdb_summary
from helpers.metrics import run_summary
from helpers.scale import Cifar10Sizes, CnnSizes, ImdbSizes, MnistSizes
from helpers.torch.models import CNN, MLP, OutlineCNN, count_params
from helpers.torch.runtime import default_device, seed_everything
from helpers.torch.train import ArrayLoader, evaluate, fit
from helpers.vision import outline_data

__all__ = ["run_cifar10_outline", "run_imdb", "run_mnist", "run_mnist_cnn"]


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


def run_cifar10_outline(
    sizes: Cifar10Sizes, *, seed: int = 0, progress: bool = True
) -> dict:
    """Train chapter 5's ``OutlineCNN`` (the outline's CNN, flatten fixed) as the outline does.

    Adam at ``sizes.outline_learning_rate``, batches of ``sizes.outline_batch_size``, for
    ``sizes.outline_epochs`` epochs on the first ``sizes.outline_train_examples`` images of the
    training split (all, for None; the validation images left out, as on the page), no
    augmentation; inputs normalised by the training split's channel statistics. Returns the
    test accuracy and timings of ``helpers.metrics.run_summary`` and the data copy used.
    """
    device = default_device()
    data = outline_data(sizes)
    # float32 (N, 32, 32, 3) -> (N, 3, 32, 32): channels first, as nn.Conv2d takes
    (x, y), (x_test, y_test) = (
        (np.ascontiguousarray(images.transpose(0, 3, 1, 2)), labels)
        for images, labels in (data["train"], data["test"])
    )
    seed_everything(seed)
    batch = sizes.outline_batch_size
    train = ArrayLoader(
        x, y, batch, shuffle=True, seed=seed, drop_last=True, device=device
    )
    test = ArrayLoader(x_test, y_test, 1000, device=device)
    model = OutlineCNN().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=sizes.outline_learning_rate)
    history = fit(
        model, optimizer, train, epochs=sizes.outline_epochs, progress=progress
    )
    return {
        "model": "the outline's CNN, flatten fixed, Adam, no augmentation",
        "data": data["data"],
        **run_summary(
            history,
            evaluate(model, test),
            batch_size=batch,
            parameters=count_params(model),
            train_examples=len(y),
            test_examples=len(y_test),
        ),
    }


def run_imdb(
    sizes: ImdbSizes, *, seed: int = 0, progress: bool = True, model: str = "bow"
) -> dict:
    """Train one chapter-6 classifier (``bow``, ``cnn-lstm``, ``transformer``) on IMDB."""
    from helpers.torch import text

    m, data = imdb_setup(sizes, model)
    device = default_device()
    seed_everything(seed)
    net = {
        "bow": lambda: text.BagOfNgrams(data.table_size, m.dim),
        "cnn-lstm": lambda: text.CnnLstm(data.table_size, m.dim),
        "transformer": lambda: text.TransformerClassifier(
            data.table_size, m.dim, max_len=m.max_len, dropout=m.dropout
        ),
    }[model]().to(device)
    # At most sizes.batch_widths batch widths (width, width / 2, ...), as in the notebooks:
    # each width is one more compilation in JAX.
    multiple = max(32, data.train[0].shape[1] >> (sizes.batch_widths - 1))
    train = text.TextLoader(
        *data.train,
        m.batch_size,
        shuffle=True,
        seed=seed,
        multiple=multiple,
        drop_last=True,
        device=device,
    )
    test = text.TextLoader(*data.test, 250, multiple=multiple, device=device)
    optimizer = torch.optim.Adam(net.parameters(), lr=m.learning_rate)
    history = fit(net, optimizer, train, epochs=m.epochs, progress=progress)
    return imdb_summary(model, m, data, history, evaluate(net, test), count_params(net))
