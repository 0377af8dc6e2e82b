"""Framework-free pieces of the CIFAR-10 recipe (chapter 5), shared by both halves of ``H.vision``.

The normalisation statistics, the learning-rate schedule's knots, and a NumPy reference of the
batched crop-and-flip augmentation that the PyTorch and JAX versions are tested against. The
recipe follows the ideas of airbench (Jordan 2024, arXiv 2404.00498) and its predecessors; the
code is the course's own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from helpers.data import CIFAR10_CLASSES, load_cifar10
from helpers.scale.vision import Cifar10Sizes
from helpers.vision_tables import bench_table, outline_table

__all__ = [
    "bench_table",
    "channel_stats",
    "crop_flip_reference",
    "data_source",
    "lr_multiplier",
    "outline_data",
    "outline_table",
    "per_sample_batches",
    "recipe_data",
    "schedule_knots",
    "score_test_split",
    "skip_ynnpack_on_cpu",
]

YNNPACK_OFF = "--xla_cpu_experimental_ynn_fusion_type="


def skip_ynnpack_on_cpu() -> bool:
    """Ask XLA's CPU backend for its own kernels instead of YNNPACK's; call before importing JAX.

    XLA reads ``XLA_FLAGS`` once, when JAX starts its backend. jaxlib 0.10.2's CPU backend
    hands convolutions, matrix products and some elementwise and reduction fusions to YNNPACK
    by default; on the course's Intel Xeon, XLA's own kernels trained chapter 5's CifarNet at
    2.2 times the img/s (its bench.jsonl). This puts
    ``--xla_cpu_experimental_ynn_fusion_type=`` (no fusion type: YNNPACK off) first in
    ``XLA_FLAGS``: XLA ignores the flags written after a bare word such as
    ``intra_op_parallelism_threads=1``, so only the ``-`` words before it count. Nothing is
    changed, and the return value says whether YNNPACK is off, when JAX is already imported
    (too late: ``False``), a JAX GPU plugin is installed (the flag is CPU-only: ``False``), the
    words XLA reads already set the option (the user's choice), ``XLA_FLAGS`` does not start
    with ``-`` (XLA reads it as a flag file: a ``UserWarning``, ``False``), or this jaxlib does
    not accept the flag (XLA aborts on an unknown flag, and experimental flags come and go: a
    child process starts JAX with it first, about a second; a ``UserWarning``, ``False``).
    """
    flags = os.environ.get("XLA_FLAGS", "").strip()
    if flags and not flags.startswith("-"):
        warnings.warn(
            f"XLA_FLAGS={flags!r} does not start with '-', so XLA reads it as a flag file: "
            "left as it is, YNNPACK stays on unless that file turns it off",
            stacklevel=2,
        )
        return False
    option = YNNPACK_OFF.rstrip("=")
    for word in itertools.takewhile(lambda w: w.startswith("-"), flags.split()):
        name, _, value = word.partition("=")
        if name == option:  # the user's own setting: kept
            return value.strip("\"'") == ""
    gpu = any(
        importlib.util.find_spec(p) is not None
        for p in ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm7_plugin")
    )
    if "jax" in sys.modules or gpu:
        return False
    flags = f"{YNNPACK_OFF} {flags}".strip()
    if not _jax_starts_with(flags):
        warnings.warn(
            f"JAX did not start with XLA_FLAGS={flags!r} (this jaxlib may not know "
            f"{YNNPACK_OFF}): left unset, XLA's CPU backend uses its default kernels",
            stacklevel=2,
        )
        return False
    os.environ["XLA_FLAGS"] = flags
    return True


def _jax_starts_with(flags: str) -> bool:
    """Whether JAX starts its CPU backend with ``XLA_FLAGS=flags``, tried in a child process."""
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    try:
        child = subprocess.run(
            [sys.executable, "-c", "import jax; jax.devices()"],
            env=env,
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return child.returncode == 0


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``uint8 (N, H, W, C)`` images, in 0..1 units.

    Compute them on the training split only. Returns two ``float32 (C,)`` arrays. Raises
    ``ValueError`` for anything but a 4-D NHWC array.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(
            f"expected images (N, H, W, C), got an array of shape {images.shape}"
        )
    x = images.astype(np.float64) / 255.0
    mean = x.mean(axis=(0, 1, 2))
    std = x.std(axis=(0, 1, 2))
    return mean.astype(np.float32), std.astype(np.float32)


def schedule_knots(
    total_steps: int, warmup: float, start: float = 0.1
) -> tuple[list[float], list[float]]:
    """The step-size multiplier as a piecewise-linear curve: ``(steps, multipliers)``.

    It rises linearly from ``start`` to 1 over the first ``warmup`` fraction of ``total_steps``
    and then falls linearly to 0 at the last step (a "one-cycle"-style triangle). Both halves
    interpolate these knots (``np.interp`` / ``jnp.interp``). Raises ``ValueError`` for
    ``total_steps < 1`` or ``warmup`` outside ``[0, 1)``.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup is a fraction of the steps in [0, 1), got {warmup}")
    peak = max(1.0, warmup * total_steps)
    return [0.0, peak, float(total_steps)], [start, 1.0, 0.0]


def lr_multiplier(step: int, total_steps: int, warmup: float) -> float:
    """The multiplier of the peak step size at optimisation step ``step`` (0-based)."""
    xs, ys = schedule_knots(total_steps, warmup)
    return float(np.interp(step, xs, ys))


def crop_flip_reference(
    images: np.ndarray, offsets: np.ndarray, flips: np.ndarray, pad: int
) -> np.ndarray:
    """Reference for the batched augmentation, one image at a time, in NumPy.

    ``images`` ``(B, H, W, C)``; ``offsets`` ``int (B, 2)``: the (row, column) where each
    crop starts in the zero-padded image, each in ``0 .. 2 * pad``; ``flips`` ``bool (B,)``:
    mirror left-right after cropping. Returns the same shape and dtype as ``images``.
    """
    images = np.asarray(images)
    b, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.empty_like(images)
    for i in range(b):
        r, c = int(offsets[i, 0]), int(offsets[i, 1])
        crop = padded[i, r : r + h, c : c + w]
        out[i] = crop[:, ::-1] if flips[i] else crop
    return out


def per_sample_batches(
    images: np.ndarray,
    labels: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    batch_size: int,
    pad: int,
    seed: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The seed-style pipeline without PyTorch: augment one image at a time on the host.

    Yields shuffled ``(float32 (B, H, W, C) normalised, int32 (B,))`` batches, each image
    padded, cropped, maybe flipped and normalised by itself in Python, as a per-sample
    ``Dataset`` does. It exists to be slow in the same way, for the JAX half's comparison.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    h, w = images.shape[1:3]
    for start in range(0, len(order) - batch_size + 1, batch_size):
        xs = []
        for i in order[start : start + batch_size]:
            img = np.pad(images[i], ((pad, pad), (pad, pad), (0, 0)))
            r, c = rng.integers(0, 2 * pad + 1, size=2)
            img = img[r : r + h, c : c + w]
            if rng.random() < 0.5:
                img = img[:, ::-1]
            xs.append((img.astype(np.float32) / 255.0 - mean) / std)
        idx = order[start : start + batch_size]
        yield np.stack(xs), labels[idx].astype(np.int32)


@contextlib.contextmanager
def data_source() -> Iterator[dict[str, str]]:
    """Record which CIFAR-10 copy the loads inside the block read: ``{"data": ...}``.

    ``load_cifar10`` warns when it falls back to the JPEG re-encoded offline copy; inside this
    block that warning becomes the record's ``"data"`` entry instead, for the caller to print or
    store (a notebook would otherwise show it under a kernel temp-file path). Any other warning
    is shown, each distinct one once (loading train and test warns twice alike).
    """
    found = {"data": "CIFAR-10, canonical (lossless)"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield found
    shown = set()
    for w in caught:
        if "JPEG" in str(w.message):
            found["data"] = "CIFAR-10, JPEG re-encoded offline copy (lossy, all 60,000)"
        elif str(w.message) not in shown:
            shown.add(str(w.message))
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def recipe_data(
    sizes: Cifar10Sizes,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """The fast recipe's data: ``(x_train, y_train, x_test, y_test, source)``.

    Images ``uint8 (N, 32, 32, 3)``, labels ``uint8 (N,)``, from ``sizes.data`` (see
    :class:`~helpers.scale.vision.Cifar10Sizes`): ``sizes.train_examples`` training images
    less the last ``sizes.val_examples`` (the validation split, never trained on) and
    ``sizes.test_examples`` test images (None: all). ``source`` names the copy the numbers
    come from. Raises ``ValueError`` when the validation split leaves no training image, and
    what :func:`~helpers.data.load_cifar10` raises.
    """
    options = {"sample": sizes.data != "auto", "jpeg": sizes.data == "sample-jpeg"}
    with data_source() as source:
        x, y = load_cifar10("train", limit=sizes.train_examples, **options)
        x_test, y_test = load_cifar10("test", limit=sizes.test_examples, **options)
    if sizes.val_examples >= len(x):
        raise ValueError(
            f"val_examples={sizes.val_examples} leaves none of the {len(x)} training images "
            f"(data={sizes.data!r}) to train on"
        )
    n_train = len(x) - sizes.val_examples
    names = {
        "sample": "CIFAR-10, canonical first 4,000 train / 1,000 test (lossless)",
        "sample-jpeg": "CIFAR-10, JPEG re-encoded copy of the first 4,000 train / 1,000 test",
    }
    return (
        x[:n_train],
        y[:n_train],
        x_test,
        y_test,
        names.get(sizes.data, source["data"]),
    )


def score_test_split(
    predict: Callable[[object, bool], np.ndarray],
    nets: dict[str, object],
    labels: np.ndarray,
    class_names: Sequence[str] = CIFAR10_CLASSES,
) -> dict[str, object]:
    """``helpers.bench cifar10``'s accuracy fields, rounded to 4 places.

    For each ``suffix: net`` of ``nets`` (``{"": model, "_ema": average}``), the fraction of
    ``labels`` ``int (N,)`` that ``predict(net, tta)``'s logits ``(N, C)`` get right, without
    and with flip test-time augmentation: ``test_accuracy{suffix}`` and
    ``test_accuracy{suffix}_tta``. For the trained weights (suffix ``""``) with flips, also
    ``test_accuracy_tta_by_class``: ``{class name: accuracy}`` over each class of
    ``class_names`` that ``labels`` holds (section 5.5's per-class accuracies).
    """
    accuracy: dict[str, object] = {}
    for suffix, net in nets.items():
        for tta in (False, True):
            right = predict(net, tta).argmax(1) == labels  # bool (N,)
            accuracy[f"test_accuracy{suffix}{'_tta' * tta}"] = round(
                float(right.mean()), 4
            )
            if suffix == "" and tta:
                accuracy["test_accuracy_tta_by_class"] = {
                    name: round(float(right[labels == c].mean()), 4)
                    for c, name in enumerate(class_names)
                    if (labels == c).any()
                }
    return accuracy


def outline_data(sizes) -> dict:
    """The data of section 5.2's outline CNN run by ``helpers.bench cifar10 --model outline``.

    ``sizes``: a :class:`~helpers.scale.Cifar10Sizes`. The first
    ``sizes.outline_train_examples`` images of the training split (all, for None), the last
    ``sizes.val_examples`` left out as on the page, and ``sizes.test_examples`` test images,
    each normalised by the kept training images' channel statistics: ``"train"`` and
    ``"test"`` pairs of ``float32 (N, 32, 32, 3)`` NHWC images and ``uint8 (N,)`` labels, and
    ``"data"``, which copy of CIFAR-10 was read (:func:`data_source`).
    """
    with data_source() as source:
        x, y = load_cifar10("train")
        x_test, y_test = load_cifar10("test", limit=sizes.test_examples)
    n_train = len(x) - sizes.val_examples
    if sizes.outline_train_examples is not None:
        n_train = min(n_train, sizes.outline_train_examples)
    x, y = x[:n_train], y[:n_train]
    mean, std = channel_stats(x)

    def normalise(images: np.ndarray) -> np.ndarray:
        return ((images / 255.0 - mean) / std).astype(np.float32)  # (N, 32, 32, 3)

    return {
        "train": (normalise(x), y),
        "test": (normalise(x_test), y_test),
        "data": source["data"],
    }
