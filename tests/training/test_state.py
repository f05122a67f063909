"""The run files of a training run after a kill: a last line of ``metrics.csv`` torn by a kill or a full disk
is repaired on resume from the resumable state's history (not appended to, which glued the next epoch's
row onto it and lost it)."""

from __future__ import annotations

import csv

import pytest

from advwsl.data.synthetic import SyntheticHistology
from advwsl.training import TrainConfig, append_metrics_csv, fit, read_metrics_csv, sync_metrics_csv

HISTORY = [{"epoch": float(e), "train_loss": 1.0 / e, "valid_accuracy": 0.5 + e / 10} for e in (1, 2, 3)]


def _lines(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_sync_replaces_a_torn_last_line_and_adds_missing_rows(tmp_path):
    path = tmp_path / "metrics.csv"
    append_metrics_csv(path, HISTORY[:2])
    full = path.read_bytes()
    path.write_bytes(full[:-7])  # killed while writing epoch 2's line: no newline, a cut number
    assert read_metrics_csv(path)[-1]["valid_accuracy"] != pytest.approx(0.7)
    sync_metrics_csv(path, HISTORY[:3])  # the state holds epochs 1-3 (epoch 3's line was never written)
    assert [r["epoch"] for r in read_metrics_csv(path)] == [1.0, 2.0, 3.0]
    assert read_metrics_csv(path) == [pytest.approx(r) for r in HISTORY]
    assert all(len(line) == 3 for line in _lines(path))
    append_metrics_csv(path, [{"epoch": 4.0, "train_loss": 0.2, "valid_accuracy": 0.95}])  # the next epoch
    assert [r["epoch"] for r in read_metrics_csv(path)] == [1.0, 2.0, 3.0, 4.0]


def test_sync_leaves_an_intact_file_alone(tmp_path):
    path = tmp_path / "metrics.csv"
    append_metrics_csv(path, HISTORY)
    before = path.stat().st_mtime_ns, path.read_bytes()
    sync_metrics_csv(path, HISTORY)
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before


class _Kill(Exception):
    pass


def test_resume_after_a_torn_metrics_line_keeps_every_epoch(tmp_path):
    kw = dict(size=32, n_trainval=40, n_test=8)
    sets = dict(train_set=SyntheticHistology("train", **kw), valid_set=SyntheticHistology("valid", **kw),
                test_set=SyntheticHistology("test", **kw))
    cfg = TrainConfig(model="cam", backbone="resnet-mini", stride=8, epochs=3, batch_size=16, lr=0.05,
                      progress=False, evaluate_test=False,
                      model_kwargs={"backbone_kwargs": {"widths": [8, 8, 8, 8], "blocks": [1, 1, 1, 1]}})
    full = fit(cfg, tmp_path / "full", **sets)

    def kill_at_3(epoch, row):
        if epoch == 3:
            raise _Kill

    with pytest.raises(_Kill):
        fit(cfg, tmp_path / "cut", on_epoch_end=kill_at_3, **sets)
    metrics = tmp_path / "cut" / "metrics.csv"
    data = metrics.read_bytes()
    metrics.write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 25])  # epoch 2's line torn after 24 bytes
    resumed = fit(cfg, tmp_path / "cut", resume=True, **sets)
    rows = read_metrics_csv(metrics)
    assert [r["epoch"] for r in rows] == [1.0, 2.0, 3.0]  # each epoch once, none lost or glued
    timing = ("train_seconds", "train_images_per_s")
    for a, b in zip(read_metrics_csv(tmp_path / "full" / "metrics.csv"), rows):
        assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    assert resumed.best_epoch == full.best_epoch
