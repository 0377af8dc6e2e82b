"""CIFAR-10 (Krizhevsky 2009): 60,000 colour images 32x32 in 10 classes.

Three sources, each in a well-mixed order: the canonical ``cifar-10-python.tar.gz`` (its
batches are interleaved; kept as published), the course's lossless sample (the canonical first
4,000 train / 1,000 test images, same order) and the course's JPEG re-encoding of all 60,000
images. The JPEG copy is stored class by class, so it is put in the fixed order of
:func:`helpers.data.common.mixed_order`, or, as the sample's JPEG twin, in the sample's order.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import warnings
from pathlib import Path

import numpy as np

from helpers.data.common import SPLITS, check_split, mixed_order, subset
from helpers.data.download import (
    DataNotFoundError,
    RemoteFile,
    cached_derivative,
    data_dir,
    fetch,
    find_local,
)

__all__ = ["CIFAR10_CLASSES", "load_cifar10"]

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
_CIFAR10 = RemoteFile(
    "cifar-10-python.tar.gz",
    ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
)
# The course's offline copy: all 60,000 images, re-encoded as JPEG.
_CIFAR10_JPEG = (
    "cifar10-jpeg/cifar10_jpeg.tar.gz",
    "b8d22658b5a1be7a9bf0e21e1a989e0240061a7667cf74b19e5ef1918c6cfb66",
)
# Original train images 0-3999 and test images 0-999, exact pixels.
_CIFAR10_SAMPLE = {
    "cifar10_train_part0.npz": "240a0ccf4ade7b70eefc6097fbfc8c170a26d349eebfbe29da1ab50435dea011",
    "cifar10_train_part1.npz": "7729260e63cf1a62bd5ce7af43389a7cbb9fec79cf9aeb39bc0f8920d88029cd",
    "cifar10_train_part2.npz": "f870a5dc1598742c5e6c2ec9e82fc5ae0948831d0c5499f7d554de1f16ee6ba7",
    "cifar10_train_part3.npz": "e639504faf5b610f1c5cc24fd5729df965d18b802ba35588c215c45d2e41dd51",
    "cifar10_test.npz": "8563137e13c21af1c86a9eacad669f09f26c58210e29e78cc5a4aa245794b3a6",
}
_SAMPLE_SIZE = {"train": 4_000, "test": 1_000}


def _read_cifar10_python(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    names = (
        [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    )
    xs, ys = [], []
    with tarfile.open(path, "r:gz") as tar:
        for name in names:
            # The file's sha256 was verified, so unpickling it runs no untrusted code.
            member = tar.extractfile(f"cifar-10-batches-py/{name}")
            batch = pickle.load(member, encoding="bytes")
            # (N, 3072) -> (N, C, H, W)
            xs.append(np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[b"labels"], np.uint8))
    # (N, C, H, W) -> (N, H, W, C)
    return np.concatenate(xs).transpose(0, 2, 3, 1), np.concatenate(ys)


def _decode_cifar10_jpeg(path: Path, out: Path) -> None:
    from PIL import Image  # Pillow comes with matplotlib

    arrays: dict[str, list] = {f"{s}_{k}": [] for s in SPLITS for k in "xy"}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:  # train/<class>/NNNN.jpg, test/<class>/NNNN.jpg
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or parts[0] not in SPLITS:
                continue
            raw = tar.extractfile(member).read()
            image = Image.open(io.BytesIO(raw)).convert("RGB")
            arrays[f"{parts[0]}_x"].append(np.asarray(image, np.uint8))
            arrays[f"{parts[0]}_y"].append(CIFAR10_CLASSES.index(parts[1]))
    with open(out, "wb") as f:
        np.savez(f, **{k: np.asarray(v, np.uint8) for k, v in arrays.items()})


def _load_npz_split(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as z:
        return z[f"{split}_x"], z[f"{split}_y"]


def load_cifar10(
    split: str = "train",
    *,
    limit: int | None = None,
    sample: bool = False,
    jpeg: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10: images ``uint8 (N, 32, 32, 3)`` (HWC, RGB) and labels ``uint8 (N,)`` in 0..9.

    Sources, in order: the canonical ``cifar-10-python.tar.gz`` (offline copy or cache); the
    course's JPEG re-encoding of all 60,000 images (offline copy only: lossy, so expect lower
    accuracy; a warning says so; mixed into a fixed order, see the module docstring);
    otherwise the canonical file is downloaded. ``sample=True`` gives the exact first 4,000
    train / 1,000 test images instead. ``jpeg=True`` reads the JPEG copy even where the
    canonical file is there; with ``sample=True``, the JPEG re-encodings of the sample's images
    in the sample's order (the lossy and the exact pixels of the same pictures, to measure what
    the re-encoding costs). Raises ``DataNotFoundError`` when nothing is found, and with
    ``jpeg=True`` when the JPEG copy is not in ``$BOOK_DATA_DIR``; ``ValueError`` when the
    JPEG copy is not stored class by class or lacks one of the sample's images.
    """
    check_split(split)
    if sample and not jpeg:
        x, y = _load_cifar10_sample(split)
    elif not jpeg and (path := fetch("cifar10", _CIFAR10, download=False)) is not None:
        x, y = _read_cifar10_python(path, split)
    elif (copy := find_local(*_CIFAR10_JPEG)) is not None or jpeg:
        x, y = _load_cifar10_jpeg(split, copy)
        # the copy is stored class by class: the sample's rows, or the fixed mixed order
        rows = _sample_rows(split, y) if sample else mixed_order(len(y))
        x, y = x[rows], y[rows]
    else:
        x, y = _read_cifar10_python(fetch("cifar10", _CIFAR10), split)
    keep = subset(len(y), limit)
    return x[keep], y[keep]


