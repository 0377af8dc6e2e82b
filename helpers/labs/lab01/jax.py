"""Lab 1 self-checks for JAX notebooks: ``H.lab01.check_preprocess(preprocess)`` etc.

The checks themselves live in :mod:`helpers.labs.lab01.checks`, shared with PyTorch;
this module says how to hand them JAX arrays and how to run a reference Flax NNX training step.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from helpers.jax.models import MLP
from helpers.labs.lab01 import checks as lab01

__all__ = [
    "check_accuracy",
    "check_central_difference",
    "check_mse_grad",
    "check_preprocess",
    "check_train_step",
]


def _to_numpy(value: object) -> np.ndarray:
    if not isinstance(value, jax.Array):
        raise TypeError(type(value).__name__)
    return np.asarray(value)


JAX = lab01.Framework("a jax.Array", jnp.asarray, _to_numpy)


class _JaxTrainStep:
    """A tiny classification problem and a reference SGD step (``lab01.TrainStepHarness``)."""

    def setup(self) -> tuple[MLP, nnx.Optimizer, jax.Array, jax.Array]:
        kx, ky = jax.random.split(jax.random.key(0))
        x = jax.random.normal(kx, (16, 6))
        y = jax.random.randint(ky, (16,), 0, 3)
        model = MLP(
            6, (8,), 3, rngs=nnx.Rngs(0)
        )  # the same initial weights on every call
        return model, nnx.Optimizer(model, optax.sgd(0.5), wrt=nnx.Param), x, y

    def reference_step(self, model, optimizer, x, y) -> float:
        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return float(loss)

    def parameters(self, model) -> np.ndarray:
        leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
        return np.concatenate([np.asarray(p).ravel() for p in leaves])


# The checks, bound to this framework. Call them with the student's function.
check_preprocess = partial(lab01.check_preprocess, fw=JAX)
check_accuracy = partial(lab01.check_accuracy, fw=JAX)
check_central_difference = partial(lab01.check_central_difference, fw=JAX)
check_mse_grad = partial(lab01.check_mse_grad, fw=JAX)
check_train_step = partial(lab01.check_train_step, harness=_JaxTrainStep())
