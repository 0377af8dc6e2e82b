"""Lab 5 self-checks for PyTorch notebooks: ``H.lab05.check_crop_flip(crop_flip)`` etc.

The checks are :mod:`helpers.labs.lab05.checks`, shared with JAX; this module hands them
tensors, PyTorch's own loss (``F.cross_entropy(label_smoothing=...)``), a tiny BatchNorm
network (for evaluation, and with SGD for the training step), that step's reference runs (one
per known mistake), and turns PyTorch's error messages into hints, one table per exercise.
For exercise 5 (:mod:`helpers.labs.lab05.mixing`) it counts the torch operations a call runs
(a loop over the images grows with the batch) and names torchvision's MixUp and CutMix as
answer keys.
"""

from __future__ import annotations

import copy
import functools
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

import helpers.torch.augment
import helpers.torch.vision
from helpers.labs.kit import Hints, explainer
from helpers.labs.lab05 import adapter_hints, mixing, model_checks
from helpers.labs.lab05 import checks as lab05
from helpers.torch.labkit import lab_framework
from helpers.torch.vision import to_input

__all__ = [
    "check_crop_flip",
    "check_cutmix",
    "check_mixup",
    "check_predict_logits",
    "check_smoothed_cross_entropy",
    "check_train_step",
]

HINTS = Hints(
    lab05.HINTS,
    mixing.HINTS,
    {
        "mix_inplace": "leave the inputs as they are: start from a copy, "
        "images.float() (a new tensor), and paste into it; images[:, ...] = ... or an "
        "in-place method (mul_, copy_) changes the caller's batch",
        "mix_host": "keep the batch on the device, in torch: no .numpy() or "
        "np.asarray(...) of the tensors (a copy to the host, and a loop there that the "
        "check cannot see); gather with images[perm] and broadcast lam",
        "mix_answer_key": "write it yourself from images[perm], float32 arithmetic and "
        "F.one_hot: torchvision.transforms.v2's MixUp and CutMix are the library's "
        "version, and they draw their own weights and boxes",
        "step_no_smoothing": "train on the smoothed loss: F.cross_entropy(logits, labels, "
        "label_smoothing=smoothing), or your smoothed_cross_entropy; without it the step "
        "ignores the smoothing",
        "loss_answer_key": "write the loss yourself from F.log_softmax and F.one_hot: "
        "F.cross_entropy (with label_smoothing= or with soft targets; nn.CrossEntropyLoss "
        "calls it) and H.vision.smoothed_cross_entropy are the answer key the check "
        "compares with",
        "no_update": "update the weights: optimizer.zero_grad(), loss.backward(), then "
        "optimizer.step() (a zero_grad between backward and step throws the gradients away)",
        "loss_not_scalar": "return the mean loss, shape (): F.cross_entropy's default "
        "reduction='mean'; reduction='none' gives one loss per example, and backward() "
        "needs one number",
        "grad_accumulated": "call optimizer.zero_grad() in every step, before "
        "loss.backward(): backward() adds to .grad, so the second step used the sum of "
        "both steps' gradients",
        "loss_attached": "return loss.detach(): the loss itself still holds the step's "
        "autograd graph (requires_grad=True), and keeping it keeps every activation alive",
        "loss_float": "return a 0-d tensor (in a training step loss.detach()), not a "
        "Python float: .item() or float(...) leaves autograd's graph, copies the value to "
        "the CPU and makes Python wait for the device",
        "model_input": "give the model H.vision.to_input(images, mean, std): it normalises "
        "the uint8 NHWC batch and returns it as (B, C, H, W) float32 in channels_last "
        "memory, the layout PyTorch's convolutions take",
        "logits_dtype": "return float32 logits, what the model computes: run it outside "
        "torch.autocast, or cast the result with .float(); not bfloat16, not float64",
        "loss_dtype": "compute the loss in float32, from the float32 logits: in bfloat16 "
        "or float16 it loses digits; cast the logits with .float() before the loss",
        "step_layout": "x is already (B, 3, H, W), the layout the model takes (channels_last "
        "memory, as H.vision.to_input returns it): give it to the model as it is, do not "
        "permute it",
        "update_wrong": "call 1's loss is right but call 2's is not, so the first update "
        "differs: call optimizer.step() once per call, on the optimizer passed in (SGD with "
        "Nesterov momentum), not an update of your own (p -= lr * p.grad) nor two steps",
        "crop_bounds": "your crop reaches a row or column too far (or past the padded "
        "image): pad axes 1 and 2 by pad zeros on each side, (B, H + 2 * pad, W + 2 * pad, "
        "C), then take rows offsets[i, 0] + arange(H) and columns offsets[i, 1] + "
        "arange(W): offsets run over 0 .. 2 * pad, so the last row is offsets[i, 0] + H - 1 "
        "(no + 1), and rows use H, columns W",
        "step_smoothing_twice": "smooth once: F.cross_entropy's label_smoothing= already "
        "smooths, so give it the integer labels, not targets you smoothed yourself (or "
        "give your smoothed targets to a loss that does not smooth)",
        "step_autocast": "run the step in float32, without torch.autocast: the check "
        "compares with float32 reference steps to 1e-4, and under autocast the convolution "
        "and the linear layer compute in bfloat16 (about 3 significant digits); the "
        "chapter's mixed precision is for its GPU runs",
        "to_input_layout": "give H.vision.to_input the images as they arrive, uint8 NHWC "
        "(B, H, W, C): it normalises them and returns the channels_last (B, C, H, W) batch "
        "the model takes, so do not permute them first",
        "no_grad_missing": "evaluate under torch.no_grad() (or torch.inference_mode()): "
        "without it autograd records the forward pass, and the logits keep its graph",
    },
    adapter_hints.TORCH,
)

