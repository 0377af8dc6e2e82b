"""Lab self-checks: pass on the solutions, fail on the unsolved labs and on typical mistakes.

Each failure must be the check's own ``CheckFailed`` with a useful message, never another error.
"""

import re

import jax
import jax.numpy as jnp
import jupytext
import optax
import pytest
import torch
import torch.nn.functional as F
from flax import nnx

from helpers import jax as hj
from helpers import torch as ht
from helpers.labs import CheckFailed
from helpers.notebooks import ROOT, lab_text

CHECK_CALL = re.compile(r"^H\.lab\d\d\.check_\w+\(\w+\)$")
FRAMEWORKS = {"pytorch": ht, "jax": hj}


def exercise_functions(path) -> dict:
    """Run a lab or solution source's code cells, minus Colab setup and checks; its namespace."""
    namespace: dict = {}
    for cell in jupytext.read(path, fmt="py:percent").cells:
        code = cell.source.strip()
        if cell.cell_type != "code" or "google.colab" in code or CHECK_CALL.match(code):
            continue
        exec(compile(code, str(path), "exec"), namespace)
    return namespace


def checks(framework: str) -> dict:
    lab = FRAMEWORKS[framework].lab01
    return {name.removeprefix("check_"): getattr(lab, name) for name in lab.__all__}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_check_passes_on_the_solution(framework, capsys):
    solved = exercise_functions(
        ROOT / "solutions" / "01-introduction" / f"in-{framework}.py"
    )
    for exercise, check in checks(framework).items():
        check(solved[exercise])
        assert f"✅ {exercise}: passed" in capsys.readouterr().out


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_check_fails_on_the_unsolved_lab(framework):
    unsolved = exercise_functions(
        ROOT / "labs" / "01-introduction" / f"in-{framework}.py"
    )
    for exercise, check in checks(framework).items():
        with pytest.raises(CheckFailed, match="not implemented yet") as info:
            check(unsolved[exercise])
        assert info.value.exercise == exercise
        assert "NotImplementedError" in info.value.hint


# --- typical mistakes, at least two per exercise and framework ---------------------------------
def _forward_difference(f, x, eps):
    return torch.stack(
        [(f(x + eps * torch.eye(len(x))[i]) - f(x)) / eps for i in range(len(x))]
    )


def _torch_mutating_difference(f, x, eps):
    grad = torch.zeros_like(x)
    for i in range(len(x)):
        x[i] += eps  # changes the caller's tensor and never restores it
        grad[i] = (f(x) - f(x - 2 * eps * torch.eye(len(x))[i])) / (2 * eps)
    return grad


def _torch_grad(loss_of_w):
    def mse_grad(w, X, y):
        w = w.clone().requires_grad_(True)
        loss_of_w(w, X, y).backward()
        return w.grad

    return mse_grad


def _torch_step(*, zero_grad=True, sign=1.0, step=True):
    def train_step(model, optimizer, x, y):
        if zero_grad:
            optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        (sign * loss).backward()
        if step:
            optimizer.step()
        return loss.item()

    return train_step


def _jax_step(*, sign=1.0, update=True, loss_after=False):
    def train_step(model, optimizer, x, y):
        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        if update:
            optimizer.update(model, jax.tree.map(lambda g: sign * g, grads))
        return float(loss_fn(model) if loss_after else loss)

    return train_step


