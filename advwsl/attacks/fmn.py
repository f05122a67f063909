"""Fast Minimum-Norm (FMN) attack, L2 (Pintor, Roli, Brendel & Biggio, "Fast Minimum-norm Adversarial Attacks
through Adaptive Norm Constraints", NeurIPS 2021), the successor of DDN (Algorithm A V-1 of the reference).

Like DDN, FMN moves the perturbation ``delta`` along the L2-normalized gradient and keeps it within an
adaptive radius ``epsilon``, but (Algorithm 1 of the paper):

* the objective is the logit difference ``L = z_y - max_{j != y} z_j`` (targeted:
  ``max_{j != t} z_j - z_t``), which is negative exactly on the adversarial side;
* ``epsilon`` starts unbounded; until a first adversarial is found it is set each step to the linearized
  distance to the boundary, ``||delta|| + |L| / ||grad L||``; then it shrinks to
  ``min(epsilon (1 - gamma), ||best||)`` on adversarial iterates and grows by ``(1 + gamma)`` otherwise;
* ``delta`` is projected *into* the ball of radius ``epsilon`` (not onto its sphere), then the point onto
  the box;
* both the step size ``alpha`` (from ``alpha_init`` to ``alpha_init / 100``) and ``gamma`` (from 0.05 to
  0.001) are cosine-annealed over the ``steps``, with the authors' ``(1 + cos(pi k / K)) / 2`` schedule;
* optionally, a boundary search between the inputs and adversarial ``starting_points`` gives the first
  iterate (``boundary_search_steps`` bisections along the segment, as in the paper's initialization).

Defaults are the authors' (100 steps in their foolbox implementation). Beyond the paper, as in
:mod:`advwsl.attacks.ddn`:

* ``epsilon`` is capped at the worst-case norm (the distance to the farthest corner of the box);
* the distance to the boundary uses each sample's own ``L`` (the authors' first code used the batch sum),
  and until the first adversarial ``epsilon`` grows at least by ``(1 + gamma)`` per step, as DDN's: with the
  authors' ``||delta|| + |L| / ||grad L||`` alone, an iterate can stay short of the boundary for every step
  when the box clips the step (``||delta||`` stays below ``epsilon``; 3 % of the digits of the mnist-5k
  C&W network at 100 steps), or when it lands on a locally linear boundary but on its wrong side (by float
  rounding, or rounded back by quantization: a third of the samples of a quantized linear model; adv_lib's
  FMN stalls the same way);
* with quantization, the optimization state stays continuous and only the evaluated iterate is put on the
  lattice (after clamping), so steps below one quantization level keep accumulating;
* the final iterate is evaluated too, and the lowest-norm adversarial seen is returned per sample;
* bounds other than (0, 1) scale ``alpha``, so the attack is scale-equivariant.

Each step costs one forward and one backward pass; one extra forward evaluates the final iterate, and the
boundary search costs one forward per bisection.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import InputError
from ..utils import frozen
from ._checks import check_attack_inputs, check_bounds, check_logits
from ._ops import KeepBest, flat_norms, per_sample, project_l2_ball
from ._shared import check_levels, check_positive, check_steps, is_adversarial, logit_margin, on_box_lattice
from .registry import AttackSpec, register_attack

__all__ = ["fmn", "fmn_schedules"]

_TINY = 1e-12


def fmn_schedules(steps: int, alpha_init: float, alpha_final: float, gamma_init: float,
                  gamma_final: float) -> list[tuple[float, float]]:
    """``(alpha_k, gamma_k)`` for ``k = 0 .. steps - 1``: cosine annealing ``final + (init - final) (1 +
    cos(pi k / K)) / 2`` of both, as in the authors' code (the last step stops short of ``final``)."""
    out = []
    for k in range(steps):
        c = (1 + math.cos(math.pi * k / steps)) / 2
        out.append((alpha_final + (alpha_init - alpha_final) * c, gamma_final + (gamma_init - gamma_final) * c))
    return out


