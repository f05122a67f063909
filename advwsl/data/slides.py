"""Whole-slide image reading: OpenSlide for every format it reads (Aperio ``.svs``, generic tiled and
vendor ``.tif``/``.tiff``, Hamamatsu ``.ndpi``/``.vms``/``.vmu``, MIRAX ``.mrxs``, Leica ``.scn``, Ventana
``.bif``, Sakura ``.svslide``, Zeiss ``.czi``, DICOM), and a tifffile reader for plain TIFFs that OpenSlide
does not read or when OpenSlide is not installed: pyramidal or single-level, tiled or in strips. The
tifffile reader decodes only the tiles (or strips) a region touches.

Both give the same interface, :class:`Slide`: ``dimensions`` (level-0 width, height), ``level_count``,
``level_dimensions``, ``level_downsamples``, ``read_region((x, y), level, (w, h))`` returning uint8 RGB
(h, w, 3) with level-0 coordinates ``(x, y)`` for the top-left corner as in OpenSlide (pixels outside the
slide are white), :meth:`Slide.read_thumbnail` (a downsampled image read strip by strip), and the
metadata ``mpp`` (level-0 microns per pixel, x and y), ``objective_power`` and ``properties``.

Microns per pixel come from OpenSlide's ``openslide.mpp-x``/``-y``, or, with tifffile, from the Aperio
description (``MPP = ...``) or the TIFF resolution tags in centimetres or inches. A value outside
[0.01, 100] µm/px is not a microscope's (72 dpi, the default of image editors, is 353 µm/px) and is
ignored: such a slide has no ``mpp``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from ..errors import DatasetError, InputError

#: File extensions of whole-slide formats (OpenSlide's, without DICOM whose slides are folders of files).
SLIDE_EXTENSIONS = (".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif", ".czi")
BACKENDS = ("auto", "openslide", "tifffile")
_MPP_RANGE = (0.01, 100.0)


def _plausible_mpp(x: float | None, y: float | None) -> tuple[float, float] | None:
    if x is None or y is None or not all(math.isfinite(v) and _MPP_RANGE[0] <= v <= _MPP_RANGE[1] for v in (x, y)):
        return None
    return float(x), float(y)


def _number(text: str | None) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _aperio_metadata(description: str) -> dict[str, str]:
    """The ``key = value`` fields of an Aperio ImageDescription (``Aperio ...|AppMag = 20|MPP = 0.499``)."""
    fields = (part.split("=", 1) for part in description.split("|")[1:] if "=" in part)
    return {k.strip(): v.strip() for k, v in fields}


def check_thumbnail_downsample(slide: "Slide", downsample: float) -> None:
    """Refuse a thumbnail downsample larger than the slide (a thumbnail of less than one pixel, whose
    blocks would be read whole)."""
    w, h = slide.dimensions
    if downsample > max(w, h):
        raise InputError(f"a thumbnail downsample of {downsample:g} level-0 pixels per pixel is larger than the "
                         f"slide {slide.path.name} ({w} x {h} px): choose at most {max(w, h)} (e.g. 32, the default)")


class Slide(ABC):
    """Common interface of the two readers (see the module docstring)."""

    path: Path
    backend: str
    level_dimensions: list[tuple[int, int]]
    level_downsamples: list[float]
    properties: dict[str, str]
    mpp: tuple[float, float] | None = None
    objective_power: float | None = None

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

    def read_thumbnail(self, downsample: float, *, chunk_bytes: int = 1 << 25) -> tuple[np.ndarray, float]:
        """The slide at about ``downsample`` level-0 pixels per pixel, and the downsample it has exactly.

        The best level for ``downsample`` is reduced by the integer factor ``f`` that brings it closest
        to ``downsample`` from below (the mean of each ``f x f`` block, as a pyramid level is made), read
        in strips of at most ``chunk_bytes``: memory is bounded by the thumbnail even for a single-level
        slide. The last row and column of blocks are padded with white."""
        if not downsample >= 1:
            raise InputError(f"a thumbnail downsample must be >= 1 (level-0 pixels per pixel), got {downsample!r}")
        check_thumbnail_downsample(self, downsample)
        level = self.best_level_for_downsample(downsample)
        ds = self.level_downsamples[level]
        f = max(1, int(downsample / ds + 1e-3))
        lw, lh = self.level_dimensions[level]
        tw, th = -(-lw // f), -(-lh // f)
        if f == 1:
            return self.read_level(level), ds
        out = np.empty((th, tw, 3), np.uint8)
        rows = max(1, chunk_bytes // (tw * f * f * 3))
        for r0 in range(0, th, rows):
            r1 = min(th, r0 + rows)
            strip = self.read_region((0, int(round(r0 * f * ds))), level, (tw * f, (r1 - r0) * f))
            blocks = strip.reshape(r1 - r0, f, tw, f, 3).mean(axis=(1, 3), dtype=np.float32)
            out[r0:r1] = np.round(blocks).astype(np.uint8)
        return out, ds * f

    def summary(self) -> dict:
        """What a report says about the slide: path, backend, dimensions, levels, mpp, objective power and
        the properties (values longer than 2,000 characters cut)."""
        return {"path": str(self.path), "backend": self.backend, "dimensions": list(self.dimensions),
                "level_count": self.level_count, "level_dimensions": [list(d) for d in self.level_dimensions],
                "level_downsamples": self.level_downsamples, "mpp": list(self.mpp) if self.mpp else None,
                "objective_power": self.objective_power,
                "properties": {k: v if len(v) <= 2000 else v[:2000] + "..." for k, v in self.properties.items()}}

    def close(self) -> None:
        pass

    def __enter__(self) -> "Slide":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class OpenSlideSlide(Slide):
    """A slide read through OpenSlide."""

    backend = "openslide"

    def __init__(self, path: str | Path) -> None:
        import openslide

        self.path = Path(path)
        try:
            self._slide = openslide.OpenSlide(str(path))
        except openslide.OpenSlideError as exc:
            raise DatasetError(f"OpenSlide cannot open {path}: {exc}") from None
        self.level_dimensions = [tuple(map(int, d)) for d in self._slide.level_dimensions]
        self.level_downsamples = [float(d) for d in self._slide.level_downsamples]
        self.properties = {str(k): str(v) for k, v in self._slide.properties.items()}

        props = self.properties
        self.mpp = _plausible_mpp(_number(props.get("openslide.mpp-x")), _number(props.get("openslide.mpp-y")))
        self.objective_power = _number(props.get("openslide.objective-power"))

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        import openslide

        try:
            region = self._slide.read_region(tuple(map(int, location)), int(level), tuple(map(int, size)))
        except openslide.OpenSlideError as exc:
            raise DatasetError(f"OpenSlide cannot read the region at {tuple(location)} (level {level}, {size[0]} x "
                               f"{size[1]}) of {self.path}: {exc}. Its tile data are damaged (an incomplete copy?) "
                               "or of a kind OpenSlide does not decode (e.g. float samples: try "
                               "backend='tifffile')") from None
        rgba = np.asarray(region)
        if rgba[..., 3].min() == 255:  # opaque (the common case)
            return np.ascontiguousarray(rgba[..., :3])
        alpha = rgba[..., 3:4].astype(np.float32) / 255.0
        # transparent pixels (outside the scanned area) are composited on white
        return np.round(rgba[..., :3] * alpha + 255.0 * (1 - alpha)).astype(np.uint8)

    def close(self) -> None:
        self._slide.close()


class TiffSlide(Slide):
    """A TIFF read with tifffile, segment by segment. Levels are the tiled RGB pages (main chain and SubIFDs)
    with the aspect ratio of the largest one, sorted by decreasing width; a TIFF without a tiled RGB page is
    read as a single-level slide from its largest RGB page (tiles or strips). JPEG-compressed segments need
    the ``imagecodecs`` package; uncompressed, deflate and LZW ones do not."""

    backend = "tifffile"

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
        _check_complete(self.path, pages)
        pages = [p for p in pages if p.samplesperpixel >= 3 and p.ndim >= 3 and p.planarconfig == 1]
        tiled = [p for p in pages if p.is_tiled]
        if not pages:
            raise DatasetError(f"{path} has no RGB page stored pixel by pixel (contiguous samples); expected a "
                               f"tiled or striped RGB TIFF, or a format OpenSlide reads (install the [wsi] extra)")
        pages = sorted(tiled or pages, key=lambda p: -p.imagewidth)
        if not tiled:
            pages = pages[:1]
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
        self._read_metadata(self._pages[0])

    def _read_metadata(self, page) -> None:
        tags = {t.name: t.value for t in page.tags}
        self.properties = {"tifffile.pages": str(len(self._tif.pages))}
        for name in ("ImageDescription", "Software", "XResolution", "YResolution", "ResolutionUnit"):
            if name in tags:
                value = tags[name]
                if isinstance(value, tuple) and len(value) == 2:
                    value = value[0] / value[1] if value[1] else float("nan")
                self.properties[f"tiff.{name}"] = str(getattr(value, "name", value)).strip()
        mpp: tuple[float | None, ...] = (None, None)
        if self._tif.is_svs:
            meta = _aperio_metadata(str(tags.get("ImageDescription", "")))
            self.properties.update({f"aperio.{k}": v for k, v in meta.items()})
            mpp = (_number(meta.get("MPP")),) * 2
            self.objective_power = _number(meta.get("AppMag"))
        unit = {2: 25400.0, 3: 10000.0}.get(int(tags.get("ResolutionUnit", 1)))
        if mpp[0] is None and unit is not None and "XResolution" in tags and "YResolution" in tags:
            (xn, xd), (yn, yd) = tags["XResolution"], tags["YResolution"]
            if xn > 0 and yn > 0:
                mpp = (unit * xd / xn, unit * yd / yn)
        self.mpp = _plausible_mpp(*mpp)

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        page = self._pages[level]
        ds = self.level_downsamples[level]
        x0, y0 = int(round(location[0] / ds)), int(round(location[1] / ds))
        w, h = int(size[0]), int(size[1])
        out = np.full((h, w, 3), 255, np.uint8)
        W, H = page.imagewidth, page.imagelength
        # a segment is a tile, or a strip of rowsperstrip full-width rows
        tw, th = (page.tilewidth, page.tilelength) if page.is_tiled else (W, page.rowsperstrip or H)
        ntx = -(-W // tw)
        tx0, tx1 = max(0, x0 // tw), min(ntx - 1, (x0 + w - 1) // tw)
        ty0, ty1 = max(0, y0 // th), min(-(-H // th) - 1, (y0 + h - 1) // th)
        if tx0 > tx1 or ty0 > ty1:
            return out
        indices = [ty * ntx + tx for ty in range(ty0, ty1 + 1) for tx in range(tx0, tx1 + 1)]
        offsets = [page.dataoffsets[i] for i in indices]
        counts = [page.databytecounts[i] for i in indices]
        for data, index in self._tif.filehandle.read_segments(offsets, counts, indices):
            segment = self._decode(page, data, index, level)
            ty, tx = divmod(index, ntx)
            gx, gy = tx * tw, ty * th
            # overlap of this segment with the requested window (in level coordinates), inside the image
            ax0, ay0 = max(gx, x0), max(gy, y0)
            ax1, ay1 = min(gx + segment.shape[1], x0 + w, W), min(gy + segment.shape[0], y0 + h, H)
            if ax1 <= ax0 or ay1 <= ay0:
                continue
            out[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0] = segment[ay0 - gy:ay1 - gy, ax0 - gx:ax1 - gx]
        return out

    def _decode(self, page, data: bytes | None, index: int, level: int) -> np.ndarray:
        """Segment ``index`` of ``page`` as uint8 RGB (rows, cols, 3): integer samples scaled from their
        range, float samples from [0, 1]; a damaged or undecodable segment is a :class:`DatasetError`."""
        try:
            segment = np.asarray(page.decode(data, index, jpegtables=page.jpegtables)[0])
        except Exception as exc:  # noqa: BLE001 - the codecs raise many types for damaged data
            hint = (" (JPEG tiles need the imagecodecs package: pip install 'advwsl[wsi]')"
                    if "imagecodecs" in str(exc) else "; its tile data are damaged (an incomplete copy?)")
            raise DatasetError(f"cannot decode segment {index} of level {level} of {self.path}: "
                               f"{type(exc).__name__}: {exc}{hint}") from None
        segment = segment.reshape(segment.shape[-3], segment.shape[-2], -1)[..., :3]
        if segment.dtype == np.uint8:
            return segment
        if segment.dtype.kind == "f":
            lo, hi = float(np.nanmin(segment)), float(np.nanmax(segment))
            if not (np.isfinite(segment).all() and lo >= 0 and hi <= 1):
                raise DatasetError(f"{self.path} holds floating-point samples in [{lo:g}, {hi:g}] (segment {index} "
                                   f"of level {level}); float slides are read as values in [0, 1]: convert it to "
                                   "8-bit RGB")
            return np.round(segment.astype(np.float64) * 255).astype(np.uint8)
        return (segment.astype(np.float64) * 255 / np.iinfo(segment.dtype).max).round().astype(np.uint8)

    def close(self) -> None:
        self._tif.close()


def _check_complete(path: Path, pages: list) -> None:
    """A truncated file (its pages' data reach past its end) is named as such, not as a TIFF without images."""
    size = path.stat().st_size
    ends = [int(o) + int(c) for p in pages for o, c in zip(p.dataoffsets, p.databytecounts) if c]
    if ends and max(ends) > size:
        raise DatasetError(f"{path} is truncated: it has {size} bytes but its image data reach byte {max(ends)} (an "
                           "interrupted download or copy?); copy the slide again")


def _float_tiff(path: Path) -> bool:
    """Whether the TIFF's first page holds floating-point samples (which OpenSlide does not decode)."""
    import tifffile

    try:
        with tifffile.TiffFile(str(path)) as tif:
            return tif.pages[0].dtype is not None and tif.pages[0].dtype.kind == "f"
    except Exception:  # noqa: BLE001 - OpenSlide (or the error of open_slide) speaks for other files
        return False


def openslide_available() -> bool:
    """Whether OpenSlide (Python binding and library) can be imported."""
    try:
        import openslide  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def _openslide_reads(path: Path) -> bool:
    import openslide

    try:
        return openslide.OpenSlide.detect_format(str(path)) is not None
    except openslide.OpenSlideError:
        return False


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def open_slide(path: str | Path, *, backend: str = "auto") -> Slide:
    """Open a whole-slide image.

    ``backend``: ``"openslide"``, ``"tifffile"``, or ``"auto"``: OpenSlide when it is installed and
    recognizes the file, else tifffile for a TIFF (a striped or single-level plain TIFF that OpenSlide
    does not read, a TIFF of float samples, or any TIFF without OpenSlide)."""
    path = Path(path)
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not path.is_file():
        raise DatasetError(f"slide {path} not found" + ("" if not path.is_dir() else
                           "; it is a folder: give the slide file in it (for DICOM, one of its .dcm files)"))
    has_openslide = openslide_available()
    if backend == "openslide":
        if not has_openslide:
            raise InputError("OpenSlide is not installed; pip install 'advwsl[wsi]' or use backend='tifffile'")
        if not _openslide_reads(path):
            raise DatasetError(f"OpenSlide does not recognize {path}; for a plain TIFF use backend='tifffile'")
        return OpenSlideSlide(path)
    if backend == "auto" and has_openslide and _openslide_reads(path) and not (_is_tiff(path) and _float_tiff(path)):
        return OpenSlideSlide(path)
    if backend == "tifffile" or _is_tiff(path):
        return TiffSlide(path)
    if not has_openslide:
        raise DatasetError(f"{path} is not a TIFF, and reading {path.suffix or 'this'} slides needs OpenSlide: "
                           f"pip install 'advwsl[wsi]'")
    raise DatasetError(f"{path} is in no format OpenSlide or tifffile reads (slide formats: "
                       f"{', '.join(SLIDE_EXTENSIONS)} and DICOM)")
