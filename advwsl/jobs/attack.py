"""The job behind ``advwsl attack``, for every model: resolve the model and the data, run one or several
registered attacks with :func:`advwsl.attacks.run_attack` (verified records), and write one run directory.

For every model the directory holds ``config.json`` / ``versions.json``; per attack ``<attack>.csv``
(per-sample records), ``<attack>.json`` (summary) and ``<attack>.md`` (its Table A V-1 row); with several
untargeted minimal-norm attacks the "All" row (``all.*``: per sample the smallest adversarial); ``table.md``
(every row, Table A V-1 layout), ``robustness_curves.csv`` / ``.png`` (accuracy against ε from the minimal
norms, Figure A V-4; shares in [0, 1]); ``summary.json`` and ``summary.md`` (the report printed). When the
model has class activation maps (weakly supervised models) and the attacks are untargeted, also what each
attack did to the CAMs: ``cams.csv`` (per sample and attack), ``cam_curves.csv`` and, for the first attack,
``cam_curves.png`` and ``cam_grid.png``. Every file is written once.

Every option is checked before a model is trained or loaded and before the run directory is created.
"""

from __future__ import annotations

import math

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..attacks import AttackResult, AttackSpec, combine_results, expand_attacks, get_attack_spec, parse_budgets
from ..attacks import results_table, run_attack
from ..config import TABLE_EPSILONS, AttackConfig, check_levels
from ..data import get_dataset_spec
from ..errors import ConfigError, ModelError
from ..evaluation.cams import cam_robustness, predict_maps
from ..evaluation.sanity import check_above_chance
from ..io import atomic_write_text, write_json
from ..models import with_grad_cam
from ..report_html import write_html_report
from ..plotting import grid_examples, plot_cam_curves, plot_cam_grid, plot_perturbations, plot_robustness_curves
from ..runs import INCOMPLETE, check_out, run_directory
from ..utils import select_device
from .data import EvalData, job_data, start
from .report import format_attack_report

__all__ = ["AttackConfig", "AttackPlan", "TABLE_EPSILONS", "plan_attacks", "attack_job"]

Log = Callable[[str], None]
#: ``--target`` values that are not one class: every other class (one record per pair), or the least likely.
TARGET_MODES = {"all": "all", "least-likely": "least_likely"}


@dataclass(frozen=True)
class AttackPlan:
    """What :func:`attack_job` will run, resolved from an :class:`AttackConfig` before any work: each attack's
    spec and hyper-parameters (in order), the quantization lattice and the run directory to create."""

    specs: tuple[AttackSpec, ...]
    kwargs: dict[str, dict[str, Any]]
    levels: int | None
    out: Path | None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs)


def _attack_kwargs(spec: AttackSpec, budget: str | None, config: AttackConfig) -> dict[str, Any]:
    kwargs = {**spec.kwargs(budget), **config.attack_kwargs}
    if spec.goal == "cam":
        if config.cam_rule != "minmax":
            raise ConfigError(f"{spec.name} moves the min-max normalized CAM; use --cam-rule minmax with it")
        kwargs.setdefault("dice_threshold", config.dice_threshold)
    if not spec.minimal_norm and "epsilon" not in kwargs:  # run at every report radius: checked at one
        return {k: v for k, v in spec.check({**kwargs, "epsilon": 1.0}).items() if k != "epsilon"}
    return spec.check(kwargs)


def plan_attacks(config: AttackConfig) -> AttackPlan:
    """Check every option of ``config`` against the registries (no side effect) and resolve the attacks
    with their hyper-parameters; the model, the data and the run directory are left for the job."""
    names = expand_attacks(config.attacks)
    budgets = parse_budgets(list(config.budget), names)
    if config.targeted:
        untargetable = [n for n in names if not get_attack_spec(n).targeted]
        if untargetable and len(untargetable) == len(names):
            raise ConfigError(f"{', '.join(untargetable)} has no targeted form; drop --target or choose ddn or cw")
        names = tuple(n for n in names if n not in untargetable)
    if config.attack_kwargs and len(names) > 1:
        raise ConfigError("--attack-kwargs applies to a single attack; run the attacks one by one")
    specs = tuple(get_attack_spec(n) for n in names)
    kwargs = {s.name: _attack_kwargs(s, budgets[s.name], config) for s in specs}
    select_device(config.device)
    return AttackPlan(specs, kwargs, check_levels(config.levels), check_out(config.out, command="attack"))


