"""Chapter 5: CIFAR-10 image classification.

This topic's size dataclasses and its entries of the course's one table of sizes
(:mod:`helpers.scale` merges them).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SIZES", "Cifar10Sizes"]


@dataclass(frozen=True)
class Cifar10Sizes:
    """Chapter 5 and ``helpers.bench cifar10``: the outline's CNN and the fast recipe."""

    # None: all 50,000 training images (minus the validation split) / all 10,000 test images
    train_examples: int | None
    test_examples: int | None
    # Taken from the end of the training split, never trained on.
    val_examples: int
    # The fast recipe: airbench-style net, SGD-Nesterov, label smoothing, crop + flip.
    epochs: int
    # Epochs of the JAX half. XLA's CPU backend runs this network's training step slower than
    # PyTorch, even with its own kernels in place of YNNPACK's (chapter 5's bench.jsonl), so
    # at cpu scale JAX gets fewer epochs to keep its training near 5 minutes; equal elsewhere.
    jax_epochs: int
    batch_size: int
    # Channels of the stem, then of each of the three conv blocks.
    widths: tuple[int, ...]
    # "conv": a 3x3 convolution, BatchNorm and GELU, trained. "whitening": airbench's fixed
    # 2x2 convolution whose filters whiten the image's 2x2 patches (H.vision.patch_whitening;
    # widths[0] must be 2 * 2 * 2 * 3 = 24), only its bias trained; 31x31 maps after it, so
    # the later blocks' maps are smaller (at the cpu widths ~8 % fewer multiply-adds).
    stem: str
    # Peak step size of the warmup-then-linear-decay schedule; warmup as a fraction of steps.
    learning_rate: float
    warmup: float
    momentum: float
    weight_decay: float
    label_smoothing: float
    # Random-crop padding, pixels on each side.
    pad: int
    # Weight averaging: the decay per step of the exponential moving average of the weights
    # and BatchNorm statistics (H.vision.ema_model), evaluated beside the trained weights.
    # About 1 / (1 - decay) steps weigh in: 10 of smoke's 60; 100 of cpu's ~1,050 in PyTorch
    # (525 in JAX's 3 epochs); 100 of gpu's ~1,400 (untuned).
    ema_decay: float
    # Mixed precision: the dtype convolutions and matrix products compute in ("bfloat16":
    # PyTorch's autocast, Flax's dtype=); weights, BatchNorm and the loss stay float32. Only
    # the GPU uses it: on the CPU the gain depends on the chip (on an AMD EPYC one epoch ran
    # 1.5x the img/s in PyTorch and 0.9x in JAX: chapter 5's bench.jsonl, its only cpu
    # records in bfloat16; every other cpu record is float32).
    compute_dtype: str
    # Steps timed for the seed-style DataLoader loop against the on-device loop (section 5.6).
    baseline_steps: int
    # The outline's CNN (section 5.2): examples, epochs, batch and Adam's step size.
    outline_train_examples: int | None
    outline_epochs: int
    outline_batch_size: int
    outline_learning_rate: float
    # Which images the fast recipe trains and tests on: "auto", what H.load_cifar10 finds (the
    # canonical files, else the course's JPEG copy); "sample", the canonical first 4,000 train
    # / 1,000 test images, exact pixels; "sample-jpeg", the JPEG copy's versions of the same
    # images (the pair measures what the JPEG re-encoding costs).
    data: str = "auto"

    def __post_init__(self) -> None:
        if self.data not in ("auto", "sample", "sample-jpeg"):
            raise ValueError(
                f"data is 'auto', 'sample' or 'sample-jpeg', got {self.data!r}"
            )
        if self.stem not in ("conv", "whitening"):
            raise ValueError(f"stem is 'conv' or 'whitening', got {self.stem!r}")
        if self.stem == "whitening" and self.widths[0] != 24:
            raise ValueError(
                f"a 2x2 whitening stem has 2 * 2 * 2 * 3 = 24 channels: widths[0] must be "
                f"24, got {self.widths}"
            )


