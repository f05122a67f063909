"""Click commands of the ``advwsl`` CLI (option parsing and printing only; the work is in
:mod:`advwsl.jobs`) and the option vocabulary they share: one spelling and one meaning per concept, defined
once here so every command that has the concept spells it the same way."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from ..errors import ConfigError
from ..config import SCHEDULES

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
               "path/to/file.py:function; train and adv-train: the architecture to train",
    "--checkpoint": "trained weights (<stem>.safetensors + <stem>.json sidecar)",
    "--model-kwargs": "model options as a JSON object",
    "--dataset": "a registered dataset (`advwsl data list`)",
    "--data-root": "the dataset's folder on disk",
    "--dataset-kwargs": "dataset options as a JSON object",
    "--split": "train, valid or test",
    "--n-samples": "the first N samples of the split",
    "--remap-classes": "accept data whose class names are the model's in another order (matched by name)",
    "--batch-size": "samples per batch",
    "--attack": "a registered attack (`advwsl attacks`); attack and evaluate-robustness take a comma list or all",
    "--budget": "N (every attack), quick, reference, or ATTACK=N, repeatable; C&W also SEARCHESxSTEPS",
    "--target": "the class adversarials are pushed to (index or name); attack also all or least-likely",
    "--epsilon": "L2 radii of the report's accuracy columns, in units of [0, 1] images",
    "--levels": "quantization levels of adversarials, 0 = none",
    "--precision": "fp32, tf32 or bf16 for the attacks; results verified in fp32",
    "--channels-last": "the channels_last memory format",
    "--cam-rule": "how a CAM is binarized: zero, argmax or minmax",
    "--cam-class": "the class whose CAM is used (index or name; train and evaluate also true or predicted)",
    "--preset": "a named training recipe (section 2.1.3.1)",
    "--epochs": "training epochs",
    "--lr": "initial learning rate",
    "--schedule": "learning-rate schedule: step, cosine or constant",
    "--set": "change one setting, KEY=JSON (a dotted path into an entry's settings for reproduce); repeatable",
    "--magnification": "objective power (10x = 1 um/px)",
    "--backend": "slide reader: auto, openslide or tifffile",
    "--workers": "worker processes",
    "--device": "cpu, cuda, cuda:N, mps or auto",
    "--seed": "random seed",
    "--out": "the folder to create (a run directory, never overwritten)",
    "--resume": "continue an interrupted run directory",
    "--tensorboard": "write every epoch's metrics as TensorBoard event files",
    "--retrain": "train a built-in model again",
    "--progress/--no-progress": "progress bars, or a time-stamped line per finished batch",
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
progress = click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars; --no-progress prints a time-stamped line per finished batch instead.")
precision = click.option("--precision", type=click.Choice(["fp32", "tf32", "bf16"]), default="fp32", show_default=True,
                         help="Precision the attacks run in; every result is verified (and, if needed, repaired) in "
                              "fp32. tf32 matters on CUDA only.")
channels_last = click.option("--channels-last/--no-channels-last", default=False, show_default=True,
                             help="Run the attacks in the channels_last memory format.")
retrain = click.option("--retrain", is_flag=True,
                       help="Train a built-in model again (replacing its cached checkpoint, e.g. a corrupt one).")


# ------------------------------------------------------------------------------ options generated from configs
def _click_type(hint: Any, opt: Any) -> tuple[Any, bool]:
    """The click type of a config field of type ``hint`` and whether it is a flag pair (bools)."""
    import types as _types
    import typing

    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, _types.UnionType) and len(args) == 1:
        hint = args[0]
    origin = typing.get_origin(hint)
    if hint is bool:
        return None, True
    if origin is typing.Literal:
        return click.Choice([str(a) for a in typing.get_args(hint)]), False
    bounds = {"min": opt.low, "max": opt.high, "min_open": opt.low_open, "max_open": opt.high_open}
    if hint is int:
        return (click.IntRange(**bounds) if opt.low is not None or opt.high is not None else click.INT), False
    if hint is float:
        return (click.FloatRange(**bounds) if opt.low is not None or opt.high is not None else click.FLOAT), False
    return click.STRING, False


def _shown_default(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) or None
    if isinstance(value, dict):
        return json.dumps(value) if value else None
    return value


def _renamed(old: str, new: str, *, flag: bool = False) -> Decorator:
    """A hidden option under a former spelling that refuses to run and names the new one."""
    def refuse(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value:
            raise click.UsageError(f"{old} was renamed {new}; use {new} (see --help)")
        return value

    name = f"_renamed_{old.strip('-').replace('-', '_')}"
    if flag:
        return click.option(old, name, hidden=True, expose_value=False, callback=refuse, is_flag=True, default=False)
    return click.option(old, name, hidden=True, expose_value=False, callback=refuse, multiple=True)


def _with_heartbeat(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` run with the heartbeat (:mod:`advwsl.logs`) on when its progress bars are off: ``--no-progress``
    prints a time-stamped line per finished chunk of work to stderr instead of nothing until the end."""
    import functools

    from ..logs import heartbeat

    @functools.wraps(fn)
    def run(*args: Any, **params: Any) -> Any:
        with heartbeat(params.get("progress") is False):
            return fn(*args, **params)

    return run


