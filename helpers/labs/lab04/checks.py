"""Lab 4 self-checks shared by both frameworks, written once on numpy answers.

Exercises 1 and 4b work on a linear softmax classifier, ``params = {"W": (D, C), "b": (C,)}``
with the mean cross-entropy loss, whose gradients have a closed form: with
``e = softmax(x W + b) - onehot(y)``, one example's gradient is ``(outer(x, e), e)``. The
answers and the known mistakes are computed from that formula in float64, in
:mod:`helpers.labs.lab04.mistakes` (with the shared hints). Exercises 2 and
3 (a module and its training step) need the framework to build the reference model: the
adapters pass ``build(seed, variant)``, ``apply(model, x)`` and ``train(variant)``, one variant
per known mistake. Exercise 4a (sharding a batch) differs too much between the frameworks to
share more than its hints; each adapter writes its check.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from helpers.labs.kit import Checker, Framework, checking
from helpers.labs.lab04.mistakes import (
    DP_MISTAKES,
    HINTS,
    NORM_MISTAKES,
    per_example_norms,
    shard_grads,
)

__all__ = [
    "HINTS",
    "MLP_WIDTHS",
    "check_build_mlp",
    "check_data_parallel_grads",
    "check_per_example_grad_norms",
    "check_train_step",
    "inputs_kept",
    "linear_cases",
    "per_example_norms",
    "shard_grads",
    "train_batches",
]

MLP_WIDTHS = (
    4,
    16,
    16,
    3,
)  # exercise 2's network: 4 inputs, two hidden layers, 3 classes


# --- the linear softmax classifier of exercises 1 and 4b ---------------------------------------
def linear_cases() -> list[dict[str, np.ndarray]]:
    """Two classifiers with inputs: ``x (B, D)``, ``y (B,)``, ``W (D, C)``, ``b (C,)``.

    B is a multiple of 8 (exercise 4b shards it in 4 and 8; the JAX lab's mesh has up to 8
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


def _params(fw: Framework, case: Mapping[str, np.ndarray]) -> dict[str, Any]:
    return {k: fw.from_numpy(np.array(case[k])) for k in ("W", "b")}


def _labels(fw: Framework, y: np.ndarray) -> Any:
    return fw.from_numpy(np.asarray(y, np.int64 if fw.name == "torch" else np.int32))


def _float32(c: Checker, arr: np.ndarray, what: str = "the result") -> None:
    """Fail with the framework's dtype hint unless ``arr`` is float32, as the inputs are."""
    c.expect(
        arr.dtype == np.float32,
        f"{what} has dtype {arr.dtype}, expected float32",
        c.hint("dtype"),
    )


def inputs_kept(
    c: Checker, given: Sequence[Any], originals: Sequence[np.ndarray]
) -> None:
    """Fail with the "input_in_place" hint (PyTorch's) if the student's function changed one
    of its inputs: ``given`` are the arrays it received, ``originals`` their values before."""
    for value, original in zip(given, originals, strict=True):
        now = c.fw.to_numpy(value) if c.fw is not None else np.asarray(value)
        if now.shape != original.shape or not np.array_equal(now, original):
            raise c.fail(
                "your function changed its inputs in place", c.hint("input_in_place")
            )


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
            params, x = _params(fw, case), fw.from_numpy(case["x"].copy())
            out = c.call(per_example_grad_norms, params, x, _labels(fw, case["y"]))
            inputs_kept(c, [x, *params.values()], [case[k] for k in ("x", "W", "b")])
            arr = c.array(out)
            if arr.shape == ():
                whole = np.isclose(
                    arr, per_example_norms(case, "whole_batch"), rtol=1e-4
                )
                raise c.fail(
                    "the result is one number, expected (B,)",
                    c.hint("whole_batch" if whole else "per_batch"),
                )
            _float32(c, arr)
            c.close(
                arr,
                per_example_norms(case),
                what="the norm",
                rtol=1e-4,
                atol=1e-5,
                hint=c.hint("norms_differ"),
                mistakes=[
                    (c.hint(key), per_example_norms(case, m))
                    for m, key in NORM_MISTAKES
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


def _run_module(
    c: Checker, apply: Callable, model: Any, x: np.ndarray, module_type: str
) -> np.ndarray:
    """``apply(model, x)``; a result that is no module, or a crash, fails with a hint."""
    try:
        return apply(model, x)
    except TypeError:
        hint = ""
        if isinstance(model, type):
            hint = c.hint("class_not_instance")
        elif isinstance(model, Mapping):
            hint = c.hint("state_not_module")
        raise c.fail(
            f"expected {module_type}, got {type(model).__name__}", hint
        ) from None
    except Exception as e:
        raise c.raised(e) from None


def check_build_mlp(
    build_mlp: Callable,
    *,
    fw: Framework,
    build: Callable[[int, str], Any],
    apply: Callable[[Any, np.ndarray], np.ndarray],
    module_type: str,
    parameters: Callable[[Any], list[np.ndarray]],
) -> None:
    """``build_mlp(seed)`` -> a module; its outputs on a probe batch equal the reference's.

    ``build(seed, variant)`` builds the reference ("") or a known mistake ("key_reused",
    "no_activation"); ``apply(model, x)`` runs a model (``TypeError`` if it is none);
    ``parameters(model)`` lists what an optimizer would train, which must be float32 and
    exactly the three layers' weights and biases. Two calls with the same seed must build
    the same network.
    """
    with checking(
        "build_mlp", fw, passed="the layers, their sizes and their initial weights"
    ) as c:
        x = _probe()
        for seed in (1, 2):
            model = c.call(build_mlp, seed)
            out = _run_module(c, apply, model, x, module_type)
            c.shape(out, (len(x), MLP_WIDTHS[-1]), f"the layer sizes are {MLP_WIDTHS}")
            trained = parameters(model)
            dtypes = sorted({str(p.dtype) for p in trained})
            c.expect(
                dtypes in ([], ["float32"]),
                f"the parameters have dtype {', '.join(dtypes)}, expected float32",
                c.hint("model_dtype"),
            )
            again = _run_module(c, apply, c.call(build_mlp, seed), x, module_type)
            c.expect(
                np.allclose(out, again, rtol=1e-4, atol=1e-5),
                f"two calls build_mlp({seed}) built networks with different weights",
                c.hint("not_seeded"),
            )
            reference = apply(build(seed, ""), x)
            shifted = reference - reference.max(1, keepdims=True)
            log_softmax = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
            mistakes = [
                (c.hint("key_reused"), apply(build(seed, "key_reused"), x)),
                (c.hint("seed_ignored"), apply(build(0, ""), x)),
                (c.hint("no_activation"), apply(build(seed, "no_activation"), x)),
                (c.hint("softmax_output"), np.exp(log_softmax)),
                (c.hint("softmax_output"), log_softmax),
            ]
            c.close(
                out,
                reference,
                what="the output",
                rtol=1e-4,
                atol=1e-5,
                hint=c.hint("mlp_differs"),
                mistakes=mistakes,
            )
            count = sum(p.size for p in trained)
            expected = sum((a + 1) * b for a, b in itertools.pairwise(MLP_WIDTHS))
            c.expect(
                count == expected,
                f"the outputs are right, but the network has {count} trainable parameters, "
                f"expected {expected}",
                c.hint("params_hidden" if count < expected else "extra_params"),
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
    loss_problem: Callable[[Any], str] | None = None,
    lost_update: Callable[[Callable], str] | None = None,
) -> None:
    """Two calls ``train_step(model, optimizer, x, y)`` on a fresh model and SGD (lr 0.1).

    The returned losses and the trained model's outputs must equal ``train("")``'s, the
    reference's ``(losses (2,), outputs)``; ``train(variant)`` gives each known mistake's.
    ``loss_problem(loss)`` names the hint for a returned loss that is wrong whatever its value
    (PyTorch: still attached to its graph), or "". When the weights did not change,
    ``lost_update(train_step)`` names a more precise hint than "no_update", or "".
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
            _float32(c, value, "the loss")
            key = loss_problem(out) if loss_problem is not None else ""
            if key:
                raise c.fail(
                    "the returned loss still holds on to this step's graph", c.hint(key)
                )
            losses.append(value)
        expected_losses, expected_out = train("")
        wrong = {v: train(v) for v in variants}
        hints = {v: c.hint(v) for v in variants}
        trained = apply(model, _probe())
        if "no_update" in wrong and lost_update is not None:
            unchanged = np.allclose(
                trained, wrong["no_update"][1], rtol=1e-4, atol=1e-5
            )
            key = lost_update(train_step) if unchanged else ""
            hints["no_update"] = c.hint(key or "no_update")
        c.close(
            np.stack(losses),
            expected_losses,
            what="the loss",
            rtol=1e-4,
            atol=1e-5,
            hint=c.hint("loss_differs"),
            mistakes=[(hints[v], w[0]) for v, w in wrong.items()],
        )
        c.close(
            trained,
            expected_out,
            what="the trained model's output",
            rtol=1e-4,
            atol=1e-5,
            hint="the update differs from one SGD step on the gradient of the mean loss",
            mistakes=[(hints[v], w[1]) for v, w in wrong.items()],
        )


# --- Exercise 4b --------------------------------------------------------------------------------
def check_data_parallel_grads(data_parallel_grads: Callable, *, fw: Framework) -> None:
    """``data_parallel_grads(params, x, y, n_shards)`` -> ``{"W", "b"}``: the full-batch
    gradient, as the mean of ``n_shards`` shards' gradients."""
    with checking(
        "data_parallel_grads", fw, passed="equal to the full-batch gradient"
    ) as c:
        for case, n in zip(linear_cases(), (4, 8), strict=True):
            params, x = _params(fw, case), fw.from_numpy(case["x"].copy())
            out = c.call(data_parallel_grads, params, x, _labels(fw, case["y"]), n)
            inputs_kept(c, [x, *params.values()], [case[k] for k in ("x", "W", "b")])
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
            known = [(key, shard_grads(case, n, m)) for m, key in DP_MISTAKES]
            for k in ("W", "b"):
                grad = c.array(out[k], f"{fw.array_type} for {k}")
                _float32(c, grad, f"the gradient of {k}")
                shape = expected[k].shape
                mistakes = [(c.hint(key), g[k]) for key, g in known]
                if "dp_copies" in fw.hints:  # JAX's pmean in vmap: a copy per shard
                    copies = np.broadcast_to(expected[k], (n, *shape))
                    mistakes.append((c.hint("dp_copies"), copies))
                wrong_shape = grad.shape not in (shape, (n, *shape))
                c.close(
                    grad,
                    expected[k],
                    what=f"the gradient of {k}",
                    rtol=1e-4,
                    atol=1e-5,
                    hint=c.hint("shard_axis" if wrong_shape else "dp_differs"),
                    mistakes=mistakes,
                )
