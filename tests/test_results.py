"""helpers.results and helpers.comparison: reading the chapters' bench records, and how the
book shows them (the results appendix's table and plots; chapter 10's latest runs and
framework pairs)."""

import json
import math

import matplotlib.pyplot as plt
import pytest

from helpers.comparison import code_lines, framework_pairs, latest_runs, recipe
from helpers.results import (
    first_step_seconds,
    latest_by,
    load_records,
    model_family,
    plot_task,
    read_records,
    records_table,
    short_hardware,
    summary_rows,
    task_metric,
)

CPU2 = {"cpu": "Intel(R) Xeon(R) Processor", "cores": 2, "gpu": None}
CPU1 = {**CPU2, "cores": 1}
# The model descriptions chapter 7's bench writes: the two PPO loops, and DDPG in both.
PPO_TORCH = ("PPO, gymnasium CartPole-v1 SyncVectorEnv, 4 envs x 64 steps, MLP (64, 64), "
             "seeds one after another")  # fmt: skip
PPO_JAX = ("PPO, pure-JAX CartPole, whole run jitted, 10 seeds vmapped per call, "
           "4 envs x 64 steps, MLP {}")  # fmt: skip
DDPG = "DDPG, gymnasium Pendulum-v1, actor and critic MLP (256, 256)"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def write_chapter(root, runs, name="07-demo"):
    folder = root / "chapters" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.jsonl").write_text("\n".join(json.dumps(r) for r in runs))
    return folder


def rl(framework, date, speed, *, model, hardware=CPU2, seeds=5, steps=501760, **extra):
    """A chapter 7 record: ``steps`` env steps over ``seeds`` seeds."""
    return {"task": extra.pop("task", "cartpole"), "model_option": extra.pop("option", "ppo"),
            "framework": framework, "scale": "cpu", "model": model, "date": date,
            "seeds": seeds, "env_steps": steps, "eval_episodes": 100,
            "eval_return_mean": 500.0, "env_steps_per_second": speed,
            "train_examples_per_second": speed, "compile_seconds": 0.0, "train_seconds": 9.0,
            "hardware": hardware, "commit": extra.pop("commit", "abc"), **extra}  # fmt: skip


def test_outlook_tables_take_the_latest_run_of_each_configuration(tmp_path):
    runs = [  # oldest first: the second torch run is the latest
        {"task": "t", "framework": "torch", "model": "cnn a", "date": "1",
         "train_examples_per_second": 10.0, "first_step_seconds": 0.1, "test_accuracy": 0.5},
        {"task": "t", "framework": "jax", "model": "cnn a", "date": "2",
         "train_examples_per_second": 40.0, "compile_seconds": 2.0, "load_average": 3},
        {"task": "t", "framework": "torch", "model": "cnn a", "date": "3",
         "train_examples_per_second": 20.0, "first_step_seconds": 0.2},
        {"task": "t", "framework": "torch", "model": "mlp", "date": "4",
         "train_examples_per_second": 5.0},  # no JAX twin: no pair
        {"task": "t", "framework": "jax", "model": "cnn a", "date": "5", "scale": "gpu",
         "train_examples_per_second": 99.0},  # another scale: no pair with the cpu runs
        {"task": "t", "framework": "torch", "model": "cnn a", "date": "6",
         "train_examples_per_second": 1.0, "overrides": {"epochs": 2}},  # a sweep: left out
        {"task": "t", "framework": "jax", "date": "7"},  # names no model: left out
    ]  # fmt: skip
    folder = write_chapter(tmp_path, runs, "05-demo")
    records = load_records(tmp_path)
    latest = latest_runs(records)
    # one per (task, family, scale, framework), sorted by those, PyTorch first; the first
    # torch cnn run is superseded, the sweep and the run that names no model left out
    assert [r["date"] for r in latest] == ["3", "2", "5", "4"]
    rows = summary_rows(latest)
    assert [r["task"] for r in rows] == ["t"] * 4 and "chapter" not in rows[0]
    assert "model" not in rows[0] and rows[0]["ex/s"] == 20.0
    assert rows[1]["first step s"] == 2.0 and "load" not in rows[1]
    assert rows[0]["hardware"] == "?, ? cores" and rows[0]["option"] == "cnn"
    assert len(summary_rows(records)) == 6  # every run but the sweep
    (pair,) = [p for p in framework_pairs(records) if p["faster"]]
    assert pair["task"] == "t cnn" and pair["PyTorch ex/s"] == 20.0
    assert (
        pair["faster"] == "JAX"
        and pair["by x"] == 2.0
        and pair["pair"] == "latest runs"
    )
    (folder / "in-pytorch.py").write_text("# %%\nimport torch\n\nx = 1\n")
    (folder / "in-jax.py").write_text("# %%\nimport jax\n")
    assert code_lines(tmp_path) == [
        {"chapter": "05-demo", "PyTorch code lines": 2, "JAX code lines": 1}
    ]


