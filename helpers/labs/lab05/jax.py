"""Lab 5 self-checks for JAX notebooks: ``H.lab05.check_crop_flip(crop_flip)`` etc.

The checks are :mod:`helpers.labs.lab05.checks`, shared with PyTorch; this module hands them
JAX arrays, Optax's loss (``optax.smooth_labels`` + ``softmax_cross_entropy``) and a small
``H.vision.CifarNet``, and turns JAX's error messages into hints.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from helpers.jax.labkit import lab_framework
from helpers.jax.vision import CifarNet, to_input
from helpers.labs.kit import Hints, explainer
from helpers.labs.lab05 import checks as lab05

__all__ = ["check_crop_flip", "check_predict_logits", "check_smoothed_cross_entropy"]

HINTS = Hints(lab05.HINTS)

# JAX error messages (a regular expression on the message) -> the hint that fixes them.
_ERRORS = {
    r"feature dimension|rhs input feature|Incompatible shapes|pad_width": "nhwc",
}
_explain = explainer(_ERRORS, HINTS)
JAX = lab_framework(HINTS, _explain)


def _library_loss(logits: np.ndarray, labels: np.ndarray, smoothing: float) -> float:
    logits = jnp.asarray(logits)  # float32: JAX's default precision
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), smoothing)
    return float(optax.softmax_cross_entropy(logits, targets).mean())


def _make_model() -> CifarNet:
    """A small CifarNet whose BatchNorm running statistics are far from batch statistics."""
    model = CifarNet((4, 8, 8, 8), rngs=nnx.Rngs(0))
    rng = np.random.default_rng(1)
    for _, m in nnx.iter_graph(model):
        if isinstance(m, nnx.BatchNorm):
            n = m.mean.shape[0]
            m.mean.value = jnp.asarray(rng.normal(size=n), jnp.float32)
            m.var.value = jnp.asarray(rng.random(n) + 0.5, jnp.float32)
    model.train()
    return model


def _reference(model, images, mean, std, mistake: str) -> np.ndarray:
    model = nnx.clone(model)  # a training-mode forward updates running statistics
    x = images[:, :, ::-1] if mistake == "test_flip" else images
    if mistake == "not_normalised":
        mean, std = np.zeros(3, np.float32), np.ones(3, np.float32)
    if mistake == "train_mode":
        model.train()
    else:
        model.eval()
    return np.asarray(model(to_input(jnp.asarray(np.ascontiguousarray(x)), mean, std)))


# The checks, bound to this framework. Call them with the student's function.
check_crop_flip = partial(lab05.check_crop_flip, fw=JAX)
check_smoothed_cross_entropy = partial(
    lab05.check_smoothed_cross_entropy,
    fw=JAX,
    library=_library_loss,
    int_dtype=np.int32,
)
check_predict_logits = partial(
    lab05.check_predict_logits, fw=JAX, make_model=_make_model, reference=_reference
)
