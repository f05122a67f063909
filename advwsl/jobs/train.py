"""The jobs behind ``advwsl train`` and ``advwsl evaluate``: the training configuration from its sources
(precedence: the dataset's or ``--preset``'s recipe < ``--config FILE`` < command-line options < ``--set``
pairs), new and resumed training runs (:func:`advwsl.training.fit_folds`, DDP-ready under ``torchrun``),
and the re-evaluation of a checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from ..data import eval_transform, get_dataset
from ..errors import ConfigError
from ..io import atomic_write_text, markdown_table, parse_set_pairs, read_json, write_json
from ..losses import build_criterion
from ..models import CAM_RULES, checkpoint_info, list_models, load_model
from ..runs import check_out, create_run_dir, resumable_run, run_directory
from ..training import (PRESETS, SEGMENTATION_PRESET, TrainConfig, check_cam_class, check_model_options,
                        check_training_data, evaluate, fit_folds, init_distributed, load_config)
from ..utils import select_device

__all__ = ["TrainRequest", "resolve_train_config", "train_job", "EvaluateConfig", "evaluate_job", "RESUMABLE",
           "read_run_config", "restore_config"]

#: Options a resumed run may change (they do not change its result).
RESUMABLE = ("device", "num_workers", "progress")


@dataclass
class TrainRequest:
    """A training run as the command line asks for it: ``options`` are :class:`TrainConfig` fields given
    as options (``None`` = not given), ``set_pairs`` the ``--set KEY=JSON`` pairs."""

    options: dict[str, Any] = field(default_factory=dict)
    config_file: str | None = None
    preset: str | None = None
    set_pairs: tuple[str, ...] = ()
    out: str | None = None
    resume: str | None = None

    def given(self, from_file: dict[str, Any]) -> dict[str, Any]:
        """The fields set on the command line: options, then ``--set`` pairs. ``loss_kwargs`` given as
        options (``lambda_size``, ``lambda_entropy``) are merged into the file's."""
        given = {k: v for k, v in self.options.items() if v is not None and k not in ("lambda_size", "lambda_entropy")}
        for key in ("lambda_size", "lambda_entropy"):
            if self.options.get(key) is not None:
                given.setdefault("loss_kwargs", {**from_file.get("loss_kwargs", {})})[key] = self.options[key]
        return {**given, **parse_set_pairs(self.set_pairs)}


def resolve_train_config(request: TrainRequest) -> TrainConfig:
    """The configuration of a new run: recipe of ``request.preset`` (default: the dataset's own, when it has
    one; for a segmentation model the dataset's ``<dataset>-unet`` recipe), then the config file, then the
    command line."""
    if request.preset and request.preset not in PRESETS:
        raise ConfigError(f"unknown preset {request.preset!r}; available: {', '.join(sorted(PRESETS))}")
    from_file = load_config(request.config_file) if request.config_file else {}
    given = request.given(from_file)
    dataset = given.get("dataset", from_file.get("dataset", "synthetic"))
    model = given.get("model", from_file.get("model"))
    name = request.preset or (dataset if dataset in PRESETS else None)
    segmentation = SEGMENTATION_PRESET.format(dataset=dataset)
    if not request.preset and model in list_models("segmentation") and segmentation in PRESETS:
        name = segmentation  # e.g. --model unet --dataset glas: the U-Net recipe of section 2.1.3.2
    config = TrainConfig.from_dict({**(PRESETS[name] if name else {}), **from_file, **given})
    check_model_options(config)
    return config


def read_run_config(resume: str | Path, what: str, command: str) -> tuple[Path, Any, Any]:
    """The run directory ``--resume`` names, its ``config.json`` and the configuration saved there (None when
    it has none). ``what`` names the kind of run (``"a training"``) and ``command`` the command that wrote it,
    for the error when the folder has no ``config.json``."""
    run_dir = Path(resume)
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir} is not {what} run directory (no config.json); --resume takes the folder "
                          f"of an interrupted `advwsl {command}` run")
    saved = read_json(run_dir / "config.json", what="run configuration")
    return run_dir, saved, saved.get("config") if isinstance(saved, dict) else None


