"""Chapter 6's text pipeline (helpers.data.text) and models (H.text), on tiny data."""

import numpy as np
import pytest

from helpers.data.text import (
    PAD,
    UNK,
    LengthBuckets,
    Vocab,
    add_hashed_bigrams,
    build_vocab,
    distinct_features,
    encode,
    group_split,
    imdb_review_ids,
    imdb_setup,
    imdb_summary,
)

TRAIN = [["a", "good", "film"], ["a", "bad", "film"], ["good", "good"]]


def test_vocab_counts_training_words_only_and_maps_unknown_to_unk():
    vocab = build_vocab(TRAIN, min_freq=2)
    assert vocab.itos[:2] == ("<pad>", "<unk>")
    assert vocab.itos[2:] == ("good", "a", "film")  # by count, ties alphabetical
    assert vocab.lookup(["good", "bad", "zebra"]) == [2, UNK, UNK]
    assert len(build_vocab(TRAIN, min_freq=1, max_size=4)) == 4


def test_vocab_rejects_bad_input():
    with pytest.raises(TypeError, match="token lists"):
        build_vocab("a good film")
    with pytest.raises(TypeError, match="list of tokens"):
        build_vocab(["a good film"])
    with pytest.raises(ValueError, match="min_freq"):
        build_vocab(TRAIN, min_freq=0)
    with pytest.raises(ValueError, match="<pad>"):
        Vocab(("a", "b"))


def test_encode_truncates_pads_and_counts_lengths():
    vocab = build_vocab(TRAIN, min_freq=1)
    ids, lengths = encode([["good"] * 5, ["bad"], []], vocab, max_len=3)
    assert ids.dtype == np.int32 and ids.shape == (3, 3)
    assert lengths.tolist() == [3, 1, 1]  # the empty review keeps one <unk>
    assert ids[1, 1:].tolist() == [PAD, PAD] and ids[2, 0] == UNK
    with pytest.raises(ValueError, match="max_len"):
        encode(TRAIN, vocab, 0)


def test_hashed_bigrams_put_real_features_first():
    ids = np.array([[5, 6, 7, 0], [8, 0, 0, 0]])
    out, lengths = add_hashed_bigrams(ids, np.array([3, 1]), vocab_size=10, buckets=7)
    assert lengths.tolist() == [5, 1]
    assert out[0, :3].tolist() == [5, 6, 7]
    assert out[0, 3] == 10 + (5 * 1_000_003 + 6) % 7
    assert (out[0, 5:] == PAD).all() and (out[1, 1:] == PAD).all()
    assert (out[0, 3:5] >= 10).all()
    with pytest.raises(ValueError, match="expected ids"):
        add_hashed_bigrams(ids[0], np.array([3]), vocab_size=10, buckets=7)


def test_distinct_features_count_each_id_once_and_ignore_padding():
    # row 0's 9 lies past its length: padding, whatever its value
    ids = np.array([[5, 3, 5, 5, 0, 9], [7, 7, 0, 0, 0, 0]])
    out, lengths = distinct_features(ids, np.array([4, 2]))
    assert out.dtype == np.int32 and lengths.tolist() == [2, 1]
    assert out.tolist() == [[3, 5], [7, PAD]]
    with pytest.raises(ValueError, match="expected ids"):
        distinct_features(ids[0], np.array([4]))


@pytest.mark.parametrize("shuffle", [False, True])
def test_length_buckets_cover_every_row_once(shuffle):
    lengths = np.random.default_rng(0).integers(1, 300, 103)
    buckets = LengthBuckets(lengths, 10, shuffle=shuffle, pool=3)
    seen = []
    for idx, width in buckets.batches():
        assert width >= lengths[idx].max() and width >= 32
        seen += idx.tolist()
    assert sorted(seen) == list(range(103)) and len(buckets) == 11


@pytest.mark.parametrize("shuffle", [False, True])
def test_length_buckets_drop_last_keeps_only_full_batches(shuffle):
    lengths = np.random.default_rng(1).integers(1, 300, 103)
    buckets = LengthBuckets(lengths, 10, shuffle=shuffle, pool=3, drop_last=True)
    sizes = [len(idx) for idx, _ in buckets.batches()]
    assert set(sizes) == {10} and len(sizes) == len(buckets)
    # shuffled: chunks of 30 rows -> 3 full chunks (9 batches) + 13 rows (1 batch)
    assert len(buckets) == 10


