"""MNIST (LeCun et al. 1998): 70,000 handwritten digits, the four canonical IDX files.

The canonical files are in a mixed order already; the loader keeps it.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from helpers.data.common import check_split, subset
from helpers.data.download import RemoteFile, fetch

__all__ = ["load_mnist", "read_idx"]

# The original yann.lecun.com host often refuses downloads; these mirrors serve the same bytes.
_MNIST_MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)


def _mnist_file(name: str, sha256: str, offline_sha256: str) -> RemoteFile:
    # offline_sha256: the course's offline copy, re-gzipped (same IDX bytes, other gzip header).
    return RemoteFile(
        name, tuple(m + name for m in _MNIST_MIRRORS), sha256, (offline_sha256,)
    )


# fmt: off
_MNIST = {
    "train": (
        _mnist_file("train-images-idx3-ubyte.gz",
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                    "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971"),
        _mnist_file("train-labels-idx1-ubyte.gz",
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                    "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203"),
    ),
    "test": (
        _mnist_file("t10k-images-idx3-ubyte.gz",
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                    "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be"),
        _mnist_file("t10k-labels-idx1-ubyte.gz",
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                    "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b"),
    ),
}
# fmt: on


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file: big-endian magic, then dimensions, then uint8 data.

    Raises ``ValueError`` for a bad magic number or a size that does not match the header.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(
            f"{path} is not an IDX file of unsigned bytes (bad magic number)"
        )
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(
            f"{path}: header says {dims} but holds {data.size} bytes of data"
        )
    # A writable array, not a view of the read-only bytes.
    return data.reshape(dims).copy()


def load_mnist(
    split: str = "train", *, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST digits: images ``uint8 (N, 28, 28)`` in 0..255 and labels ``uint8 (N,)`` in 0..9.

    60,000 train / 10,000 test in the canonical order; ``limit`` keeps a fixed random subset.
    Raises ``DataNotFoundError`` (with how to get the files) when they cannot be found.
    """
    check_split(split)
    images_file, labels_file = _MNIST[split]
    names = [f.name for files in _MNIST.values() for f in files]
    also = {f.name: tuple(n for n in names if n != f.name) for f in _MNIST[split]}
    images = read_idx(fetch("mnist", images_file, companions=also[images_file.name]))
    labels = read_idx(fetch("mnist", labels_file, companions=also[labels_file.name]))
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise ValueError(
            f"MNIST {split}: images {images.shape} do not match labels {labels.shape}"
        )
    keep = subset(len(labels), limit)
    return images[keep], labels[keep]
