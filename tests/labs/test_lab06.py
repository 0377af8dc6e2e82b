"""Lab 6's typical mistakes: each one fails its check with the hint written for it.

``MISTAKES`` lists, per framework, (exercise, a wrong solution, the key of the hint it must get).
Every hint the lab declares must be produced by at least one entry.

Also here: the numpy references of ``helpers/labs/lab06/references.py`` equal the chapter's own
helpers on the checks' cases (``H.text.masked_mean`` and ``last_true_state`` of both
frameworks, ``helpers.data.text.build_vocab`` + ``encode``), and every mistake moves the answer.
"""

from __future__ import annotations

from collections import Counter

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from labtools import mistake_table_tests

from helpers.data import text as T
from helpers.labs.lab06 import references as lab06

# ---------------------------------------------------------------- wrong solutions


def _mask(xp, compare="<", dtype=None):
    def length_mask(lengths, max_len):
        t = xp.arange(max_len)[None, :]
        if compare == "flat":
            m = t < lengths  # (1, T) against (B,): no column of lengths
        elif compare == "loop":  # row by row, left as a Python list
            return [[t < int(n) for t in range(max_len)] for n in lengths]
        else:
            m = {
                "<": t < lengths[:, None],
                "<=": t <= lengths[:, None],
                "<-1": t < lengths[:, None] - 1,
                ">=": t >= lengths[:, None],
            }[compare]
        return m if dtype is None else dtype(m)

    return length_mask


def _mean(kind, cast=None, keepdim=None):
    def masked_mean(x, mask):
        if kind == "plain":
            return x.mean(1)
        if kind == "inverted":
            mask = ~mask
        if kind == "flatten":  # the real tokens of every review in one (N, D) list
            return x[mask].mean(0)
        m = mask[..., None] * 1.0  # (B, T, 1) float in both frameworks
        if kind == "flat_count":
            return (x * m).sum(1) / mask.sum(1)  # (B, D) / (B,)
        if kind == "no_axis":
            return (x * mask).sum(1) / m.sum(1)  # (B, T, D) * (B, T)
        if kind == "by_t":
            return (x * m).sum(1) / x.shape[1]
        if kind == "cast":  # the right values in another float dtype
            return cast((x * m).sum(1) / m.sum(1))
        if kind == "keepdim":  # keepdim on the sum too: (B, 1, D)
            return (x * m).sum(1, **keepdim) / m.sum(1, **keepdim)
        return (x * m).sum(1) / m.sum(1)

    return masked_mean


def _last(xp, kind, cast=None):
    def last_true_output(outputs, lengths):
        rows = xp.arange(outputs.shape[0])
        if kind == "last_column":
            return outputs[:, -1]
        if kind == "no_minus_one":
            return outputs[rows, lengths]
        if kind == "batch_axis":
            return outputs[lengths - 1]
        if kind == "kept_axis":  # a slice keeps the step axis: (B, 1, H)
            return outputs[rows, lengths - 1][:, None]
        if kind == "cast":
            return cast(outputs[rows, lengths - 1])
        if kind == "rows":  # one row per sequence, never stacked
            return [outputs[b, int(n) - 1] for b, n in enumerate(lengths)]
        return outputs[:, lengths - 1]  # "pairs": (B, B, H)

    return last_true_output


