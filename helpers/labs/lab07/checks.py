"""Lab 7 self-checks shared by both frameworks, written once on numpy answers.

Exercises: discounted returns of a rollout with episode boundaries, generalised advantage
estimation (GAE) with the same boundaries, PPO's clipped policy loss with its value loss, and
(beyond the chapter) V-trace targets for an off-policy rollout with the same boundaries.
Every answer comes from one float64 numpy reference per exercise with a switch per known
mistake (:func:`returns_reference`, :func:`gae_reference`, :func:`ppo_reference`,
:func:`vtrace_reference`);
``tests/labs/test_lab07.py`` asserts that the GAE reference equals ``H.rl.gae`` of both halves,
that the PPO reference equals ``H.rl.ppo_loss``, that the V-trace reference equals the paper's
sum formula, that the PPO gradients
(:func:`ppo_gradients`) equal autodiff of those losses, and that every mistake moves the
answer well beyond the tolerance. Every check also fails on a float64 result and on a
function that wrote into its inputs; the PPO check differentiates both losses (through the
adapter's ``gradients``), so a loss cut from autodiff fails too.

The checks run the student's code on these cases in either framework (``fw``: how arrays go
in and come out); the adapters (``torch.py``, ``jax.py``) only bind their framework.

This module holds the hints shared by both frameworks (:data:`HINTS`) and re-exports the
checks, cases and references, which live in :mod:`~helpers.labs.lab07.returns` (exercises 1
and 2, on the same rollouts), :mod:`~helpers.labs.lab07.ppo` (exercise 3) and
:mod:`~helpers.labs.lab07.vtrace` (exercise 4, on exercises 1-2's rollouts); what they share
is in :mod:`~helpers.labs.lab07._common`.
"""

from __future__ import annotations

from helpers.labs.kit import Hints
from helpers.labs.lab07.ppo import (
    PPO_ARGS,
    Gradients,
    check_ppo_loss,
    compare_ppo,
    ppo_gradients,
    ppo_inputs,
    ppo_reference,
)
from helpers.labs.lab07.returns import (
    GAE_MISTAKES,
    RETURN_CASES,
    RETURN_MISTAKES,
    check_gae,
    check_returns,
    compare_gae,
    compare_returns,
    gae_reference,
    returns_reference,
    rollout,
)
from helpers.labs.lab07.vtrace import (
    MISTAKE_HINTS,
    PG_MISTAKES,
    VS_MISTAKES,
    VTRACE_CASES,
    check_vtrace,
    compare_vtrace,
    vtrace_inputs,
    vtrace_reference,
)

__all__ = [
    "GAE_MISTAKES",
    "HINTS",
    "MISTAKE_HINTS",
    "PG_MISTAKES",
    "PPO_ARGS",
    "RETURN_CASES",
    "RETURN_MISTAKES",
    "VS_MISTAKES",
    "VTRACE_CASES",
    "Gradients",
    "check_gae",
    "check_ppo_loss",
    "check_returns",
    "check_vtrace",
    "compare_gae",
    "compare_ppo",
    "compare_returns",
    "compare_vtrace",
    "gae_reference",
    "ppo_gradients",
    "ppo_inputs",
    "ppo_reference",
    "returns_reference",
    "rollout",
    "vtrace_inputs",
    "vtrace_reference",
]

