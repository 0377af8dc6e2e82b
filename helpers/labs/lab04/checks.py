"""Lab 4 self-checks shared by both frameworks, written once on numpy answers.

Exercises 1 and 5 work on a linear softmax classifier, ``params = {"W": (D, C), "b": (C,)}``
with the mean cross-entropy loss, whose gradients have a closed form: with
``e = softmax(x W + b) - onehot(y)``, one example's gradient is ``(outer(x, e), e)``. The
answers and the known mistakes are computed here from that formula in float64. Exercises 2 and
3 (a module and its training step) need the framework to build the reference model: the
adapters pass ``build(seed, variant)``, ``apply(model, x)`` and ``train(variant)``, one variant
per known mistake. Exercise 4 (sharding a batch) differs too much between the frameworks to
share more than its hints; each adapter writes its check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from helpers.labs.kit import Framework, Hints, checking

__all__ = [
    "HINTS",
    "MLP_WIDTHS",
    "check_build_mlp",
    "check_data_parallel_grads",
    "check_per_example_grad_norms",
    "check_train_step",
    "linear_cases",
    "per_example_norms",
    "shard_grads",
    "train_batches",
]

# Known mistakes and what to change; the adapters word the framework-dependent ones.
# tests/labs/test_lab04.py proves that each hint is produced by a mistake in its table.
HINTS = Hints(
    {
        "per_batch": "one norm per example: the gradient of each example's own loss (map "
        "over the batch axis of x and y, not over params), then a norm per example, shape "
        "(B,); the gradient of the batch's mean loss mixes the examples together",
        "squared": "take the square root: the norm is the square root of the sum of the "
        "squares of every entry of every gradient",
        "one_leaf": "the norm covers every parameter: add the squares of the gradients of "
        "W and of b for each example, then take the square root",
        "sum_of_norms": "one norm over all the parameters: add the squares of W's and b's "
        "gradients, then take one square root; the sum of the two norms is larger",
        "norms_differ": "return a vector (B,): for each example, the gradient of its own "
        "loss (a batch of one) with respect to W and b, then the square root of the sum of "
        "the squares of all its entries",
        "seed_ignored": "build the layers from the `seed` argument, not from a fixed seed",
        "mlp_differs": "seed once from `seed`, then create the three Linear layers in order "
        "(4 → 16, 16 → 16, 16 → 3), with a ReLU after each of the first two and nothing "
        "after the last: the check builds its network that way and compares the outputs",
        "no_activation": "put a ReLU after each hidden layer (not after the output layer)",
        "loss_after_update": "return the loss computed before the update, the one whose "
        "gradient the step used",
        "sum_loss": "the loss is the mean over the batch: a sum makes the gradient B "
        "times larger",
        "loss_differs": "return the mean cross-entropy of model(x) against y, computed "
        "before the update, and take exactly one step with the optimizer you are given "
        "(do not create a new one)",
        "sum_shards": "average the shards' gradients: their sum is n_shards times the "
        "full-batch gradient",
        "not_averaged": "return one gradient per parameter, with the parameter's shape: "
        "the mean over the shards, not the stack of them",
        "dp_differs": "cut x and y into n_shards contiguous shards, take each shard's "
        "gradient of loss_fn (the mean over its examples), and average the n_shards "
        "gradients: with equal shards that is the full batch's gradient",
    }
)

MLP_WIDTHS = (
    4,
    16,
    16,
    3,
)  # exercise 2's network: 4 inputs, two hidden layers, 3 classes


# --- the linear softmax classifier of exercises 1 and 5 ----------------------------------------
def linear_cases() -> list[dict[str, np.ndarray]]:
    """Two classifiers with inputs: ``x (B, D)``, ``y (B,)``, ``W (D, C)``, ``b (C,)``.

    B is a multiple of 8 (exercise 5 shards it in 4 and 8; the JAX lab's mesh has up to 8
    devices).
    """
    rng = np.random.default_rng(40)
    cases = []
    for batch, d, classes in [(16, 5, 3), (24, 4, 4)]:
        case = {
            "x": rng.normal(size=(batch, d)).astype(np.float32),
            "y": rng.integers(0, classes, size=batch),
            "W": rng.normal(size=(d, classes)).astype(np.float32),
            "b": rng.normal(size=classes).astype(np.float32),
        }
        cases.append(case)
    return cases


def _errors(case: Mapping[str, np.ndarray]) -> np.ndarray:
    """``softmax(x W + b) - onehot(y)``, ``(B, C)`` in float64: dloss/dlogits per example."""
    x, W, b = (np.asarray(case[k], np.float64) for k in ("x", "W", "b"))
    z = x @ W + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return p - np.eye(W.shape[1])[case["y"]]


def per_example_norms(case: Mapping[str, np.ndarray], mistake: str = "") -> np.ndarray:
    """The per-example gradient norms ``(B,)``, or what ``mistake`` gives instead."""
    e = _errors(case)
    x = np.asarray(case["x"], np.float64)
    sq_x, sq_e = (x**2).sum(1), (e**2).sum(1)  # (B,) each
    if (
        mistake == "per_batch"
    ):  # the norm of the batch's mean gradient, for every example
        gW, gb = x.T @ e / len(x), e.mean(0)
        return np.full(len(x), np.sqrt((gW**2).sum() + (gb**2).sum()))
    if mistake == "squared":
        return (sq_x + 1) * sq_e
    if mistake == "one_leaf":  # W's gradient only
        return np.sqrt(sq_x * sq_e)
    if mistake == "sum_of_norms":  # |g_W| + |g_b|
        return np.sqrt(sq_x * sq_e) + np.sqrt(sq_e)
    return np.sqrt((sq_x + 1) * sq_e)


def shard_grads(
    case: Mapping[str, np.ndarray], n_shards: int, mistake: str = ""
) -> dict[str, np.ndarray]:
    """The full-batch mean gradient ``{"W", "b"}``, or what ``mistake`` gives instead."""
    e = _errors(case)
    x = np.asarray(case["x"], np.float64)
    per_shard = [
        (xs.T @ es / len(xs), es.mean(0))
        for xs, es in zip(np.split(x, n_shards), np.split(e, n_shards), strict=True)
    ]
    stacked = {
        "W": np.stack([g[0] for g in per_shard]),
        "b": np.stack([g[1] for g in per_shard]),
    }
    if mistake == "not_averaged":
        return stacked
    if mistake == "sum_shards":
        return {k: v.sum(0) for k, v in stacked.items()}
    return {"W": x.T @ e / len(x), "b": e.mean(0)}


def _params(fw: Framework, case: Mapping[str, np.ndarray]) -> dict[str, Any]:
    return {k: fw.from_numpy(np.array(case[k])) for k in ("W", "b")}


def _labels(fw: Framework, y: np.ndarray) -> Any:
    return fw.from_numpy(np.asarray(y, np.int64 if fw.name == "torch" else np.int32))


# --- Exercise 1 ---------------------------------------------------------------------------------
def check_per_example_grad_norms(
    per_example_grad_norms: Callable,
    *,
    fw: Framework,
    compilations: Callable[[Callable[[], Any]], int] | None = None,
) -> None:
    """``per_example_grad_norms(params, x, y)`` -> ``(B,)``, on two classifiers.

    With ``compilations`` (JAX: counts the compilations while a thunk runs), two more calls
    with new values of the same shapes must compile nothing.
    """
    name = "per_example_grad_norms"
    passed = "one norm per example" + (", no recompilation" if compilations else "")
    with checking(name, fw, passed=passed) as c:
        cases = linear_cases()
        for case in cases:
            out = c.call(
                per_example_grad_norms,
                _params(fw, case),
                fw.from_numpy(case["x"]),
                _labels(fw, case["y"]),
            )
            arr = c.array(out)
            if arr.shape == ():
                raise c.fail(
                    "the result is one number, expected (B,)", c.hint("per_batch")
                )
            c.close(
                arr,
                per_example_norms(case),
                what="the norm",
                rtol=1e-4,
                atol=1e-5,
                hint=c.hint("norms_differ"),
                mistakes=[
                    (c.hint(m), per_example_norms(case, m))
                    for m in ("per_batch", "squared", "one_leaf", "sum_of_norms")
                ],
            )
        if compilations is not None:
            case = cases[0]
            again = [
                (
                    _params(fw, case),
                    fw.from_numpy(case["x"] * s),
                    _labels(fw, case["y"]),
                )
                for s in (0.5, 2.0)
            ]

            def twice() -> None:
                for args in again:
                    out = c.call(per_example_grad_norms, *args)
                    c.array(out)

            count = compilations(twice)
            c.expect(
                count == 0,
                f"two more calls with arrays of the same shapes compiled {count} time(s)",
                c.hint("retrace"),
            )


# --- Exercise 2 ---------------------------------------------------------------------------------
def _probe() -> np.ndarray:
    return np.random.default_rng(41).normal(size=(6, MLP_WIDTHS[0])).astype(np.float32)


def check_build_mlp(
    build_mlp: Callable,
    *,
    fw: Framework,
    build: Callable[[int, str], Any],
    apply: Callable[[Any, np.ndarray], np.ndarray],
    module_type: str,
) -> None:
    """``build_mlp(seed)`` -> a module; its outputs on a probe batch equal the reference's.

    ``build(seed, variant)`` builds the reference ("") or a known mistake ("key_reused",
    "no_activation"); ``apply(model, x)`` runs a model (``TypeError`` if it is none).
    """
    with checking(
        "build_mlp", fw, passed="the layers, their sizes and their initial weights"
    ) as c:
        x = _probe()
        for seed in (1, 2):
            model = c.call(build_mlp, seed)
            try:
                out = apply(model, x)
            except TypeError:
                raise c.fail(
                    f"expected {module_type}, got {type(model).__name__}"
                ) from None
            except Exception as e:
                raise c.raised(e) from None
            c.shape(out, (len(x), MLP_WIDTHS[-1]), f"the layer sizes are {MLP_WIDTHS}")
            mistakes = [
                (c.hint("key_reused"), apply(build(seed, "key_reused"), x)),
                (c.hint("seed_ignored"), apply(build(0, ""), x)),
                (c.hint("no_activation"), apply(build(seed, "no_activation"), x)),
            ]
            c.close(
                out,
                apply(build(seed, ""), x),
                what="the output",
                rtol=1e-4,
                atol=1e-5,
                hint=c.hint("mlp_differs"),
                mistakes=mistakes,
            )


# --- Exercise 3 ---------------------------------------------------------------------------------
def train_batches() -> list[tuple[np.ndarray, np.ndarray]]:
    """Two batches ``(x (8, 4) float32, y (8,) in 0..2)`` for two training steps."""
    rng = np.random.default_rng(42)
    return [
        (rng.normal(size=(8, MLP_WIDTHS[0])).astype(np.float32), rng.integers(0, 3, 8))
        for _ in range(2)
    ]


def check_train_step(
    train_step: Callable,
    *,
    fw: Framework,
    setup: Callable[[], tuple[Any, Any]],
    train: Callable[[str], tuple[np.ndarray, np.ndarray]],
    apply: Callable[[Any, np.ndarray], np.ndarray],
    variants: Sequence[str],
) -> None:
    """Two calls ``train_step(model, optimizer, x, y)`` on a fresh model and SGD (lr 0.1).

    The returned losses and the trained model's outputs must equal ``train("")``'s, the
    reference's ``(losses (2,), outputs)``; ``train(variant)`` gives each known mistake's.
    """
    with checking("train_step", fw, passed="the losses and the updated weights") as c:
        model, optimizer = setup()
        losses = []
        for x, y in train_batches():
            out = c.call(train_step, model, optimizer, fw.from_numpy(x), _labels(fw, y))
            if isinstance(out, float):
                raise c.fail(
                    f"expected {fw.array_type}, got a float",
                    "return the loss array itself (in PyTorch loss.detach(), not loss.item())",
                )
            value = c.array(out)
            c.shape(value, (), "return the loss, one number")
            losses.append(value)
        expected_losses, expected_out = train("")
        wrong = {v: train(v) for v in variants}
        c.close(
            np.stack(losses),
            expected_losses,
            what="the loss",
            rtol=1e-4,
            atol=1e-5,
            hint=c.hint("loss_differs"),
            mistakes=[(c.hint(v), w[0]) for v, w in wrong.items()],
        )
        c.close(
            apply(model, _probe()),
            expected_out,
            what="the trained model's output",
            rtol=1e-4,
            atol=1e-5,
            hint="the update differs from one SGD step on the gradient of the mean loss",
            mistakes=[(c.hint(v), w[1]) for v, w in wrong.items()],
        )


# --- Exercise 5 ---------------------------------------------------------------------------------
def check_data_parallel_grads(data_parallel_grads: Callable, *, fw: Framework) -> None:
    """``data_parallel_grads(params, x, y, n_shards)`` -> ``{"W", "b"}``: the full-batch
    gradient, as the mean of ``n_shards`` shards' gradients."""
    with checking(
        "data_parallel_grads", fw, passed="equal to the full-batch gradient"
    ) as c:
        for case, n in zip(linear_cases(), (4, 8), strict=True):
            out = c.call(
                data_parallel_grads,
                _params(fw, case),
                fw.from_numpy(case["x"]),
                _labels(fw, case["y"]),
                n,
            )
            if not isinstance(out, Mapping) or set(out) != {"W", "b"}:
                got = (
                    f"keys {sorted(map(str, out))}"
                    if isinstance(out, Mapping)
                    else type(out).__name__
                )
                raise c.fail(
                    f"expected a dict with keys 'W' and 'b', got {got}",
                    "return the gradients in the structure of params: {'W': ..., 'b': ...}",
                )
            expected = shard_grads(case, n)
            for k in ("W", "b"):
                c.close(
                    c.array(out[k], f"{fw.array_type} for {k}"),
                    expected[k],
                    what=f"the gradient of {k}",
                    rtol=1e-4,
                    atol=1e-5,
                    hint=c.hint("dp_differs"),
                    mistakes=[
                        (c.hint(m), shard_grads(case, n, m)[k])
                        for m in ("sum_shards", "not_averaged")
                    ],
                )
