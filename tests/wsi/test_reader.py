"""Slide reading through OpenSlide and tifffile: pyramidal, single-level (tiled and in strips) and Aperio
slides, checked pixel for pixel against the toy layout that wrote them."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from slide_helpers import MPP, SIZE, block_mean, layout

from advwsl.data.camelyon16.sampling import discover_slides
from advwsl.errors import DatasetError, InputError
from advwsl.wsi import SLIDE_EXTENSIONS, open_slide, openslide_available

needs_openslide = pytest.mark.skipif(not openslide_available(), reason="OpenSlide is not installed")
FULL = layout().render(0, 0, *SIZE)


@pytest.mark.parametrize("name", ["pyramid.tif", "single.tif", "strips.tif", "slide.svs"])
@pytest.mark.parametrize("backend", ["auto", "tifffile"])
def test_regions_match_the_rendered_slide(slides, name, backend):
    with open_slide(slides[name], backend=backend) as s:
        assert s.dimensions == SIZE
        assert s.mpp == pytest.approx((MPP, MPP))
        assert np.array_equal(s.read_region((100, 60), 0, (300, 200)), FULL[60:260, 100:400])
        edge = s.read_region((SIZE[0] - 10, SIZE[1] - 5), 0, (30, 20))  # outside the slide: white
        assert np.array_equal(edge[:5, :10], FULL[-5:, -10:]) and (edge[5:] == 255).all()
        if name == "pyramid.tif":
            assert s.level_count == 4 and s.level_downsamples == [1.0, 2.0, 4.0, 8.0]
            assert np.array_equal(s.read_region((256, 128), 2, (40, 30)), layout().render(64, 32, 40, 30, 2))
        if name in ("single.tif", "strips.tif"):
            assert s.level_count == 1


@needs_openslide
def test_auto_routing_openslide_or_tifffile(slides):
    expected = {"pyramid.tif": "openslide", "single.tif": "openslide", "slide.svs": "openslide",
                "strips.tif": "tifffile"}  # OpenSlide reads tiled TIFFs only
    for name, backend in expected.items():
        with open_slide(slides[name]) as s:
            assert s.backend == backend, name
    with pytest.raises(DatasetError, match="backend='tifffile'"):
        open_slide(slides["strips.tif"], backend="openslide")


@needs_openslide
def test_svs_is_read_as_aperio_by_both_readers(slides):
    assert ".svs" in SLIDE_EXTENSIONS
    with open_slide(slides["slide.svs"], backend="openslide") as o, \
            open_slide(slides["slide.svs"], backend="tifffile") as t:
        assert o.properties["openslide.vendor"] == "aperio"
        assert o.objective_power == t.objective_power == 40
        assert o.mpp == t.mpp == pytest.approx((MPP, MPP))
        assert o.level_dimensions == t.level_dimensions and o.level_count == 3
        assert np.array_equal(o.read_region((200, 100), 1, (64, 48)), t.read_region((200, 100), 1, (64, 48)))


class _SegmentSpy:
    """Stands for the reader's TiffFile and records which segments (tiles or strips) are read."""

    def __init__(self, tif) -> None:
        self.tif, self.seen = tif, []
        self.filehandle = self

    def read_segments(self, offsets, counts, indices, *args, **kwargs):
        self.seen.extend(indices)
        return self.tif.filehandle.read_segments(offsets, counts, indices, *args, **kwargs)


def test_only_the_touched_segments_are_decoded(slides):
    for name, per_window in (("pyramid.tif", 4), ("strips.tif", 2)):
        with open_slide(slides[name], backend="tifffile") as s:
            spy = s._tif = _SegmentSpy(s._tif)
            # a 40 x 40 window across one tile corner (tiles 128) or one strip boundary (strips of 40 rows)
            s.read_region((108, 108), 0, (40, 40))
            s._tif = spy.tif
            assert len(spy.seen) == per_window, name


