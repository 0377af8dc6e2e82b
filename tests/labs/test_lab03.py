"""Lab 3's typical mistakes: each one fails its check with the hint written for it.

``MISTAKES`` lists, per framework, (exercise, a wrong solution, the key of the hint it must
get): the four mistakes the lab exists for (labels shuffled apart from images, gradients
accumulated, evaluation in training mode or with autograd on, accuracy averaged over batches
of unequal size) and the usual slips around them. Every hint the lab declares must be
produced by at least one entry.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from flax import nnx
from labtools import exercise_functions, mistake_table_tests, source
from torch import nn
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


def _t_unflattened(images, labels):
    """A model that cannot take the check's (B, 28, 28) images."""
    return nn.Sequential(nn.Linear(784, 10))


def _t_unflattened_trained(images, labels):
    """Trains a model without flatten on (B, 28, 28) batches: the training itself fails."""
    dataset = T["DigitDataset"](images, labels, lambda im: torch.from_numpy(im) / 255.0)
    model = nn.Sequential(nn.Linear(784, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for x, y in DataLoader(dataset, batch_size=64):
        T["train_step"](model, optimizer, x.float(), y)
    return model


def _t_no_return(images, labels):
    T["train_classifier"](images, labels)  # `return` forgotten


def _t_state_dict(images, labels):
    return T["train_classifier"](images, labels).state_dict()


def _t_untrained(images, labels):
    torch.manual_seed(0)
    return ht.MLP(784, (128,), 10)


def _t_tuple(images, labels):
    return T["train_classifier"](images, labels), "optimizer"


def _t_own_data(images, labels):
    x, y = load_mnist("train", limit=len(labels))
    return T["train_classifier"](x, y)


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
    ("train_classifier", _t_untrained, "not_trained"),
    ("train_classifier", _t_tuple, "classifier_tuple"),
    ("train_classifier", _t_unflattened, "classifier_input"),
    ("train_classifier", _t_unflattened_trained, "classifier_input"),
    ("train_classifier", _t_no_return, "classifier_none"),
    ("train_classifier", _t_state_dict, "classifier_state"),
    ("train_classifier", _t_own_data, "ignores_data"),
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


def _j_unflattened(images, labels):
    """A model that cannot take the check's (B, 28, 28) images."""
    return nnx.Linear(784, 10, rngs=nnx.Rngs(0))


def _j_unflattened_trained(images, labels):
    """Trains a model without flatten on (B, 28, 28) batches: the training itself fails."""
    model = nnx.Linear(784, 10, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    x = jnp.asarray(images[:64], jnp.float32) / 255
    J["train_step"](model, optimizer, x, jnp.asarray(labels[:64], jnp.int32))
    return model


def _j_no_return(images, labels):
    J["train_classifier"](images, labels)  # `return` forgotten


def _j_state(images, labels):
    return nnx.state(J["train_classifier"](images, labels))


def _j_untrained(images, labels):
    return hj.MLP(784, (128,), 10, rngs=nnx.Rngs(0))


def _j_tuple(images, labels):
    return J["train_classifier"](images, labels), "optimizer"


def _j_own_data(images, labels):
    x, y = load_mnist("train", limit=len(labels))
    return J["train_classifier"](x, y)


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
    ("train_classifier", _j_untrained, "not_trained"),
    ("train_classifier", _j_tuple, "classifier_tuple"),
    ("train_classifier", _j_unflattened, "classifier_input"),
    ("train_classifier", _j_unflattened_trained, "classifier_input"),
    ("train_classifier", _j_no_return, "classifier_none"),
    ("train_classifier", _j_state, "classifier_state"),
    ("train_classifier", _j_own_data, "ignores_data"),
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


MISTAKES = {
    "pytorch": TORCH_MISTAKES + TORCH_ACCUM_MISTAKES,
    "jax": JAX_MISTAKES + JAX_ACCUM_MISTAKES,
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
