"""One CAM number: ``advwsl evaluate`` and ``advwsl attack`` report the same CAM Dice for the same checkpoint,
rule and class (the CAM of the predicted class, mean Dice over the lesion images), both as fractions, both
naming the rule."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from advwsl.cli import main
from advwsl.models import create_model, save_model


@pytest.mark.parametrize("rule", ["minmax", "zero"])
def test_evaluate_and_attack_give_one_cam_dice(rule, tmp_path):
    torch.manual_seed(0)
    stem = tmp_path / "model"
    save_model(create_model("wildcat", backbone="resnet-mini", stride=8, num_classes=2), stem, metadata={
        "classes": ["normal", "malignant"], "dataset": {"name": "synthetic", "fold": 0},
        "training": {"dataset": "synthetic", "dataset_kwargs": {"size": 32, "n_trainval": 40, "n_test": 16}}})
    run = CliRunner()
    ev = run.invoke(main, ["evaluate", "--checkpoint", str(stem), "--cam-rule", rule, "--cam-class", "predicted",
                           "--no-progress", "--out", str(tmp_path / "ev")])
    at = run.invoke(main, ["attack", "--model", str(stem), "--budget", "3", "--cam-rule", rule, "--no-progress",
                           "--out", str(tmp_path / "at")])
    assert ev.exit_code == 0 and at.exit_code == 0, ev.output + at.output
    evaluated = json.loads((tmp_path / "ev" / "metrics.json").read_text())["mdice_positive"]
    attacked = json.loads((tmp_path / "at" / "summary.json").read_text())["attacks"][0]["cams"]["summary"]
    assert evaluated == pytest.approx(attacked["mask_dice_clean"], abs=1e-6)
    assert f"rule {rule}" in ev.output and f"rule {rule}" in at.output
    assert f"{evaluated:.3f}" in ev.output and f"{evaluated:.3f}" in at.output  # fractions in both