def restore_config(run_dir: Path, options: dict[str, Any]) -> TrainConfig:
    """The training configuration of the resumed run ``run_dir`` from its saved ``options``; a
    :class:`ConfigError` naming its ``config.json`` when they are invalid."""
    try:
        return TrainConfig.from_dict(options)
    except ConfigError as exc:
        raise ConfigError(f"{run_dir / 'config.json'} holds an invalid training configuration ({exc}); it was "
                          "edited or is damaged") from None


def _resumed_config(request: TrainRequest) -> tuple[Path, TrainConfig]:
    run_dir, saved, stored = read_run_config(request.resume, "a training", "train")
    command = saved.get("run", {}).get("command") if isinstance(saved, dict) and isinstance(saved.get("run"), dict) \
        else None
    if not isinstance(stored, dict) or command != "train":
        raise ConfigError(f"{run_dir} is not an `advwsl train` run (its config.json was written by "
                          f"{f'advwsl {command}' if command else 'something else'}); --resume takes the folder of an "
                          "interrupted `advwsl train` run")
    from_file = load_config(request.config_file) if request.config_file else {}
    requested = {**from_file, **request.given(from_file)}
    changed = sorted(k for k, v in requested.items() if k not in RESUMABLE and stored.get(k) != v)
    if request.preset or changed:
        raise ConfigError(f"a resumed run keeps its configuration; {changed or ['--preset']} differ(s) from "
                          f"{run_dir / 'config.json'} (start a new run to change them)")
    keep = {k: v for k, v in requested.items() if k in RESUMABLE}
    return run_dir, restore_config(run_dir, {**stored, **keep})


def train_job(request: TrainRequest, *, log: Callable[[str], None] | None = None) -> Path | None:
    """Train (or resume) the run ``request`` describes; returns the run directory on rank 0 (None on the
    other ranks under ``torchrun``). The configuration, the dataset options (the datasets are built, no
    sample is read), ``cam_class`` against the dataset's classes and the output folder are checked before
    anything is written."""
    rank, world, _ = init_distributed()
    if request.resume is not None:
        run_dir, config = _resumed_config(request)
        select_device(config.device)
        with resumable_run(run_dir, "train", rank=rank):
            fit_folds(config, run_dir, resume=True)
        return run_dir if rank == 0 else None
    config = resolve_train_config(request)
    select_device(config.device)
    check_training_data(config)
    if rank == 0:
        check_out(request.out)
    if world > 1 and request.out is None:
        raise ConfigError("under torchrun every process must write to the same run directory: pass --out DIR")
    run_dir = None
    if rank == 0:
        run_dir = create_run_dir("train", request.out, config=config.to_dict())
    if world > 1:
        holder = [str(run_dir) if run_dir is not None else None]
        dist.broadcast_object_list(holder, src=0)
        run_dir = Path(holder[0])
    with resumable_run(run_dir, "train", rank=rank):
        fit_folds(config, run_dir)
    if world > 1:
        dist.destroy_process_group()
    return run_dir if rank == 0 else None


@dataclass
class EvaluateConfig:
    """``advwsl evaluate``: a checkpoint re-evaluated on a split (default: the dataset and fold it was
    trained on)."""

    checkpoint: str
    dataset: str | None = None
    data_root: str | None = None
    split: str = "test"
    fold: int | None = None
    batch_size: int = 64
    cam_rule: str | None = None
    cam_class: str | None = None
    device: str | None = None
    out: str | None = None
    progress: bool = True


