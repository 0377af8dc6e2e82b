"""Lab 7's typical mistakes: each one fails its check with the hint written for it.

``MISTAKES`` lists, per framework, (exercise, a wrong solution, the key of the hint it must get).
Every hint the lab declares must be produced by at least one entry.

Also here: the numpy references of ``helpers/labs/lab07/checks.py`` (defined in ``returns.py``
and ``ppo.py``) equal the chapter's ``H.rl.gae`` and ``H.rl.ppo_loss`` in both frameworks on
the checks' cases, and every mistake moves the answer beyond the checks' tolerance.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from labtools import mistake_table_tests

from helpers.jax import rl as jrl
from helpers.labs.lab07 import checks as lab07
from helpers.torch import rl as trl

# Both frameworks' mistakes are written once, over these few operations.
OPS = {
    "pytorch": dict(
        stack=torch.stack,
        maximum=torch.maximum,
        minimum=torch.minimum,
        clip=torch.clamp,
        exp=torch.exp,
        std=lambda a: a.std(correction=0),
        unbiased_std=lambda a: a.std(),  # PyTorch's default: n - 1
        zero=lambda: torch.zeros(()),
        concat=torch.cat,
        detach=torch.Tensor.detach,
        cap=lambda x, high: torch.clamp(x, max=high),  # min(x, a number)
        raise_to=lambda x, low: torch.clamp(x, min=low),  # max(x, a number)
        where=torch.where,
    ),
    "jax": dict(
        stack=jnp.stack,
        maximum=jnp.maximum,
        minimum=jnp.minimum,
        clip=jnp.clip,
        exp=jnp.exp,
        std=lambda a: a.std(),
        unbiased_std=lambda a: a.std(ddof=1),
        zero=lambda: jnp.zeros(()),
        concat=jnp.concatenate,
        detach=jax.lax.stop_gradient,
        cap=jnp.minimum,
        raise_to=jnp.maximum,
        where=jnp.where,
    ),
}


def _returns(
    fw,
    *,
    mask=True,
    trunc_is_term=False,
    bootstrap=True,
    trunc_boundary=True,
    term_bootstraps=False,
    term_first=False,
    store_before=False,
    reverse=True,
    as_list=False,
    int_buffer=False,
    last_overrides=False,
    done_sum=False,
    gamma_on_reward=False,
    skip_first=False,
    forward=False,
):
    op = OPS[fw]

    def discounted_returns(rewards, terminated, truncated, next_values, *, gamma):
        future = next_values[-1] if bootstrap else op["zero"]()
        out, T = [], len(rewards)
        steps = range(T) if forward else range(T - 1, 0 if skip_first else -1, -1)
        for t in steps:
            if done_sum:  # 1 - (terminated + truncated) is -1 where both are set
                ends = 1 - (terminated[t] + truncated[t])
                future = truncated[t] * next_values[t] + ends * future
            elif mask:
                ends = []
                if trunc_boundary:
                    ends.append(("term" if trunc_is_term else "boot", truncated[t]))
                ends.append(("boot" if term_bootstraps else "term", terminated[t]))
                for kind, flag in ends[::-1] if term_first else ends:
                    if flag:
                        future = next_values[t] if kind == "boot" else op["zero"]()
            if last_overrides and t == T - 1:
                future = next_values[t]  # even when the last step terminated
            if store_before:
                out.append(future)
            if gamma_on_reward:
                future = gamma * (rewards[t] + future)
            else:
                future = rewards[t] + gamma * future
            if not store_before:
                out.append(future)
        if skip_first:
            out.append(op["zero"]())
        if forward:
            return op["stack"](out)
        if as_list:
            return out[::-1]
        if int_buffer:
            return (
                op["stack"](out[::-1]).to(torch.int64)
                if fw == "pytorch"
                else (op["stack"](out[::-1]).astype(jnp.int32))
            )
        return op["stack"](out[::-1] if reverse else out)

    return discounted_returns


def _gae(
    fw,
    *,
    mask=True,
    trunc_is_term=False,
    use_lambda=True,
    trunc_boundary=True,
    term_in_delta=True,
    shifted_values=False,
    returns_base="values",
    swap=False,
    done_sum=False,
    mask_shift=False,
    store_before=False,
    normalise=False,
    forward=False,
):
    op = OPS[fw]

    def gae(rewards, values, next_values, terminated, truncated, *, gamma, lam):
        done = op["maximum"](terminated, truncated) if trunc_boundary else terminated
        if done_sum:
            done = terminated + truncated
        stop = done if trunc_is_term else terminated
        if not term_in_delta:
            stop = 0.0 * terminated
        if shifted_values:
            next_values = op["concat"]([values[1:], next_values[-1:]])
        delta = rewards + gamma * next_values * (1 - stop) - values
        decay = gamma * lam if use_lambda else gamma
        a, out, T = op["zero"](), [], len(rewards)
        for t in range(T) if forward else reversed(range(T)):
            if store_before:
                out.append(a)
            cut = done[t + 1] if mask_shift and t + 1 < T else done[t]
            if mask_shift and t + 1 == T:
                cut = 0.0 * done[t]
            a = delta[t] + decay * ((1 - cut) if mask else 1.0) * a
            if not store_before:
                out.append(a)
        adv = op["stack"](out if forward else out[::-1])
        if normalise:
            adv = (adv - adv.mean()) / (op["std"](adv) + 1e-8)
        if returns_base == "monte_carlo":  # exercise 1's discounted return
            ret = _returns(fw)(rewards, terminated, truncated, next_values, gamma=gamma)
            return adv, ret
        base = {"values": values, "next_values": next_values}[returns_base]
        return (adv + base, adv) if swap else (adv, adv + base)

    return gae


def _ppo(
    fw,
    *,
    pick="min",
    normalise=True,
    target="old",
    negate=True,
    ddof=0,
    clipped=True,
    inverted=False,
    bounds="ok",
    reduce="mean",
    half=True,
    swap=False,
    as_float=False,
    ratio_kind="exp",
    clip_target="ratio",
    centre=True,
    scale="std",
    value_clip=False,
    detach=None,
    keep_dim=False,
):
    op = OPS[fw]
    std = op["std"] if ddof == 0 else op["unbiased_std"]

    def ppo_loss(
        new_log_probs, old_log_probs, advantages, old_values, new_values, *, clip
    ):
        adv = advantages
        if normalise:
            spread = std(advantages) if scale == "std" else std(advantages) ** 2
            mean = advantages.mean() if centre else 0.0
            adv = (advantages - mean) / (spread + 1e-8)
        if detach == "all":
            new_log_probs = op["detach"](new_log_probs)
        log_ratio = new_log_probs - old_log_probs
        ratio = op["exp"](-log_ratio if inverted else log_ratio)
        if ratio_kind != "exp":  # log-probabilities divided, or their difference
            ratio = new_log_probs / old_log_probs if ratio_kind == "div" else log_ratio
        low, high = {
            "ok": (1 - clip, 1 + clip),
            "swapped": (1 + clip, 1 - clip),
            "zero": (-clip, clip),
        }[bounds]
        inner = op["detach"](ratio) if detach == "clipped" else ratio
        limited = op["clip"](inner, low, high) if clipped else inner
        both = (ratio * adv, limited * adv)
        if clip_target == "adv":
            both = (ratio * adv, ratio * op["clip"](adv, low, high))
        elif clip_target == "product":
            both = (ratio * adv, op["clip"](ratio * adv, low, high))
        picked = (op["minimum"] if pick == "min" else op["maximum"])(*both)
        surrogate = picked.mean() if reduce == "mean" else picked.sum()
        base = {"old": old_values, "new": new_values, "none": 0.0}[target.split("+")[0]]
        returns = (adv if target.endswith("+norm") else advantages) + base
        squared = (new_values - returns) ** 2
        if value_clip:  # PPO2's clipped value loss
            moved = old_values + op["clip"](new_values - old_values, -clip, clip)
            squared = op["maximum"](squared, (moved - returns) ** 2)
        value_loss = (0.5 if half else 1.0) * squared.mean()
        policy_loss = -surrogate if negate else surrogate
        if as_float:
            return float(policy_loss), float(value_loss)
        if keep_dim:
            return policy_loss.reshape(1), value_loss.reshape(1)
        return (value_loss, policy_loss) if swap else (policy_loss, value_loss)

    return ppo_loss


def _vtrace(
    fw,
    *,
    ratio="exp",
    rho_cap="rho_bar",
    c_cap="c_bar",
    clip="min",
    delta_weight=True,
    mask=True,
    trunc_is_term=False,
    trunc_boundary=True,
    term_in_delta=True,
    done_sum=False,
    shifted_values=False,
    forward=False,
    c_shift=False,
    vs_from_pg=False,
    pg_next="target",
    pg_stop="terminated",
    pg_weight="rho",
    pg_from_vs=False,
    swap=False,
    add_values=True,
    trunc_wins=False,
    last_override=(),
    mask_shift=False,
    skip=None,
):
    """A V-trace answer, right by default; each keyword makes one known mistake."""
    op = OPS[fw]

    def vtrace(
        rewards, values, next_values, terminated, truncated, log_rhos, *, gamma,
        rho_bar, c_bar,
    ):  # fmt: skip
        ratios = {"exp": op["exp"](log_rhos), "inverted": op["exp"](-log_rhos)}
        r = ratios.get(ratio, log_rhos)  # "log": the log ratio itself
        bars = {"rho_bar": rho_bar, "c_bar": c_bar, "one": 1.0}
        if ratio == "log_clip":  # clips log_rhos at the bars, not at their logs
            r = log_rhos
        limit = op["cap"] if clip == "min" else op["raise_to"]
        rho = limit(r, bars[rho_cap]) if rho_cap else r
        c = limit(r, bars[c_cap]) if c_cap else r
        if ratio == "log_clip":
            rho, c, r = op["exp"](rho), op["exp"](c), op["exp"](r)
        done = op["maximum"](terminated, truncated) if trunc_boundary else terminated
        if done_sum:
            done = terminated + truncated
        stop = done if trunc_is_term else terminated
        if not term_in_delta:
            stop = 0.0 * terminated
        if trunc_wins:  # a step both terminated and truncated bootstraps
            stop = terminated * (1 - truncated)
        # the last step bootstraps even where it terminated, in delta and / or in pg
        last_open = op["concat"]([stop[:-1], 0.0 * stop[-1:]])
        pg_terminated = last_open if "pg" in last_override else stop
        if "delta" in last_override:
            stop = last_open
        nv = next_values
        if shifted_values:
            nv = op["concat"]([values[1:], next_values[-1:]])
        delta = (rho if delta_weight else 1.0) * (
            rewards + gamma * nv * (1 - stop) - values
        )
        keep = 1 - done if mask else 1.0 + 0.0 * done
        flow = op["concat"]([keep[1:], 1.0 + 0.0 * keep[:1]]) if mask_shift else keep
        T, out, diff = len(rewards), [], op["zero"]()
        steps = list(range(T) if forward else reversed(range(T)))
        if skip == "first":  # range(T - 1, 0, -1): step 0 left at 0
            steps = steps[:-1]
        elif skip == "last":  # range(T - 2, -1, -1): step T - 1 left at 0
            steps, out = steps[1:], [0.0 * diff]
        for t in steps:
            if c_shift:  # carries c[t] * diff[t] back: step t - 1 gets c[t]
                diff = delta[t] + gamma * keep[t] * diff
                out.append(diff)
                diff = c[t] * diff
            else:
                diff = delta[t] + gamma * c[t] * flow[t] * diff
                out.append(diff)
        if skip == "first":
            out.append(0.0 * diff)
        diffs = op["stack"](out if forward else out[::-1])
        vs = values + diffs
        if vs_from_pg:  # vs[t] = values[t] + rho[t] * (r[t] + gamma * next target - V)
            out, prev = [], next_values[-1]
            for t in reversed(range(T)):
                nxt = op["where"](keep[t] > 0, prev, next_values[t])
                prev = values[t] + rho[t] * (
                    rewards[t] + gamma * (1 - terminated[t]) * nxt - values[t]
                )
                out.append(prev)
            vs = op["stack"](out[::-1])
            diffs = vs - values
        last = next_values[-1:] if pg_next != "last_zero" else 0.0 * next_values[-1:]
        after = op["concat"]([vs[1:], last])
        next_vs = {"next_values": next_values, "across": after}.get(
            pg_next, op["where"](keep > 0, after, next_values)
        )
        ends = {
            "terminated": pg_terminated,
            "done": op["maximum"](terminated, truncated),
            "none": 0.0 * terminated,
        }[pg_stop]
        weight = {"rho": rho, "one": 1.0, "c": c, "ratio": r}[pg_weight]
        pg = weight * (rewards + gamma * (1 - ends) * next_vs - values)
        if pg_from_vs:
            pg = vs - values
        first = vs if add_values else diffs
        return (pg, first) if swap else (first, pg)

    return vtrace


def _vtrace_with(fw, clip_weights):
    """The right V-trace, its two weights from ``clip_weights(ratio, rho_bar, c_bar)``."""
    op = OPS[fw]

    def vtrace(
        rewards, values, next_values, terminated, truncated, log_rhos, *, gamma,
        rho_bar, c_bar,
    ):  # fmt: skip
        rho, c = clip_weights(op["exp"](log_rhos), rho_bar, c_bar)
        delta = rho * (rewards + gamma * next_values * (1 - terminated) - values)
        keep = 1 - op["maximum"](terminated, truncated)
        out, diff = [], op["zero"]()
        for t in reversed(range(len(rewards))):
            diff = delta[t] + gamma * c[t] * keep[t] * diff
            out.append(diff)
        vs = values + op["stack"](out[::-1])
        after = op["concat"]([vs[1:], next_values[-1:]])
        next_vs = op["where"](keep > 0, after, next_values)
        return vs, rho * (rewards + gamma * (1 - terminated) * next_vs - values)

    return vtrace


def _torch_vtrace_exp_in_place(*args, **kwargs):
    *rollout, log_rhos = args
    log_rhos.exp_()  # the caller's log_rhos become ratios
    return _vtrace("pytorch", ratio="log")(*rollout, log_rhos, **kwargs)


def _torch_minimum_float(ratio, rho_bar, c_bar):
    return torch.minimum(ratio, rho_bar), torch.minimum(
        ratio, c_bar
    )  # a float: TypeError


def _relu_clip(ratio, rho_bar, c_bar):
    """min(bar, x) = bar - relu(bar - x): right for a finite bar, NaN for inf - inf."""
    relu = torch.relu if isinstance(ratio, torch.Tensor) else jax.nn.relu
    return rho_bar - relu(rho_bar - ratio), c_bar - relu(c_bar - ratio)


def _torch_clip_aliased(ratio, rho_bar, c_bar):
    """c clipped in place first: c IS ratio, so rho taken from it is clipped at c_bar."""
    c = ratio
    c[c > c_bar] = c_bar
    rho = ratio
    rho[rho > rho_bar] = rho_bar
    return rho, c


def _python_min(ratio, rho_bar, c_bar):
    return min(rho_bar, ratio), min(c_bar, ratio)  # compares a number with T numbers


def _jax_min_axis(ratio, rho_bar, c_bar):
    return jnp.min(ratio, rho_bar), jnp.min(
        ratio, c_bar
    )  # the second argument: an axis


def _torch_vtrace_float64(*args, **kwargs):
    vs, pg = _vtrace("pytorch")(*args, **kwargs)
    return torch.from_numpy(vs.numpy().astype(np.float64)), pg


def _jax_vtrace_in_place(
    rewards,
    values,
    next_values,
    terminated,
    truncated,
    log_rhos,
    *,
    gamma,
    rho_bar,
    c_bar,
):
    ratio = jnp.exp(log_rhos)
    rho, c = jnp.minimum(rho_bar, ratio), jnp.minimum(c_bar, ratio)
    delta = rho * (rewards + gamma * next_values * (1 - terminated) - values)
    keep = 1 - jnp.maximum(terminated, truncated)
    vs, diff = jnp.zeros_like(values), 0.0
    for t in reversed(range(len(rewards))):
        diff = delta[t] + gamma * c[t] * keep[t] * diff
        vs[t] = values[t] + diff  # TypeError: JAX arrays are immutable
    return vs, vs


def _torch_bool_mask(rewards, terminated, truncated, next_values, *, gamma):
    done = terminated.bool() | truncated.bool()  # 1 - done: PyTorch refuses bools
    future, out = next_values[-1], []
    for t in reversed(range(len(rewards))):
        future = rewards[t] + gamma * (1 - done[t]) * future
        out.append(future)
    return torch.stack(out[::-1])


def _jax_in_place(rewards, terminated, truncated, next_values, *, gamma):
    returns, future = jnp.zeros_like(rewards), next_values[-1]
    for t in reversed(range(len(rewards))):
        future = jnp.where(truncated[t] > 0, next_values[t], future)
        future = jnp.where(terminated[t] > 0, 0.0, future)
        future = rewards[t] + gamma * future
        returns[t] = future  # TypeError: JAX arrays are immutable
    return returns


@jax.jit
def _jax_traced_if(rewards, terminated, truncated, next_values, gamma):
    future, out = next_values[-1], []
    for t in reversed(range(rewards.shape[0])):
        if truncated[t]:  # a traced value in a Python if
            future = next_values[t]
        if terminated[t]:
            future = 0.0
        future = rewards[t] + gamma * future
        out.append(future)
    return jnp.stack(out[::-1])


def _jax_jitted_returns(rewards, terminated, truncated, next_values, *, gamma):
    return _jax_traced_if(rewards, terminated, truncated, next_values, gamma)


def _torch_in_place(rewards, terminated, truncated, next_values, *, gamma):
    future = next_values[-1]
    for t in reversed(range(len(rewards))):
        if truncated[t]:
            future = next_values[t]
        if terminated[t]:
            future = torch.zeros(())
        rewards[t] += gamma * future  # the caller's rewards become the returns
        future = rewards[t]
    return rewards


def _torch_float64(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    adv, ret = _gae("pytorch")(
        rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam
    )
    return adv.double(), ret.double()  # or torch.from_numpy of a float64 NumPy buffer


def _torch_max_float(
    new_log_probs, old_log_probs, advantages, old_values, new_values, *, clip
):
    adv = (advantages - advantages.mean()) / (advantages.std(correction=0) + 1e-8)
    ratio = torch.exp(new_log_probs - old_log_probs)
    limited = torch.min(torch.max(ratio, 1 - clip), 1 + clip)  # TypeError: a float
    surrogate = torch.minimum(ratio * adv, limited * adv)
    return -surrogate.mean(), 0.5 * ((new_values - advantages - old_values) ** 2).mean()


def _jax_min_of_two(
    new_log_probs, old_log_probs, advantages, old_values, new_values, *, clip
):
    adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    ratio = jnp.exp(new_log_probs - old_log_probs)
    limited = jnp.clip(ratio, 1 - clip, 1 + clip)
    surrogate = jnp.min(ratio * adv, limited * adv)  # the second argument is an axis
    return -surrogate.mean(), 0.5 * ((new_values - advantages - old_values) ** 2).mean()


def _table(fw):
    rows = [
        ("discounted_returns", _returns(fw, mask=False), "no_done_mask"),
        (
            "discounted_returns",
            _returns(fw, trunc_is_term=True),
            "truncated_as_terminated",
        ),
        ("discounted_returns", _returns(fw, bootstrap=False), "no_bootstrap"),
        (
            "discounted_returns",
            _returns(fw, trunc_boundary=False),
            "truncated_ignored",
        ),
        (
            "discounted_returns",
            _returns(fw, term_bootstraps=True),
            "terminated_bootstrapped",
        ),
        ("discounted_returns", _returns(fw, term_first=True), "truncated_wins"),
        (
            "discounted_returns",
            _returns(fw, store_before=True),
            "stored_before_reward",
        ),
        ("discounted_returns", _returns(fw, reverse=False), "not_reversed"),
        ("discounted_returns", _returns(fw, int_buffer=True), "integer_dtype"),
        ("gae", _gae(fw, mask=False), "no_done_mask"),
        ("gae", _gae(fw, trunc_is_term=True), "truncated_as_terminated"),
        ("gae", _gae(fw, use_lambda=False), "lambda_missing"),
        ("gae", _gae(fw, trunc_boundary=False), "truncated_ignored"),
        ("gae", _gae(fw, term_in_delta=False), "terminated_bootstrapped"),
        ("gae", _gae(fw, shifted_values=True), "values_shifted"),
        ("gae", _gae(fw, returns_base="next_values"), "returns_from_next_values"),
        ("gae", _gae(fw, swap=True), "outputs_swapped"),
        ("ppo_loss", _ppo(fw, pick="max"), "max_not_min"),
        ("ppo_loss", _ppo(fw, normalise=False), "not_normalised"),
        ("ppo_loss", _ppo(fw, target="new"), "target_from_new_values"),
        ("ppo_loss", _ppo(fw, target="old+norm"), "normalised_target"),
        ("ppo_loss", _ppo(fw, negate=False), "no_negation"),
        ("ppo_loss", _ppo(fw, ddof=1), "unbiased_std"),
        ("ppo_loss", _ppo(fw, clipped=False), "no_clip"),
        ("ppo_loss", _ppo(fw, inverted=True), "ratio_inverted"),
        ("ppo_loss", _ppo(fw, bounds="swapped"), "clip_range"),
        ("ppo_loss", _ppo(fw, bounds="zero"), "clip_range"),
        ("ppo_loss", _ppo(fw, reduce="sum"), "sum_not_mean"),
        ("ppo_loss", _ppo(fw, half=False), "value_half"),
        ("ppo_loss", _ppo(fw, swap=True), "outputs_swapped"),
        ("ppo_loss", _ppo(fw, as_float=True), "python_float"),
        # from a second student pass
        (
            "discounted_returns",
            _returns(fw, last_overrides=True),
            "last_overrides_end",
        ),
        ("discounted_returns", _returns(fw, done_sum=True), "done_sum"),
        (
            "discounted_returns",
            _returns(fw, gamma_on_reward=True),
            "discounted_reward",
        ),
        ("discounted_returns", _returns(fw, skip_first=True), "step_skipped"),
        ("discounted_returns", _returns(fw, forward=True), "forward"),
        ("gae", _gae(fw, forward=True), "forward"),
        ("gae", _gae(fw, done_sum=True), "done_sum"),
        ("gae", _gae(fw, mask_shift=True), "mask_shifted"),
        ("gae", _gae(fw, store_before=True), "gae_stored_before"),
        ("gae", _gae(fw, normalise=True), "normalised_in_gae"),
        ("gae", _gae(fw, returns_base="monte_carlo"), "returns_monte_carlo"),
        ("ppo_loss", _ppo(fw, ratio_kind="div"), "ratio_of_logs"),
        ("ppo_loss", _ppo(fw, ratio_kind="diff"), "ratio_of_logs"),
        ("ppo_loss", _ppo(fw, clip_target="adv"), "clip_what"),
        ("ppo_loss", _ppo(fw, clip_target="product"), "clip_what"),
        ("ppo_loss", _ppo(fw, centre=False), "not_centred"),
        ("ppo_loss", _ppo(fw, scale="var"), "var_not_std"),
        ("ppo_loss", _ppo(fw, value_clip=True), "value_clipped"),
        ("ppo_loss", _ppo(fw, target="none"), "target_without_values"),
        ("ppo_loss", _ppo(fw, keep_dim=True), "loss_shape"),
        ("ppo_loss", _ppo(fw, detach="all"), "not_differentiable"),
        ("ppo_loss", _ppo(fw, detach="clipped"), "partly_detached"),
    ]
    # exercise 4, V-trace: every known mistake, each with its hint
    rows += [
        ("vtrace", _vtrace(fw, **variant), hint)
        for variant, hint in [
            (dict(mask=False), "no_done_mask"),
            (dict(trunc_is_term=True), "truncated_as_terminated"),
            (dict(trunc_boundary=False), "truncated_ignored"),
            (dict(term_in_delta=False), "terminated_bootstrapped"),
            (dict(done_sum=True), "done_sum"),
            (dict(shifted_values=True), "values_shifted"),
            (dict(forward=True), "forward"),
            (dict(c_cap="rho_bar"), "c_with_rho_bar"),
            (dict(vs_from_pg=True), "c_with_rho_bar"),
            (dict(rho_cap="c_bar"), "rho_at_c_bar"),
            (dict(rho_cap="c_bar", c_cap="rho_bar"), "bars_swapped"),
            (dict(rho_cap="one", c_cap="one"), "bars_ignored"),
            (dict(rho_cap=None), "not_clipped"),
            (dict(c_cap=None), "not_clipped"),
            # at case 0's bars, 1, min(log_rhos, 1) clips none of its log ratios: the
            # unclipped answer's hint there is the log clip's, which names both
            (dict(rho_cap=None, c_cap=None), "log_clipped_at_bar"),
            (dict(ratio="log_clip"), "log_clipped_at_bar"),
            (dict(trunc_wins=True), "truncated_wins"),
            (dict(last_override=("delta", "pg")), "last_overrides_end"),
            (dict(last_override=("pg",)), "last_overrides_end"),
            (dict(mask_shift=True), "mask_shifted"),
            (dict(skip="first"), "step_skipped"),
            (dict(skip="last"), "step_skipped"),
            (dict(clip="max"), "clip_from_below"),
            (dict(delta_weight=False), "delta_unweighted"),
            (dict(ratio="inverted"), "vtrace_ratio_inverted"),
            (dict(ratio="log"), "log_rho_not_exp"),
            (dict(c_shift=True), "c_shifted"),
            (dict(pg_next="next_values"), "pg_next_values"),
            (dict(pg_from_vs=True), "pg_from_vs"),
            (dict(pg_next="across"), "pg_next_across_end"),
            (dict(pg_next="last_zero"), "no_bootstrap"),
            (dict(pg_stop="done"), "truncated_as_terminated"),
            (dict(pg_stop="none"), "terminated_bootstrapped"),
            (dict(pg_weight="one"), "pg_weight"),
            (dict(pg_weight="c"), "pg_weight"),
            (dict(pg_weight="ratio"), "pg_weight"),
            (dict(swap=True), "outputs_swapped"),
            (dict(add_values=False), "vs_without_values"),
        ]
    ]
    rows.append(("vtrace", _vtrace_with(fw, _python_min), "python_min"))
    rows.append(("vtrace", _vtrace_with(fw, _relu_clip), "inf_bar"))
    if fw == "pytorch":
        rows.append(("vtrace", _vtrace_with(fw, _torch_clip_aliased), "rho_at_c_bar"))
        rows.append(("vtrace", _torch_vtrace_exp_in_place, "input_changed"))
        rows.append(
            ("vtrace", _vtrace_with(fw, _torch_minimum_float), "tensor_max_float")
        )
        rows.append(("vtrace", _torch_vtrace_float64, "float32"))
    else:
        rows.append(("vtrace", _vtrace_with(fw, _jax_min_axis), "jnp_min"))
        rows.append(("vtrace", _jax_vtrace_in_place, "immutable"))
    if fw == "pytorch":
        rows.append(("discounted_returns", _torch_bool_mask, "bool_mask"))
        rows.append(("discounted_returns", _torch_in_place, "input_changed"))
        rows.append(("gae", _torch_float64, "float32"))
        rows.append(("ppo_loss", _torch_max_float, "tensor_max_float"))
    else:
        rows.append(("discounted_returns", _jax_in_place, "immutable"))
        rows.append(("discounted_returns", _jax_jitted_returns, "traced_if"))
        rows.append(("ppo_loss", _jax_min_of_two, "jnp_min"))
    return rows


MISTAKES = {"pytorch": _table("pytorch"), "jax": _table("jax")}

(
    test_mistake_fails_with_its_hint,
    test_at_least_two_mistakes_per_exercise,
    test_every_declared_hint_is_produced_by_a_mistake,
) = mistake_table_tests("lab07", MISTAKES)


# ---------------------------------------------------------------- references == the chapter


@pytest.mark.parametrize("fw", ["torch", "jax"])
@pytest.mark.parametrize("case", lab07.RETURN_CASES, ids=["case0", "case1", "case2"])
def test_gae_reference_equals_the_chapters_gae(case, fw):
    """H.rl.gae folds a truncated episode's bootstrap into its last reward; same answer."""
    r = lab07.rollout(case)
    done = np.maximum(r["terminated"], r["truncated"])
    # a step both terminated and truncated ended the task: no bootstrap
    boot = r["truncated"] * (1 - r["terminated"])
    rewards = r["rewards"] + case["gamma"] * r["next_values"] * boot
    args = (
        rewards[:, None],
        r["values"][:, None],
        done[:, None],
        r["next_values"][-1:],
    )
    conv, mod = (torch.as_tensor, trl) if fw == "torch" else (jnp.asarray, jrl)
    adv, ret = mod.gae(*map(conv, args), gamma=case["gamma"], gae_lambda=case["lam"])
    want_adv, want_ret = lab07.gae_reference(r, case["gamma"], case["lam"])
    np.testing.assert_allclose(np.asarray(adv)[:, 0], want_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ret)[:, 0], want_ret, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fw", ["torch", "jax"])
