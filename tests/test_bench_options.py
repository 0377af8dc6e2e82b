"""`helpers.bench` options: --framework both (one ratio from one run) and --repeat (medians).

The tasks are stubbed with marker values that depend on the framework and the seed, so each
assertion checks that the record carries exactly what the runs measured.
"""

import json

import pytest

from helpers import bench
from helpers import jax as hj
from helpers import torch as ht
from helpers.results import median_record
from helpers.scale import CnnSizes, override_sizes, sizes


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


@pytest.fixture
def stub_cnn(monkeypatch):
    """PyTorch's CNN task stubbed: returns the list of sizes it was called with."""
    seen = []

    def run_mnist_cnn(sizes, *, seed=0, progress=True):
        seen.append(sizes)
        return {"test_accuracy": 0.99, "train_examples_per_second": 1.0, "model": "cnn"}

    monkeypatch.setattr(ht.tasks, "run_mnist_cnn", run_mnist_cnn)
    return seen


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


def test_model_option_picks_the_cnn_task_and_its_sizes(stub_cnn, capsys):
    seen = stub_cnn
    args = ["mnist", "--model", "cnn", "--framework", "torch", "--scale", "smoke"]
    assert bench.main(args) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["model_option"] == "cnn" and record["model"] == "cnn"
    assert seen == [sizes("mnist_cnn", "smoke")]
    assert isinstance(seen[0], CnnSizes)


def test_model_option_defaults_to_the_mlp_and_rejects_others(stub_tasks, capsys):
    assert bench.main(["mnist", "--framework", "torch", "--scale", "smoke"]) == 0
    assert json.loads(capsys.readouterr().out)["model_option"] == "mlp"
    with pytest.raises(ValueError, match="unknown model 'resnet' for mnist"):
        bench.run("mnist", "torch", "smoke", model="resnet")
    with pytest.raises(SystemExit):
        bench.main(["mnist", "--model", "resnet", "--framework", "torch"])


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_cnn_bench_runs_for_real_at_smoke_scale(framework):
    record = bench.run("mnist", framework, "smoke", model="cnn", progress=False)
    assert record["model_option"] == "cnn" and record["model"].startswith("CNN")
    assert record["train_examples"] == sizes("mnist_cnn", "smoke").train_examples
    assert 0.3 < record["test_accuracy"] <= 1.0  # one smoke epoch learns something


def test_algo_is_another_name_for_model(stub_cnn, capsys):
    args = ["mnist", "--algo", "cnn", "--framework", "torch", "--scale", "smoke"]
    assert bench.main(args) == 0
    assert json.loads(capsys.readouterr().out)["model_option"] == "cnn"


