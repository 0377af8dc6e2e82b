"""The shared CNN (chapter 3 onwards), by its outputs and by one training run on tiny data.

Same pattern as ``test_models.py``: the same weights in both frameworks give the same logits
(PyTorch is channels first, JAX channels last, so the weights are transposed on the way), and
a few steps on a tiny batch fit it, in both frameworks.
"""

import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import nnx

from helpers import jax as hj
from helpers import torch as ht


def tiny_images(n: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random float32 images (n, 28, 28) in [0, 1], labels 0..9, every class present."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, 28, 28)).astype(np.float32)
    return x, (np.arange(n) % 10).astype(np.uint8)


class TorchCnn:
    H = ht

    def model(self, **kw):
        torch.manual_seed(0)
        return ht.CNN(**kw)

    def optimizer(self, model, lr):
        return torch.optim.Adam(model.parameters(), lr=lr)

    def logits(self, model, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()


class JaxCnn:
    H = hj

    def model(self, **kw):
        return hj.CNN(**kw, rngs=nnx.Rngs(0))

    def optimizer(self, model, lr):
        return nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)

    def logits(self, model, x: np.ndarray) -> np.ndarray:
        return np.asarray(model(jnp.asarray(x)))


KITS = {"torch": TorchCnn(), "jax": JaxCnn()}


@pytest.fixture(params=list(KITS))
def kit(request):
    return KITS[request.param]


def test_cnn_maps_images_to_logits_with_or_without_a_channel_axis(kit):
    model = kit.model()
    model.eval()
    x, _ = tiny_images(4)
    # PyTorch wants channels first (B, 1, 28, 28), JAX channels last (B, 28, 28, 1).
    with_channel = x[:, None] if kit is KITS["torch"] else x[..., None]
    out = kit.logits(model, x)
    assert out.shape == (4, 10) and out.dtype == np.float32
    np.testing.assert_array_equal(out, kit.logits(model, with_channel))


def test_cnn_has_the_same_parameter_count_in_both_frameworks():
    kw = {"channels": (4, 8), "hidden": 16}
    # conv 1->4 and 4->8 (3x3, no bias), BN scale+shift, Linear 8*7*7->16, Linear 16->10.
    want = 9 * 4 + 2 * 4 + 9 * 4 * 8 + 2 * 8 + (8 * 49 * 16 + 16) + (16 * 10 + 10)
    assert ht.count_params(TorchCnn().model(**kw)) == want
    assert hj.count_params(JaxCnn().model(**kw)) == want


def test_torch_and_jax_cnns_agree_on_the_same_weights():
    """JAX's initial weights copied into the PyTorch CNN (eval mode): the same logits."""
    kw = {"channels": (4, 8), "hidden": 16}
    jm, tm = JaxCnn().model(**kw), TorchCnn().model(**kw)
    jm.eval()
    tm.eval()
    convs = [m for m in tm.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in tm.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for conv, jconv in zip(convs, jm.convs, strict=True):
            # Flax (kh, kw, in, out) -> PyTorch (out, in, kh, kw).
            conv.weight.copy_(
                torch.tensor(np.asarray(jconv.kernel[...]).transpose(3, 2, 0, 1))
            )
        # The first Linear reads a flattened (s, s, C) map in JAX, (C, s, s) in PyTorch.
        k = np.asarray(jm.hidden.kernel[...]).reshape(7, 7, 8, 16).transpose(2, 0, 1, 3)
        linears[0].weight.copy_(torch.tensor(k.reshape(-1, 16).T))
        linears[0].bias.copy_(torch.tensor(np.asarray(jm.hidden.bias[...])))
        linears[1].weight.copy_(torch.tensor(np.asarray(jm.out.kernel[...]).T))
        linears[1].bias.copy_(torch.tensor(np.asarray(jm.out.bias[...])))
    x, _ = tiny_images(8)
    want = JaxCnn().logits(jm, x)
    np.testing.assert_allclose(TorchCnn().logits(tm, x), want, rtol=1e-4, atol=1e-4)
    # The test can fail: PyTorch's own initialisation gives other logits.
    assert not np.allclose(TorchCnn().logits(TorchCnn().model(**kw).eval(), x), want)


def test_cnn_train_mode_is_random_and_eval_mode_is_not(kit):
    model = kit.model(dropout=0.5)
    x, _ = tiny_images(8)
    model.eval()
    np.testing.assert_array_equal(kit.logits(model, x), kit.logits(model, x))
    model.train()
    assert not np.allclose(kit.logits(model, x), kit.logits(model, x))


def test_a_few_training_steps_fit_a_tiny_batch(kit):
    x, y = tiny_images(32)
    model = kit.model(channels=(8, 16), hidden=32, dropout=0.0)
    loader = kit.H.ArrayLoader(x, y, 32)  # one batch: each epoch is one step
    optimizer = kit.optimizer(model, 3e-3)
    history = kit.H.fit(model, optimizer, loader, epochs=1, progress=False)
    before = kit.H.evaluate(model, loader)
    kit.H.fit(model, optimizer, loader, epochs=40, progress=False)
    after = kit.H.evaluate(model, loader)
    assert len(history.step_loss) == 1 and np.isfinite(history.step_loss[0])
    # Random pixels and labels: only memorising them drives the loss down.
    assert after["loss"] < 0.5 * before["loss"] and after["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"image_size": 30}, "image_size 30 must be divisible by 2\\*\\*len"),
        ({"channels": ()}, "must be divisible by 2\\*\\*len"),
        ({"dropout": 1.0}, "dropout must be in \\[0, 1\\), got 1.0"),
    ],
)
def test_cnn_rejects_sizes_it_cannot_build(kit, kw, message):
    with pytest.raises(ValueError, match=message):
        kit.model(**kw)
