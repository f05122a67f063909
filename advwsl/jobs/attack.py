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

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..attacks import (REFERENCE_ATTACKS, AttackResult, AttackSpec, combine_results, get_attack_spec,
                       parse_budgets, results_table, run_attack)
from ..errors import AdvwslError, ConfigError
from ..evaluation.cams import cam_robustness, predict_maps
from ..io import atomic_write_text, write_json
from ..models.cams import CAM_RULES
from ..plotting import plot_cam_curves, plot_cam_grid, plot_robustness_curves
from ..runs import INCOMPLETE, check_out, run_directory
from ..utils import select_device
from .data import EvalData, ModelDataConfig
from .report import format_attack_report

__all__ = ["AttackConfig", "TABLE_EPSILONS", "expand_attacks", "check_attack_kwargs", "attack_job"]

#: The budgets ε of the accuracy columns of the report (L2, images in [0, 1]).
TABLE_EPSILONS = (0.1, 0.25, 0.5, 1.0)

Log = Callable[[str], None]


def expand_attacks(names: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``"all"`` -> the reference's three attacks; a comma-separated list -> a tuple of registered names."""
    if isinstance(names, str):
        names = tuple(n.strip() for n in names.split(",") if n.strip())
    out: list[str] = []
    for name in names:
        for n in (REFERENCE_ATTACKS if name == "all" else (name,)):
            get_attack_spec(n)
            if n not in out:
                out.append(n)
    if not out:
        raise ConfigError("no attack given; use --attack ddn, cw, deepfool, all, or a comma-separated list")
    return tuple(out)


_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null",
          list: "a list", tuple: "a list", dict: "a JSON object"}


def _fits(value: Any, hint: Any) -> bool:
    """Whether the JSON value ``value`` can stand for a parameter annotated ``hint`` (an int for a float, a
    list for a tuple; a bool is not a number)."""
    origin = typing.get_origin(hint)
    if hint is Any or isinstance(hint, typing.TypeVar):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    base = origin or hint
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if not isinstance(value, (list, tuple)):
            return False
        if base is tuple and args and Ellipsis not in typing.get_args(hint) and len(value) != len(args):
            return False
        return all(_fits(v, args[min(i, len(args) - 1)]) for i, v in enumerate(value)) if args else True
    return isinstance(value, base) if isinstance(base, type) else True


def _kind(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_kind(h) for h in typing.get_args(hint))
    base = typing.get_origin(hint) or hint
    if base is tuple and typing.get_args(hint) and Ellipsis not in typing.get_args(hint):
        return f"a list of {len(typing.get_args(hint))} numbers"
    return _KINDS.get(base, getattr(base, "__name__", str(base)))


class _StopAttack(Exception):
    """Raised by :class:`_StopModel` at an attack's first forward pass."""


