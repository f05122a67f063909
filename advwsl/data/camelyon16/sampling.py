"""The CAMELYON16 weakly supervised patch protocol (section 2.1.2.3, Table 2.4).

Metastatic patches (from metastatic slides only): every non-overlapping level-0 grid patch with tissue
fraction p_t >= 10 % (Otsu) and metastatic fraction p_m >= p_0 = 20 %. Category 1: p_0 <= p_m <= p_1 = 50 %;
category 2: p_m > p_1. Calibration, separately on the original train and test slides: keep all n category-1
patches and draw n * p_n (p_n = 1 %) category-2 patches by repeatedly picking a non-empty bin of the
0.05-wide p_m histogram above p_1 uniformly, then a patch in it uniformly (without replacement). The
metastatic patches are fixed once for all folds.

Normal patches (from normal slides only): in each set (train / valid / test of a fold), as many as the set's
n_m metastatic patches, n_m / h from each of its h normal slides (the remainder spread one by one), drawn
uniformly without repetition from the tissue grid patches (p_t >= 10 %), so they change across folds.

Tissue: Otsu threshold of the HSV saturation of a low-resolution level (downsample 64 = level 6 of
CAMELYON16); p_t is measured there and double-checked on the level-0 pixels with the same threshold.

Splits are at slide level: the original test slides are the fixed test set; the original training slides are
split 80/20 into train/valid by 5 seeded folds stratified by slide label. Note: Table 2.4 keeps about 0.6
category-2 patches per category-1 patch, which the text's p_n = 1 % does not give; ``pn`` is a parameter.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import zlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import DatasetError, InputError
from ...io import atomic_path
from ..folds import assign_folds
from .annotations import grid_fractions, rasterize, read_asap_xml
from ..slides import SLIDE_EXTENSIONS, open_slide
from ..tissue import saturation, tissue_map, window_fractions


@dataclass(frozen=True)
class ProtocolConfig:
    """Parameters of the protocol (defaults: section 2.1.2.3)."""

    patch_size: int = 512
    p0: float = 0.20
    p1: float = 0.50
    pt: float = 0.10
    pn: float = 0.01
    bin_width: float = 0.05
    tissue_downsample: float = 64.0
    n_folds: int = 5
    seed: int = 0
    check_level0: bool = True

    def validate(self) -> None:
        if self.patch_size < 16:
            raise InputError(f"patch_size must be at least 16, got {self.patch_size}")
        if not 0 < self.p0 <= self.p1 < 1:
            raise InputError(f"need 0 < p0 <= p1 < 1, got p0={self.p0}, p1={self.p1}")
        for name in ("pt", "pn", "bin_width"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise InputError(f"{name} must be in [0, 1], got {v}")
        if self.bin_width <= 0:
            raise InputError(f"bin_width must be positive, got {self.bin_width}")


def discover_slides(slides_dir: str | Path, annotations_dir: str | Path,
                    labels_csv: str | Path | None = None) -> pd.DataFrame:
    """Slides under ``slides_dir`` (recursively, every whole-slide format the reader reads:
    ``SLIDE_EXTENSIONS``, any letter case) with their annotation: columns ``slide``,
    ``path``, ``xml``, ``label`` (1 metastatic), ``origin`` (``train`` or ``test`` from the name),
    ``excluded`` (reason, or empty). A slide is metastatic when ``<annotations_dir>/<slide>.xml`` exists; a
    slide said to be tumour (name ``tumor_*`` or ``labels_csv`` row ``name,Tumor``) without one is excluded,
    as the reference does with ``test_114``."""
    slides_dir, annotations_dir = Path(slides_dir), Path(annotations_dir)
    for d, what in ((slides_dir, "slides"), (annotations_dir, "ASAP XML annotations")):
        if not d.is_dir():
            raise DatasetError(f"expected a folder of {what} at {d}, but it does not exist")
    xmls = {p.stem.lower(): p for p in annotations_dir.rglob("*.xml")}
    tumour_names = set()
    if labels_csv is not None:
        ref = pd.read_csv(labels_csv, header=None, dtype=str)
        tumour_names = {n.strip().lower() for n, lab in zip(ref[0], ref[1]) if str(lab).strip().lower() == "tumor"}
    rows = []
    paths = (p for p in slides_dir.rglob("*") if p.suffix.lower() in SLIDE_EXTENSIONS and p.is_file())
    for path in sorted(paths):
        name = path.stem
        xml = xmls.get(name.lower())
        said_tumour = name.lower().startswith("tumor") or name.lower() in tumour_names
        excluded = "tumour slide without annotation" if xml is None and said_tumour else ""
        rows.append({"slide": name, "path": str(path), "xml": str(xml) if xml else "",
                     "label": int(xml is not None), "origin": "test" if name.lower().startswith("test") else "train",
                     "excluded": excluded})
    if not rows:
        raise DatasetError(f"no slide found under {slides_dir}; slides are files ending in "
                           f"{', '.join(SLIDE_EXTENSIONS)}")
    table = pd.DataFrame(rows)
    if table["slide"].duplicated().any():
        dup = table.loc[table["slide"].duplicated(), "slide"].tolist()[:3]
        raise DatasetError(f"duplicate slide names under {slides_dir}: {dup}; give each slide a unique name")
    return table


def stable_key(text: str) -> int:
    """A seed component from a string that does not change between runs (unlike ``hash``)."""
    return zlib.crc32(text.encode("utf-8"))


def scan_slide(row: dict, cfg: ProtocolConfig, backend: str = "auto") -> pd.DataFrame:
    """Candidate patches of one slide. Metastatic slide: every grid patch with p_m >= p0 and p_t >= pt
    (columns x, y, p_m, p_t). Normal slide: every grid patch with low-resolution p_t >= pt (level 0 is
    checked when a normal patch is drawn)."""
    s = cfg.patch_size
    with open_slide(row["path"], backend=backend) as slide:
        thr, tissue, ds = tissue_map(slide, cfg.tissue_downsample)
        w, h = slide.dimensions
        if row["label"] == 1:
            fr = grid_fractions(read_asap_xml(row["xml"]), (w, h), s)
            cand = [(x, y, f) for (x, y), f in fr.items() if f >= cfg.p0]
            xs = np.array([c[0] for c in cand], dtype=np.int64)
            ys = np.array([c[1] for c in cand], dtype=np.int64)
            pm = np.array([c[2] for c in cand], dtype=np.float64)
        else:
            gy, gx = np.mgrid[0:h // s, 0:w // s]
            xs, ys = gx.ravel().astype(np.int64) * s, gy.ravel().astype(np.int64) * s
            pm = np.zeros(len(xs))
        pt = window_fractions(tissue, ds, xs, ys, s) if len(xs) else np.zeros(0)
        keep = pt >= cfg.pt
        xs, ys, pm, pt = xs[keep], ys[keep], pm[keep], pt[keep]
        if row["label"] == 1 and cfg.check_level0 and len(xs):
            pt0 = np.array([(saturation(slide.read_region((int(x), int(y)), 0, (s, s))) > thr).mean()
                            for x, y in zip(xs, ys)])
            keep = pt0 >= cfg.pt
            xs, ys, pm, pt = xs[keep], ys[keep], pm[keep], pt0[keep]
    out = pd.DataFrame({"slide": row["slide"], "x": xs, "y": ys, "p_m": pm, "p_t": pt})
    out.attrs["threshold"] = thr
    return out.sort_values(["y", "x"]).reset_index(drop=True)


def calibrate(candidates: pd.DataFrame, cfg: ProtocolConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Keep all category-1 patches and n * p_n category-2 ones drawn bin-uniformly (section 2.1.2.3);
    adds the column ``category``."""
    cand = candidates.sort_values(["slide", "y", "x"]).reset_index(drop=True)
    cat1 = cand[(cand["p_m"] >= cfg.p0) & (cand["p_m"] <= cfg.p1)].assign(category=1)
    cat2 = cand[cand["p_m"] > cfg.p1]
    n_bins = int(round(1.0 / cfg.bin_width))
    bins = np.minimum((cat2["p_m"].to_numpy() / cfg.bin_width).astype(int), n_bins - 1)
    pools = {b: list(rng.permutation(np.flatnonzero(bins == b))) for b in np.unique(bins)}
    want = int(round(len(cat1) * cfg.pn))
    picked = []
    while len(picked) < want and pools:
        b = sorted(pools)[int(rng.integers(len(pools)))]
        picked.append(pools[b].pop())
        if not pools[b]:
            del pools[b]
    chosen = cat2.iloc[sorted(picked)].assign(category=2)
    return pd.concat([cat1, chosen]).sort_values(["slide", "y", "x"]).reset_index(drop=True)


