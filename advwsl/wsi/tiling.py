"""Tiling a slide: the resolution of the tiles (from µm/px, objective power, a level or a downsample), the
grid of tiles that are mostly tissue (adjacent, or overlapping by ``overlap`` tile pixels), and the tiles as
a dataset read lazily from the file.

A tile of ``tile_size`` pixels at downsample ``d`` covers ``round(tile_size * d)`` level-0 pixels. It is read
from the pyramid level of largest downsample not above ``d`` and, when that level is not ``d`` itself,
reduced to ``tile_size`` by area averaging (PIL's box filter). The grid holds the tiles wholly inside the
slide (a partial last row and column are left out), row by row, one every ``round((tile_size - overlap) *
d)`` level-0 pixels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import InputError
from ..data.slides import Slide, open_slide
from ..data.tissue import window_fractions

#: Microns per pixel at objective power 1: 10x = 1 µm/px, 20x = 0.5 µm/px, 40x = 0.25 µm/px.
MAGNIFICATION_MPP = 10.0
#: A pyramid level within this relative distance of the asked downsample is read as is.
LEVEL_TOLERANCE = 0.05


def resolve_downsample(slide: Slide, *, mpp: float | None = None, magnification: float | None = None,
                       level: int | None = None, downsample: float | None = None) -> float:
    """Level-0 pixels per tile pixel for at most one of ``mpp`` (µm/px), ``magnification`` (objective power,
    converted with :data:`MAGNIFICATION_MPP`), ``level`` or ``downsample``; 1 (level 0) when none is given.

    A pyramid level within :data:`LEVEL_TOLERANCE` of the result is used instead (no resampling)."""
    given = [k for k, v in (("mpp", mpp), ("magnification", magnification), ("level", level),
                            ("downsample", downsample)) if v is not None]
    if len(given) > 1:
        raise InputError(f"give at most one of mpp, magnification, level and downsample, got {given}")
    if level is not None:
        if not 0 <= level < slide.level_count:
            raise InputError(f"level {level} does not exist: {slide.path.name} has levels 0 to "
                             f"{slide.level_count - 1} (downsamples {[round(d, 3) for d in slide.level_downsamples]})")
        return slide.level_downsamples[level]
    if mpp is not None or magnification is not None:
        target = mpp if mpp is not None else MAGNIFICATION_MPP / magnification
        asked = f"{mpp} µm/px" if mpp is not None else f"magnification {magnification}x (= {target:g} µm/px)"
        if slide.mpp is None:
            raise InputError(f"{asked} was asked for, but {slide.path.name} records no microns per pixel; choose "
                             f"the resolution with --level (0 to {slide.level_count - 1}) or a downsample instead")
        downsample = target / (sum(slide.mpp) / 2)
        if downsample < 1 - LEVEL_TOLERANCE:
            raise InputError(f"{asked} is finer than the scan ({slide.mpp[0]:g} µm/px at level 0); ask for "
                             f"{slide.mpp[0]:g} µm/px or coarser")
    ds = 1.0 if downsample is None else float(downsample)
    if ds < 1 - LEVEL_TOLERANCE:
        raise InputError(f"downsample must be >= 1 (level-0 pixels per tile pixel), got {ds}")
    for level_ds in slide.level_downsamples:
        if abs(level_ds / ds - 1) <= LEVEL_TOLERANCE:
            return level_ds
    return ds


@dataclass(frozen=True, eq=False)
class TileGrid:
    """Tiles of one slide: level-0 top-left corners ``xs``, ``ys`` and ``tissue`` shares (arrays of one
    entry per tile), the model's ``tile_size``, the level-0 side ``size0`` of a tile, the ``downsample``
    (level-0 pixels per tile pixel), the ``level`` and the side ``read_size`` read there, and the level-0
    ``stride`` between neighbouring tiles (None: ``size0``, adjacent tiles)."""

    xs: np.ndarray
    ys: np.ndarray
    tissue: np.ndarray
    tile_size: int
    size0: int
    downsample: float
    level: int
    read_size: int
    stride: int | None = None

    @property
    def stride0(self) -> int:
        """Level-0 pixels between the corners of neighbouring tiles."""
        return self.stride or self.size0

    def __len__(self) -> int:
        return len(self.xs)

    def subset(self, keep: np.ndarray) -> "TileGrid":
        """The tiles where the boolean ``keep`` is true (same tiling)."""
        return dataclasses.replace(self, xs=self.xs[keep], ys=self.ys[keep], tissue=self.tissue[keep])

    def read(self, slide: Slide, i: int) -> np.ndarray:
        """Tile ``i`` as uint8 RGB (tile_size, tile_size, 3)."""
        from PIL import Image

        r = self.read_size
        rgb = slide.read_region((int(self.xs[i]), int(self.ys[i])), self.level, (r, r))
        if r != self.tile_size:
            rgb = np.asarray(Image.fromarray(rgb).resize((self.tile_size, self.tile_size), Image.Resampling.BOX))
        return rgb


def make_tile_grid(slide: Slide, tile_size: int, downsample: float, tissue_mask: np.ndarray,
                   mask_downsample: float, *, tissue_threshold: float = 0.5, overlap: int = 0) -> TileGrid:
    """The grid of ``tile_size`` tiles at ``downsample``, neighbours sharing ``overlap`` tile pixels, whose
    tissue share, measured on ``tissue_mask`` (a boolean map at ``mask_downsample``), is at least
    ``tissue_threshold``."""
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < tile_size:
        raise InputError(f"overlap must be an integer in [0, tile_size = {tile_size}), got {overlap!r}")
    level = slide.best_level_for_downsample(downsample)
    size0 = max(1, int(round(tile_size * downsample)))
    stride0 = max(1, int(round((tile_size - overlap) * downsample))) if overlap else size0
    read_size = max(1, int(round(size0 / slide.level_downsamples[level])))
    w, h = slide.dimensions
    starts = [np.arange(0, n - size0 + 1, stride0, dtype=np.int64) if n >= size0 else np.zeros(0, np.int64)
              for n in (w, h)]
    gy, gx = np.meshgrid(starts[1], starts[0], indexing="ij")
    xs, ys = gx.ravel(), gy.ravel()
    tissue = window_fractions(tissue_mask, mask_downsample, xs, ys, size0) if len(xs) else np.zeros(0)
    keep = tissue >= tissue_threshold
    return TileGrid(xs[keep], ys[keep], tissue[keep], int(tile_size), size0, float(downsample), level, read_size,
                    stride0 if overlap else None)


class TileDataset(Dataset):
    """Tiles ``indices`` of ``grid`` (default all) read from the slide at ``path`` when asked for:
    ``(uint8 tensor (3, T, T), tile index)``. Each process (DataLoader worker) opens its own reader."""

    def __init__(self, path: str | Path, grid: TileGrid, *, backend: str = "auto",
                 indices: np.ndarray | None = None) -> None:
        self.path, self.grid, self.backend = Path(path), grid, backend
        self.indices = np.arange(len(grid)) if indices is None else np.asarray(indices, np.int64)
        self._slide: Slide | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self._slide is None:
            self._slide = open_slide(self.path, backend=self.backend)
        k = int(self.indices[i])
        return torch.from_numpy(np.ascontiguousarray(self.grid.read(self._slide, k).transpose(2, 0, 1))), k

    def __getstate__(self) -> dict:
        # reader handles do not cross process boundaries: workers open their own
        return {**self.__dict__, "_slide": None}


def tile_loader(path: str | Path, grid: TileGrid, *, batch_size: int, workers: int = 0, backend: str = "auto",
                indices: np.ndarray | None = None) -> DataLoader:
    """Batches ``(uint8 (B, 3, T, T), tile indices (B,))`` of the grid's tiles in order, read lazily (at
    most ``2 * workers`` batches ahead with workers, one at a time without)."""
    data = TileDataset(path, grid, backend=backend, indices=indices)
    return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=workers)
