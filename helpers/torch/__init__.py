"""The PyTorch half of the helpers: ``from helpers import torch as H``.

It has the same public names as ``helpers.jax`` (a test enforces this), each written the
PyTorch way, plus everything framework-free from :mod:`helpers`.
"""

from helpers import *  # noqa: F403  (the framework-free core, under the same names)
from helpers import __all__ as _core
from helpers.torch import lab01
from helpers.torch.models import *  # noqa: F403
from helpers.torch.models import __all__ as _models
from helpers.torch.runtime import *  # noqa: F403
from helpers.torch.runtime import __all__ as _runtime
from helpers.torch.tasks import *  # noqa: F403
from helpers.torch.tasks import __all__ as _tasks
from helpers.torch.train import *  # noqa: F403
from helpers.torch.train import __all__ as _train

__all__ = [*_core, *_models, *_runtime, *_tasks, *_train, "lab01"]
