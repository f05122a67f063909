"""Class activation maps (CAMs) as localization: the primitives every part of advwsl uses, so that
training-time evaluation, the attack report and the CAM attack binarize maps the same way.

A weakly supervised model's ``cams(x)`` returns ``(logits (N, C), cams (N, C, h, w))`` at feature
resolution (eq. 1.3 / 3.3). From them:

* :func:`upsample_cams` brings maps to the input size (bilinear, section 1.3.4);
* :func:`class_maps` picks one class per image and min-max normalizes it to [0, 1] (differentiable);
* :func:`cam_masks` binarizes the map of one class per image by one of the rules :data:`CAM_RULES`:

  - ``"zero"``: the class map is foreground where it scores above the background's constant 0 (section
    3.4.2; equivalently sigmoid(M) > 0.5, and attention > 1/(hw) for Deep MIL);
  - ``"argmax"``: arg max of ``[0, M_1, ..., M_C]`` equals the class (the segmentation of eq. 4.6 used
    with size supervision; :func:`pixel_predictions`);
  - ``"minmax"``: the map min-max normalized per image and thresholded at ``threshold`` (0.5: half-way
    between the map's minimum and maximum); it ignores the map's offset, so it localizes with any head.
    A constant map has an empty region.

* :func:`dice_iou` scores two regions (eq. 2.3 and 3.12; two empty regions score 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError, ModelError

__all__ = ["CAM_RULES", "DEFAULT_CAM_THRESHOLD", "upsample_cams", "require_cams", "normalize_maps", "class_maps",
           "binarize", "cam_masks", "pixel_predictions", "foreground_masks", "class_masks", "dice_iou"]

CAM_RULES = ("zero", "argmax", "minmax")
DEFAULT_CAM_THRESHOLD = 0.5


def _check(cams: Tensor) -> None:
    if not isinstance(cams, Tensor) or cams.dim() != 4:
        shape = tuple(cams.shape) if isinstance(cams, Tensor) else type(cams).__name__
        raise InputError(f"CAMs must be a (N, C, h, w) tensor, got {shape}")


def upsample_cams(cams: Tensor, size: int | Sequence[int]) -> Tensor:
    """Bilinear interpolation of CAMs ``(N, C, h, w)`` to ``size`` (the input size; section 1.3.4).
    Differentiable; ``align_corners=False`` so each CAM cell covers its ``stride x stride`` input block."""
    _check(cams)
    size = (size, size) if isinstance(size, int) else tuple(size)
    if len(size) != 2 or min(size) < 1:
        raise InputError(f"size must be a positive int or (H, W), got {size!r}")
    if tuple(cams.shape[2:]) == size:
        return cams
    return F.interpolate(cams, size=size, mode="bilinear", align_corners=False)


def require_cams(model: nn.Module) -> None:
    """Raise :class:`ModelError` unless ``model`` has the ``cams(x) -> (logits, cams)`` method of the
    weakly supervised models (section 3.2)."""
    if not callable(getattr(model, "cams", None)):
        raise ModelError(
            f"model {type(model).__name__} has no class activation maps (no cams(x) method): CAM metrics and "
            "the CAM attack need a weakly supervised model (cam, max, lse, wildcat, deepmil, ...); use the "
            "label goal for this model")


def normalize_maps(maps: Tensor, eps: float = 1e-12) -> Tensor:
    """Min-max normalize each map of ``maps`` (N, H, W) to [0, 1]. A constant map becomes all zeros.
    Differentiable (sub-gradients through the min and max)."""
    flat = maps.flatten(1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(eps)).view_as(maps)


def _select(cams: Tensor, classes: Tensor) -> Tensor:
    """The map of ``classes[i]`` for each sample: (N, C, h, w) -> (N, h, w)."""
    if classes.shape != (cams.shape[0],):
        raise InputError(f"classes must have shape ({cams.shape[0]},), got {tuple(classes.shape)}")
    idx = classes.to(device=cams.device, dtype=torch.long).view(-1, 1, 1, 1).expand(-1, 1, *cams.shape[2:])
    return cams.gather(1, idx)[:, 0]


def class_maps(cams: Tensor, classes: Tensor, size: Sequence[int] | None = None) -> Tensor:
    """The CAM of ``classes[i]`` for each sample, upsampled bilinearly to ``size`` (H, W) when given and
    normalized to [0, 1] per image: (N, C, h, w) -> (N, H, W). Differentiable."""
    _check(cams)
    maps = _select(cams, classes)[:, None]
    if size is not None:
        maps = upsample_cams(maps, tuple(size))
    return normalize_maps(maps[:, 0])


def binarize(maps: Tensor, threshold: float = DEFAULT_CAM_THRESHOLD) -> Tensor:
    """Region of each [0, 1]-normalized map: ``maps >= threshold`` (bool)."""
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"CAM threshold must lie in (0, 1] for maps normalized to [0, 1], got {threshold}")
    return maps >= threshold


def pixel_predictions(cams: Tensor) -> Tensor:
    """Section 3.4.2: ``argmax([0, M_1, ..., M_C])`` per pixel.

    Returns an int64 tensor ``(N, h, w)`` where 0 is background and ``c + 1`` is class ``c`` (the Pascal
    VOC convention). Ties go to the background, then to the lowest class index.
    """
    _check(cams)
    return torch.cat([torch.zeros_like(cams[:, :1]), cams], dim=1).argmax(dim=1)


def foreground_masks(cams: Tensor) -> Tensor:
    """Per-class binary localization ``M_c > 0`` ``(N, C, h, w)`` (bool): the class map of a class is
    active where it scores above the background's 0 (section 3.4.2; ReLU of Grad-CAM, eq. 1.15)."""
    _check(cams)
    return cams > 0


def class_masks(cams: Tensor, classes: Tensor) -> Tensor:
    """The binary map ``M_y > 0`` ``(N, h, w)`` of one class per sample (e.g. the label or the
    prediction), the localization a binary histology task is evaluated on."""
    _check(cams)
    return _select(cams, classes) > 0


def cam_masks(cams: Tensor, classes: Tensor, size: Sequence[int] | None = None, rule: str = "zero", *,
              threshold: float = DEFAULT_CAM_THRESHOLD) -> Tensor:
    """Binary localization ``(N, H, W)`` of class ``classes[i]`` from CAMs ``(N, C, h, w)`` upsampled to
    ``size`` (default: their own size), by ``rule`` (see the module docstring; ``threshold`` is the
    ``"minmax"`` rule's)."""
    _check(cams)
    if rule not in CAM_RULES:
        raise InputError(f"the CAM rule must be one of {', '.join(CAM_RULES)}, got {rule!r}")
    up = upsample_cams(cams.float(), tuple(size)) if size is not None else cams.float()
    if rule == "argmax":
        return pixel_predictions(up) == (classes.to(up.device).long() + 1).view(-1, 1, 1)
    if rule == "zero":
        return class_masks(up, classes)
    return binarize(normalize_maps(_select(up, classes)), threshold)


def dice_iou(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image Dice (eq. 2.3) and IoU (eq. 3.12) of two boolean region batches (N, H, W); 1 when both
    regions are empty."""
    p = pred.flatten(1).bool()
    t = target.flatten(1).bool()
    inter = (p & t).sum(1).double()
    sizes = p.sum(1).double() + t.sum(1).double()
    union = sizes - inter
    empty = sizes == 0
    dice = torch.where(empty, torch.ones_like(inter), 2 * inter / sizes.clamp_min(1))
    iou = torch.where(empty, torch.ones_like(inter), inter / union.clamp_min(1))
    return dice.float(), iou.float()
