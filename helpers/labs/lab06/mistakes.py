"""Lab 6's known mistakes: the hints that name them, and the chapter's helpers refused.

:data:`HINTS` is the shared table (the adapters add and word the framework ones: PyTorch's
in-place writes and its ONNX RoPE op, JAX's traced positions under ``jax.jit``);
:data:`ANSWER_KEYS` names the chapter helpers that solve an exercise outright, which a check
refuses when the student's code calls one (as labs 5 and 8 do). ``tests/labs/test_lab06.py``
proves that each hint is produced by a mistake in its table.
"""

from __future__ import annotations

import importlib
from typing import Any

from helpers.labs.kit import Hints

__all__ = ["ANSWER_KEYS", "HINTS", "answer_keys"]

# Known mistakes and what to change, by key; the references compute the answers of many.
HINTS = Hints(
    {
        "off_by_one_length": "a row of length L holds tokens at positions 0, ..., L - 1: "
        "position t is real when t < L (t <= L also marks the first padding position, "
        "t < L - 1 drops the last token)",
        "polarity": "the mask is True at real tokens and False at padding; yours is the "
        "other way round (ids == PAD, or t >= length, marks the padding)",
        "mask_broadcast": "lengths (B,) and the positions (T,) do not broadcast: compare a row "
        "of positions with a column of lengths, arange(max_len)[None, :] < lengths[:, None], "
        "to get (B, T)",
        "mask_dtype": "return a boolean mask (the comparison itself, e.g. t < length), "
        "not 0/1 numbers: a bool mask can be inverted with ~ and used to select",
        "list_result": "a Python list is not an array: compute the whole batch with the "
        "framework's operations, or turn the rows you built into one array",
        "test_leak": "a word that occurs only in the test reviews got its own id: build the "
        "vocabulary on the training tokens only, so that unseen words become <unk> (1), as "
        "they would for a new review",
        "unk_is_pad": "an unknown word must map to <unk>, id 1: not to <pad> (id 0), "
        "which the mask would drop as padding, nor to a new id after the vocabulary",
        "unk_missing": "a word missing from the vocabulary (rare, or seen only in the "
        "test reviews) is not a key of your dict: look it up with stoi.get(word, 1) so "
        "that it becomes <unk>",
        "min_freq": "keep only the words seen at least min_freq times in the training "
        "tokens (count them first, e.g. with collections.Counter); rarer ones are <unk>",
        "min_freq_strict": "a word seen exactly min_freq times is kept: count >= min_freq, "
        "not count > min_freq",
        "no_specials": "ids 0 and 1 are reserved for <pad> and <unk>: the most frequent "
        "word is id 2",
        "vocab_order": "number the kept words by decreasing count, ties in alphabetical "
        "order: sorted(words, key=lambda w: (-count[w], w))",
        "ties": "Counter.most_common (like a dict) orders words of equal count by first "
        "appearance: sort them yourself, sorted(words, key=lambda w: (-count[w], w)), so "
        "that ties are alphabetical",
        "truncate_pad": "keep the first max_len tokens of each review and pad with 0 after "
        "them (on the right), so every row has exactly max_len ids",
        "ids_numpy": "convert the numpy ids to the framework's array before returning them",
        "swapped": "return the training ids first: return train_ids, test_ids",
        "unk_none": "stoi.get(word) gives None for a word missing from the vocabulary (rare, "
        "or seen only in the test reviews), and None is not an id: give the default, "
        "stoi.get(word, 1), so that it becomes <unk>",
        "ragged": "rows of different lengths do not make one array: pad every row with 0 up "
        "to max_len (after cutting it to its first max_len ids) before converting the rows",
        "count_truncated": "count the words of the whole training reviews: cut each review "
        "to its first max_len ids only when you encode it (a word seen past max_len still "
        "counts towards min_freq, as in the chapter's build_vocab)",
        "ties_reversed": "sorting by (count, word) with reverse=True also reverses the ties: "
        "words of equal count must be in alphabetical order, so sort with "
        "key=lambda w: (-count[w], w) and no reverse",
        "doc_freq": "count every occurrence of a word, not the number of reviews it appears "
        "in: Counter(w for tokens in train_tokens for w in tokens), without set(tokens)",
        "test_own_vocab": "encode the test reviews with the vocabulary of the training "
        "reviews: a second vocabulary built on the test split gives the same word another "
        "id, so the model's embedding rows would mean other words",
        "test_counts": "the counts include the test reviews: a training word that also "
        "occurs in the test split is counted there too, which changes which words reach "
        "min_freq, and their order; count the training tokens only, then encode both splits",
        "ids_transposed": "your ids are (max_len, N), one column per review: return one row "
        "per review, (N, max_len), without a transpose",
        "pad_longest": "your rows stop at the longest review of the split, not at max_len: "
        "pad every row with 0 up to max_len, so every split has max_len columns (a split of "
        "short reviews too)",
        "tokens_changed": "your function changed the token lists it was given (append, del, "
        "+= or a slice assignment on a review): the caller's reviews must stay as they "
        "were; build new lists, tokens[:max_len] + [...], instead",
        # Exercise 5: reverse each sequence within its length (helpers/labs/lab06/reverse.py).
        "reverse_whole_row": "flipping the whole padded row (flip along the time axis, "
        "or [:, ::-1]) moves the padding to the front, so a backward RNN would read the "
        "padding first: reverse only the first L = lengths[b] steps, position s < L reads "
        "step L - 1 - s, and leave the padding where it is (position s >= L keeps step s)",
        "reverse_off_by_one": "a row of length L holds steps 0, ..., L - 1, so position s "
        "reads step L - 1 - s (L - 1 at s = 0, 0 at s = L - 1): L - s or L - 2 - s runs one "
        "past an end of the row; the padding, s >= L, keeps index s",
        "reverse_axis": "reverse the time axis (axis 1) of x (B, T, ...), not the batch "
        "(axis 0) or the features (the last axis): build the index over the steps and "
        "gather along axis 1",
        "reverse_clamped": "clamping L - 1 - s at 0 makes every padding position read step "
        "0, which repeats a real token after the reversed row: pick the index with a "
        "where, L - 1 - s where s < L and s itself at the padding",
        "padding_changed": "leave the padding as it was, at the end of the row: its "
        "positions s >= L read step s of x (the index where(s < L, L - 1 - s, s)), not "
        "zeros or anything else; the padding mask of exercise 1 still describes the result",
        "reverse_broadcast": "the index is (B, T), one row per sequence: compare the "
        "positions arange(T)[None, :] (1, T) with lengths[:, None] (B, 1); lengths (B,) "
        "against arange(T) (T,) does not broadcast",
        "reverse_pair_index": "x[:, index] pairs every row of x with every row of the "
        "index, (B, B, T, ...): index the rows and the steps together, "
        "x[arange(B)[:, None], index], so that row b reads its own index row",
        "reverse_batch_index": "x[index] indexes the batch axis (axis 0) with step numbers: "
        "index the rows and the steps together, x[arange(B)[:, None], index], or gather "
        "along axis 1",
        "reverse_no_feature_axis": "the check also runs a (B, T) batch of token ids, with no "
        "feature axis: x.shape[2] does not exist there, and index[..., None] has one axis "
        "too many; give the index x.ndim - 2 trailing axes (none for ids), or index with "
        "x[arange(B)[:, None], index], which works for any trailing axes",
        "reverse_length": "keep all T = x.shape[1] steps of x: a batch can be padded past "
        "its longest row, so take T from x, not from lengths.max()",
        "reverse_numpy": "return the framework's array, not a numpy one: build the index "
        "with the framework's arange and gather with it",
        "reverse_dtype": "keep the dtype of x: gathering or indexing never needs a "
        "conversion",
        # Exercise 3: rotary position embeddings (helpers/labs/lab06/rope.py).
        "rope_rotate_half": "your result is the rotate-half convention (GPT-NeoX, Hugging "
        "Face LLaMA), which pairs features i and i + D/2: this exercise pairs neighbours, "
        "2i and 2i + 1 (the paper, GPT-J, Meta's original LLaMA code), x[..., 0::2] with "
        "x[..., 1::2]; "
        "both are RoPE, but weights trained with one work with the other only once the "
        "rows of the query and key projections are permuted",
        "rope_table_layout": "your cos/sin tables do not match your pairs: with interleaved "
        "pairs (2i, 2i + 1) each angle must appear twice in a row (repeat_interleave(2) of "
        "the (T, D/2) table, or rotate the (D/2) pairs directly), not cat(freqs, freqs), "
        "which is laid out for rotate-half's pairs (i, i + D/2)",
        "rope_exponent": "pair i turns at the frequency base ** (-2 * i / D), i = 0, ..., "
        "D/2 - 1 and D = x.shape[-1] (1 / base ** (arange(0, D, 2) / D)): pair 0 at "
        "frequency 1; not -i / D, -2 * i / (D / 2), -2 * (i + 1) / D (i counts from 0: "
        "the paper's i from 1 goes with 2(i - 1)), the odd features arange(1, D, 2), a "
        "floor division // or a linspace(0, 1, D/2); a positive exponent makes the "
        "frequencies grow instead of decay",
        "rope_no_frequency": "every pair turned by the same angle, positions[t]: pair i "
        "turns by positions[t] * base ** (-2 * i / D), so pair 0 fastest and the last "
        "pairs slowest (2 * i // D is 0 for every pair: divide with /, not //)",
        "rope_base": "use the base you were given (the check passes base=100.0 in one "
        "case): base ** (-2 * i / D), not the default 10000 written in",
        "rope_positions": "turn row t by positions[t] itself, not by t: the positions can "
        "start past 0 (after a cache of earlier tokens) or have gaps, so multiply positions "
        "(T,) by the frequencies, not arange(T), positions[0] + arange(T) or positions + 1",
        "rope_direction": "the signs of your sin terms are wrong: the rotation is "
        "(x0 cos θ - x1 sin θ, x0 sin θ + x1 cos θ), counter-clockwise, as multiplying "
        "x0 + j x1 by e^{jθ} (j the imaginary unit); both signs flipped turns the pairs the "
        "wrong way, and one "
        "flipped is no rotation at all (a reflection, which changes the scores)",
        "rope_axes": "the angles belong on the T axis and the pairs on the last axis: x is "
        "(B, T, heads, D), so a (T, D/2) cos or sin needs a heads axis, cos[:, None, :] of "
        "shape (T, 1, D/2), to multiply x[..., 0::2] (B, T, heads, D/2); without it the "
        "angles run along the heads axis, or do not broadcast",
        "rope_cos_sin": "each feature of a pair takes both terms, its own times cos θ: "
        "y0 = x0 cos θ - x1 sin θ and y1 = x0 sin θ + x1 cos θ; yours keeps only the cos "
        "part or only the sin part, or swaps cos and sin",
        "rope_pair_order": "keep each pair in order: x0 = x[..., 0::2] (the even feature) "
        "and x1 = x[..., 1::2] go in, y0 = x0 cos θ - x1 sin θ goes back to the even "
        "feature and y1 = x0 sin θ + x1 cos θ to the odd one; yours swaps the two",
        "rope_unchanged": "your result is x itself, to rounding: nothing was rotated (only "
        "position 0 keeps a vector as it is); return the rotated pairs, not x, and mind "
        "the parentheses, base ** -2 * i / D is (base ** -2) * i / D, angles near 0",
        "rope_partial": "rotate every pair, all D/2 of them, of every token and head: "
        "some of your features are x's own, unturned (a loop over range(1, D // 2) or "
        "range(D // 2 - 1) misses a pair; only the first half of the features turned is "
        "partial RoPE, GPT-NeoX's rotary_pct, another model's choice)",
        "rope_overwritten": "one feature of each pair was computed from the other one "
        "*after* that one had been rotated (x[..., 0::2] written first, then read for the "
        "odd features): take x0 = x[..., 0::2] and x1 = x[..., 1::2] from the input, "
        "compute both y0 and y1 from them, then put both back",
        "rope_outer": "positions (T,) and the frequencies (D/2,) give the angles as an outer "
        "product, positions[:, None] * freqs[None, :] of shape (T, D/2), one row per token",
        "rope_pair_swap": "the sin term takes the *other* feature of the pair: y0 = x0 cos θ "
        "- x1 sin θ, y1 = x1 cos θ + x0 sin θ (x0 = x[..., 0::2], x1 = x[..., 1::2]); "
        "x * cos + x * sin does not swap them",
        "rope_cat_output": "put each rotated pair back where it came from: y0 at the even "
        "features and y1 at the odd ones, stack([y0, y1], -1) then flatten the last two "
        "axes; cat([y0, y1], -1) moves them to the two halves",
        "rope_formula": "pair i of x[b, t, h] (features 2i and 2i + 1) turns by θ = "
        "positions[t] * base ** (-2 * i / D): y0 = x0 cos θ - x1 sin θ, "
        "y1 = x0 sin θ + x1 cos θ",
        "rope_shape": "return an array of x's shape (B, T, heads, D): the rotated pairs "
        "stacked on a last axis of 2 and flattened back into D, in x's layout (no transpose)",
        "rope_dtype": "return float32, x's dtype (not an integer array): compute the "
        "angles in float32, or cast the result back to x's dtype",
        "rope_tuple": "return the rotated x alone, one array of x's shape, not a tuple "
        "(apply_rope is called once for the queries and once for the keys)",
        "rope_complex": "turn the complex result back into real pairs of x's shape: "
        "the real parts at the even features, the imaginary parts at the odd ones",
        # Exercise 2: masked attention pooling.
        "pool_polarity": "your weights sit on the padding: the mask is True at real tokens, "
        "so keep the scores where the mask is True and set them to -inf where it is False "
        "(where(mask, s, -inf), or masked_fill(~mask, -inf)), not the other way round",
        "pool_mask_ignored": "the softmax ran over all T positions, padding included, and "
        "the padded tokens (large values here) took weight: set the padded scores to -inf "
        "before the softmax, so each row's weights cover its real tokens only",
        "pool_zero_fill": "a padded score of 0 is not 'nothing': e^0 = 1, so each padded "
        "token still gets weight (as much as a real token scoring 0); fill the padded scores "
        "with -inf (or the dtype's most negative value), whose exp is 0",
        "pool_after_softmax": "masking the weights after the softmax leaves rows that no "
        "longer sum to 1 (the padding's share is just dropped): mask the scores before the "
        "softmax (-inf at padding), then the weights of the real tokens sum to 1",
        "pool_exp_masked": "the padded scores here are about +150: exp of them overflows "
        "float32 (e^89 = inf) and 0 * inf = NaN, and a softmax over all positions leaves the "
        "real tokens 0, so renormalising divides 0 by 0 (or gives 0, with an epsilon); mask "
        "the scores (-inf at padding) before the max, the exp and the softmax, not the "
        "exponentials or weights after",
        "pool_mask_added": "adding the mask as numbers (s + mask, or +1 / -1) only shifts the "
        "scores by 1: the padding keeps almost all its weight; the padded scores must become "
        "-inf (where(mask, s, -inf)), or add log(mask), which is 0 or -inf",
        "pool_axis": "take the softmax over the time axis (dim 1 of the (B, T) scores), "
        "within each row: over the batch axis (dim 0) it compares different reviews' tokens",
        "pool_dot": "the score of a token is one number, the dot product x[b, t] . query, "
        "summed over the D features, (B, T): x * query without the sum gives one softmax per "
        "feature",
        "pool_no_max": "the real scores here reach about 250: exp(250) overflows float32 "
        "(inf above about 88.7) and inf / inf = NaN; subtract each row's max over its real "
        "tokens before exp (softmax does it), e^(s - max) / sum e^(s - max) is the same "
        "softmax",
        "pool_query_ignored": "every real token got the same weight: that is the masked mean "
        "(the answer for query = 0 only); score each token with the query, s = x . query, "
        "and take the masked softmax of the scores",
        "pool_scale": "this exercise scores with the plain dot product, x . query, as Yang "
        "et al. do: no division by sqrt(D), D or T (the learned query absorbs any scale)",
        "pool_weights": "your result has the shape of the (B, T) weights: return the pooled "
        "tokens, the weighted sum over the time axis (dim 1), sum_t p[b, t] x[b, t] (B, D): "
        "(p[..., None] * x).sum(1), or einsum('bt,btd->bd', p, x)",
        "pool_sum": "the weights already sum to 1 over each row's real tokens: sum the "
        "weighted tokens over the time axis, (p[..., None] * x).sum(1); a mean over T, or "
        "a division by the lengths as in the masked mean, divides once more",
        "pool_tuple": "return the pooled (B, D) alone, not a tuple with the weights: the "
        "caller feeds the pooled features to the classifier",
        "pool_shape": "return (B, D), one pooled vector per review: sum the weighted tokens "
        "over the time axis (dim 1) without keepdim, and without a transpose; a batched "
        "matmul of the (B, 1, T) weights with x gives (B, 1, D): take [:, 0]",
        "pool_dtype": "return float32, x's dtype (not float64, a half type or integers): "
        "the mask converted to float64 or float16, or a float64 constant array, changes the "
        "result's dtype; end with a cast to x.dtype if needed",
        "pool_nan": "your result has NaN where nothing overflows: a softmax whose entries "
        "are all -inf (a row with no True in the mask it uses, or a -inf times 0) gives "
        "0 / 0; take it along the time axis of each row, with the mask True at real tokens "
        "(every row has one)",
        "pool_small_fill": "a finite fill such as -1e4 is not -inf: the check pads a batch "
        "further with scores of about 10^4, which -1e4 turns back into 0, and the padding "
        "takes weight; use -inf, or where(mask, s, finfo.min) (replace the scores, do not "
        "add to them)",
        "pool_grad_nan": "the result is right but its gradient is NaN: exp of a padded score "
        "overflowed to inf before the mask zeroed it, and the backward pass multiplies that "
        "inf by 0; mask the scores (-inf at padding) before exp, not the exponentials after",
        "pool_grad": "the gradients must flow to x and to the query, as in the softmax "
        "written out (no detach, stop_gradient or NumPy inside), and none to a padded "
        "position of x",
        "pool_precision": "your result is right to about 3 digits only: part of it ran in "
        "float16 or bfloat16 (the scores, the mask or the weights cast to a half type, "
        "whose 11 or 8 bits of mantissa round the softmax); keep every step in float32",
        "pool_broadcast": "a (B, T) array (the weights, the mask) and the (B, T, D) x do "
        "not broadcast: give it a trailing axis, p[..., None] * x or mask[..., None]; and "
        "a max over the time axis for the (B, T) scores needs to keep that axis, "
        "s.max(1, keepdims=True), to subtract it from each row",
        "pool_matmul": "the scores are x @ query, (B, T, D) @ (D,) -> (B, T), the sum over "
        "the D features of each token: query @ x or x @ query[None] contracts the wrong "
        "axes",
        "pool_formula": "s[b, t] = x[b, t] . query; p = softmax over the real tokens of row "
        "b (padded scores -inf before the softmax); result[b] = sum_t p[b, t] x[b, t]",
        # The chapter's own helpers are the answers: the exercises ask to write them out.
        "vocab_answer_key": "count, sort and encode yourself (collections.Counter, sorted, "
        "a dict from word to id): helpers.data.text's build_vocab and encode are the "
        "chapter's answer to this exercise, and calling them fails the check",
    }
)


# The chapter's helpers that answer an exercise outright: exercise -> (the key of its hint, the
# module, the names). Only calls made through the module are seen (T.build_vocab(...)), not a
# name imported before the check; length_mask has none (the chapter's padding_mask reads ids,
# not lengths); attention_pool's (a library's attention) are watched by its adapters. "text"
# would be the framework's H.text.
ANSWER_KEYS = {
    "encode_splits": (
        "vocab_answer_key",
        "helpers.data.text",
        ["build_vocab", "encode"],
    ),
}


def answer_keys(exercise: str, framework: str) -> tuple[str, list[tuple[Any, str]]]:
    """The hint key and the ``(module, name)`` pairs of the helpers that solve ``exercise``.

    ``framework`` is ``"torch"`` or ``"jax"`` (``Framework.name``): ``H.text`` is
    ``helpers.torch.text`` or ``helpers.jax.text``. No helper: ``("", [])``.
    """
    if exercise not in ANSWER_KEYS:
        return "", []
    hint, module, names = ANSWER_KEYS[exercise]
    if module == "text":
        module = f"helpers.{framework}.text"
    return hint, [(importlib.import_module(module), name) for name in names]
