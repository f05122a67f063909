"""``advwsl train`` and ``advwsl evaluate``: wiring of :mod:`advwsl.jobs.train`."""

from __future__ import annotations

from typing import Any

import click

from ..losses import CRITERIA
from ..models import CAM_RULES
from ..training import PRESETS
from ..jobs.train import EvaluateConfig, TrainRequest, evaluate_job, train_job
from .options import (batch_size, data_root, dataset, dataset_kwargs, device, json_option, model, out, progress,
                      recipe_overrides, resume, seed, split)


@click.command("train")
@model(None, "Zoo architecture to train (cam, max, lse, wildcat, deepmil, gradcam, unet, ...; `advwsl models`). "
             "Default: the recipe's (wildcat).")
@dataset(None, "Dataset to train on (`advwsl data list`). Default: synthetic.")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
              help="Named recipe (default: the dataset's own, when it has one).")
@click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False),
              help="JSON or TOML file of training options (command-line options override it).")
@resume
@click.option("--backbone", default=None,
              help="Backbone of the WSL model: resnet18, resnet50, resnet-mini, ... or any timm model (timm:NAME or "
                   "a plain timm name such as efficientnet_b0; `advwsl models`).")
@click.option("--stride", type=click.Choice(["8", "16", "32"]), default=None, help="Backbone output stride.")
@click.option("--pretrained/--no-pretrained", default=None,
              help="ImageNet weights for the backbone (torch hub / Hugging Face cache; never downloaded for timm).")
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="Initial backbone weights: a local torchvision or timm state dict (.pth or .safetensors).")
@recipe_overrides("Initial learning rate.")
@click.option("--loss", type=click.Choice(sorted(CRITERIA)), default=None, help="Training loss (eq. 4.4-4.13).")
@click.option("--lambda-size", type=float, default=None, help="lambda_s of eq. 4.13 (or of Jia et al.).")
@click.option("--lambda-entropy", type=float, default=None, help="lambda_e of eq. 4.13.")
@click.option("--size-noise", type=float, default=None, help="sigma_s of the size annotations (section 4.4.3).")
@click.option("--size-noise-mode", type=click.Choice(["per_crop", "per_image"]), default=None,
              help="Size noise drawn per crop (GlaS protocol) or fixed per image (CAMELYON16).")
@click.option("--folds", default=None, help="Comma-separated validation folds, e.g. 0,1,2,3,4 for 5-fold runs.")
@data_root
@dataset_kwargs
@click.option("--monitor", default=None, help="Validation metric that selects the best checkpoint.")
@click.option("--cam-rule", type=click.Choice(CAM_RULES), default=None,
              help="How CAMs are binarized for the Dice (default zero: M_c > 0, the reference's).")
@click.option("--cam-class", default=None, help="CAM used for the Dice: true, predicted or a class index.")
@click.option("--augment/--no-augment", default=None, help="The dataset's training augmentation.")
@click.option("--crop-size", type=click.IntRange(min=1), default=None,
              help="Side of the augmentation's random crop (default: the dataset's; GlaS 448 in chapter 4).")
@click.option("--train-fraction", type=click.FloatRange(min=0, max=1, min_open=True), default=None,
              help="Train on this seeded, class-stratified share of the training split (Figures 2.8, 2.9).")
@seed(None)
@device
@click.option("--amp/--no-amp", default=None, help="bf16 autocast (mixed precision).")
@click.option("--channels-last/--no-channels-last", default=None, help="channels_last memory format.")
@click.option("--workers", "num_workers", type=click.IntRange(min=0), default=None,
              help="DataLoader worker processes.")
@click.option("--set", "set_pairs", multiple=True, metavar="KEY=JSON",
              help="Any other training option, e.g. --set 'dataset_kwargs={\"n_trainval\": 640}'.")
@out
@progress
def train(config_file: str | None, resume: str | None, preset: str | None, set_pairs: tuple[str, ...],
          out: str | None, folds: str | None, stride: str | None, dataset_kwargs: str | None, **options: Any) -> None:
    """Train a weakly supervised model (sections 2.1.3, 4.4.2); 5-fold with --folds 0,1,2,3,4.

    Runs unchanged under `torchrun --nproc-per-node N advwsl train ...` (DistributedDataParallel)."""
    if folds:
        options["folds"] = [int(f) for f in folds.split(",") if f.strip()]
    if stride is not None:
        options["stride"] = int(stride)
    options["dataset_kwargs"] = json_option(dataset_kwargs, "--dataset-kwargs") or None
    request = TrainRequest(options=options, config_file=config_file, preset=preset, set_pairs=set_pairs, out=out,
                           resume=resume)
    run_dir = train_job(request)
    if run_dir is not None:
        click.echo((run_dir / "summary.md").read_text().rstrip())
        click.echo(f"\nrun directory: {run_dir}")


@click.command("evaluate")
@click.option("--checkpoint", type=click.Path(dir_okay=False), required=True,
              help="Trained weights to evaluate: <stem>.safetensors + <stem>.json.")
@dataset(None, "Dataset (default: the one the checkpoint was trained on).")
@data_root
@split()
@click.option("--fold", type=click.IntRange(min=0), default=None,
              help="Fold of the train/valid split (default: the checkpoint's).")
@batch_size(64)
@click.option("--cam-rule", type=click.Choice(CAM_RULES), default=None,
              help="How CAMs are binarized for the Dice (default: the checkpoint's training setting).")
@click.option("--cam-class", default=None, help="CAM used for the Dice: true, predicted or a class index.")
@device
@out
@progress
def evaluate(checkpoint: str, dataset: str | None, data_root: str | None, split: str, fold: int | None,
             batch_size: int, cam_rule: str | None, cam_class: str | None, device: str | None, out: str | None,
             progress: bool) -> None:
    """Re-evaluate a checkpoint: accuracy, AP/mAP and, with masks, CAM Dice/IoU."""
    run_dir, _ = evaluate_job(EvaluateConfig(checkpoint=checkpoint, dataset=dataset, data_root=data_root, split=split,
                                             fold=fold, batch_size=batch_size, cam_rule=cam_rule, cam_class=cam_class,
                                             device=device, out=out, progress=progress))
    click.echo((run_dir / "metrics.md").read_text().rstrip())
    click.echo(f"\nrun directory: {run_dir}")


COMMANDS = [train, evaluate]
