"""Slide options: overlapping tiles, maps finer than the thumbnail, classes by name, stain normalization,
a model returning NaN (issue 21), and the settings checked against the slide before any model work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from slide_helpers import SIZE, RedModel, block_mean, layout

from advwsl.data.stain import MACENKO_REFERENCE, normalize_stain, stain_stats
from advwsl.errors import ConfigError, DatasetError, InputError, ModelError
from advwsl.wsi import SlideAttackConfig, SlideConfig, attack_slide, check_slide_config, predict_slide
from advwsl.wsi.predict import resolve_class

RED = layout().render(0, 0, *SIZE)[..., 0].astype(np.float64) / 255
NAMES = ("normal", "malignant")


def config(path, **kw) -> SlideConfig:
    return SlideConfig(path, **{"tile_size": 64, "thumbnail_downsample": 8, "tissue_threshold": 0.3,
                                "batch_size": 7, "progress": False, **kw})


def _covered(result, side):
    """The map pixels the tiles of ``result`` cover, for a map at ``side`` level-0 px per pixel."""
    on = np.zeros((SIZE[1] // side, SIZE[0] // side), bool)
    s = result.grid.size0 // side
    for x, y in zip(result.grid.xs, result.grid.ys):
        on[y // side:y // side + s, x // side:x // side + s] = True
    return on


def test_overlapping_tiles_average_where_they_meet(slides):
    plain = predict_slide(RedModel(stride=4), config(slides["single.tif"]))
    model = RedModel(stride=4)
    over = predict_slide(model, config(slides["single.tif"], overlap=32))
    g = over.grid
    assert g.stride0 == 32 and g.size0 == 64 and len(g) > 2 * len(plain.grid)
    assert set(np.diff(np.unique(g.xs))) == {32} and (g.xs + 64 <= SIZE[0]).all()
    # the CAM is a local function of the pixels: every tile covering a map pixel gives it the same value,
    # so their mean is the closed-form map k (t - mean red over the pixel's 8 x 8 block)
    expected = model.k * (0.75 - block_mean(RED, 8))
    on = _covered(over, 8)
    np.testing.assert_allclose(over.cam_map[on], expected[on], atol=1e-4)
    assert np.isnan(over.cam_map[~on]).all() and over.coverage.max() == 4  # interior pixels: 2 x 2 tiles
    # a class map is the mean of the covering tiles' probabilities
    p = over.probabilities[:, 1]
    y0, x0 = np.argwhere(over.coverage >= 2)[len(np.argwhere(over.coverage >= 2)) // 2]
    shared = [k for k in range(len(g)) if g.xs[k] <= x0 * 8 < g.xs[k] + 64 and g.ys[k] <= y0 * 8 < g.ys[k] + 64]
    assert len(shared) == over.coverage[y0, x0] >= 2
    assert over.class_map(1)[y0, x0] == pytest.approx(p[shared].mean(), rel=1e-6)
    with pytest.raises(ConfigError, match="overlap must be smaller than tile_size"):
        predict_slide(model, config(slides["single.tif"], overlap=64))


def test_maps_finer_than_the_thumbnail(slides):
    model = RedModel(stride=4)
    result = predict_slide(model, config(slides["single.tif"], heatmap_downsample=4))
    assert result.thumbnail.shape[:2] == (SIZE[1] // 8, SIZE[0] // 8)
    assert result.cam_map.shape == (SIZE[1] // 4, SIZE[0] // 4) and result.map_downsample == 4
    on = _covered(result, 4)
    np.testing.assert_allclose(result.cam_map[on], model.k * (0.75 - block_mean(RED, 4))[on], atol=1e-4)
    assert np.isfinite(result.class_map(0)).sum() == on.sum()
    assert result.summary()["heatmap_downsample"] == 4


def test_classes_by_name(slides):
    by_index = predict_slide(RedModel(), config(slides["pyramid.tif"]), classes=NAMES)
    by_name = predict_slide(RedModel(), config(slides["pyramid.tif"], positive_class="malignant",
                                               cam_class="Malignant"), classes=NAMES)
    assert by_name.score == by_index.score and by_name.config.positive_class == 1 and by_name.config.cam_class == 1
    assert by_name.summary()["positive_class"] == "malignant"
    normal = predict_slide(RedModel(), config(slides["pyramid.tif"], positive_class="normal"), classes=NAMES)
    assert normal.score == pytest.approx(normal.probabilities[:, 0].max())
    with pytest.raises(ConfigError, match="'tumor' is not a class of the model; its classes are 0: normal, 1: malignant"):
        predict_slide(RedModel(), config(slides["pyramid.tif"], positive_class="tumor"), classes=NAMES)
    with pytest.raises(ConfigError, match="records no class names"):
        resolve_class("malignant", None)
    # the attack takes the same named config, with or without the prediction
    cfg = config(slides["pyramid.tif"], positive_class="malignant")
    named = predict_slide(RedModel(), cfg, classes=NAMES)
    result = attack_slide(RedModel(), cfg, SlideAttackConfig(steps=20, max_tiles=2), prediction=named)
    assert result.prediction is named and "prob_malignant_before" in result.tiles
    assert result.score_before == by_index.score


class _NaNModel(RedModel):
    def cams(self, x):
        logits, cams = super().cams(x)
        return logits * float("nan"), cams


def test_a_model_returning_nan_is_refused(slides):
    with pytest.raises(ModelError, match=r"NaN or infinite logits or CAMs on 7 of 7 tiles .*level-0 corners \("):
        predict_slide(_NaNModel(), config(slides["pyramid.tif"]))
    with pytest.raises(ModelError, match="NaN or infinite"):
        attack_slide(_NaNModel(), config(slides["pyramid.tif"]))


class _Seen(RedModel):
    def __init__(self):
        super().__init__()
        self.inputs = []

    def cams(self, x):
        self.inputs.append(x.clone())
        return super().cams(x)


def test_stain_normalized_tiles_reach_the_model(slides, tmp_path):
    model = _Seen()
    result = predict_slide(model, config(slides["pyramid.tif"], stain_norm="macenko", batch_size=100))
    target, source = result.stain
    assert target == MACENKO_REFERENCE and source is not None and source.method == "macenko"
    g = result.grid
    raw = torch.stack([torch.from_numpy(layout().render(int(x), int(y), 64, 64)).permute(2, 0, 1).float() / 255
                       for x, y in zip(g.xs[:5], g.ys[:5])])
    torch.testing.assert_close(model.inputs[0][:5], normalize_stain(raw, target, source=source))
    assert not torch.allclose(model.inputs[0][:5], raw, atol=0.02)  # the colours did change
    # Reinhard takes its target from a reference image
    reference = tmp_path / "ref.png"
    Image.fromarray(layout(seed=3).render(0, 0, 256, 256)).save(reference)
    reinhard = predict_slide(RedModel(), config(slides["pyramid.tif"], stain_norm="reinhard", stain_reference=reference))
    expected = stain_stats(torch.from_numpy(np.array(Image.open(reference))).permute(2, 0, 1).float() / 255,
                           "reinhard")
    assert reinhard.stain[0] == expected and reinhard.summary()["stain_norm"] == "reinhard"
    with pytest.raises(ConfigError, match="needs a reference image"):
        predict_slide(RedModel(), config(slides["pyramid.tif"], stain_norm="reinhard"))
    with pytest.raises(ConfigError, match="stain_norm must be one of"):
        predict_slide(RedModel(), config(slides["pyramid.tif"], stain_norm="vahadane"))


def test_attack_with_overlap_changes_the_map_only_where_attacked_tiles_are(slides):
    cfg = config(slides["pyramid.tif"], overlap=32)
    result = attack_slide(RedModel(), cfg, SlideAttackConfig(steps=50, max_tiles=1))
    (tile,) = result.tiles["tile"]
    g = result.prediction.grid
    x, y = g.xs[tile] // 8, g.ys[tile] // 8
    box = np.zeros(result.cam_map_after.shape, bool)
    box[y:y + 8, x:x + 8] = True
    before, after = result.prediction.cam_map, result.cam_map_after
    np.testing.assert_allclose(after[~box], before[~box], atol=1e-5, equal_nan=True)
    assert (after[box] < before[box] - 1e-3).all()  # the attack lowered the positive CAM there


def test_settings_checked_against_the_slide_before_any_model(slides):
    resolved = check_slide_config(config(slides["pyramid.tif"], positive_class="malignant"), NAMES)
    assert resolved.positive_class == 1
    with pytest.raises(InputError, match="larger than the slide"):
        check_slide_config(config(slides["pyramid.tif"], thumbnail_downsample=100000))
    with pytest.raises(InputError, match="level 9 does not exist"):
        check_slide_config(config(slides["pyramid.tif"], level=9))
    with pytest.raises(InputError, match="smaller than one tile"):
        check_slide_config(config(slides["pyramid.tif"], tile_size=2048))
    with pytest.raises(ConfigError, match="not a class of the model"):
        check_slide_config(config(slides["pyramid.tif"], cam_class="tumour"), NAMES)
    with pytest.raises(ConfigError, match="positive_class = 2 but the model has 2 classes"):
        check_slide_config(config(slides["pyramid.tif"], positive_class=2), NAMES)


def test_an_undecodable_slide_is_found_by_the_check(tmp_path):
    """A JPEG slide without imagecodecs, or damaged tile data, is refused before the model loads."""
    from advwsl.data.camelyon16.toy import make_toy_slide

    path = tmp_path / "zlib.tif"
    make_toy_slide(path, size=(256, 256), levels=1, tile=128, compression="zlib")
    import tifffile

    with tifffile.TiffFile(path) as tif:
        offset, count = tif.pages[0].dataoffsets[0], tif.pages[0].databytecounts[0]
    raw = bytearray(path.read_bytes())
    raw[offset:offset + count] = b"\x01" * count
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="cannot decode segment 0"):
        check_slide_config(config(path, thumbnail_downsample=4))
