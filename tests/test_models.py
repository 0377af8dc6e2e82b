"""The models by their outputs, not their shapes.

The pattern to copy for a shared model: (1) load the same weights into both frameworks' models
and into a forward pass written out in numpy, and compare all three on the same input; (2)
check that it learns a problem its simpler cousin cannot (XOR: no linear model solves it).
"""

import itertools

import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import nnx
from torch import nn

from helpers import jax as hj
from helpers import torch as ht

# (W (in, out), b (out,)) per layer, hidden layers first, the head last.
Weights = list[tuple[np.ndarray, np.ndarray]]


class TorchKit:
    H = ht

    def model(self, in_features, hidden, out_features, seed=0):
        torch.manual_seed(seed)
        return ht.MLP(in_features, hidden, out_features)

    def linears(self, model) -> list[nn.Linear]:
        return [m for m in model.modules() if isinstance(m, nn.Linear)]

    def get_weights(self, model) -> Weights:
        # PyTorch stores weight as (out, in): transpose to the (in, out) of x @ W.
        return [
            (m.weight.detach().numpy().T, m.bias.detach().numpy())
            for m in self.linears(model)
        ]

    def set_weights(self, model, weights: Weights) -> None:
        with torch.no_grad():
            for m, (w, b) in zip(self.linears(model), weights, strict=True):
                m.weight.copy_(torch.tensor(w.T))
                m.bias.copy_(torch.tensor(b))

    def forward(self, model, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    def adam(self, model, lr):
        return torch.optim.Adam(model.parameters(), lr=lr)


class JaxKit:
    H = hj

    def model(self, in_features, hidden, out_features, seed=0):
        return hj.MLP(in_features, hidden, out_features, rngs=nnx.Rngs(seed))

    def linears(self, model) -> list[nnx.Linear]:
        return [*model.hidden, model.head]

    def get_weights(self, model) -> Weights:
        # Flax stores kernel as (in, out) already.
        return [
            (np.asarray(m.kernel[...]), np.asarray(m.bias[...]))
            for m in self.linears(model)
        ]

    def set_weights(self, model, weights: Weights) -> None:
        for m, (w, b) in zip(self.linears(model), weights, strict=True):
            m.kernel[...] = jnp.asarray(w)
            m.bias[...] = jnp.asarray(b)

    def forward(self, model, x: np.ndarray) -> np.ndarray:
        return np.asarray(model(jnp.asarray(x)))

    def adam(self, model, lr):
        return nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)


KITS = {"torch": TorchKit(), "jax": JaxKit()}


@pytest.fixture(params=list(KITS))
def kit(request):
    return KITS[request.param]


def numpy_mlp(weights: Weights, x: np.ndarray) -> np.ndarray:
    """The MLP by hand: flatten, then ``relu(h @ W + b)`` per hidden layer, then the head."""
    h = x.reshape(len(x), -1).astype(np.float64)
    for w, b in weights[:-1]:
        h = np.maximum(h @ w + b, 0.0)
    w, b = weights[-1]
    return h @ w + b


def random_weights(widths: list[int], seed: int = 0) -> Weights:
    rng = np.random.default_rng(seed)
    return [
        (
            rng.normal(size=(a, b)).astype(np.float32),
            rng.normal(size=b).astype(np.float32),
        )
        for a, b in itertools.pairwise(widths)
    ]


def test_mlp_computes_the_forward_pass_written_by_hand(kit):
    # Inputs (B, 2, 3) are flattened to 6 features; 6 -> 5 -> 4 -> 3.
    model = kit.model(6, (5, 4), 3)
    weights = random_weights([6, 5, 4, 3])
    kit.set_weights(model, weights)
    x = np.random.default_rng(1).normal(size=(16, 2, 3)).astype(np.float32)
    want = numpy_mlp(weights, x)
    np.testing.assert_allclose(kit.forward(model, x), want, rtol=1e-4, atol=1e-4)
    # The test can fail: some ReLUs are active and some are not, so dropping them shows.
    hidden = x.reshape(16, -1) @ weights[0][0] + weights[0][1]
    assert (hidden < 0).any() and (hidden > 0).any()
    no_relu = x.reshape(16, -1) @ weights[0][0] + weights[0][1]
    for w, b in weights[1:]:
        no_relu = no_relu @ w + b
    assert not np.allclose(no_relu, want, atol=1e-2)


def test_torch_and_jax_mlps_agree_on_the_same_weights():
    """JAX's freshly initialised weights, copied into the PyTorch MLP: same outputs."""
    jax_model = JaxKit().model(6, (8, 8), 4, seed=3)
    torch_model = TorchKit().model(6, (8, 8), 4)
    weights = JaxKit().get_weights(jax_model)
    assert [w.shape for w, _ in weights] == [(6, 8), (8, 8), (8, 4)]
    TorchKit().set_weights(torch_model, weights)
    x = np.random.default_rng(2).normal(size=(32, 6)).astype(np.float32)
    np.testing.assert_allclose(
        TorchKit().forward(torch_model, x),
        JaxKit().forward(jax_model, x),
        rtol=1e-4,
        atol=1e-5,
    )
    # And back: the round trip through PyTorch's (out, in) layout loses nothing.
    for (w1, b1), (w2, b2) in zip(
        TorchKit().get_weights(torch_model), weights, strict=True
    ):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(b1, b2)


def xor(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points in the four quadrants, kept off the axes; label 1 where x0 and x1 share a sign."""
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n, 2))
    x = (signs * rng.uniform(0.3, 1.0, size=(n, 2))).astype(np.float32)
    return x, (signs[:, 0] == signs[:, 1]).astype(np.uint8)


def xor_accuracy(kit, hidden) -> float:
    x, y = xor()
    model = kit.model(2, hidden, 2, seed=0)
    loader = kit.H.ArrayLoader(x, y, 64)  # full batch: 300 epochs = 300 steps
    kit.H.fit(model, kit.adam(model, 0.03), loader, epochs=300, progress=False)
    return kit.H.evaluate(model, loader)["accuracy"]


def test_mlp_learns_xor_which_a_linear_model_cannot(kit):
    assert xor_accuracy(kit, hidden=(16,)) == 1.0
    # hidden=() is a linear model: at most 3 of the 4 quadrants right.
    assert xor_accuracy(kit, hidden=()) <= 0.8


def test_count_params_counts_weights_and_biases(kit):
    model = kit.model(6, (5, 4), 3)
    assert kit.H.count_params(model) == sum(
        w.size + b.size for w, b in kit.get_weights(model)
    )
    assert kit.H.count_params(model) == (6 * 5 + 5) + (5 * 4 + 4) + (4 * 3 + 3)
