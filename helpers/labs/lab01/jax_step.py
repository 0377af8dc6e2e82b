"""Lab 1, exercise 5 in JAX: a pure training step, ``train_step(params, x, y, step, key)``.

The JAX twin of PyTorch's "a training step that fails the second time": a jitted step that
counts its calls in a Python global and draws its dropout mask from a global key runs its
Python body only while jit traces it, so every later call reuses the first call's learning
rate and mask. The student writes the step as a pure function of its arguments; the check
compiles it with ``jax.jit`` (counting its traces), runs three steps on one batch (one trace)
and a fourth on a smaller batch, compares each with a float64 NumPy reference, and names the
known mistakes by the result they give.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from helpers.labs.kit import Framework, checking, explainer

__all__ = ["HINTS", "check_train_step"]

KEEP = 0.9  # the probability of keeping a pixel
LR = 0.5  # the learning rate at step 0; lr = LR / (step + 1)

HINTS = {
    "lr_constant": "the learning rate must come from the step argument, lr = 0.5 / "
    "(step + 1): a constant, or a Python counter (which runs only while jit traces), "
    "gives 0.5 on every step",
    "lr_by_step": "step is 0 on the first call: lr = 0.5 / (step + 1); 0.5 / step "
    "divides by zero (inf, then nan parameters)",
    "lr_off_by_one": "lr = 0.5 / (step + 1): 0.5 at step 0, 0.25 at step 1, 0.5 / 3 at "
    "step 2 (mind the parentheses, and divide, do not multiply)",
    "step_traced": "under jax.jit, step is a tracer, with a shape but no value: compute "
    "lr = 0.5 / (step + 1) with array arithmetic, without int(step), float(step), "
    "range(step), if on it or a static argument",
    "loss_traced": "under jax.jit the loss is a tracer: return it as the 0-d array that "
    "jax.value_and_grad gives, without float(...) or .item() (the caller converts it, "
    "outside jit)",
    "fixed_key": "draw the mask with jax.random.bernoulli from the key argument: yours "
    "does not change with key (a key made inside the function, such as jax.random.key(0) "
    "or jax.random.key(step), a global one, or NumPy's random numbers, drawn once while "
    "jit traces)",
    "no_update": "apply the update, p - lr * g for each parameter, with lr = 0.5 / "
    "(step + 1): 0.5 at step 0, not 0",
    "key_split_inside": "draw the mask from key itself, jax.random.bernoulli(key, 0.9, "
    "x.shape): the caller already split it (split first, use each key once), and a "
    "split or fold_in inside draws another mask than the one asked for",
    "keep_prob": "bernoulli's p is the probability of True, here of keeping a pixel: "
    "keep = jax.random.bernoulli(key, 0.9, x.shape), then jnp.where(keep, x / 0.9, "
    "0.0) (not p = 0.1, and not the mask inverted)",
    "dropout_unscaled": "inverted dropout divides the kept pixels by the probability of "
    "keeping, 0.9 (neither leaves them as they are nor multiplies them): "
    "jnp.where(keep, x / 0.9, 0.0), so that each input keeps its mean",
    "dropout_scale_drop": "divide the kept pixels by 0.9, the probability of keeping, not "
    "by 0.1, the probability of dropping (nor multiply them by 0.1): "
    "jnp.where(keep, x / 0.9, 0.0)",
    "dropout_inputs": "drop pixels of the inputs, before the model sees them: keep "
    "shaped like x, inputs = jnp.where(keep, x / 0.9, 0.0), then the loss and gradient "
    "on inputs; not a mask on the weights, the logits or the gradients",
    "loss_scale": "use loss_fn as given, the mean cross-entropy over the batch: a sum, a "
    "mean divided by a fixed batch size or by the number of classes scales the gradient, "
    "and with it every step",
    "numpy_traced": "under jax.jit every array is a tracer, which NumPy cannot read: "
    "compute with jnp (jnp.where, jnp.exp, ...) inside the step, not np, and convert to "
    "NumPy only outside it",
    "no_dropout": "apply the dropout mask to the inputs: inputs = jnp.where(keep, x / 0.9, "
    "0.0), and compute the loss and gradient on inputs, not on x",
    "mask_exact": "draw the mask exactly as jax.random.bernoulli(key, 0.9, x.shape): "
    "another function of the same key (uniform(key, x.shape) > 0.1, say) keeps other "
    "pixels",
    "dropout_zero": "a dropped pixel becomes 0: jnp.where(keep, x / 0.9, 0.0), not x",
    "update_all": "update every parameter, w and b: jax.tree.map(lambda p, g: p - lr * g, "
    "params, grads) walks both",
    "mask_shape": "draw one keep-or-drop per pixel, a mask shaped like x: "
    "jax.random.bernoulli(key, 0.9, x.shape); a (B, 1) or (D,) mask drops whole "
    "examples or whole features",
    "loss_before": "return the loss that jax.value_and_grad computed with the gradient: "
    "on this step's dropped-out inputs, with the parameters before the update",
    "ascent": "step against the gradient, p - lr * g: p + lr * g climbs the loss",
    "return_grads": "return the updated parameters, p - lr * g for each, not the gradients",
    "return_pair": "return a pair (new_params, loss), in that order: new_params a dict "
    "with the keys 'w' and 'b' like params, loss a 0-d array",
}

# JAX errors under the check's jit -> the hint that fixes them. A tracer of the step
# (int32[]) converted to Python is a learning rate computed in Python; a float32[] one is
# usually the loss converted for the return; any other tracer error (a bool from comparing
# step, say) falls back to step_traced.
_MESSAGES = {
    r"Non-hashable static arguments": "step_traced",
    r"Incompatible shapes for broadcasting": "mask_shape",
    r"traced array with shape int32\[\]": "step_traced",
    r"traced array with shape float32\[\]": "loss_traced",
    r"__array__\(\) was called on traced array": "numpy_traced",
}


def _explain_with(hints: dict[str, str]):
    base = explainer(_MESSAGES, hints)

    def explain(error: BaseException) -> str | None:
        return base(error) or (
            hints["step_traced"]
            if re.search(r"Tracer|tracer", type(error).__name__ + str(error))
            else None
        )

    return explain


# --- The problem and the float64 reference ------------------------------------------------
_B, _D, _C = 6, 10, 3  # B != D: a (B,) or (D,) mask is told apart, a (B, D) one needed


def _problem() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list, Any]:
    """Params, a batch, four steps' keys and two spare keys; the same on every call."""
    rng = np.random.default_rng(0)
    params = {
        "w": (rng.standard_normal((_D, _C)) * 0.5).astype(np.float32),
        "b": (rng.standard_normal(_C) * 0.1).astype(np.float32),
    }
    x = rng.uniform(0, 1, (_B, _D)).astype(np.float32)
    y = np.array([0, 1, 2, 1, 0, 2], np.int32)
    keys = list(jax.random.split(jax.random.key(2026), 6))
    return params, x, y, keys[:4], keys[4:]


