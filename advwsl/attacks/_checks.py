"""Checks run before an attack does any work: the inputs, labels, bounds and model are what the attacks
assume. Each problem raises a project error that names the offending value and what to do, or emits an
:class:`~advwsl.errors.AdvwslWarning` when results would be questionable but not wrong.

Inputs must be finite float images within the bounds (normalization lives inside the model), on the
model's device and in its dtype; labels are integer class indices; the model must return logits (not
probabilities, not a tuple or dict) for at least two classes and be deterministic in eval mode. A model in
train mode is attacked in eval mode and restored.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..errors import AdvwslWarning, InputError, ModelError
from ..utils import frozen, model_device, model_dtype

__all__ = ["BACKENDS", "check_bounds", "check_inputs", "check_labels", "check_model", "check_model_inputs",
           "check_logits", "check_attack_inputs", "first_logits", "check_backend", "check_backend_attack",
           "check_positive_int", "attack_mode"]

#: Implementations the C&W and DeepFool attacks can run on.
BACKENDS = ("native", "foolbox")


def check_bounds(bounds: tuple[float, float]) -> tuple[float, float]:
    """``bounds`` as two floats with ``lower < upper``."""
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise InputError(f"bounds must be a pair (lower, upper) of numbers, got {bounds!r}") from None
    if not lo < hi:
        raise InputError(f"bounds must satisfy lower < upper, got {bounds!r}; images are usually in (0, 1)")
    return lo, hi


def check_inputs(inputs: torch.Tensor, bounds: tuple[float, float] = (0.0, 1.0)) -> None:
    """Raise :class:`InputError` unless ``inputs`` is a non-empty, finite float tensor within ``bounds``."""
    lo, hi = check_bounds(bounds)
    if not isinstance(inputs, torch.Tensor):
        raise InputError(f"inputs must be a torch.Tensor of images, got {type(inputs).__name__}")
    if not inputs.is_floating_point():
        raise InputError(f"inputs must be a float tensor with values in {bounds}, got dtype {inputs.dtype}; "
                         "convert 8-bit images with images.float() / 255")
    if inputs.dim() < 2 or inputs.shape[0] == 0:
        raise InputError(f"inputs must be a non-empty batch (N, ...), got shape {tuple(inputs.shape)}")
    bad = ~torch.isfinite(inputs)
    if bool(bad.any()):
        rows = torch.nonzero(bad.flatten(1).any(1)).flatten()[:5].tolist()
        raise InputError(f"inputs contain NaN or infinite values (first rows: {rows}); fix or drop those images")
    mn, mx = float(inputs.min()), float(inputs.max())
    if mn < lo or mx > hi:
        hint = (" (they look normalized: put the Normalize module inside the model and pass images in [0, 1])"
                if mn < lo else " (they look like 0-255 values: divide by 255)" if mx > 2 * hi + 1 else "")
        raise InputError(f"inputs must lie within bounds [{lo}, {hi}], got values in [{mn:.4g}, {mx:.4g}]{hint}")


def check_labels(labels: Any, n: int, num_classes: int | None = None, name: str = "labels") -> None:
    """Raise :class:`InputError` unless ``labels`` holds ``n`` integer class indices in ``[0, num_classes)``."""
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.shape[0] != n:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise InputError(f"{name} must be a 1-D tensor with one class index per input ({n}), got {shape}; "
                         f"e.g. torch.tensor(list_of_ints)")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise InputError(f"{name} must be integer class indices, got dtype {labels.dtype}; use {name}.long()")
    if n and int(labels.min()) < 0:
        raise InputError(f"{name} must be class indices >= 0, got {int(labels.min())}")
    if num_classes is not None and n and int(labels.max()) >= num_classes:
        raise InputError(f"{name} must be class indices in [0, {num_classes - 1}] for this model with {num_classes} "
                         f"classes, got values up to {int(labels.max())}")


def check_model_inputs(model: nn.Module, inputs: torch.Tensor) -> None:
    """Raise :class:`InputError` when ``inputs`` are on another device or in another floating-point dtype
    than the model's parameters (torch would fail deep inside the forward pass)."""
    device, dtype = model_device(model, inputs.device), model_dtype(model)
    if device.type != inputs.device.type or (device.index is not None and inputs.device.index is not None
                                             and device.index != inputs.device.index):
        raise InputError(f"the model is on {device} but the inputs are on {inputs.device}; move them to one device "
                         f"(inputs.to({str(device)!r}) or model.to({str(inputs.device)!r}))")
    if dtype is not None and inputs.dtype != dtype:
        raise InputError(f"the model's parameters are {dtype} but the inputs are {inputs.dtype}; convert one of "
                         f"them (inputs.to({dtype}) or model.to({inputs.dtype}))")


