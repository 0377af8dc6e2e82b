"""Lab 1, exercise 2: top-k accuracy with ties in the label's favour, in both frameworks.

``top_k_accuracy(logits (B, C), labels (B,), k) -> float``: the fraction of examples whose
label's class has fewer than ``k`` classes scoring strictly higher; ``k`` outside ``1..C``
raises ``ValueError``. Chapter 1 computes top-1 accuracy with ``argmax``; this counts, without a
sort, where the label's score ranks.

The check runs four batches (no ties at k = 3 and k = 1, where it must equal plain accuracy;
a batch whose ties at the k-th place a sort breaks against the label; k = C), then k = 0 and
k = C + 1. The reference and every known mistake are computed here in NumPy; an answer whose
value lies between "every tie against the label" and the rule is a tie broken by position
(``topk``, ``argsort``) and gets a hint of its own. ``torch.topk`` and ``jax.lax.top_k`` are
tools a student may use, not answer keys: they pick among tied scores by position, so the tie
batch fails them. Neither scikit-learn nor torchmetrics is installed, so nothing is refused.

On 7 examples two mistakes can give the same fraction on one batch; when the answer matches
several, the later batches decide (``_consistent``): the hint is that of a mistake that also
explains the answer there.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.labs.kit import Checker, CheckFailed, Framework, Hints, checking
from helpers.labs.lab01.checks import float_result

__all__ = ["HINTS", "check_top_k_accuracy", "top_k_mistakes"]

HINTS = Hints(
    {
        "topk_ties_against": "ties counted against the label: an example is right when "
        "fewer than k classes score strictly higher (>) than its label's class, so a class "
        "tied with the label's never pushes it out; >= (or a sort that puts the tied class "
        "first) counts the tie against it",
        "topk_ties": "a tie at the k-th place was broken by position: topk and argsort "
        "choose among equal scores by index, not in the label's favour; count, per row, the "
        "classes that score strictly higher than the label's class, and compare with k (no "
        "sort needed)",
        "topk_off_by_one": "k is off by one: an example is right when 0, 1, ..., or k - 1 "
        "classes score strictly higher than its label's class, that is count < k (not "
        "count <= k, nor count < k - 1)",
        "topk_one_short": "one class too many is counted above the label: >= also counts "
        "the label's own class (its score equals itself), and count < k - 1 or a score "
        "strictly above the k-th largest stops one place short; count the classes scoring "
        "strictly higher (>) and test count < k",
        "topk_gather": "take each row's own label score: row i, column labels[i] (the class "
        "axis, the last one); indexing the rows by the labels, or the flattened logits, "
        "reads other examples' scores",
        "topk_classes": "divide by the number of examples (logits.shape[0], len(labels)), "
        "not by the number of classes",
        "topk_labels_int": "labels are class indices: keep them integers as they are "
        "given (no conversion to float, no one-hot), and index the logits with them",
        "topk_rounded": "return the fraction as it is, unrounded: round only where you "
        "print it (f'{accuracy:.3f}')",
        "topk_bottom": "those are the k lowest scores: top-k means the k highest (count "
        "the classes that score higher than the label's, or sort in descending order)",
        "topk_argmax": "that is plain (top-1) accuracy: the label may be any of the k "
        "highest-scoring classes, not only the argmax; use k",
        "topk_per_class": "average over examples, not over classes: the result is the "
        "fraction of rows whose label is among their k highest scores (a per-class mean "
        "weights rare classes like frequent ones)",
        "topk_axis": "count the higher-scoring classes within each row (over the class "
        "axis, the last one), one count per example, then average over examples",
        "topk_count": "that is the number of examples whose label is in the top k: return "
        "the fraction, the mean over examples",
        "topk_int_division": "// is integer division: divide the number of hits by the "
        "number of examples with /, or take the mean of the hits as floats",
        "topk_vector": "average the per-example hits: the mean over examples gives one "
        "number, a Python float",
        "topk_percent": "that is a percentage: return the fraction, between 0 and 1",
        "topk_error_rate": "that is the top-k error (the fraction of examples whose label "
        "is not in the top k): return the fraction that is",
        "topk_ignores_k": "that is the top-k accuracy for another k: use the argument k, "
        "not a fixed number",
        "topk_k_valid": "every k from 1 to C (the number of classes) is valid, k = C "
        "included (every example counts): raise ValueError only when k < 1 or k > C",
        "topk_k_invalid": "check k first: if it is not between 1 and C (the number of "
        "classes, logits.shape[-1]), raise ValueError with a message that names the range, "
        "e.g. ValueError(f'k must be between 1 and {C}, got {k}')",
    }
)


def _counts(logits: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per example, how many classes score >, >=, < and <= the label's class."""
    own = logits[np.arange(len(labels)), labels][:, None]  # (B, 1)
    return {
        "gt": (logits > own).sum(1),
        "ge": (logits >= own).sum(1),
        "lt": (logits < own).sum(1),
        "le": (logits <= own).sum(1),
    }