def _load_cifar10_jpeg(split: str, jpeg: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The JPEG copy's ``split``, class by class, each class in the canonical order.

    ``jpeg``: the verified archive (:func:`find_local`), or None where it is absent.
    """
    if jpeg is None:
        raise DataNotFoundError(
            f"the course's JPEG copy of CIFAR-10 ({_CIFAR10_JPEG[0]}) is not in "
            f"BOOK_DATA_DIR ({data_dir()}); it is not downloadable: point BOOK_DATA_DIR at "
            "the course's offline data folder, or load without jpeg=True"
        )
    warnings.warn(
        "CIFAR-10 from the JPEG re-encoded offline copy (mean abs pixel error ~6/255): "
        "accuracy will be below the lossless data set's (2 to 4 points lower on a "
        "4,000-image subset, chapter 5).",
        stacklevel=3,
    )
    return cached_derivative(
        "cifar10_jpeg.npz",
        _CIFAR10_JPEG[1],
        lambda out: _decode_cifar10_jpeg(jpeg, out),
        lambda p: _load_npz_split(p, split),
    )


def _sample_rows(split: str, labels: np.ndarray) -> np.ndarray:
    """Rows of the class-by-class JPEG ``labels`` that hold the sample's images, in its order.

    The JPEG copy names each image by its rank within its class in the canonical order, and
    the sample is the canonical order's first rows, so the sample's own labels give each
    image's rank: the k-th cat of the sample is the k-th cat of the copy. (The decoded copy
    keeps the archive's order, which holds each class's files in rank order: the real-data
    test checks each matched pair's pixel error.)
    """
    if np.any(np.diff(labels.astype(int)) < 0):
        raise ValueError("the JPEG copy is expected class by class, in class order")
    _, sample_labels = _load_cifar10_sample(split)
    have = np.bincount(labels, minlength=len(CIFAR10_CLASSES))
    need = np.bincount(sample_labels, minlength=len(CIFAR10_CLASSES))
    if np.any(need > have):
        c = int(np.argmax(need > have))
        raise ValueError(
            f"the sample holds {need[c]} of class {c}, the JPEG copy only {have[c]}"
        )
    starts = np.searchsorted(labels, np.arange(len(CIFAR10_CLASSES)))
    # each image's rank within its class, in the sample's order (5,000 labels at most)
    ranks = np.zeros(len(sample_labels), np.int64)
    seen = np.zeros(len(CIFAR10_CLASSES), np.int64)
    for i, c in enumerate(sample_labels):
        ranks[i], seen[c] = seen[c], seen[c] + 1
    return starts[sample_labels] + ranks


def _load_cifar10_sample(split: str) -> tuple[np.ndarray, np.ndarray]:
    names = [n for n in _CIFAR10_SAMPLE if f"_{split}" in n]
    paths = [find_local(f"cifar10-sample/{n}", _CIFAR10_SAMPLE[n]) for n in names]
    if all(p is not None for p in paths):
        parts = [np.load(p) for p in paths]
        x = np.concatenate([z["x"] for z in parts])
        return x, np.concatenate([z["y"] for z in parts])
    # No offline sample: the same images are the first rows of the canonical file.
    x, y = _read_cifar10_python(fetch("cifar10", _CIFAR10), split)
    return x[: _SAMPLE_SIZE[split]], y[: _SAMPLE_SIZE[split]]
