"""The main job: attack a weakly supervised classifier and measure what happens to its predictions and to
its class activation maps, writing everything into a run directory.

``goal="label"`` runs DDN (Algorithm A V-1) to change the predicted label; ``goal="cam"`` runs
:func:`advwsl.attacks.cam.cam_ddn` to move the CAM while the label stays. Either way the job reports the
Table A V-1 row of the attack, the accuracy (or, for the CAM goal, the share of images whose CAM
survives) at a few L2 budgets ε and over a full grid, the CAM's agreement with the ground-truth masks on
clean and adversarial images, how much the CAM moved, the same CAM measures over ε (each minimal-norm
perturbation clipped to ε), and an image grid.

Files written (all new; nothing is overwritten): ``<attack>.csv/.json/.md`` (per-sample records, summary,
Table A V-1 row), ``cams.csv`` (per-sample CAM measures), ``accuracy_curve.csv/.png``,
``cam_curves.csv/.png``, ``cam_grid.png``, ``summary.json`` and ``summary.md`` (the table printed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import InputError, ModelError
from ..results import AttackResult
from ..runs import write_json

__all__ = ["TABLE_EPSILONS", "run_wsl_attack", "format_report", "load_wsl_data", "wsl_attack_job",
           "is_wsl_request"]

#: The budgets ε of the accuracy columns of the report (L2, images in [0, 1]).
TABLE_EPSILONS = (0.1, 0.25, 0.5, 1.0)


def _grid_rows(per: pd.DataFrame, result: AttackResult, n: int) -> list[int]:
    """Images shown in the grid: successfully attacked images with a lesion first, then one without."""
    success = pd.Series(result.success, index=result.index)
    has_mask = per["has_mask"] if "has_mask" in per else pd.Series(False, index=per.index)
    order = [i for i in per.index if success.get(i, False) and has_mask[i]][: max(n - 1, 1)]
    order += [i for i in per.index if success.get(i, False) and not has_mask[i]][:1]
    order += [i for i in per.index if i not in order]
    return order[:n]


def run_wsl_attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, run_dir: str | Path, *,
                   masks: torch.Tensor | None = None, classes: Sequence[str] | None = None, goal: str = "label",
                   attack: str = "ddn", budget: int | None = 100, batch_size: int = 64,
                   epsilons: Sequence[float] = TABLE_EPSILONS,
                   dice_threshold: float = 0.5, cam_threshold: float = 0.5, levels: int | None = 256,
                   seed: int = 0, grid_rows: int = 4, progress: bool = True,
                   attack_kwargs: dict[str, Any] | None = None,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Attack ``images`` (N, C, H, W) in [0, 1] with true ``labels`` and write the report into the existing
    directory ``run_dir``. ``masks`` (N, H, W) enable the localization measures (skipped with a notice
    otherwise); a model without ``cams`` gets the label measures only (``goal="cam"`` then is an error).
    With ``goal="label"``, ``attack`` is any registered untargeted attack (DDN by default) and ``budget``
    its gradient steps as ``advwsl attack --budget`` reads it (None: the reference's setting); with
    ``goal="cam"`` the attack is ``cam-ddn`` with ``budget`` steps (default 100). ``attack_kwargs`` are
    extra hyper-parameters of the attack.
    Returns the summary (also written to ``summary.json``); ``format_report(summary)`` is the table."""
    from ..attacks.cam import run_cam_attack
    from ..attacks.runner import run_attack
    from ..evaluation.cams import cam_robustness, predict_maps
    from ..plotting import plot_cam_curves, plot_cam_grid, plot_robustness_curves

    say = log or (lambda message: None)
    run_dir = Path(run_dir)
    if goal not in ("label", "cam"):
        raise InputError(f"goal must be 'label' or 'cam', got {goal!r}")
    has_cams = callable(getattr(model, "cams", None))
    if goal == "cam" and not has_cams:
        raise ModelError(f"--goal cam attacks the class activation maps, but {type(model).__name__} is a classifier "
                         "without class activation maps (no cams(x) method); use --goal label, or a weakly "
                         "supervised model (cam, max, lse, wildcat, deepmil, ...)")
    notices = []
    if not has_cams:
        notices.append("the model has no class activation maps: CAM measures skipped")
    elif masks is None:
        notices.append("the dataset has no ground-truth masks: CAM localization (Dice/IoU vs mask) skipped")
    elif not bool((masks.flatten(1) > 0.5).any(1).any()):
        notices.append("no image has a non-empty mask: CAM localization (Dice/IoU vs mask) skipped")
        masks = None
    for message in notices:
        say(message)

    if goal == "label":
        from .attack import attack_kwargs as budget_kwargs

        result = run_attack(model, images, labels, attack=attack, levels=levels,
                            attack_kwargs={**budget_kwargs(attack, budget), **(attack_kwargs or {})},
                            batch_size=batch_size, progress=progress, seed=seed, keep_adversarials=True)
    else:
        attack = "cam-ddn"
        cam_kwargs = {"steps": budget or 100, "levels": levels, "dice_threshold": dice_threshold,
                      "cam_threshold": cam_threshold, **(attack_kwargs or {})}
        result = run_cam_attack(model, images, labels, batch_size=batch_size, progress=progress, seed=seed,
                                attack_kwargs=cam_kwargs)
    files = {k: str(v) for k, v in result.save(run_dir, stem=attack).items()}
    table = result.summary()
    finite = result.norms[np.isfinite(result.norms)]
    top = max(float(finite.max()) * 1.05 if finite.size else 0.0, max(epsilons, default=0.0), 1e-3)
    curve = result.robustness_curve(np.linspace(0.0, top, 101))
    curve.to_csv(run_dir / "accuracy_curve.csv", index=False)
    curve_name = "accuracy" if goal == "label" else "CAM intact and label kept"
    plot_robustness_curves(pd.DataFrame({"attack": f"{result.attack} {result.budget}", "epsilon": curve["epsilon"],
                                         "accuracy": 100 * curve["accuracy"]}),
                           run_dir / "accuracy_curve.png", title=f"{curve_name} against the L2 budget")
    files.update(accuracy_curve=str(run_dir / "accuracy_curve.csv"),
                 accuracy_curve_png=str(run_dir / "accuracy_curve.png"))
    summary: dict[str, Any] = {
        "goal": goal, "attack": result.attack, "budget": result.budget, "n_images": int(len(images)),
        "clean_accuracy": 100.0 * result.clean_accuracy, "table_a_v_1": table,
        "accuracy_at": {f"{e:g}": 100.0 * float(result.accuracy(e)) for e in epsilons},
        "curve_name": curve_name, "notices": notices, "cam_threshold": cam_threshold,
        "dice_threshold": dice_threshold, "classes": list(classes) if classes is not None else None,
    }

    if has_cams:
        adversarials = result.adversarials.to(images.device)
        grid = np.union1d(curve["epsilon"].to_numpy()[:: max(1, len(curve) // 10)], np.asarray(epsilons, float))
        per, cam_curve, cam_summary = cam_robustness(model, images, adversarials, masks, epsilons=grid,
                                                     threshold=cam_threshold, batch_size=batch_size)
        per.insert(1, "success", result.success[np.argsort(result.index)])
        per.to_csv(run_dir / "cams.csv", index=False)
        cam_curve.to_csv(run_dir / "cam_curves.csv", index=False)
        plot_cam_curves(cam_curve, run_dir / "cam_curves.png", accuracy=curve,
                        title=f"{result.attack} {result.budget}: what the perturbation does to the CAM")
        rows = _grid_rows(per, result, grid_rows)
        idx = torch.tensor(rows)
        _, clean_maps = predict_maps(model, images[idx], torch.as_tensor(per["cam_class"].to_numpy()[rows]))
        _, adv_maps = predict_maps(model, adversarials[idx], torch.as_tensor(per["cam_class"].to_numpy()[rows]))
        name = (lambda c: classes[c] if classes is not None else str(c))
        titles = [f"#{i}  {name(int(per.loc[i, 'clean_pred']))} -> {name(int(per.loc[i, 'adv_pred']))}\n"
                  f"L2 {per.loc[i, 'l2']:.3f}\nDice with clean CAM {per.loc[i, 'cam_dice']:.3f}" for i in rows]
        plot_cam_grid(images[idx], adversarials[idx], clean_maps, adv_maps, run_dir / "cam_grid.png",
                      masks=masks[idx] if masks is not None else None, row_titles=titles, threshold=cam_threshold,
                      title=f"{result.attack} {result.budget} (goal: {goal}); CAM of the clean prediction")
        files.update(cams=str(run_dir / "cams.csv"), cam_curves=str(run_dir / "cam_curves.csv"),
                     cam_curves_png=str(run_dir / "cam_curves.png"), cam_grid_png=str(run_dir / "cam_grid.png"))
        summary["cams"] = cam_summary
        at = cam_curve.set_index("epsilon")
        summary["cams_at"] = {f"{e:g}": {k: float(v) for k, v in at.loc[float(e)].items()} for e in epsilons}
    summary["files"] = files
    write_json(run_dir / "summary.json", summary)
    (run_dir / "summary.md").write_text(format_report(summary) + "\n")
    return summary


def _f(value: Any, digits: int = 3, scale: float = 1.0) -> str:
    return "-" if value is None or not math.isfinite(float(value)) else f"{scale * float(value):.{digits}f}"


def format_report(summary: dict[str, Any]) -> str:
    """The report of :func:`run_wsl_attack` as Markdown tables: the Table A V-1 row, accuracy at a few ε,
    CAM localization (clean / adversarial / at each ε) and CAM movement."""
    t = summary["table_a_v_1"]
    eps = list(summary["accuracy_at"])
    lines = []
    model = summary.get("model")
    if model:
        lines.append(f"Model: {model.get('notice') or model['checkpoint']}")
    if summary.get("data"):
        lines.append(f"Data: {summary['data']}, {summary['n_images']} images")
    goal = (f"{summary['attack']} {summary['budget']} changes the predicted label" if summary["goal"] == "label"
            else f"{summary['attack']} {summary['budget']} moves the CAM (Dice with the clean CAM below "
                 f"{summary['dice_threshold']:g}) and keeps the predicted label")
    lines += [f"Attack: {goal}", ""]
    lines += ["| Attack | Budget | Success | Mean L2 | Median L2 | #Grads | Run-time (s) |",
             "|---|---|---:|---:|---:|---:|---:|",
             f"| {t['attack']} | {t['budget']} | {_f(t['success'], 1)} | {_f(t['mean_l2'], 4)} | "
             f"{_f(t['median_l2'], 4)} | {_f(t['grads_per_sample'], 0)} | {_f(t['seconds'], 1)} |", ""]
    lines.append(f"Clean accuracy: {summary['clean_accuracy']:.1f} % of {summary['n_images']} images")
    what = "Accuracy" if summary["goal"] == "label" else "CAM intact and label kept"
    lines.append(f"{what} (%) at L2 budget epsilon:")
    lines.append("| epsilon | " + " | ".join(eps) + " |")
    lines.append("|---:|" + "---:|" * len(eps))
    row = "accuracy" if summary["goal"] == "label" else "CAM intact"
    lines.append(f"| {row} | " + " | ".join(f"{summary['accuracy_at'][e]:.1f}" for e in eps) + " |")
    cams = summary.get("cams")
    if cams:
        lines.append("")
        lines.append(f"CAM of the clean prediction (min-max normalized, threshold {summary['cam_threshold']:g}):")
        lines.append("| measure | clean | adversarial | " + " | ".join(f"eps={e}" for e in eps) + " |")
        lines.append("|---|---:|---:|" + "---:|" * len(eps))
        at = summary["cams_at"]
        if "mask_dice_clean" in cams:
            for key, name in (("dice", "Dice vs mask"), ("iou", "IoU vs mask")):
                values = [cams[f"mask_{key}_clean"], cams[f"mask_{key}_adv"], *(at[e][f"mask_{key}"] for e in eps)]
                lines.append(f"| {name} ({int(cams['n_with_mask'])} lesion images) | "
                             + " | ".join(_f(v) for v in values) + " |")
        for key, name in (("cam_dice", "Dice(clean CAM, adv CAM)"), ("cam_iou", "IoU(clean CAM, adv CAM)"),
                          ("cam_spearman", "Spearman(clean CAM, adv CAM)"),
                          ("com_shift_px", "centre-of-mass shift (px)"), ("com_shift", "shift / image diagonal")):
            lines.append(f"| {name} | {_f(1.0 if key in ('cam_dice', 'cam_iou', 'cam_spearman') else 0.0)} | "
                         f"{_f(cams[key])} | " + " | ".join(_f(at[e][key]) for e in eps) + " |")
    for message in summary.get("notices", []):
        lines.append(f"Note: {message}")
    return "\n".join(lines)


def load_wsl_data(dataset: str | None, *, split: str = "test", data_root: str | None = None,
                  n_samples: int | None = None, demo_kwargs: dict[str, Any] | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, list[str] | None, str]:
    """Images (N, C, H, W) in [0, 1], labels, masks (N, H, W) or None (when the dataset has none), class
    names and a description. ``dataset=None`` is the demo's built-in synthetic split
    (:func:`advwsl.demo.demo_data`); other names go through :func:`advwsl.data.get_dataset`."""
    from ..errors import DatasetError

    if n_samples is not None and n_samples < 1:
        raise InputError(f"--n-samples must be positive, got {n_samples}")
    if dataset is None:
        from ..demo import demo_data

        images, labels, masks, classes = demo_data(split, **(demo_kwargs or {}))
        n = len(labels) if n_samples is None else min(n_samples, len(labels))
        return images[:n], labels[:n], masks[:n], classes, f"built-in synthetic histology, {split} split"
    from ..data import get_dataset
    from ..data.transforms import eval_transform

    data = get_dataset(dataset, root=data_root, split=split, transform=eval_transform(dataset))
    count = len(data) if n_samples is None else min(n_samples, len(data))
    if count == 0:
        raise DatasetError(f"dataset {dataset!r} split {split!r} is empty; check --data-root and --split")
    items = [data[i] for i in range(count)]
    if not isinstance(items[0], dict):
        items = [{"image": it[0], "label": it[1]} for it in items]
    shapes = {tuple(it["image"].shape) for it in items}
    if len(shapes) > 1:
        raise DatasetError(f"dataset {dataset!r} has images of several sizes {sorted(shapes)[:3]}...; the attack "
                           "batches whole images, so use a split of equal-sized images (e.g. prepared patches)")
    images = torch.stack([it["image"] for it in items])
    labels = torch.tensor([int(it["label"]) for it in items])
    masks = None
    if all(it.get("mask") is not None for it in items):
        masks = torch.stack([torch.as_tensor(it["mask"]).float().reshape(images.shape[-2:]) for it in items])
    classes = getattr(data, "classes", None)
    return images, labels, masks, list(classes) if classes is not None else None, f"{dataset}, {split} split"


def wsl_attack_job(*, model: str = "wildcat", checkpoint: str | None = None, dataset: str | None = None,
                   data_root: str | None = None, split: str = "test", n_samples: int | None = None,
                   goal: str = "label", attack: str = "ddn", budget: int | None = None, batch_size: int = 64,
                   device: str | None = None,
                   out: str | None = None, seed: int = 0, levels: int | None = 256, dice_threshold: float = 0.5,
                   cam_threshold: float = 0.5, progress: bool = True, attack_kwargs: dict[str, Any] | None = None,
                   log: Callable[[str], None] | None = None) -> tuple[Path, dict[str, Any]]:
    """``advwsl attack`` on a weakly supervised model: resolve the model (a WSL zoo name without
    ``checkpoint`` is the built-in demo, trained on first use and cached; see :mod:`advwsl.demo`), the data
    (``dataset=None``: the demo's synthetic test split), create the run directory and run
    :func:`run_wsl_attack`. Returns the run directory and the summary."""
    from ..demo import DEMO_NOTICE, demo_model
    from ..models.zoo import list_models
    from ..runs import create_run_dir
    from ..utils import seed_everything, select_device
    from .attack import resolve_model

    say = log or (lambda message: None)
    if goal not in ("label", "cam"):
        raise InputError(f"--goal must be 'label' or 'cam', got {goal!r}")
    seed_everything(seed)
    dev = select_device(device)
    is_demo = checkpoint is None and model in list_models("wsl")
    if is_demo:
        net = demo_model(model, progress=progress, log=say)
        source = {"name": model, "demo": True, "checkpoint": net.demo_info["checkpoint"],
                  "notice": DEMO_NOTICE.format(name=model), "metrics": net.demo_info.get("metrics")}
        say(source["notice"])
    else:
        net = resolve_model(model, checkpoint=checkpoint)
        source = {"name": model, "demo": False, "checkpoint": checkpoint or model}
    if goal == "cam" and not callable(getattr(net, "cams", None)):
        raise ModelError(f"--goal cam attacks the class activation maps, but {checkpoint or model} is a "
                         f"{type(net).__name__}, a classifier without class activation maps (no cams(x) method); "
                         "use --goal label, or a weakly supervised model (cam, max, lse, wildcat, deepmil, ...)")
    images, labels, masks, classes, description = load_wsl_data(
        dataset, split=split, data_root=data_root, n_samples=n_samples)
    if classes is None and is_demo:
        classes = net.demo_info.get("classes")
    config = {"model": source, "dataset": dataset or "synthetic (demo)", "data": description, "split": split,
              "n_samples": int(len(labels)), "goal": goal, "attack": attack, "budget": budget,
              "batch_size": batch_size,
              "device": str(dev), "seed": seed, "levels": levels, "dice_threshold": dice_threshold,
              "cam_threshold": cam_threshold, "attack_kwargs": attack_kwargs or {}}
    run_dir = create_run_dir("attack", out, config=config)
    summary = run_wsl_attack(net.to(dev).eval(), images.to(dev), labels.to(dev), run_dir,
                             masks=masks.to(dev) if masks is not None else None, classes=classes, goal=goal,
                             attack=attack, budget=budget, batch_size=batch_size, dice_threshold=dice_threshold,
                             cam_threshold=cam_threshold, levels=levels, seed=seed, progress=progress,
                             attack_kwargs=attack_kwargs, log=say)
    summary.update(model=source, data=description)
    write_json(run_dir / "summary.json", summary, overwrite=True)
    (run_dir / "summary.md").write_text(format_report(summary) + "\n")
    return run_dir, summary


def is_wsl_request(model: str, checkpoint: str | None = None) -> bool:
    """Whether ``--model model [--checkpoint checkpoint]`` names a weakly supervised model (one with CAMs):
    a WSL zoo name (the demo, or the architecture of ``checkpoint``), or a checkpoint whose sidecar says
    ``task: wsl``. Unreadable checkpoints answer False (loading them reports the error)."""
    from ..errors import CheckpointError
    from ..models.zoo import checkpoint_info, list_models

    path = checkpoint if checkpoint is not None else (None if model in list_models("wsl") else model)
    if path is None:
        return True
    try:
        return checkpoint_info(path).get("task") == "wsl"
    except (CheckpointError, OSError, InputError):
        return False
