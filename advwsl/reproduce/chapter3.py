"""Chapter 3 (Deep MIL for multi-class and multi-label classification): Tables 3.1 to 3.5 and Figure 3.3 as
entries of ``advwsl reproduce``, run by :func:`advwsl.reproduce.wsl.wsl_table`.

* Tables 3.1, 3.2 and Figure 3.3 — Pascal VOC 2012 (``--data-root``, the layout of :mod:`advwsl.data.voc`):
  multi-label training with the binary cross-entropy (eq. 4.5), 20 epochs, batches of 16, cosine lr 0.01,
  the augmentations of section 3.4.2, evaluation with test-time augmentation (flips, 4 scales) on the
  448 x 448 resized validation images: mAP over the 20 classes and mIoU over the 21 pixel classes with the
  background-0 arg max rule. No stand-in: the synthetic set has one label per image.
* Tables 3.3 to 3.5 — the histology datasets of chapter 2 with the multi-class Deep MIL (``deepmil-multi``,
  dropout d = 0.03 on BreakHis and BACH, 0.1 on CAMELYON16) beside the chapter 2 heads (the same cached
  models as Tables 2.5, 2.6, 2.8 and 2.9), on the real data or the same synthetic stand-ins.
"""

from __future__ import annotations

from .chapter2 import (BACH_STAND_IN, CAMELYON, FOLDS, HEADS, MAGNIFICATIONS, ONE_MAGNIFICATION_NOTE,
                       PATCH_SIZES, QUICK, STAND_IN_FOLDS, TABLE_2_5, TABLE_2_6, TABLE_2_8, TABLE_2_9, UNET, DATA)
from .fold_findings import FoldDifference
from .registry import Entry, register_entry
from .wsl import WSL_TABLE, ref

__all__ = ["ours", "VOC_WILDCAT"]

VOC_DATA = ("Pascal VOC 2012 + SegmentationClassAug with --data-root (ROOT/VOCdevkit/VOC2012/...); no stand-in "
            "(the synthetic set is single-label)")
#: WILDCAT as tuned on VOC (section 3.4.4): k+ = k- = 20 instances, alpha = 0.2, M = 4 modalities.
VOC_WILDCAT = {"method": "WILDCAT (ResNet-18)", "model": "wildcat",
               "train": {"model_kwargs": {"kmax": 20, "kmin": 20, "alpha": 0.2, "modalities": 4}}}


def ours(d: float, backbone: str | None = None, label: str | None = None) -> dict:
    """The multi-class Deep MIL of eq. 3.10-3.11 with dropout ``d`` (on ``backbone``)."""
    train = {"model_kwargs": {"dropout": d}, **({"backbone": backbone} if backbone else {})}
    return {"method": label or f"Ours (d = {d:g})", "model": "deepmil-multi", "train": train}


VOC_QUICK = {"folds": [0], "overrides": {"epochs": 1}}
VOC_NOTES = ["mAP over the 20 classes and mIoU over 21 pixel classes (background = no class above 0, section "
             "3.4.2); CAMs and scores averaged over flips and 4 scales; evaluated on the 448 x 448 resized "
             "validation images and masks (the reference: at the original resolution)"]


def _voc(entry_id: str, title: str, rows: list[dict], reference: list[dict], time_gpu: str,
         groups: list[dict] | None = None, figure: dict | None = None) -> None:
    register_entry(Entry(
        id=entry_id, title=title, section="section 3.4", data=VOC_DATA, availability="data-root",
        time_cpu="days on a CPU (10,582 images x 20 epochs per model)", time_gpu=time_gpu, experiment=WSL_TABLE,
        settings={"dataset_label": "Pascal VOC 2012", "preset": "voc", "rows": rows,
                                       "measures": ["map", "miou"], "folds": [0], "groups": groups or [{}],
                                       "notes": VOC_NOTES, **({"figure": figure} if figure else {})},
        quick=VOC_QUICK, reference=tuple(reference)))


MODALITIES = [1, 2, 4, 8, 12, 16, 20]
_voc("3.1", "Number of modalities of WILDCAT on Pascal VOC 2012: mAP and mIoU",
     [{**VOC_WILDCAT, "method": "WILDCAT"}],
     [ref("WILDCAT", f"M = {m}", map=a, miou=b) for m, a, b in zip(
         MODALITIES, (92.1, 92.6, 92.4, 92.1, 91.7, 91.8, 91.6), (37.9, 38.3, 38.3, 38.7, 38.7, 37.8, 38.2))],
     "~7 GPU-hours (7 trainings of 20 epochs; estimate)",
     groups=[{"group": f"M = {m}", "train": {"model_kwargs": {"modalities": m}}} for m in MODALITIES])
_voc("3.2", "Pascal VOC 2012 validation: mAP and mIoU of the poolings and of the multi-class Deep MIL",
     [{"method": "Average pooling", "model": "cam"}, {"method": "Max pooling", "model": "max"},
      {"method": "LSE pooling (q = 0.5)", "model": "lse", "train": {"model_kwargs": {"q": 0.5}}}, VOC_WILDCAT,
      ours(0.4, label="Ours (ResNet-18)"), ours(0.4, "resnet50", "Ours (ResNet-50)"),
      ours(0.4, "resnet101", "Ours (ResNet-101)")],
     [ref(m, map=a, miou=b) for m, a, b in (
         ("Average pooling", 89.1, 23.2), ("Max pooling", 91.9, 24.6), ("LSE pooling (q = 0.5)", 92.5, 41.4),
         ("WILDCAT (ResNet-18)", 92.4, 40.0), ("WILDCAT* (ResNet-101, reported by Durand et al.)", 93.4, 39.2),
         ("Ours (ResNet-18)", 92.5, 42.4), ("Ours (ResNet-50)", 94.0, 43.6), ("Ours (ResNet-101)", 94.4, 44.1))],
     "~10 GPU-hours (7 trainings; estimate)")
