"""Lab 9, exercise 5 (``ring_all_reduce``), the part both frameworks share, on numpy answers.

Each worker holds a 1-D float32 array of ``N = W * c`` numbers; the ring all-reduce returns
their elementwise sum on every worker, using only point-to-point messages between neighbours
on a ring: a reduce-scatter (``W - 1`` steps, each worker sending one partial chunk to the next
and adding the one it receives), then an all-gather (``W - 1`` steps passing the finished
chunks on). Every worker sends ``2 (W - 1)`` messages of ``N / W`` numbers, chapter 9's
``2N(W - 1)/W``.

An adapter runs the student's function on every worker of :func:`ring_cases`, then hands the
results to :func:`compare_ring` and the messages it saw (``(source, destination, numbers)``,
from the jaxpr's ``ppermute`` equations in JAX, from recorded ``dist.send``/``isend`` calls in
PyTorch) to :func:`compare_messages`. :func:`ring_reference` is the algorithm in numpy, with
switches for the mistakes whose results the check recognises.
"""

from __future__ import annotations

import numpy as np

from helpers.labs.kit import Checker

__all__ = [
    "HINTS",
    "compare_messages",
    "compare_ring",
    "ring_cases",
    "ring_reference",
]

HINTS = {
    "ring_mean": "the result is the mean over the workers: an all-reduce here returns the "
    "sum, so do not divide by the number of workers",
    "ring_scatter_only": "each worker holds only one summed chunk: after the reduce-scatter, "
    "the all-gather (W - 1 more steps) passes the finished chunks on: at step s worker i "
    "sends the summed chunk it got last, (i + 1 - s) mod W (first its own, (i + 1) mod W), "
    "and the next worker stores it in place of its partial chunk. Return all N numbers",
    "ring_extra_step": "a chunk was added twice: the reduce-scatter takes W - 1 steps, not W "
    "(after W - 1 additions a chunk holds every worker's share)",
    "ring_chunk_index": "the chunks are added at the wrong index: at step s worker i sends "
    "chunk (i - s) mod W and adds what it receives to chunk (i - s - 1) mod W (the one its "
    "left neighbour sent), not to the chunk it sent",
    "ring_gather_place": "every worker has the right chunks in the wrong order: in the "
    "all-gather store each received chunk at its own index (chunk k of the array is "
    "numbers k * N / W ... (k + 1) * N / W), not in the order it arrived",
    "ring_whole_array": "each step sends the whole array: the sum is right, but every "
    "worker then sends 2N(W - 1) numbers, W times the ring's 2N(W - 1)/W. Send one chunk "
    "(N / W numbers) per step",
    "ring_not_ring": "send only to a neighbour on the ring, always the same one: worker i "
    "sends to (i + 1) mod W (or always to (i - 1) mod W), never directly to a worker further "
    "away",
    "ring_steps": "each phase takes W - 1 steps, one message per worker each, in a Python "
    "for loop: 2 (W - 1) messages per worker in all",
    "ring_recipe": "split the array into W chunks; reduce-scatter: for s in 0 ... W - 2, "
    "send chunk (i - s) mod W to worker i + 1 and add the received one to chunk "
    "(i - s - 1) mod W; all-gather: for s in 0 ... W - 2, send chunk (i + 1 - s) mod W and "
    "store the received one at (i - s) mod W",
}


def ring_cases(world: int) -> list[np.ndarray]:
    """Inputs ``(W, N)`` float32, one row per worker: chunks of 2 and 3 numbers, each
    worker's values its own, so that a chunk taken or added at the wrong index shows."""
    rng = np.random.default_rng(90 + world)
    cases = []
    for c in (2, 3):
        x = rng.standard_normal((world, world * c)) + 10 * np.arange(world)[:, None]
        cases.append(x.astype(np.float32))
    return cases


def _ring(x: np.ndarray, rs_steps: int, add_shift: int, gather: bool) -> np.ndarray:
    world = len(x)
    chunks = x.astype(np.float64).reshape(world, world, -1)  # [worker, chunk, N / W]
    me = np.arange(world)
    for s in range(rs_steps):
        sent = chunks[me, (me - s) % world]  # (W, N / W): what each worker sends
        chunks[me, (me - s - 1 + add_shift) % world] += np.roll(sent, 1, axis=0)
    last = -rs_steps  # + i: the chunk added to last, which the all-gather passes first
    for s in range(world - 1 if gather else 0):
        sent = chunks[me, (me + last - s) % world]
        chunks[me, (me + last - 1 - s) % world] = np.roll(sent, 1, axis=0)  # from i - 1
    return chunks.reshape(world, -1)


