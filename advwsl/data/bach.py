"""BACH 2018 part A (section 2.1.1.2): 400 RGB TIFF microscopy images (2048 x 1536) of breast tissue in four
classes, normal, benign, in situ and invasive (100 each).

On-disk layout (as extracted from ``ICIAR2018_BACH_Challenge.zip``)::

    <root>/ICIAR2018_BACH_Challenge/Photos/{Normal,Benign,InSitu,Invasive}/{n,b,is,iv}001.tif
    <root>/ICIAR2018_BACH_Challenge/Photos/microscopy_ground_truth.csv     (lines "n001.tif,Normal")

The label comes from ``microscopy_ground_truth.csv`` (no header) and must agree with the class folder.

Splits (section 2.1.1.2): only the public training images are labelled, so the test set is half of each
class (seeded, fixed for all folds) and the other half is split 80/20 into train/valid by 5 seeded folds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatasetError, InputError
from .base import TableDataset, require_dir, split_rows
from .folds import assign_folds
from .registry import DatasetSpec, register_dataset
from .transforms import ColorJitter, Compose, RandomFlip, RandomRotatedCrop

CLASSES = ("normal", "benign", "in_situ", "invasive")
FOLDERS = ("Normal", "Benign", "InSitu", "Invasive")


def _photos_dir(root: Path) -> Path:
    for cand in (root / "ICIAR2018_BACH_Challenge" / "Photos", root / "Photos", root):
        if all((cand / f).is_dir() for f in FOLDERS):
            return cand
    raise DatasetError(f"expected BACH part A at {root}/ICIAR2018_BACH_Challenge/Photos/"
                       f"{{{','.join(FOLDERS)}}}/*.tif with microscopy_ground_truth.csv, but did not find those "
                       f"folders; point root at the folder holding ICIAR2018_BACH_Challenge")


def scan(root: str | Path) -> pd.DataFrame:
    """Every labelled BACH image: columns ``path`` (relative to ``root``), ``label`` (index in
    :data:`CLASSES`), ``file``."""
    root = Path(root)
    layout = "ICIAR2018_BACH_Challenge/Photos/{Normal,Benign,InSitu,Invasive}/"
    photos = _photos_dir(require_dir(root, f"the BACH dataset ({layout})"))
    csv = photos / "microscopy_ground_truth.csv"
    if not csv.is_file():
        raise DatasetError(f"expected the BACH label file {csv} (lines 'n001.tif,Normal'), not found")
    gt = pd.read_csv(csv, header=None, names=["file", "cls"], dtype=str, skipinitialspace=True)
    gt["file"], gt["cls"] = gt["file"].str.strip(), gt["cls"].str.strip()
    unknown = ~gt["cls"].isin(FOLDERS)
    if unknown.any():
        raise DatasetError(f"{csv}: unknown class {gt.loc[unknown, 'cls'].iloc[0]!r}; expected one of {FOLDERS}")
    rows = []
    for f, cls in zip(gt["file"], gt["cls"]):
        path = photos / cls / f
        if not path.is_file():
            elsewhere = [d for d in FOLDERS if (photos / d / f).is_file()]
            hint = f" (it is in {elsewhere[0]}/: the CSV and the folders disagree)" if elsewhere else ""
            raise DatasetError(f"{csv} lists {f} as {cls} but {path} does not exist{hint}")
        rows.append({"path": str(path.relative_to(root)), "label": FOLDERS.index(cls), "file": f})
    if not rows:
        raise DatasetError(f"{csv} lists no image")
    return pd.DataFrame(rows)


def split_table(root: str | Path, *, fold: int = 0, n_folds: int = 5, seed: int = 0,
                test_fraction: float = 0.5) -> pd.DataFrame:
    """Split table of one fold: test = ``test_fraction`` of each class (seeded, the same for every fold),
    train/valid = fold ``fold`` of a stratified ``n_folds`` partition of the rest."""
    if not 0 <= fold < n_folds:
        raise InputError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    table = scan(root)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(table), bool)
    for c in range(len(CLASSES)):
        idx = np.flatnonzero(table["label"].to_numpy() == c)
        idx = idx[rng.permutation(len(idx))]
        test[idx[: int(round(test_fraction * len(idx)))]] = True
    table["split"] = np.where(test, "test", "train")
    folds = assign_folds(table.loc[~test, "label"].to_numpy(), n_folds=n_folds, seed=seed)
    table.loc[~test, "split"] = np.where(folds == fold, "valid", "train")
    return table


class BACH(TableDataset):
    """BACH part A images of one split and fold (no pixel masks).

    ``__getitem__`` returns ``{"image": (3, 1536, 2048) in [0, 1], "label": 0..3 (normal, benign, in_situ,
    invasive), "index", "path"}``."""

    def __init__(self, root: str | Path, split: str = "train", *, fold: int = 0, seed: int = 0,
                 transform: Callable[[dict], dict] | None = None) -> None:
        super().__init__(split_rows(split_table, root, split, fold=fold, seed=seed), root, classes=CLASSES,
                         transform=transform, name=f"bach-fold{fold}-{split}")


register_dataset(DatasetSpec(
    "bach", BACH, "BACH 2018 part A, 4 classes (section 2.1.1.2)", needs_root=True, classes=CLASSES,
    split_table=split_table,
    layout="ROOT/ICIAR2018_BACH_Challenge/Photos/{Normal,Benign,InSitu,Invasive}/*.tif "
           "+ Photos/microscopy_ground_truth.csv",
    train_transform=lambda crop=512: Compose([RandomRotatedCrop(crop), RandomFlip(),
                                             ColorJitter(0.5, 0.5, 0.5, 0.05)])))
