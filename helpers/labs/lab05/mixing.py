"""Lab 5, exercise 5: mixup and CutMix of a batch on the device, checked in both frameworks.

mixup (Zhang et al. 2018) blends image ``i`` with its partner ``perm[i]`` of the same batch,
``lam[i] * x[i] + (1 - lam[i]) * x[perm[i]]``, and the one-hot targets with the same weight.
CutMix (Yun et al. 2019) pastes the box ``(top, left, height, width)`` of the partner into
image ``i`` and weights the targets by the area left to the original,
``lam = 1 - height * width / (H * W)``. The draws (``perm``, ``lam``, the box) are inputs:
the answers are exact. Both return ``(images float32 (B, H, W, C) in 0..255, targets float32
(B, num_classes))``; the inputs must be left as they were.

The references are float64 NumPy; each known mistake is one switch of them (``mixup_answer``,
``cutmix_answer``), on inputs where each changes the answer: permutations that are not their
own inverse, per-image weights including 0 and 1, boxes that touch the border with
``top != left`` and ``height != width``. The adapters supply ``ops``, the number of framework
operations one call runs (None where it cannot be counted, or the key of a hint when the
function cannot be traced): a loop over the images shows as a count that grows with the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, Framework, checking, recording
from helpers.labs.lab05.mixing_hints import HINTS

__all__ = [
    "HINTS",
    "check_cutmix",
    "check_mixup",
    "cutmix_answer",
    "mixing_cases",
    "mixup_answer",
]


def _perm(n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of ``n`` that is no involution and has no fixed point."""
    while True:
        p = rng.permutation(n)
        if np.all(p != np.arange(n)) and not np.array_equal(p[p], np.arange(n)):
            return p


def mixing_cases() -> list[dict[str, Any]]:
    """Two batches ``uint8 (B, H, W, 3)``, their labels, ``perm``, ``lam (B,)`` and boxes.

    The first has one ``lam`` for the whole batch (as the papers draw it); the second a
    weight per image, 0 and 1 among them. Each box touches the border of the image.
    """
    rng = np.random.default_rng(55)
    cases = []
    specs = [
        (4, 5, 6, 10, [0.3] * 4, [(0, 1, 2, 5), (2, 1, 3, 2)]),
        (6, 7, 4, 7, [0.0, 1.0, 0.25, 0.8, 0.55, 0.1], [(3, 0, 4, 2), (2, 0, 5, 3)]),
    ]
    for b, h, w, classes, lam, boxes in specs:
        images = rng.integers(0, 256, size=(b, h, w, 3), dtype=np.uint8)
        # distinct, so a partner's class shows; never the last class, so that
        # labels.max() + 1 is not num_classes
        labels = rng.permutation(classes - 1)[:b]
        cases.append(dict(images=images, labels=labels, perm=_perm(b, rng), boxes=boxes,
                          lam=np.asarray(lam, np.float32), num_classes=classes))  # fmt: skip
    return cases


def _loop_case(case: dict[str, Any], times: int) -> dict[str, Any]:
    """``case``'s batch repeated ``times`` times (a larger B with the same partners)."""
    b = len(case["perm"])
    return dict(
        case,
        images=np.concatenate([case["images"]] * times),
        labels=np.concatenate([case["labels"]] * times),
        perm=np.concatenate([case["perm"] + k * b for k in range(times)]),
        lam=np.concatenate([case["lam"]] * times),
    )


def _targets(case: dict[str, Any], lam: np.ndarray, mistake: str) -> np.ndarray:
    labels, perm, c = case["labels"], case["perm"], case["num_classes"]
    eye = np.eye(c)
    p = {
        "mix_partner_inverse": np.argsort(perm),
        "mix_targets_partner": np.argsort(perm),  # images right, labels the other way
        "mix_partner_self": np.arange(len(perm)),
    }.get(mistake, perm)
    lam = lam[:, None]
    if mistake in ("mix_lam_swapped", "mix_targets_weight"):
        lam = 1 - lam
    if mistake == "mix_targets_hard":
        return eye[labels]
    if mistake == "mix_targets_sum":
        return lam * eye[labels]
    return lam * eye[labels] + (1 - lam) * eye[labels[p]]


