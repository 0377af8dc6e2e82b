"""The course's shared Flax NNX networks: the MLP and CNN of the early chapters, and chapter
5's CIFAR-10 networks, ``CifarNet`` (reused by chapters 9 and 10) and the outline's CNN,
fixed (``OutlineCNN``, section 5.2), and the weight average of a trained network
(``ema_model``); ``H.vision`` re-exports them."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from helpers.scale import cnn_feature_side
from helpers.whitening import _check_whitening

__all__ = [
    "CNN",
    "MLP",
    "CifarNet",
    "OutlineCNN",
    "count_params",
    "ema_model",
]


class MLP(nnx.Module):
    """A multi-layer perceptron: flatten, then Linear-ReLU blocks, then a Linear head.

    ``MLP(784, (256,), 10, rngs=nnx.Rngs(0))`` maps images ``(B, 28, 28)`` to logits ``(B, 10)``.
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        *,
        rngs: nnx.Rngs,
    ) -> None:
        widths = [in_features, *hidden]
        self.hidden = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(widths)]
        )
        self.head = nnx.Linear(widths[-1], out_features, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)  # (B, ...) -> (B, in_features)
        for layer in self.hidden:
            x = nnx.relu(layer(x))
        return self.head(x)  # (B, out_features) logits


class CNN(nnx.Module):
    """A small convolutional classifier for MNIST-sized images (chapter 3 onwards).

    Per entry of ``channels``: a 3x3 convolution ("SAME" padding), a 2x2 max pool that halves
    height and width, BatchNorm and ReLU (pooling first leaves BatchNorm and ReLU a quarter of
    the pixels); then flatten, a Linear-ReLU of width ``hidden``,
    Dropout with rate ``dropout`` (training only) and a Linear head. Channels last, the layout
    XLA's CPU convolutions prefer. With the defaults::

        (B, 28, 28, 1)            images, channels last (a (B, 28, 28) batch gets C=1 added)
        -> (B, 14, 14, 16)        conv 1->16, pool, BN, ReLU
        -> (B, 7, 7, 32)          conv 16->32, pool, BN, ReLU
        -> (B, 1568)              flatten
        -> (B, 128) -> (B, 10)    Linear-ReLU, Dropout, Linear: logits

    BatchNorm and Dropout behave differently in ``model.train()`` and ``model.eval()``: call
    ``model.eval()`` before evaluating. BatchNorm uses PyTorch's constants (momentum 0.9 here
    is PyTorch's 0.1; epsilon 1e-5). Raises ``ValueError`` if ``image_size`` is not divisible
    by ``2 ** len(channels)`` or ``dropout`` is not in [0, 1).
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32),
        hidden: int = 128,
        out_features: int = 10,
        *,
        image_size: int = 28,
        dropout: float = 0.25,
        rngs: nnx.Rngs,
    ) -> None:
        side = cnn_feature_side(channels, image_size, dropout)
        widths = [in_channels, *channels]
        self.convs = nnx.List(
            [
                nnx.Conv(
                    a, b, kernel_size=(3, 3), padding="SAME", use_bias=False, rngs=rngs
                )
                for a, b in itertools.pairwise(widths)
            ]
        )
        self.norms = nnx.List(
            [nnx.BatchNorm(b, momentum=0.9, epsilon=1e-5, rngs=rngs) for b in channels]
        )
        self.hidden = nnx.Linear(channels[-1] * side * side, hidden, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.out = nnx.Linear(hidden, out_features, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim == 3:
            x = x[..., None]  # (B, H, W) -> (B, H, W, 1)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = conv(x)  # (B, H, W, C)
            b, h, w, c = x.shape
            # 2x2 max pool as reshape + max: faster on XLA's CPU than a windowed reduce.
            x = x.reshape(b, h // 2, 2, w // 2, 2, c).max(
                axis=(2, 4)
            )  # (B, H/2, W/2, C)
            x = nnx.relu(norm(x))
        x = x.reshape(x.shape[0], -1)  # (B, s, s, C) -> (B, s*s*C)
        x = self.dropout(nnx.relu(self.hidden(x)))
        return self.out(x)  # (B, out_features) logits


def count_params(model: nnx.Module) -> int:
    """Number of trainable scalars (``nnx.Param`` leaves) in ``model``."""
    return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _max_pool2(x: jax.Array) -> jax.Array:
    """2x2 max-pool as a reshape and a max: windows that do not overlap need no general
    windowed reduction (``nnx.max_pool``)."""
    b, h, w, c = x.shape
    # An odd side drops its last row or column first, as PyTorch's MaxPool2d(2) does.
    x = x[:, : h // 2 * 2, : w // 2 * 2]
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))  # (B, H//2, W//2, C)


# PyTorch's default init of Conv2d and Linear weights: uniform in +-1/sqrt(fan_in), that is a
# variance of 1/(3 fan_in). Flax's default (LeCun normal, variance 1/fan_in) starts the weights
# sqrt(3) times larger; after BatchNorm that shrinks every relative update three-fold, and the
# same recipe learned markedly less in a short run. Both halves start from the same law.
_TORCH_INIT = nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


class _ConvBN(nnx.Module):
    def __init__(
        self, c_in: int, c_out: int, *, rngs: nnx.Rngs, pool: bool = False, dtype=None
    ):
        # dtype: the convolution's compute dtype (bfloat16 for mixed precision); its weights
        # stay float32 (param_dtype), and BatchNorm, left at dtype None, computes in float32.
        self.conv = nnx.Conv(
            c_in, c_out, (3, 3), padding=1, use_bias=False, kernel_init=_TORCH_INIT,
            dtype=dtype, rngs=rngs,
        )  # fmt: skip
        # Flax's momentum is the weight of the old running average: PyTorch's 0.1 is 0.9 here.
        self.bn = nnx.BatchNorm(c_out, momentum=0.9, epsilon=1e-5, rngs=rngs)
        self.pool = pool

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv(x)
        if self.pool:
            x = _max_pool2(x)
        return jax.nn.gelu(self.bn(x), approximate=True)


class _PatchWhitening(nnx.Module):
    """A fixed convolution (no padding) with given filters, a trained bias, then GELU."""

    def __init__(self, filters: np.ndarray, *, dtype=None) -> None:
        # (O, k, k, C) -> HWIO (k, k, C, O). A plain nnx.Variable, not an nnx.Param: split and
        # saved with the model, but neither differentiated nor updated by the optimizer.
        self.kernel = nnx.Variable(
            jnp.asarray(filters, jnp.float32).transpose(1, 2, 3, 0)
        )
        self.bias = nnx.Param(jnp.zeros(len(filters), jnp.float32))
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.kernel[...]
        if self.dtype is not None:
            x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
        x = jax.lax.conv_general_dilated(
            x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return jax.nn.gelu(x + self.bias[...].astype(x.dtype), approximate=True)


class CifarNet(nnx.Module):
    """An airbench-style CIFAR-10 network: a stem and three conv blocks, BatchNorm, GELU.

    ``widths = (stem, block1, block2, block3)``. The stem is a 3x3 convolution, BN and GELU;
    or, given ``whitening`` filters ``(widths[0], k, k, 3)``
    (:func:`helpers.whitening.patch_whitening`), a fixed kxk convolution without padding
    (32 -> 31 pixels for k = 2) whose bias alone is trained, then GELU. Each block is conv 3x3,
    2x2 max-pool (rounding down), BN, GELU, conv 3x3, BN, GELU; the head takes the maximum
    over the remaining 4x4 (3x3 after a whitening stem) positions and applies a linear layer
    without bias, scaled by ``logit_scale``. Input ``(B, 32, 32, 3)`` normalised, output
    logits ``float32 (B, num_classes)``. ``dtype=jnp.bfloat16``: mixed precision, PyTorch's
    autocast written into the layers: convolutions and the head compute in bfloat16 on
    float32 weights, BatchNorm (statistics included) in float32. Raises ``ValueError`` for
    other than four widths or filters of another shape.
    """

    def __init__(
        self,
        widths: tuple[int, ...] = (16, 32, 64, 128),
        num_classes: int = 10,
        *,
        whitening: np.ndarray | None = None,
        logit_scale: float = 1 / 9,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        if len(widths) != 4:
            raise ValueError(f"widths are (stem, block1, block2, block3), got {widths}")
        if whitening is None:
            self.stem = _ConvBN(3, widths[0], rngs=rngs, dtype=dtype)
        else:
            _check_whitening(whitening, widths[0])
            self.stem = _PatchWhitening(whitening, dtype=dtype)
        self.blocks = nnx.List(
            [
                nnx.Sequential(
                    _ConvBN(c_in, c_out, rngs=rngs, pool=True, dtype=dtype),
                    _ConvBN(c_out, c_out, rngs=rngs, dtype=dtype),
                )
                for c_in, c_out in itertools.pairwise(widths)
            ]
        )
        self.head = nnx.Linear(
            widths[-1], num_classes, use_bias=False, kernel_init=_TORCH_INIT,
            dtype=dtype, rngs=rngs,
        )  # fmt: skip
        self.logit_scale = logit_scale

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.stem(x)  # (B, 32, 32, w0); (B, 31, 31, w0) after a 2x2 whitening stem
        # each block: (B, 16, 16, w), (B, 8, 8, w), (B, 4, 4, w); 15, 7, 3 after 31
        for block in self.blocks:
            x = block(x)
        x = x.max(axis=(1, 2))  # (B, w3): global max-pool
        logits = self.head(x) * self.logit_scale  # (B, num_classes)
        # float32 logits whatever the compute dtype: the loss's log-softmax needs the range.
        return logits if logits.dtype == jnp.float32 else logits.astype(jnp.float32)


class OutlineCNN(nnx.Module):
    """The course outline's CIFAR-10 CNN with its flatten fixed (chapter 5, section 5.2).

    Three 3x3 convolutions (32, 64, 128 channels; the third without padding), ReLU, two 2x2
    max-pools, then linear layers 4608 -> 256 -> 10, Flax's default initialisation. Input
    ``float32 (B, 32, 32, 3)`` normalised (NHWC), output logits ``(B, 10)``. The outline
    flattens with ``view(-1, 128 * 4 * 4)`` and a 2,048-input ``fc1``, which the 6x6 map of the
    third convolution does not fit; this is the network with the per-example flatten and
    ``fc1`` sized from the real map.
    """

    def __init__(self, num_classes: int = 10, *, rngs: nnx.Rngs) -> None:
        self.conv1 = nnx.Conv(3, 32, (3, 3), padding=1, rngs=rngs)
        self.conv2 = nnx.Conv(32, 64, (3, 3), padding=1, rngs=rngs)
        self.conv3 = nnx.Conv(64, 128, (3, 3), padding="VALID", rngs=rngs)
        self.fc1 = nnx.Linear(128 * 6 * 6, 256, rngs=rngs)  # the real 6x6 feature map
        self.fc2 = nnx.Linear(256, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = _max_pool2(nnx.relu(self.conv1(x)))  # (B, 16, 16, 32)
        x = _max_pool2(nnx.relu(self.conv2(x)))  # (B, 8, 8, 64)
        x = nnx.relu(self.conv3(x))  # (B, 6, 6, 128): no padding, 8 - 2 = 6
        x = x.reshape(x.shape[0], -1)  # (B, 4608): one row per example
        return self.fc2(nnx.relu(self.fc1(x)))


class AveragedModel(nnx.Module):
    """An exponential moving average of a model's weights and BatchNorm statistics.

    The twin of ``torch.optim.swa_utils.AveragedModel`` with an EMA rule and
    ``use_buffers=True``: ``module`` is a copy of the model; each
    :meth:`update_parameters` call (the first copies) sets every ``nnx.Param`` and
    ``nnx.BatchStat`` to ``decay * avg + (1 - decay) * current`` (``optax.incremental_update``);
    calling it runs the copy. Works inside ``jax.jit`` (its state splits and merges with
    ``nnx.split``/``nnx.merge`` like any module). Raises ``ValueError`` unless
    ``0 <= decay <= 1``.
    """

    def __init__(self, model: nnx.Module, decay: float) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"expected a decay in [0, 1], got {decay}")
        # A copy with buffers of its own: a train step that donates the model's and the
        # average's state must not see one buffer twice (nnx.clone shares the arrays).
        graphdef, state = nnx.split(model)
        self.module = nnx.merge(graphdef, jax.tree.map(jnp.copy, state))
        self.decay = decay
        self.n_averaged = nnx.Variable(jnp.zeros((), jnp.int32))

    def update_parameters(self, model: nnx.Module) -> None:
        kinds = (nnx.Param, nnx.BatchStat)
        # The first update copies the weights (step size 1), as PyTorch's does.
        step_size = jnp.where(self.n_averaged[...] == 0, 1.0, 1.0 - self.decay)
        averaged = optax.incremental_update(
            nnx.state(model, kinds), nnx.state(self.module, kinds), step_size
        )
        nnx.update(self.module, averaged)
        self.n_averaged[...] += 1

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.module(x)


def ema_model(model: nnx.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``model``'s weights and BatchNorm statistics.

    Returns an :class:`AveragedModel` (a copy of ``model``): call
    ``average.update_parameters(model)`` after every optimiser step (inside the jitted step,
    or on the merged objects); the first call copies the weights, each later one sets
    ``w_avg <- decay * w_avg + (1 - decay) * w``, BatchNorm's running statistics included
    (averaged alongside the weights, not recomputed for the averaged weights). Evaluate it
    like the model, ``average(x)``. Polyak and Juditsky (1992); related to, but simpler than,
    airbench's Lookahead average. Raises ``ValueError`` unless ``0 <= decay <= 1``.
    """
    return AveragedModel(model, decay)
