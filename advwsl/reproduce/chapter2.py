"""Chapter 2 (experimental comparison of WSL methods on histology): Tables 2.4 to 2.9 and Figures 2.8 / 2.9 as
entries of ``advwsl reproduce``.

* Table 2.4 — the CAMELYON16 patch protocol's counts before and after calibration (:func:`patch_counts`):
  on the slides of ``--data-root`` (CAMELYON16's ``training/`` and ``testing/`` folders with their ASAP XML
  annotations, found recursively), or on toy slides written into the run directory.
* Tables 2.5-2.9 and Figures 2.8 / 2.9 — the pooling heads trained with image labels only (section
  2.1.3.1), the U-Net bound (section 2.1.3.2) and Grad-CAM, through :func:`advwsl.reproduce.wsl.wsl_table`:
  BreakHis (4 magnifications), BACH, GlaS and CAMELYON16 (3 patch sizes; ``--data-root DIR`` holds one
  folder prepared by ``advwsl data camelyon16 --patch-size N --out DIR/N`` per size) with the reference's
  recipes and 5 folds; without ``--data-root`` on synthetic stand-ins with the same class structure:
  2 classes (BreakHis), 4 classes (BACH), two grades of lesions in every tile (GlaS: ``lesions_only``) and
  2 classes with lesions of 20-60 % of the tile (CAMELYON16's calibrated patches, p_0 = 20 %).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.camelyon16 import ProtocolConfig, prepare_camelyon16
from ..data.camelyon16.toy import make_toy_slide
from ..io import atomic_write_text
from .compare import Measure, side_by_side, side_by_side_markdown
from .fold_findings import FoldDifference
from ..config import Departure, PatchCountSettings
from .registry import Context, Entry, Experiment, Outcome, register_entry
from .wsl import WSL_TABLE, ref

__all__ = ["patch_counts", "HEADS"]

#: The pooling heads of chapter 2 (section 2.1.3.1: LSE q = 10; WILDCAT 10 % / 10 %, alpha 0.6).
HEADS = [{"method": "CAM - Average", "model": "cam"}, {"method": "Max", "model": "max"},
         {"method": "LSE", "model": "lse"}, {"method": "WILDCAT", "model": "wildcat"},
         {"method": "Deep MIL", "model": "deepmil"}]
GRADCAM = {"method": "GradCAM", "model": "cam", "view": "gradcam"}
UNET = {"method": "U-Net", "unet": True}
FOLDS = [0, 1, 2, 3, 4]
STAND_IN_FOLDS = [0, 1, 2]
#: ``--quick``: one fold, one epoch (two for the U-Net's sake is not needed: it is a smoke test), few tiles.
QUICK = {"folds": [0], "stand_in_folds": [0], "overrides": {"epochs": 1},
         "stand_in_overrides": {"dataset_kwargs": {"n_trainval": 160, "n_test": 64}}}
MAGNIFICATIONS = [{"group": f"{m}×", "real": {"dataset_kwargs": {"magnification": m}}} for m in (40, 100, 200, 400)]
ONE_MAGNIFICATION_NOTE = ("one synthetic set stands in for the four magnifications; its rows sit in the 40× "
                          "column of the reference")
PATCH_SIZES = [{"group": f"{s}", "data_root": str(s)} for s in (512, 768, 1024)]
#: Synthetic tile sides standing in for the patch sizes (nuclei keep their size: a larger tile shows more
#: context, as a larger patch does).
STAND_IN_PATCHES = [{"group": "512", "stand_in": {"dataset_kwargs": {"size": 64}}}]
CAMELYON_STAND_IN = {"stand_in_data": {"num_classes": 2, "roi_fraction": [0.2, 0.6]},
                     "evaluation": {"cam_class": "1"}}
CAMELYON_NOTES = ["Dice of the metastatic class's CAM (M_c > 0); 'Dice over pixels' over all test images, "
                  "'mDice lesion' per image over the metastatic ones (section 2.1.2.1)"]
CAMELYON_STAND_IN_NOTES = ["64 x 64 synthetic tiles stand in for the 512 x 512 patches (one size only, for CPU "
                           "time); lesions cover 20-60 % of a lesion tile, as CAMELYON16's calibrated patches "
                           "(p_0 = 20 %, mostly category 1)"]
GLAS_STAND_IN = {"stand_in_data": {"num_classes": 2, "lesions_only": True}}
GLAS_STAND_IN_NOTES = ["GlaS stand-in: two lesion grades (benign = glands, malignant = carcinoma), a lesion in "
                       "every tile, as every GlaS image has glands of its grade"]
DATA = {"breakhis": "BreakHis with --data-root (ROOT/BreaKHis_v1/...); synthetic stand-in otherwise",
        "bach": "BACH part A with --data-root (ROOT/ICIAR2018_BACH_Challenge/Photos); synthetic stand-in otherwise",
        "glas": "GlaS with --data-root (ROOT/Warwick QU Dataset (Released 2016_07_08)); synthetic stand-in "
                "otherwise",
        "camelyon16": "CAMELYON16 patches with --data-root DIR (DIR/512, DIR/768, DIR/1024 from `advwsl data "
                      "camelyon16 --patch-size N`); synthetic stand-in otherwise"}


def _settings(label: str, preset: str, rows: list[dict[str, Any]], measures: list[str], **extra: Any
              ) -> dict[str, Any]:
    return {"dataset_label": label, "preset": preset, "rows": rows, "measures": measures, "folds": FOLDS,
            "stand_in_folds": STAND_IN_FOLDS, **extra}


def _register(entry_id: str, title: str, section: str, data: str, time_cpu: str, time_gpu: str,
              settings: dict[str, Any], reference: list[dict[str, Any]], quick: dict[str, Any] | None = None,
              note: str = "", findings: tuple[FoldDifference, ...] = ()) -> None:
    register_entry(Entry(id=entry_id, title=title, section=section, data=data, availability="stand-in",
                         time_cpu=time_cpu, time_gpu=time_gpu, experiment=WSL_TABLE, settings=settings,
                         quick=quick or QUICK, reference=tuple(reference), note=note, findings=findings))


# ------------------------------------------------------------------------------------------ Table 2.4
def patch_counts(ctx: Context) -> Outcome:
    """Table 2.4: metastatic patches before calibration (all, category 1 with p_0 <= p_m <= p_1, category 2
    with p_m > p_1) and after, per patch size, summed over the original train and test slides. Settings:
    ``patch_sizes`` (real) / ``stand_in_patch_sizes``, ``toy_slides`` (tumour, normal) of the stand-in and
    its ``stand_in_folds`` (the slide folds, which the counts do not depend on)."""
    s = ctx.settings
    if ctx.stand_in:
        slides = ctx.run_dir / "toy-slides"
        slides.mkdir()
        n_tumour, n_normal = s.toy_slides
        for i in range(n_tumour + n_normal):
            origin = "test" if i % 3 == 2 else "train"
            tumour = i < n_tumour
            name = f"test_{i:03d}" if origin == "test" else f"{'tumor' if tumour else 'normal'}_{i:03d}"
            make_toy_slide(slides / f"{name}.tif", slides / f"{name}.xml" if tumour else None,
                           size=tuple(s.toy_size), seed=i, tumour=tumour, levels=4)
        root, sizes = slides, list(s.stand_in_patch_sizes)
    else:
        root, sizes = ctx.data_root, list(s.patch_sizes)
    ours = []
    for size in sizes:
        ctx.log(f"{ctx.entry.id}: sampling {size} x {size} patches")
        folds = s.stand_in_folds if ctx.stand_in else 5  # the counts do not depend on the folds
        summary = prepare_camelyon16(root, root, ctx.run_dir / f"patches-{size}",
                                     config=ProtocolConfig(patch_size=int(size), n_folds=folds, seed=0),
                                     workers=s.workers, progress=ctx.progress)
        parts = summary["table_2_4"].values()
        row = {"patch size": str(s.patch_sizes[sizes.index(size)]) if ctx.stand_in else str(size)}
        for key in ("before_total", "before_category1", "before_category2", "after_total", "after_category2"):
            row[key] = int(sum(p[key] for p in parts))
        row["kept"] = row["after_category2"] / row["before_category1"] if row["before_category1"] else np.nan
        ours.append(row)
    count = "plain" if ctx.stand_in else "ratio"
    measures = [Measure("before_total", "Before: total", count, digits=0),
                Measure("before_category1", "Before: p_0 <= p_m <= p_1", count, digits=0),
                Measure("before_category2", "Before: p_m > p_1", count, digits=0),
                Measure("after_total", "After: total", count, digits=0),
                Measure("after_category2", "After: p_m > p_1", count, digits=0),
                Measure("kept", "Category 2 kept / category 1", "plain", 4)]
    run = {r["patch size"] for r in ours}
    # toy-slide counts are not CAMELYON16's: a ratio to the reference's would mean nothing
    reference = [] if ctx.stand_in else [dict(r) for r in ctx.entry.reference if r["patch size"] in run]
    frame = side_by_side(ours, reference, ["patch size"], measures)
    atomic_write_text(ctx.run_dir / "table.csv", frame.to_csv(index=False))
    lines = [f"# {ctx.entry.id}: {ctx.entry.title}", ""]
    departures = []
    if ctx.stand_in:
        departures.append(Departure(
            f"{sum(s.toy_slides)} toy slides of {s.toy_size[0]} x {s.toy_size[1]} pixels "
            f"(advwsl.data.camelyon16.toy) instead of CAMELYON16, with patches of {', '.join(map(str, sizes))} "
            f"pixels standing in for {', '.join(map(str, s.patch_sizes))}",
            "CAMELYON16 cannot be downloaded here (give --data-root DIR for it); the counts show the protocol "
            "at work, not CAMELYON16's.", settings=("toy_slides", "toy_size")))
    lines += ["Protocol of section 2.1.2.3: p_0 = 20 %, p_1 = 50 %, p_t = 10 %, p_n = 1 %, bins of 0.05, "
              "non-overlapping patches. " + ("Counts on the toy slides, in the rows of the patch sizes they stand "
                                             "in for; the reference's CAMELYON16 counts are not beside them (not "
                                             "comparable)." if ctx.stand_in else "Ours / reference (ratio)."), "",
              side_by_side_markdown(frame, ["patch size"], measures),
              "Note: the reference's counts after calibration keep 9,523 category-2 patches for 14,912 category-1 "
              "ones at 512 (64 %), which is not the p_n = 1 % its text states; ours follow the text."]
    return Outcome("\n".join(lines), ["table.csv"], {"rows": ours, "stand_in": ctx.stand_in}, departures)


PATCH_COUNTS = Experiment("patch counts", patch_counts, PatchCountSettings)


register_entry(Entry(
    id="2.4", title="CAMELYON16 metastatic patches before and after calibration", section="section 2.1.2.3",
    data="CAMELYON16 slides and XML annotations with --data-root (training/, testing/, found recursively); toy "
    "slides otherwise", availability="stand-in",
    time_cpu="stand-in ~10 s, quick ~10 s; real data: hours (every slide scanned)",
    time_gpu="CPU-bound (slide reading)", experiment=PATCH_COUNTS,
    settings={"patch_sizes": [512, 768, 1024], "stand_in_patch_sizes": [64, 96, 128], "toy_slides": [4, 5],
              "toy_size": [2048, 1536], "workers": 1, "stand_in_folds": 2},
    quick={"patch_sizes": [512], "stand_in_patch_sizes": [64], "toy_slides": [2, 2], "toy_size": [1024, 768]},
    reference=tuple({"patch size": size, "before_total": a, "before_category1": b, "before_category2": c,
                     "after_total": d, "after_category2": e} for size, a, b, c, d, e in (
        ("512", 137769, 14912, 122857, 24435, 9523), ("768", 64127, 9512, 54615, 15377, 5865),
        ("1024", 37598, 6988, 30610, 11470, 4482)))))

# ---------------------------------------------------------------------------------- Tables 2.5-2.6
def _per_group(table: list[tuple[str, list[tuple[float, float, float, float]]]], groups: list[dict[str, Any]],
               first: str, second: str) -> list[dict[str, Any]]:
    """Reference rows of a table with, per method, one cell per group: ``(first, its std, second, its std)``."""
    return [ref(m, g["group"], **{first: (a, sa), second: (b, sb)}) for m, cells in table
            for g, (a, sa, b, sb) in zip(groups, cells)]


_T25 = [("CAM - Average", [(92.19, 3.54, 97.80, 2.30), (89.64, 2.93, 98.10, 0.91), (91.03, 1.33, 98.36, 0.54),
                           (85.09, 2.09, 96.04, 0.99)]),
        ("Max", [(90.09, 2.89, 97.64, 2.01), (88.11, 3.08, 97.75, 1.22), (90.41, 2.66, 98.21, 0.70),
                 (84.00, 1.95, 95.44, 1.16)]),
        ("LSE", [(89.52, 3.68, 97.04, 2.96), (89.57, 3.24, 97.92, 1.00), (90.15, 1.96, 98.08, 0.79),
                 (84.86, 1.98, 95.16, 1.74)]),
        ("WILDCAT", [(92.40, 2.82, 97.90, 2.41), (90.22, 2.48, 97.99, 1.55), (90.75, 2.00, 98.49, 0.59),
                     (85.85, 3.05, 96.41, 1.40)]),
        ("Deep MIL", [(91.80, 2.70, 98.38, 1.64), (89.54, 3.14, 97.69, 1.16), (91.61, 1.34, 98.71, 0.55),
                      (85.98, 2.28, 96.29, 0.85)])]
TABLE_2_5 = _per_group(_T25, MAGNIFICATIONS, "accuracy", "ap")
_register("2.5", "Evaluation A on BreakHis: accuracy and AP of the pooling heads per magnification",
          "section 2.2.1", DATA["breakhis"], "stand-in ~4 CPU-min (5 heads x 3 folds x 6 epochs), quick ~1 min",
          "real data: ~4 GPU-hours (5 heads x 4 magnifications x 5 folds x 80 epochs; estimate)",
          _settings("BreakHis", "breakhis", HEADS, ["accuracy", "ap"], groups=MAGNIFICATIONS,
                    stand_in_groups=[{"group": "40×"}], stand_in_notes=[ONE_MAGNIFICATION_NOTE]), TABLE_2_5)

BACH_HEADS = [*HEADS[:4], {"method": "Deep MIL (adapted)", "model": "deepmil"}]
TABLE_2_6 = [ref(m, accuracy=a, map=p) for m, a, p in (
    ("CAM - Average", (84.10, 2.51), (93.23, 1.27)), ("Max", (76.10, 3.60), (87.34, 4.44)),
    ("LSE", (78.90, 4.29), (88.73, 2.77)), ("WILDCAT", (84.80, 1.25), (93.04, 1.00)),
    ("Deep MIL (adapted)", (83.30, 3.90), (92.68, 2.71)))]
BACH_STAND_IN = {"stand_in_data": {"num_classes": 4}}
_register("2.6", "Evaluation A on BACH: accuracy and mAP of the pooling heads", "section 2.2.1", DATA["bach"],
          "stand-in ~4 CPU-min (5 heads x 3 folds x 6 epochs), quick ~1 min",
          "real data: ~1 GPU-hour (5 heads x 5 folds x 20 epochs; estimate)",
          _settings("BACH (part A)", "bach", BACH_HEADS, ["accuracy", "map"], **BACH_STAND_IN,
                    stand_in_notes=["4 synthetic classes (normal, gland, duct, carcinoma lesions) stand in for "
                                    "normal, benign, in situ and invasive"]), TABLE_2_6)

# ------------------------------------------------------------------------------------------ Table 2.7
GLAS_HEADS = [HEADS[0], GRADCAM, *HEADS[1:4], {"method": "Deep MIL (adapted)", "model": "deepmil-adapted"}, UNET]
TABLE_2_7 = [ref(m, dice=d, accuracy=a) for m, d, a in (
    ("CAM - Average", (68.43, 0.73), (99.75, 0.56)), ("GradCAM", (68.48, 0.72), (99.75, 0.56)),
    ("Max", (67.51, 2.48), (99.75, 0.56)), ("LSE", (65.61, 3.73), (99.50, 0.68)), ("WILDCAT", (68.62, 0.61), (100, 0)),
    ("Deep MIL (adapted)", (72.13, 1.78), (99.25, 1.12)))] + [ref("U-Net", dice=(90.54, 0.88))]
_GLAS_HEADS = ("CAM - Average", "Max", "LSE", "WILDCAT", "Deep MIL (adapted)")
#: Section 2.2.2's findings on GlaS (Table 2.7), as the reference's numbers state them.
TABLE_2_7_FINDINGS = (
    FoldDifference("The fully supervised U-Net's Dice lies above every weakly supervised head's (reference: 90.54 "
                   "against 65.61-72.13)", tuple(("U-Net", h) for h in _GLAS_HEADS), "dice", above=0),
    FoldDifference("Grad-CAM localizes as the CAM head does, within a point (reference: 68.48 against 68.43)",
                   (("GradCAM", "CAM - Average"),), "dice", within=1),
    FoldDifference("Deep MIL localizes best among the heads (reference: 72.13 against 65.61-68.62)",
                   tuple(("Deep MIL (adapted)", h) for h in _GLAS_HEADS[:4]), "dice", above=0))
_register("2.7", "Evaluation A and B on GlaS: Dice and accuracy of the pooling heads, Grad-CAM and U-Net",
          "section 2.2.2", DATA["glas"], "stand-in ~6 CPU-min (6 models x 3 folds x 6 epochs), quick ~2 min",
          "real data: ~2 GPU-hours (160 epochs per head, 960 for the U-Net, 5 folds; estimate)",
          _settings("GlaS", "glas", GLAS_HEADS, ["dice", "accuracy", "dice_combined"], unet_preset="glas-unet",
                    **GLAS_STAND_IN, stand_in_notes=GLAS_STAND_IN_NOTES,
                    notes=["Dice per image of the true class's CAM (M_c > 0) against the glands (section 2.1.2.1); "
                           "'Dice eq. 4.14' (arg max over [0, M], both gland grades together) is reported beside "
                           "it for chapter 4; the U-Net's Dice is that of its predicted glands"]), TABLE_2_7,
          findings=TABLE_2_7_FINDINGS)

# ---------------------------------------------------------------------------------- Tables 2.8-2.9
_T28 = [("CAM - Average", [(98.54, 0.36, 99.80, 0.04), (98.37, 0.45, 99.89, 0.03), (99.20, 0.28, 99.92, 0.02)]),
        ("Max", [(98.51, 0.22, 99.80, 0.04), (98.62, 0.27, 99.90, 0.04), (87.07, 11.59, 92.45, 12.29)]),
        ("LSE", [(98.62, 0.22, 99.80, 0.04), (98.77, 0.22, 99.92, 0.02), (93.41, 0.67, 98.44, 0.27)]),
        ("WILDCAT", [(98.37, 0.65, 99.84, 0.05), (98.62, 0.36, 99.92, 0.03), (99.16, 0.17, 99.95, 0.01)]),
        ("Deep MIL", [(98.15, 0.59, 99.82, 0.04), (98.34, 1.16, 99.82, 0.23), (99.17, 0.11, 99.95, 0.01)])]
TABLE_2_8 = _per_group(_T28, PATCH_SIZES, "accuracy", "ap")
_T29 = [("CAM - Average", [(65.06, 1.00, 62.47, 1.17), (64.16, 0.78, 61.45, 0.67), (66.70, 2.77, 63.98, 2.93)]),
        ("GradCAM", [(65.18, 1.02, 62.51, 1.19), (64.14, 0.86, 61.35, 0.75), (66.75, 2.76, 63.98, 2.95)]),
        ("Max", [(67.08, 1.33, 62.31, 1.10), (68.50, 1.43, 63.51, 1.02), (50.23, 12.45, 55.71, 5.73)]),
        ("LSE", [(67.04, 1.30, 62.78, 0.87), (64.96, 3.96, 61.71, 1.81), (62.97, 7.34, 60.19, 8.15)]),
        ("WILDCAT", [(66.06, 0.84, 62.87, 0.86), (67.24, 1.29, 63.74, 1.33), (66.05, 2.96, 65.52, 1.28)]),
        ("Deep MIL", [(49.26, 2.81, 69.76, 0.73), (47.93, 2.66, 68.49, 2.16), (46.61, 2.81, 65.97, 1.67)]),
        ("U-Net", [(77.68, 1.47, 70.90, 2.37), (79.90, 1.30, 73.03, 2.05), (80.72, 0.83, 72.79, 1.47)])]
TABLE_2_9 = _per_group(_T29, PATCH_SIZES, "dice_pixels", "mdice_positive")
CAMELYON = dict(groups=PATCH_SIZES, stand_in_groups=STAND_IN_PATCHES, unet_preset="camelyon16-unet",
                **CAMELYON_STAND_IN, notes=CAMELYON_NOTES, stand_in_notes=CAMELYON_STAND_IN_NOTES)
_register("2.8", "Evaluation A on CAMELYON16: accuracy and AP of the pooling heads per patch size",
          "section 2.2.1", DATA["camelyon16"], "stand-in ~4 CPU-min (5 heads x 3 folds; shared with 2.9), quick ~1 min",
          "real data: ~1-2 GPU-days (5 heads x 3 sizes x 5 folds x 20 epochs; estimate)",
          _settings("CAMELYON16", "camelyon16", HEADS, ["accuracy", "ap"], **CAMELYON), TABLE_2_8,
          note="trains the models of Table 2.9 (cached)")
_register("2.9", "Evaluation B on CAMELYON16: Dice over pixels and over metastatic images per patch size",
          "section 2.2.2", DATA["camelyon16"],
          "stand-in ~6 CPU-min (5 heads + U-Net x 3 folds; ~3 after 2.8), quick ~2 min",
          "real data: ~2 GPU-days with the U-Net (90 epochs; estimate)",
          _settings("CAMELYON16", "camelyon16", [HEADS[0], GRADCAM, *HEADS[1:], UNET],
                    ["dice_pixels", "mdice_positive", "dice"], **CAMELYON), TABLE_2_9,
          note="shares its models with Table 2.8 (cached)")

# ---------------------------------------------------------------------------------- Figures 2.8-2.9
def _fractions(values: list[float], panel: str | None = None, real: dict[str, Any] | None = None
               ) -> list[dict[str, Any]]:
    return [{"group": f"{panel + ' ' if panel else ''}{round(100 * f)}%", "x": round(100 * f), "panel": panel,
             "train": {"train_fraction": f}, "real": real or {}} for f in values]


BACH_FRACTIONS = [0.1, 0.25, 0.5, 0.75, 1.0]
_register("fig-2.8", "Influence of the training set size on BACH (accuracy of each head)", "section 2.2.1",
          DATA["bach"], "stand-in ~6 CPU-min (5 heads x 5 fractions x 2 folds; 100 % shared with 2.6), quick ~2 min",
          "real data: ~1 GPU-hour (estimate)",
          _settings("BACH (part A)", "bach", BACH_HEADS, ["accuracy", "map"], groups=_fractions(BACH_FRACTIONS),
                    stand_in_folds=[0, 1], **BACH_STAND_IN,
                    figure={"measures": ["accuracy"], "xlabel": "share of the training set (%)"},
                    notes=["class-stratified, seeded shares of each fold's training split (section 2.1.3.1; BACH: "
                           "4 / 10 / 20 / 30 / 40 images per class); validation and test sets unchanged",
                           "the reference gives this figure as a plot only: every method's accuracy rises with the "
                           "training set"]), [])
BREAKHIS_FRACTIONS = [0.04, 0.1, 0.25, 0.5, 0.75, 1.0]
_register("fig-2.9", "Influence of the training set size on BreakHis per magnification", "section 2.2.1",
          DATA["breakhis"], "stand-in ~4 CPU-min (5 heads x 6 fractions x 1 fold), quick ~2 min",
          "real data: ~10 GPU-hours (estimate)",
          _settings("BreakHis", "breakhis", HEADS, ["accuracy", "ap"],
                    groups=[g for m in (40, 100, 200, 400) for g in _fractions(
                        BREAKHIS_FRACTIONS, f"{m}×", {"dataset_kwargs": {"magnification": m}})],
                    stand_in_groups=_fractions(BREAKHIS_FRACTIONS, "stand-in"), stand_in_folds=[0],
                    figure={"measures": ["accuracy"], "xlabel": "share of the training set (%)"},
                    stand_in_notes=[ONE_MAGNIFICATION_NOTE.split(";")[0]],
                    notes=["class-stratified, seeded shares of each fold's training split (section 2.1.3.1)",
                           "the reference gives this figure as plots only: ~90 % accuracy at 25 % of the data at "
                           "40× and 200×, Deep MIL unstable on the smallest sets"]), [])
