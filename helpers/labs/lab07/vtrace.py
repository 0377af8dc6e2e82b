"""Lab 7, exercise 4: V-trace targets (Espeholt et al. 2018, IMPALA), beyond chapter 7.

The rollouts are exercises 1 and 2's (:func:`~helpers.labs.lab07.returns.rollout`), with
``log_rhos`` added, the log of pi / mu at each step for a behaviour policy mu that differs
from the learner's pi (:data:`VTRACE_CASES`, :func:`vtrace_inputs`). The episode-end rules are
exercise 2's: only ``terminated[t]`` removes the bootstrap (from ``delta[t]`` and from the
next state's target), both kinds of end cut the backward recursion, and at a truncated step
and at the rollout's last step the next state's target is ``next_values[t]``.

:func:`vtrace_reference` computes the float64 numpy answer, or one known mistake's answer
(:data:`VS_MISTAKES`, :data:`PG_MISTAKES`; :data:`MISTAKE_HINTS` names each one's hint);
:func:`compare_vtrace` matches a result against them and :func:`check_vtrace` runs the
student's code. ``tests/labs/test_lab07.py`` proves the reference equal to the paper's sum
formula (on a rollout without episode ends, and episode by episode on the check's rollouts)
and, on-policy with rho_bar = c_bar = 1, to GAE with lambda = 1.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.labs.kit import Checker, Framework, checking
from helpers.labs.lab07._common import _inputs, _pair, _unchanged
from helpers.labs.lab07.returns import rollout

__all__ = [
    "MISTAKE_HINTS",
    "PG_MISTAKES",
    "VS_MISTAKES",
    "VTRACE_CASES",
    "check_vtrace",
    "compare_vtrace",
    "vtrace_inputs",
    "vtrace_reference",
]

# Exercises 1-2's rollouts, each with truncation levels that every known mistake changes:
# the first is IMPALA's default (rho_bar = c_bar = 1), the others keep the bars apart, and
# each rollout's ratios fall below both bars, between them and above both; the last case
# repeats the first without clipping (both bars inf).
VTRACE_CASES = [
    dict(length=10, seed=0, terminated=(3,), truncated=(6,), gamma=0.9, rho_bar=1.0,
         c_bar=1.0),
    dict(length=12, seed=1, terminated=(2, 9), truncated=(5, 9), gamma=0.95, rho_bar=2.0,
         c_bar=0.9),
    dict(length=9, seed=2, terminated=(0, 8), truncated=(4,), gamma=0.9, rho_bar=1.5,
         c_bar=0.6),
    # the first rollout again, unclipped: the exercise allows float("inf") for both bars
    dict(length=10, seed=0, terminated=(3,), truncated=(6,), gamma=0.9, rho_bar=np.inf,
         c_bar=np.inf),
]  # fmt: skip

# Mistakes that change vs (and so the pg advantages built on it), then mistakes of the pg
# advantages alone; each is one value of vtrace_reference's ``mistake``.
VS_MISTAKES = (
    "no_done_mask",  # the recursion reaches across episode ends
    "truncated_as_terminated",  # no bootstrap at a truncation
    "truncated_ignored",  # a truncation neither bootstraps nor cuts
    "truncated_wins",  # a step both terminated and truncated bootstraps
    "last_overrides_end",  # delta of the last step bootstraps even after a termination
    "mask_shifted",  # the cut of step t from done[t + 1] (CleanRL's dones)
    "skip_first",  # the loop stops before step 0
    "skip_last",  # the loop starts at T - 2
    "terminated_bootstrapped",  # gamma * next_values after a termination too
    "done_sum",  # 1 - (terminated + truncated): -1 on a step that is both
    "values_shifted",  # values[t + 1] instead of next_values[t]
    "forward",  # the recursion run from t = 0 up
    "c_with_rho_bar",  # c = min(rho_bar, ratio) (also vs = values + pg)
    "rho_with_c_bar",  # rho = min(c_bar, ratio)
    "bars_swapped",  # rho clipped at c_bar, c at rho_bar
    "bars_ignored",  # both clipped at 1, whatever rho_bar and c_bar say
    "rho_not_clipped",
    "c_not_clipped",
    "log_clipped_at_bar",  # exp(min(bar, log_rhos)): clipped at exp(bar) (= unclipped at 1)
    "neither_clipped",  # plain per-decision importance sampling
    "clip_from_below",  # max(bar, ratio) instead of min
    "delta_unweighted",  # delta[t] without rho[t]
    "ratio_inverted",  # exp(-log_rhos): mu / pi
    "ratio_is_log",  # min(bar, log_rhos): the log ratio used as the ratio
    "c_shifted",  # what flows back into step t weighted by c[t + 1]
)
PG_MISTAKES = (
    "pg_next_values",  # next_values[t] instead of vs[t + 1]: rho * the TD error
    "pg_from_vs",  # vs - values
    "pg_next_across_end",  # vs[t + 1] also after a truncation (the next episode's)
    "pg_last_zero",  # nothing after the rollout's last step
    "pg_last_overrides_end",  # the last step bootstraps even after a termination
    "pg_truncated_as_terminated",  # no bootstrap after a truncation
    "pg_terminated_bootstrapped",  # vs[t + 1] or next_values[t] after a termination
    "pg_no_rho",
    "pg_with_c",
    "pg_unclipped",
)
# The hint of each mistake whose key differs from its name.
MISTAKE_HINTS = {
    "skip_first": "step_skipped",
    "skip_last": "step_skipped",
    "rho_with_c_bar": "rho_at_c_bar",
    "pg_last_overrides_end": "last_overrides_end",
    "rho_not_clipped": "not_clipped",
    "c_not_clipped": "not_clipped",
    "neither_clipped": "not_clipped",
    "ratio_inverted": "vtrace_ratio_inverted",
    "ratio_is_log": "log_rho_not_exp",
    "pg_last_zero": "no_bootstrap",
    "pg_truncated_as_terminated": "truncated_as_terminated",
    "pg_terminated_bootstrapped": "terminated_bootstrapped",
    "pg_no_rho": "pg_weight",
    "pg_with_c": "pg_weight",
    "pg_unclipped": "pg_weight",
}


def vtrace_inputs(case: dict) -> dict[str, np.ndarray]:
    """The case's rollout (:func:`rollout`) and its ``log_rhos``, all float32 ``(T,)``."""
    r = rollout(case)
    rng = np.random.default_rng(100 + case["seed"])
    log_rhos = rng.normal(0.0, 0.8, size=case["length"]).astype(np.float32)
    return {**r, "log_rhos": log_rhos}


