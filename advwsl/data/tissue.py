"""Tissue detection (section 2.1.2.3): Otsu threshold of the HSV saturation of a low-resolution image of the
slide (background glass is white or grey, so unsaturated; stained tissue is pink or purple), and the tissue
share of level-0 windows measured on that map."""

from __future__ import annotations

import numpy as np

from .slides import Slide


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation (max - min) / max of uint8 RGB, 0 where max = 0."""
    rgb = rgb.astype(np.float32)
    mx, mn = rgb.max(axis=-1), rgb.min(axis=-1)
    return np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0.0)


def otsu_tissue(rgb: np.ndarray) -> tuple[float, np.ndarray]:
    """(Otsu threshold of the saturation, boolean tissue mask ``saturation > threshold``) of uint8 RGB
    (h, w, 3). An image of a single saturation (all glass or all tissue) gets threshold 1: no tissue."""
    from skimage.filters import threshold_otsu

    sat = saturation(rgb)
    thr = float(threshold_otsu(sat)) if float(sat.max() - sat.min()) > 1e-6 else 1.0
    return thr, sat > thr


def tissue_map(slide: Slide, downsample: float) -> tuple[float, np.ndarray, float]:
    """(Otsu threshold on saturation, boolean tissue map at about ``downsample``, its exact downsample),
    from :meth:`Slide.read_thumbnail` (memory bounded by the map, pyramidal or not)."""
    thumb, ds = slide.read_thumbnail(downsample)
    thr, mask = otsu_tissue(thumb)
    return thr, mask, ds


def window_fractions(mask: np.ndarray, downsample: float, xs: np.ndarray, ys: np.ndarray,
                     size: float) -> np.ndarray:
    """Share of ``mask`` (a map at ``downsample``) inside each level-0 window (x, y, size), counting every
    map pixel the window touches (an integral image: one pass whatever the number of windows)."""
    integral = np.pad(mask.astype(np.float64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = mask.shape
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    c0 = np.clip(np.floor(xs / downsample).astype(int), 0, w - 1)
    r0 = np.clip(np.floor(ys / downsample).astype(int), 0, h - 1)
    c1 = np.clip(np.maximum(c0 + 1, np.ceil((xs + size) / downsample).astype(int)), 1, w)
    r1 = np.clip(np.maximum(r0 + 1, np.ceil((ys + size) / downsample).astype(int)), 1, h)
    total = integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]
    return total / ((r1 - r0) * (c1 - c0))
