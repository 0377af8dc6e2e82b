"""Lab 5 self-checks that run a model, shared by both frameworks: exercises 3 and 4.

Evaluation logits (no augmentation, evaluation mode, no tape) and one training step with label
smoothing, on a tiny network whose weights are drawn here (:func:`tiny_net_weights`), so that
both frameworks' adapters build the same one. The adapters run the model, the right way and
each known mistake's way; these checks compare the student's results with them. The inputs
are chosen so that each mistake changes the answer: BatchNorm running statistics far from the
batches' statistics, a model that arrives at the training step in evaluation mode, a
different smoothing at each step. Their hints are :data:`MODEL_HINTS`, part of
:data:`helpers.labs.lab05.checks.HINTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from helpers.labs.kit import Framework, checking
from helpers.labs.lab05.loss_checks import dtype_hint_key

__all__ = [
    "MODEL_HINTS",
    "STEP_CONSTANTS",
    "STEP_LR",
    "STEP_MOMENTUM",
    "STEP_SMOOTHING",
    "check_predict_logits",
    "check_train_step",
    "eval_cases",
    "step_batches",
    "tiny_net_weights",
]


MODEL_HINTS = {
    "logits_dtype": "return float32 logits, what the model computes: no bfloat16 "
    "(mixed precision) and no float64; cast the result to float32",
    "logits_not_finite": "your logits contain NaN or inf: look for a division by zero "
    "or a log of 0 (the normalisation divides by std, never by 0) before the model",
    "stats_updated": "run the model once, in evaluation mode: call model.eval() before "
    "any forward pass; a forward in training mode updates BatchNorm's running "
    "statistics, so the model changed under the check and the next call differs",
    "augment_at_test": "no augmentation at test time: the same images must give the "
    "same logits every call; normalise and run the model, nothing random",
    "train_mode": "switch the model to evaluation mode first (model.eval()): in "
    "training mode BatchNorm normalises with the batch's own statistics",
    "not_normalised": "normalise the uint8 images as in training: "
    "(x / 255 - mean) / std, per channel",
    "batch_stats": "normalise with the mean and std passed in, the training split's: "
    "statistics of the images being evaluated (per batch or per image) make each "
    "image's input depend on what it is evaluated with, and differ from training",
    "test_flip": "evaluate the images as they are: flipping them at test time is "
    "augmentation (flip TTA adds both logits; this exercise asks for plain ones)",
    "probabilities": "return the logits, the model's raw output, without a softmax or "
    "log_softmax",
    # Exercise 4; the adapters word the ones whose fix is an API call.
    "step_no_smoothing": "train on the smoothed loss: targets (1 - s) * one_hot + s / C "
    "with s = smoothing; the plain cross-entropy on the labels ignores the smoothing",
    "step_constant_smoothing": "use the smoothing the step is given: the check passes "
    "a different value at each call, so a constant of your own is right at most once",
    "train_mode_missing": "switch the model to training mode at the start of the step "
    "(model.train()): it may come from evaluation, and in evaluation mode BatchNorm "
    "normalises with its running statistics and does not update them",
    "update_wrong": "call 1's loss is right but call 2's is not, so the first update "
    "differs: apply the optimizer passed in (its momentum included), one step per call, "
    "not an update of your own nor two",
    "step_layout": "give the model x as it arrives: it is already in the layout the "
    "model takes; do not transpose or permute it",
    "no_update": "update the weights: compute the gradients of the loss and apply them "
    "with the optimizer",
    "loss_not_scalar": "the loss is one number: the mean over the batch of the "
    "per-example losses, shape ()",
    "to_input_layout": "give H.vision.to_input the images as they arrive, uint8 NHWC "
    "(B, H, W, C), and the model what it returns: do not permute or transpose them first",
}


# --- The model of exercises 3 and 4 ----------------------------------------------------------
TINY_WIDTH, TINY_CLASSES = 4, 10


def tiny_net_weights() -> dict[str, np.ndarray]:
    """The weights of exercises 3 and 4's model, shared by both frameworks (float32).

    The model: 3x3 convolution without bias (``conv`` HWIO ``(3, 3, 3, w)``), BatchNorm
    (``bn_scale``, ``bn_bias``, running ``bn_mean``, ``bn_var``, each ``(w,)``), GELU (tanh
    approximation), the mean over positions, a linear layer (``fc_kernel`` ``(w, 10)``,
    ``fc_bias`` ``(10,)``). The running statistics are those of a model trained for a while:
    far from the statistics of the check's batches.
    """
    rng = np.random.default_rng(9)
    w = TINY_WIDTH
    weights = dict(
        conv=rng.normal(0, 0.3, size=(3, 3, 3, w)),
        bn_scale=rng.uniform(0.5, 1.5, size=w),
        bn_bias=rng.normal(0, 0.2, size=w),
        bn_mean=rng.normal(0, 1, size=w),
        bn_var=rng.uniform(0.5, 2, size=w),
        fc_kernel=rng.normal(0, 1, size=(w, TINY_CLASSES)),
        fc_bias=rng.normal(0, 0.1, size=TINY_CLASSES),
    )
    return {k: v.astype(np.float32) for k, v in weights.items()}


# --- Exercise 3: evaluation logits ------------------------------------------------------------
def eval_cases() -> list[dict[str, np.ndarray]]:
    """Two batches of ``uint8 (N, H, W, 3)`` images of two sizes, with the per-channel mean
    and std (0..1 units) that normalise them."""
    rng = np.random.default_rng(7)
    mean = np.array([0.49, 0.48, 0.45], np.float32)
    std = np.array([0.25, 0.24, 0.26], np.float32)
    return [
        dict(images=rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8), mean=mean, std=std)
        for n, s in ((5, 32), (4, 16))
    ]  # fmt: skip


# Each known mistake (what ``reference`` computes, or derives here) -> the hint it gets.
_EVAL_MISTAKES = {
    "train_mode": "train_mode",
    "not_normalised": "not_normalised",  # x / 255 only
    "not_scaled": "not_normalised",  # (x - mean) / std on 0..255
    "raw": "not_normalised",  # the 0..255 values as they are
    "batch_stats": "batch_stats",  # the batch's own mean and std (population)
    "batch_stats_unbiased": "batch_stats",  # the same with n - 1 (torch's std default)
    "batch_scalar": "batch_stats",  # one mean and one std over all pixels and channels
    "test_flip": "test_flip",
    "tta": "test_flip",  # the logits of the images plus those of their mirror images
    "probabilities": "probabilities",
    "log_probabilities": "probabilities",
    "mean_std_swapped": "not_normalised",  # to_input(images, std, mean)
    "std_squared": "not_normalised",  # divided by the variance
}


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def _eval_mistakes(
    reference: Callable, model: Any, case: dict
) -> dict[str, np.ndarray]:
    """What each known mistake returns on ``case``; ``reference`` computes the basic ones."""
    images, mean, std = case["images"], case["mean"], case["std"]
    right = reference(model, images, mean, std, "right")
    flipped = reference(model, images, mean, std, "test_flip")
    pixels = images.reshape(-1, images.shape[-1]) / 255.0  # (N * H * W, C) in 0..1
    batch_mean = pixels.mean(0).astype(np.float32)
    return {
        "train_mode": reference(model, images, mean, std, "train_mode"),
        "not_normalised": reference(model, images, mean, std, "not_normalised"),
        "not_scaled": reference(model, images, mean / 255, std / 255, "right"),
        # to_input computes x / (255 std) - mean / std: mean 0, std 1/255 leave x as is.
        "raw": reference(
            model, images, np.zeros_like(mean), np.full_like(std, 1 / 255), "right"
        ),
        "batch_stats": reference(
            model, images, batch_mean, pixels.std(0).astype(np.float32), "right"
        ),
        "batch_stats_unbiased": reference(
            model, images, batch_mean, pixels.std(0, ddof=1).astype(np.float32), "right"
        ),
        "batch_scalar": reference(
            model,
            images,
            np.full_like(mean, pixels.mean()),
            np.full_like(std, pixels.std()),
            "right",
        ),
        "test_flip": flipped,
        "tta": right + flipped,
        "probabilities": _softmax(right),
        "log_probabilities": np.log(_softmax(right)),
        "mean_std_swapped": reference(model, images, std, mean, "right"),
        "std_squared": reference(model, images, mean, std**2, "right"),
    }


def check_predict_logits(
    fn: Callable,
    fw: Framework,
    *,
    make_model: Callable,
    reference: Callable,
    attached: Callable[[Any], bool],
    stats: Callable[[Any], np.ndarray],
    training: Callable[[Any], bool],
) -> None:
    """``fn(model, images, mean, std) -> logits (N, 10)`` in evaluation mode, no augmentation.

    ``make_model()`` builds a small network with BatchNorm (in training mode, with running
    statistics that differ from batch statistics); ``reference(model, images, mean, std,
    mistake)`` returns its logits as numpy, right (``"right"``) or as a known mistake computes
    them (``"train_mode"``, ``"not_normalised"``: ``x / 255`` only, ``"test_flip"``: the
    mirror images); ``attached(logits)`` says whether a result still records gradients
    (PyTorch only); ``stats(model)`` returns BatchNorm's running statistics, and
    ``training(model)`` whether the model is in training mode.
    """
    with checking(
        "predict_logits", fw, passed="plain evaluation logits, the same every call"
    ) as c:
        for case in eval_cases():
            model = make_model()
            images, mean, std = case["images"], case["mean"], case["std"]
            expected = reference(model, images, mean, std, "right")
            wrong = _eval_mistakes(reference, model, case)
            outs = []
            for _ in range(2):
                model.train()  # as it is after training
                x = fw.from_numpy(images.copy())
                before = stats(model)
                out = c.call(fn, model, x, mean, std)
                if attached(out):
                    raise c.fail(
                        "the logits still record gradients (requires_grad=True)",
                        c.hint("no_grad_missing"),
                    )
                outs.append(c.array(out))
                # Training mode to the end is the "train_mode" mistake, named below.
                if not training(model) and not np.array_equal(before, stats(model)):
                    raise c.fail(
                        "your function changed BatchNorm's running statistics",
                        c.hint("stats_updated"),
                    )
            c.shape(outs[0], expected.shape, "one row of 10 logits per image")
            c.dtype(outs[0], "float32", c.hint("logits_dtype"))
            if not all(np.all(np.isfinite(out)) for out in outs):
                raise c.fail(
                    "the logits contain NaN or inf", c.hint("logits_not_finite")
                )
            if outs[0].shape == outs[1].shape and not np.allclose(outs[0], outs[1]):
                raise c.fail(
                    "the same images gave different logits on two calls",
                    c.hint("augment_at_test"),
                )
            c.close(
                outs[0],
                expected,
                what="a logit",
                rtol=1e-3,
                atol=1e-4,
                hint="model.eval(), then the model on H.vision.to_input(images, mean, std): "
                "no crop, no flip, no softmax",
                mistakes=[(c.hint(k), wrong[m]) for m, k in _EVAL_MISTAKES.items()],
            )


# --- Exercise 4: one training step with label smoothing -------------------------------------
STEP_SMOOTHING = (0.2, 0.35)  # one per call: a step that ignores its argument fails
STEP_LR, STEP_MOMENTUM = 0.1, 0.9  # SGD with Nesterov momentum, as in the chapter
# Smoothings a step may hard-code instead of the one it is given: each is the reference
# variant "step_constant_smoothing=<s>" (0 is the plain loss, "step_no_smoothing").
STEP_CONSTANTS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)


def step_batches() -> list[tuple[np.ndarray, np.ndarray]]:
    """Two batches ``(x float32 (8, 8, 8, 3) NHWC, labels int (8,) in 0..9)``, one per call.

    ``x`` stands for normalised images; its mean (0.5) and spread (1.5) are far from the
    model's running statistics, so evaluation mode changes every answer.
    """
    rng = np.random.default_rng(8)
    return [
        (
            rng.normal(0.5, 1.5, size=(8, 8, 8, 3)).astype(np.float32),
            rng.integers(0, TINY_CLASSES, 8),
        )
        for _ in STEP_SMOOTHING
    ]


# The parts of the model compared after two steps, in this order, with their names.
_STEP_PARTS = {
    "conv": "a convolution weight",
    "bn_scale": "a BatchNorm scale",
    "bn_bias": "a BatchNorm bias",
    "fc_kernel": "a weight of the linear layer",
    "fc_bias": "a bias of the linear layer",
    "bn_mean": "BatchNorm's running mean",
    "bn_var": "BatchNorm's running variance",
}


def check_train_step(
    fn: Callable,
    fw: Framework,
    *,
    setup: Callable[[], tuple[Any, Any]],
    prepare: Callable[[np.ndarray, np.ndarray], tuple[Any, Any]],
    train: Callable[[str], tuple[np.ndarray, dict[str, np.ndarray]]],
    weights: Callable[[Any], dict[str, np.ndarray]],
    training: Callable[[Any], bool],
    attached: Callable[[Any], bool],
    variants: tuple[str, ...],
) -> None:
    """Two calls ``fn(model, optimizer, x, labels, smoothing) -> loss`` from a fresh start.

    ``setup()`` builds the model (in evaluation mode, as after an evaluation) and its SGD
    optimizer; ``prepare(x, labels)`` turns a batch of :func:`step_batches` into the
    framework's arrays; ``train(variant)`` runs the reference steps (``""``) or a known
    mistake's and returns the losses ``(2,)`` and the model's ``weights`` afterwards;
    ``weights(model)`` reads a model in the layout of :func:`tiny_net_weights`; ``training(model)``
    says whether it is in training mode; ``attached(loss)`` whether a returned loss still
    records gradients (PyTorch only). ``variants`` names the known mistakes ``train`` runs,
    each also the key of its hint; the constant smoothings of :data:`STEP_CONSTANTS` are
    added here.
    """
    constants = (f"step_constant_smoothing={s}" for s in STEP_CONSTANTS)
    variants = (*variants, *constants)

    def hint(variant: str) -> str:
        return c.hint(variant.partition("=")[0])

    with checking(
        "train_step",
        fw,
        passed="two steps: the losses, the weights and BatchNorm's running statistics",
    ) as c:
        model, optimizer = setup()
        losses = []
        for (x, labels), s in zip(step_batches(), STEP_SMOOTHING, strict=True):
            out = c.call(fn, model, optimizer, *prepare(x, labels), s)
            if isinstance(out, float):
                raise c.fail(
                    f"expected {fw.array_type} of shape (), got a float",
                    c.hint("loss_float"),
                )
            if attached(out):
                raise c.fail(
                    "the returned loss still records gradients (requires_grad=True)",
                    c.hint("loss_attached"),
                )
            value = c.array(out, f"{fw.array_type} (the loss)")
            if value.shape != ():
                raise c.fail(
                    f"expected the loss, shape (), got shape {value.shape}",
                    c.hint("loss_not_scalar"),
                )
            c.expect(
                value.dtype == np.float32,
                f"the loss has dtype {value.dtype}, expected float32",
                c.hint(dtype_hint_key(fw, value.dtype)),
            )
            losses.append(value)
        expected_losses, expected = train("")
        mode_hint = None if training(model) else c.hint("train_mode_missing")
        for i, loss in enumerate(losses):
            # Call 1's loss right, call 2's wrong: the loss is fine, the update between them
            # is not (SGD without the optimizer's momentum, two steps, ...).
            loss_hint = (
                c.hint("update_wrong")
                if i > 0 and np.allclose(losses[0], expected_losses[0], 1e-4, 1e-5)
                else "return the mean smoothed cross-entropy of the model's logits, "
                "computed before the update"
            )
            c.close(
                loss,
                expected_losses[i],
                what=f"the loss of call {i + 1}",
                rtol=1e-4,
                atol=1e-5,
                hint=mode_hint or loss_hint,
                mistakes=(  # the mistakes whose earlier calls gave these losses too
                    (hint(v), train(v)[0][i])
                    for v in variants
                    if np.allclose(losses[:i], train(v)[0][:i], rtol=1e-4, atol=1e-5)
                ),
            )
        got = weights(model)
        # The running statistics come last: a wrong one after right weights moved twice (a
        # second forward in training mode), or never (JAX's own grad loses the updates).
        stats = ("bn_mean", "bn_var")
        unmoved = "stats_lost" in fw.hints and all(
            np.array_equal(got[k], tiny_net_weights()[k]) for k in stats
        )
        stats_hint = c.hint("stats_lost" if unmoved else "stats_twice")
        for part, what in _STEP_PARTS.items():
            weight = part not in stats
            c.close(
                got[part],
                expected[part],
                what=f"{what} after two steps",
                rtol=1e-4,
                atol=1e-5,
                hint=(
                    mode_hint
                    or "the update differs from one optimizer step on the gradient of "
                    "the returned loss"
                )
                if weight
                else stats_hint,
                mistakes=((hint(v), train(v)[1][part]) for v in variants if weight),
            )
