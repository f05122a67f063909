"""Small synthetic whole-slide images in the CAMELYON16 formats (pyramidal tiled TIFF + ASAP XML), to try the
patch protocol without the real slides: white background, pink tissue blobs, purple tumour polygons with an
optional non-tumour hole."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .annotations import Annotation, rasterize, write_asap_xml


def blob_polygon(cx: float, cy: float, rx: float, ry: float, rng: np.random.Generator,
                 n: int = 48, jitter: float = 0.15) -> np.ndarray:
    """A closed irregular blob of ``n`` vertices around (cx, cy) with radii (rx, ry)."""
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    r = 1 + jitter * np.convolve(rng.uniform(-1, 1, n + 4), np.ones(5) / 5, mode="valid")[:n]
    return np.stack([cx + rx * r * np.cos(t), cy + ry * r * np.sin(t)], axis=1)


def write_pyramid(path: str | Path, image: np.ndarray, *, levels: int = 5, tile: int = 256,
                  compression: str | None = None) -> None:
    """Write uint8 RGB ``image`` as a tiled TIFF pyramid (uncompressed, or ``compression`` = "zlib", ...)
    with ``levels`` levels, each half the previous (2x2 mean), one page per level in the main IFD chain (readable by OpenSlide and tifffile)."""
    import tifffile

    with tifffile.TiffWriter(str(path)) as tw:
        level = image
        for k in range(levels):
            tw.write(level, tile=(tile, tile), photometric="rgb", compression=compression,
                     subfiletype=1 if k else 0)
            h, w = level.shape[0] // 2 * 2, level.shape[1] // 2 * 2
            if h < 2 or w < 2:
                break
            level = level[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3)).round().astype(np.uint8)


def make_toy_slide(path: str | Path, xml_path: str | Path | None = None, *, size: tuple[int, int] = (2048, 1536),
                   seed: int = 0, tumour: bool = True, hole: bool = True, levels: int = 5,
                   compression: str | None = None) -> Annotation:
    """Write a toy slide of ``size`` = (width, height) at ``path`` and, for a tumour slide, its annotation at
    ``xml_path``; returns the annotation written (empty for a normal slide)."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = (244 + 3 * rng.standard_normal((h, w, 3), dtype=np.float32)).clip(0, 255)
    tissue = blob_polygon(w * 0.5, h * 0.5, w * 0.36, h * 0.36, rng, jitter=0.2)
    tissue_mask = rasterize(Annotation((tissue,)), 0, 0, w, h)
    texture = 12 * rng.standard_normal((h, w, 1), dtype=np.float32)
    img[tissue_mask] = (np.array([226, 150, 190], np.float32) + texture[tissue_mask]).clip(0, 255)
    ann = Annotation()
    if tumour:
        polys = [blob_polygon(w * 0.42, h * 0.45, w * 0.17, h * 0.2, rng),
                 blob_polygon(w * 0.68, h * 0.62, w * 0.05, h * 0.06, rng)]
        holes = [blob_polygon(w * 0.42, h * 0.45, w * 0.05, h * 0.05, rng)] if hole else []
        ann = Annotation(tuple(polys), tuple(holes))
        tum = rasterize(ann, 0, 0, w, h)
        img[tum] = (np.array([150, 80, 170], np.float32) + texture[tum]).clip(0, 255)
        if xml_path is not None:
            write_asap_xml(xml_path, polys, holes)
    write_pyramid(path, img.astype(np.uint8), levels=levels, compression=compression)
    return ann