def _encode(
    to_array,
    *,
    leak=False,
    unk=1,
    keep=">=",
    start=2,
    order="count",
    strict=False,
    truncate="first",
    pad=0,
    left=False,
    swap=False,
):
    """A student's encode_splits with one switch per mistake; ``to_array=None``: lists."""

    def encode_splits(train_tokens, test_tokens, *, min_freq, max_len):
        seen = train_tokens + test_tokens if leak else train_tokens
        counts = Counter(w for tokens in seen for w in tokens)
        kept = [
            w
            for w, n in counts.items()
            if keep == "all" or (n > min_freq if keep == ">" else n >= min_freq)
        ]
        if order == "alpha":
            kept = sorted(kept)
        elif order == "most_common":  # ties in first-seen order
            kept = [w for w, _ in counts.most_common() if w in kept]
        else:
            kept = sorted(kept, key=lambda w: (-counts[w], w))
        stoi = {w: i for i, w in enumerate(kept, start=start)}
        unk_id = len(stoi) + start if unk == "after" else unk

        def encode(reviews):
            rows = []
            for tokens in reviews:
                row = [stoi[w] if strict else stoi.get(w, unk_id) for w in tokens]
                row = {"first": row[:max_len], "last": row[-max_len:]}.get(
                    truncate, row
                )
                fill = [pad] * (max_len - len(row))
                rows.append(fill + row if left else row + fill)
            if to_array is None:
                return rows
            width = max(len(r) for r in rows)  # > max_len when nothing is cut
            return to_array(np.array([r + [pad] * (width - len(r)) for r in rows]))

        train, test = encode(train_tokens), encode(test_tokens)
        return (test, train) if swap else (train, test)

    return encode_splits


def _table(xp, to_array, long, wide, keepdim):
    return [
        ("length_mask", _mask(xp, "flat"), "mask_broadcast"),
        ("masked_mean", _mean("flat_count"), "divide_keepdim"),
        ("masked_mean", _mean("no_axis"), "mask_axis"),
        ("masked_mean", _mean("cast", wide), "mean_dtype"),
        ("length_mask", _mask(xp, "<="), "off_by_one_length"),
        ("length_mask", _mask(xp, "<-1"), "off_by_one_length"),
        ("length_mask", _mask(xp, ">="), "polarity"),
        ("length_mask", _mask(xp, "<", long), "mask_dtype"),
        ("length_mask", _mask(xp, "loop"), "list_result"),
        ("masked_mean", _mean("plain"), "padding_leaks"),
        ("masked_mean", _mean("by_t"), "divide_by_t"),
        ("masked_mean", _mean("inverted"), "polarity"),
        ("masked_mean", _mean("flatten"), "flattened"),
        ("masked_mean", _mean("keepdim", keepdim=keepdim), "extra_axis"),
        ("last_true_output", _last(xp, "last_column"), "last_padded"),
        ("last_true_output", _last(xp, "no_minus_one"), "off_by_one_index"),
        ("last_true_output", _last(xp, "pairs"), "pair_index"),
        ("last_true_output", _last(xp, "batch_axis"), "batch_axis"),
        ("last_true_output", _last(xp, "kept_axis"), "extra_axis"),
        ("last_true_output", _last(xp, "cast", wide), "last_dtype"),
        ("last_true_output", _last(xp, "rows"), "list_result"),
        ("encode_splits", _encode(to_array, leak=True), "test_leak"),
        ("encode_splits", _encode(to_array, unk=0), "unk_is_pad"),
        ("encode_splits", _encode(to_array, unk="after"), "unk_is_pad"),
        ("encode_splits", _encode(to_array, strict=True), "unk_missing"),
        ("encode_splits", _encode(to_array, keep="all"), "min_freq"),
        ("encode_splits", _encode(to_array, keep=">"), "min_freq_strict"),
        ("encode_splits", _encode(to_array, start=0), "no_specials"),
        ("encode_splits", _encode(to_array, start=1), "no_specials"),
        ("encode_splits", _encode(to_array, order="alpha"), "vocab_order"),
        ("encode_splits", _encode(to_array, order="most_common"), "ties"),
        (
            "encode_splits",
            _encode(to_array, truncate="last", left=True),
            "truncate_pad",
        ),
        ("encode_splits", _encode(to_array, truncate="last"), "truncate_pad"),
        ("encode_splits", _encode(to_array, pad=1), "truncate_pad"),
        ("encode_splits", _encode(to_array, truncate="none"), "truncate_pad"),
        ("encode_splits", _encode(to_array, swap=True), "swapped"),
        ("encode_splits", _encode(np.asarray), "ids_numpy"),
        ("encode_splits", _encode(None), "list_result"),
    ]


TORCH_MISTAKES = _table(
    torch,
    torch.from_numpy,
    lambda m: m.long(),
    lambda m: m.double(),
    {"keepdim": True},
)
# JAX keeps float32 unless x64 is enabled: the other dtype a JAX student meets is a half one.
JAX_MISTAKES = _table(
    jnp,
    jnp.asarray,
    lambda m: m.astype(jnp.int32),
    lambda m: m.astype(jnp.float16),
    {"keepdims": True},
)

