"""Save, load and resume (chapter 3.7): the next steps after a restore are bit-identical.

Both frameworks, the way the chapter does it: PyTorch saves ``state_dict`` of model and
optimizer plus the data generator's and the global RNG's state, and loads them with
``torch.load(..., weights_only=True)``; JAX saves the NNX state of model (its dropout RNG
included) and optimizer plus the data key with Orbax. The model has dropout, so a forgotten
RNG state changes the losses, and Adam, so a forgotten optimizer state does; the test shows
both would be caught.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
import torch
import torch.nn.functional as F
from flax import nnx

from helpers import jax as hj
from helpers import torch as ht

X = np.random.default_rng(0).uniform(size=(64, 28, 28)).astype(np.float32)
Y = (np.arange(64) % 10).astype(np.int64)


# --- PyTorch -------------------------------------------------------------------------------
def t_fresh(seed):
    torch.manual_seed(seed)
    model = ht.CNN(1, (4, 8), 16, 10, dropout=0.5)
    return model, torch.optim.Adam(model.parameters(), lr=1e-2), torch.Generator()


def t_steps(model, opt, gen, n):
    model.train()
    losses = []
    for _ in range(n):
        idx = torch.randint(len(X), (16,), generator=gen)
        opt.zero_grad()
        loss = F.cross_entropy(
            model(torch.from_numpy(X)[idx]), torch.from_numpy(Y)[idx]
        )
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def t_round_trip(tmp_path, *, restore_optimizer=True, restore_rng=True):
    model, opt, gen = t_fresh(0)
    gen.manual_seed(1)
    t_steps(model, opt, gen, 4)
    path = tmp_path / "ckpt.pt"
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "data_rng": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
        },
        path,
    )
    continued = t_steps(model, opt, gen, 3)
    model2, opt2, gen2 = t_fresh(123)
    ckpt = torch.load(path, weights_only=True)
    model2.load_state_dict(ckpt["model"])
    if restore_optimizer:
        opt2.load_state_dict(ckpt["optimizer"])
    gen2.set_state(ckpt["data_rng"])
    if restore_rng:
        torch.set_rng_state(ckpt["torch_rng"])
    return continued, t_steps(model2, opt2, gen2, 3)


def test_torch_resume_gives_bit_identical_next_losses(tmp_path):
    continued, resumed = t_round_trip(tmp_path)
    assert continued == resumed


@pytest.mark.parametrize("forget", ["restore_optimizer", "restore_rng"])
def test_torch_resume_without_optimizer_or_rng_state_differs(tmp_path, forget):
    continued, resumed = t_round_trip(tmp_path, **{forget: False})
    assert continued != resumed


# --- JAX -----------------------------------------------------------------------------------
def j_fresh(seed):
    model = hj.CNN(1, (4, 8), 16, 10, dropout=0.5, rngs=nnx.Rngs(seed))
    return model, nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)


@nnx.jit
def j_step(model, optimizer, x, y):
    def loss_fn(m):
        return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


def j_steps(model, opt, key, n):
    model.train()
    losses = []
    for _ in range(n):
        key, sub = jax.random.split(key)
        idx = jax.random.randint(sub, (16,), 0, len(X))
        x, y = jnp.asarray(X)[idx], jnp.asarray(Y, jnp.int32)[idx]
        losses.append(float(j_step(model, opt, x, y)))
    return losses, key


def j_round_trip(tmp_path, *, restore_optimizer=True, restore_rng=True):
    model, opt = j_fresh(0)
    _, key = j_steps(model, opt, jax.random.key(1), 4)
    checkpointer = ocp.StandardCheckpointer()
    state = {
        "model": nnx.state(model),
        "optimizer": nnx.state(opt),
        "data_key": jax.random.key_data(key),
    }
    checkpointer.save(tmp_path / "ckpt", state)
    checkpointer.wait_until_finished()
    continued, _ = j_steps(model, opt, key, 3)
    model2, opt2 = j_fresh(123)
    target = {
        "model": nnx.state(model2),
        "optimizer": nnx.state(opt2),
        "data_key": jax.random.key_data(jax.random.key(0)),
    }
    ckpt = checkpointer.restore(tmp_path / "ckpt", target)
    model_state = ckpt["model"]
    if not restore_rng:  # keep model2's own dropout RNG state
        model_state = nnx.filter_state(model_state, nnx.Not(nnx.RngState))
    nnx.update(model2, model_state)
    if restore_optimizer:
        nnx.update(opt2, ckpt["optimizer"])
    else:  # a fresh optimizer for the restored weights
        opt2 = nnx.Optimizer(model2, optax.adam(1e-2), wrt=nnx.Param)
    resumed, _ = j_steps(model2, opt2, jax.random.wrap_key_data(ckpt["data_key"]), 3)
    return continued, resumed


def test_jax_resume_gives_bit_identical_next_losses(tmp_path):
    continued, resumed = j_round_trip(tmp_path)
    assert continued == resumed


@pytest.mark.parametrize("forget", ["restore_optimizer", "restore_rng"])
def test_jax_resume_without_optimizer_or_rng_state_differs(tmp_path, forget):
    continued, resumed = j_round_trip(tmp_path, **{forget: False})
    assert continued != resumed
