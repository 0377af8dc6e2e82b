"""Lab 1's known mistakes of exercises 1 and 3: their hints, and the results they give.

Exercises 2 and 4 keep theirs beside their checks, in :mod:`helpers.labs.lab01.topk` and
:mod:`helpers.labs.lab01.directional`.

``HINTS`` holds the hints shared by both frameworks (the adapters add, or reword, their own);
the functions compute, in float64 NumPy, what a known mistake returns on a check's inputs, so
a check can recognise it from the value alone (``Checker.close``'s ``mistakes``).
tests/labs/test_lab01.py proves that each hint is produced by a mistake in its table.
"""

from __future__ import annotations

import numpy as np

from helpers.labs.kit import Hints

__all__ = ["HINTS", "preprocess_mistakes"]

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
        "mse_grad_sign": "the sign is flipped: differentiate the loss itself, not minus it",
        "mse_grad_sum": "that is the gradient of the sum: the loss is the mean over examples",
        "mse_grad_half": "off by a factor 2: the loss is mean(r ** 2), not half of it, and "
        "the derivative of r**2 is 2 * r * dr/dw; let autodiff differentiate that loss "
        "instead of a formula",
        "mse_grad_broadcast": "X @ w and y both have shape (N,): adding a dimension to one "
        "of them (y[:, None], w[:, None]) makes X @ w - y an (N, N) table of every pair; "
        "keep both 1-D",
        "mse_grad_dtype": "compute in the dtype of the inputs (float32): do not cast w, X or y",
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
