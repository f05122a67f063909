"""CAM quality and CAM robustness under attack.

Class activation maps (CAMs, eq. 1.3 / 3.3 of the reference) are the localization a weakly supervised
classifier offers. This module measures

* how well they localize: Dice (eq. 2.3) and IoU (eq. 3.12) between the binarized CAM and the
  ground-truth mask, on the images that have a non-empty mask (the reference evaluates the metastatic
  images only, section 2.1.2.1);
* how much an adversarial perturbation moves them: Dice / IoU between the binarized clean and adversarial
  CAMs, Spearman rank correlation of the two maps, and the shift of the map's centre of mass;
* both as curves over an L2 budget ε, obtained from one minimal-norm run by clipping each sample's
  perturbation to ε (``x + δ · min(1, ε/‖δ‖)``) and re-evaluating the model.

Conventions (those of :func:`advwsl.attacks.cam_ddn` too): the CAM of one class is upsampled bilinearly
to the input size, min-max normalized to [0, 1] per image and binarized at ``threshold`` (default 0.5: a
pixel is in the region when its activation is at least half-way between the map's minimum and maximum,
the ``"minmax"`` rule of :mod:`advwsl.models.cams`; a constant map has an empty region). This rule
localizes with every head, whatever the offset of its maps; the reference's evaluation rule (``"zero"``,
M_c > 0) is what training-time evaluation uses (:func:`advwsl.training.evaluate`). Two empty regions have
Dice and IoU 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from ..errors import InputError
from ..models.cams import DEFAULT_CAM_THRESHOLD, binarize, cam_masks, class_maps, dice_iou, require_cams
from ..utils import frozen

__all__ = [
    "spearman", "centre_of_mass", "compare_maps", "mask_scores", "clip_perturbation", "predict_maps",
    "cam_robustness", "predict_regions", "MOVEMENT_COLUMNS",
]


def _average_ranks(x: Tensor) -> Tensor:
    """Ranks (1..n) along the last dimension of a (N, n) tensor, ties getting their average rank."""
    ordered, order = x.sort(dim=1)
    n = x.shape[1]
    pos = torch.arange(n, device=x.device).expand_as(order)
    starts = torch.ones_like(order, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, pos, torch.zeros_like(pos)).cummax(dim=1).values  # start of each tie group
    last = torch.where(ends, pos, torch.full_like(pos, n)).flip(1).cummin(dim=1).values.flip(1)  # its end
    ranks = torch.empty(x.shape, dtype=torch.float64, device=x.device)
    return ranks.scatter_(1, order, (first + last).double() / 2 + 1)


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation between the maps ``a[i]`` and ``b[i]`` (Pearson correlation of the
    average ranks, ties sharing their mean rank). A constant map has no ranking: two constant maps
    correlate 1, a constant and a varying map 0."""
    ra = _average_ranks(a.detach().flatten(1).float())
    rb = _average_ranks(b.detach().flatten(1).float())
    ra = ra - ra.mean(dim=1, keepdim=True)
    rb = rb - rb.mean(dim=1, keepdim=True)
    na, nb = ra.norm(dim=1), rb.norm(dim=1)
    rho = (ra * rb).sum(1) / (na * nb).clamp_min(1e-300)
    const_a, const_b = na == 0, nb == 0
    rho = torch.where(const_a | const_b, (const_a & const_b).to(rho.dtype), rho)
    return rho.clamp(-1.0, 1.0).float().cpu()


def centre_of_mass(maps: Tensor) -> Tensor:
    """Centre of mass (row, column) in pixels of each non-negative map (N, H, W); the image centre for an
    all-zero map."""
    n, h, w = maps.shape
    m = maps.detach().double().clamp_min(0)
    total = m.sum(dim=(1, 2))
    rows = torch.arange(h, dtype=torch.float64, device=m.device)
    cols = torch.arange(w, dtype=torch.float64, device=m.device)
    r = (m.sum(2) * rows).sum(1) / total.clamp_min(1e-300)
    c = (m.sum(1) * cols).sum(1) / total.clamp_min(1e-300)
    centre = torch.tensor([(h - 1) / 2, (w - 1) / 2], dtype=torch.float64, device=m.device)
    com = torch.stack([r, c], dim=1)
    return torch.where((total > 0).unsqueeze(1), com, centre.expand(n, 2)).float()