@pytest.mark.parametrize("seed", [0, 1])
def test_ppo_reference_equals_the_chapters_loss(seed, fw):
    x = lab07.ppo_inputs(seed)
    # A stand-in model: uniform logits over 2 actions (log-prob log 0.5 for action 0), so the
    # ratio is exp(new - old) when the batch's old log-prob is log 0.5 - (new - old).
    conv = torch.as_tensor if fw == "torch" else jnp.asarray
    zeros = np.zeros((16, 2), np.float32)
    batch = {
        "obs": conv(np.zeros((16, 4), np.float32)),
        "actions": conv(np.zeros(16, np.int64 if fw == "torch" else np.int32)),
        "log_probs": conv(np.log(0.5) - (x["new_log_probs"] - x["old_log_probs"])),
        "advantages": conv(x["advantages"]),
        "returns": conv(x["advantages"] + x["old_values"]),
    }

    def model(obs):
        return conv(zeros), conv(x["new_values"])

    mod = trl if fw == "torch" else jrl
    _, parts = mod.ppo_loss(model, batch, clip=0.2, entropy_coef=0.0, value_coef=0.5)
    policy, value = lab07.ppo_reference(x, 0.2)
    assert float(parts["policy_loss"]) == pytest.approx(policy, rel=1e-4)
    assert float(parts["value_loss"]) == pytest.approx(value, rel=1e-4)


