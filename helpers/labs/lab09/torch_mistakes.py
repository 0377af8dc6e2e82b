"""What the PyTorch DDP worker of lab 9 ends with after each known mistake, in one process
(a part of the PyTorch adapter, torch.py, hence the name: only adapters import a framework).

Two ranks of a DDP run average their gradients, so each mistake below has a one-process
equivalent on the whole global batch: :func:`one_process_training` runs it, and the check of
``train_ddp`` names the mistake whose parameters the student's run ends with.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from helpers.scale import DataParallelSizes
from helpers.torch.parallel import make_model

__all__ = ["ddp_mistakes", "one_process_training"]


def one_process_training(
    s: DataParallelSizes,
    *,
    order_seed: int | None = None,
    shuffle: bool = True,
    reshuffle: bool = True,
    loss_scale: float = 1.0,
    zero_grad: bool = True,
    momentum: float = 0.0,
    optimizer: str = "sgd",
    fresh_iter: bool = False,
) -> dict[str, np.ndarray]:
    """One process on the global batches, epoch ``e`` in ``DistributedSampler``'s order.

    That order is ``randperm(examples)`` seeded by ``order_seed + e`` (``order_seed`` defaults
    to ``s.seed``; ``reshuffle=False``: epoch 0's order every epoch, as without ``set_epoch``;
    ``shuffle=False``: ``0, 1, 2, ...``; ``fresh_iter``: epoch 0's first batch every step, as
    with a new ``iter(loader)`` each step). The loss is the mean cross-entropy times
    ``loss_scale``; ``optimizer`` is ``"sgd"`` (with ``momentum``), ``"adam"``, ``"nesterov"``
    or ``"weight_decay"``. Returns the trained ``{parameter name: array}``.
    """
    from helpers.distributed import toy_data

    x, y = (torch.from_numpy(a) for a in toy_data(s))
    model = make_model(s)
    opt = {
        "sgd": lambda p: torch.optim.SGD(p, lr=s.learning_rate, momentum=momentum),
        "adam": lambda p: torch.optim.Adam(p, lr=s.learning_rate),
        "nesterov": lambda p: torch.optim.SGD(
            p, lr=s.learning_rate, momentum=0.9, nesterov=True
        ),
        "weight_decay": lambda p: torch.optim.SGD(
            p, lr=s.learning_rate, weight_decay=1e-2
        ),
    }[optimizer](model.parameters())
    seed = s.seed if order_seed is None else order_seed
    per_epoch = s.examples // s.batch_size
    for t in range(s.steps):
        epoch, i = (0, 0) if fresh_iter else divmod(t, per_epoch)
        g = torch.Generator().manual_seed(seed + (epoch if reshuffle else 0))
        order = (
            torch.randperm(s.examples, generator=g)
            if shuffle
            else torch.arange(s.examples)
        )
        idx = order[i * s.batch_size : (i + 1) * s.batch_size]  # (B,)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx]) * loss_scale
        if zero_grad:
            opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def ddp_mistakes(s: DataParallelSizes, world_size: int) -> list[tuple[str, dict]]:
    """``(hint key, trained parameters)`` for each known mistake of a ``world_size``-rank
    DDP worker, in the order the check tries them."""
    per_epoch = s.examples // s.batch_size
    train = one_process_training
    untrained = {k: v.detach().numpy() for k, v in make_model(s).state_dict().items()}
    return [
        (
            "averaged_twice",
            train(replace(s, learning_rate=s.learning_rate / world_size)),
        ),
        ("global_batch", train(replace(s, batch_size=world_size * s.batch_size))),
        ("set_epoch", train(s, reshuffle=False)),
        ("shuffle", train(s, shuffle=False)),
        ("seed", train(s, order_seed=0)),
        ("steps", train(replace(s, steps=s.steps + 1))),
        ("steps", train(replace(s, steps=s.steps - 1))),
        ("steps", train(replace(s, steps=-(-s.steps // per_epoch) * per_epoch))),
        ("lr_scaled", train(replace(s, learning_rate=s.learning_rate * world_size))),
        # A summed loss: each rank's sum over B / W rows, averaged by DDP.
        ("loss_sum", train(s, loss_scale=s.batch_size / world_size)),
        ("zero_grad", train(s, zero_grad=False)),
        ("plain_sgd", train(s, momentum=0.9)),
        ("plain_sgd", train(s, optimizer="adam")),
        ("plain_sgd", train(s, optimizer="nesterov")),
        ("plain_sgd", train(s, optimizer="weight_decay")),
        ("epoch_offset", train(s, order_seed=s.seed + 1)),
        ("fresh_iter", train(s, fresh_iter=True)),
        ("untrained", untrained),
    ]
