"""Slide maps at thumbnail resolution: per-tile values and per-tile class activation maps pasted at the tiles'
places, so a slide's heatmaps cost the memory of its thumbnail whatever the number of tiles.

A map pixel ``(i, j)`` covers level-0 pixels ``[j d, (j + 1) d) x [i d, (i + 1) d)`` with ``d`` the map's
downsample. A tile at level-0 ``(x, y)`` of side ``s`` covers map pixels ``round(x / d)`` to
``round((x + s) / d)`` (at least one), so adjacent tiles share no pixel and leave no gap. Overlapping tiles
(a stride smaller than the tile) share pixels: a pixel's value is the mean of the tiles covering it. Pixels
no tile covers are NaN.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class SlideCanvas:
    """A float32 map of ``shape`` (H, W) at ``downsample`` level-0 pixels per pixel: the sum of what the tiles
    pasted and how many tiles cover each pixel; :attr:`values` is their mean (NaN where no tile is)."""

    def __init__(self, shape: tuple[int, int], downsample: float) -> None:
        self.downsample = float(downsample)
        self.total = np.zeros(shape, np.float32)
        self.coverage = np.zeros(shape, np.uint16)

    @classmethod
    def from_values(cls, values: np.ndarray, coverage: np.ndarray, downsample: float) -> "SlideCanvas":
        """The canvas whose :attr:`values` and :attr:`coverage` are these (a copy)."""
        canvas = cls(values.shape, downsample)
        canvas.coverage[:] = coverage
        canvas.total[:] = np.where(coverage > 0, np.nan_to_num(values) * coverage, 0.0)
        return canvas

    @property
    def values(self) -> np.ndarray:
        covered = self.coverage > 0
        out = np.full(self.total.shape, np.nan, np.float32)
        out[covered] = self.total[covered] / self.coverage[covered]
        return out

    def boxes(self, xs: np.ndarray, ys: np.ndarray, size0: int) -> np.ndarray:
        """Map pixel boxes (row0, row1, col0, col1) of level-0 tiles (xs, ys) of side ``size0``, clipped."""
        h, w = self.total.shape
        d = self.downsample
        xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
        c0 = np.clip(np.round(xs / d), 0, w - 1).astype(np.int64)
        r0 = np.clip(np.round(ys / d), 0, h - 1).astype(np.int64)
        c1 = np.clip(np.maximum(c0 + 1, np.round((xs + size0) / d)), 1, w).astype(np.int64)
        r1 = np.clip(np.maximum(r0 + 1, np.round((ys + size0) / d)), 1, h).astype(np.int64)
        return np.stack([r0, r1, c0, c1], axis=1)

    def paint(self, values: np.ndarray, xs: np.ndarray, ys: np.ndarray, size0: int) -> None:
        """Add each tile's value over its box."""
        for v, (r0, r1, c0, c1) in zip(np.asarray(values, np.float32), self.boxes(xs, ys, size0)):
            self.total[r0:r1, c0:c1] += v
            self.coverage[r0:r1, c0:c1] += 1

    def _resized(self, maps: torch.Tensor, xs: np.ndarray, ys: np.ndarray, size0: int):
        """(box, map resized to the box) per tile: bilinear when the box is larger than the map (the CAM
        upsampled as :func:`advwsl.models.wsl.upsample_cams` does), else the mean over each box pixel (area),
        i.e. the upsampled CAM averaged at the map's resolution."""
        for m, (r0, r1, c0, c1) in zip(maps.detach().float(), self.boxes(xs, ys, size0)):
            size = (int(r1 - r0), int(c1 - c0))
            if tuple(m.shape) != size:
                larger = size[0] >= m.shape[0] and size[1] >= m.shape[1]
                m = F.interpolate(m[None, None], size=size, mode="bilinear" if larger else "area",
                                  **({"align_corners": False} if larger else {}))[0, 0]
            yield (slice(r0, r1), slice(c0, c1)), m.cpu().numpy()

    def paste(self, maps: torch.Tensor, xs: np.ndarray, ys: np.ndarray, size0: int) -> None:
        """Add each tile's map (N, h, w), resized to its box, over the box."""
        for box, m in self._resized(maps, xs, ys, size0):
            self.total[box] += m
            self.coverage[box] += 1

    def replace(self, old: torch.Tensor, new: torch.Tensor, xs: np.ndarray, ys: np.ndarray, size0: int) -> None:
        """Replace the tiles' pasted maps ``old`` by ``new`` (same tiles, coverage unchanged)."""
        for (box, before), (_, after) in zip(self._resized(old, xs, ys, size0), self._resized(new, xs, ys, size0)):
            self.total[box] -= before
            self.total[box] += after


def scale_to_range(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``(values - lo) / (hi - lo)``, NaN kept; all zeros when ``hi <= lo``."""
    if not hi > lo:
        return np.where(np.isnan(values), np.nan, 0.0).astype(np.float32)
    return ((values - lo) / (hi - lo)).astype(np.float32)


def finite_range(values: np.ndarray) -> tuple[float, float]:
    """(min, max) over the finite values (0, 0 when there is none)."""
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
