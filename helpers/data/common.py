"""What every loader shares: split names, fixed subsets, and a fixed mixing order.

Some sources store a data set sorted by class (the course's CIFAR-10 JPEG copy folder by folder,
IMDB negatives before positives). Read in file order, any contiguous slice of them, such as a
validation split taken from the end, holds a single class. Such sources are put in a fixed,
well-mixed order by :func:`mixed_order`: a permutation drawn from a seeded generator, the same
on every machine and for every copy of the same data.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MIX_SEED", "SPLITS", "check_split", "mixed_order", "subset"]

SPLITS = ("train", "test")
# The seed of the permutation that mixes class-sorted sources (numpy's PCG64 generator).
MIX_SEED = 0


def check_split(split: str) -> None:
    """Raise ``ValueError`` unless ``split`` is ``"train"`` or ``"test"``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def mixed_order(n: int, seed: int = MIX_SEED) -> np.ndarray:
    """The fixed permutation ``int64 (n,)`` that class-sorted sources are reordered by."""
    return np.random.default_rng(seed).permutation(n)


def subset(n: int, limit: int | None) -> np.ndarray | slice:
    """Indices of a fixed random subset of size ``limit`` (seed 0), kept in the loader's order.

    A random subset, not the first ``limit`` rows, so it is balanced like the whole split.
    Raises ``ValueError`` for ``limit < 1``.
    """
    if limit is None or limit >= n:
        return slice(None)
    if limit < 1:
        raise ValueError(f"limit must be a positive number of examples, got {limit}")
    return np.sort(np.random.default_rng(0).permutation(n)[:limit])
