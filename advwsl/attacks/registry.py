"""The attack registry: one :class:`AttackSpec` per attack, registered in the attack's own module.

A spec holds everything the rest of advwsl needs to know about an attack, so that no caller tests attack
names: the function, its name in tables, how a budget (``--budget N``) maps to its hyper-parameters, its
budgets in the reference (section A V-7) and for a quick look, whether it has a targeted form, whether it
finds minimal-norm adversarials (DDN, C&W, DeepFool) or attacks within a fixed radius (PGD), and what
success means: a changed label (``goal="label"``) or a moved class activation map with the label kept
(``goal="cam"``, then ``success`` re-evaluates it).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import check_value
from ..errors import AdvwslError, ConfigError
from ..registry import Registry

__all__ = ["Attack", "AttackSpec", "register_attack", "get_attack", "get_attack_spec", "list_attacks",
           "steps_budget", "parse_budgets", "expand_attacks", "BUDGET_PRESETS", "ATTACK_PRESETS", "REFERENCE_ATTACKS", "RUNNER_PARAMS"]

Attack = Callable[..., torch.Tensor]

#: The reference's three minimal-norm attacks (``--attack all``; the "All" row is their per-sample best).
REFERENCE_ATTACKS = ("ddn", "cw", "deepfool")

#: What the runner may pass to an attack besides its hyper-parameters: the quantization lattice, the box of
#: the images and the seed of its random draws. A spec declares which of them its attack takes.
RUNNER_PARAMS = ("levels", "bounds", "seed")
#: The positional part of the attack signature, never a hyper-parameter.
_SIGNATURE = ("model", "inputs", "labels", "targeted")


def steps_budget(text: str) -> dict[str, Any]:
    """The budget of an iterative attack: ``"100"`` -> ``steps=100``."""
    text = str(text).strip()
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"a budget is a positive number of steps (e.g. 100), got {text!r}")
    return {"steps": int(text)}


@dataclass(frozen=True)
class AttackSpec:
    """What advwsl knows about one attack (see the module docstring).

    ``budget(text)`` maps a budget as the command line writes it (``"100"``; C&W also ``"9x10000"``) to
    keyword hyper-parameters; ``reference_budget`` and ``quick_budget`` are such texts. ``success``
    (CAM-goal attacks only) is ``success(model, inputs, adversarials, labels, attack_kwargs) -> bool
    tensor``, re-evaluated by the runner on what the attack returned. ``runner_params`` declares which of
    :data:`RUNNER_PARAMS` the attack takes (the runner passes exactly those); ``check_hyper_parameters`` is the
    attack's own check of its hyper-parameters (called by :meth:`check` with the defaults filled in, before
    any work). ``contract_budget`` (default: the quick budget) is a budget at which the attack promises, on a
    linear model, adversarials within ``contract_factor`` of the closed-form minimal norm (minimal-norm
    attacks) — what the registry-wide contract test checks."""

    name: str
    fn: Attack
    display: str
    description: str
    reference_budget: str
    quick_budget: str
    budget: Callable[[str], dict[str, Any]] = steps_budget
    targeted: bool = True
    minimal_norm: bool = True
    goal: str = "label"
    success: Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]], torch.Tensor] | None \
        = field(default=None, compare=False)
    runner_params: tuple[str, ...] | None = None
    check_hyper_parameters: Callable[..., None] | None = field(default=None, compare=False)
    contract_budget: str | None = None
    contract_factor: float = 1.1

    def __post_init__(self) -> None:
        if self.goal not in ("label", "cam"):
            raise ConfigError(f"attack {self.name!r}: goal must be 'label' or 'cam', got {self.goal!r}")
        if self.goal == "cam" and self.success is None:
            raise ConfigError(f"attack {self.name!r}: a CAM-goal attack needs its success predicate")
        if not callable(self.fn):
            raise ConfigError(f"attack {self.name!r} must be callable, got {type(self.fn).__name__}")
        params = inspect.signature(self.fn).parameters
        if self.runner_params is None:  # a spec built around a user's function: what its signature takes
            object.__setattr__(self, "runner_params", tuple(p for p in RUNNER_PARAMS if p in params))
        wrong = [p for p in self.runner_params if p not in RUNNER_PARAMS or p not in params]
        if wrong:
            raise ConfigError(f"attack {self.name!r} declares runner parameters {wrong} that its function does not "
                              f"take (it takes {', '.join(params)}; runner parameters are {', '.join(RUNNER_PARAMS)})")

    def hyper_parameters(self) -> dict[str, inspect.Parameter]:
        """The keyword hyper-parameters of the attack function (the signature's part after ``targeted``)."""
        return {n: p for n, p in inspect.signature(self.fn).parameters.items()
                if n not in _SIGNATURE and p.kind is not inspect.Parameter.VAR_KEYWORD}

    def runner_kwargs(self, *, levels: int | None, bounds: tuple[float, float], seed: int | None) -> dict[str, Any]:
        """The runner's values of the :data:`RUNNER_PARAMS` this attack declares (``seed`` only when given)."""
        given = {"levels": levels, "bounds": tuple(bounds), "seed": seed}
        return {p: given[p] for p in self.runner_params if not (p == "seed" and seed is None)}

    def check(self, kwargs: dict[str, Any], *, option: str = "--attack-kwargs") -> dict[str, Any]:
        """``kwargs`` checked before any work and returned in canonical form: a key the attack does not take
        is refused with the list of those it takes, a value with the type its annotation gives (finite
        numbers only), and the whole set of hyper-parameters by the attack's own checks
        (``check_hyper_parameters``, called with the defaults filled in). Nothing is run."""
        params = self.hyper_parameters()
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise ConfigError(f"{option}: {self.name} has no hyper-parameter {', '.join(map(repr, unknown))}; it takes: "
                              f"{', '.join(params)}")
        try:
            hints = typing.get_type_hints(self.fn)
        except (TypeError, NameError):  # a functools.partial, or annotations that do not resolve: by the defaults
            hints = {k: type(p.default) if isinstance(p.default, (int, float, str, bool)) else Any
                     for k, p in params.items()}
            hints = {k: float if h is int and isinstance(params[k].default, float) else h for k, h in hints.items()}
        checked = {k: check_value(v, hints.get(k, Any), name=f"{option} {self.name} {k}") for k, v in kwargs.items()}
        if self.check_hyper_parameters is not None:
            wanted = inspect.signature(self.check_hyper_parameters).parameters
            values = {n: checked.get(n, p.default) for n, p in params.items() if n in wanted}
            try:
                self.check_hyper_parameters(**values)
            except AdvwslError as exc:
                raise ConfigError(f"{option} for {self.name}: {exc}") from None
        return checked

    def kwargs(self, budget: str | int | None = None) -> dict[str, Any]:
        """Hyper-parameters for ``budget`` (``None``: the reference budget)."""
        return self.budget(str(self.reference_budget if budget is None else budget))

    def budget_label(self, kwargs: dict[str, Any]) -> str:
        """The budget column of Table A V-1 for these hyper-parameters: ``steps``, or ``searches x steps``."""
        params = inspect.signature(self.fn).parameters

        def value(name: str) -> Any:
            return kwargs.get(name, params[name].default if name in params else None)

        steps, searches = value("steps"), value("binary_search_steps")
        if searches is not None and steps is not None:
            return f"{searches}x{steps}"
        return "-" if steps is None else str(steps)

    def accepts(self, name: str) -> bool:
        """Whether the attack function takes the keyword ``name``."""
        return name in inspect.signature(self.fn).parameters


_ATTACKS: Registry[AttackSpec] = Registry("attack")


def register_attack(spec: AttackSpec, *, overwrite: bool = False) -> AttackSpec:
    """Make ``spec`` available to :func:`get_attack`, ``run_attack`` and every command (``--attack NAME``)."""
    if not callable(spec.fn):
        raise ConfigError(f"attack {spec.name!r} must be callable, got {type(spec.fn).__name__}")
    return _ATTACKS.register(spec.name, spec, overwrite=overwrite)


def get_attack_spec(name: str) -> AttackSpec:
    """The spec registered as ``name``; an :class:`~advwsl.errors.InputError` listing the names otherwise."""
    return _ATTACKS.get(name)


def get_attack(name: str) -> Attack:
    """The attack function registered as ``name``."""
    return get_attack_spec(name).fn


def list_attacks(goal: str | None = None) -> list[str]:
    """Registered attack names (sorted), optionally only those of one goal (``"label"`` or ``"cam"``)."""
    return [n for n in _ATTACKS.names() if goal is None or _ATTACKS.get(n).goal == goal]


#: ``--attack`` names that stand for several attacks: ``all``, the reference's three; ``strong``, what a
#: robustness evaluation runs today (RobustBench's L2 evaluation and the minimal-norm attacks since DDN):
#: DDN, FMN, FAB and C&W (minimal norm; their per-sample best is the "All" row), APGD-CE and APGD-T (at the
#: report's radii: robust accuracy at epsilon, per attack and in the worst case).
ATTACK_PRESETS: dict[str, tuple[str, ...]] = {"all": REFERENCE_ATTACKS,
                                              "strong": ("ddn", "fmn", "fab", "cw", "apgd-ce", "apgd-t")}


def expand_attacks(names: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """A preset of :data:`ATTACK_PRESETS` -> its attacks; a comma-separated list -> a tuple of registered
    names (an unknown name is an error listing the registered ones)."""
    if isinstance(names, str):
        names = tuple(n.strip() for n in names.split(",") if n.strip())
    out: list[str] = []
    for name in names:
        for n in ATTACK_PRESETS.get(name, (name,)):
            get_attack_spec(n)
            if n not in out:
                out.append(n)
    if not out:
        raise ConfigError("no attack given; use --attack ddn, cw, deepfool, all, or a comma-separated list")
    return tuple(out)


#: ``--budget`` keywords that set every attack's budget at once: its reference budget (section A V-7) or
#: its quick one (minutes instead of hours).
BUDGET_PRESETS = ("reference", "quick")


def parse_budgets(items: str | int | list[str] | tuple[str, ...] | None, attacks: list[str] | tuple[str, ...]
                  ) -> dict[str, str | None]:
    """The budget of each of ``attacks`` from ``--budget`` values: ``N`` (every attack), ``reference`` or
    ``quick`` (every attack at its reference or quick budget), or ``ATTACK=N`` (one attack; repeatable,
    later items win). Attacks not given a budget get ``None`` (their reference budget)."""
    if items is None or isinstance(items, (str, int)):
        items = [] if items is None else [str(items)]
    out: dict[str, str | None] = {name: None for name in attacks}
    for item in items:
        name, sep, value = str(item).partition("=")
        name = name.strip()
        if not sep:
            for a in attacks:
                spec = get_attack_spec(a)
                out[a] = {"reference": spec.reference_budget, "quick": spec.quick_budget}.get(name, name)
            continue
        if name not in out:
            raise ConfigError(f"--budget {item!r} names {name!r}, which is not among the attacks {list(attacks)}")
        value = value.strip()
        spec = get_attack_spec(name)
        out[name] = {"reference": spec.reference_budget, "quick": spec.quick_budget}.get(value, value)
    for name, value in out.items():
        if value is not None:
            get_attack_spec(name).budget(value)  # reject a malformed budget before any work
    return out
