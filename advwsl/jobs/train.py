"""The jobs behind ``advwsl train`` and ``advwsl evaluate``: the training configuration from its sources
(precedence: the dataset's or ``--preset``'s recipe < ``--config FILE`` < command-line options < ``--set``
pairs), new and resumed training runs (:func:`advwsl.training.fit_folds`, DDP-ready under ``torchrun``),
and the re-evaluation of a checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import PRESETS, SEGMENTATION_PRESET, EvaluateConfig, TrainConfig, TrainJobConfig, check_overrides
from ..config import load_config
from ..errors import ConfigError
from ..io import parse_set_pairs
from ..models import list_models
from ..report_html import write_html_report
from ..runs import resumable_run
from ..training import check_model_options, check_training_data, fit_folds, init_distributed
from ..utils import select_device
from .evaluate import evaluate_job
from .training_runs import RESUMABLE, TensorBoardLog, check_tensorboard, open_run, resumed_record, same_value

__all__ = ["TrainJobConfig", "resolve_train_config", "train_job", "EvaluateConfig", "evaluate_job"]


def _given(job: TrainJobConfig) -> dict[str, Any]:
    """The training options the job sets: the config file, then the options, then the ``--set`` pairs
    (``lambda_size``/``lambda_entropy`` merged into the file's ``loss_kwargs``)."""
    from_file = load_config(job.config_file) if job.config_file else {}
    given = {**from_file, **job.options}
    for key in ("lambda_size", "lambda_entropy"):
        if getattr(job, key) is not None:
            given["loss_kwargs"] = {**given.get("loss_kwargs", {}), key: getattr(job, key)}
    return {**given, **check_overrides(parse_set_pairs(job.set_pairs), where="--set")}


def resolve_train_config(job: TrainJobConfig) -> TrainConfig:
    """The configuration of a new run: the recipe of ``job.preset`` (default: the dataset's own, when it has
    one; for a segmentation model the dataset's ``<dataset>-unet`` recipe), then what the job sets."""
    given = _given(job)
    dataset = given.get("dataset", "synthetic")
    name = job.preset or (dataset if dataset in PRESETS else None)
    segmentation = SEGMENTATION_PRESET.format(dataset=dataset)
    if not job.preset and given.get("model") in list_models("segmentation") and segmentation in PRESETS:
        name = segmentation  # e.g. --model unet --dataset glas: the U-Net recipe of section 2.1.3.2
    config = TrainConfig.from_dict({**(PRESETS[name] if name else {}), **given})
    check_model_options(config)
    return config


def _resumed_config(job: TrainJobConfig) -> tuple[Path, TrainConfig]:
    run_dir, stored = resumed_record(job.resume, "train")
    requested = _given(job)
    changed = sorted(k for k, v in requested.items() if k not in RESUMABLE and not same_value(stored.get(k), v))
    if job.preset or changed:
        raise ConfigError(f"a resumed run keeps its configuration; {changed or ['--preset']} differ(s) from "
                          f"{run_dir / 'config.json'} (start a new run to change them)")
    try:
        config = TrainConfig.from_dict({**stored, **{k: v for k, v in requested.items() if k in RESUMABLE}})
    except ConfigError as exc:
        raise ConfigError(f"{run_dir / 'config.json'} holds an invalid training configuration ({exc}); it was "
                          "edited or is damaged") from None
    return run_dir, config


def train_job(job: TrainJobConfig, *, log: Callable[[str], None] | None = None) -> Path | None:
    """Train (or resume) the run ``job`` describes; returns the run directory on rank 0 (None on the other
    ranks under ``torchrun``). The configuration, the dataset options (the datasets are built, no sample is
    read), ``cam_class`` against the dataset's classes and the output folder are checked before anything is
    written."""
    rank, world, _ = init_distributed()
    if job.tensorboard:
        check_tensorboard()
    if job.resume is not None:
        run_dir, config = _resumed_config(job)
        select_device(config.device)
    else:
        config = resolve_train_config(job)
        select_device(config.device)
        check_training_data(config)
        run_dir = open_run("train", job.out, config.to_dict(), rank=rank, world=world)
    board = TensorBoardLog(run_dir) if job.tensorboard else None
    with resumable_run(run_dir, "train", rank=rank):
        fit_folds(config, run_dir, resume=job.resume is not None, on_epoch_end=board)
        if board is not None:
            board.close()
        if rank == 0:
            write_html_report(run_dir, f"advwsl train: {config.model} on {config.dataset}")
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return run_dir if rank == 0 else None
