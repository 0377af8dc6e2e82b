"""Fast image classification in JAX (chapter 5; reused by chapters 9 and 10): ``H.vision``.

The JAX twin of ``helpers.torch.vision``: the whole data set on the device as
``uint8 (N, H, W, C)``, crop + flip + normalisation of each batch inside one jitted train step
with donated buffers, an NHWC Flax NNX network whose pooling is a reshape and a max, and the
same recipe with Optax (label smoothing, SGD with Nesterov momentum, warmup then linear decay,
flip test-time augmentation), after airbench (Jordan 2024, arXiv 2404.00498); the code is the
course's own. The data pipelines live in ``helpers.jax.augment`` and the network in
``helpers.jax.models``; both are re-exported here, so ``H.vision`` holds the whole recipe.
"""

from __future__ import annotations

import functools
import itertools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

from helpers.jax.augment import (
    _check_nhwc,
    crop_flip,
    per_sample_batches,
    random_crop_flip,
    to_input,
)
from helpers.jax.models import AveragedModel, CifarNet, OutlineCNN, ema_model
from helpers.jax.runtime import default_device, seed_everything
from helpers.jax.sharding import make_mesh
from helpers.metrics import History, step_timing
from helpers.scale import Cifar10Sizes
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
    "per_sample_batches",
    "predict_logits",
    "random_crop_flip",
    "run_cifar10",
    "smoothed_cross_entropy",
    "stem_filters",
    "to_input",
]
# The seed-style comparison of PyTorch is its DataLoader (``seed_style_loader``); JAX has no
# loader of its own, so its half offers the same per-sample pipeline written in NumPy.
__framework_only__ = ("per_sample_batches",)


def smoothed_cross_entropy(
    logits: jax.Array, labels: jax.Array, smoothing: float
) -> jax.Array:
    """Mean cross-entropy against targets ``(1 - smoothing) * one_hot + smoothing / C``."""
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), smoothing)
    return optax.softmax_cross_entropy(logits, targets).mean()


def make_optimizer(
    model: nnx.Module, sizes: Cifar10Sizes, total_steps: int
) -> nnx.Optimizer:
    """SGD with Nesterov momentum and L2 weight decay on a warmup/linear-decay schedule.

    ``add_decayed_weights`` before ``sgd`` adds ``weight_decay * w`` to the gradient, as
    PyTorch's ``SGD(weight_decay=...)`` does, so both halves take the same steps.
    """
    xs, ys = schedule_knots(total_steps, sizes.warmup)

    def schedule(count):
        return sizes.learning_rate * jnp.interp(count, jnp.array(xs), jnp.array(ys))

    tx = optax.chain(
        optax.add_decayed_weights(sizes.weight_decay),
        optax.sgd(schedule, momentum=sizes.momentum, nesterov=True),
    )
    return nnx.Optimizer(model, tx, wrt=nnx.Param)


