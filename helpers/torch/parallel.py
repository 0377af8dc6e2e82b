"""Data-parallel training in PyTorch (chapter 9): ``H.parallel``, PyTorch-only.

Worker functions that spawned processes must be able to import (a function defined in a
notebook cannot be pickled into a fresh interpreter), and thin wrappers around the launchers
PyTorch ships: ``torch.multiprocessing`` (``start_processes``) and ``torchrun``
(``python -m torch.distributed.run``). Nothing here replaces them; it builds their command
lines and reads back what the workers wrote. Every run trains the same small MLP on
:func:`helpers.distributed.toy_data`, so it can be compared with :func:`reference_training`.

:func:`time_ranks` times collectives defined in a notebook (lab 9's ring all-reduce against
``dist.all_reduce``) on ranks forked by :func:`helpers.torch.labkit.run_ranks`.

Run under torchrun (what :func:`torchrun_command` builds)::

    torchrun --nproc-per-node 2 -m helpers.torch.parallel --sizes '{...}' --out DIR
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from helpers.distributed import (
    child_env,
    free_port,
    run_processes,
    sizes_from_json,
    sizes_to_json,
    toy_data,
)
from helpers.scale import DataParallelSizes

__all__ = [
    "RankTimes",
    "ddp_worker",
    "launch_torchrun",
    "load_results",
    "make_model",
    "reference_training",
    "spawn",
    "time_ranks",
    "torchrun_command",
    "train",
]
__framework_only__ = (
    True  # JAX has no DDP; its data parallelism is helpers.jax.sharding
)

Result = dict[str, np.ndarray]


def make_model(sizes: DataParallelSizes) -> nn.Module:
    """The MLP every run trains, initialised from ``sizes.seed`` (same weights everywhere).

    ``Linear(features, hidden)``, tanh, ``Linear(hidden, classes)``: no BatchNorm, whose
    per-worker statistics would make data-parallel and single-process training differ.
    """
    torch.manual_seed(sizes.seed)
    return nn.Sequential(
        nn.Linear(sizes.features, sizes.hidden),
        nn.Tanh(),
        nn.Linear(sizes.hidden, sizes.classes),
    )


def _global_batches(
    sizes: DataParallelSizes, rank: int, world_size: int, sampler: bool = True
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's share of each global batch, epoch after epoch, shuffled per epoch."""
    x, y = toy_data(sizes)
    data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    if sizes.batch_size % world_size:
        raise ValueError(
            f"the global batch {sizes.batch_size} must split evenly over {world_size} workers"
        )
    epoch = 0
    while True:
        if sampler:
            # Each rank takes every world_size-th index of one permutation shared by all ranks.
            s = DistributedSampler(
                data, world_size, rank, shuffle=True, seed=sizes.seed, drop_last=True
            )
            s.set_epoch(epoch)
        else:
            g = torch.Generator().manual_seed(sizes.seed + epoch)
            s = torch.randperm(len(data), generator=g).tolist()
        loader = DataLoader(data, batch_size=sizes.batch_size // world_size, sampler=s)
        yield from (
            batch for batch in loader if len(batch[0]) * world_size == sizes.batch_size
        )
        epoch += 1


def train(
    sizes: DataParallelSizes,
    *,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | str = "cpu",
) -> tuple[nn.Module, list[float]]:
    """Train :func:`make_model` for ``sizes.steps`` SGD steps of the global batch.

    With ``world_size > 1`` the default process group must exist: the model is wrapped in
    ``DistributedDataParallel`` (which averages gradients over the ranks in ``backward``) and
    each rank reads its share through a ``DistributedSampler``. Returns the (unwrapped) model
    and this rank's losses, ``float`` per step. On a GPU pass this rank's ``device``.
    """
    device = torch.device(device)
    model = make_model(sizes).to(device)
    if world_size > 1:
        model = DDP(model, device_ids=[device] if device.type == "cuda" else None)
    opt = torch.optim.SGD(model.parameters(), lr=sizes.learning_rate)
    losses = []
    batches = _global_batches(sizes, rank, world_size)
    for _ in range(sizes.steps):
        xb, yb = (t.to(device) for t in next(batches))  # (B / W, features), (B / W,)
        loss = nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return (model.module if world_size > 1 else model), losses


def reference_training(sizes: DataParallelSizes) -> Result:
    """Single-process training on whole global batches: what every parallel run must equal.

    Returns ``{parameter name: float32 array}`` plus ``"losses"`` ``(steps,)``.
    """
    model, losses = train(sizes)
    return _result(model, losses)


def _result(model: nn.Module, losses: list[float]) -> Result:
    out = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
    out["losses"] = np.asarray(losses, dtype=np.float32)
    return out


def _save(out_dir: str | Path, rank: int, result: Result) -> None:
    path = Path(out_dir) / f"rank{rank}.npz"
    np.savez(path.with_suffix(".tmp.npz"), **result)
    path.with_suffix(".tmp.npz").replace(path)


def ddp_worker(
    rank: int, world_size: int, sizes_json: str, init_method: str, out_dir: str
) -> None:
    """One rank of a ``torch.multiprocessing`` run (the signature ``start_processes`` calls).

    Joins a gloo process group at ``init_method`` (``tcp://127.0.0.1:PORT``), trains with
    :func:`train` and writes ``out_dir/rank{rank}.npz``.
    """
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=init_method, rank=rank, world_size=world_size
    )
    try:
        model, losses = train(
            sizes_from_json(sizes_json), rank=rank, world_size=world_size
        )
        _save(out_dir, rank, _result(model, losses))
    finally:
        dist.destroy_process_group()