def check_logits(logits: Any, labels: torch.Tensor | None = None) -> int:
    """Check a model's output on a batch: a finite float ``(N, C)`` tensor with ``C >= 2`` (and ``labels``
    below ``C``). Returns ``C``. Raises :class:`ModelError` or :class:`InputError`."""
    if not isinstance(logits, torch.Tensor):
        kind = type(logits).__name__
        raise ModelError(f"the model returned a {kind}; attacks need a model whose forward returns the class "
                         "logits as one (N, C) tensor: wrap it, e.g. forward = lambda x: model(x)[0] (or "
                         "model(x)['logits'])")
    n = labels.shape[0] if labels is not None else logits.shape[0] if logits.dim() else 0
    if logits.dim() != 2 or logits.shape[0] != n:
        raise ModelError(f"the model must return logits of shape (N, C) = ({n}, C), got {tuple(logits.shape)}; "
                         "for models returning several outputs wrap them so that forward returns the class logits")
    if not logits.is_floating_point():
        raise ModelError(f"the model returned integer logits (dtype {logits.dtype}); attacks need float class scores "
                         "whose gradients they follow: return the logits before any rounding, argmax or one-hot "
                         "encoding")
    if logits.shape[1] < 2:
        raise ModelError(f"the model returns {logits.shape[1]} class score(s); attacks need logits (N, C) for at least "
                         "2 classes, C >= 2 (for a binary classifier with one logit z, return "
                         "torch.stack([-z, z], 1) / 2)")
    finite = torch.isfinite(logits).all(1)
    if not bool(finite.all()):
        rows = torch.nonzero(~finite).flatten()[:5].tolist()
        raise ModelError(f"the model returned NaN or infinite logits on these inputs (first rows: {rows}); check its "
                         "weights (a diverged training?) and that the inputs are what it expects")
    if labels is not None:
        check_labels(labels, n, logits.shape[1])
    return int(logits.shape[1])


def first_logits(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``model(inputs)`` (gradients as the caller's mode), checked by :func:`check_logits` against ``labels``;
    a model that fails on the inputs raises :class:`ModelError` saying what it got."""
    try:
        logits = model(inputs)
    except Exception as exc:  # noqa: BLE001 - report the model failure in the project's terms
        raise ModelError(f"the model failed on inputs of shape {tuple(inputs.shape)} and dtype {inputs.dtype} "
                         f"({type(exc).__name__}: {exc}); check the input size and channels it expects") from exc
    check_logits(logits, labels)
    return logits


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")


def check_backend_attack(backend: str, inputs: torch.Tensor, labels: torch.Tensor,
                         bounds: tuple[float, float]) -> tuple[float, float]:
    """The first checks of an attack with a foolbox backend (C&W, DeepFool): ``backend``, ``bounds``, then
    ``inputs`` and ``labels`` (:func:`check_attack_inputs`). Returns the bounds as floats."""
    check_backend(backend)
    lo, hi = check_bounds(bounds)
    check_attack_inputs(inputs, labels, (lo, hi))
    return lo, hi


def check_positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")


def check_attack_inputs(inputs: torch.Tensor, labels: torch.Tensor, bounds: tuple[float, float],
                        model: nn.Module | None = None) -> None:
    """What every attack checks first: ``inputs`` a finite float batch within ``bounds``, ``labels`` a
    matching vector of class indices on the same device, and, given ``model``, inputs on its device and in
    its dtype."""
    check_inputs(inputs, bounds)
    check_labels(labels, inputs.shape[0])
    if labels.device != inputs.device:
        raise InputError(f"labels are on {labels.device} but inputs on {inputs.device}; move both to one device")
    if model is not None:
        check_model_inputs(model, inputs)


def check_model(model: nn.Module, inputs: torch.Tensor, *, atol: float = 1e-4) -> int:
    """Check the model on a few ``inputs`` (evaluated twice in eval mode) and return its number of classes.

    Raises :class:`ModelError` when the output is not ``(N, C)`` with ``C >= 2``. Warns when the outputs look
    like probabilities (rows in [0, 1] summing to 1) or differ between the two passes.
    """
    sample = inputs[: min(len(inputs), 8)].detach()
    check_model_inputs(model, sample)
    with frozen(model), torch.no_grad():
        try:  # on copies: a model may change its input in place
            first = model(sample.clone())
            second = model(sample.clone())
        except Exception as exc:  # noqa: BLE001 - report the model failure in the project's terms
            raise ModelError(f"the model failed on inputs of shape {tuple(sample.shape)} "
                             f"({type(exc).__name__}: {exc}); check the input size and channels it expects") from exc
    check_logits(first)
    if bool(((first >= 0) & (first <= 1)).all()) and torch.allclose(first.sum(1), torch.ones_like(first[:, 0]),
                                                                  atol=1e-4):
        warnings.warn("the model seems to return probabilities (rows in [0, 1] summing to 1); attacks expect "
                      "logits: remove the final softmax", AdvwslWarning, stacklevel=2)
    if not torch.allclose(first, second, atol=atol, rtol=1e-4):
        diff = float((first - second).abs().max())
        warnings.warn(f"the model is not deterministic in eval mode (logits differ by up to {diff:.3g} between two "
                      "passes on the same inputs): attack results will not be reproducible or verifiable; "
                      "disable dropout or other randomness at evaluation", AdvwslWarning, stacklevel=2)
    return int(first.shape[1])


@contextlib.contextmanager
def attack_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode for an attack run: warns if ``model`` is in train mode, switches it to eval mode with
    parameter gradients off, and restores every module's mode and ``requires_grad`` on exit."""
    if model.training:
        warnings.warn("the model is in train mode; it is attacked in eval mode and put back in train mode "
                      "afterwards (call model.eval() before attacking to silence this)", AdvwslWarning,
                      stacklevel=4)
    with frozen(model):
        yield model