def save_adversarials(result: AttackResult, data: EvalData, stem: Path, *, shown: int = 8) -> None:
    """``<stem>.npz`` (per record: ``index`` in the data, ``label``, ``adv_pred``, ``success``, the adversarial
    images and the perturbations, float32 in [0, 1] / [-1, 1]) and ``<stem>.png`` (the first ``shown``
    successes: clean, perturbation scaled to its largest magnitude, adversarial)."""
    order = np.argsort(result.index)
    adv = result.adversarials[order].float()
    clean = data.images[torch.as_tensor(result.index[order])].float()
    np.savez_compressed(stem.with_suffix(".npz"), index=result.index[order], label=result.label[order],
                        adv_pred=result.adv_pred[order], success=result.success[order],
                        adversarial=adv.numpy(), perturbation=(adv - clean).numpy())
    pick = np.flatnonzero(result.success[order])[:shown]
    if len(pick):
        plot_perturbations(clean[pick], adv[pick], result.label[order][pick], result.adv_pred[order][pick],
                           stem.with_suffix(".png"), classes=data.classes,
                           title=f"{result.attack} {result.budget}: clean, perturbation, adversarial")


def _curves(results: list[AttackResult], epsilons: tuple[float, ...]) -> pd.DataFrame:
    """Accuracy against ε for every result on one grid reaching past the largest norm and the table's ε."""
    finite = [r.norms[np.isfinite(r.norms)] for r in results]
    top = max([float(f.max()) for f in finite if f.size] + list(epsilons) + [1e-3]) * 1.05
    grid = np.linspace(0.0, top, 101)
    frames = []
    for r in results:
        curve = r.robustness_curve(grid)
        curve.insert(0, "attack", "All" if r.attack == "All" else f"{r.attack} {r.budget}")
        frames.append(curve)
    return pd.concat(frames, ignore_index=True)


def _cam_report(model: torch.nn.Module, data: EvalData, result: AttackResult, run_dir: Path, config: AttackConfig,
                device: torch.device, first: bool) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """What ``result``'s adversarials did to the CAMs (per sample and over ε); figures for the first attack."""
    images = data.images.to(device)
    masks = data.masks.to(device) if data.masks is not None else None
    adversarials = result.adversarials.to(device)
    finite = result.norms[np.isfinite(result.norms)]
    top = max(float(finite.max()) if finite.size else 0.0, max(config.epsilon)) * 1.05
    grid = np.union1d(np.linspace(0.0, top, 11), np.asarray(config.epsilon, float))
    per, curve, summary = cam_robustness(model, images, adversarials, masks, epsilons=grid, rule=config.cam_rule,
                                         batch_size=config.batch_size)
    per.insert(1, "success", result.success[np.argsort(result.index)])
    cls = torch.as_tensor(per["cam_class"].to_numpy().copy())
    _, clean_maps = predict_maps(model, images, cls, batch_size=config.batch_size)
    _, adv_maps = predict_maps(model, adversarials, cls, batch_size=config.batch_size)
    np.savez_compressed(run_dir / f"cams-{result.params.get('attack', result.attack)}.npz", cam_class=cls.numpy(),
                        clean=clean_maps.cpu().numpy().astype(np.float32),
                        adversarial=adv_maps.cpu().numpy().astype(np.float32))
    at = curve.set_index("epsilon")
    summary_at = {f"{e:g}": {k: float(v) for k, v in at.loc[float(e)].items()} for e in config.epsilon}
    if first:
        accuracy = result.robustness_curve(np.linspace(0.0, top, 101))
        plot_cam_curves(curve, run_dir / "cam_curves.png", accuracy=accuracy,
                        title=f"{result.attack} {result.budget}: what the perturbation does to the CAM")
        change = np.where(per["success"].to_numpy(), 1.0 - per["cam_dice"].to_numpy(), np.nan)
        rows = grid_examples(change, config.cam_grid_rows) if np.isfinite(change).any() else list(
            range(min(config.cam_grid_rows, len(per))))
        idx = torch.tensor(rows)
        name = (lambda c: data.classes[c] if data.classes is not None else str(c))
        titles = [f"#{i}  {name(int(per.loc[i, 'clean_pred']))} -> {name(int(per.loc[i, 'adv_pred']))}\n"
                  f"L2 {per.loc[i, 'l2']:.3f}\nDice with clean CAM {per.loc[i, 'cam_dice']:.3f}" for i in rows]
        plot_cam_grid(images[idx], adversarials[idx], clean_maps[idx], adv_maps[idx], run_dir / "cam_grid.png",
                      masks=masks[idx] if masks is not None else None, row_titles=titles,
                      title=f"{result.attack} {result.budget}; CAM of the clean prediction: the largest and the "
                            "median changes")
    per.insert(0, "attack", f"{result.attack} {result.budget}")
    curve.insert(0, "attack", f"{result.attack} {result.budget}")
    return per, curve, {"summary": summary, "at": summary_at}