def mixup_answer(
    case: dict[str, Any], mistake: str = "right"
) -> tuple[np.ndarray, ...]:
    """mixup of ``case`` in float64, ``(images, targets)``, or a known mistake's result."""
    x = case["images"].astype(np.float64)
    perm, lam = case["perm"], case["lam"].astype(np.float64)
    partner = {
        "mix_partner_inverse": x[np.argsort(perm)],
        "mix_partner_self": x,
    }.get(mistake, x[perm])
    weight = {
        "mix_lam_swapped": 1 - lam,
        "mix_lam_broadcast": np.full_like(lam, lam[0]),
    }
    w = weight.get(mistake, lam)[:, None, None, None]
    images = w * x + (1 - w) * partner
    if mistake == "mix_uint8":
        images = np.floor(images)  # computed in float, cast to uint8, cast back
    if mistake == "mix_uint8_diff":  # x + (1 - lam) * (x[perm] - x) in uint8: wraps
        images = x + (1 - w) * ((partner - x) % 256)
    if mistake == "mix_scale":
        images = images / 255
    targets_lam = np.full_like(lam, lam[0]) if mistake == "mix_lam_broadcast" else lam
    return images, _targets(case, targets_lam, mistake)


def cutmix_answer(
    case: dict[str, Any], box: tuple[int, int, int, int], mistake: str = "right"
) -> tuple[np.ndarray, ...]:
    """CutMix of ``case`` with ``box`` in float64, ``(images, targets)``, or a mistake's."""
    x = case["images"].astype(np.float64)
    perm = case["perm"]
    b, h, w, _ = x.shape
    top, left, bh, bw = box
    partner = {
        "mix_partner_inverse": x[np.argsort(perm)],
        "mix_partner_self": x,
    }.get(mistake, x[perm])
    if mistake == "cut_reversed":
        x, partner = partner, x
    rows, cols = slice(top, top + bh), slice(left, left + bw)
    if mistake == "cut_box_swapped":  # (left, top, width, height): the axes swapped
        rows, cols = slice(left, left + bw), slice(top, top + bh)
    if mistake == "cut_box_top_left":  # top and left swapped, the sizes kept
        rows, cols = slice(left, left + bh), slice(top, top + bw)
    if mistake == "cut_box_hw":  # height and width swapped
        rows, cols = slice(top, top + bw), slice(left, left + bh)
    if mistake == "cut_box_bounds":  # one row and one column more
        rows, cols = slice(top, top + bh + 1), slice(left, left + bw + 1)
    if mistake == "cut_box_corners":  # (top, left, bottom, right)
        rows, cols = slice(top, bh), slice(left, bw)
    if mistake == "cut_nothing":  # an empty slice (an end -0 at the border)
        rows = slice(0, 0)
    images = x.copy()
    if mistake == "cut_box_nchw":  # axes 2 and 3 of an NHWC batch: columns, channels
        nchw = (slice(None), slice(None), slice(top, top + bh), slice(left, left + bw))
        images[nchw] = partner[nchw]
    else:
        images[:, rows, cols] = partner[:, rows, cols]
    area = bh * bw / (h * w if mistake != "cut_lam_nchw" else w * x.shape[3])
    sides = {"cut_lam_area": 1 - bh / h, "cut_lam_width": 1 - bw / w}
    lam = {**sides, "cut_lam_swapped": area}.get(mistake, 1 - area)
    if mistake == "mix_scale":
        images = images / 255
    return images, _targets(case, np.full(b, lam), mistake)