def load_results(out_dir: str | Path, world_size: int) -> list[Result]:
    """What ranks ``0 .. world_size - 1`` wrote; ``RuntimeError`` names a missing rank."""
    results = []
    for rank in range(world_size):
        path = Path(out_dir) / f"rank{rank}.npz"
        if not path.exists():
            raise RuntimeError(f"rank {rank} wrote no result ({path} is missing)")
        with np.load(path) as f:
            results.append({k: f[k] for k in f.files})
    return results


def spawn(
    sizes: DataParallelSizes,
    world_size: int = 2,
    *,
    worker: Callable[..., None] = ddp_worker,
    start_method: str = "spawn",
) -> list[Result]:
    """Run ``worker(rank, world_size, sizes_json, init_method, out_dir)`` in ``world_size``
    processes with ``torch.multiprocessing.start_processes``; return each rank's result
    (``out_dir/rank{N}.npz``; an empty list when no rank wrote one).

    ``start_method="spawn"`` starts fresh interpreters (``worker`` must be importable);
    ``"fork"`` copies this process, so a function defined in a notebook works too (CPU only:
    never fork a process that has started CUDA).
    """
    import torch.multiprocessing as mp

    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    with tempfile.TemporaryDirectory() as out_dir:
        init = f"tcp://127.0.0.1:{free_port()}"
        args = (world_size, sizes_to_json(sizes), init, out_dir)
        mp.start_processes(
            worker, args=args, nprocs=world_size, start_method=start_method
        )
        if not any(Path(out_dir).glob("rank*.npz")):
            return []  # a worker that reports by printing, not by writing rank{N}.npz
        return load_results(out_dir, world_size)


@dataclass(frozen=True)
class RankTimes:
    """One function at one size, as :func:`time_ranks` measured it, per rank: ``ms`` (W,),
    the median milliseconds per call; ``max_diff`` (W,), the largest absolute difference
    between the rank's last result and the first function's (zeros for the first)."""

    ms: np.ndarray
    max_diff: np.ndarray


Collective = Callable[[torch.Tensor, int, int], torch.Tensor]