def test_group_split_holds_out_whole_groups_of_each_class():
    labels = np.repeat([0, 1], 100)
    # 10 groups of 10 per class, the same numbers in both classes
    groups = np.tile(np.arange(100) // 10, 2)
    train, valid = group_split(labels, groups, 0.2, seed=3)
    assert len(valid) == 40 and labels[valid].sum() == 20  # 2 groups of each class
    assert len(train) + len(valid) == 200 and not set(train) & set(valid)
    # a group of one class is never split, whatever the other class does
    for c in (0, 1):
        held = set(groups[valid][labels[valid] == c])
        kept = set(groups[train][labels[train] == c])
        assert len(held) == 2 and not held & kept
    with pytest.raises(ValueError, match="fraction"):
        group_split(labels, groups, 0.0)
    with pytest.raises(ValueError, match="one shape"):
        group_split(labels, groups[:-1], 0.1)


def test_imdb_review_ids_map_each_label_to_its_12500_ids():
    from helpers.data.common import mixed_order, subset

    labels = mixed_order(25_000) // 12_500  # the labels load_imdb returns
    ids = imdb_review_ids(labels)
    for c in (0, 1):
        assert sorted(ids[labels == c]) == list(range(12_500))
    small = mixed_order(25_000)[subset(25_000, 300)] // 12_500
    assert len(imdb_review_ids(small, 300)) == 300
    with pytest.raises(ValueError, match="load_imdb"):
        imdb_review_ids(1 - labels)
    with pytest.raises(ValueError, match="load_imdb"):
        imdb_review_ids(small)  # the limit does not match


@pytest.mark.parametrize("distinct", [False, True])
def test_imdb_summary_names_a_binary_bag(distinct):
    from helpers.data.text import EncodedImdb
    from helpers.metrics import History
    from helpers.scale import TextModelSizes

    history = History()
    history.end_epoch(1, [0.7, 0.5], correct=3, seen=4, seconds=2.0)
    split = (np.ones((4, 3), np.int32), np.array([3, 2, 1, 3]), np.zeros(4, np.uint8))
    data = EncodedImdb(Vocab(("<pad>", "<unk>")), 2, split, split, distinct=distinct)
    m = TextModelSizes(max_len=3, dim=4, epochs=1, batch_size=2, learning_rate=0.1)
    record = imdb_summary("bow", m, data, history, {"accuracy": 0.5, "loss": 0.7}, 10)
    assert ("binary bag" in record["model"]) == distinct
    assert record["train_tokens_per_second"] == pytest.approx(9 / 2.0)


def test_imdb_setup_rejects_unknown_model():
    with pytest.raises(ValueError, match="cnn-lstm"):
        imdb_setup(None, "rnn")


# --- the models, in both frameworks ------------------------------------------------------------


def _framework(name):
    if name == "torch":
        import torch

        from helpers.torch import text

        def run(model, ids):
            model.eval()
            with torch.no_grad():
                return model(torch.as_tensor(ids, dtype=torch.long)).numpy()

        def build(cls, *args, **kw):
            torch.manual_seed(0)
            return cls(*args, **kw)

        return text, run, build, lambda a: torch.as_tensor(a), np.asarray
    import jax.numpy as jnp
    from flax import nnx

    from helpers.jax import text

    def run(model, ids):
        model.eval()
        return np.asarray(model(jnp.asarray(ids, jnp.int32)))

    def build(cls, *args, **kw):
        return cls(*args, **kw, rngs=nnx.Rngs(0))

    return text, run, build, jnp.asarray, np.asarray


@pytest.fixture(params=["torch", "jax"])
def fw(request):
    return _framework(request.param)


def test_masked_pooling_ignores_padding(fw):
    text, _, _, arr, np_ = fw
    x = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    mean = np_(text.masked_mean(arr(x), arr(mask)))
    mx = np_(text.masked_max(arr(x), arr(mask)))
    np.testing.assert_allclose(mean[0], x[0, :2].mean(0), rtol=1e-6)
    np.testing.assert_allclose(mx[0], x[0, :2].max(0))
    np.testing.assert_allclose(mean[1], x[1].mean(0), rtol=1e-6)
    ids = np.array([[3, 4, PAD]])
    assert np_(text.padding_mask(arr(ids))).tolist() == [[True, True, False]]


@pytest.mark.parametrize("model", ["BagOfNgrams", "CnnLstm", "TransformerClassifier"])
def test_models_ignore_trailing_padding(fw, model):
    text, run, build, _, _ = fw
    net = build(getattr(text, model), 50, 8)
    ids = np.array([[5, 6, 7, 8, 9, 10, 11, 0], [12, 13, 0, 0, 0, 0, 0, 0]])
    wider = np.concatenate([ids, np.zeros((2, 8), ids.dtype)], 1)
    out, out_wide = run(net, ids), run(net, wider)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out, out_wide, atol=1e-5)


def test_text_loader_rejects_mismatched_arrays(fw):
    text = fw[0]
    with pytest.raises(ValueError, match="differ in length"):
        text.TextLoader(np.zeros((3, 4)), np.ones(3), np.zeros(2), 2)


def test_text_loader_cuts_batches_to_their_width(fw):
    text, *_ = fw
    ids = np.zeros((4, 100), np.int32)
    lengths = np.array([3, 40, 5, 2])
    for i, n in enumerate(lengths):
        ids[i, :n] = 7
    loader = text.TextLoader(ids, lengths, np.array([0, 1, 0, 1]), 2)
    shapes = [tuple(x.shape) for x, _ in loader]
    assert shapes == [(2, 64), (2, 32)]