@functools.cache
def _train_step(graphdef, pad: int, smoothing: float, batch_sharding=None):
    """One jitted step on the split (model, optimizer) state; the state's buffers are donated.

    ``batch_sharding`` (a ``NamedSharding``) splits each batch across a mesh's devices.
    """

    def split(v):
        if batch_sharding is None:
            return v
        return jax.lax.with_sharding_constraint(v, batch_sharding)

    @functools.partial(jax.jit, donate_argnums=0, static_argnames="batch_size")
    def step(state, images, labels, order, i, key, mean, std, *, batch_size):
        model, optimizer, *average = nnx.merge(graphdef, state)  # average: [] or [it]
        # Slicing inside the step: an eager order[a:b] is one more program dispatched per step.
        idx = split(
            jax.lax.dynamic_slice_in_dim(order, i * batch_size, batch_size)
        )  # (B,)
        x = split(random_crop_flip(images[idx], pad, rngs=key))  # (B, H, W, C) uint8
        y = labels[idx]

        def loss_fn(model):
            logits = model(to_input(x, mean, std))  # (B, 10)
            return smoothed_cross_entropy(logits, y, smoothing), logits

        (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        optimizer.update(model, grads)
        for avg in average:
            avg.update_parameters(model)
        state = nnx.state((model, optimizer, *average))
        return state, loss, (logits.argmax(-1) == y).sum()

    return step


def fit_fast(
    model: nnx.Module,
    images: jax.Array,
    labels: jax.Array,
    sizes: Cifar10Sizes,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    epochs: int | None = None,
    max_steps: int | None = None,
    rngs: jax.Array | None = None,
    progress: bool = True,
    mesh: jax.sharding.Mesh | None = None,
    average: AveragedModel | None = None,
) -> History:
    """Train with the recipe on ``images`` ``uint8 (N, H, W, C)`` already on the device.

    Every epoch: a fresh permutation, then one jitted step per full batch (gather, crop +
    flip, normalise, forward, smoothed loss, backward, SGD, and
    ``average.update_parameters`` when a weight average (:func:`ema_model`) is given; it is
    updated in place like ``model``). ``rngs`` is a PRNG key (default
    ``jax.random.key(0)``). ``max_steps`` stops early. ``mesh`` (one axis, ``"data"``):
    data, model and optimizer are copied to each of its devices and every batch is split
    across them (BatchNorm still normalises over the whole batch); ``ValueError`` if the
    batch size is not a multiple of its device count. Updates ``model`` in place and returns
    a :class:`~helpers.metrics.History` whose ``first_step_seconds`` includes compilation.
    """
    _check_nhwc(images)
    batch_sharding = None
    if mesh is not None:
        if sizes.batch_size % mesh.size:
            raise ValueError(
                f"batch_size {sizes.batch_size} does not split across {mesh.size} devices"
            )
        batch_sharding = NamedSharding(mesh, P("data"))
        images, labels = jax.device_put((images, labels), NamedSharding(mesh, P()))
    key = jax.random.key(0) if rngs is None else rngs
    epochs = sizes.jax_epochs if epochs is None else epochs
    per_epoch = len(images) // sizes.batch_size
    total = (
        epochs * per_epoch if max_steps is None else min(max_steps, epochs * per_epoch)
    )
    optimizer = make_optimizer(model, sizes, epochs * per_epoch)
    model.train()
    objects = (model, optimizer) if average is None else (model, optimizer, average)
    graphdef, state = nnx.split(objects)
    step = _train_step(graphdef, sizes.pad, sizes.label_smoothing, batch_sharding)
    mean, std = jnp.asarray(mean), jnp.asarray(std)
    if mesh is not None:
        state, mean, std = jax.device_put((state, mean, std), NamedSharding(mesh, P()))
    history, done = History(), 0
    bar = tqdm(total=total, desc="train", unit="step", disable=not progress)
    while done < total:
        start = time.perf_counter()
        key, k_perm = jax.random.split(key)
        order = jax.random.permutation(k_perm, len(images))
        if mesh is not None:
            order = jax.device_put(order, NamedSharding(mesh, P()))
        losses, corrects = [], []
        for i in range(min(per_epoch, total - done)):
            key, k_step = jax.random.split(key)
            state, loss, correct = step(
                state, images, labels, order, i, k_step, mean, std,
                batch_size=sizes.batch_size,
            )  # fmt: skip
            losses.append(loss)
            corrects.append(correct)
            if history.first_step_seconds is None:
                history.first_step_seconds = time.perf_counter() - start
                jax.block_until_ready(loss)
                history.first_step_seconds = time.perf_counter() - start
            bar.update()
        # device_get waits for the last step. Not jnp.stack: an eager op compiles once per
        # list length (each epoch's, and a shorter last one), ~1-2 s inside the timed epochs
        # on a GPU.
        step_losses = [float(v) for v in jax.device_get(losses)]
        done += len(losses)
        history.end_epoch(
            len(history.epochs) + 1,
            step_losses,
            correct=int(sum(jax.device_get(corrects))),
            seen=len(losses) * sizes.batch_size,
            seconds=time.perf_counter() - start,
        )
    bar.close()
    nnx.update(objects, state)
    return history


@functools.partial(nnx.jit, static_argnames="tta")
def _logits(model: nnx.Module, x: jax.Array, tta: bool) -> jax.Array:
    logits = model(x)
    if tta:
        logits = logits + model(x[:, :, ::-1])  # mirror along W in NHWC
    return logits


def predict_logits(
    model: nnx.Module,
    images: jax.Array,
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
    out = [
        np.asarray(_logits(model, to_input(images[i : i + batch_size], mean, std), tta))
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out)


def _baseline_rate(
    model, sizes: Cifar10Sizes, x, y, mean, std, steps: int, mesh=None
) -> float:
    """Images per second with per-sample host augmentation feeding a jitted step."""
    optimizer = make_optimizer(model, sizes, steps)
    model.train()
    graphdef, state = nnx.split((model, optimizer))
    # With a mesh: the state on every device, each batch split across them, as in fit_fast.
    batch = None if mesh is None else NamedSharding(mesh, P("data"))
    if mesh is not None:
        state = jax.device_put(state, NamedSharding(mesh, P()))

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state, xb, yb):
        model, optimizer = nnx.merge(graphdef, state)

        def loss_fn(model):
            return smoothed_cross_entropy(model(xb), yb, sizes.label_smoothing)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), loss

    # As many epochs as the steps need (gpu scale: 101 steps of 512 > 45,000 images).
    batches = (
        batch
        for epoch in itertools.count()
        for batch in per_sample_batches(
            x, y, mean, std, batch_size=sizes.batch_size, pad=sizes.pad, seed=epoch
        )
    )
    start, done = None, 0
    for _ in range(steps + 1):
        xb, yb = next(batches)
        state, loss = step(state, *jax.device_put((xb, yb), batch))
        if start is None:  # the first step compiles
            jax.block_until_ready(loss)
            start = time.perf_counter()
        else:
            done += len(yb)
    jax.block_until_ready(loss)
    return done / (time.perf_counter() - start)


