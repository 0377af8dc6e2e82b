"""The course's real data sets as numpy arrays and Python lists: MNIST, CIFAR-10, IMDB.

Framework-free on purpose: both notebooks of a pair load exactly the same bytes, and each
framework's helpers turn them into tensors or arrays on its own device.

Every loader checks sha256 (see :mod:`helpers.download`) and accepts, besides the canonical
files, the course's offline formats described in ``shared/data/README.md``.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import re
import tarfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from helpers.download import RemoteFile, cached_derivative, fetch, find_local

__all__ = [
    "CIFAR10_CLASSES",
    "BatchSampler",
    "batch_indices",
    "images_to_vectors",
    "load_cifar10",
    "load_imdb",
    "load_mnist",
    "tokenize",
]

SPLITS = ("train", "test")

# --- MNIST (LeCun et al. 1998): IDX files, gzip-compressed ---------------------------------------
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


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _subset(n: int, limit: int | None) -> np.ndarray | slice:
    """Indices of a fixed random subset of size ``limit`` (seed 0), in the original order.

    A random subset, not the first ``limit`` rows: some files are sorted by class.
    """
    if limit is None or limit >= n:
        return slice(None)
    if limit < 1:
        raise ValueError(f"limit must be a positive number of examples, got {limit}")
    return np.sort(np.random.default_rng(0).permutation(n)[:limit])


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file: big-endian magic, then dimensions, then uint8 data."""
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
    return data.reshape(
        dims
    ).copy()  # a writable array, not a view of the read-only bytes


