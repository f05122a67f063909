"""What a training criterion provides to the training loop, declared once: the :class:`Criterion` protocol.

The loop (:func:`advwsl.training.train_one_epoch`, :func:`advwsl.training.evaluate`) asks a criterion what it
needs besides logits and labels — the class activation maps (``needs_cams``: size supervision, Jia et al.),
the size annotations (``needs_sizes``: eq. 4.7) or the pixel masks (``needs_masks``: the U-Net's pixel
losses) — and how it turns the model's output into class scores for evaluation (``scores``). advwsl's
criteria (:func:`advwsl.losses.build_criterion`) declare all of it; any other loss module (e.g.
``nn.CrossEntropyLoss()``) is adapted by :func:`as_criterion` as an image-label loss that needs nothing else.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["Criterion", "as_criterion", "PlainCriterion"]


@runtime_checkable
class Criterion(Protocol):
    """A training criterion: called as ``criterion(logits, labels, **extra)`` (``cams=`` when it needs CAMs,
    ``sizes=`` sizes, ``masks=`` masks, ``input_size=``) and returning the loss and its named parts, with the
    declarations the loop reads."""

    needs_cams: bool
    needs_sizes: bool
    needs_masks: bool

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, **extra: Any
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def scores(self, logits: torch.Tensor, cams: torch.Tensor | None = None) -> torch.Tensor: ...


class PlainCriterion(nn.Module):
    """A loss module of one's own as an image-label :class:`Criterion`: ``loss(logits, labels)``, softmax
    scores, nothing else needed."""

    needs_cams = False
    needs_sizes = False
    needs_masks = False

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, **extra: Any
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = self.loss(logits, labels)
        return loss, {"cls": loss.detach()}

    def scores(self, logits: torch.Tensor, cams: torch.Tensor | None = None) -> torch.Tensor:
        return logits.softmax(1)


def as_criterion(loss: nn.Module | None) -> Criterion | None:
    """``loss`` when it declares what it needs (a :class:`Criterion`), else wrapped as a
    :class:`PlainCriterion`; None stays None."""
    if loss is None or isinstance(loss, Criterion):
        return loss
    return PlainCriterion(loss)
