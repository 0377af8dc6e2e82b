"""Lab 1's known mistakes of exercises 1-4: their hints, and the results they give.

``HINTS`` holds the hints shared by both frameworks (the adapters add, or reword, their own);
the functions compute, in float64 NumPy, what a known mistake returns on a check's inputs, so
a check can recognise it from the value alone (``Checker.close``'s ``mistakes``).
tests/labs/test_lab01.py proves that each hint is produced by a mistake in its table.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.labs.kit import Hints

__all__ = ["HINTS", "accuracy_mistakes", "difference_mistakes", "preprocess_mistakes"]

HINTS = Hints(
    {
        "preprocess_shape": "flatten each 28x28 image into one row of 784 values: "
        "reshape to (number of images, 784)",
        "preprocess_batch": "the number of images changes from batch to batch: reshape to "
        "(len(images), 784) or (-1, 784), not to a fixed number of rows",
        "preprocess_dtype": "convert the pixels to float32 before dividing: integers cannot "
        "hold fractions, and float32 is what the model's weights use",
        "preprocess_unscaled": "the values still go up to 255: divide by 255",
        "preprocess_256": "divide by 255, not 256: the brightest pixel (255) must become 1",
        "preprocess_data_max": "divide by the constant 255 (the largest value a uint8 can "
        "hold), not by the largest value in the data: the same pixel value must give the "
        "same input in every batch and every image",
        "preprocess_floor": "// is floor division: every pixel below 255 becomes 0; divide "
        "with / after converting to float32",
        "preprocess_normalize": "only divide by 255: no centering or standardizing (no "
        "- 0.5, * 2 - 1 or (x - mean) / std), so that 0 stays 0 and 255 becomes 1",
        "accuracy_count": "that is the number of correct predictions: return the fraction "
        "(the mean of the matches, a number between 0 and 1)",
        "accuracy_percent": "that is a percentage: return the fraction, a number between 0 "
        "and 1 (do not multiply by 100)",
        "accuracy_classes": "divide the number of correct predictions by the number of "
        "examples (the rows of logits, len(labels)), not by the number of classes or of "
        "scores",
        "accuracy_onehot": "labels holds one class index per example, not one-hot rows: "
        "compare the predictions with labels as they are (no argmax or one-hot of labels)",
        "accuracy_vector": "average the matches: the mean over examples gives one number, "
        "the fraction of right predictions",
        "accuracy_error_rate": "that is the error rate (the fraction of wrong predictions): "
        "return the fraction of right ones",
        "mse_grad_sign": "the sign is flipped: differentiate the loss itself, not minus it",
        "mse_grad_sum": "that is the gradient of the sum: the loss is the mean over examples",
        "mse_grad_half": "off by a factor 2: the loss is mean(r ** 2), not half of it, and "
        "the derivative of r**2 is 2 * r * dr/dw; let autodiff differentiate that loss "
        "instead of a formula",
        "mse_grad_broadcast": "X @ w and y both have shape (N,): adding a dimension to one "
        "of them (y[:, None], w[:, None]) makes X @ w - y an (N, N) table of every pair; "
        "keep both 1-D",
        "mse_grad_dtype": "compute in the dtype of the inputs (float32): do not cast w, X or y",
        "fd_forward": "that is the forward difference (f(x + h e_i) - f(x)) / h; use the "
        "central difference (f(x + h e_i) - f(x - h e_i)) / (2h)",
        "fd_one_eps": "x + h e_i and x - h e_i are 2h apart: divide by 2 * eps",
        "fd_signed": "take the absolute value of each difference before the max",
        "fd_mean": "return the largest absolute difference (max), not the mean",
        "fd_norm": "return the largest absolute difference, max over i of "
        "|grad_f(x)_i - estimate_i|, not a norm or a sum of the differences",
        "fd_vector": "return one number, the largest absolute difference over all "
        "coordinates (max), not one difference per coordinate",
        "fd_range": "estimate every coordinate: i runs over range(len(x)), from 0 to "
        "len(x) - 1, none left out",
        "fd_all_at_once": "move one coordinate at a time: x + eps * e_i changes entry i "
        "only, while x + eps adds eps to every entry",
        "fd_ignores_eps": "your result is smaller than a step of eps allows: use the "
        "argument eps as the step h, and compare the estimates with grad_f(x), the gradient "
        "under test (not one you computed yourself)",
    }
)


def preprocess_mistakes(flat: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(hint key, result) for each known mistake of exercise 1; ``flat`` holds the pixels,
    reshaped to (N, 784), in float64."""
    return [
        ("preprocess_unscaled", flat),
        ("preprocess_256", flat / 256),
        ("preprocess_data_max", flat / flat.max()),
        # Each image divided by its own brightest pixel.
        ("preprocess_data_max", flat / flat.max(axis=1, keepdims=True)),
        ("preprocess_floor", flat // 255),
        ("preprocess_normalize", flat / 255 * 2 - 1),  # also (x - 0.5) / 0.5
        (
            "preprocess_normalize",
            (flat / 255 - 0.1307) / 0.3081,
        ),  # MNIST's mean and std
    ]


def accuracy_mistakes(
    logits: np.ndarray, labels: np.ndarray
) -> list[tuple[str, float]]:
    """(hint key, result) for each known mistake of exercise 2 on ``logits`` and ``labels``."""
    predicted = logits.argmax(-1)
    correct = predicted == labels
    rows, classes = logits.shape
    mistakes = [
        ("accuracy_count", float(correct.sum())),
        ("accuracy_percent", 100 * correct.mean()),
        ("accuracy_error_rate", 1 - correct.mean()),
        # argmax(..., keepdim(s)=True): a (B, 1) against (B,) compares every pair.
        ("accuracy_broadcast", (predicted[:, None] == labels[None, :]).mean()),
    ]
    if classes != rows:
        mistakes.append(("accuracy_classes", correct.sum() / classes))
    mistakes.append(("accuracy_classes", correct.sum() / logits.size))  # / B * C
    # labels taken for one-hot rows: labels.argmax(-1) is one index, compared with all.
    mistakes.append(("accuracy_onehot", (predicted == labels.argmax(-1)).mean()))
    if rows == classes:  # argmax over examples still broadcasts
        mistakes.append(("accuracy_axis", (logits.argmax(0) == labels).mean()))
    mistakes.append(("accuracy_axis", (logits.argmax() == labels).mean()))  # no axis
    return mistakes


def difference_mistakes(
    f: Callable, g: np.ndarray, x: np.ndarray, eps: float
) -> tuple[float, list[tuple[str, float]]]:
    """Exercise 4's right answer, and (hint key, result) for each known mistake, in float64."""
    eye = np.eye(len(x))
    central = np.array([(f(x + eps * e) - f(x - eps * e)) / (2 * eps) for e in eye])
    forward = np.array([(f(x + eps * e) - f(x)) / eps for e in eye])
    # x.at[i].set(eps) (or p[i] = eps): entry i replaced by +-eps instead of moved by eps.
    replaced = np.array(
        [(f(x * (1 - e) + eps * e) - f(x * (1 - e) - eps * e)) / (2 * eps) for e in eye]
    )
    together = (f(x + eps) - f(x - eps)) / (2 * eps)  # every entry moved at once
    error = np.abs(g - central)
    return error.max(), [
        ("fd_forward", np.abs(g - forward).max()),
        ("fd_one_eps", np.abs(g - 2 * central).max()),
        ("fd_signed", (g - central).max()),
        ("fd_signed", (central - g).max()),
        ("fd_mean", error.mean()),
        ("fd_norm", np.linalg.norm(g - central)),
        ("fd_norm", error.sum()),
        ("fd_range", error[1:].max()),
        ("fd_range", error[:-1].max()),
        ("fd_set", np.abs(g - replaced).max()),
        ("fd_all_at_once", np.abs(g - together).max()),
    ]