def slide_folds(slides: pd.DataFrame, cfg: ProtocolConfig) -> np.ndarray:
    """Fold of each original-train slide (-1 for original test slides), stratified by slide label."""
    folds = np.full(len(slides), -1, np.int64)
    train = (slides["origin"] == "train").to_numpy()
    if train.sum() >= cfg.n_folds:
        folds[train] = assign_folds(slides.loc[train, "label"].to_numpy(), n_folds=cfg.n_folds, seed=cfg.seed)
    elif train.any():
        raise DatasetError(f"only {int(train.sum())} training slides; need at least {cfg.n_folds} for "
                           f"{cfg.n_folds} folds (use --folds)")
    return folds


def normal_quotas(slides: pd.DataFrame, metastatic: pd.DataFrame, folds: np.ndarray,
                  cfg: ProtocolConfig) -> dict[str, dict[str, int]]:
    """Number of normal patches each normal slide gives to each set, keyed by slide then set key
    (``fold<k>/<train|valid>`` or ``test``): n_m / h per slide, remainder one by one in a seeded order."""
    per_slide = metastatic.groupby("slide").size()
    sets: dict[str, list[int]] = {"test": list(np.flatnonzero(slides["origin"].to_numpy() == "test"))}
    for k in range(cfg.n_folds):
        for split in ("train", "valid"):
            sel = (folds == k) if split == "valid" else ((folds >= 0) & (folds != k))
            sets[f"fold{k}/{split}"] = list(np.flatnonzero(sel))
    quotas: dict[str, dict[str, int]] = {}
    for key, idx in sets.items():
        members = slides.iloc[idx]
        members = members[members["excluded"] == ""]
        n_m = int(sum(per_slide.get(s, 0) for s in members.loc[members["label"] == 1, "slide"]))
        normals = members.loc[members["label"] == 0, "slide"].tolist()
        if not normals or n_m == 0:
            continue
        rng = np.random.default_rng([cfg.seed, stable_key(key)])
        order = rng.permutation(len(normals))
        base, extra = divmod(n_m, len(normals))
        for rank, i in enumerate(order):
            quotas.setdefault(normals[i], {})[key] = base + int(rank < extra)
    return quotas


