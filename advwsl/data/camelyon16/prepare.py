"""Preparing the CAMELYON16 patch dataset end to end (section 2.1.2.3): scan slides, calibrate metastatic
patches, split slides into folds, draw normal patches, write the per-fold CSVs and optionally PNGs.

Output folder layout::

    config.json                 the protocol settings (a resumed run must use the same)
    slides.csv                  slide, path, xml, label, origin, excluded, fold
    scan/<slide>.csv            candidate patches of each slide (skipped when present: resumable)
    metastatic.csv              calibrated metastatic patches (fixed for all folds)
    normal/<slide>.csv          normal patches drawn from each normal slide for every set
    folds/fold_<k>/{train,valid,test}.csv   slide, x, y, size, label, p_m, p_t, category, path, mask_path
    patches/<slide>/<slide>_<x>_<y>.png (+ _mask.png)    with write_png
    summary.json                Table 2.4 counts and the size of every set
    INCOMPLETE                  while it runs, or after it stopped: rerun the same command to continue

Everything is checked before anything is written (see :func:`prepare_camelyon16`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import ConfigError, DatasetError, InputError
from ...runs import INCOMPLETE, check_out, incomplete_record, resumable_run
from ..slides import open_slide
from .annotations import read_asap_xml
from .sampling import (ProtocolConfig, _atomic_csv, calibrate, check_config, discover_slides, mask_relpath,
                       normal_quotas, patch_relpath, run_parallel, sample_normal_slide, scan_slide, slide_folds,
                       stable_key, summary_counts, write_patch_pngs)

SCAN_COLUMNS = ["slide", "x", "y", "p_m", "p_t"]


def _scan_task(row: dict, cfg: ProtocolConfig, out_dir: str, backend: str) -> str:
    path = Path(out_dir) / "scan" / f"{row['slide']}.csv"
    if not path.exists():
        _atomic_csv(scan_slide(row, cfg, backend), path)
    return row["slide"]


def _normal_task(row: dict, quotas: dict, cfg: ProtocolConfig, out_dir: str, backend: str) -> str:
    path = Path(out_dir) / "normal" / f"{row['slide']}.csv"
    done = path.with_suffix(".json")
    if path.exists() and done.exists() and json.loads(done.read_text()) == quotas:
        return row["slide"]
    cand = pd.read_csv(Path(out_dir) / "scan" / f"{row['slide']}.csv")
    _atomic_csv(sample_normal_slide(row, quotas, cand, cfg, backend), path)
    done.write_text(json.dumps(quotas))
    return row["slide"]


def _png_task(row: dict, patches: pd.DataFrame, cfg: ProtocolConfig, out_dir: str, backend: str) -> str:
    write_patch_pngs(row, patches, Path(out_dir), cfg, backend)
    return row["slide"]


#: The command whose run directories this writes (named in their ``INCOMPLETE`` record).
COMMAND = "data camelyon16"
_HINT = "rerun the same command (same --out) to continue it: finished slides are skipped"


def prepare_camelyon16(slides_dir: str | Path, annotations_dir: str | Path, out_dir: str | Path, *,
                       config: ProtocolConfig | None = None, workers: int = 1, write_png: bool = False,
                       backend: str = "auto", labels_csv: str | Path | None = None,
                       progress: bool = True) -> dict:
    """Run the protocol and write its outputs under ``out_dir`` (see the module docstring).

    Deterministic for a given ``config.seed``; resumable (slides already scanned or sampled are skipped);
    parallel over slides with ``workers`` processes. Returns the summary (also written to summary.json).
    Everything is checked before anything is written: the options, ``out_dir`` (absent, empty, or an
    earlier output of this command with the same settings), every annotation (parsed) and slide (opened),
    and that the patch fits in a slide; a run that draws no patch at all is an error."""
    cfg = config or ProtocolConfig()
    cfg.validate()
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    if labels_csv is not None and not Path(labels_csv).is_file():
        raise DatasetError(f"labels file {labels_csv} not found; --labels takes a CSV of 'name,Tumor|Normal' rows")
    out = Path(out_dir)
    _check_out_folder(out, cfg)
    slides = discover_slides(slides_dir, annotations_dir, labels_csv)
    slides["fold"] = slide_folds(slides, cfg)
    _check_slides(slides, cfg, backend)
    out.mkdir(parents=True, exist_ok=True)
    with resumable_run(out, COMMAND, hint=_HINT):
        for sub in ("scan", "normal", "folds"):
            (out / sub).mkdir(exist_ok=True)
        check_config(out, cfg)
        return _prepare(slides, out, cfg, workers=workers, write_png=write_png, backend=backend,
                        progress=progress)


def _check_out_folder(out: Path, cfg: ProtocolConfig) -> None:
    """``out`` must be absent or empty (in a writable folder), or an earlier output of this command, finished
    or interrupted, prepared with the same settings ``cfg``; anything else is refused untouched."""
    if not out.is_dir() or not any(out.iterdir()):
        check_out(out)  # absent (its parent must be a writable folder), or a file: refused
        return
    if (out / INCOMPLETE).exists():
        record = incomplete_record(out)
        if record is None or record["command"] != COMMAND:
            check_out(out, command=COMMAND)  # refuses, saying why (a foreign marker, another command's run)
            raise ConfigError(f"{out} holds the run of another command; give a new --out folder")
    elif not _is_output(out):
        raise InputError(f"output folder {out} exists and holds other files; give a new --out folder (or the one "
                         "of an earlier `advwsl data camelyon16` run to resume it)")
    check_config(out, cfg, write=False)


def _is_output(out: Path) -> bool:
    """Whether ``out`` holds a finished output of this command (its ``config.json`` holds protocol settings)."""
    try:
        saved = json.loads((out / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and set(saved) == set(asdict(ProtocolConfig()))


def _check_slides(slides: pd.DataFrame, cfg: ProtocolConfig, backend: str) -> None:
    """Parse every annotation and open every usable slide before anything is written: a damaged file is
    named, and a patch larger than every slide (which would draw no patch) is refused."""
    usable = slides[slides["excluded"] == ""]
    for xml in usable["xml"]:
        if xml:
            read_asap_xml(xml)
    sizes = []
    for path in usable["path"]:
        with open_slide(path, backend=backend) as slide:
            sizes.append(tuple(slide.dimensions))
    if sizes and not any(min(w, h) >= cfg.patch_size for w, h in sizes):
        w, h = max(sizes, key=lambda wh: min(wh))
        raise InputError(f"patch size {cfg.patch_size} is larger than every slide (the largest is {w} x {h} "
                         f"pixels at level 0): no patch fits; choose a --patch-size of at most {min(w, h)} "
                         "(512 in the reference)")


def _prepare(slides: pd.DataFrame, out: Path, cfg: ProtocolConfig, *, workers: int, write_png: bool, backend: str,
             progress: bool) -> dict:
    """The protocol's steps once the inputs are checked and ``out`` exists (see :func:`prepare_camelyon16`)."""
    _atomic_csv(slides, out / "slides.csv")
    usable = slides[slides["excluded"] == ""]
    records = {r["slide"]: r for r in usable.to_dict("records")}

    tasks = [(r, cfg, str(out), backend) for r in records.values()]
    for _ in run_parallel(_scan_task, tasks, workers, progress, "scanning slides"):
        pass
    scans = {s: pd.read_csv(out / "scan" / f"{s}.csv") for s in records}

    # calibration, separately on the original train and test slides (fixed for all folds)
    metastatic_parts, counts = [], {}
    for origin in ("train", "test"):
        names = [s for s, r in records.items() if r["label"] == 1 and r["origin"] == origin]
        cand = pd.concat([scans[s] for s in names], ignore_index=True) if names else \
            pd.DataFrame(columns=SCAN_COLUMNS)
        rng = np.random.default_rng([cfg.seed, stable_key(f"calibration/{origin}")])
        kept = calibrate(cand, cfg, rng) if len(cand) else cand.assign(category=pd.Series(dtype=int))
        counts[origin] = summary_counts(cand, kept, cfg)
        metastatic_parts.append(kept.assign(origin=origin))
    metastatic = pd.concat(metastatic_parts, ignore_index=True)
    _atomic_csv(metastatic, out / "metastatic.csv")

    folds = slides["fold"].to_numpy()
    quotas = normal_quotas(slides, metastatic, folds, cfg)
    tasks = [(records[s], q, cfg, str(out), backend) for s, q in sorted(quotas.items()) if s in records]
    for _ in run_parallel(_normal_task, tasks, workers, progress, "sampling normal patches"):
        pass
    normal = pd.concat([pd.read_csv(out / "normal" / f"{s}.csv") for s, _ in sorted(quotas.items())],
                       ignore_index=True) if quotas else pd.DataFrame(columns=["set", "slide", "x", "y"])

    sets = _write_fold_csvs(slides, metastatic, normal, cfg, out)
    if not sum(v["metastatic"] + v["normal"] for v in sets.values()):
        raise DatasetError(f"no patch was drawn from the {len(usable)} slide(s): {len(metastatic)} metastatic grid "
                           f"patches of {cfg.patch_size} pixels (annotated slides, metastatic fraction >= {cfg.p0}, "
                           f"tissue fraction >= {cfg.pt}), and as many normal ones; check the slides and their "
                           "annotations (a metastatic slide needs its XML), or lower --patch-size")
    if write_png:
        wanted = pd.concat([metastatic[["slide", "x", "y"]], normal[["slide", "x", "y"]]]).drop_duplicates()
        tasks = [(records[s], g, cfg, str(out), backend) for s, g in wanted.groupby("slide")]
        for _ in run_parallel(_png_task, tasks, workers, progress, "writing patches"):
            pass
    summary = {"config": json.loads((out / "config.json").read_text()), "table_2_4": counts, "sets": sets,
               "slides": int(len(usable)), "excluded": slides.loc[slides["excluded"] != "", "slide"].tolist(),
               "png": bool(write_png)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _write_fold_csvs(slides: pd.DataFrame, metastatic: pd.DataFrame, normal: pd.DataFrame, cfg: ProtocolConfig,
                     out: Path) -> dict:
    """folds/fold_<k>/{train,valid,test}.csv and the number of patches of each set."""
    fold_of = dict(zip(slides["slide"], slides["fold"]))
    sizes = {}
    for k in range(cfg.n_folds):
        d = out / "folds" / f"fold_{k}"
        d.mkdir(parents=True, exist_ok=True)
        for split in ("train", "valid", "test"):
            key = "test" if split == "test" else f"fold{k}/{split}"
            if split == "test":
                met = metastatic[metastatic["origin"] == "test"]
            else:
                f = metastatic["slide"].map(fold_of)
                met = metastatic[(metastatic["origin"] == "train") & ((f == k) == (split == "valid"))]
            nor = normal[normal["set"] == key] if len(normal) else normal
            table = pd.concat([met.assign(label=1), nor.assign(label=0)], ignore_index=True)
            table = table[["slide", "x", "y", "label", "p_m", "p_t", "category"]].copy()
            table["x"], table["y"] = table["x"].astype(int), table["y"].astype(int)
            table["size"] = cfg.patch_size
            table["path"] = [patch_relpath(s, x, y) for s, x, y in zip(table["slide"], table["x"], table["y"])]
            table["mask_path"] = [mask_relpath(s, x, y) if lab == 1 else ""
                                  for s, x, y, lab in zip(table["slide"], table["x"], table["y"], table["label"])]
            _atomic_csv(table, d / f"{split}.csv")
            sizes[f"fold_{k}/{split}"] = {"metastatic": int(len(met)), "normal": int(len(nor))}
    if not sizes:
        raise DatasetError("no fold was written")
    return sizes
