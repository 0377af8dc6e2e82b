"""The PyTorch and JAX halves of the helpers expose the same modules and the same names."""

import importlib
import pkgutil

import pytest

import helpers
from helpers import jax as hj
from helpers import torch as ht


def modules(package) -> set[str]:
    return {m.name for m in pkgutil.iter_modules(package.__path__)}


def test_same_modules():
    assert modules(ht) == modules(hj)


@pytest.mark.parametrize("name", sorted(modules(ht)))
def test_same_public_names_per_module(name):
    torch_mod = importlib.import_module(f"helpers.torch.{name}")
    jax_mod = importlib.import_module(f"helpers.jax.{name}")
    assert sorted(torch_mod.__all__) == sorted(jax_mod.__all__)
    for mod in (torch_mod, jax_mod):
        missing = [n for n in mod.__all__ if not hasattr(mod, n)]
        assert not missing, f"{mod.__name__}.__all__ names missing objects: {missing}"


def test_same_names_in_the_notebook_namespace():
    assert sorted(ht.__all__) == sorted(hj.__all__)
    assert set(helpers.__all__) <= set(ht.__all__)
    for name in ht.__all__:
        assert hasattr(ht, name) and hasattr(hj, name), name


def test_core_imports_no_framework():
    import subprocess
    import sys

    code = "import sys, helpers; print('torch' in sys.modules, 'jax' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False"]