def test_set_changes_sizes_for_one_run_and_the_record_says_so(stub_cnn, capsys):
    seen = stub_cnn
    base = sizes("mnist_cnn", "smoke")
    args = ["mnist", "--model", "cnn", "--framework", "torch", "--scale", "smoke"]
    new_epochs = base.epochs + 3
    assert bench.main([*args, "--set", f"epochs={new_epochs}"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["overrides"] == {"epochs": new_epochs}
    assert seen[-1].epochs == new_epochs and seen[-1].batch_size == base.batch_size
    assert sizes("mnist_cnn", "smoke") == base  # the table itself is untouched
    assert bench.main(args) == 0
    assert "overrides" not in json.loads(capsys.readouterr().out)


def test_versus_alternates_two_configurations_seed_by_seed(stub_cnn, capsys):
    seen = stub_cnn
    base = sizes("mnist_cnn", "smoke")
    a, b = base.epochs + 1, base.epochs + 2
    args = ["mnist", "--model", "cnn", "--framework", "torch", "--scale", "smoke"]
    args += ["--repeat", "3", "--set", f"epochs={a}", "--set", "hidden=7"]
    assert bench.main([*args, "--versus", f"epochs={b}", "--no-progress"]) == 0
    first, second = (json.loads(x) for x in capsys.readouterr().out.splitlines())
    # A0 B0 B1 A1 A2 B2: B keeps A's other changes, and its own wins on the same field
    assert [s.epochs for s in seen] == [a, b, b, a, a, b]
    assert all(s.hidden == 7 for s in seen)
    assert first["overrides"] == {"epochs": a, "hidden": 7}
    assert second["overrides"] == {"epochs": b, "hidden": 7}
    assert first["interleaved_with"] == second["overrides"]
    assert second["interleaved_with"] == first["overrides"]
    assert first["seed"] == second["seed"] == [0, 1, 2] and first["repeats"] == 3
    assert "throughput_ratio" not in first  # one framework: no cross-framework ratio


def test_versus_rejects_a_bad_change_before_any_training(stub_cnn, capsys):
    args = ["mnist", "--model", "cnn", "--framework", "torch", "--scale", "smoke"]
    assert bench.main([*args, "--repeat", "2", "--versus", "epochz=3"]) == 2
    assert stub_cnn == []  # nothing trained
    assert "--set/--versus epochz: no such size" in capsys.readouterr().err


def test_versus_with_both_frameworks_compares_each_configuration_across_them(
    stub_tasks, capsys
):
    args = ["mnist", "--framework", "both", "--scale", "smoke", "--repeat", "2"]
    assert bench.main([*args, "--versus", "epochs=3", "--no-progress"]) == 0
    records = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["framework"] for r in records] == ["torch", "torch", "jax", "jax"]
    assert [r.get("overrides", {}) for r in records] == [{}, {"epochs": 3}] * 2
    # JAX A over PyTorch A, JAX B over PyTorch B (the stubs: JAX twice as fast)
    assert [r["throughput_ratio"] for r in records] == [1.0, 1.0, 2.0, 2.0]


def test_median_record_keeps_each_seeds_values_in_order():
    runs = [{"seed": s, "test_accuracy": acc} for s, acc in enumerate([0.3, 0.1, 0.2])]
    record = median_record(runs)
    assert record["test_accuracy"] == 0.2 and record["spread"]["test_accuracy"] == [
        0.1,
        0.3,
    ]
    assert record["per_seed"]["test_accuracy"] == [0.3, 0.1, 0.2]


def test_median_record_takes_the_median_of_each_entry_of_a_per_entry_metric():
    key = "test_accuracy_tta_by_class"
    runs = [
        {"seed": s, key: {"cat": cat, "dog": dog}, "overrides": {"jax_epochs": 3}}
        for s, (cat, dog) in enumerate([(0.6, 0.9), (0.7, 0.7), (0.5, 0.8)])
    ]
    record = median_record(runs)
    # entry by entry: no single run holds cat 0.6 with dog 0.8
    assert record[key] == {"cat": 0.6, "dog": 0.8} and key not in record["spread"]
    # another dict of numbers is configuration, not a metric: the first run's, ints kept
    assert record["overrides"] == {"jax_epochs": 3}
    assert median_record(runs[:2])["overrides"] == {"jax_epochs": 3}
    runs[1][key] = {"cat": 0.7}
    with pytest.raises(ValueError, match="different keys"):
        median_record(runs)


def test_median_record_needs_a_run_and_keeps_a_single_one():
    with pytest.raises(ValueError, match="at least one run"):
        median_record([])
    run = {"seed": 4, "test_accuracy": 0.5}
    assert median_record([run]) is run


def test_override_sizes_parses_by_the_fields_type_and_rejects_bad_input():
    base = sizes("cifar10", "smoke")
    new, changes = override_sizes(
        base,
        [
            "widths=24,2,3,4",
            "learning_rate=0.5",
            "test_examples=none",
            "compute_dtype=x",
        ],
    )
    assert new.widths == (24, 2, 3, 4) and new.learning_rate == 0.5
    assert new.test_examples is None and new.compute_dtype == "x"
    assert changes["widths"] == (24, 2, 3, 4) and new.epochs == base.epochs
    # sizes that contradict each other are refused, however they were set
    with pytest.raises(ValueError, match="widths\\[0\\] must be 24"):
        override_sizes(base, ["widths=16,16,32,64"])
    conv, _ = override_sizes(base, ["stem=conv", "widths=16,16,32,64"])
    assert conv.stem == "conv" and conv.widths == (16, 16, 32, 64)
    with pytest.raises(ValueError, match="no such size; known: train_examples"):
        override_sizes(base, ["epoch=3"])
    with pytest.raises(ValueError, match="expected a value like 2"):
        override_sizes(base, ["epochs=three"])
    with pytest.raises(ValueError, match="expect FIELD=VALUE"):
        override_sizes(base, ["epochs"])
    # A field that is None at this scale takes a number.
    gpu, _ = override_sizes(sizes("cifar10", "gpu"), ["train_examples=1700"])
    assert gpu.train_examples == 1700 and sizes("cifar10", "gpu").train_examples is None


def test_book_commit_names_the_commit_of_a_copy(tmp_path, monkeypatch):
    from helpers.system import git_commit

    monkeypatch.delenv("BOOK_COMMIT", raising=False)
    assert git_commit(tmp_path) is None  # not a checkout
    monkeypatch.setenv("BOOK_COMMIT", "abc123")
    assert git_commit(tmp_path) == "abc123"