# The checks' own mistakes: every one they recognise is tested below.
RETURN_SWITCHES = [switch for _, switch in lab07.RETURN_MISTAKES]
GAE_SWITCHES = [switches for _, switches in lab07.GAE_MISTAKES]
PPO_SWITCHES = [
    "max_not_min",
    "not_normalised",
    "target_from_new_values",
    "normalised_target",
    "no_negation",
    "unbiased_std",
    "no_clip",
    "ratio_inverted",
    "clip_swapped",
    "clip_around_zero",
    "sum_not_mean",
    "value_half",
    "ratio_divided",
    "ratio_no_exp",
    "clip_advantages",
    "clip_product",
    "not_centred",
    "var_not_std",
    "value_clipped",
    "target_without_values",
]


def test_every_mistake_moves_the_answer_beyond_the_tolerance():
    """Over the check's cases (it runs them all), each mistake moves some answer by far more
    than the checks' tolerance; some mistakes show only on one case (truncated_wins on the
    step both terminated and truncated, last_overrides_end on the rollout that ends with its
    episode)."""
    rollouts = [(lab07.rollout(case), case) for case in lab07.RETURN_CASES]
    for sw in RETURN_SWITCHES:
        moved = max(
            np.abs(
                lab07.returns_reference(r, c["gamma"], **{sw: True})
                - lab07.returns_reference(r, c["gamma"])
            ).max()
            for r, c in rollouts
        )
        assert moved > 1e-2, sw
    for sw in GAE_SWITCHES:
        moved = max(
            np.abs(
                np.stack(lab07.gae_reference(r, c["gamma"], c["lam"], **sw))
                - np.stack(lab07.gae_reference(r, c["gamma"], c["lam"]))
            ).max()
            for r, c in rollouts
        )
        assert moved > 1e-2, sw
    # PPO: over the check's two (minibatch, clip) cases; the checks' rtol is 1e-4.
    cases = [(lab07.ppo_inputs(seed), clip) for seed, clip in ((0, 0.2), (1, 0.1))]
    right = np.array([lab07.ppo_reference(x, clip) for x, clip in cases])
    for sw in PPO_SWITCHES:
        wrong = np.array([lab07.ppo_reference(x, c, **{sw: True}) for x, c in cases])
        assert np.abs(wrong - right).max() > 1e-3, sw


