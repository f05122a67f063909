"""Datasets (section 2.1): the built-in synthetic histology default, BreakHis, BACH part A, GlaS, the
CAMELYON16 patch protocol, Pascal VOC 2012 (chapter 3), MNIST / CIFAR-10 / ImageNet (appendix V) and the
scikit-learn digits, your own images (:mod:`.folder`); folds (section 2.1.2.2) and joint image + mask transforms.

Every dataset registers a :class:`DatasetSpec` in its own module (:mod:`.registry`); samples are dicts
``{"image": float32 (C, H, W) in [0, 1], "label": int (a multi-hot float vector for VOC), "mask": (H, W)
where pixel labels exist, "index": int, ...}``; :func:`get_dataset` builds any of them by name.
"""

from . import bach, breakhis, digits, folder, glas, mnist5k, synthetic, voc  # noqa: F401  (each module registers its dataset)
from .camelyon16 import dataset as _camelyon16  # noqa: F401
from .folds import LabelledSubset, stratified_subset
from .registry import (DatasetSpec, eval_transform, get_dataset, get_dataset_spec, list_datasets,
                       register_dataset, training_transform)

__all__ = ["DatasetSpec", "LabelledSubset", "eval_transform", "get_dataset", "get_dataset_spec", "list_datasets",
           "register_dataset", "stratified_subset", "training_transform"]
