"""The experiment type behind the weakly supervised tables and figures of chapters 2 to 4 and appendix III:
methods (rows) trained and evaluated on a dataset under one or several settings (groups: magnifications,
patch sizes, training fractions, lambda_s, ...), over validation folds, and reported as mean ± std over
folds beside the reference's numbers (:func:`wsl_table`), plus the figure of a sweep.

Where it runs. With ``--data-root`` on the real dataset with the reference's recipe (the presets of
:data:`advwsl.training.PRESETS`: ImageNet ResNet-18, the epochs, crops and learning rates of sections
2.1.3, 3.4.2 and 4.4.2) and its 5 folds. Without it on the synthetic stand-in (:mod:`advwsl.data.synthetic`
with the dataset's class structure): a from-scratch ``resnet-mini`` (stride 8) on 64 x 64 tiles, the
``synthetic`` / ``synthetic-unet`` recipes (6 epochs, cosine lr 0.05) and fewer folds, so that a table takes
minutes on a CPU. The output says which, and lists every setting in which the stand-in differs from the
reference; the reference's numbers then stand beside ours for orientation only.

How a method is trained and evaluated. Every (method, setting, fold) is one model trained by
:func:`advwsl.pretrained.trained.trained_model` (cached: entries that share a model, e.g. Tables 2.8 and 2.9, train
it once) and kept at its last epoch; it is evaluated on the test split by :func:`advwsl.training.evaluate`
with the recipe's CAM rule and class or the entry's ``evaluation`` (evaluation settings stay out of the
training recipe, so a model trained for one table is reused by another evaluated differently, e.g. Table
4.1 evaluates Table 2.7's models by eq. 4.14): accuracy, AP / mAP, the Dice of the
CAM (per image, over all pixels, over lesion images), eq. 4.14 where the dataset has gland classes, and for
a U-Net the Dice of its predicted foreground. The Grad-CAM rows evaluate the trained CAM models with
Grad-CAM (:func:`advwsl.models.gradcam_view`).

Settings (``ctx.settings``, all JSON): ``preset`` (the real recipe of the WSL rows), ``unet_preset``,
``stand_in`` (options over the ``synthetic`` recipe), ``stand_in_data`` (the stand-in's dataset options,
also for the U-Net), ``rows`` (``method``, ``model``, ``train`` options, ``real`` / ``stand_in`` options,
``unet``, ``view``, ``preset``, ``measures`` renaming a measure for that row), ``groups`` (``group``,
``x``, ``panel``, ``train`` / ``real`` / ``stand_in`` options, ``data_root`` subfolder; ``stand_in:
false`` leaves a group out of the stand-in), ``stand_in_groups`` (replaces ``groups`` on the stand-in),
``measures``, ``folds`` / ``stand_in_folds``, ``evaluation`` (``cam_rule``, ``cam_class``), ``overrides``
/ ``stand_in_overrides`` (applied last; ``--quick`` sets them), ``notes`` / ``stand_in_notes``,
``figure`` (``measures``, ``xlabel``, ``log_x``, ``lines``).
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from torch.utils.data import DataLoader

from ..data import eval_transform, get_dataset
from ..errors import ConfigError
from ..io import atomic_write_text, mean_std
from ..pretrained.trained import trained_model
from ..losses import build_criterion
from ..models import gradcam_view
from ..plotting import plot_sweep
from ..training import PRESETS, TrainConfig, evaluate
from ..utils import select_device
from .compare import Measure, side_by_side, side_by_side_markdown
from .findings import findings_markdown
from ..config import Departure, WslGroup, WslRow, WslTableSettings
from .registry import Context, Experiment, Outcome

__all__ = ["MEASURES", "wsl_table", "recipe_for", "merge", "ref", "WSL_TABLE"]

#: The measures a table can report (name -> label, kind).
MEASURES = {"accuracy": "Accuracy (%)", "ap": "AP (%)", "map": "mAP (%)", "dice": "Dice per image (%)",
            "dice_pixels": "Dice over pixels (%)", "mdice_positive": "mDice lesion (%)",
            "dice_combined": "Dice eq. 4.14 (%)", "miou": "mIoU (%)"}
#: Recipe fields whose stand-in value is listed when it differs from the reference's.
_COMPARED = ("backbone", "pretrained", "stride", "epochs", "batch_size", "lr", "schedule", "crop_size", "loss_kwargs")


def merge(base: dict[str, Any], *updates: dict[str, Any] | None) -> dict[str, Any]:
    """``base`` updated by each of ``updates`` in turn; nested dicts (``loss_kwargs``, ``model_kwargs``,
    ``dataset_kwargs``) are merged key by key instead of replaced."""
    out = copy.deepcopy(base)
    for update in updates:
        for key, value in (update or {}).items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def ref(method: str, group: str = "", **values: float | tuple[float, float]) -> dict[str, Any]:
    """A row of the reference's numbers (percent): ``ref("Max", "40x", accuracy=(90.09, 2.89), ap=(97.64,
    2.01))`` for mean ± std, or a plain number."""
    row: dict[str, Any] = {"method": method, "group": group}
    for name, value in values.items():
        mean, std = value if isinstance(value, tuple) else (value, None)
        row[name] = mean
        if std is not None:
            row[f"{name}_std"] = std
    return row


def _stand_in_base(s: WslTableSettings, unet: bool) -> dict[str, Any]:
    base = PRESETS["synthetic-unet"] if unet else merge(PRESETS["synthetic"], s.stand_in)
    return merge(base, {"dataset_kwargs": s.stand_in_data})


def recipe_for(ctx: Context, row: WslRow, group: WslGroup) -> dict[str, Any] | None:
    """The :class:`~advwsl.training.TrainConfig` options of ``row`` under ``group`` (see the module
    docstring), or None when the group's real data is missing (a patch size without its folder)."""
    s = ctx.settings
    unet = row.unet
    where = "stand_in" if ctx.stand_in else "real"
    if ctx.stand_in:
        base = _stand_in_base(s, unet)
    else:
        name = s.unet_preset if unet else (row.preset or s.preset)
        base = merge(PRESETS[name], {"data_root": ctx.data_root})
        if group.data_root:
            folder = Path(ctx.data_root) / group.data_root
            if not folder.is_dir():
                return None
            base["data_root"] = str(folder)
    model = {} if unet else {"model": row.model or "cam"}
    if not unet and base.get("model") != model["model"]:
        base["model_kwargs"] = {}  # the preset's head options belong to the preset's head
    recipe = merge(base, model, group.train, getattr(group, where), row.train, getattr(row, where),
                   s.overrides, s.stand_in_overrides if ctx.stand_in else None)
    recipe.update(progress=ctx.progress, device=ctx.device, evaluate_test=False)
    TrainConfig.from_dict(recipe)  # every option checked before anything trains
    return recipe


