"""Small helpers shared across the package: device selection, seeding, and putting a model in a frozen
evaluation state that is restored exactly afterwards."""

# This module is part of the code every cached trained model is keyed by (advwsl/pretrained/cache.py,
# TRAINING_CODE): a change to its code trains every built-in model again. Helpers that training does not use
# belong elsewhere (e.g. advwsl/workers.py).

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import InputError


def select_device(device: str | torch.device | None = None) -> torch.device:
    """The device to use: the one asked for, else cuda > mps > cpu."""
    if device is not None and str(device) != "auto":
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise InputError(f"unknown device {str(device)!r}; use cpu, cuda, cuda:N, mps or auto") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"device {str(device)!r} was asked for but CUDA is not available; use --device cpu")
        if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InputError(f"device {str(device)!r} was asked for but MPS is not available; use --device cpu")
        if dev.type not in ("cpu", "cuda", "mps"):
            raise InputError(f"device {str(device)!r} is not supported; use cpu, cuda, cuda:N, mps or auto")
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
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, restoring the previous count afterwards. On a CPU,
    the order of the floating-point sums of a backward pass depends on the thread count, so a training run is
    reproducible bit for bit only at a fixed count."""
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


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


def model_device(model: nn.Module, fallback: torch.device | str = "cpu") -> torch.device:
    """The device of the model's first parameter (or buffer); ``fallback`` for a model with neither."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device(fallback)


def model_dtype(model: nn.Module) -> torch.dtype | None:
    """The dtype of the model's first floating-point parameter (None for a model without any)."""
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return None


class Timer:
    """Wall-clock seconds of a block, synchronizing CUDA before reading the clock (kernels are
    asynchronous: without it, GPU work would be counted in the next block). Accumulates over uses::

        timer = Timer(device)
        with timer:
            ...
        timer.seconds
    """

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.cuda = torch.device(device).type == "cuda" if device is not None else False
        self.seconds = 0.0
        self._start = 0.0

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def __enter__(self) -> "Timer":
        self._sync()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sync()
        self.seconds += time.perf_counter() - self._start


def rank_world() -> tuple[int, int]:
    """(rank, world size) from the torchrun environment; (0, 1) when not distributed."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main_process() -> bool:
    return rank_world()[0] == 0


def cache_dir(*parts: str) -> Path:
    """The advwsl cache folder (created): ``$ADVWSL_HOME``, else ``$XDG_CACHE_HOME/advwsl``, else
    ``~/.cache/advwsl``; ``parts`` name a subfolder."""
    root = os.environ.get("ADVWSL_HOME")
    if root:
        base = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "advwsl"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def worker_threads(workers: int) -> int:
    """Threads for each of ``workers`` worker processes: the cores divided among them, and never more than
    this process uses (so a run at one thread per process compares with its workers at one thread each)."""
    import os

    import torch

    return max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) // max(1, workers)))
