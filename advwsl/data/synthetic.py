"""Built-in synthetic histology: procedurally generated H&E-like tiles with an image-level label and a
pixel mask, the default dataset of every command (no download, no files shipped).

What it is. Each RGB tile shows pink stroma (fibrous eosin texture with slow intensity variation), small
round purple nuclei scattered at a random density, and a few pale lumen-like holes. A *lesion* tile also
contains one region of interest (ROI): a blob with an irregular border whose area ranges from about 3 %
to about 75 % of the tile (log-uniform), and whose pixels form the ground-truth mask. A *normal* tile has an
empty mask. The lesion is drawn with the same stain colours as the rest of the tile and with the same
expected nuclear area fraction, so it is not salient (section 1.2.3: regions of interest in histology are
not salient and not structured like objects): it differs only by nuclear size, shape and arrangement.
Per-tile stain variation (colour jitter, gamma) and background variation (nuclear density, holes) make
simple colour statistics a poor classifier, while a small CNN that looks at the nuclei learns the task.

Holes never overlap the ROI, and every lesion shows at least a few lesion nuclei, so the label is always
visible in the pixels. Lesion patterns (stand-ins named after the BACH classes of section 2.1.1.2, not
models of real pathology):

* ``carcinoma``: large, pleomorphic (round and elongated), vesicular nuclei (dark rim, pale centre, dark
  nucleolus) in crowded clusters,
* ``gland``: pale lumina ringed by small nuclei (benign-like glands),
* ``duct``: pale lumina ringed by large pleomorphic nuclei (duct-confined, in-situ-like).

Class sets: ``num_classes=2`` -> (normal, malignant=carcinoma); ``3`` -> (normal, benign=gland,
malignant=carcinoma); ``4`` -> (normal, benign=gland, in_situ=duct, invasive=carcinoma). With
``lesions_only`` there is no normal class and every tile has a lesion: ``num_classes=2`` -> (benign=gland,
malignant=carcinoma), the GlaS stand-in (two grades of glands, glands in every image); ``3`` -> (benign,
in_situ, invasive). The classes whose tiles carry a region are :attr:`SyntheticHistology.region_classes`.

Organization (section 2.1.2.2): a fixed test pool, and a train+valid pool partitioned into 5 seeded,
stratified folds (80 % train / 20 % validation). Tile ``i`` of a pool depends only on ``(seed, pool, i)``
and the generator settings, so the same seed gives identical tensors whatever the order of access, the
subset size or the caching (generated tiles are also shared between instances of one process).
Labels follow an exact, deterministic class-balance schedule.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ..errors import InputError
from .folds import assign_folds
from .registry import DatasetSpec, register_dataset
from .synthetic_tiles import render_tiles, tile_layout
from .transforms import Compose, RandomFlip, RandomRotate90

CLASS_SETS: dict[int, tuple[tuple[str, ...], tuple[str | None, ...]]] = {
    2: (("normal", "malignant"), (None, "carcinoma")),
    3: (("normal", "benign", "malignant"), (None, "gland", "carcinoma")),
    4: (("normal", "benign", "in_situ", "invasive"), (None, "gland", "duct", "carcinoma")),
}
_POOLS = {"trainval": 0, "test": 1}


#: Tiles generated in this process, shared by every instance with the same generator settings (the folds of
#: a k-fold run, or the many trainings of an ``advwsl reproduce`` table, draw from the same pools), least
#: recently added dropped beyond :data:`SHARED_CACHE_BYTES`.
_SHARED: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
SHARED_CACHE_BYTES = 512 * 2**20
_shared_bytes = [0]


def _share(key: tuple, tiles: tuple[torch.Tensor, torch.Tensor]) -> None:
    if key in _SHARED:
        return
    _SHARED[key] = tiles
    _shared_bytes[0] += sum(t.numel() * t.element_size() for t in tiles)
    while _shared_bytes[0] > SHARED_CACHE_BYTES and _SHARED:
        _, old = _SHARED.popitem(last=False)
        _shared_bytes[0] -= sum(t.numel() * t.element_size() for t in old)


def class_schedule(n: int, weights: Sequence[float]) -> np.ndarray:
    """Labels ``0..n-1`` with exact class balance: sample i gets the class whose count lags most behind
    ``(i + 1) * weight`` (largest deficit; ties to the smaller class index)."""
    w = np.asarray(weights, np.float64)
    w = w / w.sum()
    counts = np.zeros(len(w))
    out = np.empty(n, np.int64)
    for i in range(n):
        c = int(np.argmax((i + 1) * w - counts + 1e-9 * -np.arange(len(w))))
        out[i] = c
        counts[c] += 1
    return out


class SyntheticHistology(Dataset):
    """Synthetic H&E-like tiles with image labels and ROI masks (see the module docstring).

    Parameters
    ----------
    split : ``"train"``, ``"valid"``, ``"test"`` or ``"trainval"``.
    n : keep only the first ``n`` samples of the split (``None``: all).
    size : tile side in pixels.
    num_classes : 2, 3 or 4 (class names in :attr:`classes`); 2 or 3 with ``lesions_only``.
    lesions_only : drop the normal class: every tile has a lesion (see the module docstring).
    seed : generator seed; also seeds the folds.
    fold : which of the ``n_folds`` folds gives the validation set (section 2.1.2.2).
    n_trainval, n_test : sizes of the train+valid pool and of the fixed test pool.
    roi_fraction : (min, max) ROI area as a fraction of the tile (sampled log-uniformly).
    class_weights : relative class frequencies (default: balanced).
    scale : nucleus size multiplier (1 = nuclei of radius 1-3.6 px).
    transform : callable on the sample dict (see :mod:`advwsl.data.transforms`), applied on access.
    cache : keep generated tiles in memory.

    ``__getitem__`` returns ``{"image": float32 (3, size, size) in [0, 1], "label": int,
    "mask": float32 (size, size) in {0, 1}, "index": int}``.
    """

    def __init__(self, split: str = "train", *, n: int | None = None, size: int = 64, num_classes: int = 2,
                 seed: int = 0, fold: int = 0, n_folds: int = 5, n_trainval: int = 1280, n_test: int = 256,
                 roi_fraction: tuple[float, float] = (0.03, 0.75), class_weights: Sequence[float] | None = None,
                 scale: float = 1.0, transform: Callable[[dict], dict] | None = None, cache: bool = True,
                 lesions_only: bool = False) -> None:
        if split not in ("train", "valid", "test", "trainval"):
            raise InputError(f"split must be 'train', 'valid', 'test' or 'trainval', got {split!r}")
        sets = (2, 3) if lesions_only else tuple(CLASS_SETS)
        if num_classes not in sets:
            raise InputError(f"num_classes must be one of {list(sets)}"
                             f"{' with lesions_only' if lesions_only else ''}, got {num_classes!r}")
        if size < 16:
            raise InputError(f"size must be at least 16 pixels, got {size!r}")
        lo, hi = roi_fraction
        if not 0 < lo <= hi <= 1:
            raise InputError(f"roi_fraction must satisfy 0 < min <= max <= 1, got {roi_fraction}")
        weights = [1.0] * num_classes if class_weights is None else list(class_weights)
        if len(weights) != num_classes or min(weights) < 0 or sum(weights) <= 0:
            raise InputError(f"class_weights must be {num_classes} non-negative numbers, got {class_weights}")
        if not 0 <= fold < n_folds:
            raise InputError(f"fold must be in 0..{n_folds - 1}, got {fold}")
        self.split, self.size, self.num_classes, self.seed, self.fold = split, size, num_classes, seed, fold
        self.roi_fraction, self.scale, self.transform, self.cache = (lo, hi), float(scale), transform, cache
        if lesions_only:
            names, patterns = CLASS_SETS[num_classes + 1]
            self.classes, self.patterns = names[1:], patterns[1:]
        else:
            self.classes, self.patterns = CLASS_SETS[num_classes]
        self.region_classes = tuple(k for k, p in enumerate(self.patterns) if p is not None)
        self.pool = "test" if split == "test" else "trainval"
        pool_labels = class_schedule(n_test if split == "test" else n_trainval, weights)
        indices = np.arange(len(pool_labels))
        if split in ("train", "valid"):
            folds = assign_folds(pool_labels, n_folds=n_folds, seed=seed)
            indices = indices[(folds == fold) == (split == "valid")]
        self.indices = indices[:n] if n is not None else indices
        self.labels = pool_labels[self.indices]
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.indices)

    def _generate(self, positions: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        layouts = []
        for p in positions:
            rng = np.random.default_rng([self.seed, _POOLS[self.pool], int(self.indices[p]), self.size])
            layouts.append(tile_layout(rng, self.size, self.patterns[int(self.labels[p])], self.roi_fraction,
                                       self.scale))
        return render_tiles(layouts, self.scale)

    def _key(self, p: int) -> tuple:
        return (self.seed, self.pool, int(self.indices[p]), self.size, self.patterns[int(self.labels[p])],
                self.roi_fraction, self.scale)

    def _tiles(self, positions: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.cache:
            return self._generate(positions)
        for p in positions:  # tiles another instance already generated (another fold, split or run)
            if p not in self._cache and self._key(p) in _SHARED:
                self._cache[p] = _SHARED[self._key(p)]
        todo = [p for p in positions if p not in self._cache]
        for start in range(0, len(todo), 128):
            chunk = todo[start:start + 128]
            imgs, masks = self._generate(chunk)
            for p, im, m in zip(chunk, imgs, masks):
                self._cache[p] = (im, m)
                _share(self._key(p), (im, m))
        return (torch.stack([self._cache[p][0] for p in positions]),
                torch.stack([self._cache[p][1] for p in positions]))

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        i = i % len(self)
        if self.cache and i not in self._cache:
            # generate the surrounding chunk at once: batched rendering is much faster than one by one
            start = (i // 128) * 128
            self._tiles(list(range(start, min(start + 128, len(self)))))
        img, mask = self._tiles([i])
        sample = {"image": img[0], "label": int(self.labels[i]), "mask": mask[0], "index": int(self.indices[i])}
        return self.transform(sample) if self.transform is not None else sample

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All untransformed samples at once: images (N, 3, H, W), labels (N,) int64, masks (N, H, W)."""
        imgs, masks = self._tiles(list(range(len(self))))
        return imgs, torch.from_numpy(self.labels.copy()), masks


