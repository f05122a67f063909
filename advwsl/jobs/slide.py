"""The jobs behind ``advwsl slide predict`` and ``advwsl slide attack``: a model (resolved like every
command's ``--model``) over the tiles of one whole slide, and the attack of its tiles, written into a run
directory (:mod:`advwsl.wsi.writer` lists the files). Classes are given by index or name and resolved
against the model's class names before any slide is read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .. import wsi
from ..attacks import get_attack_spec, list_attacks, parse_budgets
from ..config import SlideAttackConfig, SlidePredictConfig, check_levels
from ..errors import ConfigError
from ..pretrained import ResolvedModel, resolve_model
from ..report_html import write_html_report
from ..runs import check_out, run_directory
from ..utils import select_device
from .attack import class_index

__all__ = ["SlidePredictConfig", "SlideAttackConfig", "slide_predict_job", "slide_attack_job"]

Log = Callable[[str], None]


def _settings(config: SlidePredictConfig, resolved: ResolvedModel) -> wsi.SlideConfig:
    """:mod:`advwsl.wsi`'s settings for ``config``, the classes resolved against the model's."""
    n, names = resolved.num_classes, resolved.classes
    positive = class_index(config.positive_class, names, n, "--positive-class")
    cam = positive if config.cam_class is None else class_index(config.cam_class, names, n, "--cam-class")
    keys = ("tile_size", "mpp", "magnification", "level", "downsample", "tissue_threshold", "thumbnail_downsample",
            "batch_size", "workers", "aggregation", "top_k", "device", "backend", "progress", "overlap",
            "heatmap_downsample", "stain_norm", "stain_reference")
    return wsi.SlideConfig(slide=config.slide, cam_class=cam, positive_class=positive,
                           **{k: getattr(config, k) for k in keys})


def _attack_settings(config: SlideAttackConfig, resolved: ResolvedModel, positive: int) -> wsi.SlideAttackConfig:
    """:mod:`advwsl.wsi`'s attack settings: the attack checked against the registry, its step budget, the
    target class (default: a 2-class model's other class than the positive one)."""
    usable = [n for n in list_attacks("label") if get_attack_spec(n).minimal_norm]
    if config.attack not in usable:
        raise ConfigError(f"--attack must be a minimal-norm label attack, one of {', '.join(usable)}, got "
                          f"{config.attack!r}")
    budget = parse_budgets(list(config.budget), (config.attack,))[config.attack]
    budget = budget or get_attack_spec(config.attack).quick_budget
    if not str(budget).isdigit():
        raise ConfigError(f"--budget {budget!r}: a slide attack takes a number of steps (e.g. --budget 100)")
    n = resolved.num_classes
    if config.target is not None:
        target = class_index(config.target, resolved.classes, n, "--target")
    elif n == 2:
        target = 1 - positive
    else:
        raise ConfigError(f"{resolved.name} has {n} classes: say which class the tiles are pushed to with --target")
    return wsi.SlideAttackConfig(attack=config.attack, steps=int(budget), target_class=target,
                                 max_tiles=config.max_tiles, levels=check_levels(config.levels),
                                 cam_threshold=config.cam_threshold, seed=config.seed,
                                 keep_adversarials=config.keep_adversarials)


def _prepare(config: SlidePredictConfig, log: Log | None) -> tuple[ResolvedModel, wsi.SlideConfig]:
    select_device(config.device)
    check_out(config.out, command="slide-attack" if isinstance(config, SlideAttackConfig) else "slide-predict")
    with wsi.open_slide(config.slide, backend=config.backend):  # an unreadable slide fails before any model work
        pass
    resolved = resolve_model(config.model, checkpoint=config.checkpoint, progress=config.progress, log=log,
                             retrain=config.retrain)
    settings = wsi.check_slide_config(_settings(config, resolved), resolved.classes)
    return resolved, settings


def _record(model: ResolvedModel, settings: wsi.SlideConfig, **extra: Any) -> dict[str, Any]:
    return {"model": model.describe(), "slide": {k: str(v) if isinstance(v, Path) else v
                                                 for k, v in asdict(settings).items()}, **extra}


def slide_predict_job(config: SlidePredictConfig, *, log: Log | None = None) -> tuple[Path, wsi.SlidePrediction]:
    """Tile the slide, run the model on its tissue tiles and write the tile table, the slide score and the
    heatmaps into a new run directory."""
    resolved, settings = _prepare(config, log)
    with run_directory("slide-predict", config.out, config=_record(resolved, settings)) as run_dir:
        result = wsi.predict_slide(resolved.model, settings, classes=resolved.classes)
        wsi.write_slide_prediction(result, run_dir)
        write_html_report(run_dir, f"advwsl slide predict: {resolved.name} on {Path(config.slide).name}")
    return run_dir, result


def slide_attack_job(config: SlideAttackConfig, *, log: Log | None = None) -> tuple[Path, wsi.SlideAttack]:
    """Predict the slide, attack its most positive tiles and write how the slide score and the stitched
    heatmap change (minimal L2 per tile, heatmap after the attack, Dice of the positive region)."""
    resolved, settings = _prepare(config, log)
    attack = _attack_settings(config, resolved, settings.positive_class)
    attack.validate()
    record = _record(resolved, settings, attack=asdict(attack))
    with run_directory("slide-attack", config.out, config=record) as run_dir:
        result = wsi.attack_slide(resolved.model, settings, attack, classes=resolved.classes)
        wsi.write_slide_attack(result, run_dir)
        write_html_report(run_dir, f"advwsl slide attack: {resolved.name} on {Path(config.slide).name}")
    return run_dir, result
