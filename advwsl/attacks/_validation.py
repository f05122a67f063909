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
    if not isinstance(inputs, torch.Tensor):
        raise InputError(f"inputs must be a torch.Tensor of images, got {type(inputs).__name__}")
    if not inputs.is_floating_point():
        raise InputError(f"inputs must be a float tensor with values in {bounds}, got dtype {inputs.dtype}; "
                         "convert 8-bit images with images.float() / 255")
    if inputs.dim() < 2 or inputs.shape[0] == 0:
        raise InputError(f"inputs must be a non-empty batch (N, ...), got shape {tuple(inputs.shape)}")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.shape[0] != inputs.shape[0]:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise InputError(f"labels must be a 1-D tensor with one class index per input ({inputs.shape[0]}), "
                         f"got {shape}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise InputError(f"labels must be integer class indices, got dtype {labels.dtype}; use labels.long()")
    if labels.device != inputs.device:
        raise InputError(f"labels are on {labels.device} but inputs on {inputs.device}; move both to one device")
    if not bool(torch.isfinite(inputs).all()):
        raise InputError("inputs contain NaN or infinite values; clean the images before attacking them")
    lo, hi = bounds
    mn, mx = float(inputs.min()), float(inputs.max())
    if mn < lo or mx > hi:
        raise InputError(f"inputs must lie within bounds {bounds}, got values in [{mn:.4g}, {mx:.4g}]; "
                         "pass images in [0, 1] (normalization belongs inside the model) or set bounds")
