"""``advwsl adv-train``: wiring of :func:`advwsl.jobs.adv_train.adv_train_job` (options from
:class:`AdvTrainConfig`, and the recipe overrides from :class:`TrainConfig`)."""

from __future__ import annotations

from typing import Any

import click

from ..config import AdvTrainConfig, TrainConfig
from .options import config_from_cli, config_options, explicit_options, overrides_from_cli

#: The training options adv-train takes (each overrides the recipe when given).
RECIPE_OPTIONS = ("epochs", "batch_size", "lr", "schedule", "model_kwargs")
_FIRST = ("model", "dataset", "data_root", "dataset_kwargs", "attack", "epsilon_max", "steps", "clean_epochs",
          "clean_fraction", "init_checkpoint")


@click.command("adv-train")
@config_options(AdvTrainConfig, only=_FIRST)
@config_options(TrainConfig, only=RECIPE_OPTIONS, overrides=True)
@config_options(AdvTrainConfig, exclude=_FIRST)
def adv_train(**params: Any) -> None:
    """Adversarially train a model (section A V-6): DDN or Madry PGD-L2, resumable, DDP under torchrun."""
    from ..jobs.adv_train import adv_train_job
    from ..utils import is_main_process

    train = overrides_from_cli(TrainConfig, {k: params[k] for k in RECIPE_OPTIONS})
    config = config_from_cli(AdvTrainConfig, params, train=train,
    explicit=explicit_options(click.get_current_context()))
    run_dir, result, options = adv_train_job(config)
    if not is_main_process():
        return
    last = result.history[-1]
    click.echo(f"run directory: {run_dir}")
    click.echo(f"best epoch {result.best_epoch}: valid accuracy {100 * result.best.get('accuracy', float('nan')):.2f}%; "
               f"last epoch: mean L2 of training adversarials {last.get('train_adv_l2_mean', float('nan')):.4f} "
               f"(epsilon_max {options['epsilon']})")
    if result.warning:
        click.echo(f"Warning: {result.warning}")


COMMANDS = [adv_train]
