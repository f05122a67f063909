"""Whole-slide image reading: OpenSlide when importable (the ``[wsi]`` extra), else a tifffile reader for
pyramidal tiled TIFFs (CAMELYON16's format) that decodes only the tiles a region touches.

Both give the same interface: :class:`Slide` with ``dimensions`` (level-0 width, height), ``level_count``,
``level_dimensions``, ``level_downsamples`` and ``read_region((x, y), level, (w, h))`` returning uint8 RGB
(h, w, 3) with level-0 coordinates ``(x, y)`` for the top-left corner, as in OpenSlide. Pixels outside the
slide are white.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from ...errors import DatasetError, InputError


class Slide(ABC):
    """Common interface of the two readers (see the module docstring)."""

    path: Path
    level_dimensions: list[tuple[int, int]]
    level_downsamples: list[float]

    @property
    def dimensions(self) -> tuple[int, int]:
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    @abstractmethod
    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """uint8 RGB (h, w, 3) of ``level`` whose top-left corner is level-0 ``location`` = (x, y)."""

    def read_level(self, level: int) -> np.ndarray:
        """The whole of ``level`` as uint8 RGB (H, W, 3) (use a low-resolution level)."""
        w, h = self.level_dimensions[level]
        return self.read_region((0, 0), level, (w, h))

    def best_level_for_downsample(self, downsample: float) -> int:
        """The level with the largest downsample not above ``downsample`` (level 0 if none)."""
        ok = [i for i, d in enumerate(self.level_downsamples) if d <= downsample * 1.001]
        return max(ok, key=lambda i: self.level_downsamples[i]) if ok else 0

    def close(self) -> None:
        pass

    def __enter__(self) -> "Slide":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class OpenSlideSlide(Slide):
    """A slide read through OpenSlide."""

    def __init__(self, path: str | Path) -> None:
        import openslide

        self.path = Path(path)
        try:
            self._slide = openslide.OpenSlide(str(path))
        except openslide.OpenSlideError as exc:
            raise DatasetError(f"OpenSlide cannot open {path}: {exc}") from None
        self.level_dimensions = [tuple(map(int, d)) for d in self._slide.level_dimensions]
        self.level_downsamples = [float(d) for d in self._slide.level_downsamples]

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        rgba = np.asarray(self._slide.read_region(tuple(map(int, location)), int(level), tuple(map(int, size))))
        alpha = rgba[..., 3:4].astype(np.float32) / 255.0
        # transparent pixels (outside the scanned area) are composited on white
        return np.round(rgba[..., :3] * alpha + 255.0 * (1 - alpha)).astype(np.uint8)

    def close(self) -> None:
        self._slide.close()


class TiffSlide(Slide):
    """A pyramidal TIFF read with tifffile, tile by tile. Levels are the tiled RGB pages (main chain and
    SubIFDs) with the aspect ratio of the largest one, sorted by decreasing width. JPEG-compressed tiles need
    the ``imagecodecs`` package; uncompressed, deflate and LZW tiles do not."""

    def __init__(self, path: str | Path) -> None:
        import tifffile

        self.path = Path(path)
        try:
            self._tif = tifffile.TiffFile(str(path))
        except (OSError, tifffile.TiffFileError) as exc:
            raise DatasetError(f"cannot open {path} as a TIFF: {exc}") from None
        pages = []
        for series in self._tif.series:
            for lvl in series.levels:
                pages.append(lvl.keyframe)
        pages = [p for p in pages if p.is_tiled and p.samplesperpixel >= 3 and p.ndim >= 3]
        if not pages:
            raise DatasetError(f"{path} has no tiled RGB page; expected a pyramidal tiled TIFF (or install the "
                               f"[wsi] extra so OpenSlide can read other formats)")
        pages.sort(key=lambda p: -p.imagewidth)
        w0, h0 = pages[0].imagewidth, pages[0].imagelength
        uniq = {}
        for p in pages:
            same_aspect = abs(p.imagewidth / w0 - p.imagelength / h0) < 0.02 + 2.0 / p.imagelength
            if same_aspect and p.imagewidth not in uniq:
                uniq[p.imagewidth] = p
        self._pages = list(uniq.values())
        self.level_dimensions = [(p.imagewidth, p.imagelength) for p in self._pages]
        # as OpenSlide: the mean of the width and height ratios
        self.level_downsamples = [(w0 / p.imagewidth + h0 / p.imagelength) / 2 for p in self._pages]

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        page = self._pages[level]
        ds = self.level_downsamples[level]
        x0, y0 = int(round(location[0] / ds)), int(round(location[1] / ds))
        w, h = int(size[0]), int(size[1])
        out = np.full((h, w, 3), 255, np.uint8)
        tw, th = page.tilewidth, page.tilelength
        W, H = page.imagewidth, page.imagelength
        ntx = -(-W // tw)
        tx0, tx1 = max(0, x0 // tw), min(ntx - 1, (x0 + w - 1) // tw)
        ty0, ty1 = max(0, y0 // th), min(-(-H // th) - 1, (y0 + h - 1) // th)
        if tx0 > tx1 or ty0 > ty1:
            return out
        indices = [ty * ntx + tx for ty in range(ty0, ty1 + 1) for tx in range(tx0, tx1 + 1)]
        offsets = [page.dataoffsets[i] for i in indices]
        counts = [page.databytecounts[i] for i in indices]
        decode = page.decode
        for data, index in self._tif.filehandle.read_segments(offsets, counts, indices):
            tile = decode(data, index, jpegtables=page.jpegtables)[0]
            tile = np.asarray(tile).reshape(th, tw, -1)[..., :3]
            ty, tx = divmod(index, ntx)
            gx, gy = tx * tw, ty * th
            # overlap of this tile with the requested window (in level coordinates), inside the image
            ax0, ay0 = max(gx, x0), max(gy, y0)
            ax1, ay1 = min(gx + tw, x0 + w, W), min(gy + th, y0 + h, H)
            if ax1 <= ax0 or ay1 <= ay0:
                continue
            block = tile[ay0 - gy:ay1 - gy, ax0 - gx:ax1 - gx]
            if block.dtype != np.uint8:
                block = (block.astype(np.float64) * 255 / np.iinfo(block.dtype).max).round().astype(np.uint8)
            out[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0] = block
        return out

    def close(self) -> None:
        self._tif.close()


def openslide_available() -> bool:
    """Whether OpenSlide (Python binding and library) can be imported."""
    try:
        import openslide  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def open_slide(path: str | Path, *, backend: str = "auto") -> Slide:
    """Open a whole-slide image. ``backend``: ``"openslide"``, ``"tifffile"``, or ``"auto"`` (OpenSlide
    when importable, else tifffile)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"slide {path} not found")
    if backend not in ("auto", "openslide", "tifffile"):
        raise InputError(f"backend must be 'auto', 'openslide' or 'tifffile', got {backend!r}")
    if backend == "openslide" or (backend == "auto" and openslide_available()):
        if not openslide_available():
            raise InputError("OpenSlide is not installed; pip install 'advwsl[wsi]' or use backend='tifffile'")
        return OpenSlideSlide(path)
    return TiffSlide(path)
