"""Lab 6's typical mistakes: each one fails its check with the hint written for it.

``MISTAKES`` lists, per framework, (exercise, a wrong solution, the key of the hint it must get).
Every hint the lab declares must be produced by at least one entry.

Also here: the numpy references of ``helpers/labs/lab06/references.py`` equal the chapter's own
helpers on the checks' cases (``helpers.data.text.build_vocab`` + ``encode``, the padding
mask), exercise 2's attention pooling equals ``F.scaled_dot_product_attention`` with a scale of
1 (values and gradients) and, for a query of zeros, ``H.text.masked_mean`` of both frameworks,
exercise 3's RoPE reference equals PyTorch's ONNX ``RotaryEmbedding`` op (interleaved), and
every mistake moves the answer.
"""

from __future__ import annotations

import math
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from labtools import mistake_table_tests

from helpers.data import text as T
from helpers.jax import text as jtext
from helpers.labs.lab06 import attention_pool, reverse, rope
from helpers.labs.lab06 import references as lab06
from helpers.torch import text as ttext

# jax.nn's attention bound before any check runs, as `from jax.nn import ...` would bind it.
_JAX_ATTENTION = jax.nn.dot_product_attention

# ---------------------------------------------------------------- wrong solutions


def _mask(xp, compare="<", dtype=None):
    def length_mask(lengths, max_len):
        t = xp.arange(max_len)[None, :]
        if compare == "flat":
            m = t < lengths  # (1, T) against (B,): no column of lengths
        elif compare == "loop":  # row by row, left as a Python list
            return [[t < int(n) for t in range(max_len)] for n in lengths]
        elif compare == "in_place":  # the right mask, but the caller's lengths shrink
            lengths -= 1
            m = t <= lengths[:, None]
        else:
            m = {
                "<": t < lengths[:, None],
                "<=": t <= lengths[:, None],
                "<-1": t < lengths[:, None] - 1,
                ">=": t >= lengths[:, None],
            }[compare]
        return m if dtype is None else dtype(m)

    return length_mask


def _softmax(xp, s, axis=-1):
    return torch.softmax(s, axis) if xp is torch else jax.nn.softmax(s, axis=axis)


def _pool(xp, kind, cast=None):
    """A student's attention_pool with one switch per mistake (``xp``: torch or jnp)."""

    def attention_pool(x, mask, query):
        inf = float("inf")
        m = mask * 1.0  # (B, T) float in both frameworks
        if kind == "in_place":  # PyTorch: the caller's padding filled in place
            x.masked_fill_(~mask[..., None], 0.0)
        if kind == "answer_key":  # the library's attention with a length-1 query
            if xp is torch:
                q = query.expand(x.shape[0], 1, -1)  # (B, 1, D)
                out = torch.nn.functional.scaled_dot_product_attention(
                    q, x, x, attn_mask=mask[:, None, :], scale=1.0
                )
                return out[:, 0]
            q = jnp.broadcast_to(query, (x.shape[0], 1, 1, x.shape[-1]))
            out = jax.nn.dot_product_attention(
                q, x[:, :, None], x[:, :, None], mask=mask[:, None, None, :], scale=1.0
            )
            return out[:, 0, 0]
        if kind == "mha":  # nn.MultiheadAttention / nnx.MultiHeadAttention, one head
            d = x.shape[-1]
            q = xp.broadcast_to(query, (x.shape[0], 1, d))
            if xp is torch:
                mha = torch.nn.MultiheadAttention(d, 1, batch_first=True)
                return mha(q, x, x, key_padding_mask=~mask)[0][:, 0]
            from flax import nnx

            mha = nnx.MultiHeadAttention(1, d, decode=False, rngs=nnx.Rngs(0))
            return mha(q, x, x, mask=mask[:, None, None, :])[:, 0]
        if kind == "linen":  # Flax Linen's attention, which the check sees by name too
            from flax.linen import dot_product_attention as linen_attention

            q = jnp.broadcast_to(query, (x.shape[0], 1, 1, x.shape[-1]))
            q = q * math.sqrt(x.shape[-1])  # undoes its 1/sqrt(D)
            out = linen_attention(
                q, x[:, :, None], x[:, :, None], mask=mask[:, None, None, :]
            )
            return out[:, 0, 0]
        if kind == "imported_name":  # jax.nn's attention under a name of its own
            q = jnp.broadcast_to(query, (x.shape[0], 1, 1, x.shape[-1]))
            out = _JAX_ATTENTION(
                q, x[:, :, None], x[:, :, None], mask=mask[:, None, None, :], scale=1.0
            )
            return out[:, 0, 0]
        if kind == "query_at_x":  # query @ x contracts D with T: a shape error
            s = query @ x
        if kind == "zeroed_x":  # x zeroed at the padding, then a softmax over all T
            x = x * m[..., None]
            mask = m >= 0
        if kind == "mean":  # the query ignored: the masked mean
            return (x * m[..., None]).sum(1) / m.sum(1, keepdims=True)
        s = x @ query  # (B, T)
        if kind == "per_feature":  # x * query without the sum: (B, T, D)
            e = xp.where(mask[..., None], x * query, -inf)
            return (_softmax(xp, e, 1) * x).sum(1)
        if kind == "features_axis":  # x * query, softmax over D
            e = xp.where(mask[..., None], x * query, -inf)
            return (_softmax(xp, e, -1) * x).sum(1)
        s = {
            "negated": -s,  # the softmax favours the lowest scores
            "sqrt_d": s / math.sqrt(x.shape[-1]),
            "by_t": s / x.shape[1],
            "by_d": s / x.shape[-1],
        }.get(kind, s)
        if kind == "inverted":
            mask = ~mask
        if kind == "float_mask":  # masked_fill with the mask as 0/1 floats
            p = _softmax(xp, s.masked_fill(1.0 - m, -inf))
            return (p[..., None] * x).sum(1)
        if kind == "float_where":  # torch.where with the mask as 0/1 floats
            return (_softmax(xp, torch.where(m, s, -inf))[..., None] * x).sum(1)
        if kind == "bool_sub":  # 1 - mask on the bool mask itself (PyTorch raises)
            return (_softmax(xp, s * mask + (1 - mask) * -1e9)[..., None] * x).sum(1)
        if (
            kind == "clipped"
        ):  # scores clipped to dodge exp's overflow: ties the top two
            s = xp.clip(s, -50.0, 50.0)
        if (
            kind == "half_inside"
        ):  # -1e9 at padding, the scores cast to float16 (-1e9: -inf)
            s = xp.where(mask, s, -1e9)
            s = (
                s.half().float()
                if xp is torch
                else s.astype(jnp.float16).astype(x.dtype)
            )
        fill = {"zero_fill": 0.0, "fill_1e4": -1e4, "fill_1e9": -1e9}.get(kind, -inf)
        if kind == "finfo":
            fill = float(xp.finfo(s.dtype).min)
        if kind == "fill_1e4_replaced":
            fill = -1e4
        if kind in ("ignored", "after_softmax", "after_renorm", "eps_renorm"):
            p = _softmax(xp, s)
            if kind != "ignored":
                p = p * m
            if kind == "after_renorm":
                p = p / p.sum(-1, keepdims=True)
            if (
                kind == "eps_renorm"
            ):  # an epsilon against 0 / 0: rows of 0 instead of NaN
                p = p / (p.sum(-1, keepdims=True) + 1e-9)
        elif kind == "added_01":
            p = _softmax(xp, s + m)
        elif kind == "added_pm1":
            p = _softmax(xp, s + 2 * m - 1)
        elif kind in (
            "fill_1e4",
            "fill_1e9",
        ):  # the mask added as a big negative number
            p = _softmax(xp, s + (1 - m) * fill)
        elif kind == "log_mask":  # log 1 = 0, log 0 = -inf
            p = _softmax(xp, s + xp.log(m))
        elif kind in ("no_max", "exp_then_mask", "exp_nan_grad", "by_hand"):
            if kind == "no_max":
                e = xp.exp(xp.where(mask, s, -inf))
            elif kind == "exp_then_mask":  # exp of every score, then the mask
                e = xp.exp(s) * m
            else:  # the max over the real tokens subtracted
                top = xp.where(mask, s, -inf).max(-1, keepdims=True)
                top = top[0] if xp is torch else top
                if kind == "exp_nan_grad":  # the exponentials masked after exp
                    e = xp.where(mask, xp.exp(s - top), 0.0)
                else:
                    e = xp.exp(xp.where(mask, s, -inf) - top)
            p = e / e.sum(-1, keepdims=True)
        elif kind == "axis_batch":
            p = _softmax(xp, xp.where(mask, s, -inf), 0)
        elif kind == "max_no_keepdim":  # the (B,) max against the (B, T) scores
            s = xp.where(mask, s, -inf)
            top = s.max(1)[0] if xp is torch else s.max(1)
            e = xp.exp(s - top)
            p = e / e.sum(-1, keepdims=True)
        elif kind == "softmax_where":  # JAX: jax.nn.softmax(s, where=mask), no fill
            p = jax.nn.softmax(s, axis=1, where=mask)
        else:
            p = _softmax(xp, xp.where(mask, s, fill))
        if kind == "detach":  # the weights cut from the graph
            p = p.detach() if xp is torch else jax.lax.stop_gradient(p)
        out = (p[..., None] * x).sum(1)  # (B, D)
        if kind == "mean_not_sum":
            return (p[..., None] * x).mean(1)
        if kind == "by_length":  # divided by the lengths, as the masked mean is
            return out / m.sum(1, keepdims=True)
        if kind == "no_trailing_axis":  # (B, T) weights times (B, T, D) x
            return (p * x).sum(1)
        if kind == "bmm":  # (B, 1, T) @ (B, T, D), the middle axis dropped
            return (p[:, None] @ x)[:, 0]
        if kind == "weights":
            return p
        if kind == "tuple":
            return out, p
        if kind == "keepdim":
            return (p[..., None] * x).sum(1, keepdims=True)
        if kind == "rows":
            return list(out)
        if kind == "cast":
            return cast(out)
        if kind == "numpy":
            return np.asarray(out.detach() if xp is torch else out)
        if kind == "boolean_index":  # a loop over the rows, x[b][mask[b]]: eager only
            rows = []
            for b in range(x.shape[0]):
                xb = x[b][mask[b]]  # (L, D)
                rows.append(_softmax(xp, xb @ query, 0) @ xb)
            return xp.stack(rows)
        return out

    return attention_pool


