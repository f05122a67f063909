"""Bring your own: a folder dataset through train / evaluate / attack, a timm backbone with local weights,
a model of your own as ``--model file.py:function`` and its errors, and the warning of a run at chance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import save_file

from advwsl.cli import main
from advwsl.errors import ConfigError, ModelError
from advwsl.jobs import resolve_model
from advwsl.models import checkpoint_info
from advwsl.training import TrainConfig, build_model

FACTORY = '''
import torch
from torch import nn

from advwsl.models import create_model


def build():
    torch.manual_seed(0)
    model = create_model("cw-mnist", input_size=16)
    model.classes = [str(d) for d in range(10)]
    return model


def broken():
    raise RuntimeError("weights file not found")


def not_a_model():
    return {"weights": 1}
'''


def write_folder(root: Path, n: int = 8, size: int = 32) -> Path:
    """ROOT/images/{normal,tumor}/*.png, masks for the tumours: a bright square the model can find."""
    rng = np.random.default_rng(0)
    for cls in ("normal", "tumor"):
        (root / "images" / cls).mkdir(parents=True)
        for i in range(n):
            image = (rng.random((size, size, 3)) * 80).astype(np.uint8)
            if cls == "tumor":
                image[8:20, 8:20] = 220
                (root / "masks" / cls).mkdir(parents=True, exist_ok=True)
                mask = np.zeros((size, size), np.uint8)
                mask[8:20, 8:20] = 255
                Image.fromarray(mask).save(root / "masks" / cls / f"{i}.png")
            Image.fromarray(image).save(root / "images" / cls / f"{i}.png")
    return root


@pytest.mark.filterwarnings("ignore:.*chance level")  # one epoch at a small learning rate
def test_folder_dataset_train_evaluate_attack_with_timm_weights(tmp_path):
    root = write_folder(tmp_path / "data")
    weights = tmp_path / "mobilenet.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("mobilenetv3_small_050").state_dict().items()},
              str(weights))
    runner = CliRunner()
    run = tmp_path / "run"
    res = runner.invoke(main, ["train", "--model", "cam", "--dataset", "folder", "--data-root", str(root),
                               "--backbone", "mobilenetv3_small_050", "--weights", str(weights), "--stride", "16",
                               "--epochs", "1", "--batch-size", "4", "--lr", "0.001", "--out", str(run),
                               "--no-progress"])
    assert res.exit_code == 0, res.output
    best = run / "fold_0" / "checkpoints" / "best"
    info = checkpoint_info(best)
    assert info["kwargs"]["backbone"] == "mobilenetv3_small_050" and info["classes"] == ["normal", "tumor"]
    assert info["training"]["weights"] == str(weights) and info["training"]["dataset"] == "folder"
    res = runner.invoke(main, ["evaluate", "--checkpoint", str(best), "--out", str(tmp_path / "eval"),
                               "--no-progress"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert {"accuracy", "dice"} <= set(metrics)
    res = runner.invoke(main, ["attack", "--model", str(best) + ".safetensors", "--dataset", "folder",
                               "--data-root", str(root), "--budget", "5", "--out", str(tmp_path / "attack"),
                               "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "attack" / "ddn.csv").is_file() and (tmp_path / "attack" / "cams.csv").is_file()


def test_weights_initialize_the_backbone_and_bad_weights_fail_early(tmp_path):
    reference = timm.create_model("convnext_atto")
    path = tmp_path / "w.pth"
    torch.save(reference.state_dict(), path)
    config = TrainConfig(model="cam", backbone="convnext_atto", weights=str(path))
    model = build_model(config, 2)
    torch.testing.assert_close(model.backbone.net.stem_0.weight, reference.stem[0].weight)
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--model", "cam", "--weights", str(tmp_path / "none.pth"),
                               "--out", str(tmp_path / "r1")])
    assert res.exit_code == 2 and "is not a file" in res.output and not (tmp_path / "r1").exists()
    res = runner.invoke(main, ["train", "--model", "cam", "--backbone", "no_such_backbone",
                               "--out", str(tmp_path / "r2")])
    assert res.exit_code == 2 and "unknown backbone" in res.output and not (tmp_path / "r2").exists()
    res = runner.invoke(main, ["train", "--model", "cw-mnist", "--dataset", "digits", "--weights", str(path),
                               "--out", str(tmp_path / "r3")])
    assert res.exit_code == 2 and "has no backbone" in res.output


def test_factory_model_in_attack_and_robustness(tmp_path):
    (tmp_path / "mine.py").write_text(FACTORY)
    spec = f"{tmp_path / 'mine.py'}:build"
    resolved = resolve_model(spec)
    assert resolved.kind == "factory" and resolved.classes == [str(d) for d in range(10)]
    assert not resolved.model.training
    runner = CliRunner()
    res = runner.invoke(main, ["attack", "--model", spec, "--dataset", "digits", "--n-samples", "6",
                               "--budget", "5", "--out", str(tmp_path / "a"), "--no-progress"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["evaluate-robustness", "--model", spec, "--dataset", "digits", "--n-samples", "6",
                               "--attack", "ddn,deepfool", "--budget", "5", "--no-checks",
                               "--out", str(tmp_path / "r"), "--no-progress"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["attack", "--model", spec, "--n-samples", "6", "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "pass --dataset" in res.output


@pytest.mark.parametrize("target, error, message", [
    ("missing.py:build", ConfigError, "does not exist"),
    ("mine.py:nothing", ConfigError, "defines no function 'nothing'; it defines broken, build, not_a_model"),
    ("mine.py:broken", ModelError, "broken\\(\\) raised RuntimeError: weights file not found"),
    ("mine.py:not_a_model", ModelError, "returned dict, not a torch.nn.Module"),
    ("bad.py:build", ModelError, "importing .*bad.py failed: ZeroDivisionError"),
])
def test_factory_errors(tmp_path, target, error, message):
    (tmp_path / "mine.py").write_text(FACTORY)
    (tmp_path / "bad.py").write_text("x = 1 / 0\n")
    with pytest.raises(error, match=message):
        resolve_model(str(tmp_path / target))
    res = CliRunner().invoke(main, ["attack", "--model", str(tmp_path / target), "--dataset", "digits",
                                    "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and res.output.startswith("Error:") and "Traceback" not in res.output
    with pytest.raises(ConfigError, match="drop --checkpoint"):
        resolve_model(f"{tmp_path / 'mine.py'}:build", checkpoint=tmp_path / "x.safetensors")


def test_a_run_at_chance_level_warns(tmp_path):
    """Identical images: every prediction is the same class, so the balanced validation accuracy is 1/C."""
    root = tmp_path / "same"
    (root / "img").mkdir(parents=True)
    splits = [(c, s, i) for c in "abcd" for i, s in enumerate(("train", "train", "valid", "test"))]
    for c, _, i in splits:  # one file per row (a table lists each image once), all with the same pixels
        Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(root / "img" / f"{c}{i}.png")
    rows = ["path,label,split"] + [f"img/{c}{i}.png,{c},{s}" for c, s, i in splits]
    (root / "t.csv").write_text("\n".join(rows) + "\n")
    runner = CliRunner()
    with pytest.warns(Warning, match="chance level for 4 classes"):
        res = runner.invoke(main, ["train", "--model", "cam", "--dataset", "folder", "--data-root", str(root),
                                   "--backbone", "resnet-mini", "--epochs", "1", "--batch-size", "4",
                                   "--out", str(tmp_path / "run"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "**Warning (fold 0):** the best validation accuracy over 1 epochs, 25.0 %" in res.output
    summary = json.loads((tmp_path / "run" / "fold_0" / "summary.json").read_text())
    assert "chance level" in summary["warning"]
    assert "**Warning:**" in (tmp_path / "run" / "fold_0" / "summary.md").read_text()