# An index out of bounds on an axis as long as the check's padded rows or columns ran past a
# padding that may be right (crop_bounds); on another axis, past a wrong padding (pad_axes).
_PADDED = sorted(
    {c["images"].shape[a] + 2 * c["pad"] for c in lab05.crop_cases() for a in (1, 2)}
)
_PAST_PADDED = (
    rf"out of bounds for dimension [12] with size ({'|'.join(map(str, _PADDED))})\b"
)

# PyTorch error messages (a regular expression on the message) -> the hint that fixes them,
# one table per exercise: the same message can have a different cause in each.
_ERRORS = {
    "crop_flip": {
        r"must match the size of tensor": "flip_broadcast",
        _PAST_PADDED: "crop_bounds",
        r"out of bounds for dimension|Padding length": "pad_axes",
        r"Slice size .* out of range": "nhwc",
        r"with a bool tensor is not supported": "flip_bool_arith",
    },
    "smoothed_cross_entropy": {r"must match the size of tensor": "classes_hardcoded"},
    "predict_logits": {
        r"expected images channels last": "to_input_layout",
        r"to have 3 channels|expected input.*channels": "model_input",
    },
    "mixup": {r"must match the size of tensor": "mix_lam_broadcast"},
    "cutmix": {r"must match the size of tensor": "cut_box_swapped"},
    "train_step": {
        r"grad can be implicitly created only for scalar outputs": "loss_not_scalar",
        r"to have 3 channels|expected input.*channels": "step_layout",
        r"does not require grad and does not have a grad_fn": "step_no_graph",
        r"argument 'weight' \(position 3\)": "step_smoothing_keyword",
    },
}
FRAMEWORKS = {
    exercise: lab_framework(HINTS, explainer(errors, HINTS))
    for exercise, errors in _ERRORS.items()
}
TORCH = FRAMEWORKS["crop_flip"]  # to_numpy etc.: the exercises' differ only in explain


def _library_loss(logits: np.ndarray, labels: np.ndarray, smoothing: float) -> float:
    return F.cross_entropy(
        torch.from_numpy(logits).double(),
        torch.from_numpy(labels).long(),
        label_smoothing=smoothing,
    ).item()


