"""Chapters 8 and 9: optimizers and schedules; performance tuning and data-parallel training.

This topic's size dataclasses and its entries of the course's one table of sizes
(:mod:`helpers.scale` merges them).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "SIZES",
    "DataParallelSizes",
    "OptimizerSizes",
    "PerformanceSizes",
    "RingTimingSizes",
]


@dataclass(frozen=True)
class OptimizerSizes:
    """Chapter 8: optimizers and learning-rate schedules, an MLP on MNIST."""

    # None: all 60,000 / all 10,000
    train_examples: int | None
    test_examples: int | None
    # Epochs of every run that compares optimizers or schedules (one budget for all).
    epochs: int
    batch_size: int
    hidden: tuple[int, ...]
    # Steps on the 2-D test functions (section 8.2), per optimizer and learning rate.
    landscape_steps: int
    # The learning-rate x batch-size sweep (SGD with momentum) and its epochs per cell.
    sweep_learning_rates: tuple[float, ...]
    sweep_batch_sizes: tuple[int, ...]
    sweep_epochs: int
    # Steps of the learning-rate range test.
    range_test_steps: int


@dataclass(frozen=True)
class DataParallelSizes:
    """Chapter 9: the small problem every distributed run trains, and its single-process twin.

    A BatchNorm-free MLP on a seeded synthetic classification set, so that data-parallel
    training can be asserted equal to single-process training. Workers receive it as JSON.
    """

    examples: int
    features: int
    hidden: int
    classes: int
    # The global batch: every step sees batch_size examples, split evenly over the workers.
    batch_size: int
    steps: int
    learning_rate: float
    seed: int


@dataclass(frozen=True)
class PerformanceSizes:
    """Chapter 9: tuning the chapter-5 CIFAR-10 network, then training it on many workers."""

    # CIFAR-10 training images kept on the device for the timed steps (None: all 50,000).
    train_examples: int | None
    # The chapter-5 network's widths (stem, block1, block2, block3) and its batch size.
    widths: tuple[int, ...]
    batch_size: int
    # Training steps per timed sample; samples per measurement; untimed warm-up calls.
    timed_steps: int
    repeats: int
    warmup: int
    # Batch sizes of the throughput sweep (section 9.2).
    sweep_batch_sizes: tuple[int, ...]
    # Steps recorded by the profilers (section 9.1).
    profile_steps: int
    # Time the slow compilations (torch.compile; in JAX the op-by-op step, a threefry
    # initialisation, and the kernel-library row's two fresh processes, each compiling the
    # network): seconds to tens of seconds on a CPU, so not at smoke scale.
    compile: bool
    # The data-parallel runs of sections 9.3-9.5.
    parallel: DataParallelSizes


@dataclass(frozen=True)
class RingTimingSizes:
    """Lab 9, exercise 5's demo: the ring all-reduce by hand against ``dist.all_reduce``
    (gloo), timed on forked CPU processes, so the same at every scale but for the calls."""

    world_sizes: tuple[int, ...]
    # float32 numbers per rank: latency-bound (small) to bandwidth-bound (large) messages.
    numels: tuple[int, ...]
    # Timed calls per function and size (their median is reported), after warmup calls.
    calls: int
    warmup: int


SIZES: dict[str, dict[str, object]] = {
    # Chapter 8 (tune these values, keep the keywords).
    "optimizers": {
        "smoke": OptimizerSizes(
            train_examples=2_000,
            test_examples=1_000,
            epochs=1,
            batch_size=64,
            hidden=(64,),
            landscape_steps=300,
            sweep_learning_rates=(0.1,),
            sweep_batch_sizes=(32, 64),
            sweep_epochs=1,
            range_test_steps=60,
        ),
        "cpu": OptimizerSizes(
            train_examples=None,
            test_examples=None,
            epochs=3,
            batch_size=128,
            hidden=(256,),
            landscape_steps=2_000,
            sweep_learning_rates=(0.01, 0.03, 0.1, 0.3, 1.0),
            sweep_batch_sizes=(32, 128, 512),
            sweep_epochs=1,
            range_test_steps=300,
        ),
        "gpu": OptimizerSizes(
            train_examples=None,
            test_examples=None,
            epochs=15,
            batch_size=128,
            hidden=(512, 512),
            landscape_steps=5_000,
            sweep_learning_rates=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
            sweep_batch_sizes=(32, 64, 128, 256, 512, 1024),
            sweep_epochs=5,
            range_test_steps=1_000,
        ),
    },
    # Lab 9, exercise 5's demo. Chosen by measuring on 2 shared cores: with 4 ranks the ring
    # took about as long for 1 Ki as for 64 Ki floats (latency); at 4 Mi, far longer (bytes).
    "lab09_ring_timing": {
        "smoke": RingTimingSizes(
            world_sizes=(2, 4), numels=(1_024, 65_536, 4_194_304), calls=3, warmup=1
        ),
        "cpu": RingTimingSizes(
            world_sizes=(2, 4), numels=(1_024, 65_536, 4_194_304), calls=15, warmup=2
        ),
        "gpu": RingTimingSizes(
            world_sizes=(2, 4), numels=(1_024, 65_536, 4_194_304), calls=15, warmup=2
        ),
    },
    # Chapter 9.
    "performance": {
        "smoke": PerformanceSizes(
            train_examples=2_000,
            widths=(8, 16, 32, 64),
            batch_size=32,
            timed_steps=1,
            repeats=3,
            warmup=1,
            sweep_batch_sizes=(16, 32),
            profile_steps=3,
            compile=False,
            parallel=DataParallelSizes(
                examples=256,
                features=32,
                hidden=64,
                classes=4,
                batch_size=32,
                steps=8,
                learning_rate=0.2,
                seed=0,
            ),
        ),
        "cpu": PerformanceSizes(
            train_examples=10_000,
            widths=(16, 32, 64, 128),
            batch_size=256,
            timed_steps=3,
            repeats=5,
            warmup=1,
            sweep_batch_sizes=(64, 128, 256, 512),
            profile_steps=3,
            compile=True,
            parallel=DataParallelSizes(
                examples=1_024,
                features=32,
                hidden=64,
                classes=4,
                batch_size=32,
                steps=60,
                learning_rate=0.2,
                seed=0,
            ),
        ),
        "gpu": PerformanceSizes(
            train_examples=None,
            widths=(64, 256, 256, 256),
            batch_size=512,
            timed_steps=20,
            repeats=10,
            warmup=1,
            sweep_batch_sizes=(128, 256, 512, 1_024, 2_048),
            profile_steps=3,
            compile=True,
            parallel=DataParallelSizes(
                examples=4_096,
                features=32,
                hidden=64,
                classes=4,
                batch_size=32,
                steps=200,
                learning_rate=0.2,
                seed=0,
            ),
        ),
    },
}
