"""`python -m helpers.bench` end to end at smoke scale, on the real MNIST."""

import json
import subprocess
import sys

import pytest


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
