"""One set of tests for both halves: models, loaders and the training loop on tiny data.

The pattern to copy: a kit per framework (``TorchKit``, ``JaxKit``) holds the few lines that
differ, and each test runs once per kit. A test of a training loop compares it with a loop
written out by hand, parameter for parameter, rather than only checking that the loss falls.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from flax import nnx
from torch import nn

from helpers import jax as hj
from helpers import torch as ht
from helpers.system import cpu_name


class TorchDropoutNet(nn.Module):
    """A model whose train and eval modes differ: dropout between two layers."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden, self.drop, self.head = (
            nn.Linear(2, 32),
            nn.Dropout(0.5),
            nn.Linear(32, 5),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(torch.relu(self.hidden(x))))  # (B, 5)


class JaxDropoutNet(nnx.Module):
    """A model whose train and eval modes differ: dropout between two layers."""

    def __init__(self, *, rngs: nnx.Rngs) -> None:
        self.hidden, self.head = (
            nnx.Linear(2, 32, rngs=rngs),
            nnx.Linear(32, 5, rngs=rngs),
        )
        self.drop = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.drop(nnx.relu(self.hidden(x))))  # (B, 5)


class TorchKit:
    H = ht
    label_dtype = "int64"

    def model(self, seed: int, hidden=(16,)):
        torch.manual_seed(seed)
        return ht.MLP(2, hidden, 2)

    def dropout_model(self, seed: int):
        torch.manual_seed(seed)
        return TorchDropoutNet()

    def optimizer(self, model, lr: float):
        return torch.optim.Adam(model.parameters(), lr=lr)

    def sgd(self, model, lr: float):
        return torch.optim.SGD(model.parameters(), lr=lr)

    def params(self, model) -> list[np.ndarray]:
        return [p.detach().cpu().numpy().copy() for p in model.parameters()]

    def eval_logits(self, model, x: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    def reference_sgd(self, model, x, y, *, batch_size, epochs, lr):
        """Plain SGD written out: batches in row order, grad, ``p -= lr * g``.

        Returns each step's loss and number of right predictions (before that step's update).
        """
        losses, correct = [], []
        for _ in range(epochs):
            for start in range(0, len(x), batch_size):
                xb = torch.from_numpy(x[start : start + batch_size])
                yb = torch.from_numpy(y[start : start + batch_size]).long()
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
                grads = torch.autograd.grad(loss, list(model.parameters()))
                with torch.no_grad():
                    for p, g in zip(model.parameters(), grads, strict=True):
                        p -= lr * g
                losses.append(loss.item())
                correct.append(int((logits.argmax(-1) == yb).sum()))
        return losses, correct


class JaxKit:
    H = hj
    label_dtype = "int32"

    def model(self, seed: int, hidden=(16,)):
        return hj.MLP(2, hidden, 2, rngs=nnx.Rngs(seed))

    def dropout_model(self, seed: int):
        return JaxDropoutNet(rngs=nnx.Rngs(params=seed, dropout=seed + 1))

    def optimizer(self, model, lr: float):
        return nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)

    def sgd(self, model, lr: float):
        return nnx.Optimizer(model, optax.sgd(lr), wrt=nnx.Param)

    def params(self, model) -> list[np.ndarray]:
        return [np.asarray(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))]

    def eval_logits(self, model, x: np.ndarray) -> np.ndarray:
        model.eval()
        return np.asarray(model(jnp.asarray(x)))

    def reference_sgd(self, model, x, y, *, batch_size, epochs, lr):
        """Plain SGD written out: batches in row order, grad, ``p - lr * g``.

        Returns each step's loss and number of right predictions (before that step's update).
        """
        graphdef, params = nnx.split(model, nnx.Param)

        def loss_fn(params, xb, yb):
            logits = nnx.merge(graphdef, params)(xb)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
            return loss, logits

        # Compiled (eager is seconds slower); has_aux: the logits come back beside the loss.
        grad_fn = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
        losses, correct = [], []
        for _ in range(epochs):
            for start in range(0, len(x), batch_size):
                xb = jnp.asarray(x[start : start + batch_size])
                yb = jnp.asarray(y[start : start + batch_size], jnp.int32)
                (loss, logits), grads = grad_fn(params, xb, yb)
                params = jax.tree.map(lambda p, g: p - lr * g, params, grads)
                losses.append(float(loss))
                correct.append(int((logits.argmax(-1) == yb).sum()))
        nnx.update(model, params)
        return losses, correct


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


