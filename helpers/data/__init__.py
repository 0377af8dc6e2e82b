"""The course's real data sets as numpy arrays and Python lists, and batching.

Framework-free on purpose: both notebooks of a pair load exactly the same bytes, and each
framework's helpers turn them into tensors or arrays on its own device. Every loader checks
sha256 (:mod:`helpers.data.download`), accepts the course's offline formats described in
``shared/data/README.md``, and returns a well-mixed fixed order (:mod:`helpers.data.common`).
"""

from helpers.data.batching import BatchSampler, batch_indices, images_to_vectors
from helpers.data.cifar10 import CIFAR10_CLASSES, load_cifar10
from helpers.data.download import ChecksumError, DataNotFoundError
from helpers.data.imdb import load_imdb, tokenize
from helpers.data.mnist import load_mnist

__all__ = [
    "CIFAR10_CLASSES",
    "BatchSampler",
    "ChecksumError",
    "DataNotFoundError",
    "batch_indices",
    "images_to_vectors",
    "load_cifar10",
    "load_imdb",
    "load_mnist",
    "tokenize",
]