def top_k_mistakes(
    logits: np.ndarray, labels: np.ndarray, k: int
) -> tuple[float, float, list[tuple[str, float]]]:
    """The right answer, the answer with every tie against the label, and (hint key, result)
    for each known mistake, on one batch."""
    n = _counts(logits, labels)
    hits = n["gt"] < k
    classes = logits.shape[1]

    def gathered(axis: int) -> np.ndarray:
        """The labels read along the wrong axis: column 0 of row labels[i] (a gather over
        the examples), or row 0's class labels[i] (a take from the flattened logits)."""
        return (logits[labels, 0] if axis == 0 else logits[0, labels])[:, None]

    own = logits[np.arange(len(labels)), labels][:, None]
    present = np.unique(labels)
    per_class = np.mean([hits[labels == c].mean() for c in present])
    mistakes = [
        # First: on a tie batch it can equal count < k - 1 (caught earlier, without ties).
        ("topk_ties_against", (n["ge"] <= k).mean()),
        ("topk_gather", ((logits > gathered(0)).sum(1) < k).mean()),
        ("topk_gather", ((logits > gathered(1)).sum(1) < k).mean()),
        ("topk_classes", hits.sum() / classes),
        # One-hot labels: each score against itself or 0, entry by entry.
        (
            "topk_labels_int",
            ((logits > logits * np.eye(classes)[labels]).sum(1) < k).mean(),
        ),
        ("topk_off_by_one", (n["gt"] <= k).mean()),
        ("topk_bottom", (n["lt"] < k).mean()),
        ("topk_bottom", (n["le"] <= k).mean()),
        ("topk_argmax", (logits.argmax(-1) == labels).mean()),
        ("topk_per_class", per_class),
        # (logits > own).sum(0): counted over examples, one count per class.
        ("topk_axis", ((logits > own).sum(0) < k).mean()),
        ("topk_axis", float((logits > own).sum() < k)),  # no axis: one count
        ("topk_axis", (logits > own).mean()),  # the mean of the (B, C) comparison
        ("topk_percent", 100 * hits.mean()),
        ("topk_error_rate", 1 - hits.mean()),
        ("topk_count", float(hits.sum())),
    ]
    if k > 1:  # count < 0 is 0 for every answer: no evidence of anything at k = 1
        # >= counts the label itself; > the k-th largest score; count < k - 1.
        mistakes.insert(1, ("topk_one_short", (n["gt"] < k - 1).mean()))
    # k ignored: the top-j accuracy for another j (not C, where every example counts).
    mistakes += [("topk_ignores_k", (n["gt"] < j).mean()) for j in range(1, classes)]
    right = float(hits.mean())
    mistakes += [("topk_rounded", round(right, d)) for d in (1, 2, 3, 4)]
    return right, float((n["ge"] <= k).mean()), mistakes


def _quiet(top_k_accuracy: Callable, fw: Framework, batch) -> float | None:
    """The answer on another batch as a float, or None if it raises or is no number."""
    logits, labels, k = batch
    try:
        return float(top_k_accuracy(fw.from_numpy(logits), fw.from_numpy(labels), k))
    except Exception:
        return None


def _consistent(keys: set[str], top_k_accuracy: Callable, fw: Framework, later) -> set:
    """The hint keys among ``keys`` that some known mistake of theirs also explains on every
    later batch: on 7 examples two mistakes can give the same fraction on one batch."""
    for batch in later:
        value = _quiet(top_k_accuracy, fw, batch)
        if value is None:
            continue
        _, _, mistakes = top_k_mistakes(*batch)
        known = {key for key, _ in mistakes}
        keys = {
            key
            for key in keys
            if key not in known  # no such mistake on this batch: no evidence
            or any(m == key and abs(value - wrong) < 1e-6 for m, wrong in mistakes)
        }
    return keys


