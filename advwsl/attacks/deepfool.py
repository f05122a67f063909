"""DeepFool L2 (Moosavi-Dezfooli et al., 2016), the reference's second baseline, run by foolbox.

Each step linearizes the model around the current point and jumps to the nearest linearized boundary among
the ``candidates`` most likely classes: ``r = |f_k| / ||w_k||^2 w_k`` with ``f_k = z_k - z_y`` and
``w_k = grad f_k``; the accumulated perturbation is scaled by ``1 + overshoot``. Batched.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError
from ._foolbox import run_foolbox
from .registry import AttackSpec, register_attack


def deepfool(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
             steps: int = 50, overshoot: float = 0.02, candidates: int | None = 10,
             bounds: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """DeepFool L2 attack (untargeted only).

    Parameters
    ----------
    model : nn.Module
        Returns logits ``(N, C)``; run in eval mode and left exactly as found.
    inputs : Tensor
        Images ``(N, ...)`` within ``bounds``; not modified.
    labels : Tensor
        True labels, shape ``(N,)``.
    targeted : bool
        Must be False: DeepFool has no targeted form.
    steps : int
        Maximum number of linearization steps (50; the reference's tables use 100).
    overshoot : float
        The perturbation is multiplied by ``1 + overshoot`` to cross the boundary (0.02).
    candidates : int or None
        Number of most likely classes considered at each step (10); None for all classes. Each step costs
        ``candidates - 1`` forward and backward passes.
    bounds : (float, float)
        Box the images live in.

    Returns
    -------
    Tensor
        Adversarial images; samples with no adversarial found, or already misclassified, are the inputs.
    """
    import foolbox as fb

    if targeted:
        raise InputError("DeepFool is an untargeted attack; use ddn or carlini_wagner_l2 for targeted attacks")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise InputError(f"steps must be a positive integer, got {steps!r}")
    if not overshoot >= 0:
        raise InputError(f"overshoot must be >= 0, got {overshoot!r}")
    if candidates is not None and (not isinstance(candidates, int) or candidates < 2):
        raise InputError(f"candidates must be an integer >= 2 or None (all classes), got {candidates!r}")
    attack = fb.attacks.L2DeepFoolAttack(steps=steps, candidates=candidates, overshoot=overshoot)
    return run_foolbox(attack, model, inputs, labels, targeted=False, bounds=bounds)


register_attack(AttackSpec(
    "deepfool", deepfool, "DeepFool", "DeepFool L2 (Moosavi-Dezfooli et al.), minimal L2, untargeted only",
    reference_budget="100", quick_budget="50", targeted=False))
