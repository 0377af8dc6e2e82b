"""Lab 3's known mistakes: the hints that name them, and the results some of them return.

:data:`HINTS` is the shared table (the adapters add and word the framework ones);
:func:`evaluation_mistakes` computes the accuracy that wrong evaluation functions return, so
that a check can recognise them from the value alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from helpers.labs.kit import Hints

__all__ = ["HINTS", "evaluation_mistakes"]

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
        "label_int": "return the label as a Python int, int(self.labels[i]): an element "
        "of the labels array is a NumPy uint8, not an int",
        "no_update": "the parameters did not change: compute the gradients of the loss and "
        "apply them with the optimizer in every call",
        "wrong_update": "the parameters changed, but not by one step of the optimizer you "
        "were given on the mean cross-entropy: use that optimizer (do not create one) and "
        "the mean cross-entropy of the raw logits (no softmax before it, not a sum)",
        "loss_number": "return the loss as a one-number array, not as a Python number: "
        "the loss itself (loss.detach() in PyTorch), not loss.item() or float(loss)",
        "loss_shape": "return the loss as a 0-d array, the mean over the batch as the loss "
        "function gives it: do not reshape it, index it or wrap it in a list",
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
        "accuracy_denominator": "divide by the number of examples, counted batch by batch "
        "(n += len(y)): the last batch may be smaller, so number of batches * batch size "
        "is too many",
        "last_batch_only": "that is the accuracy of the last batch alone: set the counters "
        "to 0 once, before the loop, and add every batch's counts to them",
        "argmax_axis": "compare one predicted class per example with the labels: "
        "model(x).argmax(-1), over the classes (the last axis), has shape (B,) like y; "
        "argmax over axis 0 gives one value per class",
        "max_not_argmax": "no prediction matched its label: the predicted class is the "
        "index of the largest logit, model(x).argmax(-1), not the largest logit itself "
        "(max)",
    }
)


def evaluation_mistakes(
    hints: Hints,
    logits: np.ndarray,
    labels: np.ndarray,
    sizes: Sequence[int],
    right: Sequence[int],
) -> list[tuple[str, float]]:
    """(hint, the accuracy returned) for mistakes of exercise 3, on batches of ``sizes``.

    ``logits`` are the check's model's in evaluation mode, ``right[k]`` the number of correct
    predictions in batch ``k``.
    """
    return [
        # max(-1) instead of argmax(-1): the largest logits compared with the labels.
        (hints["max_not_argmax"], float(np.mean(logits.max(-1) == labels))),
        (hints["accuracy_denominator"], sum(right) / (len(sizes) * sizes[0])),
        (hints["last_batch_only"], right[-1] / sizes[-1]),
    ]
