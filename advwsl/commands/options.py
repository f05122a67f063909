"""Click commands of the ``advwsl`` CLI (option parsing and printing only; the work is in
:mod:`advwsl.jobs`) and the option vocabulary they share: one spelling and one meaning per concept, defined
once here so every command that has the concept spells it the same way."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from ..errors import ConfigError
from ..training import SCHEDULES

__all__ = ["json_option", "floats", "VOCABULARY", "model", "checkpoint", "dataset", "data_root", "dataset_kwargs",
           "split", "n_samples", "model_and_data", "recipe_overrides", "batch_size", "attack", "budget", "epsilon",
           "levels", "device", "seed", "out", "resume", "progress", "retrain", "precision", "channels_last",
           "echo_err"]


def json_option(text: str | None, name: str) -> dict[str, Any]:
    """Parse a command-line option holding a JSON object (``{}`` when empty); a clear error otherwise."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} must be a JSON object such as '{{\"steps\": 100}}', got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a JSON object, got {text!r}")
    return value


def floats(text: str, name: str) -> tuple[float, ...]:
    """A comma-separated list of numbers."""
    try:
        return tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number or a comma-separated list of numbers, got {text!r}") from None


def echo_err(message: str) -> None:
    click.echo(message, err=True)


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

#: The shared options, by name, with the meaning every command gives them (the README's command table and
#: the vocabulary test read this).
VOCABULARY = {
    "--model": "the model: a built-in trained model, a checkpoint path, a zoo architecture (`advwsl models`) or "
               "path/to/file.py:function",
    "--checkpoint": "trained weights (<stem>.safetensors + <stem>.json sidecar)",
    "--dataset": "a registered dataset (`advwsl data list`)",
    "--data-root": "the dataset's folder on disk",
    "--dataset-kwargs": "dataset options as a JSON object",
    "--split": "train, valid or test",
    "--n-samples": "the first N samples of the split",
    "--batch-size": "samples per batch",
    "--attack": "a registered attack; attack and evaluate-robustness take a comma list or all",
    "--budget": "N (every attack) or ATTACK=N, repeatable; C&W also SEARCHESxSTEPS",
    "--epsilon": "L2 radius (radii) in units of [0, 1] images",
    "--levels": "quantization levels of adversarials, 0 = none",
    "--device": "cpu, cuda, cuda:N, mps or auto",
    "--seed": "random seed",
    "--out": "the run directory to create (never overwritten)",
    "--resume": "continue an interrupted run directory",
    "--progress/--no-progress": "show or hide progress bars",
}


def model(default: str | None = "digits-cnn", help: str | None = None) -> Decorator:
    return click.option("--model", default=default, show_default=default is not None, help=help or (
        "Model: a built-in trained model (digits-cnn; wildcat, cam, max, lse, deepmil, ...: weakly supervised "
        "models on the synthetic histology set; trained on first use and cached), a checkpoint path, a zoo "
        "architecture with --checkpoint, or your own model as path/to/file.py:function (returns an nn.Module on "
        "images in [0, 1]; pass --dataset). `advwsl models` lists them."))


checkpoint = click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
                          help="Trained weights for --model's architecture: <stem>.safetensors + <stem>.json.")


def dataset(default: str | None = None, help: str | None = None) -> Decorator:
    return click.option("--dataset", default=default, show_default=default is not None, help=help or (
        "Dataset (`advwsl data list`). Default: the data the model was trained on."))


data_root = click.option("--data-root", type=click.Path(file_okay=False), default=None,
                         help="Folder of the dataset on disk (needed by every dataset but synthetic and digits).")
dataset_kwargs = click.option("--dataset-kwargs", default=None, metavar="JSON",
                              help="Dataset options as a JSON object, e.g. '{\"num_classes\": 4}'.")


def split(default: str = "test") -> Decorator:
    return click.option("--split", type=click.Choice(["train", "valid", "test"]), default=default,
                        show_default=True, help="Dataset split.")


n_samples = click.option("--n-samples", type=click.IntRange(min=1), default=None,
                         help="Use the first N samples of the split (default: all).")


def model_and_data(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options of a command that evaluates a model on a dataset split (``advwsl attack``, ``advwsl
    evaluate-robustness``), in this order: --model, --checkpoint, --dataset, --data-root, --dataset-kwargs,
    --split and --n-samples."""
    for option in reversed((model(), checkpoint, dataset(), data_root, dataset_kwargs, split(), n_samples)):
        f = option(f)
    return f


def batch_size(default: int | None = 128) -> Decorator:
    return click.option("--batch-size", type=click.IntRange(min=1), default=default,
                        show_default=default is not None, help="Samples per batch.")


def recipe_overrides(lr_help: str) -> Decorator:
    """The training commands' overrides of their recipe, in this order: --epochs, --batch-size, --lr (help
    ``lr_help``) and --schedule."""
    options = (click.option("--epochs", type=click.IntRange(min=1), default=None,
                            help="Epochs (default: the recipe's)."),
               batch_size(None),
               click.option("--lr", type=float, default=None, help=lr_help),
               click.option("--schedule", type=click.Choice(SCHEDULES), default=None, help="Learning-rate schedule."))

    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            f = option(f)
        return f

    return apply


def attack(default: str, help: str) -> Decorator:
    return click.option("--attack", "attack_names", default=default, show_default=True, help=help)


budget = click.option("--budget", multiple=True, metavar="N|ATTACK=N", help=(
    "Attack budget: N gradient steps for every attack (C&W: 4 x N/4 with Table A V-9's hyper-parameters), "
    "or ATTACK=N for one (repeatable; C&W also SEARCHESxSTEPS, e.g. cw=9x10000). Default: each attack's "
    "reference budget (DDN 1000, C&W 9x10000, DeepFool 100; section A V-7)."))


def epsilon(default: str | None, help: str) -> Decorator:
    return click.option("--epsilon", default=default, show_default=default is not None, metavar="EPS[,EPS...]",
                        help=help)


levels = click.option("--levels", type=click.IntRange(min=0), default=256, show_default=True,
                      help="Quantization levels of the adversarials (256 = 8-bit images); 0 = no quantization.")
device = click.option("--device", default=None, help="cpu, cuda, cuda:N, mps or auto (default: the best available).")


def seed(default: int | None = 0) -> Decorator:
    return click.option("--seed", type=int, default=default, show_default=default is not None, help="Random seed.")


out = click.option("--out", type=click.Path(), default=None,
                   help="Run directory to create (default runs/<command>-<timestamp>; never overwritten).")
resume = click.option("--resume", type=click.Path(file_okay=False, exists=True), default=None,
                      help="Continue the interrupted run in this directory.")
progress = click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
precision = click.option("--precision", type=click.Choice(["fp32", "tf32", "bf16"]), default="fp32", show_default=True,
                         help="Precision the attacks run in; every result is verified (and, if needed, repaired) in "
                              "fp32. tf32 matters on CUDA only.")
channels_last = click.option("--channels-last/--no-channels-last", default=False, show_default=True,
                             help="Run the attacks in the channels_last memory format.")
retrain = click.option("--retrain", is_flag=True,
                       help="Train a built-in model again (replacing its cached checkpoint, e.g. a corrupt one).")
