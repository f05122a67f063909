"""Attacking a slide: the minimal-norm attack (DDN, Algorithm A V-1, by default) of its tiles, and what it
does to the slide score and to the stitched CAM heatmap.

* **Which tiles.** The candidates are the tissue tiles the model predicts as a class other than
  ``target_class`` (default 0: the positive tiles of a 2-class model). At most ``max_tiles`` of them are
  attacked, by decreasing probability of the positive class: with a max or top-k slide score these are the
  tiles that decide it. The other tiles keep their clean predictions and maps, so with more candidates than
  ``max_tiles`` the slide score may not fall.
* **How.** :func:`advwsl.attacks.run_attack`, batch by batch, on the tiles as the model sees them (after
  the stain normalization, when there is one: the perturbation is measured there), gives verified records (adversarials in
  [0, 1], on the 8-bit lattice, re-predicted, L2 norms recomputed); with two classes the attack is
  untargeted (away from the predicted class), with more it is targeted at ``target_class``. Each batch of
  adversarial tiles is re-evaluated (probabilities, CAM pasted into a copy of the clean CAM canvas), then
  dropped unless ``keep_adversarials``.
* **Reported.** Per attacked tile: success, L2 norm (pixels in [0, 1], as in Table A V-1), positive-class
  probability before and after, and the Dice of the tile's clean and adversarial CAMs (each normalized to
  [0, 1] and binarized at 0.5, the convention of :mod:`advwsl.evaluation.cams`). Per slide: the score before
  and after, and the Dice and IoU of the positive region before and after, where the region is the stitched
  CAM scaled to [0, 1] by the *clean* map's minimum and maximum, thresholded at ``cam_threshold``. Both maps
  share that scale, so a CAM the attack lowers gives a smaller region (normalizing each map by its own range
  would hide it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..attacks import get_attack_spec
from ..attacks import run_attack
from ..errors import ConfigError, InputError
from ..evaluation.cams import compare_maps
from ..models.cams import class_maps, dice_iou
from ..utils import frozen
from .config import SlideAttackConfig, SlideConfig
from .predict import (SlidePrediction, check_finite_outputs, aggregate, model_outputs, place_model, predict_slide,
                      prepare_tiles, resolve_classes, softmax)
from .stitch import SlideCanvas, finite_range, scale_to_range
from .tiling import tile_loader


def positive_regions(clean: np.ndarray, after: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Positive regions (bool) of the clean and attacked stitched CAMs: each scaled to [0, 1] by the clean
    map's minimum and maximum over the tiles, then ``>= threshold`` (NaN, off the tiles, is outside)."""
    lo, hi = finite_range(clean)
    return tuple(np.nan_to_num(scale_to_range(m, lo, hi), nan=0.0) >= threshold for m in (clean, after))


