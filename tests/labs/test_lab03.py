"""Lab 3's typical mistakes: each one fails its check with the hint written for it.

``MISTAKES`` lists, per framework, (exercise, a wrong solution, the key of the hint it must
get): the mistakes the lab exists for (labels shuffled apart from images, gradients
accumulated, evaluation in training mode or with autograd on, accuracy averaged over batches
of unequal size, a "best" snapshot that is the live state, micro-batches weighted alike) and
the usual slips around them. Every hint the lab declares must be
produced by at least one entry.
"""

from __future__ import annotations

import copy
import io
import math
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from flax import nnx
from labtools import exercise_functions, mistake_table_tests, source
from torch.utils.data import DataLoader

from helpers import jax as hj
from helpers import torch as ht
from helpers.data import load_mnist
from helpers.labs import CheckFailed

LAB = "lab03"
T = exercise_functions(source(LAB, "pytorch"))
J = exercise_functions(source(LAB, "jax"))


# --- shared shapes of the wrong datasets -----------------------------------------------------
def dataset_variant(base, *, length=None, item=None, init=None):
    """A subclass of the solution's DigitDataset with one method replaced."""
    methods = {}
    if length is not None:
        methods["__len__"] = length
    if item is not None:
        methods["__getitem__"] = item
    if init is not None:
        methods["__init__"] = init
    return type("WrongDataset", (base,), methods)


def _shuffled_labels_init(base):
    def __init__(self, images, labels, transform):
        base.__init__(self, images, labels, transform)
        perm = np.random.default_rng(0).permutation(len(labels))
        self.labels = labels[perm]  # shuffled apart from the images

    return __init__


def _shuffled_images_init(base):
    def __init__(self, images, labels, transform):
        perm = np.random.default_rng(0).permutation(len(labels))
        base.__init__(self, images[perm], labels, transform)

    return __init__


def dataset_mistakes(ns, to_array):
    base = ns["DigitDataset"]
    return [
        (
            "DigitDataset",
            dataset_variant(base, length=lambda self: self.images.size),
            "dataset_len",
        ),
        (
            "DigitDataset",
            dataset_variant(
                base,
                item=lambda self, i: (
                    int(self.labels[i]),
                    self.transform(self.images[i]),
                ),
            ),
            "dataset_item",
        ),
        (
            "DigitDataset",
            dataset_variant(
                base,
                item=lambda self, i: (to_array(self.images[i]), int(self.labels[i])),
            ),
            "transform_missing",
        ),
        (
            "DigitDataset",
            dataset_variant(
                base,
                item=lambda self, i: (
                    np.asarray(self.transform(self.images[i])),
                    int(self.labels[i]),
                ),
            ),
            "image_type",
        ),
        (
            "DigitDataset",
            dataset_variant(base, init=_shuffled_labels_init(base)),
            "labels_shuffled",
        ),
        (
            "DigitDataset",
            dataset_variant(base, init=_shuffled_images_init(base)),
            "labels_shuffled",
        ),
        (
            "DigitDataset",
            dataset_variant(base, length=lambda self: None),  # `return` forgotten
            "dataset_len",
        ),
        (
            "DigitDataset",
            dataset_variant(
                base,
                item=lambda self, i: (self.transform(self.images[i]), self.labels[i]),
            ),
            "label_int",  # a NumPy uint8, not a Python int
        ),
        (
            "DigitDataset",
            dataset_variant(
                base,
                item=lambda self, i: (
                    self.transform(self.images[i]),
                    to_array(np.asarray(self.labels[i])),
                ),
            ),
            "label_int",  # a 0-d tensor or array
        ),
    ]


# --- PyTorch ---------------------------------------------------------------------------------
def _t_step(
    zero_grad=True,
    step=True,
    loss_after=False,
    summed=False,
    item=False,
    attached=False,
    one=False,
):
    def train_step(model, optimizer, x, y):
        if zero_grad:
            optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y, reduction="sum" if summed else "mean")
        loss.backward()
        if step:
            optimizer.step()
        if loss_after:
            with torch.no_grad():
                loss = F.cross_entropy(model(x), y)
        if attached:  # the loss with its graph, not loss.detach()
            return loss
        if one:  # shape (1,), not a 0-d tensor
            return loss.detach().reshape(1)
        return loss.item() if item else loss.detach()

    return train_step


def _predicted(logits, predict):
    """The predictions a (possibly wrong) evaluation compares with the labels."""
    if predict == "axis0":  # one value per class, not one per example
        return logits.argmax(0)
    if predict == "max":  # the largest logit, not its index
        return (
            logits.max(-1).values
            if isinstance(logits, torch.Tensor)
            else logits.max(-1)
        )
    return logits.argmax(-1)


def _t_eval(
    eval_mode=True,
    no_grad=True,
    per_batch=False,
    count=False,
    percent=False,
    array=False,
    predict="argmax",
    full_batches=False,
    last_only=False,
):
    def evaluate_accuracy(model, loader):
        if eval_mode:
            model.eval()
        torch.set_grad_enabled(not no_grad)
        try:
            accs, correct, n = [], 0, 0
            for x, y in loader:
                right = (_predicted(model(x), predict) == y).sum().item()
                accs.append(right / len(y))
                correct, n = correct + right, n + len(y)
                if last_only:  # the counters reset in every batch
                    correct, n = right, len(y)
        finally:
            torch.set_grad_enabled(True)
        if full_batches:  # n_batches * batch_size: the last batch is smaller
            return correct / (len(accs) * len(next(iter(loader))[1]))
        if per_batch:
            return float(np.mean(accs))
        if percent:
            return 100 * correct / n
        if array:
            return torch.tensor(correct / n)
        return float(correct) if count else correct / n

    return evaluate_accuracy