def _stack(xp, arrays):
    return torch.stack(arrays, -1) if xp is torch else jnp.stack(arrays, -1)


def _cat(xp, arrays):
    return torch.cat(arrays, -1) if xp is torch else jnp.concatenate(arrays, -1)


def _repeat2(xp, a):  # each entry twice in a row along the last axis
    return a.repeat_interleave(2, -1) if xp is torch else jnp.repeat(a, 2, axis=-1)


def _rope(xp, kind, cast=None):
    """A student's apply_rope with one switch per mistake (``xp``: torch or jnp)."""

    def apply_rope(x, positions, base=10000.0):
        d = x.shape[-1]
        half = d // 2
        if kind == "answer_key":  # PyTorch's ONNX RotaryEmbedding op, interleaved
            from torch.onnx import ops

            angle = torch.arange(int(positions.max()) + 1)[:, None] * base ** (
                -2 * torch.arange(half) / d
            )
            ids = positions[None].expand(x.shape[0], -1)
            out = ops.rotary_embedding(
                x.transpose(1, 2), angle.cos(), angle.sin(), ids, interleaved=True
            )
            return out.transpose(1, 2)
        if kind == "unchanged":
            return x * 1
        i = xp.arange(half) * 1.0  # (D/2,) float32
        exponent = {
            "freq_half": -i / d,
            "freq_sign": 2 * i / d,
            "freq_quarter": -2 * i / (d // 2),
            "linspace": -i / max(half - 1, 1),
            "freq_from_one": -2 * (i + 1) / d,  # xp.arange(1, half + 1)
            "freq_odd": -(2 * i + 1) / d,  # xp.arange(1, d, 2) / d
            "freq_2i_minus_1": -(2 * i - 1) / d,
            "floor_div": -2 * xp.arange(half) // d,  # integer floor division
        }.get(kind, -2 * i / d)
        b = 10000.0 if kind == "base_default" else base
        freqs = b**exponent
        # positions / base ** (-2i / D): the exponent's sign flipped
        if kind == "freq_inverted":
            freqs = 1 / freqs
        if kind == "precedence":  # base ** -2 * i / d
            freqs = b**-2 * i / d
        if kind == "no_freq":
            freqs = freqs * 0 + 1
        if kind == "float64_table":  # PyTorch: a float64 table promotes the result
            freqs = freqs.double()
        if kind == "arange":
            pos = xp.arange(x.shape[1]) * 1.0
        elif kind == "positions_plus_one":
            pos = positions + 1.0
        elif kind == "contiguous":  # from the first position, as if there were no gaps
            pos = positions[0] + xp.arange(x.shape[1]) * 1.0
        elif kind == "traced":  # Python numbers: fine eagerly, not under jax.jit
            pos = jnp.array([float(int(p)) for p in positions])
        elif kind == "traced_loop":
            pos = jnp.array(positions.tolist(), jnp.float32)
        else:
            pos = positions * 1.0
        angle = pos * freqs if kind == "no_outer" else pos[:, None] * freqs  # (T, D/2)
        if kind == "sin_flipped":
            angle = -angle
        if kind == "degrees":  # the angle read as degrees
            angle = angle * math.pi / 180
        cos, sin = xp.cos(angle), xp.sin(angle)  # (T, D/2)
        if kind == "batch_axis":  # (T, 1, 1, D/2): T on x's batch axis
            cos, sin = cos[:, None, None, :], sin[:, None, None, :]
        # cos[..., None], (T, D/2, 1): the pairs on the heads axis
        elif kind == "pairs_axis":
            cos, sin = cos[..., None], sin[..., None]
        elif kind != "no_heads_axis":
            cos, sin = cos[:, None, :], sin[:, None, :]  # (T, 1, D/2)
        if kind == "in_place":  # PyTorch: the rotated pairs written into x
            x0, x1 = x[..., 0::2].clone(), x[..., 1::2].clone()
            x[..., 0::2] = x0 * cos - x1 * sin
            x[..., 1::2] = x0 * sin + x1 * cos
            return x.clone()
        if kind == "table_cat":  # rotate-half's table on interleaved pairs
            e_cos, e_sin = _cat(xp, [cos, cos]), _cat(xp, [sin, sin])
            turned = _stack(xp, [-x[..., 1::2], x[..., 0::2]]).reshape(x.shape)
            return x * e_cos + turned * e_sin
        if kind == "table_repeat_half":  # the interleaved table on rotate-half's pairs
            turned = _cat(xp, [-x[..., half:], x[..., :half]])
            return x * _repeat2(xp, cos) + turned * _repeat2(xp, sin)
        if kind == "rotate_half":
            h0, h1 = x[..., :half], x[..., half:]
            return _cat(xp, [h0 * cos - h1 * sin, h1 * cos + h0 * sin])
        if kind == "pairs_on_t":  # the pairs sliced on the T axis: x[:, 0::2]
            x0, x1 = x[:, 0::2], x[:, 1::2]
        else:
            x0, x1 = x[..., 0::2], x[..., 1::2]  # (B, T, heads, D/2)
        y0, y1 = x0 * cos - x1 * sin, x0 * sin + x1 * cos
        if kind == "cos_only":
            y0, y1 = x0 * cos, x1 * cos
        if kind == "sin_only":
            y0, y1 = -x1 * sin, x0 * sin
        if kind == "no_swap":
            y0, y1 = x0 * cos - x0 * sin, x1 * cos + x1 * sin
        if kind == "cos_sin_swapped":
            y0, y1 = x0 * sin - x1 * cos, x0 * cos + x1 * sin
        if kind == "pair_roles":  # x1 read as the even feature
            y0, y1 = x1 * cos - x0 * sin, x1 * sin + x0 * cos
        if kind == "pair_output_swapped":
            y0, y1 = y1, y0
        if kind == "sign_y0":  # one sign slip: a reflection, not a rotation
            y0 = x0 * cos + x1 * sin
        if kind == "sign_y1":
            y1 = x1 * cos - x0 * sin
        if kind == "stale_even":  # the odd features read the already rotated even ones
            y1 = y0 * sin + x1 * cos
        if kind == "stale_odd":
            y0 = x0 * cos - y1 * sin
        if kind in ("skip_first_pair", "skip_last_pair", "every_other_pair"):
            keep = xp.arange(half)  # the pairs left as they were: True
            keep = {
                "skip_first_pair": keep == 0,
                "skip_last_pair": keep == half - 1,
                "every_other_pair": keep % 2 == 1,
            }[kind]
            y0, y1 = xp.where(keep, x0, y0), xp.where(keep, x1, y1)
        if kind == "cat_output":
            return _cat(xp, [y0, y1])
        if kind == "complex":  # the pairs as complex numbers, never turned back
            return (x0 + 1j * x1) * (cos + 1j * sin)
        pairs = _stack(xp, [y0, y1])  # (B, T, heads, D/2, 2)
        if kind == "pairs_kept":  # not flattened back into D
            return pairs
        out = pairs.reshape(x.shape)
        if kind == "partial":  # only the first D/2 features rotated
            return _cat(xp, [out[..., :half], x[..., half:]])
        if kind == "transposed":  # (B, heads, T, D), the layout of attention's scores
            return out.transpose(0, 2, 1, 3) if xp is jnp else out.transpose(1, 2)
        if kind == "cast":
            return cast(out)
        if kind == "int_result":  # the rotated values written into an integer array
            return out.long() if xp is torch else out.astype(jnp.int32)
        if kind == "tuple":
            return out, cos
        if kind == "rows":
            return [out[b] for b in range(x.shape[0])]
        return out

    return apply_rope


def _reverse(xp, kind, cast=None):
    """A student's reverse_padded with one switch per mistake (``xp``: torch or jnp)."""

    def take(x, index):  # gather along the time axis, index (B, T) -> like x
        index = index.reshape(tuple(index.shape) + (1,) * (x.ndim - 2))
        if xp is torch:
            return x.gather(1, index.expand(x.shape))
        return jnp.take_along_axis(x, index, axis=1)

    def reverse_padded(x, lengths):
        if kind == "flat_lengths":  # lengths (B,) against arange(T) (T,): no broadcast
            s = xp.arange(x.shape[1])
            return take(x, xp.where(s < lengths, lengths - 1 - s, s))
        if kind == "negative_step":  # PyTorch: x[b, L - 1::-1] raises
            rows = [x[b, int(n) - 1 :: -1] for b, n in enumerate(lengths)]
            return xp.stack(
                [xp.concatenate([r, x[b, len(r) :]]) for b, r in enumerate(rows)]
            )
        t = int(lengths.max()) if kind == "max_length" else x.shape[1]  # T from lengths
        s = xp.arange(t)[None, :]  # (1, T)
        n = lengths[:, None]  # (B, 1)
        inside = s < n
        index = {
            "whole_row": t - 1 - s + 0 * n,  # (B, T): the padding moves to the front
            "plus_one": xp.where(inside, n - s, s),
            "minus_one": xp.where(inside, n - 2 - s, s),
            "clamped": xp.where(n - 1 - s > 0, n - 1 - s, 0),
            "no_where": n - 1 - s,  # the padding's index is negative
        }.get(kind, xp.where(inside, n - 1 - s, s))
        if kind == "flip":  # torch.flip / jnp.flip of the padded row
            return xp.flip(x, (1,))
        if kind == "batch":
            return xp.flip(x, (0,))
        if kind == "features":
            return xp.flip(x, (x.ndim - 1,))
        if kind == "no_trailing_axes":  # the (B, T) index as it is, on x (B, T, H)
            if xp is torch:
                return x.gather(1, index)
            return jnp.take_along_axis(x, index, axis=1)
        if kind == "pairs":  # every row with every index row: (B, B, T, ...)
            return x[:, index]
        if kind == "batch_index":  # the steps index the batch axis
            return x[index]
        if kind == "feature_axis_assumed":  # written for (B, T, H): fails on (B, T) ids
            if xp is torch:
                return x.gather(1, index[..., None].expand(x.shape))
            wide = jnp.broadcast_to(index[..., None], (*index.shape, x.shape[2]))
            return jnp.take_along_axis(x, wide, axis=1)
        right = take(x[:, :t], index)
        if kind == "zeroed":  # the padding set to 0
            mask = inside.reshape(tuple(inside.shape) + (1,) * (x.ndim - 2))
            return xp.where(mask, right, 0)
        if kind == "in_place":  # PyTorch: written into the caller's batch
            return x.copy_(right)
        if kind == "cast":
            return cast(right)
        if kind == "rows":  # one row per sequence, never stacked
            return [right[b] for b in range(x.shape[0])]
        if kind == "numpy":
            return np.asarray(right)
        if kind == "loop":  # right: a Python loop over the batch, row by row
            rows = []
            for b in range(x.shape[0]):
                m = int(lengths[b])
                rows.append(xp.concatenate([xp.flip(x[b, :m], (0,)), x[b, m:]]))
            return xp.stack(rows)
        return right

    return reverse_padded


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
    count="words",
    transpose=False,
    own_vocab=False,
    mutate=False,
    ragged=None,
    answer_key=False,
    cut=0,
):
    """A student's encode_splits with one switch per mistake; ``to_array=None``: lists.

    ``ragged``: the framework's constructor, given the rows (unpadded unless ``unk`` is
    None: stoi.get(word) with no default); ``cut``: ids dropped from ``max_len``;
    ``count``: "words", "reviews" (document frequency), "truncated" (the reviews cut to
    max_len first) or "both" (the test reviews counted too, only training words kept);
    ``transpose``: the ids returned as (max_len, N).
    """

    def encode_splits(train_tokens, test_tokens, *, min_freq, max_len):
        if answer_key:  # the chapter's build_vocab and encode
            vocab = T.build_vocab(train_tokens, min_freq=min_freq)
            return tuple(
                to_array(T.encode(split, vocab, max_len)[0])
                for split in (train_tokens, test_tokens)
            )
        if own_vocab:  # the test split encoded with a vocabulary of its own
            one = _encode(to_array)
            kw = dict(min_freq=min_freq, max_len=max_len)
            return (
                one(train_tokens, train_tokens, **kw)[0],
                one(test_tokens, test_tokens, **kw)[0],
            )
        if mutate:  # pads the caller's reviews in place (the ids come out right)
            for tokens in train_tokens + test_tokens:
                tokens += ["<pad>"] * (max_len - len(tokens))
        both = leak or count == "both"
        seen = train_tokens + test_tokens if both else train_tokens
        if count == "reviews":
            seen = [set(tokens) for tokens in seen]
        elif count == "truncated":
            seen = [tokens[:max_len] for tokens in seen]
        counts = Counter(w for tokens in seen for w in tokens if w != "<pad>")
        kept = [
            w
            for w, n in counts.items()
            if keep == "all" or (n > min_freq if keep == ">" else n >= min_freq)
        ]
        if count == "both":  # counted on both splits, but only training words kept
            kept = [w for w in kept if any(w in tokens for tokens in train_tokens)]
        if order == "alpha":
            kept = sorted(kept)
        elif order == "most_common":  # ties in first-seen order
            kept = [w for w, _ in counts.most_common() if w in kept]
        elif order == "reversed":  # (count, word) with reverse=True: ties reversed too
            kept = sorted(kept, key=lambda w: (counts[w], w), reverse=True)
        elif order == "ascending":
            kept = sorted(kept, key=lambda w: (counts[w], w))
        elif order == "none":  # the Counter's order: first appearance
            pass
        else:
            kept = sorted(kept, key=lambda w: (-counts[w], w))
        stoi = {w: i for i, w in enumerate(kept, start=start)}
        unk_id = len(stoi) + start if unk == "after" else unk
        stoi["<pad>"] = pad

        def encode(reviews):
            rows = []
            for tokens in reviews:
                row = [stoi[w] if strict else stoi.get(w, unk_id) for w in tokens]
                row = {"first": row[: max_len - cut], "last": row[-max_len:]}.get(
                    truncate, row
                )
                fill = [pad] * (max_len - len(row))
                padded = unk is None or not ragged
                rows.append(fill + row if left else row + fill if padded else row)
            if ragged:
                return ragged(rows)
            if to_array is None:
                return rows
            width = max(len(r) for r in rows)  # > max_len when nothing is cut
            ids = to_array(np.array([r + [pad] * (width - len(r)) for r in rows]))
            return ids.T if transpose else ids

        train, test = encode(train_tokens), encode(test_tokens)
        return (test, train) if swap else (train, test)

    return encode_splits


