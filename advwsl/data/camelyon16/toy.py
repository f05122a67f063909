"""Synthetic whole-slide images in the CAMELYON16 formats (tiled TIFF + ASAP XML), to try the patch protocol
and the slide tools without real slides: white background, a pink tissue blob, purple tumour polygons with
an optional non-tumour hole.

Slides are written tile by tile (:func:`write_slide`): a 20,000 x 20,000 pyramid needs a few megabytes of
memory, not the 1.2 GB of its pixels. Pixel noise comes from fixed 256 x 256 fields repeated over the
slide, so a pixel's value depends on its position only, not on the tile it is rendered in. Each pyramid level
is rendered at its own resolution (polygons rasterized at the level's downsample), not averaged from the
level above. ``mpp`` writes the TIFF resolution tags (OpenSlide's ``openslide.mpp-x``); a path ending in
``.svs`` gets an Aperio image description (``AppMag``, ``MPP``), so OpenSlide reads it as an Aperio slide.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InputError
from .annotations import Annotation, rasterize, write_asap_xml

_PERIOD = 256
#: ``render(x, y, w, h, level)``: uint8 RGB (h, w, 3) of the window of ``level`` (downsample 2**level) whose
#: top-left corner is (x, y) in that level's pixels.
Renderer = Callable[[int, int, int, int, int], np.ndarray]


def blob_polygon(cx: float, cy: float, rx: float, ry: float, rng: np.random.Generator,
                 n: int = 48, jitter: float = 0.15) -> np.ndarray:
    """A closed irregular blob of ``n`` vertices around (cx, cy) with radii (rx, ry)."""
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    r = 1 + jitter * np.convolve(rng.uniform(-1, 1, n + 4), np.ones(5) / 5, mode="valid")[:n]
    return np.stack([cx + rx * r * np.cos(t), cy + ry * r * np.sin(t)], axis=1)


def level_sizes(size: tuple[int, int], levels: int) -> list[tuple[int, int]]:
    """(width, height) of each pyramid level, each half the previous (rounded down); a level is added only
    while the previous one is at least 2 x 2, so there may be fewer than ``levels``."""
    sizes = [(int(size[0]), int(size[1]))]
    while len(sizes) < levels and min(sizes[-1]) >= 2:
        sizes.append((sizes[-1][0] // 2, sizes[-1][1] // 2))
    return sizes


def _tiles(render: Renderer, level: int, size: tuple[int, int], tile: int) -> Iterator[np.ndarray]:
    w, h = size
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            block = render(x, y, min(tile, w - x), min(tile, h - y), level)
            if block.shape[:2] != (tile, tile):  # edge tiles are padded to the full tile size
                block = np.pad(block, ((0, tile - block.shape[0]), (0, tile - block.shape[1]), (0, 0)))
            yield block


def write_slide(path: str | Path, size: tuple[int, int], render: Renderer, *, levels: int = 5, tile: int = 256,
                mpp: float | None = None, compression: str | None = None, description: str | None = None) -> None:
    """Write a tiled RGB TIFF of level-0 ``size`` = (width, height) with up to ``levels`` levels (1: a
    single-level slide), one page per level in the main IFD chain (readable by OpenSlide and tifffile),
    rendered tile by tile with ``render`` (see :data:`Renderer`).

    ``mpp``: level-0 microns per pixel, written as resolution tags in centimetres (each level's scaled);
    ``compression``: None or ``"zlib"`` (others need imagecodecs); ``description``: ImageDescription of the
    first page (an Aperio description makes OpenSlide read the file as Aperio)."""
    import tifffile

    if tile < 16 or tile % 16:
        raise InputError(f"tile must be a multiple of 16 (TIFF tiles), got {tile}")
    if levels < 1 or min(size) < 1:
        raise InputError(f"need levels >= 1 and a positive size, got levels={levels}, size={size}")
    with tifffile.TiffWriter(str(path), bigtiff=3 * size[0] * size[1] > 2**32 - 2**25) as tw:
        for k, (w, h) in enumerate(level_sizes(size, levels)):
            extra = {}
            if mpp is not None:
                res = 1e4 / (mpp * 2**k)
                extra = {"resolution": (res, res), "resolutionunit": "CENTIMETER"}
            tw.write(_tiles(render, k, (w, h), tile), shape=(h, w, 3), dtype=np.uint8, tile=(tile, tile),
                     photometric="rgb", compression=compression, subfiletype=1 if k else 0, metadata=None,
                     description=description if k == 0 else None, **extra)


def aperio_description(size: tuple[int, int], tile: int, mpp: float | None) -> str:
    """An Aperio ImageDescription for level 0 (``AppMag`` 40 up to 0.3 µm/px, else 20)."""
    w, h = size
    fields = "" if mpp is None else f"|AppMag = {40 if mpp <= 0.3 else 20}|MPP = {mpp:.4f}"
    return f"Aperio Image Library v12.0.15\r\n{w}x{h} [0,0 {w}x{h}] ({tile}x{tile}) RAW{fields}"


def write_pyramid(path: str | Path, image: np.ndarray, *, levels: int = 5, tile: int = 256,
                  compression: str | None = None, mpp: float | None = None) -> None:
    """Write uint8 RGB ``image`` (in memory) as a tiled TIFF pyramid with ``levels`` levels, each the 2 x 2
    mean of the previous one (see :func:`write_slide`)."""
    pyramid = [image]
    for w, h in level_sizes((image.shape[1], image.shape[0]), levels)[1:]:
        prev = pyramid[-1][:2 * h, :2 * w].astype(np.float32)
        pyramid.append(prev.reshape(h, 2, w, 2, 3).mean(axis=(1, 3)).round().astype(np.uint8))
    write_slide(path, (image.shape[1], image.shape[0]), lambda x, y, w, h, k: pyramid[k][y:y + h, x:x + w],
                levels=len(pyramid), tile=tile, mpp=mpp, compression=compression)


@dataclass(frozen=True, eq=False)
class ToyLayout:
    """A toy slide's content: level-0 ``size`` (width, height), the ``tissue`` region and the ``tumour``
    annotation (polygons in level-0 pixels), and ``fields``: the background, tissue and tumour colours with
    their noise, each a uint8 (512, 512, 3) field of period 256. :meth:`render` draws any window."""

    size: tuple[int, int]
    tissue: Annotation
    tumour: Annotation
    fields: tuple[np.ndarray, np.ndarray, np.ndarray]

    def render(self, x: int, y: int, w: int, h: int, level: int = 0) -> np.ndarray:
        """uint8 RGB (h, w, 3) of the window at (x, y) of ``level`` (downsample 2**level, level pixels)."""
        d = 2.0**level
        if w <= _PERIOD and h <= _PERIOD:  # a slice of the fields (the common, fast case)
            y0, x0 = y % _PERIOD, x % _PERIOD
            background, tissue, tumour = (f[y0:y0 + h, x0:x0 + w] for f in self.fields)
        else:
            rows, cols = (y + np.arange(h)) % _PERIOD, (x + np.arange(w)) % _PERIOD
            background, tissue, tumour = (f[np.ix_(rows, cols)] for f in self.fields)
        img = background.copy()
        for ann, colours in ((self.tissue, tissue), (self.tumour, tumour)):
            if ann.tumour:
                inside = rasterize(ann, x * d, y * d, w, h, downsample=d)
                np.copyto(img, colours, where=inside[..., None])
        return img


def toy_layout(size: tuple[int, int] = (2048, 1536), *, seed: int = 0, tumour: bool = True,
               hole: bool = True) -> ToyLayout:
    """The layout of a toy slide: one tissue blob over about 40 % of the slide, and for a tumour slide two
    tumour polygons inside it (the larger one with a non-tumour hole when ``hole``)."""
    rng = np.random.default_rng(seed)
    w, h = size
    tissue = Annotation((blob_polygon(w * 0.5, h * 0.5, w * 0.36, h * 0.36, rng, jitter=0.2),))
    ann = Annotation()
    if tumour:
        polys = (blob_polygon(w * 0.42, h * 0.45, w * 0.17, h * 0.2, rng),
                 blob_polygon(w * 0.68, h * 0.62, w * 0.05, h * 0.06, rng))
        holes = (blob_polygon(w * 0.42, h * 0.45, w * 0.05, h * 0.05, rng),) if hole else ()
        ann = Annotation(polys, holes)
    noise = rng.standard_normal((_PERIOD, _PERIOD, 4), dtype=np.float32)
    fields = [244 + 3 * noise[..., :3], np.float32([226, 150, 190]) + 12 * noise[..., 3:],
              np.float32([150, 80, 170]) + 12 * noise[..., 3:]]
    fields = tuple(np.tile(np.round(f.clip(0, 255)).astype(np.uint8), (2, 2, 1)) for f in fields)
    return ToyLayout((int(w), int(h)), tissue, ann, fields)


def make_toy_slide(path: str | Path, xml_path: str | Path | None = None, *, size: tuple[int, int] = (2048, 1536),
                   seed: int = 0, tumour: bool = True, hole: bool = True, levels: int = 5,
                   compression: str | None = None, tile: int = 256, mpp: float | None = None) -> Annotation:
    """Write a toy slide of ``size`` = (width, height) at ``path`` (see :func:`toy_layout` and
    :func:`write_slide`) and, for a tumour slide, its annotation at ``xml_path``; returns the annotation
    (empty for a normal slide). ``levels=1`` writes a single-level slide."""
    layout = toy_layout(size, seed=seed, tumour=tumour, hole=hole)
    if tumour and xml_path is not None:
        write_asap_xml(xml_path, list(layout.tumour.tumour), list(layout.tumour.exclusion))
    description = aperio_description(layout.size, tile, mpp) if Path(path).suffix.lower() == ".svs" else None
    write_slide(path, layout.size, layout.render, levels=levels, tile=tile, mpp=mpp, compression=compression,
                description=description)
    return layout.tumour
