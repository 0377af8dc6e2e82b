"""Three scales, one notebook: every size a chapter uses is defined here, once.

``BOOK_SCALE`` picks the scale:

* ``smoke``: CI. Seconds per notebook on 2 CPU cores; checks that the code runs, not results.
* ``cpu``:   a laptop. A few minutes per notebook; results are meaningful.
* ``gpu``:   Colab or a data-centre GPU. The headline results quoted in the book.

Unset, it is ``gpu`` when an NVIDIA GPU is visible and ``cpu`` otherwise. The check is
framework-free (no torch or jax import), so both notebooks of a pair pick the same scale.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SCALES",
    "BackpropSizes",
    "ImdbSizes",
    "MnistSizes",
    "ScaleWarning",
    "SequenceSizes",
    "TextModelSizes",
    "TimingSizes",
    "current_scale",
    "gpu_visible",
    "scale_mismatch",
    "sizes",
]

SCALES = ("smoke", "cpu", "gpu")


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
class TextModelSizes:
    """One chapter-6 text classifier: its inputs, width and training run."""

    # Tokens kept per review (the rest is cut off).
    max_len: int
    # Embedding width (and the Transformer's model width).
    dim: int
    epochs: int
    batch_size: int
    # Adam's step size.
    learning_rate: float


@dataclass(frozen=True)
class ImdbSizes:
    """Chapter 6 and ``helpers.bench imdb``: three sentiment classifiers on IMDB."""

    # None: all 25,000 / all 25,000
    train_examples: int | None
    test_examples: int | None
    # A word enters the vocabulary when it occurs this often in the training reviews.
    min_freq: int
    # Hash buckets of the bag-of-n-grams model's bigrams.
    bigram_buckets: int
    bow: TextModelSizes
    cnn_lstm: TextModelSizes
    transformer: TextModelSizes


# One table for the whole course; later chapters add their task here, built with keywords.
_SIZES: dict[str, dict[str, object]] = {
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
    "timing": {
        "smoke": TimingSizes(repeats=3, n=10_000),
        "cpu": TimingSizes(repeats=20, n=1_000_000),
        "gpu": TimingSizes(repeats=50, n=10_000_000),
    },
    # Chapter 6: IMDB sentiment (tune these values, keep the keywords).
    "imdb": {
        "smoke": ImdbSizes(
            train_examples=2_000,
            test_examples=1_000,
            min_freq=2,
            bigram_buckets=50_000,
            bow=TextModelSizes(
                max_len=256, dim=16, epochs=3, batch_size=32, learning_rate=1e-2
            ),
            cnn_lstm=TextModelSizes(
                max_len=128, dim=32, epochs=2, batch_size=32, learning_rate=3e-3
            ),
            transformer=TextModelSizes(
                max_len=64, dim=32, epochs=2, batch_size=32, learning_rate=1e-3
            ),
        ),
        "cpu": ImdbSizes(
            train_examples=None,
            test_examples=None,
            min_freq=3,
            bigram_buckets=262_144,
            bow=TextModelSizes(
                max_len=1000, dim=16, epochs=4, batch_size=64, learning_rate=1e-2
            ),
            cnn_lstm=TextModelSizes(
                max_len=400, dim=64, epochs=3, batch_size=64, learning_rate=2e-3
            ),
            transformer=TextModelSizes(
                max_len=256, dim=64, epochs=3, batch_size=64, learning_rate=1e-3
            ),
        ),
        "gpu": ImdbSizes(
            train_examples=None,
            test_examples=None,
            min_freq=2,
            bigram_buckets=1_048_576,
            bow=TextModelSizes(
                max_len=2500, dim=64, epochs=8, batch_size=64, learning_rate=5e-3
            ),
            cnn_lstm=TextModelSizes(
                max_len=800, dim=128, epochs=6, batch_size=64, learning_rate=2e-3
            ),
            transformer=TextModelSizes(
                max_len=512, dim=128, epochs=8, batch_size=64, learning_rate=5e-4
            ),
        ),
    },
}


class ScaleWarning(UserWarning):
    """The scale does not fit the hardware (``gpu`` scale, but the framework has no GPU)."""


def scale_mismatch(scale: str, device_type: str, framework: str) -> str | None:
    """A loud message when ``scale`` is ``gpu`` but the framework runs on ``device_type``
    ``"cpu"`` (a CPU-only wheel on a GPU machine, a misconfigured runtime); else None."""
    if scale != "gpu" or device_type != "cpu":
        return None
    how = (
        "BOOK_SCALE=gpu"
        if os.environ.get("BOOK_SCALE")
        else "the GPU this machine shows"
    )
    return (
        f"\n{'!' * 78}\n"
        f"Scale 'gpu' (from {how}), but {framework} sees no GPU and runs on the CPU:\n"
        "the full-scale runs on this page would take many times longer than intended.\n"
        "To run at laptop scale instead, execute\n"
        '    import os; os.environ["BOOK_SCALE"] = "cpu"\n'
        "and run this cell again (or install a GPU build of the framework).\n"
        f"{'!' * 78}"
    )


def gpu_visible() -> bool:
    """True when an NVIDIA GPU is visible to this process (Colab GPU runtime, a CUDA box)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return True
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def current_scale() -> str:
    """The scale this process runs at: ``$BOOK_SCALE``, else ``gpu`` or ``cpu`` by hardware."""
    value = os.environ.get("BOOK_SCALE", "").strip().lower()
    if not value:
        return "gpu" if gpu_visible() else "cpu"
    if value not in SCALES:
        raise ValueError(
            f"BOOK_SCALE={os.environ['BOOK_SCALE']!r} is not a scale; "
            f"use one of {', '.join(SCALES)} (or leave it unset to pick by hardware)."
        )
    return value


def sizes(task: str, scale: str | None = None):
    """The sizes of ``task`` at ``scale`` (default: :func:`current_scale`)."""
    if task not in _SIZES:
        raise KeyError(
            f"unknown task {task!r}; known tasks: {', '.join(sorted(_SIZES))}"
        )
    scale = current_scale() if scale is None else scale
    if scale not in SCALES:
        raise ValueError(f"scale {scale!r} is not one of {', '.join(SCALES)}")
    return _SIZES[task][scale]