def _table(xp, to_array, long, wide, half, text, tensor):
    return [
        # From the second student pass on lab 6 (each passed, or got another hint, before).
        ("encode_splits", _encode(to_array, count="both"), "test_counts"),
        ("encode_splits", _encode(to_array, transpose=True), "ids_transposed"),
        ("reverse_padded", _reverse(xp, "pairs"), "reverse_pair_index"),
        ("reverse_padded", _reverse(xp, "batch_index"), "reverse_batch_index"),
        (
            "reverse_padded",
            _reverse(xp, "feature_axis_assumed"),
            "reverse_no_feature_axis",
        ),
        # From the student pass of s25 (each failed before: passed, or got another hint).
        ("encode_splits", _encode(to_array, answer_key=True), "vocab_answer_key"),
        ("encode_splits", _encode(to_array, count="truncated"), "count_truncated"),
        ("encode_splits", _encode(to_array, count="reviews"), "doc_freq"),
        ("encode_splits", _encode(to_array, order="reversed"), "ties_reversed"),
        ("encode_splits", _encode(to_array, own_vocab=True), "test_own_vocab"),
        ("encode_splits", _encode(to_array, mutate=True), "tokens_changed"),
        ("encode_splits", _encode(to_array, ragged=tensor), "ragged"),
        ("encode_splits", _encode(to_array, order="none"), "vocab_order"),
        ("encode_splits", _encode(to_array, order="ascending"), "vocab_order"),
        ("encode_splits", _encode(to_array, left=True), "truncate_pad"),
        ("encode_splits", _encode(to_array, cut=1), "truncate_pad"),
        ("encode_splits", _encode(to_array, unk=None, ragged=tensor), "unk_none"),
        ("length_mask", _mask(xp, "flat"), "mask_broadcast"),
        ("length_mask", _mask(xp, "<="), "off_by_one_length"),
        ("length_mask", _mask(xp, "<-1"), "off_by_one_length"),
        ("length_mask", _mask(xp, ">="), "polarity"),
        ("length_mask", _mask(xp, "<", long), "mask_dtype"),
        ("length_mask", _mask(xp, "loop"), "list_result"),
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
        # Exercise 2: masked attention pooling.
        ("attention_pool", _pool(xp, "inverted"), "pool_polarity"),
        ("attention_pool", _pool(xp, "ignored"), "pool_mask_ignored"),
        ("attention_pool", _pool(xp, "zero_fill"), "pool_zero_fill"),
        ("attention_pool", _pool(xp, "after_softmax"), "pool_after_softmax"),
        ("attention_pool", _pool(xp, "after_renorm"), "pool_exp_masked"),
        ("attention_pool", _pool(xp, "exp_then_mask"), "pool_exp_masked"),
        ("attention_pool", _pool(xp, "added_01"), "pool_mask_added"),
        ("attention_pool", _pool(xp, "added_pm1"), "pool_mask_added"),
        ("attention_pool", _pool(xp, "axis_batch"), "pool_axis"),
        ("attention_pool", _pool(xp, "per_feature"), "pool_dot"),
        ("attention_pool", _pool(xp, "features_axis"), "pool_nan"),
        ("attention_pool", _pool(xp, "no_max"), "pool_no_max"),
        ("attention_pool", _pool(xp, "mean"), "pool_query_ignored"),
        ("attention_pool", _pool(xp, "sqrt_d"), "pool_scale"),
        ("attention_pool", _pool(xp, "by_t"), "pool_scale"),
        ("attention_pool", _pool(xp, "by_d"), "pool_scale"),
        ("attention_pool", _pool(xp, "weights"), "pool_weights"),
        ("attention_pool", _pool(xp, "tuple"), "pool_tuple"),
        ("attention_pool", _pool(xp, "keepdim"), "pool_shape"),
        ("attention_pool", _pool(xp, "cast", wide), "pool_dtype"),
        ("attention_pool", _pool(xp, "rows"), "list_result"),
        ("attention_pool", _pool(xp, "fill_1e4"), "pool_small_fill"),
        ("attention_pool", _pool(xp, "exp_nan_grad"), "pool_grad_nan"),
        ("attention_pool", _pool(xp, "detach"), "pool_grad"),
        ("attention_pool", _pool(xp, "negated"), "pool_formula"),
        # From the student pass (each got only the formula's hint, or none, before).
        ("attention_pool", _pool(xp, "mean_not_sum"), "pool_sum"),
        ("attention_pool", _pool(xp, "zeroed_x"), "pool_zero_fill"),
        ("attention_pool", _pool(xp, "cast", long), "pool_dtype"),
        ("attention_pool", _pool(xp, "cast", half), "pool_dtype"),
        ("attention_pool", _pool(xp, "answer_key"), "pool_answer_key"),
        ("attention_pool", _pool(xp, "mha"), "pool_answer_key"),
        (
            "attention_pool",
            lambda x, mask, query: text.masked_mean(x, mask),  # the chapter's pooling
            "pool_query_ignored",
        ),
        # From the second student pass on exercise 2 (each passed, got no hint or the
        # formula's before).
        ("attention_pool", _pool(xp, "clipped"), "pool_formula"),
        ("attention_pool", _pool(xp, "by_length"), "pool_sum"),
        ("attention_pool", _pool(xp, "eps_renorm"), "pool_exp_masked"),
        ("attention_pool", _pool(xp, "half_inside"), "pool_precision"),
        ("attention_pool", _pool(xp, "max_no_keepdim"), "pool_broadcast"),
        ("attention_pool", _pool(xp, "no_trailing_axis"), "pool_broadcast"),
        ("attention_pool", _pool(xp, "query_at_x"), "pool_matmul"),
        # Exercise 3: rotary position embeddings.
        ("apply_rope", _rope(xp, "rotate_half"), "rope_rotate_half"),
        ("apply_rope", _rope(xp, "table_cat"), "rope_table_layout"),
        ("apply_rope", _rope(xp, "table_repeat_half"), "rope_table_layout"),
        ("apply_rope", _rope(xp, "freq_half"), "rope_exponent"),
        ("apply_rope", _rope(xp, "freq_sign"), "rope_exponent"),
        ("apply_rope", _rope(xp, "no_freq"), "rope_no_frequency"),
        ("apply_rope", _rope(xp, "base_default"), "rope_base"),
        ("apply_rope", _rope(xp, "arange"), "rope_positions"),
        ("apply_rope", _rope(xp, "sin_flipped"), "rope_direction"),
        ("apply_rope", _rope(xp, "no_heads_axis"), "rope_axes"),
        ("apply_rope", _rope(xp, "pairs_on_t"), "rope_axes"),
        ("apply_rope", _rope(xp, "cos_only"), "rope_cos_sin"),
        ("apply_rope", _rope(xp, "sin_only"), "rope_cos_sin"),
        ("apply_rope", _rope(xp, "no_swap"), "rope_pair_swap"),
        ("apply_rope", _rope(xp, "cat_output"), "rope_cat_output"),
        ("apply_rope", _rope(xp, "degrees"), "rope_formula"),
        ("apply_rope", _rope(xp, "pairs_kept"), "rope_shape"),
        ("apply_rope", _rope(xp, "transposed"), "rope_shape"),
        ("apply_rope", _rope(xp, "cast", wide), "rope_dtype"),
        ("apply_rope", _rope(xp, "tuple"), "rope_tuple"),
        ("apply_rope", _rope(xp, "rows"), "list_result"),
        ("apply_rope", _rope(xp, "complex"), "rope_complex"),
        # From the student pass (each got the formula's hint, or none, before).
        ("apply_rope", _rope(xp, "unchanged"), "rope_unchanged"),
        ("apply_rope", _rope(xp, "positions_plus_one"), "rope_positions"),
        ("apply_rope", _rope(xp, "contiguous"), "rope_positions"),
        ("apply_rope", _rope(xp, "precedence"), "rope_unchanged"),
        ("apply_rope", _rope(xp, "linspace"), "rope_exponent"),
        ("apply_rope", _rope(xp, "freq_quarter"), "rope_exponent"),
        ("apply_rope", _rope(xp, "cos_sin_swapped"), "rope_cos_sin"),
        ("apply_rope", _rope(xp, "pair_roles"), "rope_pair_order"),
        ("apply_rope", _rope(xp, "pair_output_swapped"), "rope_pair_order"),
        ("apply_rope", _rope(xp, "partial"), "rope_partial"),
        ("apply_rope", _rope(xp, "no_outer"), "rope_outer"),
        # From the second student pass on exercise 3 (each got the formula's hint before, or
        # another one: the exponent's slips, one sign, pairs left unturned, stale features).
        ("apply_rope", _rope(xp, "freq_from_one"), "rope_exponent"),
        ("apply_rope", _rope(xp, "freq_odd"), "rope_exponent"),
        ("apply_rope", _rope(xp, "freq_2i_minus_1"), "rope_exponent"),
        ("apply_rope", _rope(xp, "floor_div"), "rope_exponent"),
        ("apply_rope", _rope(xp, "freq_inverted"), "rope_exponent"),
        ("apply_rope", _rope(xp, "sign_y0"), "rope_direction"),
        ("apply_rope", _rope(xp, "sign_y1"), "rope_direction"),
        ("apply_rope", _rope(xp, "pairs_axis"), "rope_axes"),
        ("apply_rope", _rope(xp, "stale_even"), "rope_overwritten"),
        ("apply_rope", _rope(xp, "stale_odd"), "rope_overwritten"),
        ("apply_rope", _rope(xp, "skip_first_pair"), "rope_partial"),
        ("apply_rope", _rope(xp, "skip_last_pair"), "rope_partial"),
        ("apply_rope", _rope(xp, "every_other_pair"), "rope_partial"),
        ("apply_rope", _rope(xp, "int_result"), "rope_dtype"),
        # Exercise 5: reverse each sequence within its length.
        ("reverse_padded", _reverse(xp, "whole_row"), "reverse_whole_row"),
        ("reverse_padded", _reverse(xp, "flip"), "reverse_whole_row"),
        ("reverse_padded", _reverse(xp, "plus_one"), "reverse_off_by_one"),
        ("reverse_padded", _reverse(xp, "minus_one"), "reverse_off_by_one"),
        ("reverse_padded", _reverse(xp, "batch"), "reverse_axis"),
        ("reverse_padded", _reverse(xp, "features"), "reverse_axis"),
        ("reverse_padded", _reverse(xp, "zeroed"), "padding_changed"),
        ("reverse_padded", _reverse(xp, "clamped"), "reverse_clamped"),
        ("reverse_padded", _reverse(xp, "cast", wide), "reverse_dtype"),
        ("reverse_padded", _reverse(xp, "rows"), "list_result"),
        ("reverse_padded", _reverse(xp, "numpy"), "reverse_numpy"),
        ("reverse_padded", _reverse(xp, "no_trailing_axes"), "reverse_index_axes"),
        ("reverse_padded", _reverse(xp, "flat_lengths"), "reverse_broadcast"),
        ("reverse_padded", _reverse(xp, "max_length"), "reverse_length"),
    ]


