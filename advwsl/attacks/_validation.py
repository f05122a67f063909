"""Argument checks shared by the attacks: the offending value and what to do, raised before any work."""

from __future__ import annotations

import torch

from ..errors import InputError


def check_bounds(bounds: tuple[float, float]) -> tuple[float, float]:
    """``bounds`` as two floats with ``lower < upper``."""
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise InputError(f"bounds must be a pair (lower, upper) of numbers, got {bounds!r}") from None
    if not lo < hi:
        raise InputError(f"bounds must satisfy lower < upper, got {bounds!r}; images are usually in (0, 1)")
    return lo, hi


def check_attack_inputs(inputs: torch.Tensor, labels: torch.Tensor, bounds: tuple[float, float]) -> None:
    """Raise :class:`InputError` unless ``inputs`` is a finite float batch within ``bounds`` and ``labels``
    is a matching vector of class indices."""
    from ..evaluation.checks import check_inputs  # checks imports this module: import here

    check_inputs(inputs, bounds)
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.shape[0] != inputs.shape[0]:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise InputError(f"labels must be a 1-D tensor with one class index per input ({inputs.shape[0]}), "
                         f"got {shape}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise InputError(f"labels must be integer class indices, got dtype {labels.dtype}; use labels.long()")
    if labels.device != inputs.device:
        raise InputError(f"labels are on {labels.device} but inputs on {inputs.device}; move both to one device")