def _synthetic(root: str | None, split: str, *, fold: int = 0, transform: Callable[[dict], dict] | None = None,
               **kwargs) -> SyntheticHistology:
    return SyntheticHistology(split, fold=fold, transform=transform, **kwargs)


def split_table(root: str | None, *, fold: int, n_folds: int = 5, seed: int = 0,
                **kwargs) -> pd.DataFrame:
    """The train/valid/test assignment of fold ``fold``: pool, index in the pool, label and split of every tile."""
    parts = []
    for split in ("train", "valid", "test"):
        ds = SyntheticHistology(split, fold=fold, n_folds=n_folds, seed=seed, **kwargs)
        parts.append(pd.DataFrame({"pool": ds.pool, "index": ds.indices, "label": ds.labels, "split": split}))
    return pd.concat(parts, ignore_index=True)


register_dataset(DatasetSpec(
    "synthetic", _synthetic, "built-in synthetic H&E-like tiles with ROI masks (default; no files needed)",
    needs_root=False, has_masks=True, split_table=split_table,
    train_transform=lambda: Compose([RandomRotate90(), RandomFlip()]),
    options={"size": "tile side (64)", "num_classes": "2, 3 or 4", "n_trainval": "tiles", "n_test": "tiles",
             "n": "first n samples of the split", "seed": "generator seed (0)", "n_folds": "folds (5)",
             "roi_fraction": "[min, max] ROI area share", "class_weights": "relative class frequencies",
             "scale": "nucleus size multiplier (1.0)", "cache": "keep tiles in memory (true)",
             "lesions_only": "no normal class, a lesion in every tile (num_classes 2: the GlaS stand-in)"}))
