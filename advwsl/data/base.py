"""Reading images and masks from disk, and the table-backed dataset every real loader returns.

A loader builds a *split table* (see :mod:`advwsl.data.folds`): one row per sample with ``path`` (relative
to the dataset root), ``label`` and optionally ``mask_path``; :class:`TableDataset` serves the rows of one
split as sample dicts ``{"image": float32 (3, H, W) in [0, 1], "label": int, "mask": ..., "index": int,
"path": str}``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ..errors import DatasetError, InputError


def read_image(path: str | Path) -> torch.Tensor:
    """An RGB image file as float32 (3, H, W) in [0, 1] (8-bit or 16-bit PNG/JPEG/BMP/TIFF; grey images are
    repeated to three channels, alpha is dropped)."""
    path = Path(path)
    try:
        from PIL import Image

        with Image.open(path) as im:
            if im.mode == "F":  # 32-bit float grey (PIL's convert would truncate it to integers)
                arr = np.repeat(_unit_floats(np.asarray(im, dtype=np.float32), path)[..., None], 3, axis=2)
            elif im.mode in ("I;16", "I;16B", "I"):
                arr = np.asarray(im, dtype=np.float32) / 65535.0
                arr = np.repeat(arr[..., None], 3, axis=2)
            else:  # 8-bit: transposed as bytes, then scaled (the same float32 values, a quarter of the copying)
                rgb = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
                return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255.0)
    except FileNotFoundError:
        raise DatasetError(f"image file {path} not found") from None
    except Exception as exc:  # PIL cannot read some TIFF flavours: try tifffile
        if path.suffix.lower() not in (".tif", ".tiff"):
            raise DatasetError(f"cannot read image {path} ({type(exc).__name__}: {exc}); the file is damaged or "
                               "not an image: restore it from the dataset archive or remove its sample") from None
        import tifffile

        try:
            raw = tifffile.imread(path)
        except Exception as tiff_exc:  # noqa: BLE001 - neither reader could read it
            raise DatasetError(f"cannot read image {path} ({type(tiff_exc).__name__}: {tiff_exc}); the file is "
                               "damaged or not an image") from None
        if raw.dtype.kind == "f":
            arr = _unit_floats(raw.astype(np.float32), path)
        else:
            arr = raw.astype(np.float32) / float(np.iinfo(raw.dtype).max)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        arr = arr[..., :3]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _unit_floats(arr: np.ndarray, path: Path) -> np.ndarray:
    """A floating-point image as it is when its values lie in [0, 1]; refused otherwise (0-255 floats, HDR
    or NaN: no scale is certain)."""
    lo, hi = (float(np.min(arr)), float(np.max(arr))) if arr.size else (0.0, 0.0)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo >= 0.0 and hi <= 1.0):
        raise DatasetError(f"image {path} holds floating-point values in [{lo:g}, {hi:g}]; float images are read as "
                           "values in [0, 1]: rescale it to [0, 1] or save it as an 8- or 16-bit image")
    return arr


def read_label_map(path: str | Path) -> np.ndarray:
    """A label image (palette PNG, grey BMP, ...) as an integer array (H, W) of its stored values
    (palette indices for palette images, not colours)."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"mask file {path} not found")
    try:
        with Image.open(path) as im:
            if im.mode in ("P", "L", "I", "I;16", "1"):
                return np.asarray(im).astype(np.int64)
            arr = np.asarray(im.convert("RGB")).astype(np.int64)
    except (OSError, ValueError, SyntaxError) as exc:  # PIL: unidentified, truncated or damaged file
        raise DatasetError(f"cannot read mask {path} ({type(exc).__name__}: {exc}); the file is damaged or not an "
                           "image: restore it from the dataset archive or remove its sample") from None
    # RGB-encoded label image: a pixel is foreground where any channel is non-zero
    return (arr.max(axis=2) > 0).astype(np.int64)


#: What a dataset may declare besides its samples (the dataset protocol of advwsl, read by the training loop
#: and the jobs through :func:`dataset_trait`): ``classes`` (names in label order), ``num_classes``,
#: ``region_classes`` (the classes whose images carry a region, eq. 4.14), ``variable_size`` (images of
#: several sizes: batches of one), ``labels`` (every sample's label, without reading the images).
DATASET_TRAITS = {"classes": None, "num_classes": None, "region_classes": None, "variable_size": False,
                  "labels": None}


def dataset_trait(dataset: object, name: str) -> Any:
    """What ``dataset`` declares as ``name`` (one of :data:`DATASET_TRAITS`), seen through subsets
    (``.dataset``); the trait's default when it declares nothing."""
    if name not in DATASET_TRAITS:
        raise InputError(f"{name!r} is not a dataset trait; the traits are {', '.join(DATASET_TRAITS)}")
    seen: set[int] = set()
    while dataset is not None and id(dataset) not in seen:
        seen.add(id(dataset))
        if hasattr(dataset, name):
            return getattr(dataset, name)
        dataset = getattr(dataset, "dataset", None)
    return DATASET_TRAITS[name]


