"""Lab 3 self-checks for JAX notebooks: ``H.lab03.check_train_step(train_step)`` etc.

The checks are :mod:`helpers.labs.lab03.checks`, shared with PyTorch; this module builds their
JAX half (:class:`~helpers.labs.lab03.checks.Ops`): the transforms, a small Flax NNX model
with plain SGD whose right and wrong training steps are run here, an evaluation model with
Dropout and BatchNorm that records the mode it is called (or traced) in, and batches as JAX
arrays; and, per check, the JAX errors that mean one mistake in that exercise (``EXPLAIN``).
For exercise 4 (:mod:`helpers.labs.lab03.early_stopping`) a Linear and a BatchNorm whose
Variables' values are set as an optimizer does. For exercise 5
(:mod:`helpers.labs.lab03.accumulation`) an MLP that records the rows of each
call and the trace of its parameters (one per differentiation), and the optimizer's own
step counter.
JAX has no ``no_grad`` to forget: nothing is recorded unless a function is
differentiated, so evaluation only has to run in evaluation mode.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from helpers.jax.labkit import lab_framework
from helpers.labs.kit import Hints, explainer
from helpers.labs.lab03 import accumulation, early_stopping, stopping_hints
from helpers.labs.lab03 import checks as lab03

__all__ = [
    "check_dataset",
    "check_early_stopping",
    "check_evaluate_accuracy",
    "check_train_step",
    "check_train_step_accumulated",
]

HINTS = Hints(
    lab03.HINTS,
    early_stopping.HINTS,
    stopping_hints.JAX_HINTS,
    accumulation.HINTS,
    {
        "grad_accumulated": "the gradients of earlier steps were added to this one: a JAX "
        "gradient is the return value of one call; apply only this batch's gradients "
        "(optimizer.update(model, grads)), keep no running sum",
        "eval_missing": "call model.eval() before evaluating: it sets Dropout's "
        "deterministic and BatchNorm's use_running_average; in training mode dropout drops "
        "units at random and batch-norm uses the batch's own statistics",
        "jax_jit": "your step updates the model when run as it is, but jax.jit runs it on "
        "copies of the model and the optimizer, so the update is lost: decorate it with "
        "@nnx.jit, which writes the changes back into your objects",
        "loss_number_jit": "inside a jitted function the arrays are tracers, with no value "
        "yet: float(...), int(...) and .item() fail there. Return the loss itself, a 0-d "
        "array (convert it outside the jitted function, if at all)",
        "integer_labels": "optax.softmax_cross_entropy expects one-hot labels (B, C): with "
        "integer labels (B,) use optax.softmax_cross_entropy_with_integer_labels(logits, y)",
        "accum_last_only": "only the last micro-batch's gradients reached the update: add "
        "each micro-batch's weighted gradients to the running sum (total = "
        "jax.tree.map(jnp.add, total, grads)) instead of replacing it",
        "accum_step_each": "call optimizer.update(model, total) once, after the loop over "
        "micro-batches: an update per micro-batch makes several small steps, not the whole "
        "batch's one",
        "accum_no_step": "call optimizer.update(model, total) once, after the loop, with the "
        "summed gradients (and compile with @nnx.jit, not jax.jit, which updates copies)",
        "accum_zero_update": "the gradients applied were zero: jax.tree.map returns a new "
        "tree and changes nothing in place, so assign its result (total = "
        "jax.tree.map(jnp.add, total, grads)), and start the sum from the first gradients "
        "(or jax.tree.map(jnp.zeros_like, grads))",
        "accum_loss_number": "keep the total loss a 0-d array: add the weighted losses "
        "as arrays, without float(...) or .item()",
        "accum_one_backward": "compute each micro-batch's gradients with its own call of "
        "nnx.value_and_grad, inside the loop: differentiating one function that loops over "
        "all the micro-batches keeps every micro-batch's activations in memory until the "
        "end, which accumulation exists to avoid",
        "accum_loss_dtype": "return the loss in float32, as the loss function gives it: "
        "no .astype(...) to another dtype",
        "accum_static": "micro_batch_size sets the slices' bounds, so under jit it must be "
        "a Python int: compile with @nnx.jit(static_argnames='micro_batch_size'), or "
        "compile only the gradient of one micro-batch",
        "accum_answer_key": "optax.MultiSteps accumulates for you, over several calls: "
        "this exercise asks you to write it, with the optimizer you were given and one "
        "optimizer.update(model, total) per call",
    },
)

# The lab's Framework; each check gets a copy that also explains its own exercise's errors.
JAX = lab_framework(HINTS, explainer({}, HINTS))

# JAX errors that mean one mistake in one exercise only, so each check explains its own.
# float(x), int(x) or x.item() on a tracer, inside the student's jitted step:
_CONCRETE = (
    r"problem arose with the `(float|int|complex)` function|in the item\(\) method"
)
# optax.softmax_cross_entropy(logits, y) with y integer labels (B,): y * logits (B, C)
_ONE_HOT = r"shapes=\[\((\d+),\), \(\1, \d+\)\]"
EXPLAIN = {
    "DigitDataset": {
        "'NoneType' object cannot be interpreted as an integer": "dataset_len"
    },
    "train_step": {_CONCRETE: "loss_number_jit", _ONE_HOT: "integer_labels"},
    "train_step_accumulated": {
        "__index__\\(\\) method was called on traced array": "accum_static",
        _CONCRETE: "loss_number_jit",
        _ONE_HOT: "integer_labels",
    },
    # argmax over the batch's axis, or logits compared with labels: (C,)/(B, C) vs (B,)
    "evaluate_accuracy": {"(?i)incompatible shapes for broadcasting": "argmax_axis"},
    "EarlyStopping": {stopping_hints.SIGNATURE: "es_signature"},
}
FRAMEWORKS = {
    exercise: replace(JAX, explain=explainer(messages, HINTS))
    for exercise, messages in EXPLAIN.items()
}


def _transforms():
    def scaled(image: np.ndarray) -> jax.Array:  # uint8 (28, 28) -> float32 [0, 1]
        return jnp.asarray(image, jnp.float32) / 255

    def centred(image: np.ndarray) -> jax.Array:  # -> (28, 28, 1) in [-1, 1]
        return (jnp.asarray(image, jnp.float32) / 127.5 - 1)[..., None]

    return scaled, centred


class _Small(nnx.Module):
    """(B, 6) -> (B, 3): Linear, tanh, Linear, with weights drawn by numpy (fixed)."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.fc1 = nnx.Linear(6, 8, rngs=nnx.Rngs(0))
        self.fc2 = nnx.Linear(8, 3, rngs=nnx.Rngs(0))
        for layer in (self.fc1, self.fc2):
            layer.kernel[...] = jnp.asarray(
                rng.normal(size=layer.kernel.shape), jnp.float32
            )
            layer.bias[...] = jnp.asarray(
                rng.normal(size=layer.bias.shape), jnp.float32
            )

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(jnp.tanh(self.fc1(x)))