TORCH_MISTAKES = [
    *dataset_mistakes(T, torch.from_numpy),
    ("train_step", _t_step(zero_grad=False), "grad_accumulated"),
    ("train_step", _t_step(step=False), "no_update"),
    ("train_step", _t_step(loss_after=True), "loss_value"),
    ("train_step", _t_step(summed=True), "wrong_update"),
    ("train_step", _t_step(item=True), "loss_number"),
    ("train_step", _t_step(attached=True), "loss_detach"),
    ("train_step", _t_step(one=True), "loss_shape"),
    ("evaluate_accuracy", _t_eval(eval_mode=False), "eval_missing"),
    ("evaluate_accuracy", _t_eval(predict="axis0"), "argmax_axis"),
    ("evaluate_accuracy", _t_eval(predict="max"), "max_not_argmax"),
    ("evaluate_accuracy", _t_eval(full_batches=True), "accuracy_denominator"),
    ("evaluate_accuracy", _t_eval(last_only=True), "last_batch_only"),
    ("evaluate_accuracy", _t_eval(no_grad=False), "no_grad_missing"),
    ("evaluate_accuracy", _t_eval(per_batch=True), "batch_mean"),
    ("evaluate_accuracy", _t_eval(count=True), "accuracy_count"),
    ("evaluate_accuracy", _t_eval(percent=True), "accuracy_percent"),
    ("evaluate_accuracy", _t_eval(array=True), "accuracy_array"),
]


