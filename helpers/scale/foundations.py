"""Chapters 1-4: MNIST, the basics' sequences and backprop, CNN depth, timing, JAX transformations.

This topic's size dataclasses and its entries of the course's one table of sizes
(:mod:`helpers.scale` merges them).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "SIZES",
    "BackpropSizes",
    "CnnSizes",
    "DepthSizes",
    "EarlyStoppingSizes",
    "MnistSizes",
    "SequenceSizes",
    "TimingSizes",
    "TransformSizes",
    "cnn_feature_side",
]


@dataclass(frozen=True)
class MnistSizes:
    """Chapter 1 and ``helpers.bench mnist``: an MLP on MNIST."""

    # None: all 60,000 / all 10,000
    train_examples: int | None
    test_examples: int | None
    epochs: int
    batch_size: int
    # Widths of the hidden layers.
    hidden: tuple[int, ...]
    # Adam's step size.
    learning_rate: float


@dataclass(frozen=True)
class CnnSizes:
    """Chapter 3 onwards and ``helpers.bench mnist --model cnn``: the shared ``CNN`` on MNIST."""

    # None: all 60,000 / all 10,000
    train_examples: int | None
    test_examples: int | None
    epochs: int
    batch_size: int
    # Output channels of each conv-BN-ReLU-pool block, then the width of the hidden Linear.
    channels: tuple[int, ...]
    hidden: int
    # Dropout probability before the head (training only).
    dropout: float
    # Adam's initial step size, decayed to 0 along a cosine over all the steps of the run.
    learning_rate: float

    @property
    def description(self) -> str:
        """The model and recipe in words, as ``helpers.bench`` records them."""
        widths = "-".join(str(c) for c in self.channels)
        return (
            f"CNN conv {widths}, hidden {self.hidden}, dropout {self.dropout}, "
            "Adam, cosine decay"
        )


def cnn_feature_side(channels: tuple[int, ...], image_size: int, dropout: float) -> int:
    """Height (= width) of the CNN's last feature map: ``image_size / 2**len(channels)``.

    Shared by both halves' ``CNN``. Raises ``ValueError`` when ``image_size`` is not divisible
    by ``2 ** len(channels)`` (one 2x2 pool per block) or ``dropout`` is not in [0, 1).
    """
    if len(channels) == 0 or image_size % 2 ** len(channels):
        raise ValueError(
            f"CNN: image_size {image_size} must be divisible by 2**len(channels) "
            f"(one 2x2 pool per entry of channels={tuple(channels)})"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"CNN: dropout must be in [0, 1), got {dropout}")
    return image_size // 2 ** len(channels)


@dataclass(frozen=True)
class DepthSizes:
    """Chapter 3: the frameworks in depth (data pipelines, hand-written loops, compilation)."""

    # Training examples, of which the last `validation_examples` are held out for validation.
    # None: all 60,000 / all 10,000.
    train_examples: int | None
    validation_examples: int
    test_examples: int | None
    # The outline's MLP (784-256-10), trained with SGD + momentum, decoupled weight decay.
    mlp_epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    # Batches timed per data-pipeline setting (workers, pin_memory, transforms).
    loader_batches: int
    # Compile the MLP's training step (True) or only a tiny function (False), and with which
    # torch.compile backend: "inductor" generates and compiles C++ on a cold cache, the cost
    # chapter 3's page measures; "aot_eager" traces without generating code, so smoke stays
    # within its 60 s. JAX always uses jax.jit. Timed calls after that.
    compile_model: bool
    compile_backend: str
    timing_repeats: int


@dataclass(frozen=True)
class TimingSizes:
    """Micro-benchmarks inside notebooks (e.g. eager vs compiled)."""

    # Timed calls per measurement; notebooks report the median.
    repeats: int
    # Length of the vectors being timed.
    n: int


@dataclass(frozen=True)
class BackpropSizes:
    """Chapter 2.3: a two-layer MLP trained on MNIST with hand-written gradients and SGD."""

    # None: all 60,000 / all 10,000
    train_examples: int | None
    test_examples: int | None
    epochs: int
    batch_size: int
    hidden: int
    # Plain SGD's step size.
    learning_rate: float


@dataclass(frozen=True)
class SequenceSizes:
    """Chapter 2.5-2.6: the recurrent cells and the Transformer block on a synthetic task."""

    # Tokens per sequence and distinct token values of the synthetic task.
    length: int
    vocab: int
    # Width, heads and blocks of the Transformer.
    d_model: int
    heads: int
    layers: int
    steps: int
    batch_size: int
    # Adam's step size.
    learning_rate: float
    # Time steps over which RNN and LSTM gradient norms are measured.
    rnn_steps: int


@dataclass(frozen=True)
class TransformSizes:
    """Chapter 4: the transformations, jit, vmap and sharding demonstrations."""

    # n of the wide function R^n -> R and of the tall one R -> R^n (jacfwd vs jacrev).
    jacobian_width: int
    # Timed calls per measurement; notebooks report the median.
    repeats: int
    # Examples in the per-example-gradient and data-parallel demonstrations.
    batch_size: int
    # Steps of the sharded vs single-device training comparison.
    parallel_steps: int
    # Steps of the host round-trip timing loop.
    loop_steps: int


@dataclass(frozen=True)
class EarlyStoppingSizes:
    """Lab 3's early-stopping demo: an MLP with batch-norm on MNIST, trained until it stops."""

    # Training examples, of which the last `validation_examples` are held out (None: 60,000);
    # test examples (None: 10,000).
    train_examples: int | None
    validation_examples: int
    test_examples: int | None
    # The most epochs; epochs without improvement before stopping; Adam's step size.
    max_epochs: int
    patience: int
    batch_size: int
    hidden: int
    learning_rate: float


