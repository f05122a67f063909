"""Pixel-wise losses of the fully supervised bound (section 2.1.3.2): a segmentation model such as the U-Net
(:mod:`advwsl.models.unet`) predicts per-pixel logits ``(N, 2, H, W)`` (background, region of interest) and
is trained on the pixel masks the weakly supervised models only see at evaluation time: the glands of GlaS,
the metastatic regions of CAMELYON16, the lesions of the synthetic set.

* ``pixel-ce``: the mean pixel cross-entropy against the binary mask (Ronneberger et al. 2015);
* ``pixel-ce-dice``: the same plus ``lambda_dice`` times the soft Dice loss ``1 - 2 sum(p g) / (sum p +
  sum g)`` of the foreground probability, per image, averaged over the batch (an image whose mask and
  prediction are both empty has loss 0).

Same interface as the other criteria of :mod:`advwsl.losses` (``criterion(logits, labels, ...) -> (loss,
parts)``); ``needs_masks`` tells the training loop to pass the batch masks as ``masks=``. The image labels
are not used: the U-Net is trained "exclusively on pixel-level annotation" (section 2.1.2.1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, InputError

__all__ = ["PixelLoss", "soft_dice_loss", "pixel_targets"]


def pixel_targets(masks: Tensor) -> Tensor:
    """The class of every pixel, ``(N, H, W)`` int64: 1 inside the region of interest (mask > 0.5), else 0."""
    if masks.dim() != 3:
        raise InputError(f"pixel masks must be (N, H, W), got shape {tuple(masks.shape)}")
    return (masks > 0.5).long()


def soft_dice_loss(foreground: Tensor, targets: Tensor, eps: float = 1e-6) -> Tensor:
    """Per image ``1 - 2 sum(p g) / (sum p + sum g)`` of foreground probabilities ``p`` ``(N, H, W)`` and
    binary targets ``g``; 0 when both are empty. Returns ``(N,)``."""
    p, g = foreground.flatten(1), targets.flatten(1).to(foreground.dtype)
    inter, total = (p * g).sum(1), p.sum(1) + g.sum(1)
    return 1 - (2 * inter + eps) / (total + eps)


class PixelLoss(nn.Module):
    """Pixel cross-entropy, optionally plus ``lambda_dice`` times the soft Dice loss (see the module
    docstring). ``scores`` are the per-pixel class probabilities."""

    needs_cams = False
    needs_sizes = False
    needs_masks = True

    def __init__(self, *, dice: bool = False, lambda_dice: float = 1.0) -> None:
        super().__init__()
        if lambda_dice < 0:
            raise ConfigError(f"lambda_dice must be >= 0, got {lambda_dice}")
        self.dice, self.lambda_dice = bool(dice), float(lambda_dice)

    def forward(self, logits: Tensor, labels: Tensor, *, cams: Tensor | None = None, sizes: Tensor | None = None,
                input_size: tuple[int, int] | None = None, masks: Tensor | None = None
                ) -> tuple[Tensor, dict[str, Tensor]]:
        if logits.dim() != 4:
            raise InputError(f"a pixel loss needs per-pixel logits (N, C, H, W), got shape {tuple(logits.shape)}; "
                             "train a segmentation model (e.g. --model unet)")
        if masks is None:
            raise InputError("a pixel loss needs the batch masks (a dataset whose samples carry a 'mask')")
        targets = pixel_targets(masks).to(logits.device)
        if targets.shape != (logits.shape[0], *logits.shape[2:]):
            raise InputError(f"masks {tuple(masks.shape)} do not match the logits {tuple(logits.shape)}")
        ce = F.cross_entropy(logits.float(), targets)
        parts = {"ce": ce.detach()}
        loss = ce
        if self.dice:
            foreground = 1 - torch.softmax(logits.float(), dim=1)[:, 0]
            dice = soft_dice_loss(foreground, targets).mean()
            loss = ce + self.lambda_dice * dice
            parts["dice_loss"] = dice.detach()
        return loss, parts

    def scores(self, logits: Tensor, cams: Tensor | None = None) -> Tensor:
        return torch.softmax(logits.float(), dim=1)
