"""Lab 1 self-checks, written once for both frameworks.

Each ``check_*`` takes the student's function and a :class:`Framework` adapter (how to turn
numpy into the framework's arrays and back). ``helpers.labs.lab01.torch`` and ``.jax``
bind the adapter, so a notebook calls ``H.lab01.check_preprocess(preprocess)``.

The expected answers are computed here in numpy, independently of the solutions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from helpers.labs.kit import Checker, checking

__all__ = [
    "Framework",
    "TrainStepHarness",
    "check_accuracy",
    "check_central_difference",
    "check_mse_grad",
    "check_preprocess",
    "check_train_step",
]


@dataclass(frozen=True)
class Framework:
    """How a check talks to one framework."""

    array_type: str  # what students should return, e.g. "a torch.Tensor"
    from_numpy: Callable[[np.ndarray], Any]
    to_numpy: Callable[
        [Any], np.ndarray
    ]  # raises TypeError for anything but its arrays


def _number(c: Checker, value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise c.fail(
            f"{what} should be a single number, got {type(value).__name__}"
        ) from None


def _close_or_diagnose(
    c: Checker,
    actual: np.ndarray,
    expected: np.ndarray,
    mistakes: dict[str, np.ndarray],
    *,
    what: str,
    hint: str,
    rtol: float,
    atol: float,
) -> None:
    """Like ``c.close``, but a result that matches a known mistake gets that mistake's hint."""
    actual = np.asarray(actual, np.float64)
    for mistake_hint, wrong in mistakes.items():
        if actual.shape == wrong.shape and np.allclose(
            actual, wrong, rtol=rtol, atol=atol
        ):
            hint = mistake_hint
            break
    c.close(actual, expected, what=what, rtol=rtol, atol=atol, hint=hint)


# --- Exercise 1: from uint8 images to model inputs -----------------------------------------------
def check_preprocess(preprocess: Callable, fw: Framework) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[1, 0, 0] = 255, 0  # make sure both ends of the range occur
    expected = images.reshape(5, 784).astype(np.float32) / 255
    with checking(
        "preprocess", passed="shape (N, 784), float32, values in [0, 1]"
    ) as c:
        out = c.call(preprocess, fw.from_numpy(images.copy()))
        arr = c.array(out, fw.to_numpy, fw.array_type)
        c.shape(
            arr,
            (5, 784),
            "flatten each 28x28 image into one row of 784 values (reshape)",
        )
        c.expect(
            arr.dtype == np.float32,
            f"the result has dtype {arr.dtype}, expected float32",
            "convert to float32 before dividing: uint8 arithmetic cannot hold fractions",
        )
        _close_or_diagnose(
            c,
            arr,
            expected,
            {"the values go up to 255: divide by 255": expected * 255},
            what="a pixel value",
            hint="scale 0..255 to 0..1 by dividing by 255 (not 256)",
            rtol=1e-6,
            atol=1e-6,
        )


# --- Exercise 2: accuracy ------------------------------------------------------------------------
def check_accuracy(accuracy: Callable, fw: Framework) -> None:
    # 7 examples, 3 classes: predictions (argmax over classes) are [0, 1, 2, 2, 0, 1, 1].
    logits = np.array(
        [[3, 1, 0], [0, 2, 1], [1, 0, 4], [0, 1, 2], [2, 1, 1], [0, 5, 1], [1, 3, 2]],
        np.float32,
    )
    labels = np.array([0, 1, 1, 2, 2, 1, 0])
    expected = 4 / 7
    hint = "predicted class = argmax over the class axis (the last one); average the matches"
    with checking("accuracy", passed="the fraction of correct predictions") as c:
        value = _number(
            c, c.call(accuracy, fw.from_numpy(logits), fw.from_numpy(labels)), "it"
        )
        if abs(value - 4) < 1e-6:
            hint = "that is the number of correct predictions: divide by the number of examples"
        c.close(
            np.array(value),
            np.array(expected),
            what="the accuracy",
            rtol=0,
            atol=1e-5,
            hint=hint,
        )
        all_right = _number(
            c,
            c.call(accuracy, fw.from_numpy(logits), fw.from_numpy(logits.argmax(-1))),
            "it",
        )
        c.close(
            np.array(all_right),
            np.array(1.0),
            what="the accuracy of perfect predictions",
            rtol=0,
            atol=1e-5,
            hint=hint,
        )


# --- Exercise 3: finite differences --------------------------------------------------------------
def _cubic(x: Any) -> Any:
    """f(x) = sum(x**3) + x0*x1; works on torch tensors and jax arrays alike."""
    return (x**3).sum() + x[0] * x[1]


