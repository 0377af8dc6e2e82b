"""Chapter 9: every distributed example equals single-process training; cluster files parse.

The four runs go through the chapter's own script (``run-distributed.py``), each in a fresh
process (JAX's simulated devices must be set before JAX starts), each under 60 s. The
remaining tests are unit tests of the helpers on tiny inputs.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers.distributed import (
    child_env,
    markdown_table,
    measure,
    measure_interleaved,
    run_processes,
    sizes_from_json,
    sizes_to_json,
    toy_data,
)
from helpers.notebooks import ROOT
from helpers.scale import DataParallelSizes, sizes

CHAPTER = ROOT / "chapters" / "09-performance-distributed"
TINY = DataParallelSizes(
    examples=64,
    features=8,
    hidden=16,
    classes=3,
    batch_size=16,
    steps=6,
    learning_rate=0.3,
    seed=1,
)


@pytest.mark.parametrize(
    "example", ["ddp", "torchrun-nodes", "jax-devices", "jax-processes"]
)
def test_distributed_run_equals_single_process(example):
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, str(CHAPTER / "run-distributed.py"), example],
        capture_output=True,
        text=True,
        env=child_env(BOOK_SCALE="smoke"),
        timeout=120,
    )
    seconds = time.perf_counter() - start
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    record = json.loads(run.stdout.strip().splitlines()[-1])
    assert record["example"] == example
    assert record["max_abs_difference"] <= 1e-5
    # It trained: the loss moved, so equal parameters are not two untouched copies.
    assert record["last_loss"] < record["first_loss"]
    assert seconds <= 60, f"{example} took {seconds:.1f} s"


def test_the_ranks_shares_make_up_the_single_process_batch():
    """DistributedSampler: disjoint shares whose union is the global batch, step by step."""
    import torch

    from helpers.torch import parallel

    whole = parallel._global_batches(TINY, 0, 1)
    shares = [parallel._global_batches(TINY, r, 2) for r in range(2)]
    for _ in range(TINY.examples // TINY.batch_size + 1):  # into the second epoch
        x, _ = next(whole)
        parts = [next(s)[0] for s in shares]
        assert parts[0].shape == (TINY.batch_size // 2, TINY.features)
        rows = lambda t: sorted(map(tuple, t.tolist()))  # noqa: E731
        assert rows(torch.cat(parts)) == rows(x)
        assert not set(rows(parts[0])) & set(rows(parts[1]))


def test_jax_mesh_run_equals_single_device_in_process():
    """With the one CPU device of this process the mesh path is the same math."""
    from helpers.jax import sharding

    reference = sharding.reference_training(TINY)
    params, losses = sharding.train(TINY, sharding.make_mesh())
    for k, v in params.items():
        np.testing.assert_allclose(v, reference[k], atol=1e-6)
    np.testing.assert_allclose(losses, reference["losses"], atol=1e-6)


def test_mesh_and_batch_errors_name_what_was_expected():
    from helpers.jax import sharding

    with pytest.raises(ValueError, match="does not fit"):
        sharding.make_mesh((3,))
    mesh = sharding.make_mesh()
    assert sharding.shard_batch(np.zeros((4, 2), np.float32), mesh).shape == (4, 2)


def test_torch_helpers_reject_bad_input():
    from helpers.torch import parallel

    with pytest.raises(ValueError, match="world_size"):
        parallel.spawn(TINY, world_size=0)
    with pytest.raises(ValueError, match="split evenly"):
        next(parallel._global_batches(TINY, 0, 3))
    cmd = parallel.torchrun_command(TINY, "/tmp/out", nnodes=2, nproc_per_node=1)
    assert "--nnodes=2" in cmd and "--rdzv-backend=c10d" in cmd
    assert cmd[cmd.index("--sizes") + 1] == sizes_to_json(TINY)


def test_time_ranks_gives_each_rank_a_median_and_catches_a_wrong_sum():
    """Two forked ranks, two tiny sizes: a right sum agrees with dist.all_reduce, a sum
    short of one rank does not; a stub's NotImplementedError comes out before any fork."""
    import torch
    import torch.distributed as dist

    from helpers.labs.kit import CheckFailed
    from helpers.torch import parallel

    def library(x, rank, world_size):
        total = x.clone()
        dist.all_reduce(total)
        return total

    def library_in_place(x, rank, world_size):
        dist.all_reduce(x)
        return x

    def own_only(x, rank, world_size):  # a "sum" that never hears from the other rank
        return x.clone()

    timed = parallel.time_ranks(
        {"all_reduce": library, "wrong": own_only}, 2, (4, 6), calls=2, warmup=0
    )
    assert sorted(timed) == [4, 6]
    for t in timed.values():
        assert t["all_reduce"].ms.shape == (2,) and (t["all_reduce"].ms > 0).all()
        assert (t["wrong"].ms > 0).all()
        np.testing.assert_array_equal(t["all_reduce"].max_diff, [0, 0])
        assert t["wrong"].max_diff.max() > 1e-4  # the demo's assert would catch it

    def stub(x, rank, world_size):
        raise NotImplementedError("Exercise: replace this line with your code")

    with pytest.raises(NotImplementedError):
        parallel.time_ranks({"stub": stub}, 2, (4,), calls=1)
    with pytest.raises(ValueError, match="calls >= 1"):
        parallel.time_ranks({"all_reduce": library}, 2, (4,), calls=0)
    with pytest.raises(CheckFailed, match="rank"):
        parallel.time_ranks({"bad": lambda x, r, w: [1.0]}, 2, (4,), calls=1)
    with pytest.raises(CheckFailed, match="changed its input"):
        parallel.time_ranks({"in_place": library_in_place}, 2, (4,), calls=1)
    assert torch.distributed.is_initialized() is False