def _t_accum(weight="size", zero="once", step="once", drop_last=False, whole=False,
             loss_ret="right", empty=False, one_backward=False, rows_left=0,
             no_graph=False):  # fmt: skip
    """Exercise 5 with one mistake: each option names what the right answer does."""

    def train_step_accumulated(model, optimizer, x, y, micro_batch_size):
        m = len(x) if whole else micro_batch_size
        if zero == "once_more":  # then a step on the zeroed gradients
            optimizer.zero_grad()
        if step == "first":  # on the stale gradients, before any backward
            optimizer.step()
        if zero == "once":
            optimizer.zero_grad()
        stop = len(x) - m + 1 if drop_last else len(x) - rows_left
        losses, sizes, pending, weighted = [], [], 0, 0
        for i in range(0, stop, m):
            xb, yb = (x[i:m], y[i:m]) if empty else (x[i : i + m], y[i : i + m])
            if zero == "inside":
                optimizer.zero_grad()
            w = {"size": len(xb) / len(x), "none": 1.0, "count": 1 / -(-len(x) // m),
                 "fixed": m / len(x), "micro": len(xb) / m, "rows": float(len(xb)),
                 "intdiv": len(xb) // len(x), "mean_n": 1 / len(x),
                 "sq": (len(xb) / len(x)) ** 2}[weight]  # fmt: skip
            with torch.set_grad_enabled(not no_graph):
                loss = F.cross_entropy(model(xb), yb)
            weighted = weighted + loss.detach() * w
            if one_backward:  # one backward, after the loop, on the summed graphs
                pending = pending + loss * w
                if i + m >= stop:
                    pending.backward()
            else:
                (loss * w).backward()
            if step == "each":
                optimizer.step()
            losses.append(loss.detach())
            sizes.append(len(xb))
        if zero == "after":
            optimizer.zero_grad()
        if step == "once":
            optimizer.step()
        total = sum(v * (s / len(x)) for v, s in zip(losses, sizes, strict=True))
        if loss_ret == "last":
            return losses[-1]
        if loss_ret == "unweighted":
            return torch.stack(losses).mean()
        if loss_ret == "sum":
            return torch.stack(losses).sum()
        if loss_ret == "item":
            return total.item()
        if loss_ret == "attached":
            return total.requires_grad_()
        if loss_ret == "one":
            return total.reshape(1)
        if loss_ret == "float64":
            return total.double()
        if loss_ret == "weighted":  # the total of the weighted losses
            return weighted
        if loss_ret == "after":
            with torch.no_grad():
                return sum(
                    F.cross_entropy(model(x[i : i + m]), y[i : i + m])
                    * len(y[i : i + m])
                    for i in range(0, len(x), m)
                ) / len(x)
        return total

    return train_step_accumulated


TORCH_ACCUM_MISTAKES = [
    ("train_step_accumulated", _t_accum(weight="none"), "accum_sum"),
    ("train_step_accumulated", _t_accum(weight="count"), "accum_mean_of_means"),
    ("train_step_accumulated", _t_accum(weight="fixed"), "accum_fixed_weight"),
    ("train_step_accumulated", _t_accum(weight="micro"), "accum_micro_norm"),
    ("train_step_accumulated", _t_accum(weight="mean_n"), "accum_mean_over_n"),
    (
        "train_step_accumulated",
        _t_accum(weight="intdiv", loss_ret="weighted"),
        "accum_zero_weight",
    ),
    ("train_step_accumulated", _t_accum(weight="sq"), "accum_wrong_update"),
    ("train_step_accumulated", _t_accum(rows_left=1), "accum_missed_rows"),
    ("train_step_accumulated", _t_accum(step="first"), "accum_step_first"),
    (
        "train_step_accumulated",
        _t_accum(step="first", zero="once_more"),
        "accum_zero_update",
    ),
    ("train_step_accumulated", _t_accum(no_graph=True), "accum_no_graph"),
    ("train_step_accumulated", _t_accum(zero="inside"), "accum_last_only"),
    ("train_step_accumulated", _t_accum(zero="never"), "accum_no_zero_grad"),
    ("train_step_accumulated", _t_accum(zero="after"), "accum_zero_update"),
    ("train_step_accumulated", _t_accum(step="each"), "accum_step_each"),
    ("train_step_accumulated", _t_accum(step="never"), "accum_no_step"),
    ("train_step_accumulated", _t_accum(drop_last=True), "accum_drop_last"),
    ("train_step_accumulated", _t_accum(whole=True), "accum_whole_batch"),
    ("train_step_accumulated", _t_accum(loss_ret="last"), "accum_loss_last"),
    (
        "train_step_accumulated",
        _t_accum(loss_ret="unweighted"),
        "accum_loss_unweighted",
    ),
    ("train_step_accumulated", _t_accum(loss_ret="sum"), "accum_loss_sum"),
    ("train_step_accumulated", _t_accum(loss_ret="item"), "accum_loss_number"),
    ("train_step_accumulated", _t_accum(loss_ret="attached"), "accum_loss_graph"),
    ("train_step_accumulated", _t_accum(loss_ret="one"), "accum_loss_shape"),
    ("train_step_accumulated", _t_accum(loss_ret="float64"), "accum_loss_dtype"),
    ("train_step_accumulated", _t_accum(loss_ret="after"), "accum_loss_value"),
    ("train_step_accumulated", _t_accum(weight="rows"), "accum_reduction_sum"),
    ("train_step_accumulated", _t_accum(empty=True), "accum_empty"),
    ("train_step_accumulated", _t_accum(one_backward=True), "accum_one_backward"),
]


# --- JAX -------------------------------------------------------------------------------------
def _j_loss(model, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


def _j_step(
    accumulate=False,
    update=True,
    loss_after=False,
    summed=False,
    item=False,
    one=False,
    one_hot_loss=False,
):
    running = {}

    def train_step(model, optimizer, x, y):
        if one_hot_loss:  # integer labels given to the one-hot loss

            def loss_fn(model):
                return optax.softmax_cross_entropy(model(x), y).mean()

            loss, grads = nnx.value_and_grad(loss_fn)(model)
        else:
            loss, grads = nnx.value_and_grad(_j_loss)(model, x, y)
        if summed:  # the gradient of the summed loss: len(y) times the mean's
            grads = jax.tree.map(lambda g: g * len(y), grads)
        if accumulate:  # a running sum of gradients, kept across calls
            key = id(optimizer)
            if key in running:
                grads = jax.tree.map(jnp.add, running[key], grads)
            running[key] = grads
        if update:
            optimizer.update(model, grads)
        if loss_after:
            loss = _j_loss(model, x, y)
        if one:  # shape (1,), not a 0-d array
            return loss.reshape(1)
        return float(loss) if item else loss

    return train_step


def _j_correct_step(model, optimizer, x, y):
    loss, grads = nnx.value_and_grad(_j_loss)(model, x, y)
    optimizer.update(model, grads)
    return loss


def _j_eval(
    eval_mode=True,
    per_batch=False,
    count=False,
    percent=False,
    array=False,
    predict="argmax",
    full_batches=False,
    last_only=False,
):
    def evaluate_accuracy(model, loader):
        if eval_mode:
            model.eval()
        accs, correct, n = [], 0, 0
        for x, y in loader:
            right = int((_predicted(model(x), predict) == y).sum())
            accs.append(right / len(y))
            correct, n = correct + right, n + len(y)
            if last_only:  # the counters reset in every batch
                correct, n = right, len(y)
        if full_batches:  # n_batches * batch_size: the last batch is smaller
            return correct / (len(accs) * len(loader[0][1]))
        if per_batch:
            return float(np.mean(accs))
        if percent:
            return 100 * correct / n
        if array:
            return jnp.asarray(correct / n)
        return float(correct) if count else correct / n

    return evaluate_accuracy


JAX_MISTAKES = [
    *dataset_mistakes(J, jnp.asarray),
    ("train_step", _j_step(accumulate=True), "grad_accumulated"),
    ("train_step", _j_step(update=False), "no_update"),
    ("train_step", _j_step(loss_after=True), "loss_value"),
    ("train_step", _j_step(summed=True), "wrong_update"),
    ("train_step", _j_step(item=True), "loss_number"),
    ("train_step", nnx.jit(_j_step(item=True)), "loss_number_jit"),
    ("train_step", jax.jit(_j_correct_step), "jax_jit"),
    ("train_step", _j_step(one_hot_loss=True), "integer_labels"),
    ("train_step", _j_step(one=True), "loss_shape"),
    ("evaluate_accuracy", _j_eval(eval_mode=False), "eval_missing"),
    ("evaluate_accuracy", _j_eval(predict="axis0"), "argmax_axis"),
    ("evaluate_accuracy", _j_eval(predict="max"), "max_not_argmax"),
    ("evaluate_accuracy", _j_eval(full_batches=True), "accuracy_denominator"),
    ("evaluate_accuracy", _j_eval(last_only=True), "last_batch_only"),
    ("evaluate_accuracy", _j_eval(per_batch=True), "batch_mean"),
    ("evaluate_accuracy", _j_eval(count=True), "accuracy_count"),
    ("evaluate_accuracy", _j_eval(percent=True), "accuracy_percent"),
    ("evaluate_accuracy", _j_eval(array=True), "accuracy_array"),
]


def _j_accum(weight="size", total_op="add", update="once", drop_last=False, whole=False,
             loss_ret="right", multisteps=False, empty=False, one_grad=False,
             rows_left=0):  # fmt: skip
    """Exercise 5 with one mistake: each option names what the right answer does."""

    def train_step_accumulated(model, optimizer, x, y, micro_batch_size):
        if multisteps:  # the library's accumulation, around the given optimizer's rule
            optax.MultiSteps(optimizer.tx, every_k_schedule=1)
        m = len(x) if whole else micro_batch_size
        stop = len(x) - m + 1 if drop_last else len(x) - rows_left
        losses, sizes, total, weighted = [], [], None, 0
        for i in range(0, stop, m):
            xb, yb = (x[i:m], y[i:m]) if empty else (x[i : i + m], y[i : i + m])
            w = {"size": len(xb) / len(x), "none": 1.0, "count": 1 / -(-len(x) // m),
                 "fixed": m / len(x), "micro": len(xb) / m, "rows": float(len(xb)),
                 "intdiv": len(xb) // len(x), "mean_n": 1 / len(x),
                 "sq": (len(xb) / len(x)) ** 2}[weight]  # fmt: skip
            loss, grads = nnx.value_and_grad(_j_loss)(model, xb, yb)
            weighted = weighted + loss * w
            grads = jax.tree.map(lambda g, w=w: w * g, grads)
            if total is None:
                total = (
                    jax.tree.map(jnp.zeros_like, grads)
                    if total_op == "unassigned"
                    else grads
                )
            elif total_op == "add":
                total = jax.tree.map(jnp.add, total, grads)
            elif total_op == "replace":
                total = grads
            else:  # the result of jax.tree.map dropped
                jax.tree.map(jnp.add, total, grads)
            if update == "each":
                optimizer.update(model, grads)
            losses.append(loss)
            sizes.append(len(xb))
        if one_grad:  # one differentiation of a loop over all the micro-batches
            total = nnx.grad(
                lambda model: (
                    sum(
                        _j_loss(model, x[i : i + m], y[i : i + m]) * len(y[i : i + m])
                        for i in range(0, len(x), m)
                    )
                    / len(x)
                )
            )(model)
        if update == "once":
            optimizer.update(model, total)
        total_loss = sum(v * (s / len(x)) for v, s in zip(losses, sizes, strict=True))
        if loss_ret == "last":
            return losses[-1]
        if loss_ret == "unweighted":
            return jnp.stack(losses).mean()
        if loss_ret == "sum":
            return jnp.stack(losses).sum()
        if loss_ret == "item":
            return float(total_loss)
        if loss_ret == "one":
            return total_loss.reshape(1)
        if loss_ret == "weighted":  # the total of the weighted losses
            return weighted
        if loss_ret == "bfloat16":
            return total_loss.astype(jnp.bfloat16)
        if loss_ret == "after":
            return sum(_j_loss(model, x[i : i + m], y[i : i + m]) * len(y[i : i + m])
                       for i in range(0, len(x), m)) / len(x)  # fmt: skip
        return total_loss

    return train_step_accumulated


JAX_ACCUM_MISTAKES = [
    ("train_step_accumulated", _j_accum(weight="none"), "accum_sum"),
    ("train_step_accumulated", _j_accum(weight="count"), "accum_mean_of_means"),
    ("train_step_accumulated", _j_accum(weight="fixed"), "accum_fixed_weight"),
    ("train_step_accumulated", _j_accum(weight="micro"), "accum_micro_norm"),
    ("train_step_accumulated", _j_accum(weight="mean_n"), "accum_mean_over_n"),
    (
        "train_step_accumulated",
        _j_accum(weight="intdiv", loss_ret="weighted"),
        "accum_zero_weight",
    ),
    ("train_step_accumulated", _j_accum(weight="sq"), "accum_wrong_update"),
    ("train_step_accumulated", _j_accum(rows_left=1), "accum_missed_rows"),
    ("train_step_accumulated", _j_accum(total_op="replace"), "accum_last_only"),
    ("train_step_accumulated", _j_accum(total_op="unassigned"), "accum_zero_update"),
    ("train_step_accumulated", _j_accum(update="each"), "accum_step_each"),
    ("train_step_accumulated", _j_accum(update="never"), "accum_no_step"),
    ("train_step_accumulated", _j_accum(drop_last=True), "accum_drop_last"),
    ("train_step_accumulated", _j_accum(whole=True), "accum_whole_batch"),
    ("train_step_accumulated", _j_accum(multisteps=True), "accum_answer_key"),
    ("train_step_accumulated", _j_accum(loss_ret="last"), "accum_loss_last"),
    (
        "train_step_accumulated",
        _j_accum(loss_ret="unweighted"),
        "accum_loss_unweighted",
    ),
    ("train_step_accumulated", _j_accum(loss_ret="sum"), "accum_loss_sum"),
    ("train_step_accumulated", _j_accum(loss_ret="item"), "accum_loss_number"),
    ("train_step_accumulated", _j_accum(loss_ret="one"), "accum_loss_shape"),
    ("train_step_accumulated", _j_accum(loss_ret="after"), "accum_loss_value"),
    ("train_step_accumulated", _j_accum(weight="rows"), "accum_reduction_sum"),
    ("train_step_accumulated", _j_accum(empty=True), "accum_empty"),
    ("train_step_accumulated", _j_accum(one_grad=True), "accum_one_backward"),
    ("train_step_accumulated", _j_accum(loss_ret="bfloat16"), "accum_loss_dtype"),
    ("train_step_accumulated", nnx.jit(_j_accum()), "accum_static"),
]


# --- Exercise 4: early stopping, both frameworks ---------------------------------------------
def _es(snap, load, *, strict=True, delta=1.0, nan=False, reset=True, offset=0,
        start=math.inf, first=False, every=False, ret=bool, no_attr=False):  # fmt: skip
    """An EarlyStopping with one mistake: ``snap(model)`` takes the snapshot and
    ``load(self, model)`` restores it; each option names what the right answer does."""

    epoch_name = "best_ep" if no_attr else "best_epoch"

    class EarlyStopping:
        def __init__(self, patience, min_delta=0.0):
            self.patience, self.min_delta = patience, min_delta
            self.best_loss, self.epoch, self.wait, self.snapshot = start, 0, 0, None
            setattr(self, epoch_name, -1)

        def step(self, val_loss, model):
            bound = self.best_loss - delta * self.min_delta
            if strict:
                improved = not val_loss >= bound if nan else val_loss < bound
            else:
                improved = val_loss <= bound
            if first and self.epoch == 0:  # the first loss recorded, without a snapshot
                self.best_loss = val_loss
            elif improved:
                self.best_loss = val_loss
                setattr(self, epoch_name, self.epoch)
                self.wait = 0 if reset else self.wait
                self.snapshot = snap(model)
            else:
                self.wait += 1
            if every:
                self.snapshot = snap(model)
            self.epoch += 1
            return ret(self.wait >= self.patience + offset)

        def restore(self, model):
            load(self, model)

    return EarlyStopping


def _t_load(self, model):
    model.load_state_dict(self.snapshot)


def _t_load_module(self, model):
    model.load_state_dict(self.snapshot.state_dict())


def _rebind(self, model):
    model = self.snapshot  # noqa: F841 (the mistake: a local name)


def _t_copy(model):
    return copy.deepcopy(model.state_dict())


def _es_rows(es, alias, params_only, kept, rebind, twice):
    """Rows shared by both frameworks; ``es(**options)`` builds a class with right snapshots."""
    return [
        ("EarlyStopping", es(strict=False), "es_tie"),
        ("EarlyStopping", es(delta=0.0), "es_min_delta_ignored"),
        ("EarlyStopping", es(delta=-1.0), "es_min_delta_sign"),
        ("EarlyStopping", es(nan=True), "es_nan"),
        ("EarlyStopping", es(reset=False), "es_no_reset"),
        ("EarlyStopping", es(offset=-1), "es_stops_early"),
        ("EarlyStopping", es(offset=1), "es_stops_late"),
        ("EarlyStopping", es(start=0.0), "es_best_zero"),
        ("EarlyStopping", es(start=None), "es_best_init"),
        ("EarlyStopping", es(first=True), "es_first_epoch"),
        ("EarlyStopping", es(every=True), "es_every_epoch"),
        ("EarlyStopping", es(ret=lambda stop: None), "es_not_bool"),
        ("EarlyStopping", es(ret=int), "es_not_bool"),
        ("EarlyStopping", es(no_attr=True), "es_attributes"),
        ("EarlyStopping", alias, "es_alias"),
        ("EarlyStopping", params_only, "es_buffers_lost"),
        ("EarlyStopping", kept, "es_model_kept"),
        ("EarlyStopping", rebind, "es_rebind"),
        ("EarlyStopping", twice, "es_restore_twice"),
    ]


def _es_counting(es, snap, rule):
    """es()'s class with step's rule replaced: rule(self, val_loss) -> (improved, stop)."""

    class EarlyStopping(es()):
        last = math.inf

        def step(self, val_loss, model):
            improved, stop = rule(self, val_loss)
            if improved:
                self.best_loss, self.best_epoch = (
                    min(self.best_loss, val_loss),
                    self.epoch,
                )
                self.wait, self.snapshot = 0, snap(model)
            else:
                self.wait += 1
            self.last, self.epoch = val_loss, self.epoch + 1
            return stop(self) if callable(stop) else stop

    return EarlyStopping


def _es_more_rows(es, snap, load, opaque, zero):
    """Rows for mistakes outside simulate's options; ``opaque(model)``: a snapshot the check
    cannot read (bytes), for a restore that does nothing; ``zero(model)`` zeroes the
    parameters."""

    def rule(improve, stop=lambda self: self.wait >= self.patience):
        return lambda self, loss: (improve(self, loss), stop)

    right = rule(lambda self, loss: loss < self.best_loss - self.min_delta)

    class OneBased(es()):  # the epoch recorded after the count moved on
        def step(self, val_loss, model):
            stop = super().step(val_loss, model)
            if self.wait == 0:
                self.best_epoch = self.epoch
            return stop

    class Rounded(es()):  # best_loss kept as a float32, not the float given
        def step(self, val_loss, model):
            stop = super().step(val_loss, model)
            if self.wait == 0:
                self.best_loss = float(np.float32(val_loss))
            return stop

    class Late(es()):  # the snapshot taken at the call after the improvement
        pending = False

        def step(self, val_loss, model):
            if self.pending:
                self.snapshot, self.pending = snap(model), False
            stop = super().step(val_loss, model)
            self.pending = self.pending or self.wait == 0
            return stop

    class Never(es()):
        def step(self, val_loss, model):
            super().step(val_loss, model)
            return False

    def zeroed(self, model):  # restores, then writes something else
        load(self, model)
        zero(model)

    return [
        ("EarlyStopping", OneBased, "es_best_epoch"),
        ("EarlyStopping", Rounded, "es_best_loss"),
        ("EarlyStopping", Late, "es_wrong_epoch"),
        ("EarlyStopping", Never, "es_wrong_stop"),
        (
            "EarlyStopping",
            _es_counting(
                es,
                snap,
                rule(lambda self, loss: loss < self.last - self.min_delta),
            ),
            "es_previous",
        ),
        (
            "EarlyStopping",
            _es_counting(
                es,
                snap,
                rule(lambda self, loss: loss < self.best_loss * (1 - self.min_delta)),
            ),
            "es_min_delta_relative",
        ),
        (
            "EarlyStopping",
            _es_counting(es, snap, (lambda self, loss: (right(self, loss)[0], None))),
            "es_not_bool",
        ),
        (
            "EarlyStopping",
            _es_counting(
                es,
                snap,
                rule(
                    lambda self, loss: loss < self.best_loss - self.min_delta,
                    lambda self: self.wait == self.patience,
                ),
            ),
            "es_stop_exact",
        ),
        (
            "EarlyStopping",
            _es(snap, lambda self, model: zeroed(self, model)),
            "es_restore_wrong",
        ),
        ("EarlyStopping", _es(opaque, lambda self, model: None), "es_not_restored"),
    ]


def _es_found_rows(es, snap, load, to_array, listed):
    """Rows from a second student pass, for both frameworks: ``to_array(x)`` makes a tensor
    or an array; ``listed``: (snap, load) of a snapshot that lists the live tensors or
    Variables themselves."""

    class Shared(es()):
        history = []  # noqa: RUF012 (the mistake: one list for every instance)

        def step(self, val_loss, model):
            self.history.append(val_loss)
            self.epoch = len(self.history) - 1
            return super().step(val_loss, model)

    class SharedSnapshot(es()):
        best = {}  # noqa: RUF012 (the mistake: one dict for every instance)

        def step(self, val_loss, model):
            stop = super().step(val_loss, model)
            if self.wait == 0:
                self.best["state"] = self.snapshot
            return stop

        def restore(self, model):
            self.snapshot = self.best["state"]
            load(self, model)

    class ArrayBest(es()):  # best_loss kept as a tensor / array
        def step(self, val_loss, model):
            stop = super().step(val_loss, model)
            self.best_loss = to_array(self.best_loss)
            return stop

    class Swapped(es()):
        def step(self, model, val_loss):
            return super().step(val_loss, model)

    class Item(es()):
        def step(self, val_loss, model):
            return super().step(val_loss.item(), model)

    class NoDefault(es()):
        def __init__(self, patience, min_delta):
            super().__init__(patience, min_delta)

    class NanMin(es()):  # min(nan, best) is nan, which != best: NaN "improves"
        def step(self, val_loss, model):
            if min(val_loss, self.best_loss) != self.best_loss:
                self.best_loss, self.best_epoch, self.wait = val_loss, self.epoch, 0
                self.snapshot = snap(model)
            else:
                self.wait += 1
            self.epoch += 1
            return self.wait >= self.patience

    class Round3(es()):  # best_loss rounded to 3 decimals
        def step(self, val_loss, model):
            stop = super().step(val_loss, model)
            if self.wait == 0:
                self.best_loss = round(val_loss, 3)
            return stop

    def once(self, model):  # the snapshot dropped after use
        load(self, model)
        self.snapshot = None

    def dropped(self, model):
        load(self, model)
        del self.snapshot

    return [
        ("EarlyStopping", Shared, "es_shared"),
        ("EarlyStopping", SharedSnapshot, "es_shared"),
        ("EarlyStopping", es(start=to_array(math.inf)), "es_best_type"),
        ("EarlyStopping", ArrayBest, "es_best_type"),
        ("EarlyStopping", Swapped, "es_signature"),
        ("EarlyStopping", Item, "es_signature"),
        ("EarlyStopping", NoDefault, "es_signature"),
        ("EarlyStopping", NanMin, "es_nan"),
        ("EarlyStopping", Round3, "es_best_loss"),
        ("EarlyStopping", _es(snap, once), "es_restore_once"),
        ("EarlyStopping", _es(snap, dropped), "es_restore_once"),
        ("EarlyStopping", _es(*listed), "es_alias"),
    ]


def _t_bytes(model):
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def _t_zero(model):
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()


def _t_load_listed(
    self, model
):  # copies a list of the model's own parameters into them
    with torch.no_grad():
        for p, saved in zip(model.parameters(), self.snapshot, strict=True):
            p.copy_(saved)


def _t_es(**options):
    return _es(_t_copy, _t_load, **options)


TORCH_ES_MISTAKES = [
    *_es_rows(
        _t_es,
        alias=_es(lambda m: m.state_dict(), _t_load),
        params_only=_es(
            lambda m: {k: v.detach().clone() for k, v in m.named_parameters()},
            lambda self, model: model.load_state_dict(self.snapshot, strict=False),
        ),
        kept=_es(lambda m: m, _t_load_module),
        rebind=_es(copy.deepcopy, _rebind),
        twice=_es(
            _t_copy,
            lambda self, model: model.load_state_dict(self.snapshot, assign=True),
        ),
    ),
    ("EarlyStopping", _es(lambda m: dict(m.state_dict()), _t_load), "es_alias"),
    (
        "EarlyStopping",
        _es(lambda m: {k: v.detach() for k, v in m.state_dict().items()}, _t_load),
        "es_alias",
    ),
    (  # strict load of the parameters alone: "Missing key(s) in state_dict"
        "EarlyStopping",
        _es(
            lambda m: {k: v.detach().clone() for k, v in m.named_parameters()}, _t_load
        ),
        "es_buffers_lost",
    ),
    ("EarlyStopping", _t_es(ret=torch.tensor), "es_not_bool"),
    (
        "EarlyStopping",
        _es(
            copy.deepcopy,
            lambda self, model: self.snapshot.load_state_dict(model.state_dict()),
        ),
        "es_restore_reversed",
    ),
    *_es_more_rows(_t_es, _t_copy, _t_load, _t_bytes, _t_zero),
    *_es_found_rows(
        _t_es,
        _t_copy,
        _t_load,
        torch.as_tensor,
        listed=(lambda m: list(m.parameters()), _t_load_listed),
    ),
]


def _j_update(self, model):
    nnx.update(model, nnx.state(self.snapshot))


def _j_update_state(self, model):
    nnx.update(model, self.snapshot)


def _j_bytes(model):
    return pickle.dumps(jax.device_get(nnx.to_pure_dict(nnx.state(model))))


def _j_zero(model):
    for _, node in nnx.iter_graph(model):
        if isinstance(node, nnx.Param):
            node.set_value(jnp.zeros_like(node.get_value()))


def _j_variables(model):
    return [v for _, v in nnx.iter_graph(model) if isinstance(v, nnx.Variable)]


def _j_load_listed(self, model):  # the model's own Variables, set to their own values
    for v, saved in zip(_j_variables(model), self.snapshot, strict=True):
        v.set_value(saved.get_value())


def _j_es(**options):
    return _es(nnx.clone, _j_update, **options)


JAX_ES_MISTAKES = [
    *_es_rows(
        _j_es,
        alias=_es(nnx.state, _j_update_state),
        params_only=_es(
            lambda m: copy.deepcopy(nnx.state(m, nnx.Param)), _j_update_state
        ),
        kept=_es(lambda m: m, _j_update),
        rebind=_es(nnx.clone, _rebind),
        # the snapshot's submodules put into the model: they are shared from then on
        twice=_es(
            nnx.clone,
            lambda self, model: setattr(model, "layers", self.snapshot.layers),
        ),
    ),
    ("EarlyStopping", _es(lambda m: nnx.split(m)[1], _j_update_state), "es_alias"),
    ("EarlyStopping", _j_es(ret=jnp.asarray), "es_not_bool"),
    (
        "EarlyStopping",
        _es(nnx.clone, lambda self, model: nnx.update(self.snapshot, nnx.state(model))),
        "es_restore_reversed",
    ),
    *_es_more_rows(_j_es, nnx.clone, _j_update, _j_bytes, _j_zero),
    *_es_found_rows(
        _j_es,
        nnx.clone,
        _j_update,
        jnp.asarray,
        listed=(lambda m: _j_variables(m), _j_load_listed),
    ),
]


MISTAKES = {
    "pytorch": TORCH_MISTAKES + TORCH_ES_MISTAKES + TORCH_ACCUM_MISTAKES,
    "jax": JAX_MISTAKES + JAX_ES_MISTAKES + JAX_ACCUM_MISTAKES,
}
(
    test_catches_mistake_with_its_hint,
    test_at_least_two_mistakes_per_exercise,
    test_every_declared_hint_is_produced_by_a_mistake,
) = mistake_table_tests(LAB, MISTAKES)


def test_a_dataloader_keeps_each_image_with_its_label():
    """The solution's Dataset through a shuffling DataLoader: pairs stay together."""
    x, y = load_mnist("train", limit=200)
    ds = T["DigitDataset"](x, y, lambda im: torch.from_numpy(im).float())
    lookup = {
        im.tobytes(): label for im, label in zip(x.astype(np.float32), y, strict=True)
    }
    seen = 0
    for xb, yb in DataLoader(ds, batch_size=32, shuffle=True):
        for im, label in zip(xb.numpy(), yb.numpy(), strict=True):
            assert lookup[im.tobytes()] == label
            seen += 1
    assert seen == 200


def test_evaluation_may_divide_by_len_of_loader_dataset():
    """The PyTorch check's batches are a DataLoader: the common len(loader.dataset) works."""

    def evaluate_accuracy(model, loader):
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in loader:
                correct += (model(x).argmax(-1) == y).sum().item()
        return correct / len(loader.dataset)

    ht.lab03.check_evaluate_accuracy(evaluate_accuracy)


def test_a_wrong_loss_names_its_step():
    """The loss a step returned is named by the step, in a sentence that reads."""
    with pytest.raises(CheckFailed) as info:
        ht.lab03.check_train_step(_t_step(loss_after=True))
    assert "the loss returned by step 1 is " in info.value.problem, info.value.message


def test_a_step_compiled_with_nnx_jit_passes():
    """The jax.jit check runs the unwrapped step only when the parameters did not change."""
    hj.lab03.check_train_step(nnx.jit(_j_correct_step))
    hj.lab03.check_train_step(_j_correct_step)


def _t_load_copies(self, model):
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            t.copy_(self.snapshot[name])


def _j_load_pure(self, model):
    state = nnx.state(model)
    nnx.replace_by_pure_dict(state, self.snapshot)
    nnx.update(model, state)


def _fmin_rule(self, loss):  # np.fmin ignores a NaN loss: the best stays
    improved = np.fmin(loss, self.best_loss) < self.best_loss - self.min_delta
    return improved, lambda self: self.wait >= self.patience


def _since_best(es):
    """es()'s class stopping on the epochs since the best one, with no count of its own."""

    class SinceBest(es()):
        def step(self, val_loss, model):
            super().step(val_loss, model)
            return self.epoch - self.best_epoch > self.patience

    return SinceBest


def _t_load_numpy(self, model):
    model.load_state_dict({k: torch.from_numpy(v) for k, v in self.snapshot.items()})


def _j_load_values(self, model):
    for path, v in nnx.iter_graph(model):
        if isinstance(v, nnx.Variable):
            v.set_value(self.snapshot[path])


VALID_EARLY_STOPPING = {
    "pytorch-state_dict deepcopy": _t_es(),
    "pytorch-module deepcopy": _es(copy.deepcopy, _t_load_module),
    "pytorch-clone per tensor": _es(
        lambda m: {k: v.detach().clone() for k, v in m.state_dict().items()}, _t_load
    ),
    "pytorch-copy_ per tensor": _es(_t_copy, _t_load_copies),
    "pytorch-torch.save bytes": _es(
        _t_bytes,
        lambda self, m: m.load_state_dict(
            torch.load(io.BytesIO(self.snapshot), weights_only=True)
        ),
    ),
    "pytorch-np.bool_": _t_es(ret=np.bool_),
    "pytorch-numpy copies": _es(
        lambda m: {
            k: v.detach().cpu().numpy().copy() for k, v in m.state_dict().items()
        },
        _t_load_numpy,
    ),
    "pytorch-deepcopy keep_vars": _es(
        lambda m: copy.deepcopy(m.state_dict(keep_vars=True)), _t_load
    ),
    "pytorch-fmin": _es_counting(_t_es, _t_copy, _fmin_rule),
    "pytorch-epochs since best": _since_best(_t_es),
    "jax-nnx.clone": _j_es(),
    "jax-state of a clone": _es(lambda m: nnx.state(nnx.clone(m)), _j_update_state),
    "jax-deepcopy of the state": _es(
        lambda m: copy.deepcopy(nnx.state(m)), _j_update_state
    ),
    "jax-tree.map copy": _es(
        lambda m: jax.tree.map(jnp.copy, nnx.state(m)), _j_update_state
    ),
    "jax-pure dict of arrays": _es(
        lambda m: nnx.to_pure_dict(nnx.state(m)), _j_load_pure
    ),
    "jax-deepcopy of the model": _es(copy.deepcopy, _j_update),
    "jax-tree.map identity (new Variables)": _es(
        lambda m: jax.tree.map(lambda v: v, nnx.state(m)), _j_update_state
    ),
    "jax-split of a clone, merge": _es(
        lambda m: nnx.split(nnx.clone(m)),
        lambda self, m: nnx.update(m, nnx.state(nnx.merge(*self.snapshot))),
    ),
    "jax-values by path": _es(
        lambda m: {
            p: v.get_value()
            for p, v in nnx.iter_graph(m)
            if isinstance(v, nnx.Variable)
        },
        _j_load_values,
    ),
    "jax-fmin": _es_counting(_j_es, nnx.clone, _fmin_rule),
    "jax-epochs since best": _since_best(_j_es),
}


@pytest.mark.parametrize(
    "name", list(VALID_EARLY_STOPPING), ids=list(VALID_EARLY_STOPPING)
)
def test_early_stopping_accepts_other_right_answers(name):
    """Other copies and restores pass: a module's deepcopy, per-tensor clones, bytes, NNX
    clones, a deep-copied state, a pure dict of the (immutable) arrays."""
    lab = ht.lab03 if name.startswith("pytorch") else hj.lab03
    lab.check_early_stopping(VALID_EARLY_STOPPING[name])


def test_early_stopping_simulation_is_the_texts_example():
    """The reference counting gives the text's example and NaN is never an improvement."""
    from helpers.labs.lab03.early_stopping import CASES, simulate

    assert simulate(CASES[0]) == ([False, False, False, True], 0.9, 1)
    returns, best, epoch = simulate(CASES[1])
    assert returns[-1] and best == 0.7 and epoch == 4
