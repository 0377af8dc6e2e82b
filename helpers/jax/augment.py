"""The data pipelines of ``H.vision`` in JAX (chapter 5; reused by chapters 9 and 10).

On the device: ``uint8 (N, H, W, C)`` images, a batch cropped at per-image offsets (a ``vmap``
of ``lax.dynamic_slice``, one gather) and flipped, then normalised into ``float32`` NHWC, all
traceable so it runs inside a jitted train step. On the host, for comparison: the per-sample
NumPy pipeline of the core (:func:`helpers.vision.per_sample_batches`), since JAX has no data
loader of its own. Every name here is also reachable as ``H.vision.<name>``;
``helpers.torch.augment`` is the PyTorch twin.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from helpers.vision import per_sample_batches

__all__ = [
    "crop_flip",
    "per_sample_batches",
    "random_crop_flip",
    "to_input",
]
# The seed-style comparison of PyTorch is its DataLoader (``seed_style_loader``); JAX has no
# loader of its own, so its half offers the same per-sample pipeline written in NumPy.
__framework_only__ = ("per_sample_batches",)


def _check_nhwc(images: jax.Array, name: str = "images") -> None:
    shape = getattr(images, "shape", None)
    if shape is None or len(shape) != 4:
        got = shape if shape is not None else type(images).__name__
        raise ValueError(f"expected {name} as an array (B, H, W, C), got {got}")
    if shape[-1] not in (1, 3):
        raise ValueError(
            f"expected {name} channels last (B, H, W, C) with C = 1 or 3, got shape "
            f"{tuple(shape)}: convert NCHW with x.transpose(0, 2, 3, 1)"
        )


def crop_flip(
    images: jax.Array, offsets: jax.Array, flips: jax.Array, pad: int
) -> jax.Array:
    """Crop every image of a batch at its own offset in its zero-padded copy; flip some.

    ``images`` ``(B, H, W, C)`` (any dtype, uint8 in the recipe); ``offsets`` ``int (B, 2)``:
    the (row, column) where each crop starts, in ``0 .. 2 * pad``; ``flips`` ``bool (B,)``:
    mirror left-right. ``pad`` must be a Python int (static under ``jit``). A ``vmap`` of
    ``dynamic_slice``: one gather for the batch. Equals
    :func:`helpers.vision.crop_flip_reference`. Raises ``ValueError`` for a non-NHWC batch.
    """
    _check_nhwc(images)
    _, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

    def one(image, offset, flip):  # (H + 2p, W + 2p, C) -> (H, W, C)
        crop = jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))
        return jnp.where(flip, crop[:, ::-1], crop)

    return jax.vmap(one)(padded, offsets, flips)  # (B, H, W, C)


def random_crop_flip(
    images: jax.Array, pad: int, *, rngs: nnx.Rngs | jax.Array
) -> jax.Array:
    """:func:`crop_flip` with offsets uniform in ``0 .. 2 * pad`` and a flip with chance 1/2.

    ``rngs``: a PRNG key (``jax.random.key``) or an ``nnx.Rngs`` to draw one from.
    """
    _check_nhwc(images)
    key = rngs() if isinstance(rngs, nnx.Rngs) else rngs
    k_offset, k_flip = jax.random.split(key)
    b = images.shape[0]
    offsets = jax.random.randint(k_offset, (b, 2), 0, 2 * pad + 1)
    flips = jax.random.bernoulli(k_flip, 0.5, (b,))
    return crop_flip(images, offsets, flips, pad)


def to_input(images: jax.Array, mean: np.ndarray, std: np.ndarray) -> jax.Array:
    """``uint8 (B, H, W, C)`` -> normalised ``float32 (B, H, W, C)``: NHWC is JAX's layout."""
    _check_nhwc(images)
    return (images.astype(jnp.float32) / 255.0 - jnp.asarray(mean)) / jnp.asarray(std)
