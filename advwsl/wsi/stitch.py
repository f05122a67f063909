"""Slide maps at thumbnail resolution: per-tile values and per-tile class activation maps pasted at the tiles'
places, so a slide's heatmaps cost the memory of its thumbnail whatever the number of tiles.

A map pixel ``(i, j)`` covers level-0 pixels ``[j d, (j + 1) d) x [i d, (i + 1) d)`` with ``d`` the map's
downsample. A tile at level-0 ``(x, y)`` of side ``s`` covers map pixels ``round(x / d)`` to
``round((x + s) / d)`` (at least one), so adjacent tiles share no pixel and leave no gap. Pixels no tile
covers are NaN.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class SlideCanvas:
    """A float32 map of ``shape`` (H, W) at ``downsample`` level-0 pixels per pixel, NaN until painted."""

    def __init__(self, shape: tuple[int, int], downsample: float) -> None:
        self.downsample = float(downsample)
        self.values = np.full(shape, np.nan, np.float32)

    def boxes(self, xs: np.ndarray, ys: np.ndarray, size0: int) -> np.ndarray:
        """Map pixel boxes (row0, row1, col0, col1) of level-0 tiles (xs, ys) of side ``size0``, clipped."""
        h, w = self.values.shape
        d = self.downsample
        xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
        c0 = np.clip(np.round(xs / d), 0, w - 1).astype(np.int64)
        r0 = np.clip(np.round(ys / d), 0, h - 1).astype(np.int64)
        c1 = np.clip(np.maximum(c0 + 1, np.round((xs + size0) / d)), 1, w).astype(np.int64)
        r1 = np.clip(np.maximum(r0 + 1, np.round((ys + size0) / d)), 1, h).astype(np.int64)
        return np.stack([r0, r1, c0, c1], axis=1)

    def paint(self, values: np.ndarray, xs: np.ndarray, ys: np.ndarray, size0: int) -> None:
        """Fill each tile's box with its value."""
        for v, (r0, r1, c0, c1) in zip(np.asarray(values, np.float32), self.boxes(xs, ys, size0)):
            self.values[r0:r1, c0:c1] = v

    def paste(self, maps: torch.Tensor, xs: np.ndarray, ys: np.ndarray, size0: int) -> None:
        """Paste each tile's map (N, h, w) into its box: bilinear when the box is larger than the map (the
        CAM upsampled as :func:`advwsl.models.wsl.upsample_cams` does), else the mean over each box pixel
        (area), i.e. the upsampled CAM averaged at the map's resolution."""
        maps = maps.detach().float()
        for m, (r0, r1, c0, c1) in zip(maps, self.boxes(xs, ys, size0)):
            size = (int(r1 - r0), int(c1 - c0))
            if tuple(m.shape) != size:
                larger = size[0] >= m.shape[0] and size[1] >= m.shape[1]
                m = F.interpolate(m[None, None], size=size, mode="bilinear" if larger else "area",
                                  **({"align_corners": False} if larger else {}))[0, 0]
            self.values[r0:r1, c0:c1] = m.cpu().numpy()


def scale_to_range(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``(values - lo) / (hi - lo)``, NaN kept; all zeros when ``hi <= lo``."""
    if not hi > lo:
        return np.where(np.isnan(values), np.nan, 0.0).astype(np.float32)
    return ((values - lo) / (hi - lo)).astype(np.float32)


def finite_range(values: np.ndarray) -> tuple[float, float]:
    """(min, max) over the finite values (0, 0 when there is none)."""
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
