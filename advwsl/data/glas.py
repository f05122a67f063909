"""GlaS (section 2.1.1.3, Table 2.3): 165 colon histology images (up to 775 x 522) from 16 sections, benign
vs malignant, with gland segmentation masks.

On-disk layout (the Warwick QU dataset as released)::

    <root>/Warwick QU Dataset (Released 2016_07_08)/
        train_1.bmp, train_1_anno.bmp, ..., testA_1.bmp, testA_1_anno.bmp, ..., testB_20_anno.bmp
        Grade.csv      header "name, patient ID,grade (GlaS),grade (Sirinukunwattana et al. 2015)"

``Grade.csv`` is read tolerantly: column names and values are stripped of the stray spaces they carry, and
columns are found by their normalized names. Annotation images label each gland instance with its own value;
they are binarised (gland > 0).

Splits (section 2.1.1.3): test = test part A and part B mixed (80 images, fixed); the 85 training images are
split 80/20 into train/valid by 5 seeded folds grouped by patient.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatasetError, InputError
from .base import TableDataset, require_dir, split_rows
from .folds import assign_folds
from .registry import DatasetSpec, register_dataset
from .transforms import ColorJitter, Compose, RandomCrop, RandomFlip, RandomRotate90

CLASSES = ("benign", "malignant")
NAME_RE = re.compile(r"^(train|testA|testB)_(\d+)$")


def _dataset_dir(root: Path) -> Path:
    require_dir(root, "the GlaS dataset (Warwick QU Dataset (Released 2016_07_08)/ with Grade.csv)")
    if (root / "Grade.csv").is_file():
        return root
    found = sorted(p.parent for p in root.glob("*/Grade.csv"))
    if len(found) == 1:
        return found[0]
    raise DatasetError(f"expected GlaS at {root}/Warwick QU Dataset (Released 2016_07_08)/ with Grade.csv, "
                       f"train_N.bmp, testA_N.bmp, testB_N.bmp and their _anno.bmp masks; "
                       f"found {len(found)} folders with a Grade.csv")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9()]", "", name.lower())


def read_grades(path: str | Path) -> pd.DataFrame:
    """``Grade.csv`` as columns ``name``, ``patient``, ``grade`` (benign/malignant), spacing tolerated."""
    raw = pd.read_csv(path, dtype=str, skipinitialspace=True)
    cols = {_norm(c): c for c in raw.columns}
    need = {"name": "name", "patientid": "patient", "grade(glas)": "grade"}
    missing = [k for k in need if k not in cols]
    if missing:
        raise DatasetError(f"{path}: expected the columns 'name', 'patient ID', 'grade (GlaS)', found "
                           f"{list(raw.columns)}")
    out = pd.DataFrame({v: raw[cols[k]].astype(str).str.strip() for k, v in need.items()})
    out["grade"] = out["grade"].str.lower()
    bad = ~out["grade"].isin(CLASSES)
    if bad.any():
        raise DatasetError(f"{path}: unexpected grade {out.loc[bad, 'grade'].iloc[0]!r}; expected benign/malignant")
    return out


def scan(root: str | Path) -> pd.DataFrame:
    """Every GlaS image: columns ``path``, ``mask_path`` (relative to ``root``), ``label`` (0 benign,
    1 malignant), ``patient``, ``part`` (train/testA/testB), ``name``."""
    root = Path(root)
    base = _dataset_dir(root)
    grades = read_grades(base / "Grade.csv")
    rows = []
    for name, patient, grade in zip(grades["name"], grades["patient"], grades["grade"]):
        m = NAME_RE.match(name)
        if m is None:
            raise DatasetError(f"{base / 'Grade.csv'}: unexpected image name {name!r} (expected train_N, testA_N "
                               f"or testB_N)")
        img, anno = base / f"{name}.bmp", base / f"{name}_anno.bmp"
        for p in (img, anno):
            if not p.is_file():
                raise DatasetError(f"Grade.csv lists {name} but {p} does not exist")
        rows.append({"path": str(img.relative_to(root)), "mask_path": str(anno.relative_to(root)),
                     "label": CLASSES.index(grade), "patient": patient, "part": m[1], "name": name})
    return pd.DataFrame(rows)


def split_table(root: str | Path, *, fold: int = 0, n_folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Split table of one fold: test = test A + test B; train/valid = fold ``fold`` of the training part,
    grouped by patient."""
    if not 0 <= fold < n_folds:
        raise InputError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    table = scan(root)
    train = (table["part"] == "train").to_numpy()
    table["split"] = np.where(train, "train", "test")
    folds = assign_folds(table.loc[train, "label"].to_numpy(), n_folds=n_folds, seed=seed,
                         groups=table.loc[train, "patient"].to_numpy())
    table.loc[train, "split"] = np.where(folds == fold, "valid", "train")
    return table


class GlaS(TableDataset):
    """GlaS images of one split and fold with binary gland masks.

    ``__getitem__`` returns ``{"image": (3, H, W) in [0, 1], "label": 0 benign / 1 malignant,
    "mask": float32 (H, W) in {0, 1} (glands), "index", "path"}``; sizes vary between images. The glands
    of an image belong to its class: with the background, three pixel classes (section 4.4.1)."""

    #: Both classes' images carry glands: benign glands and malignant glands (eq. 4.14).
    region_classes = (0, 1)
    #: Whole images differ in size (Table 2.3): they are evaluated one at a time.
    variable_size = True

    def __init__(self, root: str | Path, split: str = "train", *, fold: int = 0, seed: int = 0,
                 transform: Callable[[dict], dict] | None = None) -> None:
        super().__init__(split_rows(split_table, root, split, fold=fold, seed=seed), root, classes=CLASSES,
                         transform=transform, mask_mode="binary", name=f"glas-fold{fold}-{split}")


register_dataset(DatasetSpec(
    "glas", GlaS, "GlaS / Warwick QU, benign vs malignant with gland masks (section 2.1.1.3)", needs_root=True,
    classes=CLASSES, has_masks=True, split_table=split_table,
    layout="ROOT/Warwick QU Dataset (Released 2016_07_08)/{train,testA,testB}_<n>[_anno].bmp + Grade.csv",
    train_transform=lambda crop=416: Compose([RandomCrop(crop), RandomRotate90(), RandomFlip(),
                                             ColorJitter(0.5, 0.5, 0.5, 0.05)])))