def evaluate_job(config: EvaluateConfig) -> tuple[Path, dict[str, float]]:
    """Accuracy, AP / mAP and, with masks, the CAM Dice / IoU of a checkpoint; writes ``metrics.json`` and
    ``metrics.md``. Returns the run directory and the metrics (shares in [0, 1])."""
    if isinstance(config.batch_size, bool) or not isinstance(config.batch_size, int) or config.batch_size < 1:
        raise ConfigError(f"--batch-size must be a positive integer, got {config.batch_size!r}")
    if config.cam_rule is not None and config.cam_rule not in CAM_RULES:
        raise ConfigError(f"--cam-rule must be one of {', '.join(CAM_RULES)}, got {config.cam_rule!r}")
    if config.cam_class is not None and config.cam_class not in ("true", "predicted") and \
            not str(config.cam_class).isdigit():
        raise ConfigError(f"--cam-class must be true, predicted or a class index, got {config.cam_class!r}")
    device = select_device(config.device)
    check_out(config.out)
    info = checkpoint_info(config.checkpoint)
    training = info.get("training") if isinstance(info.get("training"), dict) else {}
    recorded = info.get("dataset") if isinstance(info.get("dataset"), dict) else {}
    dataset = config.dataset or recorded.get("name") or training.get("dataset")
    if not dataset:
        raise ConfigError(f"{config.checkpoint} does not record its dataset; pass --dataset")
    fold = config.fold if config.fold is not None else recorded.get("fold", 0)
    kwargs = dict(training.get("dataset_kwargs", {})) if dataset == training.get("dataset") else {}
    data = get_dataset(dataset, root=config.data_root or training.get("data_root"), split=config.split, fold=fold,
                       transform=eval_transform(dataset), **kwargs)
    model = load_model(config.checkpoint)
    num_classes = getattr(model, "num_classes", None) or len(info.get("classes") or []) or None
    data_classes = getattr(data, "classes", None)
    segmentation = training.get("model") in list_models("segmentation")
    labels = getattr(data, "labels", None)
    top = int(np.asarray(labels).max()) if labels is not None and len(labels) else None
    if num_classes and not segmentation and ((data_classes is not None and len(data_classes) != num_classes)
                                             or (top is not None and top >= num_classes)):
        n_data = len(data_classes) if data_classes is not None else top + 1
        raise ConfigError(f"{config.checkpoint} has {num_classes} classes but {dataset} ({config.split} split) has "
                          f"{n_data}; evaluate it on the data it was trained for")
    if num_classes:
        check_cam_class(config.cam_class if config.cam_class is not None else training.get("cam_class", "true"),
                        int(num_classes), name="--cam-class", what="model")
    model = model.to(device)
    criterion = build_criterion(training.get("loss", "image"), **training.get("loss_kwargs", {}))
    if info.get("loss_state"):
        criterion.load_state_dict({k: torch.tensor(v) for k, v in info["loss_state"].items()})
    settings = {"cam_rule": config.cam_rule or training.get("cam_rule", "zero"),
                "cam_class": config.cam_class or training.get("cam_class", "true")}
    extra = {"region_classes": getattr(data, "region_classes", None), "tta": bool(training.get("tta", False))}
    record = {"checkpoint": str(config.checkpoint), "dataset": dataset, "split": config.split, "fold": fold,
              **settings}
    with run_directory("evaluate", config.out, config=record) as run_dir:
        batch = 1 if getattr(data, "variable_size", False) else config.batch_size  # GlaS: whole images of many sizes
        metrics = evaluate(model, DataLoader(data, batch_size=batch), criterion=criterion.to(device),
                           progress=config.progress, desc=f"evaluate {config.split}", **settings, **extra)
        write_json(run_dir / "metrics.json", metrics)
        table = markdown_table(["metric", "value (%)"], [[k, f"{100 * v:.2f}"] for k, v in metrics.items()
                                                           if k not in ("n", "n_images", "loss")])
        atomic_write_text(run_dir / "metrics.md", table)
    return run_dir, metrics