def _make_model():
    model = _Small()
    return model, nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)


def _prepare(x: np.ndarray, y: np.ndarray) -> tuple[jax.Array, jax.Array]:
    return jnp.asarray(x), jnp.asarray(y, jnp.int32)


def _params(model: nnx.Module) -> list[np.ndarray]:
    return [np.asarray(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]


def _loss(model, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


def _steps(batches, *, accumulate: bool = False, update: bool = True):
    model, optimizer = _make_model()
    losses, total = [], None
    for x, y in batches:
        loss, grads = nnx.value_and_grad(_loss)(model, *_prepare(x, y))
        if accumulate:
            total = grads if total is None else jax.tree.map(jnp.add, total, grads)
            grads = total
        if update:
            optimizer.update(model, grads)
        losses.append(float(loss))
    return losses, _params(model)


def _lost_update(train_step, batches) -> str:
    """The hint key "jax_jit" if the step's unwrapped function updates the model, else "".

    Asked only when the step left the parameters unchanged: ``jax.jit`` passes the model and
    the optimizer as pytrees, so the step updates copies, which are dropped. ``nnx.jit``
    writes the updates back, so a right step it wraps never gets here.
    """
    inner = getattr(train_step, "__wrapped__", None)
    if not callable(inner):
        return ""
    model, optimizer = _make_model()
    start = _params(model)
    try:
        for x, y in batches:
            inner(model, optimizer, *_prepare(x, y))
    except Exception:
        return ""
    after = _params(model)
    unchanged = all(np.allclose(a, b) for a, b in zip(start, after, strict=True))
    return "" if unchanged else "jax_jit"


_MODES: dict[int, list[tuple[bool, bool]]] = {}
_TAGS = itertools.count()


class _Probe(nnx.Module):
    """(B, 12) -> (B, 10): Linear, BatchNorm with set running statistics, Dropout(0.5).

    Each call (or trace, under jit) records whether it ran in training mode, under a tag
    that survives NNX's split and merge (a plain int attribute is static).
    """

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(100 + seed)
        self.linear = nnx.Linear(12, 10, rngs=nnx.Rngs(seed))
        self.norm = nnx.BatchNorm(10, momentum=0.9, epsilon=1e-5, rngs=nnx.Rngs(seed))
        self.drop = nnx.Dropout(0.5, rngs=nnx.Rngs(seed))
        self.linear.kernel[...] = jnp.asarray(rng.normal(size=(12, 10)), jnp.float32)
        self.linear.bias[...] = jnp.asarray(rng.normal(size=10), jnp.float32)
        self.norm.mean[...] = jnp.asarray(rng.normal(size=10), jnp.float32)
        self.norm.var[...] = jnp.asarray(rng.uniform(size=10) + 0.5, jnp.float32)
        self.tag = next(_TAGS)
        _MODES[self.tag] = []

    def __call__(self, x: jax.Array) -> jax.Array:
        training = not (self.drop.deterministic and self.norm.use_running_average)
        _MODES[self.tag].append((training, False))
        return self.drop(self.norm(self.linear(x)))


def _make_probe(seed: int) -> _Probe:
    probe = _Probe(seed)
    probe.train()
    return probe


def _probe_logits(seed: int, x: np.ndarray) -> np.ndarray:
    probe = _Probe(seed)
    probe.eval()
    return np.asarray(probe(jnp.asarray(x)))


def _batches(x: np.ndarray, y: np.ndarray, sizes: Sequence[int]):
    edges = np.cumsum([0, *sizes])
    return [
        (jnp.asarray(x[a:b]), jnp.asarray(y[a:b], jnp.int32))
        for a, b in itertools.pairwise(edges)
    ]


OPS = lab03.Ops(
    transforms=_transforms(),
    make_model=_make_model,
    prepare=_prepare,
    reference_steps={
        "": _steps,
        "grad_accumulated": partial(_steps, accumulate=True),
        "no_update": partial(_steps, update=False),
    },
    params=_params,
    make_probe=_make_probe,
    probe_logits=_probe_logits,
    probe_modes=lambda model: list(_MODES.get(getattr(model, "tag", -1), [])),
    batches=_batches,
    lost_update=_lost_update,
)

_ROWS: dict[int, list[int]] = {}
_TRACES: dict[int, list[tuple[Any, int]]] = {}  # (the parameters' trace, rows) per call
# Models called on jit's tracers: their rows are recorded per trace, not per call.
_COMPILED: set[int] = set()


class _Recorded(nnx.Module):
    """The accumulation check's MLP, (B, D) -> (B, C), recording the rows of each input.

    Rows are recorded per call, or per trace under jit; the tag (static, new per model)
    makes a jitted function trace again for every model, so a cached trace hides nothing.
    """

    def __init__(self, params: list[np.ndarray]) -> None:
        (d, h), c = params[0].shape, len(params[3])
        self.fc1 = nnx.Linear(d, h, rngs=nnx.Rngs(0))
        self.fc2 = nnx.Linear(h, c, rngs=nnx.Rngs(0))
        ours = [self.fc1.kernel, self.fc1.bias, self.fc2.kernel, self.fc2.bias]
        for p, value in zip(ours, params, strict=True):
            p[...] = jnp.asarray(value)
        self.tag = next(_TAGS)
        _ROWS[self.tag], _TRACES[self.tag] = [], []

    def __call__(self, x: jax.Array) -> jax.Array:
        _ROWS[self.tag].append(x.shape[0] if x.ndim > 1 else 1)
        if isinstance(x, jax.core.Tracer):
            _COMPILED.add(self.tag)
        trace = getattr(self.fc1.kernel[...], "_trace", None)  # one per differentiation
        if trace is not None:
            _TRACES[self.tag].append((trace, _ROWS[self.tag][-1]))
        return self.fc2(jnp.tanh(self.fc1(x)))


def _accum_make(params, stale):
    _ROWS.clear()  # the previous models' records
    _TRACES.clear()
    _COMPILED.clear()
    model = _Recorded(params)
    return model, nnx.Optimizer(model, optax.sgd(accumulation.LR), wrt=nnx.Param)


def _joint_rows(model) -> int:
    """The most rows the model saw within one trace of its parameters (one gradient)."""
    calls = _TRACES.get(getattr(model, "tag", -1), [])
    return max(
        (sum(r for t, r in calls if t is trace) for trace, _ in calls), default=0
    )


ACCUM_OPS = accumulation.AccumOps(
    make=_accum_make,
    prepare=_prepare,
    params=lambda model: [
        np.asarray(p[...])
        for p in (model.fc1.kernel, model.fc1.bias, model.fc2.kernel, model.fc2.bias)
    ],
    rows=lambda model: list(_ROWS.get(getattr(model, "tag", -1), [])),
    updates=lambda optimizer: int(optimizer.step[...]),
    joint_rows=_joint_rows,
    covered=lambda model: (
        None if model.tag in _COMPILED else sum(_ROWS.get(model.tag, []))
    ),
    answer_keys=((optax, "MultiSteps"),),
)


def _stop_set(model: nnx.Module, state: dict[str, np.ndarray]) -> None:
    """Each Variable of the model gets a new value (the Variable stays), as in training."""
    for path, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Variable):
            node.set_value(jnp.asarray(state["/".join(map(str, path))]))


def _flat(tree: Mapping, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}/"))
        elif isinstance(v, nnx.Variable):
            out[f"{prefix}{k}"] = np.array(v.get_value())
        elif isinstance(v, (jax.Array, np.ndarray)):
            out[f"{prefix}{k}"] = np.array(v)
    return out


def _stop_values(obj) -> dict[str, np.ndarray] | None:
    """The arrays of a module, an nnx.State or a (pure) dict, as numpy, by path; else None."""
    if isinstance(obj, nnx.Module):
        obj = nnx.state(obj)
    return (_flat(obj) or None) if isinstance(obj, Mapping) else None


def _variables(model: nnx.Module) -> list[nnx.Variable]:
    return [node for _, node in nnx.iter_graph(model) if isinstance(node, nnx.Variable)]


def _stop_shares(obj, own: set[int]) -> bool:
    """Whether obj (a Variable, or a list or dict of them) holds one of the Variables own."""
    if isinstance(obj, Mapping):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_stop_shares(item, own) for item in obj)
    return isinstance(obj, nnx.Variable) and id(obj) in own