def _test_loader(recipe: dict[str, Any], fold: int, cache: dict[str, Any]) -> DataLoader:
    key = repr((recipe["dataset"], recipe.get("data_root"), sorted(recipe.get("dataset_kwargs", {}).items()), fold))
    if key not in cache:
        data = get_dataset(recipe["dataset"], recipe.get("data_root"), "test", fold=fold,
                           transform=eval_transform(recipe["dataset"]), **recipe.get("dataset_kwargs", {}))
        size = 1 if getattr(data, "variable_size", False) else int(recipe.get("batch_size", 32))
        cache[key] = DataLoader(data, batch_size=size)
    return cache[key]


def _run_one(ctx: Context, row: WslRow, recipe: dict[str, Any], fold: int,
             cache: dict[str, Any]) -> dict[str, Any]:
    """Train (or fetch from the cache) and evaluate one model; returns its test metrics and seconds."""
    config = TrainConfig.from_dict({**recipe, "folds": [fold]})
    start = time.perf_counter()
    name = f"{'unet' if row.unet else config.model}-{config.dataset}-fold{fold}"
    model, _ = trained_model(name, config, log=ctx.log)
    trained = time.perf_counter() - start
    if row.view == "gradcam":
        model = gradcam_view(model)
    device = select_device(ctx.device)
    loader = _test_loader(recipe, fold, cache)
    criterion = build_criterion(config.loss, **config.loss_kwargs).to(device)
    rule = {"cam_rule": config.cam_rule, "cam_class": config.cam_class, **ctx.settings.evaluation}
    metrics = evaluate(model.to(device), loader, criterion=criterion, **rule, tta=config.tta,
                       region_classes=getattr(loader.dataset, "region_classes", None), progress=ctx.progress,
                       desc=f"{row.method} fold {fold} test")
    for ours, theirs in row.measures.items():  # e.g. the U-Net's binary Dice in an eq. 4.14 column
        metrics[ours] = metrics.get(theirs, math.nan)
    return {**metrics, "train_seconds": trained, "seconds": time.perf_counter() - start}