HINTS = Hints(
    {
        "no_done_mask": "a return (or an advantage) must not reach across an episode end: "
        "where terminated[t] or truncated[t] is 1, step t + 1 belongs to the next episode, "
        "so multiply what flows back from t + 1 by (1 - done[t]), done = max(terminated, "
        "truncated)",
        "truncated_as_terminated": "a truncated episode was cut by the time limit, not "
        "ended by the task: bootstrap it from next_values[t] (the value of the state it "
        "stopped in); only terminated[t] means a future worth 0",
        "no_bootstrap": "the rollout stops in the middle of an episode at its last step: "
        "bootstrap that step from next_values[T - 1] instead of treating the future as 0",
        "lambda_missing": "the advantage flows back with gamma * lam: "
        "A[t] = delta[t] + gamma * lam * (1 - done[t]) * A[t + 1]",
        "max_not_min": "PPO takes the pessimistic bound: the MINIMUM of ratio * A and "
        "clip(ratio, 1 - clip, 1 + clip) * A (then the mean, negated); the maximum "
        "rewards the very steps the clip is there to stop",
        "not_normalised": "normalise the advantages first: (A - A.mean()) / (A.std() + "
        "1e-8), with the population std (numpy's default, ddof 0)",
        "target_from_new_values": "the value target is fixed by the rollout: returns = "
        "advantages + old_values (the values of the network that collected the data); "
        "built from new_values, the target moves with the network being trained",
        "normalised_target": "the value target uses the raw advantages: returns = "
        "advantages + old_values, before any normalisation (that is only for the policy "
        "term)",
        "no_clip": "the surrogate takes the minimum of the unclipped ratio * A and the "
        "CLIPPED one, clip(ratio, 1 - clip, 1 + clip) * A: without the clipped term the "
        "loss keeps rewarding policy changes far outside the trust region",
        "no_negation": "the policy loss is MINUS the clipped objective: the optimizer "
        "minimises, PPO wants to maximise the surrogate",
        "truncated_ignored": "a truncated step ends its episode too: step t + 1 is the "
        "first step of a new episode, so nothing may flow back across it; bootstrap the "
        "truncated step from next_values[t] instead",
        "terminated_bootstrapped": "terminated[t] means the task ended: the future is "
        "worth 0, so no gamma * next_values[t] there (only a truncated step bootstraps)",
        "truncated_wins": "a step can be both terminated and truncated (the pole fell on "
        "the time limit's last step): then the task ended and the future is 0, so "
        "terminated must win (test it after truncated, or first with elif)",
        "stored_before_reward": "off by one step: store G[t] after adding the step's own "
        "reward, G[t] = rewards[t] + gamma * future; you stored the future before it",
        "values_shifted": "delta[t] bootstraps from next_values[t], not values[t + 1]: at "
        "an episode end values[t + 1] is the value of the NEXT episode's first state",
        "returns_from_next_values": "the critic's target is returns = advantages + values "
        "(the values of the states the steps started from), not + next_values",
        "outputs_swapped": "the two results are in the wrong order: return them in the "
        "order the exercise asks for",
        "ratio_inverted": "the ratio is pi_new / pi_old = exp(new_log_probs - "
        "old_log_probs); you computed exp(old_log_probs - new_log_probs), its inverse",
        "clip_range": "clip the ratio around 1, lower bound first: clip(ratio, 1 - clip, "
        "1 + clip) (clip is epsilon, e.g. 0.2: the range is [0.8, 1.2])",
        "sum_not_mean": "average over the minibatch with .mean(), not .sum(): the loss "
        "must not grow with the batch size",
        "value_half": "the value loss has a factor one half: 0.5 * mean((new_values - "
        "returns)**2)",
        "integer_dtype": "the result is not a float array (integers cut every value to a "
        "whole number): fill a float array, e.g. zeros_like(rewards)",
        "python_float": "return the framework's arrays, not Python floats: .item() or "
        "float(...) cuts the loss off from autodiff, so nothing could train on it",
        "last_overrides_end": "the last step bootstraps from next_values[T - 1] only when "
        "the rollout stops in the middle of an episode: if terminated[T - 1] is 1 the "
        "future is 0 there too (start from the bootstrap, then let the step's own "
        "terminated / truncated override it)",
        "done_sum": "terminated + truncated is 2 on a step that is both, so 1 - done "
        "turns into -1 there: combine the flags with a maximum (or a logical or), "
        "done = max(terminated, truncated)",
        "discounted_reward": "the step's own reward is not discounted: G[t] = rewards[t] "
        "+ gamma * future, not gamma * (rewards[t] + future)",
        "step_skipped": "the loop must visit every step, T - 1 down to 0: "
        "reversed(range(T)) (range(T - 1, 0, -1) stops before step 0, and "
        "range(T - 2, -1, -1) leaves out the last step)",
        "mask_shifted": "done[t] belongs to step t: it cuts what flows back into step t "
        "from t + 1, A[t] = delta[t] + gamma * lam * (1 - done[t]) * A[t + 1] (CleanRL "
        "uses dones[t + 1] because its dones mark the observation that STARTS an episode)",
        "gae_stored_before": "off by one step: store A[t] after computing it, A[t] = "
        "delta[t] + gamma * lam * (1 - done[t]) * A[t + 1]; you stored A[t + 1]",
        "normalised_in_gae": "return the raw advantages: PPO normalises them per "
        "minibatch inside its loss (exercise 3), and the critic's target advantages + "
        "values needs them raw",
        "returns_monte_carlo": "the critic's target here is advantages + values (the "
        "lambda-return), not exercise 1's discounted return (that is the lam = 1 target)",
        "ratio_of_logs": "the inputs are LOG-probabilities: the ratio pi_new / pi_old is "
        "exp(new_log_probs - old_log_probs), not new_log_probs / old_log_probs nor the "
        "difference itself",
        "clip_what": "clip the ratio alone, then multiply by the advantage: "
        "clip(ratio, 1 - clip, 1 + clip) * A_n (not clip(A_n) or clip(ratio * A_n))",
        "not_centred": "normalising subtracts the mean first: (A - A.mean()) / (A.std() "
        "+ 1e-8), so the advantages have mean 0",
        "var_not_std": "divide by the standard deviation (.std(), the square root of "
        "the variance), not by the variance",
        "value_clipped": "this exercise's value loss is not clipped (that is an option "
        "of some PPO codes): 0.5 * mean((new_values - returns)**2)",
        "target_without_values": "the advantage alone is not the target: returns = "
        "advantages + old_values (what the step was worth = its advantage over the "
        "baseline + the baseline)",
        "loss_shape": "each loss is one number, a 0-d array: average over the minibatch "
        "with .mean() (no keepdims, no reshape to (1,))",
        # exercise 4, V-trace
        "c_with_rho_bar": "c is clipped at c_bar, not rho_bar: c[t] = min(c_bar, "
        "exp(log_rhos[t])) weights what flows back from step t + 1, rho[t] = min(rho_bar, "
        "...) only the TD error delta[t] (vs = values + pg_advantages gives the same "
        "mistake: it weights the flow by rho)",
        "rho_at_c_bar": "rho is clipped at rho_bar, not c_bar: rho[t] = min(rho_bar, "
        "exp(log_rhos[t])) weights the TD error delta[t]; c_bar is only for c[t]",
        "log_clipped_at_bar": "V-trace truncates both importance weights at the bars: "
        "rho[t] = min(rho_bar, exp(log_rhos[t])), c[t] = min(c_bar, exp(log_rhos[t])). "
        "Clipping in log space needs the log of the bar, exp(min(log_rhos, "
        "log(rho_bar))): min(log_rhos, rho_bar) clips the ratio at exp(rho_bar) instead, "
        "which at rho_bar = 1 leaves every ratio here unclipped",
        "bars_swapped": "the two bars are the other way round: rho[t] = min(rho_bar, "
        "ratio) weights the TD error delta[t], c[t] = min(c_bar, ratio) weights what "
        "flows back from step t + 1",
        "bars_ignored": "clip at the bars you are given, rho_bar and c_bar (arguments of "
        "the function), not at 1: rho = min(rho_bar, ratio), c = min(c_bar, ratio)",
        "not_clipped": "V-trace truncates both importance weights: rho[t] = min(rho_bar, "
        "ratio[t]) and c[t] = min(c_bar, ratio[t]); unclipped, a product of ratios can "
        "blow up the target's variance",
        "clip_from_below": "truncate from above with a minimum: min(rho_bar, ratio) keeps "
        "a ratio below the bar as it is; max(rho_bar, ratio) raises every small ratio "
        "to the bar",
        "delta_unweighted": "the TD error is weighted by rho: delta[t] = rho[t] * "
        "(rewards[t] + gamma * next_values[t] * (1 - terminated[t]) - values[t])",
        "vtrace_ratio_inverted": "log_rhos[t] = log pi(a_t | x_t) - log mu(a_t | x_t), "
        "the learner's policy over the behaviour policy: the ratio is exp(log_rhos), not "
        "exp(-log_rhos) (that is mu / pi)",
        "log_rho_not_exp": "log_rhos holds LOG ratios: take exp(log_rhos) first, then "
        "clip: rho = min(rho_bar, exp(log_rhos)) (or clip log_rhos at log(rho_bar), "
        "then exp)",
        "c_shifted": "c[t] belongs to step t: vs[t] - values[t] = delta[t] + gamma * "
        "c[t] * (1 - done[t]) * (vs[t + 1] - values[t + 1]); you weighted what flows "
        "into step t by c[t + 1] (the paper's product of c runs over i = s to t - 1)",
        "pg_next_values": "the pg advantage looks one step ahead with the V-trace "
        "target: rho[t] * (rewards[t] + gamma * vs[t + 1] - values[t]), not with "
        "next_values[t] (that is rho[t] times the TD error); next_values[t] only at a "
        "truncation and at the rollout's last step",
        "pg_from_vs": "the pg advantage is not vs - values: it is rho[t] * (rewards[t] "
        "+ gamma * vs[t + 1] - values[t]); the two agree only where rho[t] = c[t], "
        "which rho_bar != c_bar breaks",
        "pg_next_across_end": "at an episode end vs[t + 1] belongs to the next episode: "
        "the pg advantage's next target is 0 after terminated[t], next_values[t] after "
        "truncated[t] and at the rollout's last step, vs[t + 1] otherwise",
        "pg_weight": "the pg advantage is weighted by the same rho as delta: "
        "rho[t] = min(rho_bar, exp(log_rhos[t])) (not c[t], not the unclipped ratio, "
        "and not left out)",
        "vs_without_values": "vs is a value target, not an advantage: add values back, "
        "vs = values + diff, where diff[t] = delta[t] + gamma * c[t] * (1 - done[t]) * "
        "diff[t + 1]",
    }
)