def vtrace_reference(
    r: dict[str, np.ndarray],
    gamma: float,
    rho_bar: float,
    c_bar: float,
    mistake: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(vs, pg_advantages), float64, each ``(T,)``; or those of one known ``mistake``.

    ``r`` holds rewards, values, next_values, terminated, truncated (0/1) and log_rhos;
    ``rho_bar`` and ``c_bar`` may be ``inf`` (no clipping). With ``d = max(terminated,
    truncated)``: ``delta[t] = rho[t] * (rewards[t] + gamma * next_values[t] * (1 -
    terminated[t]) - values[t])``, ``vs[t] - values[t] = delta[t] + gamma * c[t] * (1 - d[t])
    * (vs[t + 1] - values[t + 1])`` (0 after the last step), and ``pg[t] = rho[t] *
    (rewards[t] + gamma * (1 - terminated[t]) * next_vs[t] - values[t])`` where ``next_vs[t]``
    is ``vs[t + 1]`` inside an episode and ``next_values[t]`` at a truncation or the last step.
    Raises ``ValueError`` for an unknown ``mistake``.
    """
    if mistake is not None and mistake not in VS_MISTAKES + PG_MISTAKES:
        raise ValueError(f"unknown mistake {mistake!r}")
    if mistake is None:  # the answer itself: a NaN or inf here is a bug, and warns
        return _vtrace(r, gamma, rho_bar, c_bar, None)
    # A mistake's variant may compute inf * 0 with the bars at inf (clip_from_below,
    # log_clipped_at_bar): its NaN only means "not this mistake", so it stays silent.
    with np.errstate(invalid="ignore", over="ignore"):
        return _vtrace(r, gamma, rho_bar, c_bar, mistake)


def _vtrace(
    r: dict[str, np.ndarray], gamma: float, rho_bar: float, c_bar: float, m: str | None
) -> tuple[np.ndarray, np.ndarray]:
    v = r["values"].astype(np.float64)
    nv = r["next_values"].astype(np.float64)
    term = r["terminated"].astype(np.float64)
    trunc = r["truncated"].astype(np.float64)
    done = term if m == "truncated_ignored" else np.maximum(term, trunc)
    if m == "truncated_as_terminated":
        term = done
    if m == "truncated_wins":
        term = term * (1 - trunc)
    keep = {"no_done_mask": np.ones_like(done), "done_sum": 1 - (term + trunc)}.get(
        m, 1 - done
    )
    delta_term = np.zeros_like(term) if m == "terminated_bootstrapped" else term
    if m == "last_overrides_end":
        delta_term = np.append(term[:-1], 0.0)
    if m == "values_shifted":  # values[t + 1], the rollout's last step from next_values
        nv = np.concatenate([v[1:], nv[-1:]])

    log_rho = r["log_rhos"].astype(np.float64)
    ratio = {"ratio_inverted": np.exp(-log_rho), "ratio_is_log": log_rho}.get(
        m, np.exp(log_rho)
    )
    if m == "log_clipped_at_bar":  # the log ratio clipped at the bars themselves
        rho_bar, c_bar = np.exp(rho_bar), np.exp(c_bar)
    rho_cap, c_cap = {
        "c_with_rho_bar": (rho_bar, rho_bar),
        "rho_with_c_bar": (c_bar, c_bar),
        "bars_swapped": (c_bar, rho_bar),
        "bars_ignored": (1.0, 1.0),
    }.get(m, (rho_bar, c_bar))
    clip = np.maximum if m == "clip_from_below" else np.minimum
    rho = clip(rho_cap, ratio)
    c = clip(c_cap, ratio)
    if m in ("rho_not_clipped", "neither_clipped"):
        rho = ratio
    if m in ("c_not_clipped", "neither_clipped"):
        c = ratio
    if m == "c_shifted":
        c = np.append(c[1:], 0.0)

    weight = 1.0 if m == "delta_unweighted" else rho
    delta = weight * (r["rewards"] + gamma * nv * (1 - delta_term) - v)
    flow = np.append(keep[1:], 1.0) if m == "mask_shifted" else keep
    steps = list(range(len(v)) if m == "forward" else reversed(range(len(v))))
    steps = {"skip_first": steps[:-1], "skip_last": steps[1:]}.get(m, steps)
    diff, a = np.zeros_like(v), 0.0
    for t in steps:
        a = delta[t] + gamma * c[t] * flow[t] * a
        diff[t] = a
    vs = v + diff

    after = np.append(vs[1:], 0.0 if m == "pg_last_zero" else nv[-1])
    next_vs = {"pg_next_values": nv, "pg_next_across_end": after}.get(
        m, np.where(keep > 0, after, nv)
    )
    stop = {
        "pg_truncated_as_terminated": done,
        "pg_terminated_bootstrapped": 0.0,
        "pg_last_overrides_end": np.append(term[:-1], 0.0),
    }.get(m, term)
    pg_weight = {"pg_no_rho": 1.0, "pg_with_c": c, "pg_unclipped": ratio}.get(m, rho)
    pg = pg_weight * (r["rewards"] + gamma * (1 - stop) * next_vs - v)
    if m == "pg_from_vs":
        pg = vs - v
    return vs, pg


def compare_vtrace(
    c: Checker, got: tuple[np.ndarray, np.ndarray], r: dict, case: dict
) -> None:
    """(vs, pg_advantages) (``got``, numpy) against :func:`vtrace_reference`."""
    bars = (case["gamma"], case["rho_bar"], case["c_bar"])
    right = vtrace_reference(r, *bars)
    tolerance = dict(rtol=1e-4, atol=1e-5)

    def same(a: np.ndarray, b: np.ndarray) -> bool:
        return a.shape == b.shape and np.allclose(a, b, **tolerance)

    if np.isinf([case["rho_bar"], case["c_bar"]]).any():
        for name, x in zip(("vs", "pg_advantages"), got, strict=True):
            if not np.isfinite(x).all():  # inf - inf or 0 * inf on an unclipped bar
                raise c.fail(
                    f"{name} holds NaN or inf when a bar is inf", c.hint("inf_bar")
                )
    hints = (
        "rho = min(rho_bar, exp(log_rhos)), c = min(c_bar, exp(log_rhos)); delta[t] = "
        "rho[t] * (rewards[t] + gamma * next_values[t] * (1 - terminated[t]) - values[t]); "
        "from the last step backwards, diff[t] = delta[t] + gamma * c[t] * (1 - done[t]) * "
        "diff[t + 1] (0 after the last step); vs = values + diff",
        "pg_advantages[t] = rho[t] * (rewards[t] + gamma * (1 - terminated[t]) * "
        "next_vs[t] - values[t]), where next_vs[t] is vs[t + 1] inside an episode and "
        "next_values[t] after a truncation or at the rollout's last step",
    )
    for i, (name, names) in enumerate(
        (("vs", VS_MISTAKES), ("pg_advantages", PG_MISTAKES))
    ):
        mistakes = [
            (c.hint(MISTAKE_HINTS.get(m, m)), vtrace_reference(r, *bars, m)[i])
            for m in names
        ]
        if i == 0:
            mistakes.insert(0, (c.hint("vs_without_values"), right[0] - r["values"]))
            # with rho_bar = c_bar, vs - values equals pg: call it swapped only if both are
            if same(got[1], right[0]):
                mistakes.insert(0, (c.hint("outputs_swapped"), right[1]))
        # a mistake that leaves this result unchanged must not take the hint
        mistakes = [(h, w) for h, w in mistakes if not np.allclose(w, right[i])]
        c.close(
            got[i], right[i], what=name, hint=hints[i], mistakes=mistakes, **tolerance
        )


def check_vtrace(student: Callable, *, fw: Framework) -> None:
    """V-trace targets and pg advantages, off-policy, with terminated / truncated ends."""
    with checking(
        "vtrace", fw, passed="four off-policy rollouts with episode ends, one unclipped"
    ) as c:
        for case in VTRACE_CASES:
            r = vtrace_inputs(case)
            t = _inputs(r, fw)
            out = c.call(
                student,
                t["rewards"],
                t["values"],
                t["next_values"],
                t["terminated"],
                t["truncated"],
                t["log_rhos"],
                gamma=case["gamma"],
                rho_bar=case["rho_bar"],
                c_bar=case["c_bar"],
            )
            _unchanged(c, t, r, fw)
            got = _pair(c, out, ("vs", "pg_advantages"), fw)
            compare_vtrace(c, got, r, case)
