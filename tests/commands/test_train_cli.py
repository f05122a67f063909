"""``advwsl train`` / ``advwsl evaluate`` end to end on a tiny synthetic set, and option precedence."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from advwsl.cli import main
from advwsl.config import TrainJobConfig
from advwsl.jobs.train import resolve_train_config
from advwsl.training import read_metrics_csv

TINY = ['--set', 'dataset_kwargs={"size": 32, "n_trainval": 60, "n_test": 24}',
        '--set', 'model_kwargs={"backbone_kwargs": {"widths": [8, 8, 8, 8], "blocks": [1, 1, 1, 1]}}']


def test_precedence_preset_file_options(tmp_path):
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"epochs": 3, "lr": 0.2, "loss_kwargs": {"lambda_entropy": 0.5}}))
    opts = {"dataset": "glas", "lr": 0.3, "folds": [0, 2]}
    cfg = resolve_train_config(TrainJobConfig(options=opts, config_file=str(cfg_file), lambda_size=2.0,
                                              set_pairs=("seed=7",)))
    assert cfg.batch_size == 32                         # the dataset's recipe (section 2.1.3.1)
    assert cfg.epochs == 3                              # the file overrides the recipe
    assert cfg.lr == 0.3 and cfg.seed == 7              # options override the file
    assert cfg.loss_kwargs == {"lambda_entropy": 0.5, "lambda_size": 2.0} and cfg.folds == (0, 2)


def test_train_evaluate_and_resume_cli(tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    res = runner.invoke(main, ["train", "--model", "wildcat", "--dataset", "synthetic", "--epochs", "2",
                               "--batch-size", "12", "--folds", "0,1", "--out", str(run), "--no-progress", *TINY])
    assert res.exit_code == 0, res.output
    assert "mean ± std" in res.output and (run / "summary.md").is_file()
    for k in (0, 1):
        assert len(read_metrics_csv(run / f"fold_{k}" / "metrics.csv")) == 2
        assert (run / f"fold_{k}" / "checkpoints" / "best.safetensors").is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["split"] == "test" and set(summary["mean_std"]) >= {"accuracy", "dice", "mdice_positive"}

    res = runner.invoke(main, ["evaluate", "--checkpoint", str(run / "fold_0" / "checkpoints" / "best"),
                               "--out", str(tmp_path / "eval"), "--no-progress"])
    assert res.exit_code == 0, res.output
    fold0 = json.loads((run / "fold_0" / "summary.json").read_text())["test"]
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert again["accuracy"] == pytest.approx(fold0["accuracy"]) and again["dice"] == pytest.approx(fold0["dice"])

    # a finished run resumes to its stored result; changing its configuration is refused
    res = runner.invoke(main, ["train", "--resume", str(run), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert len(read_metrics_csv(run / "fold_0" / "metrics.csv")) == 2
    res = runner.invoke(main, ["train", "--resume", str(run), "--lr", "0.5"])
    assert res.exit_code == 2 and "keeps its configuration" in res.output
    # nothing is overwritten
    res = runner.invoke(main, ["train", "--out", str(run), "--epochs", "1", *TINY])
    assert res.exit_code == 2 and "not empty" in res.output


def test_unet_and_training_fraction_cli(tmp_path):
    runner = CliRunner()
    run = tmp_path / "unet"
    res = runner.invoke(main, ["train", "--model", "unet", "--dataset", "synthetic", "--epochs", "1",
                               "--train-fraction", "0.5", "--batch-size", "8", "--out", str(run), "--no-progress",
                               "--set", 'dataset_kwargs={"size": 32, "n_trainval": 40, "n_test": 16}',
                               "--set", 'model_kwargs={"base_width": 4, "depth": 2}'])
    assert res.exit_code == 0, res.output
    config = json.loads((run / "config.json").read_text())["config"]
    assert (config["loss"], config["monitor"], config["train_fraction"]) == ("pixel-ce-dice", "dice", 0.5)
    history = read_metrics_csv(run / "fold_0" / "metrics.csv")
    assert history[0]["train_images"] == 16  # half of each class of the 32 training tiles
    res = runner.invoke(main, ["evaluate", "--checkpoint", str(run / "fold_0" / "checkpoints" / "best"),
                               "--out", str(tmp_path / "eval"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "dice" in json.loads((tmp_path / "eval" / "metrics.json").read_text())
    res = runner.invoke(main, ["train", "--model", "cam", "--loss", "pixel-ce", "--out", str(tmp_path / "no")])
    assert res.exit_code == 2 and "segmentation model" in res.output and not (tmp_path / "no").exists()
    res = runner.invoke(main, ["train", "--train-fraction", "0", "--out", str(tmp_path / "no")])
    assert res.exit_code == 2 and not (tmp_path / "no").exists()


def test_tensorboard_event_files(tmp_path):
    """--tensorboard: every epoch's metrics as TensorBoard scalars in run_dir/tensorboard (read back)."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "--model", "cam", "--epochs", "2", "--batch-size", "16", *TINY,
                                    "--no-progress", "--device", "cpu", "--tensorboard", "--out", str(out)])
    assert res.exit_code == 0, res.output
    events = EventAccumulator(str(out / "tensorboard" / "fold_0"))
    events.Reload()
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [1, 2] and "valid/accuracy" in events.Tags()["scalars"]
