"""Lab 8, exercise 4: one step of Lion, checked once on numpy answers for both frameworks.

Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", NeurIPS) keeps one
state, the momentum ``m``, and moves every coordinate by exactly ``lr`` before the decay::

    c = beta1 * m + (1 - beta1) * g             # the interpolation: this step's direction
    param = param - lr * (sign(c) + weight_decay * param)
    m = beta2 * m + (1 - beta2) * g             # the momentum, tracked with the other beta

:func:`lion_reference` computes it in float64 numpy, with a switch per known mistake;
``tests/labs/test_lab08.py`` asserts that, with no switch set, it equals ``optax.lion`` on
every case below (``torch.optim`` has no Lion in the versions this course pins), and that
each mistake gives its own trajectory. The adapters (``torch.py``, ``jax.py``) run the
student's code step after step, feeding its results back, and hand the trajectory over;
:func:`compare_lion` matches the whole trajectory against each mistake's, so two mistakes that
agree on the first wrong step still get their own hints.

The hints are templates, worded once and filled in with each framework's names
(:func:`lion_hints`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from helpers.labs.kit import Checker

__all__ = [
    "LION_CASES",
    "LION_MISTAKES",
    "compare_lion",
    "lion_hints",
    "lion_inputs",
    "lion_reference",
]

# Placeholders: {lr} {b1} {b2} {p} {g} (the framework's names), {sign} (its sign function),
# {step} (the whole step, in its words) and {where} (where the new m goes, or "").
_TEMPLATES = {
    "lion_momentum_first": "compute the direction from the momentum you were given, then "
    "update it: c = {b1} * m + (1 - {b1}) * {g} with the old m, the step, and only then "
    "m = {b2} * m + (1 - {b2}) * {g}; updating m first counts this gradient twice in c",
    "lion_momentum_beta1": "Lion has two betas: {b1} mixes this step's direction, c = {b1} "
    "* m + (1 - {b1}) * {g}, and {b2} tracks the momentum, m = {b2} * m + (1 - {b2}) * {g}; "
    "the new m is not c (with {b1} for both, Lion's long memory of {b2} is lost)",
    "lion_direction_m": "the direction is the sign of an interpolation of the momentum and "
    "this gradient, c = {b1} * m + (1 - {b1}) * {g}, not of m alone (at the first step m "
    "is 0, and sign(m) does not move at all)",
    "lion_direction_g": "the direction is the sign of an interpolation of the momentum and "
    "this gradient, c = {b1} * m + (1 - {b1}) * {g}, not of the gradient alone (that is "
    "signSGD, without momentum)",
    "lion_not_signed": "take the sign of the interpolation, {sign}(c): every coordinate "
    "moves by exactly {lr} (before the decay) whatever the gradient's size; {lr} * c is a "
    "momentum-SGD step",
    "lion_sign_zero": "where c is exactly 0 (a coordinate whose gradient and momentum are 0, "
    "as an unused embedding row's; one case has such coordinates) the sign is 0, so only "
    "the decay moves it: use {sign}(c), which gives 0 at 0; a comparison such as c >= 0 "
    "gives +1 (or -1) there, and c / abs(c) gives NaN",
    "lion_decay_coupled": "the decay is decoupled, as in AdamW: c and m use {g} as given, "
    "and weight_decay * {p} is added to the signed direction, {step}; adding it to the "
    "gradient (or to c, inside the sign) is an L2 penalty, which the sign then flattens",
    "lion_decay_without_lr": "the decay is scaled by the learning rate too: {step}, not the "
    "signed step minus weight_decay * {p}",
    "lion_decay_order": "the decay uses the parameter the step starts from, in the same "
    "step: {step}; shrinking the parameter after the signed step differs by "
    "{lr}**2 * weight_decay * sign(c)",
    "lion_decay_missing": "add the decoupled weight decay to the signed direction: {step} "
    "(Lion wants a larger weight_decay than AdamW, since its steps are larger)",
    "lion_momentum_sum": "the momentum is an average, m = {b2} * m + (1 - {b2}) * {g}, not "
    "a sum as SGD's momentum keeps it (m = {b2} * m + {g})",
    "lion_m_not_updated": "return the new momentum, m = {b2} * m + (1 - {b2}) * {g}{where}: "
    "with the old one m stays 0, and the direction is the gradient's sign alone",
    "lion_betas_swapped": "{b1} belongs to the interpolation, c = {b1} * m + (1 - {b1}) * "
    "{g}, and {b2} to the momentum, m = {b2} * m + (1 - {b2}) * {g}: the two are swapped",
    "lion_weights_swapped": "each average keeps beta of the old momentum and 1 - beta of "
    "this gradient: c = {b1} * m + (1 - {b1}) * {g} and m = {b2} * m + (1 - {b2}) * {g}, "
    "not {b1} * {g} + (1 - {b1}) * m",
    "lion_update_sign": "the step goes against the direction: {step}",
    "lion_lr_missing": "scale the whole step by the learning rate, the sign and the decay "
    "alike: {step}; without {lr} every coordinate moves by 1",
    "lion_zero_skipped": "skip no coordinate: where {g} is 0 (an unused row) the momentum "
    "still gives a direction, c = {b1} * m, and the decay still shrinks the parameter, so "
    "apply {step} everywhere; only sign(c) is 0 where c is 0",
    "lion_lazy_momentum": "the momentum decays where {g} is 0 too: m = {b2} * m + (1 - {b2}) "
    "* {g} at every coordinate, which is {b2} * m there; keeping m where {g} is 0 (a lazy, "
    "sparse update) is not Lion",
    "lion_sign_tiny": "every coordinate moves by exactly {lr}, however small its c (one case "
    "has gradients of 1e-9): use {sign}(c); c / (abs(c) + eps), a smooth approximation "
    "such as tanh, or a lower precision (float16) shrinks or zeroes those steps",
    "lion_general": "follow the exercise's order: c = {b1} * m + (1 - {b1}) * {g} from the "
    "m you were given, the step {step}, then m = {b2} * m + (1 - {b2}) * {g}",
}


def lion_hints(names: Mapping[str, str]) -> dict[str, str]:
    """Lion's hints in one framework's words: ``names`` fills each template's placeholders
    (``lr``, ``b1``, ``b2``, ``p``, ``g``, ``sign``, ``step``, ``where``); KeyError if one
    is missing."""
    return {key: text.format(**names) for key, text in _TEMPLATES.items()}


# (hint key, switches of lion_reference), in the order the check tries them. Each gives a
# trajectory of its own on some case (the test proves it), so the first match is the mistake.
LION_MISTAKES: list[tuple[str, dict[str, Any]]] = [
    ("lion_update_sign", dict(lr_sign=-1)),
    ("lion_update_sign", dict(step_sign=-1)),
    ("lion_lr_missing", dict(no_lr=True)),
    ("lion_momentum_first", dict(momentum_first=True)),
    ("lion_momentum_beta1", dict(track_beta1=True)),
    ("lion_direction_m", dict(direction="m_old")),
    ("lion_direction_m", dict(direction="m_new")),
    ("lion_direction_g", dict(direction="g")),
    ("lion_not_signed", dict(signed=False)),
    ("lion_sign_zero", dict(sign_zero=1.0)),
    ("lion_sign_zero", dict(sign_zero=-1.0)),
    ("lion_momentum_sum", dict(momentum_sum=True)),
    ("lion_m_not_updated", dict(frozen_m=True)),
    ("lion_decay_coupled", dict(decay="coupled")),
    ("lion_decay_coupled", dict(decay="coupled_c")),
    ("lion_decay_coupled", dict(decay="in_sign")),
    ("lion_decay_without_lr", dict(decay="no_lr")),
    ("lion_decay_order", dict(decay="after_step")),
    ("lion_decay_missing", dict(decay="missing")),
    ("lion_betas_swapped", dict(betas_swapped=True)),
    ("lion_weights_swapped", dict(weights_swapped="c")),
    ("lion_weights_swapped", dict(weights_swapped="m")),
    ("lion_weights_swapped", dict(weights_swapped="both")),
    ("lion_zero_skipped", dict(zero_skip="g")),
    ("lion_zero_skipped", dict(zero_skip="c")),
    ("lion_lazy_momentum", dict(lazy_m=True)),
]

# Three cases, different shapes and hyperparameters, 6 steps each. The first has betas far
# from 1 (0.75, 0.6), so that the momentum soon outweighs the gradient and the mistakes that
# mix them otherwise (which beta, which weight, m updated first) change some sign; the second
# has the paper's betas; the last has coordinates whose gradient is exactly 0 at every step (a
# row, as an unused embedding's) and at the first step only (so c is exactly 0 there):
# sign(0) = 0 leaves them to the decay alone. The seeds are ones where every mistake, at the
# first case it shows on, gives a parameter trajectory of its own (the test proves it).
LION_CASES = [
    dict(shape=(8,), steps=6, seed=8, lr=0.03, beta1=0.75, beta2=0.6, weight_decay=0.1),
    dict(
        shape=(4, 5), steps=6, seed=3, lr=0.01, beta1=0.9, beta2=0.99, weight_decay=0.5
    ),
    dict(
        shape=(3, 4),
        steps=6,
        seed=5,
        lr=0.02,
        beta1=0.95,
        beta2=0.8,
        weight_decay=0.2,
        zero_row=1,
        zero_first=((0, 2), (2, 0)),
        # set gradients: one 0 while m is not (lazy momentum flips a later sign), one of
        # 1e-9 at every step (c / (abs(c) + eps) or float16 do not move it by lr)
        fixed={
            (0, 1): (1.0, 0.0, -3.5),
            (0, 3): (1e-9, -1e-9, 2e-9, 1e-9, -2e-9, 1e-9),
        },
    ),
]


def lion_inputs(case: Mapping[str, Any]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The starting parameter and the gradient of each step, float32 arrays of ``case["shape"]``
    (row ``zero_row`` 0 at every step, the ``zero_first`` entries 0 at the first, the
    ``fixed`` entries set to their values, step by step)."""
    rng = np.random.default_rng(case["seed"])
    param = rng.normal(size=case["shape"]).astype(np.float32)
    # magnitudes spread over two decades, so that at some coordinate and step the momentum
    # outweighs the gradient and the mistakes that weigh them differently change the sign
    grads = [
        (
            rng.normal(size=case["shape"]) * 10 ** rng.uniform(-2, 0, case["shape"])
        ).astype(np.float32)
        for _ in range(case["steps"])
    ]
    if "zero_row" in case:
        for g in grads:
            g[case["zero_row"]] = 0.0
        for index in case["zero_first"]:
            grads[0][index] = 0.0
    for index, values in case.get("fixed", {}).items():
        for g, value in zip(grads, values, strict=False):
            g[index] = value
    return param, grads


