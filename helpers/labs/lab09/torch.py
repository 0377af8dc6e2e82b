"""Lab 9 self-checks for PyTorch notebooks: ``H.lab09.check_data_parallel(train_ddp)``.

The checks that need several processes fork them (``torch.multiprocessing``, start method
``fork``, gloo on 127.0.0.1), so a function defined in the notebook runs in every rank
without being importable; each rank reports back through a file. A rank that hangs (one
rank waiting in a collective the other never calls) is stopped after a time limit.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from helpers.distributed import free_port
from helpers.labs.kit import CheckFailed, Hints, checking, explainer
from helpers.labs.lab09 import checks as lab09
from helpers.labs.lab09.mistakes import ddp_mistakes
from helpers.torch.labkit import lab_framework
from helpers.torch.parallel import make_model, reference_training

__all__ = [
    "check_average_gradients",
    "check_data_parallel",
    "check_shard_batch",
    "check_shard_weight",
]

HINTS = Hints(lab09.HINTS, lab09.TORCH_HINTS)
TORCH = lab_framework(
    HINTS,
    explainer(
        {
            r"changed its input": "mutated_input",
            r"has dtype torch\.float(16|64), expected torch\.float32": "dtype",
            r"return \(model, losses\)": "model_first",
            r"return the losses": "losses",
        },
        HINTS,
    ),
)
_TIMEOUT = 60.0


def check_shard_batch(student: Any) -> None:
    """``shard_batch(order, step, rank, world_size, batch_size) -> LongTensor`` of indices."""
    with checking("shard_batch", TORCH, passed="2, 3 and 4 ranks, several steps") as c:
        kept = np.random.default_rng(5).permutation(96)
        order = torch.from_numpy(kept.copy())
        for world in lab09.WORLD_SIZES:
            batch_size = 4 * world
            for step in (0, 1, 3):
                shares = []
                for rank in range(world):
                    out = c.call(student, order, step, rank, world, batch_size)
                    if not np.array_equal(order.numpy(), kept):
                        raise c.fail("your function changed order",
                                     c.hint("mutated_input"))  # fmt: skip
                    shares.append(np.asarray(c.array(out)))
                batch = kept[step * batch_size : (step + 1) * batch_size]
                lab09.compare_share(c, shares, batch, step * batch_size)


def check_shard_weight(student: Any) -> None:
    """``shard_weight(weight, rank, world_size) -> this rank's rows`` of an ``nn.Linear``
    weight ``(out_features, in_features)``: the outputs it computes."""
    with checking("shard_weight", TORCH, passed="2, 3 and 4 ranks, two weights") as c:
        rng = np.random.default_rng(6)
        for world in lab09.WORLD_SIZES:
            weight = rng.standard_normal((2 * world, 3 * world + 1)).astype(np.float32)
            for rank in range(world):
                given = torch.from_numpy(weight.copy())
                out = c.array(c.call(student, given, rank, world))
                if not np.array_equal(given.numpy(), weight):
                    raise c.fail("your function changed the weight",
                                 c.hint("mutated_input"))  # fmt: skip
                c.dtype(out, "float32", c.hint("dtype"))
                rows = weight.shape[0] // world
                expected = weight[rank * rows : (rank + 1) * rows]
                if out.shape == weight.shape:
                    raise c.fail("the rank got the whole weight", c.hint("replicated"))
                if out.shape[0] == weight.shape[0]:
                    raise c.fail(
                        f"rank {rank} got shape {out.shape}: all output rows, a slice of "
                        "the inputs",
                        c.hint("weight_axis"),
                    )
                c.close(
                    out,
                    expected,
                    what=f"rank {rank}'s block",
                    hint=c.hint("block_rows"),
                    mistakes=[(c.hint("block"), weight[rank::world])],
                )


def _run_ranks(c, body, world_size: int) -> list[dict]:
    """Fork ``world_size`` ranks joined by gloo; each runs ``body(rank, world_size)`` and
    its returned dict of arrays (or its error) comes back. Fails on errors and hangs."""
    with tempfile.TemporaryDirectory() as out:
        init = f"tcp://127.0.0.1:{free_port()}"
        ctx = mp.start_processes(
            _rank_main, args=(world_size, init, out, body), nprocs=world_size,
            join=False, start_method="fork",
        )  # fmt: skip
        deadline = time.monotonic() + _TIMEOUT
        try:
            while not ctx.join(timeout=0.5):
                if time.monotonic() > deadline:
                    for p in ctx.processes:
                        p.kill()
                    raise c.fail(
                        f"the ranks did not finish in {_TIMEOUT:.0f} s",
                        "every rank must call the same collectives in the same order; "
                        "one rank waiting in all_reduce for a rank that never calls it hangs",
                    )
        except CheckFailed:
            raise
        except Exception as error:  # a rank died without reporting
            raise c.fail(
                f"a rank exited abnormally: {str(error).splitlines()[0]}"
            ) from None
        results = []
        for rank in range(world_size):
            path = Path(out) / f"rank{rank}.npz"
            if not path.exists():
                raise c.fail(f"rank {rank} reported nothing")
            with np.load(path, allow_pickle=False) as f:
                results.append({k: f[k] for k in f.files})
    for rank, r in enumerate(results):
        if "error" in r:
            text = str(r["error"])
            if text.startswith("NotImplementedError"):
                c.call(_stub)
            hint = c.fw.explain(RuntimeError(text)) or ""
            raise c.fail(f"rank {rank}: your code raised {text.splitlines()[0]}", hint)
    return results


class _OneRank:
    """A one-process gloo group in this process, for calls the check can count and time."""

    def __enter__(self):
        init = f"tcp://127.0.0.1:{free_port()}"
        dist.init_process_group("gloo", init_method=init, rank=0, world_size=1)

    def __exit__(self, *exc):
        dist.destroy_process_group()


def _stub():
    raise NotImplementedError


def _rank_main(rank, world_size, init, out, body) -> None:
    torch.set_num_threads(1)
    path = Path(out) / f"rank{rank}.npz"
    try:
        dist.init_process_group(
            "gloo", init_method=init, rank=rank, world_size=world_size
        )
        try:
            np.savez(path, **body(rank, world_size))
        finally:
            dist.destroy_process_group()
    except Exception as error:
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        np.savez(path, error=np.array(detail))


def _grads_body(student):
    def body(rank, world_size):
        s = lab09.LAB_SIZES
        model = make_model(s)
        x, y = (torch.from_numpy(a) for a in _data())
        share = slice(rank, s.batch_size, world_size)
        torch.nn.functional.cross_entropy(model(x[share]), y[share]).backward()
        grads = [p.grad.clone() for p in model.parameters()]
        kept = [g.clone() for g in grads]
        out = student(grads, world_size)
        if not all(torch.equal(g, k) for g, k in zip(grads, kept, strict=True)):
            raise ValueError("your function changed its input grads in place")
        if not isinstance(out, (list, tuple)) or len(out) != len(grads):
            raise TypeError(
                f"return a list of {len(grads)} tensors (one per gradient), "
                f"got {type(out).__name__}"
            )
        for g, o in zip(grads, out, strict=True):
            if not isinstance(o, torch.Tensor) or o.shape != g.shape:
                raise TypeError(
                    f"expected a tensor of shape {tuple(g.shape)}, got {o!r:.60}"
                )
            if o.dtype != g.dtype:
                raise TypeError(f"a result has dtype {o.dtype}, expected {g.dtype}")
        names = [n for n, _ in model.named_parameters()]
        return {n: o.detach().float().numpy() for n, o in zip(names, out, strict=True)}

    return body


def _data():
    from helpers.distributed import toy_data

    x, y = toy_data(lab09.LAB_SIZES)
    return x[: lab09.LAB_SIZES.batch_size], y[: lab09.LAB_SIZES.batch_size]


def check_average_gradients(student: Any) -> None:
    """``average_gradients(grads, world_size) -> grads``: each gradient tensor replaced by
    its mean over the ranks, with ``torch.distributed.all_reduce``."""
    with checking(
        "average_gradients", TORCH, passed="2 processes, the full-batch gradient"
    ) as c:
        if not callable(student):
            raise c.fail(f"expected a function, got {type(student).__name__}")
        model = make_model(lab09.LAB_SIZES)
        x, y = (torch.from_numpy(a) for a in _data())
        torch.nn.functional.cross_entropy(model(x), y).backward()
        expected = {n: p.grad.numpy() for n, p in model.named_parameters()}
        # One rank first: the mean over one rank is the gradient itself (three tensors, so
        # that dividing by len(grads) shows).
        with _OneRank():
            for seed in (1, 2):
                torch.manual_seed(seed)
                grads = [torch.randn(3, 4), torch.randn(5), torch.randn(2)]
                out = c.call(student, [g.clone() for g in grads], 1)
                if not isinstance(out, (list, tuple)) or len(out) != len(grads):
                    raise c.fail(
                        f"expected a list of 3 tensors, got {type(out).__name__}"
                    )
                for g, o in zip(grads, out, strict=True):
                    c.close(c.array(o), g.numpy(), what="the one-rank mean",
                            hint=c.hint("allreduce_mean"),
                            mistakes=[(c.hint("len_grads"), g.numpy() / len(grads))])  # fmt: skip
        for world in (2,):
            results = _run_ranks(c, _grads_body(student), world)
            if not np.allclose(
                results[0]["0.weight"], results[1]["0.weight"], atol=1e-6
            ):
                raise c.fail(
                    "the ranks ended with different gradients", c.hint("no_allreduce")
                )
            for name, grad in expected.items():
                c.close(
                    results[0][name], grad, what=f"the gradient of {name}",
                    hint=c.hint("allreduce_mean"),
                    mistakes=[(c.hint("summed"), world * grad),
                              (c.hint("averaged_twice"), grad / world)],
                )  # fmt: skip


def _train_body(student):
    def body(rank, world_size):
        out = student(rank, world_size, lab09.LAB_SIZES)
        if not isinstance(out, tuple) or len(out) != 2:
            raise TypeError(f"return (model, losses), got {type(out).__name__}")
        model, losses = out
        model = getattr(model, "module", model)  # DDP wraps the model
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"return (model, losses): got {type(model).__name__} first")
        if not isinstance(losses, (list, tuple)) or not all(
            isinstance(v, float) for v in losses
        ):
            raise TypeError(
                "return the losses as a list of Python floats (loss.item())"
            )
        state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
        return {**state, "losses": np.asarray([float(v) for v in losses], np.float32)}

    return body


def check_data_parallel(student: Any) -> None:
    """``train_ddp(rank, world_size, sizes) -> (model, losses)``: DDP on 2 processes ends
    with the parameters of one process trained on the whole global batches."""
    with checking("train_ddp", TORCH, passed="2 processes equal 1 process") as c:
        if not callable(student):
            raise c.fail(f"expected a function, got {type(student).__name__}")
        s = lab09.LAB_SIZES
        reference = reference_training(s)
        results = _run_ranks(c, _train_body(student), 2)
        losses = [r.get("losses", np.zeros(0)) for r in results]
        if len(losses[0]) == s.steps and np.allclose(losses[0], losses[1], atol=1e-7):
            raise c.fail(
                "both ranks had the same loss at every step", c.hint("same_data")
            )
        # Each mistake's one-process equivalent (gradients averaged twice: every step half
        # as long; the global batch on every rank: batches twice as large; ...).
        wrong = ddp_mistakes(s, 2)
        for name in (k for k in reference if k != "losses"):
            if name not in results[0]:
                raise c.fail(f"the returned model has no parameter {name!r}")
            if not np.allclose(results[0][name], results[1][name], atol=1e-6):
                raise c.fail("the two ranks' models differ", c.hint("no_ddp"))
            c.close(
                results[0][name], reference[name], what=f"the trained {name}", atol=1e-5,
                hint=c.hint("ddp_recipe"),
                mistakes=[(c.hint(key), params[name]) for key, params in wrong],
            )  # fmt: skip
        if any(len(v) != s.steps for v in losses):
            raise c.fail(
                f"rank 0 returned {len(losses[0])} losses, expected {s.steps} (one per step)",
                c.hint("losses"),
            )
        # One rank too (in this process): DDP over one process is plain training.
        with _OneRank():
            for sizes in (s, replace(s, seed=s.seed + 1)):
                out = c.call(student, 0, 1, sizes)
                if not isinstance(out, tuple) or len(out) != 2:
                    raise c.fail(f"return (model, losses), got {type(out).__name__}",
                                 c.hint("model_first"))  # fmt: skip
                model = getattr(out[0], "module", out[0])
                if not isinstance(model, torch.nn.Module):
                    raise c.fail(
                        f"expected the model first, got {type(model).__name__}",
                        c.hint("model_first"),
                    )
                one = reference_training(sizes)
                for name, value in model.state_dict().items():
                    c.close(value.detach().numpy(), one[name], atol=1e-5,
                            what=f"one rank's trained {name}",
                            hint=c.hint("ddp_recipe"))  # fmt: skip
