"""Lab 5 self-checks for JAX notebooks: ``H.lab05.check_crop_flip(crop_flip)`` etc.

The checks are :mod:`helpers.labs.lab05.checks`, shared with PyTorch; this module hands them
JAX arrays, Optax's loss (``optax.smooth_labels`` + ``softmax_cross_entropy``), a small
``H.vision.CifarNet``, a tiny BatchNorm network with an ``nnx.Optimizer`` (SGD) for the
training step and that step's reference runs (one per known mistake), and turns JAX's error
messages into hints.
"""

from __future__ import annotations

import functools
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

__all__ = [
    "check_crop_flip",
    "check_predict_logits",
    "check_smoothed_cross_entropy",
    "check_train_step",
]

HINTS = Hints(
    lab05.HINTS,
    {
        "smoothing_twice": "smooth the one-hot targets once: target = (1 - s) * one_hot + "
        "s / C; optax.smooth_labels already does it, so do not smooth its result again "
        "(nor pass it targets you smoothed yourself)",
        "step_no_smoothing": "train on the smoothed loss: optax.softmax_cross_entropy("
        "logits, optax.smooth_labels(jax.nn.one_hot(labels, C), smoothing)), or your "
        "smoothed_cross_entropy; softmax_cross_entropy_with_integer_labels does not smooth",
        "train_mode_missing": "call model.train() at the start of the step: the model may "
        "come from evaluation, and model.eval() set BatchNorm's use_running_average, so it "
        "normalises with its running statistics and does not update them",
        "no_update": "apply the gradients: optimizer.update(model, grads) after "
        "nnx.value_and_grad (since Flax 0.11 update takes the model and the gradients)",
        "loss_not_scalar": "the loss is one number: take the .mean() over the batch of "
        "optax.softmax_cross_entropy's per-example losses; nnx.value_and_grad "
        "differentiates a function that returns a scalar",
        "closure_model": "inside the loss function call the model it receives, "
        "def loss_fn(model): ... model(x): nnx.value_and_grad differentiates with respect "
        "to that argument, not to the model of the enclosing step",
    },
)

# JAX error messages (a regular expression on the message) -> the hint that fixes them.
_ERRORS = {
    r"feature dimension|rhs input feature|Incompatible shapes|pad_width": "nhwc",
    r"Gradient only defined for scalar-output": "loss_not_scalar",
    r"update requires both \(model, grads\)": "no_update",
    r"Cannot mutate \w+ from a different trace level": "closure_model",
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
            m.mean[...] = jnp.asarray(rng.normal(size=n), jnp.float32)
            m.var[...] = jnp.asarray(rng.random(n) + 0.5, jnp.float32)
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


class _StepNet(nnx.Module):
    """Exercise 4's model: conv 3x3, BatchNorm, GELU, mean over positions, linear.

    ``(B, H, W, 3)`` float32 -> logits ``(B, 10)``; the weights of ``step_weights()``.
    """

    def __init__(self) -> None:
        w = {k: jnp.asarray(v) for k, v in lab05.step_weights().items()}
        width, classes = w["fc_kernel"].shape
        rngs = nnx.Rngs(0)
        self.conv = nnx.Conv(3, width, (3, 3), padding=1, use_bias=False, rngs=rngs)
        # Flax's momentum is the weight of the old average: PyTorch's 0.1 is 0.9 here.
        self.bn = nnx.BatchNorm(width, momentum=0.9, epsilon=1e-5, rngs=rngs)
        self.fc = nnx.Linear(width, classes, rngs=rngs)
        self.conv.kernel[...] = w["conv"]
        self.bn.scale[...] = w["bn_scale"]
        self.bn.bias[...] = w["bn_bias"]
        self.bn.mean[...] = w["bn_mean"]
        self.bn.var[...] = w["bn_var"]
        self.fc.kernel[...] = w["fc_kernel"]
        self.fc.bias[...] = w["fc_bias"]

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jax.nn.gelu(self.bn(self.conv(x)), approximate=True)  # (B, H, W, w)
        return self.fc(x.mean((1, 2)))  # (B, 10)


def _step_setup() -> tuple[_StepNet, nnx.Optimizer]:
    """A fresh model, in evaluation mode (as after an evaluation), and its SGD."""
    model = _StepNet()
    model.eval()
    tx = optax.sgd(lab05.STEP_LR, momentum=lab05.STEP_MOMENTUM, nesterov=True)
    return model, nnx.Optimizer(model, tx, wrt=nnx.Param)


def _step_prepare(x: np.ndarray, labels: np.ndarray) -> tuple[jax.Array, jax.Array]:
    return jnp.asarray(x), jnp.asarray(labels, jnp.int32)


def _step_weights(model: _StepNet) -> dict[str, np.ndarray]:
    """The model's weights and running statistics in the layout of ``step_weights()``."""
    arrays = {
        "conv": model.conv.kernel,
        "bn_scale": model.bn.scale,
        "bn_bias": model.bn.bias,
        "bn_mean": model.bn.mean,
        "bn_var": model.bn.var,
        "fc_kernel": model.fc.kernel,
        "fc_bias": model.fc.bias,
    }
    return {k: np.asarray(v[...]) for k, v in arrays.items()}


@functools.cache
def _step_train(variant: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Two reference steps (``""``) or a known mistake's: the losses ``(2,)``, the weights."""
    model, optimizer = _step_setup()
    losses = []
    for (x, labels), s in zip(lab05.step_batches(), lab05.STEP_SMOOTHING, strict=True):
        x, y = _step_prepare(x, labels)
        s = lab05.STEP_SMOOTHING[0] if variant == "step_constant_smoothing" else s
        if variant != "train_mode_missing":
            model.train()

        def loss_fn(model, x=x, y=y, s=s):
            logits = model(x)  # (B, 10)
            one_hot = jax.nn.one_hot(y, logits.shape[-1])
            targets = optax.smooth_labels(one_hot, s)
            if variant == "smoothing_twice":
                targets = optax.smooth_labels(targets, s)
            if variant == "step_no_smoothing":
                targets = one_hot
            per_example = optax.softmax_cross_entropy(logits, targets)  # (B,)
            return per_example.sum() if variant == "loss_sum" else per_example.mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        if variant != "no_update":
            optimizer.update(model, grads)
        losses.append(float(loss))
    return np.asarray(losses), _step_weights(model)


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
check_train_step = partial(
    lab05.check_train_step,
    fw=JAX,
    setup=_step_setup,
    prepare=_step_prepare,
    train=_step_train,
    weights=_step_weights,
    training=lambda model: not model.bn.use_running_average,
    attached=lambda loss: False,  # JAX records nothing on its arrays
    variants=(
        "no_update",
        "smoothing_twice",
        "step_no_smoothing",
        "step_constant_smoothing",
        "train_mode_missing",
        "loss_sum",
    ),
)
