"""Fast image classification in PyTorch (chapter 5; reused by chapters 9 and 10): ``H.vision``.

The whole data set stays on the device as ``uint8 (N, H, W, C)``; each batch is cropped,
flipped and normalised there, in one call for the whole batch; the network runs in
``channels_last`` memory. The recipe (BatchNorm net, label smoothing, SGD with Nesterov
momentum, warmup then linear decay, flip test-time augmentation) follows the ideas of airbench
(Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU", arXiv 2404.00498) and of
Page's DAWNBench entries before it; the code is the course's own. ``helpers.jax.vision`` is
the same in JAX. The data pipelines live in ``helpers.torch.augment`` and the network in
``helpers.torch.models``; both are re-exported here, so ``H.vision`` holds the whole recipe.
"""

from __future__ import annotations

import contextlib
import itertools
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from helpers.metrics import History, step_timing
from helpers.scale import Cifar10Sizes
from helpers.torch.augment import (
    _check_nhwc,
    crop_flip,
    random_crop_flip,
    seed_style_loader,
    to_input,
)
from helpers.torch.models import AveragedModel, CifarNet, OutlineCNN, ema_model
from helpers.torch.runtime import default_device, seed_everything, synchronize
from helpers.vision import (
    bench_table,
    channel_stats,
    data_source,
    lr_multiplier,
    outline_table,
    recipe_data,
    schedule_knots,
    score_test_split,
)
from helpers.whitening import image_patches, patch_whitening, stem_filters

__all__ = [
    "CifarNet",
    "OutlineCNN",
    "autocast",
    "bench_table",
    "channel_stats",
    "crop_flip",
    "data_source",
    "ema_model",
    "fit_fast",
    "image_patches",
    "lr_multiplier",
    "make_optimizer",
    "outline_table",
    "patch_whitening",
    "predict_logits",
    "random_crop_flip",
    "run_cifar10",
    "seed_style_loader",
    "smoothed_cross_entropy",
    "stem_filters",
    "to_input",
]
__framework_only__ = ("autocast", "seed_style_loader")


def smoothed_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, smoothing: float
) -> torch.Tensor:
    """Mean cross-entropy against targets ``(1 - smoothing) * one_hot + smoothing / C``."""
    return F.cross_entropy(logits, labels, label_smoothing=smoothing)


def _dtype(sizes: Cifar10Sizes) -> torch.dtype | None:
    return (
        None
        if sizes.compute_dtype == "float32"
        else getattr(torch, sizes.compute_dtype)
    )


def autocast(
    sizes: Cifar10Sizes, device: torch.device
) -> contextlib.AbstractContextManager:
    """The mixed-precision context of the forward pass and loss: ``torch.autocast`` in
    ``sizes.compute_dtype`` on ``device``, or nothing for ``"float32"``.

    Autocast runs convolutions and matrix products in the low dtype and keeps BatchNorm's
    statistics, the softmax and the loss in float32; weights and gradients stay float32.
    """
    dtype = _dtype(sizes)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def make_optimizer(
    model: nn.Module, sizes: Cifar10Sizes, total_steps: int
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.LambdaLR]:
    """SGD with Nesterov momentum and L2 weight decay, and its warmup/linear-decay schedule.

    Call ``scheduler.step()`` after every ``optimizer.step()``.
    """
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=sizes.learning_rate,
        momentum=sizes.momentum,
        nesterov=True,
        weight_decay=sizes.weight_decay,
    )
    xs, ys = schedule_knots(total_steps, sizes.warmup)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: float(np.interp(step, xs, ys))
    )
    return optimizer, scheduler


def fit_fast(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    sizes: Cifar10Sizes,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    epochs: int | None = None,
    max_steps: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
    average: AveragedModel | None = None,
) -> History:
    """Train with the recipe on ``images`` ``uint8 (N, H, W, C)`` already on the device.

    Every epoch: a fresh permutation, then for each full batch a gather, crop + flip,
    normalise, forward, smoothed loss, backward, SGD step, and ``average.update_parameters``
    when a weight average (:func:`ema_model`) is given. ``max_steps`` stops early (for
    throughput measurements). Returns a :class:`~helpers.metrics.History` (seconds exclude
    nothing but evaluation; ``first_step_seconds`` is the first step's time).
    """
    _check_nhwc(images)
    epochs = sizes.epochs if epochs is None else epochs
    per_epoch = len(images) // sizes.batch_size
    total = (
        epochs * per_epoch if max_steps is None else min(max_steps, epochs * per_epoch)
    )
    optimizer, scheduler = make_optimizer(model, sizes, epochs * per_epoch)
    history, done = History(), 0
    model.train()
    bar = tqdm(total=total, desc="train", unit="step", disable=not progress)
    while done < total:
        start = time.perf_counter()
        order = torch.randperm(len(images), device=images.device, generator=generator)
        losses, correct, seen = [], torch.zeros((), device=images.device), 0
        for i in range(min(per_epoch, total - done)):
            idx = order[i * sizes.batch_size : (i + 1) * sizes.batch_size]
            x = random_crop_flip(images[idx], sizes.pad, generator=generator)
            y = labels[idx]
            with autocast(sizes, images.device):
                logits = model(to_input(x, mean, std))  # (B, 10)
                loss = smoothed_cross_entropy(logits, y, sizes.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if average is not None:
                average.update_parameters(model)
            losses.append(loss.detach())
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if history.first_step_seconds is None:
                # On a GPU the step only queued its kernels: wait for them to finish.
                synchronize(loss)
                history.first_step_seconds = time.perf_counter() - start
            bar.update()
        step_losses = torch.stack(synchronize(losses)).tolist()
        done += len(losses)
        history.end_epoch(
            len(history.epochs) + 1,
            step_losses,
            correct=int(correct),
            seen=seen,
            seconds=time.perf_counter() - start,
        )
    bar.close()
    return history


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    tta: bool = False,
    batch_size: int = 1000,
) -> np.ndarray:
    """Logits ``float32 (N, C)`` of ``uint8 (N, H, W, C)`` images, in evaluation mode.

    ``tta=True`` adds the logits of each image's mirror image (test-time flip augmentation).
    """
    _check_nhwc(images)
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = to_input(images[i : i + batch_size], mean, std)  # (b, C, H, W)
        logits = model(x)
        if tta:
            logits = logits + model(x.flip(3))
        out.append(logits.float().cpu().numpy())
    return np.concatenate(out)


