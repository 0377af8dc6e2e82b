"""Lab 5 self-checks for JAX notebooks: ``H.lab05.check_crop_flip(crop_flip)`` etc.

The checks are :mod:`helpers.labs.lab05.checks`, shared with PyTorch; this module hands them
JAX arrays, Optax's loss (``optax.smooth_labels`` + ``softmax_cross_entropy``), a tiny
BatchNorm network (for evaluation, and with an ``nnx.Optimizer`` (SGD) for the training
step), that step's reference runs (one per known mistake), and turns JAX's error messages into
hints, one table per exercise. For exercise 5 (:mod:`helpers.labs.lab05.mixing`) it counts
the lines of a call's jaxpr (a loop over the images grows with the batch).
"""

from __future__ import annotations

import functools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import helpers.jax.augment
import helpers.jax.vision
from helpers.jax.labkit import lab_framework
from helpers.jax.vision import to_input
from helpers.labs.kit import Hints, explainer
from helpers.labs.lab05 import adapter_hints, mixing, model_checks
from helpers.labs.lab05 import checks as lab05

__all__ = [
    "check_crop_flip",
    "check_cutmix",
    "check_mixup",
    "check_predict_logits",
    "check_smoothed_cross_entropy",
    "check_train_step",
]

HINTS = Hints(
    lab05.HINTS,
    mixing.HINTS,
    {
        "mix_traced": "work with the arrays as they are: no int(...), float(...), .item(), "
        ".tolist() or np.asarray(...) of the inputs, which fail when the function is traced (under "
        "jax.jit or jax.vmap, as a training step compiles it); gather with images[perm] "
        "and broadcast lam over the whole batch, no Python loop over the images",
        "mix_immutable": "JAX arrays cannot be assigned to: paste the box with "
        "x.at[:, top:top + height, left:left + width].set(partner[:, top:top + height, "
        "left:left + width]), which returns a new array, or choose with jnp.where and a "
        "(H, W) mask of the box",
        "step_smoothing_twice": "smooth the one-hot targets once: optax.smooth_labels "
        "already does it, so do not pass it targets you smoothed yourself, nor smooth its "
        "result again",
        "crop_bounds": "start each crop at offsets[i] itself, rows offsets[i, 0] .. "
        "offsets[i, 0] + H - 1 and columns offsets[i, 1] .. offsets[i, 1] + W - 1 of the "
        "padded image, no + 1: yours start a pixel further, and JAX clamps a start or "
        "index past the end silently instead of raising",
        "loss_answer_key": "write the loss yourself from jax.nn.log_softmax and "
        "jax.nn.one_hot: optax's smooth_labels and cross-entropies (and "
        "H.vision.smoothed_cross_entropy) are the answer key the check compares with",
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
        "loss_float": "return the 0-d jax.Array, not a Python float: float(...) copies "
        "the value to Python (waiting for the device) and fails inside jit",
        "model_input": "give the model H.vision.to_input(images, mean, std): the "
        "normalised batch in NHWC order, (B, H, W, C) float32, the layout Flax's "
        "convolutions take; do not transpose it",
        "logits_dtype": "return float32 logits, what the model computes: cast them with "
        ".astype(jnp.float32) if the model ran in bfloat16; not float64 either",
        "loss_dtype": "compute the loss in float32: cast bfloat16 logits with "
        ".astype(jnp.float32) before the loss (optax's losses keep their inputs' dtype)",
        "step_layout": "x is already NHWC, (B, H, W, 3), the layout Flax's convolutions "
        "take: give it to the model as it is, do not transpose it to NCHW",
        "update_wrong": "call 1's loss is right but call 2's is not, so the first update "
        "differs: call optimizer.update(model, grads) once per call, on the optimizer "
        "passed in (SGD with Nesterov momentum), not an update of your own nor two",
        "traced_if": "inside jax.vmap each flip is a traced value, not a Python bool: "
        "choose with jnp.where(flip, crop[:, ::-1], crop), not with an if",
        "traced_slice": "inside jax.vmap the offsets are traced values: cut the window "
        "with jax.lax.dynamic_slice(image, (row, col, 0), (H, W, C)); a Python slice "
        "needs integers known before tracing",
        "step_traced_if": "inside nnx.jit smoothing is a traced scalar, not a Python "
        "float: compute with it (optax.smooth_labels takes it as it is), do not branch "
        "on it with an if",
    },
    adapter_hints.JAX,
)