def _mask(key, shape, p=KEEP) -> np.ndarray:
    return np.asarray(jax.random.bernoulli(key, p, shape))


def _loss_and_grads(
    params, inputs, y, w_keep=None, z_keep=None
) -> tuple[float, dict[str, np.ndarray]]:
    """Mean softmax cross-entropy of a linear classifier and its gradient, in float64; with
    ``w_keep`` or ``z_keep``, inverted dropout of the weights or the logits (mistakes)."""
    w, b = (np.asarray(params[k], np.float64) for k in ("w", "b"))
    drop = lambda keep, a: a if keep is None else np.where(keep, a / KEEP, 0.0)  # noqa: E731
    logits = drop(z_keep, inputs @ drop(w_keep, w) + b)  # (B, C)
    logits = logits - logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    onehot = np.eye(_C)[y]
    dz = drop(z_keep, (np.exp(log_p) - onehot) / len(y))  # (B, C)
    grads = {"w": drop(w_keep, inputs.T @ dz), "b": dz.sum(0)}
    return float(-(log_p * onehot).sum(1).mean()), grads


def _step(params, inputs, y, lr, *, grads_out=False):
    """(new params, loss) of one SGD step on ``inputs``; with ``grads_out``, the gradients
    in place of the new params (a known mistake)."""
    loss, grads = _loss_and_grads(params, inputs, y)
    new = {k: np.asarray(params[k], np.float64) - lr * grads[k] for k in grads}
    return (grads if grads_out else new), loss


def _inputs(x, keep, scale=KEEP) -> np.ndarray:
    return np.where(keep, x.astype(np.float64) / scale, 0.0)


def _flat(params) -> np.ndarray:
    return np.concatenate([np.ravel(params["w"]), np.ravel(params["b"])])