def run_cifar10(
    sizes: Cifar10Sizes, *, seed: int = 0, progress: bool = True, baseline: bool = False
) -> dict:
    """``helpers.bench cifar10``: the recipe on CIFAR-10; test accuracy with and without TTA.

    With ``baseline=True`` also times ``sizes.baseline_steps`` steps fed by per-sample host
    augmentation (:func:`helpers.vision.per_sample_batches`) against as many on-device steps,
    in two interleaved rounds, keeping the faster round of each. With several devices (on a
    CPU: ``XLA_FLAGS=--xla_force_host_platform_device_count=2``, one per core) each batch is
    split across all of them (``fit_fast``'s ``mesh``).
    """
    device = default_device()
    mesh = make_mesh() if len(jax.devices()) > 1 else None
    dtype = jnp.dtype(sizes.compute_dtype)
    x, y, x_test, y_test, data = recipe_data(sizes)
    mean, std = channel_stats(x)
    whitening = stem_filters(sizes, x, mean, std)  # None for a 3x3 stem
    images = jax.device_put(x, device)
    labels = jax.device_put(y.astype(np.int32), device)
    # with a mesh the trained weights end up on every device of it: so does the test set
    test = jax.device_put(x_test, device if mesh is None else NamedSharding(mesh, P()))
    out: dict = {}

    def new_model() -> CifarNet:
        """A network initialised from ``seed``: the same start for every loop timed and trained."""
        return CifarNet(
            sizes.widths, whitening=whitening, dtype=dtype, rngs=nnx.Rngs(seed)
        )

    if baseline:
        slow = fast = 0.0
        # Two interleaved rounds, the faster of each: a shared machine slows some runs.
        for _ in range(2):
            model = new_model()
            rate = _baseline_rate(
                model, sizes, x, y, mean, std, sizes.baseline_steps, mesh
            )
            slow = max(slow, rate)
            model = new_model()
            h = fit_fast(
                model, images, labels, sizes, mean, std,
                max_steps=sizes.baseline_steps + 1, rngs=jax.random.key(seed),
                progress=False, mesh=mesh,
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
    key = seed_everything(seed)
    model = new_model()
    average = ema_model(model, sizes.ema_decay)
    history = fit_fast(
        model, images, labels, sizes, mean, std, rngs=key, progress=progress,
        mesh=mesh, average=average,
    )  # fmt: skip
    accuracy = score_test_split(
        lambda net, tta: predict_logits(net, test, mean, std, tta=tta),
        {"": model, "_ema": average},
        y_test,
    )
    return {
        "model": f"CifarNet {'-'.join(map(str, sizes.widths))}, SGD-Nesterov, "
        f"label smoothing {sizes.label_smoothing}, crop+flip on device, NHWC, jit, "
        f"{sizes.compute_dtype}",
        "stem": sizes.stem,
        "data": data,
        **accuracy,
        "ema_decay": sizes.ema_decay,
        # Steady training time; the first step (compilation, warm-up) apart.
        **step_timing(history, sizes.batch_size),
        "final_train_loss": round(history.last("train_loss"), 4),
        "parameters": sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param))),
        "train_examples": len(y),
        "test_examples": len(y_test),
        "epochs": len(history.epochs),
        "batch_size": sizes.batch_size,
        # XLA reads these once, at start-up; they change its kernels (skip_ynnpack_on_cpu).
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "devices": len(jax.devices()),
        **out,
    }