DROPOUTS = [round(0.1 * k, 1) for k in range(11)]
_voc("fig-3.3", "Impact of the dropout fraction d on mAP and mIoU (Pascal VOC 2012)", [ours(0.0, label="Ours")],
     [], "~11 GPU-hours (11 trainings; estimate)",
     groups=[{"group": f"d = {d:g}", "x": d, "train": {"model_kwargs": {"dropout": d}}} for d in DROPOUTS],
     figure={"measures": ["map", "miou"], "xlabel": "dropout fraction d"})

# ------------------------------------------------------------------------------ Tables 3.3 to 3.5
CH3_HEADS = [HEADS[0], HEADS[3], HEADS[4]]
TABLE_3_3 = [r for r in TABLE_2_5 if r["method"] in ("CAM - Average", "WILDCAT", "Deep MIL")] + [
    ref("Ours (d = 0.03)", g["group"], accuracy=a, ap=p) for g, a, p in zip(
        MAGNIFICATIONS, ((89.68, 4.22), (89.73, 2.70), (90.30, 2.49), (85.12, 2.53)),
        ((97.00, 2.76), (98.02, 0.86), (97.88, 0.94), (95.75, 1.25)))]
OURS_NOTE = "Ours = the multi-class Deep MIL of eq. 3.10-3.11 (deepmil-multi) with instance-score dropout d"
register_entry(Entry(
    id="3.3", title="BreakHis: accuracy and AP with the multi-class Deep MIL (d = 0.03)", section="section 3.5",
    data=DATA["breakhis"],
    availability="stand-in", time_cpu="stand-in ~5 CPU-min (3 heads shared with 2.5; ~2 after it), quick ~1 min",
    time_gpu="real data: ~3 GPU-hours (estimate)",
    experiment=WSL_TABLE, settings={"dataset_label": "BreakHis", "preset": "breakhis", "rows": [*CH3_HEADS, ours(0.03)],
                         "measures": ["accuracy", "ap"], "folds": FOLDS, "stand_in_folds": STAND_IN_FOLDS,
                         "groups": MAGNIFICATIONS, "stand_in_groups": [{"group": "40×"}],
                         "notes": [OURS_NOTE], "stand_in_notes": [ONE_MAGNIFICATION_NOTE]},
    quick=QUICK, reference=tuple(TABLE_3_3)))
TABLE_3_4 = [r for r in TABLE_2_6 if r["method"] in ("CAM - Average", "WILDCAT", "Deep MIL (adapted)")] + [
    ref("Ours (d = 0.03)", accuracy=(79.50, 2.37), map=(89.07, 1.61))]
register_entry(Entry(
    id="3.4", title="BACH: accuracy and mAP with the multi-class Deep MIL (d = 0.03)", section="section 3.5",
    data=DATA["bach"],
    availability="stand-in", time_cpu="stand-in ~4 CPU-min (3 heads shared with 2.6; ~1 after it), quick ~1 min",
    time_gpu="real data: ~1 GPU-hour (estimate)",
    experiment=WSL_TABLE, settings={"dataset_label": "BACH (part A)", "preset": "bach", "rows": [
        HEADS[0], HEADS[3], {"method": "Deep MIL (adapted)", "model": "deepmil"}, ours(0.03)],
        "measures": ["accuracy", "map"], "folds": FOLDS, "stand_in_folds": STAND_IN_FOLDS, **BACH_STAND_IN,
        "notes": [OURS_NOTE]}, quick=QUICK, reference=tuple(TABLE_3_4)))
_metrics = {(r["method"], r["group"]): r for r in TABLE_2_8}
TABLE_3_5 = [{**_metrics.get((r["method"], r["group"]), {}), **r} for r in TABLE_2_9
             if r["method"] in ("CAM - Average", "WILDCAT", "Deep MIL", "U-Net")] + [
    ref("Ours (d = 0.1)", g["group"], accuracy=a, ap=p, dice_pixels=d, mdice_positive=m) for g, a, p, d, m in zip(
        PATCH_SIZES, ((98.07, 0.93), (98.28, 0.75), (98.67, 0.99)), ((99.76, 0.09), (99.81, 0.19), (99.81, 0.32)),
        ((65.06, 0.73), (64.56, 2.15), (68.14, 2.00)), ((61.97, 0.90), (61.69, 0.99), (64.66, 1.60)))]
register_entry(Entry(
    id="3.5", title="CAMELYON16: accuracy, AP, Dice and mDice with the multi-class Deep MIL (d = 0.1)",
    section="section 3.5",
    data=DATA["camelyon16"], availability="stand-in",
    time_cpu="stand-in ~7 CPU-min (heads and U-Net shared with 2.8 / 2.9; ~3 after them), quick ~2 min",
    time_gpu="real data: ~1-2 GPU-days (estimate)", experiment=WSL_TABLE,
    settings={"dataset_label": "CAMELYON16", "preset": "camelyon16", "rows": [*CH3_HEADS, ours(0.1), UNET],
              "measures": ["accuracy", "ap", "dice_pixels", "mdice_positive"], "folds": FOLDS,
              "stand_in_folds": STAND_IN_FOLDS, **{**CAMELYON, "notes": [OURS_NOTE, *CAMELYON["notes"]]}},
    quick=QUICK, reference=tuple(TABLE_3_5), findings=(
        FoldDifference("The multi-class Deep MIL's Dice over pixels lies above Deep MIL's (reference at 512: 65.06 "
                       "against 49.26)", (("Ours (d = 0.1)", "Deep MIL"),), "dice_pixels", above=0),)))
