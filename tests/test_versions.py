"""Declared minimum versions: parsed, enforced on import, and true for flax and optax."""

import subprocess
import sys

import pytest

from helpers import versions


def test_parse():
    assert versions.parse("0.12.0rc1+cu12") == (0, 12, 0)
    assert versions.parse("2.14.1") > versions.parse("2.4")
    with pytest.raises(ValueError, match="not a version"):
        versions.parse("latest")


def test_require_names_what_is_too_old(monkeypatch):
    monkeypatch.setitem(versions.MINIMUM, "flax", ("99.0", "a future API"))
    with pytest.raises(
        ImportError, match=r"flax .* is too old: .*flax >= 99.0 \(a future API\)"
    ):
        versions.require("jax", "flax")
    versions.require("jax")  # the others pass


def test_colab_setup_stops_when_jax_is_too_old(monkeypatch):
    monkeypatch.setitem(versions.MINIMUM, "jax", ("99.0", "a future API"))
    with pytest.raises(RuntimeError, match="cannot be upgraded safely with pip"):
        versions.colab_setup()


def test_helpers_work_with_the_declared_minimum_versions(tmp_path):
    """A throwaway install of the minimum jax, flax and optax: the JAX half imports and trains.

    flax 0.12.0 needs an older jax than the pinned one, so the minimum jax comes along.
    """
    target = tmp_path / "site"
    minimum = [(p, versions.MINIMUM[p][0]) for p in ("jax", "flax", "optax")]
    specs = [f"{p}=={v}" for p, v in minimum] + [
        f"jaxlib=={versions.MINIMUM['jax'][0]}"
    ]
    # Optax 0.2.4 still needs chex; the pinned optax does not.
    specs += [
        "chex",
        "toolz",
    ]
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target"]
    subprocess.run([*pip, str(target), *specs], check=True, timeout=600)
    code = (
        "import flax, jax, optax, numpy as np\n"
        "print(jax.__version__, flax.__version__, optax.__version__)\n"
        "from helpers import jax as H\n"
        "from flax import nnx\n"
        "model = H.MLP(2, (4,), 2, rngs=nnx.Rngs(0))\n"
        "opt = nnx.Optimizer(model, optax.adam(0.1), wrt=nnx.Param)\n"
        "x = np.random.default_rng(0).normal(size=(8, 2)).astype('float32')\n"
        "h = H.fit(model, opt, H.ArrayLoader(x, (x[:, 0] > 0).astype('uint8'), 4),\n"
        "          epochs=1, progress=False)\n"
        "print(len(h.step_loss))\n"
    )
    env = {"PYTHONPATH": str(target), "PATH": ""}
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == [*(v for _, v in minimum), "2"]