def sample_normal_slide(row: dict, quotas: dict[str, int], candidates: pd.DataFrame, cfg: ProtocolConfig,
                        backend: str = "auto") -> pd.DataFrame:
    """Draw each set's quota of normal patches from one normal slide: candidate grid patches in a seeded
    random order, accepted when the level-0 tissue fraction is >= pt; no repetition within a set."""
    s = cfg.patch_size
    rows = []
    checked: dict[tuple[int, int], float] = {}
    with open_slide(row["path"], backend=backend) as slide:
        thr = tissue_map(slide, cfg.tissue_downsample)[0] if cfg.check_level0 else 0.0
        for key in sorted(quotas):
            rng = np.random.default_rng([cfg.seed, stable_key(row["slide"]), stable_key(key)])
            order = rng.permutation(len(candidates))
            got = 0
            for i in order:
                if got >= quotas[key]:
                    break
                x, y = int(candidates["x"].iat[i]), int(candidates["y"].iat[i])
                if cfg.check_level0:
                    if (x, y) not in checked:
                        checked[(x, y)] = float((saturation(slide.read_region((x, y), 0, (s, s))) > thr).mean())
                    p_t = checked[(x, y)]
                    if p_t < cfg.pt:
                        continue
                else:
                    p_t = float(candidates["p_t"].iat[i])
                rows.append({"set": key, "slide": row["slide"], "x": x, "y": y, "p_m": 0.0, "p_t": p_t,
                             "category": 0})
                got += 1
    return pd.DataFrame(rows, columns=["set", "slide", "x", "y", "p_m", "p_t", "category"])