MISTAKES = {"pytorch": TORCH_MISTAKES, "jax": JAX_MISTAKES}

(
    test_catches_mistake_with_its_hint,
    test_at_least_two_mistakes_per_exercise,
    test_every_declared_hint_is_produced_by_a_mistake,
) = mistake_table_tests("lab06", MISTAKES)


# ---------------------------------------------------------------- references = the helpers


def _differs(a, b, atol=1e-3):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape != b.shape or not np.allclose(a, b, atol=atol)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_mean_and_last_references_equal_the_chapter_helpers(framework):
    from helpers.jax import text as jtext
    from helpers.torch import text as ttext

    for case in lab06.mean_cases():
        x, mask = case["x"], case["mask"]
        if framework == "torch":
            ours = ttext.masked_mean(
                torch.from_numpy(x), torch.from_numpy(mask)
            ).numpy()
        else:
            ours = np.asarray(jtext.masked_mean(jnp.asarray(x), jnp.asarray(mask)))
        np.testing.assert_allclose(ours, lab06.mean_reference(x, mask), rtol=1e-5)
        for _, m in lab06.MEAN_MISTAKES:
            assert _differs(ours, lab06.mean_reference(x, mask, m)), m
    for case in lab06.last_cases():
        out, lengths = case["outputs"], case["lengths"]
        if framework == "torch":
            ours = ttext.last_true_state(
                torch.from_numpy(out), torch.from_numpy(lengths)
            ).numpy()
        else:
            ours = np.asarray(
                jtext.last_true_state(jnp.asarray(out), jnp.asarray(lengths))
            )
        np.testing.assert_array_equal(ours, lab06.last_reference(out, lengths))
        for _, m in [*lab06.LAST_MISTAKES, ("pair_index", "pair_index")]:
            assert _differs(ours, lab06.last_reference(out, lengths, m), 1e-6), m


def test_mask_reference_is_the_helpers_padding_mask():
    from helpers.torch import text as ttext

    for case in lab06.MASK_CASES:
        lengths = np.array(case["lengths"])
        t = case["max_len"]
        ids = np.where(np.arange(t)[None] < lengths[:, None], 5, T.PAD)
        ours = ttext.padding_mask(torch.from_numpy(ids)).numpy()
        np.testing.assert_array_equal(ours, lab06.mask_reference(lengths, t))
        for _, m in lab06.MASK_MISTAKES:
            assert not np.array_equal(ours, lab06.mask_reference(lengths, t, m)), m


@pytest.mark.parametrize("case", range(len(lab06.ENCODE_CASES)))
def test_encode_reference_equals_build_vocab_and_encode(case):
    case = lab06.ENCODE_CASES[case]
    vocab = T.build_vocab(case["train"], min_freq=case["min_freq"])
    kw = dict(min_freq=case["min_freq"], max_len=case["max_len"])
    right = lab06.encode_reference(case["train"], case["test"], **kw)
    for tokens, ids in zip((case["train"], case["test"]), right, strict=True):
        expected, _ = T.encode(tokens, vocab, case["max_len"])
        np.testing.assert_array_equal(ids, expected)
    # The word that occurs only in the test reviews is <unk> (1) in the right answer.
    only_test = {w for t in case["test"] for w in t} - {
        w for t in case["train"] for w in t
    }
    assert only_test and all(w not in vocab for w in only_test)


def test_every_encode_mistake_moves_the_first_case():
    """The check stops at the first case that fails: each mistake must show there."""
    case = lab06.ENCODE_CASES[0]
    kw = dict(min_freq=case["min_freq"], max_len=case["max_len"])
    right = lab06.encode_reference(case["train"], case["test"], **kw)
    for _, m in lab06.ENCODE_MISTAKES:
        wrong = lab06.encode_reference(case["train"], case["test"], **kw, mistake=m)
        assert any(_differs(a, b, 0) for a, b in zip(right, wrong, strict=True)), m
