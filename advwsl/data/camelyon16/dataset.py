"""The prepared CAMELYON16 patches (section 2.1.2.3) as a dataset: one fold and split of the CSVs written by
:func:`advwsl.data.camelyon16.prepare.prepare_camelyon16`. Patches are read from their PNG files when they
were written, otherwise straight from the slides (level 0), with masks rasterised from the annotations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ...errors import DatasetError
from ..base import check_split, read_image, read_label_map
from ..registry import DatasetSpec, register_dataset
from ..transforms import ColorJitter, Compose, RandomFlip, RandomRotate90
from .annotations import rasterize, read_asap_xml
from ..slides import open_slide

CLASSES = ("normal", "metastatic")


class Camelyon16Patches(Dataset):
    """Patches of one split of one fold.

    ``__getitem__`` returns ``{"image": float32 (3, S, S) in [0, 1], "label": 0 normal / 1 metastatic,
    "mask": float32 (S, S) in {0, 1} (all zero for normal patches), "index", "path"}`` with S the patch
    size. ``backend`` chooses the slide reader when patches are read from the slides."""

    classes = CLASSES
    #: Only metastatic patches carry a region (their mask).
    region_classes = (1,)

    def __init__(self, root: str | Path, split: str = "train", *, fold: int = 0,
                 transform: Callable[[dict], dict] | None = None, backend: str = "auto") -> None:
        check_split(split)
        self.root = Path(root)
        csv = self.root / "folds" / f"fold_{fold}" / f"{split}.csv"
        if not csv.is_file():
            raise DatasetError(f"expected prepared CAMELYON16 patches at {csv}; create them with "
                               f"`advwsl data camelyon16 --slides DIR --annotations DIR --out {self.root}`")
        self.table = pd.read_csv(csv, keep_default_na=False)
        self.labels = self.table["label"].to_numpy()
        slides = pd.read_csv(self.root / "slides.csv", keep_default_na=False)
        self._slides = {r["slide"]: r for r in slides.to_dict("records")}
        self.transform, self.backend, self.split, self.fold = transform, backend, split, fold
        self._open: dict[str, object] = {}
        self._annotations: dict[str, object] = {}

    def __len__(self) -> int:
        return len(self.table)

    def _slide(self, name: str):
        if name not in self._open:
            self._open[name] = open_slide(self._slides[name]["path"], backend=self.backend)
        return self._open[name]

    def __getitem__(self, i: int) -> dict:
        row = self.table.iloc[i]
        size, x, y = int(row["size"]), int(row["x"]), int(row["y"])
        png = self.root / row["path"]
        if png.is_file():
            image = read_image(png)
        else:
            rgb = self._slide(row["slide"]).read_region((x, y), 0, (size, size))
            image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float() / 255.0
        if int(row["label"]) == 1:
            mpath = self.root / row["mask_path"]
            if mpath.is_file():
                mask = torch.from_numpy(read_label_map(mpath) > 0).float()
            else:
                name = row["slide"]
                if name not in self._annotations:
                    self._annotations[name] = read_asap_xml(self._slides[name]["xml"])
                mask = torch.from_numpy(rasterize(self._annotations[name], x, y, size, size)).float()
        else:
            mask = torch.zeros(size, size)
        sample = {"image": image, "label": int(row["label"]), "mask": mask, "index": int(i), "path": row["path"]}
        return self.transform(sample) if self.transform is not None else sample

    def __getstate__(self) -> dict:
        # open slide handles do not cross process boundaries (DataLoader workers reopen them)
        state = dict(self.__dict__)
        state["_open"] = {}
        return state


register_dataset(DatasetSpec(
    "camelyon16", Camelyon16Patches, "CAMELYON16 patches prepared by `advwsl data camelyon16` (section 2.1.2.3)",
    needs_root=True, classes=CLASSES, has_masks=True,
    layout="ROOT/folds/fold_<k>/{train,valid,test}.csv + ROOT/slides.csv (written by `advwsl data camelyon16`)",
    train_transform=lambda: Compose([RandomRotate90(), RandomFlip(), ColorJitter(0.5, 0.5, 0.5, 0.05)])))