# JAX error messages (a regular expression on the message) -> the hint that fixes them, one
# table per exercise: the same message can have a different cause in each.
_ERRORS = {
    "crop_flip": {
        r"Incompatible shapes for broadcasting": "flip_broadcast",
        r"pad_width": "pad_axes",
        r"TracerBoolConversionError|boolean conversion of traced": "traced_if",
        r"Slice entries must be static|slice indices must have static": "traced_slice",
        r"Slice size .* out of range|slice_sizes must be less than": "nhwc",
        r"vmap got inconsistent sizes": "pad_axes",
        r"Length of slice indices must match number of operand": "slice_rank",
    },
    "smoothed_cross_entropy": {
        r"incompatible shapes for broadcasting": "classes_hardcoded"
    },
    "predict_logits": {
        r"expected images channels last": "to_input_layout",
        r"feature dimension|rhs input feature": "model_input",
    },
    "mixup": {r"Incompatible shapes for broadcasting": "mix_lam_broadcast"},
    "cutmix": {
        r"does not support item assignment|immutable": "mix_immutable",
        r"Incompatible shapes for broadcasting": "cut_box_swapped",
    },
    "train_step": {
        r"Gradient only defined for scalar-output": "loss_not_scalar",
        r"update requires both \(model, grads\)": "no_update",
        r"Cannot mutate \w+ from a different trace level": "closure_model",
        r"arose with the `float` function": "loss_float",
        r"boolean conversion of traced": "step_traced_if",
        r"feature dimension|rhs input feature": "step_layout",
        r"subdtype of <class 'numpy.floating'>|Incompatible shapes for broadcast": (
            "step_one_hot"
        ),
    },
}
FRAMEWORKS = {
    exercise: lab_framework(HINTS, explainer(errors, HINTS))
    for exercise, errors in _ERRORS.items()
}
JAX = FRAMEWORKS["crop_flip"]  # to_numpy etc.: the exercises' differ only in explain


def _library_loss(logits: np.ndarray, labels: np.ndarray, smoothing: float) -> float:
    logits = jnp.asarray(logits)  # float32: JAX's default precision
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), smoothing)
    return float(optax.softmax_cross_entropy(logits, targets).mean())


class _TinyNet(nnx.Module):
    """Exercises 3 and 4's model: conv 3x3, BatchNorm, GELU, mean over positions, linear.

    ``(B, H, W, 3)`` float32 -> logits ``(B, 10)``; the weights of ``tiny_net_weights()``.
    """

    def __init__(self) -> None:
        w = {k: jnp.asarray(v) for k, v in model_checks.tiny_net_weights().items()}
        width, classes = w["fc_kernel"].shape

        def given(
            name: str,
        ):  # an initializer that returns the given weights: no random ops
            return lambda key, shape, dtype=None: w[name]

        rngs = nnx.Rngs(0)
        self.conv = nnx.Conv(
            3,
            width,
            (3, 3),
            padding=1,
            use_bias=False,
            kernel_init=given("conv"),
            rngs=rngs,
        )
        # Flax's momentum is the weight of the old average: PyTorch's 0.1 is 0.9 here.
        self.bn = nnx.BatchNorm(
            width,
            momentum=0.9,
            epsilon=1e-5,
            scale_init=given("bn_scale"),
            bias_init=given("bn_bias"),
            rngs=rngs,
        )
        self.bn.mean[...] = w["bn_mean"]
        self.bn.var[...] = w["bn_var"]
        self.fc = nnx.Linear(
            width,
            classes,
            kernel_init=given("fc_kernel"),
            bias_init=given("fc_bias"),
            rngs=rngs,
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jax.nn.gelu(self.bn(self.conv(x)), approximate=True)  # (B, H, W, w)
        return self.fc(x.mean((1, 2)))  # (B, 10)


def _make_model() -> _TinyNet:
    """Exercise 3's model, in training mode (as after training); its BatchNorm running
    statistics are far from the statistics of the check's batches."""
    model = _TinyNet()
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


# One optax transformation for every optimizer the check builds: it is static in the
# optimizer's graph, so a new one (new closures) would make nnx.jit compile the step again.
_STEP_TX = optax.sgd(
    model_checks.STEP_LR, momentum=model_checks.STEP_MOMENTUM, nesterov=True
)


def _step_setup() -> tuple[_TinyNet, nnx.Optimizer]:
    """A fresh model, in evaluation mode (as after an evaluation), and its SGD."""
    model = _TinyNet()
    model.eval()
    return model, nnx.Optimizer(model, _STEP_TX, wrt=nnx.Param)


def _step_prepare(x: np.ndarray, labels: np.ndarray) -> tuple[jax.Array, jax.Array]:
    return jnp.asarray(x), jnp.asarray(labels, jnp.int32)


def _step_weights(model: _TinyNet) -> dict[str, np.ndarray]:
    """The model's weights and running statistics in the layout of ``tiny_net_weights()``."""
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


# Each known mistake of the training step as switches of one compiled reference step (a
# static variant would compile it once per mistake; eager JAX compiles each small operation).
_STEP_SWITCHES = {
    "": {},
    "no_update": {"update": 0.0},  # zero gradients: SGD (no weight decay) does not move
    "step_smoothing_twice": {"twice": 1.0},
    "step_no_smoothing": {"plain": 1.0},
    "loss_sum": {"total": 1.0},
}


@functools.partial(nnx.jit, static_argnames="train")
def _reference_step(model, optimizer, x, y, s, switches, *, train: bool) -> jax.Array:
    """One reference step, or a known mistake's (``switches``, ``train=False``)."""
    if train:
        model.train()

    def loss_fn(model):
        logits = model(x)  # (B, 10)
        one_hot = jax.nn.one_hot(y, logits.shape[-1])
        targets = optax.smooth_labels(one_hot, s)
        targets = jnp.where(switches["twice"], optax.smooth_labels(targets, s), targets)
        targets = jnp.where(switches["plain"], one_hot, targets)
        per_example = optax.softmax_cross_entropy(logits, targets)  # (B,)
        return jnp.where(switches["total"], per_example.sum(), per_example.mean())

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, jax.tree.map(lambda g: g * switches["update"], grads))
    return loss