MISTAKES = {
    "pytorch": [
        ("preprocess", lambda im: im.float() / 255, "expected (5, 784)"),
        ("preprocess", lambda im: im.reshape(len(im), -1).float(), "divide by 255"),
        ("preprocess", lambda im: im.reshape(len(im), -1) // 255, "expected float32"),
        ("preprocess", lambda im: im.reshape(len(im), -1).float() / 256, "not 256"),
        (
            "accuracy",
            lambda lg, lb: (lg.argmax(0) == lb).float().mean(),
            "raised RuntimeError",
        ),
        (
            "accuracy",
            lambda lg, lb: (lg.argmax(-1) == lb).sum().item(),
            "number of correct",
        ),
        ("central_difference", _forward_difference, "forward difference"),
        (
            "central_difference",
            lambda f, x, e: torch.stack(
                [(f(x + e * v) - f(x - e * v)) / e for v in torch.eye(len(x))]
            ),
            "2*eps",
        ),
        ("central_difference", _torch_mutating_difference, "changed its input"),
        (
            "mse_grad",
            _torch_grad(lambda w, X, y: -((X @ w - y) ** 2).mean()),
            "sign is flipped",
        ),
        (
            "mse_grad",
            _torch_grad(lambda w, X, y: ((X @ w - y) ** 2).sum()),
            "gradient of the sum",
        ),
        ("mse_grad", lambda w, X, y: X.T @ (X @ w - y) / len(y), "factor 2"),
        ("train_step", _torch_step(zero_grad=False), "reset them each step"),
        ("train_step", _torch_step(sign=-1.0), "moved uphill"),
        ("train_step", _torch_step(step=False), "did not change"),
        ("train_step", lambda *a: None, "single number"),
    ],
    "jax": [
        ("preprocess", lambda im: im.astype(jnp.float32) / 255, "expected (5, 784)"),
        (
            "preprocess",
            lambda im: im.reshape(len(im), -1).astype(jnp.float32),
            "divide by 255",
        ),
        ("preprocess", lambda im: im.reshape(len(im), -1) // 255, "expected float32"),
        (
            "preprocess",
            lambda im: im.reshape(len(im), -1).tolist(),
            "expected a jax.Array",
        ),
        ("accuracy", lambda lg, lb: float((lg.argmax(0) == lb).mean()), "raised"),
        (
            "accuracy",
            lambda lg, lb: int((lg.argmax(-1) == lb).sum()),
            "number of correct",
        ),
        (
            "central_difference",
            lambda f, x, e: jnp.stack(
                [(f(x.at[i].add(e)) - f(x)) / e for i in range(x.size)]
            ),
            "forward difference",
        ),
        (
            "central_difference",
            lambda f, x, e: jnp.stack(
                [(f(x.at[i].add(e)) - f(x.at[i].add(-e))) / e for i in range(x.size)]
            ),
            "2*eps",
        ),
        (
            "mse_grad",
            lambda w, X, y: jax.grad(lambda w: -jnp.mean((X @ w - y) ** 2))(w),
            "sign is flipped",
        ),
        (
            "mse_grad",
            lambda w, X, y: jax.grad(lambda w: jnp.sum((X @ w - y) ** 2))(w),
            "gradient of the sum",
        ),
        ("train_step", _jax_step(update=False), "did not change"),
        ("train_step", _jax_step(sign=-1.0), "moved uphill"),
        ("train_step", _jax_step(loss_after=True), "loss computed before the update"),
    ],
}


@pytest.mark.parametrize(
    ("framework", "exercise", "wrong", "says"),
    [(fw, *m) for fw, mistakes in MISTAKES.items() for m in mistakes],
    ids=[f"{fw}-{m[0]}-{i}" for fw, ms in MISTAKES.items() for i, m in enumerate(ms)],
)
def test_check_catches_mistake(framework, exercise, wrong, says):
    with pytest.raises(CheckFailed) as info:
        checks(framework)[exercise](wrong)
    assert says in info.value.message, info.value.message


def test_at_least_two_mistakes_per_exercise():
    for framework, mistakes in MISTAKES.items():
        counts = {ex: sum(m[0] == ex for m in mistakes) for ex in checks(framework)}
        assert min(counts.values()) >= 2, (framework, counts)


def test_check_failed_renders_without_a_traceback():
    error = CheckFailed("preprocess", "wrong shape", "reshape it")
    assert error._render_traceback_() == [
        "\x1b[31m❌ preprocess: wrong shape\x1b[0m",
        "\x1b[31m   Hint: reshape it\x1b[0m",
    ]


def test_a_non_function_is_a_failed_check():
    with pytest.raises(CheckFailed, match="expected a function, got int"):
        ht.lab01.check_preprocess(3)


# --- generating labs from solutions --------------------------------------------------------------
def test_lab_text_replaces_regions_with_indented_stubs():
    solution = (
        "def f(x):\n    '''doc'''\n    ### BEGIN SOLUTION\n    y = x + 1\n    return y\n"
        "    ### END SOLUTION\n\nprint(f)\n"
    )
    assert lab_text(solution) == (
        "def f(x):\n    '''doc'''\n    # YOUR CODE HERE\n"
        '    raise NotImplementedError("Exercise: replace this line with your code")\n\nprint(f)\n'
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("### END SOLUTION\n", r"x.py:1: ### END SOLUTION without"),
        ("### BEGIN SOLUTION\n", r"x.py:1: ### BEGIN SOLUTION is never closed"),
        (
            "### BEGIN SOLUTION\n### BEGIN SOLUTION\n",
            r"x.py:2: .* inside the region opened",
        ),
    ],
)
def test_lab_text_rejects_unbalanced_markers(text, error):
    with pytest.raises(ValueError, match=error):
        lab_text(text, "x.py")