def _groups(ctx: Context) -> list[WslGroup]:
    s = ctx.settings
    groups = s.stand_in_groups if ctx.stand_in and s.stand_in_groups else s.groups
    return [g for g in groups if not (ctx.stand_in and not g.stand_in_run)]


def _shown(value: Any) -> str:
    return "none" if value is None else json.dumps(value) if isinstance(value, dict) else str(value)


def stand_in_departures(ctx: Context) -> list[Departure]:
    """The departures of a stand-in run (no ``--data-root``): the synthetic data itself, the recipe's
    settings that differ from the reference's (computed from the two, so none goes unsaid), the U-Net's, and
    the entry's notes on how its stand-in is built (listed as they are, without a reason of their own)."""
    s = ctx.settings
    stand_in = merge(_stand_in_base(s, False), s.overrides, s.stand_in_overrides)
    real = merge(TrainConfig().to_dict(), PRESETS[s.preset])
    stand_in = merge(TrainConfig().to_dict(), stand_in)
    diffs = [f"{k} {_shown(stand_in[k])} (reference: {_shown(real[k])})" for k in _COMPARED
             if stand_in[k] != real[k] and not (k == "loss_kwargs" and real["loss"] == stand_in["loss"] == "image")]
    folds = s.stand_in_folds or s.folds
    if len(folds) != len(s.folds):
        diffs.append(f"{len(folds)} fold{'s' if len(folds) > 1 else ''} (reference: {len(s.folds)})")
    data = stand_in.get("dataset_kwargs", {})
    out = [Departure(f"a synthetic stand-in for {s.dataset_label}",
                     f"{s.dataset_label} cannot be downloaded here (give --data-root DIR for the real data); the "
                     "reference's numbers are beside ours for orientation only: different data, network and budget. "
                     f"Its data: {data.get('size', 64)} x {data.get('size', 64)} tiles, "
                     f"{data.get('n_trainval', 1280)} train+valid / {data.get('n_test', 256)} test tiles, options "
                     f"`{json.dumps(data)}`.", settings=("stand_in_data",)),
           Departure(f"the stand-in's training recipe: {'; '.join(diffs)}",
                     "a small network trained from scratch, so that the table trains in minutes on a CPU.",
                     settings=("overrides", "stand_in_overrides", "stand_in_folds"))]
    if any(r.unet for r in s.rows):
        unet = merge(PRESETS["synthetic-unet"], s.overrides)
        ref = PRESETS[s.unet_preset or "glas-unet"]
        out.append(Departure(
            f"the U-Net of base width {unet['model_kwargs']['base_width']}, depth {unet['model_kwargs']['depth']} "
            f"(reference: Ronneberger et al.'s 64 and 4), loss {unet['loss']} ({ref['loss']}), {unet['epochs']} "
            f"epochs {unet['schedule']} lr {unet['lr']} ({ref['epochs']} epochs, lr {ref['lr']} / 10 at 1/3 and "
            f"2/3), batch {unet['batch_size']} ({ref['batch_size']})",
            "the fully supervised bound, as small as the heads' network so that it trains on a CPU as well."))
    return out + [Departure(note, "") for note in s.stand_in_notes]


def _header(ctx: Context, folds: list[int]) -> list[str]:
    s = ctx.settings
    lines = [f"# {ctx.entry.id}: {ctx.entry.title}", ""]
    if ctx.stand_in:
        lines += [f"**Stand-in**: no `--data-root`, so a synthetic set stands in for {s.dataset_label} (its "
                  "departures from the reference are listed above); the reference's numbers are beside ours for "
                  "orientation only.", ""]
    else:
        lines += [f"Data: {s.dataset_label} from {ctx.data_root}; recipe: preset `{s.preset}` (the "
                  f"reference's), folds {folds}.", ""]
    lines += [f"- {note}" for note in s.notes]
    lines += ["- Models are kept at their last epoch; values are test-split means ± std over folds (%); each "
              "cell reads ours / reference (difference in points), or ours alone where the reference gives no number.", ""]
    return lines


