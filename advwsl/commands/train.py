"""``advwsl train`` and ``advwsl evaluate``: wiring of :func:`advwsl.training.fit_folds` and
:func:`advwsl.training.evaluate` to the command line. Precedence: the dataset's (or ``--preset``'s)
recipe < ``--config FILE`` < command-line options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError

# option name -> TrainConfig field, for the options that map one to one
_DIRECT = {"model": "model", "dataset": "dataset", "backbone": "backbone", "stride": "stride", "epochs": "epochs",
           "batch_size": "batch_size", "lr": "lr", "schedule": "schedule", "loss": "loss",
           "size_noise": "size_noise", "size_noise_mode": "size_noise_mode", "data_root": "data_root",
           "seed": "seed", "device": "device", "monitor": "monitor", "cam_threshold": "cam_threshold",
           "cam_class": "cam_class", "workers": "num_workers", "amp": "amp", "channels_last": "channels_last",
           "pretrained": "pretrained", "augment": "augment"}
# options a resumed run may change (they do not change its result)
_RESUMABLE = {"device", "num_workers", "progress"}


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _given(options: dict[str, Any], overrides: tuple[str, ...], from_file: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig fields set on the command line (options not given are None)."""
    given = {_DIRECT[k]: v for k, v in options.items() if k in _DIRECT and v is not None}
    for k in ("lambda_size", "lambda_entropy"):
        if options.get(k) is not None:
            given.setdefault("loss_kwargs", {**from_file.get("loss_kwargs", {})})[k] = options[k]
    if options.get("folds"):
        given["folds"] = [int(f) for f in str(options["folds"]).split(",") if f.strip()]
    for pair in overrides:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE (VALUE as JSON), got {pair!r}")
        given[key.strip()] = _parse_value(value)
    return given


def resolve_config(options: dict[str, Any], config_file: str | None, preset_name: str | None,
                   overrides: tuple[str, ...]) -> dict[str, Any]:
    """The training options: recipe of ``preset_name`` (default: the dataset's own, when it has one),
    then the config file, then the command-line ``options`` (None = not given) and ``--set`` pairs."""
    from ..recipes import PRESETS, load_config

    from_file = load_config(config_file) if config_file else {}
    given = _given(options, overrides, from_file)
    if preset_name and preset_name not in PRESETS:
        raise ConfigError(f"unknown preset {preset_name!r}; available: {', '.join(sorted(PRESETS))}")
    dataset = given.get("dataset", from_file.get("dataset", "synthetic"))
    name = preset_name or (dataset if dataset in PRESETS else None)
    return {**(PRESETS[name] if name else {}), **from_file, **given}


@click.command("train")
@click.option("--model", default=None, help="Zoo model (cam, max, lse, wildcat, deepmil, ...). Default: wildcat.")
@click.option("--dataset", default=None, help="Dataset name (synthetic, glas, camelyon16, breakhis, bach, ...).")
@click.option("--preset", "preset_name", default=None, help="Named recipe (default: the dataset's own): breakhis, "
              "bach, glas, camelyon16, glas-size, camelyon16-size, synthetic.")
@click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False),
              help="JSON or TOML file of training options (command-line options override it).")
@click.option("--resume", "resume_dir", default=None, type=click.Path(file_okay=False),
              help="Continue an interrupted run directory from its last completed epoch.")
@click.option("--backbone", default=None, help="resnet18, resnet50, resnet-mini, ...")
@click.option("--stride", type=int, default=None, help="Backbone output stride (32, 16 or 8).")
@click.option("--pretrained/--no-pretrained", default=None, help="ImageNet weights for torchvision backbones.")
@click.option("--epochs", type=int, default=None)
@click.option("--batch-size", type=int, default=None, help="Global mini-batch size (split over processes).")
@click.option("--lr", type=float, default=None, help="Initial learning rate.")
@click.option("--schedule", type=click.Choice(["step", "cosine", "constant"]), default=None)
@click.option("--loss", default=None, help="image, size-kl, size-l2, size-adaptive or jia.")
@click.option("--lambda-size", type=float, default=None, help="lambda_s of eq. 4.13 (or of Jia et al.).")
@click.option("--lambda-entropy", type=float, default=None, help="lambda_e of eq. 4.13.")
@click.option("--size-noise", type=float, default=None, help="sigma_s of the size annotations (section 4.4.3).")
@click.option("--size-noise-mode", type=click.Choice(["per_crop", "per_image"]), default=None)
@click.option("--folds", default=None, help="Comma-separated validation folds, e.g. 0,1,2,3,4 for 5-fold runs.")
@click.option("--data-root", default=None, help="Folder of the dataset on disk.")
@click.option("--monitor", default=None, help="Validation metric that selects the best checkpoint.")
@click.option("--cam-threshold", type=click.Choice(["zero", "argmax", "minmax"]), default=None)
@click.option("--cam-class", default=None, help="true, predicted or a class index (CAM used for the Dice).")
@click.option("--augment/--no-augment", default=None, help="The dataset's training augmentation.")
@click.option("--seed", type=int, default=None)
@click.option("--device", default=None, help="cuda, mps or cpu (default: the best available).")
@click.option("--amp/--no-amp", default=None, help="bf16 autocast (mixed precision).")
@click.option("--channels-last/--no-channels-last", default=None, help="channels_last memory format.")
@click.option("--workers", type=int, default=None, help="DataLoader worker processes.")
@click.option("--set", "overrides", multiple=True, help="Any other option as KEY=JSON, e.g. --set "
              "'dataset_kwargs={\"n_trainval\": 640}'.")
