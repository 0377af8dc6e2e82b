"""One set of tests for both halves: models, loaders and the training loop on tiny data."""

import numpy as np
import optax
import pytest
import torch
from flax import nnx

from helpers import jax as hj
from helpers import torch as ht


class TorchKit:
    H = ht
    label_dtype = "int64"

    def model(self, seed: int, hidden=(16,)):
        torch.manual_seed(seed)
        return ht.MLP(2, hidden, 2)

    def optimizer(self, model, lr: float):
        return torch.optim.Adam(model.parameters(), lr=lr)


class JaxKit:
    H = hj
    label_dtype = "int32"

    def model(self, seed: int, hidden=(16,)):
        return hj.MLP(2, hidden, 2, rngs=nnx.Rngs(seed))

    def optimizer(self, model, lr: float):
        return nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)


@pytest.fixture(params=[TorchKit, JaxKit], ids=["torch", "jax"])
def kit(request):
    return request.param()


def blobs(n: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs in 2-D, labels 0 and 1: separable by a line."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(np.uint8)
    x = rng.normal(size=(n, 2)).astype(np.float32) + np.where(
        y[:, None] == 1, 2.0, -2.0
    )
    return x.astype(np.float32), y


def train(kit, *, seed=0, epochs=3):
    x, y = blobs()
    model = kit.model(seed)
    loader = kit.H.ArrayLoader(x, y, 32, shuffle=True, seed=seed, drop_last=True)
    test = kit.H.ArrayLoader(*blobs(seed=1), 64)
    history = kit.H.fit(
        model,
        kit.optimizer(model, 0.05),
        loader,
        epochs=epochs,
        eval_loader=test,
        progress=False,
    )
    return model, loader, test, history


def test_fit_lowers_the_loss_and_learns(kit):
    _, loader, _, history = train(kit)
    assert len(history.epochs) == 3 and len(history.step_loss) == 3 * len(loader)
    first, last = np.mean(history.step_loss[:4]), np.mean(history.step_loss[-4:])
    assert last < 0.5 * first
    assert history.last("test_accuracy") > 0.95
    assert history.first_step_seconds > 0
    assert {"train_loss", "train_accuracy", "test_loss", "seconds"} <= history.epochs[
        0
    ].keys()


def test_fit_is_reproducible(kit):
    a = train(kit, seed=3, epochs=1)[3].step_loss
    b = train(kit, seed=3, epochs=1)[3].step_loss
    c = train(kit, seed=4, epochs=1)[3].step_loss
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert not np.allclose(a, c)


def test_evaluate_and_predict_agree(kit):
    model, _, test, _ = train(kit, epochs=1)
    scores = kit.H.evaluate(model, test)
    predictions = kit.H.predict(model, test)
    _, y = blobs(seed=1)
    assert predictions.shape == y.shape
    assert scores["accuracy"] == pytest.approx(np.mean(predictions == y))
    with pytest.raises(ValueError, match="unshuffled"):
        kit.H.predict(model, kit.H.ArrayLoader(*blobs(), 32, shuffle=True))


def test_loader_batches(kit):
    x = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10, dtype=np.uint8)
    loader = kit.H.ArrayLoader(x, y, 4, shuffle=True, seed=0)
    assert len(loader) == 3
    epoch1 = np.concatenate([np.asarray(yb) for _, yb in loader])
    epoch2 = np.concatenate([np.asarray(yb) for _, yb in loader])
    assert (
        sorted(epoch1.tolist()) == list(range(10))
        and epoch1.tolist() != epoch2.tolist()
    )
    xb, yb = next(iter(loader))
    assert str(yb.dtype).endswith(kit.label_dtype)
    np.testing.assert_array_equal(
        np.asarray(xb)[:, 0], np.asarray(yb)
    )  # rows stay paired
    assert len(kit.H.ArrayLoader(x, y, 4, drop_last=True)) == 2
    with pytest.raises(ValueError, match="x has 10 examples but y has 9"):
        kit.H.ArrayLoader(x, y[:9], 4)


def test_mlp_shapes_and_parameter_count(kit):
    model = kit.model(0, hidden=(8, 4))
    assert kit.H.count_params(model) == (2 * 8 + 8) + (8 * 4 + 4) + (4 * 2 + 2)
    loader = kit.H.ArrayLoader(*blobs(n=5), 5)
    xb, _ = next(iter(loader))
    assert tuple(model(xb).shape) == (5, 2)


def test_runtime_helpers(kit):
    H = kit.H
    info = H.runtime_info()
    assert {"framework", "version", "device", "scale"} <= info.keys()
    assert H.time_fn(lambda: H.to_device(np.ones(3, np.float32)), repeats=3) > 0
    moved = H.to_device({"a": np.ones(2, np.float32), "b": (np.zeros(1, np.float32),)})
    assert set(moved) == {"a", "b"} and isinstance(moved["b"], tuple)
    with pytest.raises(TypeError, match="cannot move a str"):
        H.to_device("text")
    with pytest.raises(ValueError, match="'highest', 'high' or 'medium'"):
        H.set_matmul_precision("ultra")
    H.set_matmul_precision("highest")
    assert H.seed_everything(0) is not None
