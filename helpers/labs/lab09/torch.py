"""Lab 9 self-checks for PyTorch notebooks: ``H.lab09.check_data_parallel(train_ddp)``.

The checks that need several processes fork them (:func:`helpers.torch.labkit.run_ranks`,
gloo on 127.0.0.1), so a function defined in the notebook runs in every rank without being
importable. The ring all-reduce's check records, inside each rank, what it sends.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from helpers.labs.kit import Hints, checking, explainer, recording
from helpers.labs.lab09 import checks as lab09
from helpers.labs.lab09 import ring
from helpers.labs.lab09.torch_mistakes import ddp_mistakes
from helpers.torch.labkit import OneRank, lab_framework, run_ranks
from helpers.torch.parallel import make_model, reference_training

__all__ = [
    "check_average_gradients",
    "check_data_parallel",
    "check_ring_all_reduce",
    "check_shard_batch",
    "check_shard_weight",
]

HINTS = Hints(
    lab09.HINTS,
    lab09.TORCH_HINTS,
    ring.HINTS,
    {
        "ring_library": "the exercise writes the collective by hand: communicate only with "
        "dist.isend/dist.irecv (or send/recv), one chunk to the next rank per step, not "
        "dist.all_reduce, reduce_scatter, all_gather or broadcast",
        "ring_shape": "return one 1-D tensor of N numbers, every summed chunk in its place: "
        "the clone whose chunk() views you updated, or torch.cat(chunks), not the chunks "
        "themselves (a list or a (W, N / W) tensor)",
    },
)
TORCH = lab_framework(
    HINTS,
    explainer(
        {
            r"changed its input": "mutated_input",
            r"has dtype torch\.float(16|64), expected torch\.float32": "dtype",
            r"return \(model, losses\)": "model_first",
            r"return the losses": "losses",
            r"expected a torch\.Tensor, got (list|tuple)": "ring_shape",
            r"Invalid rank \d+, rank should be in the interval": "sampler_args",
            r"dist\.send waited": "ring_deadlock",
        },
        HINTS,
    ),
)


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
        with OneRank():
            for seed in (1, 2):
                torch.manual_seed(seed)
                grads = [torch.randn(3, 4), torch.randn(5), torch.randn(2)]
                out = c.call(student, [g.clone() for g in grads], 1)
                if not isinstance(out, (list, tuple)) or len(out) != len(grads):
                    got = f" of {len(out)}" if isinstance(out, (list, tuple)) else ""
                    raise c.fail(f"expected a list of 3 tensors, got a "
                                 f"{type(out).__name__}{got}", c.hint("grads_list"))  # fmt: skip
                for g, o in zip(grads, out, strict=True):
                    c.close(c.array(o), g.numpy(), what="the one-rank mean",
                            hint=c.hint("allreduce_mean"),
                            mistakes=[(c.hint("len_grads"), g.numpy() / len(grads))])  # fmt: skip
        for world in (2,):
            results = run_ranks(c, _grads_body(student), world)
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
        results = run_ranks(c, _train_body(student), 2)
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
            dtype = results[0][name].dtype
            c.expect(dtype == np.float32, f"the trained {name} has dtype {dtype}, "
                     "expected float32", c.hint("model_dtype"))  # fmt: skip
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
        # The ranks' losses (means over equal shares) average to one process's loss.
        c.close((losses[0] + losses[1]) / 2, reference["losses"], atol=1e-5, rtol=1e-4,
                what="the mean of the ranks' losses", hint=c.hint("loss_values"))  # fmt: skip
        # One rank too (in this process): DDP over one process is plain training.
        with OneRank():
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
                if isinstance(out[1], (list, tuple)) and len(out[1]) == sizes.steps:
                    c.close(np.asarray(out[1], np.float32), one["losses"],
                            atol=1e-5, rtol=1e-4, what="one rank's losses",
                            hint=c.hint("loss_values"))  # fmt: skip
                for name, value in model.state_dict().items():
                    c.close(value.detach().numpy(), one[name], atol=1e-5,
                            what=f"one rank's trained {name}",
                            hint=c.hint("ddp_recipe"))  # fmt: skip


# The collectives that would do exercise 5's work (or part of it) in one call.
_LIBRARY = ("all_reduce", "reduce_scatter", "reduce_scatter_tensor", "all_gather",
            "all_gather_into_tensor", "broadcast", "reduce", "all_to_all")  # fmt: skip


_SEND_WAIT = 10  # seconds a blocking dist.send may wait for its receiver


def _ring_body(student):
    """Each rank runs every case of ``ring.ring_cases``, recording what it sends."""

    def body(rank, world_size):
        sent: list[tuple[int, int]] = []
        saved = dist.send, dist.isend

        def recorded(original, blocking=False):
            def send(tensor, dst=None, *args, **kwargs):
                sent.append((int(kwargs.get("group_dst", dst)), tensor.numel()))
                if not blocking:
                    return original(tensor, dst, *args, **kwargs)
                # dist.send as isend + a bounded wait: sends that all wait for their
                # receivers (every rank sending first) fail in seconds, not at the time limit.
                work = original(tensor, dst, *args, **kwargs)
                try:
                    work.wait(timeout=timedelta(seconds=_SEND_WAIT))
                except RuntimeError:
                    raise RuntimeError(
                        f"dist.send waited {_SEND_WAIT} s for the receiver's recv"
                    ) from None

            return send

        out = {}
        targets = [(dist, name) for name in _LIBRARY]
        dist.send, dist.isend = recorded(dist.isend, True), recorded(dist.isend)
        try:
            with recording(targets) as called:
                for k, x in enumerate(ring.ring_cases(world_size)):
                    sent.clear()
                    given = torch.from_numpy(x[rank].copy())
                    result = student(given, rank, world_size)
                    if called:
                        return {"called": np.array(called[0])}
                    if not np.array_equal(given.numpy(), x[rank]):
                        raise ValueError(
                            "your function changed its input tensor in place"
                        )
                    if not isinstance(result, torch.Tensor):
                        raise TypeError(
                            f"expected a torch.Tensor, got {type(result).__name__}"
                        )
                    out[f"out{k}"] = result.detach().numpy()
                    out[f"sent{k}"] = np.array(sent, np.int64).reshape(-1, 2)
        finally:
            dist.send, dist.isend = saved
        return out

    return body


def check_ring_all_reduce(student: Any) -> None:
    """``ring_all_reduce(tensor, rank, world_size) -> the sum over the ranks``, with
    point-to-point sends only: 2 (W - 1) chunks of N / W numbers, each to the next rank."""
    with checking("ring_all_reduce", TORCH,
                  passed="2 and 4 processes, 2 (W - 1) chunks sent each") as c:  # fmt: skip
        if not callable(student):
            raise c.fail(f"expected a function, got {type(student).__name__}")
        runs = {world: run_ranks(c, _ring_body(student), world) for world in (2, 4)}
        for results in runs.values():
            for r in results:
                if "called" in r:
                    raise c.fail(f"your function called {r['called']}",
                                 c.hint("ring_library"))  # fmt: skip
        for world, results in runs.items():  # the sums first, then how they were sent
            for k, x in enumerate(ring.ring_cases(world)):
                outs = [r[f"out{k}"] for r in results]
                if len({o.shape for o in outs}) > 1:
                    raise c.fail(
                        "the ranks returned different shapes", c.hint("ring_recipe")
                    )
                ring.compare_ring(c, np.stack(outs), x)
        for world, results in runs.items():
            for k, x in enumerate(ring.ring_cases(world)):
                messages = [(rank, int(dst), int(size)) for rank, r in enumerate(results)
                            for dst, size in r[f"sent{k}"]]  # fmt: skip
                ring.compare_messages(c, messages, world, x.shape[1])
        # One rank too, in this process: the sum over one rank is the tensor itself.
        with OneRank():
            for n in (4, 6):
                x = np.random.default_rng(n).standard_normal((1, n)).astype(np.float32)
                given = torch.from_numpy(x[0].copy())
                out = c.array(c.call(student, given, 0, 1))
                if not np.array_equal(given.numpy(), x[0]):
                    raise c.fail(
                        "your function changed its input", c.hint("mutated_input")
                    )
                ring.compare_ring(c, out[None], x)