SIZES: dict[str, dict[str, object]] = {
    # Lab 3, exercise 4's demo: a small training set overfits within a few epochs.
    "lab03_early_stopping": {
        "smoke": EarlyStoppingSizes(2_000, 500, 1_000, 20, 2, 100, 128, 3e-3),
        "cpu": EarlyStoppingSizes(10_000, 2_000, None, 40, 4, 100, 256, 1e-3),
        "gpu": EarlyStoppingSizes(None, 10_000, None, 60, 5, 256, 512, 1e-3),
    },
    "mnist": {
        "smoke": MnistSizes(
            train_examples=2_000,
            test_examples=1_000,
            epochs=1,
            batch_size=128,
            hidden=(64,),
            learning_rate=1e-3,
        ),
        "cpu": MnistSizes(
            train_examples=None,
            test_examples=None,
            epochs=8,
            batch_size=128,
            hidden=(256,),
            learning_rate=1e-3,
        ),
        "gpu": MnistSizes(
            train_examples=None,
            test_examples=None,
            epochs=15,
            batch_size=256,
            hidden=(512, 512),
            learning_rate=1e-3,
        ),
    },
    # Chapter 2 (tune these values, keep the keywords).
    "backprop": {
        "smoke": BackpropSizes(
            train_examples=3_000,
            test_examples=1_000,
            epochs=1,
            batch_size=64,
            hidden=64,
            learning_rate=0.1,
        ),
        "cpu": BackpropSizes(
            train_examples=None,
            test_examples=None,
            epochs=10,
            batch_size=64,
            hidden=256,
            learning_rate=0.1,
        ),
        "gpu": BackpropSizes(
            train_examples=None,
            test_examples=None,
            epochs=20,
            batch_size=64,
            hidden=512,
            learning_rate=0.1,
        ),
    },
    "sequences": {
        "smoke": SequenceSizes(
            length=6,
            vocab=8,
            d_model=32,
            heads=2,
            layers=1,
            steps=150,
            batch_size=64,
            learning_rate=3e-3,
            rnn_steps=20,
        ),
        "cpu": SequenceSizes(
            length=8,
            vocab=10,
            d_model=64,
            heads=4,
            layers=2,
            steps=1_500,
            batch_size=128,
            learning_rate=3e-3,
            rnn_steps=50,
        ),
        "gpu": SequenceSizes(
            length=16,
            vocab=16,
            d_model=128,
            heads=4,
            layers=2,
            steps=4_000,
            batch_size=256,
            learning_rate=1e-3,
            rnn_steps=100,
        ),
    },
    # The shared CNN (chapter 3 onwards; `helpers.bench mnist --model cnn`).
    "mnist_cnn": {
        "smoke": CnnSizes(
            train_examples=2_000,
            test_examples=1_000,
            epochs=1,
            batch_size=64,
            channels=(8, 16),
            hidden=64,
            dropout=0.25,
            learning_rate=2e-3,
        ),
        "cpu": CnnSizes(
            train_examples=None,
            test_examples=None,
            epochs=4,
            batch_size=128,
            channels=(16, 32),
            hidden=128,
            dropout=0.25,
            learning_rate=2e-3,
        ),
        "gpu": CnnSizes(
            train_examples=None,
            test_examples=None,
            epochs=10,
            batch_size=256,
            channels=(32, 64),
            hidden=256,
            dropout=0.25,
            learning_rate=2e-3,
        ),
    },
    "timing": {
        "smoke": TimingSizes(repeats=3, n=10_000),
        "cpu": TimingSizes(repeats=20, n=1_000_000),
        "gpu": TimingSizes(repeats=50, n=10_000_000),
    },
    # Chapter 3 (the CNN's own sizes are "mnist_cnn" above).
    "depth": {
        "smoke": DepthSizes(
            train_examples=3_000,
            validation_examples=500,
            test_examples=1_000,
            mlp_epochs=1,
            batch_size=64,
            learning_rate=0.05,
            weight_decay=5e-4,
            loader_batches=10,
            compile_model=False,
            compile_backend="aot_eager",
            timing_repeats=5,
        ),
        "cpu": DepthSizes(
            train_examples=None,
            validation_examples=5_000,
            test_examples=None,
            mlp_epochs=6,
            batch_size=128,
            learning_rate=0.05,
            weight_decay=5e-4,
            loader_batches=100,
            compile_model=True,
            compile_backend="inductor",
            timing_repeats=30,
        ),
        "gpu": DepthSizes(
            train_examples=None,
            validation_examples=5_000,
            test_examples=None,
            mlp_epochs=10,
            batch_size=256,
            learning_rate=0.05,
            weight_decay=5e-4,
            loader_batches=200,
            compile_model=True,
            compile_backend="inductor",
            timing_repeats=50,
        ),
    },
    # Chapter 4 (its MNIST runs use "mnist" and chapter 3's CNN sizes).
    "transforms": {
        "smoke": TransformSizes(
            jacobian_width=200,
            repeats=3,
            batch_size=32,
            parallel_steps=5,
            loop_steps=50,
        ),
        "cpu": TransformSizes(
            jacobian_width=1_000,
            repeats=10,
            batch_size=256,
            parallel_steps=20,
            loop_steps=300,
        ),
        "gpu": TransformSizes(
            jacobian_width=4_000,
            repeats=20,
            batch_size=1_024,
            parallel_steps=50,
            loop_steps=1_000,
        ),
    },
}
