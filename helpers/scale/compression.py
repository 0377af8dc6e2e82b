"""Chapter 10: compression, export and deployment.

This topic's size dataclasses and its entries of the course's one table of sizes
(:mod:`helpers.scale` merges them).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SIZES", "CompressionSizes"]


@dataclass(frozen=True)
class CompressionSizes:
    """Chapter 10: compress, export and explain a small CIFAR-10 and a small IMDB model."""

    # CIFAR-10 images trained on / evaluated (None: all 50,000 / all 10,000).
    train_examples: int | None
    test_examples: int | None
    # The model compressed (the teacher) and the narrower widths shared by the
    # structured-pruned model and the distilled student.
    teacher_widths: tuple[int, ...]
    student_widths: tuple[int, ...]
    # Adam steps of batch_size: the teacher, fine-tuning after pruning, each student.
    teacher_steps: int
    finetune_steps: int
    student_steps: int
    batch_size: int
    learning_rate: float
    # Fraction of each convolution's weights set to zero by unstructured magnitude pruning.
    prune_fraction: float
    # Knowledge distillation: softmax temperature and the weight of the teacher's term.
    temperature: float
    distill_weight: float
    # Timed calls per latency measurement (p50 / p95).
    latency_repeats: int
    # Integrated-gradients step counts tried; images and reviews attributed.
    ig_steps: tuple[int, ...]
    attribution_examples: int
    # The IMDB model: a bag of words (chapter 6's BagOfNgrams without bigrams).
    imdb_train_examples: int | None
    imdb_test_examples: int | None
    imdb_max_len: int
    imdb_dim: int
    imdb_epochs: int
    imdb_min_freq: int


SIZES: dict[str, dict[str, object]] = {
    # Chapter 10.
    "compression": {
        "smoke": CompressionSizes(
            train_examples=2_000,
            test_examples=500,
            teacher_widths=(8, 16, 32, 64),
            student_widths=(4, 8, 16, 32),
            teacher_steps=40,
            finetune_steps=8,
            student_steps=20,
            batch_size=100,
            learning_rate=2e-3,
            prune_fraction=0.5,
            temperature=4.0,
            distill_weight=0.7,
            latency_repeats=5,
            ig_steps=(8, 32, 128),
            attribution_examples=2,
            imdb_train_examples=2_000,
            imdb_test_examples=1_000,
            imdb_max_len=200,
            imdb_dim=16,
            imdb_epochs=3,
            imdb_min_freq=2,
        ),
        "cpu": CompressionSizes(
            train_examples=20_000,
            test_examples=5_000,
            teacher_widths=(16, 32, 64, 128),
            student_widths=(8, 16, 32, 64),
            teacher_steps=300,
            finetune_steps=100,
            student_steps=300,
            batch_size=128,
            learning_rate=2e-3,
            prune_fraction=0.5,
            temperature=4.0,
            distill_weight=0.7,
            latency_repeats=50,
            ig_steps=(8, 32, 128, 512),
            attribution_examples=4,
            imdb_train_examples=None,
            imdb_test_examples=None,
            imdb_max_len=400,
            imdb_dim=16,
            imdb_epochs=3,
            imdb_min_freq=3,
        ),
        "gpu": CompressionSizes(
            train_examples=None,
            test_examples=None,
            teacher_widths=(32, 64, 256, 256),
            student_widths=(16, 32, 128, 128),
            teacher_steps=5_000,
            finetune_steps=1_000,
            student_steps=4_000,
            batch_size=256,
            learning_rate=2e-3,
            prune_fraction=0.5,
            temperature=4.0,
            distill_weight=0.7,
            latency_repeats=200,
            ig_steps=(8, 32, 128, 512),
            attribution_examples=8,
            imdb_train_examples=None,
            imdb_test_examples=None,
            imdb_max_len=800,
            imdb_dim=64,
            imdb_epochs=5,
            imdb_min_freq=2,
        ),
    },
}
