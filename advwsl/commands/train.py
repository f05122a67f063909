"""``advwsl train`` and ``advwsl evaluate``: wiring of :mod:`advwsl.jobs.train` and :mod:`advwsl.jobs.evaluate`.
``train``'s training options are :class:`TrainConfig`'s fields (each overrides the recipe when given)."""

from __future__ import annotations

from typing import Any

import click

from ..config import EvaluateConfig, TrainConfig, TrainJobConfig
from .options import config_from_cli, config_options, overrides_from_cli


@click.command("train")
@config_options(TrainConfig, only=("model", "dataset"), overrides=True)
@config_options(TrainJobConfig, only=("preset", "config_file", "resume"))
@config_options(TrainConfig, exclude=("model", "dataset"), overrides=True)
@config_options(TrainJobConfig, only=("lambda_size", "lambda_entropy", "set_pairs", "tensorboard", "out"))
def train(**params: Any) -> None:
    """Train a weakly supervised model (sections 2.1.3, 4.4.2); 5-fold with --folds 0,1,2,3,4.

    Runs unchanged under `torchrun --nproc-per-node N advwsl train ...` (DistributedDataParallel)."""
    from ..jobs.train import train_job

    job = config_from_cli(TrainJobConfig, params, options=overrides_from_cli(TrainConfig, params))
    run_dir = train_job(job)
    if run_dir is not None:
        click.echo((run_dir / "summary.md").read_text().rstrip())
        click.echo(f"\nrun directory: {run_dir}")


@click.command("evaluate")
@config_options(EvaluateConfig)
def evaluate(**params: Any) -> None:
    """Re-evaluate a checkpoint: accuracy, AP/mAP and, with masks, CAM Dice/IoU."""
    from ..jobs.evaluate import evaluate_job

    run_dir, _ = evaluate_job(config_from_cli(EvaluateConfig, params))
    click.echo((run_dir / "metrics.md").read_text().rstrip())
    click.echo(f"\nrun directory: {run_dir}")


COMMANDS = [train, evaluate]