def test_recipe_leaves_out_how_each_framework_runs_it():
    torch_ppo = rl("torch", "1", 2.0, model=PPO_TORCH)
    jax_ppo = rl(
        "jax", "2", 9.0, model=PPO_JAX.format("(64, 64)"), seeds=10, steps=1003520
    )
    # same network, same env steps per seed: only the loops (and the seed count) differ
    assert recipe(torch_ppo) == recipe(jax_ppo)
    assert recipe(torch_ppo)["model"] == "PPO, 4 envs x 64 steps, MLP (64, 64)"
    narrower = rl(
        "jax", "3", 9.0, model=PPO_JAX.format("(64,)"), seeds=10, steps=1003520
    )
    assert recipe(narrower)["model"] != recipe(torch_ppo)["model"]
    shorter = rl(
        "jax", "3", 9.0, model=PPO_JAX.format("(64, 64)"), seeds=10, steps=750080
    )
    assert (
        recipe(shorter)["env_steps_per_seed"] != recipe(torch_ppo)["env_steps_per_seed"]
    )
    one_core = rl("jax", "3", 9.0, model=DDPG, hardware=CPU1)
    assert (
        recipe(one_core)["cores"] != recipe(rl("torch", "3", 9.0, model=DDPG))["cores"]
    )
    cifar = "CifarNet 24-32-64-128, SGD-Nesterov, crop+flip on device, {}, float32"
    assert (recipe({"task": "cifar10", "model": cifar.format("channels_last")})
            == recipe({"task": "cifar10", "model": cifar.format("NHWC, jit")}))  # fmt: skip


def test_framework_pairs_compare_only_the_same_recipe_on_the_same_hardware(tmp_path):
    """Chapter 7's case: the latest JAX PPO trains a narrower network than PyTorch's, and JAX's
    latest DDPG ran on one core against PyTorch's two. Pairing the latest runs regardless
    (the old rule) reported x79.8 for PPO where chapter 7 measures x42.3, like for like."""
    runs = [
        # one --framework both run: the same network and env steps per seed
        rl("torch", "2026-11-30T14:01", 2665.6, model=PPO_TORCH, commit="f91e5b9",
           throughput_ratio=1.0),
        rl("jax", "2026-11-30T14:04", 112826.4, model=PPO_JAX.format("(64, 64)"), seeds=10,
           steps=1003520, commit="f91e5b9", throughput_ratio=42.327),
        # later runs apart; the latest of each framework trains another network
        rl("torch", "2026-11-30T14:54", 3434.8, model=PPO_TORCH, commit="2846e7b+dirty"),
        rl("jax", "2026-11-30T20:07", 274105.7, model=PPO_JAX.format("(64,)"), seeds=10,
           steps=750080, commit="ba7547c"),
        # DDPG: an early 2-core JAX run from other code, then JAX on one core
        rl("jax", "2026-11-30T04:54", 17.5, model=DDPG, task="pendulum", option="ddpg",
           seeds=1, steps=20000),
        rl("torch", "2026-11-30T08:32", 106.7, model=DDPG, task="pendulum", option="ddpg",
           seeds=1, steps=20000),
        rl("jax", "2026-11-30T19:29", 142.6, model=DDPG, task="pendulum", option="ddpg",
           seeds=1, steps=20000, hardware=CPU1),
    ]  # fmt: skip
    write_chapter(tmp_path, runs)
    pairs = framework_pairs(load_records(tmp_path))
    assert [p["task"] for p in pairs] == ["cartpole ppo", "pendulum ddpg"]
    ppo, ddpg = pairs
    # x42.3 like for like; the latest runs regardless gave 274105.7 / 3434.8 = x79.8
    assert ppo["faster"] == "JAX" and round(ppo["by x"], 1) == 42.3
    assert (ppo["PyTorch ex/s"], ppo["JAX ex/s"]) == (2665.6, 112826.4)
    assert ppo["pair"] == "older, one process"
    assert ddpg["faster"] == "" and math.isnan(ddpg["by x"])  # not 17.5 against 106.7
    assert ddpg["pair"] == "none: cores differ"
    # the older 2-core JAX run is not paired: separate runs of one recipe may differ in code
    assert math.isnan(ddpg["JAX ex/s"]) and math.isnan(ddpg["PyTorch ex/s"])


