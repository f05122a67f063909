"""Distributed data parallel training under ``torchrun``: joining the process group from the environment,
sharding evaluation sets without padding, and averaging scalars over ranks."""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from ..evaluation.metrics import all_reduce_sum

__all__ = ["init_distributed", "shard_dataset", "mean_over_ranks", "reduce_over_ranks", "is_distributed"]


def is_distributed() -> bool:
    """Whether a process group of more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_distributed() -> tuple[int, int, torch.device | None]:
    """Join the process group described by the ``torchrun`` environment (NCCL on GPUs, gloo otherwise).
    Returns ``(rank, world_size, device)``; ``device`` is ``cuda:LOCAL_RANK`` on GPUs, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None
    use_cuda = torch.cuda.is_available()
    device = None
    if use_cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def shard_dataset(dataset: Any, rank: int, world: int) -> Any:
    """Rank ``rank``'s share of an evaluation set: indices rank, rank + world, ... (no padding, so the
    metrics reduced over ranks equal the single-process ones)."""
    from torch.utils.data import Subset

    return dataset if world == 1 else Subset(dataset, range(rank, len(dataset), world))


def reduce_over_ranks(values: dict[str, float], ops: dict[str, str] | None = None) -> dict[str, float]:
    """Each scalar of ``values`` reduced over ranks by its ``ops`` entry, ``"mean"`` (default), ``"sum"`` (counts)
    or ``"max"`` (``values`` itself when not distributed)."""
    if not values or not is_distributed():
        return values
    ops = ops or {}
    out = {}
    for op in ("mean", "sum", "max"):
        keys = sorted(k for k in values if ops.get(k, "mean") == op)
        if not keys:
            continue
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
        if op == "max":
            t = t.to(torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu")
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            t = t.cpu()
        else:
            t = all_reduce_sum(t)
            t = t / dist.get_world_size() if op == "mean" else t
        out.update(zip(keys, t.tolist()))
    return out


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """The mean over ranks of each scalar of ``values`` (``values`` itself when not distributed)."""
    return reduce_over_ranks(values)
