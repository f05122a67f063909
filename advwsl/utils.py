"""Small helpers shared across the package: device selection, seeding, and putting a model in a frozen
evaluation state that is restored exactly afterwards."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from .errors import InputError


def select_device(device: str | torch.device | None = None) -> torch.device:
    """The device to use: the one asked for, else cuda > mps > cpu."""
    if device is not None and str(device) != "auto":
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"device {str(device)!r} was asked for but CUDA is not available; use --device cpu")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


@contextlib.contextmanager
def frozen(model: nn.Module, *, eval_mode: bool = True) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode with parameter gradients off; restore every module's mode and every
    parameter's ``requires_grad`` on exit. No ``.grad`` is accumulated on parameters while frozen."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        if eval_mode:
            model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)


def rank_world() -> tuple[int, int]:
    """(rank, world size) from the torchrun environment; (0, 1) when not distributed."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main_process() -> bool:
    return rank_world()[0] == 0


def cache_dir(*parts: str) -> "os.PathLike[str]":
    """The advwsl cache folder (created): ``$ADVWSL_HOME``, else ``$XDG_CACHE_HOME/advwsl``, else
    ``~/.cache/advwsl``; ``parts`` name a subfolder."""
    from pathlib import Path

    root = os.environ.get("ADVWSL_HOME")
    if root:
        base = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "advwsl"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
