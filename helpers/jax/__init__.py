"""The JAX half of the helpers: ``from helpers import jax as H``.

It has the same public names as ``helpers.torch`` (a test enforces this), each written the
JAX way (Flax NNX, Optax, explicit PRNG keys), plus everything framework-free from :mod:`helpers`.
"""

import flax as _flax

# Flax NNX's current API (Optimizer(model, tx, wrt=...), optimizer.update(model, grads)) is 0.11+.
if tuple(int(p) for p in _flax.__version__.split(".")[:2]) < (0, 11):
    raise ImportError(
        f"the course needs flax >= 0.11 (NNX API); found {_flax.__version__}"
    )

from helpers import *  # noqa: F403  (the framework-free core, under the same names)
from helpers import __all__ as _core
from helpers.jax import lab01
from helpers.jax.models import *  # noqa: F403
from helpers.jax.models import __all__ as _models
from helpers.jax.runtime import *  # noqa: F403
from helpers.jax.runtime import __all__ as _runtime
from helpers.jax.tasks import *  # noqa: F403
from helpers.jax.tasks import __all__ as _tasks
from helpers.jax.train import *  # noqa: F403
from helpers.jax.train import __all__ as _train

__all__ = [*_core, *_models, *_runtime, *_tasks, *_train, "lab01"]