@dataclass(frozen=True, eq=False)
class SlideAttack:
    """What :func:`attack_slide` did: the clean ``prediction``; ``tiles``, one row per attacked tile;
    ``logits_after`` of every tile (clean for tiles not attacked); the slide ``score_after``;
    ``cam_map_after`` (stitched CAM after the attack, None without CAMs); ``region_dice`` and ``region_iou``
    of the positive regions before and after (None without CAMs); ``n_candidates``; ``seconds``;
    ``adversarials`` (uint8 (n, T, T, 3), only with ``keep_adversarials``)."""

    prediction: SlidePrediction
    config: SlideAttackConfig
    tiles: pd.DataFrame
    logits_after: np.ndarray
    score_after: float
    cam_map_after: np.ndarray | None
    region_dice: float | None
    region_iou: float | None
    n_candidates: int
    seconds: float
    adversarials: np.ndarray | None = None

    @property
    def score_before(self) -> float:
        return self.prediction.score

    def regions(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Positive regions (bool maps) before and after the attack, None without CAMs."""
        if self.prediction.cam_map is None:
            return None
        return positive_regions(self.prediction.cam_map, self.cam_map_after, self.config.cam_threshold)

    def summary(self) -> dict:
        """The attack's settings and aggregates (JSON-ready)."""
        t = self.tiles
        ok = t["success"].to_numpy(bool) if len(t) else np.zeros(0, bool)
        l2 = t["l2"].to_numpy() if len(t) else np.zeros(0)
        regions = self.regions()
        return {
            "attack": self.config.attack, "steps": self.config.steps, "target_class": self.config.target_class,
            "max_tiles": self.config.max_tiles, "levels": self.config.levels, "seed": self.config.seed,
            "candidates": self.n_candidates, "attacked": int(len(t)), "successes": int(ok.sum()),
            "success_rate": float(ok.mean()) if len(t) else None,
            "mean_l2_of_successes": float(l2[ok].mean()) if ok.any() else None,
            "median_l2_of_successes": float(np.median(l2[ok])) if ok.any() else None,
            "slide_score_before": self.score_before, "slide_score_after": self.score_after,
            "cam_threshold": self.config.cam_threshold, "region_dice": self.region_dice,
            "region_iou": self.region_iou,
            "region_pixels_before": int(regions[0].sum()) if regions else None,
            "region_pixels_after": int(regions[1].sum()) if regions else None,
            "mean_tile_cam_dice": float(t["cam_dice"].mean()) if len(t) and "cam_dice" in t else None,
            "seconds": self.seconds,
        }


def _select(prediction: SlidePrediction, cfg: SlideAttackConfig) -> tuple[np.ndarray, int]:
    """(tiles to attack, number of candidates): see the module docstring."""
    pred = prediction.logits.argmax(axis=1)
    candidates = np.flatnonzero(pred != cfg.target_class)
    positive = prediction.probabilities[candidates, prediction.config.positive_class]
    order = candidates[np.argsort(-positive, kind="stable")]
    return np.sort(order[:cfg.max_tiles]), len(candidates)


def _attack_batch(model: nn.Module, x: torch.Tensor, idx: np.ndarray, prediction: SlidePrediction,
                  attack: SlideAttackConfig, kwargs: dict,
                  canvas: SlideCanvas) -> tuple[pd.DataFrame, torch.Tensor, torch.Tensor]:
    """Attack one batch of tiles (``x`` in [0, 1], grid indices ``idx``); paste their adversarial CAMs into
    ``canvas``. Returns the per-tile rows, the adversarial tiles and their logits."""
    cfg, grid = prediction.config, prediction.grid
    labels = torch.from_numpy(prediction.logits[idx].argmax(axis=1)).to(x.device)
    targeted = prediction.logits.shape[1] > 2
    target = torch.full_like(labels, attack.target_class) if targeted else "all"
    record = run_attack(model, x, labels, attack=attack.attack, attack_kwargs=kwargs, targeted=targeted,
                        target=target, batch_size=len(x), levels=attack.levels, progress=False, seed=attack.seed,
                        keep_adversarials=True)
    adv = record.adversarials.to(x.device)
    with torch.no_grad():
        _, cams_clean = model_outputs(model, x)
        logits_adv, cams_adv = model_outputs(model, adv)
    check_finite_outputs(logits_adv, cams_adv, grid, idx, "the model, on the adversarial tiles,")
    name, pos = prediction.classes[cfg.positive_class], cfg.positive_class
    rows = pd.DataFrame({"tile": idx, "x": grid.xs[idx], "y": grid.ys[idx], "clean_pred": record.clean_pred,
                         "adv_pred": record.adv_pred, "success": record.success, "l2": record.l2,
                         f"prob_{name}_before": prediction.probabilities[idx, pos],
                         f"prob_{name}_after": softmax(logits_adv.float().cpu().numpy())[:, pos]})
    if cams_adv is not None:
        which = torch.full((len(idx),), cfg.cam_class, dtype=torch.long)
        rows["cam_dice"] = compare_maps(class_maps(cams_clean, which), class_maps(cams_adv, which))["cam_dice"].numpy()
        canvas.replace(cams_clean[:, cfg.cam_class], cams_adv[:, cfg.cam_class], grid.xs[idx], grid.ys[idx],
                       grid.size0)
    return rows, adv, logits_adv


def attack_slide(model: nn.Module, config: SlideConfig, attack: SlideAttackConfig | None = None, *,
                 prediction: SlidePrediction | None = None,
                 classes: Sequence[str] | None = None) -> SlideAttack:
    """Attack the tiles of a slide and measure the effect on the slide (see the module docstring).

    Parameters
    ----------
    model : nn.Module
        As for :func:`advwsl.wsi.predict_slide`; run frozen (eval mode) and left as it was.
    config : SlideConfig
        The slide and its tiling (validated first).
    attack : SlideAttackConfig, optional
        Which tiles and how (default: ``SlideAttackConfig()``, DDN with 100 steps on at most 64 tiles).
    prediction : SlidePrediction, optional
        The clean prediction of ``config`` when already computed (else :func:`predict_slide` runs first).
    classes : class names, passed to :func:`predict_slide`.

    Returns
    -------
    SlideAttack
    """
    from tqdm.auto import tqdm

    attack = attack or SlideAttackConfig()
    attack.validate()
    config.validate()
    if prediction is None:
        prediction = predict_slide(model, config, classes=classes)
    elif resolve_classes(config, prediction.classes) != prediction.config:
        raise InputError("prediction was computed with another SlideConfig than config; pass the same config "
                         "or leave prediction out")
    config = prediction.config  # classes as indices
    n_classes = prediction.logits.shape[1]
    if attack.target_class >= n_classes:
        raise ConfigError(f"target_class = {attack.target_class} but the model has {n_classes} classes")
    device = place_model(model, config.device)
    selected, n_candidates = _select(prediction, attack)
    kwargs = get_attack_spec(attack.attack).kwargs(str(attack.steps))  # the attack's reading of a step budget
    canvas = SlideCanvas(prediction.map_shape, prediction.map_downsample)
    if prediction.cam_map is not None:
        coverage = (prediction.coverage if prediction.coverage is not None
                    else np.isfinite(prediction.cam_map).astype(np.uint16))
        canvas = SlideCanvas.from_values(prediction.cam_map, coverage, prediction.map_downsample)
    logits_after = prediction.logits.copy()
    rows, kept = [], []
    tic = time.perf_counter()
    loader = tile_loader(config.slide, prediction.grid, batch_size=config.batch_size, workers=config.workers,
                         backend=config.backend, indices=selected)
    bar = tqdm(total=len(selected), desc=f"{attack.attack} on tiles", unit="tile", disable=not config.progress)
    with frozen(model):  # eval mode throughout (run_attack would warn about a model in train mode)
        for images, index in loader:
            idx = index.numpy()
            x = prepare_tiles(images.to(device).float().div_(255.0), prediction.stain)
            batch_rows, adv, logits_adv = _attack_batch(model, x, idx, prediction, attack, kwargs, canvas)
            rows.append(batch_rows)
            logits_after[idx] = logits_adv.float().cpu().numpy()
            if attack.keep_adversarials:
                kept.append(torch.round(adv * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
            bar.update(len(idx))
    bar.close()
    columns = ["tile", "x", "y", "clean_pred", "adv_pred", "success", "l2"]
    tiles = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)
    score_after = aggregate(softmax(logits_after)[:, config.positive_class], config.aggregation, config.top_k)
    cam_after, dice, iou = None, None, None
    if prediction.cam_map is not None:
        cam_after = canvas.values
        before, after = positive_regions(prediction.cam_map, cam_after, attack.cam_threshold)
        d, j = dice_iou(torch.from_numpy(before)[None], torch.from_numpy(after)[None])
        dice, iou = float(d[0]), float(j[0])
    return SlideAttack(prediction, attack, tiles, logits_after, score_after, cam_after, dice, iou, n_candidates,
                       time.perf_counter() - tic, np.concatenate(kept) if kept else None)