def _baseline_rate(model, loader, sizes: Cifar10Sizes, device, steps: int) -> float:
    """Images per second of the seed-style loop: loader + the same training step."""
    optimizer, scheduler = make_optimizer(model, sizes, steps)
    model.train()
    # As many epochs of the loader as the steps need (gpu scale: 101 steps of 512 > 45,000).
    batches = (batch for _ in itertools.count() for batch in loader)
    start, done = None, 0
    for _ in range(steps + 1):
        x, y = next(batches)
        x = x.to(device).contiguous(memory_format=torch.channels_last)
        with autocast(sizes, torch.device(device)):
            loss = smoothed_cross_entropy(model(x), y.to(device), sizes.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if start is None:  # the first step is warm-up, as in the on-device timing
            synchronize(loss)
            start = time.perf_counter()
        else:
            done += len(y)
    synchronize(loss)
    return done / (time.perf_counter() - start)


def run_cifar10(
    sizes: Cifar10Sizes, *, seed: int = 0, progress: bool = True, baseline: bool = False
) -> dict:
    """``helpers.bench cifar10``: the recipe on CIFAR-10; test accuracy with and without TTA.

    With ``baseline=True`` also times ``sizes.baseline_steps`` steps of the seed-style
    DataLoader loop and the same number of on-device steps, fresh models each, in two
    interleaved rounds, and reports the faster round's img/s of each and their ratio.
    """
    device = default_device()
    # cuDNN times its convolution algorithms on the first call of each shape and keeps the
    # fastest (the first step pays, untimed); a no-op on the CPU.
    torch.backends.cudnn.benchmark = device.type == "cuda"
    x, y, x_test, y_test, data = recipe_data(sizes)
    mean, std = channel_stats(x)
    whitening = stem_filters(sizes, x, mean, std)  # None for a 3x3 stem
    images = torch.from_numpy(x).to(device)
    labels = torch.from_numpy(y).long().to(device)
    test = torch.from_numpy(x_test).to(device)
    out: dict = {}

    def new_model() -> CifarNet:
        """A freshly seeded network: the same start for every loop timed and trained."""
        seed_everything(seed)
        return CifarNet(
            sizes.widths, whitening=whitening, dtype=_dtype(sizes), device=device
        ).to(memory_format=torch.channels_last)

    if baseline:
        g = torch.Generator().manual_seed(seed)
        loader = seed_style_loader(
            x, y, mean, std, batch_size=sizes.batch_size, pad=sizes.pad, generator=g
        )
        slow = fast = 0.0
        # Two interleaved rounds, the faster of each: a shared machine slows some runs.
        for _ in range(2):
            model = new_model()
            rate = _baseline_rate(model, loader, sizes, device, sizes.baseline_steps)
            slow = max(slow, rate)
            model = new_model()
            h = fit_fast(
                model, images, labels, sizes, mean, std,
                max_steps=sizes.baseline_steps + 1,
                generator=torch.Generator(device).manual_seed(seed),
                progress=False,
            )  # fmt: skip
            fast = max(
                fast, step_timing(h, sizes.batch_size)["train_examples_per_second"]
            )
        out = {
            "baseline_steps": sizes.baseline_steps,
            "seed_style_examples_per_second": round(slow, 1),
            "on_device_examples_per_second": round(fast, 1),
            "speedup_vs_seed_style": round(fast / slow, 3),
        }
    model = new_model()
    average = ema_model(model, sizes.ema_decay)
    history = fit_fast(
        model, images, labels, sizes, mean, std,
        generator=torch.Generator(device).manual_seed(seed),
        progress=progress, average=average,
    )  # fmt: skip
    accuracy = score_test_split(
        lambda net, tta: predict_logits(net, test, mean, std, tta=tta),
        {"": model, "_ema": average},
        y_test,
    )
    return {
        "model": f"CifarNet {'-'.join(map(str, sizes.widths))}, SGD-Nesterov, "
        f"label smoothing {sizes.label_smoothing}, crop+flip on device, channels_last, "
        f"{sizes.compute_dtype}",
        "stem": sizes.stem,
        "data": data,
        **accuracy,
        "ema_decay": sizes.ema_decay,
        # Steady training time; the first step (compilation, warm-up) apart.
        **step_timing(history, sizes.batch_size),
        "final_train_loss": round(history.last("train_loss"), 4),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_examples": len(y),
        "test_examples": len(y_test),
        "epochs": len(history.epochs),
        "batch_size": sizes.batch_size,
        "threads": torch.get_num_threads(),
        **out,
    }