def _mistakes(params, x, y, step, key, hints) -> list[tuple[str, np.ndarray]]:
    """(hint, the flat params after this step) for each known mistake of the update."""
    lr, x64, (rows, cols) = LR / (step + 1), x.astype(np.float64), x.shape
    right = _inputs(x, _mask(key, x.shape))
    masks = {
        "keep_prob": [
            _inputs(x, _mask(key, x.shape, p=1 - KEEP)),
            _inputs(x, ~_mask(key, x.shape)),
        ],
        "dropout_unscaled": [
            _inputs(x, _mask(key, x.shape), 1.0),
            _inputs(x, _mask(key, x.shape), 1 / KEEP),
        ],
        "dropout_scale_drop": [
            _inputs(x, _mask(key, x.shape), scale)
            for scale in (1 - KEEP, 1 / (1 - KEEP))
        ],
        "dropout_zero": [np.where(_mask(key, x.shape), x64 / KEEP, x64)],
        "mask_exact": [
            _inputs(x, np.asarray(jax.random.uniform(key, x.shape) > 1 - KEEP)),
            _inputs(x, np.asarray(jax.random.uniform(key, x.shape) >= 1 - KEEP)),
        ],
        "no_dropout": [x64],
        "mask_shape": [
            *(_inputs(x, _mask(key, shape)) for shape in ((rows, 1), (cols,))),
            _inputs(x, _mask(key, (cols, rows)).T),
        ],
        "key_split_inside": [
            _inputs(x, _mask(k, x.shape))
            for k in (
                *jax.random.split(key),
                jax.random.split(key, 1)[0],
                jax.random.fold_in(key, step),
            )
        ],
    }
    found = [
        (hints[hint], _flat(_step(params, inputs, y, lr)[0]))
        for hint, variants in masks.items()
        for inputs in variants
    ]
    # Dropout elsewhere: on the weights, the logits or the gradients (w, or w and b).
    flat = lambda grads: _flat({k: params[k] - lr * grads[k] for k in grads})  # noqa: E731
    for keep in (
        {"w_keep": _mask(key, (cols, _C))},
        {"z_keep": _mask(key, (rows, _C))},
    ):
        found.append(
            (hints["dropout_inputs"], flat(_loss_and_grads(params, x64, y, **keep)[1]))
        )
    # The weights dropped before the gradient is taken: the gradient of the dropped ones.
    dropped_w = {**params, "w": _inputs(params["w"], _mask(key, (cols, _C)))}
    found.append((hints["dropout_inputs"], flat(_loss_and_grads(dropped_w, x64, y)[1])))
    _, g = _loss_and_grads(params, x64, y)
    g = {**g, "w": _inputs(g["w"], _mask(key, g["w"].shape))}
    for grads in (g, {**g, "b": _inputs(g["b"], _mask(key, g["b"].shape))}):
        found.append((hints["dropout_inputs"], flat(grads)))
    new = _step(params, right, y, lr)[0]
    for name in ("w", "b"):  # one parameter updated, the other left as it was
        found.append((hints["update_all"], _flat({**new, name: params[name]})))
    found.append(
        (hints["return_grads"], _flat(_step(params, right, y, lr, grads_out=True)[0]))
    )
    return found


def _lr_hint(used: float, step: int, batch: int, hints) -> str:
    """The hint for a step whose update is the right gradient times ``used``."""
    lr = LR / (step + 1)
    scales = [batch, 1 / _C] + ([batch / _B] if batch != _B else [])
    if any(np.isclose(used, lr * s, rtol=1e-3) for s in scales):
        return hints["loss_scale"]
    if np.isclose(used, -lr, rtol=1e-3):
        return hints["ascent"]
    if np.isclose(used, LR, rtol=1e-3):
        return hints["lr_constant"]
    return hints["lr_off_by_one"]


def _diagnose(c, run, at, step, key, spare, got, before, hints) -> None:
    """Fail for step ``step``'s parameters ``got`` (flat), which differ from the reference:
    with the hint of the known mistake they match, or the general one."""
    x, y = at[1], at[2]
    lr, what = LR / (step + 1), f"a parameter after step {step}"
    inputs = _inputs(np.asarray(x), _mask(key, x.shape))
    ref, _ = _step(before, inputs, np.asarray(y), lr)
    general = (
        "keep = jax.random.bernoulli(key, 0.9, x.shape), inputs = jnp.where(keep, x / 0.9, "
        "0.0), loss and gradient by jax.value_and_grad(loss_fn), then p - lr * g with "
        "lr = 0.5 / (step + 1)"
    )
    if not np.all(np.isfinite(got)):
        c.close(
            got,
            _flat(ref),
            what=what,
            hint=hints["lr_by_step"] if step == 0 else general,
        )
    mistakes = _mistakes(before, np.asarray(x), np.asarray(y), step, key, hints)
    for hint, wrong in mistakes:
        if np.allclose(got, wrong, rtol=1e-4, atol=1e-6):
            c.close(got, _flat(ref), what=what, rtol=1e-4, atol=1e-6, hint=hint)
    # The right gradient, scaled by another learning rate.
    _, grads = _loss_and_grads(before, inputs, np.asarray(y))
    g, p = _flat(grads), _flat(before).astype(np.float64)
    used = float(-(got - p) @ g / (g @ g))
    if np.allclose(got, p, rtol=1e-6, atol=1e-7):
        raise c.fail(
            f"the parameters did not change in step {step}", hints["no_update"]
        )
    if np.allclose(got, p - used * g, rtol=1e-4, atol=1e-6):
        hint = _lr_hint(used, step, len(x), hints)
        raise c.fail(
            f"step {step}'s update is {used / lr:.4g} times the expected one"
            if hint == hints["loss_scale"]
            else f"step {step} used a learning rate of {used:.4g}, expected {lr:.4g}",
            hint,
        )
    # The mask ignores the key when two other keys give the same parameters.
    probes = [_unpack(c, c.call(run, *at[:4], k), hints)[0] for k in spare]
    if np.array_equal(_flat(probes[0]), _flat(probes[1])):
        c.close(
            got, _flat(ref), what=what, rtol=1e-4, atol=1e-6, hint=hints["fixed_key"]
        )
    c.close(got, _flat(ref), what=what, rtol=1e-4, atol=1e-6, hint=general)


