"""Adaptive robust loss (eq. 4.10-4.11): closed forms, partition function, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special

from advwsl.errors import InputError
from advwsl.losses.robust import (AdaptiveRobustLoss, log_partition, partition_quadrature, robust_nll,
                                  robust_rho)


def test_partition_function_reference_values():
    lz = log_partition(torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64))
    assert lz[0].item() == pytest.approx(math.log(math.pi * math.sqrt(2)), abs=1e-7)  # 1.49130
    assert lz[0].item() == pytest.approx(1.49130, abs=1e-5)
    assert math.exp(lz[1].item()) == pytest.approx(2 * math.e * special.k1(1.0), abs=1e-6)  # 3.27231
    assert math.exp(lz[1].item()) == pytest.approx(3.27231, abs=1e-5)
    assert math.exp(lz[2].item()) == pytest.approx(math.sqrt(2 * math.pi), abs=1e-6)


def test_interpolation_matches_quadrature_between_knots():
    rng = np.random.default_rng(0)
    alphas = np.concatenate([rng.uniform(0, 4, 12), 2 - 10 ** -rng.uniform(1, 6, 4), 10 ** -rng.uniform(1, 6, 4)])
    got = log_partition(torch.from_numpy(alphas))
    for a, g in zip(alphas, got.tolist()):
        assert g == pytest.approx(math.log(partition_quadrature(float(a))), abs=1e-5)


def test_log_partition_gradient_matches_finite_difference():
    for a0 in (0.3, 1.0, 1.7, 3.0):
        a = torch.tensor(a0, dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(log_partition(a), a)
        h = 1e-4
        fd = (math.log(partition_quadrature(a0 + h)) - math.log(partition_quadrature(a0 - h))) / (2 * h)
        assert g.item() == pytest.approx(fd, rel=1e-3)


def test_density_integrates_to_one():
    x = torch.linspace(-2000, 2000, 2_000_001, dtype=torch.float64)
    for alpha, scale in ((1.0, 0.5), (1.5, 2.0), (2.0, 1.0)):
        nll = robust_nll(x, torch.tensor(alpha, dtype=torch.float64), torch.tensor(scale, dtype=torch.float64))
        assert torch.trapezoid(torch.exp(-nll), x).item() == pytest.approx(1.0, abs=1e-4)


def test_rho_special_cases_and_limits():
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    c = 0.7
    z2 = (x / c) ** 2
    assert torch.allclose(robust_rho(x, 2.0, c), 0.5 * z2)                       # L2
    assert torch.allclose(robust_rho(x, 0.0, c), torch.log(0.5 * z2 + 1))        # Cauchy
    assert torch.allclose(robust_rho(x, 1.0, c), torch.sqrt(z2 + 1) - 1)         # Charbonnier
    assert torch.allclose(robust_rho(x, -math.inf, c), 1 - torch.exp(-0.5 * z2))  # Welsch
    # the general formula tends continuously to the closed forms
    assert torch.allclose(robust_rho(x, 2 - 1e-7, c), 0.5 * z2, atol=1e-5)
    assert torch.allclose(robust_rho(x, 1e-7, c), torch.log(0.5 * z2 + 1), atol=1e-5)


def test_gradients_finite_everywhere_including_zero():
    for alpha0 in (0.0, 1e-6, 0.5, 1.0, 2.0 - 1e-6, 2.0, 3.0):
        x = torch.tensor([0.0, 1e-8, -0.3, 4.0], dtype=torch.float64, requires_grad=True)
        alpha = torch.tensor(alpha0, dtype=torch.float64, requires_grad=True)
        scale = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
        grads = torch.autograd.grad(robust_nll(x, alpha, scale).sum(), (x, alpha, scale))
        assert all(torch.isfinite(g).all() for g in grads), alpha0
        assert grads[0][0].item() == 0.0  # x = 0 is the minimum


def test_gradcheck():
    x = torch.randn(6, dtype=torch.float64, requires_grad=True)
    alpha = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(robust_rho, (x, alpha, scale))


@pytest.mark.parametrize("kind", ["gauss", "cauchy"])
def test_learned_alpha_follows_the_data(kind):
    """NLL learning picks alpha near 2 for Gaussian residuals and near 0 for heavy-tailed ones."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, generator=g) if kind == "gauss" else torch.distributions.Cauchy(0.0, 1.0).sample((2000,))
    loss = AdaptiveRobustLoss(alpha_init=1.0)
    opt = torch.optim.Adam(loss.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        loss(x.unsqueeze(1)).mean().backward()
        opt.step()
    alpha = loss.alpha().item()
    assert (alpha > 1.7) if kind == "gauss" else (alpha < 0.3), alpha
    assert 0.001 <= alpha <= 1.999


def test_bad_inputs():
    with pytest.raises(InputError, match="diverges"):
        log_partition(torch.tensor(-0.5))
    with pytest.raises(InputError, match="scale"):
        robust_rho(torch.zeros(3), 1.0, 0.0)
    with pytest.raises(InputError, match="alpha_range"):
        AdaptiveRobustLoss(alpha_range=(-1.0, 2.0))
    with pytest.raises(InputError, match="num_dims"):
        AdaptiveRobustLoss(3)(torch.zeros(4, 2))
