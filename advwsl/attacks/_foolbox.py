"""Running a foolbox 3 attack behind the project's attack signature: torch tensors in and out, the model
frozen and restored, failed samples returned as the original input. No foolbox or eagerpy type leaves
this module."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..utils import frozen
from ._checks import check_attack_inputs, check_bounds, check_logits


def _is_adversarial(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, targeted: bool, *,
                    check: bool = False) -> torch.Tensor:
    with torch.no_grad():
        logits = model(x)
    if check:  # (N, C) finite logits and labels below C, before foolbox sees the model
        check_logits(logits, labels)
    pred = logits.argmax(1)
    return pred == labels if targeted else pred != labels


def run_foolbox(attack: Any, model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, targeted: bool,
                bounds: tuple[float, float]) -> torch.Tensor:
    """Run the foolbox minimization attack object ``attack`` on ``model``.

    Inputs that are already adversarial come back unchanged, and so do samples for which foolbox found
    nothing (foolbox's C&W would return zeros for them). Costs two forward passes beyond the attack's own:
    the clean inputs and the result are re-evaluated.
    """
    import foolbox as fb

    lo, hi = check_bounds(bounds)
    check_attack_inputs(inputs, labels, (lo, hi), model)
    x = inputs.detach()
    view = (x.shape[0],) + (1,) * (x.dim() - 1)
    with frozen(model):
        already = _is_adversarial(model, x, labels, targeted, check=True)
        fmodel = fb.PyTorchModel(model, bounds=(lo, hi), device=x.device)
        criterion = (fb.criteria.TargetedMisclassification(labels) if targeted
                     else fb.criteria.Misclassification(labels))
        adv = attack.run(fmodel, x.clone(), criterion)
        adv = torch.as_tensor(adv).to(dtype=x.dtype).clamp_(lo, hi)
        success = _is_adversarial(model, adv, labels, targeted) & ~already
    return torch.where(success.view(view), adv, x)