def _case(
    c: Checker, top_k_accuracy: Callable, logits: np.ndarray, labels, k: int, later=()
) -> None:
    expected, against, mistakes = top_k_mistakes(logits, labels, k)
    b = len(labels)
    try:
        value = c.call(
            top_k_accuracy, c.fw.from_numpy(logits), c.fw.from_numpy(labels), k
        )
    except CheckFailed as failure:
        # A ValueError the framework explains (JAX's broadcasting) is no k check.
        if failure.hint or not failure.problem.startswith(
            "your code raised ValueError"
        ):
            raise
        raise c.fail(
            f"with k = {k} and C = {logits.shape[1]} classes {failure.problem}",
            c.hint("topk_k_valid"),
        ) from None
    if isinstance(value, int) and not isinstance(value, bool):
        key = "topk_count" if value == round(expected * b) else "topk_int_division"
        raise c.fail(
            f"the result is {value} (an int), expected {expected:.6g}", c.hint(key)
        )
    value = float_result(c, value, "the top-k accuracy", many="topk_vector")
    hint = (
        "an example is right when fewer than k classes score strictly higher than its "
    )
    hint += "label's class; return the fraction of such examples"
    hits = value * b
    # Between "every tie against the label" and the rule, a whole number of hits: a sort.
    if against - 1e-9 <= value < expected - 1e-9 and abs(hits - round(hits)) < 1e-4:
        hint = c.hint("topk_ties")
    matching = {key for key, wrong in mistakes if abs(value - wrong) < 1e-6}
    if len(matching) > 1 and abs(value - expected) > 1e-6:  # which one? ask the others
        keep = _consistent(matching, top_k_accuracy, c.fw, later)
        mistakes = sorted(mistakes, key=lambda m: m[0] not in keep)  # stable
    c.close(
        value,
        expected,
        what=f"the top-{k} accuracy",
        rtol=1e-6,
        atol=1e-6,
        hint=hint,
        mistakes=[(c.hint(key), wrong) for key, wrong in mistakes],
    )


def _invalid_k(c: Checker, top_k_accuracy: Callable, logits, labels, k: int) -> None:
    classes = logits.shape[1]
    where = f"with k = {k} and C = {classes} classes"
    try:
        value = top_k_accuracy(c.fw.from_numpy(logits), c.fw.from_numpy(labels), k)
    except ValueError as e:
        c.expect(
            bool(str(e).strip()),
            f"{where} your function raised ValueError without a message",
            c.hint("topk_k_invalid"),
        )
        return
    except Exception as e:
        raise c.fail(
            f"{where} your function raised {type(e).__name__}, expected ValueError",
            c.hint("topk_k_invalid"),
        ) from None
    raise c.fail(
        f"{where} your function returned {value!r}, expected it to raise ValueError",
        c.hint("topk_k_invalid"),
    )


def _batches() -> list[tuple[np.ndarray, np.ndarray, int]]:
    rng = np.random.default_rng(2)
    # 7 examples, 5 classes, distinct scores; the label's rank (classes above it) per row:
    # 0, 1, 1, 2, 2, 3, 4. Top-3: 5/7, top-2: 3/7, top-4: 6/7, argmax: 1/7, bottom-3: 4/7,
    # top-3 error: 2/7 (all different).
    ranks = np.array([0, 1, 1, 2, 2, 3, 4])
    plain = np.stack([rng.permutation(5) for _ in ranks]).astype(np.float32) - 1.5
    labels = np.argsort(-plain, axis=1)[np.arange(len(ranks)), ranks]
    # 7 examples, 6 classes: five rows tie five classes just below the top one, each with
    # another tied class as its label: all right at k = 2 (one class above), while a sort
    # keeps the same tied class for all five rows. Row 5's label is the top class; row 6's
    # has two classes above it (wrong at k = 2).
    tied = np.tile(np.array([1.0, 4.0, 1.0, 1.0, 1.0, 1.0], np.float32), (7, 1))
    tied[6] = [0.5, 3.0, 2.0, -1.0, 1.0, 0.0]
    tie_labels = np.array([0, 2, 3, 4, 5, 1, 4])
    return [
        (plain, labels, 3),
        (plain, labels, 1),  # no ties: plain accuracy
        (tied, tie_labels, 2),
        (plain, labels, 5),  # k = C: every example
    ]


def check_top_k_accuracy(top_k_accuracy: Callable, fw: Framework) -> None:
    """Exercise 2: ``top_k_accuracy(logits, labels, k) -> float`` on four batches, then two
    k outside 1..C that must raise ``ValueError``."""
    batches = _batches()
    with checking(
        "top_k_accuracy",
        fw,
        passed="4 batches with ties, k = 1 and C; ValueError at k = 0 and C + 1",
    ) as c:
        for i, (logits, labels, k) in enumerate(batches):
            _case(c, top_k_accuracy, logits, labels, k, batches[i + 1 :])
        logits, labels, _ = batches[0]
        for k in (0, logits.shape[1] + 1):
            _invalid_k(c, top_k_accuracy, logits, labels, k)
