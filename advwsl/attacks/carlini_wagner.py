"""Carlini & Wagner L2 attack (eq. A V-5 of the reference), run by foolbox.

``minimize ||delta||_2^2 + c * max(z_y - max_{j != y} z_j + kappa, 0)`` over ``x + delta = (tanh(w) + 1) / 2``
with Adam, and a binary search over the constant ``c``. The reference's budgets: 9 x 10 000 (the original
hyper-parameters), and 4 x 25 / 1 x 100 (Table A V-9: ``binary_search_steps=4, steps=25`` or
``binary_search_steps=1, steps=100``, with the ``stepsize`` and ``initial_const`` of that table).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, InputError
from ._foolbox import run_foolbox
from .registry import AttackSpec, register_attack


def carlini_wagner_l2(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
                      binary_search_steps: int = 9, steps: int = 10000, stepsize: float = 0.01,
                      initial_const: float = 1e-3, confidence: float = 0.0, abort_early: bool = True,
                      bounds: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Carlini & Wagner L2 attack (eq. A V-5): the lowest-norm adversarial over the binary search.

    Parameters
    ----------
    model : nn.Module
        Returns logits ``(N, C)``; run in eval mode and left exactly as found.
    inputs : Tensor
        Images ``(N, ...)`` within ``bounds``; not modified.
    labels : Tensor
        True labels (untargeted) or target labels (``targeted=True``), shape ``(N,)``.
    targeted : bool
        Reach ``labels`` instead of leaving them.
    binary_search_steps : int
        Number of values of ``c`` tried (9 in the reference; 4 or 1 for the 100-iteration budgets).
    steps : int
        Adam iterations per value of ``c`` (10 000 in the reference; 25 or 100 in Table A V-9).
    stepsize : float
        Adam learning rate (0.01; Table A V-9 lists the tuned values).
    initial_const : float
        First ``c``; multiplied by 10 until an adversarial is found, then bisected.
    confidence : float
        Margin ``kappa`` by which the adversarial class must win (applied against the true class when
        untargeted, for the target class when targeted).
    abort_early : bool
        Stop an inner search when the loss has not decreased over a tenth of ``steps``.
    bounds : (float, float)
        Box the images live in.

    Returns
    -------
    Tensor
        Adversarial images; samples with no adversarial found, or already adversarial, are the inputs.
    """
    import foolbox as fb

    for name, value in (("binary_search_steps", binary_search_steps), ("steps", steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    if not stepsize > 0 or not initial_const > 0:
        raise InputError(f"stepsize and initial_const must be positive, got {stepsize!r} and {initial_const!r}")
    if not confidence >= 0:
        raise InputError(f"confidence must be >= 0, got {confidence!r}")
    attack = fb.attacks.L2CarliniWagnerAttack(binary_search_steps=binary_search_steps, steps=steps,
                                              stepsize=stepsize, confidence=confidence,
                                              initial_const=initial_const, abort_early=abort_early)
    return run_foolbox(attack, model, inputs, labels, targeted=targeted, bounds=bounds)


#: Table A V-9: the C&W hyper-parameters (Adam learning rate ``stepsize``, initial constant) the reference
#: selected for the 100-iteration budgets, per dataset. The 9 x 10 000 budget uses the original ones
#: (learning rate 0.01, initial constant 0.01; section A V-5).
TABLE_A_V_9: dict[str, dict[str, dict[str, float]]] = {
    "mnist": {"1x100": {"stepsize": 0.1, "initial_const": 1.0}, "4x25": {"stepsize": 0.5, "initial_const": 1.0}},
    "cifar10": {"1x100": {"stepsize": 0.01, "initial_const": 0.1}, "4x25": {"stepsize": 0.01, "initial_const": 0.1}},
    "imagenet": {"1x100": {"stepsize": 0.01, "initial_const": 1.0}, "4x25": {"stepsize": 0.01, "initial_const": 10.0}},
}
ORIGINAL = {"stepsize": 0.01, "initial_const": 0.01}


def cw_budget(text: str, dataset: str = "mnist") -> dict[str, object]:
    """C&W hyper-parameters for a budget: ``"SxN"`` is S binary-search steps of N Adam iterations, with Table
    A V-9's hyper-parameters for ``dataset`` when it is 4 x 25 or 1 x 100 and the original ones (section A
    V-5) otherwise; a plain ``"N"`` means ``4 x N/4`` (1 x N below 4), the split of Table A V-1's
    100-iteration budgets, with Table A V-9's 4 x 25 (1 x 100) hyper-parameters."""
    text = str(text).lower().replace("\u00d7", "x").strip()
    parts = text.split("x")
    if len(parts) > 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(f"a C&W budget is SEARCHESxSTEPS (e.g. 9x10000, 4x25) or a total number of steps (100), "
                          f"got {text!r}")
    table = TABLE_A_V_9.get(dataset, TABLE_A_V_9["mnist"])
    if len(parts) == 2:
        searches, steps = int(parts[0]), int(parts[1])
        tuned = table.get(f"{searches}x{steps}", ORIGINAL)
    else:
        total = int(parts[0])
        searches = 4 if total >= 4 else 1
        steps = total // searches
        tuned = table["4x25" if searches == 4 else "1x100"]
    return {"binary_search_steps": searches, "steps": steps, **tuned}


register_attack(AttackSpec(
    "cw", carlini_wagner_l2, "C&W", "Carlini & Wagner L2 (eq. A V-5): binary search on c, Adam in tanh space",
    reference_budget="9x10000", quick_budget="4x25", budget=cw_budget))
