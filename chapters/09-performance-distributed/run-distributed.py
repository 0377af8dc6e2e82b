"""Run chapter 9's distributed examples, each against single-process training.

    python run-distributed.py ddp             # DDP, 2 gloo processes (torch.multiprocessing)
    python run-distributed.py torchrun-nodes  # two torchrun "nodes" on 127.0.0.1, c10d rendezvous
    python run-distributed.py jax-devices     # JAX data parallelism on 8 simulated CPU devices
    python run-distributed.py jax-processes   # two processes joined by jax.distributed.initialize

Each prints one JSON line (example, workers, seconds, largest difference from the
single-process parameters and losses) and exits 1 when the difference exceeds the tolerance.
The sizes are the chapter's (``helpers/scale/training.py``, task ``performance``, at ``BOOK_SCALE``).
The notebooks and ``tests/test_distributed.py`` run this file; so can CI or a reader.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the course root

EXAMPLES = ("ddp", "torchrun-nodes", "jax-devices", "jax-processes")
TOLERANCE = 1e-5


def difference(results: list[dict], reference: dict) -> float:
    """The largest absolute difference of any worker's parameters, or of the loss per step.

    A worker's loss is the mean over its share of the batch; their mean is the global loss.
    """
    params = [k for k in reference if k != "losses"]
    worst = max(float(abs(r[k] - reference[k]).max()) for r in results for k in params)
    losses = sum(r["losses"] for r in results) / len(results)
    return max(worst, float(abs(losses - reference["losses"]).max()))


def run(example: str) -> dict:
    from helpers.scale import sizes

    dp = sizes("performance").parallel
    if example in ("ddp", "torchrun-nodes"):
        from helpers.torch import parallel

        reference = parallel.reference_training(dp)
        start = time.perf_counter()
        if example == "ddp":
            results = parallel.spawn(dp, world_size=2)
            seconds = time.perf_counter() - start
        else:
            results, seconds = parallel.launch_torchrun(dp, nnodes=2, nproc_per_node=1)
    else:
        if example == "jax-devices":
            # Before JAX starts its CPU backend: split the CPU into 8 XLA devices.
            os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
        from helpers.jax import sharding

        reference = sharding.reference_training(dp)
        if example == "jax-devices":
            import jax
            import numpy as np

            start = time.perf_counter()
            params, losses = sharding.train(dp, sharding.make_mesh())
            seconds = time.perf_counter() - start
            results = [{**params, "losses": np.asarray(losses)}]
            assert jax.device_count() == 8, jax.devices()
        else:
            results, seconds = sharding.launch_processes(dp, num_processes=2)
    workers = 8 if example == "jax-devices" else 2
    initial_loss = float(reference["losses"][0])
    return {
        "example": example,
        "workers": workers,
        "seconds": round(seconds, 2),
        "max_abs_difference": difference(results, reference),
        "first_loss": initial_loss,
        "last_loss": float(reference["losses"][-1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("example", choices=EXAMPLES)
    args = parser.parse_args()
    record = run(args.example)
    print(json.dumps(record))
    sys.exit(0 if record["max_abs_difference"] <= TOLERANCE else 1)


if __name__ == "__main__":
    main()