def test_records_table_shows_each_tasks_metric_sizes_changed_and_repeats(tmp_path):
    runs = [
        {"task": "mnist", "framework": "torch", "model": "MLP", "scale": "cpu", "date": "1",
         "test_accuracy": 0.9812, "train_examples_per_second": 1000.0, "train_seconds": 2.0,
         "hardware": CPU2, "commit": "abc+dirty", "repeats": 3},
        {"task": "mnist", "framework": "jax", "model": "MLP", "scale": "cpu", "date": "2",
         "test_accuracy": 0.5, "train_examples_per_second": 10.0, "train_seconds": 2.0,
         "hardware": CPU1, "commit": "abc", "overrides": {"epochs": 1, "widths": [8, 16]}},
        rl("jax", "3", 1234.0, model=PPO_JAX.format("(64,)"), seeds=1),
    ]  # fmt: skip
    write_chapter(tmp_path, runs)
    records = load_records(tmp_path)
    text = records_table(records)
    assert text.count("**Chapter 7, task ") == 2  # mnist, then cartpole
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert len(lines) == 2 + 2 + 2 + 1  # two tables, a header and a rule each
    assert lines[0].split("|")[4].strip() == "test accuracy"
    assert lines[4].split("|")[4].strip() == "mean evaluation return"
    assert lines[6].split("|")[6].strip() == "1,234"  # the cartpole table's env steps/s
    lines = lines[:4] + lines[6:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header = cells[0]
    row = {name: [c[header.index(name)] for c in cells[2:]] for name in header}
    assert row["test accuracy"] == [
        "98.12%, median of 3 seeds",
        "50.00%",
        "500.00 (1 seed x 100 episodes)",
    ]
    assert row["scale"][1] == "cpu, sizes changed: epochs=1, widths=8,16"
    # None for a count of examples means the whole split; elsewhere it stays None
    changed = {**runs[1], "overrides": {"outline_train_examples": None, "tau": None}}
    last = records_table(
        load_records(write_chapter(tmp_path, [changed], "05-n").parent.parent)
    )
    assert "sizes changed: outline_train_examples=all, tau=None |" in last
    assert row["examples/s"][:2] == ["1,000", "10"]
    assert row["hardware"][:2] == ["Xeon, 2 cores", "Xeon, 1 core"]
    assert row["commit"][0] == "abc+dirty"  # kept: the appendix says what it means
    assert row["model"] == ["MLP", "MLP", PPO_JAX.format("(64,)")]
    assert short_hardware({"hardware": {"gpu": "NVIDIA H200", "cores": 16}}) == "H200"
    assert (
        short_hardware({"hardware": {"cpu": "AMD EPYC", "cores": 2}}) == "EPYC, 2 cores"
    )
    no_model = {**runs[0], "chapter": "01-x", "commit": "98adac5bf233+dirty"}
    del no_model["model"]
    row = records_table([no_model]).splitlines()[-1].split("|")
    assert row[2].strip() == "(not recorded)" and row[-2].strip() == "98adac5+dirty"
    many = [{**runs[0], "chapter": "05-y", "date": f"{d:02}"} for d in range(13)]
    many[3]["overrides"] = {"epochs": 1}
    text = records_table(many)
    assert "latest run of each setup at its scale's sizes (1 of 13 records)" in text
    assert text.count("<details>") == 1 and text.count("</details>") == 1
    assert (
        len([line for line in text.splitlines() if line.startswith("| torch")])
        == 1 + 13
    )
    assert task_metric(records[0]) == ("test accuracy (%)", pytest.approx(98.12))
    assert task_metric(records[2]) == ("mean evaluation return", 500.0)
    assert task_metric({"task": "t"}) is None


def test_plot_task_plots_the_tasks_own_metric_of_the_scales_runs(tmp_path):
    runs = [
        rl("torch", "1", 3000.0, model=PPO_TORCH, eval_return_mean=446.19),
        rl("jax", "2", 9.0, model=PPO_JAX.format("(64,)"), overrides={"lr": 0.1}),
        rl("jax", "3", 120000.0, model=PPO_JAX.format("(64,)")),
    ]
    write_chapter(tmp_path, runs)
    records = load_records(tmp_path)
    fig = plot_task(records, "cartpole")
    ax_metric, ax_speed = fig.axes
    assert ax_metric.get_ylabel() == "mean evaluation return"
    assert ax_speed.get_ylabel() == "training env steps / s"
    (points,) = ax_metric.collections
    assert points.get_offsets()[:, 1].tolist() == [446.19, 500.0]  # the sweep left out
    assert [t.get_text() for t in ax_metric.texts] == ["446.19", "500.00"]  # no "nan"
    labels = [t.get_text() for t in ax_speed.get_xticklabels()]
    assert labels == ["torch ppo cpu", "jax ppo cpu"]  # no date recorded: none shown
    assert ax_speed.get_yscale() == "log"
    with pytest.raises(ValueError, match="no recorded run of task 'pendulum'"):
        plot_task(records, "pendulum")
    # One task, two chapters' models (chapter 1's MLP, chapter 3's CNN; the earliest
    # records name no model): each tick names the model family, else the chapter.
    mnist = {
        "task": "mnist",
        "framework": "torch",
        "scale": "cpu",
        "test_accuracy": 0.9,
    }
    write_chapter(tmp_path, [{**mnist, "date": "2026-11-27"},
                             {**mnist, "model": "MLP 784-256-10, Adam", "date": "2026-11-30"}],
                  "01-intro")  # fmt: skip
    write_chapter(tmp_path, [{**mnist, "model_option": "cnn", "model": "CNN conv 16-32",
                              "date": "2026-12-01"}], "03-deep")  # fmt: skip
    fig = plot_task(load_records(tmp_path), "mnist")
    labels = [t.get_text() for t in fig.axes[1].get_xticklabels()]
    assert labels == [
        "torch ch1 cpu 11-27",
        "torch mlp cpu 11-30",
        "torch cnn cpu 12-01",
    ]
    write_chapter(tmp_path, [{**runs[1], "task": "pendulum"}], "08-demo")
    with pytest.raises(ValueError, match="at its scale's sizes"):
        plot_task(load_records(tmp_path), "pendulum")  # only a sweep


def test_read_records_keeps_file_order_and_latest_by_takes_the_newest(tmp_path):
    path = tmp_path / "bench.jsonl"
    runs = [
        {"task": "t", "model_option": "a", "framework": "jax", "date": "3"},
        {"task": "t", "model_option": "a", "framework": "jax", "date": "1"},
        {"task": "t", "model_option": "b", "framework": "torch", "date": "2"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in runs) + "\n\n")
    records = read_records(path)
    assert [r["date"] for r in records] == [
        "3",
        "1",
        "2",
    ]  # the file's order, blank skipped
    latest = latest_by(records, "model_option", "framework")
    assert list(latest) == [("a", "jax"), ("b", "torch")]
    assert latest["a", "jax"]["date"] == "3"  # newest by date, not the last line
    path.write_text('{"task": "t"}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"bench.jsonl:2: not a helpers.bench record"):
        read_records(path)
    path.write_text("{oops\n")
    with pytest.raises(ValueError, match=r"bench.jsonl:1: not JSON"):
        read_records(path)


def test_framework_pairs_name_two_commits_and_need_two_speeds(tmp_path):
    """Latest runs at two commits are paired only as such (the code may differ between them),
    and a pair without a positive speed for both names no faster framework."""
    mlp = "MLP 784-256-10, Adam"
    run = {"task": "mnist", "model_option": "mlp", "scale": "cpu", "model": mlp,
           "hardware": CPU2, "train_seconds": 1.0}  # fmt: skip
    write_chapter(tmp_path, [
        {**run, "framework": "torch", "date": "1", "commit": "aaa+dirty",
         "train_examples_per_second": 100.0},
        {**run, "framework": "jax", "date": "2", "commit": "bbb",
         "train_examples_per_second": 150.0},
    ], name="01-demo")  # fmt: skip
    (pair,) = framework_pairs(load_records(tmp_path))
    assert pair["pair"] == "latest runs, two commits" and pair["faster"] == "JAX"
    write_chapter(tmp_path, [
        {**run, "framework": "torch", "date": "1", "commit": "aaa+dirty",
         "train_examples_per_second": 100.0},
        {**run, "framework": "jax", "date": "2", "commit": "aaa",
         "train_examples_per_second": 0.0},
    ], name="01-demo")  # fmt: skip
    (pair,) = framework_pairs(load_records(tmp_path))
    assert (
        pair["pair"] == "latest runs"
        and pair["faster"] == ""
        and math.isnan(pair["by x"])
    )


def test_framework_pairs_prefer_one_process_to_latest_runs_at_two_commits(tmp_path):
    write_chapter(tmp_path, [
        rl("torch", "2026-11-30T14:01", 2000.0, model=PPO_TORCH, commit="aaa",
           throughput_ratio=1.0),
        rl("jax", "2026-11-30T14:04", 80000.0, model=PPO_TORCH, commit="aaa",
           throughput_ratio=40.0),
        rl("torch", "2026-11-30T15:00", 3000.0, model=PPO_TORCH, commit="bbb"),
        rl("jax", "2026-11-30T16:00", 300000.0, model=PPO_TORCH, commit="ccc"),
    ])  # fmt: skip
    (pair,) = framework_pairs(load_records(tmp_path))
    assert pair["pair"] == "older, one process" and pair["by x"] == 40.0


def test_model_family_and_first_step_seconds_fall_back_in_order():
    assert model_family({"model_option": "cnn", "model": "MLP, 2 layers"}) == "cnn"
    assert model_family({"model": "MLP, 2 layers"}) == "mlp"
    assert model_family({}) == ""
    assert (
        first_step_seconds({"first_step_seconds": 2.0, "compile_seconds": 5.0}) == 2.0
    )
    assert first_step_seconds({"compile_seconds": 5.0}) == 5.0
    assert math.isnan(first_step_seconds({}))
    # compile_seconds 0: an eager run that compiled nothing and timed no first step (chapter
    # 7's PyTorch runs), printed "-" by the tables, not a first step of 0 s
    assert math.isnan(first_step_seconds({"compile_seconds": 0.0}))
    assert (
        first_step_seconds({"first_step_seconds": 0.0, "compile_seconds": 0.0}) == 0.0
    )
