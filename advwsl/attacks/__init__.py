"""Minimal-norm L2 attacks with one signature,
``attack(model, inputs, labels, *, targeted=False, <keyword hyper-parameters>) -> adversarial inputs``,
and a registry that maps names to them (the command line and the tests read it)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import InputError
from .cam import cam_ddn
from .carlini_wagner import carlini_wagner_l2
from .ddn import ddn
from .deepfool import deepfool
from .pgd import pgd_l2

Attack = Callable[..., torch.Tensor]

#: Registered attacks by name. Add to it with :func:`register_attack`.
ATTACKS: dict[str, Attack] = {}


def register_attack(name: str, fn: Attack, *, overwrite: bool = False) -> Attack:
    """Make ``fn`` available as ``name`` to :func:`get_attack`, ``run_attack`` and ``advwsl attack``.

    Raises :class:`InputError` if ``name`` is taken by another function (unless ``overwrite``).
    Returns ``fn`` so it can be used as a decorator helper.
    """
    if not isinstance(name, str) or not name or not name.isascii():
        raise InputError(f"attack names must be non-empty ASCII strings, got {name!r}")
    if not callable(fn):
        raise InputError(f"attack {name!r} must be callable, got {type(fn).__name__}")
    if name in ATTACKS and ATTACKS[name] is not fn and not overwrite:
        raise InputError(f"an attack named {name!r} is already registered ({ATTACKS[name].__module__}."
                         f"{ATTACKS[name].__name__}); choose another name or pass overwrite=True")
    ATTACKS[name] = fn
    return fn


def get_attack(name: str) -> Attack:
    """The attack registered as ``name``; an :class:`InputError` listing the known names otherwise."""
    try:
        return ATTACKS[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown attack {name!r}; known attacks: {', '.join(sorted(ATTACKS))}") from None


register_attack("ddn", ddn)
register_attack("cw", carlini_wagner_l2)
register_attack("carlini_wagner_l2", carlini_wagner_l2)
register_attack("deepfool", deepfool)
register_attack("pgd", pgd_l2)
register_attack("cam-ddn", cam_ddn)

__all__ = ["ATTACKS", "Attack", "cam_ddn", "carlini_wagner_l2", "ddn", "deepfool", "get_attack", "pgd_l2", "register_attack"]