def _pad_sequence(batch_first):
    """PyTorch's pad_sequence of the encoded rows (cut to max_len, not padded)."""
    from torch.nn.utils.rnn import pad_sequence

    def pad(rows):
        return pad_sequence([torch.tensor(r) for r in rows], batch_first=batch_first)

    return pad


def _pad_to_longest(rows):
    """The encoded rows padded with 0 to the longest one of the split, as one jax.Array."""
    width = max(len(r) for r in rows)
    return jnp.asarray([r + [0] * (width - len(r)) for r in rows])


TORCH_MISTAKES = [
    *_table(
        torch,
        torch.from_numpy,
        lambda m: m.long(),
        lambda m: m.double(),
        lambda m: m.bfloat16(),
        ttext,
        torch.tensor,
    ),
    # A write into an input tensor, and a gather that does not broadcast: PyTorch's only.
    ("length_mask", _mask(torch, "in_place"), "in_place"),
    ("reverse_padded", _reverse(torch, "in_place"), "in_place"),
    ("attention_pool", _pool(torch, "in_place"), "in_place"),
    ("attention_pool", _pool(torch, "float_mask"), "pool_bool_mask"),
    ("attention_pool", _pool(torch, "float_where"), "pool_bool_mask"),
    ("attention_pool", _pool(torch, "bool_sub"), "pool_bool_sub"),
    ("apply_rope", _rope(torch, "in_place"), "in_place"),
    ("apply_rope", _rope(torch, "float64_table"), "rope_dtype"),
    ("apply_rope", _rope(torch, "answer_key"), "rope_answer_key"),
    # (T, 1, 1, D/2) against x (B, T, heads, D/2): PyTorch words it as positions * freqs.
    ("apply_rope", _rope(torch, "batch_axis"), "rope_axes"),
    # PyTorch refuses the negative index of the padding: named as an index past the row.
    ("reverse_padded", _reverse(torch, "no_where"), "reverse_off_by_one"),
    ("reverse_padded", _reverse(torch, "negative_step"), "reverse_negative_step"),
    # pad_sequence pads to the longest review, and puts the steps first unless batch_first.
    (
        "encode_splits",
        _encode(torch.from_numpy, ragged=_pad_sequence(True)),
        "pad_longest",
    ),
    (
        "encode_splits",
        _encode(torch.from_numpy, ragged=_pad_sequence(False)),
        "ids_transposed",
    ),
]
# JAX keeps float32 unless x64 is enabled: the other dtype a JAX student meets is a half one.
JAX_MISTAKES = [
    *_table(
        jnp,
        jnp.asarray,
        lambda m: m.astype(jnp.int32),
        lambda m: m.astype(jnp.float16),
        lambda m: m.astype(jnp.bfloat16),
        jtext,
        jnp.asarray,
    ),
    # x[mask] row by row: right eagerly, a NonConcreteBooleanIndexError under jax.jit.
    ("attention_pool", _pool(jnp, "boolean_index"), "pool_traced"),
    # JAX's and Flax's attention under any name: imported before the check, Flax Linen's.
    ("attention_pool", _pool(jnp, "imported_name"), "pool_answer_key"),
    ("attention_pool", _pool(jnp, "linen"), "pool_answer_key"),
    # Each split padded to its own longest review, not to max_len.
    ("encode_splits", _encode(jnp.asarray, ragged=_pad_to_longest), "pad_longest"),
    # Positions read as Python numbers: right eagerly, a tracer error under jax.jit.
    ("apply_rope", _rope(jnp, "traced"), "rope_traced"),
    ("apply_rope", _rope(jnp, "traced_loop"), "rope_traced"),
    # JAX wraps the padding's negative index: the real steps are right, the padding is not.
    ("reverse_padded", _reverse(jnp, "no_where"), "padding_changed"),
]

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