def lion_reference(
    param: np.ndarray,
    grads: Sequence[np.ndarray],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    weight_decay: float,
    lr_sign: int = 1,
    momentum_first: bool = False,
    track_beta1: bool = False,
    direction: str = "c",  # or "m_old", "m_new", "g"
    signed: bool = True,
    sign_zero: float = 0.0,
    decay: str = "decoupled",  # or "coupled", "coupled_c", "in_sign", "no_lr",
    # "after_step", "missing"
    betas_swapped: bool = False,
    weights_swapped: str = "",  # or "c", "m", "both"
    momentum_sum: bool = False,
    frozen_m: bool = False,
    updates_are_params: bool = False,
    step_sign: int = 1,
    no_lr: bool = False,
    zero_skip: str = "",  # or "g" (no step where g is 0), "c" (no decay where c is 0)
    lazy_m: bool = False,
    returned_swapped: bool = False,
    **_: Any,
) -> list[dict[str, np.ndarray]]:
    """``{"param", "m"}`` after each Lion step from ``m = 0``, float64 arrays of ``param``'s
    shape; the default switches give Lion (``optax.lion``), the others known mistakes."""
    lr = lr_sign * (1.0 if no_lr else lr)
    b1, b2 = (beta2, beta1) if betas_swapped else (beta1, beta2)
    p = np.asarray(param, np.float64)
    m = np.zeros_like(p)
    out = []
    for grad in grads:
        g = raw = np.asarray(grad, np.float64)
        p_start = p
        if decay == "coupled":
            g = g + weight_decay * p
        b = b1 if track_beta1 else b2
        if weights_swapped in ("m", "both"):
            m_new = b * g + (1 - b) * m
        else:
            m_new = b * m + (1 if momentum_sum else 1 - b) * g
        old = m_new if momentum_first else m
        g_c = g + weight_decay * p if decay == "coupled_c" else g  # L2 in c only
        if weights_swapped in ("c", "both"):
            c = b1 * g_c + (1 - b1) * old
        else:
            c = b1 * old + (1 - b1) * g_c
        if lazy_m:  # m kept where the gradient is 0
            m_new = np.where(raw == 0, m, m_new)
        c = {"c": c, "m_old": m, "m_new": m_new, "g": g}[direction]
        if decay == "in_sign":
            c = c + weight_decay * p
        d = np.where(c == 0, sign_zero, np.sign(c)) if signed else c
        d = step_sign * d
        if decay == "decoupled":
            wd = (
                np.where(c == 0, 0.0, weight_decay)
                if zero_skip == "c"
                else weight_decay
            )
            p = p - lr * (d + wd * p)
        elif decay == "no_lr":
            p = p - lr * d - weight_decay * p
        elif decay == "after_step":
            p = (p - lr * d) * (1 - lr * weight_decay)
        else:  # coupled (in the gradient above), coupled_c, in_sign, or missing
            p = p - lr * d
        if zero_skip == "g":
            p = np.where(raw == 0, p_start, p)
        if updates_are_params:  # the new parameter added to the old one (JAX's updates)
            p = p + p_start
        if (
            returned_swapped
        ):  # JAX's (new_state, updates): m is the update, and vice versa
            p, m_new = p_start + m_new, p - p_start
        if not frozen_m:
            m = m_new
        out.append({"param": p, "m": m})
    return out


