"""``advwsl adv-train``: wiring of :func:`advwsl.jobs.adv_train.adv_train_job`."""

from __future__ import annotations

import click
from click.core import ParameterSource

from ..jobs.adv_train import AdvTrainConfig, adv_train_job
from ..training import PRESETS
from ..utils import is_main_process
from .options import (data_root, dataset, dataset_kwargs, device, json_option, levels, model, out, progress,
                      recipe_overrides, resume, seed)


@click.command("adv-train")
@model("cw-mnist", "Zoo architecture to train (`advwsl models` lists them).")
@dataset("digits", "Dataset to train on (`advwsl data list`).")
@data_root
@dataset_kwargs
@click.option("--attack", type=click.Choice(["ddn", "pgd"]), default="ddn", show_default=True,
              help="ddn: DDN training (eq. A V-9); pgd: Madry PGD-L2 (eq. A V-7).")
@click.option("--epsilon", type=float, default=None,
              help="epsilon_max, the L2 radius training adversarials are projected on (2.4 MNIST, 1.0 CIFAR-10); "
                   "required unless --resume.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Attack steps per batch [ddn: 100, pgd: 40].")
@click.option("--clean-epochs", type=click.IntRange(min=0), default=None,
              help="Train the first N epochs on clean images, then adversarially [3 in the default digits run, "
                   "else 0].")
@click.option("--clean-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="alpha of eq. A V-6: share of each batch kept clean.")
@click.option("--init-checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Start from this (clean-trained) checkpoint instead of random weights.")
@recipe_overrides("Initial learning rate (default: the recipe's).")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None, help="Training recipe (WSL datasets).")
@click.option("--model-kwargs", default=None, metavar="JSON", help="Model options as JSON, e.g. '{\"input_size\": 16}'.")
@levels
@seed()
@device
@out
@resume
@progress
def adv_train(model: str, dataset: str, data_root: str | None, dataset_kwargs: str | None, attack: str,
              epsilon: float | None, steps: int | None, clean_epochs: int | None, clean_fraction: float,
              init_checkpoint: str | None, epochs: int | None, batch_size: int | None, lr: float | None,
              schedule: str | None, preset: str | None, model_kwargs: str | None, levels: int, seed: int,
              device: str | None, out: str | None, resume: str | None, progress: bool) -> None:
    """Adversarially train a model (section A V-6): DDN or Madry PGD-L2, resumable, DDP under torchrun."""
    train = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "schedule": schedule, "data_root": data_root,
             "device": device, "dataset_kwargs": json_option(dataset_kwargs, "--dataset-kwargs") or None,
             "model_kwargs": json_option(model_kwargs, "--model-kwargs") or None}
    ctx = click.get_current_context()
    explicit = frozenset(name for name in ctx.params if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE)
    config = AdvTrainConfig(model=model, dataset=dataset, attack=attack, epsilon=epsilon, steps=steps,
                            clean_epochs=clean_epochs, clean_fraction=clean_fraction, levels=levels or None,
                            init_checkpoint=init_checkpoint, preset=preset, train=train, seed=seed, out=out,
                            resume=resume, progress=progress, explicit=explicit)
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