def _check_hyper_parameters(steps: int, alpha_init: float, alpha_final: float, gamma_init: float,
                            gamma_final: float, levels: int | None, boundary_search_steps: int) -> None:
    check_steps("steps", steps)
    check_steps("boundary_search_steps", boundary_search_steps, minimum=0)
    check_positive("alpha_init", alpha_init)
    check_positive("alpha_final", alpha_final)
    check_positive("gamma_init", gamma_init, upper=1.0, hint="; the authors use 0.05")
    check_positive("gamma_final", gamma_final, upper=1.0, hint="; the authors use 0.001")
    if gamma_init == 1.0:
        raise InputError("gamma_init must be below 1 (epsilon would shrink to 0 in one step); the authors use 0.05")
    check_levels(levels)


def _boundary_search(model: nn.Module, x: torch.Tensor, start: torch.Tensor, labels: torch.Tensor, targeted: bool,
                     search_steps: int, levels: int | None, bounds: tuple[float, float],
                     best: KeepBest) -> torch.Tensor:
    """The first perturbation: bisection on ``t`` along ``x + t (start - x)`` towards the boundary, for the
    samples whose (quantized) starting point is adversarial; zero for the others."""
    lower = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
    upper = torch.ones_like(lower)
    logits = model(on_box_lattice(start, levels, bounds))
    check_logits(logits, labels)
    ok = is_adversarial(logits, labels, targeted)
    best.update(on_box_lattice(start, levels, bounds), ok)
    for _ in range(search_steps):
        mid = (lower + upper) / 2
        point = on_box_lattice(torch.lerp(x, start, per_sample(mid, x)), levels, bounds)
        adv = is_adversarial(model(point), labels, targeted)
        best.update(point, adv & ok)
        upper = torch.where(adv, mid, upper)
        lower = torch.where(adv, lower, mid)
    return torch.where(per_sample(ok, x), torch.lerp(x, start, per_sample(upper, x)) - x, torch.zeros_like(x))


def _next_epsilon(epsilon: torch.Tensor, is_adv: torch.Tensor, adv_found: torch.Tensor, best_norms: torch.Tensor,
                  delta_norms: torch.Tensor, boundary: torch.Tensor, gamma: float,
                  worst_norm: torch.Tensor) -> torch.Tensor:
    """The paper's epsilon update (Algorithm 1), capped at the worst-case norm; before the first
    adversarial, at least ``(1 + gamma)`` times the last epsilon (see the module docstring)."""
    first = torch.where(torch.isfinite(epsilon), torch.maximum(delta_norms + boundary, epsilon * (1 + gamma)),
                        delta_norms + boundary)
    grow = torch.where(adv_found, epsilon * (1 + gamma), first)
    return torch.where(is_adv, torch.minimum(epsilon * (1 - gamma), best_norms), grow).minimum(worst_norm)