def class_index(value: str, classes: list[str] | None, num_classes: int | None, option: str) -> int:
    """A class given as an index or a name (``--target``, ``--positive-class``, ``--cam-class``) as its index."""
    names = list(classes or [])
    if value in names:
        return names.index(value)
    if str(value).isdigit() and (num_classes is None or int(value) < num_classes):
        return int(value)
    known = f"the classes are {', '.join(f'{i} {n}' for i, n in enumerate(names))}" if names else \
        f"give an index 0..{num_classes - 1}" if num_classes else "give a class index"
    raise ConfigError(f"{option} {value} is not a class of this model/data; {known}")


def _targets(config: AttackConfig, data: EvalData, num_classes: int | None, say: Log
             ) -> tuple[str | torch.Tensor, EvalData]:
    """What run_attack's ``target`` is for ``--target``, and the data (one class: only the images of other
    classes are attacked towards it)."""
    if config.target is None or config.target in TARGET_MODES:
        return TARGET_MODES.get(config.target, "all"), data
    target = class_index(config.target, data.classes, num_classes, "--target")
    keep = data.labels != target
    if not bool(keep.all()):
        say(f"--target {config.target}: the {int((~keep).sum())} images of that class are not attacked")
        data = data.subset(keep)
    return torch.full_like(data.labels, target), data


def _notices(model: torch.nn.Module, data: EvalData, targeted: bool) -> tuple[bool, list[str]]:
    """Whether the CAM report applies (a model with CAMs, untargeted), and what the run skips and why."""
    has_cams = callable(getattr(model, "cams", None))
    cam_report = has_cams and not targeted
    notices = []
    if has_cams and targeted:
        notices.append("targeted attacks: CAM measures skipped (they compare the CAM of the clean prediction)")
    if cam_report and data.masks is None:
        notices.append(f"{data.dataset} has no ground-truth masks: CAM localization (Dice/IoU vs mask) skipped")
    elif cam_report and not bool((data.masks.flatten(1) > 0.5).any(1).any()):
        notices.append("no image has a non-empty mask: CAM localization (Dice/IoU vs mask) skipped")
        data.masks = None
    return cam_report, notices


def _run_one(spec: AttackSpec, model: torch.nn.Module, data: EvalData, target: str | torch.Tensor,
             config: AttackConfig, plan: AttackPlan, keep: bool) -> AttackResult:
    return run_attack(model, data.images, data.labels, attack=spec, attack_kwargs=plan.kwargs[spec.name],
                      targeted=config.targeted, target=target, batch_size=config.batch_size, levels=plan.levels,
                      progress=config.progress, seed=config.seed, keep_adversarials=keep,
                      precision=config.precision, channels_last=config.channels_last)


def _write_tables(results: list[AttackResult], specs: tuple[AttackSpec, ...], config: AttackConfig, run_dir: Path,
                  title: str) -> AttackResult | None:
    """``all.*`` (per sample the best of several untargeted minimal-norm label attacks), ``table.md`` and the
    robustness curves; returns the combined result (None with fewer than two such attacks)."""
    label = [r for r, s in zip(results, specs) if s.goal == "label" and s.minimal_norm]
    combined = None
    if len(label) > 1 and not config.targeted:
        combined = combine_results(label)
        combined.save(run_dir, "all", row=False)
    shown = results + ([combined] if combined is not None else [])
    atomic_write_text(run_dir / "table.md", results_table(shown) + "\n")
    curves = _curves(shown, config.epsilon)
    atomic_write_text(run_dir / "robustness_curves.csv", curves.to_csv(index=False))
    goal_cam = all(s.goal == "cam" for s in specs)
    norms = {"All" if r.attack == "All" else f"{r.attack} {r.budget}": r.norms for r in shown}
    plot_robustness_curves(curves, run_dir / "robustness_curves.png", epsilon=config.epsilon, norms=norms,
                           ylabel="CAM intact and label kept (%)" if goal_cam else "accuracy (%)", title=title)
    return combined


