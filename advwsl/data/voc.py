"""Pascal VOC 2012 segmentation with the augmented training set (section 3.4.1): 20 foreground classes,
multi-label image labels derived from the segmentation masks; train on the 10,582 images of the augmented
set (Hariharan et al. 2011, ``SegmentationClassAug``), test on the 1,449 validation images.

On-disk layout::

    <root>/VOCdevkit/VOC2012/JPEGImages/2007_000032.jpg
    <root>/VOCdevkit/VOC2012/SegmentationClass/2007_000032.png          (palette PNG, 255 = void)
    <root>/VOCdevkit/VOC2012/SegmentationClassAug/2007_000032.png       (grey PNG of class indices)
    <root>/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt

The augmented list is read from ``ImageSets/Segmentation/train_aug.txt`` (or ``trainaug.txt``) when present;
otherwise it is every ``SegmentationClassAug`` mask whose id is not in ``val.txt`` (10,582 on the full set).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DatasetError, InputError
from .base import read_image, read_label_map
from .registry import DatasetSpec, register_dataset
from .transforms import ColorJitter, Compose, RandomFlip, RandomGaussianBlur, RandomScaleCrop, Resize

CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
           "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
           "tvmonitor")
IGNORE_INDEX = 255


def _voc_dir(root: Path) -> Path:
    for cand in (root / "VOCdevkit" / "VOC2012", root / "VOC2012", root):
        if (cand / "JPEGImages").is_dir() and (cand / "ImageSets" / "Segmentation").is_dir():
            return cand
    raise DatasetError(f"expected Pascal VOC 2012 at {root}/VOCdevkit/VOC2012/ with JPEGImages/, "
                       f"SegmentationClass/ and ImageSets/Segmentation/, not found")


def _read_ids(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def image_ids(root: str | Path, split: str) -> tuple[list[str], Path]:
    """Image ids of ``split`` (``train`` = augmented train set, ``val``) and the folder of their masks."""
    voc = _voc_dir(Path(root))
    sets = voc / "ImageSets" / "Segmentation"
    if not (sets / "val.txt").is_file():
        raise DatasetError(f"expected {sets / 'val.txt'} (the 1,449 validation ids), not found")
    val = _read_ids(sets / "val.txt")
    if split == "val":
        return val, voc / "SegmentationClass"
    aug = voc / "SegmentationClassAug"
    if not aug.is_dir():
        raise DatasetError(f"expected the augmented masks at {aug} (SegmentationClassAug of Hariharan et al. "
                           f"2011, 12,031 PNGs), not found")
    for name in ("train_aug.txt", "trainaug.txt"):
        for folder in (sets, voc, voc.parent):
            if (folder / name).is_file():
                return _read_ids(folder / name), aug
    val_set = set(val)
    return sorted(p.stem for p in aug.glob("*.png") if p.stem not in val_set), aug


class VOCSegmentation(Dataset):
    """Pascal VOC 2012 for multi-label weakly supervised segmentation (chapter 3).

    ``split``: ``"train"`` (augmented train set) or ``"val"`` (alias ``"test"``). ``__getitem__`` returns
    ``{"image": (3, H, W) in [0, 1], "label": float32 (20,) multi-hot of the foreground classes present in
    the mask, "mask": int64 (H, W) with 0 = background, 1..20 = classes, 255 = void, "index", "path"}``.
    Labels come from the untransformed mask (a crop may remove a class; section 3.4.2)."""

    classes = CLASSES

    def __init__(self, root: str | Path, split: str = "train", *,
                 transform: Callable[[dict], dict] | None = None) -> None:
        if split == "test":
            split = "val"
        if split not in ("train", "val"):
            raise InputError(f"split must be 'train' or 'val' (or 'test'), got {split!r}")
        self.root, self.split, self.transform = Path(root), split, transform
        self.voc = _voc_dir(self.root)
        self.ids, self.mask_dir = image_ids(self.root, split)
        if not self.ids:
            raise DatasetError(f"no image id for split {split!r} under {self.voc}")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        name = self.ids[i]
        image = read_image(self.voc / "JPEGImages" / f"{name}.jpg")
        mask = read_label_map(self.mask_dir / f"{name}.png")
        if mask.shape != tuple(image.shape[-2:]):
            raise DatasetError(f"mask of {name} is {mask.shape} but the image is {tuple(image.shape[-2:])}")
        present = np.unique(mask)
        label = torch.zeros(len(CLASSES))
        fg = present[(present >= 1) & (present <= len(CLASSES))]
        label[torch.from_numpy(fg - 1)] = 1.0
        sample = {"image": image, "label": label, "mask": torch.from_numpy(mask), "index": i,
                  "path": f"JPEGImages/{name}.jpg"}
        return self.transform(sample) if self.transform is not None else sample


def _voc(root: str | Path, split: str, *, fold: int = 0, transform: Callable[[dict], dict] | None = None,
         **kwargs) -> VOCSegmentation:
    return VOCSegmentation(root, "val" if split in ("valid", "test") else split, transform=transform, **kwargs)


register_dataset(DatasetSpec(
    "voc", _voc, "Pascal VOC 2012 segmentation + augmented train set, 20 classes multi-label (section 3.4.1)",
    needs_root=True, classes=CLASSES, has_masks=True, multilabel=True, folds=0,
    layout="ROOT/VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,SegmentationClassAug,ImageSets/Segmentation}/",
    train_transform=lambda: Compose([RandomScaleCrop(448, 224), ColorJitter(0.3, 0.3, 0.3, 0.1),
                                     RandomGaussianBlur(2.0), RandomFlip(horizontal=True, vertical=False)]),
    eval_transform=lambda: Compose([Resize(448)])))