class _TinyNet(torch.nn.Module):
    """Exercises 3 and 4's model: conv 3x3, BatchNorm, GELU, mean over positions, linear.

    ``(B, 3, H, W)`` float32 -> logits ``(B, 10)``; the weights of ``tiny_net_weights()``.
    """

    def __init__(self) -> None:
        super().__init__()
        w = {k: torch.from_numpy(v) for k, v in model_checks.tiny_net_weights().items()}
        width, classes = w["fc_kernel"].shape
        self.conv = torch.nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(width)
        self.fc = torch.nn.Linear(width, classes)
        with torch.no_grad():
            self.conv.weight.copy_(w["conv"].permute(3, 2, 0, 1))  # HWIO -> OIHW
            self.bn.weight.copy_(w["bn_scale"])
            self.bn.bias.copy_(w["bn_bias"])
            self.bn.running_mean.copy_(w["bn_mean"])
            self.bn.running_var.copy_(w["bn_var"])
            self.fc.weight.copy_(w["fc_kernel"].T)
            self.fc.bias.copy_(w["fc_bias"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.bn(self.conv(x)), approximate="tanh")  # (B, w, H, W)
        return self.fc(x.mean((2, 3)))  # (B, 10)


def _make_model() -> _TinyNet:
    """Exercise 3's model, in training mode (as after training); its BatchNorm running
    statistics are far from the statistics of the check's batches."""
    return _TinyNet().train()


def _reference(model, images, mean, std, mistake: str) -> np.ndarray:
    model = copy.deepcopy(model)  # a training-mode forward updates running statistics
    x = images[:, :, ::-1] if mistake == "test_flip" else images
    x = torch.from_numpy(np.ascontiguousarray(x))
    if mistake == "not_normalised":
        mean, std = np.zeros(3, np.float32), np.ones(3, np.float32)
    model.train(mistake == "train_mode")
    with torch.no_grad():
        return model(to_input(x, mean, std)).numpy()


def _step_setup() -> tuple[_TinyNet, torch.optim.SGD]:
    """A fresh model, in evaluation mode (as after an evaluation), and its SGD."""
    model = _TinyNet().eval()
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=model_checks.STEP_LR,
        momentum=model_checks.STEP_MOMENTUM,
        nesterov=True,
    )
    return model, optimizer


