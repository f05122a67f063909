"""Whole-slide maps: a thumbnail with the patch scores over it, before and after an attack."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from . import _base
from ._base import CAM_CMAP


def _slide_panel(ax: Any, thumbnail: Any, values: Any, *, vmin: float, vmax: float, cmap: str, alpha: float,
                 contour: float | None, map_scale: float = 1.0) -> Any:
    """Draw ``values`` (NaN transparent) over ``thumbnail`` on ``ax``, a map pixel spanning ``map_scale``
    thumbnail pixels; returns the map's image for a colour bar."""
    ax.imshow(thumbnail, interpolation="nearest")
    h, w = values.shape
    masked = np.ma.masked_invalid(values)
    image = ax.imshow(masked, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha, interpolation="nearest",
                      extent=(-0.5, w * map_scale - 0.5, h * map_scale - 0.5, -0.5))
    finite = np.nan_to_num(values, nan=vmin)
    if contour is not None and finite.max() >= contour > finite.min():
        xs, ys = ((np.arange(n) + 0.5) * map_scale - 0.5 for n in (w, h))
        ax.contour(xs, ys, finite, levels=[contour], colors="white", linewidths=0.8)
    ax.set_xlim(-0.5, thumbnail.shape[1] - 0.5)
    ax.set_ylim(thumbnail.shape[0] - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    return image


def _slide_figsize(thumbnail: Any, panels: int) -> tuple[float, float]:
    h, w = thumbnail.shape[:2]
    panel_w = 6.0
    return panel_w * panels + 1.2, max(2.5, panel_w * h / max(w, 1) + 0.8)


def plot_slide_map(thumbnail: Any, values: Any, path: str | Path, *, label: str = "", title: str | None = None,
                   vmin: float = 0.0, vmax: float = 1.0, cmap: str = CAM_CMAP, alpha: float = 0.5,
                   contour: float | None = None, map_scale: float = 1.0) -> Path:
    """A slide map (h, w) blended over the thumbnail (H, W, 3) uint8, with a colour bar named ``label``; a map
    pixel spans ``map_scale`` thumbnail pixels (its downsample over the thumbnail's: 1 at thumbnail
    resolution, below 1 for a finer map); NaN pixels (off the tiles) show the thumbnail only; ``contour``
    draws the level set at that value. Returns the written path (PNG)."""
    fig, ax = plt.subplots(figsize=_slide_figsize(thumbnail, 1))
    image = _slide_panel(ax, thumbnail, values, vmin=vmin, vmax=vmax, cmap=cmap, alpha=alpha, contour=contour,
                         map_scale=map_scale)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02, label=label)
    if title:
        ax.set_title(title, fontsize=10)
    return _base._save(fig, path, 120)


def plot_slide_attack(thumbnail: Any, before: Any, after: Any, path: str | Path, *, label: str = "",
                      titles: Sequence[str] = ("clean", "attacked"), title: str | None = None,
                      vmin: float = 0.0, vmax: float = 1.0, contour: float | None = None,
                      map_scale: float = 1.0) -> Path:
    """Two slide maps side by side on one colour scale (the CAM before and after an attack), each over the
    thumbnail with the contour of its region at ``contour`` and a colour bar. Returns the written path (PNG)."""
    fig, axes = plt.subplots(1, 2, figsize=_slide_figsize(thumbnail, 2))
    for ax, values, name in zip(axes, (before, after), titles):
        image = _slide_panel(ax, thumbnail, values, vmin=vmin, vmax=vmax, cmap=CAM_CMAP, alpha=0.5, contour=contour,
                             map_scale=map_scale)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02, label=label)
        ax.set_title(name, fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    return _base._save(fig, path, 120)
