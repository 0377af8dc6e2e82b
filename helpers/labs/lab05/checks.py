"""Lab 5 self-checks shared by both frameworks, written once on NumPy answers.

Five exercises: the batched crop + flip augmentation (NHWC, one offset and one flip per
image), the label-smoothed cross-entropy, evaluation logits (no augmentation, evaluation
mode), one training step with label smoothing, and mixup and CutMix (exercise 5, checked in
:mod:`helpers.labs.lab05.mixing`). This module holds the hints (those of the
last two from :mod:`helpers.labs.lab05.model_checks`) and the checks of the first two;
``model_checks`` those of the last two, which run a model. Each ``check_*`` takes the
student's function, a :class:`~helpers.labs.kit.Framework` and what only the framework can
provide (its library loss); ``helpers.labs.lab05.torch`` and ``.jax`` bind them.

The known mistakes are computed here in NumPy, one switch per mistake, on inputs where each
changes the answer: crops at different offsets per image, asymmetric images, smoothing large
enough that applying it twice shows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import helpers.vision
from helpers.labs.kit import Framework, Hints, checking, recording
from helpers.labs.lab05.model_checks import MODEL_HINTS
from helpers.vision import crop_flip_reference

__all__ = [
    "HINTS",
    "check_crop_flip",
    "check_smoothed_cross_entropy",
    "crop_cases",
    "crop_flip_answer_keys",
    "crop_mistake",
    "smoothed_ce",
]

HINTS = Hints(
    MODEL_HINTS,  # exercises 3 and 4
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
        "pad_amount": "pad by exactly pad zero pixels on each side (the argument): the "
        "offsets 0 .. 2 * pad then reach both edges of the padded image",
        "flip_missing": "flip the images whose flips[i] is True (mirror left-right), after "
        "cropping",
        "flip_before_crop": "crop first, then flip the crop: mirroring the padded image "
        "before cropping moves the window to the other side when the offset is off-centre",
        "crop_missing": "after padding, cut an (H, W) window from each padded image: the "
        "result has the shape of the input batch",
        "offsets_swapped": "offsets[i, 0] is the row where the crop starts (axis 1) and "
        "offsets[i, 1] the column (axis 2), not the other way round",
        "flip_broadcast": "flips has shape (B,): to choose per image in a (B, H, W, C) "
        "batch index it as flips[:, None, None, None] (flips[:, None] against (B, W) "
        "column indices), so that it lines up with the batch axis",
        "pad_axes": "the offsets index the padded batch: pad axes 1 and 2 (rows and "
        "columns) by pad zeros on each side, (B, H + 2 * pad, W + 2 * pad, C), then cut "
        "an (H, W) window from each padded image",
        "pad_mode": "pad with zeros (constant mode, the default), not by reflecting, "
        "repeating the edge or wrapping around: the crops' borders must be black",
        "smoothing_twice": "smooth the one-hot targets once: target = (1 - s) * one_hot + "
        "s / C, and do not smooth the result again",
        "smoothing_c_minus_1": "label smoothing spreads s over all C classes, the true one "
        "included: (1 - s) * one_hot + s / C, not s / (C - 1) (whether added to every "
        "class or to the others only)",
        "smoothing_missing": "mix the one-hot target with the uniform one: "
        "(1 - s) * one_hot + s / C",
        "loss_sum": "average the per-example losses over the batch (mean), do not sum them",
        "loss_keepdim": "return a 0-d loss, shape (): take .mean() over the batch without "
        "keepdim (and do not reshape or index it into shape (1,))",
        "loss_dtype": "compute the loss in float32, from the float32 logits: a loss in "
        "bfloat16 or float16 (logits cast down, or mixed precision) loses digits; cast "
        "the logits back to float32 before the loss",
        "loss_sign": "the cross-entropy is -sum(target * log_softmax(logits)): log "
        "probabilities are negative, so the loss is positive; keep the minus sign",
        "loss_not_reduced": "reduce to one number: sum target * log_softmax over the "
        "classes (last axis), then take the mean over the batch",
        "loss_mean_all": "sum over the classes, then average over the batch: a mean over "
        "both axes also divides the loss by the number of classes",
        "softmax_axis": "take log_softmax over the classes, the last axis: each row of the "
        "logits is one example's distribution, and the batch axis is not one",
        "classes_hardcoded": "take the number of classes from the logits, "
        "C = logits.shape[-1]: the check's two batches have 10 and 4 classes",
        "loss_float": "return the loss as a 0-d array of the framework, not a Python float",
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
    if mistake.startswith("pad_"):  # pad_reflect etc.: np.pad's mode, not zeros
        return _padded_crop(case, pad, mode=mistake[4:])
    if mistake.startswith("shift_"):  # shift_<rows>_<cols>_<clamp>: the crop 1 further
        _, dr, dc, clamp = mistake.split("_")
        return _padded_crop(case, pad, shift=(int(dr), int(dc)), clamp=clamp)
    if mistake == "same_offset":
        offsets = np.repeat(offsets[:1], len(offsets), axis=0)
    if mistake == "offsets_swapped":
        offsets = offsets[:, ::-1]
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
) -> np.ndarray:
    """Crops at ``offsets + shift`` of the batch padded by ``pad`` (the case's or a wrong
    one) in np.pad's ``mode``, flipped where ``flips``. What runs past the end is clamped
    silently, as JAX does: the start (``clamp="start"``, ``lax.dynamic_slice``) or each index
    (``"index"``, jnp indexing).
    ``nchw``: padded as if it were NCHW (columns and channels), so the rows start at 0 and
    the first C of the C + 2 pad channels (pad zero channels first) are kept."""
    images, offsets, flips = case["images"], case["offsets"] + shift, case["flips"]
    b, h, w, ch = images.shape
    axes = (2, 3) if nchw else (1, 2)  # the two padded axes
    widths = [(pad, pad) if i in axes else (0, 0) for i in range(4)]
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


def check_crop_flip(
    fn: Callable, fw: Framework, *, answer_keys: tuple[tuple[Any, str], ...] = ()
) -> None:
    """``fn(images, offsets, flips, pad) -> (B, H, W, C)``, the same dtype as ``images``.

    ``answer_keys`` pairs a module with the name of a library function that solves the
    exercise (``H.vision.crop_flip``); a call of one from ``fn`` fails the check.
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


