"""From arrays to model inputs and mini-batches, framework-free.

Both frameworks' ``ArrayLoader`` build on :class:`BatchSampler` and only gather the rows.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

__all__ = ["BatchSampler", "batch_indices", "images_to_vectors"]


def images_to_vectors(images: np.ndarray) -> np.ndarray:
    """uint8 images ``(N, H, W[, C])`` -> float32 rows ``(N, H*W*C)`` scaled to [0, 1].

    Raises ``TypeError`` for any dtype but uint8.
    """
    if images.dtype != np.uint8:
        raise TypeError(f"expected uint8 images (0..255), got dtype {images.dtype}")
    return images.reshape(len(images), -1).astype(np.float32) / 255


def batch_indices(
    n: int,
    batch_size: int,
    *,
    shuffle: bool = False,
    rng: np.random.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[np.ndarray]:
    """Yield ``int64`` index arrays that cover ``range(n)`` in batches of ``batch_size``.

    Every index appears exactly once per pass, except the last ``n % batch_size`` when
    ``drop_last``. ``shuffle=True`` needs an explicit ``rng``. Raises ``ValueError`` for
    ``batch_size < 1``, ``n < 0`` or a shuffle without ``rng``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if shuffle and rng is None:
        raise ValueError(
            "shuffle=True needs an explicit rng (np.random.default_rng(seed))"
        )
    order = rng.permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


class BatchSampler:
    """Which rows form each batch, epoch after epoch: the framework-free half of a loader.

    ``len(sampler)`` is the number of batches one epoch yields. With ``shuffle=True`` the
    order changes every epoch, drawn from a numpy generator seeded with ``seed``.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size = n, batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)  # ceil(n / batch_size)

    def indices(self) -> Iterator[np.ndarray]:
        """One epoch of index batches."""
        rng = self._rng if self.shuffle else None
        return batch_indices(
            self.n,
            self.batch_size,
            shuffle=self.shuffle,
            rng=rng,
            drop_last=self.drop_last,
        )
