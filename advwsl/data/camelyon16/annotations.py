"""CAMELYON16 lesion annotations (ASAP XML) and their rasterisation into level-0 masks (section 2.1.2.3).

An ASAP file lists polygons in level-0 pixel coordinates::

    <ASAP_Annotations><Annotations>
      <Annotation Name="Annotation 0" Type="Polygon" PartOfGroup="_0">
        <Coordinates><Coordinate Order="0" X="6618.02" Y="11471.6"/> ...</Coordinates>
      </Annotation> ...

CAMELYON16 puts tumour regions in the groups ``_0`` and ``_1`` and non-tumour regions inside them (holes) in
``_2``; CAMELYON17-style files use ``Tumor`` and ``Exclusion``. A pixel is metastatic when its centre is
inside a tumour polygon (even-odd rule) and not inside an exclusion polygon.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import DatasetError

EXCLUSION_GROUPS = ("_2", "exclusion")


@dataclass(frozen=True)
class Annotation:
    """Tumour and exclusion polygons of one slide, each an (N, 2) float array of level-0 (x, y)."""

    tumour: tuple[np.ndarray, ...] = field(default_factory=tuple)
    exclusion: tuple[np.ndarray, ...] = field(default_factory=tuple)

    def bounds(self) -> tuple[float, float, float, float] | None:
        """(xmin, ymin, xmax, ymax) of the tumour polygons, or None without any."""
        if not self.tumour:
            return None
        pts = np.concatenate(self.tumour)
        return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def _number(text: str | None, path: Path) -> float:
    if text is None:
        raise DatasetError(f"{path}: a Coordinate lacks its X or Y attribute")
    # a few files write decimal commas
    return float(text.replace(",", "."))


def read_asap_xml(path: str | Path) -> Annotation:
    """Parse an ASAP XML file into tumour and exclusion polygons (polygons of fewer than 3 points, such as
    dots, are ignored)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"annotation file {path} not found")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DatasetError(f"{path} is not valid XML: {exc}") from None
    tumour, exclusion = [], []
    for ann in root.iter("Annotation"):
        coords = []
        for c in ann.iter("Coordinate"):
            coords.append((float(c.get("Order", len(coords))), _number(c.get("X"), path), _number(c.get("Y"), path)))
        if len(coords) < 3:
            continue
        coords.sort(key=lambda t: t[0])
        poly = np.array([(x, y) for _, x, y in coords], dtype=np.float64)
        group = (ann.get("PartOfGroup") or "").strip().lower()
        (exclusion if group in EXCLUSION_GROUPS else tumour).append(poly)
    return Annotation(tuple(tumour), tuple(exclusion))


def _even_odd(polygons: tuple[np.ndarray, ...], x0: float, y0: float, width: int, height: int) -> np.ndarray:
    """Union over ``polygons`` of the even-odd inside test at pixel centres of the window (scanline: each
    edge crossing a row toggles the parity of every pixel centre to its right)."""
    out = np.zeros((height, width), bool)
    yc = y0 + np.arange(height) + 0.5
    for poly in polygons:
        if (poly[:, 0].max() < x0 or poly[:, 0].min() > x0 + width or poly[:, 1].max() < y0
                or poly[:, 1].min() > y0 + height):
            continue
        p1, p2 = poly, np.roll(poly, -1, axis=0)
        lo, hi = np.minimum(p1[:, 1], p2[:, 1]), np.maximum(p1[:, 1], p2[:, 1])
        # rows (E, R) crossed by each edge: half-open [lo, hi) so vertices are counted once
        cross = (lo[:, None] <= yc[None, :]) & (yc[None, :] < hi[:, None])
        e, r = np.nonzero(cross)
        if len(e) == 0:
            continue
        t = (yc[r] - p1[e, 1]) / (p2[e, 1] - p1[e, 1])
        xi = p1[e, 0] + t * (p2[e, 0] - p1[e, 0])
        # pixel j (centre x0 + j + 0.5) lies right of xi iff j >= floor(xi - x0 - 0.5) + 1
        start = np.clip(np.floor(xi - x0 - 0.5).astype(np.int64) + 1, 0, width)
        toggles = np.bincount(r * (width + 1) + start, minlength=height * (width + 1)).reshape(height, width + 1)
        out |= (np.cumsum(toggles[:, :width], axis=1) % 2).astype(bool)
    return out


def rasterize(annotation: Annotation, x0: int, y0: int, width: int, height: int,
              downsample: float = 1.0) -> np.ndarray:
    """Metastatic mask (height, width) bool of the window whose top-left level-0 corner is (x0, y0), at
    ``downsample`` level-0 pixels per output pixel (1 = level 0): tumour minus exclusion polygons."""
    if downsample != 1.0:
        scaled = Annotation(tuple(p / downsample for p in annotation.tumour),
                            tuple(p / downsample for p in annotation.exclusion))
        return rasterize(scaled, x0 / downsample, y0 / downsample, width, height)
    mask = _even_odd(annotation.tumour, x0, y0, width, height)
    if annotation.exclusion and mask.any():
        mask &= ~_even_odd(annotation.exclusion, x0, y0, width, height)
    return mask


def grid_fractions(annotation: Annotation, slide_size: tuple[int, int],
                   patch_size: int) -> dict[tuple[int, int], float]:
    """Metastatic fraction p_m of every non-overlapping level-0 grid patch (x, y multiples of
    ``patch_size``, wholly inside the slide) that touches a tumour polygon's bounding box; other patches
    have p_m = 0 and are omitted."""
    bounds = annotation.bounds()
    if bounds is None:
        return {}
    w, h = slide_size
    nx, ny = w // patch_size, h // patch_size
    gx0, gy0 = max(0, int(bounds[0] // patch_size)), max(0, int(bounds[1] // patch_size))
    gx1, gy1 = min(nx - 1, int(bounds[2] // patch_size)), min(ny - 1, int(bounds[3] // patch_size))
    boxes = [(p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()) for p in annotation.tumour]
    out = {}
    for gy in range(gy0, gy1 + 1):
        for gx in range(gx0, gx1 + 1):
            x, y = gx * patch_size, gy * patch_size
            if not any(b[0] < x + patch_size and b[2] > x and b[1] < y + patch_size and b[3] > y for b in boxes):
                continue
            frac = float(rasterize(annotation, x, y, patch_size, patch_size).mean())
            if frac > 0:
                out[(x, y)] = frac
    return out


def write_asap_xml(path: str | Path, tumour: list[np.ndarray], exclusion: list[np.ndarray] = ()) -> None:
    """Write polygons as an ASAP XML file (tumour in group ``_0``, exclusion in ``_2``), the format
    :func:`read_asap_xml` reads."""
    root = ET.Element("ASAP_Annotations")
    anns = ET.SubElement(root, "Annotations")
    for i, (poly, group) in enumerate([(p, "_0") for p in tumour] + [(p, "_2") for p in exclusion]):
        a = ET.SubElement(anns, "Annotation", Name=f"Annotation {i}", Type="Polygon", PartOfGroup=group,
                          Color="#F4FA58")
        coords = ET.SubElement(a, "Coordinates")
        for k, (x, y) in enumerate(np.asarray(poly, dtype=float)):
            ET.SubElement(coords, "Coordinate", Order=str(k), X=f"{x:.4f}", Y=f"{y:.4f}")
    groups = ET.SubElement(root, "AnnotationGroups")
    for g in ("_0", "_1", "_2"):
        ET.SubElement(groups, "Group", Name=g, PartOfGroup="None", Color="#FF0000")
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