def _autodiff_gradients(fw, x, clip):
    """d policy / d new_log_probs and d value / d new_values, the losses as in H.rl.ppo_loss."""
    if fw == "torch":
        t = {k: torch.from_numpy(v.copy()) for k, v in x.items()}
        nl = t["new_log_probs"].requires_grad_()
        nv = t["new_values"].requires_grad_()
        adv = t["advantages"]
        norm = (adv - adv.mean()) / (adv.std(correction=0) + 1e-8)
        ratio = torch.exp(nl - t["old_log_probs"])
        clipped = ratio.clamp(1 - clip, 1 + clip)
        (-torch.minimum(ratio * norm, clipped * norm).mean()).backward()
        (0.5 * ((nv - adv - t["old_values"]) ** 2).mean()).backward()
        return nl.grad.numpy(), nv.grad.numpy()
    t = {k: jnp.asarray(v) for k, v in x.items()}
    adv = t["advantages"]
    norm = (adv - adv.mean()) / (adv.std() + 1e-8)

    def policy(nl):
        ratio = jnp.exp(nl - t["old_log_probs"])
        clipped = jnp.clip(ratio, 1 - clip, 1 + clip)
        return -jnp.minimum(ratio * norm, clipped * norm).mean()

    def value(nv):
        return 0.5 * ((nv - adv - t["old_values"]) ** 2).mean()

    return jax.grad(policy)(t["new_log_probs"]), jax.grad(value)(t["new_values"])


