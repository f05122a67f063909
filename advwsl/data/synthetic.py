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

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import InputError
from .folds import assign_folds
from .registry import DatasetSpec, register_dataset
from .transforms import Compose, RandomFlip, RandomRotate90

CLASS_SETS: dict[int, tuple[tuple[str, ...], tuple[str | None, ...]]] = {
    2: (("normal", "malignant"), (None, "carcinoma")),
    3: (("normal", "benign", "malignant"), (None, "gland", "carcinoma")),
    4: (("normal", "benign", "in_situ", "invasive"), (None, "gland", "duct", "carcinoma")),
}
_POOLS = {"trainval": 0, "test": 1}
_SMALL = ((1.0, 1.0, 0.0), (1.25, 1.25, 0.0), (1.5, 1.5, 0.0))           # (semi-axis a, b, angle)
_LARGE = ((2.4, 2.4, 0.0), (3.0, 3.0, 0.0), (3.4, 3.4, 0.0), (3.6, 2.5, 0.0), (3.6, 2.5, 45.0),
          (3.6, 2.5, 90.0), (3.6, 2.5, 135.0))
_N_SMALL, _N_LARGE = len(_SMALL), len(_LARGE)


@lru_cache(maxsize=8)
def _kernels(scale: float) -> tuple[torch.Tensor, np.ndarray]:
    """Anti-aliased nucleus stamps (K, 1, k, k) and their integrals: small solid ellipses, then large
    vesicular ones (dark rim, pale centre, dark central nucleolus, as in malignant nuclei)."""
    shapes = _SMALL + _LARGE
    half = int(math.ceil(max(a for a, _, _ in shapes) * scale + 1))
    sub = 4  # 4x4 supersampling per pixel for the coverage
    t = (np.arange(-half * sub, (half + 1) * sub) + 0.5) / sub - 0.5
    yy, xx = np.meshgrid(t, t, indexing="ij")
    stamps = []
    k = 2 * half + 1
    for i, (a, b, ang) in enumerate(shapes):
        th = math.radians(ang)
        u = (xx * math.cos(th) + yy * math.sin(th)) / (a * scale)
        v = (-xx * math.sin(th) + yy * math.cos(th)) / (b * scale)
        r2 = u * u + v * v
        stamp = (r2 <= 1.0).astype(np.float32)
        if i >= _N_SMALL:
            stamp = stamp * (1.0 - 0.7 * (r2 <= 0.3))
            stamp = np.maximum(stamp, (xx * xx + yy * yy <= (0.8 * scale) ** 2).astype(np.float32))
        stamps.append(stamp.reshape(k, sub, k, sub).mean(axis=(1, 3)))
    bank = np.stack(stamps)[:, None].astype(np.float32)
    return torch.from_numpy(bank), bank.sum(axis=(1, 2, 3))


def _smooth_noise(rng: np.random.Generator, size: int, cell: int, count: int) -> np.ndarray:
    """``count`` smooth random fields (count, size, size) in about [-1, 1]: bilinear interpolation of a
    coarse Gaussian grid with one node every ``cell`` pixels."""
    g = size // cell + 2
    coarse = torch.from_numpy(rng.standard_normal((1, count, g, g)).astype(np.float32))
    fine = F.interpolate(coarse, size=(g - 1) * cell, mode="bilinear", align_corners=True)
    return fine[0, :, :size, :size].clamp(-2.5, 2.5).numpy() / 2.5


def _disc_union(size: int, circles: np.ndarray) -> np.ndarray:
    """Anti-aliased union of discs (rows cx, cy, r) as an (size, size) coverage map."""
    if len(circles) == 0:
        return np.zeros((size, size), np.float32)
    c = np.arange(size, dtype=np.float32)
    dx = c[None, None, :] - circles[:, 0, None, None]
    dy = c[None, :, None] - circles[:, 1, None, None]
    cover = np.clip(circles[:, 2, None, None] - np.sqrt(dx * dx + dy * dy) + 0.5, 0.0, 1.0)
    return cover.max(axis=0).astype(np.float32)