@click.option("--out", default=None, help="Run directory (default runs/train-<timestamp>; never overwritten).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
def train(config_file: str | None, resume_dir: str | None, preset_name: str | None, overrides: tuple[str, ...],
          out: str | None, no_progress: bool, **options: Any) -> None:
    """Train a weakly supervised model (sections 2.1.3, 4.4.2); 5-fold with --folds 0,1,2,3,4.

    Runs unchanged under `torchrun --nproc-per-node N advwsl train ...` (DistributedDataParallel)."""
    import torch.distributed as dist

    from ..recipes import TrainConfig
    from ..runs import create_run_dir
    from ..training import fit_folds, init_distributed

    rank, world, _ = init_distributed()
    if resume_dir is not None:
        run_dir = Path(resume_dir)
        if not (run_dir / "config.json").is_file():
            raise ConfigError(f"{run_dir} is not a training run directory (no config.json)")
        from ..recipes import load_config

        stored = json.loads((run_dir / "config.json").read_text())["config"]
        from_file = load_config(config_file) if config_file else {}
        requested = {**from_file, **_given(options, overrides, from_file)}
        changed = sorted(k for k, v in requested.items() if k not in _RESUMABLE and stored.get(k) != v)
        if preset_name or changed:
            raise ConfigError(f"a resumed run keeps its configuration; {changed or ['--preset']} differ(s) from "
                              f"{run_dir / 'config.json'} (start a new run to change them)")
        keep = {k: v for k, v in requested.items() if k in _RESUMABLE}
        config = TrainConfig.from_dict({**stored, **keep, "progress": not no_progress})
    else:
        config = TrainConfig.from_dict({**resolve_config(options, config_file, preset_name, overrides),
                                        "progress": not no_progress})
        run_dir = None
        if rank == 0:
            run_dir = create_run_dir("train", out, config=config.to_dict())
        if world > 1:
            holder = [str(run_dir) if run_dir is not None else None]
            dist.broadcast_object_list(holder, src=0)
            run_dir = Path(holder[0])
    result = fit_folds(config, run_dir, resume=resume_dir is not None)
    if rank == 0:
        click.echo((Path(run_dir) / "summary.md").read_text().rstrip())
        click.echo(f"\nrun directory: {run_dir}")
    if world > 1:
        dist.destroy_process_group()
    del result


@click.command("evaluate")
@click.option("--checkpoint", required=True, help="Checkpoint (<stem>.safetensors + <stem>.json).")
@click.option("--dataset", default=None, help="Dataset name (default: the one the checkpoint was trained on).")
@click.option("--split", default="test", show_default=True, help="train, valid or test.")
@click.option("--fold", type=int, default=None, help="Fold of the train/valid split (default: the checkpoint's).")
@click.option("--data-root", default=None)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--cam-threshold", type=click.Choice(["zero", "argmax", "minmax"]), default=None)
@click.option("--cam-class", default=None, help="true, predicted or a class index.")
@click.option("--device", default=None)
@click.option("--out", default=None, help="Run directory (default runs/evaluate-<timestamp>).")
@click.option("--no-progress", is_flag=True)
def evaluate(checkpoint: str, dataset: str | None, split: str, fold: int | None, data_root: str | None,
             batch_size: int, cam_threshold: str | None, cam_class: str | None, device: str | None,
             out: str | None, no_progress: bool) -> None:
    """Re-evaluate a checkpoint: accuracy, AP/mAP and, with masks, CAM Dice/IoU."""
    from torch.utils.data import DataLoader

    from ..data import get_dataset
    from ..data.transforms import eval_transform
    from ..losses import build_criterion
    from ..models.zoo import checkpoint_info, load_model
    from ..run_state import markdown_table
    from ..runs import create_run_dir, write_json
    from ..training import evaluate as evaluate_model
    from ..utils import select_device

    info = checkpoint_info(checkpoint)
    training = info.get("training") or {}
    dataset = dataset or (info.get("dataset") or {}).get("name") or training.get("dataset")
    if not dataset:
        raise ConfigError(f"{checkpoint} does not record its dataset; pass --dataset")
    fold = fold if fold is not None else (info.get("dataset") or {}).get("fold", 0)
    model = load_model(checkpoint).to(select_device(device))
    criterion = build_criterion(training.get("loss", "image"), **training.get("loss_kwargs", {}))
    if info.get("loss_state"):
        import torch

        criterion.load_state_dict({k: torch.tensor(v) for k, v in info["loss_state"].items()})
    kwargs = dict(training.get("dataset_kwargs", {})) if dataset == training.get("dataset") else {}
    ds = get_dataset(dataset, root=data_root or training.get("data_root"), split=split, fold=fold,
                     transform=eval_transform(dataset), **kwargs)
    settings = {"cam_threshold": cam_threshold or training.get("cam_threshold", "zero"),
                "cam_class": cam_class or training.get("cam_class", "true")}
    metrics = evaluate_model(model, DataLoader(ds, batch_size=batch_size), criterion=criterion.to(
        next(model.parameters()).device), progress=not no_progress, desc=f"evaluate {split}", **settings)
    run_dir = create_run_dir("evaluate", out, config={"checkpoint": str(checkpoint), "dataset": dataset,
                                                       "split": split, "fold": fold, **settings})
    write_json(run_dir / "metrics.json", metrics)
    table = markdown_table(["metric", "value (%)"], [[k, f"{100 * v:.2f}"] for k, v in metrics.items()
                                                       if k not in ("n", "n_images", "loss")])
    (run_dir / "metrics.md").write_text(table)
    click.echo(table.rstrip())
    click.echo(f"\nrun directory: {run_dir}")


COMMANDS = [train, evaluate]
