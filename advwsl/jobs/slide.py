"""The jobs behind ``advwsl slide predict`` and ``advwsl slide attack``: a model (resolved like every
command's ``--model``) over the tiles of one whole slide, and the attack of its tiles, written into a run
directory (:mod:`advwsl.wsi.writer` lists the files)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..runs import check_out, run_directory
from ..utils import select_device
from ..wsi import (SlideAttack, SlideAttackConfig, SlideConfig, SlidePrediction, attack_slide, open_slide,
                   predict_slide, write_slide_attack, write_slide_prediction)
from .builtin import ResolvedModel, resolve_model

__all__ = ["slide_predict_job", "slide_attack_job"]

Log = Callable[[str], None]


def _prepare(model: str, checkpoint: str | None, config: SlideConfig, out: str | None, retrain: bool,
             log: Log | None) -> ResolvedModel:
    config.validate()
    select_device(config.device)
    check_out(out)
    with open_slide(config.slide, backend=config.backend):  # an unreadable slide fails before any model work
        pass
    resolved = resolve_model(model, checkpoint=checkpoint, progress=config.progress, log=log, retrain=retrain)
    n = resolved.num_classes
    for name in ("cam_class", "positive_class"):
        if n is not None and getattr(config, name) >= n:
            raise ConfigError(f"--{name.replace('_', '-')} {getattr(config, name)} is not a class of "
                              f"{resolved.name} ({n} classes)")
    return resolved


def _settings(model: ResolvedModel, config: SlideConfig, **extra: Any) -> dict[str, Any]:
    return {"model": model.describe(), "slide": {k: str(v) if isinstance(v, Path) else v
                                                 for k, v in asdict(config).items()}, **extra}


def slide_predict_job(model: str, config: SlideConfig, *, checkpoint: str | None = None, out: str | None = None,
                      retrain: bool = False, log: Log | None = None) -> tuple[Path, SlidePrediction]:
    """Tile the slide, run the model on its tissue tiles and write the tile table, the slide score and the
    heatmaps into a new run directory."""
    resolved = _prepare(model, checkpoint, config, out, retrain, log)
    with run_directory("slide-predict", out, config=_settings(resolved, config)) as run_dir:
        result = predict_slide(resolved.model, config, classes=resolved.classes)
        write_slide_prediction(result, run_dir)
    return run_dir, result


def slide_attack_job(model: str, config: SlideConfig, attack: SlideAttackConfig, *, checkpoint: str | None = None,
                     out: str | None = None, retrain: bool = False, log: Log | None = None
                     ) -> tuple[Path, SlideAttack]:
    """Predict the slide, attack its most positive tiles and write how the slide score and the stitched
    heatmap change (minimal L2 per tile, heatmap after the attack, Dice of the positive region)."""
    attack.validate()
    resolved = _prepare(model, checkpoint, config, out, retrain, log)
    if resolved.num_classes is not None and attack.target_class >= resolved.num_classes:
        raise ConfigError(f"--target-class {attack.target_class} is not a class of {resolved.name}")
    with run_directory("slide-attack", out, config=_settings(resolved, config, attack=asdict(attack))) as run_dir:
        result = attack_slide(resolved.model, config, attack, classes=resolved.classes)
        write_slide_attack(result, run_dir)
    return run_dir, result
