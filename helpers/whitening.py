"""Airbench's whitened first layer (chapter 5), framework-free: the filters, from the data.

Both halves' ``CifarNet`` take these filters as a fixed first convolution; ``H.vision``
re-exports :func:`image_patches`, :func:`patch_whitening` and :func:`stem_filters`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["image_patches", "patch_whitening", "stem_filters"]


def image_patches(x: np.ndarray, patch: int) -> np.ndarray:
    """Every ``patch x patch`` patch (stride 1) of ``x`` ``(N, H, W, C)``, one a row.

    Returns ``(N * (H - patch + 1) * (W - patch + 1), patch * patch * C)`` in ``x``'s dtype;
    a row lists the patch's rows, then columns, then channels, the layout of a filter
    ``(patch, patch, C)`` of :func:`patch_whitening` flattened, so ``patches @
    filter.ravel()`` is that filter's response at each position (a convolution without
    padding). A copy: about ``patch**2`` times the memory of ``x``. Raises ``ValueError`` for
    other than a 4-D array, ``patch < 1`` or images smaller than ``patch``.
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"expected images (N, H, W, C), got shape {x.shape}")
    if patch < 1:
        raise ValueError(f"expected patch >= 1, got {patch=}")
    if min(x.shape[1:3]) < patch:
        raise ValueError(
            f"images of {x.shape[1]}x{x.shape[2]} pixels have no {patch}x{patch} patch"
        )
    # (N, H-p+1, W-p+1, C, p, p), a view; then each patch as (rows, cols, C), copied
    windows = np.lib.stride_tricks.sliding_window_view(x, (patch, patch), (1, 2))
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, patch * patch * x.shape[3])


def patch_whitening(
    images: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    patch: int = 2,
    eps: float = 5e-4,
    limit: int = 5_000,
) -> np.ndarray:
    """Filters of a patch-whitening first layer, ``float32 (2 * patch**2 * C, patch, patch, C)``.

    ``images`` ``uint8 (N, H, W, C)`` (the training split; the first ``limit`` are used) are
    normalised with ``mean`` and ``std`` (``(C,)``, 0..1 units,
    :func:`helpers.vision.channel_stats`), cut into every ``patch x patch`` patch
    (stride 1, :func:`image_patches`), and the patches' ``d x d`` second-moment matrix
    (``d = patch**2 * C``; the normalised inputs have mean about zero) is diagonalised.
    Each eigenvector ``v`` with eigenvalue ``lam``, scaled to ``v / sqrt(lam + eps)``, is a
    filter whose responses have variance ``lam / (lam + eps)`` (near 1 where
    ``lam >> eps``) and are uncorrelated with the other filters': PCA whitening. The ``d``
    filters come largest eigenvalue first, each with the sign that makes its
    largest-magnitude entry positive (``eigh`` may return either sign, depending on the
    linear-algebra library), then the same ``d`` negated, so that the GELU after them passes
    both signs of every component. A filter is ``(patch, patch, C)``: rows,
    columns, channels of the patch it is applied to.

    The idea is airbench's first layer (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a
    single GPU", arXiv 2404.00498): a fixed whitening convolution in place of a trained stem.
    Raises ``ValueError`` for anything but ``uint8`` NHWC images at least ``patch`` pixels
    wide, no image to use (``N == 0`` or ``limit < 1``), ``patch < 1`` or ``eps <= 0``.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(
            f"expected uint8 images (N, H, W, C), got {images.dtype} of shape {images.shape}"
        )
    if patch < 1 or eps <= 0:
        raise ValueError(f"expected patch >= 1 and eps > 0, got {patch=}, {eps=}")
    n, _, _, c = images.shape
    if min(n, limit) < 1:
        raise ValueError(f"no image to compute the filters from: {n} images, {limit=}")
    d = patch * patch * c
    scale = 1.0 / (255.0 * np.asarray(std, dtype=np.float64))
    shift = -np.asarray(mean, dtype=np.float64) / np.asarray(std, dtype=np.float64)
    moment, count = np.zeros((d, d)), 0
    # 1,000 images at a time: about 92 MB of float64 patches at the peak, not 460 MB.
    for start in range(0, min(n, limit), 1_000):
        x = images[start : min(n, limit, start + 1_000)] * scale + shift  # (b, H, W, C)
        # (b * (H-p+1) * (W-p+1), d) float64; ValueError for images smaller than the patch
        flat = image_patches(x, patch)
        moment += flat.T @ flat
        count += len(flat)
    eigenvalues, eigenvectors = np.linalg.eigh(moment / count)  # ascending
    vectors = eigenvectors[:, ::-1].T  # (d, d), one eigenvector a row, largest first
    rows = np.arange(d)
    vectors *= np.sign(vectors[rows, np.abs(vectors).argmax(axis=1)])[:, None]
    filters = vectors / np.sqrt(eigenvalues[::-1] + eps)[:, None]  # (d, d)
    filters = filters.reshape(d, patch, patch, c)
    return np.concatenate([filters, -filters]).astype(np.float32)


def stem_filters(
    sizes, images: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> np.ndarray | None:
    """The ``whitening`` argument of ``CifarNet`` for ``sizes`` (a ``Cifar10Sizes``): 2x2
    :func:`patch_whitening` filters of the training ``images`` when ``sizes.stem`` is
    ``"whitening"``, ``None`` (a trained 3x3 stem) when it is ``"conv"``."""
    return patch_whitening(images, mean, std) if sizes.stem == "whitening" else None


def _check_whitening(filters: np.ndarray, width: int) -> None:
    """Both halves' CifarNet: ``filters`` must be ``(width, k, k, 3)``, ``ValueError`` if not."""
    shape = np.shape(filters)
    if len(shape) != 4 or shape[0] != width or shape[1] != shape[2] or shape[3] != 3:
        raise ValueError(
            f"expected whitening filters (widths[0], k, k, 3) = ({width}, k, k, 3) from "
            f"patch_whitening, got shape {shape}"
        )