def _summary(config: AttackConfig, resolved: Any, data: EvalData, results: list[AttackResult],
             entries: list[dict[str, Any]], combined: AttackResult | None, notices: list[str], run_dir: Path
             ) -> dict[str, Any]:
    return {
        "model": resolved.describe(), "data": data.describe(), "targeted": config.targeted, "target": config.target,
        "clean_accuracy": results[0].clean_accuracy, "n_samples": len(data), "epsilon": list(config.epsilon),
        "attacks": entries, "all": None if combined is None else {
            "table": combined.summary(),
            "accuracy_at": {f"{e:g}": float(combined.accuracy(e)) for e in config.epsilon}},
        "dice_threshold": config.dice_threshold, "cam_rule": config.cam_rule, "notices": notices,
        "precision": {"precision": config.precision, "channels_last": config.channels_last,
                      "repaired": sum(int(r.params.get("repaired", 0)) for r in results)},
        "files": sorted([p.name for p in run_dir.iterdir() if p.name != INCOMPLETE]
                        + ["summary.json", "summary.md", "report.html"])}


def _run_minimal(specs: list[AttackSpec], model: torch.nn.Module, data: EvalData, target: Any, config: AttackConfig,
                 plan: AttackPlan, run_dir: Path, device: torch.device, cam_report: bool) -> tuple[list, list, list, list]:
    """Run each minimal-norm (or CAM) attack: its records, its summary entry and what it did to the CAMs."""
    results, entries, cam_rows, cam_curves = [], [], [], []
    for spec in specs:
        result = _run_one(spec, model, data, target, config, plan, keep=cam_report or config.save_adversarials)
        result.save(run_dir, spec.name, row=False)
        if config.save_adversarials:
            save_adversarials(result, data, run_dir / f"adversarials-{spec.name}")
        results.append(result)
        entry = {"name": spec.name, "goal": spec.goal, "table": result.summary(),
                 "accuracy_at": {f"{e:g}": float(result.accuracy(e)) for e in config.epsilon}}
        if cam_report:
            per, curve, entry["cams"] = _cam_report(model, data, result, run_dir, config, device, first=not cam_rows)
            cam_rows.append(per)
            cam_curves.append(curve)
        entries.append(entry)
    return results, entries, cam_rows, cam_curves


def _run_fixed(specs: list[AttackSpec], model: torch.nn.Module, data: EvalData, target: Any, config: AttackConfig,
               plan: AttackPlan, run_dir: Path) -> dict[tuple[str, float], AttackResult]:
    """Run each fixed-radius attack (APGD, PGD) at every report radius unless given one: records per radius."""
    out = {}
    for spec in specs:
        radii = (plan.kwargs[spec.name]["epsilon"],) if "epsilon" in plan.kwargs[spec.name] else config.epsilon
        for eps in radii:
            kwargs = {**plan.kwargs[spec.name], "epsilon": float(eps)}
            result = run_attack(model, data.images, data.labels, attack=spec, attack_kwargs=kwargs,
                                targeted=config.targeted, target=target, batch_size=config.batch_size,
                                levels=plan.levels, progress=config.progress, seed=config.seed,
                                precision=config.precision, channels_last=config.channels_last)
            result.save(run_dir, f"{spec.name}-eps{eps:g}", row=False)
            out[(spec.display, float(eps))] = result
    return out


