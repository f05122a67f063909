"""The slide attack on a model with a closed-form minimal L2 norm, and the files of both slide results."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from slide_helpers import RedModel
from torch import nn

from advwsl.errors import ConfigError, InputError
from advwsl.wsi import (SlideAttackConfig, SlideConfig, attack_slide, open_slide, predict_slide, write_slide_attack,
                        write_slide_prediction)


def config(path, **kw) -> SlideConfig:
    return SlideConfig(path, **{"tile_size": 64, "thumbnail_downsample": 8, "tissue_threshold": 0.3,
                                "batch_size": 8, "progress": False, **kw})


@pytest.fixture(scope="module")
def attacked(slides):
    model = RedModel()
    cfg = config(slides["pyramid.tif"])
    result = attack_slide(model, cfg, SlideAttackConfig(steps=100, max_tiles=1000, keep_adversarials=True))
    return model, cfg, result


def test_ddn_finds_the_closed_form_minimal_norm_on_every_positive_tile(attacked, slides):
    model, cfg, result = attacked
    pred = result.prediction
    positive = np.flatnonzero(pred.logits.argmax(1) == 1)
    tiles = result.tiles
    assert result.n_candidates == len(positive) > 3 and sorted(tiles["tile"]) == sorted(positive)
    # linear in red: margin = z_1 - z_0, gradient norm k / T, minimal L2 = margin * T / k
    optimal = (pred.logits[tiles["tile"], 1] - pred.logits[tiles["tile"], 0]) * 64 / model.k
    l2 = tiles["l2"].to_numpy()
    assert tiles["success"].all() and (tiles["adv_pred"] == 0).all()
    assert (l2 >= optimal - 1e-4).all() and (l2 <= 1.1 * optimal + 0.05).all()
    assert (tiles["prob_class_1_after"] < 0.5).all()
    assert (tiles["prob_class_1_after"] < tiles["prob_class_1_before"]).all()
    # the reported norms are those of the adversarial tiles, recomputed here from the slide's pixels
    with open_slide(slides["pyramid.tif"]) as s:
        clean = np.stack([pred.grid.read(s, i) for i in tiles["tile"]]).astype(np.float64) / 255
    recomputed = np.sqrt(((result.adversarials / 255 - clean) ** 2).reshape(len(tiles), -1).sum(1))
    np.testing.assert_allclose(l2, recomputed, atol=1e-4)


def test_slide_score_and_positive_region_after_the_attack(attacked):
    _, _, result = attacked
    assert result.score_before > 0.5 > result.score_after  # every positive tile flipped: the slide is negative
    before, after = result.regions()
    assert after.sum() < before.sum() and not (after & ~before).any()  # the CAM is lowered, never raised
    assert result.region_dice < 1.0
    grid, touched = result.prediction.grid, np.zeros(before.shape, bool)
    for i in result.tiles["tile"]:
        x, y = grid.xs[i] // 8, grid.ys[i] // 8
        touched[y:y + 8, x:x + 8] = True
    clean, adv = result.prediction.cam_map, result.cam_map_after
    np.testing.assert_array_equal(clean[~touched], adv[~touched])  # tiles not attacked keep their maps
    assert (adv[touched] < clean[touched]).all()
    summary = result.summary()
    assert summary["attacked"] == summary["successes"] == len(result.tiles)
    assert summary["slide_score_after"] == result.score_after


def test_max_tiles_takes_the_most_positive_tiles_and_the_model_is_left_as_found(slides):
    model = RedModel()
    model.train()
    cfg = config(slides["pyramid.tif"])
    prediction = predict_slide(model, cfg)
    result = attack_slide(model, cfg, SlideAttackConfig(steps=10, max_tiles=3), prediction=prediction)
    p = prediction.probabilities[:, 1]
    assert sorted(result.tiles["tile"]) == sorted(np.argsort(-p)[:3].tolist())
    assert result.n_candidates > 3 and result.adversarials is None
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())
    with pytest.raises(InputError, match="another SlideConfig"):
        attack_slide(model, config(slides["pyramid.tif"], top_k=2), prediction=prediction)


def test_nothing_to_attack_leaves_the_slide_as_it_was(slides):
    model = RedModel(t=0.2)  # every tile negative
    result = attack_slide(model, config(slides["pyramid.tif"]), SlideAttackConfig(steps=5))
    assert result.n_candidates == 0 and len(result.tiles) == 0
    assert result.score_after == result.score_before and result.region_dice == 1.0


def test_bad_attack_settings(slides):
    cfg = config(slides["pyramid.tif"])
    with pytest.raises(ConfigError, match="minimal-norm"):
        attack_slide(RedModel(), cfg, SlideAttackConfig(attack="pgd"))
    with pytest.raises(ConfigError, match="max_tiles"):
        attack_slide(RedModel(), cfg, SlideAttackConfig(max_tiles=0))
    with pytest.raises(ConfigError, match="target_class = 3"):
        attack_slide(RedModel(), cfg, SlideAttackConfig(target_class=3))


def test_writers(attacked, tmp_path):
    _, _, result = attacked
    out = tmp_path / "predict"
    out.mkdir()
    written = write_slide_prediction(result.prediction, out)
    names = {p.name for p in written}
    assert names == {"tiles.csv", "summary.json", "thumbnail.png", "tissue_mask.png", "heatmap_class_0.png",
                     "heatmap_class_1.png", "cam_heatmap.png", "maps.npz"}
    pd.testing.assert_frame_equal(pd.read_csv(out / "tiles.csv"), result.prediction.tiles(), check_dtype=False)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["slide_score"] == pytest.approx(result.score_before) and summary["slide"]["mpp"] == [0.25, 0.25]
    assert Image.open(out / "thumbnail.png").size == result.prediction.thumbnail.shape[1::-1]
    maps = np.load(out / "maps.npz")
    np.testing.assert_array_equal(maps["cam_map"], result.prediction.cam_map)
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        write_slide_prediction(result.prediction, out)
    with pytest.raises(ConfigError, match="does not exist"):
        write_slide_prediction(result.prediction, tmp_path / "missing")

    out = tmp_path / "attack"
    out.mkdir()
    names = {p.name for p in write_slide_attack(result, out)}
    assert {"attack_tiles.csv", "cam_heatmap_attacked.png", "cam_before_after.png", "tiles.csv"} <= names
    summary = json.loads((out / "summary.json").read_text())
    assert summary["attack"]["region_dice"] == pytest.approx(result.region_dice)
    assert len(pd.read_csv(out / "attack_tiles.csv")) == len(result.tiles)


def test_writers_without_cams(slides, tmp_path):
    plain = nn.Sequential(nn.Conv2d(3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with torch.no_grad():
        plain[0].weight.zero_()
        plain[0].bias.copy_(torch.tensor([0.0, 3.0]))  # every tile positive
    result = attack_slide(plain, config(slides["pyramid.tif"]), SlideAttackConfig(steps=5, max_tiles=2))
    assert result.cam_map_after is None and result.region_dice is None
    names = {p.name for p in write_slide_attack(result, tmp_path)}
    assert "cam_heatmap.png" not in names and "cam_before_after.png" not in names and "attack_tiles.csv" in names