def check_central_difference(central_difference: Callable, fw: Framework) -> None:
    x = np.array([0.5, -1.0, 2.0, 1.5, -0.3], np.float32)
    eps = 1e-2
    expected = 3 * x.astype(np.float64) ** 2 + np.array([x[1], x[0], 0, 0, 0])
    # The forward difference (f(x+h) - f(x)) / h is off by about 3*x*h here: large enough to see.
    forward = expected + 3 * x * eps + eps**2
    with checking(
        "central_difference", passed="matches the true gradient to O(eps^2)"
    ) as c:
        x_in = fw.from_numpy(x.copy())
        out = c.call(central_difference, _cubic, x_in, eps)
        arr = c.array(out, fw.to_numpy, fw.array_type)
        c.shape(arr, x.shape, "return one partial derivative per coordinate of x")
        c.expect(
            np.array_equal(fw.to_numpy(x_in), x),
            "your function changed its input x",
            "perturb a copy of x (x.clone() in PyTorch; JAX arrays cannot change in place)",
        )
        _close_or_diagnose(
            c,
            arr,
            expected,
            {
                "that is the forward difference; use (f(x+h) - f(x-h)) / (2h)": forward,
                "the step between x-h and x+h is 2h: divide by 2*eps": 2 * expected,
                "the sign is flipped: f(x+h) comes first": -expected,
            },
            what="a partial derivative",
            hint="perturb one coordinate i at a time by +eps and -eps",
            rtol=1e-3,
            atol=2e-3,
        )


# --- Exercise 4: a gradient by automatic differentiation -----------------------------------------
def check_mse_grad(mse_grad: Callable, fw: Framework) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(8, 3)).astype(np.float32)
    y = rng.normal(size=8).astype(np.float32)
    w = rng.normal(size=3).astype(np.float32)
    residual = X.astype(np.float64) @ w - y
    expected = 2 / len(y) * X.T @ residual  # d/dw mean((Xw - y)^2)
    with checking("mse_grad", passed="matches 2/n X^T (Xw - y)") as c:
        out = c.call(mse_grad, fw.from_numpy(w), fw.from_numpy(X), fw.from_numpy(y))
        arr = c.array(out, fw.to_numpy, fw.array_type)
        _close_or_diagnose(
            c,
            arr,
            expected,
            {
                "the sign is flipped: differentiate the loss itself, not minus the loss": -expected,
                "that is the gradient of the sum: the loss is the mean over examples": expected
                * len(y),
                "off by a factor 2: d/dw of r^2 is 2 r dr/dw": expected / 2,
            },
            what="a gradient entry",
            hint="differentiate loss(w) = mean((X @ w - y) ** 2) with respect to w",
            rtol=1e-4,
            atol=1e-5,
        )


# --- Exercise 5: one training step ---------------------------------------------------------------
class TrainStepHarness(Protocol):
    """The framework part of the train-step check: a fresh problem and a reference step."""

    def setup(
        self,
    ) -> tuple[Any, Any, Any, Any]:  # (model, optimizer, x, y), same every call
        ...

    def reference_step(self, model: Any, optimizer: Any, x: Any, y: Any) -> float: ...

    def parameters(
        self, model: Any
    ) -> np.ndarray:  # every parameter, flattened, as numpy
        ...


def check_train_step(train_step: Callable, harness: TrainStepHarness) -> None:
    model, optimizer, x, y = harness.setup()
    ref_model, ref_optimizer, _, _ = harness.setup()
    start = harness.parameters(model)
    with checking(
        "train_step", passed="two steps match a reference SGD step exactly"
    ) as c:
        for step in (1, 2):
            before = harness.parameters(model)
            loss = _number(
                c, c.call(train_step, model, optimizer, x, y), "the returned loss"
            )
            ref_loss = harness.reference_step(ref_model, ref_optimizer, x, y)
            after, ref_after = harness.parameters(model), harness.parameters(ref_model)
            if np.allclose(after, before):
                raise c.fail(
                    f"the parameters did not change in step {step}",
                    "apply the update: optimizer.step() in PyTorch, "
                    "optimizer.update(model, grads) in Flax NNX",
                )
            if step == 1 and np.allclose(
                after - start, -(ref_after - start), atol=1e-6
            ):
                raise c.fail(
                    "the parameters moved uphill", "minimise the loss: do not negate it"
                )
            if step == 2 and not np.allclose(after, ref_after, atol=1e-5):
                raise c.fail(
                    "step 1 was right but step 2 was not",
                    "gradients from step 1 leaked into step 2: reset them each step "
                    "(optimizer.zero_grad() in PyTorch)",
                )
            c.close(
                after,
                ref_after,
                what="a parameter after the step",
                rtol=1e-4,
                atol=1e-5,
                hint="compute the loss on (x, y), its gradient, then one optimizer update",
            )
            c.close(
                np.array(loss),
                np.array(ref_loss),
                what="the returned loss",
                rtol=1e-4,
                atol=1e-5,
                hint="return the loss computed before the update (a float)",
            )