@pytest.mark.parametrize("fw", ["torch", "jax"])
def test_ppo_gradients_equal_autodiff_of_the_losses(fw):
    """The check's analytic gradients equal autodiff of the two losses written as in the
    chapter's H.rl.ppo_loss, on the check's two (minibatch, clip) cases."""
    for seed, clip in ((0, 0.2), (1, 0.1)):
        x = lab07.ppo_inputs(seed)
        got = _autodiff_gradients(fw, x, clip)
        for g, w in zip(got, lab07.ppo_gradients(x, clip), strict=True):
            np.testing.assert_allclose(np.asarray(g), w, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- V-trace (exercise 4)


def _vtrace_by_the_sum(rewards, values, boot, log_rhos, gamma, rho_bar, c_bar):
    """The paper's n-step V-trace targets, written as its sum (not a recursion), for one
    stretch of an episode whose state after the last step is worth ``boot`` (0 if the episode
    terminated there): v_s = V(x_s) + sum_t gamma^(t-s) (prod_{i=s}^{t-1} c_i) delta_t, and
    the pg advantage rho_s (r_s + gamma v_{s+1} - V(x_s)) with v_n = boot."""
    n = len(rewards)
    ratio = np.exp(log_rhos.astype(np.float64))
    rho, c = np.minimum(rho_bar, ratio), np.minimum(c_bar, ratio)
    v_next = np.append(values[1:], boot)  # V(x_{t+1})
    delta = rho * (rewards + gamma * v_next - values)
    vs = np.array(
        [
            values[s]
            + sum(gamma ** (t - s) * np.prod(c[s:t]) * delta[t] for t in range(s, n))
            for s in range(n)
        ]
    )
    return vs, rho * (rewards + gamma * np.append(vs[1:], boot) - values)


VTRACE_IDS = [f"case{i}" for i in range(len(lab07.VTRACE_CASES))]
BARS = [(1.0, 1.0), (2.0, 0.5), (1.5, 1.0), (np.inf, np.inf)]


@pytest.mark.parametrize(("rho_bar", "c_bar"), BARS)
def test_vtrace_reference_equals_the_papers_sum(rho_bar, c_bar):
    """On a random rollout without episode ends, the backward recursion equals the sum."""
    rng = np.random.default_rng(7)
    T, gamma = 15, 0.95
    values = rng.normal(size=T + 1)  # the last one is the bootstrap, V(x_T)
    r = {
        "rewards": rng.normal(1.0, 0.5, size=T),
        "values": values[:-1],
        "next_values": values[1:],
        "terminated": np.zeros(T),
        "truncated": np.zeros(T),
        "log_rhos": rng.normal(0.0, 1.0, size=T),
    }
    want = _vtrace_by_the_sum(
        r["rewards"], r["values"], values[-1], r["log_rhos"], gamma, rho_bar, c_bar
    )
    got = lab07.vtrace_reference(r, gamma, rho_bar, c_bar)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10)
    if (
        rho_bar == c_bar
    ):  # then rho = c, and pg = vs - values (pg_from_vs's hint says so)
        np.testing.assert_allclose(got[1], got[0] - r["values"], atol=1e-10)