def fmn(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
        steps: int = 100, alpha_init: float = 1.0, alpha_final: float | None = None, gamma_init: float = 0.05,
        gamma_final: float = 0.001, levels: int | None = 256, bounds: tuple[float, float] = (0.0, 1.0),
        starting_points: torch.Tensor | None = None, boundary_search_steps: int = 10) -> torch.Tensor:
    """Fast Minimum-Norm attack, L2 (Pintor et al., NeurIPS 2021): the lowest-norm adversarial found per sample.

    Parameters
    ----------
    model : nn.Module
        Returns logits ``(N, C)`` for images within ``bounds``. It is run in eval mode with parameter
        gradients off and left exactly as found (mode, ``requires_grad``, no ``.grad``).
    inputs : Tensor
        Images ``(N, ...)`` within ``bounds``; not modified.
    labels : Tensor
        True labels (untargeted) or target labels (``targeted=True``), shape ``(N,)``.
    targeted : bool
        Reach ``labels`` instead of leaving them.
    steps : int
        Number of iterations ``K`` (one forward and one backward pass each); the authors' default is 100.
    alpha_init, alpha_final : float
        Step size of the first step and the floor of its cosine annealing (default ``alpha_init / 100``),
        in units of the (0, 1) box (scaled by ``upper - lower`` of ``bounds``).
    gamma_init, gamma_final : float
        Factor of the epsilon update at the first step and the floor of its cosine annealing (0.05, 0.001).
    levels : int or None
        Quantize evaluated iterates (and so the result) to this many levels per pixel; None keeps floats.
    bounds : (float, float)
        Box the images live in; iterates are clamped to it before quantization.
    starting_points : Tensor, optional
        Adversarial points to start from (e.g. another attack's output): the first iterate is the point of
        the segment from the input found by ``boundary_search_steps`` bisections. Samples whose starting point
        is not adversarial start from the input.
    boundary_search_steps : int
        Bisections of that search (10, as the authors).

    Returns
    -------
    Tensor
        Adversarial images, same shape and dtype as ``inputs``. A sample for which no adversarial was found,
        or that is already adversarial (misclassified, or classified as its target), is returned unchanged.
    """
    lo, hi = check_bounds(bounds)
    check_attack_inputs(inputs, labels, (lo, hi), model)
    alpha_final = alpha_init / 100 if alpha_final is None else alpha_final
    _check_hyper_parameters(steps, alpha_init, alpha_final, gamma_init, gamma_final, levels, boundary_search_steps)
    if starting_points is not None and (not isinstance(starting_points, torch.Tensor)
                                        or starting_points.shape != inputs.shape):
        raise InputError("starting_points must be a tensor of the inputs' shape "
                         f"{tuple(inputs.shape)}, e.g. the output of another attack")
    x, labels, scale = inputs.detach(), labels.long(), hi - lo
    best = KeepBest(x)
    worst_norm = flat_norms(torch.maximum(x - lo, hi - x))
    epsilon = torch.full((x.shape[0],), math.inf, device=x.device, dtype=x.dtype)
    adv_found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    with frozen(model):
        with torch.no_grad():
            delta = torch.zeros_like(x) if starting_points is None else _boundary_search(
                model, x, starting_points.detach().clamp(lo, hi), labels, targeted, boundary_search_steps,
                levels, (lo, hi), best)
        x_eval = x if starting_points is None else on_box_lattice(x + delta, levels, (lo, hi))
        schedule = fmn_schedules(steps, alpha_init * scale, alpha_final * scale, gamma_init, gamma_final)
        for k, (alpha, gamma) in enumerate(schedule):
            x_eval = x_eval.detach().requires_grad_(True)
            with torch.enable_grad():
                logits = model(x_eval)
                if k == 0:
                    check_logits(logits, labels)
                margin = logit_margin(logits, labels, targeted)
                grad = torch.autograd.grad(margin.sum(), x_eval)[0]
            with torch.no_grad():
                x_eval, margin = x_eval.detach(), margin.detach()
                is_adv = is_adversarial(logits.detach(), labels, targeted)
                best.update(x_eval, is_adv)
                adv_found |= is_adv
                grad_norm = flat_norms(grad).clamp_min(_TINY)
                epsilon = _next_epsilon(epsilon, is_adv, adv_found, best.norms, flat_norms(x_eval - x),
                                        margin.abs() / grad_norm, gamma, worst_norm)
                delta = project_l2_ball(delta - alpha * grad / per_sample(grad_norm, grad), epsilon)
                delta = (x + delta).clamp_(lo, hi) - x
                x_eval = on_box_lattice(x + delta, levels, (lo, hi))
        with torch.no_grad():
            best.update(x_eval, is_adversarial(model(x_eval), labels, targeted))
    return best.adversarials


register_attack(AttackSpec(
    "fmn", fmn, "FMN", "Fast Minimum-Norm L2 (Pintor et al., NeurIPS 2021), minimal L2; DDN's successor",
    reference_budget="1000", quick_budget="100"))
