"""Lab 5 self-checks shared by both frameworks, written once on NumPy answers.

Five exercises: the batched crop + flip augmentation (NHWC, one offset and one flip per
image), the label-smoothed cross-entropy, evaluation logits (no augmentation, evaluation
mode), one training step with label smoothing, and mixup and CutMix (exercise 5, checked in
:mod:`helpers.labs.lab05.mixing`). This module holds the hints (exercise 2's from
:mod:`helpers.labs.lab05.loss_checks`, the next two's from
:mod:`helpers.labs.lab05.model_checks`) and the check of the first; it re-exports the
second's. Each ``check_*`` takes the student's function, a
:class:`~helpers.labs.kit.Framework` and what only the framework can provide (its library
loss, a count of operations); ``helpers.labs.lab05.torch`` and ``.jax`` bind them.

The known mistakes are computed here in NumPy, one switch per mistake, on inputs where each
changes the answer: crops at different offsets per image, asymmetric images.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import helpers.vision
from helpers.labs.kit import Framework, Hints, checking, recording
from helpers.labs.lab05.loss_checks import (
    LOSS_HINTS,
    check_smoothed_cross_entropy,
    smooth_cases,
    smoothed_ce,
)
from helpers.labs.lab05.model_checks import MODEL_HINTS
from helpers.vision import crop_flip_reference

__all__ = [
    "HINTS",
    "check_crop_flip",
    "check_smoothed_cross_entropy",
    "crop_cases",
    "crop_flip_answer_keys",
    "crop_mistake",
    "smooth_cases",
    "smoothed_ce",
]

HINTS = Hints(
    MODEL_HINTS,  # exercises 3 and 4
    LOSS_HINTS,  # exercise 2
    {
        "nhwc": "the batch is NHWC, (B, H, W, C): pad and crop axes 1 (rows) and 2 "
        "(columns), flip axis 2; the last axis holds the colour channels",
        "same_offset": "each image has its own offset: crop image i at offsets[i] "
        "(rows offsets[i, 0], columns offsets[i, 1]), not every image at offsets[0]",
        "vertical_flip": "a horizontal flip mirrors left and right: reverse the columns "
        "(axis 2 of NHWC), not the rows (axis 1), which turns images upside down",
        "answer_key": "write it yourself from pad, gather (or dynamic_slice) and flip: "
        "H.vision.crop_flip is the answer key, the function the check compares with",
        "flip_all": "mirror only the images whose flips[i] is True, not the whole batch: "
        "choose per image, where(flips[:, None, None, None], mirrored, crop)",
        "pad_amount": "pad by exactly pad zero pixels on each side (the argument), top "
        "and bottom, left and right, not 2 * pad on one side: the offsets 0 .. 2 * pad "
        "then reach both edges of the padded image",
        "flip_batch_axis": "mirror each crop along its own columns: reverse the (B, W) "
        "column indices along axis 1 (cols[:, ::-1]), or the crops along axis 2; reversed "
        "along the batch axis, image i gets the column window of another image",
        "flip_missing": "flip the images whose flips[i] is True (mirror left-right), after "
        "cropping",
        "flip_before_crop": "crop first, then flip the crop: mirroring the padded image "
        "before cropping moves the window to the other side when the offset is off-centre",
        "crop_missing": "after padding, cut an (H, W) window from each padded image: the "
        "result has the shape of the input batch",
        "offsets_swapped": "offsets[i, 0] is the row where the crop starts (axis 1) and "
        "offsets[i, 1] the column (axis 2): each axis its own offset, not the other way "
        "round and not one of them for both",
        "flip_broadcast": "flips has shape (B,): to choose per image in a (B, H, W, C) "
        "batch index it as flips[:, None, None, None] (flips[:, None] against (B, W) "
        "column indices), so that it lines up with the batch axis",
        "pad_axes": "the offsets index the padded batch: pad axes 1 and 2 (rows and "
        "columns) by pad zeros on each side, (B, H + 2 * pad, W + 2 * pad, C), then cut "
        "an (H, W) window from each padded image",
        "pad_mode": "pad with zeros (constant mode, the default), not by reflecting, "
        "repeating the edge or wrapping around: the crops' borders must be black",
    },
)


def _inputs(fw: Framework, *arrays: np.ndarray) -> list[Any]:
    return [fw.from_numpy(np.ascontiguousarray(a).copy()) for a in arrays]


# --- Exercise 1: crop and flip a batch ---------------------------------------------------------
def crop_cases() -> list[dict[str, Any]]:
    """Two batches ``uint8 (B, H, W, 3)`` with offsets that differ per image, some flipped."""
    rng = np.random.default_rng(5)
    cases = []
    for b, h, w, pad in [(4, 6, 6, 2), (5, 8, 7, 1)]:
        images = rng.integers(1, 256, size=(b, h, w, 3), dtype=np.uint8)
        offsets = rng.integers(0, 2 * pad + 1, size=(b, 2))
        offsets[1] = (2 * pad - offsets[0, 0], 2 * pad - offsets[0, 1])  # not all equal
        offsets[0] = (0, 2 * pad)  # one offset away from the centre on both axes
        flips = np.array([True, False, True, False, True][:b])
        cases.append(dict(images=images, offsets=offsets, flips=flips, pad=pad))
    return cases


def crop_mistake(case: dict[str, Any], mistake: str) -> np.ndarray:
    """What a known mistake returns for ``case`` (``"right"``: the correct answer)."""
    images, offsets, flips, pad = (
        case[k] for k in ("images", "offsets", "flips", "pad")
    )
    # the crop of a batch padded by 0 or pad + 1
    if mistake in ("unpadded", "pad_amount"):
        return _padded_crop(case, 0 if mistake == "unpadded" else pad + 1)
    if mistake == "nchw_pad":
        return _padded_crop(case, pad, nchw=True)
    if mistake in ("pad_end", "pad_start"):  # 2 * pad on one side of each axis
        return _padded_crop(case, pad, one_side=mistake[4:])
    if mistake.startswith("pad_"):  # pad_reflect etc.: np.pad's mode, not zeros
        return _padded_crop(case, pad, mode=mistake[4:])
    if mistake.startswith("shift_"):  # shift_<rows>_<cols>_<clamp>: the crop 1 further
        _, dr, dc, clamp = mistake.split("_")
        return _padded_crop(case, pad, shift=(int(dr), int(dc)), clamp=clamp)
    if mistake == "same_offset":
        offsets = np.repeat(offsets[:1], len(offsets), axis=0)
    if mistake == "offsets_swapped":
        offsets = offsets[:, ::-1]
    if mistake in ("offset_rows_both", "offset_cols_both"):  # one offset for both axes
        offsets = offsets[:, [0, 0] if mistake == "offset_rows_both" else [1, 1]]
    if (
        mistake == "flip_batch_axis"
    ):  # flipped images take the columns of image B - 1 - i
        offsets = offsets.copy()
        offsets[flips, 1] = offsets[::-1][flips, 1]
        flips = np.zeros_like(flips)
    if mistake == "flip_missing":
        flips = np.zeros_like(flips)
    if (
        mistake == "flip_before_crop"
    ):  # the padded image mirrored, then cropped at offsets
        offsets = offsets.copy()
        offsets[flips, 1] = 2 * pad - offsets[flips, 1]
    if mistake == "flip_all":
        flips = np.ones_like(flips)
    out = crop_flip_reference(images, offsets, np.zeros_like(flips), pad)
    if mistake == "vertical_flip":
        return np.where(flips[:, None, None, None], out[:, ::-1], out)
    if mistake == "nhwc":  # flipped along the last axis, as if it were W of NCHW
        return np.where(flips[:, None, None, None], out[..., ::-1], out)
    return np.where(flips[:, None, None, None], out[:, :, ::-1], out)


def _padded_crop(
    case: dict[str, Any],
    pad: int,
    *,
    nchw: bool = False,
    mode: str = "constant",
    shift: tuple[int, int] = (0, 0),
    clamp: str = "start",
    one_side: str = "",
) -> np.ndarray:
    """Crops at ``offsets + shift`` of the batch padded by ``pad`` (the case's or a wrong
    one) in np.pad's ``mode``, flipped where ``flips``. What runs past the end is clamped
    silently, as JAX does: the start (``clamp="start"``, ``lax.dynamic_slice``) or each index
    (``"index"``, jnp indexing).
    ``nchw``: padded as if it were NCHW (columns and channels), so the rows start at 0 and
    the first C of the C + 2 pad channels (pad zero channels first) are kept.
    ``one_side``: ``"end"`` or ``"start"``, 2 * pad on that side of rows and columns."""
    images, offsets, flips = case["images"], case["offsets"] + shift, case["flips"]
    b, h, w, ch = images.shape
    axes = (2, 3) if nchw else (1, 2)  # the two padded axes
    both = {"end": (0, 2 * pad), "start": (2 * pad, 0)}.get(one_side, (pad, pad))
    widths = [both if i in axes else (0, 0) for i in range(4)]
    padded = np.pad(images, widths, mode=mode)[..., :ch]
    if clamp == "index":
        rows = np.minimum(offsets[:, :1] + np.arange(h), padded.shape[1] - 1)  # (B, H)
        cols = np.minimum(offsets[:, 1:] + np.arange(w), padded.shape[2] - 1)  # (B, W)
        out = padded[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None]]
    else:
        rows = np.clip(offsets[:, 0], 0, padded.shape[1] - h)
        cols = np.clip(offsets[:, 1], 0, padded.shape[2] - w)
        out = np.stack(
            [
                p[r : r + h, c : c + w]
                for p, r, c in zip(padded, rows, cols, strict=True)
            ]
        )
    return np.where(flips[:, None, None, None], out[:, :, ::-1], out)


# Each known mistake (what ``crop_mistake`` computes) -> the hint it gets.
_CROP_MISTAKES = {
    "same_offset": "same_offset",
    "offsets_swapped": "offsets_swapped",
    "offset_rows_both": "offsets_swapped",
    "offset_cols_both": "offsets_swapped",
    "flip_batch_axis": "flip_batch_axis",
    "pad_end": "pad_amount",
    "pad_start": "pad_amount",
    "vertical_flip": "vertical_flip",
    "flip_missing": "flip_missing",
    "flip_all": "flip_all",
    "flip_before_crop": "flip_before_crop",
    "nhwc": "nhwc",
    "nchw_pad": "pad_axes",  # JAX clamps the starts: no error, shifted channels
    "unpadded": "pad_axes",  # JAX clamps the starts: no error, the uncropped images
    "pad_amount": "pad_amount",
    **{f"pad_{mode}": "pad_mode" for mode in ("reflect", "symmetric", "edge", "wrap")},
    # crops one row or column further on (+ 1), clamped as JAX clamps: the adapters word it
    **{
        f"shift_{dr}_{dc}_{clamp}": "crop_bounds"
        for dr, dc in ((1, 0), (0, 1), (1, 1))
        for clamp in ("start", "index")
    },
}


def crop_flip_answer_keys(*modules: Any) -> tuple[tuple[Any, str], ...]:
    """The library's answers to exercise 1, as ``check_crop_flip``'s ``answer_keys``.

    ``crop_flip`` and ``random_crop_flip`` in each of ``modules`` (a framework's ``augment``
    and the ``vision`` that re-exports them, both reachable from a notebook's ``H``), and the
    core's ``crop_flip_reference``.
    """
    return (
        *((m, name) for m in modules for name in ("crop_flip", "random_crop_flip")),
        (helpers.vision, "crop_flip_reference"),
    )


_OPS_PROBLEMS = {"mix_host": "your function copied a tensor to NumPy (.numpy())"}


def _loop_args() -> tuple[tuple, tuple]:
    """Exercise 1's arguments (numpy) for a batch of 4 and the same batch 3 times over."""
    case = crop_cases()[0]
    small = tuple(case[k] for k in ("images", "offsets", "flips"))
    large = tuple(np.concatenate([a] * 3) for a in small)
    return (*small, case["pad"]), (*large, case["pad"])


def check_crop_flip(
    fn: Callable,
    fw: Framework,
    *,
    answer_keys: tuple[tuple[Any, str], ...] = (),
    ops: Callable[[Callable, tuple], int | str | None] | None = None,
) -> None:
    """``fn(images, offsets, flips, pad) -> (B, H, W, C)``, the same dtype as ``images``.

    ``answer_keys`` pairs a module with the name of a library function that solves the
    exercise (``H.vision.crop_flip``); a call of one from ``fn`` fails the check. ``ops``,
    as in :mod:`helpers.labs.lab05.mixing`: the operations one call runs (or a string where
    it left the framework), so that a loop over the images fails (hint ``crop_loop``).
    """
    with checking(
        "crop_flip", fw, passed="every image cropped at its own offset and flipped"
    ) as c:
        for case in crop_cases():
            images, offsets, flips = _inputs(
                fw, case["images"], case["offsets"], case["flips"]
            )
            with recording(answer_keys) as called:
                result = c.call(fn, images, offsets, flips, case["pad"])
            if called:
                raise c.fail(
                    f"your function called the library's {called[0]}",
                    c.hint("answer_key"),
                )
            for name, g in (("images", images), ("offsets", offsets), ("flips", flips)):
                if not np.array_equal(fw.to_numpy(g), case[name]):  # PyTorch only
                    raise c.fail(
                        f"your function changed its input {name}",
                        c.hint("inputs_changed"),
                    )
            out = c.array(result)
            expected = crop_mistake(case, "right")
            if out.shape != expected.shape:
                b, h, w, ch = expected.shape
                padded = (b, h + 2 * case["pad"], w + 2 * case["pad"], ch)
                raise c.fail(
                    f"the result has shape {out.shape}, expected {expected.shape} "
                    "(B, H, W, C), the shape of the input batch",
                    c.hint("crop_missing" if out.shape == padded else "nhwc"),
                )
            keep = "keep the images' dtype, uint8: crop and flip only move pixels"
            c.dtype(out, "uint8", keep)
            c.close(
                out,
                expected,
                what="a pixel",
                rtol=0,
                atol=0,
                hint="crop image i from its zero-padded copy at rows offsets[i, 0] and "
                "columns offsets[i, 1], then mirror left-right where flips[i]",
                mistakes=[
                    (c.hint(key), crop_mistake(case, m))
                    for m, key in _CROP_MISTAKES.items()
                ],
            )
        small, large = (ops(fn, args) if ops else None for args in _loop_args())
        if isinstance(small, str):  # traced (JAX) or copied to NumPy (PyTorch)
            raise c.fail(_OPS_PROBLEMS.get(small, "your function failed when its "
                         "inputs were traced"), c.hint("crop_loop"))  # fmt: skip
        c.expect(
            small is None or large is None or large <= small,
            f"a batch of 12 images ran {large} operations, one of 4 ran {small}",
            c.hint("crop_loop"),
        )
