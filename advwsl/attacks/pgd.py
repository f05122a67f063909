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

from ..errors import InputError
from ..utils import frozen


def _flat_norms(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(p=2, dim=1)


def _expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def project_l2_ball(delta: torch.Tensor, epsilon: float | torch.Tensor) -> torch.Tensor:
    """Scale each sample's perturbation so that ``||delta_i||_2 <= epsilon`` (a no-op inside the ball).

    ``epsilon`` is a number or a per-sample tensor of shape ``(N,)``.
    """
    eps = torch.as_tensor(epsilon, dtype=delta.dtype, device=delta.device)
    eps = eps.expand(delta.shape[0]) if eps.dim() == 0 else eps
    norms = _flat_norms(delta)
    factor = torch.where(norms > eps, eps / norms.clamp_min(1e-12), torch.ones_like(norms))
    return delta * _expand(factor, delta)


def quantize_toward(inputs: torch.Tensor, adv: torch.Tensor, levels: int) -> torch.Tensor:
    """Put ``adv`` on the ``levels``-value lattice of [0, 1] without moving any pixel farther from
    ``inputs`` than it was: each pixel goes to the nearest lattice value when that is no farther from the
    input, else to the lattice value between it and the input. When ``inputs`` lie on the lattice this keeps
    ``|q - x| <= |adv - x|`` per pixel, so any L2 budget the unquantized point met still holds."""
    scale = levels - 1
    nearest = torch.round(adv * scale) / scale
    toward = torch.where(adv >= inputs, torch.floor(adv * scale), torch.ceil(adv * scale)) / scale
    keep = (nearest - inputs).abs() <= (adv - inputs).abs()
    return torch.where(keep, nearest, toward).clamp_(0, 1)


def random_l2_ball(like: torch.Tensor, epsilon: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Samples drawn uniformly from the L2 ball of radius ``epsilon`` (one per row of ``like``): a Gaussian
    direction scaled by ``epsilon * u^(1/d)``, ``u ~ U(0, 1)``, ``d`` the number of pixels."""
    n, d = like.shape[0], like[0].numel()
    direction = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
    direction = direction / _expand(_flat_norms(direction).clamp_min(1e-12), like)
    u = torch.rand(n, generator=generator, dtype=like.dtype, device=like.device)
    return direction * _expand(epsilon * u.pow(1.0 / d), like)


def _check(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, epsilon: float, steps: int,
           step_size: float, levels: int | None) -> None:
    if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point() or inputs.dim() < 2:
        raise InputError(f"pgd_l2 needs a float tensor (N, ...) of images, got "
                         f"{type(inputs).__name__} {getattr(inputs, 'dtype', '')} "
                         f"{tuple(getattr(inputs, 'shape', ()))}; convert images to float in [0, 1]")
    if not torch.isfinite(inputs).all() or inputs.min() < 0 or inputs.max() > 1:
        raise InputError(f"pgd_l2 inputs must be finite and in [0, 1], got range "
                         f"[{inputs.min().item():.4g}, {inputs.max().item():.4g}]; scale images to [0, 1] and "
                         "put normalization inside the model")
    if labels.shape != inputs.shape[:1]:
        raise InputError(f"labels must have shape ({inputs.shape[0]},), got {tuple(labels.shape)}")
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise InputError(f"epsilon must be a positive finite L2 radius, got {epsilon!r}")
    if int(steps) != steps or steps < 1:
        raise InputError(f"steps must be a positive integer, got {steps!r}")
    if not (isinstance(step_size, (int, float)) and step_size > 0 and math.isfinite(step_size)):
        raise InputError(f"step_size must be positive and finite, got {step_size!r}")
    if levels is not None and (int(levels) != levels or levels < 2):
        raise InputError(f"levels must be None or an integer >= 2 (256 for 8-bit images), got {levels!r}")


def pgd_l2(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
           epsilon: float, steps: int = 40, step_size: float | None = None, random_start: bool = True,
           levels: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
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

    Returns
    -------
    Tensor
        Adversarial images with ``||adv - inputs||_2 <= epsilon`` per sample, in [0, 1].
    """
    if step_size is None:
        step_size = 2.5 * epsilon / steps if isinstance(steps, int) and steps > 0 else float("nan")
    _check(model, inputs, labels, epsilon, steps, step_size, levels)
    x = inputs.detach()
    labels = labels.to(x.device)
    sign = -1.0 if targeted else 1.0
    with frozen(model):
        if random_start:
            delta = random_l2_ball(x, epsilon, generator)
            delta = (x + delta).clamp(0, 1) - x
        else:
            delta = torch.zeros_like(x)
        for _ in range(int(steps)):
            delta.requires_grad_(True)
            loss = F.cross_entropy(model(x + delta), labels, reduction="sum")
            (grad,) = torch.autograd.grad(sign * loss, delta)
            gnorm = _flat_norms(grad)
            # a zero gradient (saturated softmax, flat model) leaves that sample where it is
            step = grad / _expand(gnorm.clamp_min(1e-12), grad)
            delta = delta.detach() + step_size * step
            delta = project_l2_ball(delta, epsilon)
            delta = (x + delta).clamp(0, 1) - x
    adv = (x + delta).detach()
    if levels is not None:
        adv = quantize_toward(x, adv, int(levels))
    return adv