@pytest.mark.parametrize("case", lab07.VTRACE_CASES, ids=VTRACE_IDS)
def test_vtrace_reference_is_the_sum_episode_by_episode(case):
    """The check's rollouts cut into episodes: each stretch is the paper's sum on its own,
    bootstrapped from next_values at a truncation or at the rollout's end, from 0 after a
    termination (also on the step both terminated and truncated)."""
    r = lab07.vtrace_inputs(case)
    bars = (case["gamma"], case["rho_bar"], case["c_bar"])
    vs, pg = lab07.vtrace_reference(r, *bars)
    done = np.maximum(r["terminated"], r["truncated"])
    ends = [*np.flatnonzero(done[:-1]), len(done) - 1]
    start = 0
    for end in ends:
        piece = slice(start, end + 1)
        boot = 0.0 if r["terminated"][end] else float(r["next_values"][end])
        want = _vtrace_by_the_sum(
            r["rewards"][piece].astype(np.float64),
            r["values"][piece].astype(np.float64),
            boot,
            r["log_rhos"][piece],
            *bars,
        )
        np.testing.assert_allclose(vs[piece], want[0], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(pg[piece], want[1], rtol=1e-10, atol=1e-10)
        start = end + 1
    assert len(ends) >= 3  # each rollout holds several episodes


@pytest.mark.parametrize(("rho_bar", "c_bar"), [(1.0, 1.0), (2.0, 1.5), (np.inf, 1.0)])
@pytest.mark.parametrize("case", lab07.VTRACE_CASES, ids=VTRACE_IDS)
def test_on_policy_vtrace_is_gae_with_lambda_one(case, rho_bar, c_bar):
    """log_rhos = 0 and bars >= 1: every weight is 1, vs - values and pg are GAE's lam = 1
    advantages, vs is exercise 1's return (the demo in the lab shows this)."""
    r = {**lab07.vtrace_inputs(case), "log_rhos": np.zeros(case["length"], np.float32)}
    vs, pg = lab07.vtrace_reference(r, case["gamma"], rho_bar, c_bar)
    advantages, _ = lab07.gae_reference(r, case["gamma"], 1.0)
    np.testing.assert_allclose(vs - r["values"], advantages, atol=1e-10)
    np.testing.assert_allclose(pg, advantages, atol=1e-10)
    # returns_reference adds float32 rewards one at a time: float32 precision
    np.testing.assert_allclose(vs, lab07.returns_reference(r, case["gamma"]), rtol=1e-6)


def test_every_vtrace_mistake_moves_its_answer_beyond_the_tolerance():
    """Each mistake moves vs (or, for a pg mistake, pg_advantages) by far more than the
    check's tolerance on one of its cases at least; the bar mistakes show only where
    rho_bar != c_bar, pg_from_vs too. The least, a termination on the last step
    bootstrapped (gamma * rho * next_values[-1] there), is 0.06: 600 times atol + rtol."""
    cases = [(lab07.vtrace_inputs(c), c) for c in lab07.VTRACE_CASES]
    for m in lab07.VS_MISTAKES + lab07.PG_MISTAKES:
        part = 0 if m in lab07.VS_MISTAKES else 1
        moved = 0.0
        for r, c in cases:
            bars = (c["gamma"], c["rho_bar"], c["c_bar"])
            right = lab07.vtrace_reference(r, *bars)[part]
            wrong = lab07.vtrace_reference(r, *bars, m)[part]
            moved = max(moved, np.abs(wrong - right).max())
        assert moved > 5e-2, m
    with pytest.raises(ValueError, match="unknown mistake"):
        lab07.vtrace_reference(cases[0][0], 0.9, 1.0, 1.0, "no_such_mistake")


def _vtrace_by_episodes(fw):
    """A valid answer in another style: Python ifs per step, as in exercise 1."""
    op = OPS[fw]

    def vtrace(
        rewards, values, next_values, terminated, truncated, log_rhos, *, gamma,
        rho_bar, c_bar,
    ):  # fmt: skip
        ratio = op["exp"](log_rhos)
        rho, c = op["cap"](ratio, rho_bar), op["cap"](ratio, c_bar)
        vs, pg = [None] * len(rewards), [None] * len(rewards)
        next_vs = next_values[-1]  # the rollout's last step bootstraps
        for t in reversed(range(len(rewards))):
            if truncated[t] or terminated[t]:
                next_vs = next_values[t]
            future = 0.0 if terminated[t] else 1.0
            target_diff = next_vs - next_values[t]  # 0 at an end and at the last step
            delta = rho[t] * (rewards[t] + gamma * future * next_values[t] - values[t])
            vs[t] = values[t] + delta + gamma * c[t] * target_diff
            pg[t] = rho[t] * (rewards[t] + gamma * future * next_vs - values[t])
            next_vs = vs[t]
        return op["stack"](vs), op["stack"](pg)

    return vtrace


def _log_space_clip(ratio, rho_bar, c_bar):
    """Clip the log ratio at log(bar), then exp: the same weights."""
    log_ratio = torch.log(ratio) if isinstance(ratio, torch.Tensor) else jnp.log(ratio)
    exp = torch.exp if isinstance(ratio, torch.Tensor) else jnp.exp
    cap = torch.clamp if isinstance(ratio, torch.Tensor) else jnp.clip
    return exp(cap(log_ratio, max=np.log(rho_bar))), exp(
        cap(log_ratio, max=np.log(c_bar))
    )


@pytest.mark.parametrize("fw", ["pytorch", "jax"])
@pytest.mark.parametrize("style", ["if_per_step", "log_space_clip", "clip_call"])
def test_valid_vtrace_answers_pass(fw, style, capsys):
    """Right answers written otherwise than the solution pass the check."""
    if style == "if_per_step":
        student = _vtrace_by_episodes(fw)
    elif style == "log_space_clip":
        student = _vtrace_with(fw, _log_space_clip)
    else:  # clip(ratio, 0, bar), or torch.clip / jnp.clip with max=
        clip = torch.clip if fw == "pytorch" else jnp.clip
        student = _vtrace_with(
            fw,
            lambda ratio, rho_bar, c_bar: (
                clip(ratio, 0, rho_bar),
                clip(ratio, max=c_bar),
            ),
        )
    checks_of = {"pytorch": "helpers.labs.lab07.torch", "jax": "helpers.labs.lab07.jax"}
    __import__(checks_of[fw], fromlist=["check_vtrace"]).check_vtrace(student)
    assert "✅ vtrace: passed" in capsys.readouterr().out


@pytest.mark.parametrize("fw", ["pytorch", "jax"])
def test_a_right_vtrace_answer_warns_nothing(fw, capsys):
    """The mistake variants the check computes to name a hint may meet inf * 0 (bars at inf);
    they stay silent: the solution pages showed NumPy's RuntimeWarning under the ✅ line."""
    checks_of = {"pytorch": "helpers.labs.lab07.torch", "jax": "helpers.labs.lab07.jax"}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        __import__(checks_of[fw], fromlist=["check_vtrace"]).check_vtrace(_vtrace(fw))
    assert "✅ vtrace: passed" in capsys.readouterr().out
