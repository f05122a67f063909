"""Argument checks shared by the attacks: the offending value and what to do, raised before any work."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError, ModelError


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


def check_model_matches(model: nn.Module, inputs: torch.Tensor) -> None:
    """Raise :class:`InputError` when the model's floating-point parameters (or buffers) are not on the
    device, or not of the dtype, of ``inputs`` — before torch fails with a message about matrices."""
    for tensor in (*model.parameters(), *model.buffers()):
        if not tensor.is_floating_point():
            continue
        if tensor.device != inputs.device:
            raise InputError(f"the model is on {tensor.device} but the inputs are on {inputs.device}; move one of "
                             f"them, e.g. model.to(inputs.device)")
        if tensor.dtype != inputs.dtype:
            raise InputError(f"the model's parameters are {tensor.dtype} but the inputs are {inputs.dtype}; convert "
                             f"one of them, e.g. inputs.to({tensor.dtype}) or model.to({inputs.dtype})")
        return


def first_logits(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``model(inputs)`` (gradients as the caller's mode), checked: a finite ``(N, C)`` tensor with
    ``C >= 2``, and ``labels`` class indices in ``[0, C)``. Model failures and bad outputs raise
    :class:`ModelError`, bad labels :class:`InputError`."""
    from ..evaluation.checks import check_labels  # checks imports this module: import here

    try:
        logits = model(inputs)
    except Exception as exc:  # noqa: BLE001 - report the model failure in the project's terms
        raise ModelError(f"the model failed on inputs of shape {tuple(inputs.shape)} and dtype {inputs.dtype} "
                         f"({type(exc).__name__}: {exc}); check the input size and channels it expects") from exc
    if not isinstance(logits, torch.Tensor):
        raise ModelError(f"the model returned a {type(logits).__name__}; attacks need forward to return one tensor "
                         "of logits (N, C): wrap the model so that forward returns the class logits")
    if logits.dim() != 2 or logits.shape[0] != inputs.shape[0] or logits.shape[1] < 2:
        raise ModelError(f"the model must return logits of shape (N, C) = ({inputs.shape[0]}, C) with C >= 2, got "
                         f"{tuple(logits.shape)}; for a binary classifier with one logit z, return "
                         "torch.stack([-z, z], 1) / 2")
    finite = torch.isfinite(logits).all(1)
    if not bool(finite.all()):
        rows = torch.nonzero(~finite).flatten()[:5].tolist()
        raise ModelError(f"the model returned NaN or infinite logits for the clean inputs (first rows: {rows}); "
                         "check its weights and its normalization on these images")
    check_labels(labels, inputs.shape[0], logits.shape[1])
    return logits


#: Implementations the C&W and DeepFool attacks can run on.
BACKENDS = ("native", "foolbox")


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")


def check_positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