def load_mnist(
    split: str = "train", *, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST digits: images ``uint8 (N, 28, 28)`` in 0..255 and labels ``uint8 (N,)`` in 0..9.

    60,000 train / 10,000 test; ``limit`` keeps a fixed random subset.
    """
    _check_split(split)
    images_file, labels_file = _MNIST[split]
    names = [f.name for files in _MNIST.values() for f in files]
    also = {f.name: tuple(n for n in names if n != f.name) for f in _MNIST[split]}
    images = read_idx(fetch("mnist", images_file, companions=also[images_file.name]))
    labels = read_idx(fetch("mnist", labels_file, companions=also[labels_file.name]))
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise ValueError(
            f"MNIST {split}: images {images.shape} do not match labels {labels.shape}"
        )
    keep = _subset(len(labels), limit)
    return images[keep], labels[keep]


# --- CIFAR-10 (Krizhevsky 2009) ------------------------------------------------------------------
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
_CIFAR10 = RemoteFile(
    "cifar-10-python.tar.gz",
    ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
)
_CIFAR10_JPEG = (  # the course's offline copy: all 60,000 images, re-encoded as JPEG
    "cifar10-jpeg/cifar10_jpeg.tar.gz",
    "b8d22658b5a1be7a9bf0e21e1a989e0240061a7667cf74b19e5ef1918c6cfb66",
)
_CIFAR10_SAMPLE = {  # original train images 0-3999 and test images 0-999, exact pixels
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
            batch = pickle.load(
                tar.extractfile(f"cifar-10-batches-py/{name}"), encoding="bytes"
            )
            xs.append(
                np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32)
            )  # (N, C, H, W)
            ys.append(np.asarray(batch[b"labels"], np.uint8))
    return np.concatenate(xs).transpose(0, 2, 3, 1), np.concatenate(
        ys
    )  # -> (N, H, W, C)


def _decode_cifar10_jpeg(path: Path, out: Path) -> None:
    from PIL import Image  # Pillow comes with matplotlib

    arrays: dict[str, list] = {f"{s}_{k}": [] for s in SPLITS for k in "xy"}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:  # train/<class>/NNNN.jpg, test/<class>/NNNN.jpg
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or parts[0] not in SPLITS:
                continue
            image = Image.open(io.BytesIO(tar.extractfile(member).read())).convert(
                "RGB"
            )
            arrays[f"{parts[0]}_x"].append(np.asarray(image, np.uint8))
            arrays[f"{parts[0]}_y"].append(CIFAR10_CLASSES.index(parts[1]))
    with open(out, "wb") as f:
        np.savez(f, **{k: np.asarray(v, np.uint8) for k, v in arrays.items()})


def _load_npz_split(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as z:
        return z[f"{split}_x"], z[f"{split}_y"]


def load_cifar10(
    split: str = "train", *, limit: int | None = None, sample: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10: images ``uint8 (N, 32, 32, 3)`` (HWC, RGB) and labels ``uint8 (N,)`` in 0..9.

    Sources, in order: the canonical ``cifar-10-python.tar.gz`` (offline copy or cache); the
    course's JPEG re-encoding of all 60,000 images (offline copy only: lossy, so expect slightly
    lower accuracy; a warning says so); otherwise the canonical file is downloaded.
    ``sample=True`` gives the exact first 4,000 train / 1,000 test images instead.
    """
    _check_split(split)
    if sample:
        x, y = _load_cifar10_sample(split)
    elif (path := fetch("cifar10", _CIFAR10, download=False)) is not None:
        x, y = _read_cifar10_python(path, split)
    elif (jpeg := find_local(*_CIFAR10_JPEG)) is not None:
        warnings.warn(
            "CIFAR-10 from the JPEG re-encoded offline copy (mean abs pixel error ~6/255): "
            "accuracy will be a little below the lossless data set.",
            stacklevel=2,
        )
        x, y = cached_derivative(
            "cifar10_jpeg.npz",
            _CIFAR10_JPEG[1],
            lambda out: _decode_cifar10_jpeg(jpeg, out),
            lambda p: _load_npz_split(p, split),
        )
    else:
        x, y = _read_cifar10_python(fetch("cifar10", _CIFAR10), split)
    keep = _subset(len(y), limit)
    return x[keep], y[keep]


def _load_cifar10_sample(split: str) -> tuple[np.ndarray, np.ndarray]:
    names = [n for n in _CIFAR10_SAMPLE if f"_{split}" in n]
    paths = [find_local(f"cifar10-sample/{n}", _CIFAR10_SAMPLE[n]) for n in names]
    if all(p is not None for p in paths):
        parts = [np.load(p) for p in paths]
        return np.concatenate([z["x"] for z in parts]), np.concatenate(
            [z["y"] for z in parts]
        )
    # No offline sample: the same images are the first rows of the canonical file.
    x, y = _read_cifar10_python(fetch("cifar10", _CIFAR10), split)
    return x[: _SAMPLE_SIZE[split]], y[: _SAMPLE_SIZE[split]]


# --- IMDB movie reviews (Maas et al. 2011) -------------------------------------------------------
_IMDB = RemoteFile(
    "aclImdb_v1.tar.gz",
    ("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",),
    "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
)
_IMDB_JSONL = {  # the course's offline format: one JSON object per review, sorted by label, id
    "train": "212bff7422cfe67d6822189574c5835cfa4cba3492ad0bd142224b62dffba869",
    "test": "1928a7fb56a9e82852a9ce2632f8ac4c4815d76bf5ed1c5d485d7752e3366990",
}
_IMDB_NAME = re.compile(r"aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt")


def _imdb_tar_to_jsonl(path: Path, out: Path) -> None:
    """Convert the canonical archive to the offline format (both splits in one file)."""
    rows = []
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            m = _IMDB_NAME.fullmatch(member.name)
            if m is None:  # skips unsup/, the vocabulary files and the README
                continue
            split, polarity, review, rating = m.groups()
            text = tar.extractfile(member).read().decode("utf-8")
            label = int(polarity == "pos")
            rows.append(
                (split, label, int(review), f"{polarity}/{review}_{rating}", text)
            )
    rows.sort()
    with gzip.open(out, "wt", encoding="utf-8") as f:
        for split, label, _, rid, text in rows:
            rec = {"split": split, "id": rid, "rating": int(rid.rsplit("_", 1)[1])}
            f.write(json.dumps({**rec, "label": label, "text": text}) + "\n")


def _read_jsonl(path: Path, split: str | None = None) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if split is None or row["split"] == split:
                texts.append(row["text"])
                labels.append(row["label"])
    return texts, np.asarray(labels, np.uint8)


def load_imdb(
    split: str = "train", *, limit: int | None = None, tokenized: bool = False
) -> tuple[list[str] | list[list[str]], np.ndarray]:
    """IMDB reviews: raw texts (or token lists) and labels ``uint8 (N,)``, 1 = positive.

    25,000 train / 25,000 test, half positive; ordered negative first, then by review id.
    """
    _check_split(split)
    offline = find_local(f"imdb/imdb_{split}.jsonl.gz", _IMDB_JSONL[split])
    if offline is not None:
        texts, labels = _read_jsonl(offline)
    else:
        archive = fetch("imdb", _IMDB)
        texts, labels = cached_derivative(
            "imdb.jsonl.gz",
            _IMDB.sha256,
            lambda out: _imdb_tar_to_jsonl(archive, out),
            lambda p: _read_jsonl(p, split),
        )
    keep = _subset(len(labels), limit)
    if isinstance(keep, np.ndarray):
        texts = [texts[i] for i in keep]
    labels = labels[keep]
    return ([tokenize(t) for t in texts] if tokenized else texts), labels


_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens; drops the ``<br />`` tags IMDB keeps; keeps ``!`` and ``?``."""
    return _TOKEN.findall(text.replace("<br />", " ").lower())


# --- preprocessing and batching ------------------------------------------------------------------
def images_to_vectors(images: np.ndarray) -> np.ndarray:
    """uint8 images ``(N, H, W[, C])`` -> float32 rows ``(N, H*W*C)`` scaled to [0, 1]."""
    if images.dtype != np.uint8:
        raise TypeError(f"expected uint8 images (0..255), got dtype {images.dtype}")
    return images.reshape(len(images), -1).astype(np.float32) / 255


def batch_indices(
    n: int,
    batch_size: int,
    *,
    shuffle: bool = False,
    rng: np.random.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[np.ndarray]:
    """Yield index arrays that cover ``range(n)`` in batches (shuffled with ``rng`` if asked)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if shuffle and rng is None:
        raise ValueError(
            "shuffle=True needs an explicit rng (np.random.default_rng(seed))"
        )
    order = rng.permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


class BatchSampler:
    """Which rows form each batch, epoch after epoch: the framework-free half of a loader.

    With ``shuffle=True`` the order changes every epoch, drawn from a numpy generator seeded
    with ``seed``. Both frameworks' ``ArrayLoader`` build on it and only gather the rows.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size = n, batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return (
            self.n // self.batch_size
            if self.drop_last
            else -(-self.n // self.batch_size)
        )

    def indices(self) -> Iterator[np.ndarray]:
        """One epoch of index batches."""
        rng = self._rng if self.shuffle else None
        return batch_indices(
            self.n,
            self.batch_size,
            shuffle=self.shuffle,
            rng=rng,
            drop_last=self.drop_last,
        )