@functools.cache
def _step_train(variant: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Two reference steps (``""``) or a known mistake's: the losses ``(2,)``, the weights."""
    switches = dict(twice=0.0, plain=0.0, total=0.0, update=1.0)
    switches.update(_STEP_SWITCHES.get(variant, {}))
    switches = {k: jnp.float32(v) for k, v in switches.items()}
    model, optimizer = _step_setup()
    losses = []
    smoothings = model_checks.STEP_SMOOTHING  # one per call
    for (x, labels), s in zip(model_checks.step_batches(), smoothings, strict=True):
        name, _, constant = variant.partition("=")  # step_constant_smoothing=<s>
        s = float(constant) if name == "step_constant_smoothing" else s
        x, y = _step_prepare(x, labels)
        train = variant != "train_mode_missing"
        losses.append(
            float(_reference_step(model, optimizer, x, y, s, switches, train=train))
        )
    return np.asarray(losses), _step_weights(model)


def _equations(jaxpr) -> int:
    """The equations of ``jaxpr``, those of the jaxprs nested in it (jit, vmap) included."""
    n = 0
    for eqn in jaxpr.eqns:
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr holds a Jaxpr
                n += _equations(inner) if hasattr(inner, "eqns") else 0
        n += 1
    return n


def _ops(fn, args: tuple) -> int | str | None:
    """How many operations the jaxpr of ``fn(*args)`` has (numpy arrays traced); the key
    "mix_traced" where a traced array was used as a Python value; None on other errors."""
    traced = [i for i, a in enumerate(args) if isinstance(a, np.ndarray)]

    def call(*arrays):
        full = list(args)
        for i, a in zip(traced, arrays, strict=True):
            full[i] = a
        return fn(*full)

    try:
        return _equations(jax.make_jaxpr(call)(*(args[i] for i in traced)).jaxpr)
    except (
        jax.errors.ConcretizationTypeError,  # bool(...), float(...) of a traced value
        jax.errors.TracerIntegerConversionError,  # int(...), an index
        jax.errors.TracerArrayConversionError,  # np.asarray(...)
    ):
        return "mix_traced"
    except Exception:  # a function that cannot be traced for another reason: no count
        return None


# The checks, bound to this framework. Call them with the student's function.
check_mixup = partial(
    mixing.check_mixup, fw=FRAMEWORKS["mixup"], int_dtype=np.int32, ops=_ops
)
check_cutmix = partial(
    mixing.check_cutmix, fw=FRAMEWORKS["cutmix"], int_dtype=np.int32, ops=_ops
)
check_crop_flip = partial(
    lab05.check_crop_flip,
    fw=FRAMEWORKS["crop_flip"],
    answer_keys=lab05.crop_flip_answer_keys(helpers.jax.augment, helpers.jax.vision),
    ops=_ops,
)
check_smoothed_cross_entropy = partial(
    lab05.check_smoothed_cross_entropy,
    fw=FRAMEWORKS["smoothed_cross_entropy"],
    library=_library_loss,
    int_dtype=np.int32,
    # H.vision's first: a call of it reports it, not the optax functions inside it
    answer_keys=(
        (helpers.jax.vision, "smoothed_cross_entropy"),
        # each name where a student may reach it: optax and optax.losses are two modules
        *(
            (module, name)
            for module in (optax, optax.losses)
            for name in (
                "smooth_labels",
                "softmax_cross_entropy",
                "safe_softmax_cross_entropy",
                "softmax_cross_entropy_with_integer_labels",
            )
        ),
    ),
)
check_predict_logits = partial(
    model_checks.check_predict_logits,
    fw=FRAMEWORKS["predict_logits"],
    make_model=_make_model,
    reference=_reference,
    attached=lambda logits: False,  # JAX records nothing on its arrays
    stats=lambda model: np.concatenate([model.bn.mean[...], model.bn.var[...]]),
    training=lambda model: not model.bn.use_running_average,
)
check_train_step = partial(
    model_checks.check_train_step,
    fw=FRAMEWORKS["train_step"],
    setup=_step_setup,
    prepare=_step_prepare,
    train=_step_train,
    weights=_step_weights,
    training=lambda model: not model.bn.use_running_average,
    attached=lambda loss: False,  # JAX records nothing on its arrays
    variants=(
        "no_update",
        "step_smoothing_twice",
        "step_no_smoothing",
        "train_mode_missing",
        "loss_sum",
    ),
)
