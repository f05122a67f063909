"""Projected gradient descent with an L2 budget (PGD-L2), the inner maximization of the Madry defense.

Appendix V, eq. A V-7: ``min_theta E[max_{delta in S} J(x + delta, y, theta)]`` with the feasible region
``S = {delta : ||delta||_2 <= epsilon}``. The inner maximum is approximated by projected gradient ascent
on the cross-entropy (eq. A V-2's budget form): a random start in the L2 ball, steps along the
L2-normalized gradient, projection back onto the ball and onto the image box [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError, ModelError
from ..utils import frozen
from ._checks import check_attack_inputs, check_logits
from ._ops import flat_norms, per_sample, project_l2_ball, quantize_toward, random_l2_ball
from .registry import AttackSpec, register_attack


def _check_hyper_parameters(epsilon: float, steps: int, step_size: float | None, levels: int | None) -> None:
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise InputError(f"epsilon must be a positive finite L2 radius, got {epsilon!r}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise InputError(f"steps must be a positive integer, got {steps!r}")
    if step_size is not None and not (isinstance(step_size, (int, float)) and step_size > 0
                                      and math.isfinite(step_size)):
        raise InputError(f"step_size must be positive and finite, got {step_size!r}")
    if levels is not None and (int(levels) != levels or levels < 2):
        raise InputError(f"levels must be None or an integer >= 2 (256 for 8-bit images), got {levels!r}")


def pgd_l2(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
           epsilon: float, steps: int = 40, step_size: float | None = None, random_start: bool = True,
           levels: int | None = None, generator: torch.Generator | None = None, seed: int | None = None
           ) -> torch.Tensor:
    """PGD with an L2 budget: the inner maximization of the Madry defense (eq. A V-7, region
    ``S = {||delta||_2 <= epsilon}``), the budget form of eq. A V-2.

    Starting from ``x`` (or a uniform random point of the epsilon-ball when ``random_start``), each step
    moves ``step_size`` along the L2-normalized gradient of the cross-entropy (ascent for untargeted,
    descent toward ``labels`` for targeted), projects the perturbation onto the epsilon-ball and the
    image onto [0, 1]. Every sample is attacked for all ``steps`` (a budget attack, not a minimal-norm
    one): the result maximizes the loss inside the ball, whether or not it is misclassified.

    Parameters
    ----------
    model : nn.Module
        Classifier returning logits; left exactly as found (mode, ``requires_grad``, no ``.grad``).
    inputs : Tensor (N, ...)
        Images in [0, 1]; not modified.
    labels : Tensor (N,)
        True labels (untargeted) or target labels (targeted).
    targeted : bool
        Minimize the loss of ``labels`` instead of maximizing it.
    epsilon : float
        L2 radius of the feasible region.
    steps : int
        Number of gradient steps (40 by default, as Madry et al.'s MNIST attack).
    step_size : float, optional
        L2 length of each step; default ``2.5 * epsilon / steps`` (enough to cross the ball and back).
    random_start : bool
        Start from a uniform random point of the ball (Madry et al.) instead of ``x``.
    levels : int, optional
        Quantize the result to this many values per pixel (256 for 8-bit images), never leaving the ball
    generator : torch.Generator, optional
        Source of the random start, for reproducible attacks.
    seed : int, optional
        Without a ``generator``: the random start drawn from a generator seeded with it (each call the same
        draws, as :func:`advwsl.attacks.run_attack` passes its seed); without either, torch's global stream.

    Returns
    -------
    Tensor
        Adversarial images with ``||adv - inputs||_2 <= epsilon`` per sample, in [0, 1].
    """
    check_attack_inputs(inputs, labels, (0.0, 1.0), model)
    _check_hyper_parameters(epsilon, steps, step_size, levels)
    if step_size is None:
        step_size = 2.5 * epsilon / steps
    x = inputs.detach()
    labels = labels.long()
    sign = -1.0 if targeted else 1.0
    if generator is None and seed is not None:
        generator = torch.Generator(device=x.device).manual_seed(int(seed))
    with frozen(model):
        if random_start:
            delta = random_l2_ball(x, epsilon, generator)
            delta = (x + delta).clamp(0, 1) - x
        else:
            delta = torch.zeros_like(x)
        for k in range(int(steps)):
            delta.requires_grad_(True)
            logits = model(x + delta)
            if k == 0:
                check_logits(logits, labels)
            loss = F.cross_entropy(logits, labels, reduction="sum")
            if not bool(torch.isfinite(loss)):  # NaN logits off the clean inputs would poison the iterate
                raise ModelError(f"the model returned NaN or infinite logits at PGD step {k + 1} (inputs within "
                                 f"epsilon={epsilon} of the given ones); check that it is defined on all of [0, 1]")
            (grad,) = torch.autograd.grad(sign * loss, delta)
            gnorm = flat_norms(grad)
            # a zero gradient (saturated softmax, flat model) leaves that sample where it is
            step = grad / per_sample(gnorm.clamp_min(1e-12), grad)
            delta = delta.detach() + step_size * step
            delta = project_l2_ball(delta, epsilon)
            delta = (x + delta).clamp(0, 1) - x
    adv = (x + delta).detach()
    if levels is not None:
        adv = quantize_toward(x, adv, int(levels))
    return adv


register_attack(AttackSpec(
    "pgd", pgd_l2, "PGD", "PGD-L2 within a fixed radius epsilon (eq. A V-7; pass epsilon), not minimal-norm",
    reference_budget="40", quick_budget="20", minimal_norm=False, runner_params=("levels", "seed"),
    check_hyper_parameters=_check_hyper_parameters))