def test_both_cnn_lstms_start_from_the_same_parameter_law():
    """The JAX twin starts every layer from PyTorch's default law (helpers/jax/text.py)."""
    import torch
    from flax import nnx

    from helpers.jax import text as jt
    from helpers.torch import text as tt

    torch.manual_seed(0)
    t = tt.CnnLstm(500, 32)
    j = jt.CnnLstm(500, 32, rngs=nnx.Rngs(0))
    cell = j.lstm.cell
    pairs = {  # name: (PyTorch values, JAX values)
        "embedding": (
            t.embed.weight[1:],
            j.embed.embedding[...][1:],
        ),  # row 0: PyTorch's pad
        "conv kernel": (t.convs[1].weight, j.convs[1].kernel[...]),
        "conv bias": (t.convs[1].bias, j.convs[1].bias[...]),
        "lstm input kernel": (t.lstm.weight_ih_l0, cell.dense_i.kernel[...]),
        "lstm recurrent kernel": (t.lstm.weight_hh_l0, cell.dense_h.kernel[...]),
        "lstm input bias": (t.lstm.bias_ih_l0, cell.dense_i.bias[...]),
        "lstm recurrent bias": (t.lstm.bias_hh_l0, cell.dense_h.bias[...]),
        "head kernel": (t.head.weight, j.head.kernel[...]),
    }
    for name, (tv, jv) in pairs.items():
        tv, jv = tv.detach().numpy(), np.asarray(jv)
        assert tv.size == jv.size, name
        assert np.abs(jv).max() <= np.abs(tv).max() * 1.05 + 1e-6, name
        assert jv.std() == pytest.approx(tv.std(), rel=0.2), name


def _copy_cnn_lstm(t, j):
    """Copy a PyTorch CnnLstm's parameters into its JAX twin (layouts transposed)."""
    import jax.numpy as jnp

    def put(var, tensor, *axes):
        value = tensor.detach().numpy()
        var[...] = jnp.asarray(value.transpose(*axes) if axes else value)

    put(j.embed.embedding, t.embed.weight)
    for tc, jc in zip(t.convs, j.convs, strict=True):
        put(jc.kernel, tc.weight, 2, 1, 0)  # (out, in, w) -> (w, in, out)
        put(jc.bias, tc.bias)
    cell = j.lstm.cell  # gates i, f, g, o in both
    put(cell.dense_i.kernel, t.lstm.weight_ih_l0, 1, 0)
    put(cell.dense_i.bias, t.lstm.bias_ih_l0)
    put(cell.dense_h.kernel, t.lstm.weight_hh_l0, 1, 0)
    put(cell.dense_h.bias, t.lstm.bias_hh_l0)
    put(j.head.kernel, t.head.weight, 1, 0)
    put(j.head.bias, t.head.bias)


def test_cnn_lstm_twins_agree_on_a_padded_batch_and_adam_steps():
    """Same weights: same logits on reviews of mixed lengths, same losses for 4 Adam steps.

    Catches any difference in the model (gates, conv padding, pooling, the state at each true
    length) or its optimisation: e.g. one LSTM bias where PyTorch has two (Adam then moves
    PyTorch's summed bias twice as fast).
    """
    import jax.numpy as jnp
    import optax
    import torch
    from flax import nnx

    from helpers.jax import text as jt
    from helpers.jax.train import cross_entropy, step_functions
    from helpers.torch import text as tt

    torch.manual_seed(0)
    kw = dict(channels=8, hidden=6, dropout=0.0)
    t = tt.CnnLstm(60, 16, **kw)
    j = jt.CnnLstm(60, 16, **kw, rngs=nnx.Rngs(0))
    _copy_cnn_lstm(t, j)
    rng = np.random.default_rng(0)
    ids = np.zeros((6, 64), np.int64)
    for i, n in enumerate([64, 3, 17, 40, 1, 33]):  # padding after each review
        ids[i, :n] = rng.integers(2, 60, n)
    y = np.array([0, 1, 1, 0, 1, 0])
    xt, yt = torch.as_tensor(ids), torch.as_tensor(y)
    xj, yj = jnp.asarray(ids, jnp.int32), jnp.asarray(y, jnp.int32)
    t.eval(), j.eval()
    with torch.no_grad():
        np.testing.assert_allclose(t(xt).numpy(), np.asarray(j(xj)), atol=1e-5)
    t.train(), j.train()
    opt_t = torch.optim.Adam(t.parameters(), lr=1e-2)
    opt_j = nnx.Optimizer(j, optax.adam(1e-2), wrt=nnx.Param)
    step, _ = step_functions(cross_entropy)
    for _ in range(4):
        loss = torch.nn.functional.cross_entropy(t(xt), yt)
        opt_t.zero_grad()
        loss.backward()
        opt_t.step()
        loss_j, _ = step(j, opt_j, xj, yj)
        assert float(loss_j) == pytest.approx(loss.item(), abs=1e-5)
    bias_t = (t.lstm.bias_ih_l0 + t.lstm.bias_hh_l0).detach().numpy()
    cell = j.lstm.cell
    bias_j = np.asarray(cell.dense_i.bias[...] + cell.dense_h.bias[...])
    np.testing.assert_allclose(bias_t, bias_j, atol=1e-5)
