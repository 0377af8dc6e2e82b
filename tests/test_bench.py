"""`python -m helpers.bench`: end to end at smoke scale on the real MNIST, then its honesty.

The pattern to copy for a benchmark record: stub the task so it returns marker values and check
the record carries them unchanged; and feed the task data whose splits disagree by construction,
so scoring on the wrong split cannot go unnoticed.
"""

import importlib
import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import bench
from helpers.scale import MnistSizes, sizes


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_bench_prints_and_records_one_json_line(framework, tmp_path):
    record = tmp_path / "runs.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "helpers.bench",
        "mnist",
        "--framework",
        framework,
        "--scale",
        "smoke",
        "--record",
        str(record),
        "--no-progress",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result == json.loads(record.read_text())
    assert result["task"] == "mnist" and result["framework"] == framework
    assert result["scale"] == "smoke" and result["train_examples"] == 2_000
    assert 0.3 < result["test_accuracy"] <= 1.0  # one smoke epoch learns something
    assert result["train_seconds"] > 0 and result["train_examples_per_second"] > 0
    assert {"cpu", "cores", "gpu"} <= result["hardware"].keys()
    assert framework in result["versions"] and result["date"]


def test_bench_rejects_a_bad_scale(monkeypatch):
    monkeypatch.setenv("BOOK_SCALE", "bogus")
    cmd = [sys.executable, "-m", "helpers.bench", "mnist", "--framework", "torch"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "BOOK_SCALE='bogus' is not a scale; use one of smoke, cpu, gpu" in run.stderr


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_bench_refuses_to_record_gpu_scale_on_a_cpu(framework, tmp_path):
    record = tmp_path / "runs.jsonl"
    cmd = [sys.executable, "-m", "helpers.bench", "mnist", "--framework", framework]
    cmd += ["--scale", "gpu", "--record", str(record)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "needs a GPU" in run.stderr
    assert not record.exists()


# --- honesty: the record holds what the task measured, measured on the test split -------------
# Marker values no real run would produce, so a record can only hold them by passing them on.
MARKERS = {
    "test_accuracy": 0.1234,
    "test_loss": 5.6789,
    "final_train_loss": 4.321,
    "train_seconds": 98.76,
    "first_step_seconds": 0.543,
    "train_examples_per_second": 12345.6,
    "parameters": 4321,
    "train_examples": 777,
    "test_examples": 333,
    "epochs": 9,
}
BENCH_KEYS = {
    "task",
    "framework",
    "scale",
    "model_option",
    "device",
    "hardware",
    "versions",
    "date",
    "commit",
    "seed",
    "protocol",
}


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_record_carries_exactly_what_the_task_measured(framework, monkeypatch):
    tasks = importlib.import_module(f"helpers.{framework}.tasks")
    calls = []

    def stub(task_sizes, *, seed=0, progress=True):
        calls.append((task_sizes, seed, progress))
        return dict(MARKERS)

    # bench looks the task up by name on helpers.<framework>.tasks at run time.
    monkeypatch.setattr(tasks, bench.MODELS["mnist"]["mlp"][1].split(".")[1], stub)
    record = bench.run("mnist", framework, "smoke", seed=7, progress=False)
    assert calls == [(sizes("mnist", "smoke"), 7, False)]
    assert {k: record[k] for k in MARKERS} == MARKERS
    assert set(record) == set(MARKERS) | BENCH_KEYS
    assert (record["task"], record["framework"], record["scale"]) == (
        "mnist",
        framework,
        "smoke",
    )


def split_by_construction(split: str, *, limit: int | None = None):
    """A stand-in for ``load_mnist`` whose two splits disagree on purpose.

    Class ``c`` lights image rows ``2c`` and ``2c + 1``. Training labels are ``c``; test labels
    are ``(c + 1) % 10``. A model that learns the training rule is right on ~100% of the
    training split and wrong on ~100% of the test split, so a task that scores on the wrong
    split reports a very different accuracy.
    """
    n = {"train": 600, "test": 200}[split] if limit is None else limit
    rng = np.random.default_rng(0 if split == "train" else 1)
    c = rng.integers(0, 10, n)
    images = rng.integers(0, 40, (n, 28, 28), dtype=np.uint8)
    images[np.arange(n), 2 * c] = 255
    images[np.arange(n), 2 * c + 1] = 255
    labels = c if split == "train" else (c + 1) % 10
    return images, labels.astype(np.uint8)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_task_scores_the_test_split(framework, monkeypatch):
    tasks = importlib.import_module(f"helpers.{framework}.tasks")
    monkeypatch.setattr(tasks, "load_mnist", split_by_construction)
    task_sizes = MnistSizes(
        train_examples=600,
        test_examples=200,
        epochs=3,
        batch_size=32,
        hidden=(32,),
        learning_rate=3e-3,
    )
    metrics = getattr(tasks, bench.MODELS["mnist"]["mlp"][1].split(".")[1])(
        task_sizes, progress=False
    )
    assert (metrics["train_examples"], metrics["test_examples"]) == (600, 200)
    assert metrics["final_train_loss"] < 0.5  # it learned the training rule ...
    # ... and was scored on the test split, where that rule is always wrong (~1.0 on train).
    assert metrics["test_accuracy"] < 0.05
    assert metrics["test_loss"] > 2.0


def test_commit_is_dirty_for_code_changes_but_not_for_appended_records(tmp_path):
    """A record appended to a bench.jsonl must not mark the next run's commit +dirty."""
    import subprocess

    from helpers.system import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "chapter").mkdir()
    (tmp_path / "chapter" / "bench.jsonl").write_text("{}\n")
    (tmp_path / "model.py").write_text("x = 1\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    clean = git_commit(tmp_path)
    assert clean is not None and not clean.endswith("+dirty")
    (tmp_path / "chapter" / "bench.jsonl").write_text("{}\n{}\n")
    assert git_commit(tmp_path) == clean
    (tmp_path / "model.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == clean + "+dirty"


def cifar_split_by_construction(split, limit=None):
    """CIFAR-10-shaped images whose training rule is wrong on the test split (see above)."""
    n = {"train": 300, "test": 100}[split] if limit is None else limit
    rng = np.random.default_rng(0 if split == "train" else 1)
    c = rng.integers(0, 10, n)
    images = rng.integers(0, 40, (n, 32, 32, 3), dtype=np.uint8)
    images[np.arange(n), 3 * c] = 255
    labels = c if split == "train" else (c + 1) % 10
    return images, labels.astype(np.uint8)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_outline_cnn_task_trains_on_its_share_and_scores_the_test_split(
    framework, monkeypatch
):
    import dataclasses

    import helpers.vision
    from helpers.scale import sizes

    tasks = importlib.import_module(f"helpers.{framework}.tasks")
    monkeypatch.setattr(helpers.vision, "load_cifar10", cifar_split_by_construction)
    task_sizes = dataclasses.replace(
        sizes("cifar10", "smoke"),
        val_examples=50,
        test_examples=100,
        outline_train_examples=200,
        outline_epochs=4,
        outline_batch_size=20,
    )
    _, function, _ = bench.MODELS["cifar10"]["outline"]
    metrics = getattr(tasks, function.split(".")[1])(task_sizes, progress=False)
    assert (metrics["train_examples"], metrics["test_examples"]) == (200, 100)
    assert metrics["epochs"] == 4 and metrics["final_train_loss"] < 1.0
    assert (
        metrics["test_accuracy"] < 0.1
    )  # scored on the test split, where the rule fails
    # the outline's layers with fc1 sized for the 6x6 map: the same count in both frameworks
    convs = (3 * 32 + 32 * 64 + 64 * 128) * 9 + 32 + 64 + 128
    assert metrics["parameters"] == convs + 128 * 6 * 6 * 256 + 256 + 256 * 10 + 10


def test_outline_cnn_task_has_no_baseline():
    with pytest.raises(ValueError, match="--baseline is available for cifar10 --model"):
        bench.run("cifar10", "torch", "smoke", model="outline", baseline=True)
