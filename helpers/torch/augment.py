"""The data pipelines of ``H.vision`` in PyTorch (chapter 5; reused by chapters 9 and 10).

On the device: ``uint8 (N, H, W, C)`` images, a batch cropped at per-image offsets and flipped
by one gather, then normalised into ``float32`` in ``channels_last`` memory. On the host, for
comparison: the seed-style ``DataLoader`` over torchvision's per-sample transforms. Every name
here is also reachable as ``H.vision.<name>``; ``helpers.jax.augment`` is the JAX twin.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "crop_flip",
    "random_crop_flip",
    "seed_style_loader",
    "to_input",
]
__framework_only__ = ("seed_style_loader",)


def _check_nhwc(images: torch.Tensor, name: str = "images") -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        got = getattr(images, "shape", type(images).__name__)
        raise ValueError(f"expected {name} as a tensor (B, H, W, C), got {got}")
    if images.shape[-1] not in (1, 3):
        raise ValueError(
            f"expected {name} channels last (B, H, W, C) with C = 1 or 3, got shape "
            f"{tuple(images.shape)}: convert NCHW with x.permute(0, 2, 3, 1)"
        )


def crop_flip(
    images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int
) -> torch.Tensor:
    """Crop every image of a batch at its own offset in its zero-padded copy; flip some.

    ``images`` ``(B, H, W, C)`` (any dtype, uint8 in the recipe); ``offsets`` ``int (B, 2)``:
    the (row, column) where each crop starts, in ``0 .. 2 * pad``; ``flips`` ``bool (B,)``:
    mirror left-right. One gather for the whole batch, no Python loop over images. Equals
    :func:`helpers.vision.crop_flip_reference`. Raises ``ValueError`` for a non-NHWC batch.
    """
    _check_nhwc(images)
    b, h, w, c = images.shape
    padded = F.pad(images, (0, 0, pad, pad, pad, pad))  # (B, H + 2p, W + 2p, C)
    rows = offsets[:, :1] + torch.arange(h, device=images.device)  # (B, H)
    cols = offsets[:, 1:] + torch.arange(w, device=images.device)  # (B, W)
    # A flipped image reads its columns right to left.
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    # One flat index per output pixel into each padded image: (B, H * W). torch.gather with
    # it ran about twice as fast on the CPU as indexing with three broadcast index tensors.
    flat = (rows[:, :, None] * (w + 2 * pad) + cols[:, None, :]).reshape(b, h * w, 1)
    pixels = padded.reshape(b, -1, c)  # (B, (H + 2p) * (W + 2p), C)
    return pixels.gather(1, flat.expand(b, h * w, c)).reshape(b, h, w, c)


def random_crop_flip(
    images: torch.Tensor, pad: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """:func:`crop_flip` with offsets uniform in ``0 .. 2 * pad`` and a flip with chance 1/2.

    ``generator`` must live on the images' device (``torch.Generator(device=...)``).
    """
    _check_nhwc(images)
    b, device = images.shape[0], images.device
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), device=device, generator=generator)
    flips = torch.rand(b, device=device, generator=generator) < 0.5
    return crop_flip(images, offsets, flips, pad)


def to_input(images: torch.Tensor, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """``uint8 (B, H, W, C)`` -> normalised ``float32 (B, C, H, W)`` in channels_last memory.

    ``(x / 255 - mean) / std`` computed as one multiply-add, ``x * scale + shift``. The
    permute is free: an NHWC tensor seen as NCHW *is* channels_last, the layout the CPU and GPU
    convolutions prefer.
    """
    _check_nhwc(images)
    std = np.asarray(std, dtype=np.float64)
    scale = torch.as_tensor(
        1.0 / (255.0 * std), dtype=torch.float32, device=images.device
    )
    shift = torch.as_tensor(
        -np.asarray(mean) / std, dtype=torch.float32, device=images.device
    )
    x = torch.addcmul(shift, images.float(), scale)  # (B, H, W, C)
    return x.permute(0, 3, 1, 2)  # (B, C, H, W), channels_last strides


class _PerSampleDataset(torch.utils.data.Dataset):
    """The seed style: one PIL image at a time through torchvision's transforms."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def seed_style_loader(
    images: np.ndarray,
    labels: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    batch_size: int,
    pad: int,
    generator: torch.Generator | None = None,
) -> torch.utils.data.DataLoader:
    """The usual tutorial pipeline: a ``DataLoader`` over per-sample torchvision transforms.

    ``RandomCrop(padding=pad)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``, one
    image at a time on the host; batches of ``float32 (B, C, H, W)``. The baseline the on-device
    pipeline is measured against (PyTorch only: JAX has no loader of its own).
    """
    from torchvision import transforms

    transform = transforms.Compose(
        [
            transforms.RandomCrop(images.shape[1], padding=pad),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean.tolist(), std.tolist()),
        ]
    )
    dataset = _PerSampleDataset(images, labels, transform)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=generator,
    )