def check_train_step(train_step, fw: Framework) -> None:
    """Exercise 5 (JAX): ``jax.jit(train_step)`` over three steps, traced once, then a
    fourth step on a smaller batch (a new shape: the second trace)."""
    hints = fw.hints
    fw = dataclasses.replace(fw, explain=_explain_with(hints))
    params, x, y, keys, spare = _problem()
    # Steps 0-2 on one batch; step 3 on its first 4 examples, so that a size fixed to the
    # first batch shows, and the function runs twice in Python (once per trace).
    batches = [(x, y)] * 3 + [(x[:4], y[:4])]
    traces = []

    def counted(*args):
        traces.append(1)  # runs once per trace, not per call
        return train_step(*args)

    with checking(
        "train_step",
        fw,
        passed="3 jitted steps match a reference in 1 trace, and a 4th on a smaller batch",
    ) as c:
        c.expect(
            callable(train_step),
            f"expected a function, got {type(train_step).__name__}",
        )
        run = jax.jit(counted)
        current = {k: jnp.asarray(v) for k, v in params.items()}
        for step, ((xb, yb), key) in enumerate(zip(batches, keys, strict=True)):
            if step == 3:
                c.expect(
                    len(traces) == 1,
                    f"jax.jit traced your function {len(traces)} times for 3 calls "
                    "with arguments of the same shapes",
                    "return new_params with the same structure, shapes and dtypes as "
                    "params: jit traces again whenever they change",
                )
            at = (current, jnp.asarray(xb), jnp.asarray(yb), jnp.int32(step))
            out = c.call(run, *at, key)
            new, loss = _unpack(c, out, hints)
            before = {k: np.asarray(v) for k, v in current.items()}
            inputs = _inputs(xb, _mask(key, xb.shape))
            ref, ref_loss = _step(before, inputs, yb, LR / (step + 1))
            if not np.allclose(_flat(new), _flat(ref), rtol=1e-4, atol=1e-6):
                _diagnose(c, run, at, step, key, spare, _flat(new), before, hints)
            c.close(
                loss,
                ref_loss,
                what=f"the loss returned by step {step}",
                rtol=1e-5,
                atol=1e-6,
                hint=hints["loss_before"],
            )
            current = out[0]  # the student's own arrays, as a training loop passes them


def _unpack(c, out, hints) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The student's (new_params, loss), as NumPy; fail with a hint when it is not one."""
    pair = hints["return_pair"]
    c.expect(
        isinstance(out, (tuple, list)) and len(out) == 2,
        f"expected a pair (new_params, loss), got {type(out).__name__}"
        + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""),
        pair,
    )
    new, loss = out
    c.expect(
        isinstance(new, dict) and set(new) == {"w", "b"},
        "new_params should be a dict with the keys 'w' and 'b', got "
        + (
            f"a dict with keys {sorted(map(str, new))}"
            if isinstance(new, dict)
            else type(new).__name__
        ),
        pair,
    )
    arrays = {}
    for name, shape in (("w", (_D, _C)), ("b", (_C,))):
        arr = c.array(new[name], f"new_params['{name}'] as a jax.Array")
        c.shape(arr, shape, f"new_params['{name}'] keeps the shape of params['{name}']")
        c.dtype(arr, "float32", "keep the parameters' dtype, float32")
        arrays[name] = arr
    loss = c.array(loss, "the loss as a jax.Array")
    c.expect(loss.shape == (), f"the loss has shape {loss.shape}, expected ()", pair)
    return arrays, loss
