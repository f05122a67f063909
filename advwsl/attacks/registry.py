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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry

__all__ = ["Attack", "AttackSpec", "register_attack", "get_attack", "get_attack_spec", "list_attacks",
           "steps_budget", "parse_budgets", "REFERENCE_ATTACKS"]

Attack = Callable[..., torch.Tensor]

#: The reference's three minimal-norm attacks (``--attack all``; the "All" row is their per-sample best).
REFERENCE_ATTACKS = ("ddn", "cw", "deepfool")


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
    tensor``, re-evaluated by the runner on what the attack returned."""

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

    def __post_init__(self) -> None:
        if self.goal not in ("label", "cam"):
            raise ConfigError(f"attack {self.name!r}: goal must be 'label' or 'cam', got {self.goal!r}")
        if self.goal == "cam" and self.success is None:
            raise ConfigError(f"attack {self.name!r}: a CAM-goal attack needs its success predicate")

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


def parse_budgets(items: str | int | list[str] | tuple[str, ...] | None, attacks: list[str] | tuple[str, ...]
                  ) -> dict[str, str | None]:
    """The budget of each of ``attacks`` from ``--budget`` values: ``N`` (every attack) or ``ATTACK=N``
    (one attack; repeatable). Attacks not given a budget get ``None`` (their reference budget)."""
    if items is None or isinstance(items, (str, int)):
        items = [] if items is None else [str(items)]
    out: dict[str, str | None] = {name: None for name in attacks}
    for item in items:
        name, sep, value = str(item).partition("=")
        if not sep:
            for a in attacks:
                out[a] = name.strip()
            continue
        name = name.strip()
        if name not in out:
            raise ConfigError(f"--budget {item!r} names {name!r}, which is not among the attacks {list(attacks)}")
        out[name] = value.strip()
    for name, value in out.items():
        if value is not None:
            get_attack_spec(name).budget(value)  # reject a malformed budget before any work
    return out
