"""Framework-free bookkeeping for training runs: the metrics history and a confusion matrix."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "History",
    "confusion_matrix",
    "run_summary",
    "step_timing",
    "top_confusions",
]


@dataclass
class History:
    """What a training run measured: the loss of every step and a row of metrics per epoch.

    ``history["test_accuracy"]`` is the list of that metric over epochs;
    ``history.last("test_accuracy")`` its final value.
    """

    step_loss: list[float] = field(
        default_factory=list
    )  # one value per optimisation step
    epochs: list[dict[str, float]] = field(default_factory=list)
    # Wall time of the first step, synchronised: includes compilation (JAX) or warm-up (CUDA).
    first_step_seconds: float | None = None

    def log_steps(self, losses: list[float]) -> None:
        self.step_loss.extend(float(v) for v in losses)

    def log_epoch(self, **metrics: float) -> None:
        self.epochs.append({k: float(v) for k, v in metrics.items()})

    def end_epoch(
        self,
        epoch: int,
        step_losses: list[float],
        *,
        correct: int,
        seen: int,
        seconds: float,
        **extra: float,
    ) -> None:
        """Log one training epoch: its step losses, then its row of metrics.

        Both frameworks' ``fit`` call this, so their histories have the same keys: ``epoch``,
        ``train_loss`` (mean over the epoch's steps), ``train_accuracy`` (``correct / seen``,
        counted while training), ``seconds``, ``examples_per_second``, plus ``extra``.
        """
        self.log_steps(step_losses)
        self.log_epoch(
            epoch=epoch,
            train_loss=float(np.mean(step_losses)),
            train_accuracy=correct / seen,
            seconds=seconds,
            examples_per_second=seen / seconds,
            **extra,
        )

    def __getitem__(self, key: str) -> list[float]:
        if not self.epochs or key not in self.epochs[-1]:
            known = sorted(self.epochs[-1]) if self.epochs else []
            raise KeyError(f"no metric {key!r} in this history; it has {known}")
        return [row[key] for row in self.epochs if key in row]

    def last(self, key: str) -> float:
        return self[key][-1]

    def to_json(self) -> str:
        return json.dumps(
            {
                "step_loss": self.step_loss,
                "epochs": self.epochs,
                "first_step_seconds": self.first_step_seconds,
            }
        )


def confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int
) -> np.ndarray:
    """``C[i, j]`` = number of examples of true class ``i`` predicted as class ``j``."""
    y_true = np.asarray(y_true, np.int64).ravel()
    y_pred = np.asarray(y_pred, np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true has {y_true.size} labels but y_pred has {y_pred.size}"
        )
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} has labels outside 0..{num_classes - 1}")
    counts = np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def top_confusions(counts: np.ndarray, k: int) -> list[tuple[int, int, int]]:
    """The ``k`` largest off-diagonal cells of a confusion matrix ``counts`` ``(C, C)`` (true x
    predicted, :func:`confusion_matrix`): ``(true class, predicted class, count)``, largest
    first. Raises ``ValueError`` for a matrix that is not square."""
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"top_confusions: counts must be (C, C), got {counts.shape}")
    mistakes = np.where(np.eye(len(counts), dtype=bool), 0, counts)  # diagonal zeroed
    top = np.argsort(mistakes, axis=None)[::-1][:k]
    return [
        (*map(int, divmod(int(f), len(counts))), int(mistakes.flat[f])) for f in top
    ]


def run_summary(
    history: History,
    test_scores: dict[str, float],
    *,
    batch_size: int,
    parameters: int,
    train_examples: int,
    test_examples: int,
) -> dict[str, float | int]:
    """The numbers a benchmark records about one training run (see ``helpers.bench``).

    Throughput leaves out the first step, which carries compilation (JAX) or GPU warm-up, and
    reports that step's time apart.
    """
    steps = len(history.step_loss)
    train_seconds = sum(row["seconds"] for row in history.epochs)
    first = history.first_step_seconds or 0.0
    steady = max(train_seconds - first, 1e-9)
    return {
        "test_accuracy": round(test_scores["accuracy"], 4),
        "test_loss": round(test_scores["loss"], 4),
        "final_train_loss": round(history.last("train_loss"), 4),
        "train_seconds": round(train_seconds, 2),
        "first_step_seconds": round(first, 3),
        "train_examples_per_second": round((steps - 1) * batch_size / steady, 1),
        "parameters": parameters,
        "train_examples": train_examples,
        "test_examples": test_examples,
        "epochs": len(history.epochs),
    }


def step_timing(history: History, batch_size: int) -> dict[str, float]:
    """A run's training time with its first step's one-time cost set apart.

    The first step carries compilation (JAX) or warm-up (PyTorch, CUDA); the others are
    steady. From ``history`` (``epochs[i]["seconds"]`` summed, ``first_step_seconds``, one
    ``step_loss`` per step) returns, in seconds and examples per second:
    ``train_seconds`` (steady time plus one steady step: the run as if no step were special),
    ``first_step_seconds``, ``compile_seconds`` (the first step beyond a steady one, at least 0)
    and ``train_examples_per_second`` (steady steps only, ``batch_size`` examples each).
    """
    steps = len(history.step_loss)
    first = history.first_step_seconds or 0.0
    steady = max(sum(row["seconds"] for row in history.epochs) - first, 1e-9)
    per_step = steady / max(steps - 1, 1)
    return {
        "train_seconds": round(steady + per_step, 2),
        "first_step_seconds": round(first, 3),
        "compile_seconds": round(max(first - per_step, 0.0), 2),
        "train_examples_per_second": round((steps - 1) * batch_size / steady, 1),
    }