def test_run_processes_times_them_and_reports_failures_and_hangs():
    ok = [sys.executable, "-c", "pass"]
    assert run_processes([ok, ok], child_env(), timeout=60, what="two") > 0
    fails = [sys.executable, "-c", "print('boom'); raise SystemExit(3)"]
    with pytest.raises(
        RuntimeError, match=r"(?s)demo \(process 1\) exited with 3.*boom"
    ):
        run_processes([ok, fails], child_env(), timeout=60, what="demo")
    hangs = [sys.executable, "-c", "import time; time.sleep(30)"]
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"demo ran past 1 s"):
        run_processes([hangs], child_env(), timeout=1, what="demo")
    assert time.perf_counter() - start < 10  # killed, not waited for


def test_toy_data_and_sizes_round_trip():
    x, y = toy_data(TINY)
    assert x.shape == (64, 8) and x.dtype == np.float32 and y.dtype == np.int64
    assert len(set(y.tolist())) > 1
    again = toy_data(TINY)
    assert np.array_equal(x, again[0]) and np.array_equal(y, again[1])
    assert sizes_from_json(sizes_to_json(TINY)) == TINY
    with pytest.raises(ValueError, match="keys"):
        sizes_from_json('{"examples": 3}')
    with pytest.raises(ValueError, match="batch_size"):
        toy_data(DataParallelSizes(**{**TINY.__dict__, "batch_size": 100}))
    assert sizes("performance", "smoke").parallel.batch_size % 8 == 0


