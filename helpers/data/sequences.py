"""A synthetic sequence task for chapter 2.6: sort a sequence of digits.

Framework-free (numpy only), so both notebooks of a pair train and test on exactly the same
kind of data; each framework turns the arrays into its own tensors.

Why sorting: the token that belongs at output position ``t`` is the ``t``-th smallest input,
which can sit anywhere in the input. A model that looks at one position at a time cannot
solve it; it has to compare every token with every other one, which is what attention does.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sort_batch"]


def sort_batch(
    rng: np.random.Generator, batch_size: int, length: int, vocab: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``batch_size`` random sequences and their sorted versions.

    Each input is ``length`` tokens drawn uniformly (with repeats) from ``0 .. vocab - 1``;
    its target is the same tokens in ascending order.

    Returns ``(inputs, targets)``, both ``int64`` arrays of shape ``(batch_size, length)``.
    The same ``rng`` state gives the same batch. Raises ``TypeError`` when ``rng`` is not a
    ``numpy.random.Generator`` and ``ValueError`` when a size is below 1 (``vocab`` below 2).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            "rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
            f"got {type(rng).__name__}"
        )
    if batch_size < 1 or length < 1:
        raise ValueError(
            f"batch_size and length must be >= 1, got {batch_size} and {length}"
        )
    if vocab < 2:
        raise ValueError(
            f"vocab must be >= 2 (one token value is no task), got {vocab}"
        )
    inputs = rng.integers(0, vocab, size=(batch_size, length), dtype=np.int64)  # (B, T)
    targets = np.sort(inputs, axis=1)  # (B, T)
    return inputs, targets
