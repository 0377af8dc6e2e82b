"""Lab 3 self-checks shared by both frameworks, written once on numpy answers.

Exercises 1-3: a ``Dataset`` with a transform, a training step, and an evaluation function
that returns the accuracy (4, early stopping, is :mod:`helpers.labs.lab03.early_stopping`; 5,
gradient accumulation, :mod:`helpers.labs.lab03.accumulation`). Each
``check_*`` takes the student's function (or class), a :class:`~helpers.labs.kit.Framework`
and an :class:`Ops` the adapter builds: the framework's half of each check (build a model, run
the reference step and the known mistakes, read parameters back as numpy).

The known mistakes this lab exists to catch, and how:

* labels shuffled apart from images: the dataset's item ``i`` must pair ``transform(image i)``
  with label ``i``, for every ``i`` of two datasets;
* gradients accumulated (``zero_grad`` forgotten, or old gradients added): three steps from
  the same start are compared with the correct steps and with the accumulating ones;
* evaluation in training mode or with autograd recording: the check's model records the mode
  it was called in (a forward hook, or the flags at trace time);
* accuracy averaged over batches of unequal size: the check's batches are chosen so that the
  per-batch mean and the per-example accuracy differ.

The hints, and the accuracies that wrong evaluations return, are in
:mod:`helpers.labs.lab03.mistakes`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, Framework, checking
from helpers.labs.lab03.mistakes import HINTS, evaluation_mistakes

__all__ = [
    "HINTS",
    "Ops",
    "check_dataset",
    "check_evaluate_accuracy",
    "check_train_step",
]


def _no_problem(*args: Any) -> str:
    return ""


@dataclass(frozen=True)
class Ops:
    """A framework's half of the checks, built by an adapter (all arrays in and out numpy).

    ``transforms``: two per-image transforms, uint8 (28, 28) -> a framework array.
    ``make_model()``: a fresh (model, optimizer) for the training step, same weights each time.
    ``prepare(x, y)``: numpy batch -> the framework's (x, y) with its label dtype.
    ``reference_steps``: hint key (or ``""`` for the right answer) -> a function that runs
    the steps on a fresh model and returns (losses, parameters).
    ``params(model)``: the parameters as a list of numpy arrays.
    ``make_probe(seed)``: an evaluation model (Dropout + BatchNorm) in training mode.
    ``probe_logits(seed, x)``: that model's logits in evaluation mode, computed apart.
    ``probe_modes(model)``: the modes it was called in: a list of (training, recording).
    ``batches(x, y, sizes)``: consecutive batches of those sizes, framework arrays.
    ``loss_problem(loss)``: the key of the framework's hint for a returned loss that holds a
    number but must not be returned as it is (PyTorch: still attached to its graph), or "".
    ``lost_update(train_step, batches)``: the key of the framework's hint for a step that
    left the parameters unchanged although its code updates them (JAX: ``jax.jit``), or "".
    """

    transforms: tuple[Callable, Callable]
    make_model: Callable[[], tuple[Any, Any]]
    prepare: Callable[[np.ndarray, np.ndarray], tuple[Any, Any]]
    reference_steps: dict[str, Callable]
    params: Callable[[Any], list[np.ndarray]]
    make_probe: Callable[[int], Any]
    probe_logits: Callable[[int, np.ndarray], np.ndarray]
    probe_modes: Callable[[Any], list[tuple[bool, bool]]]
    batches: Callable[[np.ndarray, np.ndarray, Sequence[int]], list]
    loss_problem: Callable[[Any], str] = _no_problem
    lost_update: Callable[[Callable, list], str] = _no_problem


def _scalar(c: Checker, ops: Ops, value: Any, what: str) -> float:
    """The number in a one-number framework array (the loss tensor); fail otherwise."""
    if isinstance(value, (float, int)) and not isinstance(value, bool):
        raise c.fail(
            f"{what} is a Python {type(value).__name__}, expected {c.fw.array_type}",
            c.hint("loss_number"),
        )
    arr = c.array(value, f"{what} to be {c.fw.array_type} holding one number")
    c.expect(
        arr.shape == (),
        f"{what} has shape {arr.shape}, expected ()",
        c.hint("loss_shape"),
    )
    if key := ops.loss_problem(value):
        raise c.fail(f"{what} is still attached to the autograd graph", c.hint(key))
    number = float(arr.reshape(()))
    c.expect(np.isfinite(number), f"{what} is {number}, not a finite number")
    return number


# --- Exercise 1: a Dataset with a transform -------------------------------------------------
def _dataset_case(c: Checker, cls: Any, images, labels, transform) -> None:
    ds = c.call(cls, images, labels, transform)
    n = c.call(len, ds)
    c.expect(
        n == len(labels),
        f"len(dataset) is {n}, expected {len(labels)}",
        c.hint("dataset_len"),
    )
    wanted = [c.fw.to_numpy(transform(im)) for im in images]
    for i in range(len(labels)):
        item = c.call(ds.__getitem__, i)
        c.expect(
            isinstance(item, (tuple, list)) and len(item) == 2,
            f"dataset[{i}] is a {type(item).__name__}, expected a pair (image, label)",
            c.hint("dataset_item"),
        )
        image, label = item
        if isinstance(image, (int, np.integer)):
            raise c.fail(f"dataset[{i}] starts with a number", c.hint("dataset_item"))
        try:
            x = c.fw.to_numpy(image)
        except Exception:
            raise c.fail(
                f"the image of dataset[{i}] is a {type(image).__name__}, expected "
                f"{c.fw.array_type} (what the transform returns)",
                c.hint("image_type"),
            ) from None
        if x.shape == images[i].shape and np.array_equal(x, images[i]):
            raise c.fail(
                f"the image of dataset[{i}] is not transformed",
                c.hint("transform_missing"),
            )
        same = [
            j for j, w in enumerate(wanted) if w.shape == x.shape and np.allclose(x, w)
        ]
        if i not in same:
            hint = c.hint("labels_shuffled") if same else c.hint("transform_missing")
            raise c.fail(
                f"the image of dataset[{i}] is not transform(images[{i}])", hint
            )
        try:
            y = int(
                np.asarray(
                    c.fw.to_numpy(label)
                    if not isinstance(label, (int, np.integer))
                    else label
                ).reshape(())
            )
        except Exception:
            raise c.fail(
                f"the label of dataset[{i}] is a {type(label).__name__}, "
                "expected an integer",
                c.hint("dataset_item"),
            ) from None
        c.expect(
            y == labels[i],
            f"dataset[{i}] has label {y}, expected {labels[i]}",
            c.hint("labels_shuffled"),
        )
        c.expect(
            isinstance(label, int) and not isinstance(label, bool),
            f"the label of dataset[{i}] has type {type(label).__name__}, expected int",
            c.hint("label_int"),
        )


def check_dataset(cls: Any, fw: Framework, ops: Ops) -> None:
    rng = np.random.default_rng(3)
    # Every label different within the first ten: a shuffled pairing always shows.
    images = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    labels = np.concatenate([rng.permutation(10), [3, 7]]).astype(np.uint8)
    with checking(
        "DigitDataset", fw, passed="len and (transform(image i), label i), two datasets"
    ) as c:
        _dataset_case(c, cls, images, labels, ops.transforms[0])
        _dataset_case(c, cls, images[:7], labels[3:10], ops.transforms[1])


# --- Exercise 2: a training step ------------------------------------------------------------
def _step_batches() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(4)
    return [
        (rng.normal(size=(n, 6)).astype(np.float32), rng.integers(0, 3, n))
        for n in (8, 8, 5)
    ]


def _params_match(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and np.allclose(x, y, rtol=1e-4, atol=1e-6)
        for x, y in zip(a, b, strict=True)
    )


def check_train_step(train_step: Callable, fw: Framework, ops: Ops) -> None:
    batches = _step_batches()
    with checking(
        "train_step",
        fw,
        passed="three steps from the same start give the right parameters and losses",
    ) as c:
        model, optimizer = ops.make_model()
        losses = []
        for x, y in batches:
            loss = c.call(train_step, model, optimizer, *ops.prepare(x, y))
            losses.append(_scalar(c, ops, loss, "the returned loss"))
        got = ops.params(model)
        want_losses, want = ops.reference_steps[""](batches)
        if not _params_match(got, want):
            unchanged = _params_match(got, ops.params(ops.make_model()[0]))
            # A step whose updates were lost (JAX: jax.jit) first; then the known mistakes.
            key = ops.lost_update(train_step, batches) if unchanged else ""
            for name, run in ops.reference_steps.items():
                if not key and name and _params_match(got, run(batches)[1]):
                    key = name
            key = key or ("no_update" if unchanged else "wrong_update")
            raise c.fail(
                "after three steps the parameters are not the right ones", c.hint(key)
            )
        for k, (loss, want_loss) in enumerate(zip(losses, want_losses, strict=True)):
            c.close(
                loss,
                want_loss,
                what=f"the loss returned by step {k + 1}",
                rtol=1e-4,
                atol=1e-6,
                hint=c.hint("loss_value"),
            )


# --- Exercise 3: evaluation -----------------------------------------------------------------
def _eval_case(
    c: Checker,
    evaluate: Callable,
    ops: Ops,
    seed: int,
    sizes: Sequence[int],
    right: Sequence[int],
) -> None:
    """Batches of ``sizes``, of which ``right[k]`` examples are predicted correctly."""
    n = sum(sizes)
    x = np.random.default_rng(seed).normal(size=(n, 12)).astype(np.float32)
    logits = ops.probe_logits(seed, x)
    predicted = logits.argmax(-1)
    labels, start = predicted.copy(), 0
    for size, r in zip(sizes, right, strict=True):
        wrong = slice(start + r, start + size)
        labels[wrong] = (labels[wrong] + 1) % 10
        start += size
    model = ops.make_probe(seed)
    value = c.call(evaluate, model, ops.batches(x, labels, sizes))
    modes = ops.probe_modes(model)
    c.expect(len(modes) > 0, "your function never called the model")
    if any(training for training, _ in modes):
        raise c.fail(
            "the model was called in training mode (dropout on, batch-norm "
            "using the batch's statistics)",
            c.hint("eval_missing"),
        )
    if any(recording for _, recording in modes):
        raise c.fail(
            "the model was called with autograd recording", c.hint("no_grad_missing")
        )
    expected = sum(right) / n
    per_batch = float(np.mean([r / s for r, s in zip(right, sizes, strict=True)]))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value == sum(right) and value != expected:
            raise c.fail(
                f"the accuracy is {value}, expected {expected:.6g}",
                c.hint("accuracy_count"),
            )
        if abs(value - 100 * expected) < 1e-4:
            raise c.fail(
                f"the accuracy is {value:.6g}, expected {expected:.6g}",
                c.hint("accuracy_percent"),
            )
        if abs(value - per_batch) < 1e-6:
            raise c.fail(
                f"the accuracy is {value:.6g}, expected {expected:.6g}",
                c.hint("batch_mean"),
            )
    one_number = hasattr(value, "item") and not isinstance(value, np.generic)
    value = c.python_float(
        value, "the accuracy", c.hint("accuracy_array") if one_number else ""
    )
    mistakes = evaluation_mistakes(c.fw.hints, logits, labels, sizes, right)
    c.close(value, expected, what="the accuracy", rtol=0, atol=1e-6, mistakes=mistakes)


def check_evaluate_accuracy(evaluate: Callable, fw: Framework, ops: Ops) -> None:
    with checking(
        "evaluate_accuracy",
        fw,
        passed="evaluation mode, per-example accuracy over batches of unequal size",
    ) as c:
        _eval_case(c, evaluate, ops, 0, (32, 32, 7), (24, 24, 1))
        _eval_case(c, evaluate, ops, 1, (16, 16, 16, 2), (8, 8, 8, 2))