def test_measure_interleaved_takes_one_sample_of_each_in_turn():
    calls, waited = [], []
    fns = {"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2}
    timings = measure_interleaved(fns, wait=waited.append, repeats=3, warmup=1)
    assert list(timings) == ["a", "b"]
    assert calls == ["a", "b"] * 4 and waited == [1, 2] * 4
    assert all(len(t.samples) == 3 and t.median >= 0 for t in timings.values())
    with pytest.raises(ValueError, match="at least one"):
        measure_interleaved({})
    with pytest.raises(ValueError, match="repeats"):
        measure_interleaved({"a": lambda: None}, repeats=0)


def test_measure_waits_and_reports_median_and_spread():
    waited = []
    timing = measure(lambda: 3, wait=waited.append, repeats=4, warmup=2)
    assert len(timing.samples) == 4 and waited == [3] * 6
    assert timing.median >= 0 and timing.spread >= 0
    assert timing.rate(10) == pytest.approx(10 / timing.median)
    with pytest.raises(ValueError, match="repeats"):
        measure(lambda: None, repeats=0)
    table = markdown_table(["a", "b"], [[1, 0.123456]])
    assert table.splitlines()[2] == "| 1 | 0.123 |"
    # a timing never wraps inside its cell: non-breaking spaces, the same text otherwise
    row = markdown_table(["t"], [[timing]]).splitlines()[2]
    assert " " not in row[2:-2] and row[2:-2].replace("\u00a0", " ") == str(timing)
    with pytest.raises(ValueError, match="cells"):
        markdown_table(["a"], [[1, 2]])


@pytest.mark.parametrize("name", ["train-torch.sbatch", "train-jax.sbatch"])
def test_slurm_scripts_are_valid_bash_with_their_directives(name):
    path = CHAPTER / name
    subprocess.run(["bash", "-n", str(path)], check=True)
    text = path.read_text()
    for directive in ("--nodes=", "--ntasks-per-node=", "--gpus-per-node="):
        assert f"#SBATCH {directive}" in text, directive
    assert "srun" in text


@pytest.mark.parametrize("name", ["train-torch.sbatch", "train-jax.sbatch"])
def test_slurm_scripts_pass_their_sizes_as_one_json_argument(name, tmp_path):
    """Run the script with stand-ins for srun, scontrol and the launched command (which only
    record their arguments): the --sizes value, written over two lines, is still one argument
    that sizes_from_json reads, and no line of the script is wider than a page's listing.
    (scontrol's stand-in writes its host names at once, as scontrol does: bash's own printf
    writes line by line, and the second line could meet the pipe `head -n 1` has closed, which
    `pipefail` reports.)"""
    record = f'printf "%s\\0" "$@" > {tmp_path}/args\n'
    hosts = 'exec /usr/bin/printf "node-a\\nnode-b\\n"\n'
    for tool, body in [("srun", 'exec "$@"\n'), ("scontrol", hosts),
                       ("python", record), ("torchrun", record)]:  # fmt: skip
        (tmp_path / tool).write_text("#!/bin/bash\n" + body)
        (tmp_path / tool).chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "SLURM_JOB_NODELIST": "node-[a-b]",
           "SLURM_NNODES": "2", "SLURM_NTASKS": "2", "SLURM_PROCID": "0",
           "SLURM_JOB_ID": "7"}  # fmt: skip
    subprocess.run(["bash", str(CHAPTER / name)], check=True, env=env, cwd=tmp_path)
    args = (tmp_path / "args").read_text().split("\0")[:-1]
    assert sizes_from_json(args[args.index("--sizes") + 1]).steps == 200
    assert any("node-a:29" in a for a in args)  # the first node hosts the rendezvous
    assert max(len(line) for line in (CHAPTER / name).read_text().splitlines()) <= 96


def test_kubernetes_manifest_parses_with_required_keys():
    docs = list(yaml.safe_load_all((CHAPTER / "torch-job.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Service", "Job"}
    assert kinds["Service"]["spec"]["clusterIP"] == "None"
    job = kinds["Job"]
    assert (
        job["apiVersion"] == "batch/v1" and job["spec"]["completionMode"] == "Indexed"
    )
    spec = job["spec"]["template"]["spec"]
    assert spec["subdomain"] == kinds["Service"]["metadata"]["name"]
    (container,) = spec["containers"]
    command = container["command"]
    assert command[0] == "torchrun" and "--nnodes=2" in command
    assert job["spec"]["completions"] == 2
    sizes_from_json(command[command.index("--sizes") + 1])


def test_chapter_files_exist():
    for name in ("run-distributed.py", "train-torch.sbatch", "torch-job.yaml"):
        assert (CHAPTER / name).is_file(), name
    assert Path(CHAPTER / "run-distributed.py").read_text().count("TOLERANCE") >= 2
