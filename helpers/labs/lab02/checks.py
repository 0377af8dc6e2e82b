"""Lab 2 self-checks shared by both frameworks, written once on numpy answers.

Each ``check_*`` takes the student's function, a :class:`~helpers.labs.kit.Framework` and the
framework's own implementation of the same computation (autodiff, ``nn.GRUCell``,
``scaled_dot_product_attention``), which gives the expected answer, and the answer keys the
student's function may not call (that implementation, autodiff, Flax's versions);
``helpers.labs.lab02.torch`` and ``.jax`` bind them, so a notebook calls
``H.lab02.check_gru_step(gru_step)``.

The known mistakes are computed in float64 numpy, by one reference per exercise with a switch
per mistake (``relu_backward``, ``gru_step``, ``attention``); a test asserts that each
reference, with no switch set, equals the framework's implementation on every case of its
exercise. The cases are chosen so that every mistake changes the answer well beyond the
tolerance (another test asserts it): biases large enough to move units across 0, a square layer
where a transposed matrix still has the right shape, masks where every row has allowed and
forbidden keys.

This module holds the hints shared by both frameworks (:data:`HINTS`) and re-exports the
checks, cases and references, which live one module per exercise:
:mod:`~helpers.labs.lab02.backprop` (exercise 1), :mod:`~helpers.labs.lab02.gru` (2) and
:mod:`~helpers.labs.lab02.attention` (3) and :mod:`~helpers.labs.lab02.attention_backward` (4,
whose expected answer is its float64 numpy reference); what they share is in
:mod:`~helpers.labs.lab02._common`.
"""

from __future__ import annotations

from helpers.labs.kit import Hints
from helpers.labs.lab02.attention import attention, attention_cases, check_attention
from helpers.labs.lab02.attention_backward import (
    attention_backward,
    attention_backward_cases,
    check_attention_backward,
)
from helpers.labs.lab02.backprop import (
    check_linear_relu_backward,
    linear_relu_cases,
    relu_backward,
)
from helpers.labs.lab02.gru import check_gru_step, gru_cases, gru_step

__all__ = [
    "HINTS",
    "attention",
    "attention_backward",
    "attention_backward_cases",
    "attention_cases",
    "check_attention",
    "check_attention_backward",
    "check_gru_step",
    "check_linear_relu_backward",
    "gru_cases",
    "gru_step",
    "linear_relu_cases",
    "relu_backward",
]