def config_options(cls: type, *, exclude: tuple[str, ...] = (), only: tuple[str, ...] | None = None,
                   overrides: bool = False, defaults: dict[str, Any] | None = None,
                   helps: dict[str, str] | None = None) -> Decorator:
    """The click options of every field of the config class ``cls`` (:mod:`advwsl.config`) but ``exclude``
    (or only those of ``only``), in declaration order: one option per field, its spelling, type, range,
    choices, default and help taken from the field. With ``overrides`` every option defaults to None ("not
    given": the recipe's value stands). ``defaults``/``helps`` override a field's default or help for one
    command."""
    from dataclasses import MISSING

    from ..config import config_fields

    decorators: list[Decorator] = []
    for f, hint, opt in config_fields(cls):
        if f.name in exclude or (only is not None and f.name not in only) or opt.flag == "" or not opt.help:
            continue
        flag = opt.flag or f"--{f.name.replace('_', '-')}"
        default = None if overrides else (defaults or {}).get(f.name, f.default if f.default is not MISSING else None)
        ctype, pair = _click_type(hint, opt)
        text = (helps or {}).get(f.name, opt.help) + (" (Default: the recipe's.)" if overrides else "")
        kwargs: dict[str, Any] = {"help": text, "show_default": opt.show_default and not overrides}
        if pair:
            decl = [flag] if opt.short_flag else [f"{flag}/--no-{flag[2:]}"]
            kwargs.update(default=bool(default) if default is not None else None, is_flag=opt.short_flag or None)
            if not opt.short_flag:
                kwargs.pop("is_flag")
        else:
            decl = [flag]
            kwargs.update(type=ctype, multiple=opt.multiple, metavar=opt.metavar,
                          default=() if opt.multiple else _shown_default(default))
            kwargs["show_default"] = opt.show_default and kwargs["default"] not in (None, ())
        decorators.append(click.option(*decl, f.name, **kwargs))
        decorators += [_renamed(old, flag) for old in opt.renamed_from]
        decorators += [_renamed(old, flag, flag=True) for old in opt.renamed_flags]

    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = _with_heartbeat(fn)
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return apply


def config_from_cli(cls: type, params: dict[str, Any], **fixed: Any) -> Any:
    """The config ``cls`` from a command's click parameters (each field's text parsed as its type says;
    options left at None keep the field's default) and ``fixed`` values."""
    from ..config import config_fields, parse_cli_text

    values: dict[str, Any] = {}
    for f, hint, opt in config_fields(cls):
        if f.name in fixed:
            values[f.name] = fixed[f.name]
        elif f.name in params and params[f.name] is not None:
            value = params[f.name]
            if opt.multiple:
                value = tuple(value)
                if not value:
                    continue
            values[f.name] = parse_cli_text(value, hint, opt, cls.flag_of(f.name))
    return cls(**values)


def overrides_from_cli(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``cls`` given on the command line (options generated with ``overrides=True``), their
    text parsed as their types say; options not given are left out."""
    from ..config import config_fields, parse_cli_text

    given = {}
    for f, hint, opt in config_fields(cls):
        value = params.get(f.name)
        if value is None or (opt.multiple and not value):
            continue
        given[f.name] = parse_cli_text(tuple(value) if opt.multiple else value, hint, opt, cls.flag_of(f.name))
    return given


def explicit_options(ctx: click.Context) -> frozenset[str]:
    """The parameters of the running command given on the command line (not left at their defaults)."""
    from click.core import ParameterSource

    return frozenset(n for n in ctx.params if ctx.get_parameter_source(n) is ParameterSource.COMMANDLINE)
