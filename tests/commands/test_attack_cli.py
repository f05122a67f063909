"""``advwsl attack``: runs end to end on the built-in digits model, writes the run directory, and reports
bad options with a one-line error."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from click.testing import CliRunner

from advwsl.cli import main
from advwsl.logs import heartbeat_enabled


def invoke(*args):
    return CliRunner().invoke(main, ["attack", *args], catch_exceptions=False)


def test_all_attacks_write_the_run_directory(digits_model, tmp_path):
    out = tmp_path / "run"
    res = invoke("--attack", "all", "--budget", "8", "--n-samples", "10", "--out", str(out), "--no-progress")
    assert res.exit_code == 0, res.output
    for row in ("| DDN | 8 |", "| C&W | 4x2 |", "| DeepFool | 8 |", "| All |"):
        assert row in res.output
    for stem in ("ddn", "cw", "deepfool", "all"):
        frame = pd.read_csv(out / f"{stem}.csv")
        assert len(frame) == 10 and {"l2", "success", "n_backward"} <= set(frame.columns)
        assert json.loads((out / f"{stem}.json").read_text())["summary"]["n_samples"] == 10
    for name in ("table.md", "summary.json", "config.json", "versions.json", "robustness_curves.png"):
        assert (out / name).is_file()
    curves = pd.read_csv(out / "robustness_curves.csv")
    for _, sub in curves.groupby("attack"):
        assert sub["accuracy"].is_monotonic_decreasing
    assert not (out / "INCOMPLETE").exists()  # a finished run carries no incomplete marker
    again = invoke("--budget", "2", "--n-samples", "2", "--out", str(out), "--no-progress")
    assert again.exit_code == 2 and "not empty" in again.output  # runs are never overwritten


def test_targeted_and_checkpoint_path(digits_model, tmp_path):
    from advwsl.models import save_model

    stem = tmp_path / "ckpt" / "digits"
    save_model(digits_model, stem)
    res = invoke("--model", str(stem), "--dataset", "digits", "--target", "all", "--budget", "5", "--n-samples", "3", "--out",
                 str(tmp_path / "t"), "--no-progress", "--attack-kwargs", '{"loss": "margin"}')
    assert res.exit_code == 0, res.output
    assert "Least likely" in res.output
    assert len(pd.read_csv(tmp_path / "t" / "ddn.csv")) == 27  # 3 images x 9 target classes


@pytest.mark.parametrize("args, message", [
    (["--attack", "fgsm"], "unknown attack 'fgsm'; known: apgd-ce, apgd-dlr, apgd-t, cam-ddn, cw, ddn"),
    (["--attack", "deepfool", "--target", "all"], "deepfool has no targeted form"),
    (["--levels", "1"], "--levels must be >= 2"),
    (["--attack-kwargs", "[1]"], "must be a JSON object"),
    (["--attack-kwargs", '{"stepz": 3}'], "ddn has no hyper-parameter 'stepz'; it takes: steps, gamma"),
    (["--attack-kwargs", '{"steps": "many"}'], "ddn steps must be an integer, got"),
    (["--budget", "0"], "a budget is a positive number of steps"),
    (["--budget", "cw=10"], "names 'cw', which is not among the attacks"),
    (["--batch-size", "0"], "Invalid value for '--batch-size': 0 is not in the range x>=1"),
    (["--epsilon", "0.5,-1"], "--epsilon must be > 0, got -1.0"),
    (["--device", "nonsense"], "unknown device 'nonsense'; use cpu, cuda"),
])
def test_bad_options_are_refused_before_any_work(args, message, tmp_path, monkeypatch):
    import advwsl.jobs.data as job  # where advwsl attack resolves the model

    def no_model(*args, **kwargs):
        raise AssertionError("options must be checked before the model is built")

    monkeypatch.setattr(job, "resolve_model", no_model)
    res = invoke(*args, "--n-samples", "2", "--out", str(tmp_path / "x"), "--no-progress")
    assert res.exit_code == 2
    assert message in res.output
    assert not (tmp_path / "x").exists()


def test_unknown_model_lists_what_model_accepts(tmp_path):
    res = invoke("--model", "no-such-model", "--out", str(tmp_path / "x"), "--no-progress")
    assert res.exit_code == 2 and "unknown model 'no-such-model'" in res.output and "digits-cnn" in res.output


def test_a_classifier_without_cams_gets_the_cam_report_from_grad_cam(digits_model, tmp_path):
    """No built-in CAMs (the C&W network): the CAM robustness report comes from Grad-CAM of the last layer with
    spatial feature maps, named in the report; --cam-layer chooses another or is refused with the layers."""
    res = invoke("--budget", "5", "--n-samples", "6", "--out", str(tmp_path / "a"))
    assert res.exit_code == 0, res.output
    assert "Grad-CAM (eq. 1.15-1.16) of its layer" in res.output and (tmp_path / "a" / "cams.csv").is_file()
    cams = pd.read_csv(tmp_path / "a" / "cams.csv")
    assert cams["cam_dice"].between(0, 1).all() and len(cams) == 6
    bad = invoke("--budget", "5", "--n-samples", "6", "--cam-layer", "nope", "--out", str(tmp_path / "b"))
    assert bad.exit_code == 2 and "no module 'nope'" in bad.output


def test_fixed_radius_attacks_run_at_each_epsilon_and_give_robust_accuracy(digits_model, tmp_path):
    """A fixed-radius attack (PGD) runs once per report radius; robust accuracy combines it with the
    minimal-norm attack's norms, the worst case never above either."""
    out = tmp_path / "run"
    res = invoke("--attack", "ddn,pgd", "--budget", "10", "--n-samples", "12", "--epsilon", "0.5,2",
                 "--out", str(out), "--no-progress")
    assert res.exit_code == 0, res.output
    for eps in ("0.5", "2"):
        frame = pd.read_csv(out / f"pgd-eps{eps}.csv")
        assert len(frame) == 12
        # a success of the fixed-radius run lies within its radius (8-bit rounding included)
        assert (frame.loc[frame.success, "l2"] <= float(eps) + 1e-4).all()
    robust = pd.read_csv(out / "robust_accuracy.csv")
    for eps, group in robust.groupby("epsilon"):
        worst = group.set_index("attack")["robust_accuracy"]
        assert set(worst.index) == {"DDN 10", "PGD 10", "worst case"}
        assert worst["worst case"] <= min(worst["DDN 10"], worst["PGD 10"]) + 1e-12
    assert "Robust accuracy" in res.output or "robust accuracy" in res.output.lower()


def test_no_progress_on_the_command_line_turns_it_on(digits_model, tmp_path):
    """With progress bars off the run prints a UTC-stamped heartbeat per finished chunk on stderr (nothing
    on stdout, whose table stays as it was); with them on, none; and none after the command."""
    def run(*flags):
        return CliRunner().invoke(main, ["attack", "--budget", "3", "--n-samples", "4", "--batch-size", "2",
                                         "--out", str(tmp_path / flags[0][2:]), *flags], catch_exceptions=False)

    quiet = run("--no-progress")
    assert quiet.exit_code == 0, quiet.output
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ DDN 3: 2 of 4 records done", quiet.stderr)
    assert "records done" not in quiet.stdout  # the table on stdout stays as it was
    shown = run("--progress")
    assert "records done" not in shown.stderr
    assert not heartbeat_enabled()