def write_patch_pngs(row: dict, patches: pd.DataFrame, out_dir: Path, cfg: ProtocolConfig,
                     backend: str = "auto") -> None:
    """Write ``patches/<slide>/<slide>_<x>_<y>.png`` (and ``_mask.png`` for metastatic patches) for the
    given patches of one slide; existing files are kept."""
    from PIL import Image

    s = cfg.patch_size
    ann = read_asap_xml(row["xml"]) if row["xml"] else None
    with open_slide(row["path"], backend=backend) as slide:
        for x, y in zip(patches["x"].astype(int), patches["y"].astype(int)):
            img_path = out_dir / patch_relpath(row["slide"], x, y)
            if not img_path.exists():
                img_path.parent.mkdir(parents=True, exist_ok=True)
                _atomic_png(Image.fromarray(slide.read_region((x, y), 0, (s, s))), img_path)
            if ann is not None:
                mask_path = out_dir / mask_relpath(row["slide"], x, y)
                if not mask_path.exists():
                    mask = rasterize(ann, x, y, s, s).astype(np.uint8) * 255
                    _atomic_png(Image.fromarray(mask), mask_path)


def patch_relpath(slide: str, x: int, y: int) -> str:
    return f"patches/{slide}/{slide}_{x}_{y}.png"


def mask_relpath(slide: str, x: int, y: int) -> str:
    return f"patches/{slide}/{slide}_{x}_{y}_mask.png"


def _atomic_png(image, path: Path) -> None:
    # a temporary name unique to this process: two runs writing the same folder never share a partial file
    with atomic_path(path, overwrite=True) as tmp:
        image.save(tmp, format="PNG")


def _atomic_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        table.to_csv(tmp, index=False)


def run_parallel(fn, tasks: list, workers: int, progress: bool, desc: str) -> Iterable:
    """Run ``fn(*task)`` for each task over ``workers`` processes (in-process when 1), with tqdm."""
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc=desc, disable=not progress, unit="slide")
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            yield fn(*t)
            bar.update()
    else:
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(min(workers, len(tasks))) as pool:
            for result in pool.imap_unordered(_star, [(fn, t) for t in tasks]):
                yield result
                bar.update()
    bar.close()


def _star(args):
    fn, task = args
    return fn(*task)


def check_config(out_dir: Path, cfg: ProtocolConfig, *, write: bool = True) -> None:
    """Refuse to resume with another configuration than the one in ``out_dir/config.json``; record it there
    when absent (with ``write``)."""
    path = out_dir / "config.json"
    current = asdict(cfg)
    if path.exists():
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path} is not readable JSON ({exc}); use another --out folder") from None
        if previous != current:
            diff = {k: (previous.get(k), v) for k, v in current.items() if previous.get(k) != v}
            raise DatasetError(f"{out_dir} holds patches prepared with other settings {diff} (old, new); "
                               f"use another --out folder to keep both")
    elif write:
        path.write_text(json.dumps(current, indent=2))


def summary_counts(candidates: pd.DataFrame, metastatic: pd.DataFrame, cfg: ProtocolConfig) -> dict:
    """Table 2.4 counts: before calibration (total, category 1, category 2) and after (total, category 2)."""
    c1 = int(((candidates["p_m"] >= cfg.p0) & (candidates["p_m"] <= cfg.p1)).sum())
    c2 = int((candidates["p_m"] > cfg.p1).sum())
    return {"patch_size": cfg.patch_size, "before_total": c1 + c2, "before_category1": c1,
            "before_category2": c2, "after_total": int(len(metastatic)),
            "after_category2": int((metastatic["category"] == 2).sum()) if len(metastatic) else 0,
            "calibration_ratio": round(len(metastatic[metastatic["category"] == 2]) / c1, 4) if c1 else math.nan}