STOP_OPS = early_stopping.StopOps(
    make=lambda: nnx.Sequential(  # (B, 3) -> (B, 4)
        nnx.Linear(3, 4, rngs=nnx.Rngs(0)), nnx.BatchNorm(4, rngs=nnx.Rngs(0))
    ),
    set_state=_stop_set,
    read=lambda model: _stop_values(model) or {},
    buffers=frozenset({"layers/1/mean", "layers/1/var"}),
    values=_stop_values,
    shares=lambda obj, model: _stop_shares(obj, {id(v) for v in _variables(model)}),
)

# The checks, bound to this framework. Call them with the student's function or class.
check_dataset = partial(lab03.check_dataset, fw=FRAMEWORKS["DigitDataset"], ops=OPS)
check_train_step = partial(lab03.check_train_step, fw=FRAMEWORKS["train_step"], ops=OPS)
check_evaluate_accuracy = partial(
    lab03.check_evaluate_accuracy, fw=FRAMEWORKS["evaluate_accuracy"], ops=OPS
)
check_early_stopping = partial(
    early_stopping.check_early_stopping, fw=FRAMEWORKS["EarlyStopping"], ops=STOP_OPS
)
check_train_step_accumulated = partial(
    accumulation.check_accumulation,
    fw=FRAMEWORKS["train_step_accumulated"],
    ops=ACCUM_OPS,
)