# --- Exercise 2: the label-smoothed cross-entropy -----------------------------------------------
def smooth_cases() -> list[dict[str, Any]]:
    rng = np.random.default_rng(6)
    return [
        dict(
            logits=(rng.normal(size=(b, c)) * 3).astype(np.float32),
            labels=rng.integers(0, c, size=b),
            smoothing=s,
        )
        for b, c, s in [(6, 10, 0.2), (5, 4, 0.3)]
    ]


def smoothed_ce(logits, labels, smoothing: float, mistake: str = "right") -> float:
    """The mean smoothed cross-entropy in float64; ``mistake`` names a known wrong variant."""
    logits = np.asarray(logits, np.float64)
    c = logits.shape[1]
    one_hot = np.eye(c)[labels]
    s = smoothing
    right = (1 - s) * one_hot + s / c
    targets = {
        "smoothing_twice": (1 - s) * right + s / c,
        "smoothing_c_minus_1": (1 - s) * one_hot + (1 - one_hot) * s / (c - 1),
        "smoothing_c_minus_1_all": (1 - s) * one_hot + s / (c - 1),
        "smoothing_missing": one_hot,
        "loss_sign": -right,
    }.get(mistake, right)
    axis = 0 if mistake == "softmax_axis" else 1  # 0: normalised over the batch
    z = logits - logits.max(axis, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis, keepdims=True))
    per_example = -(targets * log_p).sum(1)  # (B,)
    if mistake == "loss_sum":
        return float(per_example.sum())
    if mistake == "loss_mean_all":  # the mean over (B, C)
        return float(per_example.mean() / c)
    if mistake not in ("right", *_SMOOTH_MISTAKES):
        raise ValueError(f"unknown mistake {mistake!r}")
    return float(per_example.mean())


# Each known mistake (what ``smoothed_ce`` computes) -> the hint it gets.
_SMOOTH_MISTAKES = {
    "smoothing_twice": "smoothing_twice",
    "smoothing_c_minus_1": "smoothing_c_minus_1",  # s / (C - 1) on the other classes
    "smoothing_c_minus_1_all": "smoothing_c_minus_1",  # s / (C - 1) added to every class
    "smoothing_missing": "smoothing_missing",
    "loss_sum": "loss_sum",
    "loss_sign": "loss_sign",
    "loss_mean_all": "loss_mean_all",
    "softmax_axis": "softmax_axis",
}


def check_smoothed_cross_entropy(
    fn: Callable,
    fw: Framework,
    *,
    library: Callable,
    int_dtype: Any,
    answer_keys: tuple[tuple[Any, str], ...] = (),
) -> None:
    """``fn(logits, labels, smoothing) -> scalar``, against ``library`` (the framework's loss).

    ``library(logits, labels, smoothing)`` takes numpy and returns a float; ``int_dtype`` is
    the labels' dtype in this framework (int64 in PyTorch, int32 in JAX). ``answer_keys``,
    as in :func:`check_crop_flip`: the library's cross-entropy and smoothing, whose call from
    ``fn`` fails the check (hint ``loss_answer_key``).
    """
    with checking(
        "smoothed_cross_entropy", fw, passed="equals the library's loss on two batches"
    ) as c:
        for case in smooth_cases():
            logits, labels = _inputs(
                fw, case["logits"], case["labels"].astype(int_dtype)
            )
            with recording(answer_keys) as called:
                result = c.call(fn, logits, labels, case["smoothing"])
            if called:
                raise c.fail(
                    f"your function called the library's {called[0]}",
                    c.hint("loss_answer_key"),
                )
            if isinstance(result, float):
                raise c.fail(
                    f"expected {fw.array_type} of shape (), got a float",
                    c.hint("loss_float"),
                )
            out = c.array(result)
            if out.size != 1:
                raise c.fail(
                    f"expected one number (the mean loss), got shape {out.shape}",
                    c.hint("loss_not_reduced"),
                )
            if out.shape != ():
                raise c.fail(
                    f"expected the mean loss, shape (), got shape {out.shape}",
                    c.hint("loss_keepdim"),
                )
            c.expect(
                out.dtype in (np.float32, np.float64),
                f"the loss has dtype {out.dtype}, expected float32",
                c.hint("loss_dtype"),
            )
            # The library's loss; tests/labs/test_lab05.py shows it equals smoothed_ce.
            expected = library(case["logits"], case["labels"], case["smoothing"])
            c.close(
                out,
                expected,
                what="the loss",
                rtol=1e-4,
                atol=1e-5,
                hint="the mean over the batch of -sum(target * log_softmax(logits)) over "
                "the classes, with target = (1 - s) * one_hot + s / C",
                mistakes=[
                    (
                        c.hint(key),
                        smoothed_ce(
                            case["logits"], case["labels"], case["smoothing"], m
                        ),
                    )
                    for m, key in _SMOOTH_MISTAKES.items()
                ],
            )
