"""The CIFAR-10 rows of appendix V (Tables A V-1, A V-3, A V-6) through ``advwsl reproduce --dataset cifar10
--data-root DIR`` on foolbox's 20 real CIFAR-10 test images, written in the ``cifar-10-batches-py`` layout of
``cifar-10-python.tar.gz`` (fixture ``foolbox_cifar10`` in tests/conftest.py: the 20 images are the test
batch and, dealt over the five training batches, the training set)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from advwsl.cli import main
from advwsl.models import load_model
from advwsl.reproduce import get_entry

CIFAR_REFERENCE = {(r["attack"], r["budget"]): r for r in get_entry("A-V-1").reference if r["dataset"] == "cifar10"}


def _reproduce(entry_id: str, root: Path, out: Path, *changes: str) -> tuple[Path, str]:
    result = CliRunner().invoke(main, ["reproduce", entry_id, "--quick", "--dataset", "cifar10", "--data-root",
                                       str(root), "--device", "cpu", "--out", str(out), "--no-progress",
                                       *(a for c in changes for a in ("--set", c))])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out, result.output


def test_a_v_1_quick_on_foolbox_cifar10(foolbox_cifar10, cifar10_batches, tmp_path):
    """Table A V-1 --quick: the C&W CIFAR network trained 5 epochs on the 20 images, then attacked on a test
    batch of the first 6 of them (a minute on one CPU core; the model classifies 4 of the 6 correctly)."""
    root, images, labels = foolbox_cifar10
    images, labels = images[:6], labels[:6]
    cifar10_batches(root, images, labels, train_batches=[(foolbox_cifar10[1][i::5], foolbox_cifar10[2][i::5])
                                                         for i in range(5)])
    run_dir, output = _reproduce("A-V-1", root, tmp_path / "run")
    n = len(labels)

    # the run is marked quick, records the data folder and wrote the table beside CIFAR-10's reference numbers
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["quick"] is True and config["data_root"] == str(root) and config["settings"]["dataset"] == "cifar10"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["quick"] is True and summary["entry"] == "A-V-1"
    markdown = (run_dir / "table.md").read_text()
    assert "**Quick run**" in markdown and f"Data: cifar10 from {root}" in markdown and "cw-cifar" in markdown
    assert "0.1503" in markdown and "1.4563" not in markdown  # DDN 100 mean L2: CIFAR-10's, not MNIST's
    assert "are stated for mnist: not tested on this dataset" in markdown  # MNIST's claims are not judged here
    assert markdown.strip() in output
    assert not (run_dir / "INCOMPLETE").exists()
    for name in ("table.csv", "fig-A-V-9.png", "fig-A-V-9.csv"):
        assert (run_dir / name).is_file(), name

    table = pd.read_csv(run_dir / "table.csv", dtype={"budget": str})
    ours = table[table["images"].notna()]
    assert len(ours) == len(get_entry("A-V-1").quick["rows"])
    assert (ours["images"] == n).all()  # the split holds 6 images, fewer than the 64 of --quick
    for row in ours.itertuples():
        assert 0.5 <= row.success <= 1.0, f"quick row {row.attack} {row.budget} means nothing at {row.success}"
        assert math.isfinite(row.mean_l2) and math.isfinite(row.median_l2)
        assert 0.0 < row.mean_l2 < 5.0 and 0.0 < row.median_l2
        reference = CIFAR_REFERENCE.get((row.attack, row.budget))
        if reference is not None:  # beside CIFAR-10's row, ratios against it
            assert row.mean_l2_reference == reference["mean_l2"]
            assert row.mean_l2_ratio == pytest.approx(row.mean_l2 / reference["mean_l2"])
            assert row.success_diff_points == pytest.approx(100 * row.success - reference["success"])
    # the reference-only rows (e.g. C&W 9x10000) are listed with CIFAR-10's numbers
    full = table[(table.attack == "C&W") & (table.budget == "9x10000")].iloc[0]
    assert math.isnan(full.images) and full.mean_l2_reference == 0.1543

    # the per-sample records are the fixture's images, and the table's aggregates are theirs
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    gray = (x - 0.5).flatten(1).norm(dim=1).numpy()
    model = load_model(summary["model"]).eval()
    with torch.no_grad():
        clean_pred = model(x).argmax(1).numpy()
    for row in ours.itertuples():
        records = pd.read_csv(run_dir / f"{dict(zip(('C&W', 'DeepFool', 'DDN'), ('cw', 'deepfool', 'ddn')))[row.attack]}"
                                        f"-{row.budget}.csv")
        assert records["index"].tolist() == list(range(n)) and (records["label"].to_numpy() == labels).all()
        np.testing.assert_allclose(records["gray_l2"], gray, rtol=1e-5)
        assert (records["clean_pred"].to_numpy() == clean_pred).all()
        ok = records[records.originally_correct]
        assert len(ok) > 0  # the model trained on these 20 images classifies some of them correctly
        assert row.success == pytest.approx(ok.success.mean())
        assert row.mean_l2 == pytest.approx(ok.l2[ok.success].mean())
        assert (records.l2[records.success] > 0).all() and records.l2.map(math.isfinite).all()
    if "DDN" in set(ours.attack):  # DDN never fails on a model this weak
        assert (ours[ours.attack == "DDN"].success == 1.0).all()
    curve = pd.read_csv(run_dir / "fig-A-V-9.csv")
    assert curve[curve.epsilon == 0].accuracy.iloc[0] == pytest.approx((clean_pred == labels).mean())


#: --set changes that keep the two pipelines to about a minute each on one core (the quick settings take
#: several minutes on the 20 images): fewer attacked images and attack steps.
SMALLER = {"A-V-6": ("n_samples=4", "budgets.cw=\"1x20\"", "budgets.ddn=\"20\"", "budgets.deepfool=\"10\"",
                     "defense.ddn_steps=3", "defense.pgd_steps=3"),
           "A-V-3": ("n_samples=2",)}


@pytest.mark.parametrize("entry_id", ["A-V-6", "A-V-3"])
def test_cifar10_defense_and_targeted_tables_quick(foolbox_cifar10, tmp_path, entry_id):
    """Table A V-6 (baseline, Madry- and DDN-trained models; two adversarial trainings) and Table A V-3
    (targeted towards the 9 other classes) run end to end on the 20 images, on fewer images (``--set``)."""
    root = foolbox_cifar10[0]
    run_dir, _ = _reproduce(entry_id, root, tmp_path / "run", *SMALLER[entry_id])
    assert json.loads((run_dir / "summary.json").read_text())["quick"] is True
    assert "**Quick run**" in (run_dir / "table.md").read_text()
    table = pd.read_csv(run_dir / "table.csv", dtype={"budget": str})
    if entry_id == "A-V-6":
        ours = table[table.success.notna()]
        assert set(ours.defense) == {"Baseline", "Madry", "Ours"}
        assert ours.success.between(0, 1).all() and ours.accuracy.between(0, 1).all()
        reference = table.set_index(["defense", "attack"])
        assert reference.loc[("Baseline", "All"), "mean_l2_reference"] == 0.1282  # CIFAR-10's, not MNIST's
        for kind in ("baseline", "madry", "ddn"):
            assert (run_dir / kind).is_dir()
        assert (run_dir / "fig-A-V-4.png").is_file()
    else:
        ours = table[table.images.notna()]
        assert (ours.images == 2).all() and ours.avg_success.between(0, 1).all()
        assert np.isfinite(ours.avg_mean_l2).all()
        ddn = table[(table.attack == "DDN") & (table.budget == "100")].iloc[0]
        assert ddn.avg_mean_l2_reference == 0.2925  # CIFAR-10's targeted average
        assert ours.counted.between(0, 2).all()  # the images counted: the correctly classified ones
        findings = json.loads((run_dir / "summary.json").read_text())["findings"]
        assert len(findings) == 6 and "0.2925 / 0.2798" in findings[0]["claim"]  # CIFAR-10's claims
        assert "## The reference's findings on this run" in (run_dir / "table.md").read_text()