def compare_maps(clean: Tensor, adversarial: Tensor, threshold: float = DEFAULT_CAM_THRESHOLD, *,
                 regions: tuple[Tensor, Tensor] | None = None) -> dict[str, Tensor]:
    """How much the CAM moved between two batches of normalized maps (N, H, W).

    Returns per-sample tensors: ``cam_dice`` and ``cam_iou`` between the binarized maps (1 = same
    region; the maps binarized at ``threshold``, or the given ``regions`` (clean, adversarial) of another
    rule), ``cam_spearman`` (rank correlation, in [-1, 1]), ``com_shift_px`` (distance between the centres
    of mass, pixels) and ``com_shift`` (the same as a fraction of the image diagonal, in [0, 1]).
    """
    if clean.shape != adversarial.shape:
        raise InputError(f"clean maps {tuple(clean.shape)} and adversarial maps {tuple(adversarial.shape)} "
                         "must have the same shape")
    a, b = regions if regions is not None else (binarize(clean, threshold), binarize(adversarial, threshold))
    dice, iou = dice_iou(a, b)
    shift = (centre_of_mass(clean) - centre_of_mass(adversarial)).norm(dim=1).cpu()
    h, w = clean.shape[1:]
    diagonal = float(np.hypot(max(h - 1, 1), max(w - 1, 1)))
    return {"cam_dice": dice.cpu(), "cam_iou": iou.cpu(), "cam_spearman": spearman(clean, adversarial),
            "com_shift_px": shift, "com_shift": (shift / diagonal).clamp(0, 1)}


