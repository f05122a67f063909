"""Linear classifiers whose minimal L2 adversarial is known in closed form, and a small CNN trained on the
scikit-learn digits, shared by the attack tests."""

from __future__ import annotations

import torch
from torch import nn


def linear_model(num_classes: int, shape: tuple[int, ...], scale: float = 0.5, seed: int = 0) -> nn.Module:
    """``Flatten + Linear`` with Gaussian weights of std ``scale`` and zero bias."""
    g = torch.Generator().manual_seed(seed)
    d = int(torch.tensor(shape).prod())
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, num_classes))
    model[1].weight.data = torch.randn(num_classes, d, generator=g) * scale
    model[1].bias.data.zero_()
    return model.eval()


def central_inputs(n: int, shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    """Images near the middle of the box, so that the optimal perturbations stay inside it."""
    g = torch.Generator().manual_seed(seed)
    return (0.5 + 0.05 * torch.randn((n, *shape), generator=g)).clamp(0.3, 0.7)


def binary_inputs(model: nn.Module, n: int, shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    """Images near the middle of the box placed at distances spread over [0.1, 1] from the boundary of the
    binary linear ``model`` (on alternating sides), with the optimal adversarial inside the box."""
    g = torch.Generator().manual_seed(seed)
    w = model[1].weight.detach()
    u = (w[1] - w[0]).flatten()
    u = u / u.norm()
    x = central_inputs(n, shape, seed).flatten(1)
    signed = x @ u  # bias is zero
    side = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0)
    target = side * (0.1 + 0.9 * torch.rand(n, generator=g))
    x = x + (target - signed)[:, None] * u
    assert bool((x > 0).all() and (x < 1).all() and (x - target[:, None] * u > 0).all()
                and (x - target[:, None] * u < 1).all()), "pick a larger shape: the optimum leaves the box"
    return x.view(n, *shape)


def optimal_untargeted(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Distance to the nearest half-space ``z_j >= z_y``: ``min_j (z_y - z_j) / ||w_y - w_j||``."""
    w = model[1].weight.detach()
    with torch.no_grad():
        z = model(x)
    gaps = z.gather(1, labels[:, None]) - z
    dist = gaps / (w[None] - w[labels][:, None]).norm(dim=2).clamp_min(1e-12)
    dist[torch.arange(len(x)), labels] = float("inf")
    return dist.min(1).values


def optimal_binary_targeted(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary model: distance to the half-space ``z_t >= z_other``."""
    other = 1 - target
    return optimal_untargeted(model, x, other)


def l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).flatten(1).norm(dim=1)
