"""The PyTorch half of the helpers: ``from helpers import torch as H``.

The same public names as ``helpers.jax`` (``tests/test_parity.py``), each written
the PyTorch way, beside the framework-free core.
Explicit re-exports: search for a name to find where it comes from. Lab adapters
(``H.lab01``) and topic modules (``H.tasks``; later ``H.vision``, ``H.text``, ``H.rl``, ...)
are imported on first use.
"""

from helpers.versions import require

require("torch")

from helpers import (  # noqa: E402  (the framework-free core, under the same names)
    CIFAR10_CLASSES,
    SCALES,
    CheckFailed,
    ChecksumError,
    DataNotFoundError,
    History,
    batch_indices,
    confusion_matrix,
    course_root,
    current_scale,
    images_to_vectors,
    legend_below_axes,
    load_cifar10,
    load_imdb,
    load_mnist,
    plot_confusion_matrix,
    plot_history,
    plot_pipeline_schedule,
    plot_step_losses,
    show_images,
    sizes,
    tokenize,
    top_confusions,
)
from helpers._lazy import lazy_names, load  # noqa: E402
from helpers.torch.models import CNN, MLP, count_params  # noqa: E402
from helpers.torch.runtime import (  # noqa: E402
    default_device,
    runtime_info,
    seed_everything,
    set_matmul_precision,
    synchronize,
    time_fn,
    to_device,
)
from helpers.torch.train import (  # noqa: E402
    ArrayLoader,
    cross_entropy,
    evaluate,
    fit,
    predict,
)

__all__ = [
    "CIFAR10_CLASSES",
    "CNN",
    "MLP",
    "SCALES",
    "ArrayLoader",
    "CheckFailed",
    "ChecksumError",
    "DataNotFoundError",
    "History",
    "batch_indices",
    "confusion_matrix",
    "count_params",
    "course_root",
    "cross_entropy",
    "current_scale",
    "default_device",
    "evaluate",
    "fit",
    "images_to_vectors",
    "legend_below_axes",
    "load_cifar10",
    "load_imdb",
    "load_mnist",
    "plot_confusion_matrix",
    "plot_history",
    "plot_pipeline_schedule",
    "plot_step_losses",
    "predict",
    "runtime_info",
    "seed_everything",
    "set_matmul_precision",
    "show_images",
    "sizes",
    "synchronize",
    "time_fn",
    "to_device",
    "tokenize",
    "top_confusions",
]


def __getattr__(name: str):  # PEP 562: H.lab01, H.tasks, ... on first use
    return load(__name__, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *lazy_names(__name__)])
