"""Counting what an attack costs: a wrapper that counts the forward and backward passes an attack makes
through the model (the "#Grads" of Table A V-1), and the progress bar that advances with them, pass by
pass, so a long attack shows where it stands (used by :func:`advwsl.attacks.run_attack`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["CountingModel", "CountingCamModel", "counting", "BAR", "Ticks", "total_records", "expected_forwards"]


class CountingModel(nn.Module):
    """Wraps a model and counts its forward calls and the backward passes through its output (one hook per
    forward, on the output every objective goes through). The model is given a copy of each input."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.forwards = 0
        self.backwards = 0
        self.on_forward: Callable[[], None] | None = None  # e.g. a progress bar's tick
        self.training = False  # the wrapper only; .eval() would also switch the wrapped model

    def reset(self) -> None:
        self.forwards = self.backwards = 0

    def _count_backward(self, grad: torch.Tensor) -> None:
        self.backwards += 1

    def _counted(self, out: Any) -> Any:
        self.forwards += 1
        if self.on_forward is not None:
            self.on_forward()
        if isinstance(out, torch.Tensor) and out.requires_grad:
            out.register_hook(self._count_backward)
        return out

    def forward(self, x: torch.Tensor) -> Any:
        return self._counted(self.model(x.clone()))  # a copy: a model that changes its input in place is harmless


class CountingCamModel(CountingModel):
    """:class:`CountingModel` for weakly supervised models: ``cams(x)`` passes are counted too (the hook
    is on the CAMs, which every objective of the CAM attack goes through)."""

    def cams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, cams = self.model.cams(x.clone())
        return logits, self._counted(cams)


def counting(model: nn.Module) -> CountingModel:
    """The counting wrapper of ``model``, with ``cams`` exactly when the model has CAMs."""
    return CountingCamModel(model) if callable(getattr(model, "cams", None)) else CountingModel(model)


#: The progress bar of an attack: images done (fractions while a batch is attacked, one step at a time), its
#: rate in images per second and the time left.
BAR = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total_fmt} img [{elapsed}<{remaining}, {rate_fmt}]"


def total_records(data: Any, targeted: bool, target: Any) -> int | None:
    """Records the run will attack, when known ahead (a tensor, or a loader over a sized dataset)."""
    n = len(data) if isinstance(data, torch.Tensor) else len(getattr(data, "dataset", ()) or ()) or None
    return None if n is None or (targeted and isinstance(target, str) and target == "all") else n


def expected_forwards(kwargs: dict[str, Any]) -> int:
    """Forward passes an attack makes on a batch at most, from its budget (steps, times the searches of C&W)."""
    return max(1, int(kwargs.get("binary_search_steps", 1)) * int(kwargs.get("steps", 1)))


class Ticks:
    """Advances the progress bar by a share of a batch's records at every forward pass of the attack, so the
    bar moves step by step; :meth:`finish` completes the batch (attacks that stop early)."""

    def __init__(self, bar: Any, records: int, forwards: int) -> None:
        self.bar, self.records, self.step, self.done = bar, records, records / forwards, 0.0

    def __call__(self) -> None:
        if self.done + self.step < self.records:
            self.bar.update(self.step)
            self.done += self.step

    def finish(self) -> None:
        self.bar.update(self.records - self.done)
