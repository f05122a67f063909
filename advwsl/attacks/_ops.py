"""Arithmetic shared by the attacks: per-sample norms, projection onto an L2 ball, quantization to the
8-bit lattice (nearest, or never moving away from the input), the cosine step-size schedule of DDN and
the keep-best record of minimal-norm attacks."""

from __future__ import annotations

import math

import torch

__all__ = ["flat_norms", "per_sample", "project_l2_ball", "random_l2_ball", "quantize", "quantize_toward",
           "cosine_step_sizes", "KeepBest"]


def flat_norms(t: torch.Tensor) -> torch.Tensor:
    """L2 norm of each sample of a batch ``(N, ...)``."""
    return t.flatten(1).norm(p=2, dim=1)


def per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-sample vector ``(N,)`` viewed so that it broadcasts against ``like`` ``(N, ...)``."""
    return v.view(-1, *([1] * (like.dim() - 1)))


def project_l2_ball(delta: torch.Tensor, epsilon: float | torch.Tensor) -> torch.Tensor:
    """Scale each sample's perturbation so that ``||delta_i||_2 <= epsilon`` (a no-op inside the ball).

    ``epsilon`` is a number or a per-sample tensor of shape ``(N,)``.
    """
    eps = torch.as_tensor(epsilon, dtype=delta.dtype, device=delta.device)
    eps = eps.expand(delta.shape[0]) if eps.dim() == 0 else eps
    norms = flat_norms(delta)
    factor = torch.where(norms > eps, eps / norms.clamp_min(1e-12), torch.ones_like(norms))
    return delta * per_sample(factor, delta)


def random_l2_ball(like: torch.Tensor, epsilon: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Samples drawn uniformly from the L2 ball of radius ``epsilon`` (one per row of ``like``): a Gaussian
    direction scaled by ``epsilon * u^(1/d)``, ``u ~ U(0, 1)``, ``d`` the number of pixels."""
    n, d = like.shape[0], like[0].numel()
    direction = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
    direction = direction / per_sample(flat_norms(direction).clamp_min(1e-12), like)
    u = torch.rand(n, generator=generator, dtype=like.dtype, device=like.device)
    return direction * per_sample(epsilon * u.pow(1.0 / d), like)


def quantize(x: torch.Tensor, levels: int, bounds: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Round ``x`` (already within ``bounds``) to the nearest of ``levels`` equally spaced values spanning
    ``bounds`` (256 levels = 8-bit images)."""
    lo, hi = bounds
    steps = levels - 1
    if (lo, hi) == (0.0, 1.0):
        return torch.round(x * steps).div_(steps)
    scale = hi - lo
    return (torch.round((x - lo) * (steps / scale)) * (scale / steps) + lo).clamp_(lo, hi)


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


def cosine_step_sizes(steps: int, alpha_init: float = 1.0, alpha_final: float = 0.01) -> list[float]:
    """Step sizes annealed by a cosine from ``alpha_init`` at the first step to ``alpha_final`` at the last
    (section A V-5)."""
    if steps == 1:
        return [alpha_init]
    return [alpha_final + (alpha_init - alpha_final) * (1 + math.cos(math.pi * k / (steps - 1))) / 2
            for k in range(steps)]


class KeepBest:
    """The lowest-norm successful iterate seen so far, per sample, of a minimal-norm attack; samples
    never successful keep the input.

    ``update(x_eval, success)`` compares the iterates ``x_eval`` (success given per sample) with the best
    so far; ``adversarials`` and ``norms`` (``inf`` where nothing succeeded) read the result."""

    def __init__(self, inputs: torch.Tensor) -> None:
        self.inputs = inputs
        self.norms = torch.full((inputs.shape[0],), math.inf, device=inputs.device, dtype=inputs.dtype)
        self.adversarials = inputs.clone()

    def update(self, x_eval: torch.Tensor, success: torch.Tensor) -> None:
        norm = flat_norms(x_eval - self.inputs)
        better = success & (norm < self.norms)
        self.norms = torch.where(better, norm, self.norms)
        self.adversarials = torch.where(per_sample(better, x_eval), x_eval, self.adversarials)