def dataset_classes(dataset: object) -> tuple[str, ...] | None:
    """The class names of ``dataset`` in label order (its ``classes``), seen through subsets (``.dataset``)
    and concatenations (``.datasets``, whose parts must agree); None when it names no classes. Compare them
    with a model's by :func:`advwsl.classes.match_classes`."""
    seen: set[int] = set()
    while dataset is not None and id(dataset) not in seen:
        seen.add(id(dataset))
        classes = getattr(dataset, "classes", None)
        if classes is not None:
            return tuple(str(c) for c in classes)
        parts = getattr(dataset, "datasets", None)
        if isinstance(parts, Sequence) and parts:
            found = {dataset_classes(d) for d in parts}
            if len(found) > 1:
                raise DatasetError(f"the parts of {type(dataset).__name__} have different classes: "
                                   f"{sorted(map(str, found))}; concatenate datasets of the same classes only")
            return found.pop()
        dataset = getattr(dataset, "dataset", None)
    return None


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else a :class:`DatasetError` naming what was expected there."""
    if not path.is_dir():
        raise DatasetError(f"expected {what} at {path}, but that folder does not exist; check --data-root "
                           f"(or the root argument) points at the dataset as extracted from its archive")
    return path


def check_split(split: str) -> None:
    """Raise :class:`InputError` unless ``split`` is one of the splits of a split table."""
    if split not in ("train", "valid", "test"):
        raise InputError(f"split must be 'train', 'valid' or 'test', got {split!r}")


def split_rows(split_table: Callable[..., pd.DataFrame], root: str | Path, split: str, **kwargs: object
               ) -> pd.DataFrame:
    """The rows of ``split`` in the split table ``split_table(root, **kwargs)`` (``split`` checked first)."""
    check_split(split)
    table = split_table(root, **kwargs)
    return table[table["split"] == split]


class TableDataset(Dataset):
    """Samples of one split of a split table, read from ``root`` on access.

    ``mask_mode`` says how the optional ``mask_path`` column becomes ``"mask"``: ``"binary"`` -> float32
    (H, W) in {0, 1} (value > 0), ``"index"`` -> int64 (H, W) class indices kept as stored. Rows without a
    mask file get no ``"mask"`` key, unless ``empty_mask`` is set, in which case an all-zero mask is returned
    (e.g. a normal CAMELYON16 patch).
    """

    def __init__(self, table: pd.DataFrame, root: str | Path, *, classes: Sequence[str],
                 transform: Callable[[dict], dict] | None = None, mask_mode: str = "binary",
                 empty_mask: bool = False, name: str = "dataset") -> None:
        self.table = table.reset_index(drop=True)
        self.root = Path(root)
        self.classes = tuple(classes)
        self.transform = transform
        self.mask_mode = mask_mode
        self.empty_mask = empty_mask
        self.name = name
        self.labels = self.table["label"].to_numpy()

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> dict:
        row = self.table.iloc[i]
        image = read_image(self.root / row["path"])
        sample: dict = {"image": image, "label": int(row["label"]), "index": int(i), "path": str(row["path"])}
        mask_path = row.get("mask_path") if "mask_path" in self.table.columns else None
        if isinstance(mask_path, str) and mask_path:
            raw = read_label_map(self.root / mask_path)
            if raw.shape != tuple(image.shape[-2:]):
                raise DatasetError(f"mask {self.root / mask_path} is {raw.shape[1]}x{raw.shape[0]} but its "
                                   f"image is {image.shape[2]}x{image.shape[1]}")
            sample["mask"] = (torch.from_numpy(raw > 0).float() if self.mask_mode == "binary"
                              else torch.from_numpy(raw))
        elif self.empty_mask:
            sample["mask"] = torch.zeros(image.shape[-2:], dtype=torch.float32)
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        counts = np.bincount(self.labels.astype(int), minlength=len(self.classes)) if len(self) else []
        return f"{type(self).__name__}({self.name}, n={len(self)}, classes={dict(zip(self.classes, counts))})"


class TensorDataset(Dataset):
    """Images held in memory as sample dicts ``{"image": images[i], "label": int, "index": i}``; ``labels``
    is an array (N,) and ``transform`` maps each dict."""

    def __init__(self, images: torch.Tensor, labels: np.ndarray,
                 transform: Callable[[dict], dict] | None = None) -> None:
        self.images, self.labels = images, labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        sample = {"image": self.images[i], "label": int(self.labels[i]), "index": int(i)}
        return self.transform(sample) if self.transform is not None else sample
