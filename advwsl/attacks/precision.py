"""Fast precision for attacks: run the attack's forward and backward passes in bf16 (autocast) or with TF32
matrix products, optionally in the channels_last memory format, and verify every result in fp32.

Reduced precision changes the logits slightly, so an iterate an attack judged adversarial in bf16 may not be
in fp32. :func:`run_attack` therefore re-predicts every returned adversarial with the fp32 model and, for
samples that are not adversarial there, tries to *repair* the perturbation: it is lengthened along its own
direction (x + δ·s for s = 1.02, 1.04, ... up to :data:`REPAIR_MAX`) and projected back on the box and the
lattice; the shortest scale that is adversarial in fp32 is kept, otherwise the sample counts as a failure.
The result records the precision and the number of repaired samples.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

from ..errors import InputError
from ._ops import per_sample, quantize

__all__ = ["PRECISIONS", "REPAIR_MAX", "ReducedPrecision", "precision_context", "repair"]

PRECISIONS = ("fp32", "tf32", "bf16")
#: Largest factor by which :func:`repair` lengthens a perturbation.
REPAIR_MAX = 1.2


class ReducedPrecision(nn.Module):
    """``model`` run under bf16 autocast (``precision="bf16"``), inputs in channels_last when asked; the
    logits are returned in fp32. The wrapped model's ``cams`` is wrapped the same way when it exists."""

    def __init__(self, model: nn.Module, precision: str, channels_last: bool = False) -> None:
        super().__init__()
        self.model, self.precision, self.channels_last = model, precision, channels_last
        self.training = False

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def _autocast(self, x: torch.Tensor) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(x.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self._autocast(x):
            out = self.model(self._input(x))
        return out.float() if isinstance(out, torch.Tensor) else out


class _ReducedPrecisionCams(ReducedPrecision):
    def cams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self._autocast(x):
            logits, cams = self.model.cams(self._input(x))
        return logits.float(), cams.float()


def wrap(model: nn.Module, precision: str, channels_last: bool) -> nn.Module:
    """``model`` itself in fp32 without channels_last; a :class:`ReducedPrecision` wrapper otherwise."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision in ("fp32", "tf32") and not channels_last:
        return model
    cls = _ReducedPrecisionCams if callable(getattr(model, "cams", None)) else ReducedPrecision
    return cls(model, precision, channels_last)


@contextlib.contextmanager
def precision_context(model: nn.Module, precision: str, channels_last: bool) -> Iterator[None]:
    """TF32 matrix products on CUDA while the block runs (``precision="tf32"``), and the model's parameters in
    channels_last (``channels_last``); both restored afterwards."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    formats = []
    try:
        if precision == "tf32":
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        if channels_last:
            for p in model.parameters():
                if p.dim() == 4:
                    formats.append(p)
                    p.data = p.data.contiguous(memory_format=torch.channels_last)
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
        for p in formats:
            p.data = p.data.contiguous()


@torch.no_grad()
def repair(x: torch.Tensor, adv: torch.Tensor, is_adversarial: Callable[[torch.Tensor], torch.Tensor],
           bounds: tuple[float, float], levels: int | None, steps: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Lengthen the perturbations of the samples that ``is_adversarial`` (evaluated in fp32) rejects, along
    their own direction, until adversarial (see the module docstring). Returns the repaired batch and a mask
    of the samples repaired."""
    lo, hi = bounds
    ok = is_adversarial(adv)
    changed = (adv != x).flatten(1).any(1)
    todo = ~ok & changed
    repaired = torch.zeros_like(todo)
    out = adv.clone()
    delta = adv - x
    for k in range(1, steps + 1):
        if not bool(todo.any()):
            break
        scale = 1 + (REPAIR_MAX - 1) * k / steps
        cand = (x + delta * scale).clamp(lo, hi)
        if levels is not None:
            cand = quantize(cand, levels, bounds)
        hit = is_adversarial(cand) & todo
        out = torch.where(per_sample(hit, x), cand, out)
        repaired |= hit
        todo &= ~hit
    return out, repaired