def _step_prepare(
    x: np.ndarray, labels: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """NHWC numpy -> the channels_last ``(B, 3, H, W)`` float32 batch, int64 labels."""
    return torch.from_numpy(x.copy()).permute(0, 3, 1, 2), torch.from_numpy(
        labels.astype(np.int64)
    )


def _step_weights(model: _TinyNet) -> dict[str, np.ndarray]:
    """The model's weights and running statistics in the layout of ``tiny_net_weights()``."""
    t = {
        "conv": model.conv.weight.permute(2, 3, 1, 0),  # OIHW -> HWIO
        "bn_scale": model.bn.weight,
        "bn_bias": model.bn.bias,
        "bn_mean": model.bn.running_mean,
        "bn_var": model.bn.running_var,
        "fc_kernel": model.fc.weight.T,
        "fc_bias": model.fc.bias,
    }
    return {k: v.detach().numpy().copy() for k, v in t.items()}


@functools.cache
def _step_train(variant: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Two reference steps (``""``) or a known mistake's: the losses ``(2,)``, the weights."""
    model, optimizer = _step_setup()
    losses = []
    smoothings = model_checks.STEP_SMOOTHING  # one per call
    for (x, labels), s in zip(model_checks.step_batches(), smoothings, strict=True):
        x, y = _step_prepare(x, labels)
        name, _, constant = variant.partition("=")  # step_constant_smoothing=<s>
        s = float(constant) if name == "step_constant_smoothing" else s
        if variant != "train_mode_missing":
            model.train()
        # step_autocast: forward and loss under autocast, as chapter 5 trains on a GPU
        with torch.autocast("cpu", torch.bfloat16, enabled=variant == "step_autocast"):
            logits = model(x)  # (B, 10)
            if variant == "step_smoothing_twice":  # smoothed targets, smoothed again
                c = logits.shape[1]
                targets = (1 - s) * F.one_hot(y, c).float() + s / c
                loss = F.cross_entropy(logits, targets, label_smoothing=s)
            else:
                smoothing = 0.0 if variant == "step_no_smoothing" else s
                reduction = "sum" if variant == "loss_sum" else "mean"
                loss = F.cross_entropy(
                    logits, y, label_smoothing=smoothing, reduction=reduction
                )
        if variant != "grad_accumulated":
            optimizer.zero_grad()
        loss.backward()
        if variant != "no_update":
            optimizer.step()
        losses.append(loss.item())
    return np.asarray(losses), _step_weights(model)


class _Count(TorchFunctionMode):
    """Counts the torch functions and tensor methods called while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.n, self.host = 0, False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.n += 1
        self.host = self.host or getattr(func, "__name__", "") in ("numpy", "__array__")
        return func(*args, **(kwargs or {}))


def _ops(fn, args: tuple) -> int | str | None:
    """How many torch operations ``fn(*args)`` runs (numpy arrays as tensors), None if it
    fails, or "mix_host" where it copied a tensor to NumPy (.numpy(), np.asarray)."""
    given = [
        torch.from_numpy(a.copy()) if isinstance(a, np.ndarray) else a for a in args
    ]
    try:
        with _Count() as count:
            fn(*given)
    except Exception:
        return None
    return "mix_host" if count.host else count.n


def _mixing_keys() -> tuple[tuple[object, str], ...]:
    """torchvision's MixUp and CutMix (``transform``, what their calls run), if installed."""
    try:
        from torchvision.transforms import v2
    except ImportError:  # pragma: no cover - torchvision is optional
        return ()
    return tuple((cls, "transform") for cls in (v2.MixUp, v2.CutMix))


# The checks, bound to this framework. Call them with the student's function.
def _attached(value: object) -> bool:
    return isinstance(value, torch.Tensor) and value.requires_grad


check_crop_flip = partial(
    lab05.check_crop_flip,
    fw=FRAMEWORKS["crop_flip"],
    answer_keys=lab05.crop_flip_answer_keys(
        helpers.torch.augment, helpers.torch.vision
    ),
    ops=_ops,
)
check_smoothed_cross_entropy = partial(
    lab05.check_smoothed_cross_entropy,
    fw=FRAMEWORKS["smoothed_cross_entropy"],
    library=_library_loss,
    int_dtype=np.int64,
    # H.vision's first: a call of it reports it, not the F.cross_entropy inside it
    answer_keys=(
        (helpers.torch.vision, "smoothed_cross_entropy"),
        (F, "cross_entropy"),
    ),
)
check_mixup = partial(
    mixing.check_mixup,
    fw=FRAMEWORKS["mixup"],
    int_dtype=np.int64,
    ops=_ops,
    answer_keys=_mixing_keys(),
)
check_cutmix = partial(
    mixing.check_cutmix,
    fw=FRAMEWORKS["cutmix"],
    int_dtype=np.int64,
    ops=_ops,
    answer_keys=_mixing_keys(),
)
check_predict_logits = partial(
    model_checks.check_predict_logits,
    fw=FRAMEWORKS["predict_logits"],
    make_model=_make_model,
    reference=_reference,
    attached=_attached,
    stats=lambda model: torch.cat(
        [model.bn.running_mean, model.bn.running_var]
    ).numpy(),
    training=lambda model: model.training,
)
check_train_step = partial(
    model_checks.check_train_step,
    fw=FRAMEWORKS["train_step"],
    setup=_step_setup,
    prepare=_step_prepare,
    train=_step_train,
    weights=_step_weights,
    training=lambda model: model.training,
    attached=_attached,
    variants=(
        "grad_accumulated",
        "no_update",
        "step_smoothing_twice",
        "step_autocast",
        "step_no_smoothing",
        "train_mode_missing",
        "loss_sum",
    ),
)
