"""The chapter 2-4 entries of ``advwsl reproduce``: every ID registered and runnable, every recipe of every
entry a valid training configuration (real and stand-in, full and quick) before anything trains, and the
experiment type run end to end on tiny settings (stand-in, the VOC layout, the CAMELYON16 toy slides)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from advwsl.config import WslGroup, WslRow
from advwsl.errors import ConfigError
from advwsl.reproduce import Context, departures_markdown, get_entry, list_entries, run_entry
from advwsl.reproduce.chapter2 import patch_counts
from advwsl.reproduce.compare import Measure, side_by_side, side_by_side_markdown
from advwsl.reproduce.wsl import merge, recipe_for, wsl_table
from advwsl.training import TrainConfig, build_model

CHAPTERS = ["2.4", "2.5", "2.6", "2.7", "2.8", "2.9", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "A-III-1",
            "fig-2.8", "fig-2.9", "fig-3.3", "fig-4.2", "fig-4.3"]
VOC = ("3.1", "3.2", "fig-3.3")


def _context(entry_id: str, tmp_path: Path, *, quick: bool = False, data_root: str | None = None,
             **settings) -> Context:
    entry = get_entry(entry_id)
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    typed = entry.experiment.settings.from_mapping(merge(entry.resolved(quick).to_dict(), settings))
    return Context(entry, typed, quick, data_root, "cpu", run_dir, progress=False, log=lambda m: None)


def test_every_chapter_entry_is_registered_and_runnable():
    ids = {e.id for e in list_entries()}
    assert set(CHAPTERS) <= ids
    for entry_id in CHAPTERS:
        entry = get_entry(entry_id)
        assert entry.experiment is not None
        assert entry.availability == ("data-root" if entry_id in VOC else "stand-in")


@pytest.mark.parametrize("entry_id", [e for e in CHAPTERS if e != "2.4"])
def test_every_recipe_is_a_valid_configuration(entry_id, tmp_path):
    built = {}
    for quick in (False, True):
        for root in ((str(tmp_path),) if entry_id in VOC else (None, str(tmp_path))):
            ctx = _context(entry_id, tmp_path, quick=quick, data_root=root)
            s = ctx.settings
            groups = (s.stand_in_groups or s.groups) if ctx.stand_in else s.groups
            for group in groups:
                for row in s.rows:
                    recipe = recipe_for(ctx, row, group)
                    if recipe is None:  # a CAMELYON16 patch size without its folder
                        assert group.data_root
                        continue
                    config = TrainConfig.from_dict(recipe)
                    key = (config.model, json.dumps(config.model_kwargs, sort_keys=True))
                    if key not in built:  # the head options fit the head (no weights are loaded)
                        built[key] = build_model(config.replace(pretrained=False, backbone="resnet-mini"), 3)
                    if ctx.stand_in:
                        assert config.dataset == "synthetic" and not config.pretrained
                    else:
                        assert config.data_root == root or config.data_root.startswith(root)
                    if quick:
                        assert config.epochs == 1


def test_real_recipes_are_the_references():
    ctx = _context("4.1", Path("."), data_root="/data/glas")
    adaptive = recipe_for(ctx, WslRow(method="a", model="cam", train={"loss": "size-adaptive"}), WslGroup())
    assert (adaptive["crop_size"], adaptive["loss_kwargs"], adaptive["schedule"]) == (
        448, {"lambda_size": 10.0, "lambda_entropy": 0.1}, "cosine")  # section 4.4.2 / 4.4.5
    image = recipe_for(ctx, ctx.settings.rows[0], WslGroup())
    assert image["schedule"] == "step" and image.get("crop_size") is None  # Table 2.7's model (chapter 2 recipe)
    assert ctx.settings.evaluation["cam_rule"] == "argmax"  # evaluated by eq. 4.6 / 4.14
    unet = recipe_for(ctx, WslRow(method="U-Net", unet=True), WslGroup())
    assert (unet["model"], unet["epochs"], unet["lr"], unet["batch_size"]) == ("unet", 960, 0.1, 16)
    stand_in = _context("4.1", Path("."))
    sized = recipe_for(stand_in, WslRow(method="a", model="cam", train={"loss": "size-kl"}), WslGroup())
    assert sized["loss_kwargs"] == {"lambda_size": 1.0, "lambda_entropy": 0.0}  # the stand-in's, said in the output
    assert sized["dataset_kwargs"]["lesions_only"] is True
    breakhis = _context("2.5", Path("."), data_root="/data/breakhis")
    assert recipe_for(breakhis, WslRow(method="m", model="max"), breakhis.settings.groups[2])[
        "dataset_kwargs"] == {"magnification": 200}
    assert merge({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"c": 3}}, None, {"d": 2}) == {"a": {"b": 1, "c": 3}, "d": 2}


def test_side_by_side_shows_mean_and_std():
    measures = [Measure("accuracy", "Accuracy (%)", "share")]
    frame = side_by_side([{"method": "CAM", "accuracy": 0.9, "accuracy_std": 0.01}],
                         [{"method": "CAM", "accuracy": 92.19, "accuracy_std": 3.54}], ["method"], measures)
    assert "90.00 ± 1.00 / 92.19 ± 3.54 (-2.2)" in side_by_side_markdown(frame, ["method"], measures)


TINY = {"stand_in_data": {"size": 32, "n_trainval": 60, "n_test": 24}, "stand_in_folds": [0, 1],
        "overrides": {"epochs": 1, "batch_size": 16}}


def test_glas_table_on_a_tiny_stand_in(tmp_path):
    ctx = _context("2.7", tmp_path, **TINY)
    ctx.settings = ctx.settings.replace(rows=tuple(r for r in ctx.settings.rows
                                                   if r.method in ("CAM - Average", "GradCAM", "U-Net")))
    outcome = wsl_table(ctx)
    text = outcome.markdown
    assert "**Stand-in**" in text
    stand_in, recipe, unet, grades = outcome.departures  # typed, listed at the top of every output
    assert stand_in.what == "a synthetic stand-in for GlaS" and "lesions_only" in stand_in.why
    assert "2 folds (reference: 5)" in recipe.what and "epochs 1 (reference: 160)" in recipe.what
    assert unet.what.startswith("the U-Net of base width") and "Ronneberger et al.'s 64 and 4" in unet.what
    assert "fully supervised bound" in unet.why
    assert grades.what.startswith("GlaS stand-in: two lesion grades") and grades.why == ""  # a note, as it is
    listed = departures_markdown(get_entry("2.7"), None, False, outcome)
    assert listed[2].startswith("- **a synthetic stand-in for GlaS** — GlaS cannot be downloaded here")
    assert listed[-2] == "- " + grades.what
    folds = pd.read_csv(ctx.run_dir / "folds.csv")
    assert len(folds) == 6 and set(folds["method"]) == {"CAM - Average", "GradCAM", "U-Net"}
    cam, grad = (folds[folds["method"] == m].sort_values("fold") for m in ("CAM - Average", "GradCAM"))
    assert list(cam["accuracy"]) == list(grad["accuracy"])  # the same trained model, Grad-CAM maps
    assert folds["dice_combined"].notna().any() and folds.loc[folds["method"] == "U-Net", "accuracy"].isna().all()
    table = pd.read_csv(ctx.run_dir / "table.csv")
    assert {"dice", "dice_std", "dice_reference", "dice_diff_points"} <= set(table.columns)
    assert table.loc[table["method"] == "Max", "dice"].isna().all()  # the reference's rows stay, ours empty
    assert outcome.summary["stand_in"] and len(outcome.summary["rows"]) == 3


def test_sweep_figure_on_a_tiny_stand_in(tmp_path):
    ctx = _context("fig-2.8", tmp_path, **{**TINY, "stand_in_folds": [0]})
    ctx.settings = ctx.settings.replace(rows=ctx.settings.rows[:1], groups=ctx.settings.groups[::2])
    outcome = wsl_table(ctx)
    sweep = pd.read_csv(ctx.run_dir / "figure.csv")
    assert sorted(sweep["x"]) == [10, 50, 100] and (ctx.run_dir / "figure.png").stat().st_size > 1000
    folds = pd.read_csv(ctx.run_dir / "folds.csv")
    assert folds["accuracy"].between(0, 1).all() and "figure.png" in outcome.files


def test_data_root_entries_need_their_data(tmp_path):
    with pytest.raises(ConfigError, match="needs its dataset"):
        run_entry("3.2", quick=True, out=str(tmp_path / "x"))
    ctx = _context("2.8", tmp_path, data_root=str(tmp_path))  # no DIR/512, DIR/768, DIR/1024 folders
    with pytest.raises(ConfigError, match="nothing to run"):
        wsl_table(ctx)


@pytest.mark.slow
def test_voc_entry_on_the_voc_layout(tmp_path, voc_layout):
    root = voc_layout(tmp_path / "voc")
    ctx = _context("3.2", tmp_path, quick=True, data_root=str(root),
                   overrides={"backbone": "resnet-mini", "stride": 8, "pretrained": False, "tta": False,
                              "batch_size": 2})
    ctx.settings = ctx.settings.replace(rows=ctx.settings.rows[3:5])  # WILDCAT and ours (ResNet-18)
    outcome = wsl_table(ctx)
    assert "Pascal VOC 2012 from" in outcome.markdown
    folds = pd.read_csv(ctx.run_dir / "folds.csv")
    assert list(folds["method"]) == ["WILDCAT (ResNet-18)", "Ours (ResNet-18)"]
    assert folds["miou"].between(0, 1).all() and folds["map"].between(0, 1).all() and "iou_15" in folds
    table = pd.read_csv(ctx.run_dir / "table.csv")
    assert "WILDCAT* (ResNet-101, reported by Durand et al.)" in set(table["method"])  # reported only


def test_table_2_4_on_toy_slides(tmp_path):
    ctx = _context("2.4", tmp_path, quick=True, toy_size=[768, 512], toy_slides=[2, 2])
    outcome = patch_counts(ctx)
    (row,) = outcome.summary["rows"]
    assert row["patch size"] == "512" and row["before_total"] == row["before_category1"] + row["before_category2"]
    assert row["before_total"] > 0 and row["after_total"] <= row["before_total"]
    # toy-slide counts are shown alone, not as ratios to CAMELYON16's
    table_rows = [line for line in outcome.markdown.splitlines() if line.startswith("| 512 |")]
    assert table_rows and " / " not in table_rows[0] and "×" not in table_rows[0]
    (toy,) = outcome.departures
    assert toy.what.startswith("4 toy slides of 768 x 512 pixels") and "CAMELYON16 cannot be downloaded" in toy.why
    assert json.loads((ctx.run_dir / "patches-64" / "summary.json").read_text())["config"]["patch_size"] == 64