def robust_accuracy(minimal: list[AttackResult], fixed: dict[tuple[str, float], AttackResult],
                    epsilons: tuple[float, ...]) -> pd.DataFrame:
    """Robust accuracy at each radius, in RobustBench's terms: per attack the share of images correctly
    classified and not made adversarial within epsilon (minimal-norm attacks: their norm above epsilon;
    fixed-radius attacks: their run at epsilon failed), and in the worst case over every attack."""
    rows = []
    for eps in epsilons:
        robust = None
        for r in minimal:
            ok = r.norms[np.argsort(r.index)] > eps
            label = "All" if r.attack == "All" else f"{r.attack} {r.budget}"
            rows.append({"attack": label, "epsilon": eps, "robust_accuracy": float(ok.mean())})
            robust = ok if robust is None else robust & ok
        for (name, e), r in fixed.items():
            if math.isclose(e, eps):
                ok = (r.originally_correct & ~r.success)[np.argsort(r.index)]
                rows.append({"attack": f"{name} {r.budget}", "epsilon": eps, "robust_accuracy": float(ok.mean())})
                robust = ok if robust is None else robust & ok
        if robust is not None:
            rows.append({"attack": "worst case", "epsilon": eps, "robust_accuracy": float(robust.mean())})
    return pd.DataFrame(rows)


def attack_job(config: AttackConfig, *, log: Log | None = None) -> tuple[Path, dict[str, Any]]:
    """Run the attacks of ``config`` and write the run directory (see the module docstring). Returns the run
    directory and the summary (also in ``summary.json``; :func:`format_attack_report` prints it)."""
    say = log or (lambda message: None)
    plan = plan_attacks(config)
    device, resolved = start(config, say)
    if any(s.goal == "cam" for s in plan.specs) and not resolved.has_cams:
        raise ConfigError(f"{resolved.name} has no class activation maps, so the CAM attack does not apply; use a "
                          "label attack (ddn, cw, deepfool) or a weakly supervised model")
    data = job_data(config, resolved)
    config = config.replace(epsilon=config.epsilon or get_dataset_spec(data.dataset).epsilons)
    target, data = _targets(config, data, resolved.num_classes, say)
    model = resolved.model.to(device).eval()
    gradcam = None
    if not resolved.has_cams and not config.targeted:
        try:
            model = with_grad_cam(model, data.images[:1].to(device), config.cam_layer)
            gradcam = (f"{resolved.name} has no class activation maps: the CAM report uses Grad-CAM (eq. 1.15-1.16) "
                       f"of its layer {model.layer_name!r} (--cam-layer to choose another)")
        except ModelError:
            if config.cam_layer is not None:
                raise
            gradcam = (f"{resolved.name} has neither class activation maps nor a layer with spatial feature maps: "
                       "CAM report skipped")
    cam_report, notices = _notices(model, data, config.targeted)
    notices = [gradcam, *notices] if gradcam else notices
    for message in notices:
        say(message)
    settings = {**config.to_dict(), "attacks_resolved": list(plan.names), "attack_kwargs_resolved": plan.kwargs,
                "device": str(device), "model_resolved": resolved.describe(), "data": data.describe()}
    with run_directory("attack", config.out, config=settings) as run_dir:
        minimal = [s for s in plan.specs if s.minimal_norm or s.goal == "cam"]
        results, entries, cam_rows, cam_curves = _run_minimal(minimal, model, data, target, config, plan, run_dir,
                                                              device, cam_report)
        fixed = _run_fixed([s for s in plan.specs if s not in minimal], model, data, target, config, plan, run_dir)
        combined = _write_tables(results, minimal, config, run_dir, f"{resolved.name} on {data.description}") \
            if results else None
        robust = robust_accuracy(results + ([combined] if combined else []), fixed, config.epsilon) if fixed else None
        if robust is not None:
            atomic_write_text(run_dir / "robust_accuracy.csv", robust.to_csv(index=False))
        first = results[0] if results else next(iter(fixed.values()))
        chance = check_above_chance(first.label, first.originally_correct)
        if not chance.passed:
            notices.append(f"WARNING: {chance.message}")
            say(f"WARNING: {chance.message}")
        if cam_rows:
            atomic_write_text(run_dir / "cams.csv", pd.concat(cam_rows, ignore_index=True).to_csv(index=False))
            atomic_write_text(run_dir / "cam_curves.csv", pd.concat(cam_curves, ignore_index=True).to_csv(index=False))
        summary = _summary(config, resolved, data, results or [first], entries, combined, notices, run_dir)
        summary["robust_accuracy"] = robust.to_dict(orient="records") if robust is not None else None
        write_json(run_dir / "summary.json", summary)
        atomic_write_text(run_dir / "summary.md", format_attack_report(summary) + "\n")
        write_html_report(run_dir, f"advwsl attack: {resolved.name} on {data.description}")
    return run_dir, summary
