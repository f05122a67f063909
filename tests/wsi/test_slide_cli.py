"""``advwsl slide predict`` and ``advwsl slide attack`` end to end, on a pyramidal and a single-level TIFF:
run directory, files, one-line errors before any work."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from advwsl.cli import main
from advwsl.models import create_model, save_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    stem = tmp_path_factory.mktemp("model") / "cam"
    save_model(create_model("cam", num_classes=2, backbone="resnet-mini", stride=8), stem,
               metadata={"classes": ["normal", "tumour"]})
    return stem


def invoke(*args):
    return CliRunner().invoke(main, ["slide", *map(str, args)], catch_exceptions=False)


@pytest.mark.parametrize("name", ["pyramid.tif", "single.tif"])
def test_predict_and_attack(slides, checkpoint, tmp_path, name):
    common = [slides[name], "--model", checkpoint, "--tile-size", "64", "--magnification", "10",
              "--tissue-threshold", "0.2", "--thumbnail-downsample", "16", "--no-progress"]
    res = invoke("predict", *common, "--out", tmp_path / "p")
    assert res.exit_code == 0, res.output
    assert "slide score (max of the tumour probability" in res.output
    files = {p.name for p in (tmp_path / "p").iterdir()}
    assert {"tiles.csv", "summary.json", "thumbnail.png", "tissue_mask.png", "cam_heatmap.png",
            "config.json"} <= files and "INCOMPLETE" not in files
    tiles = pd.read_csv(tmp_path / "p" / "tiles.csv")
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert len(tiles) == summary["tiles"] > 0 and tiles["tissue"].min() >= 0.2

    res = invoke("attack", *common, "--budget", "5", "--max-tiles", "3", "--out", tmp_path / "a")
    assert res.exit_code == 0, res.output
    assert "slide score:" in res.output and "positive region of the stitched CAM" in res.output
    attacked = pd.read_csv(tmp_path / "a" / "attack_tiles.csv")
    assert 0 < len(attacked) <= 3 and {"l2", "success"} <= set(attacked.columns)
    assert (tmp_path / "a" / "cam_heatmap_attacked.png").is_file()


@pytest.mark.parametrize("args, message", [
    (["--magnification", "10", "--level", "1"], "at most one of --mpp, --magnification, --level and --downsample"),
    (["--cam-class", "5"], "--cam-class 5 is not a class of"),
    (["--device", "nonsense"], "unknown device 'nonsense'"),
])
def test_bad_options_fail_before_work(slides, checkpoint, tmp_path, args, message):
    res = invoke("predict", slides["pyramid.tif"], "--model", checkpoint, *args, "--out", tmp_path / "x",
                 "--no-progress")
    assert res.exit_code == 2 and message in res.output, res.output
    assert not (tmp_path / "x").exists()


def test_magnification_without_mpp_points_to_level(slides, checkpoint, tmp_path):
    res = invoke("predict", slides["nompp.tif"], "--model", checkpoint, "--magnification", "10",
                 "--out", tmp_path / "x", "--no-progress")
    assert res.exit_code == 2 and "--level" in res.output, res.output
