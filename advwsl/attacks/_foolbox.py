"""Running a foolbox 3 attack behind the project's attack signature: torch tensors in and out, the model
frozen and restored, failed samples returned as the original input. No foolbox or eagerpy type leaves
this module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from ..utils import frozen
from ._checks import check_attack_inputs, check_bounds, check_model_inputs, first_logits

#: The ``model`` and ``inputs`` entries of the parameters of the attacks with a foolbox backend (C&W, DeepFool):
#: what :func:`run_foolbox` and their native implementations both assume of them.
BACKEND_MODEL_INPUTS = (
    "model : nn.Module\n"
    "        Returns logits ``(N, C)`` for images within ``bounds``, with parameters of the dtype and on the\n"
    "        device of ``inputs``. Run in eval mode with parameter gradients off and left exactly as found.\n"
    "    inputs : Tensor\n"
    "        Images ``(N, ...)`` within ``bounds``; not modified.")

_F = TypeVar("_F", bound=Callable[..., Any])


def with_backend_doc(fn: _F) -> _F:
    """``fn`` with :data:`BACKEND_MODEL_INPUTS` in place of ``{model_inputs}`` in its docstring."""
    if fn.__doc__:
        fn.__doc__ = fn.__doc__.replace("{model_inputs}", BACKEND_MODEL_INPUTS)
    return fn


def _is_adversarial(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    pred = logits.argmax(1)
    return pred == labels if targeted else pred != labels


def run_foolbox(attack: Any, model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, targeted: bool,
                bounds: tuple[float, float], zeros_are_failures: bool = False) -> torch.Tensor:
    """Run the foolbox minimization attack object ``attack`` on ``model``.

    Inputs that are already adversarial come back unchanged, and so do samples for which foolbox found
    nothing. A result that is not adversarial is such a failure; with ``zeros_are_failures`` (foolbox's C&W,
    which returns an all-zero image for the samples it found nothing for) so is an all-zero result, even
    when the model happens to misclassify the zero image. Costs two forward passes beyond the attack's own:
    the clean inputs and the result are re-evaluated.
    """
    import foolbox as fb

    lo, hi = check_bounds(bounds)
    check_attack_inputs(inputs, labels, (lo, hi))
    check_model_inputs(model, inputs)
    x = inputs.detach()
    view = (x.shape[0],) + (1,) * (x.dim() - 1)
    with frozen(model):
        with torch.no_grad():
            already = _is_adversarial(first_logits(model, x, labels), labels, targeted)
        fmodel = fb.PyTorchModel(model, bounds=(lo, hi), device=x.device)
        criterion = (fb.criteria.TargetedMisclassification(labels) if targeted
                     else fb.criteria.Misclassification(labels))
        with torch.enable_grad():
            adv = attack.run(fmodel, x.clone(), criterion)
        adv = torch.as_tensor(adv).to(dtype=x.dtype).clamp_(lo, hi)
        with torch.no_grad():
            success = _is_adversarial(model(adv), labels, targeted) & ~already
        if zeros_are_failures:
            success &= adv.flatten(1).ne(0).any(1)
    return torch.where(success.view(view), adv, x)
