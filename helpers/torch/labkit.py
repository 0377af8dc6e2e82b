"""What every lab's PyTorch adapter shares: how a check hands tensors over and reads them back.

``helpers/labs/labNN/torch.py`` builds its :class:`~helpers.labs.kit.Framework` here, giving
only what is particular to its lab (its hints and how to explain PyTorch's errors).

A check that needs several processes (lab 9) forks ranks with :func:`run_ranks`
(``torch.multiprocessing``, start method ``fork``, gloo on 127.0.0.1), so a function defined
in the notebook runs in every rank without being importable; each rank reports back through
a file. A rank that hangs (one rank waiting in a collective the other never calls) is stopped
after a time limit. :class:`OneRank` is a one-process group in this process.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.overrides import TorchFunctionMode

from helpers.distributed import free_port
from helpers.labs.kit import CheckFailed, Framework, Hints, WatchedCalls, recording

__all__ = [
    "OneRank",
    "autodiff_calls",
    "function_calls",
    "lab_framework",
    "run_ranks",
    "to_numpy",
]
# JAX's checks run workers under vmap; JAX has no hook that sees every function by name.
__framework_only__ = ("OneRank", "function_calls", "run_ranks")


try:  # NumPy's bfloat16, the one JAX returns; it comes with JAX, not with PyTorch
    from ml_dtypes import bfloat16 as _NP_BFLOAT16
except ImportError:  # pragma: no cover - PyTorch alone
    _NP_BFLOAT16 = None


def to_numpy(value: object) -> np.ndarray:
    """A tensor as numpy; ``TypeError`` (naming the type) for anything that is not a tensor.

    Every tensor converts: a ``bfloat16`` one (``torch.autocast``'s result) keeps its dtype
    as ``ml_dtypes.bfloat16`` when installed, so a check sees the dtype and can name it, as
    in JAX; other dtypes NumPy lacks (float8, complex32) become float32 or complex64.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(type(value).__name__)
    tensor = value.detach().cpu()
    if tensor.dtype == torch.bfloat16 and _NP_BFLOAT16 is not None:
        return tensor.view(torch.int16).numpy().view(_NP_BFLOAT16)
    try:
        return tensor.numpy()
    except TypeError:  # a dtype NumPy has no counterpart for
        wider = torch.complex64 if tensor.is_complex() else torch.float32
        return tensor.to(wider).numpy()


def lab_framework(
    hints: Hints,
    explain: Callable[[BaseException], str | None],
    side_effects: Callable[[Any], str | None] | None = None,
) -> Framework:
    """The PyTorch ``Framework`` of one lab: its ``hints``, ``explain`` and ``side_effects``."""
    extra = {} if side_effects is None else {"side_effects": side_effects}
    return Framework(
        name="torch",
        array_type="a torch.Tensor",
        from_numpy=torch.from_numpy,
        to_numpy=to_numpy,
        hints=hints,
        explain=explain,
        **extra,
    )


# The entry points of autodiff, as __torch_function__ sees them, and their names in torch.autograd:
# reverse mode (all else that differentiates backwards, torch.func.grad, vjp, jacrev,
# torch.autograd.functional, calls one) and forward mode (make_dual, under any name, runs
# the op _make_dual; so do torch.func.jvp, jacfwd and linearize).
_AUTODIFF_OPS = {
    "backward": "backward",
    "grad": "grad",
    "_make_dual": "forward_ad.make_dual",
}
_calibration_grad = torch.autograd.grad  # bound now: a name the watcher never replaced
# What a mode cannot see: a backward pass run in another thread (modes are per thread) or with
# torch function disabled. grad and backward both run this function of torch.autograd, looked
# up at each call. Internal: watched only where this PyTorch has it.
_INTERNALS = ("_engine_run_backward",)


def _internals() -> list[tuple[Any, str, str]]:
    return [
        (torch.autograd, name, f"autodiff (PyTorch's internal autograd.{name})")
        for name in _INTERNALS
        if callable(getattr(torch.autograd, name, None))
    ]


class _AutodiffCalls(TorchFunctionMode):
    """Records each Tensor.backward, torch.autograd.backward, torch.autograd.grad and
    forward_ad.make_dual call.

    All dispatch through ``__torch_function__`` (torch.overrides), so a mode sees them under
    whatever name the student imported them.
    """

    def __init__(self, calls: list[str]) -> None:
        super().__init__()
        self.calls = calls

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in _AUTODIFF_OPS:
            method = getattr(func, "__qualname__", "").startswith("Tensor.")
            owner = "Tensor" if method else "torch.autograd"
            self.calls.append(f"{owner}.{_AUTODIFF_OPS[name]}")
        return func(*args, **(kwargs or {}))


class _NamedCalls(TorchFunctionMode):
    """Records each call whose function name ``label`` maps to a label (None: not watched)."""

    def __init__(self, calls: list[str], label: Callable[[str], str | None]) -> None:
        super().__init__()
        self.calls, self.label = calls, label

    def __torch_function__(self, func, types, args=(), kwargs=None):
        label = self.label(str(getattr(func, "__name__", "")))
        if label:
            self.calls.append(label)
        return func(*args, **(kwargs or {}))


@contextmanager
def function_calls(
    label: Callable[[str], str | None], calls: WatchedCalls | None = None
) -> Iterator[WatchedCalls]:
    """Watch PyTorch functions by their ``__name__`` while the block runs, under any name.

    A torch function reached as ``torch.gru_cell``, imported, through ``torch._VF``,
    ``torch._C._VariableFunctions`` or ``torch.ops.aten`` (``"gru_cell.default"``) dispatches
    through ``__torch_function__`` (torch.overrides), so one ``TorchFunctionMode`` sees it
    whatever the student called it. ``label(name)`` returns the entry to record, or None for
    a function that is not watched. Entries go into ``calls`` (a new
    :class:`~helpers.labs.kit.WatchedCalls` by default), which the block receives.
    """
    calls = WatchedCalls() if calls is None else calls
    with _NamedCalls(calls, label):
        yield calls


def _eager() -> Any:
    """Ignore torch.compile inside the block (a function compiled before the check would run
    its graph and differentiate unseen); a no-op where this PyTorch cannot."""
    set_stance = getattr(torch.compiler, "set_stance", None)
    return set_stance("force_eager") if set_stance is not None else nullcontext()


@contextmanager
def autodiff_calls() -> Iterator[WatchedCalls]:
    """Watch PyTorch's automatic differentiation while the block runs, torch.compile off.

    Yields a :class:`~helpers.labs.kit.WatchedCalls` that gets one entry per call, such as
    ``"torch.autograd.grad"`` or ``"Tensor.backward"``: reverse mode through a
    ``TorchFunctionMode`` (``backward`` and ``autograd.grad`` under any name, and all that is
    built on them) and through ``torch.autograd._engine_run_backward`` (in any thread), forward
    mode through ``torch.autograd.forward_ad.make_dual`` (under any name), which
    ``torch.func.jvp``, ``jacfwd`` and ``linearize`` call. Compiled functions run eagerly
    inside (``torch.compiler.set_stance("force_eager")``). Before yielding, a calibration
    differentiates through a name bound at import; if neither the mode nor the internal
    function saw it (a PyTorch that dispatches otherwise) ``complete`` is False. Raises
    nothing of its own; the watch ends with the block, whatever happens.
    """
    targets = [(fwAD, "make_dual"), *_internals()]
    with _eager(), recording(targets) as calls, _AutodiffCalls(calls):
        x = torch.ones((), requires_grad=True)
        _calibration_grad(x * x, x)
        complete = bool(calls)
        calls.clear()
        calls.complete = complete
        yield calls


_TIMEOUT = 60.0
_PEER_GONE = ("Connection closed by peer", "Connection reset by peer")


def run_ranks(c, body, world_size: int) -> list[dict]:
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
    errors = [(rank, str(r["error"])) for rank, r in enumerate(results) if "error" in r]
    # A rank that failed leaves, and its peers then fail on the closed connection: report the
    # error that came first (the student's), not the peers' "Connection closed by peer".
    errors.sort(key=lambda e: any(p in e[1] for p in _PEER_GONE))
    if errors:
        rank, text = errors[0]
        if text.startswith("NotImplementedError"):
            c.call(_stub)
        hint = (c.fw.explain(RuntimeError(text)) if c.fw is not None else None) or ""
        raise c.fail(f"rank {rank}: your code raised {text.splitlines()[0]}", hint)
    return results


class OneRank:
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
            try:  # no rank leaves while another still connects (a body that sends nothing)
                dist.barrier()
            except Exception:  # a rank that failed has left: its own report says why
                pass
        finally:
            dist.destroy_process_group()
    except Exception as error:
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        np.savez(path, error=np.array(detail))