def _same(got: Sequence[Mapping[str, np.ndarray]], run: Sequence[Mapping]) -> bool:
    """Whether every array of ``got`` (a prefix of the steps) matches ``run``'s."""
    return all(
        np.shape(a[k]) == np.shape(r[k])
        and np.allclose(a[k], r[k], rtol=1e-4, atol=1e-6)
        for a, r in zip(got, run, strict=False)
        for k in a
    )


def _right_but_tiny(
    got: Sequence[Mapping[str, np.ndarray]],
    right: Sequence[Mapping[str, np.ndarray]],
    grads: Sequence[np.ndarray],
) -> bool:
    """Whether ``got`` is Lion's but at the coordinates whose gradients are all tiny (Lion
    works coordinate by coordinate, so a wrong sign there stays there)."""
    tiny = np.all([np.abs(g) < 1e-6 for g in grads], axis=0)
    tiny &= np.any([g != 0 for g in grads], axis=0)
    if any(np.shape(v) != tiny.shape for step in got for v in step.values()):
        return False
    keep = [{k: np.asarray(v)[~tiny] for k, v in step.items()} for step in got]
    return bool(tiny.any()) and _same(
        keep, [{k: step[k][~tiny] for k in ("param", "m")} for step in right]
    )


def compare_lion(
    c: Checker,
    got: Sequence[Mapping[str, np.ndarray]],
    param: np.ndarray,
    grads: Sequence[np.ndarray],
    case: Mapping[str, Any],
    extra: Sequence[tuple[str, dict[str, Any]]] = (),
) -> None:
    """Fail unless the student's trajectory matches Lion's, with the hint of the mistake whose
    whole trajectory it matches (else a general one); ``extra`` adds the framework's own
    (hint key, switches) pairs to :data:`LION_MISTAKES`.

    ``got`` holds, per step taken (the adapter stops after a step with NaN or inf), numpy
    arrays: ``"param"`` and, where the exercise returns it (PyTorch), ``"m"``. Raises the
    checker's ``CheckFailed`` only.
    """
    right = lion_reference(param, grads, **case)
    hint = c.hint("lion_general")
    if not _same(got, right):
        for key, switch in [*LION_MISTAKES, *extra]:
            if _same(got, lion_reference(param, grads, **{**case, **switch})):
                hint = c.hint(key)
                break
        else:
            first = got[0]
            if "m" in first and _same(
                [{"param": first["m"], "m": first["param"]}], right
            ):
                hint = c.hint("lion_returned_swapped")
            elif "zero_row" in case and not all(
                np.all(np.isfinite(step[k])) for step in got for k in step
            ):
                hint = c.hint("lion_sign_zero")  # c / abs(c) at c = 0
            elif _right_but_tiny(got, right, grads):
                hint = c.hint("lion_sign_tiny")
    for step, (actual, expected) in enumerate(zip(got, right, strict=False), start=1):
        for name, value in actual.items():
            c.close(
                value,
                expected[name],
                what=f"{name} after step {step}",
                rtol=1e-4,
                atol=1e-6,
                hint=hint,
            )
