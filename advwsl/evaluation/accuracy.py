"""Clean accuracy (eq. 2.1) of any model on a tensor of images with labels or on a DataLoader: the share of
images whose predicted class (arg-max of the logits) is the label."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..attacks.runner import iter_batches
from ..errors import InputError
from ..utils import frozen, model_device

__all__ = ["clean_accuracy"]


def clean_accuracy(model: nn.Module, data: torch.Tensor | Iterable[Any], labels: torch.Tensor | None = None, *,
                   batch_size: int = 128) -> float:
    """Share in [0, 1] of correctly classified images (eq. 2.1).

    Parameters
    ----------
    model:
        Any model taking images in [0, 1] and returning logits ``(N, C)``; run in eval mode without
        gradients, on its own device, and left as it was found.
    data:
        Images ``(N, C, H, W)`` in [0, 1] with ``labels`` ``(N,)``, or a DataLoader yielding
        ``(images, labels)`` pairs or sample dicts with ``image`` and ``label`` (then ``labels`` is None).
    batch_size:
        Images per forward pass when ``data`` is a tensor.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = model_device(model)
    correct, total = 0, 0
    with frozen(model), torch.no_grad():
        for images, targets in iter_batches(data, labels, batch_size):
            logits = model(torch.as_tensor(images).to(device))
            if logits.dim() != 2 or logits.shape[0] != len(images):
                raise InputError(f"the model must return logits (N, C) for N images; got shape {tuple(logits.shape)} "
                                 f"for {len(images)} images")
            correct += int((logits.argmax(1).cpu() == torch.as_tensor(targets).view(-1).cpu()).sum())
            total += len(images)
    if total == 0:
        raise InputError("no image to evaluate: the data is empty")
    return correct / total
