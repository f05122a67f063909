"""Training criteria with one interface for the training loop: the image-label loss (eq. 4.4 / 4.5), the
size-supervised total of eq. 4.13, the Jia et al. baseline (eq. 4.1-4.3, in ``jia.py``) and the pixel losses
of the fully supervised U-Net (section 2.1.3.2, in ``pixel.py``).

A criterion is an ``nn.Module`` called as ``criterion(logits, labels, *, cams=None, sizes=None,
input_size=None) -> (loss, parts)`` where ``parts`` maps names to detached scalars for logging; its
``needs_cams`` / ``needs_sizes`` flags tell the loop what to compute (a criterion with ``needs_masks`` also
gets the batch masks as ``masks=``); its ``scores(logits, cams)`` gives the
class probabilities used for evaluation. Learned loss parameters (the adaptive loss's alpha and scale) are
the criterion's parameters: the loop puts them in the optimizer and the checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, InputError
from .entropy import entropy_loss
from .jia import JiaLoss
from .pixel import PixelLoss
from .size import SIZE_LOSSES, AdaptiveSizeLoss, kl_size_loss, l2_size_loss, normalized_cams, predicted_sizes

__all__ = ["ImageLabelLoss", "SizeSupervisedLoss", "build_criterion", "CRITERIA", "MULTILABEL_CRITERIA",
           "PIXEL_CRITERIA"]


class ImageLabelLoss(nn.Module):
    """Image-level supervision only: cross-entropy (eq. 4.4) or, ``multilabel``, binary cross-entropy over
    the classes (eq. 4.5)."""

    needs_cams = False
    needs_sizes = False
    needs_masks = False

    def __init__(self, *, multilabel: bool = False) -> None:
        super().__init__()
        self.multilabel = multilabel

    def classification(self, logits: Tensor, labels: Tensor) -> Tensor:
        logits = logits.float()
        if self.multilabel:
            return F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none").sum(1)
        return F.cross_entropy(logits, labels.long(), reduction="none")

    def forward(self, logits: Tensor, labels: Tensor, *, cams: Tensor | None = None,
                sizes: Tensor | None = None, input_size: tuple[int, int] | None = None
                ) -> tuple[Tensor, dict[str, Tensor]]:
        loss = self.classification(logits, labels).mean()
        return loss, {"cls": loss.detach()}

    def scores(self, logits: Tensor, cams: Tensor | None = None) -> Tensor:
        return torch.sigmoid(logits.float()) if self.multilabel else torch.softmax(logits.float(), dim=1)


class SizeSupervisedLoss(ImageLabelLoss):
    """Eq. 4.13: l_t = (l_c + lambda_s l_s + lambda_e l_e) / (1 + lambda_s + lambda_e), with l_c the image-label
    loss, l_s a size penalty between the predicted sizes of eq. 4.7 and the true sizes (``size_loss`` =
    ``"kl"`` eq. 4.8, ``"l2"`` eq. 4.9 or ``"adaptive"`` eq. 4.10-4.11) and l_e the entropy of eq. 4.12.

    The CAMs are upsampled to ``input_size`` and normalized with a background score of 0 prepended
    (``normalization`` softmax or sigmoid), so ``sizes`` are ``(N, K + 1)`` vectors, background first.
    Defaults lambda_s = 10, lambda_e = 0.1 are the values section 4.4.5 retains on GlaS.
    """

    needs_cams = True
    needs_sizes = True

    def __init__(self, size_loss: str = "adaptive", *, lambda_size: float = 10.0, lambda_entropy: float = 0.1,
                 normalization: str = "softmax", multilabel: bool = False, num_components: int = 1,
                 **adaptive_kwargs: Any) -> None:
        super().__init__(multilabel=multilabel)
        if size_loss not in SIZE_LOSSES:
            raise ConfigError(f"size_loss must be one of {SIZE_LOSSES}, got {size_loss!r}")
        if lambda_size < 0 or lambda_entropy < 0:
            raise ConfigError(f"lambda_size and lambda_entropy must be >= 0, got {lambda_size}, {lambda_entropy}")
        if adaptive_kwargs and size_loss != "adaptive":
            raise ConfigError(f"options {sorted(adaptive_kwargs)} only apply to size_loss='adaptive'")
        self.size_loss, self.normalization = size_loss, normalization
        self.lambda_size, self.lambda_entropy = float(lambda_size), float(lambda_entropy)
        self.adaptive = AdaptiveSizeLoss(num_components, **adaptive_kwargs) if size_loss == "adaptive" else None

    def size_penalty(self, pred: Tensor, target: Tensor) -> Tensor:
        if self.size_loss == "kl":
            return kl_size_loss(pred, target)
        if self.size_loss == "l2":
            return l2_size_loss(pred, target)
        return self.adaptive(pred, target)

    def forward(self, logits: Tensor, labels: Tensor, *, cams: Tensor | None = None,
                sizes: Tensor | None = None, input_size: tuple[int, int] | None = None
                ) -> tuple[Tensor, dict[str, Tensor]]:
        if cams is None or sizes is None or input_size is None:
            raise InputError("size supervision needs the CAMs, the true sizes and the input size of the batch")
        l_c = self.classification(logits, labels).mean()
        m_hat = normalized_cams(cams.float(), input_size, normalization=self.normalization)
        nu_hat = predicted_sizes(m_hat)
        if sizes.shape != nu_hat.shape:
            raise InputError(f"true sizes have shape {tuple(sizes.shape)} but the CAMs give {tuple(nu_hat.shape)} "
                             "(K classes + background); build them with size_targets(..., background=True)")
        l_s = self.size_penalty(nu_hat, sizes.to(nu_hat)).mean()
        if self.lambda_entropy > 0:
            l_e = entropy_loss(m_hat).mean()
        else:  # logged only: keep it out of the graph
            with torch.no_grad():
                l_e = entropy_loss(m_hat).mean()
        loss = (l_c + self.lambda_size * l_s + self.lambda_entropy * l_e) / (1 + self.lambda_size + self.lambda_entropy)
        parts = {"cls": l_c.detach(), "size": l_s.detach(), "entropy": l_e.detach()}
        if self.adaptive is not None:
            parts["alpha"] = self.adaptive.robust.alpha().mean().detach()
            parts["scale"] = self.adaptive.robust.scale().mean().detach()
        return loss, parts


CRITERIA = ("image", "image-bce", "size-kl", "size-l2", "size-adaptive", "jia", "pixel-ce", "pixel-ce-dice")
#: Criteria of multi-label classification (eq. 4.5), of per-pixel segmentation models.
MULTILABEL_CRITERIA = ("image-bce",)
PIXEL_CRITERIA = ("pixel-ce", "pixel-ce-dice")


def build_criterion(name: str = "image", **kwargs: Any) -> nn.Module:
    """A training criterion by name: ``image`` (image label only, cross-entropy eq. 4.4), ``image-bce``
    (multi-label image labels, binary cross-entropy eq. 4.5, chapter 3), ``size-kl`` / ``size-l2`` /
    ``size-adaptive`` (eq. 4.13 with that size penalty), ``jia`` (eq. 4.1-4.3), ``pixel-ce`` /
    ``pixel-ce-dice`` (the U-Net's pixel cross-entropy, optionally plus ``lambda_dice`` times a soft Dice
    loss); ``kwargs`` go to its constructor (``lambda_size``, ``lambda_entropy``, ``r``, ...);
    ``lambda_size`` / ``lambda_entropy`` are ignored by the criteria without those terms."""
    # the weights of terms a criterion does not have are ignored, so one recipe serves every loss
    weights = ("lambda_size", "lambda_entropy")
    if name in ("image", "image-bce"):
        options = {k: v for k, v in kwargs.items() if k not in weights}
        if name == "image-bce":
            options["multilabel"] = True
        return ImageLabelLoss(**options)
    if name in PIXEL_CRITERIA:
        return PixelLoss(dice=name == "pixel-ce-dice", **{k: v for k, v in kwargs.items() if k not in weights})
    if name.startswith("size-") and name[5:] in SIZE_LOSSES:
        return SizeSupervisedLoss(name[5:], **kwargs)
    if name == "jia":
        return JiaLoss(**{k: v for k, v in kwargs.items() if k != "lambda_entropy"})
    raise ConfigError(f"unknown loss {name!r}; choose one of {CRITERIA}")
