"""Slide inference: stitched CAMs at the right places (a model whose CAM is a known function of the pixels),
slide score aggregation, bounded memory, workers, and bad settings."""

from __future__ import annotations

import gc
import math
import weakref

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from slide_helpers import SIZE, RedModel, block_mean, layout
from torch import nn

from advwsl.errors import ConfigError, InputError
from advwsl.models.zoo import create_model
from advwsl.wsi import SlideConfig, predict_slide
from advwsl.wsi.predict import aggregate

RED = layout().render(0, 0, *SIZE)[..., 0].astype(np.float64) / 255


def config(path, **kw) -> SlideConfig:
    return SlideConfig(path, **{"tile_size": 64, "thumbnail_downsample": 8, "tissue_threshold": 0.3,
                                "batch_size": 7, "progress": False, **kw})


def test_stitched_cam_is_the_known_map_at_each_tile(slides):
    # CAM of class 1 = k (t - red), averaged over 4 x 4 blocks (16 x 16 per tile); each tile covers 8 x 8 map
    # pixels, so the stitched map must be k (t - mean of red over 8 x 8 level-0 blocks) on the tiles, NaN off them
    model = RedModel(stride=4)
    result = predict_slide(model, config(slides["single.tif"]))
    expected = model.k * (0.75 - block_mean(RED, 8))
    on_tiles = np.zeros(expected.shape, bool)
    for x, y in zip(result.grid.xs, result.grid.ys):
        on_tiles[y // 8:(y + 64) // 8, x // 8:(x + 64) // 8] = True
    assert on_tiles.any() and not on_tiles.all()
    assert np.isnan(result.cam_map[~on_tiles]).all()
    np.testing.assert_allclose(result.cam_map[on_tiles], expected[on_tiles], atol=1e-4)
    # the tumour (low red) is where the map is high, and it is off-centre: a transposed map would not match
    assert np.nanargmax(result.cam_map) == np.argmax(np.where(on_tiles, expected, -np.inf))


def test_cams_smaller_than_the_tile_footprint_are_upsampled_bilinearly(slides):
    model = RedModel(stride=16)  # 4 x 4 CAMs for 8 x 8 footprints
    result = predict_slide(model, config(slides["pyramid.tif"]))
    x, y = int(result.grid.xs[3]), int(result.grid.ys[3])
    tile = torch.from_numpy(layout().render(x, y, 64, 64)).permute(2, 0, 1)[None].float() / 255
    cam = model.cams(tile)[1][:, 1:2]
    expected = F.interpolate(cam, size=(8, 8), mode="bilinear", align_corners=False)[0, 0].detach().numpy()
    np.testing.assert_allclose(result.cam_map[y // 8:y // 8 + 8, x // 8:x // 8 + 8], expected, atol=1e-5)


def test_slide_score_and_tile_table(slides):
    result = predict_slide(RedModel(), config(slides["pyramid.tif"]))
    table = result.tiles()
    p = table["prob_class_1"].to_numpy()
    assert result.score == pytest.approx(p.max()) and result.score > 0.5  # the toy slide has a tumour
    top = predict_slide(RedModel(), config(slides["pyramid.tif"], aggregation="topk", top_k=3))
    assert top.score == pytest.approx(np.sort(p)[-3:].mean())
    assert list(table.columns) == ["x", "y", "size", "tissue", "pred", "prob_class_0", "prob_class_1",
                                   "logit_class_0", "logit_class_1"]
    assert (table["tissue"] >= 0.3).all() and (table["size"] == 64).all()
    np.testing.assert_allclose(table[["prob_class_0", "prob_class_1"]].sum(axis=1), 1.0, rtol=1e-6)
    assert aggregate(np.array([0.1, 0.9, 0.5, 0.7]), "topk", 2) == pytest.approx(0.8)
    assert aggregate(np.array([0.1, 0.9]), "topk", 5) == pytest.approx(0.5)
    assert aggregate(np.array([0.1, 0.9]), "max") == 0.9 and math.isnan(aggregate(np.zeros(0)))
    summary = result.summary()
    assert summary["slide"]["mpp"] == [0.25, 0.25] and summary["tiles"] == len(table)
    assert summary["tiles_predicted"]["class_1"] == int((table["pred"] == 1).sum())


class _Recorder(RedModel):
    """Remembers weak references to its inputs and the batch sizes it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.refs, self.sizes = [], []

    def cams(self, x):
        self.refs.append(weakref.ref(x))
        self.sizes.append(len(x))
        return super().cams(x)


def test_memory_is_bounded_by_the_maps(slides):
    model = _Recorder()
    result = predict_slide(model, config(slides["pyramid.tif"], tissue_threshold=0.0))
    gc.collect()
    n = len(result.grid)
    assert model.sizes == [7] * (n // 7) + ([n % 7] if n % 7 else [])  # lazily, batch by batch
    assert all(ref() is None for ref in model.refs)  # no tile batch is kept
    arrays = [result.thumbnail, result.tissue_mask, result.cam_map, result.logits, result.grid.xs,
              result.grid.ys, result.grid.tissue]
    map_pixels = result.tissue_mask.size
    assert sum(a.nbytes for a in arrays) <= map_pixels * (3 + 1 + 4) + n * (2 * 4 + 3 * 8)


def test_workers_give_the_same_result(slides):
    a = predict_slide(RedModel(stride=4), config(slides["pyramid.tif"]))
    b = predict_slide(RedModel(stride=4), config(slides["pyramid.tif"], workers=2))
    np.testing.assert_array_equal(a.logits, b.logits)
    np.testing.assert_array_equal(a.cam_map, b.cam_map)


def test_wildcat_on_an_aperio_slide_at_20x(slides):
    model = create_model("wildcat", backbone="resnet-mini", stride=8, num_classes=2)
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    result = predict_slide(model, config(slides["slide.svs"], magnification=20, batch_size=16))
    assert model.training and [p.requires_grad for p in model.parameters()] == flags  # left as it was
    assert result.grid.downsample == 2.0 and result.grid.level == 1 and result.grid.size0 == 128
    assert result.slide["objective_power"] == 40 and 0 <= result.score <= 1
    covered = np.isfinite(result.cam_map)
    assert covered.sum() == len(result.grid) * 16 * 16  # each 128 px tile covers 16 x 16 map pixels


def test_class_names(slides):
    result = predict_slide(RedModel(), config(slides["pyramid.tif"]), classes=["normal", "tumour"])
    assert result.classes == ("normal", "tumour") and "prob_tumour" in result.tiles()
    with pytest.raises(InputError, match="3 class names"):
        predict_slide(RedModel(), config(slides["pyramid.tif"]), classes=["a", "b", "c"])


def test_a_plain_classifier_has_no_cam_map(slides):
    plain = nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    result = predict_slide(plain, config(slides["pyramid.tif"]))
    assert result.cam_map is None and len(result.tiles()) == len(result.grid)
    assert np.isfinite(result.class_map(1)).sum() == len(result.grid) * 64


def test_bad_settings_are_refused_before_reading(slides, tmp_path):
    with pytest.raises(ConfigError, match="at most one"):
        predict_slide(RedModel(), config(slides["pyramid.tif"], mpp=0.5, level=1))
    with pytest.raises(ConfigError, match="not found"):
        predict_slide(RedModel(), config(tmp_path / "none.svs"))
    with pytest.raises(ConfigError, match="aggregation"):
        predict_slide(RedModel(), config(slides["pyramid.tif"], aggregation="mean"))
    with pytest.raises(ConfigError, match="cam_class = 2 but the model has 2 classes"):
        predict_slide(RedModel(), config(slides["pyramid.tif"], cam_class=2))
    with pytest.raises(InputError, match="--level"):
        predict_slide(RedModel(), config(slides["nompp.tif"], magnification=20))
    with pytest.raises(InputError, match="lower tissue_threshold"):
        predict_slide(RedModel(), config(slides["pyramid.tif"], tile_size=512, tissue_threshold=1.0))
    with pytest.raises(InputError, match="smaller than one tile"):
        predict_slide(RedModel(), config(slides["pyramid.tif"], tile_size=1024))