def mask_scores(maps: Tensor, masks: Tensor, threshold: float = DEFAULT_CAM_THRESHOLD, *,
                regions: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Localization against ground truth: per-sample Dice and IoU between the binarized maps (N, H, W)
    (at ``threshold``, or the given ``regions`` of another rule) and the masks (N, H, W) or (N, 1, H, W),
    and a boolean ``valid`` marking the samples with a non-empty mask (the only ones a CAM can be scored
    on; the others get NaN)."""
    if masks.dim() == 4:
        if masks.shape[1] != 1:
            raise InputError(f"masks must be (N, H, W) or (N, 1, H, W), got {tuple(masks.shape)}")
        masks = masks[:, 0]
    if masks.shape != maps.shape:
        raise InputError(f"masks of shape {tuple(masks.shape)} do not match the maps {tuple(maps.shape)}; "
                         "masks must have the input images' height and width")
    target = masks.to(maps.device) > 0.5
    dice, iou = dice_iou(binarize(maps, threshold) if regions is None else regions.to(maps.device), target)
    valid = target.flatten(1).any(1).cpu()
    nan = torch.full_like(dice, float("nan"))
    return torch.where(valid, dice, nan), torch.where(valid, iou, nan), valid


def clip_perturbation(inputs: Tensor, adversarials: Tensor, eps: float) -> Tensor:
    """``x + δ · min(1, ε/‖δ‖₂)`` per sample, with ``δ = adversarials - inputs``: the minimal-norm
    perturbation shortened to the budget ε (the construction behind the robustness curves)."""
    if eps < 0:
        raise InputError(f"eps must be non-negative, got {eps}")
    delta = adversarials - inputs
    norms = delta.flatten(1).norm(dim=1)
    scale = torch.where(norms > eps, eps / norms.clamp_min(1e-30), torch.ones_like(norms))
    return inputs + delta * scale.view(-1, *([1] * (delta.dim() - 1)))


@torch.no_grad()
def predict_regions(model: nn.Module, inputs: Tensor, classes: Tensor | None = None, *, batch_size: int = 64,
                    rule: str = "minmax", threshold: float = DEFAULT_CAM_THRESHOLD) -> tuple[Tensor, Tensor, Tensor]:
    """Predictions, normalized input-sized CAMs and their regions: the CAM of ``classes`` when given, else
    of each image's predicted class, binarized by ``rule`` (:func:`advwsl.models.cams.cam_masks`). Returns
    (predictions (N,), maps (N, H, W), regions (N, H, W) bool) on the CPU. The model is evaluated frozen
    (eval mode) and left as it was."""
    require_cams(model)
    preds, maps, regions = [], [], []
    with frozen(model):
        for start in range(0, len(inputs), batch_size):
            x = inputs[start:start + batch_size]
            logits, cams = model.cams(x)
            pred = logits.argmax(1)
            which = pred if classes is None else classes[start:start + batch_size].to(pred.device)
            preds.append(pred.cpu())
            maps.append(class_maps(cams, which, x.shape[2:]).cpu())
            regions.append(cam_masks(cams, which, x.shape[2:], rule, threshold=threshold).cpu())
    return torch.cat(preds), torch.cat(maps), torch.cat(regions)


def predict_maps(model: nn.Module, inputs: Tensor, classes: Tensor | None = None, *,
                 batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """Predictions and normalized input-sized CAMs (see :func:`predict_regions`)."""
    preds, maps, _ = predict_regions(model, inputs, classes, batch_size=batch_size)
    return preds, maps


def _summarize(frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, float]:
    return {c: float(frame[c].mean()) if frame[c].notna().any() else float("nan") for c in columns}


MOVEMENT_COLUMNS = ("cam_dice", "cam_iou", "cam_spearman", "com_shift", "com_shift_px")


def cam_robustness(model: nn.Module, inputs: Tensor, adversarials: Tensor, masks: Tensor | None = None, *,
                   classes: Tensor | None = None, epsilons: Sequence[float] | None = None,
                   threshold: float = DEFAULT_CAM_THRESHOLD, rule: str = "minmax", batch_size: int = 64,
                   num_epsilons: int = 21) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """CAM quality and CAM movement for clean images and their (minimal-norm) adversarials, and the same
    as curves over the L2 budget ε.

    Parameters
    ----------
    model : a model with ``cams(x)`` (evaluated frozen, left as found).
    inputs, adversarials : clean images and their adversarials in [0, 1], (N, C, H, W).
    masks : ground-truth masks (N, H, W) or None. Localization scores are computed on the images with a
        non-empty mask only; without masks those columns are absent.
    classes : the class whose CAM is compared (N,); default: the class predicted on the clean image, so
        the clean and adversarial maps are maps of one class.
    epsilons : budgets of the curves; default ``num_epsilons`` points from 0 to the largest perturbation
        norm. At each ε every perturbation is clipped to ε (:func:`clip_perturbation`) and the model
        re-evaluated.
    threshold, rule : how CAMs are binarized (:func:`advwsl.models.cams.cam_masks`; ``threshold`` is the
        ``"minmax"`` rule's).

    Returns
    -------
    per_sample : one row per image: ``index, cam_class, clean_pred, adv_pred, l2`` and the movement
        columns ``cam_dice, cam_iou, cam_spearman, com_shift, com_shift_px`` (see :func:`compare_maps`),
        plus ``has_mask, mask_dice_clean, mask_iou_clean, mask_dice_adv, mask_iou_adv`` with masks.
    curve : one row per ε: ``epsilon``, the means of the movement columns and, with masks,
        ``mask_dice, mask_iou`` (means over the images with a mask).
    summary : the means over all images of the per-sample columns (mask scores over images with a mask),
        and ``n_samples`` / ``n_with_mask``.
    """
    if inputs.shape != adversarials.shape:
        raise InputError(f"adversarials {tuple(adversarials.shape)} must have the shape of the inputs "
                         f"{tuple(inputs.shape)}")
    opts = {"batch_size": batch_size, "rule": rule, "threshold": threshold}
    clean_pred, _, _ = predict_regions(model, inputs, None, **opts)
    cls = clean_pred if classes is None else classes.detach().cpu().long()
    _, clean_maps, clean_regions = predict_regions(model, inputs, cls, **opts)
    adv_pred, adv_maps, adv_regions = predict_regions(model, adversarials, cls, **opts)
    l2 = (adversarials - inputs).flatten(1).norm(dim=1).detach().cpu()
    per = {"index": np.arange(len(inputs)), "cam_class": cls.numpy(), "clean_pred": clean_pred.numpy(),
           "adv_pred": adv_pred.numpy(), "l2": l2.numpy()}
    per.update({k: v.numpy() for k, v in compare_maps(clean_maps, adv_maps,
                                                      regions=(clean_regions, adv_regions)).items()})
    if masks is not None:
        masks = masks.detach().cpu()
        dice_c, iou_c, valid = mask_scores(clean_maps, masks, regions=clean_regions)
        dice_a, iou_a, _ = mask_scores(adv_maps, masks, regions=adv_regions)
        per.update({"has_mask": valid.numpy(), "mask_dice_clean": dice_c.numpy(),
                    "mask_iou_clean": iou_c.numpy(), "mask_dice_adv": dice_a.numpy(),
                    "mask_iou_adv": iou_a.numpy()})
    per_sample = pd.DataFrame(per)

    if epsilons is None:
        top = float(l2.max()) if len(l2) else 0.0
        epsilons = np.linspace(0.0, top * 1.05 if top > 0 else 1.0, num_epsilons)
    rows = []
    for eps in (float(e) for e in epsilons):
        clipped = clip_perturbation(inputs, adversarials, eps)
        _, maps, regions = predict_regions(model, clipped, cls, **opts)
        row = {"epsilon": eps}
        row.update({k: float(v.mean()) for k, v in compare_maps(clean_maps, maps,
                                                                regions=(clean_regions, regions)).items()})
        if masks is not None:
            dice, iou, valid = mask_scores(maps, masks, regions=regions)
            row["mask_dice"] = float(dice[valid].mean()) if valid.any() else float("nan")
            row["mask_iou"] = float(iou[valid].mean()) if valid.any() else float("nan")
        rows.append(row)
    curve = pd.DataFrame(rows)

    summary: dict[str, float] = {"n_samples": float(len(per_sample))}
    summary.update(_summarize(per_sample, MOVEMENT_COLUMNS))
    if masks is not None:
        summary["n_with_mask"] = float(per_sample["has_mask"].sum())
        summary.update(_summarize(per_sample, ("mask_dice_clean", "mask_iou_clean", "mask_dice_adv",
                                               "mask_iou_adv")))
    return per_sample, curve, summary