def _aggregate(per_fold: list[dict[str, Any]], measures: list[str]) -> list[dict[str, Any]]:
    rows: dict[tuple, dict[str, Any]] = {}
    for r in per_fold:
        rows.setdefault((r["method"], r["group"]), {"method": r["method"], "group": r["group"], "x": r.get("x"),
                                                    "panel": r.get("panel"), "_folds": []})["_folds"].append(r)
    out = []
    for row in rows.values():
        folds = row.pop("_folds")
        for m in measures:
            row[m], row[f"{m}_std"] = mean_std([f.get(m, math.nan) for f in folds])
        row["folds"] = len(folds)
        row["seconds"] = sum(f["seconds"] for f in folds)
        out.append(row)
    return out


def wsl_table(ctx: Context) -> Outcome:
    """Train and evaluate every (row, group, fold) of the entry and report ours beside the reference (see the
    module docstring). Writes ``table.md``, ``table.csv`` (means, stds and the reference), ``folds.csv``
    (every model's test metrics and time) and, for a sweep, ``figure.png`` / ``figure.csv``."""
    s = ctx.settings
    folds = list((s.stand_in_folds or s.folds) if ctx.stand_in else s.folds)
    measures = list(s.measures)
    per_fold, skipped, cache = [], [], {}
    plan = []
    for group in _groups(ctx):
        for row in s.rows:
            recipe = recipe_for(ctx, row, group)
            if recipe is None:
                skipped.append(group.group)
                continue
            plan.append((group, row, recipe))
    if not plan:
        raise ConfigError(f"{ctx.entry.id}: nothing to run under {ctx.data_root}: {ctx.entry.data}")
    for group, row, recipe in plan:
        for fold in folds:
            ctx.log(f"{ctx.entry.id}: {row.method} {group.group} fold {fold}")
            metrics = _run_one(ctx, row, recipe, fold, cache)
            per_fold.append({"method": row.method, "group": group.group, "x": group.x,
                             "panel": group.panel, "fold": fold, **metrics})
    ours = _aggregate(per_fold, measures)
    keys = ["method", "group"]
    kinds = [Measure(m, MEASURES.get(m, m), "share") for m in measures]
    run_groups = {r["group"] for r in ours}  # the reference's rows of the settings that ran
    frame = side_by_side(ours, [dict(r) for r in ctx.entry.reference if r.get("group", "") in run_groups], keys,
                         kinds)
    atomic_write_text(ctx.run_dir / "table.csv", frame.to_csv(index=False))
    atomic_write_text(ctx.run_dir / "folds.csv", pd.DataFrame(per_fold).to_csv(index=False))
    shown = keys if any(r["group"] for r in ours) else ["method"]
    text = _header(ctx, folds) + [side_by_side_markdown(frame, shown, kinds)]
    if skipped:
        text.append(f"Not run (no folder under --data-root): {', '.join(dict.fromkeys(skipped))}.")
    files = ["table.csv", "folds.csv"]
    figure = s.figure
    if figure is not None:
        sweep = pd.DataFrame(ours)
        atomic_write_text(ctx.run_dir / "figure.csv", sweep.to_csv(index=False))
        plot_sweep(sweep, ctx.run_dir / "figure.png", measures=list(figure.measures or measures),
                   labels={m: MEASURES.get(m, m).replace(" (%)", "") for m in measures},
                   lines=figure.lines,
                   panels="panel" if sweep["panel"].notna().any() else None, xlabel=figure.xlabel,
                   log_x=figure.log_x,
                   title=f"{ctx.entry.id.replace('fig-', 'Figure ')}: {ctx.entry.title}"
                   + (" (stand-in)" if ctx.stand_in else ""))
        files += ["figure.csv", "figure.png"]
    seconds = sum(r["seconds"] for r in per_fold)
    text.append(f"\n{len(per_fold)} models, {seconds:.0f} s (training, or the cache, and evaluation).")
    verdicts = [claim.evaluate(per_fold) for claim in ctx.entry.findings]
    text += findings_markdown(verdicts)
    summary = {"stand_in": ctx.stand_in, "folds": folds, "rows": ours, "seconds": seconds,
               "findings": [asdict(v) for v in verdicts]}
    return Outcome("\n".join(text), files, summary, stand_in_departures(ctx) if ctx.stand_in else [])


WSL_TABLE = Experiment("weakly supervised table", wsl_table, WslTableSettings)
