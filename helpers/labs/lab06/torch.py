"""Lab 6 self-checks for PyTorch notebooks: ``H.lab06.check_length_mask(length_mask)`` etc.

The checks are :mod:`helpers.labs.lab06.checks` and, for exercise 5, :mod:`~.reverse`, shared
with JAX; this module only says how tensors go in and come out, and how PyTorch words an
out-of-range index.
``tests/labs/test_lab06.py`` asserts that the numpy answers equal ``H.text``'s ``masked_mean``
and ``last_true_state`` and :mod:`helpers.data.text`'s vocabulary on the same cases.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from helpers.labs.kit import Hints, explainer
from helpers.labs.lab06 import checks as lab06
from helpers.labs.lab06 import reverse
from helpers.torch.labkit import lab_framework

__all__ = [
    "check_encode_splits",
    "check_last_true_output",
    "check_length_mask",
    "check_masked_mean",
    "check_reverse_padded",
]

# PyTorch words several shared hints its own way (pad_sequence's) and adds two mistakes JAX
# cannot make: a write
# into an input tensor, and a gather whose index was not expanded over the features. An index
# past the end raises, naming the axis: dimension 0 is the batch (outputs[lengths - 1]),
# dimension 1 the steps (lengths, not - 1).
HINTS = Hints(
    lab06.HINTS,
    {
        "in_place": "your function changed a tensor it was given (x[~mask] = 0, x *= m, "
        "lengths -= 1, or a method ending in _ such as mul_ or clamp_): the caller's batch "
        "would change under it; compute new tensors (masked_fill, x * m, lengths - 1)",
        "fill_polarity": "masked_fill(mask, 0) fills where the mask is True, the real "
        "tokens: zero the padding instead, x.masked_fill(~mask[..., None], 0), then sum",
        "index_dtype": "an index tensor must hold integers: use lengths - 1 as it is (an "
        "int tensor), or (lengths - 1).long(), not a float tensor",
        "gather_index": "torch.gather does not broadcast its index: it returns the index's "
        "shape, so an index (B, 1, 1) reads feature 0 only; expand it over the features, "
        "(lengths - 1).view(-1, 1, 1).expand(-1, 1, H), then squeeze(1)",
        "list_result": "a Python list is not a tensor: compute the whole batch with tensor "
        "operations, or turn the rows you built into one tensor, torch.tensor(rows) for "
        "numbers, torch.stack(rows) for tensors",
        "ids_numpy": "convert the numpy ids to a tensor before returning them: "
        "torch.from_numpy(ids)",
        "reverse_numpy": "return a tensor, not a numpy array: build the index with "
        "torch.arange and gather with it (x.gather(1, index), the index expanded over the "
        "features), or torch.from_numpy(result)",
        "reverse_index_axes": "x.gather(1, index) needs an index with as many axes as x: "
        "give the (B, T) index x.ndim - 2 trailing axes and expand it, "
        "index.view(*index.shape, *[1] * (x.ndim - 2)).expand(x.shape), which also works "
        "for (B, T) token ids (index[..., None] would not)",
        "reverse_no_feature_axis": "the check also runs a (B, T) batch of token ids, with "
        "no feature axis: x.shape[2] does not exist there, and index[..., None] has one "
        "axis too many; index.view(*index.shape, *[1] * (x.ndim - 2)).expand(x.shape) fits "
        "any x, and so does x[torch.arange(B)[:, None], index]",
        "ids_transposed": "your ids are (max_len, N), one column per review: "
        "pad_sequence(rows) puts the steps first unless batch_first=True; return one row per "
        "review, (N, max_len)",
        "pad_longest": "your rows stop at the longest review of the split, not at max_len "
        "(pad_sequence pads only that far): pad every row with 0 up to max_len, e.g. fill "
        "torch.zeros(N, max_len, dtype=torch.long) row by row",
        "reverse_negative_step": "a tensor takes no negative step (x[b, L - 1::-1] raises): "
        "reverse a row's first L steps with x[b, :L].flip(0)",
        "reverse_dtype": "keep the dtype of x (float32 here, int64 for ids): gather or "
        "index without .double(), .float() or a torch.tensor(...) of float64 numpy",
    },
)

_ERRORS = {
    r"index -?\d+ is out of bounds for dimension 0": "batch_axis",
    r"index -?\d+ is out of bounds": "off_by_one_index",
    r"tensors used as indices must be long": "index_dtype",
}
TORCH = lab_framework(HINTS, explainer(_ERRORS, HINTS))
# Exercise 5's errors: an index without the feature axis, lengths (B,) against arange(T),
# a negative slice step.
REVERSE = replace(
    TORCH,
    explain=explainer(
        {
            **_ERRORS,
            r"Index tensor must have the same number of dimensions": "reverse_index_axes",
            r"The size of tensor a \(\d+\) must match the size of tensor b": (
                "reverse_broadcast"
            ),
            r"step must be greater than zero": "reverse_negative_step",
            # (B, T) ids: x.shape[2], or index[..., None].expand(x.shape)
            r"tuple index out of range|must be greater or equal to the number of "
            r"dimensions": "reverse_no_feature_axis",
        },
        HINTS,
    ),
)

check_length_mask = partial(lab06.check_length_mask, fw=TORCH)
check_masked_mean = partial(lab06.check_masked_mean, fw=TORCH)
check_last_true_output = partial(lab06.check_last_true_output, fw=TORCH)
check_encode_splits = partial(lab06.check_encode_splits, fw=TORCH)
check_reverse_padded = partial(reverse.check_reverse_padded, fw=REVERSE)