# Each known mistake (what the answers compute) -> the hint it gets.
MIXUP_MISTAKES = {
    key: key
    for key in (
        "mix_partner_inverse",
        "mix_partner_self",
        "mix_lam_swapped",
        "mix_lam_broadcast",
        "mix_targets_hard",
        "mix_targets_weight",
        "mix_targets_sum",
        "mix_targets_partner",
        "mix_uint8",
        "mix_scale",
    )
} | {"mix_uint8_diff": "mix_uint8"}
CUTMIX_MISTAKES = {
    "cut_nothing": "cut_nothing",
    "mix_partner_inverse": "mix_partner_inverse",
    "mix_partner_self": "mix_partner_self",
    "cut_reversed": "cut_reversed",
    "cut_box_swapped": "cut_box_swapped",
    "cut_box_top_left": "cut_box_swapped",
    "cut_box_hw": "cut_box_swapped",
    "cut_box_nchw": "cut_box_nchw",
    "cut_box_bounds": "cut_box_bounds",
    "cut_box_corners": "cut_box_bounds",
    "cut_lam_area": "cut_lam_area",
    "cut_lam_width": "cut_lam_area",
    "cut_lam_swapped": "cut_lam_swapped",
    "mix_targets_hard": "mix_targets_hard",
    "mix_targets_sum": "mix_targets_sum",
    "mix_targets_partner": "mix_targets_partner",
    "mix_scale": "mix_scale",
    "cut_lam_nchw": "cut_lam_nchw",  # last: on one box it equals cut_lam_width
}


def _compare(c: Checker, fw: Framework, result: Any, expected: tuple, wrong: list,
             hint: str, uint8: str) -> None:  # fmt: skip
    """Check the pair ``result`` against ``expected``; ``wrong`` pairs hint keys with the
    pairs known mistakes give. A pair that matches a mistake in both parts gets its hint;
    otherwise the first part that differs gets the hint of a mistake it matches alone."""
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise c.fail(f"expected a pair (images, targets), got {type(result).__name__}",
                     c.hint("mix_shapes"))  # fmt: skip
    out = [c.array(r, f"the {n} as {fw.array_type}")
           for r, n in zip(result, ("images", "targets"), strict=True)]  # fmt: skip
    for name, got, want in zip(("images", "targets"), out, expected, strict=True):
        key = "mix_targets_hard" if got.shape == want.shape[:1] else "mix_shapes"
        c.expect(got.shape == want.shape,
                 f"the {name} have shape {got.shape}, expected {want.shape}",
                 c.hint(key))  # fmt: skip
        if got.dtype != np.float32:
            integer = np.issubdtype(got.dtype, np.integer) and name == "images"
            raise c.fail(f"the {name} have dtype {got.dtype}, expected float32",
                         c.hint(uint8 if integer else "mix_float32"))  # fmt: skip
    tols = [dict(rtol=1e-5, atol=1e-3), dict(rtol=1e-5, atol=1e-6)]

    def same(part: int, target: np.ndarray) -> bool:
        return bool(np.allclose(out[part], target, **tols[part]))

    joint = [k for k, w in wrong if same(0, w[0]) and same(1, w[1])]
    gap = np.abs(out[0] - expected[0])  # whole pixel values less than 1 off: truncated
    if not joint and not same(0, expected[0]) and np.all(out[0] == np.round(out[0])):
        joint = ["mix_uint8"] if np.all(gap < 1 + 1e-3) else joint
    for part, what in enumerate(("a pixel", "a target")):
        mistakes = [(c.hint(k), w[part]) for k, w in wrong]
        c.close(out[part], expected[part], what=what, **tols[part],
                hint=c.hint(joint[0]) if joint else hint,
                mistakes=[] if joint else mistakes)  # fmt: skip


# What the adapters' ``ops`` keys say went wrong.
_OPS_PROBLEMS = {
    "mix_traced": "your function failed when its inputs were traced",
    "mix_host": "your function copied a tensor to NumPy (.numpy())",
}


