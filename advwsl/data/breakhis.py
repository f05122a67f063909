"""BreakHis (section 2.1.1.1, Table 2.2): 7,909 PNG images (700 x 460) of breast tumours, benign vs
malignant, at magnifications 40x, 100x, 200x and 400x, from 82 patients.

On-disk layout (as extracted from ``BreaKHis_v1.tar.gz``)::

    <root>/BreaKHis_v1/histology_slides/breast/{benign,malignant}/SOB/<tumour type>/
        SOB_B_A_14-22549AB/40X/SOB_B_A-14-22549AB-40-001.png

The patient folder writes ``<class>_<type>_<year>-<slide>`` with an underscore before the year while the file
name uses a dash (``SOB_B_A-14-22549AB-40-001``); the patient is parsed from the file name and checked
against the folder. The same slide number can appear under two tumour types (``SOB_M_DC-14-13412`` and
``SOB_M_LC-14-13412``), so grouping uses the slide ``<year>-<slide>`` alone, which never splits them.

Splits (section 2.1.2.2): BreakHis keeps the published folds of Spanhol et al. (``dsfold1.txt`` ...
``dsfold5.txt``, lines ``SOB_B_A-14-22549AB-40-001.png|40|1|train``), each with its own test set per
magnification; 20 % of each fold's training patients become its validation set (seeded). Without the fold
files, a seeded patient-level 70/30 train/test split stands in for them (stated in :attr:`split_source`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatasetError, InputError
from .base import TableDataset, check_split, require_dir
from .folds import assign_folds
from .registry import DatasetSpec, register_dataset
from .transforms import ColorJitter, Compose, RandomCrop, RandomFlip, RandomRotate90

CLASSES = ("benign", "malignant")
MAGNIFICATIONS = (40, 100, 200, 400)
NAME_RE = re.compile(r"^SOB_(?P<cls>[BM])_(?P<type>[A-Z]+)-(?P<year>\d+)-(?P<slide>[0-9A-Za-z]+)-"
                     r"(?P<mag>\d+)-(?P<seq>\d+)\.png$")


def _slides_dir(root: Path) -> Path:
    for cand in (root / "BreaKHis_v1" / "histology_slides" / "breast", root / "histology_slides" / "breast",
                 root / "breast", root):
        if (cand / "benign").is_dir() and (cand / "malignant").is_dir():
            return cand
    raise DatasetError(f"expected BreakHis at {root}/BreaKHis_v1/histology_slides/breast/{{benign,malignant}}/"
                       f"SOB/<type>/<patient>/<mag>X/*.png, but found no such folders; point root at the "
                       f"folder holding BreaKHis_v1")


def scan(root: str | Path) -> pd.DataFrame:
    """Every BreakHis image under ``root``: columns ``path`` (relative to ``root``), ``label`` (0 benign,
    1 malignant), ``tumor_type``, ``patient`` (``<year>-<slide>``), ``magnification``, ``file``."""
    root = Path(root)
    layout = "BreaKHis_v1/histology_slides/breast/{benign,malignant}/..."
    base = _slides_dir(require_dir(root, f"the BreakHis dataset ({layout})"))
    rows = []
    for path in sorted(base.glob("*/SOB/*/*/*X/*.png")):
        m = NAME_RE.match(path.name)
        if m is None:
            raise DatasetError(f"unexpected BreakHis file name {path.name} in {path.parent}; expected e.g. "
                               f"SOB_B_A-14-22549AB-40-001.png")
        folder, cls_dir, mag_dir = path.parent.parent.name, path.parents[4].name, path.parent.name
        expected_folder = f"SOB_{m['cls']}_{m['type']}_{m['year']}-{m['slide']}"
        if folder != expected_folder or mag_dir != f"{m['mag']}X" or cls_dir[0].upper() != m["cls"]:
            raise DatasetError(f"BreakHis file {path} does not match its folders (expected patient folder "
                               f"{expected_folder}, magnification {m['mag']}X, class {cls_dir})")
        rows.append({"path": str(path.relative_to(root)), "label": int(m["cls"] == "M"),
                     "tumor_type": m["type"], "patient": f"{m['year']}-{m['slide']}",
                     "magnification": int(m["mag"]), "file": path.name})
    if not rows:
        raise DatasetError(f"no BreakHis PNG found under {base}/{{benign,malignant}}/SOB/<type>/<patient>/<mag>X/")
    return pd.DataFrame(rows)


def _find_fold_file(root: Path, fold: int) -> Path | None:
    name = f"dsfold{fold + 1}.txt"
    for cand in (root / name, root / "mkfold" / name, root / "BreaKHis_v1" / name, root.parent / name,
                 root / "BreaKHis_v1" / "mkfold" / name):
        if cand.is_file():
            return cand
    return None


def read_fold_file(path: str | Path) -> pd.DataFrame:
    """A published fold file (``file|magnification|fold|train or test`` per line) as a DataFrame with
    columns ``file``, ``magnification``, ``fold``, ``group``."""
    table = pd.read_csv(path, sep="|", header=None, names=["file", "magnification", "fold", "group"],
                        dtype={"file": str, "group": str})
    table["file"] = table["file"].str.strip()
    table["group"] = table["group"].str.strip().str.lower()
    bad = ~table["group"].isin(["train", "test"])
    if bad.any():
        raise DatasetError(f"{path}: unexpected split {table.loc[bad, 'group'].iloc[0]!r} (expected train/test)")
    return table


def split_table(root: str | Path, *, magnification: int = 40, fold: int = 0, n_folds: int = 5,
                seed: int = 0) -> pd.DataFrame:
    """The split table of one fold and magnification: columns of :func:`scan` plus ``split``
    (train/valid/test), with the published test set when ``dsfold<fold+1>.txt`` is found."""
    if magnification not in MAGNIFICATIONS:
        raise InputError(f"magnification must be one of {MAGNIFICATIONS}, got {magnification}")
    if not 0 <= fold < n_folds:
        raise InputError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    root = Path(root)
    table = scan(root)
    table = table[table["magnification"] == magnification].reset_index(drop=True)
    if table.empty:
        raise DatasetError(f"no BreakHis image at magnification {magnification}X under {root}")
    fold_file = _find_fold_file(root, fold)
    if fold_file is not None:
        published = read_fold_file(fold_file).set_index("file")["group"]
        missing = ~table["file"].isin(published.index)
        if missing.any():
            raise DatasetError(f"{fold_file} does not list {table.loc[missing, 'file'].iloc[0]}; the fold file "
                               f"and the images do not belong together")
        test = table["file"].map(published).eq("test").to_numpy()
        source = f"published folds ({fold_file.name})"
    else:
        patients = table.groupby("patient")["label"].first()
        rng = np.random.default_rng([seed, fold])
        test_patients = []
        for c in (0, 1):
            p = patients.index[patients == c].to_numpy()
            p = p[rng.permutation(len(p))]
            test_patients.extend(p[: int(round(0.3 * len(p)))].tolist())
        test = table["patient"].isin(test_patients).to_numpy()
        source = f"seeded 70/30 patient split (seed {seed}, fold {fold}); dsfold{fold + 1}.txt not found"
    table["split"] = np.where(test, "test", "train")
    train = ~test
    # validation: one of 5 patient-grouped folds of the training part (80/20)
    valid_fold = assign_folds(table.loc[train, "label"].to_numpy(), n_folds=n_folds, seed=seed + fold,
                              groups=table.loc[train, "patient"].to_numpy())
    table.loc[train, "split"] = np.where(valid_fold == 0, "valid", "train")
    table.attrs["split_source"] = source
    return table


class BreakHis(TableDataset):
    """BreakHis images of one split, fold and magnification (no pixel masks exist).

    ``__getitem__`` returns ``{"image": (3, 460, 700) in [0, 1], "label": 0 benign / 1 malignant,
    "index", "path"}``."""

    def __init__(self, root: str | Path, split: str = "train", *, fold: int = 0, magnification: int = 40,
                 seed: int = 0, transform: Callable[[dict], dict] | None = None) -> None:
        check_split(split)
        table = split_table(root, magnification=magnification, fold=fold, seed=seed)
        self.split_source = table.attrs["split_source"]
        super().__init__(table[table["split"] == split], root, classes=CLASSES, transform=transform,
                         name=f"breakhis-{magnification}X-fold{fold}-{split}")


register_dataset(DatasetSpec(
    "breakhis", BreakHis, "BreakHis, benign vs malignant, 40/100/200/400x (section 2.1.1.1)", needs_root=True,
    classes=CLASSES, split_table=split_table,
    layout="ROOT/BreaKHis_v1/histology_slides/breast/{benign,malignant}/SOB/<type>/<patient>/<mag>X/*.png",
    train_transform=lambda crop=448: Compose([RandomCrop(crop), RandomRotate90(), RandomFlip(),
                                             ColorJitter(0.5, 0.5, 0.5, 0.05)]),
    options={"magnification": "40, 100, 200 or 400 (default 40)"}))