def test_pool_reference_is_scaled_dot_product_attention_with_scale_1():
    """With a length-1 query, F.scaled_dot_product_attention (scale 1, the mask as
    attn_mask) is the reference; its gradients are :func:`attention_pool.pool_grads`."""
    for case in attention_pool.pool_cases():
        x = torch.from_numpy(case["x"]).double().requires_grad_(True)
        q = torch.from_numpy(case["query"]).double().requires_grad_(True)
        mask = torch.from_numpy(case["mask"])
        out = torch.nn.functional.scaled_dot_product_attention(
            q.expand(len(x), 1, -1), x, x, attn_mask=mask[:, None, :], scale=1.0
        )[:, 0]
        right = attention_pool.pool_reference(case["x"], case["mask"], case["query"])
        np.testing.assert_allclose(out.detach().numpy(), right, rtol=1e-9, atol=1e-9)
        w = np.random.default_rng(1).normal(size=right.shape)
        dx, dq = torch.autograd.grad((out * torch.from_numpy(w)).sum(), [x, q])
        ref_dx, ref_dq = attention_pool.pool_grads(
            case["x"], case["mask"], case["query"], w
        )
        np.testing.assert_allclose(dx.numpy(), ref_dx, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(dq.numpy(), ref_dq, rtol=1e-7, atol=1e-9)
        assert np.all(ref_dx[~case["mask"]] == 0)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_a_zero_query_gives_the_chapters_masked_mean(framework):
    """The masked mean of chapter 6 (``H.text.masked_mean``) is the case query = 0; the
    check's case 3 has that query, and the reference's "mean" mistake is that helper."""
    for k, case in enumerate(attention_pool.pool_cases()):
        x, mask = case["x"], case["mask"]
        if framework == "torch":
            ours = ttext.masked_mean(
                torch.from_numpy(x), torch.from_numpy(mask)
            ).numpy()
        else:
            ours = np.asarray(jtext.masked_mean(jnp.asarray(x), jnp.asarray(mask)))
        mean = attention_pool.pool_reference(x, mask, case["query"], "mean")
        np.testing.assert_allclose(ours, mean, rtol=1e-5, atol=1e-5)
        zero = attention_pool.pool_reference(x, mask, np.zeros_like(case["query"]))
        np.testing.assert_allclose(ours, zero, rtol=1e-5, atol=1e-5)
        assert (k == 3) == (not case["query"].any())


def test_every_pool_mistake_moves_some_case():
    for _, mistake in attention_pool.POOL_MISTAKES:
        moved = False
        for case in attention_pool.pool_cases():
            args = case["x"], case["mask"], case["query"]
            right = attention_pool.pool_reference(*args)
            wrong = attention_pool.pool_reference(*args, mistake)
            ok = np.isfinite(wrong)
            moved |= ok.any() and _differs(right[ok], wrong[ok], 1e-2)
        assert moved, mistake


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


def test_the_answer_keys_are_restored_after_a_check():
    """The check wraps the chapter's helpers while it runs a student's function, then puts
    them back, whether the function called one or not."""
    from flax import nnx

    from helpers.labs import CheckFailed
    from helpers.labs.lab06 import jax as jchecks
    from helpers.labs.lab06 import torch as tchecks

    def watched():
        return (
            T.build_vocab,
            T.encode,
            jax.nn.dot_product_attention,
            nnx.dot_product_attention,
            nnx.MultiHeadAttention.__call__,
            jchecks._jax_nn._dot_product_attention_xla,
            jchecks._nnx_attention.dot_product_attention_weights,
            jchecks._linen_attention.dot_product_attention_weights,
        )

    originals = watched()
    with pytest.raises(CheckFailed):
        jchecks.check_attention_pool(_pool(jnp, "answer_key"))
    with pytest.raises(CheckFailed):
        jchecks.check_attention_pool(_pool(jnp, "mha"))
    with pytest.raises(CheckFailed):
        jchecks.check_attention_pool(_pool(jnp, "linen"))
    with pytest.raises(CheckFailed):
        tchecks.check_encode_splits(_encode(torch.from_numpy, answer_key=True))
    now = watched()
    assert all(a is b for a, b in zip(originals, now, strict=True))


# ---------------------------------------------------------------- exercise 3: apply_rope
def test_rope_reference_is_pytorchs_onnx_rotary_embedding_interleaved():
    from torch.onnx import ops

    for case in rope.rope_cases():
        x, positions = case["x"], case["positions"]
        base = case["base"] or rope.DEFAULT_BASE
        d = x.shape[-1]
        angle = np.arange(positions.max() + 1)[:, None] * base ** (
            -2 * np.arange(d // 2) / d
        )
        ids = torch.from_numpy(np.tile(positions, (len(x), 1)))
        theirs = ops.rotary_embedding(
            torch.from_numpy(x).double().transpose(1, 2),
            torch.from_numpy(np.cos(angle)),
            torch.from_numpy(np.sin(angle)),
            ids,
            interleaved=True,
        ).transpose(1, 2)
        np.testing.assert_allclose(
            theirs.numpy(), rope.rope_reference(x, positions, case["base"]), atol=1e-12
        )


def test_every_rope_mistake_moves_some_case_beyond_the_tolerance():
    for _, mistake in rope.ROPE_MISTAKES:
        moved = False
        for case in rope.rope_cases():
            right = rope.rope_reference(case["x"], case["positions"], case["base"])
            wrong = rope.rope_reference(
                case["x"], case["positions"], case["base"], mistake
            )
            moved |= wrong is not None and _differs(right, wrong, 1e-2)
        assert moved, mistake


def _rope_complex(x, positions, base=10000.0):
    d = x.shape[-1]
    if isinstance(x, torch.Tensor):
        freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
        angle = torch.outer(positions.float(), freqs)  # (T, D/2)
        turn = torch.polar(torch.ones_like(angle), angle)[:, None, :]  # (T, 1, D/2)
        z = torch.view_as_complex(x.reshape(*x.shape[:-1], d // 2, 2))
        return torch.view_as_real(z * turn).flatten(-2)
    freqs = base ** (-jnp.arange(0, d, 2, dtype=jnp.float32) / d)
    angle = jnp.outer(positions, freqs)
    z = (x[..., 0::2] + 1j * x[..., 1::2]) * jnp.exp(1j * angle)[:, None, :]
    return jnp.stack([z.real, z.imag], axis=-1).reshape(x.shape).astype(x.dtype)


def _rope_einsum(x, positions, base=10000.0):  # a 2x2 rotation matrix per pair
    xp = torch if isinstance(x, torch.Tensor) else jnp
    b, t, heads, d = x.shape
    freqs = xp.exp(-math.log(base) * xp.arange(d // 2) * 2.0 / d)
    angle = positions[:, None] * freqs  # (T, D/2)
    c, s = xp.cos(angle), xp.sin(angle)
    rot = _stack(xp, [_stack(xp, [c, -s]), _stack(xp, [s, c])])  # (T, D/2, 2, 2)
    rot = rot.transpose(-1, -2) if xp is torch else jnp.swapaxes(rot, -1, -2)
    pairs = x.reshape(b, t, heads, d // 2, 2)
    return xp.einsum("tpij,bthpj->bthpi", rot, pairs).reshape(x.shape)


def _rope_tables(x, positions, base=10000.0):  # precomputed per-feature cos/sin tables
    xp = torch if isinstance(x, torch.Tensor) else jnp
    d = x.shape[-1]
    freqs = 1.0 / base ** (xp.arange(0, d, 2) / d)
    angle = positions[:, None] * freqs
    cos = _repeat2(xp, xp.cos(angle))[:, None, :]  # (T, 1, D)
    sin = _repeat2(xp, xp.sin(angle))[:, None, :]
    turned = _stack(xp, [-x[..., 1::2], x[..., 0::2]]).reshape(x.shape)
    return x * cos + turned * sin


def _rope_loop(x, positions, base=10000.0):  # a Python loop over the pairs
    xp = torch if isinstance(x, torch.Tensor) else jnp
    d, cols = x.shape[-1], []
    for i in range(d // 2):
        angle = (positions * base ** (-2 * i / d))[:, None]  # (T, 1)
        x0, x1 = x[..., 2 * i], x[..., 2 * i + 1]
        cols += [x0 * xp.cos(angle) - x1 * xp.sin(angle)]
        cols += [x0 * xp.sin(angle) + x1 * xp.cos(angle)]
    return _stack(xp, cols)


def _rope_block_matrix(x, positions, base=10000.0):  # a (D, D) rotation per position
    xp = torch if isinstance(x, torch.Tensor) else jnp
    d = x.shape[-1]
    angle = positions[:, None] * base ** (-2 * xp.arange(d // 2) / d)
    c, s = xp.cos(angle), xp.sin(angle)  # (T, D/2)
    eye = xp.eye(d // 2)  # block (i, i) of the (D, D) matrix
    # (T, D/2, 2, 2), indexed [t, p, column, row] of each pair's 2x2 rotation
    m = _stack(xp, [_stack(xp, [c, -s]), _stack(xp, [s, c])])
    m = m[:, :, None] * eye[None, :, :, None, None]  # (T, P, Q, column, row)
    if xp is torch:  # rows 2p + row, columns 2q + column
        m = m.permute(0, 1, 4, 2, 3).reshape(len(positions), d, d)
    else:
        m = m.transpose(0, 1, 4, 2, 3).reshape(len(positions), d, d)
    return xp.einsum("tij,bthj->bthi", m, x)


def _rope_float64_then_back(x, positions, base=10000.0):
    if isinstance(x, torch.Tensor):
        x64 = x.double()
        d = x.shape[-1]
        freqs = base ** (-2 * torch.arange(d // 2, dtype=torch.float64) / d)
        angle = positions.double()[:, None] * freqs
        cos, sin = angle.cos()[:, None], angle.sin()[:, None]
        x0, x1 = x64[..., 0::2], x64[..., 1::2]
        out = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1)
        return out.flatten(-2).to(x.dtype)
    return _rope(jnp, "right")(x.astype(jnp.float32), positions, base)


def _rope_vmap(x, positions, base=10000.0):  # one example at a time, vmapped over B
    one = _rope(torch if isinstance(x, torch.Tensor) else jnp, "right")

    def single(xb):  # (T, heads, D)
        return one(xb[None], positions, base)[0]

    if isinstance(x, torch.Tensor):
        return torch.func.vmap(single)(x)
    return jax.vmap(single)(x)


def _rope_strided_writes(x, positions, base=10000):  # a new array, written pair by pair
    xp = torch if isinstance(x, torch.Tensor) else jnp
    d = x.shape[-1]
    # an int base, the frequencies as the exp of a log
    inv = xp.exp(xp.arange(0, d, 2) * (-math.log(base) / d))
    angle = positions[:, None] * inv
    c, s = xp.cos(angle)[:, None], xp.sin(angle)[:, None]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    if xp is torch:
        y = x.clone()
        y[..., 0::2], y[..., 1::2] = x0 * c - x1 * s, x0 * s + x1 * c
        return y
    return x.at[..., 0::2].set(x0 * c - x1 * s).at[..., 1::2].set(x0 * s + x1 * c)


def _rope_heads_first(x, positions, base=10000.0):  # (B, heads, T, D) inside, then back
    xp = torch if isinstance(x, torch.Tensor) else jnp
    d = x.shape[-1]
    xt = x.transpose(1, 2) if xp is torch else jnp.swapaxes(x, 1, 2)
    angle = positions[:, None] * base ** (-xp.arange(d // 2) / (d // 2))  # -i / (D/2)
    c, s = xp.cos(angle), xp.sin(angle)  # (T, D/2) against (B, heads, T, D/2)
    x0, x1 = xt[..., 0::2], xt[..., 1::2]
    y = _stack(xp, [x0 * c - x1 * s, x0 * s + x1 * c]).reshape(xt.shape)
    return y.transpose(1, 2) if xp is torch else jnp.swapaxes(y, 1, 2)


_ROPE_VALID = [
    _rope_strided_writes,
    _rope_heads_first,
    _rope_complex,
    _rope_einsum,
    _rope_tables,
    _rope_loop,
    _rope_block_matrix,
    _rope_float64_then_back,
    _rope_vmap,
]


@pytest.mark.parametrize("framework", ["pytorch", "jax"])
@pytest.mark.parametrize("answer", _ROPE_VALID, ids=lambda f: f.__name__)
def test_a_valid_rope_written_differently_passes(framework, answer, capsys):
    from labtools import checks

    checks("lab06", framework)["apply_rope"](answer)
    out = capsys.readouterr().out
    assert "apply_rope: passed" in out
    assert max(len(line) for line in out.splitlines()) <= 96  # the site's output box


def test_a_jitted_rope_passes(capsys):
    from labtools import checks

    checks("lab06", "jax")["apply_rope"](jax.jit(_rope(jnp, "right")))
    checks("lab06", "jax")["apply_rope"](jax.jit(_rope(jnp, "right"), static_argnums=2))
    out = capsys.readouterr().out
    assert out.count("apply_rope: passed") == 2
    # the pass line fits the site's 96-character output box
    assert max(len(line) for line in out.splitlines()) <= 96


# ---------------------------------------------------------------- exercise 5: reverse_padded
def test_reverse_reference_feeds_pytorchs_packed_backward_lstm():
    """A one-way LSTM with the backward weights of ``nn.LSTM(bidirectional=True)``, run on
    the reference and read at ``lengths - 1``, ends in the packed batch's backward ``h_n``."""
    from torch.nn.utils.rnn import pack_padded_sequence

    case = reverse.reverse_cases()[0]
    x, lengths = torch.from_numpy(case["x"]), torch.from_numpy(case["lengths"])
    torch.manual_seed(0)
    bi = torch.nn.LSTM(x.shape[2], 4, batch_first=True, bidirectional=True)
    one_way = torch.nn.LSTM(x.shape[2], 4, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(one_way, name).copy_(getattr(bi, f"{name}_reverse"))
        packed = pack_padded_sequence(
            x, lengths, batch_first=True, enforce_sorted=False
        )
        _, (h_n, _) = bi(packed)
        rev = torch.from_numpy(reverse.reverse_reference(case["x"], case["lengths"]))
        out, _ = one_way(rev)
    ours = out[torch.arange(len(lengths)), lengths - 1]
    torch.testing.assert_close(ours, h_n[1], atol=1e-6, rtol=1e-5)


def test_reverse_reference_is_flax_keep_order_within_seq_lengths():
    """``nnx.RNN(..., reverse=True, keep_order=True)`` with ``seq_lengths`` reads each row
    backwards from its last real step: its outputs at the real steps are the one-way outputs
    on the reference, put back in order (the reference is its own inverse), and its final
    state is the one-way state at ``lengths - 1``."""
    from flax import nnx

    case = reverse.reverse_cases()[0]
    x, lengths = case["x"], case["lengths"]
    cell = nnx.OptimizedLSTMCell(x.shape[2], 4, rngs=nnx.Rngs(0))
    back = nnx.RNN(cell, reverse=True, keep_order=True, return_carry=True)
    (_, h), outputs = back(jnp.asarray(x), seq_lengths=jnp.asarray(lengths))
    ours = np.asarray(nnx.RNN(cell)(jnp.asarray(reverse.reverse_reference(x, lengths))))
    rows = np.arange(len(lengths))
    np.testing.assert_allclose(ours[rows, lengths - 1], np.asarray(h), atol=1e-6)
    inside = np.arange(x.shape[1])[None] < lengths[:, None]
    back_in_order = reverse.reverse_reference(ours, lengths)
    np.testing.assert_allclose(
        back_in_order[inside], np.asarray(outputs)[inside], atol=1e-6
    )


def test_every_reverse_mistake_moves_each_case():
    for case in reverse.reverse_cases():
        x, lengths = case["x"], case["lengths"]
        right = reverse.reverse_reference(x, lengths)
        assert np.array_equal(reverse.reverse_reference(right, lengths), x)
        for _, m in reverse.REVERSE_MISTAKES:
            if m == "padding_zeroed" and x.ndim == 2:  # token ids: the padding is 0
                continue
            assert _differs(right, reverse.reverse_reference(x, lengths, m), 0), m
        for m in reverse.OFF_BY_ONE:
            valid = reverse.off_by_one_valid(lengths, x.shape[1], m)
            wrong = reverse.reverse_reference(x, lengths, m)
            assert not np.array_equal(right[valid], wrong[valid]), m


def _reverse_by_indexing(x, lengths):  # advanced indexing, no gather: x[rows, index]
    xp = torch if isinstance(x, torch.Tensor) else jnp
    s, n = xp.arange(x.shape[1])[None, :], lengths[:, None]
    return x[xp.arange(x.shape[0])[:, None], xp.where(s < n, n - 1 - s, s)]


def _reverse_flipped_back(
    x, lengths
):  # flip the whole row, then read each row back in place
    xp = torch if isinstance(x, torch.Tensor) else jnp
    t = x.shape[1]
    s, n = xp.arange(t)[None, :], lengths[:, None]
    index = xp.where(s < n, t - n + s, t - 1 - s)
    return xp.flip(x, (1,))[xp.arange(x.shape[0])[:, None], index]


@pytest.mark.parametrize("framework", ["pytorch", "jax"])
@pytest.mark.parametrize("answer", [_reverse_by_indexing, _reverse_flipped_back])
def test_a_valid_reverse_written_differently_passes(framework, answer, capsys):
    from labtools import checks

    checks("lab06", framework)["reverse_padded"](answer)
    assert "reverse_padded: passed" in capsys.readouterr().out


@pytest.mark.parametrize("framework", ["pytorch", "jax"])
def test_a_loop_over_the_batch_passes(framework, capsys):
    from labtools import checks

    xp = torch if framework == "pytorch" else jnp
    checks("lab06", framework)["reverse_padded"](_reverse(xp, "loop"))
    assert "reverse_padded: passed" in capsys.readouterr().out


# ---------------------------------------------------------------- valid answers written otherwise
def _encode_itos(train_tokens, test_tokens, *, min_freq, max_len):  # PyTorch, int32 ids
    counts = Counter()
    for tokens in train_tokens:
        counts.update(tokens)
    kept = [w for w in counts if counts[w] >= min_freq]
    itos = ["<pad>", "<unk>", *sorted(kept, key=lambda w: (-counts[w], w))]
    stoi = {w: i for i, w in enumerate(itos)}
    rows = [
        [
            ([stoi.get(w, 1) for w in tokens] + [0] * max_len)[:max_len]
            for tokens in split
        ]
        for split in (train_tokens, test_tokens)
    ]
    return tuple(torch.tensor(r, dtype=torch.int32) for r in rows)


@pytest.mark.parametrize(
    ("framework", "exercise", "answer"),
    [
        ("pytorch", "encode_splits", _encode_itos),
    ],
)
def test_a_valid_answer_written_differently_passes(framework, exercise, answer, capsys):
    from labtools import checks

    checks("lab06", framework)[exercise](answer)
    assert f"{exercise}: passed" in capsys.readouterr().out


# ---------------------------------------------------------------- exercise 2: attention_pool
_POOL_VALID = [
    "right",  # masked_fill(~mask, -inf) / where(mask, s, -inf), softmax, einsum
    "finfo",  # where(mask, s, finfo.min)
    "fill_1e9",  # s + (1 - mask) * -1e9
    "log_mask",  # s + log(mask)
    "by_hand",  # the max over the real tokens subtracted, exp, divided by the sum
    "bmm",  # (B, 1, T) @ (B, T, D), then [:, 0]
    "fill_1e4_replaced",  # where(mask, s, -1e4): replaced, not added, so exact
]


def _pool_einsum(x, mask, query):  # einsum for the scores and the sum, softmax by hand
    xp = torch if isinstance(x, torch.Tensor) else jnp
    s = xp.einsum("btd,d->bt", x, query)
    s = xp.where(mask, s, -xp.inf)
    e = xp.exp(s - s.max(1, keepdims=True)[0 if xp is torch else ...])
    return xp.einsum("bt,btd->bd", e / e.sum(1, keepdims=True), x)


def _pool_logsumexp(x, mask, query):  # weights as exp(s - logsumexp(s))
    xp = torch if isinstance(x, torch.Tensor) else jnp
    s = xp.where(mask, x @ query, -xp.inf)
    lse = (
        s.logsumexp(1, keepdim=True)
        if xp is torch
        else jax.nn.logsumexp(s, 1, keepdims=True)
    )
    return (xp.exp(s - lse)[..., None] * x).sum(1)


def _pool_float64_inside(x, mask, query):  # float64 inside, float32 out (PyTorch)
    if isinstance(x, torch.Tensor):
        return _pool(torch, "right")(x.double(), mask, query.double()).float()
    return _pool(jnp, "right")(x, mask, query)


@pytest.mark.parametrize("framework", ["pytorch", "jax"])
@pytest.mark.parametrize("kind", _POOL_VALID)
def test_a_valid_pool_written_differently_passes(framework, kind, capsys):
    from labtools import checks

    xp = torch if framework == "pytorch" else jnp
    checks("lab06", framework)["attention_pool"](_pool(xp, kind))
    out = capsys.readouterr().out
    assert "attention_pool: passed" in out
    assert max(len(line) for line in out.splitlines()) <= 96  # the site's output box


@pytest.mark.parametrize("framework", ["pytorch", "jax"])
@pytest.mark.parametrize(
    "answer",
    [_pool_einsum, _pool_logsumexp, _pool_float64_inside],
    ids=lambda f: f.__name__,
)
def test_a_valid_pool_function_passes(framework, answer, capsys):
    from labtools import checks

    checks("lab06", framework)["attention_pool"](answer)
    assert "attention_pool: passed" in capsys.readouterr().out


def test_a_jitted_pool_passes(capsys):
    from labtools import checks

    checks("lab06", "jax")["attention_pool"](jax.jit(_pool(jnp, "right")))
    assert "attention_pool: passed" in capsys.readouterr().out


def _pool_vmap(x, mask, query):  # one row at a time, vmapped
    if isinstance(x, torch.Tensor):

        def row(xb, mb):
            return torch.softmax(torch.where(mb, xb @ query, -torch.inf), 0) @ xb

        return torch.func.vmap(row)(x, mask)
    return jax.vmap(
        lambda xb, mb: jax.nn.softmax(jnp.where(mb, xb @ query, -jnp.inf)) @ xb
    )(x, mask)


def _pool_rows_by_length(x, mask, query):  # PyTorch: a loop over the rows' lengths
    rows = []
    for b in range(len(x)):
        real = x[b, : int(mask[b].sum())]  # (L, D): the mask is True first, then False
        rows.append(torch.softmax(real @ query, 0) @ real)
    return torch.stack(rows)


@pytest.mark.parametrize(
    ("framework", "answer"),
    [
        ("pytorch", _pool_vmap),
        ("jax", _pool_vmap),
        ("pytorch", _pool_rows_by_length),  # eager, so int() of a length is fine
        ("jax", _pool(jnp, "softmax_where")),  # jax.nn.softmax(s, where=mask)
    ],
    ids=["vmap-pytorch", "vmap-jax", "rows-pytorch", "softmax_where-jax"],
)
def test_a_valid_pool_from_the_second_pass_passes(framework, answer, capsys):
    from labtools import checks

    checks("lab06", framework)["attention_pool"](answer)
    assert "attention_pool: passed" in capsys.readouterr().out