# --- the loop against a loop written out by hand ------------------------------------------------
def cross_entropy_per_example(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``-log softmax(logits)[y]`` for each row, in float64 numpy: ``(N, C), (N,) -> (N,)``."""
    z = logits.astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -log_p[np.arange(len(y)), y]


def test_fit_matches_a_reference_loop_parameter_for_parameter(kit):
    # 10 rows in batches of 4: the last batch holds 2. Overlapping blobs keep gradients alive.
    x, y = blobs(n=10, seed=5)
    x = x / 2
    model, reference = kit.model(7), kit.model(7)
    np.testing.assert_array_equal(kit.params(model)[0], kit.params(reference)[0])
    loader = kit.H.ArrayLoader(x, y, 4)
    history = kit.H.fit(model, kit.sgd(model, 0.5), loader, epochs=3, progress=False)
    losses, correct = kit.reference_sgd(reference, x, y, batch_size=4, epochs=3, lr=0.5)
    assert len(history.step_loss) == len(losses) == 9
    np.testing.assert_allclose(history.step_loss, losses, rtol=1e-5)
    for got, want in zip(kit.params(model), kit.params(reference), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The test can fail: three epochs of SGD moved the weights far from their start.
    assert not np.allclose(kit.params(model)[0], kit.params(kit.model(7))[0], atol=1e-2)
    assert history["train_loss"] == pytest.approx(
        [np.mean(losses[i : i + 3]) for i in (0, 3, 6)], rel=1e-5
    )
    # Training accuracy: right predictions over the epoch's 10 examples, counted as it trains.
    assert history["train_accuracy"] == [
        sum(correct[i : i + 3]) / 10 for i in (0, 3, 6)
    ]
    assert 0 < sum(correct) < 30  # some right and some wrong: a miscount would show


def test_evaluate_averages_over_examples_not_batches(kit):
    # 9 rows in batches of 4, 4, 1; the lone last row is made confidently wrong, so a mean
    # over batches (which weighs that one row like four) is far from the mean over examples.
    x, y = blobs(n=9, seed=2)
    model = kit.model(0)
    x[8] *= 20
    y[8] = 1 - kit.eval_logits(model, x[8:]).argmax(-1)[0]
    scores = kit.H.evaluate(model, kit.H.ArrayLoader(x, y, 4))
    logits = kit.eval_logits(model, x)
    per_example = cross_entropy_per_example(logits, y)
    assert scores["loss"] == pytest.approx(per_example.mean(), rel=1e-5)
    assert scores["accuracy"] == pytest.approx(np.mean(logits.argmax(-1) == y))
    per_batch = np.mean([per_example[i : i + 4].mean() for i in (0, 4, 8)])
    assert abs(per_batch - per_example.mean()) > 0.25  # the data tells the two apart


def dropout_data(n: int = 64, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)).astype(np.float32), rng.integers(0, 5, n).astype(
        np.uint8
    )


def test_evaluate_and_predict_switch_to_eval_mode(kit):
    x, y = dropout_data()
    model = kit.dropout_model(0)
    loader = kit.H.ArrayLoader(x, y, 16)
    model.train()  # as after a training epoch: evaluate must switch dropout off itself
    scores = kit.H.evaluate(model, loader)
    model.train()
    predictions = kit.H.predict(model, loader)
    logits = kit.eval_logits(model, x)  # the deterministic, eval-mode outputs
    assert scores["loss"] == pytest.approx(
        cross_entropy_per_example(logits, y).mean(), rel=1e-5
    )
    np.testing.assert_array_equal(predictions, logits.argmax(-1))


def test_fit_trains_in_train_mode_every_epoch(kit):
    """With lr = 0 the weights never move, so each step's loss in eval mode is known: the
    steps of fit must differ from it (dropout on), even for a model handed over in eval mode
    and after fit's own evaluation switched the model to eval mode at the end of epoch 1."""
    x, y = dropout_data()
    model = kit.dropout_model(0)
    model.eval()  # as after an evaluate() before training, the way notebooks often start
    loader = kit.H.ArrayLoader(x, y, 16)
    history = kit.H.fit(
        model, kit.sgd(model, 0.0), loader, epochs=2, eval_loader=loader, progress=False
    )
    logits = kit.eval_logits(model, x)
    per_example = cross_entropy_per_example(logits, y)
    eval_mode_steps = [per_example[i : i + 16].mean() for i in range(0, 64, 16)] * 2
    assert len(history.step_loss) == len(eval_mode_steps) == 8
    for got, eval_mode in zip(history.step_loss, eval_mode_steps, strict=True):
        assert abs(got - eval_mode) > 1e-3
    # fit's evaluation itself ran in eval mode.
    assert history["test_loss"] == pytest.approx([per_example.mean()] * 2, rel=1e-5)


def test_runtime_info_says_which_framework_runs_where(kit):
    info = kit.H.runtime_info()
    framework = "torch" if kit.H is ht else "jax"
    assert info["framework"] == framework
    assert info["version"] == (
        torch.__version__ if framework == "torch" else jax.__version__
    )
    # This machine (and CI) has no GPU: the device line names the CPU.
    assert info["device"] == f"cpu ({cpu_name()})"
    assert info["scale"] == "smoke"  # conftest sets BOOK_SCALE=smoke
    if framework == "torch":
        assert info["threads"] == str(torch.get_num_threads())


def test_fit_evaluates_with_its_own_loss_function(kit):
    """A custom ``loss_fn`` serves both the training steps and fit's evaluation."""
    cross_entropy = kit.H.cross_entropy

    def doubled(logits, labels):
        return 2 * cross_entropy(logits, labels)

    x, y = blobs(n=20, seed=4)
    model = kit.model(0)
    loader = kit.H.ArrayLoader(x, y, 8)
    history = kit.H.fit(
        model,
        kit.sgd(model, 0.1),
        loader,
        epochs=1,
        loss_fn=doubled,
        eval_loader=loader,
        progress=False,
    )
    plain = kit.H.evaluate(model, loader)["loss"]
    assert history.last("test_loss") == pytest.approx(2 * plain, rel=1e-5)


def test_time_fn_times_each_call(kit):
    calls = []

    def sleepy():
        calls.append(1)
        time.sleep(0.01)
        return kit.H.to_device(np.ones(1, np.float32))

    seconds = kit.H.time_fn(sleepy, repeats=3, warmup=2)
    assert (
        len(calls) == 5 and 0.009 < seconds < 0.5
    )  # the median of one call, in seconds
    calls.clear()
    kit.H.time_fn(sleepy)
    assert len(calls) == 11  # by default one warm-up call, then ten timed ones


def test_set_matmul_precision_sets_the_framework_flag(kit):
    def current():
        if kit.H is ht:
            return torch.get_float32_matmul_precision()
        return jax.config.jax_default_matmul_precision

    expected = {"highest": "highest", "high": "high", "medium": "medium"}
    if kit.H is hj:
        expected["medium"] = "default"  # JAX's name for its fastest float32 products
    try:
        for level, flag in expected.items():
            kit.H.set_matmul_precision(level)
            assert current() == flag
    finally:
        kit.H.set_matmul_precision("highest")


def test_jax_fit_compiles_its_train_step_once(caplog):
    # A fresh model's arrays are uncommitted and a step's outputs committed: without
    # committing the state first, jit compiled the same step twice in every fit.
    model = hj.MLP(784, (16,), 10, rngs=nnx.Rngs(0))
    # A learning rate no other test uses, so the step is not already compiled.
    optimizer = nnx.Optimizer(model, optax.sgd(0.0123), wrt=nnx.Param)
    x = np.random.default_rng(0).random((64, 784), dtype=np.float32)
    loader = hj.ArrayLoader(x, np.arange(64) % 10, 16)
    loss_fn = lambda logits, y: hj.cross_entropy(logits, y) * 1.0  # noqa: E731
    with caplog.at_level("WARNING"), jax.log_compiles(True):
        hj.fit(model, optimizer, loader, epochs=2, loss_fn=loss_fn, progress=False)
    compiles = [r for r in caplog.messages if "compilation of jit(train_step)" in r]
    assert len(compiles) == 1, compiles


def test_fit_progress_bar_ends_each_epoch_on_its_mean_loss(kit, capsys):
    """With fewer than 51 steps an epoch, the bar's in-epoch loss is step 1's: each epoch
    ends by showing its mean loss instead."""
    x, y = blobs(n=20, seed=4)
    model = kit.model(0)
    loader = kit.H.ArrayLoader(x, y, 8)
    history = kit.H.fit(
        model, kit.sgd(model, 0.1), loader, epochs=2, eval_loader=loader
    )
    bar = capsys.readouterr().err
    for epoch in (1, 2):
        losses = history.step_loss[(epoch - 1) * len(loader) : epoch * len(loader)]
        assert f"epoch={epoch}, loss={np.mean(losses):.4f}, test_acc=" in bar
