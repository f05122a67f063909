"""Where a folder dataset's samples are (``--dataset folder``; the layouts are described in
:mod:`advwsl.data.folder`): :func:`scan` finds the layout under ROOT, lists every image with its label and
mask, and reads every header so that a corrupt, mis-sized or misplaced file is an error naming it before
anything is trained; :func:`split_table` assigns the seeded test set and class-stratified folds."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import DatasetError, InputError
from .base import read_image
from .folds import assign_folds

__all__ = ["EXTENSIONS", "LAYOUTS", "scan", "split_table"]

EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
LAYOUTS = """one of these layouts:
  ROOT/images/<class>/<image>   + optional ROOT/masks/<class>/<image stem>.png
  ROOT/<class>/<image>          (ImageFolder, no masks)
  ROOT/<name>.csv               columns path,label[,mask][,split]; paths relative to ROOT
                                (several CSVs: choose one with --dataset-kwargs '{"table": "x.csv"}')
images: png, jpg, jpeg, tif, tiff, bmp"""


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _layout_error(root: Path, problem: str) -> DatasetError:
    return DatasetError(f"--data-root {root}: {problem}. The folder dataset expects {LAYOUTS}")


def _check_masks_dir(root: Path, classes: list[Path], masks_dir: Path | None) -> None:
    """A misnamed masks folder (``Masks``, ``mask`` beside ``images/``) or a ``masks/<name>`` that is no class
    folder would have its masks silently ignored: both are refused, with the names to use."""
    misnamed = [d.name for d in root.iterdir() if d.is_dir() and d.name != "masks"
                and d.name.lower() in ("masks", "mask")]
    if misnamed:
        raise _layout_error(root, f"it holds {', '.join(misnamed)}/ next to images/; the masks folder must be named "
                                  "masks/ exactly (rename it)")
    if masks_dir is None:
        return
    names = {c.name for c in classes}
    stray = [d.name for d in _class_dirs(masks_dir) if d.name not in names]
    if stray:
        raise _layout_error(root, f"masks/ holds {stray} which match no class folder of images/ ({sorted(names)}); "
                                  "name each mask folder exactly as its class folder (names are case-sensitive)")


def _from_folders(root: Path, images_dir: Path, masks_dir: Path | None) -> pd.DataFrame:
    classes = _class_dirs(images_dir)
    if not classes:
        raise _layout_error(root, f"{images_dir} has no class folders")
    if images_dir != root:
        _check_masks_dir(root, classes, masks_dir)
    rows = []
    for label, cls in enumerate(classes):
        files = _images_in(cls)
        if not files:
            raise _layout_error(root, f"class folder {cls} holds no image")
        class_masks = masks_dir / cls.name if masks_dir is not None and (masks_dir / cls.name).is_dir() else None
        missing = []
        for path in files:
            row = {"path": str(path.relative_to(root)), "label": label, "mask_path": ""}
            if class_masks is not None:
                mask = (class_masks / path.relative_to(cls)).with_suffix(".png")
                if mask.is_file():
                    row["mask_path"] = str(mask.relative_to(root))
                else:
                    missing.append(str(mask.relative_to(root)))
            rows.append(row)
        if missing:
            raise DatasetError(f"{class_masks} exists, so every image of class {cls.name!r} needs its mask; missing: "
                               f"{missing[:5]}{' ...' if len(missing) > 5 else ''} (remove the folder for a class "
                               "whose masks are all empty)")
    table = pd.DataFrame(rows)
    table.attrs["classes"] = [c.name for c in classes]
    table.attrs["masks"] = masks_dir is not None
    return table


def _labels(values: pd.Series, classes: Sequence[str] | None, where: Path) -> tuple[list[int], list[str]]:
    values = values.astype(str).str.strip()
    if (values == "").any():
        raise DatasetError(f"{where}: row {int(np.flatnonzero(values == '')[0]) + 2} has no label")
    if classes is not None and values.isin(list(classes)).all():
        names = list(classes)
        return [names.index(v) for v in values], names
    if values.str.fullmatch(r"\d+").all():
        indices = [int(v) for v in values]
        names = list(classes) if classes is not None else [str(i) for i in range(max(indices) + 1)]
        if max(indices) >= len(names):
            raise DatasetError(f"{where}: label {max(indices)} is not a class index of {names}")
        return indices, names
    if classes is not None:
        unknown = sorted(set(values) - set(classes))
        raise DatasetError(f"{where}: labels {unknown[:5]} are not among the classes {list(classes)}")
    names = sorted(set(values))
    return [names.index(v) for v in values], names


def _from_table(root: Path, csv: Path, classes: Sequence[str] | None) -> pd.DataFrame:
    try:
        raw = pd.read_csv(csv, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as exc:  # noqa: BLE001 - pandas raises several types for a malformed file
        raise DatasetError(f"cannot read the table {csv}: {exc}") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    if not {"path", "label"} <= set(raw.columns) or len(raw) == 0:
        raise _layout_error(root, f"the table {csv.name} needs the columns path,label (found {list(raw.columns)}) "
                                  f"and at least one row")
    labels, names = _labels(raw["label"], classes, csv)
    table = pd.DataFrame({"path": raw["path"].str.strip(), "label": labels,
                          "mask_path": raw["mask"].str.strip() if "mask" in raw.columns else ""})
    _check_table_paths(root, csv, table)
    bad = [p for p in table["path"] if Path(p).suffix.lower() not in EXTENSIONS]
    if bad:
        raise DatasetError(f"{csv}: {bad[0]!r} is not an image of a supported type ({', '.join(EXTENSIONS)})")
    if "split" in raw.columns:
        split = raw["split"].str.strip().str.lower()
        wrong = sorted(set(split) - {"train", "valid", "test"})
        if wrong:
            raise DatasetError(f"{csv}: the split column holds {wrong}; use train, valid or test")
        table["split"] = split.to_numpy()
    table.attrs["classes"] = names
    table.attrs["masks"] = "mask" in raw.columns
    return table


def _inside(rel: str) -> bool:
    """Whether the relative path ``rel`` stays inside its root (not absolute, no ``..`` above it)."""
    return bool(rel) and not os.path.isabs(rel) and not os.path.normpath(rel).startswith(("..", os.sep))


def _check_table_paths(root: Path, csv: Path, table: pd.DataFrame) -> None:
    """Every path inside ``root`` (checked before any file is touched), every file present, every image once."""
    for column, kind in (("path", "image"), ("mask_path", "mask")):
        for i, rel in enumerate(table[column]):
            if (rel or column == "path") and not _inside(rel):
                raise DatasetError(f"{csv} row {i + 2}: the {kind} path {rel!r} leaves the data root {root}; a table "
                                   "lists paths relative to the data root, inside it (copy or link the files there)")
    for column, kind in (("path", "image"), ("mask_path", "mask")):
        for i, rel in enumerate(table[column]):
            if (rel or column == "path") and not (root / rel).is_file():
                raise DatasetError(f"{csv} row {i + 2}: {kind} {root / rel} does not exist (paths are relative to "
                                   f"{root})")
    norm = table["path"].map(os.path.normpath)
    for path, rows in norm.groupby(norm).groups.items():
        if len(rows) > 1:
            lines = ", ".join(str(r + 2) for r in rows[:5])
            labels = sorted(set(table["label"].iloc[list(rows)].tolist()))
            what = f"with {len(labels)} different labels" if len(labels) > 1 else "twice (it would land in two splits)"
            raise DatasetError(f"{csv}: the image {path} is listed {what}, rows {lines}; list each image once, "
                               "with its one label")


def _find_table(root: Path, table: str | None) -> Path | None:
    if table is not None:
        path = Path(table) if Path(table).is_absolute() else root / table
        if not path.is_file():
            raise DatasetError(f"table {path} does not exist; give a CSV file in --data-root (or an absolute path)")
        return path
    tables = sorted(root.glob("*.csv"))
    if len(tables) > 1:
        raise _layout_error(root, f"it holds several CSV tables ({', '.join(t.name for t in tables)}); choose one "
                                  "with --dataset-kwargs '{\"table\": \"NAME.csv\"}'")
    return tables[0] if tables else None


def _check_files(root: Path, table: pd.DataFrame, size: Any) -> None:
    """Read every image and mask header: a corrupt file or a mask of another size is named here."""
    sizes = []
    for rel, mask in zip(table["path"], table["mask_path"]):
        dims = _header_size(root / rel, "image")
        if mask:
            mask_dims = _header_size(root / mask, "mask")
            if mask_dims != dims:
                raise DatasetError(f"mask {root / mask} is {mask_dims[0]}x{mask_dims[1]} but its image {root / rel} "
                                   f"is {dims[0]}x{dims[1]} (width x height); a mask has its image's size")
        sizes.append(dims)
    distinct = sorted(set(sizes))
    if size is None and len(distinct) > 1:
        examples = [f"{table['path'].iloc[sizes.index(d)]} {d[0]}x{d[1]}" for d in distinct[:3]]
        raise DatasetError(f"the images in {root} have {len(distinct)} sizes ({'; '.join(examples)}"
                           f"{' ...' if len(distinct) > 3 else ''}); batches need one size: pass --dataset-kwargs "
                           "'{\"size\": 224}' to resize them all (or resize the files)")


def _header_size(path: Path, kind: str) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            if im.mode == "F" and kind == "image":  # rare: a float image is read now, its range checked
                read_image(path)
            return im.size
    except Exception as exc:  # noqa: BLE001 - PIL cannot read some TIFF flavours; tifffile may
        if path.suffix.lower() in (".tif", ".tiff"):
            try:
                import tifffile

                with tifffile.TiffFile(path) as tif:
                    shape, floats = tif.pages[0].shape, tif.pages[0].dtype.kind == "f"
            except Exception:  # noqa: BLE001
                pass
            else:
                if floats and kind == "image":  # rare: a float image is read now, its range checked
                    read_image(path)
                return int(shape[1]), int(shape[0])
        raise DatasetError(f"cannot read {kind} {path}: {type(exc).__name__}: {exc}; fix or remove that file") \
            from None


def scan(root: str | Path, *, table: str | None = None, classes: Sequence[str] | None = None,
         size: Any = None) -> pd.DataFrame:
    """Every sample of the folder dataset at ``root``: columns ``path``, ``label``, ``mask_path`` (relative to
    ``root``; empty: no mask file) and, from a CSV's split column, ``split``. ``attrs["classes"]`` holds
    the class names, ``attrs["masks"]`` whether the layout has masks."""
    root = Path(root)
    if not root.is_dir():
        raise _layout_error(root, "that folder does not exist")
    csv = _find_table(root, table)
    if csv is not None:
        out = _from_table(root, csv, classes)
    elif (root / "images").is_dir():
        out = _from_folders(root, root / "images", root / "masks" if (root / "masks").is_dir() else None)
    elif _class_dirs(root):
        out = _from_folders(root, root, None)
    else:
        raise _layout_error(root, "it holds neither images/, class folders nor a CSV table")
    if classes is not None and csv is None:
        if sorted(classes) != sorted(out.attrs["classes"]):
            raise DatasetError(f"classes {list(classes)} are not the class folders {out.attrs['classes']} of {root}")
        names = list(classes)
        out["label"] = [names.index(out.attrs["classes"][i]) for i in out["label"]]
        out.attrs["classes"] = names
    if len(out.attrs["classes"]) < 2:
        raise _layout_error(root, f"it has one class ({out.attrs['classes']}); a classifier needs at least two")
    _check_files(root, out, size)
    return out


def split_table(root: str | Path, *, fold: int = 0, n_folds: int = 5, seed: int = 0, test_fraction: float = 0.2,
                table: str | None = None, classes: Sequence[str] | None = None, size: Any = None) -> pd.DataFrame:
    """The split table of fold ``fold`` (see :mod:`advwsl.data.folder`): a seeded ``test_fraction`` of each class
    is the test set, fold ``fold`` of ``n_folds`` class-stratified folds of the rest the validation set."""
    if not 0 <= fold < n_folds:
        raise InputError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    out = scan(root, table=table, classes=classes, size=size)
    if "split" in out.columns:
        if fold != 0:
            raise InputError(f"the table's split column fixes the split: only fold 0 exists, got fold {fold}")
        return out
    rng = np.random.default_rng(seed)
    labels = out["label"].to_numpy()
    test = np.zeros(len(out), bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        test[idx[: int(round(test_fraction * len(idx)))]] = True
    out["split"] = "test"
    folds = assign_folds(labels[~test], n_folds=n_folds, seed=seed)
    out.loc[~test, "split"] = np.where(folds == fold, "valid", "train")
    return out
