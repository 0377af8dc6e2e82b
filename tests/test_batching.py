"""Batching as properties: every row exactly once, and ``len`` equal to what iteration yields.

The pattern to copy for any batcher: enumerate the edge sizes (``n = k*b``, ``k*b + 1``,
``n < b``, an empty set), with and without ``drop_last`` and shuffling, and state what must hold
for all of them, rather than checking one hand-picked size.
"""

import numpy as np
import pytest

from helpers import jax as hj
from helpers import torch as ht
from helpers.data import BatchSampler, batch_indices, images_to_vectors
from helpers.data.common import subset

B = 4
# (n, name): the edges where an off-by-one hides.
SIZES = [
    (3 * B, "n=k*b"),
    (3 * B + 1, "n=k*b+1"),
    (B - 1, "n<b"),
    (1, "n=1"),
    (0, "n=0"),
]


def expected_batches(n: int, drop_last: bool) -> list[int]:
    """Batch sizes a batcher of ``n`` rows must yield, written out from the definition."""
    full, rest = divmod(n, B)
    return [B] * full + ([rest] if rest and not drop_last else [])


def batches_of_batch_indices(n, shuffle, drop_last, seed):
    rng = np.random.default_rng(seed) if shuffle else None
    return None, [
        np.asarray(i)
        for i in batch_indices(n, B, shuffle=shuffle, rng=rng, drop_last=drop_last)
    ]


def batches_of_sampler(n, shuffle, drop_last, seed):
    sampler = BatchSampler(n, B, shuffle=shuffle, seed=seed, drop_last=drop_last)
    return len(sampler), [np.asarray(i) for i in sampler.indices()]


def loader_batches(H):
    def batches(n, shuffle, drop_last, seed):
        # Row i holds i in x and in y, so a batch says which rows it gathered.
        x = np.arange(n, dtype=np.float32).reshape(n, 1)
        y = np.arange(n, dtype=np.int64) % 256
        loader = H.ArrayLoader(x, y, B, shuffle=shuffle, seed=seed, drop_last=drop_last)
        out = []
        for xb, yb in loader:
            rows = np.asarray(xb)[:, 0].astype(np.int64)
            # x and y stay paired: the label of each gathered row is that row's label.
            np.testing.assert_array_equal(np.asarray(yb), rows % 256)
            out.append(rows)
        return len(loader), out

    return batches


BATCHERS = {
    "batch_indices": batches_of_batch_indices,
    "BatchSampler": batches_of_sampler,
    "torch.ArrayLoader": loader_batches(ht),
    "jax.ArrayLoader": loader_batches(hj),
}


@pytest.mark.parametrize("batcher", BATCHERS)
@pytest.mark.parametrize("n", [n for n, _ in SIZES], ids=[name for _, name in SIZES])
@pytest.mark.parametrize("drop_last", [False, True], ids=["keep_last", "drop_last"])
@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
def test_every_row_once_and_len_matches_iteration(batcher, n, drop_last, shuffle):
    length, batches = BATCHERS[batcher](n, shuffle, drop_last, seed=1)
    sizes = [len(b) for b in batches]
    assert sizes == expected_batches(n, drop_last)
    if length is not None:  # batch_indices is a generator: it has no len
        assert length == len(batches)
    rows = np.concatenate(batches) if batches else np.zeros(0, np.int64)
    # No row twice; and all rows, except at most the b-1 that drop_last may leave out.
    assert len(set(rows.tolist())) == len(rows)
    assert set(rows.tolist()) <= set(range(n))
    assert len(rows) == (n - n % B if drop_last else n)
    if not shuffle:
        assert rows.tolist() == list(range(len(rows)))  # in order, from row 0


@pytest.mark.parametrize(
    "batcher", ["BatchSampler", "torch.ArrayLoader", "jax.ArrayLoader"]
)
def test_each_epoch_is_a_new_permutation_and_drop_last_drops_different_rows(batcher):
    """Shuffled epochs differ; with drop_last the left-out rows change from epoch to epoch."""
    n = 3 * B + 1
    if batcher == "BatchSampler":
        sampler = BatchSampler(n, B, shuffle=True, seed=0, drop_last=True)
        epochs = [np.concatenate(list(sampler.indices())) for _ in range(6)]
    else:
        H = ht if batcher.startswith("torch") else hj
        x = np.arange(n, dtype=np.float32).reshape(n, 1)
        loader = H.ArrayLoader(
            x, np.zeros(n, np.int64), B, shuffle=True, drop_last=True
        )
        epochs = [
            np.concatenate([np.asarray(xb)[:, 0] for xb, _ in loader]).astype(int)
            for _ in range(6)
        ]
    assert len({tuple(e.tolist()) for e in epochs}) == 6
    left_out = {frozenset(range(n)) - frozenset(e.tolist()) for e in epochs}
    assert len(left_out) > 1  # not always the same row left out


def test_bad_batch_sizes_are_refused():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        list(batch_indices(5, 0))
    with pytest.raises(ValueError, match="n must be >= 0"):
        list(batch_indices(-1, 2))
    with pytest.raises(ValueError, match="explicit rng"):
        list(batch_indices(5, 2, shuffle=True))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        BatchSampler(5, 0)


def test_images_to_vectors_scales_each_pixel_to_0_1():
    images = np.array(
        [[[0, 255], [51, 102]], [[255, 0], [0, 204]]], np.uint8
    )  # (2, 2, 2)
    rows = images_to_vectors(images)
    assert rows.dtype == np.float32 and rows.shape == (2, 4)
    np.testing.assert_allclose(rows, [[0, 1, 0.2, 0.4], [1, 0, 0, 0.8]], rtol=1e-6)
    colour = np.zeros((3, 4, 4, 3), np.uint8)  # (N, H, W, C) -> (N, H*W*C)
    assert images_to_vectors(colour).shape == (3, 48)
    with pytest.raises(TypeError, match="expected uint8"):
        images_to_vectors(images.astype(np.float32))


def test_fixed_subsets_are_the_same_everywhere():
    # Seed 0's subset, pinned: a change here changes every `limit=` run in the book.
    assert subset(10, 3).tolist() == [2, 4, 6]
    assert subset(10, 1).tolist() == [4]
    assert subset(10, 9).tolist() == [0, 2, 3, 4, 5, 6, 7, 8, 9]
    for limit in (None, 10, 11):  # everything, as a slice: no copy
        assert subset(10, limit) == slice(None)
    with pytest.raises(ValueError, match="limit must be a positive"):
        subset(10, 0)


@pytest.mark.parametrize(
    "batcher", ["BatchSampler", "torch.ArrayLoader", "jax.ArrayLoader"]
)
def test_the_seed_decides_the_shuffled_order(batcher):
    n = 3 * B + 1

    def first_epoch(seed):
        if batcher == "BatchSampler":
            return np.concatenate(
                list(BatchSampler(n, B, shuffle=True, seed=seed).indices())
            )
        H = ht if batcher.startswith("torch") else hj
        x = np.arange(n, dtype=np.float32).reshape(n, 1)
        loader = H.ArrayLoader(x, np.zeros(n, np.int64), B, shuffle=True, seed=seed)
        return np.concatenate([np.asarray(xb)[:, 0] for xb, _ in loader]).astype(int)

    assert first_epoch(5).tolist() == first_epoch(5).tolist()
    assert first_epoch(5).tolist() != first_epoch(6).tolist()