def _check_mixing(
    exercise: str,
    fn: Callable,
    fw: Framework,
    calls: list[tuple[tuple, tuple[np.ndarray, np.ndarray], list]],
    *,
    hint: str,
    passed: str,
    ops: Callable[[Callable, tuple], int | str | None],
    loop_args: tuple[tuple, tuple],
    answer_keys: tuple[tuple[Any, str], ...],
) -> None:
    """Run ``fn`` on each ``(numpy args, expected, wrong)``; the inputs must stay as given."""
    with checking(exercise, fw, passed=passed) as c:
        for args, expected, wrong in calls:
            given = [fw.from_numpy(a.copy()) if isinstance(a, np.ndarray) else a
                     for a in args]  # fmt: skip
            with recording(answer_keys) as called:
                result = c.call(fn, *given)
            if called:
                raise c.fail(
                    f"your function called the library's {called[0]}",
                    c.hint("mix_answer_key"),
                )
            for a, g in zip(args, given, strict=True):
                if isinstance(a, np.ndarray) and not np.array_equal(fw.to_numpy(g), a):
                    raise c.fail(
                        "your function changed one of its inputs", c.hint("mix_inplace")
                    )
            uint8 = "cut_uint8" if exercise == "cutmix" else "mix_uint8"
            _compare(c, fw, result, expected, wrong, hint, uint8)
        small, large = (ops(fn, args) for args in loop_args)
        if isinstance(small, str):  # the adapter's hint key: traced, or off the device
            raise c.fail(_OPS_PROBLEMS.get(small, _OPS_PROBLEMS["mix_traced"]),
                         c.hint(small))  # fmt: skip
        c.expect(
            small is None or large is None or large <= small,
            f"a batch of {len(loop_args[1][0])} images ran {large} operations, one of "
            f"{len(loop_args[0][0])} ran {small}",
            c.hint("mix_loop"),
        )


def _args(case: dict[str, Any], int_dtype: Any, *extra: Any) -> tuple:
    return (
        case["images"],
        case["labels"].astype(int_dtype),
        case["perm"].astype(int_dtype),
        *extra,
        case["num_classes"],
    )


def check_mixup(
    fn: Callable,
    fw: Framework,
    *,
    int_dtype: Any,
    ops: Callable[[Callable, tuple], int | str | None],
    answer_keys: tuple[tuple[Any, str], ...] = (),
) -> None:
    """``fn(images, labels, perm, lam, num_classes) -> (images, targets)``, float32 both.

    ``int_dtype``: the labels' and perm's dtype in this framework; ``ops(fn, args)``: the
    number of operations a call runs (None if unknown); ``answer_keys``: library functions
    whose call from ``fn`` fails the check.
    """
    cases = mixing_cases()
    calls = [
        (
            _args(case, int_dtype, case["lam"]),
            mixup_answer(case),
            [(k, mixup_answer(case, m)) for m, k in MIXUP_MISTAKES.items()],
        )
        for case in cases
    ]
    loops = [_loop_case(cases[0], t) for t in (1, 3)]
    loop_args = tuple(_args(case, int_dtype, case["lam"]) for case in loops)
    _check_mixing("mixup", fn, fw, calls,
        hint="images: lam[i] * x[i] + (1 - lam[i]) * x[perm[i]] in float32; targets: "
        "lam[i] * one_hot(labels[i]) + (1 - lam[i]) * one_hot(labels[perm[i]])",
        passed="images and targets mixed with each image's partner and weight",
        ops=ops, loop_args=loop_args, answer_keys=answer_keys)  # fmt: skip


def check_cutmix(
    fn: Callable,
    fw: Framework,
    *,
    int_dtype: Any,
    ops: Callable[[Callable, tuple], int | str | None],
    answer_keys: tuple[tuple[Any, str], ...] = (),
) -> None:
    """``fn(images, labels, perm, box, num_classes) -> (images, targets)``, float32 both;
    ``box`` is a tuple of Python ints ``(top, left, height, width)``, inside the image, the
    same for the batch. The keywords as in :func:`check_mixup`.
    """
    cases = mixing_cases()
    calls = [
        (
            _args(case, int_dtype, box),
            cutmix_answer(case, box),
            [(k, cutmix_answer(case, box, m)) for m, k in CUTMIX_MISTAKES.items()],
        )
        for case in cases
        for box in case["boxes"]
    ]
    case = cases[0]
    loop_args = tuple(_args(_loop_case(case, t), int_dtype, case["boxes"][1])
                      for t in (1, 3))  # fmt: skip
    _check_mixing("cutmix", fn, fw, calls,
        hint="images: a float32 copy of images whose rows top:top + height and columns "
        "left:left + width come from images[perm]; targets: lam * one_hot(labels) + "
        "(1 - lam) * one_hot(labels[perm]) with lam = 1 - height * width / (H * W)",
        passed="the partner's box pasted, targets weighted by its area",
        ops=ops, loop_args=loop_args, answer_keys=answer_keys)  # fmt: skip