def ring_reference(
    x: np.ndarray,
    *,
    rs_steps: int | None = None,
    add_shift: int = 0,
    gather: bool = True,
    leftward: bool = False,
) -> np.ndarray:
    """Every worker's result ``(W, N)`` of the ring all-reduce of ``x`` ``(W, N)``.

    Worker ``i`` sends to ``i + 1`` (``leftward``: to ``i - 1``, the mirror image). The
    switches make the mistakes: ``rs_steps`` reduce-scatter steps (W - 1 by default; the
    all-gather starts from the chunk added to last), ``add_shift`` added to the index a
    received chunk is added at, no all-gather.
    """
    world = len(x)
    steps = world - 1 if rs_steps is None else rs_steps
    if not leftward:
        return _ring(x, steps, add_shift, gather)
    mirror = -np.arange(world) % world  # worker i <-> -i, chunk k <-> -k
    x3 = x.reshape(world, world, -1)[mirror][:, mirror].reshape(world, -1)
    out = _ring(x3, steps, add_shift, gather).reshape(world, world, -1)
    return out[mirror][:, mirror].reshape(world, -1)


def _chunks_match(out: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``[worker, k, j]``: worker's chunk k equals the total's chunk j."""
    world = len(out)
    a = out.reshape(world, world, 1, -1)
    b = total.reshape(1, 1, world, -1)
    return np.all(np.isclose(a, b, rtol=1e-4, atol=1e-4), axis=-1)


def compare_ring(c: Checker, outs: np.ndarray, x: np.ndarray) -> None:
    """The workers' results ``outs`` ``(W, N)`` against the sum of ``x`` ``(W, N)``."""
    world = len(x)
    total = x.astype(np.float64).sum(axis=0)
    want = np.broadcast_to(total, x.shape)
    if world > 1 and outs.shape == (world, x.shape[1] // world):  # one chunk per worker
        raise c.fail(f"the result has shape {outs.shape[1:]}, one chunk; expected "
                     f"{x.shape[1:]}, the whole array", c.hint("ring_scatter_only"))  # fmt: skip
    if outs.shape == (world, world, x.shape[1] // world):  # the chunks, not joined
        raise c.fail(f"the result has shape {outs.shape[1:]}, the (W, N / W) chunks; "
                     f"expected {x.shape[1:]}", c.hint("ring_shape"))  # fmt: skip
    c.shape(outs, x.shape, c.hint("ring_recipe"))
    c.dtype(outs, "float32", c.hint("dtype"))
    if np.allclose(outs, want, rtol=1e-4, atol=1e-4):
        return
    match = _chunks_match(outs, total)
    if np.all(match.any(axis=2)) and np.all(match.any(axis=1)):  # a permutation
        raise c.fail(
            "every worker holds the summed chunks, in a different order",
            c.hint("ring_gather_place"),
        )
    wrong = [(c.hint("ring_mean"), want / world)]
    for leftward in (False, True):
        wrong += [
            (c.hint("ring_extra_step"), ring_reference(x, rs_steps=world, leftward=leftward)),
            (c.hint("ring_chunk_index"), ring_reference(x, add_shift=1, leftward=leftward)),
        ]  # fmt: skip
    diagonal = match[
        :, np.arange(world), np.arange(world)
    ]  # chunk k == total's chunk k
    if np.all(diagonal.sum(axis=1) == 1) and len(set(diagonal.argmax(axis=1))) == world:
        wrong.append((c.hint("ring_scatter_only"), outs))  # one summed chunk per worker
    c.close(outs, want, what="a worker's result", rtol=1e-4, atol=1e-4,
            hint=c.hint("ring_recipe"), mistakes=wrong)  # fmt: skip


def compare_messages(
    c: Checker, messages: list[tuple[int, int, int]], world: int, n: int
) -> None:
    """``messages`` ``(source, destination, numbers)``: each worker sends ``2 (W - 1)`` chunks
    of ``n / W`` numbers, all to the same neighbour on the ring."""
    chunk = n // world
    # No messages, yet the sums (compared first) are right: a collective did the work.
    if world > 1 and not messages:
        raise c.fail(f"with {world} workers, the sums are right but no worker sent a "
                     "point-to-point message", c.hint("ring_library"))  # fmt: skip
    for src, _, size in messages:
        if size != chunk:
            raise c.fail(
                f"worker {src} sent {size} numbers in one message, expected one chunk "
                f"of {chunk} (N = {n}, W = {world})",
                c.hint("ring_whole_array"),
            )
    shifts = {(dst - src) % world for src, dst, _ in messages}
    if shifts and shifts not in ({1}, {world - 1}):
        far = sorted(shifts)
        raise c.fail(
            f"with {world} workers, messages went {far} places along the ring, "
            "expected always 1 (to the next worker) or always -1",
            c.hint("ring_not_ring"),
        )
    for worker in range(world):
        sent = sum(src == worker for src, _, _ in messages)
        c.expect(
            sent == 2 * (world - 1),
            f"with {world} workers, worker {worker} sent {sent} messages, expected "
            f"2 (W - 1) = {2 * (world - 1)}",
            c.hint("ring_steps"),
        )