def time_ranks(
    fns: Mapping[str, Collective],
    world_size: int,
    numels: Sequence[int],
    *,
    calls: int,
    warmup: int = 1,
    seed: int = 0,
) -> dict[int, dict[str, RankTimes]]:
    """Time collectives ``fn(tensor, rank, world_size) -> tensor`` (an all-reduce, say) on
    ``world_size`` ranks forked and joined by gloo (:func:`helpers.torch.labkit.run_ranks`).

    For each size ``N`` in ``numels``, rank ``r``'s ``tensor`` is ``N`` float32 normal numbers
    drawn from ``seed + r`` (the same for every function and call). Each function runs
    ``warmup`` untimed calls, then ``calls`` timed ones, interleaved with the other functions
    (so a burst of load from elsewhere hits all of them alike), each after a
    ``dist.barrier()`` so that the ranks start together, timed with ``time.perf_counter``.
    Returns ``{N: {name: RankTimes}}``: each rank's median in milliseconds (a collective ends
    when its slowest rank does: read ``ms.max()``) and how far its last result is from the
    first function's, compared in the rank (no N-number result travels back).

    Every function is first called once in this process on a one-rank group, so a lab's
    unsolved stub raises its ``NotImplementedError`` here, before anything is forked.
    Errors: ``ValueError`` for no functions, a ``world_size``, size or ``calls`` below 1, or
    ``warmup`` below 0; a rank's error, a hang, a function that changes its input in place
    or returns anything but a tensor of ``N`` numbers raise
    :class:`~helpers.labs.kit.CheckFailed` naming the rank.
    """
    from helpers.labs.kit import Checker
    from helpers.torch.labkit import OneRank, run_ranks

    sizes = [int(n) for n in numels]
    if not fns or min([world_size, calls, *sizes]) < 1 or warmup < 0:
        raise ValueError(
            "expected functions, world_size, numels and calls >= 1 and warmup >= 0; got "
            f"{len(fns)} functions, {world_size}, {sizes}, {calls} and {warmup}"
        )
    with OneRank():  # a stub raises NotImplementedError here, not in a forked rank
        for fn in fns.values():
            fn(torch.zeros(sizes[0]), 0, 1)

    def body(rank: int, world: int) -> dict[str, np.ndarray]:
        report = {}
        for n in sizes:
            x = torch.randn(n, generator=torch.Generator().manual_seed(seed + rank))
            kept = x.clone()  # (N,)
            ms: dict[str, list[float]] = {name: [] for name in fns}
            last: dict[str, torch.Tensor] = {}
            for k in range(warmup + calls):
                for name, fn in fns.items():
                    dist.barrier()
                    start = time.perf_counter()
                    out = fn(x, rank, world)  # (N,)
                    if k >= warmup:
                        ms[name].append(1e3 * (time.perf_counter() - start))
                    if not torch.equal(x, kept):
                        raise ValueError(f"{name} changed its input tensor in place")
                    last[name] = out
            first = None
            for name, out in last.items():
                if not isinstance(out, torch.Tensor) or out.numel() != n:
                    raise TypeError(
                        f"{name} returned {out!r:.60}, expected {n} numbers"
                    )
                out = out.detach().reshape(-1).float()
                first = out if first is None else first
                report[f"{name}:{n}:ms"] = np.median(ms[name])
                report[f"{name}:{n}:diff"] = (out - first).abs().max().numpy()
        return report

    results = run_ranks(Checker("time_ranks"), body, world_size)
    return {
        n: {
            name: RankTimes(
                ms=np.array([float(r[f"{name}:{n}:ms"]) for r in results]),
                max_diff=np.array([float(r[f"{name}:{n}:diff"]) for r in results]),
            )
            for name in fns
        }
        for n in sizes
    }


def torchrun_command(
    sizes: DataParallelSizes,
    out_dir: str | Path,
    *,
    nnodes: int = 1,
    nproc_per_node: int = 2,
    rdzv_endpoint: str = "127.0.0.1:29400",
    rdzv_id: str = "chapter9",
    max_restarts: int = 0,
) -> list[str]:
    """The ``torchrun`` command line of one node running this module's :func:`main`.

    Start it once per node (``nnodes`` times): the nodes meet at ``rdzv_endpoint`` through the
    c10d rendezvous, the same as on a cluster. ``max_restarts`` lets torchrun restart failed
    workers (fault tolerance).
    """
    return [
        sys.executable, "-m", "torch.distributed.run",
        f"--nnodes={nnodes}", f"--nproc-per-node={nproc_per_node}",
        "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}",
        f"--rdzv-id={rdzv_id}", f"--max-restarts={max_restarts}",
        "-m", "helpers.torch.parallel",
        "--sizes", sizes_to_json(sizes), "--out", str(out_dir),
    ]  # fmt: skip


def launch_torchrun(
    sizes: DataParallelSizes,
    *,
    nnodes: int = 1,
    nproc_per_node: int = 2,
    timeout: float = 120.0,
) -> tuple[list[Result], float]:
    """Start ``nnodes`` torchrun launches on this machine (each a "node") and wait for them.

    Returns every rank's result and the wall-clock seconds. ``RuntimeError`` with the end of
    the launcher's output when a launch fails or runs past ``timeout`` seconds.
    """
    with tempfile.TemporaryDirectory() as out_dir:
        cmd = torchrun_command(
            sizes, out_dir, nnodes=nnodes, nproc_per_node=nproc_per_node,
            rdzv_endpoint=f"127.0.0.1:{free_port()}",
        )  # fmt: skip
        seconds = run_processes(
            [cmd] * nnodes, child_env(), timeout=timeout, what="torchrun"
        )
        return load_results(out_dir, nnodes * nproc_per_node), seconds


def main(argv: list[str] | None = None) -> None:
    """The program torchrun starts in every worker: rank and world size come from the
    environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", required=True, help="DataParallelSizes as JSON")
    parser.add_argument("--out", required=True, help="folder for rank{N}.npz")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    # NCCL between GPUs, gloo between CPUs; init_method "env://": torchrun set the variables.
    gpu = torch.cuda.is_available()
    dist.init_process_group("nccl" if gpu else "gloo")
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if gpu else "cpu"
        model, losses = train(
            sizes_from_json(args.sizes), rank=rank, world_size=world, device=device
        )
        _save(args.out, rank, _result(model, losses))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
