"""`helpers.bench` options: --framework both (one ratio from one run) and --repeat (medians).

The tasks are stubbed with marker values that depend on the framework and the seed, so each
assertion checks that the record carries exactly what the runs measured.
"""

import json

import pytest

from helpers import bench
from helpers import jax as hj
from helpers import torch as ht


@pytest.fixture
def stub_tasks(monkeypatch):
    calls = []

    def stub(framework: str, speed: float):
        def run_mnist(sizes, *, seed=0, progress=True):
            calls.append((framework, seed))
            return {
                "test_accuracy": 0.5 + seed / 100,
                "train_seconds": 10.0 + seed,
                "train_examples_per_second": speed * (seed + 1),
                "model": "stub",
            }

        return run_mnist

    monkeypatch.setattr(ht.tasks, "run_mnist", stub("torch", 1000.0))
    monkeypatch.setattr(hj.tasks, "run_mnist", stub("jax", 2000.0))
    return calls


def test_both_frameworks_repeated_give_medians_spread_and_ratio(
    stub_tasks, tmp_path, capsys
):
    record = tmp_path / "runs.jsonl"
    args = ["mnist", "--framework", "both", "--repeat", "3", "--scale", "smoke"]
    assert bench.main([*args, "--record", str(record), "--no-progress"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == [json.loads(line) for line in record.read_text().splitlines()]
    seeds = [0, 1, 2]
    assert stub_tasks == [(fw, seed) for fw in ("torch", "jax") for seed in seeds]
    torch_run, jax_run = printed
    assert [torch_run["framework"], jax_run["framework"]] == ["torch", "jax"]
    assert torch_run["test_accuracy"] == pytest.approx(0.51)  # median of .50 .51 .52
    assert torch_run["spread"]["test_accuracy"] == pytest.approx([0.50, 0.52])
    assert torch_run["spread"]["train_seconds"] == [10.0, 12.0]
    assert torch_run["repeats"] == 3 and torch_run["seed"] == [0, 1, 2]
    assert torch_run["throughput_ratio"] == 1.0 and jax_run["throughput_ratio"] == 2.0
    assert torch_run["protocol"] == bench.PROTOCOL and torch_run["model"] == "stub"


def test_single_run_has_no_spread(stub_tasks, capsys):
    assert bench.main(["mnist", "--framework", "jax", "--scale", "smoke"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert "spread" not in record and "throughput_ratio" not in record
    assert record["seed"] == 0 and record["train_examples_per_second"] == 2000.0


def test_repeat_must_be_positive(stub_tasks):
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        bench.run_repeated("mnist", "torch", "smoke", repeats=0)