# Known mistakes and what to change; the adapters add framework ones and word the hints whose
# formula depends on the weight layout ("weight_transposed", "dx_transposed_weight",
# "relu_mask_layout") or names the framework's API ("*_answer_key", "gru_split").
# tests/labs/test_lab02.py proves that each hint is produced by a mistake in its table.
HINTS = Hints(
    {
        "result_tuple3": "return the three gradients as one tuple, in this order: "
        "return dx, dW, db",
        "db_not_summed": "b is shared by every example of the batch, so its gradient sums "
        "dz over the batch axis: db = dz.sum(0), shape (out,)",
        "grad_batch_mean": "dy already is the gradient of the loss, averaging included: "
        "do not divide dx, dW or db by the batch size (dW and db sum over the batch)",
        "relu_mask_missing": "ReLU lets the gradient through only where it was active: "
        "dz = dy * (z > 0), with z the pre-activation (y >= 0 holds everywhere, so a mask "
        "taken as y >= 0 is no mask at all)",
        "relu_times_output": "ReLU's derivative is the indicator 1[z > 0], 0 or 1, not the "
        "output y = relu(z): multiply dy by (z > 0), not by y",
        "relu_sigmoid_form": "y * (1 - y) is sigmoid's derivative written in its output, and "
        "(1 - y) is no derivative at all: ReLU's is 1[z > 0], so dz = dy * (z > 0)",
        "relu_mask_from_dy": "the mask comes from the forward pass, where z > 0, not from the "
        "sign of dy: relu(dy) is not the backward pass of ReLU",
        "relu_mask_from_x": "take the mask at ReLU's own input, the pre-activation z "
        "(weights and bias applied), not at the layer's input x",
        "relu_mask_no_bias": "the mask is z > 0 for the whole pre-activation z, bias "
        "included: leaving b out moves some units across 0",
        "relu_mask_flipped": "the gradient goes through where ReLU was active, z > 0, and "
        "is 0 where z <= 0: you kept the other side, dz = dy * (z > 0)",
        "relu_sign": "ReLU's derivative is 0 for z < 0, not -1: multiply dy by the "
        "indicator (z > 0), not by the sign of z",
        "precision": "your result is right to about 1e-2, not to float32 rounding: keep "
        "every step in float32, with no float16 or bfloat16 along the way; in attention, "
        "set the forbidden scores to -inf, not to a finite number such as -10",
        "gru_result_one": "a GRU has one state: return h_new alone, one (B, H) tensor or "
        "array, "
        "not a tuple (there is no cell state c as in an LSTM)",
        "gru_float32": "compute in the inputs' dtype, float32: no float64, float16 or "
        "bfloat16 along the way, and no cast of the result",
        "gru_gate_order": "the 3H axis holds 3 blocks of H in the order r, z, n (reset, "
        "update, candidate), in both gi (the input's products plus b_ih) and gh (the "
        "state's plus b_hh): r reads "
        "the first block, 0:H, z the second, H:2H, and n the third, 2H:3H",
        "gru_n_sigmoid": "the candidate is n = tanh(gi_n + r * gh_n), values in -1..1 (not "
        "a sigmoid, not a relu, and not the sum itself); only r and z are sigmoid gates",
        "gru_result_list": "return h_new as one (B, H) tensor or array of the framework, "
        "not a Python list: no .tolist() or list(...), and stack a list of rows into one",
        "gru_result_transposed": "h_new has h's shape, (B, H), one row per example; yours "
        "is its transpose, (H, B): keep the batch first, with x and h on the left of the "
        "products as in gi = x @ ... and gh = h @ ...",
        "gru_hard_coded": "the cells differ in B, D and H: take every size from the inputs "
        "(H = h.shape[1]) or let the operations find it (chunk/split into 3), rather than "
        "writing the first cell's numbers (4, 8, 12, 2...) into the code",
        "gru_gate_roles": "each gate has its own job: r, the first block, resets the past "
        "inside the candidate, n = tanh(gi_n + r * gh_n); z, the second, mixes the states, "
        "h_new = (1 - z) * n + z * h",
        "gru_candidate_hidden": "r scales the candidate's hidden block, gh_n = W_hn h + b_hn "
        "(the third block of gh), not h itself: n = tanh(gi_n + r * gh_n)",
        "gru_biases_swapped": "b_ih goes with the input's products, in gi, and b_hh with the "
        "state's, in gh: it matters in n, where r multiplies gh_n, b_hn included, and not "
        "b_in",
        "gru_gate_tanh": "r and z are sigmoid gates, values in 0..1 (not tanh, not relu): "
        "r = sigmoid(gi_r + gh_r), z = sigmoid(gi_z + gh_z); only the candidate n uses tanh",
        "gru_update_flipped": "z is the share of the OLD state kept: "
        "h_new = (1 - z) * n + z * h; z * n + (1 - z) * h swaps the roles of the candidate "
        "and the old state",
        "gru_old_state": "the new state interpolates between the candidate and the old "
        "state, with weights 1 - z and z that sum to 1: h_new = (1 - z) * n + z * h (not n "
        "alone, (1 - z) * n, or n + z * h)",
        "gru_reset_input": "the reset gate scales the hidden part only, inside the tanh: "
        "n = tanh(gi_n + r * gh_n); not the input part gi_n too, and not the tanh's output",
        "gru_reset_inverted": "r multiplies gh_n as it is: n = tanh(gi_n + r * gh_n), so "
        "that r near 0 resets (drops) the past; (1 - r) inverts the gate",
        "gru_reset_before": "here the reset gate multiplies the hidden part after its "
        "product with W_hn, bias included: n = tanh(gi_n + r * (W_hn h + b_hn)); "
        "multiplying h by r before W_hn is Cho et al.'s original GRU, a different cell",
        "gru_reset_missing": "the reset gate was not applied: it scales the hidden part of "
        "the candidate, n = tanh(gi_n + r * gh_n), with gh_n = W_hn h + b_hn",
        "gru_bias_outside": "b_hn goes inside the reset product: "
        "n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); adding b_hn outside r changes n "
        "wherever r is not 1 (add b_hh to gh before splitting it)",
        "gru_one_bias": "the GRU has two bias vectors, and both are added whole: b_ih to "
        "gi (the input's products) and b_hh to gh (the state's), its last block b_hn included "
        "(inside the reset product)",
        "gru_no_recurrence": "the gates read the previous state too: r and z add gh_r and "
        "gh_z, and n adds r * gh_n, from gh, the state's products plus b_hh",
        "softmax_axis": "normalise over the keys, the last axis (S): each query's weights "
        "over the keys must sum to 1",
        "mask_polarity": "True in mask means 'may attend': keep the scores where mask is "
        "True and set the others to -inf; you hid the allowed keys instead",
        "mask_zero_fill": "a forbidden score must become -inf (or a very negative number), "
        "not 0: exp(0) still gives the key a weight",
        "mask_fill_finite": "a forbidden score must become -inf (or a number so negative "
        "that exp gives 0, like -1e9): a fill such as -1, -5 or -10 still gives the masked "
        "key a weight",
        "mask_ignored": "the mask was not applied: set the scores where mask is False to "
        "-inf before the softmax",
        "mask_own_causal": "use the mask you are given: it is not always causal (the "
        "first case is random), so a causal mask built inside the function is wrong",
        "mask_additive": "a bool mask is not added to the scores (True counts as 1, False "
        "as 0): keep the scores where mask is True and set the others to -inf",
        "mask_after_softmax": "mask the scores before the softmax (forbidden ones to -inf): "
        "zeroing weights after it leaves rows that no longer sum to 1",
        "scale_missing": "scale the scores q k^T by 1 / sqrt(d) before the softmax, "
        "d = q.shape[-1]",
        "scale_d": "divide the scores by sqrt(d), not by d",
        "scale_dv": "d is the size of queries and keys, q.shape[-1], not v.shape[-1]",
        "scale_length": "d is the size of each query and key, the last axis q.shape[-1]; "
        "q.shape[1] is T and k.shape[1] is S, the numbers of queries and keys",
        "scale_multiplied": "divide the scores by sqrt(d), do not multiply them by it: "
        "q k^T / sqrt(d)",
        "scale_after_softmax": "scale the scores before the softmax, "
        "softmax(q k^T / sqrt(d)) @ v; dividing the output by sqrt(d) is another result",
        "result_tuple_qkv": "return the three gradients as one tuple, in the order of the "
        "inputs: return dq, dk, dv",
        "bwd_dtype": "compute the gradients in the inputs' dtype, float32, as the forward "
        "pass does: no other dtype along the way (.double(), .half(), or jnp.float64 "
        "with x64 on)",
        "bwd_precision": "your gradients are right to about 1e-2, not to float32 "
        "rounding: keep every step in float32 (no float16 or bfloat16 along the way), and "
        "set the forbidden scores to -inf, not to a finite number such as -8 (which leaves "
        "a masked key a little weight)",
        "bwd_mask_fill": "a forbidden score must become -inf (or a number so negative that "
        "exp gives 0, like -1e9): a fill such as -5 or -10 still gives the masked key a "
        "weight, and so a gradient",
        "bwd_sign": "mind the signs: dZ = P * (dP - rowsum(dP * P)), dP first, and the "
        "gradients are + dZ @ k / sqrt(d), + dZ^T @ q / sqrt(d), + P^T @ d_out (a gradient "
        "is not a descent step: no minus sign)",
        "bwd_batch_mean": "d_out already is the gradient of the loss, averaging included: "
        "do not divide dq, dk or dv by the batch size (each sequence has its own gradients)",
        "bwd_rowsum_weights": "the sum is dP weighted by P, over the keys: "
        "rowsum(dP * P) = sum_l dP_il P_il, not the plain sum (or mean) of dP",
        "bwd_dq_transpose": "dq = dZ @ k / sqrt(d), (B, T, S) @ (B, S, d): each query "
        "collects from the keys it scored; dZ^T @ k has dq's shape only because T = S here",
        "bwd_order": "return the gradients in the order of the inputs, return dq, dk, dv: "
        "dq has q's shape (B, T, d), dk k's (B, S, d), dv v's (B, S, dv)",
        "bwd_scale": "the scores are q k^T / sqrt(d), so the factor 1 / sqrt(d) comes back, "
        "once, in the two gradients that go through them: dq = dZ @ k / sqrt(d) and "
        "dk = dZ^T @ q / sqrt(d) (dv has none)",
        "bwd_no_rowsum": "softmax's backward is not P * dP: each weight of a row depends on "
        "every score of that row (they sum to 1), which gives a second term, "
        "dZ = P * (dP - rowsum(dP * P)), the sum over the keys of each query",
        "bwd_rowsum_axis": "the sum in dZ = P * (dP - rowsum(dP * P)) runs over the keys of "
        "each query, the last axis (S) only, kept for broadcasting: shape (B, T, 1)",
        "bwd_softmax_skipped": "dP is the gradient of the weights P, not of the scores: go "
        "back through the softmax first, dZ = P * (dP - rowsum(dP * P)), then "
        "dq = dZ @ k / sqrt(d) and dk = dZ^T @ q / sqrt(d)",
        "bwd_other_factor": "the scores are q k^T, so each factor's gradient is dZ times the "
        "other one: dq = dZ @ k / sqrt(d) (the keys), dk = dZ^T @ q / sqrt(d) (the queries)",
        "bwd_rowsum_no_p": "multiply the whole bracket by P: dZ = P * (dP - rowsum(dP * P)); "
        "P * dP - rowsum(dP * P) leaves gradient on the masked keys, where P = 0",
        "bwd_dk_transpose": "dk pairs each key with the queries that read it: "
        "dk = dZ^T @ q / sqrt(d), (B, S, T) @ (B, T, d), dZ^T with its last two axes "
        "swapped; dZ @ q has dk's shape only because T = S here",
        "bwd_dv_transpose": "dv = P^T @ d_out, (B, S, T) @ (B, T, dv): each value collects "
        "the gradient of every query that read it; P @ d_out has dv's shape only because "
        "T = S here",
        "bwd_mask_ignored": "recompute P exactly as the forward pass does: forbidden scores "
        "at -inf before the softmax, so P = 0 there and no gradient reaches a masked key "
        "(dZ = P * (...) is 0 there too)",
    }
)
