"""Resolution of the tiles from µm/px, objective power, level or downsample; the Otsu tissue mask against the
toy slide's tissue polygon; the tile grid and the tiles read at a downsample the pyramid does not have."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from slide_helpers import SIZE, block_mean, layout

from advwsl.data.camelyon16.annotations import rasterize
from advwsl.errors import InputError
from advwsl.evaluation.cams import dice_iou
from advwsl.wsi import open_slide, otsu_tissue, tissue_map
from advwsl.wsi.tiling import TileDataset, make_tile_grid, resolve_downsample


@pytest.mark.parametrize("asked, expected", [
    ({}, 1.0), ({"mpp": 0.5}, 2.0), ({"magnification": 20}, 2.0), ({"magnification": 10}, 4.0),
    ({"mpp": 0.26}, 1.0),  # within 5 % of level 0: read as is
    ({"mpp": 0.6}, 2.4), ({"level": 2}, 4.0), ({"downsample": 3.0}, 3.0), ({"downsample": 8.2}, 8.0)])
def test_resolution_from_mpp_magnification_level_or_downsample(slides, asked, expected):
    with open_slide(slides["pyramid.tif"]) as s:
        assert resolve_downsample(s, **asked) == pytest.approx(expected)


def test_resolution_errors(slides):
    with open_slide(slides["nompp.tif"]) as s:
        with pytest.raises(InputError, match="records no microns per pixel.*--level"):
            resolve_downsample(s, magnification=20)
        assert resolve_downsample(s, level=1) == 2.0  # a level needs no mpp
    with open_slide(slides["pyramid.tif"]) as s:
        with pytest.raises(InputError, match="finer than the scan"):
            resolve_downsample(s, mpp=0.1)
        with pytest.raises(InputError, match="level 4 does not exist"):
            resolve_downsample(s, level=4)
        with pytest.raises(InputError, match="at most one"):
            resolve_downsample(s, mpp=0.5, level=1)


def test_otsu_tissue_mask_finds_the_tissue_region(slides):
    truth = rasterize(layout().tissue, 0, 0, SIZE[0] // 8, SIZE[1] // 8, downsample=8)
    for name in ("pyramid.tif", "strips.tif"):
        with open_slide(slides[name]) as s:
            thr, mask, ds = tissue_map(s, 8)
        assert ds == 8 and mask.shape == truth.shape
        dice, _ = dice_iou(*(torch.from_numpy(m)[None] for m in (mask, truth)))
        assert float(dice) > 0.97, name
    assert otsu_tissue(np.full((8, 8, 3), 240, np.uint8))[1].sum() == 0  # all glass: no tissue


def test_grid_keeps_tiles_with_enough_tissue(slides):
    truth = rasterize(layout().tissue, 0, 0, *SIZE)
    with open_slide(slides["pyramid.tif"]) as s:
        _, mask, ds = tissue_map(s, 8)
        everything = make_tile_grid(s, 64, 1.0, mask, ds, tissue_threshold=0.0)
        grid = make_tile_grid(s, 64, 1.0, mask, ds, tissue_threshold=0.5)
    assert len(everything) == (SIZE[0] // 64) * (SIZE[1] // 64)
    assert 0 < len(grid) < len(everything) and (grid.tissue >= 0.5).all()
    assert (grid.xs % 64 == 0).all() and (grid.ys % 64 == 0).all()
    true_share = np.array([truth[y:y + 64, x:x + 64].mean() for x, y in zip(everything.xs, everything.ys)])
    assert np.abs(everything.tissue - true_share).max() < 0.15  # measured on the 8x thumbnail
    kept = set(zip(grid.xs.tolist(), grid.ys.tolist()))
    assert all((x, y) in kept for x, y, t in zip(everything.xs, everything.ys, true_share) if t > 0.65)


def test_tiles_at_a_downsample_the_slide_does_not_have(slides):
    full = layout().render(0, 0, *SIZE).astype(float)
    for name in ("single.tif", "pyramid.tif"):
        with open_slide(slides[name]) as s:
            grid = make_tile_grid(s, 32, 2.0, np.ones((1, 1), bool), 1e9, tissue_threshold=0.0)
            tile = grid.read(s, 5)
        x, y = int(grid.xs[5]), int(grid.ys[5])
        assert grid.size0 == 64 and tile.shape == (32, 32, 3)
        if name == "single.tif":  # level 0 read at 64 px, box-reduced to 32: the 2 x 2 means (PIL's 8-bit
            assert grid.level == 0 and grid.read_size == 64  # fixed point rounds within one level)
            assert np.abs(tile - block_mean(full[y:y + 64, x:x + 64], 2)).max() <= 1.0
        else:  # level 1 is downsample 2: read as is
            assert grid.level == 1 and grid.read_size == 32
            assert np.array_equal(tile, layout().render(x // 2, y // 2, 32, 32, 1))
    with open_slide(slides["pyramid.tif"]) as s:
        grid = make_tile_grid(s, 50, 3.0, np.ones((1, 1), bool), 1e9, tissue_threshold=0.0)
        assert (grid.level, grid.size0, grid.read_size) == (1, 150, 75)
        assert grid.read(s, 0).shape == (50, 50, 3)
    data = TileDataset(slides["pyramid.tif"], grid, indices=[3, 1])
    image, index = data[0]
    assert index == 3 and tuple(image.shape) == (3, 50, 50) and str(image.dtype) == "torch.uint8"