SIZES: dict[str, dict[str, object]] = {
    # Chapter 5.
    "cifar10": {
        "smoke": Cifar10Sizes(
            train_examples=2_000,
            test_examples=500,
            val_examples=500,
            epochs=2,
            jax_epochs=2,
            batch_size=50,
            widths=(24, 16, 32, 64),
            stem="whitening",
            learning_rate=0.2,
            warmup=0.2,
            momentum=0.9,
            weight_decay=5e-4,
            label_smoothing=0.2,
            pad=2,
            ema_decay=0.9,
            compute_dtype="float32",
            baseline_steps=4,
            outline_train_examples=1_000,
            outline_epochs=1,
            outline_batch_size=100,
            outline_learning_rate=1e-3,
        ),
        "cpu": Cifar10Sizes(
            train_examples=None,
            test_examples=None,
            val_examples=5_000,
            # 6 epochs reached 83 %: whitened, 83.44-83.80 % over three seeds in 209-225 s of
            # training on an Intel Xeon (2 cores, 2026-12-01), 246-309 s on the same machine
            # three hours later; 3x3-stem runs took 245-353 s (chapter 5's bench.jsonl). 5 epochs
            # of an older recipe (3x3 stem, smoothing 0.2) reached 81.93 % (2026-11-30); 5 of
            # this one are untried. AMD EPYC (2 cores, 2026-12-02): 148-169 s, 83.59-83.63 %.
            epochs=6,
            # 3 on one XLA device with YNNPACK off (helpers.vision.skip_ynnpack_on_cpu): 222-237 s,
            # 568-604 img/s, 79.99-80.08 % (80.96-81.36 % with flips) on an Intel Xeon (2 cores,
            # 2026-12-02; chapter 5's bench.jsonl). 4 would take about 300 s of training
            # there, at the 5-minute limit (an AMD EPYC trained 3 in 129-137 s, 979-1,038
            # img/s, 80.08-80.22 %, 2026-12-02). With YNNPACK (jaxlib 0.10.2's default) 3
            # epochs took 489 s on one device (274.9 img/s) and, whitened, 273-339 s on 2 XLA
            # devices (2026-12-01).
            jax_epochs=3,
            batch_size=256,
            widths=(24, 32, 64, 128),
            # A trained 3x3 stem of 16 channels before (the older cpu records). Same Xeon, same
            # day, three seeds each, the two stems' runs alternated seed by seed (bench.jsonl,
            # 2026-12-01, `helpers.bench --versus`): PyTorch 82.98-83.59 % with it in 325 s
            # (median), 83.44-83.80 % whitened in 297 s; JAX (3 epochs, 2 XLA devices)
            # 79.27-80.02 % with it in 307 s, 79.98-80.38 % whitened in 321 s: 0.3 points
            # more in JAX (median), none measurable in PyTorch (0.1, inside the seeds'
            # spread); 9 % less time in PyTorch, 4 % more in JAX (overlapping ranges).
            stem="whitening",
            # 0.4 and 0.1 (0.2 and 0.2 before): the best pair of the gpu sweep, measured here
            # too (chapter 5's bench.jsonl): PyTorch 83.14 -> 83.59 %, JAX with 3 epochs on 2
            # XLA devices 79.00 -> 79.27 % (79.86 -> 80.04 % with flips).
            learning_rate=0.4,
            warmup=0.2,
            momentum=0.9,
            weight_decay=5e-4,
            label_smoothing=0.1,
            pad=2,
            ema_decay=0.99,
            compute_dtype="float32",
            baseline_steps=40,
            outline_train_examples=10_000,
            outline_epochs=2,
            outline_batch_size=100,
            outline_learning_rate=1e-3,
        ),
        "gpu": Cifar10Sizes(
            train_examples=None,
            test_examples=None,
            val_examples=5_000,
            # One H200, bf16, the JPEG copy (chapter 5's bench.jsonl): 89.7 % with flips in
            # both frameworks, PyTorch 8.5 s of training, JAX 5.3 s. Not the 94 % of airbench:
            # 12-40 epochs and 11 other step sizes, weight decays, momenta, batch sizes and
            # smoothings (the `--set` runs there) all stayed at 88.5-90.5 %, so these stay. The
            # JPEG copy probably costs part of the gap: 2-4 points for the cpu recipe on a
            # 4,000-image subset (the data=sample-jpeg / data=sample rows); at full scale, not
            # measured.
            epochs=16,
            jax_epochs=16,
            batch_size=512,
            widths=(32, 64, 256, 256),
            # The stem of all the gpu records; the whitening stem has not run on a GPU yet.
            stem="conv",
            learning_rate=0.2,
            warmup=0.2,
            momentum=0.9,
            weight_decay=5e-4,
            label_smoothing=0.2,
            pad=2,
            ema_decay=0.99,
            compute_dtype="bfloat16",
            baseline_steps=100,
            outline_train_examples=None,
            outline_epochs=10,
            outline_batch_size=100,
            outline_learning_rate=1e-3,
        ),
    },
}
