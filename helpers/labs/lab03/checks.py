"""Lab 3 self-checks shared by both frameworks, written once on numpy answers.

The four exercises: a ``Dataset`` with a transform, a training step, an evaluation function
that returns the accuracy, and a classifier trained to a threshold on real MNIST. Each
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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from helpers.data import load_mnist
from helpers.labs.kit import Checker, Framework, Hints, checking

__all__ = [
    "HINTS",
    "THRESHOLD",
    "NotAModule",
    "Ops",
    "check_dataset",
    "check_evaluate_accuracy",
    "check_train_classifier",
    "check_train_step",
]

# Test accuracy the trained classifier must reach (smoke-sized training: a few seconds).
THRESHOLD = 0.8
TRAIN_EXAMPLES, TEST_EXAMPLES = 2_000, 500

# Known mistakes and what to change; the adapters add and word the framework ones.
# tests/labs/test_lab03.py proves that each hint is produced by a mistake in its table.
HINTS = Hints(
    {
        "dataset_len": "len(dataset) must be the number of examples: return len(self.labels)",
        "dataset_item": "dataset[i] must return one pair, (image, label), in this order: "
        "return self.transform(self.images[i]), int(self.labels[i])",
        "image_type": "return the image exactly as the transform gives it: "
        "self.transform(self.images[i]), without converting it (to numpy or anything else)",
        "transform_missing": "apply the transform to the image before returning it: "
        "image = self.transform(self.images[i])",
        "labels_shuffled": "example i must come with label i: never shuffle images and labels "
        "separately (nor one of them); shuffle the order of indices instead, which the "
        "loader does",
        "no_update": "the parameters did not change: compute the gradients of the loss and "
        "apply them with the optimizer in every call",
        "wrong_update": "the parameters changed, but not by one step of the optimizer you "
        "were given on the mean cross-entropy: use that optimizer (do not create one) and "
        "the mean cross-entropy of the raw logits (no softmax before it, not a sum)",
        "loss_number": "return the loss as a one-number array, not as a Python number: "
        "the loss itself (loss.detach() in PyTorch), not loss.item() or float(loss)",
        "loss_value": "return the loss of this batch, the mean cross-entropy computed before "
        "the update",
        "batch_mean": "the batches have different sizes, so the mean of per-batch accuracies "
        "over-weights the small last batch: count correct predictions and examples over all "
        "batches, then divide once",
        "accuracy_percent": "return the accuracy as a fraction between 0 and 1, "
        "not as a percentage",
        "accuracy_array": "convert the one-number array to a Python float with float(...) "
        "(or .item()) before returning it",
        "accuracy_count": "that is the number of correct predictions: divide by the number "
        "of examples",
        "not_trained": "the model's test accuracy is too low: train it (several epochs over "
        "the data, with a learning rate that makes the loss fall), scale the pixels as the "
        "check does (pixel / 255, so values in [0, 1]), and check that each image keeps its "
        "own label",
        "classifier_input": "the check calls model(x) with x float32 of shape (B, 28, 28) in "
        "[0, 1]: the model must flatten its input itself (as H.MLP does) and keep float32 "
        "parameters",
        "classifier_tuple": "return the trained model itself, not a tuple",
        "ignores_data": "the second call renames the classes ((label + 3) % 10): train on the "
        "images and labels passed to your function, not on data you load yourself",
    }
)


class NotAModule(TypeError):
    """Raised by ``Ops.classifier_logits`` when the student's model is no framework module."""


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
    ``classifier_logits(model, x)``: logits of a trained classifier in evaluation mode;
    :class:`NotAModule` if ``model`` is not one of the framework's modules.
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
    classifier_logits: Callable[[Any, np.ndarray], np.ndarray]
    # The module type the classifier must be, for messages ("a torch.nn.Module").
    module_type: str


