"""Helpers for the course "PyTorch & JAX: the leading deep-learning frameworks".

The framework-free core lives here: scales (:mod:`helpers.scale`), real data sets
(:mod:`helpers.data`), plots (:mod:`helpers.plot`), metrics (:mod:`helpers.metrics`), the lab
self-check kit (:mod:`helpers.labs`) and the course folder (``course_root``, from
:mod:`helpers.versions`). Notebooks import one framework's half, which re-exports
these names beside its own::

    from helpers import torch as H   # or: from helpers import jax as H

This package itself imports neither torch nor jax.
"""

from helpers.data import (
    CIFAR10_CLASSES,
    ChecksumError,
    DataNotFoundError,
    batch_indices,
    images_to_vectors,
    load_cifar10,
    load_imdb,
    load_mnist,
    tokenize,
)
from helpers.labs import CheckFailed
from helpers.metrics import History, confusion_matrix, top_confusions
from helpers.plot import (
    legend_below_axes,
    plot_confusion_matrix,
    plot_history,
    plot_pipeline_schedule,
    plot_step_losses,
    show_images,
)
from helpers.scale import SCALES, current_scale, sizes
from helpers.versions import course_root

__version__ = "0.1.0"

__all__ = [
    "CIFAR10_CLASSES",
    "SCALES",
    "CheckFailed",
    "ChecksumError",
    "DataNotFoundError",
    "History",
    "batch_indices",
    "confusion_matrix",
    "course_root",
    "current_scale",
    "images_to_vectors",
    "legend_below_axes",
    "load_cifar10",
    "load_imdb",
    "load_mnist",
    "plot_confusion_matrix",
    "plot_history",
    "plot_pipeline_schedule",
    "plot_step_losses",
    "show_images",
    "sizes",
    "tokenize",
    "top_confusions",
]