class _StopModel(nn.Module):
    """A model that stops an attack at its first forward pass (or CAM pass): all that runs before it is the
    attack's own checks of its hyper-parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise _StopAttack

    def cams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise _StopAttack


def check_attack_kwargs(spec: AttackSpec, kwargs: dict[str, Any], *, option: str = "--attack-kwargs") -> None:
    """Reject, before any work, keys the attack does not take, values whose type does not fit the parameter
    (its annotation, else its default) and values the attack's own checks refuse (the attack is started on
    a model that stops it at its first forward pass, so those checks run and nothing else)."""
    params = inspect.signature(spec.fn).parameters
    allowed = {n: p for n, p in params.items() if n not in ("model", "inputs", "labels", "targeted")}
    try:
        hints = typing.get_type_hints(spec.fn)
    except Exception:  # noqa: BLE001 - annotations that do not resolve: fall back to the defaults' types
        hints = {}
    for key, value in kwargs.items():
        if key not in allowed:
            raise ConfigError(f"{spec.name} has no hyper-parameter {key!r}; it takes: {', '.join(sorted(allowed))}")
        default = allowed[key].default
        hint = hints.get(key)
        if hint is None:
            if default is inspect.Parameter.empty or default is None or value is None:
                continue
            hint = float if isinstance(default, float) else type(default)
        if not _fits(value, hint):
            like = "" if default in (inspect.Parameter.empty, None) else f" like its default {default!r}"
            raise ConfigError(f"{spec.name} hyper-parameter {key!r} must be {_kind(hint)}{like}, got {value!r}")
    bounds = kwargs.get("bounds", (0.0, 1.0))
    try:
        middle = (float(bounds[0]) + float(bounds[1])) / 2
    except (TypeError, ValueError, IndexError):
        middle = 0.5
    inputs = torch.full((1, 3, 8, 8), middle)
    try:
        spec.fn(_StopModel(), inputs, torch.zeros(1, dtype=torch.long), targeted=False, **kwargs)
    except _StopAttack:
        pass
    except (AdvwslError, TypeError, ValueError) as exc:
        if isinstance(exc.__cause__, _StopAttack):  # an attack's own wrapping of the model's failure
            return
        raise ConfigError(f"{option} for {spec.name}: {exc}") from None


@dataclass
class AttackConfig(ModelDataConfig):
    """Everything ``advwsl attack`` needs; the click options map one to one onto these fields.

    ``budget`` holds the ``--budget`` items (``N`` for every attack, or ``ATTACK=N``); an attack without one
    runs at its reference budget. ``epsilon`` are the radii of the report's accuracy columns.
    ``cam_rule`` binarizes CAMs in the report (:data:`advwsl.models.cams.CAM_RULES`). The report uses
    ``"minmax"`` (min-max normalized, threshold 0.5) by default, not the reference's evaluation rule
    (``"zero"``: M_c > 0, or ``"argmax"`` of [0, M] with size supervision, which ``advwsl train`` /
    ``evaluate`` and ``advwsl reproduce`` use): the report compares a CAM before and after an attack, and a
    rule that ignores the map's offset measures where the map moved, not how its level shifted (an attack
    that lowers every score empties an M_c > 0 region without moving it); it also localizes with every head
    whatever the offset of its maps (Deep MIL's hw A - 1, max pooling), and it is the map CAM-DDN attacks.
    ``--cam-rule zero`` gives the Dice vs the mask on the reference's footing."""

    attacks: tuple[str, ...] = ("ddn",)
    budget: tuple[str, ...] = ()
    targeted: bool = False
    epsilon: tuple[float, ...] = TABLE_EPSILONS
    batch_size: int = 128
    device: str | None = None
    out: str | None = None
    seed: int = 0
    levels: int | None = 256
    attack_kwargs: dict[str, Any] = field(default_factory=dict)
    dice_threshold: float = 0.5
    cam_rule: str = "minmax"
    precision: str = "fp32"
    channels_last: bool = False
    progress: bool = True
    retrain: bool = False

    def validate(self) -> dict[str, dict[str, Any]]:
        """Check every option (no side effect) and return each attack's hyper-parameters."""
        self.attacks = expand_attacks(self.attacks)
        budgets = parse_budgets(list(self.budget), self.attacks)
        if self.targeted:
            untargetable = [n for n in self.attacks if not get_attack_spec(n).targeted]
            if untargetable and len(untargetable) == len(self.attacks):
                raise ConfigError(f"{', '.join(untargetable)} has no targeted form; drop --targeted or choose ddn "
                                  "or cw")
            self.attacks = tuple(n for n in self.attacks if n not in untargetable)
        if self.attack_kwargs and len(self.attacks) > 1:
            raise ConfigError("--attack-kwargs applies to a single attack; run the attacks one by one")
        self.check_counts()
        if self.levels is not None and (not isinstance(self.levels, int) or self.levels < 2):
            raise ConfigError(f"--levels must be >= 2 (256 for 8-bit images), or 0 for no quantization; got "
                              f"{self.levels!r}")
        self.epsilon = tuple(float(e) for e in self.epsilon)
        if not self.epsilon or any(not np.isfinite(e) or e <= 0 for e in self.epsilon):
            raise ConfigError(f"--epsilon must be positive L2 radii, got {self.epsilon}")
        if not 0 < self.dice_threshold <= 1:
            raise ConfigError(f"--dice-threshold must lie in (0, 1], got {self.dice_threshold!r}")
        if self.cam_rule not in CAM_RULES:
            raise ConfigError(f"--cam-rule must be one of {', '.join(CAM_RULES)}, got {self.cam_rule!r}")
        kwargs: dict[str, dict[str, Any]] = {}
        for name in self.attacks:
            spec = get_attack_spec(name)
            kwargs[name] = {**spec.kwargs(budgets[name]), **self.attack_kwargs}
            if spec.goal == "cam":
                if self.cam_rule != "minmax":
                    raise ConfigError(f"{name} moves the min-max normalized CAM; use --cam-rule minmax with it")
                kwargs[name].setdefault("dice_threshold", self.dice_threshold)
            if not spec.minimal_norm and "epsilon" not in kwargs[name]:
                raise ConfigError(f"{name} attacks within a fixed radius: give it with --attack-kwargs "
                                  "'{\"epsilon\": 1.0}'")
            check_attack_kwargs(spec, kwargs[name])
        select_device(self.device)
        check_out(self.out)
        return kwargs


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


def _grid_rows(per: pd.DataFrame, n: int) -> list[int]:
    """Images shown in the CAM grid: successfully attacked images with a lesion first, then one without."""
    has_mask = per["has_mask"] if "has_mask" in per else pd.Series(False, index=per.index)
    ok = per["success"]
    order = [i for i in per.index if ok[i] and has_mask[i]][: max(n - 1, 1)]
    order += [i for i in per.index if ok[i] and not has_mask[i]][:1]
    order += [i for i in per.index if i not in order]
    return order[:n]


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
    at = curve.set_index("epsilon")
    summary_at = {f"{e:g}": {k: float(v) for k, v in at.loc[float(e)].items()} for e in config.epsilon}
    if first:
        accuracy = result.robustness_curve(np.linspace(0.0, top, 101))
        plot_cam_curves(curve, run_dir / "cam_curves.png", accuracy=accuracy,
                        title=f"{result.attack} {result.budget}: what the perturbation does to the CAM")
        rows = _grid_rows(per, 4)
        idx = torch.tensor(rows)
        cls = torch.as_tensor(per["cam_class"].to_numpy()[rows])
        _, clean_maps = predict_maps(model, images[idx], cls)
        _, adv_maps = predict_maps(model, adversarials[idx], cls)
        name = (lambda c: data.classes[c] if data.classes is not None else str(c))
        titles = [f"#{i}  {name(int(per.loc[i, 'clean_pred']))} -> {name(int(per.loc[i, 'adv_pred']))}\n"
                  f"L2 {per.loc[i, 'l2']:.3f}\nDice with clean CAM {per.loc[i, 'cam_dice']:.3f}" for i in rows]
        plot_cam_grid(images[idx], adversarials[idx], clean_maps, adv_maps, run_dir / "cam_grid.png",
                      masks=masks[idx] if masks is not None else None, row_titles=titles,
                      title=f"{result.attack} {result.budget}; CAM of the clean prediction")
    per.insert(0, "attack", f"{result.attack} {result.budget}")
    curve.insert(0, "attack", f"{result.attack} {result.budget}")
    return per, curve, {"summary": summary, "at": summary_at}


def attack_job(config: AttackConfig, *, log: Log | None = None) -> tuple[Path, dict[str, Any]]:
    """Run the attacks of ``config`` and write the run directory (see the module docstring). Returns the run
    directory and the summary (also in ``summary.json``; :func:`format_attack_report` prints it)."""
    say = log or (lambda message: None)
    kwargs = config.validate()
    device, resolved = config.start(say)
    specs = [get_attack_spec(n) for n in config.attacks]
    if any(s.goal == "cam" for s in specs) and not resolved.has_cams:
        raise ConfigError(f"{resolved.name} has no class activation maps, so the CAM attack does not apply; use a "
                          "label attack (ddn, cw, deepfool) or a weakly supervised model")
    data = config.load_data(resolved)
    model = resolved.model.to(device).eval()
    cam_report = resolved.has_cams and not config.targeted
    notices = []
    if resolved.has_cams and config.targeted:
        notices.append("targeted attacks: CAM measures skipped (they compare the CAM of the clean prediction)")
    if cam_report and data.masks is None:
        notices.append(f"{data.dataset} has no ground-truth masks: CAM localization (Dice/IoU vs mask) skipped")
    elif cam_report and not bool((data.masks.flatten(1) > 0.5).any(1).any()):
        notices.append("no image has a non-empty mask: CAM localization (Dice/IoU vs mask) skipped")
        data.masks = None
    for message in notices:
        say(message)
    settings = {**asdict(config), "attacks": list(config.attacks), "attack_kwargs_resolved": kwargs,
                "device": str(device), "model_resolved": resolved.describe(), "data": data.describe()}
    with run_directory("attack", config.out, config=settings) as run_dir:
        results: list[AttackResult] = []
        entries: list[dict[str, Any]] = []
        cam_rows, cam_curves = [], []
        for spec in specs:
            result = run_attack(model, data.images, data.labels, attack=spec, attack_kwargs=kwargs[spec.name],
                                targeted=config.targeted, batch_size=config.batch_size, levels=config.levels,
                                progress=config.progress, seed=config.seed, keep_adversarials=cam_report,
                                precision=config.precision, channels_last=config.channels_last)
            result.save(run_dir, spec.name)
            results.append(result)
            entry = {"name": spec.name, "goal": spec.goal, "table": result.summary(),
                     "accuracy_at": {f"{e:g}": float(result.accuracy(e)) for e in config.epsilon}}
            if cam_report:
                per, curve, cams = _cam_report(model, data, result, run_dir, config, device, first=not cam_rows)
                cam_rows.append(per)
                cam_curves.append(curve)
                entry["cams"] = cams
            entries.append(entry)
        label = [r for r, s in zip(results, specs) if s.goal == "label" and s.minimal_norm]
        combined = None
        if len(label) > 1 and not config.targeted:
            combined = combine_results(label)
            combined.save(run_dir, "all")
        shown = results + ([combined] if combined is not None else [])
        atomic_write_text(run_dir / "table.md", results_table(shown) + "\n")
        curves = _curves(shown, config.epsilon)
        atomic_write_text(run_dir / "robustness_curves.csv", curves.to_csv(index=False))
        goal_cam = all(s.goal == "cam" for s in specs)
        plot_robustness_curves(curves, run_dir / "robustness_curves.png", epsilon=config.epsilon,
                               ylabel="CAM intact and label kept (%)" if goal_cam else "accuracy (%)",
                               title=f"{resolved.name} on {data.description}")
        if cam_rows:
            atomic_write_text(run_dir / "cams.csv", pd.concat(cam_rows, ignore_index=True).to_csv(index=False))
            atomic_write_text(run_dir / "cam_curves.csv", pd.concat(cam_curves, ignore_index=True).to_csv(index=False))
        summary: dict[str, Any] = {
            "model": resolved.describe(), "data": data.describe(), "targeted": config.targeted,
            "clean_accuracy": results[0].clean_accuracy, "n_samples": len(data), "epsilon": list(config.epsilon),
            "attacks": entries, "all": None if combined is None else {
                "table": combined.summary(),
                "accuracy_at": {f"{e:g}": float(combined.accuracy(e)) for e in config.epsilon}},
            "dice_threshold": config.dice_threshold, "cam_rule": config.cam_rule, "notices": notices,
            "precision": {"precision": config.precision, "channels_last": config.channels_last,
                          "repaired": sum(int(r.params.get("repaired", 0)) for r in results)},
            "files": sorted(p.name for p in run_dir.iterdir() if p.name != INCOMPLETE) + ["summary.json", "summary.md"]}
        write_json(run_dir / "summary.json", summary)
        atomic_write_text(run_dir / "summary.md", format_attack_report(summary) + "\n")
    return run_dir, summary
