"""The main job end to end: ``advwsl attack --model wildcat --budget N`` on the built-in demo (a small
recipe through ``$ADVWSL_DEMO_RECIPE``), every file and column of the run directory, consistent numbers,
the cached second run, the CAM goal, and the bad-input messages."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from advwsl.cli import main
from advwsl.attacks.result import COLUMNS

TINY = {"epochs": 2, "batch_size": 16, "dataset_kwargs": {"size": 32, "n_trainval": 80, "n_test": 24}}
CAM_COLUMNS = {"index", "success", "cam_class", "clean_pred", "adv_pred", "l2", "cam_dice", "cam_iou",
               "cam_spearman", "com_shift", "com_shift_px", "has_mask", "mask_dice_clean", "mask_iou_clean",
               "mask_dice_adv", "mask_iou_adv"}
CURVE_COLUMNS = {"epsilon", "cam_dice", "cam_iou", "cam_spearman", "com_shift", "com_shift_px", "mask_dice",
                 "mask_iou"}


@pytest.fixture(autouse=True)
def _small_demo(monkeypatch):
    monkeypatch.setenv("ADVWSL_DEMO_RECIPE", json.dumps(TINY))


def invoke(*args: str):
    return CliRunner().invoke(main, ["attack", *args], catch_exceptions=False)


FILES = {"table.md", "cams.csv", "robustness_curves.csv", "robustness_curves.png", "cam_curves.csv", "cam_curves.png",
         "cam_grid.png", "summary.json", "summary.md", "config.json", "versions.json", "report.html"}


def check_run(out, stem: str, output: str) -> dict:
    assert {p.name for p in out.iterdir()} == FILES | {f"{stem}.csv", f"{stem}.json", f"cams-{stem}.npz"}
    assert json.loads((out / "summary.json").read_text())["files"] == sorted(FILES | {
        f"{stem}.csv", f"{stem}.json", f"cams-{stem}.npz"})
    records = pd.read_csv(out / f"{stem}.csv")
    assert list(records.columns) == list(COLUMNS) and len(records) == 24
    cams = pd.read_csv(out / "cams.csv")
    assert CAM_COLUMNS | {"attack"} <= set(cams.columns) and len(cams) == 24
    curve = pd.read_csv(out / "robustness_curves.csv")
    assert list(curve.columns) == ["attack", "epsilon", "accuracy"]
    cam_curve = pd.read_csv(out / "cam_curves.csv")
    assert CURVE_COLUMNS | {"attack"} <= set(cam_curve.columns)
    summary = json.loads((out / "summary.json").read_text())
    table = summary["attacks"][0]["table"]
    # consistency of the numbers (shares are fractions in [0, 1] in every file)
    assert 0 <= table["success"] <= 1
    assert np.all(np.diff(curve["accuracy"].to_numpy()) <= 0)
    assert curve["epsilon"].iloc[0] == 0
    clean = records["originally_correct"].mean()
    assert curve["accuracy"].iloc[0] == pytest.approx(clean)
    assert summary["clean_accuracy"] == pytest.approx(clean)
    assert table["success"] == pytest.approx(records["success"][records["originally_correct"]].mean())
    for col in ("cam_dice", "cam_iou", "com_shift", "mask_dice_clean", "mask_iou_clean", "mask_dice_adv",
                "mask_iou_adv"):
        values = cams[col].dropna()
        assert values.between(0, 1).all(), col
    assert cams["cam_spearman"].between(-1, 1).all()
    for col in ("cam_dice", "cam_iou", "com_shift", "mask_dice", "mask_iou"):
        assert cam_curve[col].between(0, 1).all(), col
    assert cam_curve["cam_dice"].iloc[0] == 1 and cam_curve["com_shift"].iloc[0] == 0
    assert cam_curve["mask_dice"].iloc[0] == pytest.approx(cams["mask_dice_clean"].mean())
    assert cams["has_mask"].sum() == summary["attacks"][0]["cams"]["summary"]["n_with_mask"] > 0
    np.testing.assert_allclose(cams["l2"], records["l2"], rtol=1e-5, atol=1e-6)
    # the terminal table is the report
    for text in ("synthetic demo", "| Attack | Budget | Success (%) | Mean L2 | Median L2 | #Grads | Run-time (s) |",
                 "Clean accuracy", "Dice vs mask", "Dice(clean CAM, adv CAM)", "centre-of-mass shift"):
        assert text in output, text
    assert (out / "summary.md").read_text().strip() in output
    return summary


def test_main_job_label_goal_trains_once_then_reuses(tmp_path):
    first = invoke("--model", "wildcat", "--budget", "10", "--out", str(tmp_path / "a"), "--no-progress")
    assert first.exit_code == 0, first.output
    assert "training the demo wildcat model" in first.output
    s1 = check_run(tmp_path / "a", "ddn", first.output)
    assert s1["model"]["kind"] == "builtin" and s1["attacks"][0]["goal"] == "label"
    second = invoke("--model", "wildcat", "--budget", "10", "--out", str(tmp_path / "b"), "--no-progress")
    assert second.exit_code == 0, second.output
    assert "training the demo" not in second.output  # cached
    s2 = check_run(tmp_path / "b", "ddn", second.output)
    assert s2["clean_accuracy"] == s1["clean_accuracy"]
    assert s2["attacks"][0]["table"]["median_l2"] == pytest.approx(s1["attacks"][0]["table"]["median_l2"])


def test_cam_goal_keeps_the_label_and_moves_the_cam(tmp_path):
    res = invoke("--model", "wildcat", "--attack", "cam-ddn", "--budget", "20", "--out", str(tmp_path / "c"),
                 "--no-progress")
    assert res.exit_code == 0, res.output
    summary = check_run(tmp_path / "c", "cam-ddn", res.output)
    assert summary["attacks"][0]["goal"] == "cam" and summary["attacks"][0]["table"]["attack"] == "CAM-DDN"
    records = pd.read_csv(tmp_path / "c" / "cam-ddn.csv")
    cams = pd.read_csv(tmp_path / "c" / "cams.csv")
    ok = records["success"].to_numpy()
    assert ok.sum() > 0
    assert np.all(records["adv_pred"][ok] == records["label"][ok])  # the label is kept
    assert np.all(cams["adv_pred"][ok] == cams["clean_pred"][ok])
    assert np.all(cams["cam_dice"][ok] < 0.5)  # the CAM moved below the Dice threshold


def test_unknown_model_lists_the_available_ones(tmp_path):
    res = invoke("--model", "wildcat9", "--out", str(tmp_path / "x"), "--no-progress")
    assert res.exit_code == 2
    assert "unknown model 'wildcat9'" in res.output
    for name in ("wildcat", "deepmil-multi", "digits-cnn"):
        assert name in res.output


def test_cam_goal_on_a_model_without_cams_says_why(tmp_path):
    from advwsl.models import create_model, save_model

    stem = tmp_path / "cnn"
    save_model(create_model("cw-mnist", input_size=16), stem)
    res = invoke("--model", str(stem), "--attack", "cam-ddn", "--out", str(tmp_path / "x"), "--no-progress")
    assert res.exit_code == 2
    assert "has no class activation maps, so the CAM attack does not apply" in res.output and str(stem) in res.output
    assert not (tmp_path / "x").exists()  # refused before any work


def _breakhis_fixture(root, size: int = 32) -> None:
    """A tiny BreakHis folder in the official layout (40X PNGs of 4 benign and 4 malignant patients)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    base = root / "BreaKHis_v1" / "histology_slides" / "breast"
    for cls, letter, kind in (("benign", "B", "A"), ("malignant", "M", "DC")):
        for p in range(4):
            slide = f"{1000 + p}{letter}"
            folder = base / cls / "SOB" / kind / f"SOB_{letter}_{kind}_14-{slide}" / "40X"
            folder.mkdir(parents=True)
            for k in range(2):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"SOB_{letter}_{kind}-14-{slide}-40-{k + 1:03d}.png")


def test_dataset_without_masks_skips_localization_with_a_notice(tmp_path):
    from advwsl.models import create_model, save_model

    _breakhis_fixture(tmp_path / "data")
    stem = tmp_path / "wsl"
    save_model(create_model("wildcat", backbone="resnet-mini", stride=8), stem, metadata={
        "classes": ["benign", "malignant"]})
    res = invoke("--model", "wildcat", "--checkpoint", str(stem), "--dataset", "breakhis", "--data-root",
                 str(tmp_path / "data"), "--budget", "5", "--out", str(tmp_path / "r"), "--no-progress")
    assert res.exit_code == 0, res.output
    assert "no ground-truth masks" in res.output and "skipped" in res.output
    assert "synthetic demo" not in res.output
    cams = pd.read_csv(tmp_path / "r" / "cams.csv")
    assert "mask_dice_clean" not in cams.columns and {"cam_dice", "cam_spearman"} <= set(cams.columns)
    assert "Dice vs mask" not in res.output