def test_thumbnail_is_the_block_mean_and_bounded_by_strips(slides):
    with open_slide(slides["single.tif"], backend="tifffile") as s:
        thumb, ds = s.read_thumbnail(8, chunk_bytes=50_000)  # forces many strips
        assert ds == 8 and thumb.shape == (SIZE[1] // 8, SIZE[0] // 8, 3)
        assert np.abs(thumb.astype(float) - block_mean(FULL.astype(float), 8)).max() <= 0.5 + 1e-9
    with open_slide(slides["pyramid.tif"], backend="tifffile") as s:
        thumb, ds = s.read_thumbnail(20)  # level 3 (downsample 8) reduced by 2, the largest factor <= 20 / 8
        assert ds == 16 and thumb.shape == (SIZE[1] // 16, SIZE[0] // 16, 3)
        level3 = s.read_level(3).astype(float)
        assert np.abs(thumb - block_mean(level3, 2)).max() <= 0.5 + 1e-9


def test_metadata_and_errors(slides, tmp_path):
    with open_slide(slides["nompp.tif"]) as s:
        assert s.mpp is None and s.summary()["mpp"] is None
    tifffile.imwrite(tmp_path / "dpi72.tif", FULL[:64, :64], photometric="rgb", resolution=(72, 72),
                     resolutionunit="INCH", tile=(16, 16))
    with open_slide(tmp_path / "dpi72.tif") as s:
        assert s.mpp is None  # 72 dpi is an image editor's default, not a scanner's resolution
    with pytest.raises(DatasetError, match="not found"):
        open_slide(tmp_path / "missing.svs")
    (tmp_path / "notes.txt").write_text("not a slide")
    with pytest.raises(DatasetError, match="no format" if openslide_available() else "needs OpenSlide"):
        open_slide(tmp_path / "notes.txt")
    with pytest.raises(InputError, match="backend"):
        open_slide(slides["pyramid.tif"], backend="bioformats")


def test_camelyon16_discovery_takes_every_slide_format(tmp_path):
    slides, anns = tmp_path / "slides", tmp_path / "annotations"
    (slides / "sub").mkdir(parents=True)
    anns.mkdir()
    for name in ("normal_001.tif", "normal_002.svs", "sub/normal_003.ndpi", "normal_004.TIFF", "readme.txt"):
        (slides / name).write_bytes(b"")
    table = discover_slides(slides, anns)
    assert sorted(table["slide"]) == ["normal_001", "normal_002", "normal_003", "normal_004"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"\.svs"):
        discover_slides(empty, anns)


# ------------------------------------------------------------------ damaged, float and oversized (issue 21)
def test_a_truncated_slide_is_said_to_be_truncated(slides, tmp_path):
    data = slides["slide.svs"].read_bytes()
    for share in (0.3, 0.9):
        cut = tmp_path / f"cut{share}.svs"
        cut.write_bytes(data[: int(len(data) * share)])
        with pytest.raises(DatasetError, match=r"is truncated: it has \d+ bytes but its image data reach byte"):
            open_slide(cut, backend="tifffile")


def test_damaged_tile_data_is_a_clear_error(tmp_path):
    from advwsl.data.camelyon16.toy import make_toy_slide

    path = tmp_path / "zlib.tif"
    make_toy_slide(path, size=(512, 384), levels=1, tile=128, compression="zlib")
    with tifffile.TiffFile(path) as tif:
        offset, count = tif.pages[0].dataoffsets[5], tif.pages[0].databytecounts[5]
    raw = bytearray(path.read_bytes())
    raw[offset:offset + count] = b"\x00garbage" * (count // 8) + b"\x00" * (count % 8)
    path.write_bytes(bytes(raw))
    with open_slide(path, backend="tifffile") as s:
        s.read_region((0, 0), 0, (128, 128))  # the intact tiles still read
        with pytest.raises(DatasetError, match=r"cannot decode segment 5 of level 0 of .*zlib.tif: .*damaged"):
            s.read_region((0, 0), 0, (512, 384))


def test_float_slides_are_read_from_unit_range_or_refused(tmp_path):
    full = FULL.astype(np.float32) / 255
    tifffile.imwrite(tmp_path / "unit.tif", full, photometric="rgb", tile=(128, 128))
    tifffile.imwrite(tmp_path / "bytes.tif", full * 255, photometric="rgb", tile=(128, 128))
    with open_slide(tmp_path / "unit.tif") as s:
        assert np.array_equal(s.read_region((100, 60), 0, (300, 200)), FULL[60:260, 100:400])
    with open_slide(tmp_path / "bytes.tif") as s:
        with pytest.raises(DatasetError, match=r"floating-point samples in \[.*255\].*convert it to 8-bit RGB"):
            s.read_region((0, 0), 0, (64, 64))


def test_a_thumbnail_downsample_larger_than_the_slide_is_refused(slides):
    with open_slide(slides["pyramid.tif"]) as s:
        with pytest.raises(InputError, match=r"100000 level-0 pixels per pixel is larger than the slide .*at most 1024"):
            s.read_thumbnail(100000)
        thumb, ds = s.read_thumbnail(1024)  # the largest allowed: one pixel per slide width
        assert thumb.shape[:2] == (1, 1) and ds == 1024


def test_openslide_read_errors_become_dataset_errors(monkeypatch, tmp_path):
    """A damaged SVS tile makes OpenSlide raise OpenSlideError: the reader names the region and the file."""
    import sys
    import types

    class OpenSlideError(Exception):
        pass

    class FakeSlide:
        level_dimensions, level_downsamples, properties = [(64, 64)], [1.0], {}

        def __init__(self, path):
            pass

        def read_region(self, location, level, size):
            raise OpenSlideError("TIFFRGBAImageGet failed")

    monkeypatch.setitem(sys.modules, "openslide", types.SimpleNamespace(OpenSlide=FakeSlide,
                                                                        OpenSlideError=OpenSlideError))
    from advwsl.data.slides import OpenSlideSlide

    with pytest.raises(DatasetError, match=r"OpenSlide cannot read the region at \(0, 0\) .*x.svs: TIFFRGBAImageGet"):
        OpenSlideSlide(tmp_path / "x.svs").read_region((0, 0), 0, (16, 16))
