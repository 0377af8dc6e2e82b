"""The synthetic sorting task of chapter 2.6."""

import numpy as np
import pytest

from helpers.data.sequences import sort_batch


def test_shapes_dtypes_and_range():
    inputs, targets = sort_batch(np.random.default_rng(0), 5, 7, 4)
    assert inputs.shape == targets.shape == (5, 7)
    assert inputs.dtype == targets.dtype == np.int64
    assert inputs.min() >= 0 and inputs.max() <= 3


def test_targets_are_the_inputs_sorted():
    inputs, targets = sort_batch(np.random.default_rng(1), 200, 9, 6)
    # Non-decreasing along each row ...
    assert (np.diff(targets, axis=1) >= 0).all()
    # ... and the same multiset of tokens as the input row.
    for row_in, row_out in zip(inputs, targets, strict=True):
        assert np.array_equal(
            np.bincount(row_in, minlength=6), np.bincount(row_out, minlength=6)
        )
    # The inputs are not already sorted (the task is not trivial).
    assert (inputs != targets).any(axis=1).mean() > 0.9


def test_every_token_value_appears_and_rows_differ():
    inputs, _ = sort_batch(np.random.default_rng(2), 500, 8, 10)
    assert set(np.unique(inputs)) == set(range(10))
    assert len({tuple(r) for r in inputs}) > 490


def test_seeded_generator_is_reproducible():
    a = sort_batch(np.random.default_rng(3), 4, 5, 8)
    b = sort_batch(np.random.default_rng(3), 4, 5, 8)
    c = sort_batch(np.random.default_rng(4), 4, 5, 8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize(
    ("rng", "sizes", "error", "match"),
    [
        (0, (4, 5, 8), TypeError, "numpy.random.Generator"),
        (np.random.default_rng(0), (0, 5, 8), ValueError, "batch_size"),
        (np.random.default_rng(0), (4, 0, 8), ValueError, "length"),
        (np.random.default_rng(0), (4, 5, 1), ValueError, "vocab"),
    ],
)
def test_bad_input_is_named(rng, sizes, error, match):
    with pytest.raises(error, match=match):
        sort_batch(rng, *sizes)