def _roi_mask(rng: np.random.Generator, size: int, roi_fraction: tuple[float, float], border: np.ndarray,
              xx: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The ROI of a lesion tile: an ellipse of log-uniform area with a noisy border (``border`` in [-1, 1]),
    and its centre pixel (always inside the mask)."""
    s, area = float(size), float(size * size)
    lo, hi = roi_fraction
    frac = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    aspect = math.exp(rng.uniform(-0.4, 0.4))
    a = math.sqrt(frac * area / math.pi / aspect)
    b = a * aspect
    ext = 0.5 * max(a, b)
    cx, cy = (rng.uniform(min(ext, s / 2), max(s - ext, s / 2)) for _ in range(2))
    th = rng.uniform(0, math.pi)
    u = ((xx - cx) * math.cos(th) + (yy - cy) * math.sin(th)) / a
    v = (-(xx - cx) * math.sin(th) + (yy - cy) * math.cos(th)) / b
    mask = (np.sqrt(u * u + v * v) < 1.0 + 0.3 * border).astype(np.float32)
    centre = (int(min(max(round(cx), 0), size - 1)), int(min(max(round(cy), 0), size - 1)))
    mask[centre[1], centre[0]] = 1.0
    return mask, centre


def _holes(rng: np.random.Generator, size: int, scale: float, mask: np.ndarray | None, xx: np.ndarray,
           yy: np.ndarray) -> np.ndarray:
    """Pale holes anywhere (vessels, fat, tears) as rows (cx, cy, r); with a ROI ``mask`` they are moved
    out of it (same count as in normal tiles) so they never hide the lesion, or dropped (r = 0)."""
    s = float(size)
    n_holes = int(rng.integers(0, 4))
    holes = np.stack([rng.uniform(0, s, n_holes), rng.uniform(0, s, n_holes),
                      rng.uniform(1.5, 5.0, n_holes) * scale], axis=1)
    if mask is None:
        return holes
    for h in holes:
        for _ in range(20):
            if not (mask[np.hypot(xx - h[0], yy - h[1]) <= h[2] + 1.5] > 0).any():
                break
            h[0], h[1] = rng.uniform(0, s, 2)
        else:
            h[2] = 0.0
    return holes


def _glands(rng: np.random.Generator, size: int, scale: float, big: bool, mask: np.ndarray,
            centre: tuple[int, int], impulses: np.ndarray) -> np.ndarray:
    """Gland (small nuclei) or duct (``big``: large nuclei) lumina on a jittered grid inside the ROI, one at
    its centre, each ringed by nuclei added to ``impulses``; returns the lumina as rows (cx, cy, r)."""
    s = float(size)
    spacing = (16.0 if big else 11.0) * scale
    off = rng.uniform(0, spacing, 2)
    gx, gy = np.meshgrid(np.arange(off[0], s, spacing), np.arange(off[1], s, spacing))
    cand = np.stack([gx.ravel(), gy.ravel()], 1) + rng.uniform(-2, 2, (gx.size, 2)) * scale
    cand = np.clip(cand, 0, s - 1)
    keep = mask[cand[:, 1].round().astype(int), cand[:, 0].round().astype(int)] > 0
    cand = cand[keep]
    cand = cand[np.hypot(cand[:, 0] - centre[0], cand[:, 1] - centre[1]) > 0.8 * spacing]
    cand = np.concatenate([np.array([centre], np.float32), cand.astype(np.float32)])
    r_lumen = rng.uniform(2.2, 3.4, len(cand)) * scale if big else rng.uniform(1.8, 3.0, len(cand)) * scale
    lumina = np.concatenate([cand, r_lumen[:, None]], 1).astype(np.float32)
    first = _N_SMALL if big else 0
    n_kinds = _N_LARGE if big else _N_SMALL
    r_nuc = (2.6 if big else 1.25) * scale
    for cx_, cy_, rl in lumina:
        ring = rl + r_nuc + 0.3 * scale
        m = max(5, int(round(2 * math.pi * ring / (2 * r_nuc + (2.5 if big else 0.8) * scale))))
        ang = rng.uniform(0, 2 * math.pi) + 2 * math.pi * np.arange(m) / m + rng.normal(0, 0.08, m)
        px = np.clip(np.round(cx_ + ring * np.cos(ang)), 0, size - 1).astype(int)
        py = np.clip(np.round(cy_ + ring * np.sin(ang)), 0, size - 1).astype(int)
        np.add.at(impulses, (first + rng.integers(0, n_kinds, m), py, px), 1.0)
    return lumina


def _scatter_nuclei(rng: np.random.Generator, size: int, scale: float, pattern: str | None, mask: np.ndarray,
                    centre: tuple[int, int] | None, clustering: np.ndarray, impulses: np.ndarray) -> None:
    """Scattered nuclei added to ``impulses``: small ones in the background at a random density; large,
    clustered ones in a carcinoma ROI (same expected area fraction, one at its centre); sparser small ones
    in a gland or duct ROI."""
    _, areas = _kernels(scale)
    phi_bg = rng.uniform(0.06, 0.18)
    rate = np.full((size, size), phi_bg / areas[:_N_SMALL].mean(), np.float32)
    large = np.zeros((size, size), bool)
    if pattern == "carcinoma":
        phi_les = rng.uniform(0.06, 0.18)
        roi_area = max(float(mask.sum()), 1.0)
        r_les = max(phi_les / areas[_N_SMALL:].mean(), 5.0 / roi_area)
        clusters = np.clip(0.5 + 0.9 * clustering, 0.15, 1.6)
        rate = np.where(mask > 0, r_les * clusters, rate)
        large = mask > 0
        impulses[_N_SMALL + int(rng.integers(0, _N_LARGE)), centre[1], centre[0]] += 1.0
    elif pattern is not None:
        rate = np.where(mask > 0, 0.4 * rate, rate)
    hit = rng.random((size, size)) < rate
    kind = np.where(large, _N_SMALL + rng.integers(0, _N_LARGE, (size, size)),
                    rng.integers(0, _N_SMALL, (size, size)))
    ys, xs = np.nonzero(hit)
    np.add.at(impulses, (kind[ys, xs], ys, xs), 1.0)


def _stroma_and_stain(rng: np.random.Generator, size: int, scale: float, noise: np.ndarray, xx: np.ndarray,
                      yy: np.ndarray) -> dict[str, np.ndarray]:
    """Stroma intensity (oriented fibres warped by ``noise[1]``, slow variation ``noise[0]``, grain),
    chromatin texture, stain colours, per-channel gamma and pixel noise of one tile."""
    th = rng.uniform(0, math.pi)
    freq = rng.uniform(0.12, 0.22) / scale
    fibre = np.sin(2 * math.pi * freq * (xx * math.cos(th) + yy * math.sin(th)) + 2.5 * noise[1] * math.pi)
    grain = rng.standard_normal((size, size)).astype(np.float32)
    stroma = np.clip(0.5 + 0.14 * fibre + 0.2 * noise[0] + 0.06 * grain, 0.0, 1.0)
    colours = np.array([[0.96, 0.76, 0.86], [0.82, 0.42, 0.63], [0.40, 0.24, 0.58], [0.97, 0.92, 0.95]],
                       np.float32) + rng.uniform(-0.05, 0.05, (4, 3)).astype(np.float32)
    return {
        "stroma": stroma.astype(np.float32),
        "chromatin": rng.random((size, size)).astype(np.float32), "colours": np.clip(colours, 0, 1),
        "gamma": rng.uniform(0.85, 1.15, 3).astype(np.float32),
        "pixel_noise": rng.standard_normal((3, size, size)).astype(np.float32),
    }


def _layout(rng: np.random.Generator, size: int, pattern: str | None, roi_fraction: tuple[float, float],
            scale: float) -> dict[str, np.ndarray]:
    """Random layout of one tile: ROI mask, lumen coverage, nucleus impulses per stamp, stroma intensity,
    chromatin texture and stain colours (everything needing per-tile randomness). The helpers draw from
    ``rng`` in a fixed order, so a tile depends only on its generator's seed."""
    noise = _smooth_noise(rng, size, max(4, size // 8), 4)  # stroma, fibre warp, ROI border, clustering
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    mask, centre = np.zeros((size, size), np.float32), None
    if pattern is not None:
        mask, centre = _roi_mask(rng, size, roi_fraction, noise[2], xx, yy)
    holes = _holes(rng, size, scale, mask if pattern is not None else None, xx, yy)
    impulses = np.zeros((_N_SMALL + _N_LARGE, size, size), np.float32)
    lumina = np.zeros((0, 3), np.float32)
    if pattern in ("gland", "duct"):
        lumina = _glands(rng, size, scale, pattern == "duct", mask, centre, impulses)
    lumen = _disc_union(size, np.concatenate([holes[holes[:, 2] > 0].astype(np.float32), lumina]))
    _scatter_nuclei(rng, size, scale, pattern, mask, centre, noise[3], impulses)
    return {"mask": mask, "lumen": lumen, "impulses": impulses, **_stroma_and_stain(rng, size, scale, noise, xx, yy)}


def _render(layouts: list[dict[str, np.ndarray]], scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch-render layouts into 8-bit-quantized RGB images (B, 3, H, W) in [0, 1] and masks (B, H, W)."""
    def stack(key: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([lay[key] for lay in layouts]))

    bank, _ = _kernels(scale)
    impulses = stack("impulses")
    size, k = impulses.shape[-1], bank.shape[-1]
    # stamping = a convolution of the sparse impulse maps with the stamps; FFT is cheaper than direct here
    full = (size + k - 1, size + k - 1)
    spec = (torch.fft.rfft2(impulses, s=full) * torch.fft.rfft2(bank[:, 0], s=full)).sum(1, keepdim=True)
    nuclei = torch.fft.irfft2(spec, s=full)[..., k // 2:k // 2 + size, k // 2:k // 2 + size]
    lumen = stack("lumen").unsqueeze(1)
    nuclei = nuclei.clamp(0, 1) * (1 - lumen)
    nuclei = nuclei * (0.7 + 0.3 * stack("chromatin").unsqueeze(1))
    col = stack("colours")[:, :, :, None, None]  # (B, 4, 3, 1, 1): stroma light/dark, nucleus, lumen
    t = stack("stroma").unsqueeze(1)
    img = col[:, 0] * (1 - t) + col[:, 1] * t
    img = img * (1 - lumen) + col[:, 3] * lumen
    img = img * (1 - nuclei) + col[:, 2] * nuclei
    img = img.clamp(0, 1) ** stack("gamma")[:, :, None, None]
    img = (img + 0.012 * stack("pixel_noise")).clamp(0, 1)
    img = torch.round(img * 255) / 255
    return img, stack("mask")


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
            layouts.append(_layout(rng, self.size, self.patterns[int(self.labels[p])], self.roi_fraction,
                                   self.scale))
        return _render(layouts, self.scale)

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