def _scalar(c: Checker, value: Any, what: str) -> float:
    """The number in a one-number framework array (the loss tensor); fail otherwise."""
    if isinstance(value, (float, int)) and not isinstance(value, bool):
        raise c.fail(
            f"{what} is a Python {type(value).__name__}, expected {c.fw.array_type}",
            c.hint("loss_number"),
        )
    arr = c.array(value, f"{what} to be {c.fw.array_type} holding one number")
    c.expect(arr.size == 1, f"{what} has shape {arr.shape}, expected one number")
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
            losses.append(_scalar(c, loss, "the returned loss"))
        got = ops.params(model)
        want_losses, want = ops.reference_steps[""](batches)
        if not _params_match(got, want):
            start = ops.params(ops.make_model()[0])
            for key, run in ops.reference_steps.items():
                if key and _params_match(got, run(batches)[1]):
                    raise c.fail(
                        "after three steps the parameters are not the right ones",
                        c.hint(key),
                    )
            raise c.fail(
                "after three steps the parameters are not the right ones",
                c.hint("no_update" if _params_match(got, start) else "wrong_update"),
            )
        c.close(
            losses,
            want_losses,
            what="the returned losses",
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
    predicted = ops.probe_logits(seed, x).argmax(-1)
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
    c.close(value, expected, what="the accuracy", rtol=0, atol=1e-6)


def check_evaluate_accuracy(evaluate: Callable, fw: Framework, ops: Ops) -> None:
    with checking(
        "evaluate_accuracy",
        fw,
        passed="evaluation mode, per-example accuracy over batches of unequal size",
    ) as c:
        _eval_case(c, evaluate, ops, 0, (32, 32, 7), (24, 24, 1))
        _eval_case(c, evaluate, ops, 1, (16, 16, 16, 2), (8, 8, 8, 2))


# --- Exercise 4: train a classifier to a threshold ------------------------------------------
def _mnist_subsets():
    x, y = load_mnist("train", limit=2 * TRAIN_EXAMPLES)
    xt, yt = load_mnist("test", limit=TEST_EXAMPLES)
    return x, y, xt, yt


def _classifier_case(c: Checker, train: Callable, ops: Ops, x, y, xt, yt, rename: int):
    model = c.call(train, x, (y + rename) % 10)
    if isinstance(model, tuple):
        raise c.fail("your function returned a tuple", c.hint("classifier_tuple"))
    try:
        logits = ops.classifier_logits(model, xt.astype(np.float32) / 255)
    except NotAModule:
        raise c.fail(
            f"expected {ops.module_type}, got {type(model).__name__}"
        ) from None
    except Exception as e:
        raise c.fail(
            f"calling your model on the test images raised {type(e).__name__}: "
            f"{(str(e).strip().splitlines() or [''])[0]}",
            c.hint("classifier_input"),
        ) from None
    c.expect(
        isinstance(logits, np.ndarray) and logits.shape == (len(yt), 10),
        f"the model's output has shape {getattr(logits, 'shape', None)}, expected "
        f"({len(yt)}, 10)",
    )
    predicted = logits.argmax(-1)
    accuracy = float((predicted == (yt + rename) % 10).mean())
    if rename and float((predicted == yt).mean()) >= THRESHOLD:
        raise c.fail(
            "the model predicts the original classes, not the renamed ones",
            c.hint("ignores_data"),
        )
    c.expect(
        accuracy >= THRESHOLD,
        f"test accuracy {accuracy:.3f}, expected at least {THRESHOLD}",
        c.hint("not_trained"),
    )
    return accuracy


def check_train_classifier(train: Callable, fw: Framework, ops: Ops) -> None:
    x, y, xt, yt = _mnist_subsets()
    half = slice(0, TRAIN_EXAMPLES), slice(TRAIN_EXAMPLES, 2 * TRAIN_EXAMPLES)
    with checking(
        "train_classifier",
        fw,
        passed=f"test accuracy >= {THRESHOLD}, twice, the second time with the "
        "classes renamed",
    ) as c:
        _classifier_case(c, train, ops, x[half[0]], y[half[0]], xt, yt, 0)
        _classifier_case(c, train, ops, x[half[1]], y[half[1]], xt, yt, 3)
