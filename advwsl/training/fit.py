"""A full training run (``fit``) and k-fold runs (``fit_folds``, section 2.1.2.2) on top of the loops of
:mod:`advwsl.training`: validation every epoch, best and last checkpoints, a resumable state saved
atomically after every epoch, the per-epoch metrics CSV, learning curves and summaries (mean +- std over
folds). The same call runs under ``torchrun`` with DistributedDataParallel; rank 0 writes every file."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from ..data.base import dataset_classes, dataset_trait
from ..errors import AdvwslWarning, ConfigError
from ..io import atomic_write_text, format_mean_std, markdown_table, mean_std, read_json, write_json
from ..losses import as_criterion, SizeAnnotator, build_criterion
from ..models import model_info
from ..models.checkpoints import save_model
from ..plotting import plot_learning_curves
from ..utils import seed_everything, select_device
from .distributed import init_distributed, shard_dataset
from .loops import WithCams, evaluate, train_one_epoch
from .recipes import TrainConfig, build_datasets, build_model, build_optimizer, build_scheduler, check_cam_class
from .state import (append_metrics_csv, load_state, read_metrics_csv, rng_state, save_state, set_rng_state,
                    sync_metrics_csv)

__all__ = ["FitResult", "FoldsResult", "fit", "fit_folds", "FOLD_METRICS", "CHANCE_MARGIN", "SEGMENTATION_CLASSES",
           "chance_warning"]

#: A run whose best validation accuracy is at most 1/C + this margin (C classes) did not learn.
CHANCE_MARGIN = 0.1

#: The pixel classes of a segmentation model (section 2.1.2.1: it segments the region of interest).
SEGMENTATION_CLASSES = ("background", "region")

@dataclass
class FitResult:
    """Outcome of :func:`fit`: the run directory, one metrics row per epoch, the best epoch (by
    ``config.monitor`` on the validation set), its validation metrics, its test metrics (or None) and the
    warning of a run that stayed at chance level (or None, see :func:`chance_warning`)."""

    run_dir: Path
    history: list[dict[str, float]]
    best_epoch: int
    best: dict[str, float]
    test: dict[str, float] | None
    warning: str | None = None


def chance_warning(history: list[dict[str, float]], num_classes: int | None) -> str | None:
    """The warning of a run whose best validation accuracy over its epochs is at most ``1/C +``
    :data:`CHANCE_MARGIN` (a model that did not learn: a learning rate too high or too low, too few epochs,
    wrong labels); None otherwise, or when the accuracy or the class count is unknown."""
    values = [float(r["valid_accuracy"]) for r in history if not math.isnan(float(r.get("valid_accuracy", math.nan)))]
    if not values or not num_classes or num_classes < 2:
        return None
    best, chance = max(values), 1.0 / num_classes
    if best > chance + CHANCE_MARGIN:
        return None
    return (f"the best validation accuracy over {len(history)} epochs, {100 * best:.1f} %, is at chance level for "
            f"{num_classes} classes ({100 * chance:.1f} %): the model did not learn. Try another learning rate "
            "(--lr), more epochs, another optimizer setting, or check the labels")


def _is_better(value: float, best: float | None, monitor: str) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best if monitor.endswith("loss") else value > best


@dataclass
class _Run:
    """Everything one training run is made of (built once by :func:`_build`, used by every epoch)."""

    config: Any
    rank: int
    world: int
    model: nn.Module
    net: nn.Module
    criterion: nn.Module
    annotator: Any
    sampler: DistributedSampler
    train_loader: DataLoader
    valid_loader: DataLoader
    eval_loader: Callable
    optimizer: torch.optim.Optimizer
    scheduler: Any
    eval_kw: dict[str, Any]
    meta: dict[str, Any]
    num_classes: int | None
    test_set: Any


@dataclass
class _Progress:
    """Where a run stands: the next epoch, the best monitored value and its epoch, the metrics rows."""

    epoch: int = 0
    best_value: float | None = None
    best_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def fit(config: Any, run_dir: str | Path, *, model: nn.Module | None = None, train_set: Any = None,
        valid_set: Any = None, test_set: Any = None, criterion: nn.Module | None = None,
        perturb: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        resume: bool = False, fold: int | None = None,
        on_epoch_end: Callable[[int, dict[str, float]], dict[str, float] | None] | None = None) -> FitResult:
    """Train one model as ``config`` (a :class:`~advwsl.training.TrainConfig` or a dict) describes, validating
    every epoch, in ``run_dir`` (which must exist; see :func:`advwsl.runs.create_run_dir`).

    Writes ``metrics.csv`` (one row per epoch, appended), ``checkpoints/best`` and ``checkpoints/last``
    (:func:`advwsl.models.save_model`; the learned loss parameters are in the sidecar's
    ``loss_state``), ``state/last.pt`` (everything needed to resume, saved atomically after every epoch),
    ``learning_curves.png`` and ``summary.json`` / ``summary.md``. With ``resume`` the run continues after
    its last completed epoch and ends as the uninterrupted run would (same seed).

    ``model``, the datasets and ``criterion`` default to those built from ``config`` (``fold`` defaults to
    ``config.folds[0]``). ``perturb`` is the adversarial-training hook (see the module docstring).
    ``on_epoch_end(epoch, row)`` may return extra scalars to log in that epoch's row.
    Under ``torchrun`` the same call trains with DistributedDataParallel (rank 0 writes every file).
    """

    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(dict(config))
    fold = config.folds[0] if fold is None else fold
    run_dir = Path(run_dir)
    state_path = run_dir / "state" / "last.pt"
    if (run_dir / "summary.json").is_file():
        if not resume:
            raise ConfigError(f"{run_dir} already holds a finished run; choose a new run directory")
        return _load_result(run_dir)
    if state_path.is_file() and not resume:
        raise ConfigError(f"{run_dir} already holds a run in progress; continue it with resume (--resume {run_dir})")
    run = _build(config, run_dir, fold, model=model, train_set=train_set, valid_set=valid_set, test_set=test_set,
                 criterion=criterion, fresh=not (resume and state_path.is_file()))
    progress = _resume(run, run_dir, perturb) if resume and state_path.is_file() else _Progress()
    for epoch in range(progress.epoch, config.epochs):
        _run_epoch(run, run_dir, epoch, progress, perturb, on_epoch_end)
    return _finish(config, run_dir, run.model, progress.history, progress.best_epoch, run.test_set, run.eval_loader,
                   run.eval_kw, run.num_classes)


def _build(config: Any, run_dir: Path, fold: int, *, model: nn.Module | None, train_set: Any, valid_set: Any,
           test_set: Any, criterion: nn.Module | None, fresh: bool) -> _Run:
    """Join the process group, seed, and build the datasets (unless given), the model (initialized when
    ``fresh``), the criterion, the loaders, the optimizer and the schedule, in a fixed order (the same
    seed gives the same run)."""
    rank, world, ddp_device = init_distributed()
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    device = ddp_device or select_device(config.device)
    if config.batch_size % world:
        raise ConfigError(f"batch_size {config.batch_size} is not divisible by the {world} processes")
    seed_everything(config.seed + rank)
    if train_set is None or valid_set is None:
        built = build_datasets(config, fold)
        train_set = train_set if train_set is not None else built[0]
        valid_set = valid_set if valid_set is not None else built[1]
        test_set = test_set if test_set is not None else (built[2] if config.evaluate_test else None)
    classes = dataset_classes(train_set)
    num_classes = len(classes) if classes is not None else dataset_trait(train_set, "num_classes")
    if model is None:
        model = build_model(config, int(num_classes), init_weights=fresh)
    if model_info(config.model).task == "segmentation":
        classes = SEGMENTATION_CLASSES
    num_classes = getattr(model, "num_classes", None) or num_classes  # a model built elsewhere says its own
    cam_class = check_cam_class(config.cam_class, int(num_classes), classes=classes) if num_classes and \
        model_info(config.model).task != "segmentation" else config.cam_class
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = as_criterion(criterion if criterion is not None else
                             build_criterion(config.loss, **config.loss_kwargs)).to(device)
    annotator = None
    if criterion.needs_sizes:
        annotator = SizeAnnotator(model.num_classes, config.size_noise, mode=config.size_noise_mode,
                                  seed=config.seed + 7919 * rank)
    sampler, train_loader, eval_loader = _loaders(config, train_set, rank, world, device)
    optimizer = build_optimizer(config, model, criterion)
    scheduler = build_scheduler(config, optimizer, len(train_loader))
    model, net = _wrap(config, model, criterion, world, device)
    eval_kw = dict(criterion=criterion, cam_rule=config.cam_rule, cam_class=cam_class,
                   region_classes=dataset_trait(valid_set, "region_classes"), tta=config.tta, amp=config.amp,
                   channels_last=config.channels_last)
    meta = {"classes": list(classes) if classes is not None else None, "training": config.to_dict(),
            "dataset": {"name": config.dataset, "fold": fold}}
    return _Run(config, rank, world, model, net, criterion, annotator, sampler, train_loader,
                eval_loader(valid_set), eval_loader, optimizer, scheduler, eval_kw, meta, num_classes, test_set)


def _loaders(config: Any, train_set: Any, rank: int, world: int,
             device: torch.device) -> tuple[DistributedSampler, DataLoader, Callable[[Any], DataLoader]]:
    """The training sampler (shuffled, seeded, this rank's share) and loader, and the evaluation loader
    factory (this rank's shard; whole images of different sizes, GlaS, one at a time: section 4.4.2)."""
    per_rank = config.batch_size // world
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=config.seed)
    train_loader = DataLoader(train_set, batch_size=per_rank, sampler=sampler, num_workers=config.num_workers,
                              drop_last=len(sampler) >= per_rank, pin_memory=device.type == "cuda")

    def eval_loader(ds: Any) -> DataLoader:
        return DataLoader(shard_dataset(ds, rank, world), num_workers=config.num_workers,
                          batch_size=1 if dataset_trait(ds, "variable_size") else per_rank)

    return sampler, train_loader, eval_loader


def _wrap(config: Any, model: nn.Module, criterion: nn.Module, world: int,
          device: torch.device) -> tuple[nn.Module, nn.Module]:
    """``(model, net)``: ``net`` is what the training loop calls, :class:`WithCams` when the loss needs the
    CAMs, in DistributedDataParallel under ``torchrun`` (with SyncBatchNorm on GPUs if asked)."""
    net: nn.Module = WithCams(model) if criterion.needs_cams else model
    if world > 1:
        if config.sync_bn and device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            net = WithCams(model) if isinstance(net, WithCams) else model
        net = DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
    return model, net


def _resume(run: _Run, run_dir: Path, perturb: Any) -> _Progress:
    """Restore the model, optimizer, schedule, loss, annotator, hook and RNG states of the last completed
    epoch; on rank 0 make ``metrics.csv`` match the state's history."""
    state = load_state(run_dir / "state" / "last.pt")
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.criterion.load_state_dict(state["criterion"])
    for obj, key in ((run.annotator, "annotator"), (perturb, "perturb")):
        if obj is not None and hasattr(obj, "load_state_dict") and state.get(key) is not None:
            obj.load_state_dict(state[key])
    set_rng_state(state["rng"][run.rank] if run.rank < len(state["rng"]) else state["rng"][0])
    if run.rank == 0:  # the state's history is the record: add missing rows, replace a torn last line
        sync_metrics_csv(run_dir / "metrics.csv", state["history"])
    return _Progress(state["epoch"], state["best_value"], state["best_epoch"], state["history"])


def _run_epoch(run: _Run, run_dir: Path, epoch: int, progress: _Progress, perturb: Any,
               on_epoch_end: Callable[[int, dict[str, float]], dict[str, float] | None] | None) -> None:
    """Train and validate one epoch, update ``progress`` and save the checkpoints and the state."""
    config = run.config
    run.sampler.set_epoch(epoch)
    desc = f"epoch {epoch + 1}/{config.epochs}"
    train = train_one_epoch(run.net, run.train_loader, run.optimizer, criterion=run.criterion,
                            scheduler=run.scheduler, perturb=perturb, size_annotator=run.annotator, amp=config.amp,
                            channels_last=config.channels_last, progress=config.progress, desc=desc)
    valid = evaluate(run.net, run.valid_loader, progress=config.progress, desc=f"{desc} valid", **run.eval_kw)
    row = {"epoch": float(epoch + 1), **{f"train_{k}": v for k, v in train.items()},
           **{f"valid_{k}": v for k, v in valid.items()}}
    if on_epoch_end is not None:
        row.update(on_epoch_end(epoch + 1, row) or {})
    progress.history.append(row)
    value = valid.get(config.monitor, math.nan)
    if f"valid_{config.monitor}" not in row:
        raise ConfigError(f"monitor {config.monitor!r} is not a validation metric; choose one of {sorted(valid)}")
    improved = _is_better(value, progress.best_value, config.monitor)
    if improved:
        progress.best_value, progress.best_epoch = value, epoch + 1
    progress.epoch = epoch + 1
    rngs = [rng_state()]
    if run.world > 1:
        rngs = [None] * run.world
        dist.all_gather_object(rngs, rng_state())
    if run.rank == 0:
        _save_epoch(run, run_dir, progress, valid, row, improved, perturb, rngs)
    if run.world > 1:
        dist.barrier()


def _save_epoch(run: _Run, run_dir: Path, progress: _Progress, valid: dict[str, float], row: dict[str, float],
                improved: bool, perturb: Any, rngs: list[Any]) -> None:
    """Rank 0's files of a finished epoch: the best (if ``improved``) and last checkpoints, the resumable
    state (atomically) and the epoch's metrics row."""
    model, criterion = run.model, run.criterion
    loss_state = {k: v.tolist() for k, v in criterion.state_dict().items()}
    info = {**run.meta, "metrics": dict(valid), "epoch": progress.epoch, "loss_state": loss_state}
    if improved:
        save_model(model, run_dir / "checkpoints" / "best", metadata=info, overwrite=True)
    save_model(model, run_dir / "checkpoints" / "last", metadata=info, overwrite=True)
    save_state(run_dir / "state" / "last.pt", {
        "epoch": progress.epoch, "model": model.state_dict(), "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(), "criterion": criterion.state_dict(),
        "annotator": run.annotator.state_dict() if run.annotator is not None else None,
        "perturb": perturb.state_dict() if hasattr(perturb, "state_dict") else None,
        "rng": rngs, "best_value": progress.best_value, "best_epoch": progress.best_epoch,
        "history": progress.history})
    append_metrics_csv(run_dir / "metrics.csv", [row])


def _finish(config: Any, run_dir: Path, model: nn.Module, history: list[dict[str, float]], best_epoch: int,
            test_set: Any, eval_loader: Callable, eval_kw: dict[str, Any], num_classes: int | None) -> FitResult:
    """Evaluate the best checkpoint on the test set and write the learning curves and the summary (with
    the warning of a run at chance level)."""

    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    test = None
    if test_set is not None and config.evaluate_test:
        weights = load_file(str(run_dir / "checkpoints" / "best.safetensors"))
        model.load_state_dict(weights)
        test = evaluate(model, eval_loader(test_set), progress=config.progress, desc="test", **eval_kw)
    best = {k[6:]: v for k, v in history[best_epoch - 1].items() if k.startswith("valid_")}
    warning = chance_warning(history, num_classes)
    result = FitResult(run_dir, history, best_epoch, best, test, warning)
    if rank == 0:
        if warning:
            warnings.warn(f"{run_dir}: {warning}", AdvwslWarning, stacklevel=3)
        plot_learning_curves(history, run_dir / "learning_curves.png",
                             title=f"{config.model} / {config.loss} on {config.dataset}")
        write_json(run_dir / "summary.json", {"best_epoch": best_epoch, "monitor": config.monitor, "valid": best,
                                              "test": test, "epochs": len(history), "warning": warning})
        keys = [k for k in FOLD_METRICS if k in best]
        rows = [[f"valid (best epoch {best_epoch})", *(f"{100 * best[k]:.2f}" for k in keys)]]
        if test is not None:
            rows.append(["test", *(f"{100 * test.get(k, math.nan):.2f}" for k in keys)])
        atomic_write_text(run_dir / "summary.md", f"# {config.model} / {config.loss} on {config.dataset}\n\n"
                          + markdown_table(["split", *keys], rows) + (f"\n**Warning:** {warning}\n" if warning else ""),
                          overwrite=True)
    return result


def _load_result(run_dir: Path) -> FitResult:
    summary = read_json(run_dir / "summary.json", what="run summary")
    return FitResult(run_dir, read_metrics_csv(run_dir / "metrics.csv"), int(summary["best_epoch"]),
                     summary["valid"], summary.get("test"), summary.get("warning"))


FOLD_METRICS = ("accuracy", "ap", "map", "dice", "dice_pixels", "mdice_positive", "dice_combined", "miou")


@dataclass
class FoldsResult:
    """Outcome of :func:`fit_folds`: one :class:`FitResult` per fold and, per metric, the (mean, std) over
    folds of the test metrics (validation metrics of the best epoch when there is no test set)."""

    run_dir: Path
    results: list[FitResult]
    summary: dict[str, tuple[float, float]]


def fit_folds(config: Any, run_dir: str | Path, *, resume: bool = False, **fit_kwargs: Any) -> FoldsResult:
    """Section 2.1.2.2: one :func:`fit` per validation fold of ``config.folds`` in ``run_dir/fold_<k>``,
    then ``summary.json`` and ``summary.md`` in ``run_dir`` with every fold's metrics and mean ± std.
    With ``resume``, finished folds are read back, the interrupted fold continues and the others start."""
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(dict(config))
    run_dir = Path(run_dir)
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    results = []
    for k in config.folds:
        fold_dir = run_dir / f"fold_{k}"
        fold_dir.mkdir(parents=True, exist_ok=True)
        results.append(fit(config, fold_dir, fold=k, resume=resume, **fit_kwargs))
    per_fold = [r.test if r.test is not None else r.best for r in results]
    keys = [m for m in FOLD_METRICS if any(m in f for f in per_fold)]
    summary = {m: mean_std([f.get(m, math.nan) for f in per_fold]) for m in keys}
    if rank == 0:
        split = "test" if all(r.test is not None for r in results) else "valid (best epoch)"
        rows = [[f"fold {k}", *(f"{100 * f.get(m, math.nan):.2f}" for m in keys)]
                for k, f in zip(config.folds, per_fold)]
        rows.append(["mean ± std", *(format_mean_std([f.get(m, math.nan) for f in per_fold]) for m in keys)])
        text = (f"# {config.model} / {config.loss} on {config.dataset} ({split}, {len(results)} folds, %)\n\n"
                + markdown_table(["", *keys], rows)
                + "".join(f"\n**Warning (fold {k}):** {r.warning}\n" for k, r in zip(config.folds, results) if r.warning))
        summary_md = run_dir / "summary.md"
        if not summary_md.exists():
            atomic_write_text(summary_md, text)
            write_json(run_dir / "summary.json", {"split": split, "folds": list(config.folds),
                                                  "per_fold": per_fold, "mean_std": summary})
    return FoldsResult(run_dir, results, summary)
