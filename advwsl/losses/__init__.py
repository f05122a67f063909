"""Losses of the weakly supervised half: image-label loss, size supervision of chapter 4 (eq. 4.7-4.13,
adaptive robust loss of eq. 4.10-4.11 with its partition function) and the Jia et al. baseline
(eq. 4.1-4.3), and the pixel losses of the fully supervised U-Net (section 2.1.3.2)."""

from .criterion import Criterion, PlainCriterion, as_criterion
from .entropy import entropy_loss
from .jia import JiaLoss, jia_probability, jia_size_penalty
from .robust import AdaptiveRobustLoss, log_partition, robust_nll, robust_rho
from .size import (AdaptiveSizeLoss, add_size_noise, kl_size_loss, l2_size_loss, normalized_cams,
                   per_image_noise, predicted_sizes, size_targets, SizeAnnotator)
from .pixel import PixelLoss, pixel_targets, soft_dice_loss
from .total import CRITERIA, MULTILABEL_CRITERIA, PIXEL_CRITERIA, ImageLabelLoss, SizeSupervisedLoss, build_criterion

__all__ = [
    "Criterion", "PlainCriterion", "as_criterion", "entropy_loss", "JiaLoss", "jia_probability", "jia_size_penalty", "AdaptiveRobustLoss", "log_partition",
    "robust_nll", "robust_rho", "AdaptiveSizeLoss", "add_size_noise", "kl_size_loss", "l2_size_loss",
    "normalized_cams", "per_image_noise", "predicted_sizes", "size_targets", "SizeAnnotator", "CRITERIA",
    "ImageLabelLoss",
    "SizeSupervisedLoss", "build_criterion", "MULTILABEL_CRITERIA", "PIXEL_CRITERIA", "PixelLoss", "pixel_targets",
    "soft_dice_loss",
]
