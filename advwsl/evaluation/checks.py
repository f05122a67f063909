"""Sanity checks run before every attack run: inputs and model are what the attacks assume.

Inputs must be finite float images within the bounds (normalization lives inside the model); the model
must return logits (not probabilities) for at least two classes and be deterministic in eval mode. A
model in train mode is attacked in eval mode and restored. Each problem raises a project error or emits
an :class:`AdvwslWarning` that says what to do.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from torch import nn

from ..attacks._validation import check_bounds
from ..errors import InputError, ModelError
from ..utils import frozen


class AdvwslWarning(UserWarning):
    """Something that makes results questionable but not wrong (probabilities, nondeterminism, mode)."""


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


def check_labels(labels: torch.Tensor, n: int, num_classes: int | None = None, name: str = "labels") -> None:
    """Raise :class:`InputError` unless ``labels`` holds ``n`` integer class indices in ``[0, num_classes)``."""
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.shape[0] != n:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise InputError(f"{name} must be a 1-D tensor with one class index per input ({n}), got {shape}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise InputError(f"{name} must be integer class indices, got dtype {labels.dtype}; use {name}.long()")
    if num_classes is not None and n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise InputError(f"{name} must be class indices in [0, {num_classes - 1}] for this model, got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")


def check_model(model: nn.Module, inputs: torch.Tensor, *, atol: float = 1e-4) -> int:
    """Check the model on a few ``inputs`` (evaluated twice in eval mode) and return its number of classes.

    Raises :class:`ModelError` when the output is not ``(N, C)`` with ``C >= 2``. Warns when the outputs look
    like probabilities (rows in [0, 1] summing to 1) or differ between the two passes.
    """
    sample = inputs[: min(len(inputs), 8)].detach()
    with frozen(model), torch.no_grad():
        try:
            first = model(sample)
            second = model(sample)
        except Exception as exc:  # noqa: BLE001 - report the model failure in the project's terms
            raise ModelError(f"the model failed on inputs of shape {tuple(sample.shape)} "
                             f"({type(exc).__name__}: {exc}); check the input size and channels it expects") from exc
    if not isinstance(first, torch.Tensor) or first.dim() != 2 or first.shape[0] != sample.shape[0]:
        shape = tuple(first.shape) if isinstance(first, torch.Tensor) else type(first).__name__
        raise ModelError(f"the model must return logits of shape (N, C), got {shape}; for models returning "
                         "several outputs wrap them so that forward returns the class logits")
    if first.shape[1] < 2:
        raise ModelError(f"the model returns {first.shape[1]} class score(s); attacks need at least 2 classes "
                         "(for a binary classifier with one logit z, return torch.stack([-z, z], 1) / 2)")
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
