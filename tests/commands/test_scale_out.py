"""Evaluation on every core and past one machine: ``evaluate-robustness --workers 2`` and two ranks under
``torchrun`` (gloo on CPU) write the records one process writes, and ranks rerun on an interrupted run
directory read its chunks back; ``reproduce --workers 2`` gives the rows of one process."""

from __future__ import annotations

import os
import shutil
import socket

import numpy as np

import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp

from advwsl.config import RobustnessConfig
from advwsl.evaluation.robustness import RobustnessReport
from advwsl.errors import ConfigError
from advwsl.jobs.robustness import plan_robustness, robustness_job
from advwsl.runs import CHUNKS, run_directory

FILES = ("attack-ddn.csv", "attack-deepfool.csv", "table.csv", "robustness_curves.csv")
COMMON = {"model": "digits-cnn", "n_samples": 24, "batch_size": 8, "attacks": ("ddn", "deepfool"),
          "budget": ("ddn=20", "deepfool=10"), "epsilon": (1.0,), "checks": False, "progress": False,
          "device": "cpu"}


def _same(a, b) -> None:
    for name in FILES:
        pd.testing.assert_frame_equal(pd.read_csv(a / name), pd.read_csv(b / name), check_exact=True)


def _rank(rank: int, world: int, port: int, home: str, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), ADVWSL_HOME=home)
    torch.set_num_threads(1)
    robustness_job(RobustnessConfig(**COMMON, out=out))
    import torch.distributed as dist

    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_workers_and_torchrun_write_the_single_process_records(digits_model, tmp_path):
    single, _ = robustness_job(RobustnessConfig(**COMMON, out=str(tmp_path / "single")))
    workers, report = robustness_job(RobustnessConfig(**COMMON, workers=2, out=str(tmp_path / "workers")))
    _same(single, workers)
    assert report.config["shard"] == [0, 1] and (workers / "shards" / "1").is_dir()
    mp.spawn(_rank, args=(2, _free_port(), os.environ["ADVWSL_HOME"], str(tmp_path / "ranks")), nprocs=2, join=True)
    _same(single, tmp_path / "ranks")
    assert not (tmp_path / "ranks" / CHUNKS).exists()  # (the report holds every record)

    # ranks rerun on an interrupted run directory read its chunks back: the chunks of a finished run, their
    # seconds marked, are what the interrupted run had saved
    robustness_job(RobustnessConfig(**COMMON, out=str(tmp_path / "pre")), chunks=tmp_path / "pre-chunks")
    saved = sorted((tmp_path / "pre-chunks").glob("*.npz"))
    assert saved
    for path in saved:
        with np.load(path) as archive:
            arrays = dict(archive)
        np.savez(path, **{**arrays, "seconds": np.array(1000.0)})
    with pytest.raises(KeyboardInterrupt):
        with run_directory("evaluate-robustness", tmp_path / "resumed", keep_partial=(CHUNKS,)) as run_dir:
            shutil.copytree(tmp_path / "pre-chunks", run_dir / CHUNKS)
            raise KeyboardInterrupt
    mp.spawn(_rank, args=(2, _free_port(), os.environ["ADVWSL_HOME"], str(tmp_path / "resumed")), nprocs=2, join=True)
    _same(single, tmp_path / "resumed")
    report = RobustnessReport.load(tmp_path / "resumed")
    assert all(report.results[name].seconds >= 1000 for name in ("ddn", "deepfool"))  # read back, not attacked


def test_under_torchrun_only_rank_0_checks_the_run_directory(tmp_path, monkeypatch):
    """Rank 0 claims --out before the ranks evaluate: a rank checking it after that claim would find a live
    run there and stop, so the other ranks take rank 0's word for it."""
    config = RobustnessConfig(**COMMON, out=str(tmp_path / "run"))
    with run_directory("evaluate-robustness", tmp_path / "run", keep_partial=(CHUNKS,)):
        monkeypatch.setenv("RANK", "1")
        assert plan_robustness(config).out == tmp_path / "run"
        monkeypatch.setenv("RANK", "0")
        with pytest.raises(ConfigError, match="running"):
            plan_robustness(config)
